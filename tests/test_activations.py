"""Tests for algebranets.layers.activations."""

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from algebranets import algebras
from algebranets import layout as layout_lib
from algebranets.layers import activations

MATRIX = ["M2R", "M3R", "M2C"]


# Strict numerics for every test here (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("strict_numerics")


def _apply(kind, name, x, layout="standard", params=None, **kwargs):
  t = hk.transform(
      lambda x: activations.Activation(kind, name, layout=layout, **kwargs)(x)
  )
  if params is None:
    params = t.init(jax.random.key(0), x)
  return params, t.apply(params, None, x)


def _x(name, shape=(2, 3, 5), seed=0):
  return jax.random.normal(
      jax.random.key(seed), (*shape, algebras.get(name).dim)
  )


@pytest.mark.parametrize("name", algebras.names())
def test_split_relu_is_componentwise(name):
  x = _x(name)
  params, y = _apply("split", name, x)
  assert params == {}
  np.testing.assert_array_equal(y, jnp.maximum(x, 0.0))


@pytest.mark.parametrize("fn", ["gelu", "tanh", "silu", "sigmoid"])
def test_split_other_functions(fn):
  x = _x("H")
  _, y = _apply("split", "H", x, fn=fn)
  np.testing.assert_allclose(y, getattr(jax.nn, fn)(x), rtol=1e-6)


def test_split_folded_is_layout_agnostic():
  x = _x("M2R")
  _, y_f = _apply("split", "M2R", layout_lib.fold(x, "M2R"), layout="folded")
  np.testing.assert_array_equal(y_f, layout_lib.fold(jnp.maximum(x, 0), "M2R"))


def _modrelu_reference(x, b):
  """numpy float64: relu(|x| + b) x / |x| per element of x [..., C, d]."""
  x = np.asarray(x, np.float64)
  norm = np.linalg.norm(x, axis=-1, keepdims=True)
  return np.maximum(norm + b[:, None], 0.0) * x / norm


@pytest.mark.parametrize("name", ["C", "H", "cross"])
def test_modrelu_matches_numpy(name):
  x = _x(name, (4, 6))
  params, y = _apply("modrelu", name, x)
  assert params["activation"]["bias"].shape == (6,)
  np.testing.assert_array_equal(params["activation"]["bias"], 0.0)
  # Zero bias init: modReLU is the identity.
  np.testing.assert_allclose(y, x, rtol=1e-6)
  b = np.linspace(-1.5, 0.5, 6).astype(np.float32)
  _, y = _apply("modrelu", name, x, params={"activation": {"bias": b}})
  np.testing.assert_allclose(y, _modrelu_reference(x, b), rtol=1e-5, atol=1e-6)
  # Some elements were gated off, some kept.
  gated = np.all(np.asarray(y) == 0, axis=-1)
  assert gated.any() and not gated.all()


@pytest.mark.parametrize("name", MATRIX)
def test_modrelu_folded(name):
  x = _x(name, (4, 3))
  b = np.array([-1.0, 0.3, -2.5], np.float32)
  params = {"activation": {"bias": b}}
  _, y_f = _apply(
      "modrelu", name, layout_lib.fold(x, name), "folded", params=params
  )
  want = _modrelu_reference(x, b)
  np.testing.assert_allclose(
      layout_lib.unfold(y_f, name), want, rtol=1e-5, atol=1e-6
  )


@pytest.mark.parametrize("bias", [0.0, 0.7, -0.7])
def test_modrelu_finite_at_zero(bias):
  x = jnp.zeros((2, 3, 4)).at[0, 1].set(jnp.array([0.3, -0.2, 0.1, 0.5]))
  b = jnp.full((3,), bias)

  weights = jnp.broadcast_to(jnp.arange(1.0, 5.0), x.shape)

  def loss(x, b):
    return jnp.sum(activations.modrelu(x, b, "H") * weights)

  value = activations.modrelu(x, b, "H")
  gx, gb = jax.grad(loss, argnums=(0, 1))(x, b)
  assert np.all(np.isfinite(value)) and np.all(np.isfinite(gx))
  assert np.all(np.isfinite(gb))
  np.testing.assert_array_equal(value[1], 0.0)  # modReLU(0) = 0.
  if bias == 0.0:
    # Identity at zero bias, including its gradient at x = 0.
    np.testing.assert_allclose(gx[1], weights[1])


def test_modrelu_gradients_match_finite_differences():
  x = _x("H", (2, 3), seed=3)
  b = jnp.array([-0.5, 0.2, -1.0])
  check_grads(
      lambda x, b: activations.modrelu(x, b, "H"),
      (x, b),
      order=1,
      modes=("rev",),
      atol=1e-2,
      rtol=1e-2,
  )


def _first_component_reference(x):
  x = np.asarray(x)
  return x * (x[..., :1] > 0)


@pytest.mark.parametrize("name", ["C", "H", "cross", "dual"])
def test_first_component_standard(name):
  x = _x(name, (4, 7))
  params, y = _apply("first_component", name, x)
  assert params == {}
  np.testing.assert_array_equal(y, _first_component_reference(x))


@pytest.mark.parametrize("name", MATRIX)
def test_first_component_folded(name):
  x = _x(name, (4, 7))
  _, y_f = _apply("first_component", name, layout_lib.fold(x, name), "folded")
  # Component 0 is entry (0, 0): fold axis 0, last-axis index 0.
  np.testing.assert_array_equal(
      y_f, layout_lib.fold(_first_component_reference(x), name)
  )


def test_factory_and_errors():
  f = hk.transform(lambda x: activations.get_activation("split", "C")(x))
  x = _x("C")
  np.testing.assert_array_equal(
      f.apply(f.init(jax.random.key(0), x), None, x), jnp.maximum(x, 0)
  )
  with pytest.raises(
      ValueError, match="Unknown activation 'swish'; valid: split, modrelu"
  ):
    activations.get_activation("swish", "C")
  with pytest.raises(
      ValueError, match=r"Unknown split activation function 'rleu'.*relu"
  ):
    hk.transform(lambda: activations.Activation("split", "C", fn="rleu")).init(
        jax.random.key(0)
    )
  with pytest.raises(ValueError, match="folded layout needs a matrix algebra"):
    _apply("modrelu", "H", _x("H"), layout="folded")
  with pytest.raises(ValueError, match=r"d=4 of 'H'.*\(2, 3, 5, 2\)"):
    _apply("modrelu", "H", _x("C"))
  with pytest.raises(ValueError, match=r"'bias' of shape \(4,\).*\(5,\)"):
    params, _ = _apply("modrelu", "C", _x("C"))
    _apply("modrelu", "C", _x("C", (2, 4)), params=params)


def test_not_counted_as_macs_nor_reported_uncounted():
  from algebranets import metrics

  def f(x):
    return activations.Activation("modrelu", "H", name="act")(x)

  report = metrics.count_macs(f, _x("H"))
  assert report.total == 0
  assert report.rows == ()
  assert report.uncounted == ()
