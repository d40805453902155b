"""Step-keyed batches of byte windows for causal language models.

A training batch is a pure function of (seed, step): window start offsets are
drawn by a NumPy generator seeded with ``(seed, step)``. There is no iterator
state, so the data position of a run IS its step, a resumed run sees exactly
the batches the uninterrupted run would have seen, and every process of a
multi-host job can compute its own slice of the global batch without
communication.

Evaluation walks the split in fixed, non-overlapping windows so every byte
after the first of each window is predicted exactly once; the few bytes that
do not fill a last window are dropped (at most `seq_len` bytes).

Shape glossary: B = batch (global unless "local"), T = seq_len.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from algebranets.data import process_rows


def _check_split(data: np.ndarray, seq_len: int, what: str) -> None:
  if seq_len < 1:
    raise ValueError(f"seq_len must be >= 1, got {seq_len}.")
  if data.ndim != 1 or data.dtype != np.uint8:
    raise ValueError(
        f"{what}: expected a 1-D uint8 byte array, got dtype {data.dtype} and "
        f"shape {data.shape}."
    )
  if data.size < seq_len + 1:
    raise ValueError(
        f"{what} has {data.size} bytes, fewer than seq_len + 1 = "
        f"{seq_len + 1}; lower data.seq_len or use a larger file."
    )


def train_batch(
    data: np.ndarray,
    *,
    seq_len: int,
    global_batch: int,
    seed: int,
    step: int,
    process_index: int = 0,
    process_count: int = 1,
) -> dict[str, np.ndarray]:
  """This process's rows of the training batch of `step`.

  Args:
    data: the training split, uint8 [N].
    seq_len: T.
    global_batch: B over all processes.
    seed: data seed (the config seed).
    step: training step; the batch depends only on (seed, step).
    process_index, process_count: rows [i * B/P, (i+1) * B/P) are returned.

  Returns:
    {'inputs': int32 [B/P, T], 'targets': int32 [B/P, T]}, targets being the
    inputs shifted by one byte.
  """
  _check_split(data, seq_len, "training split")
  rows = process_rows.local_rows(global_batch, process_index, process_count)
  rng = np.random.default_rng((int(seed), int(step)))
  starts = rng.integers(0, data.size - seq_len, size=global_batch)[rows]
  idx = starts[:, None] + np.arange(seq_len + 1)[None, :]
  windows = data[idx].astype(np.int32)
  return {"inputs": windows[:, :-1], "targets": windows[:, 1:]}


def num_eval_windows(data: np.ndarray, seq_len: int) -> int:
  """Number of full non-overlapping windows that cover the split."""
  _check_split(data, seq_len, "evaluation split")
  return (data.size - 1) // seq_len


def eval_batches(
    data: np.ndarray,
    *,
    seq_len: int,
    global_batch: int,
    num_batches: int = 0,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[dict[str, np.ndarray]]:
  """Yields this process's rows of fixed evaluation batches, in order.

  The last batch is padded with zero-weight rows so every batch has the same
  shape (one compiled eval step).

  Args:
    data: the evaluation split, uint8 [N].
    seq_len: T.
    global_batch: B over all processes.
    num_batches: stop after this many batches; 0 means the whole split.
    process_index, process_count: as in `train_batch`.

  Yields:
    {'inputs': int32 [B/P, T], 'targets': int32 [B/P, T],
     'weights': float32 [B/P, T]} (weights 0 on padding rows).
  """
  n = num_eval_windows(data, seq_len)
  rows = process_rows.local_rows(global_batch, process_index, process_count)
  total = -(-n // global_batch)
  if num_batches > 0:
    total = min(total, num_batches)
  offsets = np.arange(seq_len + 1)[None, :]
  for b in range(total):
    win = np.arange(b * global_batch, (b + 1) * global_batch)
    valid = win < n
    starts = np.where(valid, win, 0) * seq_len
    windows = data[starts[:, None] + offsets].astype(np.int32)
    weights = np.broadcast_to(
        valid[:, None].astype(np.float32), (global_batch, seq_len)
    )
    yield {
        "inputs": windows[rows, :-1],
        "targets": windows[rows, 1:],
        "weights": np.ascontiguousarray(weights[rows]),
    }
