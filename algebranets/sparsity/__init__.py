"""Algebra-element sparsity: schedules, masks and an optax pruning wrapper.

See masks.py for the mask convention (params-shaped bool arrays, True =
kept, None for leaves that are not pruned) and paper.md section 9.
"""

from algebranets.sparsity import masks, pruner, schedules
from algebranets.sparsity.masks import (
    compute_masks,
    expand_mask,
    mask_from_scores,
    scores,
    select,
)
from algebranets.sparsity.pruner import (
    SparsityState,
    apply_masks,
    sparsity_report,
    wrap,
)
from algebranets.sparsity.schedules import (
    is_pruning_step,
    layer_sparsities,
    one_shot_sparsity,
    polynomial_sparsity,
)

__all__ = [
    "SparsityState",
    "apply_masks",
    "compute_masks",
    "expand_mask",
    "is_pruning_step",
    "layer_sparsities",
    "mask_from_scores",
    "masks",
    "one_shot_sparsity",
    "polynomial_sparsity",
    "pruner",
    "schedules",
    "scores",
    "select",
    "sparsity_report",
    "wrap",
]
