"""Parameter and MAC accounting for pruned (masked) Haiku models.

Mask convention (shared with the rest of `algebranets.sparsity`): a masks
tree mirrors the Haiku params dict {module_path: {leaf: array}}; a pruned
leaf has a bool mask of the SAME shape as the parameter (True = kept), an
unpruned leaf has None (or is absent).

Definitions:

  nonzero params  real numbers of all parameters minus the pruned ones
          (mask False). An algebra weight [N, M, d] pruned by whole elements
          loses d reals per pruned element.
  sparse MACs     the intrinsic MACs of `metrics.count_macs` with pruned
          weights skipped. An algebra weight element w_nm costs
          `macs_per_product` MACs per use, split over its components: the
          component i carries the nonzeros of the structure constants
          c[i, :, :] (they sum to `macs_per_product`). A layer's MACs are
          scaled by the kept share of that weight, which for whole-element
          masks is exactly the kept fraction of algebra ELEMENTS, and for a
          real layer (algebra None or R) the kept fraction of real weights.

Shape glossary: N = input channels, M = output channels, d = algebra
dimension, kh/kw = kernel size, C/G = input channels per group.
"""

from __future__ import annotations

import fractions
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from algebranets import algebras
from algebranets.metrics import accounting as metrics_accounting

AlgebraOf = Callable[[str], "algebras.Algebra | str | None"]


def _mask_items(params: Mapping, masks: Mapping | None):
  """Yields (module, leaf, param, mask-or-None) in params order.

  Raises:
    ValueError: a mask for a parameter that does not exist, or of the wrong
      shape (a typo there would otherwise silently count as unpruned).
  """
  masks = masks or {}
  for module, leaves in masks.items():
    for leaf, mask in (leaves or {}).items():
      if mask is None:
        continue
      if module not in params or leaf not in params[module]:
        raise ValueError(
            f"masks has an entry {module!r}/{leaf!r} that is not in params "
            f"(params modules: {sorted(params)}). Build masks from the same "
            "params tree (same module and leaf names)."
        )
  for module, leaves in params.items():
    module_masks = masks.get(module) or {}
    for leaf, p in leaves.items():
      mask = module_masks.get(leaf)
      if mask is not None and tuple(np.shape(mask)) != tuple(np.shape(p)):
        raise ValueError(
            f"mask of {module}/{leaf} has shape {tuple(np.shape(mask))} but "
            f"the parameter has shape {tuple(np.shape(p))}; masks must have "
            "the parameter's shape (for element pruning, broadcast the "
            "element mask over the last, algebra axis)."
        )
      yield module, leaf, p, mask


def _kept(mask) -> int:
  return int(np.count_nonzero(np.asarray(mask)))


def nonzero_params(params: Mapping, masks: Mapping | None) -> dict[str, Any]:
  """Real numbers left after pruning.

  Args:
    params: Haiku params {module_path: {leaf: array}} (arrays or
      `jax.ShapeDtypeStruct`s).
    masks: same structure; bool arrays of the parameter's shape for pruned
      leaves (True = kept), None for unpruned ones. Masks must be concrete.

  Returns:
    {'total': real numbers of all params minus the pruned ones,
     'dense_total': real numbers of all params,
     'leaves': {"module_path/leaf": {'kept': int, 'total': int}} for every
       pruned (masked) leaf, in params order}.

  Raises:
    ValueError: a mask naming a missing parameter or of the wrong shape.
  """
  dense_total = metrics_accounting.count_params(params)
  leaves: dict[str, dict[str, int]] = {}
  pruned = 0
  for module, leaf, p, mask in _mask_items(params, masks):
    if mask is None:
      continue
    size = math.prod(np.shape(p))
    kept = _kept(mask)
    leaves[f"{module}/{leaf}"] = {"kept": kept, "total": size}
    pruned += size - kept
  return {
      "total": dense_total - pruned,
      "dense_total": dense_total,
      "leaves": leaves,
  }


def _component_weights(algebra) -> np.ndarray:
  """MACs each weight component carries per use: nnz of c[i, :, :], [d]."""
  if algebra is None:
    return np.ones(1, np.int64)
  alg = algebras.get(algebra)
  c = np.asarray(alg.structure_constants)
  return np.count_nonzero(c.reshape(c.shape[0], -1), axis=1).astype(np.int64)


def _kept_fraction(module: str, leaf: str, mask, algebra) -> fractions.Fraction:
  """Share of a weight's intrinsic MACs that survives the mask (exact)."""
  mask = np.asarray(mask, bool)
  weights = _component_weights(algebra)
  d = weights.shape[0]
  if algebra is None or d == 1:
    return fractions.Fraction(_kept(mask), max(mask.size, 1))
  if mask.ndim < 1 or mask.shape[-1] != d:
    raise ValueError(
        f"sparse_macs: {module}/{leaf} has shape {mask.shape} but algebra_of "
        f"gave {algebras.get(algebra).name} (d = {d}); an algebra weight must "
        f"end in the algebra axis of size {d}. Fix algebra_of for this "
        "module (return None for real layers)."
    )
  kept = int((mask.reshape(-1, d) * weights).sum())
  total = (mask.size // d) * int(weights.sum())
  return fractions.Fraction(kept, max(total, 1))


def _mac_weight(module: str, pruned: dict[str, Any]) -> str:
  """The leaf whose sparsity scales a module's MACs."""
  if "w" in pruned:
    return "w"
  if len(pruned) == 1:
    return next(iter(pruned))
  raise ValueError(
      f"sparse_macs: module {module!r} has several pruned leaves "
      f"{sorted(pruned)} and none is named 'w', so it is unclear which one "
      "its MACs use. Prune only the compute weight of this module."
  )


def sparse_macs(
    report: metrics_accounting.MacReport,
    params: Mapping,
    masks: Mapping | None,
    algebra_of: AlgebraOf,
) -> dict[str, Any]:
  """Intrinsic MACs of the pruned model.

  Every `report` row whose module owns a pruned weight (leaf 'w', or its
  only pruned leaf) has its MACs scaled by the kept share of that weight:
  for whole-element masks the kept fraction of algebra elements (each pruned
  element removes `macs_per_product` MACs per use), for real layers the
  kept fraction of real weights. Other rows are unchanged.

  Args:
    report: `metrics.count_macs` of the model (rows name Haiku modules,
      which are the params' module paths).
    params: Haiku params the report's model was built with.
    masks: masks tree (see module docstring); must be concrete.
    algebra_of: module path -> `Algebra`, algebra name, or None for a real
      layer (hk.Linear / hk.Conv2D inside `RealStem`, `FlattenReal`).
      Called only for rows with a pruned weight.

  Returns:
    {'total': sparse MACs of one call, 'dense_total': `report.total`,
     'layers': {module_path: {'dense': int, 'sparse': int,
       'kept_fraction': float}}, one entry per module in execution order
       (a module called several times sums its calls)}.

  Raises:
    ValueError: bad masks (see `nonzero_params`) or a weight whose last
      axis does not match the algebra given by `algebra_of`.
  """
  pruned: dict[str, dict[str, Any]] = {}
  for module, leaf, _, mask in _mask_items(params, masks):
    if mask is not None:
      pruned.setdefault(module, {})[leaf] = mask
  fraction_of: dict[str, fractions.Fraction] = {}
  layers: dict[str, dict[str, Any]] = {}
  for row in report.rows:
    name = row.name
    if name in pruned and name not in fraction_of:
      leaf = _mac_weight(name, pruned[name])
      fraction_of[name] = _kept_fraction(
          name, leaf, pruned[name][leaf], algebra_of(name)
      )
    frac = fraction_of.get(name, fractions.Fraction(1))
    # Exact rational scaling: intrinsic MACs are uses * elements * macs per
    # product, so this is an integer whenever the mask prunes whole elements.
    sparse = round(row.macs * frac)
    entry = layers.setdefault(
        name, {"dense": 0, "sparse": 0, "kept_fraction": float(frac)}
    )
    entry["dense"] += row.macs
    entry["sparse"] += sparse
  return {
      "total": sum(e["sparse"] for e in layers.values()),
      "dense_total": report.total,
      "layers": layers,
  }


def table(
    params: Mapping,
    masks: Mapping | None,
    report: metrics_accounting.MacReport | None = None,
    algebra_of: AlgebraOf | None = None,
) -> str:
  """Markdown table of a pruned model, one row per params module.

  Columns: layer, params kept/total (all of the module's leaves), sparsity
  (pruned share of those params), MACs dense, MACs sparse ("-" without a
  report or for modules that do no counted MACs), then a total line.

  Args:
    params: Haiku params.
    masks: masks tree (see module docstring).
    report: optional `metrics.count_macs` of the model for the MAC columns.
    algebra_of: required with `report`; see `sparse_macs`.

  Returns:
    The table as a string.

  Raises:
    ValueError: `report` without `algebra_of`, or bad masks.
  """
  if report is not None and algebra_of is None:
    raise ValueError(
        "table: a report was given without algebra_of; pass algebra_of "
        "(module path -> Algebra or None) so MACs can be scaled, or drop "
        "the report."
    )
  counts: dict[str, list[int]] = {}
  for module, _, p, mask in _mask_items(params, masks):
    size = math.prod(np.shape(p))
    kept = size if mask is None else _kept(mask)
    c = counts.setdefault(module, [0, 0])
    c[0] += kept
    c[1] += size
  macs = sparse_macs(report, params, masks, algebra_of) if report else None
  layers = macs["layers"] if macs else {}

  def sparsity(kept, total):
    return f"{1 - kept / total:.1%}" if total else "-"

  lines = [
      "| layer | params kept/total | sparsity | MACs dense | MACs sparse |",
      "| --- | ---: | ---: | ---: | ---: |",
  ]
  for module, (kept, total) in counts.items():
    entry = layers.get(module)
    dense = f"{entry['dense']:,}" if entry else "-"
    sparse = f"{entry['sparse']:,}" if entry else "-"
    lines.append(
        f"| {module} | {kept:,}/{total:,} | {sparsity(kept, total)} | "
        f"{dense} | {sparse} |"
    )
  kept = sum(c[0] for c in counts.values())
  total = sum(c[1] for c in counts.values())
  dense_total = f"{macs['dense_total']:,}" if macs else "-"
  sparse_total = f"{macs['total']:,}" if macs else "-"
  lines.append(
      f"| **total** | {kept:,}/{total:,} | {sparsity(kept, total)} | "
      f"{dense_total} | {sparse_total} |"
  )
  return "\n".join(lines)


__all__ = ["nonzero_params", "sparse_macs", "table"]
