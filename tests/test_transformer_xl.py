"""Tests for the algebra-valued Transformer-XL language model."""

import functools
import re

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from algebranets import algebras, metrics, models
from algebranets.models import transformer_xl as txl
from tests import reference_products as ref
from tests import tolerances

# Strict numerics for every test here (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("strict_numerics")

V, B = 11, 2


def _txl(
    vocab_size,
    num_layers,
    num_channels,
    num_heads,
    d_inner_channels,
    algebra,
    **kw,
):
  """TransformerXL stated in algebra channels (C, F) as the numerics tests
  reason, with no dropout and no memory unless given (the constructor's
  own defaults are the enwik8 config's)."""
  d = algebras.get(algebra).dim
  return txl.TransformerXL(
      vocab_size,
      algebra=algebra,
      num_layers=num_layers,
      d_model=num_channels * d,
      num_heads=num_heads,
      d_inner=d_inner_channels * d,
      **{"dropout_rate": 0.0, "mem_len": 0, **kw},
  )


def _model(**kw):
  """hk.transform of model(tokens, targets, mems, is_training, num_valid)."""
  cfg = dict(
      vocab_size=V,
      num_layers=2,
      num_channels=4,
      num_heads=2,
      d_inner_channels=8,
      algebra="H",
      mem_len=6,
      init_std=0.3,  # Non-uniform attention, so memory visibly matters.
  )
  cfg.update(kw)

  def f(tokens, targets, mems=None, is_training=False, num_valid=None):
    model = _txl(**cfg)
    return model(
        tokens, targets, mems, is_training=is_training, num_valid_mems=num_valid
    )

  return hk.transform(f)


def _log_prob_model(**kw):
  cfg = dict(
      vocab_size=V,
      num_layers=2,
      num_channels=4,
      num_heads=2,
      d_inner_channels=8,
      algebra="H",
      mem_len=8,
      init_std=0.3,
  )
  cfg.update(kw)

  def f(tokens, mems=None, num_valid=None):
    return _txl(**cfg).log_prob(tokens, mems, num_valid_mems=num_valid)

  return hk.without_apply_rng(hk.transform(f))


def _tokens(t, seed=0, batch=B):
  data = jax.random.randint(jax.random.key(seed), (batch, t + 1), 0, V)
  return data[:, :-1], data[:, 1:]


def _perturbed(params, scale=0.1, seed=7):
  """Every parameter (LN scale/offset, biases included) made non-trivial."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(
      tree,
      [
          a + scale * jax.random.normal(k, a.shape, a.dtype)
          for a, k in zip(leaves, keys, strict=True)
      ],
  )


# -- float64 reference of the whole network ---------------------------------


def _np(params, name):
  return {
      k: np.asarray(v, np.float64)
      for k, v in params[f"transformer_xl/{name}"].items()
  }


def _ref_linear(x, w, prod, b=None):
  y = prod(w, x[..., :, None, :]).sum(axis=-3)
  return y if b is None else y + b


def _ref_ln(x, p):
  mean = x.mean(axis=(-2, -1), keepdims=True)
  var = ((x - mean) ** 2).mean(axis=(-2, -1), keepdims=True)
  return (x - mean) / np.sqrt(var + 1e-5) * p["scale"] + p["offset"]


def _ref_forward(params, tokens, targets, mems, *, prod, heads, pre_norm):
  """Float64 numpy TXL (post- or pre-norm), scores per (i, j, distance)."""
  tokens, targets = np.asarray(tokens), np.asarray(targets)
  table = _np(params, "embed")["embeddings"]
  vocab, c, d = table.shape
  width, dh = c * d, (c // heads) * d
  num_layers = len([k for k in params if k.endswith("/ffn_in")])
  b, t = tokens.shape
  mlen = 0 if mems is None else mems.shape[2]
  klen = mlen + t
  pos = np.arange(klen - 1, -1, -1, dtype=np.float64)
  inv = 1.0 / 10000 ** (np.arange(0, width, 2) / width)
  r = np.concatenate(
      [np.sin(pos[:, None] * inv), np.cos(pos[:, None] * inv)], axis=1
  ).reshape(klen, c, d)
  biases = _np(params, "relative_bias")
  u = biases["r_w_bias"].reshape(heads, dh)
  v = biases["r_r_bias"].reshape(heads, dh)
  # TXL's mask (True = masked): triu(ones, 1 + mlen).
  masked = np.triu(np.ones((t, klen)), 1 + mlen).astype(bool)
  x = table[tokens] * np.sqrt(width)
  hids = []
  for layer in range(num_layers):
    hids.append(x)

    def p(name, layer=layer):
      return _np(params, f"layer_{layer}/{name}")

    def attend(h, mem_h, layer=layer):
      cat = h if mem_h is None else np.concatenate([mem_h, h], axis=1)

      def proj(a, n):
        return _ref_linear(
            a, _np(params, f"layer_{layer}/attention/{n}")["w"], prod
        )

      q = proj(h, "query").reshape(b, t, heads, dh)
      k = proj(cat, "key").reshape(b, klen, heads, dh)
      val = proj(cat, "value").reshape(b, klen, heads, dh)
      rk = proj(r, "position").reshape(klen, heads, dh)
      # R at distance i - j + mlen is row klen - 1 - (i - j + mlen).
      rows = klen - 1 - (np.arange(t)[:, None] - np.arange(klen)[None] + mlen)
      rows = np.clip(rows, 0, klen - 1)  # Masked entries only.
      ac = np.einsum("bihe,bjhe->bhij", q + u, k)
      bd = np.einsum("bihe,ijhe->bhij", q + v, rk[rows])
      s = np.where(masked, -np.inf, (ac + bd) / np.sqrt(dh))
      s = np.exp(s - s.max(-1, keepdims=True))
      s /= s.sum(-1, keepdims=True)
      o = np.einsum("bhij,bjhe->bihe", s, val).reshape(b, t, c, d)
      return proj(o, "output")

    def ffn(h):
      hidden = _ref_linear(h, p("ffn_in")["w"], prod, p("ffn_in")["b"])
      return _ref_linear(
          np.maximum(hidden, 0), p("ffn_out")["w"], prod, p("ffn_out")["b"]
      )

    mem_x = None if mems is None else np.asarray(mems[layer], np.float64)
    if pre_norm:
      norm = p("attention_norm")
      mem_n = None if mem_x is None else _ref_ln(mem_x, norm)
      x = x + attend(_ref_ln(x, norm), mem_n)
      x = x + ffn(_ref_ln(x, p("ffn_norm")))
    else:
      x = _ref_ln(x + attend(x, mem_x), p("attention_norm"))
      x = _ref_ln(x + ffn(x), p("ffn_norm"))
  logits = x.reshape(b, t, width) @ table.reshape(vocab, width).T
  logits = logits + _np(params, "head")["bias"]
  lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1))
  lse = lse + logits.max(-1)
  nll = lse - np.take_along_axis(logits, targets[..., None], -1)[..., 0]
  stacked = np.stack(hids)
  if mems is not None:
    stacked = np.concatenate([np.asarray(mems, np.float64), stacked], axis=2)
  return nll, stacked


@pytest.mark.parametrize(
    "name,pre_norm", [("R", False), ("R", True), ("H", False)]
)
def test_matches_float64_reference(name, pre_norm):
  alg, prod = ref.CASES[name]
  d = 1 if name == "R" else 4
  model = _model(
      algebra=alg,
      num_channels=8 // d,
      d_inner_channels=16 // d,
      pre_norm=pre_norm,
      mem_len=8,
  )
  tokens, targets = _tokens(5)
  mems = jax.random.normal(jax.random.key(3), (2, B, 3, 8 // d, d))
  params = _perturbed(model.init(jax.random.key(0), tokens, targets, mems))
  want_nll, want_mems = _ref_forward(
      params, tokens, targets, mems, prod=prod, heads=2, pre_norm=pre_norm
  )
  # The model runs in float64 (the parameters' dtype is its computation
  # dtype): float32 sums in a CPU-dependent order would measure the CPU,
  # not the network (issue 16). Float32 by design: the attention softmax
  # and the sinusoid table (a few roundings per layer: a few float32 ulps
  # of the values' magnitude), and the adaptive softmax head (float32
  # whatever the activations: one length-8 product and a log-softmax, the
  # float32 sum bound at the nll's magnitude; tests/tolerances.py).
  f64 = functools.partial(jax.tree.map, lambda v: np.asarray(v, np.float64))
  with jax.enable_x64(True):
    args = (f64(params), None, tokens, targets, f64(mems))
    nll, new_mems = model.apply(*args)
    below = tolerances.float32_products(model.apply, *args)
  assert below == [f"dot_general float32[{B * 5},8]"]  # The head only.
  assert nll.shape == (B, 5) and nll.dtype == jnp.float32
  assert new_mems.shape == (2, B, 8, 8 // d, d)
  assert new_mems.dtype == np.float64
  nll_scale = np.abs(want_nll).max()
  tol_nll = tolerances.ulps32(nll_scale, k=8) + tolerances.float32_error(
      8, nll_scale
  )
  tol_mems = tolerances.ulps32(np.abs(want_mems).max(), k=8)
  np.testing.assert_allclose(nll, want_nll, rtol=0, atol=tol_nll)
  np.testing.assert_allclose(new_mems, want_mems, rtol=0, atol=tol_mems)
  # The bound can fail: parameters 1e-5 off (relative) are caught.
  off_nll, off_mems = _ref_forward(
      jax.tree.map(lambda v: np.asarray(v, np.float64) * (1 + 1e-5), params),
      tokens,
      targets,
      mems,
      prod=prod,
      heads=2,
      pre_norm=pre_norm,
  )
  assert np.abs(off_nll - want_nll).max() > tol_nll
  assert np.abs(off_mems - want_mems).max() > tol_mems


# -- memory --------------------------------------------------------------------


@pytest.mark.parametrize("pre_norm", [False, True])
def test_two_segments_with_memory_equal_one_long_segment(pre_norm):
  model = _model(pre_norm=pre_norm, mem_len=6)
  tokens, targets = _tokens(12)
  params = model.init(jax.random.key(0), tokens, targets)
  apply = jax.jit(model.apply)
  full, _ = apply(params, None, tokens, targets)
  first, mems = apply(params, None, tokens[:, :6], targets[:, :6])
  second, _ = apply(params, None, tokens[:, 6:], targets[:, 6:], mems)
  np.testing.assert_allclose(
      jnp.concatenate([first, second], 1), full, rtol=1e-5, atol=1e-5
  )
  # The memory matters: without it the second segment's nll changes.
  alone, _ = apply(params, None, tokens[:, 6:], targets[:, 6:])
  assert np.abs(np.asarray(alone - second)).max() > 1e-2


def test_new_mems_shapes_and_content():
  tokens, targets = _tokens(4)
  model = _model(mem_len=6)
  params = model.init(jax.random.key(0), tokens, targets)
  _, m1 = model.apply(params, None, tokens, targets)
  assert m1.shape == (2, B, 4, 4, 4)  # min(mem_len, M + T): grows from 0.
  # Layer 0's memory is the (dropout-free) embedding, scaled by sqrt(C*d).
  table = params["transformer_xl/embed"]["embeddings"]
  np.testing.assert_allclose(m1[0], table[tokens] * 4.0, rtol=1e-6)
  _, m2 = model.apply(params, None, tokens, targets, m1)
  assert m2.shape == (2, B, 6, 4, 4)
  np.testing.assert_array_equal(m2[:, :, :2], m1[:, :, 2:])
  np.testing.assert_array_equal(m2[0, :, 2:], m1[0])  # Same tokens again.
  none = _model(mem_len=0)
  _, m0 = none.apply(params, None, tokens, targets)
  assert m0.shape == (2, B, 0, 4, 4)


def test_no_gradient_through_memory():
  model = _model(num_layers=1, mem_len=4)
  tokens, targets = _tokens(8)
  params = model.init(jax.random.key(0), tokens, targets)
  t1, t2 = (tokens[:, :4], targets[:, :4]), (tokens[:, 4:], targets[:, 4:])

  def through(p):
    _, mems = model.apply(p, None, *t1)
    return model.apply(p, None, *t2, mems)[0].sum()

  _, fixed_mems = model.apply(params, None, *t1)

  def constant(p):
    return model.apply(p, None, *t2, fixed_mems)[0].sum()

  g_through = jax.grad(through)(params)
  g_const = jax.grad(constant)(params)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
      g_through,
      g_const,
  )
  # new_mems carry no gradient at all.
  g_mems = jax.grad(lambda p: model.apply(p, None, *t1)[1].sum())(params)
  assert all(not np.any(np.asarray(g)) for g in jax.tree.leaves(g_mems))


# -- masks and positions --------------------------------------------------------


def _txl_mask(qlen, mlen, mem_len, same_length):
  """TXL MemTransformerLM._forward's dec_attn_mask (True = masked)."""
  klen = mlen + qlen
  ones = np.ones((qlen, klen))
  if not same_length:
    return np.triu(ones, 1 + mlen).astype(bool)
  mask_len = klen - mem_len
  shift = qlen - mask_len if mask_len > 0 else qlen
  return (np.triu(ones, 1 + mlen) + np.tril(ones, -shift)).astype(bool)


@pytest.mark.parametrize(
    "qlen,mlen,mem_len", [(4, 0, 2), (4, 3, 3), (3, 5, 5), (5, 2, 9), (1, 6, 6)]
)
@pytest.mark.parametrize("same_length", [False, True])
def test_attention_mask_is_txl_negated(qlen, mlen, mem_len, same_length):
  got = txl.attention_mask(qlen, mlen, mem_len=mem_len, same_length=same_length)
  np.testing.assert_array_equal(
      got, ~_txl_mask(qlen, mlen, mem_len, same_length)
  )
  if same_length and mlen + qlen > mem_len:
    # Each query sees its mem_len most recent keys (fewer at the start).
    want = np.minimum(mem_len, np.arange(qlen) + mlen + 1)
    np.testing.assert_array_equal(got.sum(1), want)


@pytest.mark.parametrize("same_length", [False, True])
def test_same_length_limits_the_window(same_length):
  model = _model(num_layers=1, mem_len=3, same_length=same_length)
  tokens, targets = _tokens(6)
  params = model.init(jax.random.key(0), tokens, targets)
  base, _ = model.apply(params, None, tokens, targets)
  changed = tokens.at[:, 0].set((tokens[:, 0] + 1) % V)
  other, _ = model.apply(params, None, changed, targets)
  diff = np.abs(np.asarray(other - base)).max(axis=0)
  assert np.all(diff[:3] > 1e-4)
  # With same_length, query i sees keys i-2..i only (one layer).
  if same_length:
    np.testing.assert_array_equal(diff[3:], 0.0)
  else:
    assert np.all(diff[3:] > 1e-4)


@pytest.mark.parametrize("clamp_len", [-1, 1])
def test_clamp_len_shares_distant_positions(clamp_len):
  # One layer with clamp_len=1: the last query sees the earlier keys through
  # one shared position embedding, so their order no longer matters.
  model = _model(num_layers=1, mem_len=0, clamp_len=clamp_len)
  tokens, targets = _tokens(5)
  params = model.init(jax.random.key(0), tokens, targets)
  base, _ = model.apply(params, None, tokens, targets)
  permuted = tokens.at[:, :4].set(tokens[:, jnp.array([2, 0, 3, 1])])
  other, _ = model.apply(params, None, permuted, targets)
  delta = np.abs(np.asarray(other - base))[:, 4].max()
  if clamp_len == 1:
    assert delta < 1e-5
  else:
    assert delta > 1e-3


def test_log_prob_incremental_with_fixed_size_memory():
  # The sampler's use: a zero memory of fixed size that fills up, with
  # num_valid_mems hiding the unused part, gives the one-pass result.
  model = _log_prob_model(mem_len=8, same_length=True)
  tokens, _ = _tokens(6)
  params = model.init(jax.random.key(0), tokens)
  full, _ = model.apply(params, tokens)
  np.testing.assert_allclose(jnp.exp(full).sum(-1), 1.0, rtol=1e-5)
  step = jax.jit(model.apply)
  mems = jnp.zeros((2, B, 8, 4, 4))
  lp, mems = step(params, tokens[:, :3], mems, 0)
  got = [lp]
  for i in range(3, 6):
    lp, mems = step(params, tokens[:, i : i + 1], mems, i)
    got.append(lp)
  np.testing.assert_allclose(
      jnp.concatenate(got, 1), full, rtol=1e-5, atol=1e-5
  )


def test_log_prob_agrees_with_nll():
  tokens, targets = _tokens(5)
  nll_model = _model()
  params = nll_model.init(jax.random.key(0), tokens, targets)
  nll, _ = nll_model.apply(params, None, tokens, targets)
  lp, _ = _log_prob_model(mem_len=6).apply(params, tokens)
  picked = jnp.take_along_axis(lp, targets[..., None], -1)[..., 0]
  np.testing.assert_allclose(-picked, nll, rtol=1e-5, atol=1e-5)


# -- dropout -------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["element", "component"])
def test_algebra_dropout_unit(unit):
  x = jnp.ones((400, 8, 4))
  f = hk.transform(
      lambda x: txl.algebra_dropout(x, 0.25, unit=unit, is_training=True)
  )
  y = np.asarray(f.apply({}, jax.random.key(0), x))
  np.testing.assert_allclose(np.unique(y), [0.0, 1.0 / 0.75], rtol=1e-6)
  dropped = y == 0
  np.testing.assert_allclose(dropped.mean(), 0.25, atol=0.02)
  whole = np.all(dropped, axis=-1) | np.all(~dropped, axis=-1)
  if unit == "element":
    assert np.all(whole)  # All d components of an element together.
  else:
    assert not np.all(whole)
  same = f.apply({}, jax.random.key(0), x)
  np.testing.assert_array_equal(same, y)
  off = txl.algebra_dropout(x, 0.25, unit=unit, is_training=False)
  assert off is x


def test_algebra_dropout_errors():
  with pytest.raises(ValueError, match="unknown unit 'bogus'"):
    txl.algebra_dropout(jnp.ones((2, 2)), 0.1, unit="bogus", is_training=True)
  with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
    txl.algebra_dropout(jnp.ones((2, 2)), 1.0, unit="element", is_training=True)


def test_dropout_only_when_training():
  tokens, targets = _tokens(5)
  model = _model(dropout_rate=0.3, attention_dropout_rate=0.2)
  plain = _model()
  params = model.init(jax.random.key(0), tokens, targets)
  evaluated, _ = model.apply(params, None, tokens, targets)
  want, _ = plain.apply(params, None, tokens, targets)
  np.testing.assert_array_equal(evaluated, want)
  a, _ = model.apply(params, jax.random.key(1), tokens, targets, None, True)
  b, _ = model.apply(params, jax.random.key(2), tokens, targets, None, True)
  assert np.abs(np.asarray(a - want)).max() > 1e-3
  assert np.abs(np.asarray(a - b)).max() > 1e-3


# -- dtypes, variants ------------------------------------------------------------


def test_bfloat16_parameters():
  tokens, targets = _tokens(5)
  model = _model(algebra="M2R", num_layers=1)
  params = model.init(jax.random.key(0), tokens, targets)
  _, mems = model.apply(params, None, tokens, targets)
  want, want_mems = model.apply(params, None, tokens, targets, mems)
  params16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
  nll, new_mems = model.apply(params16, None, tokens, targets, mems)
  assert nll.dtype == jnp.float32 and new_mems.dtype == jnp.bfloat16
  np.testing.assert_allclose(nll, want, rtol=0.05, atol=0.05)
  np.testing.assert_allclose(
      np.asarray(new_mems, np.float32), want_mems, rtol=0.05, atol=0.05
  )


def test_untie_r_gives_one_bias_pair_per_layer():
  tokens, targets = _tokens(5)
  shared = _model()
  untied = _model(untie_r=True)
  params = _perturbed(shared.init(jax.random.key(0), tokens, targets))
  p_untied = untied.init(jax.random.key(0), tokens, targets)
  bias = p_untied["transformer_xl/relative_bias"]
  assert bias["r_w_bias"].shape == bias["r_r_bias"].shape == (2, 2, 2, 4)
  # Untied params whose per-layer slices all equal the shared pair.
  stacked = {
      k: jnp.stack([v, v])
      for k, v in params["transformer_xl/relative_bias"].items()
  }
  same = {**params, "transformer_xl/relative_bias": stacked}
  np.testing.assert_allclose(
      untied.apply(same, None, tokens, targets)[0],
      shared.apply(params, None, tokens, targets)[0],
      rtol=1e-6,
  )
  # ...and each layer reads its own slice.
  other = dict(stacked)
  other["r_w_bias"] = stacked["r_w_bias"].at[1].add(1.0)
  moved = untied.apply(
      {**params, "transformer_xl/relative_bias": other}, None, tokens, targets
  )[0]
  assert (
      np.abs(
          np.asarray(moved - shared.apply(params, None, tokens, targets)[0])
      ).max()
      > 1e-4
  )


def test_untied_output_weights():
  tokens, targets = _tokens(3)
  tied = jax.eval_shape(_model().init, jax.random.key(0), tokens, targets)
  untied = jax.eval_shape(
      _model(tie_weight=False).init, jax.random.key(0), tokens, targets
  )
  assert untied["transformer_xl/head"]["weight"].shape == (V, 16)
  assert metrics.count_params(untied) - metrics.count_params(tied) == V * 16


def test_adaptive_clusters_with_div_val():
  vocab = 20
  model = _log_prob_model(
      vocab_size=vocab, cutoffs=(8, 14), div_val=2, tie_projs=(False, True)
  )
  tokens = jax.random.randint(jax.random.key(0), (B, 5), 0, vocab)
  params = model.init(jax.random.key(1), tokens)
  emb = params["transformer_xl/embed"]
  assert [emb[f"embeddings_{i}"].shape for i in range(3)] == [
      (8, 4, 4),
      (6, 2, 4),
      (6, 1, 4),
  ]
  lp, _ = model.apply(params, tokens)
  assert lp.shape == (B, 5, vocab)
  np.testing.assert_allclose(jnp.exp(lp).sum(-1), 1.0, rtol=1e-5)


def test_constructor_errors():
  tokens, targets = _tokens(3)
  cases = [
      (
          dict(num_heads=3),
          r"= 4 algebra channels \(H\) is not divisible by num_heads=3",
      ),
      (dict(same_length=True, mem_len=0), "needs mem_len >= 1"),
      (dict(dropout_unit="bogus"), "unknown dropout_unit 'bogus'"),
      (dict(cutoffs=(4, 8), div_val=4), r"not divisible by div_val\*\*2"),
      (dict(tie_projs=(False, True)), "make only 1 clusters"),
      (dict(mem_len=-1), "mem_len must be an integer >= 0"),
      (dict(div_val=0), "div_val must be an integer >= 1"),
  ]
  for kw, message in cases:
    with pytest.raises(ValueError, match=message):
      _model(**kw).init(jax.random.key(0), tokens, targets)
  with pytest.raises(ValueError, match=r"mems must be \[L, B, M, C, d\]"):
    _model().init(
        jax.random.key(0), tokens, targets, jnp.zeros((1, B, 2, 4, 4))
    )


# -- parameter counts --------------------------------------------------------------


def _count(algebra, d, *, layers, d_model, heads, d_inner, vocab, **kw):
  def f(tokens):
    model = _txl(
        vocab, layers, d_model // d, heads, d_inner // d, algebra, **kw
    )
    return model(tokens, tokens, None, is_training=False)

  params = jax.eval_shape(
      hk.transform(f).init, jax.random.key(0), jnp.zeros((1, 2), jnp.int32)
  )
  return metrics.count_params(params)


ENWIK8_BASE = dict(layers=12, d_model=512, heads=8, d_inner=2048, vocab=204)


def test_parameter_count_enwik8_base_equals_official_txl():
  assert _count("R", 1, **ENWIK8_BASE) == 41_055_436


def test_parameter_count_wt103_base_equals_official_txl():
  count = _count(
      "R",
      1,
      layers=16,
      d_model=410,
      heads=10,
      d_inner=2100,
      vocab=267_735,
      cutoffs=(20000, 40000, 200000),
      tie_projs=(False, True, True, True),
  )
  assert count == 151_107_538


@pytest.mark.parametrize(
    "algebra,d,count",
    [("C", 2, 20_608_204), ("H", 4, 10_384_588), ("M2R", 4, 10_384_588)],
)
def test_parameter_count_algebras_at_the_same_real_width(algebra, d, count):
  # The docstring table; per layer 5 C^2 d + 2 C F d + F d + 5 C d reals.
  c, f, n = 512 // d, 2048 // d, 12
  per_layer = 5 * c * c * d + 2 * c * f * d + f * d + c * d + 4 * c * d
  assert count == n * per_layer + 2 * 512 + 204 * 512 + 204
  assert _count(algebra, d, **ENWIK8_BASE) == count


def test_mac_count_has_no_uncounted_modules():
  model_kw = dict(
      vocab_size=V,
      num_layers=2,
      num_channels=4,
      num_heads=2,
      d_inner_channels=8,
      algebra="M2R",
      mem_len=3,
  )

  def f(tokens, mems):
    return _txl(**model_kw)(tokens, tokens, mems, is_training=False)

  t, m = 5, 3
  report = metrics.count_macs(
      f,
      jax.ShapeDtypeStruct((1, t), jnp.int32),
      jax.ShapeDtypeStruct((2, 1, m, 4, 4), jnp.float32),
  )
  assert report.uncounted == ()
  c, ff, k, mac = 4, 8, m + t, 8  # M2R: 8 MACs per product.
  attention = (2 * t + 3 * k) * c * c * mac  # q, o on T; k, v, r on K
  ffn = 2 * t * c * ff * mac
  head = t * V * c * 4  # tied softmax on the 16 reals
  assert report.total == 2 * (attention + ffn) + head


# -- training ---------------------------------------------------------------------


def test_loss_decreases_with_memory_carried_across_segments():
  pattern = np.array([3, 1, 4, 1, 5, 9, 2], np.int32)
  stream = np.tile(pattern, 40)
  t, steps = 8, 30
  model = _model(init_std=0.02, mem_len=8, dropout_rate=0.0)
  data = np.stack([stream[: t * steps + 1], stream[3 : 3 + t * steps + 1]])
  params = model.init(jax.random.key(0), data[:, :t], data[:, 1 : t + 1])
  opt = optax.adam(1e-2)
  state = opt.init(params)

  @jax.jit
  def step(p, s, mems, x, y):
    def loss_fn(p):
      nll, new_mems = model.apply(p, None, x, y, mems)
      return nll.mean(), new_mems

    (loss, new_mems), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
    updates, s = opt.update(grads, s)
    return optax.apply_updates(p, updates), s, new_mems, loss

  mems = jnp.zeros((2, B, 8, 4, 4))
  losses = []
  for i in range(steps):
    x = data[:, i * t : (i + 1) * t]
    y = data[:, i * t + 1 : (i + 1) * t + 1]
    params, state, mems, loss = step(params, state, mems, x, y)
    losses.append(float(loss))
  assert np.mean(losses[-3:]) < 0.3 * np.mean(losses[:3]), losses


# -- configs -----------------------------------------------------------------------


def test_default_config_is_enwik8_base():
  cfg = models.defaults("transformer_xl")
  assert cfg["name"] == "transformer_xl" and cfg["algebra"] == "M2R"
  assert (
      cfg["d_model"],
      cfg["num_layers"],
      cfg["num_heads"],
      cfg["d_inner"],
  ) == (512, 12, 8, 2048)
  assert (cfg["mem_len"], cfg["eval_mem_len"], cfg["eval_clamp_len"]) == (
      512,
      2100,
      820,
  )
  assert cfg["layout"] == "standard" and cfg["head"] == "adaptive_softmax"
  models.check(cfg)
  models.check(ml_collections.ConfigDict(cfg))
  cfg["algebra"] = "R"
  models.check(cfg)


@pytest.mark.parametrize(
    "overrides,channels",
    [
        ({}, 128),
        ({"algebra": "R"}, 512),
        ({"algebra": "C"}, 256),
        ({"width_multiplier": 1.5}, 192),
    ],
)
def test_num_channels(overrides, channels):
  model = models.constructed({"name": "transformer_xl", **overrides})
  assert model.num_channels == channels
  assert model.d_inner_channels == channels * 4


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            {"d_model": 510},
            "d_model*width_multiplier = 510 is not divisible by "
            "the dimension 4 of algebra M2R",
        ),
        ({"d_inner": 0}, "d_inner"),
        ({"num_heads": 3}, "not divisible by num_heads=3"),
        ({"cutoffs": (100, 200), "div_val": 16}, "div_val**2 = 256"),
        ({"cutoffs": (200, 100)}, "strictly increasing"),
        ({"tie_projs": (False, True)}, "only 1 clusters"),
        ({"layout": "folded"}, "layout='folded' is not implemented"),
        ({"layout": "sideways"}, "unknown layout 'sideways'"),
        ({"mem_len": -1}, "mem_len must be an integer >= 0"),
        ({"eval_clamp_len": -2}, "eval_clamp_len must be an integer >= -1"),
        ({"dropout_rate": 1.0}, "dropout_rate must be in [0, 1)"),
        ({"dropout_unit": "elements"}, "Did you mean 'element'"),
        ({"eval_mem_len": 0}, "eval_same_length=True needs eval_mem_len >= 1"),
        ({"same_length": 1}, "same_length must be True or False"),
        ({"norm": "batch"}, "only norm='layer'"),
        ({"head": "flatten_real"}, "only head='adaptive_softmax'"),
        ({"lift": "algebra_embed"}, "only lift='adaptive_embed'"),
        ({"kernel_path": "fold", "algebra": "H"}, "needs a matrix algebra"),
        ({"init_std": 0}, "init_std must be a positive number"),
        ({"algebra": "Q"}, "Q"),
        ({"mem_lenn": 3}, 'Did you mean "mem_len"'),
        ({"name": "transformer_xm"}, "Did you mean 'transformer_xl'"),
    ],
)
def test_check_errors(overrides, message):
  with pytest.raises(models.ModelConfigError, match=re.escape(message)):
    models.check({"name": "transformer_xl", **overrides})


def test_build_and_registry():
  spec = models.get("transformer_xl")
  assert spec.module is txl.TransformerXL
  assert spec.runtime_args == ("vocab_size", "is_eval")
  cfg = ml_collections.ConfigDict(
      {**models.defaults("transformer_xl"), "cutoffs": (100,), "clamp_len": 5}
  )
  built = {}

  def f(is_eval):
    model = models.build(cfg, vocab_size=204, is_eval=is_eval)
    built[is_eval] = model
    return model

  hk.transform(lambda: f(False)).init(None)
  hk.transform(lambda: f(True)).init(None)
  train, evaluation = built[False], built[True]
  assert (train.mem_len, train.clamp_len, train.same_length) == (512, 5, False)
  assert (evaluation.mem_len, evaluation.clamp_len, evaluation.same_length) == (
      2100,
      820,
      True,
  )
  assert train.num_channels == 128 and train.d_inner_channels == 512
  assert train.tie_projs == (False, False)  # Padded to one per cluster.
  with pytest.raises(models.ModelConfigError, match="num_heads"):
    models.constructed(
        {"name": "transformer_xl", "num_heads": 5}, vocab_size=10
    )


def test_inner_width_rounds_to_whole_algebra_channels():
  cfg = dict(models.defaults("transformer_xl"), algebra="M2R", d_inner=2050)
  # 2050 / 4 = 512.5 -> 512
  assert models.constructed(cfg).d_inner_channels == 512
  cfg = dict(cfg, d_model=410, width_multiplier=820 / 410, num_heads=5)
  # Exact when integral.
  assert models.constructed(cfg).d_inner_channels == 1025
