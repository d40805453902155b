"""Tests for the adaptive input embedding and projected adaptive softmax."""

import math
import warnings

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import algebras, metrics
from algebranets.layers import adaptive
from tests import reference_products

# Strict numerics for every test here (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("strict_numerics")

V = 23
C = 4
TOL = dict(rtol=1e-5, atol=1e-5)


def _tokens(seed, shape, vocab=V):
  # Every cluster represented: a sweep over the vocabulary, then random ids.
  n = math.prod(shape)
  rng = np.random.default_rng(seed)
  ids = np.concatenate([np.arange(vocab), rng.integers(0, vocab, n)])[:n]
  return jnp.asarray(rng.permutation(ids).reshape(shape), jnp.int32)


def _hidden(seed, shape):
  return jnp.asarray(
      np.random.default_rng(seed).normal(size=shape), jnp.float32
  )


def _randomize(params, seed=3, scale=0.5):
  """Replaces every parameter by random values (zero-init biases included),
  so that the tests see every parameter's effect."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda x: jnp.asarray(scale * rng.normal(size=x.shape), jnp.float32),
      params,
  )


def _model(
    algebra, cutoffs, div_val, *, tie=False, tie_projs=None, tail_chunk=5
):
  """(hidden, targets) -> (nll, log_prob); the embedding is created (and
  owns the tables) whether or not the softmax is tied to it."""

  def f(hidden, targets):
    emb = adaptive.AdaptiveEmbedding(
        V, C, algebra, cutoffs=cutoffs, div_val=div_val
    )
    sm = adaptive.ProjectedAdaptiveLogSoftmax(
        V,
        C,
        algebra,
        cutoffs=cutoffs,
        div_val=div_val,
        tie_projs=tie_projs,
        tail_chunk=tail_chunk,
    )
    emb.cluster_tables()
    tied = emb if tie else None
    return sm(hidden, targets, tied=tied), sm.log_prob(hidden, tied=tied)

  t = hk.without_apply_rng(hk.transform(f))
  # One compiled program each: faster than dispatching every op eagerly.
  return hk.Transformed(init=jax.jit(t.init), apply=jax.jit(t.apply))


def _gathered_nll(log_prob, targets):
  return -jnp.take_along_axis(log_prob, targets[..., None], axis=-1)[..., 0]


# -- check_cutoffs -------------------------------------------------------------


def test_check_cutoffs_returns_boundaries():
  assert adaptive.check_cutoffs((20000, 40000, 200000), 267735) == (
      20000,
      40000,
      200000,
      267735,
  )
  assert adaptive.check_cutoffs((), 10) == (10,)
  assert adaptive.check_cutoffs([np.int64(3)], 10) == (3, 10)


def test_check_cutoffs_drops_cutoffs_beyond_vocab_with_warning():
  with pytest.warns(UserWarning, match=r"\(40000, 200000\).*38000"):
    out = adaptive.check_cutoffs((20000, 40000, 200000), 38000)
  assert out == (20000, 38000)
  # A cutoff equal to the vocabulary size would leave an empty cluster.
  with pytest.warns(UserWarning, match=r"\(10,\).*vocabulary size 10"):
    assert adaptive.check_cutoffs((5, 10), 10) == (5, 10)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    adaptive.check_cutoffs((5, 9), 10)  # Nothing dropped: no warning.


@pytest.mark.parametrize(
    "cutoffs, vocab, match",
    [
        ((5, 5), 10, r"strictly increasing.*\(5, 5\)"),
        ((6, 3), 10, r"strictly increasing.*3 after 6"),
        ((0, 3), 10, r"positive ints.*bad entry 0"),
        ((-2,), 10, r"positive ints.*bad entry -2"),
        ((2.5,), 10, r"positive ints.*bad entry 2.5"),
        ((3,), 0, r"vocab_size must be a positive int, got 0"),
    ],
)
def test_check_cutoffs_errors(cutoffs, vocab, match):
  with pytest.raises(ValueError, match=match):
    adaptive.check_cutoffs(cutoffs, vocab)


def _construct(make):
  """Builds a module inside a Haiku transform (required) and returns it."""
  out = []
  hk.transform(lambda: out.append(make())).init(None)
  return out[0]


def test_modules_drop_cutoffs_and_tie_projs_of_dropped_clusters():
  with pytest.warns(UserWarning, match="dropping"):
    sm = _construct(
        lambda: adaptive.ProjectedAdaptiveLogSoftmax(
            30, 4, "R", cutoffs=(10, 40, 50), div_val=2, tie_projs=[0, 1, 1, 1]
        )
    )
  assert sm.boundaries == (10, 30)
  assert sm.tie_projs == (False, True)
  assert sm.cluster_channels == (4, 2)


def test_channels_not_divisible_by_div_val_power():
  with pytest.raises(ValueError, match=r"num_channels=6.*div_val\*\*2 = 4"):
    _construct(
        lambda: adaptive.AdaptiveEmbedding(
            20, 6, "H", cutoffs=(5, 10), div_val=2
        )
    )
  with pytest.raises(ValueError, match=r"num_channels=6.*div_val\*\*2 = 4"):
    _construct(
        lambda: adaptive.ProjectedAdaptiveLogSoftmax(
            20, 6, "H", cutoffs=(5, 10), div_val=2
        )
    )
  with pytest.raises(ValueError, match="div_val must be a positive int"):
    _construct(lambda: adaptive.AdaptiveEmbedding(20, 6, "H", div_val=0))


def test_tie_projs_length_error():
  with pytest.raises(ValueError, match=r"len\(cutoffs\) \+ 1 = 3.*got 2"):
    _construct(
        lambda: adaptive.ProjectedAdaptiveLogSoftmax(
            20, 4, "R", cutoffs=(5, 10), tie_projs=[False, True]
        )
    )


# -- normalisation and nll == -log_prob[target] --------------------------------

CONFIGS = [
    # (algebra, cutoffs, div_val, tie, tie_projs): R (the TXL reference) in
    # every configuration, the other algebras in one or two each.
    ("R", (), 1, False, None),
    ("R", (7,), 1, True, None),
    ("R", (5, 12), 1, False, None),
    ("R", (5, 12), 2, True, [False, True, True]),
    ("C", (5, 12), 2, True, [False, True, False]),
    ("H", (5, 12), 1, False, None),
    ("H", (5, 12), 2, False, None),
    ("M2R", (), 1, True, None),
    ("M2R", (7,), 2, True, [True, False]),
]


@pytest.mark.parametrize("name, cutoffs, div_val, tie, tie_projs", CONFIGS)
def test_log_prob_normalised_and_nll_is_gathered_log_prob(
    name, cutoffs, div_val, tie, tie_projs
):
  d = algebras.get(name).dim
  hidden = _hidden(0, (3, 5, C, d))
  targets = _tokens(1, (3, 5))
  model = _model(name, cutoffs, div_val, tie=tie, tie_projs=tie_projs)
  params = _randomize(model.init(jax.random.key(0), hidden, targets))
  nll, lp = model.apply(params, hidden, targets)
  assert nll.shape == (3, 5) and nll.dtype == jnp.float32
  assert lp.shape == (3, 5, V) and lp.dtype == jnp.float32
  np.testing.assert_allclose(jnp.exp(lp).sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(nll, _gathered_nll(lp, targets), **TOL)


def test_sparse_tail_nll_and_tied_gradients_match_dense():
  """__call__ scores each tail cluster only for its own (sorted, chunked)
  tokens; its value and gradients must equal the dense log_prob path (18
  tokens in chunks of 4: chunks spanning clusters, and padding). The hidden
  input does not come from the embedding, so the tied tables and the tied
  projections (clusters 1, 2) get gradients only through the softmax, and
  the embedding's untied projection 0 gets none."""
  hidden = _hidden(2, (2, 9, C, 2))
  targets = _tokens(3, (2, 9))
  model = _model(
      "C", (5, 12), 2, tie=True, tie_projs=[False, True, True], tail_chunk=4
  )
  params = _randomize(model.init(jax.random.key(0), hidden, targets))

  def loss_sparse(p, h):
    return model.apply(p, h, targets)[0].sum()

  def loss_dense(p, h):
    return _gathered_nll(model.apply(p, h, targets)[1], targets).sum()

  gs = jax.jit(jax.grad(loss_sparse, argnums=(0, 1)))(params, hidden)
  gd = jax.jit(jax.grad(loss_dense, argnums=(0, 1)))(params, hidden)
  np.testing.assert_allclose(
      loss_sparse(params, hidden), loss_dense(params, hidden), rtol=1e-6
  )
  for a, b in zip(jax.tree.leaves(gs), jax.tree.leaves(gd), strict=True):
    np.testing.assert_allclose(a, b, **TOL)
  emb_grads = gs[0]["adaptive_embedding"]
  assert set(emb_grads) == {
      "embeddings_0", "embeddings_1", "embeddings_2",
      "proj_0", "proj_1", "proj_2",
  }  # fmt: skip
  for k, g in emb_grads.items():
    assert (float(jnp.abs(g).max()) > 0) == (k != "proj_0"), k


# -- independent references ----------------------------------------------------


def test_no_cutoffs_is_a_plain_softmax_on_the_real_vector():
  d = 4
  hidden = _hidden(4, (6, C, d))
  targets = _tokens(5, (6,))
  h = np.asarray(hidden, np.float64).reshape(6, C * d)
  for tie in (False, True):
    model = _model("M2R", (), 1, tie=tie)
    params = _randomize(model.init(jax.random.key(0), hidden, targets))
    sm = params["projected_adaptive_log_softmax"]
    if tie:
      assert set(sm) == {"bias"}
      w = params["adaptive_embedding"]["embeddings"].reshape(V, C * d)
    else:
      assert set(sm) == {"bias", "weight"}
      w = sm["weight"]
    logits = h @ np.asarray(w, np.float64).T + np.asarray(sm["bias"])
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    nll, lp = model.apply(params, hidden, targets)
    np.testing.assert_allclose(np.exp(lp), p, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(
        nll, -np.log(p[np.arange(6), np.asarray(targets)]), **TOL
    )


def _softmax(x):
  e = np.exp(x - x.max())
  return e / e.sum()


def _reference_probs(h, out_w, out_b, projs, cw, cb, boundaries):
  """Adaptive softmax probabilities in float64, one token at a time:
  p(v) = p_head(v) for the shortlist, p_head(cluster token i) *
  p_i(v - l_i) for tail cluster i (cluster token i = head entry V_0 + i - 1).

  out_w[i] [V_i, D_i], out_b [V], projs[i] [D, D_i] or None."""
  lefts = (0, *boundaries[:-1])

  def scores(x, i, w, b):
    if projs[i] is not None:
      x = x @ projs[i]
    return np.array([np.dot(x, w[r]) + b[r] for r in range(len(b))])

  probs = np.zeros((h.shape[0], boundaries[-1]))
  for t, x in enumerate(h):
    head_w = np.concatenate([out_w[0], cw])
    head_b = np.concatenate([out_b[: boundaries[0]], cb])
    head = _softmax(scores(x, 0, head_w, head_b))
    probs[t, : boundaries[0]] = head[: boundaries[0]]
    for i in range(1, len(boundaries)):
      lo, hi = lefts[i], boundaries[i]
      tail = _softmax(scores(x, i, out_w[i], out_b[lo:hi]))
      probs[t, lo:hi] = head[boundaries[0] + i - 1] * tail
  return probs


def _f64(x):
  return np.asarray(x, np.float64)


@pytest.mark.parametrize("div_val", [1, 2])
def test_untied_adaptive_softmax_matches_numpy_reference(div_val):
  cutoffs, boundaries = (5, 12), (5, 12, V)
  hidden = _hidden(6, (7, C, 1))
  targets = _tokens(7, (7,))
  model = _model("R", cutoffs, div_val)
  params = _randomize(model.init(jax.random.key(0), hidden, targets))
  sm = params["projected_adaptive_log_softmax"]
  lefts = (0, *boundaries[:-1])
  if div_val == 1:
    assert not any(k.startswith("proj") for k in sm)
    out_w = [
        _f64(sm["weight"][lo:hi])
        for lo, hi in zip(lefts, boundaries, strict=True)
    ]
    projs = [None] * 3
  else:
    out_w = [_f64(sm[f"weight_{i}"]) for i in range(3)]
    projs = [_f64(sm[f"proj_{i}"]) for i in range(3)]
  probs = _reference_probs(
      _f64(hidden).reshape(7, C),
      out_w,
      _f64(sm["bias"]),
      projs,
      _f64(sm["cluster_weight"]),
      _f64(sm["cluster_bias"]),
      boundaries,
  )
  nll, lp = model.apply(params, hidden, targets)
  np.testing.assert_allclose(np.exp(lp), probs, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(
      nll, -np.log(probs[np.arange(7), np.asarray(targets)]), **TOL
  )


def test_tied_projections_are_the_embedding_projections_transposed():
  name, d = "H", 4
  cutoffs, boundaries = (5, 12), (5, 12, V)
  hidden = _hidden(8, (6, C, d))
  targets = _tokens(9, (6,))
  model = _model(name, cutoffs, 2, tie=True, tie_projs=[False, True, True])
  params = _randomize(model.init(jax.random.key(0), hidden, targets))
  sm = params["projected_adaptive_log_softmax"]
  # Tied clusters own no projection; nothing owns a separate output weight.
  assert set(sm) == {"bias", "cluster_weight", "cluster_bias", "proj_0"}
  assert sm["proj_0"].shape == (C * d, C * d)

  def tables_and_projs():
    emb = adaptive.AdaptiveEmbedding(V, C, name, cutoffs=cutoffs, div_val=2)
    return emb.cluster_tables(), emb.cluster_projections()

  tables, emb_projs = hk.transform(tables_and_projs).apply(params, None)
  projs = [_f64(sm["proj_0"]), _f64(emb_projs[1]).T, _f64(emb_projs[2]).T]
  probs = _reference_probs(
      _f64(hidden).reshape(6, C * d),
      [_f64(t) for t in tables],
      _f64(sm["bias"]),
      projs,
      _f64(sm["cluster_weight"]),
      _f64(sm["cluster_bias"]),
      boundaries,
  )
  _, lp = model.apply(params, hidden, targets)
  np.testing.assert_allclose(np.exp(lp), probs, rtol=1e-4, atol=1e-7)


def test_tie_projs_needs_a_tied_embedding():
  model = _model("R", (5, 12), 2, tie_projs=[False, True, False])
  hidden, targets = _hidden(0, (3, C, 1)), _tokens(0, (3,))
  with pytest.raises(ValueError, match=r"tie_projs=\(False, True, False\)"):
    model.init(jax.random.key(0), hidden, targets)
  # div_val == 1 has no projections: tie_projs is moot (WT103 base).
  _model("R", (5, 12), 1, tie_projs=[False, True, True]).init(
      jax.random.key(0), hidden, targets
  )


def test_tied_weights_get_gradients_from_the_loss():
  hidden = _hidden(10, (4, 6, C, 2))
  targets = _tokens(11, (4, 6))
  model = _model("C", (5, 12), 1, tie=True)
  params = model.init(jax.random.key(0), hidden, targets)
  sm = params["projected_adaptive_log_softmax"]
  assert set(sm) == {"bias", "cluster_weight", "cluster_bias"}
  # The hidden input is independent of the embedding, so the table's
  # gradient comes only through the tied output weights, in every cluster.
  grads = jax.jit(
      jax.grad(lambda p: model.apply(p, hidden, targets)[0].mean())
  )(params)
  g = np.abs(grads["adaptive_embedding"]["embeddings"]).max(axis=(1, 2))
  assert g.shape == (V,) and np.all(g > 0)


def test_tied_embedding_of_another_configuration_is_an_error():
  def f(hidden, targets):
    emb = adaptive.AdaptiveEmbedding(V, C, "C", cutoffs=(5,))
    sm = adaptive.ProjectedAdaptiveLogSoftmax(V, C, "C", cutoffs=(6,))
    return sm(hidden, targets, tied=emb)

  with pytest.raises(ValueError, match=r"\(23, 4, 'C', \(6, 23\), 1\).*"):
    hk.transform(f).init(None, _hidden(0, (2, C, 2)), _tokens(0, (2,)))


def test_softmax_input_errors():
  def f(hidden, targets):
    sm = adaptive.ProjectedAdaptiveLogSoftmax(V, C, "C", cutoffs=(5,))
    return sm(hidden, targets)

  init = hk.transform(f).init
  with pytest.raises(ValueError, match=r"\[\.\.\., C=4, d=2\].*\(2, 3, 2\)"):
    init(None, _hidden(0, (2, 3, 2)), _tokens(0, (2,)))
  with pytest.raises(ValueError, match=r"leading shape \(2,\).*\(3,\)"):
    init(None, _hidden(0, (2, C, 2)), _tokens(0, (3,)))
  with pytest.raises(ValueError, match="integer token ids"):
    init(None, _hidden(0, (2, C, 2)), jnp.zeros(2))


def test_out_of_range_targets_give_nan():
  hidden = _hidden(0, (4, C, 1))
  targets = jnp.array([0, V, -1, V - 1])
  model = _model("R", (5, 12), 1)
  params = model.init(jax.random.key(0), hidden, targets)
  nll, _ = model.apply(params, hidden, targets)
  assert np.isfinite(nll[0]) and np.isfinite(nll[3])
  assert np.isnan(nll[1]) and np.isnan(nll[2])


def test_bfloat16_hidden_is_computed_in_float32():
  hidden = _hidden(12, (2, 5, C, 4)).astype(jnp.bfloat16)
  targets = _tokens(13, (2, 5))
  model = _model("M2R", (5, 12), 2, tie=True, tie_projs=[False, True, True])
  params = model.init(jax.random.key(0), hidden, targets)
  nll, lp = model.apply(params, hidden, targets)
  assert nll.dtype == jnp.float32 and lp.dtype == jnp.float32
  nll32, _ = model.apply(params, hidden.astype(jnp.float32), targets)
  np.testing.assert_array_equal(nll, nll32)
  assert np.all(np.isfinite(nll))


# -- embedding -----------------------------------------------------------------


def test_embedding_div_val_1_is_a_scaled_lookup():
  d = 4

  def f(tokens):
    return adaptive.AdaptiveEmbedding(V, C, "M2R", cutoffs=(5, 12))(tokens)

  tokens = _tokens(14, (3, 5))
  t = hk.transform(f)
  params = t.init(jax.random.key(0), tokens)
  assert jax.tree.map(jnp.shape, params) == {
      "adaptive_embedding": {"embeddings": (V, C, d)}
  }
  y = t.apply(params, None, tokens)
  assert y.shape == (3, 5, C, d) and y.dtype == jnp.float32
  table = np.asarray(params["adaptive_embedding"]["embeddings"])
  np.testing.assert_allclose(
      y, table[np.asarray(tokens)] * math.sqrt(C * d), rtol=1e-6
  )
  y_bad = t.apply(params, None, jnp.array([V, -1, 0]))
  assert np.all(np.isnan(y_bad[:2])) and np.all(np.isfinite(y_bad[2]))


@pytest.mark.parametrize("name", ["C", "H", "M2R", "generic3"])
def test_embedding_projects_each_cluster_with_the_algebra_product(name):
  """Oracle: the textbook product (weight on the left) per channel pair;
  and cluster_projections agree with it on the flattened real vector."""
  alg_arg, product = reference_products.CASES[name]
  d = reference_products.dim(name)
  boundaries = (5, 12, V)
  lefts = (0, 5, 12)

  def f(tokens):
    emb = adaptive.AdaptiveEmbedding(V, C, alg_arg, cutoffs=(5, 12), div_val=2)
    return emb(tokens), emb.cluster_tables(), emb.cluster_projections()

  tokens = _tokens(15, (2, 12))
  t = hk.transform(f)
  params = jax.jit(t.init)(jax.random.key(0), tokens)
  y, tables, projs = jax.jit(t.apply)(params, None, tokens)
  assert y.shape == (2, 12, C, d)
  p = params["adaptive_embedding"]
  for i, c_i in enumerate((4, 2, 1)):
    assert p[f"embeddings_{i}"].shape == (boundaries[i] - lefts[i], c_i, d)
    assert p[f"proj_{i}"].shape == (c_i, C, d)
    assert tables[i].shape == (boundaries[i] - lefts[i], c_i * d)
    assert projs[i].shape == (c_i * d, C * d)
  scale = math.sqrt(C * d)
  for tok, out in zip(
      np.asarray(tokens).ravel(), np.asarray(y).reshape(-1, C, d), strict=True
  ):
    i = int(np.searchsorted(boundaries, tok, side="right"))
    x = _f64(p[f"embeddings_{i}"][tok - lefts[i]])  # [C_i, d]
    w = _f64(p[f"proj_{i}"])  # [C_i, C, d]
    want = np.stack(
        [sum(product(w[n, m], x[n]) for n in range(len(x))) for m in range(C)]
    )
    np.testing.assert_allclose(out, want * scale, rtol=1e-4, atol=1e-5)
    flat = _f64(tables[i][tok - lefts[i]]) @ _f64(projs[i])
    np.testing.assert_allclose(flat.reshape(C, d), want, rtol=1e-4, atol=1e-5)


def test_embedding_rejects_float_tokens():
  def f(tokens):
    return adaptive.AdaptiveEmbedding(V, C, "R")(tokens)

  with pytest.raises(ValueError, match="integer token ids, got dtype float32"):
    hk.transform(f).init(None, jnp.zeros(3))


@pytest.mark.parametrize("name", ["C", "H", "M2R"])
def test_init_scales(name):
  """Tables N(0, init_std) per component; each real column of an algebra
  projection's block matrix has the squared norm of a real TXL projection
  column (D_i * proj_init_std^2); cluster weights N(0, init_std), biases 0."""
  alg = algebras.get(name)
  d, c = alg.dim, 32

  def f():
    emb = adaptive.AdaptiveEmbedding(
        800, c, name, cutoffs=(400,), div_val=2, init_std=0.05
    )
    sm = adaptive.ProjectedAdaptiveLogSoftmax(
        800, c, name, cutoffs=(400,), div_val=2, init_std=0.05
    )
    sm.log_prob(jnp.zeros((1, c, d)))
    return emb.cluster_tables(), emb.cluster_projections()

  t = hk.transform(f)
  params = jax.jit(t.init)(jax.random.key(1))
  tables, projs = jax.jit(t.apply)(params, None)
  for table in tables:
    np.testing.assert_allclose(np.std(table), 0.05, rtol=0.05)
  for i, p in enumerate(projs):
    d_i = (c // 2**i) * d
    col_sq = np.mean(np.sum(np.square(p), axis=0))
    np.testing.assert_allclose(col_sq, d_i * 0.01**2, rtol=0.1)
  sm = params["projected_adaptive_log_softmax"]
  np.testing.assert_allclose(np.std(sm["weight_0"]), 0.05, rtol=0.05)
  np.testing.assert_allclose(np.std(sm["proj_0"]), 0.01, rtol=0.05)
  assert np.all(sm["bias"] == 0) and np.all(sm["cluster_bias"] == 0)


# -- parameter counts (TXL) and MACs -------------------------------------------


def _param_shapes(vocab, c, algebra, cutoffs, div_val, tie, tie_projs):
  """Parameter shapes of an embedding feeding its softmax (nothing computed:
  an abstract init, so WT103's 110M-float table is never allocated)."""

  def f(tokens):
    emb = adaptive.AdaptiveEmbedding(
        vocab, c, algebra, cutoffs=cutoffs, div_val=div_val
    )
    sm = adaptive.ProjectedAdaptiveLogSoftmax(
        vocab, c, algebra, cutoffs=cutoffs, div_val=div_val,
        tie_projs=tie_projs,
    )  # fmt: skip
    return sm(emb(tokens), tokens, tied=emb if tie else None)

  tokens = jax.ShapeDtypeStruct((2,), jnp.int32)
  return jax.eval_shape(hk.transform(f).init, jax.random.key(0), tokens)


def _count(shapes, module):
  return sum(math.prod(x.shape) for x in jax.tree.leaves(shapes[module]))


def test_param_count_wt103_base_matches_txl():
  shapes = _param_shapes(
      267735, 410, "R", (20000, 40000, 200000), 1, True,
      [False, True, True, True],
  )  # fmt: skip
  assert _count(shapes, "adaptive_embedding") == 267735 * 410
  assert _count(shapes, "projected_adaptive_log_softmax") == (
      267735 + 3 * 410 + 3
  )


@pytest.mark.parametrize("tie", [False, True])
def test_param_count_div_val_2_matches_txl_formula(tie):
  """TXL with d_embed == d_proj == D and div_val > 1: every cluster i has a
  table V_i x D_i and a projection D x D_i (cluster 0 too); the softmax has
  V biases, n cluster tokens (D + 1 each), and, unless tied, its own
  V_i x D_i weights and projections of the clusters with tie_projs False."""
  vocab, c, cutoffs, tie_projs = 40, 8, (6, 20), [False, True, False]
  sizes, widths = (6, 14, 20), (8, 4, 2)
  shapes = _param_shapes(
      vocab, c, "R", cutoffs, 2, tie, tie_projs if tie else None
  )
  tables = sum(v * w for v, w in zip(sizes, widths, strict=True))
  projs = sum(c * w for w in widths)
  assert _count(shapes, "adaptive_embedding") == tables + projs
  cluster_tokens = 2 * (c + 1)
  if tie:
    own_projs = c * widths[0] + c * widths[2]
    want = vocab + cluster_tokens + own_projs
  else:
    want = vocab + cluster_tokens + tables + projs
  assert _count(shapes, "projected_adaptive_log_softmax") == want


def test_algebra_param_count_divides_tables_and_projections_by_d():
  # H: tables hold the same reals as R's with C*d = 16 (V_i * C_i * d); the
  # algebra projections are d times smaller than the real ones.
  shapes_r = _param_shapes(40, 16, "R", (6, 20), 2, False, None)
  shapes_h = _param_shapes(40, 4, "H", (6, 20), 2, False, None)
  emb_r, emb_h = shapes_r["adaptive_embedding"], shapes_h["adaptive_embedding"]
  for i in range(3):
    assert emb_h[f"embeddings_{i}"].size == emb_r[f"embeddings_{i}"].size
    assert emb_h[f"proj_{i}"].size * 4 == emb_r[f"proj_{i}"].size
  assert jax.tree.map(
      jnp.shape, shapes_h["projected_adaptive_log_softmax"]
  ) == (jax.tree.map(jnp.shape, shapes_r["projected_adaptive_log_softmax"]))


def test_mac_counts():
  vocab, c, name = 40, 4, "H"
  d = 4

  def f(tokens):
    emb = adaptive.AdaptiveEmbedding(vocab, c, name, cutoffs=(6, 20), div_val=2)
    sm = adaptive.ProjectedAdaptiveLogSoftmax(
        vocab, c, name, cutoffs=(6, 20), div_val=2
    )
    return sm(emb(tokens), tokens)

  report = metrics.count_macs(f, jax.ShapeDtypeStruct((3, 5), jnp.int32))
  assert not report.uncounted
  rows = {r.name: r.macs for r in report.rows}
  widths = (4, 2, 1)
  emb_macs = 15 * sum(w * c for w in widths) * 16  # H: 16 MACs per product
  dd = c * d
  head = (6 + 2) * widths[0] * d + dd * widths[0] * d
  tails = sum(
      v * w * d + dd * w * d for v, w in zip((14, 20), widths[1:], strict=True)
  )
  assert rows == {
      "adaptive_embedding": emb_macs,
      "projected_adaptive_log_softmax": 15 * (head + tails),
  }
