"""Pure-function kernels for algebra-valued layers (no Haiku).

`dense` and `conv2d` pick the fastest exact path automatically
(`choose_dense_path`, `choose_conv_path`); pass `path=` to force one.
"""

from algebranets.kernels.conv import PATHS as CONV_PATHS
from algebranets.kernels.conv import choose_path as choose_conv_path
from algebranets.kernels.conv import conv2d, conv2d_folded
from algebranets.kernels.dense import PATHS as DENSE_PATHS
from algebranets.kernels.dense import (
    PreparedDense,
    dense,
    dense_folded,
    dense_prepared,
)
from algebranets.kernels.dense import choose_path as choose_dense_path
from algebranets.kernels.dense import prepare as prepare_dense
from algebranets.kernels.structure import expand_left, expand_right, fold_weight

__all__ = [
    "CONV_PATHS",
    "DENSE_PATHS",
    "PreparedDense",
    "choose_conv_path",
    "choose_dense_path",
    "conv2d",
    "conv2d_folded",
    "dense",
    "dense_folded",
    "dense_prepared",
    "expand_left",
    "expand_right",
    "fold_weight",
    "prepare_dense",
]
