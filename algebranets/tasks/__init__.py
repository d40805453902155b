"""Registry of tasks: what a run learns from which data, and how it is scored.

A task turns a config into a data source, a loss and evaluation metrics; the
trainer (`algebranets.training.trainer`) is the same for every task. A task
object subclasses `Task` (tasks/base.py: the methods to implement and the
default hooks); register its builder with `register(TaskSpec(...))`.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any

from algebranets.tasks.base import Task


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """How to build a task from a config.

  Attributes:
    name: registry name (the config's `task` field).
    data_defaults: () -> the `data` config section with its defaults.
    validate_config: (config, check_data=bool) -> None; raises ValueError
      naming the key and the fix.
    build: (config, process_index=int, process_count=int) -> a `Task`.
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


# Each registers itself on import.
from algebranets.tasks import (  # noqa: E402
    byte_lm,
    image_classification,
    stream_lm,
    teacher_student,
)

__all__ = [
    "Task",
    "TaskSpec",
    "byte_lm",
    "get",
    "image_classification",
    "names",
    "register",
    "stream_lm",
    "teacher_student",
]
