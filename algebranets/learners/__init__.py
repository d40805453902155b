"""Closed-form learners of the teacher-student study (no SGD).

Registered in `algebranets.models` (so a config selects them by
`model.name` like any network) with `ModelSpec.fit` set and `from_config`
None; `algebranets.training.closed_form` fits and evaluates them, and
`experiments.train` / `experiments.eval` dispatch there.

  'mean'           E[y] estimated by the sample mean (`mean`)
  'least_squares'  OLS on [1, x] (`least_squares`)
  'moment_tensor'  decomposition of E[y He_3(x)] + least-squares output refit
                   (`moment_tensor`, `tensor_decomposition`)

Each `fit(fit_data, task, model_cfg)` returns a fitted estimator
(`estimator.FittedEstimator`: `predict(x [n, d]) -> [n]`, `directions`,
`num_params`, `macs_per_example`, `state()`); `restore(name, state)` rebuilds
it from its saved state (the workdir's fitted.npz).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from algebranets import models
from algebranets.learners import (
    estimator,
    least_squares,
    mean,
    moment_tensor,
    tensor_decomposition,
)

_ESTIMATORS = {
    mean.NAME: mean.MeanEstimator,
    least_squares.NAME: least_squares.LinearEstimator,
    moment_tensor.NAME: moment_tensor.MomentTensorEstimator,
}

# WIP(study helper): learners leave the model registry.
# for _module in (mean, least_squares, moment_tensor):
#   models.register(
#       _module.NAME,
#       models.ModelSpec(
#           name=_module.NAME,
#           default_config=_module.default_config,
#           validate_config=_module.validate_config,
#           from_config=None,
#           fit=_module.fit,
#       ),
#   )


def names() -> list[str]:
  """The closed-form learners' model names."""
  return list(_ESTIMATORS)


def restore(
    name: str, state: Mapping[str, np.ndarray]
) -> estimator.FittedEstimator:
  """The fitted estimator of learner `name` from its `state()` arrays.

  Raises:
    ValueError: `name` is not a closed-form learner.
  """
  if name not in _ESTIMATORS:
    raise ValueError(
        f"{name!r} is not a closed-form learner; valid: {names()}."
    )
  return _ESTIMATORS[name].from_state(state)


__all__ = [
    "estimator",
    "least_squares",
    "mean",
    "moment_tensor",
    "names",
    "restore",
    "tensor_decomposition",
]
