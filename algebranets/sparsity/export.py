"""Exporting pruned weights: zeroed dense arrays and block-sparse BCOO.

Mask convention: see `algebranets.sparsity.accounting` (masks mirror the
params dict; bool arrays of the parameter's shape, True = kept; None for
unpruned leaves).

An algebra weight pruned by whole elements is block sparse: one stored entry
per kept element w_nm with its d components dense. `to_block_sparse` stores
it as a `jax.experimental.sparse.BCOO` with `n_dense=1` and `sparse_dense`
applies the algebra dense layer straight from that form, by gathering the
inputs of every stored element and segment-summing the products into the
outputs, so the work is proportional to the kept elements.

Shape glossary: N = input algebra channels, M = output algebra channels,
d = algebra dimension, nse = stored (kept) elements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from algebranets.kernels import structure
from algebranets.sparsity import accounting


def export_pruned(
    params: Mapping, masks: Mapping | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """Pruned weights and masks as flat numpy dicts, ready for `np.savez`.

  Keys are "module_path/leaf" (Haiku module paths may contain '/', leaf
  names do not, so `load_pruned` splits at the last '/').

  Args:
    params: Haiku params {module_path: {leaf: array}}.
    masks: masks tree (bool, parameter's shape, True = kept; None = not
      pruned).

  Returns:
    (params_masked, masks_np): params_masked holds EVERY parameter as numpy,
    pruned entries set to exactly 0; masks_np holds the bool masks of the
    pruned leaves only (np.savez cannot store None).
    `np.savez(f, **params_masked)` then writes a loadable checkpoint.

  Raises:
    ValueError: a mask naming a missing parameter or of the wrong shape.
  """
  params_masked: dict[str, np.ndarray] = {}
  masks_np: dict[str, np.ndarray] = {}
  for module, leaf, p, mask in accounting._mask_items(params, masks):
    key = f"{module}/{leaf}"
    value = np.asarray(p)
    if mask is not None:
      mask = np.asarray(mask, bool)
      value = np.where(mask, value, np.zeros((), value.dtype))
      masks_np[key] = mask
    params_masked[key] = value
  return params_masked, masks_np


def load_pruned(
    params_masked: Mapping[str, Any], masks_np: Mapping[str, Any]
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, Any]]]:
  """Inverse of `export_pruned`: flat dicts (or `np.load` files) -> trees.

  Args:
    params_masked: {"module_path/leaf": array}, e.g. `np.load(path)`.
    masks_np: {"module_path/leaf": bool array} for the pruned leaves.

  Returns:
    (params, masks) in the Haiku layout {module_path: {leaf: array}}; masks
    has None for every leaf without a stored mask.

  Raises:
    ValueError: a key without '/' or a mask key that has no parameter.
  """
  params: dict[str, dict[str, np.ndarray]] = {}
  masks: dict[str, dict[str, Any]] = {}
  for key in params_masked:
    if "/" not in key:
      raise ValueError(
          f"load_pruned: key {key!r} is not 'module_path/leaf'; pass the "
          "dicts written by export_pruned."
      )
    module, leaf = key.rsplit("/", 1)
    params.setdefault(module, {})[leaf] = np.asarray(params_masked[key])
    masks.setdefault(module, {})[leaf] = None
  for key in masks_np:
    module, _, leaf = key.rpartition("/")
    if module not in params or leaf not in params[module]:
      raise ValueError(
          f"load_pruned: mask {key!r} has no parameter; parameter keys: "
          f"{sorted(params_masked)}."
      )
    masks[module][leaf] = np.asarray(masks_np[key], bool)
  return params, masks


def _element_mask(w_shape, mask) -> Any:
  """[N, M] element mask from a mask of shape [N, M, d] or [N, M]."""
  if tuple(mask.shape) == tuple(w_shape):
    # An element is stored if any component survives; for whole-element
    # masks (the convention) that is the same as every component.
    return mask.any(axis=-1)
  if tuple(mask.shape) == tuple(w_shape[:-1]):
    return mask
  raise ValueError(
      f"to_block_sparse: mask shape {tuple(mask.shape)} matches neither the "
      f"weight {tuple(w_shape)} nor its elements {tuple(w_shape[:-1])}."
  )


def to_block_sparse(
    w: jax.Array, mask: Any, *, nse: int | None = None
) -> sparse.BCOO:
  """Algebra dense weight -> BCOO with one entry per kept algebra element.

  Args:
    w: [N, M, d] algebra weight.
    mask: bool [N, M, d] (the masks convention) or [N, M] element mask,
      True = kept.
    nse: number of stored elements. Needed only under `jit` (where the mask
      is traced); with a concrete mask it is the number of kept elements.
      Extra slots are padded with out-of-range indices and zero data, as
      `BCOO.fromdense` does.

  Returns:
    BCOO of shape [N, M, d], n_dense=1: indices [nse, 2] (n, m), data
    [nse, d] (the kept elements, pruned components zeroed).

  Raises:
    ValueError: w not of rank 3, a mask of another shape, or a traced mask
      without `nse`.
  """
  if w.ndim != 3:
    raise ValueError(
        f"to_block_sparse: w must be an algebra dense weight [N, M, d], got "
        f"shape {tuple(w.shape)}. Reshape conv weights [kh, kw, C, M, d] to "
        "[kh*kw*C, M, d] first."
    )
  n_in, m_out, _ = w.shape
  mask = jnp.asarray(mask, bool)
  elem = _element_mask(w.shape, mask)
  full = mask if mask.ndim == 3 else mask[..., None]
  w_masked = jnp.where(full, w, jnp.zeros((), w.dtype))
  if nse is None:
    try:
      nse = int(np.count_nonzero(np.asarray(elem)))
    except jax.errors.TracerArrayConversionError as e:
      raise ValueError(
          "to_block_sparse: the mask is traced (inside jit), so the number "
          "of stored elements is unknown; pass nse= (e.g. the kept element "
          "count computed outside jit)."
      ) from e
  # Indices come from the MASK, not from the values as in BCOO.fromdense, so
  # a kept element whose value happens to be 0 is still stored and
  # nse equals the kept element count exactly.
  rows, cols = jnp.nonzero(elem, size=nse, fill_value=(n_in, m_out))
  indices = jnp.stack([rows, cols], axis=-1).astype(jnp.int32)
  valid = (rows < n_in)[:, None]
  gathered = w_masked[jnp.minimum(rows, n_in - 1), jnp.minimum(cols, m_out - 1)]
  data = jnp.where(valid, gathered, jnp.zeros((), w.dtype))
  return sparse.BCOO((data, indices), shape=tuple(w.shape))


def sparse_dense(x: jax.Array, w_bcoo: sparse.BCOO, algebra) -> jax.Array:
  """Algebra dense layer (no bias) from a block-sparse weight.

  y[..., m, :] = sum over stored (n, m) of w_nm * x[..., n, :] (algebra
  product, weight on the left, as `kernels.dense`), computed by gathering
  x at the stored input channels, one batched algebra product per stored
  element, and a segment sum into the output channels: O(nse * d^2) work
  per token instead of O(N * M * d^2).

  Args:
    x: [..., N, d] activations.
    w_bcoo: BCOO [N, M, d] with n_dense=1, n_batch=0 (from
      `to_block_sparse` or `BCOO.fromdense(w, n_dense=1)`).
    algebra: name, `Algebra`, or [d, d, d] structure constants.

  Returns:
    y: [..., M, d], equal to `kernels.dense(x, w_bcoo.todense(), algebra)`.

  Raises:
    ValueError: a BCOO that is not [N, M, d] with n_dense=1, or x that does
      not match it.
  """
  _, c = structure.resolve(algebra)
  d = c.shape[0]
  if (
      len(w_bcoo.shape) != 3
      or w_bcoo.n_dense != 1
      or w_bcoo.n_batch != 0
      or w_bcoo.shape[-1] != d
  ):
    raise ValueError(
        f"sparse_dense: w_bcoo must be a BCOO [N, M, {d}] with n_dense=1 and "
        f"n_batch=0; got shape {w_bcoo.shape}, n_dense={w_bcoo.n_dense}, "
        f"n_batch={w_bcoo.n_batch}. Build it with to_block_sparse."
    )
  n_in, m_out, _ = w_bcoo.shape
  if x.ndim < 2 or tuple(x.shape[-2:]) != (n_in, d):
    raise ValueError(
        f"sparse_dense: x must be [..., {n_in}, {d}] to match the weight "
        f"{w_bcoo.shape}, got shape {tuple(x.shape)}."
    )
  rows, cols = w_bcoo.indices[:, 0], w_bcoo.indices[:, 1]
  # L(w) [nse, j, k]: (w x)_k = sum_j x_j L[j, k].
  left = structure.expand_left(w_bcoo.data.astype(x.dtype), algebra)
  # Padding indices are out of range: clamp the gather (its data is zero
  # anyway) and let segment_sum drop them.
  xs = jnp.take(x, jnp.minimum(rows, n_in - 1), axis=-2)  # [..., nse, d]
  prod = jnp.einsum("...sj,sjk->...sk", xs, left)  # [..., nse, d]
  prod = jnp.moveaxis(prod, -2, 0)  # [nse, ..., d]
  y = jax.ops.segment_sum(prod, cols, num_segments=m_out)  # [M, ..., d]
  return jnp.moveaxis(y, 0, -2)


__all__ = ["export_pruned", "load_pruned", "sparse_dense", "to_block_sparse"]
