"""Tests for algebranets/data/teacher_student.py (teacher, closed forms, data).

References are independent of the code under test: Hermite coefficients
and moments come from Gauss-HermiteE quadrature (exact for polynomials of
the degrees used), sample statistics are compared with tolerances of a few
standard errors estimated from the sample itself.
"""

import math

import numpy as np
import pytest
from numpy.polynomial import hermite_e

from algebranets.data import teacher_student as ts

CUBIC = (0.5, 1.0, 0.0, 1.0)  # 0.5 + t + t^3
QUINTIC = (0.25, -1.0, 0.3, 0.5, 0.0, 0.2)  # with an even term, degree 5


def _gauss(n=24):
  """Nodes and weights of E[f(Z)], Z ~ N(0, 1) (exact to degree 2n - 1)."""
  t, w = hermite_e.hermegauss(n)
  return t, w / math.sqrt(2.0 * math.pi)


def _reference_hermite(coeffs):
  """c_k = E[sigma(Z) He_k(Z)] / k! by quadrature."""
  t, w = _gauss()
  sig = sum(a * t**k for k, a in enumerate(coeffs))
  out = []
  for k in range(len(coeffs)):
    he_k = hermite_e.hermeval(t, [0.0] * k + [1.0])
    out.append(float(np.sum(w * sig * he_k)) / math.factorial(k))
  return np.array(out)


@pytest.mark.parametrize("coeffs", [CUBIC, QUINTIC, (0.0, -3.0, 0.0, 1.0)])
def test_hermite_coeffs_match_quadrature(coeffs):
  teacher = ts.PolynomialTeacher(np.eye(2), coeffs)
  np.testing.assert_allclose(
      teacher.hermite_coeffs(), _reference_hermite(coeffs), atol=1e-12
  )


def test_hermite_coeffs_of_the_cubic_by_hand():
  # t^3 = He_3 + 3 He_1: c = (a0, a1 + 3 a3, 0, a3).
  teacher = ts.PolynomialTeacher(np.eye(3), (0.5, 1.0, 0.0, 2.0))
  np.testing.assert_allclose(teacher.hermite_coeffs(), [0.5, 7.0, 0.0, 2.0])


def test_unit_hermite_coeffs_scale_with_row_norms():
  w = np.array([[2.0, 0.0], [0.0, 0.5]])
  teacher = ts.PolynomialTeacher(w, QUINTIC)
  c = teacher.unit_hermite_coeffs()
  for i, n in enumerate((2.0, 0.5)):
    scaled = [a * n**k for k, a in enumerate(QUINTIC)]
    np.testing.assert_allclose(c[i], _reference_hermite(scaled), atol=1e-10)


def _quadrature_moments(teacher):
  """E[y], Var(y), E[y x] exactly for d = 2 (tensor-product quadrature)."""
  t, w = _gauss()
  x = np.stack(np.meshgrid(t, t, indexing="ij"), axis=-1).reshape(-1, 2)
  wt = np.outer(w, w).reshape(-1)
  y = teacher.predict(x)
  mean = float(np.sum(wt * y))
  var = float(np.sum(wt * (y - mean) ** 2)) + teacher.noise_std**2
  return mean, var, (wt * y) @ x


@pytest.mark.parametrize("coeffs", [CUBIC, QUINTIC])
def test_closed_form_moments_are_exact(coeffs):
  # Non-unit, non-orthogonal rows and label noise exercise the general
  # formula; d = 2 makes the quadrature exact.
  w = np.array([[1.0, 0.0], [0.6, 0.8], [-1.5, 0.4]])
  teacher = ts.PolynomialTeacher(w, coeffs, noise_std=0.3)
  mean, var, slope = _quadrature_moments(teacher)
  assert teacher.mean() == pytest.approx(mean, rel=1e-12, abs=1e-12)
  assert teacher.variance() == pytest.approx(var, rel=1e-11)
  np.testing.assert_allclose(teacher.linear_slope(), slope, atol=1e-10)
  noiseless = var - 0.09
  ols = 1.0 - slope @ slope / var
  assert teacher.least_squares_nmse() == pytest.approx(ols, rel=1e-10)
  assert noiseless > 0


def test_unit_rows_variance_matches_the_simple_formula():
  teacher = ts.make_teacher(6, 5, CUBIC, seed=3)
  c = teacher.hermite_coeffs()
  rho = teacher.weights @ teacher.weights.T
  want = sum(
      c[k] ** 2 * math.factorial(k) * np.sum(rho**k) for k in range(1, 4)
  )
  assert teacher.variance() == pytest.approx(want, rel=1e-12)
  assert teacher.mean() == pytest.approx(5 * c[0])


@pytest.mark.parametrize(
    "coeffs,noise", [(CUBIC, 0.0), (QUINTIC, 0.0), (CUBIC, 1.5)]
)
def test_sample_statistics_match_closed_form(coeffs, noise):
  teacher = ts.make_teacher(8, 4, coeffs, seed=1, noise_std=noise)
  n = 200_000
  _, y = ts.sample(teacher, n, (7, 1))
  y = y.astype(np.float64)
  mean, var = y.mean(), y.var()
  # Standard errors from the sample: sqrt(Var / n) for the mean and
  # sqrt((m4 - var^2) / n) for the variance; 5 of them is a 1-in-10^6 miss.
  se_mean = math.sqrt(var / n)
  se_var = math.sqrt((np.mean((y - mean) ** 4) - var**2) / n)
  assert abs(mean - teacher.mean()) < 5 * se_mean
  assert abs(var - teacher.variance()) < 5 * se_var


def test_sample_least_squares_matches_population_nmse():
  teacher = ts.make_teacher(6, 12, CUBIC, seed=2)
  x, y = ts.sample(teacher, 200_000, (3,))
  feats = np.concatenate([np.ones((x.shape[0], 1)), x], axis=1).astype(float)
  beta, *_ = np.linalg.lstsq(feats, y.astype(float), rcond=None)
  resid = y - feats @ beta
  nmse = np.mean(resid**2) / teacher.variance()
  assert nmse == pytest.approx(teacher.least_squares_nmse(), abs=0.01)
  # Residual variance ~0.15 Var(y) ~ 100: the slope's standard error is
  # sqrt(100 / n) ~ 0.02 per component.
  np.testing.assert_allclose(beta[1:], teacher.linear_slope(), atol=0.15)


def test_hermite3_only_has_no_linear_part():
  teacher = ts.make_teacher(5, 7, (0.0, -3.0, 0.0, 1.0), seed=0)
  np.testing.assert_allclose(teacher.linear_slope(), 0.0, atol=1e-12)
  assert teacher.least_squares_nmse() == pytest.approx(1.0)


def test_predict_matches_explicit_loop():
  teacher = ts.make_teacher(4, 3, QUINTIC, seed=5)
  x = np.random.default_rng(0).standard_normal((7, 4))
  want = np.zeros(7)
  for n in range(7):
    for i in range(3):
      t = sum(teacher.weights[i, j] * x[n, j] for j in range(4))
      want[n] += sum(a * t**k for k, a in enumerate(QUINTIC))
  np.testing.assert_allclose(teacher.predict(x), want, rtol=1e-12)
  np.testing.assert_allclose(
      teacher.sigma(2.0), sum(a * 2.0**k for k, a in enumerate(QUINTIC))
  )
  with pytest.raises(ValueError, match=r"x must be \[n, 4\]"):
    teacher.predict(np.zeros((3, 5)))


def test_sample_is_a_pure_function_of_the_key():
  teacher = ts.make_teacher(5, 3, CUBIC, seed=0)
  x1, y1 = ts.sample(teacher, 50, (1, 2))
  x2, y2 = ts.sample(teacher, 50, (1, 2))
  x3, _ = ts.sample(teacher, 50, (1, 3))
  assert x1.dtype == np.float32 and y1.dtype == np.float32
  assert x1.shape == (50, 5) and y1.shape == (50,)
  np.testing.assert_array_equal(x1, x2)
  np.testing.assert_array_equal(y1, y2)
  assert not np.array_equal(x1, x3)
  # Noise is drawn after x: the inputs do not depend on the noise level.
  noisy = ts.make_teacher(5, 3, CUBIC, seed=0, noise_std=2.0)
  xn, yn = ts.sample(noisy, 50, (1, 2))
  np.testing.assert_array_equal(xn, x1)
  assert np.std(yn - y1) > 1.0


def test_random_teacher_rows_are_unit_and_seeded():
  a = ts.make_teacher(9, 20, CUBIC, seed=4)
  b = ts.make_teacher(9, 20, CUBIC, seed=4)
  c = ts.make_teacher(9, 20, CUBIC, seed=5)
  np.testing.assert_allclose(np.linalg.norm(a.weights, axis=1), 1.0)
  np.testing.assert_array_equal(a.weights, b.weights)
  assert not np.array_equal(a.weights, c.weights)
  assert (a.input_dim, a.num_units) == (9, 20)


def test_weights_file_is_used_as_given(tmp_path):
  w = np.array([[2.0, 0.0, 0.0], [0.0, -1.0, 1.0]])
  path = tmp_path / "w.npy"
  np.save(path, w)
  teacher = ts.make_teacher(3, 2, CUBIC, seed=0, weights_path=str(path))
  np.testing.assert_array_equal(teacher.weights, w)


def test_weights_file_errors(tmp_path):
  missing = tmp_path / "nope.npy"
  with pytest.raises(
      ValueError, match=r"teacher_weights=.*is not a file.*" r"numpy.save"
  ):
    ts.make_teacher(3, 2, CUBIC, seed=0, weights_path=str(missing))
  bad = tmp_path / "bad.npy"
  bad.write_text("not an array")
  with pytest.raises(ValueError, match=r"not a readable \.npy"):
    ts.make_teacher(3, 2, CUBIC, seed=0, weights_path=str(bad))
  shaped = tmp_path / "shape.npy"
  np.save(shaped, np.ones((3, 2)))
  with pytest.raises(
      ValueError, match=r"shape \(3, 2\).*teacher_units=2.*input_dim=3"
  ):
    ts.make_teacher(3, 2, CUBIC, seed=0, weights_path=str(shaped))
  nan = tmp_path / "nan.npy"
  np.save(nan, np.array([[np.nan, 1.0, 0.0], [1.0, 0.0, 0.0]]))
  with pytest.raises(ValueError, match="NaN or Inf"):
    ts.make_teacher(3, 2, CUBIC, seed=0, weights_path=str(nan))
  zero = tmp_path / "zero.npy"
  np.save(zero, np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
  with pytest.raises(ValueError, match=r"row\(s\) \[0\] are zero"):
    ts.make_teacher(3, 2, CUBIC, seed=0, weights_path=str(zero))


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(input_dim=3, num_units=0), r"data.teacher_units=0 must be >= 1"),
        (dict(input_dim=0, num_units=2), r"data.input_dim=0 must be >= 1"),
        (dict(input_dim=3, num_units=2.5), r"teacher_units=2.5 must be an int"),
    ],
)
def test_make_teacher_size_errors(kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    ts.make_teacher(coeffs=CUBIC, seed=0, **kwargs)


@pytest.mark.parametrize(
    "coeffs,pattern",
    [
        ("t+t^3", "not a sequence of numbers"),
        ((1.0,), "degree < 1"),
        ((0.0, float("nan")), "not a finite number"),
        ((0.0, "1"), "not a finite number"),
        ((2.0, 0.0, 0.0), "every coefficient of degree >= 1 is zero"),
    ],
)
def test_bad_coeffs(coeffs, pattern):
  with pytest.raises(ValueError, match=pattern) as err:
    ts.check_coeffs(coeffs)
  assert "data.coeffs" in str(err.value) and "(0.0, 1.0, 0.0, 1.0)" in str(
      err.value
  )


def test_teacher_rejects_bad_noise_and_zero_rows():
  with pytest.raises(ValueError, match="noise_std=-1"):
    ts.PolynomialTeacher(np.eye(2), CUBIC, noise_std=-1)
  with pytest.raises(ValueError, match=r"row\(s\) \[1\] are zero"):
    ts.PolynomialTeacher(np.array([[1.0, 0.0], [0.0, 0.0]]), CUBIC)
