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
