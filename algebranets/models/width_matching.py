"""Width multipliers that match an algebra model to the real one.

An algebra layer of C_in -> C_out algebra channels has d * C_in * C_out real
parameters and `macs_per_product` * C_in * C_out multiply-adds, so at the same
number of real activations an algebra model is smaller (params / d) and
cheaper than the real one. The paper compares algebras at MATCHED parameter
counts (and FLOPs); this module finds the `width_multiplier` that matches a
reference count within a tolerance, measuring every candidate with the
accounting utilities (`metrics.count_params` on the abstract init,
`metrics.count_macs`), never with formulas, so rounding of channel counts,
norms, biases and the real stem/head are all included.

Targets:
  params            all parameters, real stem and head included
  params_without_io parameters outside the real stem and head (the head of
                    ResNet-50 alone is 2.05M of its 25.6M parameters, and it
                    does not shrink with the algebra)
  macs              intrinsic multiply-adds per example (docs/macs_and_flops.md)

Usage:
  cfg = models.defaults('resnet') | {'algebra': 'H'}
  result = match_width(vision_counter(cfg, num_classes=1000,
                                      image_shape=(224, 224, 3)), 'params')
  result.width_multiplier, result.counts.params_total, result.relative_error

Counts are piecewise constant in the multiplier (channels are rounded per
layer), so an exact match rarely exists; the search returns the closest
multiplier it measured and says whether it is within `tol`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp

from algebranets import config_access, metrics, models

TARGETS = ("params", "params_without_io", "macs")
# Path components of the real input lift and output head (see
# training.experiment.REAL_IO_MODULES; the models name those modules so).
REAL_IO_MODULES = ("stem", "head")


@dataclasses.dataclass(frozen=True)
class Counts:
  """Parameter and MAC counts of one model configuration.

  Attributes:
    width_multiplier: the multiplier the counts were measured at.
    params_total: every parameter (Haiku params; not BatchNorm statistics).
    params_real_io: parameters of the real stem and head modules.
    macs: intrinsic multiply-adds of one example's forward pass.
  """

  width_multiplier: float
  params_total: int
  params_real_io: int
  macs: int

  @property
  def params_without_io(self) -> int:
    return self.params_total - self.params_real_io

  def value(self, target: str) -> int:
    """The count named by `target` (one of TARGETS)."""
    _check_target(target)
    if target == "params":
      return self.params_total
    if target == "params_without_io":
      return self.params_without_io
    return self.macs


@dataclasses.dataclass(frozen=True)
class MatchResult:
  """Outcome of `match_width`.

  Attributes:
    width_multiplier: the multiplier whose count is closest to the reference.
    target: what was matched (one of TARGETS).
    counts: the counts at `width_multiplier`.
    reference: the reference model's counts.
    relative_error: counts.value(target) / reference.value(target) - 1.
    within_tolerance: |relative_error| <= the requested tolerance.
    evaluations: how many multipliers were measured.
  """

  width_multiplier: float
  target: str
  counts: Counts
  reference: Counts
  relative_error: float
  within_tolerance: bool
  evaluations: int


def _check_target(target: str) -> None:
  if target not in TARGETS:
    raise ValueError(
        f"Unknown width-matching target {target!r}; valid: "
        f"{', '.join(TARGETS)}."
    )


def _is_real_io(path: str) -> bool:
  return any(part in REAL_IO_MODULES for part in path.split("/"))


def vision_counter(
    model_cfg: Any,
    *,
    num_classes: int = 1000,
    image_shape: tuple[int, int, int] = (224, 224, 3),
) -> Callable[[float], Counts]:
  """A function width_multiplier -> `Counts` for a registered vision model.

  Args:
    model_cfg: the model section (dict or ConfigDict) with 'name' set to a
      registered vision model ('resnet', 'mobilenet'); its
      'width_multiplier' is replaced by the argument of the returned function.
    num_classes: classifier outputs.
    image_shape: (H, W, c) of one input image.

  Returns:
    counter(width_multiplier) -> Counts, evaluated abstractly (no compute,
    no parameter memory: `jax.eval_shape`), results cached per multiplier.

  Raises:
    ModelConfigError: unknown model name or an invalid config (from the
      model's constructor).
  """
  base = config_access.as_dict(model_cfg, "vision_counter: the model config")
  models.check(base, num_classes=num_classes)
  cache: dict[float, Counts] = {}

  def counter(width_multiplier: float) -> Counts:
    m = float(width_multiplier)
    if m in cache:
      return cache[m]
    cfg = dict(base, width_multiplier=m)
    models.check(cfg, num_classes=num_classes)

    def fn(images):
      model = models.build(cfg, num_classes=num_classes)
      return model(images, is_training=True)

    images = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
    params, _ = jax.eval_shape(
        hk.transform_with_state(fn).init, jax.random.key(0), images
    )
    total = metrics.count_params(params)
    real_io = sum(
        metrics.count_params(leaves)
        for path, leaves in params.items()
        if _is_real_io(path)
    )
    report = metrics.count_macs(fn, images)
    cache[m] = Counts(m, int(total), int(real_io), int(report.total))
    return cache[m]

  return counter


def match_width(
    counter: Callable[[float], Counts],
    target: str,
    *,
    reference: Counts | int,
    tol: float = 0.01,
    start: float = 1.0,
    max_evaluations: int = 40,
) -> MatchResult:
  """The width multiplier whose `target` count best matches `reference`.

  Counts grow about quadratically with the multiplier (every layer's
  channels scale on both sides), so the search iterates
  m <- m * sqrt(reference / count(m)) until the count stops improving, then
  scans the neighbourhood (the count is a step function of m, because
  channels are rounded per layer) for the closest measured value.

  Args:
    counter: width_multiplier -> Counts (e.g. `vision_counter(...)`).
    target: one of TARGETS.
    reference: the counts to match (e.g. the real model's `Counts`) or the
      target value itself.
    tol: relative tolerance reported in `within_tolerance` (not enforced).
    start: the first multiplier tried.
    max_evaluations: budget of distinct multipliers measured.

  Returns:
    A `MatchResult` (check `within_tolerance`).

  Raises:
    ValueError: unknown target, non-positive reference/start/tol.
  """
  _check_target(target)
  if isinstance(reference, Counts):
    ref_counts, want = reference, reference.value(target)
  else:
    ref_counts, want = None, int(reference)
  if want <= 0:
    raise ValueError(f"match_width: reference count must be > 0, got {want}.")
  if start <= 0 or tol <= 0:
    raise ValueError(
        f"match_width: start ({start}) and tol ({tol}) must be positive."
    )
  seen: dict[float, Counts] = {}

  def measure(m: float) -> Counts:
    m = float(f"{m:.6g}")  # stable keys; 6 digits is far below a channel
    if m not in seen:
      seen[m] = counter(m)
    return seen[m]

  def error(c: Counts) -> float:
    return c.value(target) / want - 1.0

  m = start
  for _ in range(12):
    c = measure(m)
    if c.value(target) == 0:
      raise ValueError(
          f"match_width: the model has no {target} at width {m}; it cannot be "
          "matched."
      )
    step = math.sqrt(want / c.value(target))
    if abs(step - 1.0) < 1e-4 or len(seen) >= max_evaluations:
      break
    m *= step
  best = min(seen.values(), key=lambda c: abs(error(c)))
  # Neighbourhood scan: other rounding patterns just around the best value.
  for frac in (0.002, 0.005, 0.01, 0.02):
    if abs(error(best)) <= tol / 4 or len(seen) >= max_evaluations:
      break
    for sign in (-1.0, 1.0):
      measure(best.width_multiplier * (1.0 + sign * frac))
    best = min(seen.values(), key=lambda c: abs(error(c)))
  ref = ref_counts if ref_counts is not None else best
  return MatchResult(
      width_multiplier=best.width_multiplier,
      target=target,
      counts=best,
      reference=ref,
      relative_error=error(best),
      within_tolerance=abs(error(best)) <= tol,
      evaluations=len(seen),
  )
