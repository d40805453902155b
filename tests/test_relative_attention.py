"""Tests for the Transformer-XL relative multi-head attention layer."""

import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import algebras, layers, metrics
from algebranets.layers import relative_attention as ra
from tests import reference_products as ref
from tests import tolerances

# Strict numerics for every test here (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("strict_numerics")

B, T, M = 2, 4, 3


def _rand(seed, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _layer(num_heads, alg, **kw):
  kw.setdefault("init_std", 0.3)  # Large enough for non-uniform attention.

  def f(x, r, u, v, mems, mask, is_training=False):
    return ra.RelativeMultiHeadAttention(num_heads, alg, name="rel", **kw)(
        x, r, u, v, mems=mems, mask=mask, is_training=is_training
    )

  return hk.transform(f)


def _inputs(alg, c, h, mlen, seed=0):
  d = algebras.get(alg).dim
  x = _rand(seed, (B, T, c, d))
  mems = _rand(seed + 1, (B, mlen, c, d)) if mlen else None
  r = _rand(seed + 2, (mlen + T, c, d))
  u = _rand(seed + 3, (h, c // h, d), 0.5)
  v = _rand(seed + 4, (h, c // h, d), 0.5)
  return x, r, u, v, mems


def _causal(t, mlen):
  return jnp.asarray(
      np.arange(mlen + t)[None, :] <= np.arange(t)[:, None] + mlen
  )


def _ref_linear(x, w, prod):
  """y_m = sum_n w_nm x_n with the textbook product, weight on the left."""
  w = np.asarray(w, np.float64)
  return prod(w, x[..., :, None, :]).sum(axis=-3)


def _ref_attention(x, r, u, v, mems, mask, params, num_heads, prod):
  """Explicit float64 TXL attention: no shift trick, one (i, j) at a time."""
  f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
  x, r, u, v = f64(x), f64(r), f64(u), f64(v)
  mlen = 0 if mems is None else mems.shape[1]
  cat = x if mems is None else np.concatenate([f64(mems), x], axis=1)
  b, t, c, d = x.shape
  klen = mlen + t
  h, dh = num_heads, (c // num_heads) * d

  def proj(a, n):
    return _ref_linear(a, params[f"rel/{n}"]["w"], prod)

  q = proj(x, "query").reshape(b, t, h, dh)
  k = proj(cat, "key").reshape(b, klen, h, dh)
  val = proj(cat, "value").reshape(b, klen, h, dh)
  rk = proj(r, "position").reshape(klen, h, dh)
  u, v = u.reshape(h, dh), v.reshape(h, dh)
  mask = np.broadcast_to(np.asarray(mask), (t, klen))
  out = np.zeros((b, t, h, dh))
  for bi in range(b):
    for hi in range(h):
      for i in range(t):
        scores = np.full(klen, -np.inf)
        for j in range(klen):
          if not mask[i, j]:
            continue
          dist = i - j + mlen  # R_dist is row klen - 1 - dist of r.
          content = (q[bi, i, hi] + u[hi]) @ k[bi, j, hi]
          position = (q[bi, i, hi] + v[hi]) @ rk[klen - 1 - dist, hi]
          scores[j] = (content + position) / np.sqrt(dh)
        p = np.exp(scores - scores.max())
        p /= p.sum()
        out[bi, i, hi] = p @ val[bi, :, hi]
  return proj(out.reshape(b, t, c, d), "output")


@pytest.mark.parametrize("name", ["R", "C", "H"])
@pytest.mark.parametrize("mlen", [0, M])
def test_matches_float64_reference(name, mlen):
  alg, prod = ref.CASES[name]
  c, h = 4, 2
  x, r, u, v, mems = _inputs(alg, c, h, mlen)
  # A random mask inside the causal one (the diagonal always allowed).
  keep = np.random.default_rng(9).random((T, mlen + T)) < 0.7
  keep[np.arange(T), mlen + np.arange(T)] = True
  mask = jnp.asarray(keep) & _causal(T, mlen)
  model = _layer(h, alg)
  params = model.init(jax.random.key(1), x, r, u, v, mems, mask)
  y = model.apply(params, None, x, r, u, v, mems, mask)
  want = _ref_attention(x, r, u, v, mems, mask, params, h, prod)
  assert y.shape == x.shape and y.dtype == jnp.float32
  # In float64 (the layer computes in x's dtype): float32 sums in a
  # CPU-dependent order would measure the CPU (issue 16). The softmax is
  # float32 by design: probabilities within an ulp or two, then one float64
  # weighted sum and projection, so a few float32 ulps of the output.
  f64 = functools.partial(jax.tree.map, lambda a: np.asarray(a, np.float64))
  with jax.enable_x64(True):
    args = (f64(params), None, *f64((x, r, u, v, mems)), mask)
    y = model.apply(*args)
    assert tolerances.float32_products(model.apply, *args) == []
  assert y.dtype == np.float64
  tol = tolerances.ulps32(np.abs(want).max(), k=8)
  np.testing.assert_allclose(y, want, rtol=0, atol=tol)
  # The bound can fail: inputs 1e-5 off (relative) are caught.
  off = _ref_attention(
      np.asarray(x, np.float64) * (1 + 1e-5),
      r,
      u,
      v,
      mems,
      mask,
      params,
      h,
      prod,
  )
  assert np.abs(off - want).max() > tol


def _txl_rel_shift(x):
  """TXL's _rel_shift by its flat-index definition (numpy, [T, K])."""
  t, k = x.shape
  padded = np.concatenate([np.zeros((t, 1)), x], axis=1).reshape(-1)
  return padded[t:].reshape(t, k)


@pytest.mark.parametrize("t,k", [(3, 3), (3, 7), (1, 4), (5, 9)])
def test_rel_shift(t, k):
  x = np.arange(1, t * k + 1, dtype=np.float64).reshape(t, k)
  y = np.asarray(ra.rel_shift(jnp.asarray(x[None, None])))[0, 0]
  np.testing.assert_array_equal(y, _txl_rel_shift(x))
  # The causal region reads row k = j + T - 1 - i (distance K - T + i - j).
  for i in range(t):
    for j in range(k):
      if j <= i + k - t:
        assert y[i, j] == x[i, j + t - 1 - i]


@pytest.mark.parametrize("width,clamp", [(8, -1), (7, -1), (6, 2), (6, 0)])
def test_relative_positions(width, clamp):
  klen = 5
  got = np.asarray(ra.relative_positions(klen, width, clamp_len=clamp))
  pos = np.arange(klen - 1, -1, -1, dtype=np.float64)
  if clamp > 0:
    pos = np.minimum(pos, clamp)
  half = (width + 1) // 2
  inv = 1.0 / 10000.0 ** (np.arange(0, 2 * half, 2) / width)
  want = np.concatenate(
      [np.sin(pos[:, None] * inv), np.cos(pos[:, None] * inv)], 1
  )
  assert got.shape == (klen, width)
  np.testing.assert_allclose(got, want[:, :width], rtol=1e-5, atol=1e-6)
  if clamp > 0:  # Distances >= clamp share one row.
    np.testing.assert_array_equal(got[: klen - clamp], got[:1].repeat(3, 0))


def test_parameters_and_macs():
  c, h, d = 4, 2, 4
  x, r, u, v, mems = _inputs("H", c, h, M)
  mask = _causal(T, M)
  model = _layer(h, "H")
  params = model.init(jax.random.key(0), x, r, u, v, mems, mask)
  assert sorted(params) == [
      f"rel/{n}" for n in ("key", "output", "position", "query", "value")
  ]
  for p in params.values():
    assert list(p) == ["w"]  # No biases (TXL).
    assert p["w"].shape == (c, c, d)
  assert metrics.count_params(params) == 5 * c * c * d

  def f(x, r, u, v, mems):
    return ra.RelativeMultiHeadAttention(h, "H")(
        x, r, u, v, mems=mems, mask=mask, is_training=False
    )

  report = metrics.count_macs(f, x, r, u, v, mems)
  k = M + T
  # Queries and outputs on T positions, keys/values on K, positions on K.
  want = B * (2 * T + 2 * k) * c * c * 16 + k * c * c * 16
  assert report.total == want
  assert not report.uncounted


@pytest.mark.parametrize("name,factor", [("R", 1.0), ("H", 1.0), ("M2R", 2)])
def test_init_matches_real_variance(name, factor):
  assert ra.algebra_std(name, 0.02) == pytest.approx(0.02 * np.sqrt(factor))
  # Each output component has the variance of a real layer of width C * d:
  # C * d * std^2 for unit inputs.
  d = algebras.get(name).dim
  c, std = 256 // d, 0.05
  x = _rand(0, (64, 1, c, d))
  f = hk.transform(
      lambda x: ra.RelativeMultiHeadAttention(1, name, init_std=std)._linear(
          c, "query"
      )(x)
  )
  y = f.apply(f.init(jax.random.key(1), x), None, x)
  np.testing.assert_allclose(
      np.var(np.asarray(y), axis=(0, 1, 2)), c * d * std**2, rtol=0.2
  )


def test_attention_dropout_only_when_training():
  c, h = 4, 2
  x, r, u, v, mems = _inputs("C", c, h, M)
  mask = _causal(T, M)
  model = _layer(h, "C", attention_dropout_rate=0.5)
  params = model.init(jax.random.key(0), x, r, u, v, mems, mask)
  ref_model = _layer(h, "C")
  base = ref_model.apply(params, None, x, r, u, v, mems, mask)
  evaluated = model.apply(params, None, x, r, u, v, mems, mask)
  np.testing.assert_array_equal(evaluated, base)
  rng = jax.random.key(5)
  trained = model.apply(params, rng, x, r, u, v, mems, mask, True)
  assert np.abs(np.asarray(trained - base)).max() > 1e-3
  again = model.apply(params, rng, x, r, u, v, mems, mask, True)
  np.testing.assert_array_equal(trained, again)


def test_bfloat16():
  c, h = 4, 2
  x, r, u, v, mems = _inputs("M2R", c, h, M)
  mask = _causal(T, M)
  model = _layer(h, "M2R")
  params = model.init(jax.random.key(0), x, r, u, v, mems, mask)
  want = model.apply(params, None, x, r, u, v, mems, mask)
  bf = jnp.bfloat16
  params16 = jax.tree.map(lambda a: a.astype(bf), params)
  y = model.apply(params16, None, x.astype(bf), r.astype(bf), u, v, mems, mask)
  assert y.dtype == bf
  np.testing.assert_allclose(
      np.asarray(y, np.float32), want, rtol=0.1, atol=0.1
  )


def test_exported_from_layers():
  assert layers.RelativeMultiHeadAttention is ra.RelativeMultiHeadAttention
  assert layers.relative_attention is ra


@pytest.mark.parametrize(
    "what,message",
    [
        ("heads", "not divisible by num_heads=3"),
        ("mask_dtype", "mask must be boolean"),
        ("mask_shape", "mask must be [T, K]"),
        ("r", "r must be [K, C, d] = [7, 4, 2]"),
        ("bias", "r_w_bias must be [H, C/H, d] = [2, 2, 2]"),
        ("mems", "mems must be [B, M, C, d]"),
        ("x", "expected a rank-4 input"),
    ],
)
def test_errors(what, message):
  c, h = 4, 2
  x, r, u, v, mems = _inputs("C", c, h, M)
  mask = _causal(T, M)
  heads = 3 if what == "heads" else h
  if what == "mask_dtype":
    mask = mask.astype(jnp.int32)
  elif what == "mask_shape":
    mask = mask[:, :-1]
  elif what == "r":
    r = r[1:]
  elif what == "bias":
    u = u[:, :1]
  elif what == "mems":
    mems = mems[:1]
  elif what == "x":
    x = x[0]
  model = _layer(heads, "C")
  with pytest.raises(ValueError) as e:
    model.init(jax.random.key(0), x, r, u, v, mems, mask)
  assert message in str(e.value)


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(num_heads=0), "num_heads must be a positive int"),
        (dict(attention_dropout_rate=1.0), "attention_dropout_rate must be"),
        (dict(init_std=0.0), "init_std must be > 0"),
        (dict(kernel_path="bogus"), "unknown path 'bogus'"),
    ],
)
def test_constructor_errors(kw, message):
  kw = {"num_heads": 2, **kw}
  with pytest.raises(ValueError, match=message):
    hk.transform(lambda: ra.RelativeMultiHeadAttention(algebra="C", **kw)).init(
        None
    )
