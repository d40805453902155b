"""Tests for scripts/sweep.py."""

import io
import json
import pathlib
import subprocess
import textwrap

import pytest

from algebranets.training import config_lib
from scripts import sweep
from tests import subprocess_env


def test_byte_transformer_sweep_expands_with_seeds():
  jobs = sweep.expand(
      "configs/byte_transformer.py:runlocal", workdir_root="runs", num_seeds=2
  )
  assert len(jobs) == 4 * 2 * 2
  first = jobs[0]
  assert first["overrides"] == {
      "model.algebra": "R",
      "model.width_multiplier": 0.5,
      "seed": 0,
  }
  assert first["workdir"] == "runs/algebra=R,width_multiplier=0.5,seed=0"
  assert jobs[1]["overrides"]["seed"] == 1
  cmd = first["command"]
  assert cmd[:3] == ["python", "-m", "experiments.train"]
  assert "--config=configs/byte_transformer.py:runlocal" in cmd
  assert "--config.model.algebra=R" in cmd and "--config.seed=0" in cmd
  assert len({j["workdir"] for j in jobs}) == len(jobs)


def test_single_seed_leaves_seed_alone():
  jobs = sweep.expand("configs/byte_transformer.py")
  assert all("seed" not in j["overrides"] for j in jobs)
  # Outside any single run's workdir (workdirs/byte_transformer is one).
  assert jobs[0]["workdir"].startswith("workdirs/sweeps/byte_transformer/")


def _config_file(tmp_path, body):
  path = tmp_path / "cfg.py"
  path.write_text(textwrap.dedent("""
          from configs import byte_transformer

          def get_config(arg=None):
            return byte_transformer.get_config(arg)
          """) + textwrap.dedent(body))
  return str(path)


@pytest.mark.parametrize(
    "body, error, message",
    [
        (
            "def sweep(add, arg=None):\n  add(**{'model.algebr': 'H'})\n",
            config_lib.ConfigError,
            'Did you mean "algebra"',
        ),
        (
            "def sweep(add, arg=None):\n  add(**{'model.d_model': 30})\n",
            config_lib.ConfigError,
            "not divisible by the dimension",
        ),
        ("def sweep(add, arg=None):\n  pass\n", ValueError, "added no points"),
        ("", ValueError, "defines no sweep"),
        (
            "def sweep(add, arg=None):\n  add(seed=1)\n  add(seed=1)\n",
            ValueError,
            "duplicate points",
        ),
    ],
)
def test_bad_sweeps_fail_before_running(tmp_path, body, error, message):
  with pytest.raises(error, match=message):
    sweep.expand(_config_file(tmp_path, body))


def test_cli_dry_run_and_json():
  def run(*args):
    return subprocess.run(
        [subprocess_env.python(), "-m", "scripts.sweep", *args],
        cwd=subprocess_env.ROOT,
        env=subprocess_env.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )

  dry = run("--config=configs/byte_transformer.py:runlocal", "--dry_run")
  assert dry.returncode == 0, dry.stderr
  *commands, count = dry.stdout.strip().splitlines()
  assert len(commands) == 8
  assert all("experiments.train" in x for x in commands)
  assert count == (
      "sweep: 8 jobs under workdirs/sweeps/byte_transformer; no time "
      "estimate until a job has finished"
  )
  js = run(
      "--config=configs/byte_transformer.py", "--format=json", "--num_seeds=3"
  )
  assert js.returncode == 0, js.stderr
  assert len(json.loads(js.stdout)) == 24


def test_transformer_xl_sweep_adds_sparsity_targets():
  plain = sweep.expand("configs/enwik8_transformer_xl.py:runlocal")
  pruned = sweep.expand(
      "configs/enwik8_transformer_xl.py:runlocal,sweep_sparsity"
  )
  assert len(plain) == 4 and len(pruned) == 4 * 5
  targets = sorted({j["overrides"].get("sparsity.target", 0.0) for j in pruned})
  assert targets == [0.0, 0.5, 0.75, 0.9, 0.95]
  widths = {
      j["overrides"]["model.algebra"]: j["overrides"]["model.width_multiplier"]
      for j in plain
  }
  assert widths["R"] == 1.0 and widths["H"] == 2.0 and widths["M2R"] == 2.0


# -- per-point config args (`config_arg`) --------------------------------------

_TS_CONFIG = """
from configs import teacher_student

FIT = "algebranets.studies.teacher_student.fit"

def get_config(arg=None):
  return teacher_student.get_config(arg)

"""


_FIT = "algebranets.studies.teacher_student.fit"


def _ts_config_file(tmp_path, body):
  path = tmp_path / "ts_cfg.py"
  path.write_text(_TS_CONFIG + textwrap.dedent(body))
  return str(path)


def test_point_config_arg_is_appended_to_the_base_arg(tmp_path):
  path = _ts_config_file(
      tmp_path,
      """
      def sweep(add, arg=None):
        add(
            config_arg="learner=mean,d=8",
            entry=FIT,
            **{"data.teacher_units": 3},
        )
        add(config_arg="learner=network,d=8", **{"data.teacher_units": 3})
        add(**{"data.teacher_units": 3})
      """,
  )
  jobs = sweep.expand(f"{path}:hermite3_only,r=5", workdir_root="runs")
  mean, net, plain = jobs
  assert mean["config_arg"] == f"{path}:hermite3_only,r=5,learner=mean,d=8"
  assert f"--config={mean['config_arg']}" in mean["command"]
  # The closed-form point runs through its entry module, the others
  # through experiments.train.
  assert mean["command"][:3] == ["python", "-m", _FIT]
  assert mean["entry"] == _FIT
  assert net["command"][:3] == ["python", "-m", "experiments.train"]
  assert "--config.data.teacher_units=3" in mean["command"]
  # The point's args come first in the name, then its overrides.
  assert mean["name"] == "learner=mean,d=8,teacher_units=3"
  assert mean["workdir"] == "runs/learner=mean,d=8,teacher_units=3"
  assert net["name"] == "learner=network,d=8,teacher_units=3"
  # A point without config_arg keeps the base arg alone.
  assert plain["config_arg"] == f"{path}:hermite3_only,r=5"
  assert plain["name"] == "teacher_units=3"
  # Without a base arg the point's arg stands alone.
  bare = sweep.expand(path)
  assert bare[0]["config_arg"] == f"{path}:learner=mean,d=8"
  assert bare[2]["config_arg"] == path
  assert "--config=" + path in bare[2]["command"]


def test_points_validate_against_their_own_model_section(tmp_path):
  # model.rank exists only in the moment learner's section and model.hidden
  # only in the network's: each point is checked against its own config.
  good = _ts_config_file(
      tmp_path,
      """
      def sweep(add, arg=None):
        add(
            config_arg="learner=moment_tensor", entry=FIT,
            **{"model.rank": 2},
        )
        add(config_arg="learner=network", **{"model.hidden": 8})
        add(
            config_arg="learner=mean", entry=FIT,
            **{"model.fit_examples": 50},
        )
      """,
  )
  jobs = sweep.expand(good)
  assert [j["overrides"] for j in jobs] == [
      {"model.rank": 2},
      {"model.hidden": 8},
      {"model.fit_examples": 50},
  ]
  bad = _ts_config_file(
      tmp_path,
      """
      def sweep(add, arg=None):
        add(config_arg="learner=mean", entry=FIT, **{"model.hidden": 8})
      """,
  )
  with pytest.raises(
      config_lib.ConfigError, match=r"'model\.hidden' is not in"
  ):
    sweep.expand(bad)
  unknown = _ts_config_file(
      tmp_path,
      """
      def sweep(add, arg=None):
        add(config_arg="lerner=mean")
      """,
  )
  with pytest.raises(config_lib.ConfigError, match='Did you mean "learner"'):
    sweep.expand(unknown)


def test_same_overrides_with_other_config_args_are_distinct(tmp_path):
  path = _ts_config_file(
      tmp_path,
      """
      def sweep(add, arg=None):
        for learner in ("mean", "least_squares"):
          add(config_arg=f"learner={learner}", entry=FIT, seed=1)
      """,
  )
  jobs = sweep.expand(path)
  assert [j["name"] for j in jobs] == [
      "learner=mean,seed=1",
      "learner=least_squares,seed=1",
  ]


@pytest.mark.parametrize("value", ["3", "['learner=mean']"])
def test_config_arg_must_be_a_string(tmp_path, value):
  path = _ts_config_file(
      tmp_path,
      f"""
      def sweep(add, arg=None):
        add(config_arg={value})
      """,
  )
  with pytest.raises(ValueError, match="config_arg must be a string"):
    sweep.expand(path)


def test_entry_module_validates_its_points(tmp_path):
  # A learner config is no model of the trainer's: without its entry module
  # the point is checked (and rejected) as an experiments.train run.
  no_entry = _ts_config_file(
      tmp_path,
      """
      def sweep(add, arg=None):
        add(config_arg="learner=mean")
      """,
  )
  with pytest.raises(config_lib.ConfigError, match="Unknown model 'mean'"):
    sweep.expand(no_entry)
  # The entry module's own validate() runs on its points.
  bad = _ts_config_file(
      tmp_path,
      """
      def sweep(add, arg=None):
        add(config_arg="learner=mean", entry=FIT, **{"model.algebra": "C"})
      """,
  )
  with pytest.raises(config_lib.ConfigError, match="real estimator"):
    sweep.expand(bad)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("no_such_module_xyz", "cannot be imported"),
        ("algebranets.layout", "has no validate"),
        ("3", "must be a module name"),
    ],
)
def test_bad_entry(tmp_path, entry, message):
  value = entry if entry == "3" else repr(entry)
  path = _ts_config_file(
      tmp_path,
      f"""
      def sweep(add, arg=None):
        add(config_arg="learner=mean", entry={value})
      """,
  )
  with pytest.raises(ValueError, match=message):
    sweep.expand(path)


# -- running jobs here -----------------------------------------------------------


class _Clock:

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def _jobs(tmp_path, names):
  return [
      {
          "name": name,
          "workdir": str(tmp_path / name),
          "command": ["python", "-m", "experiments.train", f"--x={name}"],
      }
      for name in names
  ]


def _finish(job, wall=None):
  workdir = pathlib.Path(job["workdir"])
  workdir.mkdir(parents=True, exist_ok=True)
  final = (
      {"step": 1} if wall is None else {"step": 1, "timing": {"wall_s": wall}}
  )
  (workdir / "final_metrics.json").write_text(json.dumps(final))


def test_run_jobs_prefix_eta_failures_and_summary_last(tmp_path):
  jobs = _jobs(tmp_path, ["a", "b", "c", "d"])
  _finish(jobs[1])  # already done: skipped
  clock = _Clock()
  out = io.StringIO()

  def run(job, log_path, stream):
    clock.now += 60.0  # every job takes a minute
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if job["name"] == "c":
      log_path.write_text("step 1/2\nConfigError: data.path is not a file.\n")
      return 1
    stream.write(f"trained {job['name']}\n")
    _finish(job)
    return 0

  failed = sweep.run_jobs(jobs, out=out, run=run, clock=clock)
  assert failed == 1
  lines = out.getvalue().splitlines()
  assert lines[0] == (
      "[1/4] python -m experiments.train --x=a"
  )  # no ETA before a job has finished
  assert lines[2] == "[2/4] b: already done (final_metrics.json), skipped"
  # 2 of the 3 jobs to run are left, at the minute the first one took.
  assert (
      lines[3]
      == "[3/4] ETA 2m00s (1m00s/job) python -m experiments.train --x=c"
  )
  assert (
      lines[4]
      == "[4/4] ETA 1m00s (1m00s/job) python -m experiments.train --x=d"
  )
  assert lines[-2] == (
      f"FAILED c: exit 1: ConfigError: data.path is not a file. (log: "
      f"{tmp_path / 'c' / 'sweep.log'})"
  )
  assert lines[-1] == "sweep: 2 done, 1 failed, 1 skipped in 3m00s"


def test_run_jobs_prints_the_summary_after_ctrl_c(tmp_path):
  jobs = _jobs(tmp_path, ["a", "b", "c"])
  out = io.StringIO()

  def run(job, log_path, stream):
    if job["name"] == "b":
      raise KeyboardInterrupt
    _finish(job)
    return 0

  with pytest.raises(KeyboardInterrupt):
    sweep.run_jobs(jobs, out=out, run=run, clock=_Clock())
  assert out.getvalue().splitlines()[-1] == (
      "sweep: 1 done, 0 failed, 0 skipped in 0s; interrupted, 2 not run"
  )


def test_dry_run_estimates_from_finished_jobs(tmp_path):
  jobs = _jobs(tmp_path, ["a", "b", "c", "d"])
  _finish(jobs[0], wall=30.0)
  _finish(jobs[1], wall=90.0)
  lines = sweep.dry_run_lines(jobs)
  assert len(lines) == 5 and lines[0].endswith("--x=a")
  assert lines[-1] == (
      f"sweep: 4 jobs under {tmp_path} (2 already done and skipped, 2 to "
      "run); about 2m00s at the 1m00s per job the finished ones took "
      "(training wall time)"
  )


def test_real_subprocesses_log_and_report(tmp_path):
  jobs = [
      {
          "name": "ok",
          "workdir": str(tmp_path / "ok"),
          "command": ["python", "-c", "print('hello from the job')"],
      },
      {
          "name": "bad",
          "workdir": str(tmp_path / "bad"),
          "command": [
              "python",
              "-c",
              "import sys; print('working'); sys.exit('ValueError: broken')",
          ],
      },
  ]
  out = io.StringIO()
  # The "ok" job writes no final_metrics.json, but it exited 0: done.
  assert sweep.run_jobs(jobs, out=out) == 1
  lines = out.getvalue().splitlines()
  assert "hello from the job" in lines
  log = tmp_path / "bad" / "sweep.log"
  assert log.read_text().splitlines()[-2:] == ["working", "ValueError: broken"]
  assert lines[-2] == f"FAILED bad: exit 1: ValueError: broken (log: {log})"
  assert lines[-1].startswith("sweep: 1 done, 1 failed, 0 skipped in ")


def test_finished_run_of_another_command_is_not_skipped(tmp_path):
  (job,) = _jobs(tmp_path, ["a"])
  out = io.StringIO()

  def run(job, log_path, stream):
    _finish(job)
    return 0

  assert sweep.run_jobs([job], out=out, run=run, clock=_Clock()) == 0
  record = tmp_path / "a" / sweep.JOB_FILE
  assert json.loads(record.read_text())["command"] == job["command"]
  # The same job again: skipped.
  assert sweep.run_jobs([job], out=io.StringIO(), run=run) == 0
  # Same name and workdir, other command (e.g. runlocal vs full): refused.
  other = dict(job, command=[*job["command"], "--config.seed=1"])
  out = io.StringIO()
  assert sweep.run_jobs([other], out=out, run=run, clock=_Clock()) == 1
  lines = out.getvalue().splitlines()
  assert lines[0] == "[1/1] a: its workdir holds another run, not run"
  assert lines[1] == (
      f"FAILED a: {tmp_path / 'a'} holds a finished run of `python -m "
      "experiments.train --x=a`; use another --workdir_root (record: "
      f"{record})"
  )
  assert lines[-1] == "sweep: 0 done, 1 failed, 0 skipped in 0s"
  assert sweep.dry_run_lines([other])[-1] == (
      f"sweep: 1 jobs under {tmp_path}; 1 workdirs hold finished runs of "
      "other commands (use another --workdir_root)"
  )


def test_skip_recorded_leaves_out_jobs_a_results_csv_already_holds(tmp_path):
  jobs = sweep.expand(
      "configs/byte_transformer.py:runlocal", workdir_root="workdirs/bt"
  )
  runs = tmp_path / "runs.csv"
  runs.write_text(
      "study,command\n"
      f'lm,"python -m experiments.train --config=x --workdir={jobs[0]["workdir"]}"\n'
      f'lm,"python -m experiments.train --config=y --workdir=./{jobs[2]["workdir"]}"\n'
      'lm,"python -m experiments.train --config=z --workdir=workdirs/other"\n'
  )
  keep, left_out = sweep.skip_recorded(jobs, runs)
  assert left_out == 2
  assert [j["name"] for j in keep] == [
      j["name"] for i, j in enumerate(jobs) if i not in (0, 2)
  ]
  bad = tmp_path / "bad.csv"
  bad.write_text("a,b\n1,2\n")
  with pytest.raises(ValueError, match="no 'command' column"):
    sweep.skip_recorded(jobs, bad)
  with pytest.raises(ValueError, match="cannot read it"):
    sweep.skip_recorded(jobs, tmp_path / "missing.csv")
  # The flag on the command line: the count, then only the other jobs.
  proc = subprocess.run(
      [
          subprocess_env.python(),
          "-m",
          "scripts.sweep",
          "--config=configs/byte_transformer.py:runlocal",
          "--workdir_root=workdirs/bt",
          f"--skip_recorded={runs}",
          "--dry_run",
      ],
      cwd=subprocess_env.ROOT,
      env=subprocess_env.env(),
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.strip().splitlines()
  assert lines[0] == f"sweep: 2 jobs already recorded in {runs}, left out"
  assert len(lines) == 1 + (len(jobs) - 2) + 1
