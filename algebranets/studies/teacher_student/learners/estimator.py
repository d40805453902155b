"""What every closed-form learner returns, and the checks they share.

A closed-form learner is not trained by SGD: its `fit(fit_data, task,
model_cfg)` computes a `FittedEstimator` from a fixed sample in one pass
(`algebranets.studies.teacher_student.closed_form` calls it and
evaluates the result).

Shape glossary: n = examples, d = input dimension, m = learned directions.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

# Real numbers of the model that the config's `algebra` key may name: the
# closed-form learners are real estimators (algebra networks are trained).
ALGEBRA = "R"


class FittedEstimator(Protocol):
  """A fitted closed-form predictor.

  Attributes:
    name: the learner's registry name (its config's model.name).
    directions: float64 [m, d] estimated teacher directions (any scale and
      sign), or None when the learner estimates none.
    num_params: real numbers the predictor stores (what `accounting.json`
      calls params_total).
    macs_per_example: real multiply-adds of the linear maps in one
      prediction (elementwise polynomials are not MACs, as activations are
      not in docs/macs_and_flops.md).
  """

  name: str

  @property
  def directions(self) -> np.ndarray | None:
    ...

  @property
  def num_params(self) -> int:
    ...

  @property
  def macs_per_example(self) -> int:
    ...

  def predict(self, x: np.ndarray) -> np.ndarray:
    """float32 [n] predictions for inputs x [n, d]."""
    ...

  def state(self) -> dict[str, np.ndarray]:
    """Arrays that `from_state` rebuilds the estimator from (fitted.npz)."""
    ...


def fit_arrays(fit_data: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
  """float64 (x [n, d], y [n]) of a fit sample {'x': [n, d], 'y': [n]}.

  Raises:
    ValueError: missing keys or inconsistent shapes.
  """
  for key in ("x", "y"):
    if key not in fit_data:
      raise ValueError(
          f"fit data lacks {key!r} (has {sorted(fit_data)}); pass "
          "task.fit_data(n), a dict {'x': [n, d], 'y': [n]}."
      )
  x = np.asarray(fit_data["x"], np.float64)
  y = np.asarray(fit_data["y"], np.float64)
  if x.ndim != 2 or y.shape != (x.shape[0],):
    raise ValueError(
        f"fit data must be x [n, d] and y [n]; got x {x.shape}, y {y.shape}."
    )
  return x, y


def check_input(x: np.ndarray, input_dim: int) -> np.ndarray:
  """float64 x [n, d] for prediction; ValueError on a wrong shape."""
  x = np.asarray(x, np.float64)
  if x.ndim != 2 or x.shape[1] != input_dim:
    raise ValueError(
        f"predict expects x of shape [n, {input_dim}] (the fitted input "
        f"dimension), got {x.shape}."
    )
  return x


def check_fit_size(name: str, num_examples: int, needed: int, why: str) -> None:
  """ValueError naming model.fit_examples when a fit has too few examples.

  Args:
    name: learner name (for the message).
    num_examples: examples the fit received.
    needed: the least number the fit is defined for.
    why: what needs that many (e.g. "OLS on [1, x] at d = 16").
  """
  if num_examples < needed:
    raise ValueError(
        f"{name}: {num_examples} fit examples are too few: {why} needs at "
        f"least {needed} (10x that for a stable fit). Raise "
        "model.fit_examples (or data.train_examples, the sample budget "
        "fit_examples=0 uses)."
    )


def is_int(value: Any) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_common(model_cfg: Any) -> None:
  """Checks the keys every closed-form learner has: algebra, fit_examples.

  Raises:
    ValueError: naming the key, its value and the fix.
  """
  if model_cfg.algebra != ALGEBRA:
    raise ValueError(
        f"model.algebra={model_cfg.algebra!r}: the closed-form learner "
        f"{model_cfg.name!r} is a real estimator; set model.algebra='R' (to "
        "compare algebras, train the 'two_layer' network student)."
    )
  if not is_int(model_cfg.fit_examples) or model_cfg.fit_examples < 0:
    raise ValueError(
        "model.fit_examples must be an integer >= 0 (0 = data.train_examples, "
        f"or the harness default when that is 0), got "
        f"{model_cfg.fit_examples!r}."
    )
