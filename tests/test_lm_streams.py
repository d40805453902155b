"""Tests for Transformer-XL stream batching (algebranets.data.lm_streams)."""

import itertools

import numpy as np
import pytest

from algebranets.data import lm_streams

# N = 1003 tokens: B = 4 streams of L = 250 (3 tail tokens dropped).
N, B, T = 1003, 4, 10
L = N // B
TOKENS = np.arange(N, dtype=np.int64)


def _txl_ordered_batches(data, bsz, bptt):
  """Transformer-XL's LMOrderedIterator fixed-length iteration, in NumPy.

  Yields (inputs [bptt', bsz], targets [bptt', bsz]) time-major like TXL.
  """
  n_step = data.shape[0] // bsz
  streams = data[: n_step * bsz].reshape(bsz, -1).T  # data.view(bsz,-1).t()
  for i in range(0, streams.shape[0] - 1, bptt):
    seq_len = min(bptt, streams.shape[0] - 1 - i)
    yield streams[i : i + seq_len], streams[i + 1 : i + 1 + seq_len]


def test_num_segments_formulas():
  assert lm_streams.num_segments(N, B, T) == (L - 1) // T == 24
  assert lm_streams.num_eval_segments(N, B, T) == 25  # ceil(249 / 10)
  assert lm_streams.num_segments(41, 4, 9) == 1  # L = 10: exactly one
  assert lm_streams.num_eval_segments(41, 4, 9) == 1


@pytest.mark.parametrize(
    "args, match",
    [
        ((39, 4, 9), r"L = 9 tokens.*tgt_len \+ 1 = 10"),
        ((7, 4, 1), "L = 1 tokens"),
        ((100, 0, 4), "batch_size must be >= 1"),
        ((100, 4, 0), "tgt_len must be >= 1"),
    ],
)
def test_num_segments_errors(args, match):
  with pytest.raises(ValueError, match=match):
    lm_streams.num_segments(*args)


def test_train_segment_is_the_stream_slice_of_the_step():
  for step in (0, 1, 7, 23):
    b = lm_streams.train_segment(TOKENS, batch_size=B, tgt_len=T, step=step)
    assert b["inputs"].shape == (B, T) and b["inputs"].dtype == np.int32
    assert b["targets"].dtype == np.int32
    start = np.arange(B)[:, None] * L + step * T + np.arange(T)[None, :]
    np.testing.assert_array_equal(b["inputs"], start)
    np.testing.assert_array_equal(b["targets"], start + 1)


def test_consecutive_steps_continue_every_stream():
  n = lm_streams.num_segments(N, B, T)
  batches = [
      lm_streams.train_segment(TOKENS, batch_size=B, tgt_len=T, step=s)
      for s in range(n)
  ]
  for prev, nxt in itertools.pairwise(batches):
    # Row b of step s+1 starts at the token row b of step s predicted last.
    np.testing.assert_array_equal(nxt["inputs"][:, 0], prev["targets"][:, -1])
  inputs = np.concatenate([x["inputs"] for x in batches], axis=1)
  # The epoch's inputs are each stream's first n*T tokens, in order.
  streams = TOKENS[: B * L].reshape(B, L)
  np.testing.assert_array_equal(inputs, streams[:, : n * T])


def test_wraps_around_at_epoch_end_and_drops_partial_segment():
  n = lm_streams.num_segments(N, B, T)
  kw = dict(batch_size=B, tgt_len=T)
  last = lm_streams.train_segment(TOKENS, step=n - 1, **kw)
  # The last full segment ends at stream position n*T < L; the partial
  # segment [n*T, L) is never trained on.
  assert last["targets"][0, -1] == n * T
  assert n * T < L - 1
  for k in (1, 3):
    again = lm_streams.train_segment(TOKENS, step=k * n + 5, **kw)
    first = lm_streams.train_segment(TOKENS, step=5, **kw)
    np.testing.assert_array_equal(again["inputs"], first["inputs"])
    np.testing.assert_array_equal(again["targets"], first["targets"])
  assert lm_streams.stream_position(n, N, B, T) == (1, 0)
  assert lm_streams.stream_position(2 * n + 3, N, B, T) == (2, 3)
  assert lm_streams.stream_position(0, N, B, T) == (0, 0)
  with pytest.raises(ValueError, match="step must be >= 0"):
    lm_streams.stream_position(-1, N, B, T)


def test_train_matches_transformer_xl_full_segments():
  ref = list(_txl_ordered_batches(TOKENS, B, T))
  n = lm_streams.num_segments(N, B, T)
  assert len(ref) == n + 1 and ref[-1][0].shape[0] < T  # one partial
  for s in range(n):
    got = lm_streams.train_segment(TOKENS, batch_size=B, tgt_len=T, step=s)
    np.testing.assert_array_equal(got["inputs"], ref[s][0].T)
    np.testing.assert_array_equal(got["targets"], ref[s][1].T)


def test_process_slices_tile_the_global_batch():
  kw = dict(batch_size=8, tgt_len=5, step=3)
  full = lm_streams.train_segment(TOKENS, **kw)
  parts = [
      lm_streams.train_segment(TOKENS, process_index=i, process_count=4, **kw)
      for i in range(4)
  ]
  for key in ("inputs", "targets"):
    assert all(p[key].shape == (2, 5) for p in parts)
    np.testing.assert_array_equal(
        np.concatenate([p[key] for p in parts]), full[key]
    )


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(process_count=3), "not divisible by the number of processes 3"),
        (dict(process_index=2, process_count=2), r"process_index must be in"),
        (dict(step=-1), "step must be >= 0"),
    ],
)
def test_train_segment_errors(kw, match):
  args = dict(batch_size=4, tgt_len=5, step=0) | kw
  with pytest.raises(ValueError, match=match):
    lm_streams.train_segment(TOKENS, **args)


def test_train_segment_rejects_non_token_arrays():
  with pytest.raises(ValueError, match="1-D integer array"):
    lm_streams.train_segment(
        TOKENS.reshape(17, 59), batch_size=4, tgt_len=5, step=0
    )
  with pytest.raises(ValueError, match="1-D integer array"):
    lm_streams.train_segment(
        TOKENS.astype(np.float32), batch_size=4, tgt_len=5, step=0
    )


def test_eval_covers_every_target_exactly_once():
  segs = list(lm_streams.eval_segments(TOKENS, batch_size=B, tgt_len=T))
  assert len(segs) == lm_streams.num_eval_segments(N, B, T)
  for s in segs:
    assert s["inputs"].shape == s["targets"].shape == (B, T)
    assert s["weights"].dtype == np.float32
  targets = np.concatenate([s["targets"] for s in segs], axis=1)
  weights = np.concatenate([s["weights"] for s in segs], axis=1)
  assert weights.sum() == B * (L - 1)
  counted = targets[weights > 0]
  expected = (np.arange(B)[:, None] * L + np.arange(1, L)[None, :]).ravel()
  np.testing.assert_array_equal(np.sort(counted), np.sort(expected))
  assert np.unique(counted).size == counted.size  # each exactly once
  # The last segment: 249 - 24*10 = 9 real positions, 1 padded.
  last = segs[-1]
  np.testing.assert_array_equal(last["weights"][:, :9], 1.0)
  np.testing.assert_array_equal(last["weights"][:, 9:], 0.0)
  np.testing.assert_array_equal(last["inputs"][:, 9:], 0)


def test_eval_matches_transformer_xl_iteration():
  ref = list(_txl_ordered_batches(TOKENS, B, T))
  segs = list(lm_streams.eval_segments(TOKENS, batch_size=B, tgt_len=T))
  assert len(segs) == len(ref)
  for got, (inp, tgt) in zip(segs, ref, strict=True):
    k = inp.shape[0]
    np.testing.assert_array_equal(got["inputs"][:, :k], inp.T)
    np.testing.assert_array_equal(got["targets"][:, :k], tgt.T)
    np.testing.assert_array_equal(got["weights"][:, :k], 1.0)


def test_eval_process_slices_tile():
  full = list(lm_streams.eval_segments(TOKENS, batch_size=4, tgt_len=7))
  parts = [
      list(
          lm_streams.eval_segments(
              TOKENS, batch_size=4, tgt_len=7, process_index=i, process_count=2
          )
      )
      for i in range(2)
  ]
  assert len(parts[0]) == len(parts[1]) == len(full)
  for k, seg in enumerate(full):
    for key in ("inputs", "targets", "weights"):
      np.testing.assert_array_equal(
          np.concatenate([parts[0][k][key], parts[1][k][key]]), seg[key]
      )
  with pytest.raises(ValueError, match="evaluation batch size 4"):
    next(
        lm_streams.eval_segments(
            TOKENS, batch_size=4, tgt_len=7, process_count=3
        )
    )


def test_eval_exact_division_has_no_padding():
  tokens = np.arange(4 * 21)  # L = 21: 20 targets = 2 segments of 10
  segs = list(lm_streams.eval_segments(tokens, batch_size=4, tgt_len=10))
  assert len(segs) == 2
  assert all(s["weights"].min() == 1.0 for s in segs)
