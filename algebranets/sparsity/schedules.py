"""Pruning schedules and per-layer sparsity distributions.

Gradual magnitude pruning follows Zhu & Gupta (2017), "To prune, or not to
prune": the target sparsity rises from `initial_sparsity` to
`final_sparsity` along a cubic, changing only every `frequency` steps between
`begin_step` and `end_step`. The layer-wise Erdos-Renyi-Kernel (ERK)
distribution follows Evci et al. (2020), "Rigging the Lottery" (RigL).

All step functions accept Python ints or traced jnp integers, so they can be
called inside `jax.jit` with the optimizer's step counter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax.numpy as jnp
import numpy as np

_DISTRIBUTIONS = ("uniform", "erk")


def _check_fraction(name: str, value) -> None:
  """Checks a concrete sparsity lies in [0, 1); traced values pass."""
  if isinstance(value, (int, float, np.floating, np.integer)) and not (
      0.0 <= float(value) < 1.0
  ):
    raise ValueError(
        f"{name} must be in [0, 1) (the fraction of weights pruned), got"
        f" {value!r}."
    )


def _check_steps(begin_step: int, end_step: int, frequency: int) -> None:
  if frequency <= 0:
    raise ValueError(
        f"frequency must be a positive step count, got {frequency}."
    )
  if end_step < begin_step:
    raise ValueError(
        f"end_step ({end_step}) must be >= begin_step ({begin_step}); swap"
        " them or move end_step later."
    )


def polynomial_sparsity(
    step,
    *,
    begin_step: int,
    end_step: int,
    frequency: int,
    initial_sparsity: float,
    final_sparsity: float,
    exponent: int = 3,
) -> jnp.ndarray:
  """Zhu & Gupta (2017) gradual sparsity at `step`.

  s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** exponent, where
  t0 = begin_step, n * dt = end_step - begin_step, and t is `step` rounded
  down to the last update step t0 + k * frequency (so the value is piecewise
  constant and only changes at pruning steps). Before `begin_step` it is
  s_i, from `end_step` on it is s_f.

  Args:
    step: scalar int (Python or jnp, may be traced).
    begin_step, end_step, frequency: schedule steps (static ints).
    initial_sparsity, final_sparsity: fractions in [0, 1).
    exponent: polynomial exponent (3 in the paper).

  Returns:
    float32 scalar sparsity.
  """
  _check_steps(begin_step, end_step, frequency)
  _check_fraction("initial_sparsity", initial_sparsity)
  _check_fraction("final_sparsity", final_sparsity)
  step = jnp.asarray(step, jnp.int32)
  # Hold the value between update steps: floor to the last t0 + k * dt.
  t = begin_step + ((step - begin_step) // frequency) * frequency
  t = jnp.clip(t, begin_step, end_step)
  span = max(end_step - begin_step, 1)
  progress = (t - begin_step).astype(jnp.float32) / span
  # end_step may not be on the frequency grid; reach s_f there anyway.
  progress = jnp.where(step >= end_step, 1.0, progress)
  s = (
      final_sparsity
      + (initial_sparsity - final_sparsity) * (1.0 - progress) ** exponent
  )
  # Exact endpoints, so the value does not wobble in float32 at begin_step
  # (the pruner recomputes masks whenever the value changes).
  s = jnp.where(progress >= 1.0, final_sparsity, s)
  s = jnp.where((step < begin_step) | (progress <= 0.0), initial_sparsity, s)
  return s.astype(jnp.float32)


def is_pruning_step(
    step, *, begin_step: int, end_step: int, frequency: int
) -> jnp.ndarray:
  """True at steps begin_step + k * frequency within [begin, end] (jnp bool)."""
  _check_steps(begin_step, end_step, frequency)
  step = jnp.asarray(step, jnp.int32)
  return (
      (step >= begin_step)
      & (step <= end_step)
      & ((step - begin_step) % frequency == 0)
  )


def one_shot_sparsity(step, *, at_step: int, sparsity: float) -> jnp.ndarray:
  """0 before `at_step`, `sparsity` from `at_step` on (float32 scalar)."""
  _check_fraction("sparsity", sparsity)
  step = jnp.asarray(step, jnp.int32)
  return jnp.where(step >= at_step, sparsity, 0.0).astype(jnp.float32)


def _element_shape(path: str, shape: Sequence[int], d: int | None) -> tuple:
  """The shape counted in algebra elements (the last d axis dropped)."""
  shape = tuple(int(s) for s in shape)
  if d is None:
    return shape
  if not shape or shape[-1] != d:
    raise ValueError(
        f"{path}: shape {shape} does not end in the algebra dimension {d};"
        " pass algebra_dim=None for real weights."
    )
  return shape[:-1] or (1,)


def layer_sparsities(
    shapes: Mapping[str, Sequence[int]],
    target,
    distribution: str = "uniform",
    algebra_dim: Mapping[str, int | None] | int | None = None,
) -> dict[str, jnp.ndarray | float]:
  """Per-layer sparsities whose kept-element total matches `target`.

  'uniform': every layer gets `target`.

  'erk' (RigL's Erdos-Renyi-Kernel): layer l keeps a density
  eps * sum(shape_l) / prod(shape_l), with one eps for all layers chosen so
  that sum_l density_l * n_l = (1 - target) * sum_l n_l (n_l = prod of its
  shape). Layers whose density would exceed 1 are made dense and eps is
  re-solved for the rest; this repeats until no density exceeds 1 (at most
  one round per layer, since making a layer dense only raises eps).

  For algebra weights the shape is taken WITHOUT the trailing d axis, i.e.
  elements (not real components) are counted, matching 'element' pruning.

  Args:
    shapes: path -> parameter shape.
    target: overall sparsity in [0, 1); a Python float gives Python floats,
      a jnp value (may be traced) gives jnp scalars.
    distribution: 'uniform' or 'erk'.
    algebra_dim: d per path, one d for all, or None (real weights: use the
      full shape).

  Returns:
    path -> sparsity of that layer.
  """
  if distribution not in _DISTRIBUTIONS:
    raise ValueError(
        f"distribution must be one of {_DISTRIBUTIONS}, got {distribution!r}."
    )
  _check_fraction("target", target)
  paths = list(shapes)
  if distribution == "uniform":
    return {p: target for p in paths}
  if not paths:
    return {}
  dims = {
      p: algebra_dim.get(p) if isinstance(algebra_dim, Mapping) else algebra_dim
      for p in paths
  }
  elem_shapes = [_element_shape(p, shapes[p], dims[p]) for p in paths]
  concrete = isinstance(target, (int, float, np.floating, np.integer))
  xp = np if concrete else jnp
  n = xp.asarray([float(np.prod(s)) for s in elem_shapes])
  raw = xp.asarray([float(sum(s)) / float(np.prod(s)) for s in elem_shapes])
  keep_total = (1.0 - target) * n.sum()
  dense = xp.zeros(len(paths), bool)
  eps = 0.0
  for _ in range(len(paths)):
    free = ~dense
    budget = keep_total - xp.sum(xp.where(dense, n, 0.0))
    divisor = xp.sum(xp.where(free, raw * n, 0.0))
    eps = budget / xp.where(divisor > 0, divisor, 1.0)
    dense = dense | (free & (eps * raw > 1.0))
  density = xp.clip(xp.where(dense, 1.0, eps * raw), 0.0, 1.0)
  sparsity = 1.0 - density
  if concrete:
    return {p: float(s) for p, s in zip(paths, sparsity, strict=True)}
  return {p: sparsity[i] for i, p in enumerate(paths)}
