"""Tests for the algebra-valued multi-head self-attention layer."""

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util as jtu

from algebranets import algebras, layers, metrics
from algebranets import layout as layout_lib
from algebranets.layers import attention
from tests import reference_products as ref
from tests import tolerances

TOL = dict(rtol=1e-5, atol=1e-5)
B, T = 2, 5


# Strict numerics for every test here (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("strict_numerics")


def _model(num_heads, alg, **kw):
  def f(x, mask=None):
    return attention.MultiHeadAttention(num_heads, alg, name="mha", **kw)(
        x, mask=mask
    )

  return hk.without_apply_rng(hk.transform(f))


def _rand(seed, shape, dtype=jnp.float32):
  return jax.random.normal(jax.random.key(seed), shape, dtype)


def _random_biases(params, seed=3):
  # Biases start at zero; random ones make the reference check cover them.
  out = {}
  for i, (mod, ps) in enumerate(sorted(params.items())):
    out[mod] = {**ps, "b": _rand(seed + i, ps["b"].shape)}
  return out


def _f64(tree):
  return jax.tree.map(lambda v: np.asarray(v, np.float64), tree)


def _tol(want, n):
  """Float64 rounding of the four chained projections/products, length n."""
  return tolerances.float64_error(n, np.abs(want).max(), depth=4)


def _ref_linear(x, p, prod):
  """y_m = sum_n w_nm x_n + b_m with the textbook product, weight on the left."""
  w, b = np.asarray(p["w"], np.float64), np.asarray(p["b"], np.float64)
  return prod(w[None, None], x[:, :, :, None, :]).sum(axis=2) + b


def _ref_attention(x, params, num_heads, prod, mask=None, causal=True):
  """float64 numpy multi-head attention on x [B, T, C, d]."""
  x = np.asarray(x, np.float64)
  b, t, c, d = x.shape
  q, k, v = (
      _ref_linear(x, params[f"mha/{n}"], prod)
      for n in ("query", "key", "value")
  )
  dh = (c // num_heads) * d

  def heads(a):  # Head h owns algebra channels h*c/H .. (h+1)*c/H - 1.
    return a.reshape(b, t, num_heads, dh)

  scores = np.einsum("bthk,bshk->bhts", heads(q), heads(k)) / np.sqrt(dh)
  allowed = np.ones((b, 1, t, t), bool)
  if causal:
    allowed &= np.tril(np.ones((t, t), bool))
  if mask is not None:
    allowed &= np.asarray(mask)[:, None]
  scores = np.where(allowed, scores, -np.inf)
  p = np.exp(scores - scores.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  o = np.einsum("bhts,bshk->bthk", p, heads(v)).reshape(b, t, c, d)
  return _ref_linear(o, params["mha/output"], prod)


@pytest.mark.parametrize("name", ["R", "C", "H", "M2R"])
def test_matches_float64_reference(name):
  alg, prod = ref.CASES[name]
  d = algebras.get(alg).dim
  x = _rand(0, (B, T, 4, d))
  model = _model(2, alg)
  params = _random_biases(model.init(jax.random.key(1), x))
  y = model.apply(params, x)
  assert y.shape == x.shape and y.dtype == x.dtype
  # In float64 (the layer computes in its input's dtype, softmax included):
  # float32 sums in a CPU-dependent order would measure the CPU (issue 16).
  want = _ref_attention(x, params, 2, prod)
  with jax.enable_x64(True):
    y = model.apply(_f64(params), _f64(x))
  assert y.dtype == np.float64
  tol = _tol(want, 4 * d)
  np.testing.assert_allclose(y, want, rtol=0, atol=tol)
  # The bound can fail: inputs 1e-9 off (relative) are caught.
  off = _ref_attention(np.asarray(x, np.float64) * (1 + 1e-9), params, 2, prod)
  assert np.abs(off - want).max() > tol


def test_extra_mask_and_non_causal_match_reference():
  x = _rand(0, (B, T, 4, 4))
  mask = jax.random.bernoulli(jax.random.key(2), 0.6, (B, T, T))
  mask = mask | jnp.eye(T, dtype=bool)[None]  # Every query sees one key.
  for causal in (True, False):
    model = _model(4, "H", causal=causal)
    params = _random_biases(model.init(jax.random.key(1), x))
    want = _ref_attention(x, params, 4, ref.hamilton, mask, causal=causal)
    with jax.enable_x64(True):
      y = model.apply(_f64(params), _f64(x), mask)
    np.testing.assert_allclose(y, want, rtol=0, atol=_tol(want, 16))


def test_mask_shapes_broadcast_alike():
  x = _rand(0, (B, T, 4, 4))
  model = _model(2, "H", causal=False)
  params = model.init(jax.random.key(1), x)
  m = jax.random.bernoulli(jax.random.key(2), 0.6, (T, T)) | jnp.eye(
      T, dtype=bool
  )
  y2 = model.apply(params, x, m)
  y3 = model.apply(params, x, jnp.broadcast_to(m, (B, T, T)))
  y4 = model.apply(params, x, jnp.broadcast_to(m, (B, 2, T, T)))
  np.testing.assert_allclose(y2, y3, **TOL)
  np.testing.assert_allclose(y2, y4, **TOL)
  assert not np.allclose(y2, model.apply(params, x))  # The mask mattered.


def test_causal_mask():
  np.testing.assert_array_equal(
      attention.causal_mask(3),
      [[True, False, False], [True, True, False], [True, True, True]],
  )


@pytest.mark.parametrize("causal", [True, False])
def test_causality(causal):
  x = _rand(0, (B, T, 4, 4))
  model = _model(2, "M2R", causal=causal)
  params = model.init(jax.random.key(1), x)
  t = 2
  x2 = x.at[:, t + 1 :].set(_rand(5, (B, T - t - 1, 4, 4)))
  y, y2 = model.apply(params, x), model.apply(params, x2)
  assert not np.allclose(y[:, t + 1 :], y2[:, t + 1 :])
  if causal:
    np.testing.assert_allclose(y[:, : t + 1], y2[:, : t + 1], **TOL)
  else:  # Without the mask, the future leaks into the past.
    assert not np.allclose(y[:, : t + 1], y2[:, : t + 1])


@pytest.mark.parametrize("name", ["M2R", "M2C"])
def test_folded_equals_standard(name):
  d = algebras.get(name).dim
  x = _rand(0, (B, T, 4, d))
  std = _model(2, name)
  params = _random_biases(std.init(jax.random.key(1), x))
  fold = _model(2, name, layout="folded")
  x_f = layout_lib.fold(x, name)
  assert jax.tree.map(jnp.shape, fold.init(jax.random.key(1), x_f)) == (
      jax.tree.map(jnp.shape, params)
  )
  y_f = fold.apply(params, x_f)
  assert y_f.shape == x_f.shape
  np.testing.assert_allclose(
      layout_lib.unfold(y_f, name), std.apply(params, x), **TOL
  )


def test_parameters():
  x = _rand(0, (B, T, 6, 4))
  params = _model(3, "H").init(jax.random.key(1), x)
  assert set(params) == {
      f"mha/{n}" for n in ("query", "key", "value", "output")
  }
  for p in params.values():
    assert p["w"].shape == (6, 6, 4) and p["b"].shape == (6, 4)


def test_channels_not_divisible_by_heads():
  x = _rand(0, (B, T, 6, 4))
  with pytest.raises(ValueError, match=r"C=6.*num_heads=4") as err:
    _model(4, "H").init(jax.random.key(1), x)
  assert "e.g. 3" in str(err.value)


@pytest.mark.parametrize(
    ("shape", "layout", "match"),
    [
        ((T, 4, 4), "standard", "rank-4"),
        ((B, T, 4, 3), "standard", "d=4"),
        ((B, T, 4, 4), "folded", "rank-5"),
        ((3, B, T, 4, 2), "folded", "folded input"),
    ],
)
def test_bad_input_shapes(shape, layout, match):
  alg = "M2R"
  with pytest.raises(ValueError, match=match):
    _model(2, alg, layout=layout).init(jax.random.key(1), jnp.ones(shape))


def test_bad_masks():
  x = _rand(0, (B, T, 4, 4))
  model = _model(2, "H")
  params = model.init(jax.random.key(1), x)
  with pytest.raises(ValueError, match="boolean"):
    model.apply(params, x, jnp.ones((B, T, T)))
  with pytest.raises(ValueError, match=r"T=5"):
    model.apply(params, x, jnp.ones((B, T, T + 1), bool))


def test_bad_constructor_arguments():
  with pytest.raises(ValueError, match="num_heads"):
    _model(0, "H").init(jax.random.key(0), jnp.ones((B, T, 4, 4)))
  with pytest.raises(ValueError, match="is not one"):
    _model(2, "H", layout="folded").init(jax.random.key(0), jnp.ones((1,)))


def test_fully_masked_query_is_finite():
  x = _rand(0, (B, T, 4, 4))
  model = _model(2, "H", causal=False)
  params = model.init(jax.random.key(1), x)
  y = model.apply(params, x, jnp.zeros((B, T, T), bool))
  assert np.isfinite(np.asarray(y)).all()


def test_bfloat16():
  x = _rand(0, (B, T, 4, 4))
  model = _model(2, "M2R")
  params = model.init(jax.random.key(1), x.astype(jnp.bfloat16))
  assert all(
      leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(params)
  )  # dtype follows the input
  y = model.apply(params, x.astype(jnp.bfloat16))
  assert y.dtype == jnp.bfloat16
  assert np.isfinite(np.asarray(y, np.float32)).all()
  params32 = jax.tree.map(lambda p: p.astype(jnp.float32), params)
  want = model.apply(params32, x.astype(jnp.bfloat16).astype(jnp.float32))
  np.testing.assert_allclose(
      np.asarray(y, np.float32), want, rtol=0.05, atol=0.05
  )


def test_gradients():
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.key(0), (1, 3, 2, 4), jnp.float64)
    model = _model(2, "H")
    params = _random_biases(model.init(jax.random.key(1), x))
    params = jax.tree.map(lambda p: p.astype(jnp.float64), params)
    jtu.check_grads(
        model.apply, (params, x), order=1, modes=["rev"], atol=1e-5, rtol=1e-5
    )


def test_mac_count_excludes_scores_and_values():
  c, h = 8, 2
  alg = algebras.get("M2R")

  def f(x):
    return layers.MultiHeadAttention(h, alg)(x)

  report = metrics.count_macs(
      f, jax.ShapeDtypeStruct((B, T, c, alg.dim), jnp.float32)
  )
  assert report.uncounted == ()
  assert len(report.rows) == 4  # query, key, value, output
  assert report.total == 4 * B * T * c * c * alg.macs_per_product


def test_output_gain_scales_only_the_output_projection():
  x = _rand(0, (B, T, 4, 4))
  params = _model(2, "H", output_gain=0.0).init(jax.random.key(1), x)
  assert not np.any(params["mha/output"]["w"])  # Zero-variance init.
  assert np.any(params["mha/query"]["w"])
  ref_params = _model(2, "H", gain=0.5).init(jax.random.key(1), x)
  np.testing.assert_allclose(  # output_gain=None follows gain.
      ref_params["mha/output"]["w"],
      0.5 * _model(2, "H").init(jax.random.key(1), x)["mha/output"]["w"],
      rtol=1e-6,
  )
