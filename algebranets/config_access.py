"""Reading a config section that may be a ConfigDict or a plain mapping."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any


def as_dict(section: Any, what: str, hint: str = "") -> dict[str, Any]:
  """A plain dict of an ml_collections (Frozen)ConfigDict or a mapping.

  Args:
    section: the config section.
    what: its name for the error message, e.g. 'The optimizer config'.
    hint: appended to the error message (how to build a valid one).

  Raises:
    TypeError: `section` is neither.
  """
  if hasattr(section, "to_dict"):  # resolves FieldReferences too
    return dict(section.to_dict())
  if isinstance(section, Mapping):
    return dict(section)
  raise TypeError(
      f"{what} must be an ml_collections ConfigDict or a mapping, got "
      f"{type(section).__name__}.{' ' + hint if hint else ''}"
  )


def with_defaults(
    section: Any, defaults: Mapping[str, Any], who: str
) -> dict[str, Any]:
  """`defaults` updated with `section`; unknown keys (typos) raise.

  Raises:
    ValueError: keys not in `defaults`, with "did you mean" hints.
  """
  cfg = as_dict(section, f"{who}: the config section")
  unknown = sorted(set(cfg) - set(defaults))
  if unknown:
    hints = []
    for key in unknown:
      close = difflib.get_close_matches(key, list(defaults), n=1)
      hints.append(
          f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
      )
    raise ValueError(
        f"{who}: unknown config key(s) {', '.join(hints)}; valid keys: "
        f"{', '.join(defaults)}."
    )
  return {**defaults, **cfg}


def check_choice(value: Any, key: str, valid, who: str, note: str = "") -> None:
  """ValueError naming `key`, the valid values and the closest one."""
  if value not in valid:
    close = difflib.get_close_matches(str(value), [str(v) for v in valid], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"{who}: unknown {key} {value!r}.{hint} Valid: "
        f"{', '.join(map(str, valid))}.{note}"
    )
