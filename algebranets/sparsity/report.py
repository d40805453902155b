"""What a pruned run reports: the summary, `sparsity.txt` and one line.

The trainer and `experiments.eval` call these with host copies of the
parameters and the masks (the `masks` of the pruning optimizer's state);
the counting itself is `sparsity.accounting`'s.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

from algebranets.metrics import accounting as metrics_accounting
from algebranets.sparsity import accounting, pruner

TABLE_FILE = "sparsity.txt"


def summary(
    params: Mapping,
    masks: Mapping,
    mac_report: metrics_accounting.MacReport,
    algebra: str | None,
) -> dict[str, Any]:
  """Non-zero parameters and intrinsic MACs of a pruned model.

  Args:
    params: host Haiku params.
    masks: the masks tree (`sparsity.masks`' convention).
    mac_report: `metrics.count_macs` report of the dense model.
    algebra: the model's algebra name (every layer's), None for real.

  Returns:
    {'nonzero_params': int, 'sparse_macs_per_example': int,
     'sparsity': float (pruned share of the prunable weights)}.
  """
  counts = accounting.nonzero_params(params, masks)
  macs = accounting.sparse_macs(mac_report, params, masks, lambda _: algebra)
  return {
      "nonzero_params": int(counts["total"]),
      "sparse_macs_per_example": int(macs["total"]),
      "sparsity": float(pruner.sparsity_report(masks)["total"]),
  }


def write_table(
    directory: pathlib.Path,
    params: Mapping,
    masks: Mapping,
    mac_report: metrics_accounting.MacReport,
    algebra: str | None,
) -> pathlib.Path:
  """Writes the per-layer table (`accounting.table`) to
  `directory/sparsity.txt` and returns its path."""
  path = pathlib.Path(directory) / TABLE_FILE
  text = accounting.table(params, masks, mac_report, lambda _: algebra)
  path.write_text(text + "\n")
  return path


def headline(sparse: Mapping[str, Any], dense: Mapping[str, Any]) -> str:
  """One line: the pruned model's counts against the dense ones.

  Args:
    sparse: `summary`'s dict.
    dense: 'params_total' and 'macs_per_example' of the dense model (the
      trainer's accounting.json).
  """
  return (
      f"pruned model: {sparse['nonzero_params']:,} of "
      f"{dense['params_total']:,} parameters non-zero, "
      f"{sparse['sparse_macs_per_example']:,} of "
      f"{dense['macs_per_example']:,} intrinsic MACs/example "
      f"(sparsity {sparse['sparsity']:.3f}; per layer: {TABLE_FILE})"
  )
