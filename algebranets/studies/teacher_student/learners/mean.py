"""The trivial predictor: the sample mean of y, whatever x is.

Its test MSE is Var(y) (plus the sampling error of the mean), so its
normalized MSE is the study's 1.0 line: Mondelli & Montanari (2018) prove
that for d^{3/2} << r << d^2 no polynomial-time learner beats it.

Shape glossary: n = examples, d = input dimension.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from algebranets.studies.teacher_student.learners import estimator

NAME = "mean"


def default_config() -> dict[str, Any]:
  return dict(
      name=NAME,
      algebra=estimator.ALGEBRA,  # real only (see estimator.check_common)
      fit_examples=0,  # 0 = data.train_examples (or the harness default)
  )


def validate_config(model_cfg: Any) -> None:
  """Raises ValueError naming the bad key and the fix."""
  estimator.check_common(model_cfg)


@dataclasses.dataclass(frozen=True)
class MeanEstimator:
  """Predicts the constant `value` (the sample mean of the fit targets)."""

  value: float
  input_dim: int
  name: str = NAME

  @property
  def directions(self) -> None:
    return None

  @property
  def num_params(self) -> int:
    return 1

  @property
  def macs_per_example(self) -> int:
    return 0

  def predict(self, x: np.ndarray) -> np.ndarray:
    """float32 [n]: `value` for every row of x [n, d]."""
    x = estimator.check_input(x, self.input_dim)
    return np.full(x.shape[0], self.value, np.float32)

  def state(self) -> dict[str, np.ndarray]:
    return {
        "value": np.float64(self.value),
        "input_dim": np.int64(self.input_dim),
    }

  @classmethod
  def from_state(cls, state: Mapping[str, np.ndarray]) -> MeanEstimator:
    return cls(value=float(state["value"]), input_dim=int(state["input_dim"]))


def fit_mean(x: np.ndarray, y: np.ndarray) -> MeanEstimator:
  """The sample mean of y [n] (x [n, d] only fixes the input dimension).

  Raises:
    ValueError: an empty sample.
  """
  estimator.check_fit_size(NAME, y.shape[0], 1, "the sample mean")
  return MeanEstimator(value=float(np.mean(y)), input_dim=int(x.shape[1]))


def fit(
    fit_data: Mapping[str, Any], task: Any, model_cfg: Any
) -> MeanEstimator:
  """The learner's fit: fit_data {'x': [n, d], 'y': [n]} -> MeanEstimator."""
  del task, model_cfg  # nothing to choose
  return fit_mean(*estimator.fit_arrays(fit_data))
