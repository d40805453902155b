"""Pure-function kernels for algebra-valued layers (no Haiku).

`dense`, `conv2d` and `depthwise_conv2d` pick the fastest exact path
automatically (`choose_dense_path`, `choose_conv_path`,
`choose_depthwise_path`); pass `path=` to force one. Log-space ConvAC
kernels (signed logs, product pooling): `product_pooling`. ZCA whitening
of algebra elements (covariances, inverse square roots): `whitening`.
"""

from algebranets.kernels import whitening
from algebranets.kernels.conv import PATHS as CONV_PATHS
from algebranets.kernels.conv import choose_path as choose_conv_path
from algebranets.kernels.conv import conv2d, conv2d_folded
from algebranets.kernels.dense import PATHS as DENSE_PATHS
from algebranets.kernels.dense import (
    PreparedDense,
    dense,
    dense_folded,
    dense_prepared,
    dense_prepared_folded,
)
from algebranets.kernels.dense import choose_path as choose_dense_path
from algebranets.kernels.dense import prepare as prepare_dense
from algebranets.kernels.depthwise import PATHS as DEPTHWISE_PATHS
from algebranets.kernels.depthwise import choose_path as choose_depthwise_path
from algebranets.kernels.depthwise import (
    depthwise_conv2d,
    depthwise_conv2d_folded,
)
from algebranets.kernels.product_pooling import (
    algebra_product_pool,
    from_log,
    log_conv2d,
    log_linear,
    log_mean_abs,
    log_product_pool,
    product_pool,
    to_log,
)
from algebranets.kernels.structure import expand_left, expand_right, fold_weight

__all__ = [
    "CONV_PATHS",
    "DENSE_PATHS",
    "DEPTHWISE_PATHS",
    "PreparedDense",
    "algebra_product_pool",
    "choose_conv_path",
    "choose_dense_path",
    "choose_depthwise_path",
    "conv2d",
    "conv2d_folded",
    "dense",
    "dense_folded",
    "dense_prepared",
    "dense_prepared_folded",
    "depthwise_conv2d",
    "depthwise_conv2d_folded",
    "expand_left",
    "expand_right",
    "fold_weight",
    "from_log",
    "log_conv2d",
    "log_linear",
    "log_mean_abs",
    "log_product_pool",
    "prepare_dense",
    "product_pool",
    "to_log",
    "whitening",
]
