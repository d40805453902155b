"""Closed-form learners of the teacher-student study (no SGD).

They are not models of `algebranets.models` (nothing there is fitted in
closed form): a run config selects one by `model.name` in its `model`
section, and `algebranets.studies.teacher_student.closed_form` fits and
evaluates it (`python -m algebranets.studies.teacher_student.fit`).

  'mean'           E[y] estimated by the sample mean (`mean`)
  'least_squares'  OLS on [1, x] (`least_squares`)
  'moment_tensor'  decomposition of E[y He_3(x)] + least-squares output refit
                   (`moment_tensor`, `tensor_decomposition`)

Each learner module defines NAME, `default_config()` (its `model` section),
`validate_config(model_cfg)` (ValueError naming the key and the fix) and
`fit(fit_data, task, model_cfg)`, which returns a fitted estimator
(`estimator.FittedEstimator`: `predict(x [n, d]) -> [n]`, `directions`,
`num_params`, `macs_per_example`, `state()`); `restore(name, state)`
rebuilds it from its saved state (the workdir's fitted.npz).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import ModuleType

import numpy as np

from algebranets.studies.teacher_student.learners import (
    estimator,
    least_squares,
    mean,
    moment_tensor,
    tensor_decomposition,
)

_MODULES: dict[str, ModuleType] = {
    m.NAME: m for m in (mean, least_squares, moment_tensor)
}
_ESTIMATORS = {
    mean.NAME: mean.MeanEstimator,
    least_squares.NAME: least_squares.LinearEstimator,
    moment_tensor.NAME: moment_tensor.MomentTensorEstimator,
}


def names() -> list[str]:
  """The closed-form learners' names (their config's model.name)."""
  return list(_MODULES)


def is_learner(name) -> bool:
  """True if `name` names a closed-form learner."""
  return isinstance(name, str) and name in _MODULES


def get(name: str) -> ModuleType:
  """The module of learner `name` (NAME, default_config, validate_config,
  fit).

  Raises:
    ValueError: not a learner; the message lists the valid names and the
      closest one.
  """
  if is_learner(name):
    return _MODULES[name]
  close = difflib.get_close_matches(str(name), names(), n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  raise ValueError(
      f"{name!r} is not a closed-form learner.{hint} Valid: {names()}."
  )


def restore(
    name: str, state: Mapping[str, np.ndarray]
) -> estimator.FittedEstimator:
  """The fitted estimator of learner `name` from its `state()` arrays.

  Raises:
    ValueError: `name` is not a closed-form learner.
  """
  get(name)
  return _ESTIMATORS[name].from_state(state)


__all__ = [
    "estimator",
    "get",
    "is_learner",
    "least_squares",
    "mean",
    "moment_tensor",
    "names",
    "restore",
    "tensor_decomposition",
]
