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

and `entry="package.module"`: the module that runs the point instead of
`experiments.train` (`python -m <entry> --config=... --workdir=...
--config.k=v`), for runs the trainer does not do, e.g. the teacher-student
study's closed-form learners (`algebranets.studies.teacher_student.fit`).
An entry module offers `validate(config, check_data=bool)` (raising
`config_lib.ConfigError`) and defines its absl flags only when run as a
program, so the sweep imports it to check the point:

    add(config_arg="learner=mean",
        entry="algebranets.studies.teacher_student.fit")

Every point is checked against the config (unknown keys get "Did you mean",
values are validated) before anything runs, and repeated over `--num_seeds`
seeds (`seed` = --first_seed + i). Job workdirs default to
workdirs/sweeps/<config file name>/<point name>, outside any single run's
workdir.

Running locally skips jobs whose workdir already holds final_metrics.json,
so an interrupted sweep resumes; a workdir whose finished run came from
another command (sweep_job.json records it, e.g. a `:runlocal` sweep in the
same root) is reported as failed instead of skipped. Each job's output goes to the terminal and
to <workdir>/sweep.log; a failed job does not stop the sweep. Every job
line starts with `[k/N]` and, once a job has finished, an ETA (the mean time
of the jobs finished so far x the jobs left); the last line is always

  sweep: 6 done, 1 failed, 1 skipped in 4m12s

with each failed job listed above it (its last output line and log path).
`--dry_run` prints the commands, the job count and, when some jobs already
finished, a time estimate from their recorded wall times.
`--skip_recorded=docs/results/runs.csv` also leaves out the jobs whose
workdir a command stored in that CSV trained into: a study sweep resumes on
a machine where the earlier workdirs are gone (they are never committed).
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from absl import app, flags

from algebranets.training import config_lib, entry_point, metric_writer

_CONFIG = flags.DEFINE_string(
    "config", None, "Config file with a sweep(), e.g. configs/X.py:arg."
)
_ROOT = flags.DEFINE_string(
    "workdir_root",
    None,
    "Parent of the job workdirs (default workdirs/sweeps/<config>).",
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
_SKIP_RECORDED = flags.DEFINE_string(
    "skip_recorded",
    None,
    "A results CSV with a 'command' column (e.g. docs/results/runs.csv): "
    "jobs whose workdir a stored command trained into are skipped, for a "
    "sweep resumed where the workdirs are gone.",
)
flags.mark_flags_as_required(["config"])

# The module that runs a point without `entry`.
DEFAULT_ENTRY = "experiments.train"


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


def _validator(entry: str):
  """config -> None (ConfigError) for the points run by module `entry`."""
  if entry == DEFAULT_ENTRY:
    return lambda c: config_lib.validate(c, num_devices=1, check_data=False)
  if not isinstance(entry, str):
    raise ValueError(
        f"sweep(): entry must be a module name such as "
        f"'algebranets.studies.teacher_student.fit', got {entry!r}."
    )
  try:
    module = importlib.import_module(entry)
  except ImportError as e:
    raise ValueError(
        f"sweep(): entry={entry!r} cannot be imported ({e}); give a module "
        "run as `python -m <entry>`."
    ) from None
  if not callable(getattr(module, "validate", None)):
    raise ValueError(
        f"sweep(): entry module {entry!r} has no validate(config, "
        "check_data=...); define one (see scripts/sweep.py)."
    )
  return lambda c: module.validate(c, check_data=False)


def default_root(config_path: str) -> str:
  """'workdirs/sweeps/<config file stem>': a sibling of single runs'
  workdirs (workdirs/<name>), so sweep jobs never nest inside one."""
  return f"workdirs/sweeps/{pathlib.Path(config_path).stem}"


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
    workdir_root: parent of the workdirs; default 'workdirs/sweeps/<X>'
      (never inside the workdir of a single run such as workdirs/<X>).
    num_seeds: repeats of every point (seed = first_seed + i).
    first_seed: seed of the first repeat.

  Returns:
    [{'name', 'workdir', 'overrides', 'config_arg', 'entry', 'command' (argv
    list)}],
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
  root = pathlib.Path(workdir_root or default_root(path))
  jobs = []
  for point in points:
    point = dict(point)
    point_arg = point.pop("config_arg", "")
    if not isinstance(point_arg, str):
      raise ValueError(
          f"sweep(): config_arg must be a string such as 'learner=mean', got "
          f"{point_arg!r}."
      )
    entry = point.pop("entry", DEFAULT_ENTRY)
    validate = _validator(entry)
    job_arg = ",".join(a for a in (arg, point_arg) if a)
    job_config_arg = f"{path}:{job_arg}" if job_arg else path
    for i in range(num_seeds):
      overrides = dict(point)
      if num_seeds > 1 or "seed" in point:
        overrides.setdefault("seed", first_seed + i)
      config = module.get_config(job_arg or None)
      _apply(config, overrides)
      validate(config)
      name = _name(overrides, point_arg)
      workdir = str(root / name)
      command = [
          "python",
          "-m",
          entry,
          f"--config={job_config_arg}",
          f"--workdir={workdir}",
      ] + [f"--config.{k}={_format_value(v)}" for k, v in overrides.items()]
      jobs.append(
          dict(
              name=name,
              workdir=workdir,
              overrides=overrides,
              config_arg=job_config_arg,
              entry=entry,
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


FINAL_METRICS = "final_metrics.json"
LOG_FILE = "sweep.log"
# The command a sweep last ran in a workdir (a sweep of `:runlocal` and one
# of the full config name their jobs alike).
JOB_FILE = "sweep_job.json"


def other_command(job: dict[str, Any]) -> list[str] | None:
  """The command recorded in the job's workdir if it is not the job's."""
  try:
    recorded = json.loads(
        (pathlib.Path(job["workdir"]) / JOB_FILE).read_text()
    )["command"]
  except (OSError, ValueError, KeyError, TypeError):
    return None  # no record (not run by a sweep yet): nothing to compare
  return None if recorded == job["command"] else recorded


def is_done(job: dict[str, Any]) -> bool:
  """The job's workdir holds a final_metrics.json (a finished run) of this
  job's command."""
  finished = (pathlib.Path(job["workdir"]) / FINAL_METRICS).is_file()
  return finished and other_command(job) is None


def _conflict(job: dict[str, Any]) -> bool:
  finished = (pathlib.Path(job["workdir"]) / FINAL_METRICS).is_file()
  return finished and other_command(job) is not None


def recorded_wall_seconds(job: dict[str, Any]) -> float | None:
  """Wall time a finished job recorded (final_metrics.json's timing.wall_s),
  or None (unfinished, or written before timings were recorded)."""
  try:
    final = json.loads(
        (pathlib.Path(job["workdir"]) / FINAL_METRICS).read_text()
    )
    return float(final["timing"]["wall_s"])
  except (OSError, ValueError, KeyError, TypeError):
    return None


def summary_line(
    done: int, failed: int, skipped: int, seconds: float, not_run: int = 0
) -> str:
  """'sweep: 6 done, 1 failed, 1 skipped in 4m12s' (+ '; interrupted, 2 not
  run' after Ctrl-C)."""
  text = (
      f"sweep: {done} done, {failed} failed, {skipped} skipped in "
      f"{metric_writer.format_duration(seconds)}"
  )
  if not_run:
    text += f"; interrupted, {not_run} not run"
  return text


def dry_run_lines(jobs: list[dict[str, Any]]) -> list[str]:
  """The commands, then the job count (and an estimate from finished jobs)."""
  lines = [shlex.join(job["command"]) for job in jobs]
  done = [job for job in jobs if is_done(job)]
  conflicts = sum(map(_conflict, jobs))
  todo = len(jobs) - len(done) - conflicts
  root = pathlib.Path(jobs[0]["workdir"]).parent
  text = f"sweep: {len(jobs)} jobs under {root}"
  if done:
    text += f" ({len(done)} already done and skipped, {todo} to run)"
  if conflicts:
    text += (
        f"; {conflicts} workdirs hold finished runs of other commands (use "
        "another --workdir_root)"
    )
  walls = [w for w in map(recorded_wall_seconds, done) if w is not None]
  if walls and todo:
    mean = sum(walls) / len(walls)
    text += (
        f"; about {metric_writer.format_duration(mean * todo)} at the "
        f"{metric_writer.format_duration(mean)} per job the finished ones "
        "took (training wall time)"
    )
  elif todo:
    text += "; no time estimate until a job has finished"
  return [*lines, text]


def _last_line(text: str) -> str:
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  return lines[-1] if lines else "(no output)"


def run_subprocess(job: dict[str, Any], log_path: pathlib.Path, out) -> int:
  """Runs a job with this interpreter, its output to `out` and the log.

  Returns:
    The exit status.
  """
  log_path.parent.mkdir(parents=True, exist_ok=True)
  argv = [sys.executable, *job["command"][1:]]
  with open(log_path, "a", encoding="utf-8") as log:
    log.write(f"$ {shlex.join(job['command'])}\n")
    log.flush()
    proc = subprocess.Popen(
        argv,
        # Line by line through the pipe, as on a terminal.
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    try:
      for line in proc.stdout:
        out.write(line)
        out.flush()
        log.write(line)
      return proc.wait()
    except BaseException:  # Ctrl-C: stop the job with the sweep
      proc.kill()
      proc.wait()
      raise


def run_jobs(
    jobs: list[dict[str, Any]],
    *,
    out=None,
    run: Callable[..., int] = run_subprocess,
    clock: Callable[[], float] = time.monotonic,
) -> int:
  """Runs the jobs in turn (skipping finished ones) and prints a summary.

  Args:
    jobs: from `expand`.
    out: text stream for progress and the jobs' output (default stdout).
    run: `run(job, log_path, out) -> exit status` (tests substitute it).
    clock: seconds (tests substitute it).

  Returns:
    The number of failed jobs (the summary line is printed last, even on
    Ctrl-C, which re-raises after it).
  """
  out = out or sys.stdout
  start = clock()
  n = len(jobs)
  todo = sum(not is_done(job) and not _conflict(job) for job in jobs)
  durations: list[float] = []
  failures: list[tuple[str, str, pathlib.Path]] = []
  done = skipped = 0
  interrupted = False

  def say(text: str) -> None:
    out.write(text + "\n")
    out.flush()

  try:
    for i, job in enumerate(jobs):
      prefix = f"[{i + 1}/{n}]"
      if is_done(job):
        skipped += 1
        say(
            f"{prefix} {job['name']}: already done (final_metrics.json), skipped"
        )
        continue
      if _conflict(job):
        say(f"{prefix} {job['name']}: its workdir holds another run, not run")
        failures.append(
            (
                job["name"],
                f"{job['workdir']} holds a finished run of "
                f"`{shlex.join(other_command(job))}`; use another "
                "--workdir_root",
                pathlib.Path(job["workdir"]) / JOB_FILE,
            )
        )
        continue
      left = todo - len(durations)  # this job included
      if durations:
        mean = sum(durations) / len(durations)
        prefix += (
            f" ETA {metric_writer.format_duration(mean * left)} "
            f"({metric_writer.format_duration(mean)}/job)"
        )
      say(f"{prefix} {shlex.join(job['command'])}")
      log_path = pathlib.Path(job["workdir"]) / LOG_FILE
      log_path.parent.mkdir(parents=True, exist_ok=True)
      (log_path.parent / JOB_FILE).write_text(
          json.dumps({"command": job["command"]}) + "\n"
      )
      t0 = clock()
      status = run(job, log_path, out)
      durations.append(clock() - t0)
      if status == 0:
        done += 1
      else:
        try:
          last = _last_line(log_path.read_text(encoding="utf-8"))
        except OSError:
          last = "(no log)"
        failures.append((job["name"], f"exit {status}: {last}", log_path))
  except KeyboardInterrupt:
    interrupted = True
    raise
  finally:
    for name, last, path in failures:
      what = "record" if path.name == JOB_FILE else "log"
      say(f"FAILED {name}: {last} ({what}: {path})")
    not_run = n - done - len(failures) - skipped if interrupted else 0
    say(summary_line(done, len(failures), skipped, clock() - start, not_run))
  return len(failures)


def recorded_workdirs(path: str | os.PathLike) -> set[str]:
  """The `--workdir=` of every command in a results CSV's 'command' column.

  Raises:
    ValueError: no such file, or no 'command' column.
  """
  try:
    with open(path, newline="") as f:
      reader = csv.DictReader(f)
      if "command" not in (reader.fieldnames or ()):
        raise ValueError(
            f"--skip_recorded={path}: no 'command' column (found "
            f"{reader.fieldnames}); pass a results CSV such as "
            "docs/results/runs.csv."
        )
      commands = [row["command"] for row in reader]
  except OSError as e:
    raise ValueError(
        f"--skip_recorded={path}: cannot read it ({e.strerror})."
    ) from None
  out = set()
  for command in commands:
    for arg in shlex.split(command or ""):
      if arg.startswith("--workdir="):
        out.add(os.path.normpath(arg.partition("=")[2]))
  return out


def skip_recorded(
    jobs: list[dict[str, Any]], path: str | os.PathLike
) -> tuple[list[dict[str, Any]], int]:
  """(the jobs whose workdir no command of `path` trained into, how many
  were left out)."""
  done = recorded_workdirs(path)
  keep = [j for j in jobs if os.path.normpath(j["workdir"]) not in done]
  return keep, len(jobs) - len(keep)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  jobs = expand(
      _CONFIG.value,
      workdir_root=_ROOT.value,
      num_seeds=_NUM_SEEDS.value,
      first_seed=_FIRST_SEED.value,
  )
  if _SKIP_RECORDED.value:
    jobs, left_out = skip_recorded(jobs, _SKIP_RECORDED.value)
    print(
        f"sweep: {left_out} jobs already recorded in "
        f"{_SKIP_RECORDED.value}, left out",
        file=sys.stderr if _FORMAT.value == "json" else sys.stdout,
        flush=True,
    )
  if _FORMAT.value == "json":
    print(json.dumps(jobs, indent=2))
    return
  if _DRY_RUN.value:
    print("\n".join(dry_run_lines(jobs)))
    return
  try:
    failed = run_jobs(jobs)
  except KeyboardInterrupt:
    sys.exit(130)  # the summary is already printed; no traceback after it
  if failed:
    sys.exit(1)


if __name__ == "__main__":
  # expand() reports every bad sweep as ValueError (ConfigError included).
  entry_point.run(main, user_errors=(ValueError,))
