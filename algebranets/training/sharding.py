"""Data-parallel placement with `jax.sharding`: batch on 'data', rest replicated.

Under `jit` the arrays are global, so a mean over the batch axis (loss,
BatchNorm statistics) is over the global batch without any collective written
by hand. Each process feeds only its own rows
(`jax.make_array_from_process_local_data`).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from algebranets.data.process_rows import DATA_AXIS


class DeviceCountError(ValueError):
  """train.num_devices asks for devices this job does not have."""


# Environment variables by which a cluster launcher says "this process is
# one of several"; jax.distributed.initialize() auto-detects the layout from
# them (SLURM, Open MPI, TPU slices).
_AUTO_DETECTED_ENV = (
    "OMPI_COMM_WORLD_SIZE",
    "SLURM_NTASKS",
    "MEGASCALE_COORDINATOR_ADDRESS",
    "TPU_WORKER_HOSTNAMES",
)
# The explicit layout for any other launcher (or none: N shells on N hosts).
# JAX itself reads only JAX_COORDINATOR_ADDRESS; the other two are passed on.
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"
# Seconds without a heartbeat after which JAX declares a process dead and
# stops the others (JAX's own default).
HEARTBEAT_TIMEOUT_ENV = "ALGEBRANETS_HEARTBEAT_TIMEOUT_SECONDS"
DEFAULT_HEARTBEAT_TIMEOUT = 100


class ClusterError(ValueError):
  """The multi-process environment variables are incomplete or invalid."""


def _int_env(name: str, minimum: int) -> int:
  value = os.environ[name]
  try:
    out = int(value)
  except ValueError:
    out = None
  if out is None or out < minimum:
    raise ClusterError(
        f"{name}={value!r} must be an integer >= {minimum}; see README "
        "'Multi-device and multi-process'."
    )
  return out


def cluster_layout() -> dict[str, Any] | None:
  """The `jax.distributed.initialize` arguments this environment asks for.

  Returns:
    None for a single process; {} to let JAX auto-detect the layout (SLURM,
    Open MPI, TPU); else {'coordinator_address', 'num_processes',
    'process_id'} from JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
    JAX_PROCESS_ID.

  Raises:
    ClusterError: JAX_COORDINATOR_ADDRESS without the other two (and no
      launcher JAX detects), or values out of range.
  """
  auto = []
  for var in _AUTO_DETECTED_ENV:
    value = os.environ.get(var)
    if not value:
      continue
    if var in ("OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS") and value == "1":
      continue
    if var == "TPU_WORKER_HOSTNAMES" and "," not in value:
      continue
    auto.append(var)
  coordinator = os.environ.get(COORDINATOR_ENV)
  explicit = [
      v for v in (NUM_PROCESSES_ENV, PROCESS_ID_ENV) if os.environ.get(v)
  ]
  if not coordinator and not explicit:
    return {} if auto else None
  if auto and not explicit:
    return {}  # the launcher's layout, JAX_COORDINATOR_ADDRESS its address
  missing = [
      v
      for v in (COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV)
      if not os.environ.get(v)
  ]
  if missing:
    raise ClusterError(
        f"{', '.join(missing)} not set: a process joins an N-process job "
        f"when {COORDINATOR_ENV} (host:port of process 0), "
        f"{NUM_PROCESSES_ENV} (N) and {PROCESS_ID_ENV} (0..N-1) are all "
        "set; set the missing ones, or unset the others for one process."
    )
  num = _int_env(NUM_PROCESSES_ENV, 1)
  pid = _int_env(PROCESS_ID_ENV, 0)
  if pid >= num:
    raise ClusterError(
        f"{PROCESS_ID_ENV}={pid} must be < {NUM_PROCESSES_ENV}={num}."
    )
  if num == 1:
    return None
  return {
      "coordinator_address": coordinator,
      "num_processes": num,
      "process_id": pid,
  }


def maybe_initialize_distributed(
    heartbeat_timeout_seconds: int | None = None,
) -> bool:
  """Joins a multi-process job when the environment asks for one.

  Single-process runs (no cluster variables, or a cluster of size 1) are
  left alone, so the same command works on a laptop and on a pod. Must run
  before anything touches a JAX device. CPU processes exchange data with
  JAX's gloo collectives.

  Args:
    heartbeat_timeout_seconds: after this long without a heartbeat a
      process counts as dead and the job stops; default
      $ALGEBRANETS_HEARTBEAT_TIMEOUT_SECONDS or 100 (JAX's default).

  Returns:
    True if the distributed runtime was initialised.

  Raises:
    ClusterError: see `cluster_layout`.
  """
  layout = cluster_layout()
  if layout is None:
    return False
  if heartbeat_timeout_seconds is None:
    heartbeat_timeout_seconds = (
        _int_env(HEARTBEAT_TIMEOUT_ENV, 1)
        if os.environ.get(HEARTBEAT_TIMEOUT_ENV)
        else DEFAULT_HEARTBEAT_TIMEOUT
    )
  # Cross-process collectives on CPU devices; no effect on GPU/TPU ones.
  if jax.config.jax_cpu_collectives_implementation is None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  logging.info(
      "Multi-process job (%s): jax.distributed.initialize()",
      layout or "auto-detected",
  )
  jax.distributed.initialize(
      heartbeat_timeout_seconds=heartbeat_timeout_seconds, **layout
  )
  return True


def make_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  """A 1-D ('data',) mesh over the first `num_devices` devices (0 = all).

  Axes are `Auto`: jax 0.10 defaults to Explicit axes, under which the
  reshapes of the M_n fold path raise a ShardingTypeError.

  Raises:
    DeviceCountError: more devices requested than exist, or a subset of
      devices in a multi-process job (every process must take part).
  """
  available = jax.device_count()
  n = num_devices or available
  if n > available:
    raise DeviceCountError(
        f"train.num_devices={num_devices} but only {available} devices are "
        f"visible ({jax.devices()[0].platform}); use <= {available} or 0 "
        "for all."
    )
  if n != available and jax.process_count() > 1:
    raise DeviceCountError(
        "train.num_devices must be 0 (all devices) in a multi-process job, "
        f"got {num_devices}."
    )
  return jax.make_mesh(
      (n,),
      (DATA_AXIS,),
      axis_types=(jax.sharding.AxisType.Auto,),
      devices=jax.devices()[:n],
  )


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def to_global(local_batch: Any, sharding: NamedSharding) -> Any:
  """This process's rows (NumPy) -> global arrays sharded on the batch axis."""
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
      local_batch,
  )
