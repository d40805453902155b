"""Reading a config section that may be a ConfigDict or a plain mapping."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


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


# -- value checks shared by the model constructors (the config schema) --------
# Each raises ValueError "<who>: <key> must be ..., got <value>.<note>" so a
# bad config value is reported the same way by every model.


def is_int(value: Any) -> bool:
  """An int (NumPy ints included) that is not a bool."""
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_int(value: Any, key: str, who: str, low: int, note: str = "") -> int:
  """`value` as an int >= `low`."""
  if not is_int(value) or value < low:
    raise ValueError(
        f"{who}: {key} must be an integer >= {low}, got {value!r}.{note}"
    )
  return int(value)


def check_bool(value: Any, key: str, who: str) -> bool:
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{who}: {key} must be True or False, got {value!r}.")
  return bool(value)


def check_rate(value: Any, key: str, who: str) -> float:
  """A probability in [0, 1) (dropout rates)."""
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ValueError(f"{who}: {key} must be a number in [0, 1), got {value!r}.")
  if not 0.0 <= value < 1.0:
    raise ValueError(f"{who}: {key} must be in [0, 1), got {value!r}.")
  return float(value)


def check_positive_number(value: Any, key: str, who: str) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ValueError(f"{who}: {key} must be a positive number, got {value!r}.")
  if not value > 0:
    raise ValueError(f"{who}: {key} must be a positive number, got {value!r}.")
  return float(value)


def check_sequence(value: Any, key: str, who: str, example: str) -> tuple:
  """A list/tuple/array (not a string) as a tuple."""
  if isinstance(value, (str, bytes)) or not isinstance(
      value, Sequence | np.ndarray
  ):
    raise ValueError(
        f"{who}: {key} must be a sequence, got {value!r}; e.g. {example}."
    )
  return tuple(value)


def check_int_tuple(
    value: Any, key: str, who: str, example: str, low: int = 1
) -> tuple[int, ...]:
  """A sequence of ints >= `low` as a tuple."""
  out = check_sequence(value, key, who, example)
  if not all(is_int(v) and v >= low for v in out):
    raise ValueError(
        f"{who}: {key} must hold integers >= {low}, got {value!r}; e.g. "
        f"{example}."
    )
  return tuple(int(v) for v in out)


def algebra_channels(
    real_width: Any,
    width_multiplier: Any,
    dim: int,
    algebra: str,
    who: str,
    key: str,
) -> int:
  """real_width * width_multiplier / dim as an int (the algebra channels).

  Raises:
    ValueError: a bad width_multiplier, a product that is not an integer
      number of reals, or one not divisible by the algebra dimension; each
      message names an example of a valid value.
  """
  check_int(real_width, key, who, 1)
  check_positive_number(width_multiplier, "width_multiplier", who)
  real = real_width * width_multiplier
  rounded = round(real)
  if abs(real - rounded) > 1e-6 * max(1.0, abs(real)):
    raise ValueError(
        f"{who}: {key}*width_multiplier = {real_width}*{width_multiplier} = "
        f"{real:g} is not an integer number of real features; choose a "
        f"width_multiplier that makes it one (e.g. {math.floor(real)} / "
        f"{real_width} or {math.ceil(real)} / {real_width})."
    )
  real = int(rounded)
  if real < 1 or real % dim:
    low = max(dim, real - real % dim)
    high = (real // dim + 1) * dim
    examples = f"{low} or {high}" if low != high else f"{high}"
    raise ValueError(
        f"{who}: {key}*width_multiplier = {real} is not divisible by the "
        f"dimension {dim} of algebra {algebra}; choose a multiple of {dim}, "
        f"e.g. {examples}."
    )
  return real // dim
