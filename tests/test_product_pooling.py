"""Tests for algebranets.kernels.product_pooling (log-space ConvAC kernels).

References are float64 numpy with explicit loops and textbook algebra
products (tests/reference_products.py); none calls the kernels under test.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import algebras, kernels
from algebranets.kernels import product_pooling as pp
from tests import reference_products as ref
from tests import tolerances

pytestmark = pytest.mark.usefixtures("strict_numerics")


def _rng(seed=0):
  return np.random.default_rng(seed)


def _log_of(x64):
  """(log|x|, sign) of a float64 numpy array, as float32 jax arrays."""
  la = np.log(np.maximum(np.abs(x64), 1e-300))
  return jnp.asarray(la, jnp.float32), jnp.asarray(np.sign(x64), jnp.float32)


# -- signed logs -----------------------------------------------------------------


def test_to_log_and_back_keep_signs_zeros_and_values():
  x = np.array([[-3.0, 0.0, 2.5e-20], [1e30, -1e-30, 7.0]], np.float32)
  la, s = pp.to_log(jnp.asarray(x))
  np.testing.assert_array_equal(np.asarray(s), np.sign(x))
  assert np.all(np.isfinite(np.asarray(la)))
  assert float(la[0, 1]) == pytest.approx(pp.log_floor(np.float32))
  np.testing.assert_allclose(
      np.asarray(la)[x != 0],
      np.log(np.abs(x[x != 0].astype(np.float64))),
      rtol=1e-6,
  )
  # exp(la) inherits la's rounding (half a float32 ulp of |log x|, 69 for
  # 1e30) as a relative error, plus exp's own few ulps (which differ
  # between CPUs' vectorised exp): a bound per element, not one rtol.
  back = np.asarray(pp.from_log(la, s), np.float64)
  bound = tolerances.ulps32(np.abs(np.asarray(la, np.float64)) + 4, k=1)
  nonzero = x != 0
  rel = np.abs(back[nonzero] / x[nonzero].astype(np.float64) - 1)
  assert np.all(rel <= bound[nonzero]), (rel, bound[nonzero])
  assert np.all(back[~nonzero] == 0)


def test_from_log_ignores_the_log_of_zeros_in_value_and_gradient():
  la = jnp.array([1000.0, 2.0], jnp.float32)  # exp(1000) = inf in float32
  s = jnp.array([0.0, -1.0], jnp.float32)
  np.testing.assert_allclose(
      np.asarray(pp.from_log(la, s)), [0.0, -np.exp(2.0)], rtol=1e-6
  )
  g = jax.grad(lambda v: jnp.sum(pp.from_log(v, s)))(la)
  np.testing.assert_allclose(np.asarray(g), [0.0, -np.exp(2.0)], rtol=1e-6)


def test_log_floor_is_the_log_of_the_smallest_normal():
  assert pp.log_floor(np.float32) == pytest.approx(
      np.log(np.finfo(np.float32).tiny)
  )
  assert pp.log_floor(np.float64) == pytest.approx(-708.396, abs=1e-3)


# -- product pooling -------------------------------------------------------------


def _pool_reference(x, window, stride):
  """Explicit-loop float64 product pooling over axes 1, 2 ('VALID')."""
  (ph, pw), (sh, sw) = window, stride
  b, h, w = x.shape[:3]
  oh, ow = (h - ph) // sh + 1, (w - pw) // sw + 1
  out = np.ones((b, oh, ow, *x.shape[3:]))
  for i, j in itertools.product(range(oh), range(ow)):
    for di, dj in itertools.product(range(ph), range(pw)):
      out[:, i, j] *= x[:, i * sh + di, j * sw + dj]
  return out


@pytest.mark.parametrize(
    "window, stride, shape",
    [
        (2, None, (2, 4, 6, 3, 1)),  # non-overlapping
        (3, 1, (1, 5, 5, 2, 4)),  # overlapping windows
        ((1, 3), (1, 2), (2, 1, 7, 3)),  # 1-D, other trailing axes
        (2, None, (1, 5, 5, 1)),  # 'VALID' drops the last row and column
    ],
)
def test_log_product_pool_equals_direct_product_on_positive_inputs(
    window, stride, shape
):
  x = _rng().uniform(0.5, 2.0, size=shape)
  win = (window, window) if isinstance(window, int) else window
  st = win if stride is None else stride
  st = (st, st) if isinstance(st, int) else st
  want = _pool_reference(x, win, st)
  la, s = pp.log_product_pool(*_log_of(x), window, stride)
  np.testing.assert_allclose(np.asarray(pp.from_log(la, s)), want, rtol=2e-6)
  direct = pp.product_pool(jnp.asarray(x, jnp.float32), window, stride)
  np.testing.assert_allclose(np.asarray(direct), want, rtol=2e-6)


def test_log_product_pool_tracks_signs_and_zeros():
  x = _rng(1).normal(size=(2, 4, 4, 3, 2))
  x[0, 0, 0, 0, 0] = 0.0  # one zero makes its window's product zero
  la, s = pp.log_product_pool(*_log_of(x), 2)
  want = _pool_reference(x, (2, 2), (2, 2))
  np.testing.assert_array_equal(np.asarray(s), np.sign(want))
  assert float(s[0, 0, 0, 0, 0]) == 0.0
  np.testing.assert_allclose(np.asarray(pp.from_log(la, s)), want, rtol=2e-6)


def test_log_product_pool_stays_finite_where_the_direct_product_overflows():
  big = np.full((1, 2, 2, 1, 1), 1e30)
  tiny = np.full((1, 2, 2, 1, 1), -1e-30)
  x = np.concatenate([big, tiny], axis=3)  # channel 0 huge, 1 tiny
  direct = np.asarray(pp.product_pool(jnp.asarray(x, jnp.float32), 2))
  assert np.isinf(direct[..., 0, 0]).all()  # 1e120 overflows float32
  assert (direct[..., 1, 0] == 0).all()  # 1e-120 underflows
  la, s = pp.log_product_pool(*_log_of(x), 2)
  np.testing.assert_allclose(
      np.asarray(la)[0, 0, 0, :, 0],
      [4 * np.log(1e30), 4 * np.log(1e-30)],
      rtol=1e-6,
  )
  np.testing.assert_array_equal(np.asarray(s)[0, 0, 0, :, 0], [1.0, 1.0])


# -- linear maps -----------------------------------------------------------------


def test_log_linear_real_equals_float64_reference():
  rng = _rng(2)
  x = rng.normal(size=(3, 5, 6))
  x[0, 0, :3] = 0.0
  w = rng.normal(size=(6, 4))
  la, s = pp.log_linear(*_log_of(x), jnp.asarray(w, jnp.float32))
  np.testing.assert_allclose(
      np.asarray(pp.from_log(la, s)), x @ w, rtol=1e-5, atol=1e-6
  )


def test_log_linear_handles_magnitudes_beyond_float32():
  # |x| ~ e^500 (float32 overflows at e^88.7); the reference in float64
  # holds it directly.
  rng = _rng(3)
  la64 = 500.0 + rng.uniform(-5, 5, size=(4, 7))
  s64 = np.sign(rng.normal(size=(4, 7)))
  w = rng.normal(size=(7, 3))
  y = (s64 * np.exp(la64)) @ w
  got_l, got_s = pp.log_linear(
      jnp.asarray(la64, jnp.float32),
      jnp.asarray(s64, jnp.float32),
      jnp.asarray(w, jnp.float32),
  )
  np.testing.assert_array_equal(np.asarray(got_s), np.sign(y))
  np.testing.assert_allclose(np.asarray(got_l), np.log(np.abs(y)), atol=2e-4)
  # And e^-500: far below float32's smallest number.
  got_l, _ = pp.log_linear(
      jnp.asarray(-la64, jnp.float32),
      jnp.asarray(s64, jnp.float32),
      jnp.asarray(w, jnp.float32),
  )
  y = (s64 * np.exp(-la64)) @ w
  np.testing.assert_allclose(np.asarray(got_l), np.log(np.abs(y)), atol=2e-4)


@pytest.mark.parametrize("name", ["H", "M2R", "C"])
def test_log_linear_algebra_equals_textbook_products(name):
  algebra, product = ref.CASES[name]
  d = ref.dim(name)
  rng = _rng(4)
  x = rng.normal(size=(2, 3, d))  # [B, N, d]
  w = rng.normal(size=(3, 2, d))  # [N, M, d]
  want = np.zeros((2, 2, d))
  for m_out, n in itertools.product(range(2), range(3)):
    want[:, m_out] += product(w[n, m_out][None], x[:, n])
  la, s = pp.log_linear(*_log_of(x), jnp.asarray(w, jnp.float32), algebra)
  np.testing.assert_allclose(
      np.asarray(pp.from_log(la, s)), want, rtol=1e-5, atol=1e-5
  )


def test_log_linear_all_zero_inputs_give_zero_without_nan():
  la = jnp.full((2, 3), pp.log_floor(np.float32))
  s = jnp.zeros((2, 3))
  w = jnp.ones((3, 2))
  ly, sy = pp.log_linear(la, s, w)
  np.testing.assert_array_equal(np.asarray(sy), 0.0)
  assert np.all(np.isfinite(np.asarray(ly)))
  g = jax.grad(lambda w: jnp.sum(pp.from_log(*pp.log_linear(la, s, w))))(w)
  np.testing.assert_array_equal(np.asarray(g), 0.0)


def test_log_linear_floors_cancellation_at_machine_epsilon():
  # 1 - 1 + e^-50: float32 cancels the two unit terms exactly; the result
  # is floored at eps (relative to the largest input, here e^0), which
  # bounds d log|y| / dy by 1 / eps instead of e^50.
  la = jnp.array([0.0, 0.0, -50.0])
  s = jnp.ones(3)
  w = jnp.array([[1.0], [-1.0], [1.0]])
  ly, sy = pp.log_linear(la, s, w)
  eps = np.finfo(np.float32).eps
  assert float(ly[0]) == pytest.approx(np.log(eps))
  assert float(sy[0]) == 1.0
  g = jax.grad(lambda w: pp.log_linear(la, s, w)[0][0])(w)
  assert np.all(np.isfinite(np.asarray(g)))
  # Above the floor nothing is clipped: 1 - 0.5 stays exact.
  ly, _ = pp.log_linear(la[:2], s[:2], jnp.array([[1.0], [-0.5]]))
  assert float(ly[0]) == pytest.approx(np.log(0.5))


def _conv_reference(x, w, product, stride, padding):
  """Explicit-loop float64 algebra conv (weight on the left), XLA 'SAME'."""
  kh, kw, c, m, d = w.shape
  b, h, wd = x.shape[:3]
  sh, sw = stride
  if padding == "SAME":
    oh, ow = -(-h // sh), -(-wd // sw)
    ph = max((oh - 1) * sh + kh - h, 0)
    pw = max((ow - 1) * sw + kw - wd, 0)
    x = np.pad(
        x,
        (
            (0, 0),
            (ph // 2, ph - ph // 2),
            (pw // 2, pw - pw // 2),
            (0, 0),
            (0, 0),
        ),
    )
  else:
    oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
  out = np.zeros((b, oh, ow, m, d))
  for i, j, ti, tj, ci, mi in itertools.product(
      range(oh), range(ow), range(kh), range(kw), range(c), range(m)
  ):
    xv = x[:, i * sh + ti, j * sw + tj, ci]  # [B, d]
    out[:, i, j, mi] += product(w[ti, tj, ci, mi][None], xv)
  return out


@pytest.mark.parametrize(
    "name, stride, padding",
    [
        ("R", 1, "SAME"),
        ("R", 2, "VALID"),
        ("H", 2, "SAME"),
        ("M2R", 1, "VALID"),
    ],
)
def test_log_conv2d_equals_explicit_convolution(name, stride, padding):
  algebra, product = ref.CASES[name]
  d = ref.dim(name)
  rng = _rng(5)
  x = rng.normal(size=(2, 5, 4, 2, d))
  w = rng.normal(size=(3, 2, 2, 3, d))
  want = _conv_reference(x, w, product, (stride, stride), padding)
  la, s = pp.log_conv2d(
      *_log_of(x),
      jnp.asarray(w, jnp.float32),
      algebra,
      stride=stride,
      padding=padding,
  )
  assert la.shape == want.shape
  np.testing.assert_allclose(
      np.asarray(pp.from_log(la, s)), want, rtol=1e-5, atol=1e-5
  )
  # The library's direct algebra conv agrees too.
  direct = kernels.conv2d(
      jnp.asarray(x, jnp.float32),
      jnp.asarray(w, jnp.float32),
      algebra,
      stride=stride,
      padding=padding,
  )
  np.testing.assert_allclose(np.asarray(direct), want, rtol=1e-5, atol=1e-5)


def test_log_conv2d_shifts_each_position_by_its_own_receptive_field():
  # Row 0 of the input is ~e^+80, row 3 ~e^-80: a single global shift
  # (e^160 apart) would underflow row 3 to zero in float32.
  rng = _rng(6)
  x = rng.normal(size=(1, 4, 3, 2, 1))
  x[:, 0] *= np.exp(80.0)
  x[:, 3] *= np.exp(-80.0)
  w = rng.normal(size=(1, 3, 2, 2, 1))  # 1 x 3 taps: rows never mix
  want = _conv_reference(x, w, ref.CASES["R"][1], (1, 1), "SAME")
  la, s = pp.log_conv2d(*_log_of(x), jnp.asarray(w, jnp.float32), "R")
  np.testing.assert_array_equal(np.asarray(s), np.sign(want))
  np.testing.assert_allclose(np.asarray(la), np.log(np.abs(want)), atol=2e-4)


def test_log_conv2d_gradient_equals_the_direct_convolution_gradient():
  rng = _rng(7)
  x = jnp.asarray(rng.uniform(0.5, 1.5, size=(2, 4, 4, 2, 1)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, 2, 2, 1)), jnp.float32)
  t = jnp.asarray(rng.normal(size=(2, 2, 2, 2, 1)), jnp.float32)

  def via_logs(x, w):
    la, s = pp.log_conv2d(*pp.to_log(x), w, "R")
    la, s = pp.log_product_pool(la, s, 2)
    return jnp.sum(pp.from_log(la, s) * t)

  def direct(x, w):
    y = kernels.conv2d(x, w, "R")
    return jnp.sum(pp.product_pool(y, 2) * t)

  got = jax.grad(via_logs, argnums=(0, 1))(x, w)
  want = jax.grad(direct, argnums=(0, 1))(x, w)
  for g, r in zip(got, want, strict=True):
    assert np.all(np.isfinite(np.asarray(g)))
    np.testing.assert_allclose(
        np.asarray(g), np.asarray(r), rtol=2e-4, atol=1e-5
    )


# -- algebra product pooling -----------------------------------------------------


def _ordered_pool_reference(x, product, window, stride):
  (ph, pw), (sh, sw) = window, stride
  b, h, wd = x.shape[:3]
  oh, ow = (h - ph) // sh + 1, (wd - pw) // sw + 1
  out = np.zeros((b, oh, ow, *x.shape[3:]))
  for i, j in itertools.product(range(oh), range(ow)):
    taps = [
        x[:, i * sh + di, j * sw + dj]
        for di, dj in itertools.product(range(ph), range(pw))  # raster order
    ]
    acc = taps[0]
    for t in taps[1:]:
      acc = product(acc, t)
    out[:, i, j] = acc
  return out


@pytest.mark.parametrize(
    "name, window, stride",
    [("H", 2, 2), ("M2R", (2, 2), (1, 1)), ("cross", (1, 3), (1, 1))],
)
def test_algebra_product_pool_equals_the_ordered_product(name, window, stride):
  algebra, product = ref.CASES[name]
  d = ref.dim(name)
  x = _rng(8).normal(size=(2, 3, 4, 2, d))
  win = (window, window) if isinstance(window, int) else window
  st = (stride, stride) if isinstance(stride, int) else stride
  want = _ordered_pool_reference(x, product, win, st)
  la, s = pp.algebra_product_pool(*_log_of(x), algebra, window, stride)
  np.testing.assert_allclose(
      np.asarray(pp.from_log(la, s)), want, rtol=2e-5, atol=1e-6
  )


def test_algebra_product_pool_order_matters_for_quaternions():
  x = _rng(9).normal(size=(1, 1, 2, 1, 4))
  forward = _ordered_pool_reference(x, ref.hamilton, (1, 2), (1, 1))
  backward = _ordered_pool_reference(
      x[:, :, ::-1], ref.hamilton, (1, 2), (1, 1)
  )
  assert not np.allclose(forward, backward)  # q1 q2 != q2 q1
  la, s = pp.algebra_product_pool(*_log_of(x), "H", (1, 2))
  np.testing.assert_allclose(
      np.asarray(pp.from_log(la, s)), forward, rtol=2e-5, atol=1e-6
  )


def test_algebra_product_pool_stays_finite_for_huge_and_tiny_elements():
  rng = _rng(10)
  x = rng.normal(size=(1, 2, 2, 2, 4))
  x[..., 0, :] *= 1e25  # product of 4 ~ 1e100: float32 overflows
  x[..., 1, :] *= 1e-25  # ~ 1e-100: float32 underflows
  want = _ordered_pool_reference(x, ref.hamilton, (2, 2), (2, 2))
  la, s = pp.algebra_product_pool(*_log_of(x), "H", 2)
  assert np.all(np.isfinite(np.asarray(la)))
  np.testing.assert_array_equal(np.asarray(s), np.sign(want))
  np.testing.assert_allclose(np.asarray(la), np.log(np.abs(want)), atol=5e-4)


def test_algebra_product_pool_gradient_is_finite_and_matches_direct():
  rng = _rng(11)
  x = jnp.asarray(rng.normal(size=(1, 2, 2, 1, 4)), jnp.float32)
  h = kernels.algebra_product_pool  # exported at the package level

  def via_logs(x):
    return jnp.sum(pp.from_log(*h(*pp.to_log(x), "H", 2)))

  def direct(x):
    q = [x[:, i, j] for i in range(2) for j in range(2)]  # raster order
    alg = algebras.get("H")
    acc = q[0]
    for t in q[1:]:
      acc = alg.multiply(acc, t)
    return jnp.sum(acc)

  np.testing.assert_allclose(
      np.asarray(jax.grad(via_logs)(x)),
      np.asarray(jax.grad(direct)(x)),
      rtol=2e-4,
      atol=1e-5,
  )


# -- normalisation ---------------------------------------------------------------


def test_log_mean_abs_equals_numpy_and_zero_for_all_zero_rows():
  x = _rng(12).normal(size=(3, 4, 5)) * np.exp(60.0)
  x[2] = 0.0
  got = np.asarray(pp.log_mean_abs(*_log_of(x), (1, 2)))
  assert got.shape == (3, 1, 1)
  np.testing.assert_allclose(
      got[:2, 0, 0], np.log(np.mean(np.abs(x[:2]), axis=(1, 2))), atol=1e-5
  )
  assert got[2, 0, 0] == 0.0


# -- errors ----------------------------------------------------------------------


def test_errors_say_what_is_wrong():
  la = jnp.zeros((1, 4, 4, 2, 1))
  s = jnp.ones((1, 4, 4, 2, 1))
  with pytest.raises(ValueError, match="same shape; build both with to_log"):
    pp.log_product_pool(la, s[..., :1, :], 2)
  with pytest.raises(ValueError, match="H extent 4 is smaller than the window"):
    pp.log_product_pool(la, s, (5, 1))
  with pytest.raises(ValueError, match="window must be a positive int"):
    pp.log_product_pool(la, s, 0)
  with pytest.raises(ValueError, match="padding must be one of"):
    pp.log_conv2d(la, s, jnp.zeros((1, 1, 2, 3, 1)), padding="FULL")
  with pytest.raises(ValueError, match=r"weight must be \[kh, kw, C=2"):
    pp.log_conv2d(la, s, jnp.zeros((1, 1, 3, 3, 1)))
  with pytest.raises(ValueError, match=r"need a weight \[N, M\]"):
    pp.log_linear(la[..., 0], s[..., 0], jnp.zeros((3, 2)))
  with pytest.raises(ValueError, match=r"\[B, H, W, C, d=4\] for algebra 'H'"):
    pp.algebra_product_pool(la, s, "H", 2)
  with pytest.raises(ValueError, match="must be a float array"):
    pp.to_log(jnp.ones(3, jnp.int32))
