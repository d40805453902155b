"""Haiku modules for algebra-valued networks (thin wrappers over kernels).

Every module takes `algebra` (a registered name or an `Algebra`) and, where it
touches activations, `layout` ('standard' [..., C, d] or 'folded'
[n, ..., C, n*e] for matrix algebras; see `algebranets.layout`).
"""

from algebranets.layers import adaptive, attention, relative_attention
from algebranets.layers.activations import (
    ACTIVATIONS,
    SPLIT_FUNCTIONS,
    Activation,
    first_component_gate,
    get_activation,
    modrelu,
    split,
)
from algebranets.layers.adaptive import (
    AdaptiveEmbedding,
    ProjectedAdaptiveLogSoftmax,
    check_cutoffs,
)
from algebranets.layers.attention import MultiHeadAttention
from algebranets.layers.conv import Conv2D, DepthwiseConv2D
from algebranets.layers.embed import Embed
from algebranets.layers.initializers import (
    AlgebraVarianceScaling,
    component_scales,
    fan_in,
    gain_for,
)
from algebranets.layers.io import (
    HEADS,
    LIFTS,
    FirstComponent,
    FlattenReal,
    Norm,
    Pad,
    RealStem,
    Tile,
    get_head,
    get_lift,
)
from algebranets.layers.linear import Linear
from algebranets.layers.normalization import (
    MODES as NORM_MODES,
)
from algebranets.layers.normalization import (
    BatchNorm,
    LayerNorm,
    get_norm,
)
from algebranets.layers.relative_attention import RelativeMultiHeadAttention

__all__ = [
    "ACTIVATIONS",
    "HEADS",
    "LIFTS",
    "NORM_MODES",
    "SPLIT_FUNCTIONS",
    "Activation",
    "AdaptiveEmbedding",
    "AlgebraVarianceScaling",
    "BatchNorm",
    "Conv2D",
    "DepthwiseConv2D",
    "Embed",
    "FirstComponent",
    "FlattenReal",
    "LayerNorm",
    "Linear",
    "MultiHeadAttention",
    "Norm",
    "Pad",
    "ProjectedAdaptiveLogSoftmax",
    "RealStem",
    "RelativeMultiHeadAttention",
    "Tile",
    "adaptive",
    "attention",
    "check_cutoffs",
    "component_scales",
    "fan_in",
    "first_component_gate",
    "gain_for",
    "get_activation",
    "get_head",
    "get_lift",
    "get_norm",
    "modrelu",
    "relative_attention",
    "split",
]
