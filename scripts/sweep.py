r"""Expands a config file's `sweep()` into training jobs.

  python -m scripts.sweep --config configs/quickstart.py:runlocal \
      --workdir_root workdirs/sweep --num_seeds 3 --dry_run
  python -m scripts.sweep --config ... --format json > jobs.json  # launcher
  python -m scripts.sweep --config ...                 # run them here, in turn

A config file opts in by defining

  def sweep(add, arg=None):
    for algebra in ("R", "C", "H", "M2R"):
      add(**{"model.algebra": algebra})

A point may also carry `config_arg="k=v,..."`: config-file args appended to
the --config arg for that point only (for switches that change a config's
shape, e.g. a different model whose section has other keys):

    for learner in ("mean", "network"):
      add(config_arg=f"learner={learner}", **{"data.input_dim": 8})

Every point is checked against the config (unknown keys get "Did you mean",
values are validated) before anything runs, and repeated over `--num_seeds`
seeds (`seed` = --first_seed + i). Running locally skips jobs whose workdir
already holds final_metrics.json, so an interrupted sweep resumes.
"""

from __future__ import annotations

import json
import pathlib
import shlex
import subprocess
import sys
from typing import Any

from absl import app, flags

from algebranets.training import config_lib, entry_point

_CONFIG = flags.DEFINE_string(
    "config", None, "Config file with a sweep(), e.g. configs/X.py:arg."
)
_ROOT = flags.DEFINE_string(
    "workdir_root",
    None,
    "Parent of the job workdirs (default workdirs/<config>).",
)
_NUM_SEEDS = flags.DEFINE_integer(
    "num_seeds", 1, "Repeat every point with this many seeds."
)
_FIRST_SEED = flags.DEFINE_integer("first_seed", 0, "Seed of the first repeat.")
_FORMAT = flags.DEFINE_enum(
    "format",
    "commands",
    ["commands", "json"],
    "commands, or a JSON job list for a cluster launcher (never runs).",
)
_DRY_RUN = flags.DEFINE_bool(
    "dry_run", False, "Print the jobs instead of running them."
)
flags.mark_flags_as_required(["config"])


def _format_value(value: Any) -> str:
  if isinstance(value, bool | int | float | str):
    return str(value)
  if isinstance(value, list | tuple):
    return (
        "("
        + ",".join(_format_value(v) for v in value)
        + ("," if len(value) == 1 else "")
        + ")"
    )
  raise TypeError(
      f"Sweep values must be primitives or tuples, got {type(value).__name__}."
  )


def _apply(config, overrides: dict[str, Any]) -> None:
  for dotted, value in overrides.items():
    *parents, leaf = dotted.split(".")
    node = config
    where = []
    for p in [*parents, leaf]:
      container = node
      keys = list(container.keys())
      if p not in keys:
        raise config_lib.ConfigError(
            f"Sweep key {dotted!r}: {'.'.join([*where, p])!r} is not in the "
            f"config."
            + config_lib.suggest(p, keys)
            + f" Valid: {sorted(keys)}."
        )
      where.append(p)
      if p != leaf:
        node = container[p]
    container[leaf] = tuple(value) if isinstance(value, list) else value


def _name(overrides: dict[str, Any], point_arg: str = "") -> str:
  parts = [t.strip() for t in point_arg.split(",") if t.strip()]
  for k, v in overrides.items():
    text = _format_value(v).strip("()").replace(",", "-").replace("/", "_")
    parts.append(f"{k.split('.')[-1]}={text}")
  return ",".join(parts) or "default"


def expand(
    config_arg: str,
    *,
    workdir_root: str | None = None,
    num_seeds: int = 1,
    first_seed: int = 0,
) -> list[dict[str, Any]]:
  """The validated job list of a config file's sweep.

  Args:
    config_arg: 'configs/X.py' or 'configs/X.py:arg'.
    workdir_root: parent of the workdirs; default 'workdirs/<X>'.
    num_seeds: repeats of every point (seed = first_seed + i).
    first_seed: seed of the first repeat.

  Returns:
    [{'name', 'workdir', 'overrides', 'config_arg', 'command' (argv list)}],
    in sweep order with seeds innermost; 'config_arg' is the full
    'configs/X.py:arg' of the job (the point's own `config_arg` appended).

  Raises:
    ValueError: no sweep() in the file, an empty sweep, a bad key or value.
  """
  path, _, arg = config_arg.partition(":")
  module = config_lib.load_config_file(path)
  if not hasattr(module, "sweep"):
    raise ValueError(
        f"{path} defines no sweep(add, arg=None); add one (see "
        "configs/quickstart.py) to use scripts.sweep."
    )
  if num_seeds < 1:
    raise ValueError(f"--num_seeds must be >= 1, got {num_seeds}.")
  points: list[dict[str, Any]] = []

  def add(overrides: dict[str, Any] | None = None, **kw: Any) -> None:
    points.append({**(overrides or {}), **kw})

  module.sweep(add, arg or None)
  if not points:
    raise ValueError(f"{path}: sweep() added no points.")
  root = pathlib.Path(workdir_root or f"workdirs/{pathlib.Path(path).stem}")
  jobs = []
  for point in points:
    point = dict(point)
    point_arg = point.pop("config_arg", "")
    if not isinstance(point_arg, str):
      raise ValueError(
          f"sweep(): config_arg must be a string such as 'learner=mean', got "
          f"{point_arg!r}."
      )
    job_arg = ",".join(a for a in (arg, point_arg) if a)
    job_config_arg = f"{path}:{job_arg}" if job_arg else path
    for i in range(num_seeds):
      overrides = dict(point)
      if num_seeds > 1 or "seed" in point:
        overrides.setdefault("seed", first_seed + i)
      config = module.get_config(job_arg or None)
      _apply(config, overrides)
      config_lib.validate(config, num_devices=1, check_data=False)
      name = _name(overrides, point_arg)
      workdir = str(root / name)
      command = [
          "python",
          "-m",
          "experiments.train",
          f"--config={job_config_arg}",
          f"--workdir={workdir}",
      ] + [f"--config.{k}={_format_value(v)}" for k, v in overrides.items()]
      jobs.append(
          dict(
              name=name,
              workdir=workdir,
              overrides=overrides,
              config_arg=job_config_arg,
              command=command,
          )
      )
  names = [j["name"] for j in jobs]
  if len(set(names)) != len(names):
    raise ValueError(
        "sweep() produced duplicate points (same overrides twice): "
        f"{sorted({n for n in names if names.count(n) > 1})}."
    )
  return jobs


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  jobs = expand(
      _CONFIG.value,
      workdir_root=_ROOT.value,
      num_seeds=_NUM_SEEDS.value,
      first_seed=_FIRST_SEED.value,
  )
  if _FORMAT.value == "json":
    print(json.dumps(jobs, indent=2))
    return
  if _DRY_RUN.value:
    for job in jobs:
      print(shlex.join(job["command"]))
    return
  for i, job in enumerate(jobs):
    if (pathlib.Path(job["workdir"]) / "final_metrics.json").is_file():
      print(f"[{i + 1}/{len(jobs)}] {job['name']}: done, skipped", flush=True)
      continue
    print(f"[{i + 1}/{len(jobs)}] {shlex.join(job['command'])}", flush=True)
    # This interpreter, so the sweep runs in the same environment.
    done = subprocess.run([sys.executable, *job["command"][1:]])
    if done.returncode != 0:
      # The job printed its own one-line error just above.
      raise SweepJobError(
          f"job {i + 1}/{len(jobs)} ({job['name']}) failed with exit code "
          f"{done.returncode} (its error is above); fix it and rerun the "
          "sweep: finished jobs are skipped."
      )


class SweepJobError(RuntimeError):
  """A job of a local sweep failed."""


if __name__ == "__main__":
  # expand() reports every bad sweep as ValueError (ConfigError included).
  entry_point.run(main, user_errors=(ValueError, SweepJobError))
