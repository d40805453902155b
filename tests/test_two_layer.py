"""Tests for algebranets/models/two_layer.py (the teacher-student student).

The oracle is a float64 numpy forward pass written with the textbook
algebra products of tests/reference_products.py (no structure constants).
"""

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from algebranets import algebras, metrics, models
from algebranets.models import two_layer
from tests import reference_products as ref

CUBIC = (0.5, 1.0, 0.0, 1.0)
UNITS = {
    "R": [1.0],
    "C": [1.0, 0.0],
    "H": [1.0, 0, 0, 0],
    "M2R": [1.0, 0, 0, 1],
}
HIDDEN = "two_layer/hidden"
HEAD = "two_layer/head/linear"


def _cfg(**kw):
  return {**models.defaults("two_layer"), **kw}


def _channels(cfg, d):
  """H of the student of `cfg` on d inputs (the constructor's)."""
  return models.constructed(cfg, input_dim=d, coeffs=CUBIC).channels


def _build(cfg, d, coeffs=CUBIC, seed=0, batch=5):
  def fn(x):
    model = models.build(cfg, input_dim=d, coeffs=coeffs)
    return model(x, is_training=False)

  f = hk.without_apply_rng(hk.transform(fn))
  x = np.random.default_rng(seed).standard_normal((batch, d)).astype(np.float32)
  params = f.init(jax.random.key(seed), x)
  return f, params, x


def _textbook_power_series(q, coeffs, product, unit):
  out = coeffs[0] * np.asarray(unit) + coeffs[1] * q
  power = q
  for a in coeffs[2:]:
    power = product(q, power)
    out = out + a * power
  return out


def _reference_forward(params, x, cfg, coeffs, product, unit=None):
  """float64 numpy forward pass (weights on the left of the product)."""
  w = np.asarray(params[HIDDEN]["w"], np.float64)
  b = np.asarray(params[HIDDEN]["b"], np.float64)
  n_in, channels, dim = w.shape
  xp = np.zeros((x.shape[0], n_in * dim))
  xp[:, : x.shape[1]] = x
  xl = xp.reshape(x.shape[0], n_in, dim)
  pre = np.zeros((x.shape[0], channels, dim)) + b
  for n in range(n_in):
    pre += product(w[None, n], xl[:, n, None, :])
  act = cfg["activation"]
  if act == "relu":
    h = np.maximum(pre, 0.0)
  elif act == "poly":
    h = sum(a * pre**k for k, a in enumerate(coeffs))
  else:
    h = _textbook_power_series(pre, coeffs, product, unit)
  flat = h.reshape(x.shape[0], channels * dim)
  head = params[HEAD]
  return (flat @ np.asarray(head["w"], np.float64) + np.asarray(head["b"]))[
      :, 0
  ], pre


@pytest.mark.parametrize("algebra", ["R", "C", "H", "M2R"])
@pytest.mark.parametrize("activation", ["poly", "relu", "poly_algebra"])
def test_forward_matches_textbook_reference(
    algebra, activation, strict_numerics
):
  cfg = _cfg(algebra=algebra, hidden=12, activation=activation)
  f, params, x = _build(cfg, d=8)
  out = f.apply(params, x)
  channels = _channels(cfg, 8)
  dim = algebras.get(algebra).dim
  assert out.shape == (5,) and out.dtype == jnp.float32
  assert params[HIDDEN]["w"].shape == (8 // dim, channels, dim)
  assert params[HEAD]["w"].shape == (channels * dim, 1)
  want, _ = _reference_forward(
      params, x, cfg, CUBIC, ref.CASES[algebra][1], UNITS[algebra]
  )
  np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_pad_lift_for_a_dimension_that_does_not_divide_d(strict_numerics):
  cfg = _cfg(algebra="cross", hidden=10, lift="pad", activation="relu")
  f, params, x = _build(cfg, d=8)
  assert params[HIDDEN]["w"].shape[0] == 3  # ceil(8 / 3) channels
  want, _ = _reference_forward(params, x, cfg, CUBIC, ref.CASES["cross"][1])
  np.testing.assert_allclose(f.apply(params, x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "algebra,d,lift",
    [
        ("C", 16, "reshape"),
        ("H", 16, "reshape"),
        ("M2R", 8, "reshape"),
        ("M3R", 9, "reshape"),
        ("cross", 16, "pad"),
        ("M4R", 32, "reshape"),
    ],
)
def test_param_matching_is_the_closest_count(algebra, d, lift):
  for hidden in (1, 7, 16, 64, 300):
    target = hidden * (d + 2) + 1
    assert two_layer.num_params(d, hidden, "R") == target
    best = min(
        range(1, 2 * hidden + 2),
        key=lambda h: (
            abs(two_layer.num_params(d, h, algebra, lift) - target),
            h,
        ),
    )
    assert two_layer.matched_channels(d, hidden, algebra, lift) == best


def test_param_counts_match_the_built_model():
  # R student, hidden 16, d = 16: 16 * 18 + 1 = 289; H with 12 channels
  # has 4 * 12 * (4 + 2) + 1 = 289 too.
  for algebra, channels in (("R", 16), ("H", 12)):
    cfg = _cfg(algebra=algebra, hidden=16)
    assert _channels(cfg, 16) == channels
    _, params, _ = _build(cfg, d=16)
    assert metrics.count_params(params) == 289
  cfg = _cfg(algebra="H", hidden=16, match="none")
  assert _channels(cfg, 16) == 4


def _left_regular_textbook(w, product, dim):
  """L(w)[k, j] = (w e_j)_k from the textbook product."""
  basis = np.eye(dim)
  return np.stack([product(w, basis[j]) for j in range(dim)], axis=-1)


@pytest.mark.parametrize(
    "algebra,d,lift",
    [
        ("R", 6, "reshape"),
        ("C", 6, "reshape"),
        ("H", 8, "reshape"),
        ("M2R", 8, "reshape"),
        ("cross", 7, "pad"),
    ],
)
def test_effective_directions(algebra, d, lift):
  cfg = _cfg(algebra=algebra, hidden=10, lift=lift, activation="relu")
  _, params, x = _build(cfg, d=d)
  product = ref.CASES[algebra][1]
  dirs = two_layer.effective_directions(params, cfg["algebra"], input_dim=d)
  w = np.asarray(params[HIDDEN]["w"], np.float64)
  n_in, channels, dim = w.shape
  assert dirs.shape == (channels * dim, d)
  # Explicit construction: row m*A + k, columns n*A + j.
  want = np.zeros((channels * dim, n_in * dim))
  for n in range(n_in):
    for m in range(channels):
      block = _left_regular_textbook(w[n, m], product, dim)
      want[m * dim : (m + 1) * dim, n * dim : (n + 1) * dim] = block
  np.testing.assert_allclose(dirs, want[:, :d], atol=1e-12)
  # And they give the hidden pre-activations of the real model.
  _, pre = _reference_forward(params, x, cfg, CUBIC, product)
  bias = np.asarray(params[HIDDEN]["b"], np.float64).reshape(-1)
  np.testing.assert_allclose(
      x @ dirs.T + bias, pre.reshape(x.shape[0], -1), atol=1e-5
  )


@pytest.mark.parametrize("algebra", ["C", "H", "M2R", "cross"])
def test_algebra_polynomial_matches_explicit_products(algebra):
  coeffs = (0.0 if algebra == "cross" else 0.7, -1.0, 0.5, 2.0, 0.0, 0.1)
  dim = algebras.get(algebra).dim
  q = np.random.default_rng(1).standard_normal((3, 2, dim))
  got = two_layer.algebra_polynomial(
      jnp.asarray(q, jnp.float32), coeffs, algebra
  )
  unit = UNITS.get(algebra, np.zeros(dim))
  want = _textbook_power_series(q, coeffs, ref.CASES[algebra][1], unit)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_poly_algebra_is_poly_for_the_reals():
  f_poly, params, x = _build(_cfg(activation="poly"), d=6)
  f_alg, _, _ = _build(_cfg(activation="poly_algebra"), d=6)
  np.testing.assert_allclose(
      f_poly.apply(params, x), f_alg.apply(params, x), rtol=1e-6
  )


def test_head_starts_at_zero():
  f, params, x = _build(_cfg(algebra="H", hidden=8), d=8)
  np.testing.assert_array_equal(f.apply(params, x), 0.0)
  assert np.any(params[HIDDEN]["w"] != 0)


def test_polynomial_helper():
  x = jnp.array([-2.0, 0.0, 1.5])
  np.testing.assert_allclose(
      two_layer.polynomial(x, CUBIC), 0.5 + x + x**3, rtol=1e-6
  )


@pytest.mark.parametrize("algebra", ["R", "H"])
def test_gradients(algebra):
  cfg = _cfg(algebra=algebra, hidden=8)
  f, params, x = _build(cfg, d=4, batch=3)
  # The head starts at zero (the output is then constant); give it values
  # so that gradients reach the hidden layer too.
  rng = np.random.default_rng(3)
  head = dict(params[HEAD])
  head["w"] = jnp.asarray(rng.normal(size=head["w"].shape), jnp.float32)
  params = {**params, HEAD: head}
  target = jnp.asarray(rng.normal(size=3), jnp.float32)

  def loss(p):
    return jnp.mean((f.apply(p, x) - target) ** 2)

  grads = jax.grad(loss)(params)
  for g in jax.tree.leaves(grads):
    assert np.all(np.isfinite(g)) and np.any(g != 0)
  check_grads(
      loss, (params,), order=1, modes=("rev",), eps=1e-2, atol=0.05, rtol=0.05
  )


@pytest.mark.parametrize(
    "cfg,d,coeffs,pattern",
    [
        (
            _cfg(algebra="H"),
            6,
            CUBIC,
            r"input_dim=6 is not divisible.*lift=pad",
        ),
        (
            _cfg(algebra="cross", lift="pad", activation="poly_algebra"),
            6,
            CUBIC,
            r"'cross' has no unit",
        ),
        (_cfg(activation="poly"), 6, None, r"needs the teacher's polynomial"),
        (_cfg(activation="tanh"), 6, CUBIC, r"unknown model.activation 'tanh'"),
        (_cfg(hidden=0), 6, CUBIC, r"model.hidden=0 must be an int >= 1"),
        (
            _cfg(algebra="H", match="none", hidden=3),
            8,
            CUBIC,
            r"raise model.hidden",
        ),
        (_cfg(match="all"), 6, CUBIC, r"unknown model.match"),
        (_cfg(lift="tile"), 6, CUBIC, r"unknown model.lift"),
        (_cfg(algebra="Q"), 6, CUBIC, r"Q"),
        ({**_cfg(), "width": 2}, 6, CUBIC, r"Unknown config key 'model.width'"),
    ],
)
def test_config_errors(cfg, d, coeffs, pattern):
  with pytest.raises(models.ModelConfigError, match=pattern):
    models.constructed(cfg, input_dim=d, coeffs=coeffs)


def test_check_before_the_data_defers_only_the_data_checks():
  # models.check runs before the data is loaded (input_dim, coeffs None):
  # a config that only fails against the data passes; a bad value fails.
  models.check(_cfg(algebra="H"))
  models.check(_cfg(activation="poly"))
  assert models.constructed(_cfg(match="none", hidden=8)).channels == 8
  with pytest.raises(models.ModelConfigError, match=r"model\.hidden=0"):
    models.check(_cfg(hidden=0))
  with pytest.raises(models.ModelConfigError, match="input_dim=6"):
    models.check(_cfg(algebra="H"), input_dim=6, coeffs=CUBIC)


def test_input_shape_error():
  def fn(x):
    return models.build(_cfg(), input_dim=6, coeffs=CUBIC)(x)

  f = hk.without_apply_rng(hk.transform(fn))
  with pytest.raises(ValueError, match=r"expected x \[B, 6\]"):
    f.init(jax.random.key(0), jnp.zeros((2, 5)))


def test_effective_directions_errors():
  with pytest.raises(ValueError, match="exactly one module named"):
    two_layer.effective_directions({"mlp/linear": {"w": np.ones((2, 2))}}, "R")
  params = {HIDDEN: {"w": np.ones((2, 3, 1))}}
  with pytest.raises(ValueError, match=r"not \[N, H, 4\]"):
    two_layer.effective_directions(params, "H")
  with pytest.raises(ValueError, match="exceeds the 2 lifted"):
    two_layer.effective_directions(params, "R", input_dim=3)
