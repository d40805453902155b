"""The rows of a global batch that one process builds (multi-host jobs).

Every process of a data-parallel job builds only its own contiguous slice
of the global batch, so the data of a step does not depend on how many
processes there are.
"""

from __future__ import annotations

# The mesh axis the global batch is split over (`training.sharding` builds
# the mesh; tasks that shard their own state along the batch name it too).
DATA_AXIS = "data"


def local_rows(
    global_batch: int, process_index: int, process_count: int
) -> slice:
  """Rows of the global batch that process `process_index` builds.

  Args:
    global_batch: rows of the whole batch (all processes).
    process_index: this process, in [0, process_count).
    process_count: processes of the job (>= 1).

  Returns:
    slice(start, stop) with stop - start = global_batch / process_count.

  Raises:
    ValueError: global_batch not divisible by process_count.
  """
  if global_batch % process_count:
    raise ValueError(
        f"Global batch size {global_batch} is not divisible by the number of "
        f"processes {process_count}; make the batch size (train.batch_size, "
        f"eval.batch_size) a multiple of {process_count}."
    )
  per = global_batch // process_count
  return slice(process_index * per, (process_index + 1) * per)
