"""Tests for scripts/sweep.py."""

import json
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
  assert jobs[0]["workdir"].startswith("workdirs/byte_transformer/")


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
  lines = dry.stdout.strip().splitlines()
  assert len(lines) == 8 and all("experiments.train" in x for x in lines)
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
