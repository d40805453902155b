"""Gradual magnitude pruning as an optax gradient-transformation wrapper.

Usage (Zhu & Gupta schedule, algebra-element pruning):

  selected = masks.select(params, exclude=("^input", "head"))
  sched = functools.partial(schedules.polynomial_sparsity, begin_step=1000,
      end_step=5000, frequency=100, initial_sparsity=0.0,
      final_sparsity=0.9)
  tx = pruner.wrap(optax.adam(1e-3), selected=selected, schedule_fn=sched,
      granularity="element", algebra="H")
  state = tx.init(params)
  updates, state = tx.update(grads, state, params)
  params = pruner.apply_masks(optax.apply_updates(params, updates),
      state.masks)

Masks are recomputed from the params passed to `update` whenever the
scheduled sparsity changes (for `polynomial_sparsity` that is exactly at its
pruning steps, since it is held constant in between).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from algebranets import algebras
from algebranets.sparsity import masks as masks_lib
from algebranets.sparsity import schedules


class SparsityState(NamedTuple):
  """masks: masks pytree (see masks.py); count: int32 step counter;
  inner_state: the wrapped transformation's state."""

  masks: Any
  count: jax.Array
  inner_state: Any


def _apply(tree: Mapping, masks: Mapping) -> dict:
  """Zeroes the pruned entries of a {module: {leaf: array}} tree."""
  return {
      m: {
          k: v
          if masks[m][k] is None
          else jnp.where(masks[m][k], v, jnp.zeros_like(v))
          for k, v in sub.items()
      }
      for m, sub in tree.items()
  }


def apply_masks(params: Mapping, masks: Mapping) -> dict:
  """Zeroes pruned entries; call after `optax.apply_updates`."""
  return _apply(params, masks)


def _algebra_dims(params, selected, granularity, algebra) -> dict:
  """d per selected path for ERK (None = count real components)."""
  dims = {}
  for m, k, _ in masks_lib.leaves(params):
    if not selected[m][k]:
      continue
    path = masks_lib.path_of(m, k)
    if granularity == "element":
      alg = algebra[path] if isinstance(algebra, Mapping) else algebra
      dims[path] = algebras.get(alg).dim
    else:
      dims[path] = None
  return dims


def wrap(
    inner: optax.GradientTransformation,
    *,
    selected: Mapping[str, Mapping[str, bool]],
    schedule_fn: Callable[[jax.Array], jax.Array],
    granularity: str = "element",
    algebra: str | algebras.Algebra | Mapping | None = None,
    block_shape: Sequence[int] | None = None,
    distribution: str = "uniform",
    ranking: str = "layer",
) -> optax.GradientTransformation:
  """Wraps `inner` with magnitude pruning.

  Args:
    inner: the optimizer, e.g. optax.adam(1e-3).
    selected: {module: {leaf: bool}} (see `masks.select`).
    schedule_fn: step -> overall target sparsity (jnp-traceable), e.g. a
      partial of `schedules.polynomial_sparsity`. Masks are recomputed at
      steps where its value differs from the previous step's (at step 0 when
      it is above 0).
    granularity, algebra, block_shape, ranking: see `masks.compute_masks`.
    distribution: 'uniform' or 'erk' per-layer sparsities (layer ranking).

  Returns:
    An optax transformation whose state is a `SparsityState`. Pruned
    weights get zero gradient (so optimizer moments do not build up) and
    zero update; `update` needs `params`.
  """
  if distribution not in ("uniform", "erk"):
    raise ValueError(
        f"distribution must be 'uniform' or 'erk', got {distribution!r}."
    )
  if ranking == "global" and distribution != "uniform":
    raise ValueError(
        "ranking='global' sets layer sparsities by one threshold; use"
        f" distribution='uniform' with it, not {distribution!r}."
    )
  if ranking not in masks_lib.RANKINGS:
    raise ValueError(
        f"ranking must be one of {masks_lib.RANKINGS}, got {ranking!r}."
    )
  masks_lib._check_granularity(granularity)

  def init_fn(params):
    masks = {
        m: {
            k: jnp.ones(jnp.shape(v), bool) if selected[m][k] else None
            for k, v in sub.items()
        }
        for m, sub in params.items()
    }
    return SparsityState(masks, jnp.zeros((), jnp.int32), inner.init(params))

  def _targets(params, sparsity):
    if ranking == "global":
      return sparsity
    shapes = {
        masks_lib.path_of(m, k): jnp.shape(v)
        for m, k, v in masks_lib.leaves(params)
        if selected[m][k]
    }
    dims = _algebra_dims(params, selected, granularity, algebra)
    return schedules.layer_sparsities(shapes, sparsity, distribution, dims)

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(
          "the pruning wrapper needs params: call tx.update(grads, state,"
          " params)."
      )
    count = state.count
    s_now = jnp.asarray(schedule_fn(count), jnp.float32)
    s_prev = jnp.asarray(schedule_fn(jnp.maximum(count - 1, 0)), jnp.float32)
    s_prev = jnp.where(count == 0, 0.0, s_prev)
    prune_now = s_now != s_prev

    def recompute():
      return masks_lib.compute_masks(
          params,
          selected,
          _targets(params, s_now),
          granularity=granularity,
          algebra=algebra,
          block_shape=block_shape,
          ranking=ranking,
          previous_masks=state.masks,
      )

    masks = jax.lax.cond(prune_now, recompute, lambda: state.masks)
    grads = _apply(updates, masks)
    new_updates, inner_state = inner.update(grads, state.inner_state, params)
    new_updates = _apply(new_updates, masks)
    return new_updates, SparsityState(masks, count + 1, inner_state)

  return optax.GradientTransformation(init_fn, update_fn)


def sparsity_report(masks: Mapping) -> dict[str, float]:
  """Fraction pruned per selected leaf ("module/leaf") and 'total'.

  'total' is over all real entries of the selected leaves. Values are
  Python floats for concrete masks and jnp scalars under tracing.
  """
  report = {}
  pruned = jnp.zeros((), jnp.float32)
  size = 0
  for m, k, mask in masks_lib.leaves(masks):
    if mask is None:
      continue
    n_pruned = jnp.sum(~mask).astype(jnp.float32)
    report[masks_lib.path_of(m, k)] = n_pruned / mask.size
    pruned = pruned + n_pruned
    size += mask.size
  report["total"] = pruned / max(size, 1)
  if not any(isinstance(v, jax.core.Tracer) for v in report.values()):
    report = {p: float(np.asarray(v)) for p, v in report.items()}
  return report
