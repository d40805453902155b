"""Standard and column-folded activation layouts."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import algebras, layout

M2H = algebras.matrix_algebra(2, "H")
# name -> (algebra argument, n, e)
MATRIX = {
    "M2R": ("M2R", 2, 1),
    "M3R": ("M3R", 3, 1),
    "M4R": ("M4R", 4, 1),
    "M2C": ("M2C", 2, 2),
    "M2H": (M2H, 2, 4),
}
LEADS = [(), (2,), (2, 3, 1)]


def _x(shape, seed=0):
  return jnp.asarray(
      np.random.default_rng(seed).normal(size=shape), jnp.float32
  )


def _explicit_fold(x, n, e):
  """x[..., C, (row a, col b, base p)] -> out[b, ..., C, (a, p)], by loops."""
  x = np.asarray(x)
  out = np.zeros((n, *x.shape[:-1], n * e), x.dtype)
  for a in range(n):
    for b in range(n):
      for p in range(e):
        out[b, ..., a * e + p] = x[..., (a * n + b) * e + p]
  return out


@pytest.mark.parametrize("name", list(MATRIX))
def test_matrix_shape(name):
  alg, n, e = MATRIX[name]
  assert layout.matrix_shape(alg) == (n, e)


@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize("name", list(MATRIX))
def test_fold_unfold_round_trip(name, lead):
  alg, n, e = MATRIX[name]
  x = _x((*lead, 3, n * n * e))
  x_f = layout.fold(x, alg)
  assert x_f.shape == (n, *lead, 3, n * e)
  np.testing.assert_array_equal(x_f, _explicit_fold(x, n, e))
  np.testing.assert_array_equal(layout.unfold(x_f, alg), x)
  # And the other way round: fold(unfold(y)) == y for any folded y.
  y_f = _x((n, *lead, 3, n * e), seed=1)
  np.testing.assert_array_equal(layout.fold(layout.unfold(y_f, alg), alg), y_f)


def test_fold_puts_matrix_columns_on_axis_0_m2r():
  # One M2R element [[1, 2], [3, 4]] stored row-major as (1, 2, 3, 4).
  x = jnp.array([[1.0, 2.0, 3.0, 4.0]])  # [C=1, 4]
  x_f = np.asarray(layout.fold(x, "M2R"))
  assert x_f.shape == (2, 1, 2)
  np.testing.assert_array_equal(x_f[0, 0], [1.0, 3.0])  # column 0 = (1, 3)
  np.testing.assert_array_equal(x_f[1, 0], [2.0, 4.0])  # column 1 = (2, 4)


def test_fold_puts_matrix_columns_on_axis_0_m2c():
  # [[z00, z01], [z10, z11]] with complex entries, each stored (re, im).
  z = np.array([[1 + 2j, 3 + 4j], [5 + 6j, 7 + 8j]])
  x = np.stack([z.real, z.imag], axis=-1).reshape(1, 8)  # [C=1, 8]
  np.testing.assert_array_equal(x[0], [1, 2, 3, 4, 5, 6, 7, 8])
  x_f = np.asarray(layout.fold(jnp.asarray(x), "M2C"))
  assert x_f.shape == (2, 1, 4)
  # Column b holds (row 0 re, row 0 im, row 1 re, row 1 im).
  for b in range(2):
    col = z[:, b]
    np.testing.assert_array_equal(
        x_f[b, 0], np.stack([col.real, col.imag], axis=-1).reshape(4)
    )


def test_element_view():
  x = _x((2, 5, 3, 4))
  view, axes = layout.element_view(x, "H", layout.STANDARD)
  assert view is x and axes == (-1,)
  for name, (alg, n, e) in MATRIX.items():
    x = _x((2, 5, 3, n * n * e))
    x_f = layout.fold(x, alg)
    view, axes = layout.element_view(x_f, alg, layout.FOLDED)
    assert view.shape == x_f.shape and axes == (0, x_f.ndim - 1), name
    # Reducing over the component axes reduces over each element's d
    # components, exactly as in the standard layout.
    np.testing.assert_allclose(
        jnp.sum(view**2, axis=axes), jnp.sum(x**2, axis=-1), rtol=1e-6
    )
    view_s, axes_s = layout.element_view(x, alg, layout.STANDARD)
    np.testing.assert_allclose(
        jnp.sum(view_s**2, axis=axes_s), jnp.sum(x**2, axis=-1)
    )


@pytest.mark.parametrize("name", list(MATRIX))
def test_broadcast_param(name):
  alg, n, e = MATRIX[name]
  d = n * n * e
  p = _x((3, d), seed=2)
  x = _x((2, 4, 5, 3, d), seed=3)
  bp = layout.broadcast_param(p, alg, layout.STANDARD, x.ndim)
  assert bp.shape == (1, 1, 1, 3, d)
  np.testing.assert_array_equal(x + bp, x + p)
  x_f = layout.fold(x, alg)
  bp_f = layout.broadcast_param(p, alg, layout.FOLDED, x_f.ndim)
  assert bp_f.shape == (n, 1, 1, 1, 3, n * e)
  # Adding / scaling in the folded layout == doing it in the standard one.
  np.testing.assert_allclose(x_f + bp_f, layout.fold(x + p, alg), rtol=1e-6)
  np.testing.assert_allclose(x_f * bp_f, layout.fold(x * p, alg), rtol=1e-6)


def test_broadcast_param_standard_for_any_algebra():
  p = _x((3, 4))
  bp = layout.broadcast_param(p, "H", layout.STANDARD, 4)
  assert bp.shape == (1, 1, 3, 4)
  np.testing.assert_array_equal(bp[0, 0], p)


def test_convert():
  x = _x((2, 3, 8))
  x_f = layout.convert(x, "M2C", layout.STANDARD, layout.FOLDED)
  np.testing.assert_array_equal(x_f, layout.fold(x, "M2C"))
  np.testing.assert_array_equal(
      layout.convert(x_f, "M2C", layout.FOLDED, layout.STANDARD), x
  )
  assert layout.convert(x, "M2C", "standard", "standard") is x
  assert layout.convert(x_f, "M2C", "folded", "folded") is x_f
  # Non-matrix algebras may "convert" standard -> standard.
  y = _x((2, 3, 4))
  assert layout.convert(y, "H", "standard", "standard") is y


def test_check_layout():
  assert layout.check_layout("standard") == "standard"
  assert layout.check_layout("folded") == "folded"
  assert layout.LAYOUTS == ("standard", "folded")
  with pytest.raises(
      ValueError, match=r"Unknown layout 'nhwc'.*standard, folded"
  ):
    layout.check_layout("nhwc")


def test_errors():
  not_matrix = "folded layout needs a matrix algebra.*'H' is not one"
  with pytest.raises(ValueError, match=not_matrix):
    layout.matrix_shape("H")
  with pytest.raises(ValueError, match=not_matrix):
    layout.fold(_x((3, 4)), "H")
  with pytest.raises(ValueError, match=not_matrix):
    layout.unfold(_x((2, 3, 2)), "H")
  with pytest.raises(ValueError, match=not_matrix):
    layout.broadcast_param(_x((3, 4)), "H", layout.FOLDED, 4)
  with pytest.raises(ValueError, match=not_matrix):
    layout.element_view(_x((2, 3, 4)), "H", layout.FOLDED)
  with pytest.raises(ValueError, match=not_matrix):
    layout.convert(_x((3, 4)), "H", layout.STANDARD, layout.FOLDED)
  with pytest.raises(ValueError, match="'cross' is not one"):
    layout.fold(_x((3, 3)), "cross")
  with pytest.raises(ValueError, match="given by name or Algebra"):
    layout.fold(
        _x((3, 4)), jnp.asarray(algebras.get("M2R").structure_constants)
    )
  with pytest.raises(ValueError, match="Unknown algebra 'M5R'"):
    layout.fold(_x((3, 4)), "M5R")
  # Wrong shapes: the message states the expected and the actual shape.
  with pytest.raises(
      ValueError, match=r"fold: expected x\[\.\.\., C, 4\].*\(3, 8\)"
  ):
    layout.fold(_x((3, 8)), "M2R")
  with pytest.raises(
      ValueError, match=r"fold: expected x\[\.\.\., C, 4\].*\(4,\)"
  ):
    layout.fold(_x((4,)), "M2R")
  with pytest.raises(
      ValueError,
      match=r"unfold: expected folded x\[2, \.\.\., C, 2\].*\(3, 5, 2\)",
  ):
    layout.unfold(_x((3, 5, 2)), "M2R")  # leading axis is not n
  with pytest.raises(ValueError, match=r"unfold: expected folded x\[2,"):
    layout.unfold(_x((2, 5, 4)), "M2R")  # last axis is d, not n*e
  with pytest.raises(ValueError, match=r"unfold: expected folded x\[2,"):
    layout.unfold(_x((2, 2)), "M2R")  # no channel axis
  with pytest.raises(ValueError, match="Unknown layout 'fold'"):
    layout.convert(_x((3, 4)), "M2R", "standard", "fold")
  with pytest.raises(ValueError, match="Unknown layout 'std'"):
    layout.broadcast_param(_x((3, 4)), "M2R", "std", 3)
  with pytest.raises(ValueError, match="Unknown layout 'std'"):
    layout.element_view(_x((3, 4)), "M2R", "std")
