"""SIGKILL mid-training, rerun: the final parameters are exactly those of an
uninterrupted run (data order keyed to the step, full state checkpointed)."""

import signal
import subprocess
import time

import jax
import numpy as np

from algebranets.training import checkpointing
from algebranets.training.experiment import Experiment
from tests import lm_helpers, subprocess_env

STEPS = 200


def _command(corpus, workdir):
  return [
      subprocess_env.python(),
      "-m",
      "experiments.train",
      "--config=configs/byte_transformer.py:runlocal",
      "--config.data.name=bytes_file",
      f"--config.data.path={corpus}",
      "--config.data.seq_len=32",
      f"--config.train.num_steps={STEPS}",
      "--config.train.checkpoint_every=5",
      "--config.train.log_every=5",
      "--config.eval.every_steps=0",
      "--config.eval.batch_size=8",
      f"--workdir={workdir}",
  ]


def _popen(corpus, workdir):
  return subprocess.Popen(
      _command(corpus, workdir),
      cwd=subprocess_env.ROOT,
      env=subprocess_env.env(),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )


def _params(corpus, workdir):
  config = lm_helpers.tiny_config(
      corpus, **{"train.num_steps": STEPS, "data.seq_len": 32}
  )
  abstract = Experiment(config).abstract_state().params
  return jax.device_get(checkpointing.restore_params(workdir, abstract))


def test_sigkill_then_resume_matches_uninterrupted(tiny_corpus, tmp_path):
  reference = _popen(tiny_corpus, tmp_path / "reference")
  killed_dir = tmp_path / "killed"
  victim = _popen(tiny_corpus, killed_dir)
  # Kill once at least one checkpoint exists and training is still going.
  deadline = time.time() + 240
  ckpts = killed_dir / "checkpoints"
  while time.time() < deadline:
    done = (
        [p for p in ckpts.glob("*") if p.name.isdigit()]
        if ckpts.exists()
        else []
    )
    if any(int(p.name) >= 10 for p in done):
      break
    assert victim.poll() is None, victim.stdout.read()
    time.sleep(0.05)
  victim.send_signal(signal.SIGKILL)
  victim.wait()
  assert victim.returncode == -signal.SIGKILL
  killed_at = max(int(p.name) for p in ckpts.glob("*") if p.name.isdigit())
  assert killed_at < STEPS, "the run finished before it could be killed"

  resumed = subprocess.run(
      _command(tiny_corpus, killed_dir),
      cwd=subprocess_env.ROOT,
      env=subprocess_env.env(),
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resuming from" in resumed.stdout
  assert reference.wait(timeout=300) == 0, reference.stdout.read()

  got = _params(tiny_corpus, killed_dir)
  want = _params(tiny_corpus, tmp_path / "reference")
  jax.tree.map(np.testing.assert_array_equal, got, want)
