"""Multi-process training for real: 2 processes on 127.0.0.1 (issue 16).

Each process is started like a user would on two hosts (the same command,
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID set), with one
CPU device each; JAX's gloo collectives carry the cross-process reductions.
The reference is one process with 2 CPU devices: the same global device
count, so the same sharding and the same reduction tree, hence the same
numbers to float32 rounding.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

import jax
import numpy as np
import pytest

from algebranets.training import checkpointing, sharding
from algebranets.training.experiment import Experiment
from tests import lm_helpers, subprocess_env

ARGS = [
    "--config=configs/byte_transformer.py:runlocal",
    "--config.data.name=bytes_file",
    "--config.data.seq_len=32",
    "--config.eval.batch_size=8",
    "--config.eval.every_steps=0",
    "--config.train.checkpoint_every=2",
    "--config.train.log_every=1",
    # SGD: Adam's first steps are ~lr * sign(g), which float32 rounding
    # noise in a near-zero gradient would flip (tests/test_multidevice.py).
    "--config.optimizer.name=sgd",
    "--config.optimizer.learning_rate=0.5",
    "--config.optimizer.weight_decay=0.0",
    "--config.optimizer.warmup_steps=0",
]
TIMEOUT = 300


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _cmd(corpus, workdir, num_steps):
  return [
      subprocess_env.python(),
      "-m",
      "experiments.train",
      *ARGS,
      f"--config.data.path={corpus}",
      f"--config.train.num_steps={num_steps}",
      f"--workdir={workdir}",
  ]


def _one_process(corpus, workdir, num_steps):
  """One process with 2 CPU devices."""
  proc = subprocess.run(
      _cmd(corpus, workdir, num_steps),
      cwd=subprocess_env.ROOT,
      env=subprocess_env.env(
          XLA_FLAGS="--xla_force_host_platform_device_count=2"
      ),
      capture_output=True,
      text=True,
      timeout=TIMEOUT,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "on 2 cpu device(s), 1 process(es)" in proc.stdout
  return proc


def _start_job(corpus, workdir, num_steps, *, heartbeat=None):
  """Two processes with 1 CPU device each, as on two hosts."""
  port = _free_port()
  procs = []
  for pid in range(2):
    env = {
        sharding.COORDINATOR_ENV: f"127.0.0.1:{port}",
        sharding.NUM_PROCESSES_ENV: "2",
        sharding.PROCESS_ID_ENV: str(pid),
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
    }
    if heartbeat is not None:
      env[sharding.HEARTBEAT_TIMEOUT_ENV] = str(heartbeat)
    procs.append(
        subprocess.Popen(
            _cmd(corpus, workdir, num_steps),
            cwd=subprocess_env.ROOT,
            env=subprocess_env.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    )
  return procs


def _two_processes(corpus, workdir, num_steps):
  procs = _start_job(corpus, workdir, num_steps)
  outs = [p.communicate(timeout=TIMEOUT) for p in procs]
  for p, (_, err) in zip(procs, outs, strict=True):
    assert p.returncode == 0, err[-3000:]
  assert "on 2 cpu device(s), 2 process(es)" in outs[0][0]
  return outs


def _params(workdir, corpus):
  config = lm_helpers.tiny_config(corpus)
  abstract = Experiment(config).abstract_state().params
  return jax.device_get(checkpointing.restore_params(workdir, abstract))


def _final(workdir):
  return json.loads((workdir / "final_metrics.json").read_text())


def _assert_same_run(a, b, corpus):
  """Same losses and parameters to float32 rounding of the reductions."""
  fa, fb = _final(a), _final(b)
  assert fa["step"] == fb["step"]
  assert fa["loss"] == pytest.approx(fb["loss"], rel=1e-6, abs=1e-6)
  rows = {}
  for w in (a, b):
    lines = (w / "metrics.jsonl").read_text().splitlines()
    rows[w] = [
        row["loss"] for row in map(json.loads, lines) if row["split"] == "train"
    ]
  assert len(rows[a]) == len(rows[b]) == fa["step"]
  np.testing.assert_allclose(rows[a], rows[b], rtol=1e-6, atol=1e-6)
  jax.tree.map(
      lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6),
      _params(a, corpus),
      _params(b, corpus),
  )


@pytest.mark.slow  # four trainings, about 100 s on 2 cores
def test_two_processes_match_one_and_resume_across(tiny_corpus, tmp_path):
  one, two = tmp_path / "one", tmp_path / "two"
  _one_process(tiny_corpus, one, 2)
  outs = _two_processes(tiny_corpus, two, 2)
  _assert_same_run(one, two, tiny_corpus)
  # Only process 0 prints and writes: one metrics row per step (checked in
  # _assert_same_run) and nothing on process 1's stdout.
  assert "step 2/2" in outs[0][0].replace("  ", " ")
  # (gloo's C++ connection notice is not ours.)
  ours = [x for x in outs[1][0].splitlines() if not x.startswith("[Gloo]")]
  assert ours == []
  # Each checkpoint continues in the other layout: 2 processes -> 1
  # process, 1 process -> 2 processes.
  resumed_one = _one_process(tiny_corpus, two, 4)
  assert "step 2." in resumed_one.stdout  # "Resuming from ..., step 2."
  outs = _two_processes(tiny_corpus, one, 4)
  assert "step 2." in outs[0][0]
  _assert_same_run(one, two, tiny_corpus)


@pytest.mark.slow  # about 40 s on 2 cores
def test_killing_one_process_stops_the_other_with_a_clear_error(
    tiny_corpus, tmp_path
):
  procs = _start_job(tiny_corpus, tmp_path, 100_000, heartbeat=5)
  try:
    # Wait until both train (process 0 prints its first progress line).
    deadline = time.monotonic() + TIMEOUT
    line = ""
    while "step" not in line or "/100000" not in line:
      assert time.monotonic() < deadline, "the job never started training"
      line = procs[0].stdout.readline()
      assert line or procs[0].poll() is None, procs[0].stderr.read()[-3000:]
    procs[1].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    _, err = procs[0].communicate(timeout=120)
    took = time.monotonic() - killed_at
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  assert procs[0].returncode == 1, err[-3000:]
  # Bounded by the heartbeat timeout (5 s) plus start-up slack.
  assert took < 60, took
  last = err.strip().splitlines()[-1]
  assert "JobError: process 0 of this 2-process job stopped" in last, err[
      -3000:
  ]
  assert "restart all 2 processes" in last


_CLUSTER_VARS = (
    "JAX_COORDINATOR_ADDRESS",
    "JAX_NUM_PROCESSES",
    "JAX_PROCESS_ID",
    "COORDINATOR_ADDRESS",
    "OMPI_COMM_WORLD_SIZE",
    "SLURM_NTASKS",
    "MEGASCALE_COORDINATOR_ADDRESS",
    "TPU_WORKER_HOSTNAMES",
)


@pytest.fixture(name="clean_env")
def _clean_env(monkeypatch):
  for var in _CLUSTER_VARS:
    monkeypatch.delenv(var, raising=False)
  return monkeypatch


def test_cluster_layout_from_the_three_variables(clean_env):
  assert sharding.cluster_layout() is None
  clean_env.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
  clean_env.setenv("JAX_NUM_PROCESSES", "4")
  clean_env.setenv("JAX_PROCESS_ID", "3")
  assert sharding.cluster_layout() == {
      "coordinator_address": "10.0.0.1:1234",
      "num_processes": 4,
      "process_id": 3,
  }
  clean_env.setenv("JAX_NUM_PROCESSES", "1")
  clean_env.setenv("JAX_PROCESS_ID", "0")
  assert sharding.cluster_layout() is None  # a job of one: nothing to join


def test_cluster_layout_leaves_launchers_to_jax(clean_env):
  # SLURM / Open MPI / TPU: JAX's own auto-detection (no arguments).
  clean_env.setenv("SLURM_NTASKS", "1")
  assert sharding.cluster_layout() is None
  clean_env.setenv("SLURM_NTASKS", "8")
  assert sharding.cluster_layout() == {}
  clean_env.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
  assert sharding.cluster_layout() == {}


@pytest.mark.parametrize(
    "env, match",
    [
        # jax.distributed.initialize() raised "Number of processes must be
        # defined" for the launch the README documented (issue 16 item 11).
        (
            {"JAX_COORDINATOR_ADDRESS": "h:1"},
            "JAX_NUM_PROCESSES, JAX_PROCESS_ID not set",
        ),
        (
            {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"},
            "JAX_COORDINATOR_ADDRESS not set",
        ),
        (
            {
                "JAX_COORDINATOR_ADDRESS": "h:1",
                "JAX_NUM_PROCESSES": "two",
                "JAX_PROCESS_ID": "0",
            },
            "JAX_NUM_PROCESSES='two' must be an integer >= 1",
        ),
        (
            {
                "JAX_COORDINATOR_ADDRESS": "h:1",
                "JAX_NUM_PROCESSES": "2",
                "JAX_PROCESS_ID": "2",
            },
            "JAX_PROCESS_ID=2 must be < JAX_NUM_PROCESSES=2",
        ),
    ],
)
def test_cluster_layout_errors(clean_env, env, match):
  for k, v in env.items():
    clean_env.setenv(k, v)
  with pytest.raises(sharding.ClusterError, match=match):
    sharding.cluster_layout()


def test_slurm_example_script_is_valid_bash():
  script = subprocess_env.ROOT / "scripts" / "slurm_train.sbatch"
  proc = subprocess.run(["bash", "-n", str(script)], capture_output=True)
  assert proc.returncode == 0, proc.stderr
  text = script.read_text()
  assert "srun" in text and "python -m experiments.train" in text
