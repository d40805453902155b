"""Tests for algebranets.studies.grid_tensor (the ConvAC rank probe)."""

import dataclasses
import itertools
import json
import math

import jax
import numpy as np
import pytest

from algebranets.studies import grid_tensor as gt

# -- grid tensor ---------------------------------------------------------------


def _nonlinear_score(x):
  """A score that is not multilinear, so entries test the indexing only."""
  x = np.asarray(x, np.float64)  # [B, N, 2]
  weights = np.arange(1, x.shape[1] + 1, dtype=np.float64)
  return np.tanh(x[..., 0] @ weights) + np.prod(x[..., 1], axis=1) ** 2


def test_grid_tensor_entries_match_a_direct_loop():
  rng = np.random.default_rng(0)
  templates = rng.normal(size=(3, 2))
  # batch_size 5 does not divide 27, so the ragged last batch is covered.
  a = gt.grid_tensor(_nonlinear_score, templates, 3, batch_size=5)
  assert a.shape == (3, 3, 3)
  for d in itertools.product(range(3), repeat=3):
    x = templates[list(d)][None]  # [1, N, 2]
    np.testing.assert_allclose(a[d], _nonlinear_score(x)[0], rtol=1e-14)


def test_grid_tensor_keeps_the_score_dtype():
  templates = np.ones((2, 1), np.float32)
  a = gt.grid_tensor(lambda x: x.sum(axis=(1, 2)), templates, 2)
  assert a.dtype == np.float32
  np.testing.assert_array_equal(a, np.full((2, 2), 2.0, np.float32))


def test_grid_tensor_too_big_is_refused_before_any_evaluation():
  calls = []

  def score(x):
    calls.append(x.shape)
    return x.sum(axis=(1, 2))

  with pytest.raises(ValueError, match=r"M\^N = 4\^10 = 1,048,576 entries"):
    gt.grid_tensor(score, np.ones((4, 1)), 10, max_entries=1000)
  assert not calls


@pytest.mark.parametrize(
    "templates, n, batch, message",
    [
        (np.ones((2, 1)), 0, 4, "num_positions must be >= 1"),
        (np.ones((0, 1)), 2, 4, "at least one template"),
        (np.float64(1.0), 2, 4, r"templates must have shape \[M"),
        (np.ones((2, 1)), 2, 0, "batch_size must be >= 1"),
    ],
)
def test_grid_tensor_bad_arguments(templates, n, batch, message):
  with pytest.raises(ValueError, match=message):
    gt.grid_tensor(lambda x: x.sum(axis=(1, 2)), templates, n, batch_size=batch)


def test_grid_tensor_rejects_wrong_score_shape_and_non_finite_scores():
  with pytest.raises(ValueError, match="one scalar score per input"):
    gt.grid_tensor(lambda x: x.sum(axis=2), np.ones((2, 1)), 2)
  with pytest.raises(ValueError, match="2 of 4 scores are not finite"):
    gt.grid_tensor(
        lambda x: np.where(x.sum(axis=(1, 2)) == 3.0, np.inf, 0.0),
        np.array([[1.0], [2.0]]),
        2,
    )


# -- partitions and matricization ----------------------------------------------


def test_partitions():
  assert gt.partition("odd_even", 5) == ((0, 2, 4), (1, 3))
  assert gt.partition("canonical", 4) == ((0, 2), (1, 3))
  assert gt.partition("left_right", 5) == ((0, 1), (2, 3, 4))
  assert gt.partition("left_right", 2) == ((0,), (1,))
  with pytest.raises(
      ValueError, match=r"unknown partition 'diagonal'.*odd_even"
  ):
    gt.partition("diagonal", 4)
  with pytest.raises(ValueError, match="needs N >= 2 positions, got 1"):
    gt.partition("odd_even", 1)


def test_matricize_matches_an_explicit_transpose_and_reshape():
  a = np.random.default_rng(1).normal(size=(2, 3, 4, 5))
  m = gt.matricize(a, (2, 0))
  expected = np.transpose(a, (2, 0, 1, 3)).reshape(8, 15)
  np.testing.assert_array_equal(m, expected)
  # Entry by entry: row = (d_2, d_0) row-major, column = (d_1, d_3).
  for d0, d1, d2, d3 in itertools.product(*map(range, a.shape)):
    assert m[d2 * 2 + d0, d1 * 5 + d3] == a[d0, d1, d2, d3]


def test_matricize_by_partition_name():
  a = np.random.default_rng(2).normal(size=(3,) * 5)
  m = gt.matricize(a, "odd_even")
  assert m.shape == (27, 9)
  for d in itertools.product(range(3), repeat=5):
    row = (d[0] * 3 + d[2]) * 3 + d[4]
    col = d[1] * 3 + d[3]
    assert m[row, col] == a[d]
  np.testing.assert_array_equal(gt.matricize(a, "left_right"), a.reshape(9, 27))


@pytest.mark.parametrize(
    "rows, message",
    [
        ((), "nonempty proper subset"),
        ((0, 1, 2), "nonempty proper subset"),
        ((0, 0), "repeat a position"),
        ((0, 3), r"\[3\] are outside 0..2"),
        ("upside_down", "unknown partition"),
    ],
)
def test_matricize_bad_partitions(rows, message):
  with pytest.raises(ValueError, match=message):
    gt.matricize(np.zeros((2, 2, 2)), rows)


def test_matricize_needs_two_positions():
  with pytest.raises(ValueError, match="at least 2 positions"):
    gt.matricize(np.zeros(3), (0,))


# -- numerical rank --------------------------------------------------------------


def test_numerical_rank_tolerance_follows_dtype_and_rtol():
  m = np.diag([1.0, 1e-3, 1e-9])
  assert gt.numerical_rank(m) == 3  # float64: tol = 3 * 2.2e-16
  assert gt.numerical_rank(m.astype(np.float32)) == 2  # tol = 3 * 1.2e-7
  assert gt.numerical_rank(m, rtol=1e-2) == 1
  assert gt.numerical_rank(np.zeros((3, 2))) == 0
  with pytest.raises(ValueError, match=r"rtol must be in \[0, 1\), got 1.5"):
    gt.numerical_rank(m, rtol=1.5)
  with pytest.raises(ValueError, match="need a 2-D matrix"):
    gt.numerical_rank(np.zeros((2, 2, 2)))


def test_default_rtol_is_numpys_matrix_rank_rule():
  assert gt.default_rtol((4, 9), np.float64) == 9 * np.finfo(np.float64).eps
  assert gt.default_rtol((4, 9), np.float32) == 9 * np.finfo(np.float32).eps


def test_sum_of_two_positions_has_rank_two():
  # Hand-checked: score(x_1, x_2) = x_1 + x_2 on scalar templates 0, 1, 2
  # gives A = [[0, 1, 2], [1, 2, 3], [2, 3, 4]] = t 1^T + 1 t^T: rank 2 (row
  # 3 = 2 * row 2 - row 1, and rows 1, 2 are independent).
  a = gt.grid_tensor(
      lambda x: x.sum(axis=(1, 2)), np.array([[0.0], [1.0], [2.0]]), 2
  )
  np.testing.assert_array_equal(a, [[0, 1, 2], [1, 2, 3], [2, 3, 4]])
  result = gt.matricization_rank(a, "odd_even")
  assert (result.rank, result.max_rank) == (2, 3)
  assert result.rows == (0,) and result.cols == (1,)


def _sum_of_products(weights):
  """score(x) = sum_z prod_i <weights[z, i], x_i>; weights [Z, N, c]."""

  def score(x):  # x [B, N, c]
    return np.einsum("zic,bic->bzi", weights, x).prod(axis=2).sum(axis=1)

  return score


@pytest.mark.parametrize("partition", ["odd_even", "left_right"])
def test_product_of_linear_functionals_has_rank_one(partition):
  # prod_i <a_i, x_i> gives A = v_1 (x) ... (x) v_N with v_i[m] = <a_i, t_m>:
  # every matricization is the outer product of two vectors, rank 1.
  rng = np.random.default_rng(3)
  templates = rng.normal(size=(3, 3))
  a = gt.grid_tensor(_sum_of_products(rng.normal(size=(1, 4, 3))), templates, 4)
  result = gt.matricization_rank(a, partition)
  assert result.rank == 1
  assert result.max_rank == 9
  assert result.gap > 1e10


@pytest.mark.parametrize("z, expected", [(1, 1), (3, 3), (4, 4), (6, 4)])
def test_sum_of_z_products_has_rank_min_z_and_bound(z, expected):
  # sum_{z<Z} prod_i <a_{z,i}, x_i> on M = 2 templates in R^2 (linearly
  # independent, so v_{z,i} = T a_{z,i} are generic vectors of R^2), N = 4.
  # Odd/even matricization: sum_z (v_{z,0} (x) v_{z,2}) (v_{z,1} (x) v_{z,3})^T,
  # a sum of Z rank-one 4 x 4 matrices, so rank <= min(Z, 2^2, 2^2) = min(Z,
  # 4). Generic rank-one tensors v (x) w (points of the irreducible,
  # nondegenerate Segre variety in R^4) are linearly independent up to the
  # ambient dimension 4, on both sides, so the rank is exactly min(Z, 4).
  rng = np.random.default_rng(z)
  templates = rng.normal(size=(2, 2))
  a = gt.grid_tensor(_sum_of_products(rng.normal(size=(z, 4, 2))), templates, 4)
  result = gt.matricization_rank(a, "odd_even")
  assert result.rank == expected
  assert result.max_rank == 4
  # The cut is clear: the dropped singular values are rounding noise.
  assert result.gap > 1e8


def test_rank_is_limited_by_the_template_span():
  # Templates in R^1 (c = 1 < M = 3): every <a, t_m> vector is a multiple of
  # t, so any sum of products has rank 1 however many terms it has.
  rng = np.random.default_rng(4)
  templates = rng.normal(size=(3, 1))
  a = gt.grid_tensor(_sum_of_products(rng.normal(size=(5, 4, 1))), templates, 4)
  assert gt.matricization_rank(a, "odd_even").rank == 1


def test_rank_result_fields_and_json():
  a = np.zeros((2, 2, 2))
  a[0, 0, 0] = 4.0
  a[1, 1, 1] = 1.0  # odd/even: rows (d0, d2), cols (d1,): two 1s -> rank 2
  result = gt.matricization_rank(a, "odd_even", rtol=0.1)
  assert result.rank == 2
  assert result.max_rank == 2
  np.testing.assert_allclose(result.singular_values, [1.0, 0.25])
  assert result.gap == math.inf
  record = json.loads(json.dumps(result.to_json()))
  assert record == {
      "rank": 2,
      "max_rank": 2,
      "rows": [0, 2],
      "cols": [1],
      "rtol": 0.1,
      "gap": None,
      "singular_values": [1.0, 0.25],
  }
  low = gt.matricization_rank(a, "odd_even", rtol=0.5)
  assert (low.rank, low.gap) == (1, 4.0)
  zero = gt.matricization_rank(np.zeros((2, 2)), (0,))
  assert zero.rank == 0 and math.isnan(zero.gap)


def test_max_rank():
  assert gt.max_rank((3, 3, 3, 3, 3), "odd_even") == 9
  assert gt.max_rank((2, 3, 4), (1,)) == 3
  assert gt.max_rank((2, 3, 4), "left_right") == 2


# -- ConvAC probes ----------------------------------------------------------------


def _shallow_reference(params, inputs, kernel):
  """Raw score of the shallow 1-D ConvAC in float64 with explicit loops:
  conv (1, k) stride 1 'SAME' (XLA pads k - 1 zeros, the extra one at the
  end), product over all positions, head."""
  w = np.asarray(params["convac/conv_0"]["w"], np.float64)[0, :, :, :, 0]
  head = np.asarray(params["convac/head"]["w"], np.float64)[:, 0]
  b, n = inputs.shape[:2]
  lo = (kernel - 1) // 2
  scores = np.zeros(b)
  for i in range(b):
    prod = np.ones(w.shape[-1])
    for j in range(n):
      out = np.zeros(w.shape[-1])
      for t in range(kernel):
        pos = j + t - lo
        if 0 <= pos < n:
          out += inputs[i, pos] @ w[t]
      prod *= out
    scores[i] = prod @ head
  return scores


def test_convac_probe_score_matches_a_float64_loop():
  cfg = gt.convac_probe_config(kernel=3, channels=2)
  probe = gt.make_convac_probe(cfg, num_positions=5, input_channels=3, seed=1)
  assert probe.dtype == "float64"
  # conv w [1, 3, 3, 2, 1] and head w [2, 1]: no other parameter.
  assert probe.num_params == 3 * 3 * 2 + 2
  inputs = np.random.default_rng(0).normal(size=(7, 5, 3))
  scores = probe(inputs)
  assert scores.dtype == np.float64 and scores.shape == (7,)
  np.testing.assert_allclose(
      scores, _shallow_reference(probe.params, inputs, 3), rtol=1e-12
  )
  # float32 evaluation of the same weights agrees to float32 precision
  # (a float32 init draws different numbers, so the weights are cast).
  probe32 = gt.make_convac_probe(
      cfg, num_positions=5, input_channels=3, seed=1, dtype="float32"
  )
  probe32 = dataclasses.replace(
      probe32,
      params=jax.tree.map(lambda p: np.asarray(p, np.float32), probe.params),
  )
  scores32 = probe32(inputs.astype(np.float32))
  assert scores32.dtype == np.float32
  np.testing.assert_allclose(scores32, scores, rtol=1e-4)


def test_convac_probe_seeds_share_one_compiled_function():
  cfg = gt.convac_probe_config(kernel=3, channels=2)
  a = gt.make_convac_probe(cfg, num_positions=5, input_channels=3, seed=1)
  b = gt.make_convac_probe(cfg, num_positions=5, input_channels=3, seed=2)
  assert a._apply is b._apply
  assert not np.allclose(
      a.params["convac/conv_0"]["w"], b.params["convac/conv_0"]["w"]
  )


def _probe_ranks(cfg, num_positions, num_templates, seed=0):
  probe = gt.make_convac_probe(
      cfg, num_positions=num_positions, input_channels=num_templates, seed=seed
  )
  t = gt.random_templates(num_templates, num_templates, seed=seed + 100)
  a = gt.grid_tensor(probe, t, num_positions)
  return {
      p: gt.matricization_rank(a, p, rtol=1e-10)
      for p in ("odd_even", "left_right")
  }


def test_shallow_non_overlapping_convac_has_rank_z():
  # 1x1 conv with Z channels, global product pooling, head h:
  #   score = sum_c h_c prod_i (W x_i)_c.
  # For any partition (I, J) this is sum_c h_c [prod_{i in I} (W x_i)_c]
  # [prod_{j in J} (W x_j)_c]: Z rank-one terms, so rank <= Z. The row
  # tensors v_c (x) v_c (v_c = T W_c in R^3, generic) are linearly
  # independent for Z <= dim Sym^2(R^3) = 6, so the rank is exactly Z.
  ranks = _probe_ranks(gt.convac_probe_config(kernel=1, channels=3), 4, 3)
  assert ranks["odd_even"].rank == 3
  assert ranks["left_right"].rank == 3
  assert ranks["odd_even"].max_rank == 9


def test_deep_non_overlapping_convac_ranks_depend_on_the_partition():
  # N = 4, two blocks of 1x1 conv (W1, W2; Z = 2) + product pooling of pairs,
  # head h. Block 1: y_{p,a} = (W1 x_{2p})_a (W1 x_{2p+1})_a; block 2:
  # z_{p,c} = sum_a W2_ac y_{p,a}; score = sum_c h_c z_{0,c} z_{1,c}.
  # left/right ({x0, x1} | {x2, x3}): sum over c of (function of the left
  # pair) x (function of the right pair): rank <= Z = 2.
  # odd/even ({x0, x2} | {x1, x3}): score = sum_{a,b} K_ab [(W1x0)_a
  # (W1x2)_b] [(W1x1)_a (W1x3)_b], K_ab = sum_c h_c W2_ac W2_bc, a sum of Z^2
  # = 4 separable terms whose row (and column) tensors v_a (x) v_b are
  # linearly independent in R^9 for generic v_1, v_2 in R^3: rank exactly
  # 4 when all K_ab != 0 (generic).
  cfg = gt.convac_probe_config(kernel=1, channels=2, depth=2, pool=2)
  ranks = _probe_ranks(cfg, 4, 3)
  assert ranks["left_right"].rank == 2
  assert ranks["odd_even"].rank == 4


def test_overlap_exceeds_the_non_overlapping_bound():
  # Z = 1: without overlap (k = 1) the rank is 1 (the test above with Z = 1).
  # With k = 2 ('SAME', the pad at the end) the score is
  #   w (a0 + b1)(a1 + b2)(a2 + b3) a3,  a_i = <u, x_i>, b_i = <v, x_i>.
  # left/right ({x0, x1} | {x2, x3}): only (a1 + b2) straddles the cut, so
  # the score is [(a0 + b1) a1][(a2 + b3) a3] + [a0 + b1][b2 (a2 + b3) a3]:
  # rank exactly 2 (generic u, v).
  # odd/even ({x0, x2} | {x1, x3}): expanding gives 8 separable terms with
  # row functions in {1, a} (x) {1, a, b, ab} (ab = a * b elementwise).
  # Over M = 3 generic templates 1, a, b span R^3, so ab = al 1 + be a + ga b
  # and the score is a sum of 6 terms with independent row tensors
  # {1, a} (x) {1, a, b}; their 6 column tensors, in the basis {1, a, b} (x)
  # {a, ab}, form the matrix
  #   [[0, 0, al, al, be, ga], [al, be, ga + be, 0, 0, 0], [0, 0, ga, 0, 0, 1],
  #    [al, 0, 0, 0, 1, 0], [be, 1, 0, 0, 0, 0], [ga, 0, 0, 1, 0, 0]],
  # whose determinant is a nonzero polynomial in (al, be, ga): rank 6.
  ranks = _probe_ranks(gt.convac_probe_config(kernel=2, channels=1), 4, 3)
  assert ranks["left_right"].rank == 2
  assert ranks["odd_even"].rank == 6


def test_convac_probe_errors():
  with pytest.raises(ValueError, match="depth must be >= 1 block, got 0"):
    gt.convac_probe_config(kernel=1, channels=2, depth=0)
  with pytest.raises(ValueError, match="padding"):
    gt.convac_probe_config(kernel=1, channels=2, padding="FULL")
  cfg = gt.convac_probe_config(kernel=1, channels=2)
  with pytest.raises(ValueError, match="dtype must be 'float64' or 'float32'"):
    gt.make_convac_probe(cfg, num_positions=4, input_channels=2, dtype="int8")
  with pytest.raises(ValueError, match="num_positions >= 1"):
    gt.make_convac_probe(cfg, num_positions=0, input_channels=2)
  convnet = {**cfg, "kind": "convnet"}
  with pytest.raises(ValueError, match="kind='convac'"):
    gt.make_convac_probe(convnet, num_positions=4, input_channels=2)
  probe = gt.make_convac_probe(cfg, num_positions=4, input_channels=2)
  with pytest.raises(ValueError, match=r"inputs must be \[B, N=4, c=2\]"):
    probe(np.zeros((3, 5, 2)))


def test_random_templates():
  t = gt.random_templates(4, 6, seed=3)
  assert t.shape == (4, 6)
  np.testing.assert_allclose(t @ t.T, np.eye(4), atol=1e-12)
  np.testing.assert_array_equal(t, gt.random_templates(4, 6, seed=3))
  assert not np.allclose(t, gt.random_templates(4, 6, seed=4))
  # More templates than channels: unit-norm rows.
  wide = gt.random_templates(5, 2, seed=0)
  assert wide.shape == (5, 2)
  np.testing.assert_allclose(np.linalg.norm(wide, axis=1), 1.0)
  with pytest.raises(ValueError, match="M=0, c=2"):
    gt.random_templates(0, 2)
