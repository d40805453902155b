"""Shared pieces of the study configs (configs/study_*.py; not a config).

Every study run is named by its config-file arg alone (no --config.X
overrides), so a run's command is `python -m experiments.train
--config=configs/study_X.py:<arg> --workdir=workdirs/study_X/<arg>`. The arg
is written in one canonical form (`canonical_arg`: fixed key order, defaults
left out), which is also what `config_arg(config)` of a study config returns
for a finished run's config.json; scripts/study_runs.py checks that the arg
rebuilds exactly that config before it stores the command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from algebranets.training import config_lib

# The nine algebras of the paper (ICLR version), R first.
ALGEBRAS = ("R", "C", "dual", "cross", "H", "M2R", "M3R", "M4R", "M2C")
SEEDS = (0, 1, 2)
# The seed sweeps add these to the learning-rate sweep's own seed-0 run at
# the selected rate (the same arg, so the same run and workdir).
REPEAT_SEEDS = SEEDS[1:]


def format_value(value: Any) -> str:
  """The arg text of a value: floats in %g form (0.002, 1e-05)."""
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, float):
    return f"{value:g}"
  return str(value)


def canonical_arg(
    values: Mapping[str, Any],
    defaults: Mapping[str, Any],
    always: Sequence[str],
) -> str:
  """'k=v,...' in the key order of `defaults`; keys equal to their default
  are left out unless listed in `always`; True booleans are bare keys."""
  unknown = sorted(set(values) - set(defaults))
  if unknown:
    raise config_lib.ConfigError(
        f"Unknown study args {unknown}; valid: {sorted(defaults)}."
    )
  parts = []
  for key, default in defaults.items():
    value = values.get(key, default)
    if key not in always and value == default:
      continue
    if isinstance(default, bool):
      if value:
        parts.append(key)
      continue
    parts.append(f"{key}={format_value(value)}")
  return ",".join(parts)


def lr_grid(grid: Sequence[float], best: float | None) -> tuple[float, ...]:
  """The learning rates swept for one algebra: `grid`, extended by factors
  of 2 past whichever edge `best` (the best rate measured so far, None
  before any) sits on, so the selected rate ends up inside its grid. Each
  extension is one more sweep + `--select` round."""
  out = sorted(grid)
  if best is not None:
    while best >= out[-1]:
      out.append(out[-1] * 2)
    while best <= out[0]:
      out.insert(0, out[0] / 2)
  return tuple(out)


def add_selected(
    add: Callable[..., None],
    table: Mapping[str, float],
    algebras: Sequence[str],
    point: Callable[[str, float], list[str]],
    *,
    what: str,
    fix: str,
    log: Callable[[str], None],
) -> None:
  """Adds the points `point(algebra, lr)` of every algebra with a selected
  learning rate; algebras without one are named on `log` (their learning
  rate sweep is not finished), and none at all is an error."""
  missing = [a for a in algebras if a not in table]
  if len(missing) == len(algebras):
    raise config_lib.ConfigError(
        f"The {what} sweep needs selected learning rates, and none is "
        f"stored yet; {fix}"
    )
  if missing:
    log(
        f"{what} sweep: no selected learning rate yet for {missing} "
        f"(left out); {fix}"
    )
  for algebra in algebras:
    if algebra in table:
      for arg in point(algebra, table[algebra]):
        add(config_arg=arg)
