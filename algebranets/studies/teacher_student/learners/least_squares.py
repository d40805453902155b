"""Ordinary least squares on [1, x]: the honest linear baseline.

For y = sum_{i=1..r} sigma(w_i . x) with x ~ N(0, I_d) and unit w_i, Stein's
lemma gives E[He_k(w . x) x] = 0 for every k != 1, so the population OLS
solution is

    intercept = E[y] = r c_0,     slope = E[y x] = c_1 sum_i w_i,

where c_k are the probabilists' Hermite coefficients of sigma (c_1 = a_1 +
3 a_3 for the cubic sigma(t) = a_0 + a_1 t + a_3 t^3). The fit explains
c_1^2 |sum_i w_i|^2 of Var(y), which is r c_1^2 of r (c_1^2 + 6 c_3^2) for
nearly orthogonal w_i at small r: a linear fit beats E[y] until the cubic
part dominates. `solve` is also the output-weight refit of the moment-tensor
learner.

Shape glossary: n = examples, d = input dimension, p = features.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.linalg

from algebranets.studies.teacher_student.learners import estimator

NAME = "least_squares"
# Below this reciprocal condition number of the Gram matrix (cond(features)
# above ~1e5), `solve` leaves the normal equations for an SVD solver.
RCOND_NORMAL = 1e-10


def default_config() -> dict[str, Any]:
  return dict(
      name=NAME,
      algebra=estimator.ALGEBRA,  # real only (see estimator.check_common)
      fit_examples=0,  # 0 = data.train_examples (or the harness default)
  )


def validate_config(model_cfg: Any) -> None:
  """Raises ValueError naming the bad key and the fix."""
  estimator.check_common(model_cfg)


def solve(features: np.ndarray, targets: np.ndarray) -> np.ndarray:
  """Coefficients beta [p] minimising |features @ beta - targets|^2.

  float64 throughout. The normal equations (Gram matrix, Cholesky) when
  they are well conditioned: several times faster than a QR or SVD solver
  at the moment-tensor refit's size (n = 20,000, p ~ 1,000), and as
  accurate while cond(features)^2 stays far from 1 / eps. Otherwise (the
  Cholesky estimate of the Gram's reciprocal condition number is below
  RCOND_NORMAL, or it is not positive definite: dependent columns) the
  SVD-based LAPACK gelsd on the features themselves, which returns the
  minimum-norm solution.

  Args:
    features: [n, p].
    targets: [n].

  Returns:
    float64 [p].
  """
  features = np.asarray(features, np.float64)
  targets = np.asarray(targets, np.float64)
  gram = features.T @ features
  try:
    factor = scipy.linalg.cho_factor(gram, check_finite=False)
    anorm = np.max(np.sum(np.abs(gram), axis=0))
    rcond, info = scipy.linalg.lapack.dpocon(
        factor[0], anorm, uplo="L" if factor[1] else "U"
    )
    if info == 0 and rcond > RCOND_NORMAL:
      return scipy.linalg.cho_solve(
          factor, features.T @ targets, check_finite=False
      )
  except np.linalg.LinAlgError:
    pass  # not positive definite: dependent columns
  beta, *_ = scipy.linalg.lstsq(
      features, targets, lapack_driver="gelsd", check_finite=False
  )
  return beta


@dataclasses.dataclass(frozen=True)
class LinearEstimator:
  """Predicts intercept + x @ coef."""

  intercept: float
  coef: np.ndarray  # float64 [d]
  name: str = NAME

  @property
  def directions(self) -> np.ndarray | None:
    """[1, d]: the slope, the one direction a linear fit learns (it points
    along c_1 sum_i w_i); None if it is exactly zero."""
    if not np.any(self.coef):
      return None
    return self.coef[None, :].copy()

  @property
  def num_params(self) -> int:
    return int(self.coef.shape[0]) + 1

  @property
  def macs_per_example(self) -> int:
    return int(self.coef.shape[0])

  def predict(self, x: np.ndarray) -> np.ndarray:
    """float32 [n] predictions for x [n, d]."""
    x = estimator.check_input(x, self.coef.shape[0])
    return (self.intercept + x @ self.coef).astype(np.float32)

  def state(self) -> dict[str, np.ndarray]:
    return {"intercept": np.float64(self.intercept), "coef": self.coef}

  @classmethod
  def from_state(cls, state: Mapping[str, np.ndarray]) -> LinearEstimator:
    return cls(
        intercept=float(state["intercept"]),
        coef=np.asarray(state["coef"], np.float64),
    )


def fit_ols(x: np.ndarray, y: np.ndarray) -> LinearEstimator:
  """OLS of y [n] on [1, x [n, d]].

  Raises:
    ValueError: fewer than d + 1 examples (the fit is not determined).
  """
  n, d = x.shape
  estimator.check_fit_size(NAME, n, d + 1, f"OLS on [1, x] at d = {d}")
  beta = solve(np.concatenate([np.ones((n, 1)), x], axis=1), y)
  return LinearEstimator(intercept=float(beta[0]), coef=beta[1:])


def fit(
    fit_data: Mapping[str, Any], task: Any, model_cfg: Any
) -> LinearEstimator:
  """The learner's fit: fit_data {'x': [n, d], 'y': [n]} -> LinearEstimator."""
  del task, model_cfg  # nothing to choose
  return fit_ols(*estimator.fit_arrays(fit_data))
