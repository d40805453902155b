"""A workdir written by an earlier version keeps evaluating and resuming.

`tests/fixtures/workdir_822c61b` was trained at commit 822c61b (before the
harness redesign) with

  python -m experiments.train --config=configs/quickstart.py:runlocal \
      --config.data.path=tests/fixtures/tiny_corpus.txt \
      --workdir=tests/fixtures/workdir_822c61b

(tensorboard/, curves.png and the step-10 checkpoint removed to keep it
small). Its evaluation then printed valid 4.2681 and test 4.2502 bits/byte;
the code of today must reproduce them from the same files.
"""

import json
import shutil

import pytest

from tests import subprocess_env

FIXTURE = subprocess_env.ROOT / "tests" / "fixtures" / "workdir_822c61b"
# Printed by `experiments.eval` at commit 822c61b (4 decimals).
EXPECTED_BITS = {"valid": 4.2681, "test": 4.2502}


def _run(args):
  return subprocess_env.run(*args)


@pytest.fixture
def old_workdir(tmp_path):
  workdir = tmp_path / "old"
  shutil.copytree(FIXTURE, workdir)
  return workdir


@pytest.mark.parametrize("split", ["valid", "test"])
def test_old_workdir_evaluates_to_the_same_bits(old_workdir, split):
  proc = _run(
      ["-m", "experiments.eval", f"--workdir={old_workdir}", f"--split={split}"]
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads((old_workdir / f"eval_{split}_step20.json").read_text())
  assert result["bits_per_byte"] == pytest.approx(
      EXPECTED_BITS[split], abs=0.002
  )


def test_old_workdir_resumes_training(old_workdir):
  proc = _run(
      [
          "-m",
          "experiments.train",
          "--config=configs/quickstart.py:runlocal",
          "--config.data.path=tests/fixtures/tiny_corpus.txt",
          "--config.train.num_steps=25",
          f"--workdir={old_workdir}",
      ]
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "step 25/25" in proc.stdout.replace("  ", " ")
  final = json.loads((old_workdir / "final_metrics.json").read_text())
  assert final["step"] == 25
  # Training on from step 20 continues from the trained weights, so the
  # result stays near the step-20 model rather than a fresh one (~7.5).
  assert final["bits_per_byte"] < 4.5
