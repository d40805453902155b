"""Transformer-XL stream batching (its `LMOrderedIterator`), keyed by step.

Transformer-XL cuts a split's token stream into B contiguous streams: with
``L = N // B`` (the tail of ``N - B * L`` tokens is dropped), stream ``b`` is
``tokens[b * L:(b + 1) * L]``. A batch is one segment of T = `tgt_len`
positions of every stream, the targets being the inputs shifted by one token,
and consecutive batches are consecutive segments, so the memory a batch leaves
behind is exactly the context of the next batch's segment, row by row.

Training (`train_segment`): the batch of a step is a pure function of the
step: segment ``s = step % num_segments`` covers inputs
``[s * T, s * T + T)`` and targets ``[s * T + 1, s * T + T + 1)`` of every
stream. There is no iterator state, so the data position of a run IS its step
and a resumed run sees the batches the uninterrupted run would have seen.
Differences from Transformer-XL's training loop, both for static shapes:
  * only full segments are used, ``num_segments = (L - 1) // T``; TXL also
    trains on the last, shorter segment of each epoch (and with ``--varlen``
    on segments of random length). At most T - 1 targets per stream and
    epoch go unused.
  * TXL restarts its memories at each epoch (``mems = tuple()`` at the top of
    ``train()``); here nothing marks the wrap-around. A consumer that wants
    the reset can clear its memories when ``stream_position(...)[1] == 0``.

Evaluation (`eval_segments`) is TXL's evaluation over the same B streams:
every segment in order, the last one padded to T with weight 0, so the
``B * (L - 1)`` targets of the streams (all but the first token of each
stream; the dropped tail is never scored, as in TXL) are counted exactly
once.

Multi-process: a process gets rows ``[i * B / P, (i + 1) * B / P)`` of the
global batch, so the processes' slices tile it without communication.

Shape glossary: B = global batch (number of streams), P = process count,
T = tgt_len, L = stream length, N = tokens in the split.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def _check_positive(name: str, value: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"{name} must be an int, got {value!r}.")
  if value < 1:
    raise ValueError(f"{name} must be >= 1, got {value}.")
  return int(value)


def _stream_len(num_tokens: int, batch_size: int, tgt_len: int) -> int:
  """L = N // B, checked to give at least one target per stream."""
  num_tokens = int(num_tokens)
  batch_size = _check_positive("batch_size", batch_size)
  tgt_len = _check_positive("tgt_len", tgt_len)
  if num_tokens < 0:
    raise ValueError(f"num_tokens must be >= 0, got {num_tokens}.")
  length = num_tokens // batch_size
  if length < 2:
    raise ValueError(
        f"A split of {num_tokens} tokens cut into batch_size={batch_size} "
        f"streams gives streams of L = {length} tokens, and a stream needs at "
        "least 2 (one input, one target). Lower the batch size or use more "
        "data."
    )
  return length


def num_segments(num_tokens: int, batch_size: int, tgt_len: int) -> int:
  """Full training segments per epoch, ``(N // B - 1) // T``.

  Args:
    num_tokens: N, tokens in the training split.
    batch_size: B, the global number of streams.
    tgt_len: T, the segment length.

  Returns:
    The number of distinct training batches; step s uses segment
    ``s % num_segments``.

  Raises:
    ValueError: a stream is too short for one full segment, or B, T < 1.
  """
  length = _stream_len(num_tokens, batch_size, tgt_len)
  n = (length - 1) // tgt_len
  if n < 1:
    raise ValueError(
        f"The training split has {num_tokens} tokens; cut into "
        f"batch_size={batch_size} streams each has L = {length} tokens, but "
        f"one training segment needs tgt_len + 1 = {tgt_len + 1} (inputs "
        "plus the shifted target). Lower data.tgt_len or train.batch_size "
        f"(B * (T + 1) = {batch_size * (tgt_len + 1)} tokens are needed), or "
        "use more data."
    )
  return n


def num_eval_segments(num_tokens: int, batch_size: int, tgt_len: int) -> int:
  """Evaluation segments of a split, ``ceil((N // B - 1) / T)``.

  Args:
    num_tokens: N, tokens in the evaluation split.
    batch_size: B, the global number of evaluation streams.
    tgt_len: T, the segment length.

  Returns:
    How many batches `eval_segments` yields (the last may be partial).

  Raises:
    ValueError: a stream would have fewer than 2 tokens, or B, T < 1.
  """
  length = _stream_len(num_tokens, batch_size, tgt_len)
  return -(-(length - 1) // tgt_len)


def stream_position(
    step: int, num_tokens: int, batch_size: int, tgt_len: int
) -> tuple[int, int]:
  """(epoch, segment) of a training step, for progress and logging.

  Args:
    step: the training step, >= 0.
    num_tokens, batch_size, tgt_len: as in `num_segments`.

  Returns:
    ``divmod(step, num_segments(num_tokens, batch_size, tgt_len))``.
  """
  if step < 0:
    raise ValueError(f"step must be >= 0, got {step}.")
  epoch, segment = divmod(
      int(step), num_segments(num_tokens, batch_size, tgt_len)
  )
  return epoch, segment


def _local_rows(
    batch_size: int, process_index: int, process_count: int, what: str
) -> slice:
  process_count = _check_positive("process_count", process_count)
  if not 0 <= process_index < process_count:
    raise ValueError(
        f"process_index must be in [0, {process_count}), got {process_index}."
    )
  if batch_size % process_count:
    raise ValueError(
        f"The {what} batch size {batch_size} is not divisible by the number "
        f"of processes {process_count}; make it a multiple of "
        f"{process_count} (e.g. {process_count * max(1, batch_size // process_count)})."
    )
  per = batch_size // process_count
  return slice(process_index * per, (process_index + 1) * per)


def _streams(tokens: np.ndarray, batch_size: int, length: int) -> np.ndarray:
  """The [B, L] view of the token stream (no copy)."""
  return tokens[: batch_size * length].reshape(batch_size, length)


def _check_tokens(tokens: np.ndarray, what: str) -> np.ndarray:
  tokens = np.asarray(tokens)
  if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
    raise ValueError(
        f"{what}: expected a 1-D integer array of token ids, got dtype "
        f"{tokens.dtype} and shape {tokens.shape}. Pass a split of "
        "corpora.load_corpus(...).splits."
    )
  return tokens


def train_segment(
    tokens: np.ndarray,
    *,
    batch_size: int,
    tgt_len: int,
    step: int,
    process_index: int = 0,
    process_count: int = 1,
) -> dict[str, np.ndarray]:
  """This process's rows of the training segment of `step`.

  Args:
    tokens: the training split, integer token ids [N].
    batch_size: B, the global number of streams.
    tgt_len: T.
    step: training step >= 0; the batch depends only on it. Step s + 1
      continues every stream where step s stopped, except at the epoch
      boundary, where it wraps to segment 0.
    process_index, process_count: rows ``[i * B/P, (i + 1) * B/P)``.

  Returns:
    ``{'inputs': int32 [B/P, T], 'targets': int32 [B/P, T]}``, targets being
    the next tokens of the streams.

  Raises:
    ValueError: the split is too short for one segment, B is not divisible
      by P, or `step` < 0.
  """
  tokens = _check_tokens(tokens, "training split")
  if step < 0:
    raise ValueError(f"step must be >= 0, got {step}.")
  n = num_segments(tokens.size, batch_size, tgt_len)
  rows = _local_rows(batch_size, process_index, process_count, "training")
  streams = _streams(tokens, batch_size, tokens.size // batch_size)
  start = (int(step) % n) * tgt_len
  window = streams[rows, start : start + tgt_len + 1].astype(np.int32)
  return {"inputs": window[:, :-1], "targets": window[:, 1:]}


def eval_segments(
    tokens: np.ndarray,
    *,
    batch_size: int,
    tgt_len: int,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[dict[str, np.ndarray]]:
  """Yields this process's rows of every evaluation segment, in order.

  Segment k has inputs at positions ``[k * T, k * T + T)`` and targets at
  ``[k * T + 1, k * T + T + 1)`` of each stream; the last segment is cut at
  the end of the streams and padded (id 0, weight 0) to T, so every batch has
  the same shape (one compiled eval step). Feeding the segments in order with
  memory reproduces Transformer-XL's evaluation.

  Args:
    tokens: the evaluation split, integer token ids [N].
    batch_size: B, the global number of streams.
    tgt_len: T.
    process_index, process_count: as in `train_segment`.

  Yields:
    ``{'inputs': int32 [B/P, T], 'targets': int32 [B/P, T],
    'weights': float32 [B/P, T]}``; over all segments and processes the
    weights are 1 exactly once on each of the ``B * (L - 1)`` targets.
  """
  tokens = _check_tokens(tokens, "evaluation split")
  n = num_eval_segments(tokens.size, batch_size, tgt_len)
  rows = _local_rows(batch_size, process_index, process_count, "evaluation")
  length = tokens.size // batch_size
  streams = _streams(tokens, batch_size, length)[rows]
  local = streams.shape[0]
  for k in range(n):
    start = k * tgt_len
    window = streams[:, start : start + tgt_len + 1].astype(np.int32)
    valid = window.shape[1] - 1
    inputs = np.zeros((local, tgt_len), np.int32)
    targets = np.zeros((local, tgt_len), np.int32)
    weights = np.zeros((local, tgt_len), np.float32)
    inputs[:, :valid] = window[:, :-1]
    targets[:, :valid] = window[:, 1:]
    weights[:, :valid] = 1.0
    yield {"inputs": inputs, "targets": targets, "weights": weights}
