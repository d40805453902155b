"""Reading a config section that may be a ConfigDict or a plain mapping."""

from __future__ import annotations

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
