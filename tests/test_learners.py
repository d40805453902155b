"""Closed-form learners: Hermite moments, tensor decomposition, OLS, mean.

Teachers are built here from first principles (x ~ N(0, I), y = sum_i
sigma(w_i . x)), independent of algebranets.data.teacher_student, so these
tests check the estimators against closed forms and explicit loops.
"""

import itertools
import types

import ml_collections
import numpy as np
import pytest
from numpy.polynomial import hermite_e

from algebranets import models
from algebranets.studies.teacher_student import learners
from algebranets.studies.teacher_student.learners import (
    least_squares,
    mean,
    moment_tensor,
    tensor_decomposition,
)


def _unit_rows(rng, r, d):
  w = rng.standard_normal((r, d))
  return w / np.linalg.norm(w, axis=1, keepdims=True)


def _teacher_sample(rng, w, coeffs, n):
  """x [n, d] ~ N(0, I), y = sum_i sigma(w_i . x), sigma monomial coeffs."""
  x = rng.standard_normal((n, w.shape[1]))
  y = np.polynomial.polynomial.polyval(x @ w.T, coeffs).sum(axis=1)
  return x, y


def _hermite3_loop(x):
  """He_3(x)_abc by the definition, entry by entry (float64)."""
  d = x.shape[0]
  out = np.zeros((d, d, d))
  for a, b, c in itertools.product(range(d), repeat=3):
    out[a, b, c] = (
        x[a] * x[b] * x[c] - x[a] * (b == c) - x[b] * (a == c) - x[c] * (a == b)
    )
  return out


def _fake_task(w, coeffs):
  """The part of the teacher-student task a learner's fit() reads."""
  herme = hermite_e.poly2herme(np.asarray(coeffs, np.float64))
  teacher = types.SimpleNamespace(
      num_units=w.shape[0],
      coeffs=tuple(coeffs),
      hermite_coeffs=lambda: herme,
  )
  return types.SimpleNamespace(teacher=teacher)


def _model_cfg(name, **overrides):
  # Not type-safe, so a test can plant a value of the wrong type (as a
  # config file could).
  cfg = ml_collections.ConfigDict(
      learners.get(name).default_config(), type_safe=False
  )
  cfg.update(overrides)
  return cfg


def _best_cos(w, u):
  """For each row of w, the largest signed cosine with a row of u."""
  cos = (w / np.linalg.norm(w, axis=1, keepdims=True)) @ (
      u / np.linalg.norm(u, axis=1, keepdims=True)
  ).T
  return cos.max(axis=1)


# ------------------------------------------------------------ Hermite --


@pytest.mark.parametrize("degree", range(7))
def test_hermite_e_matches_numpy(degree):
  t = np.linspace(-3, 3, 13)
  unit = np.zeros(degree + 1)
  unit[degree] = 1.0
  np.testing.assert_allclose(
      moment_tensor.hermite_e(t, degree),
      hermite_e.hermeval(t, unit),
      rtol=1e-12,
      atol=1e-12,
  )


def test_hermite3_tensor_matches_loop():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((3, 4))
  got = moment_tensor.hermite3_tensor(x)
  assert got.shape == (3, 4, 4, 4)
  for i in range(3):
    np.testing.assert_allclose(got[i], _hermite3_loop(x[i]), atol=1e-13)


def test_moment_tensor_matches_loop(monkeypatch):
  rng = np.random.default_rng(1)
  x = rng.standard_normal((23, 4))
  y = rng.standard_normal(23)
  want = np.mean([y[n] * _hermite3_loop(x[n]) for n in range(23)], axis=0)
  np.testing.assert_allclose(
      moment_tensor.moment_tensor(x, y), want, atol=1e-12
  )
  # Chunks of 2 rows (a remainder chunk included) give the same tensor.
  monkeypatch.setattr(moment_tensor, "_CHUNK_NUMBERS", 2 * 16)
  np.testing.assert_allclose(
      moment_tensor.moment_tensor(x, y), want, atol=1e-12
  )


def test_moment_tensor_expectation_within_sampling_error():
  """E[y He_3(x)] = 6 c_3 sum_i w_i^{x3}; z-scores from the sample's own
  per-entry standard errors."""
  rng = np.random.default_rng(2)
  d, r, n = 5, 3, 400_000
  coeffs = (0.5, 1.0, 0.0, 1.0)  # c = (0.5, 4, 0, 1)
  w = _unit_rows(rng, r, d)
  x, y = _teacher_sample(rng, w, coeffs, n)
  got = moment_tensor.moment_tensor(x, y)
  want = 6.0 * tensor_decomposition.compose(np.ones(r), w)
  second = np.zeros((d, d, d))
  for start in range(0, n, 10_000):
    h = moment_tensor.hermite3_tensor(x[start : start + 10_000])
    second += np.sum((y[start : start + 10_000, None, None, None] * h) ** 2, 0)
  stderr = np.sqrt((second / n - got**2) / n)
  unique = [
      idx
      for idx in itertools.product(range(d), repeat=3)
      if idx == tuple(sorted(idx))
  ]

  def z_scores(expected):
    return np.array([(got[i] - expected[i]) / stderr[i] for i in unique])

  z = z_scores(want)
  assert np.max(np.abs(z)) < 4.5
  # About chi-square with len(unique) = 35 degrees of freedom / 35.
  assert 0.4 < np.mean(z**2) < 2.0
  # The test has power: a tensor 10% off is rejected (measured: 6.1).
  assert np.mean(z_scores(1.1 * want) ** 2) > 3.0


# ------------------------------------------------------- decomposition --


def test_contract_evaluate_compose_against_einsum():
  rng = np.random.default_rng(3)
  u = rng.standard_normal((4, 5))
  lam = rng.standard_normal(4)
  tensor = tensor_decomposition.compose(lam, u)
  np.testing.assert_allclose(
      tensor, np.einsum("j,ja,jb,jc->abc", lam, u, u, u), atol=1e-12
  )
  v = rng.standard_normal((3, 5))
  np.testing.assert_allclose(
      tensor_decomposition.contract(tensor, v),
      np.einsum("abc,mb,mc->ma", tensor, v, v),
      atol=1e-12,
  )
  np.testing.assert_allclose(
      tensor_decomposition.evaluate(tensor, v),
      np.einsum("abc,ma,mb,mc->m", tensor, v, v, v),
      atol=1e-12,
  )


def test_power_deflation_recovers_orthogonal_tensor_exactly():
  rng = np.random.default_rng(4)
  d, r = 8, 5
  q, _ = np.linalg.qr(rng.standard_normal((d, d)))
  vectors = q[:, :r].T  # orthonormal rows
  weights = np.array([5.0, 4.0, 3.0, 2.0, 1.5])
  tensor = tensor_decomposition.compose(weights, vectors)
  got_w, got_u = tensor_decomposition.power_deflation(
      tensor, r, restarts=5, iterations=30, rng=np.random.default_rng(0)
  )
  # The largest T(u, u, u) is found first, so the order is the weights'.
  np.testing.assert_allclose(got_w, weights, atol=1e-6)
  np.testing.assert_allclose(got_u, vectors, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(got_u, axis=1), 1.0, atol=1e-12)


def test_power_deflation_bad_input():
  with pytest.raises(ValueError, match=r"needs a \[d, d, d\] tensor"):
    tensor_decomposition.power_deflation(
        np.zeros((3, 3)), 1, rng=np.random.default_rng(0)
    )
  with pytest.raises(ValueError, match="rank must be >= 1"):
    tensor_decomposition.power_deflation(
        np.zeros((3, 3, 3)), 0, rng=np.random.default_rng(0)
    )


def test_joint_refine_removes_deflation_bias():
  """Non-orthogonal exact tensor: deflation alone is biased, the joint fit
  recovers the components."""
  rng = np.random.default_rng(5)
  d, r = 10, 4
  w = _unit_rows(rng, r, d)
  tensor = tensor_decomposition.compose(np.full(r, 6.0), w)
  lam, u = tensor_decomposition.power_deflation(
      tensor, r, restarts=10, iterations=50, rng=np.random.default_rng(0)
  )
  deflation_error = 1 - np.min(_best_cos(w, u))
  assert deflation_error > 1e-4
  lam2, u2, info = tensor_decomposition.joint_refine(
      tensor, lam, u, max_iterations=500
  )
  assert 1 - np.min(_best_cos(w, u2)) < 1e-6
  assert info["relative_residual"] < 1e-5
  np.testing.assert_allclose(np.sort(lam2), 6.0, rtol=1e-5)
  _, _, info0 = tensor_decomposition.joint_refine(
      tensor, lam, u, max_iterations=0
  )
  assert info0["iterations"] == 0 and info0["relative_residual"] > 1e-4


def test_power_deflation_breaks_down_past_d():
  """r = 1.5 d exact, equal-weight components: deflation misses them
  (measured mean best cosine 0.88), as the module docstring says."""
  rng = np.random.default_rng(5)
  d, r = 10, 15
  w = _unit_rows(rng, r, d)
  tensor = tensor_decomposition.compose(np.full(r, 6.0), w)
  _, u = tensor_decomposition.power_deflation(
      tensor, r, restarts=10, iterations=30, rng=np.random.default_rng(0)
  )
  assert np.mean(_best_cos(w, u)) < 0.95


# ------------------------------------------------------ moment tensor --


@pytest.mark.parametrize(
    ("coeffs", "features"),
    [
        ((0.0, 1.0, 0.0, 1.0), "hermite"),
        ((0.3, 1.0, 0.0, -0.5), "hermite"),  # c_3 < 0: signs flipped back
        ((0.0, 1.0, 0.0, 1.0), "sigma"),
    ],
)
def test_moment_tensor_recovers_planted_components(coeffs, features):
  """Easy regime r << d: every teacher row recovered (signed cosine)."""
  rng = np.random.default_rng(6)
  d, r = 12, 3
  w = _unit_rows(rng, r, d)
  x, y = _teacher_sample(rng, w, coeffs, 60_000)
  cfg = _model_cfg(moment_tensor.NAME, features=features)
  fitted = moment_tensor.fit({"x": x, "y": y}, _fake_task(w, coeffs), cfg)
  assert fitted.directions.shape == (r, d)
  assert np.min(_best_cos(w, fitted.directions)) > 0.99
  x_test, y_test = _teacher_sample(rng, w, coeffs, 5_000)
  pred = fitted.predict(x_test)
  assert pred.shape == (5_000,) and pred.dtype == np.float32
  nmse = np.mean((pred - y_test) ** 2) / np.var(y_test)
  assert nmse < 0.02
  p = 1 + d + r if features == "hermite" else 1 + r
  assert fitted.output_weights.shape == (p,)
  assert fitted.num_params == r * d + p
  assert fitted.macs_per_example == r * d + p - 1


def test_refit_features_and_degrees(monkeypatch):
  rng = np.random.default_rng(7)
  x = rng.standard_normal((7, 3))
  u = _unit_rows(rng, 2, 3)
  phi = moment_tensor.refit_features(x, u, "hermite", degrees=(2, 3))
  proj = x @ u.T
  want = np.concatenate(
      [np.ones((7, 1)), x, proj**2 - 1, proj**3 - 3 * proj], axis=1
  )
  np.testing.assert_allclose(phi, want, atol=1e-12)
  # Row chunks of 3 (and a remainder of 1) fill the same matrix.
  monkeypatch.setattr(moment_tensor, "_CHUNK_NUMBERS", 6)
  np.testing.assert_allclose(
      moment_tensor.refit_features(x, u, "hermite", degrees=(2, 3)),
      want,
      atol=1e-12,
  )
  with pytest.raises(ValueError, match="kind='relu'"):
    moment_tensor.refit_features(x, u, "relu")
  phi = moment_tensor.refit_features(x, u, "sigma", sigma_coeffs=(1, 2, 0, 3))
  np.testing.assert_allclose(phi[:, 0], 1.0)
  np.testing.assert_allclose(phi[:, 1:], 1 + 2 * proj + 3 * proj**3)
  # sigma = t + t^3 + t^5: c = (0, 1+3+15, 0, 1+10, 0, 1).
  c = hermite_e.poly2herme([0, 1, 0, 1, 0, 1])
  assert moment_tensor.feature_degrees(c) == (3, 5)
  assert moment_tensor.feature_degrees((0, 1, 2, 1)) == (2, 3)


def test_moment_tensor_fit_errors():
  rng = np.random.default_rng(8)
  w = _unit_rows(rng, 2, 4)
  x, y = _teacher_sample(rng, w, (0, 1, 0, 1), 100)
  cfg = _model_cfg(moment_tensor.NAME)
  with pytest.raises(ValueError, match=r"c_3 is 0.*a_3 != 0"):
    moment_tensor.fit({"x": x, "y": y}, _fake_task(w, (0, 1, 1)), cfg)
  # p = 1 + d + rank = 1 + 4 + 200 features need at least 205 examples.
  cfg.rank = 200
  with pytest.raises(
      ValueError,
      match=r"100 fit examples.*at least 205.*" r"model.fit_examples",
  ):
    moment_tensor.fit({"x": x, "y": y}, _fake_task(w, (0, 1, 0, 1)), cfg)
  with pytest.raises(ValueError, match="method="):
    moment_tensor.decompose(np.zeros((2, 2, 2)), 1, method="svd")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("rank", -1, "model.rank must be an integer >= 1"),
        ("restarts", 0, "model.restarts must be an integer >= 1"),
        ("iterations", 1.5, "model.iterations must be an integer >= 1"),
        ("refine_iterations", -2, "model.refine_iterations must be"),
        ("method", "als", r"model.method='als'; use one of"),
        ("features", "relu", r"model.features='relu'; use one of"),
        ("seed", "a", "model.seed must be an integer"),
        ("algebra", "H", r"model.algebra='H'.*real estimator"),
        ("fit_examples", -1, "model.fit_examples must be an integer >= 0"),
    ],
)
def test_moment_tensor_validate_config(key, value, message):
  cfg = _model_cfg(moment_tensor.NAME)
  moment_tensor.validate_config(cfg)
  cfg[key] = value
  with pytest.raises(ValueError, match=message):
    moment_tensor.validate_config(cfg)


# --------------------------------------------------- OLS and the mean --


def test_ols_matches_numpy_lstsq():
  rng = np.random.default_rng(9)
  x = rng.standard_normal((40, 6))
  y = rng.standard_normal(40)
  fitted = least_squares.fit({"x": x, "y": y}, None, None)
  design = np.concatenate([np.ones((40, 1)), x], axis=1)
  want, *_ = np.linalg.lstsq(design, y, rcond=None)
  np.testing.assert_allclose(fitted.intercept, want[0], atol=1e-12)
  np.testing.assert_allclose(fitted.coef, want[1:], atol=1e-12)
  np.testing.assert_allclose(
      fitted.predict(x), design @ want, rtol=1e-6, atol=1e-6
  )
  assert fitted.num_params == 7 and fitted.macs_per_example == 6
  np.testing.assert_array_equal(fitted.directions, fitted.coef[None])


def test_solve_normal_equations_and_svd_fallback():
  rng = np.random.default_rng(13)
  a = rng.standard_normal((50, 6))
  y = rng.standard_normal(50)
  want = np.linalg.lstsq(a, y, rcond=None)[0]
  np.testing.assert_allclose(least_squares.solve(a, y), want, atol=1e-12)
  # Exactly and nearly dependent columns leave the normal equations for the
  # SVD solver: the minimum-norm solution, as numpy's (also SVD) gives.
  for extra in (a[:, :1], a[:, :1] + 1e-7 * rng.standard_normal((50, 1))):
    b = np.concatenate([a, extra], axis=1)
    want = np.linalg.lstsq(b, y, rcond=None)[0]
    np.testing.assert_allclose(least_squares.solve(b, y), want, rtol=1e-9)


def test_ols_recovers_population_coefficients():
  """Intercept -> r c_0, slope -> c_1 sum_i w_i (Stein's lemma)."""
  rng = np.random.default_rng(10)
  d, r, n = 6, 3, 200_000
  coeffs = (0.5, 1.0, 0.0, 1.0)  # c_0 = 0.5, c_1 = 1 + 3 = 4
  w = _unit_rows(rng, r, d)
  x, y = _teacher_sample(rng, w, coeffs, n)
  fitted = least_squares.fit_ols(x, y)
  slope = 4.0 * w.sum(axis=0)
  residual_std = np.std(y - fitted.predict(x))
  # x ~ N(0, I): the OLS standard error of each coefficient is ~ s / sqrt(n).
  z = (fitted.coef - slope) / (residual_std / np.sqrt(n))
  assert np.max(np.abs(z)) < 4.5
  assert abs(fitted.intercept - r * 0.5) < 4.5 * residual_std / np.sqrt(n)


def test_ols_too_few_examples():
  x = np.zeros((5, 6))
  with pytest.raises(
      ValueError, match=r"least_squares: 5 fit examples.*at least 7"
  ):
    least_squares.fit({"x": x, "y": np.zeros(5)}, None, None)


def test_mean_is_sample_mean():
  rng = np.random.default_rng(11)
  x = rng.standard_normal((30, 3))
  y = rng.standard_normal(30) + 2.0
  fitted = mean.fit({"x": x, "y": y}, None, None)
  assert fitted.value == pytest.approx(np.mean(y), abs=1e-14)
  pred = fitted.predict(rng.standard_normal((4, 3)))
  np.testing.assert_array_equal(pred, np.float32(np.mean(y)))
  assert pred.dtype == np.float32
  assert fitted.directions is None and fitted.num_params == 1
  with pytest.raises(ValueError, match=r"expects x of shape \[n, 3\]"):
    fitted.predict(np.zeros((4, 2)))


def test_fit_data_checked():
  with pytest.raises(ValueError, match="fit data lacks 'y'"):
    mean.fit({"x": np.zeros((3, 2))}, None, None)
  with pytest.raises(ValueError, match=r"x \[n, d\] and y \[n\]"):
    mean.fit({"x": np.zeros((3, 2)), "y": np.zeros(4)}, None, None)


# ----------------------------------------------- registry and restore --


def test_learner_registry():
  for name in ("mean", "least_squares", "moment_tensor"):
    module = learners.get(name)
    assert name == module.NAME and learners.is_learner(name)
    cfg = ml_collections.ConfigDict(module.default_config())
    assert cfg.name == name and cfg.algebra == "R"
    module.validate_config(cfg)
  assert learners.names() == ["mean", "least_squares", "moment_tensor"]
  assert not learners.is_learner("two_layer")
  with pytest.raises(ValueError, match="'two_layer' is not a closed-form"):
    learners.restore("two_layer", {})
  with pytest.raises(ValueError, match="Did you mean 'least_squares'"):
    learners.get("least_square")


def test_learners_are_not_models():
  # The library's model registry knows only networks (issue 14).
  for name in learners.names():
    assert name not in models.names()


@pytest.mark.parametrize("name", ["mean", "least_squares", "moment_tensor"])
def test_state_round_trip_through_npz(name, tmp_path):
  rng = np.random.default_rng(12)
  w = _unit_rows(rng, 2, 5)
  x, y = _teacher_sample(rng, w, (0, 1, 0, 1), 3_000)
  cfg = _model_cfg(name)
  fitted = learners.get(name).fit(
      {"x": x, "y": y}, _fake_task(w, (0, 1, 0, 1)), cfg
  )
  np.savez(tmp_path / "f.npz", **fitted.state())
  with np.load(tmp_path / "f.npz", allow_pickle=False) as npz:
    restored = learners.restore(name, {k: npz[k] for k in npz.files})
  x_test = rng.standard_normal((50, 5))
  np.testing.assert_array_equal(
      restored.predict(x_test), fitted.predict(x_test)
  )
  assert restored.num_params == fitted.num_params
  assert restored.macs_per_example == fitted.macs_per_example
