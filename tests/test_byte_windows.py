"""Tests for step-keyed byte-window batches."""

import numpy as np
import pytest

from algebranets.data import byte_windows

DATA = np.arange(1000, dtype=np.int64).astype(np.uint8)


def test_train_batch_shapes_and_shift():
  b = byte_windows.train_batch(DATA, seq_len=16, global_batch=8, seed=0, step=3)
  assert b["inputs"].shape == (8, 16) and b["inputs"].dtype == np.int32
  np.testing.assert_array_equal(b["inputs"][:, 1:], b["targets"][:, :-1])
  # Every window is a contiguous slice of the data.
  for row_in, row_t in zip(b["inputs"], b["targets"], strict=True):
    full = np.concatenate([row_in, row_t[-1:]])
    np.testing.assert_array_equal(np.diff(full.astype(np.uint8)), 1)


def test_train_batch_is_a_function_of_seed_and_step():
  kw = dict(seq_len=8, global_batch=4)
  a = byte_windows.train_batch(DATA, seed=1, step=5, **kw)
  b = byte_windows.train_batch(DATA, seed=1, step=5, **kw)
  c = byte_windows.train_batch(DATA, seed=1, step=6, **kw)
  d = byte_windows.train_batch(DATA, seed=2, step=5, **kw)
  np.testing.assert_array_equal(a["inputs"], b["inputs"])
  assert not np.array_equal(a["inputs"], c["inputs"])
  assert not np.array_equal(a["inputs"], d["inputs"])


def test_process_slices_tile_the_global_batch():
  kw = dict(seq_len=8, global_batch=8, seed=0, step=2)
  full = byte_windows.train_batch(DATA, **kw)["inputs"]
  parts = [
      byte_windows.train_batch(DATA, process_index=i, process_count=4, **kw)
      for i in range(4)
  ]
  np.testing.assert_array_equal(
      np.concatenate([p["inputs"] for p in parts]), full
  )


def test_eval_batches_cover_split_once_with_padding():
  data = np.arange(101, dtype=np.uint8)  # 100 targets -> 10 windows of 10
  batches = list(byte_windows.eval_batches(data, seq_len=10, global_batch=4))
  assert len(batches) == 3  # 4 + 4 + 2 real windows
  weights = np.concatenate([b["weights"] for b in batches])
  assert weights.sum() == 100
  targets = np.concatenate([b["targets"] for b in batches])[weights[:, 0] > 0]
  np.testing.assert_array_equal(targets.ravel(), np.arange(1, 101))
  assert byte_windows.num_eval_windows(data, 10) == 10


def test_eval_num_batches_limits():
  data = np.arange(101, dtype=np.uint8)
  got = list(
      byte_windows.eval_batches(data, seq_len=10, global_batch=4, num_batches=1)
  )
  assert len(got) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(seq_len=2000), "fewer than seq_len"),
        (dict(seq_len=0), "seq_len must be >= 1"),
        (dict(global_batch=6, process_count=4), "not divisible by the number"),
    ],
)
def test_bad_input(kwargs, message):
  args = dict(seq_len=8, global_batch=8, seed=0, step=0) | kwargs
  with pytest.raises(ValueError, match=message):
    byte_windows.train_batch(DATA, **args)


def test_rejects_non_bytes():
  with pytest.raises(ValueError, match="uint8"):
    byte_windows.num_eval_windows(np.zeros(100, np.int32), 8)
