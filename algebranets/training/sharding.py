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

DATA_AXIS = "data"


class DeviceCountError(ValueError):
  """train.num_devices asks for devices this job does not have."""


# Environment variables that mean "this process is one of several in a job";
# jax.distributed.initialize() reads the cluster layout from them.
_CLUSTER_ENV = (
    "JAX_COORDINATOR_ADDRESS",
    "COORDINATOR_ADDRESS",
    "OMPI_COMM_WORLD_SIZE",
    "SLURM_NTASKS",
    "MEGASCALE_COORDINATOR_ADDRESS",
    "TPU_WORKER_HOSTNAMES",
)


def maybe_initialize_distributed() -> bool:
  """Calls `jax.distributed.initialize()` when a multi-process job asks for it.

  Single-process runs (no cluster variables, or a cluster of size 1) are
  left alone, so the same command works on a laptop and on a pod.

  Returns:
    True if the distributed runtime was initialised.
  """
  asks = []
  for var in _CLUSTER_ENV:
    value = os.environ.get(var)
    if not value:
      continue
    if var in ("OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS") and value == "1":
      continue
    if var == "TPU_WORKER_HOSTNAMES" and "," not in value:
      continue
    asks.append(var)
  if not asks:
    return False
  logging.info(
      "Multi-process environment (%s): jax.distributed.initialize()",
      ", ".join(asks),
  )
  jax.distributed.initialize()
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
