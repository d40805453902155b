"""The task registry: `TaskSpec`, `register`, `get`, `names`.

Its own module (re-exported by `algebranets.tasks`) so that the task modules
register themselves without importing their package back (no import cycle).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """How to build a task from a config.

  Attributes:
    name: registry name (the config's `task` field).
    data_defaults: () -> the `data` config section with its defaults.
    validate_config: (config, check_data=bool) -> None; raises ValueError
      naming the key and the fix.
    build: (config, process_index=int, process_count=int) -> a `Task`
      (`algebranets.tasks.base`).
  """

  name: str
  data_defaults: Callable[[], dict[str, Any]]
  validate_config: Callable[..., None]
  build: Callable[..., Any]


_REGISTRY: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
  _REGISTRY[spec.name] = spec
  return spec


def names() -> list[str]:
  return sorted(_REGISTRY)


def get(name: str) -> TaskSpec:
  """The registered task `name`; ValueError listing the valid names."""
  if name in _REGISTRY:
    return _REGISTRY[name]
  close = difflib.get_close_matches(str(name), names(), n=1)
  hint = f' Did you mean "{close[0]}"?' if close else ""
  raise ValueError(f"Unknown task {name!r}; valid tasks: {names()}.{hint}")
