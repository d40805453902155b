"""Tests for algebranets.layers.initializers."""

import math

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import algebras
from algebranets.layers import initializers, linear

ALGEBRAS = algebras.names()
UNIFORM = [n for n in ALGEBRAS if np.ptp(algebras.get(n).component_gains) == 0]


# Strict numerics for every test here (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("strict_numerics")


def _sample(init, shape, seed=0):
  f = hk.transform(lambda: init(shape, jnp.float32))
  return np.asarray(f.apply({}, jax.random.key(seed)))


def test_builtins_are_uniform_except_dual():
  assert sorted(set(ALGEBRAS) - set(UNIFORM)) == ["dual"]


@pytest.mark.parametrize("name", ALGEBRAS)
def test_single_layer_output_variance_per_component(name):
  alg = algebras.get(name)
  gain = math.sqrt(2.0)
  n_in, m_out, tokens = 256, 64, 256

  def f(x):
    return linear.Linear(m_out, alg, gain=gain, with_bias=False)(x)

  t = hk.transform(f)
  variances = []
  for seed in range(5):
    x = jax.random.normal(jax.random.key(100 + seed), (tokens, n_in, alg.dim))
    params = t.init(jax.random.key(seed), x)
    y = t.apply(params, None, x)
    variances.append(np.mean(np.square(np.asarray(y)), axis=(0, 1)))
  got = np.mean(variances, axis=0)
  m = alg.component_gains
  want = gain**2 * m / m.mean()
  np.testing.assert_allclose(got, want, rtol=0.05)


@pytest.mark.parametrize("distribution", initializers.DISTRIBUTIONS)
@pytest.mark.parametrize(
    "name,shape",
    [("H", (256, 64, 4)), ("M3R", (3, 3, 32, 64, 9)), ("dual", (512, 32, 2))],
)
def test_weight_variance(name, shape, distribution):
  alg = algebras.get(name)
  init = initializers.AlgebraVarianceScaling(
      alg, gain=1.7, distribution=distribution
  )
  w = _sample(init, shape)
  fan_in = math.prod(shape[:-2])
  sigma2 = 1.7**2 / (fan_in * alg.component_gains.mean())
  got = np.var(w.reshape(-1, alg.dim), axis=0)
  np.testing.assert_allclose(got, sigma2, rtol=0.05)
  np.testing.assert_allclose(init.variance(shape), sigma2, rtol=1e-12)
  std = math.sqrt(sigma2)
  if distribution == "truncated_normal":
    # Cut at 2 standard deviations of the underlying (pre-truncation) normal.
    assert np.max(np.abs(w)) <= 2 * std / 0.87962566103423978 * (1 + 1e-6)
    assert np.max(np.abs(w)) > 2 * std  # Not a plain normal clipped at 2 std.
  elif distribution == "uniform":
    assert np.max(np.abs(w)) <= math.sqrt(3) * std * (1 + 1e-6)
    assert np.max(np.abs(w)) > 0.99 * math.sqrt(3) * std
  else:
    assert np.max(np.abs(w)) > 3.5 * std  # Tails a truncated draw lacks.


@pytest.mark.parametrize("name", ["H", "M2C", "cross"])
def test_components_are_independent(name):
  alg = algebras.get(name)
  w = _sample(initializers.AlgebraVarianceScaling(alg), (128, 128, alg.dim))
  corr = np.corrcoef(w.reshape(-1, alg.dim), rowvar=False)
  off = corr[~np.eye(alg.dim, dtype=bool)]
  assert np.max(np.abs(off)) < 0.03
  # Different weights are different draws too (no broadcast of one sample;
  # a few float32 collisions among 65k draws are expected).
  assert np.unique(w).size > 0.99 * w.size


def _relu_stack(alg, balance, depth=10, seed=0):
  """Per-component second moment after each Linear+ReLU layer [depth, d].

  Averaged over K independent networks of C channels (one token each). One
  network's moment after L layers fluctuates with relative variance about
  2 L / C (finite width; shared by all tokens of a network, so more tokens
  do not help), but its mean over networks is exact: each layer's
  conditional expectation is the init's target. K * C = 16k networks x
  channels gives ~4% noise per component, far cheaper than one very wide
  network. C = max(32, 128 / d) (16 for d >= 8, whose column streams are
  already n * C wide): networks with few real features are heavy-tailed.
  """
  width = max(16 if alg.dim >= 8 else 32, 128 // alg.dim)
  nets = 16384 // width
  tokens = 1
  init = initializers.AlgebraVarianceScaling(
      alg, gain=initializers.gain_for("relu"), balance=balance
  )
  t = hk.without_apply_rng(
      hk.transform(
          lambda x: linear.Linear(width, alg, w_init=init, with_bias=False)(x)
      )
  )
  x = jax.random.normal(
      jax.random.key(seed + 1), (nets, tokens, width, alg.dim)
  )

  @jax.jit
  def run(key):
    keys = jax.random.split(key, depth * nets).reshape(depth, nets)
    params = jax.vmap(jax.vmap(t.init), (0, None))(keys, x)

    def layer(h, p):
      h = jax.nn.relu(jax.vmap(t.apply)(p, h))
      return h, jnp.mean(jnp.square(h), axis=(0, 1, 2))

    return jax.lax.scan(layer, x, params)[1]

  return np.asarray(run(jax.random.key(seed)))


@pytest.mark.usefixtures("xla_optimizations")  # Compute-heavy: optimise.
@pytest.mark.parametrize("name", UNIFORM)
def test_deep_relu_stack_preserves_second_moment(name):
  alg = algebras.get(name)
  moments = _relu_stack(alg, "none")
  # Unit-variance input; each ReLU halves, gain^2 = 2 doubles.
  np.testing.assert_allclose(moments[-1], 1.0, rtol=0.25)
  np.testing.assert_allclose(moments, 1.0, rtol=0.25)


@pytest.mark.usefixtures("xla_optimizations")
def test_dual_default_init_drifts_as_derived():
  moments = _relu_stack(algebras.get("dual"), "none")
  depth = np.arange(1, 11)
  ratio = moments[:, 1] / moments[:, 0]
  # Module docstring: E[x_1^2] / E[x_0^2] = 1 + L and E[x_0^2] = (2/3)^L.
  np.testing.assert_allclose(ratio, 1.0 + depth, rtol=0.15)
  np.testing.assert_allclose(moments[:, 0], (2 / 3) ** depth, rtol=0.25)
  assert ratio[-1] > 8


@pytest.mark.usefixtures("xla_optimizations")
def test_dual_balanced_init_keeps_components():
  moments = _relu_stack(algebras.get("dual"), "components")
  np.testing.assert_allclose(moments, 1.0, rtol=0.25)


def test_component_scales():
  np.testing.assert_allclose(
      initializers.component_scales("dual", "components"), [1.5, 0.0]
  )
  for name in UNIFORM:
    np.testing.assert_array_equal(
        initializers.component_scales(name, "components"),
        np.ones(algebras.get(name).dim),
    )
    np.testing.assert_array_equal(
        initializers.component_scales(name, "none"),
        np.ones(algebras.get(name).dim),
    )


def test_component_scales_general_solution():
  # A[k, i] = sum_j c_ijk^2 = [[1, 0], [1, 2]]: m = (1, 3), m_bar = 2, and
  # s = (2, 0) is the unique solution of A s = 2.
  c = np.zeros((2, 2, 2))
  c[0, 0, 0] = 1
  c[0, 1, 1] = 1
  c[1, 0, 1] = c[1, 1, 1] = 1
  alg = algebras.from_structure_constants("test_nonuniform", c)
  s = initializers.component_scales(alg, "components")
  a = np.einsum("ijk->ki", c**2)
  np.testing.assert_allclose(a @ s, np.full(2, alg.component_gains.mean()))
  assert np.all(s >= 0)
  np.testing.assert_allclose(s, [2.0, 0.0], atol=1e-9)


def test_balanced_weight_variance_dual():
  init = initializers.AlgebraVarianceScaling(
      "dual", gain=1.0, distribution="normal", balance="components"
  )
  w = _sample(init, (512, 64, 2))
  assert np.all(w[..., 1] == 0)  # The eps component starts at zero.
  np.testing.assert_allclose(np.var(w[..., 0]), 1.5 / (512 * 1.5), rtol=0.05)


def test_balance_impossible_negative():
  # A = [[1, 0], [2, 1]], m = (1, 3), m_bar = 2: s = (2, -2) is the only
  # solution of A s = 2, so no non-negative variances equalise it.
  c = np.zeros((2, 2, 2))
  c[0, 0, 0] = 1
  c[0, 0, 1] = c[0, 1, 1] = 1
  c[1, 0, 1] = 1
  alg = algebras.from_structure_constants("test_negative", c)
  with pytest.raises(ValueError, match=r"NON-NEGATIVE.*balance='none'"):
    initializers.AlgebraVarianceScaling(alg, balance="components")


def test_balance_impossible_unreachable():
  c = np.zeros((2, 2, 2))
  c[0, 0, 0] = c[1, 1, 0] = 1  # Nothing ever reaches component 1.
  alg = algebras.from_structure_constants("test_unreachable", c)
  with pytest.raises(ValueError, match="cannot be reached"):
    initializers.AlgebraVarianceScaling(alg, balance="components")


def test_gain_for():
  assert initializers.gain_for("relu") == pytest.approx(math.sqrt(2))
  assert initializers.gain_for("split") == pytest.approx(math.sqrt(2))
  assert initializers.gain_for("linear") == 1.0
  assert initializers.gain_for("tanh") == 1.0
  assert initializers.gain_for(None) == 1.0
  with pytest.raises(ValueError, match=r"'bogus'.*valid names: .*relu"):
    initializers.gain_for("bogus")


def test_errors():
  with pytest.raises(ValueError, match="Unknown distribution 'cauchy'"):
    initializers.AlgebraVarianceScaling("H", distribution="cauchy")
  with pytest.raises(ValueError, match="Unknown balance 'rows'"):
    initializers.AlgebraVarianceScaling("H", balance="rows")
  with pytest.raises(ValueError, match=r"Unknown algebra 'quat'.*Valid names"):
    initializers.AlgebraVarianceScaling("quat")
  with pytest.raises(ValueError, match=r"\[\.\.\., M, 4\].*got \(3, 5\)"):
    _sample(initializers.AlgebraVarianceScaling("H"), (3, 5))
