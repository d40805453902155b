"""Drops JAX's "Unable to initialize backend 'tpu'" note where no TPU exists.

JAX tries every installed backend; on a machine without a TPU the TPU
attempt fails "quietly", as an INFO record of the `jax._src.xla_bridge`
logger. `absl.app.run` (every entry point here) shows INFO records, so each
command used to start with

  I... xla_bridge.py:849] Unable to initialize backend 'tpu': INTERNAL:
  Failed to open libtpu.so: ...

`install()` filters exactly that record, and only when no TPU chip is
attached to the machine (JAX's own PCI probe). Nothing else is hidden: other
backends' notes, warnings such as "TPU ... present but libtpu is not
installed", and the RuntimeError raised when JAX_PLATFORMS names a backend
that fails all pass through.
"""

from __future__ import annotations

import functools
import logging

_LOGGER = "jax._src.xla_bridge"
_PREFIX = "Unable to initialize backend 'tpu'"


@functools.cache
def _tpu_attached() -> bool:
  try:
    from jax._src import hardware_utils

    return hardware_utils.num_available_tpu_chips_and_device_id()[0] > 0
  except Exception:
    # A private API: if it moved, assume a TPU may exist and keep the
    # message rather than risk hiding a real failure.
    return True


class MissingTpuFilter(logging.Filter):
  """Rejects the INFO record of a failed TPU backend when no TPU is
  attached."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno > logging.INFO:
      return True
    if not str(record.getMessage()).startswith(_PREFIX):
      return True
    return _tpu_attached()


_FILTER = MissingTpuFilter()


def install() -> None:
  """Adds the filter to JAX's backend logger (idempotent)."""
  logger = logging.getLogger(_LOGGER)
  if _FILTER not in logger.filters:
    logger.addFilter(_FILTER)


__all__ = ["MissingTpuFilter", "install"]
