"""BatchNorm/LayerNorm for algebra activations vs float64 numpy references."""

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import algebras
from algebranets import layout as layout_lib
from algebranets.layers import normalization as norm

EPS = 1e-5
MODES = norm.MODES
MATRIX_ALGEBRAS = ["M2R", "M3R", "M2C"]


@pytest.fixture(autouse=True, scope="module")
def _fast_cpu_compiles():
  # Compiling dominates these small tests; skipping XLA's optimizations
  # roughly halves the suite's wall time (style.md rule 28).
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", old)


@pytest.fixture(autouse=True)
def _highest_precision():
  # Numerics are compared at float32 accuracy; keep TF32/bf16 passes out.
  with jax.default_matmul_precision("highest"):
    yield


# -- helpers -------------------------------------------------------------------


def _bn(alg, mode="component", layout="standard", **kw):
  def f(x, is_training, test_local_stats=False):
    mod = norm.BatchNorm(alg, mode=mode, layout=layout, name="bn", **kw)
    return mod(x, is_training, test_local_stats)

  return _jitted(hk.without_apply_rng(hk.transform_with_state(f)))


def _ln(alg, mode="component", layout="standard", **kw):
  def f(x):
    return norm.LayerNorm(alg, mode=mode, layout=layout, name="ln", **kw)(x)

  fn = hk.without_apply_rng(hk.transform(f))
  return fn._replace(init=jax.jit(fn.init), apply=jax.jit(fn.apply))


def _jitted(fn):
  """Jitted init/apply: one compile per test instead of one per eager op."""
  init = jax.jit(fn.init, static_argnums=(2, 3))
  apply = jax.jit(fn.apply, static_argnums=(3, 4))
  return fn._replace(
      init=lambda rng, x, is_training, local=False: init(
          rng, x, is_training, local
      ),
      apply=lambda params, state, x, is_training, local=False: apply(
          params, state, x, is_training, local
      ),
  )


def _randomize(tree, seed):
  """Non-trivial params: default init + noise (keeps scales invertible)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda v: v + jnp.asarray(0.3 * rng.normal(size=v.shape), v.dtype), tree
  )


def _shapes(tree):
  return jax.tree.map(jnp.shape, tree)


def _data(alg, shape, seed=0, loc=2.0, scale=3.0):
  """x[*shape, C, d] with per-component means/scales and mixed components."""
  d = algebras.get(alg).dim
  rng = np.random.default_rng(seed)
  c = shape[-1]
  mix = rng.normal(size=(c, d, d)) + 2 * np.eye(d)
  z = rng.normal(size=(*shape, d))
  x = np.einsum("...cj,cij->...ci", z, mix) * scale
  x = x + loc * rng.normal(size=(c, d))
  return x.astype(np.float32)


def _np(tree):
  return jax.tree.map(lambda v: np.asarray(v, np.float64), tree)


def _f64(fn, *args, **kw):
  """fn(*args) in float64, like the numpy references: whitening inverts a
  d x d covariance, whose float32 rounding the condition number amplifies
  by a CPU-dependent amount (4.7e-4 for M3R on an AVX2-only CPU, issue 16),
  so float32 comparisons would test the CPU, not the maths."""
  with jax.enable_x64(True):
    out = fn(*[a if isinstance(a, bool) else _np(a) for a in args], **kw)
    assert all(x.dtype == np.float64 for x in jax.tree.leaves(out))
    return jax.device_get(out)


def _inv_sqrtm_np(cov, shift):
  lam, v = np.linalg.eigh(cov)
  f = (np.maximum(lam, 0) + shift[..., None]) ** -0.5
  return np.einsum("...ik,...k,...jk->...ij", v, f, v)


def _affine_np(xhat, alg, mode, p):
  alg = algebras.get(alg)
  if mode == "whiten":
    y = np.einsum("...cj,cij->...ci", xhat, p["scale"])
  elif mode == "element" and alg.unit is not None:
    y = alg.multiply(p["scale"], xhat)
  else:
    y = xhat * p["scale"]
  return y + p["offset"]


def _bn_np(x, alg, mode, p, stats=None):
  """float64 reference on the standard layout; stats from x unless given."""
  x = np.asarray(x, np.float64)
  axes = tuple(range(x.ndim - 2))
  d = algebras.get(alg).dim
  if stats is None:
    mean = x.mean(axes)
    xc = x - mean
    if mode == "component":
      var = (xc**2).mean(axes)
    elif mode == "element":
      var = (xc**2).mean((*axes, x.ndim - 1))
    else:
      flat = xc.reshape(-1, *xc.shape[-2:])
      var = np.einsum("nci,ncj->cij", flat, flat) / flat.shape[0]
  else:
    mean, var = stats
    xc = x - mean
  if mode == "component":
    xhat = xc / np.sqrt(var + EPS)
  elif mode == "element":
    xhat = xc / np.sqrt(var + EPS)[:, None]
  else:
    shift = EPS * np.trace(var, axis1=-2, axis2=-1) / d + EPS
    xhat = np.einsum("...cj,cij->...ci", xc, _inv_sqrtm_np(var, shift))
  return _affine_np(xhat, alg, mode, p), (mean, var)


def _ln_np(x, alg, mode, p):
  x = np.asarray(x, np.float64)
  d = algebras.get(alg).dim
  if mode == "component":
    xc = x - x.mean((-2, -1), keepdims=True)
  else:
    xc = x - x.mean(-2, keepdims=True)
  if mode == "whiten":
    cov = np.einsum("...ci,...cj->...ij", xc, xc) / x.shape[-2]
    shift = EPS * np.trace(cov, axis1=-2, axis2=-1) / d + EPS
    xhat = np.einsum("...cj,...ij->...ci", xc, _inv_sqrtm_np(cov, shift))
  else:
    xhat = xc / np.sqrt((xc**2).mean((-2, -1), keepdims=True) + EPS)
  return _affine_np(xhat, alg, mode, p)


def _white_tol(cov):
  """Allowed |cov(whitened) - I|: the relative eps shrinks eigenvalue l to
  l / (l + shift), visible for the smallest l; plus float32 noise."""
  cov = np.asarray(cov, np.float64)
  lam = np.linalg.eigvalsh(cov)
  shift = EPS * np.trace(cov, axis1=-2, axis2=-1) / cov.shape[-1] + EPS
  return float((shift / (lam.min(-1) + shift)).max()) + 2e-4


def _channel_cov(y):
  """Per-channel covariance [C, d, d] of y[..., C, d] (float64)."""
  y = np.asarray(y, np.float64)
  flat = y.reshape(-1, *y.shape[-2:])
  flat = flat - flat.mean(0)
  return np.einsum("nci,ncj->cij", flat, flat) / flat.shape[0]


# -- BatchNorm: references -----------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("alg", ["R", "H", "cross", "M3R"])
def test_batchnorm_matches_numpy_in_training(alg, mode):
  x = _data(alg, (6, 5, 3))
  fn = _bn(alg, mode)
  params, state = fn.init(jax.random.key(0), x, True)
  params = _randomize(params, 1)
  want, _ = _bn_np(x, alg, mode, _np(params["bn"]))
  y, _ = _f64(fn.apply, params, state, x, True)
  np.testing.assert_allclose(y, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("alg", ["C", "H"])
def test_component_batchnorm_equals_hk_batchnorm_on_flattened(alg):
  x = _data(alg, (8, 4, 3))
  c, d = x.shape[-2:]
  fn = _bn(alg)
  params, state = fn.init(None, x, True)
  params = _randomize(params, 2)

  def ref(x):
    bn = hk.BatchNorm(True, True, decay_rate=0.9, eps=EPS)
    return bn(x.reshape(*x.shape[:-2], c * d), is_training=True)

  ref = hk.without_apply_rng(hk.transform_with_state(ref))
  ref_params, ref_state = ref.init(None, x)
  ref_params = {
      "batch_norm": {
          k: params["bn"][k].reshape(ref_params["batch_norm"][k].shape)
          for k in ("scale", "offset")
      }
  }
  want, _ = ref.apply(ref_params, ref_state, x)
  got, _ = fn.apply(params, state, x, True)
  np.testing.assert_allclose(got.reshape(want.shape), want, atol=2e-5)


@pytest.mark.parametrize("mode", MODES)
def test_running_stats_follow_ema(mode):
  alg, decay = "H", 0.8
  x1, x2 = _data(alg, (16, 3), seed=1), _data(alg, (16, 3), seed=2, loc=-1.0)
  fn = _bn(alg, mode, decay_rate=decay)
  params, state = fn.init(None, x1, True)
  c, d = x1.shape[-2:]
  init = _np(state["bn"])
  np.testing.assert_array_equal(init["mean"], np.zeros((c, d)))
  var_key = "cov" if mode == "whiten" else "var"
  init_var = {
      "component": np.ones((c, d)),
      "element": np.ones((c,)),
      "whiten": np.broadcast_to(np.eye(d), (c, d, d)),
  }[mode]
  np.testing.assert_array_equal(init[var_key], init_var)

  _, s1 = fn.apply(params, state, x1, True)
  _, s2 = fn.apply(params, s1, x2, True)
  _, (m1, v1) = _bn_np(x1, alg, mode, _np(params["bn"]))
  _, (m2, v2) = _bn_np(x2, alg, mode, _np(params["bn"]))
  want_mean = decay * (decay * 0 + (1 - decay) * m1) + (1 - decay) * m2
  want_var = decay * (decay * init_var + (1 - decay) * v1) + (1 - decay) * v2
  np.testing.assert_allclose(s2["bn"]["mean"], want_mean, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(s2["bn"][var_key], want_var, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_eval_uses_running_stats_and_keeps_state(mode):
  alg = "C"
  x = _data(alg, (10, 4), seed=3)
  fn = _bn(alg, mode)
  params, state = fn.init(None, x, True)
  params = _randomize(params, 4)
  _, state = fn.apply(params, state, _data(alg, (10, 4), seed=5), True)
  stats = _np(state["bn"])
  var = stats["cov"] if mode == "whiten" else stats["var"]

  y, new_state = _f64(fn.apply, params, state, x, False)
  want, _ = _bn_np(x, alg, mode, _np(params["bn"]), (stats["mean"], var))
  np.testing.assert_allclose(y, want, rtol=1e-9, atol=1e-9)
  jax.tree.map(np.testing.assert_array_equal, new_state, _np(state))

  # test_local_stats: batch statistics, state still untouched.
  y, new_state = _f64(fn.apply, params, state, x, False, True)
  want, _ = _bn_np(x, alg, mode, _np(params["bn"]))
  np.testing.assert_allclose(y, want, rtol=1e-9, atol=1e-9)
  jax.tree.map(np.testing.assert_array_equal, new_state, _np(state))


@pytest.mark.parametrize(
    "alg, mode, layout",
    [
        ("H", "component", "standard"),
        ("H", "element", "standard"),
        ("H", "whiten", "standard"),
        ("M2R", "whiten", "folded"),
    ],
)
def test_train_eval_consistent_after_many_updates(alg, mode, layout):
  # Fresh batches from one fixed (shifted, scaled, correlated) distribution.
  # After many EMA updates, eval must normalize like the population does;
  # the reference normalizes x with the statistics of x plus a 16x larger
  # sample, so sampling error (~1/300 here) stays well under the tolerance
  # while train/eval bugs (missing centring, wrong variance) are O(1).
  d = algebras.get(alg).dim
  c = 3
  rng = np.random.default_rng(7)
  mix = jnp.asarray(rng.normal(size=(c, d, d)) + 2 * np.eye(d), jnp.float32)
  loc = jnp.asarray(5 * rng.normal(size=(c, d)), jnp.float32)

  def sample(key, batch=1024):
    z = jax.random.normal(key, (batch, 4, c, d))
    return 3 * jnp.einsum("...cj,cij->...ci", z, mix) + loc

  def to(x):
    return layout_lib.convert(x, alg, "standard", layout)

  def back(y):
    return np.asarray(layout_lib.convert(y, alg, layout, "standard"))

  fn = _bn(alg, mode, layout)
  params, state = fn.init(None, to(sample(jax.random.key(0))), True)
  params = _randomize(params, 8)

  @jax.jit
  def train(state, keys):
    def step(state, key):
      return fn.apply(params, state, to(sample(key)), True)[1], None

    return jax.lax.scan(step, state, keys)[0]

  state = train(state, jax.random.split(jax.random.key(1), 100))
  x = sample(jax.random.key(2))
  big = jnp.concatenate([x, sample(jax.random.key(3), 16 * 1024)])
  y_eval = back(fn.apply(params, state, to(x), False)[0])
  y_ref = back(fn.apply(params, state, to(big), True)[0])[: len(x)]
  scale = np.abs(y_ref).mean()
  diff = np.abs(y_eval - y_ref)
  assert diff.mean() < 0.02 * scale, (diff.mean(), scale)
  assert diff.max() < 0.2 * scale, (diff.max(), scale)


# -- folded layout -------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("alg", MATRIX_ALGEBRAS)
def test_batchnorm_folded_equals_standard(alg, mode):
  x = _data(alg, (6, 3, 2), seed=9)
  xf = layout_lib.fold(x, alg)
  std, fld = _bn(alg, mode), _bn(alg, mode, "folded")
  params, state = std.init(None, x, True)
  # Canonical parameter and state shapes, independent of the layout.
  assert _shapes(
      jax.eval_shape(lambda x: fld.init(None, x, True), xf)
  ) == _shapes((params, state))
  params = _randomize(params, 10)

  def train_then_eval(fn, x):
    y_train, new_state = fn.apply(params, state, x, True)
    return y_train, new_state, fn.apply(params, new_state, x, False)[0]

  y_s, s_s, e_s = jax.jit(lambda x: train_then_eval(std, x))(x)
  y_f, s_f, e_f = jax.jit(lambda x: train_then_eval(fld, x))(xf)
  assert y_f.shape == e_f.shape == xf.shape
  for got, want in [(y_f, y_s), (e_f, e_s)]:
    np.testing.assert_allclose(
        layout_lib.unfold(got, alg), want, rtol=1e-4, atol=1e-4
    )
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
      s_f,
      s_s,
  )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("alg", MATRIX_ALGEBRAS)
def test_layernorm_folded_equals_standard(alg, mode):
  x = _data(alg, (3, 5, 12), seed=11)
  std, fld = _ln(alg, mode), _ln(alg, mode, "folded")
  params = _randomize(std.init(None, x), 12)
  xf = layout_lib.fold(x, alg)
  assert _shapes(jax.eval_shape(lambda x: fld.init(None, x), xf)) == _shapes(
      params
  )
  y_f = fld.apply(params, xf)
  np.testing.assert_allclose(
      layout_lib.unfold(y_f, alg), std.apply(params, x), rtol=1e-4, atol=1e-4
  )


# -- element mode --------------------------------------------------------------


@pytest.mark.parametrize("alg, layout", [("H", "standard"), ("M2C", "folded")])
def test_element_batchnorm_statistics(alg, layout):
  x = _data(alg, (64, 4), seed=13, loc=4.0)
  fn = _bn(alg, "element", layout)
  xin = layout_lib.convert(jnp.asarray(x), alg, "standard", layout)
  params, state = fn.init(None, xin, True)
  unit = algebras.get(alg).unit
  np.testing.assert_array_equal(params["bn"]["scale"], np.tile(unit, (4, 1)))
  y, _ = fn.apply(params, state, xin, True)
  y = np.asarray(layout_lib.convert(y, alg, layout, "standard"), np.float64)
  d = algebras.get(alg).dim
  np.testing.assert_allclose(y.mean((0, 1)), 0, atol=1e-5)
  np.testing.assert_allclose((y**2).sum(-1).mean((0, 1)) / d, 1, atol=1e-4)
  # One statistic per channel: per-component variances are NOT all 1.
  assert np.abs(y.var((0, 1)) - 1).max() > 0.1


@pytest.mark.parametrize(
    "alg, layout", [("H", "standard"), ("M2R", "folded"), ("M2C", "folded")]
)
def test_element_gamma_is_left_algebra_product(alg, layout):
  a = algebras.get(alg)
  x = _data(alg, (32, 3), seed=14)
  fn = _bn(alg, "element", layout)
  xin = layout_lib.convert(jnp.asarray(x), alg, "standard", layout)
  params, state = fn.init(None, xin, True)
  params = _randomize(params, 15)
  y, _ = fn.apply(params, state, xin, True)
  y = layout_lib.convert(y, alg, layout, "standard")

  p = _np(params["bn"])
  xc = x - x.mean(0)
  xhat = xc / np.sqrt((xc**2).mean((0, 2)) + EPS)[:, None]
  np.testing.assert_allclose(
      y, a.multiply(p["scale"], xhat) + p["offset"], rtol=1e-4, atol=1e-4
  )
  # Non-commutative algebras: gamma on the right would be a different layer.
  wrong = a.multiply(xhat, p["scale"]) + p["offset"]
  assert np.abs(np.asarray(y) - wrong).max() > 1e-2


def test_element_cross_falls_back_to_componentwise_scale():
  alg = "cross"
  assert algebras.get(alg).unit is None
  x = _data(alg, (32, 2), seed=16)
  fn = _bn(alg, "element")
  params, state = fn.init(None, x, True)
  np.testing.assert_array_equal(params["bn"]["scale"], np.ones((2, 3)))
  params = _randomize(params, 17)
  y, _ = fn.apply(params, state, x, True)
  p = _np(params["bn"])
  xc = x - x.mean(0)
  xhat = xc / np.sqrt((xc**2).mean((0, 2)) + EPS)[:, None]
  np.testing.assert_allclose(
      y, xhat * p["scale"] + p["offset"], rtol=1e-4, atol=1e-4
  )


# -- whitening -----------------------------------------------------------------


@pytest.mark.parametrize("alg, layout", [("C", "standard"), ("H", "standard")])
def test_whiten_batchnorm_output_covariance_is_identity(alg, layout):
  x = _data(alg, (512, 2), seed=18, loc=10.0)
  fn = _bn(alg, "whiten", layout)
  params, state = fn.init(None, x, True)
  d = algebras.get(alg).dim
  np.testing.assert_array_equal(
      params["bn"]["scale"], np.tile(np.eye(d), (2, 1, 1))
  )
  y, _ = fn.apply(params, state, x, True)
  assert np.abs(_channel_cov(x) - np.eye(d)).max() > 1  # really correlated
  np.testing.assert_allclose(
      _channel_cov(y),
      np.tile(np.eye(d), (2, 1, 1)),
      atol=_white_tol(_channel_cov(x)),
  )
  np.testing.assert_allclose(np.asarray(y).mean((0, 1)), 0, atol=1e-4)


def test_whiten_batchnorm_folded_m2r_output_covariance_is_identity():
  alg = "M2R"
  x = _data(alg, (256, 2), seed=19, loc=10.0)
  fn = _bn(alg, "whiten", "folded")
  xf = layout_lib.fold(jnp.asarray(x), alg)
  params, state = fn.init(None, xf, True)
  y, _ = fn.apply(params, state, xf, True)
  y = layout_lib.unfold(y, alg)
  np.testing.assert_allclose(
      _channel_cov(y),
      np.tile(np.eye(4), (2, 1, 1)),
      atol=_white_tol(_channel_cov(x)),
  )


@pytest.mark.parametrize("alg", ["C", "H"])
def test_whiten_huge_scale_is_stable(alg):
  x = 1e4 * _data(alg, (256, 2), seed=20, loc=3.0)
  fn = _bn(alg, "whiten")
  params, state = fn.init(None, x, True)
  y, state = fn.apply(params, state, x, True)
  assert np.isfinite(np.asarray(y)).all()
  d = algebras.get(alg).dim
  np.testing.assert_allclose(
      _channel_cov(y),
      np.tile(np.eye(d), (2, 1, 1)),
      atol=_white_tol(_channel_cov(x)),
  )
  y, _ = fn.apply(params, state, x, False)
  assert np.isfinite(np.asarray(y)).all()


@pytest.mark.parametrize("alg, const", [("C", [1]), ("H", [1]), ("H", [0, 3])])
def test_whiten_rank_deficient_is_finite_with_finite_grads(alg, const):
  d = algebras.get(alg).dim
  x = _data(alg, (128, 2), seed=21)
  x[..., const] = 3.0  # constant components: zero (repeated) eigenvalues
  fn = _bn(alg, "whiten")
  params, state = fn.init(None, x, True)
  y, _ = fn.apply(params, state, x, True)
  assert np.isfinite(np.asarray(y)).all()
  # The live components are white, the constant ones are zero.
  want = np.eye(d)
  want[const, const] = 0
  np.testing.assert_allclose(
      _channel_cov(y), np.tile(want, (2, 1, 1)), atol=1e-3
  )

  w = jax.random.normal(jax.random.key(0), x.shape)

  def loss(params, x):
    return jnp.sum(fn.apply(params, state, x, True)[0] * w)

  params = _randomize(params, 22)
  gp, gx = jax.grad(loss, argnums=(0, 1))(params, jnp.asarray(x))
  for g in jax.tree.leaves((gp, gx)):
    assert np.isfinite(np.asarray(g)).all()


def test_whiten_trabelsi_scale_init():
  fn = _bn("C", "whiten", scale_init="trabelsi")
  params, _ = fn.init(None, _data("C", (8, 4)), True)
  np.testing.assert_allclose(
      params["bn"]["scale"], np.tile(np.eye(2) / np.sqrt(2), (4, 1, 1))
  )


# -- LayerNorm -----------------------------------------------------------------


@pytest.mark.parametrize(
    "alg, mode",
    [("C", m) for m in MODES]
    + [("H", m) for m in MODES]
    + [("cross", "element")],
)
def test_layernorm_matches_numpy(alg, mode):
  x = _data(alg, (3, 4, 16), seed=24)
  fn = _ln(alg, mode)
  params = _randomize(fn.init(None, x), 25)
  want = _ln_np(x, alg, mode, _np(params["ln"]))
  got = _f64(fn.apply, params, x)
  np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_component_layernorm_equals_hk_layernorm():
  x = _data("H", (3, 4, 5), seed=26)
  fn = _ln("H")
  params = _randomize(fn.init(None, x), 27)

  def ref(x):
    ln = hk.LayerNorm(
        axis=(-2, -1),
        create_scale=True,
        create_offset=True,
        eps=EPS,
        param_axis=(-2, -1),
    )
    return ln(x)

  ref = hk.without_apply_rng(hk.transform(ref))
  ref_params = jax.tree.map(lambda v: v.reshape(1, 1, 5, 4), params["ln"])
  want = ref.apply({"layer_norm": ref_params}, x)
  np.testing.assert_allclose(fn.apply(params, x), want, atol=2e-5)


@pytest.mark.parametrize("alg", ["H", "M2R"])
def test_layernorm_element_and_whiten_statistics(alg):
  d = algebras.get(alg).dim
  x = _data(alg, (4, 32), seed=28, loc=5.0)
  y = np.asarray(
      _ln(alg, "element").apply(_ln(alg, "element").init(None, x), x),
      np.float64,
  )
  np.testing.assert_allclose(y.mean(-2), 0, atol=1e-5)
  np.testing.assert_allclose((y**2).sum(-1).mean(-1) / d, 1, atol=1e-4)

  fn = _ln(alg, "whiten")
  y = np.asarray(fn.apply(fn.init(None, x), x), np.float64)
  np.testing.assert_allclose(y.mean(-2), 0, atol=1e-5)
  cov = np.einsum("...ci,...cj->...ij", y, y) / y.shape[-2]
  xc = x - x.mean(-2, keepdims=True)
  cov_x = np.einsum("...ci,...cj->...ij", xc, xc) / x.shape[-2]
  np.testing.assert_allclose(
      cov, np.broadcast_to(np.eye(d), cov.shape), atol=_white_tol(cov_x)
  )


# -- dtypes, jit, factory ------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_bfloat16_keeps_dtype_with_float32_statistics(mode):
  x = _data("H", (32, 2), seed=29)
  fn = _bn("H", mode)
  params, state = fn.init(None, x, True)
  y32, _ = fn.apply(params, state, x, True)
  y16, s16 = fn.apply(params, state, jnp.asarray(x, jnp.bfloat16), True)
  assert y16.dtype == jnp.bfloat16
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(s16))
  np.testing.assert_allclose(np.asarray(y16, np.float32), y32, atol=0.1)


def test_jit_equals_no_jit():
  x = _data("H", (16, 3), seed=30)
  fn = _bn("H", "whiten")
  params, state = fn.init(None, x, True)
  params = _randomize(params, 31)
  y, s = fn.apply(params, state, x, True)
  yj, sj = jax.jit(fn.apply, static_argnums=(3,))(params, state, x, True)
  np.testing.assert_allclose(yj, y, rtol=1e-5, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), sj, s)


def test_get_norm_builds_each_kind():
  x = _data("H", (4, 2))

  def f(x):
    bn = norm.get_norm("batch", "H", mode="element", decay_rate=0.5)
    ln = norm.get_norm("layer", "H", mode="whiten", eps=1e-3)
    none = norm.get_norm("none", "H", decay_rate=0.5)
    assert isinstance(bn, norm.BatchNorm) and bn.decay_rate == 0.5
    assert isinstance(ln, norm.LayerNorm) and ln.eps == 1e-3
    np.testing.assert_array_equal(none(x, True), x)
    return ln(bn(x, True), True)

  params, _ = hk.transform_with_state(f).init(None, x)
  assert params["batch_norm"]["scale"].shape == (2, 4)
  assert params["layer_norm"]["scale"].shape == (2, 4, 4)


# -- errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, x, match",
    [
        (
            lambda: norm.BatchNorm("H", mode="complex"),
            None,
            r"unknown mode 'complex'; valid modes: component, element, whiten",
        ),
        (
            lambda: norm.LayerNorm("H", mode="elem"),
            None,
            r"LayerNorm: unknown mode 'elem'",
        ),
        (
            lambda: norm.BatchNorm("H", layout="folded"),
            None,
            r"BatchNorm: The folded layout needs a matrix algebra.*'H' is not",
        ),
        (
            lambda: norm.BatchNorm("H"),
            np.zeros((4, 3, 2), np.float32),
            r"expected x\[B, \.\.\., C, 4\].*got shape \(4, 3, 2\)",
        ),
        (
            lambda: norm.LayerNorm("M2R", layout="folded"),
            np.zeros((3, 5, 2), np.float32),
            r"expected x\[2, \.\.\., C, 2\], got shape \(3, 5, 2\)",
        ),
        (
            lambda: norm.BatchNorm("H"),
            np.zeros((3, 4), np.float32),
            r"expected x\[B, \.\.\., C, 4\]",
        ),
        (
            lambda: norm.BatchNorm("C", mode="whiten"),
            np.zeros((1, 3, 2), np.float32),
            r"at least 2 samples per channel.*\(1, 3, 2\)",
        ),
        (
            lambda: norm.LayerNorm("C", mode="whiten"),
            np.zeros((5, 1, 2), np.float32),
            r"at least 2 algebra channels.*C = 1",
        ),
        (
            lambda: norm.BatchNorm("C"),
            np.zeros((4, 3, 2), np.int32),
            r"floating-point activations, got dtype int32",
        ),
        (
            lambda: norm.BatchNorm("C", decay_rate=1.5),
            None,
            r"decay_rate must be in \[0, 1\], got 1.5",
        ),
        (
            lambda: norm.BatchNorm("C", scale_init="trabelsi"),
            None,
            r"scale_init='trabelsi' is not understood for mode='component'",
        ),
        (
            lambda: norm.get_norm("group", "C"),
            None,
            r"unknown kind 'group'; valid kinds: batch, layer, none",
        ),
        (
            lambda: norm.get_norm("layer", "C", decay_rate=0.9),
            None,
            r"LayerNorm does not take decay_rate; it accepts eps",
        ),
        (
            lambda: norm.get_norm("none", "C", mode="whitening"),
            None,
            r"unknown mode 'whitening'",
        ),
    ],
)
def test_errors(build, x, match):
  def f():
    mod = build()
    if x is not None:
      mod(jnp.asarray(x), True)

  with pytest.raises(ValueError, match=match):
    hk.transform_with_state(f).init(None)


@pytest.mark.parametrize("mode", ["component", "element", "whiten"])
@pytest.mark.parametrize(
    "alg,lay,shape",
    [
        ("H", "standard", (2, 3, 3, 2, 4)),
        ("M2R", "folded", (2, 2, 3, 3, 2, 2)),
    ],
)
def test_batchnorm_image_inputs_need_no_rank_promotion(mode, alg, lay, shape):
  # Conv activations [B, H, W, C, d] have two more leading axes than the
  # [C, d] statistics; every broadcast must be explicit (ResNet with
  # norm_mode='element' or 'whiten' used to fail under 'raise').
  def f(x, is_training):
    return norm.BatchNorm(alg, mode=mode, layout=lay)(x, is_training)

  tf = hk.transform_with_state(f)
  x = jax.random.normal(jax.random.key(0), shape)
  with jax.numpy_rank_promotion("raise"):
    params, state = tf.init(jax.random.key(1), x, True)
    y, state = tf.apply(params, state, None, x, True)
    y_eval, _ = tf.apply(params, state, None, x, False)
  assert y.shape == y_eval.shape == shape
  assert np.all(np.isfinite(np.asarray(y)))
