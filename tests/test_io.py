"""Tests for algebranets.layers.io (input lifts and output heads)."""

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import algebras
from algebranets import layout as layout_lib
from algebranets.layers import io

TOL = dict(rtol=1e-5, atol=1e-5)


# Strict numerics for every test here (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("strict_numerics")


def _run(make, x, params=None):
  t = hk.transform(lambda x: make()(x))
  if params is None:
    params = t.init(jax.random.key(0), x)
  return params, t.apply(params, None, x)


def _rand(shape, seed=0):
  return jax.random.normal(jax.random.key(seed), shape)


# -- lifts -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["C", "H", "M2R"])
def test_real_stem_conv(name):
  d = algebras.get(name).dim
  x = _rand((2, 8, 8, 3))
  params, y = _run(lambda: io.RealStem(5, name, kernel_shape=3, stride=2), x)
  assert y.shape == (2, 4, 4, 5, d)
  p = params["real_stem/conv"]
  assert p["w"].shape == (3, 3, 3, 5 * d)
  # Same as Haiku's own conv, reshaped channel-major.
  ref = hk.transform(lambda x: hk.Conv2D(5 * d, 3, stride=2, name="c")(x))
  want = ref.apply({"c": p}, None, x)
  np.testing.assert_allclose(y, want.reshape(2, 4, 4, 5, d), **TOL)


def test_real_stem_dense_and_folded():
  x = _rand((4, 6))
  params, y = _run(lambda: io.RealStem(3, "M2R", name="s"), x)
  assert y.shape == (4, 3, 4)
  p = params["s/linear"]
  np.testing.assert_allclose(
      y, (x @ p["w"] + p["b"][None]).reshape(4, 3, 4), **TOL
  )
  _, y_f = _run(
      lambda: io.RealStem(3, "M2R", layout="folded", name="s"), x, params
  )
  np.testing.assert_array_equal(y_f, layout_lib.fold(y, "M2R"))


def test_real_stem_errors():
  with pytest.raises(ValueError, match=r"expects images \[B, H, W, c\]"):
    _run(lambda: io.RealStem(3, "H", kernel_shape=3), _rand((4, 6)))
  with pytest.raises(ValueError, match="stride=2 needs a conv stem"):
    _run(lambda: io.RealStem(3, "H", stride=2), _rand((4, 6)))


@pytest.mark.parametrize("offset", [0, 1, 3])
def test_pad(offset):
  x = _rand((2, 5))
  params, y = _run(lambda: io.Pad("H", offset=offset), x)
  assert params == {}
  assert y.shape == (2, 5, 4)
  np.testing.assert_array_equal(y[..., offset], x)
  others = [k for k in range(4) if k != offset]
  np.testing.assert_array_equal(y[..., others], 0.0)


def test_pad_pack_pure_quaternion():
  rgb = jnp.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
  _, y = _run(lambda: io.Pad("H", offset=1, pack=True), rgb)
  np.testing.assert_allclose(y, [[[0, 0.1, 0.2, 0.3]], [[0, 0.4, 0.5, 0.6]]])
  _, y = _run(lambda: io.Pad("C", pack=True), jnp.arange(1.0, 6.0))
  np.testing.assert_array_equal(y, [[1, 2], [3, 4], [5, 0]])


def test_pad_folded_and_errors():
  x = _rand((2, 5))
  _, y = _run(lambda: io.Pad("M2C", offset=2), x)
  _, y_f = _run(lambda: io.Pad("M2C", offset=2, layout="folded"), x)
  np.testing.assert_array_equal(y_f, layout_lib.fold(y, "M2C"))
  with pytest.raises(
      ValueError, match=r"offset must be an int in \[0, 4\).*got 4"
  ):
    _run(lambda: io.Pad("H", offset=4), x)


@pytest.mark.parametrize("name", ["C", "M3R"])
def test_tile(name):
  d = algebras.get(name).dim
  x = _rand((3, 2))
  _, y = _run(lambda: io.Tile(name), x)
  assert y.shape == (3, 2, d)
  for k in range(d):
    np.testing.assert_array_equal(y[..., k], x)


# -- heads ---------------------------------------------------------------------


def test_flatten_real_matches_manual_dense():
  x = _rand((2, 3, 4))  # [B, C, d] for H
  params, y = _run(lambda: io.FlattenReal(7, name="head"), x)
  p = params["head/linear"]
  assert p["w"].shape == (12, 7)
  want = x.reshape(2, 12) @ p["w"] + p["b"][None]
  np.testing.assert_allclose(y, want, **TOL)


@pytest.mark.parametrize("algebra", [None, "M2C"])
def test_flatten_real_folded_equals_standard(algebra):
  x = _rand((2, 5, 3, 8))  # M2C standard [B, T, C, 8]
  params, y = _run(lambda: io.FlattenReal(4, algebra=algebra, name="h"), x)
  _, y_f = _run(
      lambda: io.FlattenReal(4, algebra=algebra, layout="folded", name="h"),
      layout_lib.fold(x, "M2C"),
      params,
  )
  np.testing.assert_allclose(y_f, y, **TOL)


@pytest.mark.parametrize("name", ["C", "H", "M2R"])
def test_first_component(name):
  x = _rand((2, 3, algebras.get(name).dim))
  _, y = _run(lambda: io.FirstComponent(), x)
  np.testing.assert_array_equal(y, x[..., 0])


@pytest.mark.parametrize("name", ["M2R", "M3R", "M2C"])
def test_first_component_folded_and_trace(name):
  n, e = layout_lib.matrix_shape(name)
  x = _rand((2, 3, algebras.get(name).dim))
  x_f = layout_lib.fold(x, name)
  _, y_f = _run(lambda: io.FirstComponent(layout="folded"), x_f)
  np.testing.assert_array_equal(y_f, x[..., 0])
  mats = np.asarray(x).reshape(2, 3, n, n, e)[..., 0]
  trace = np.trace(mats, axis1=-2, axis2=-1)
  _, t = _run(lambda: io.FirstComponent(algebra=name, trace=True), x)
  np.testing.assert_allclose(t, trace, **TOL)
  _, t_f = _run(
      lambda: io.FirstComponent(algebra=name, trace=True, layout="folded"), x_f
  )
  np.testing.assert_allclose(t_f, trace, **TOL)


@pytest.mark.parametrize("name", ["C", "H", "cross", "M2C"])
def test_norm(name):
  alg = algebras.get(name)
  x = _rand((2, 3, alg.dim))
  _, y = _run(lambda: io.Norm(name), x)
  np.testing.assert_allclose(y, alg.norm(np.asarray(x, np.float64)), **TOL)
  if alg.matrix_shape is not None:
    _, y_f = _run(
        lambda: io.Norm(name, layout="folded"), layout_lib.fold(x, name)
    )
    np.testing.assert_allclose(y_f, y, **TOL)


def test_factories_and_errors():
  _, y = _run(lambda: io.get_lift("tile", algebra="C"), _rand((3,)))
  assert y.shape == (3, 2)
  _, y = _run(
      lambda: io.get_lift("real_stem", channels=2, algebra="H"), _rand((3,))
  )
  assert y.shape == (2, 4)
  _, y = _run(lambda: io.get_head("norm", algebra="C"), _rand((3, 2)))
  assert y.shape == (3,)
  with pytest.raises(
      ValueError, match="Unknown lift 'embed'; valid: real_stem, pad, tile"
  ):
    io.get_lift("embed")
  with pytest.raises(
      ValueError,
      match="Unknown head 'trace'; valid: flatten_real, first_component, norm",
  ):
    io.get_head("trace")
  with pytest.raises(ValueError, match="trace=True needs the matrix algebra"):
    _run(lambda: io.FirstComponent(trace=True), _rand((2, 4)))
  with pytest.raises(ValueError, match="'H' is not one"):
    _run(lambda: io.FirstComponent(algebra="H", trace=True), _rand((2, 4)))
  with pytest.raises(ValueError, match=r"d=2 of 'C'.*\(2, 4\)"):
    _run(lambda: io.Norm("C"), _rand((2, 4)))
  with pytest.raises(ValueError, match="Unknown layout 'flat'"):
    _run(lambda: io.Tile("C", layout="flat"), _rand((2,)))
