"""Algebra-valued ResNets (He et al. 2016), the paper's vision backbone.

Shape glossary: B = batch, H/W = spatial, c = real image channels, C =
algebra channels, d = algebra dimension, K = number of classes, n/e = matrix
size/base dimension of M_n(base). Activations are [B, H, W, C, d]
(standard) or [n, B, H, W, C, n*e] (folded, M_n(base) with layout 'auto' or
'folded'; the whole network then runs folded, see `algebranets.layout`).

    images [B, H, W, c]
      -> 'stem': ImageLift, 7x7/2 conv ('imagenet') or 3x3/1 ('cifar')
         to C_stem channels          -> [B, H/s, W/s, C_stem, d]
      -> initial_norm -> activation
      -> 3x3/2 max pool ('imagenet' only; component-wise)
      -> stage_0 .. stage_{S-1}, blocks_per_stage[i] residual blocks each;
         stage i > 0 halves H and W in its first block
      -> global average pool         -> [B, C_out, d]
      -> 'head': ClassifierHead      -> logits float32 [B, K]

    basic block (depth 18/34), inner width w, output width w:
      x -> conv_0 3x3/s -> norm -> act -> conv_1 3x3 -> norm -> (+) -> act
      x -------------- [shortcut_conv 1x1/s -> shortcut_norm] ---^
    bottleneck block (depth 50/101), inner width w, output width 4w:
      x -> conv_0 1x1 -> norm -> act -> conv_1 3x3/s -> norm -> act
        -> conv_2 1x1 -> norm -> (+) -> act            (version 'v1.5')
      x -------------- [shortcut_conv 1x1/s -> shortcut_norm] ---^
      version 'v1' puts the stride s on conv_0 instead of conv_1.

The shortcut is a projection (1x1 conv with stride s, then a norm) when the
block changes the shape (stride 2 or a different channel count), the
identity otherwise: exactly hk.nets.ResNet's v1 blocks. Every algebra conv
has no bias (a norm follows) and 'SAME' padding. With algebra 'R' and the
defaults the model equals hk.nets.ResNet50 (25,557,032 parameters,
4,089,184,256 MACs at 224x224); the tests check this with Haiku's own
network given the same weights.

Widths are REAL widths of the reference network: a layer of real width r
has `vision_common.algebra_channels(r, width_multiplier, algebra)` =
max(1, round(r * width_multiplier / d)) algebra channels. At
width_multiplier 1 an algebra net keeps (about) the reference's real
activation widths, and each conv weight holds C_in * C_out * d ~ r_in * r_out
/ d reals: d times fewer parameters (the paper digest, shared/paper.md
section 8, matches parameters instead with width_multiplier = sqrt(d)).

Parameters (canonical shapes, the same in both layouts), under 'resnet/':
  stem/real_stem/conv    w [kh, kw, c, d*C_stem] (lift 'real_stem'), or
  stem/conv              w [kh, kw, c, C_stem, d] (lifts 'pad'/'tile');
  initial_norm, stage_{i}/block_{j}/norm_{k}, .../shortcut_norm
                         scale, offset [C, d] (whiten: scale [C, d, d]);
  stage_{i}/block_{j}/conv_{k}, .../shortcut_conv
                         w [kh, kw, C_in, C_out, d] (no bias);
  head/flatten_real/linear  w [C_out*d, K], b [K] (head 'flatten_real'), or
  head/linear            w [C_out, K, d], b [K, d] ('first_component'/'norm');
  .../activation_*       bias [C] (activation 'modrelu' only).
State: every norm's running mean [C, d] and var [C, d] / [C] / cov
[C, d, d] (norm_mode component / element / whiten).
"""

from __future__ import annotations

from collections.abc import Sequence

import haiku as hk
import jax
import jax.numpy as jnp

from algebranets import algebras, config_access, layers
from algebranets.layers import initializers
from algebranets.models import vision_common

NAME = "resnet"

# Reference networks by depth: blocks per stage and block type (torchvision
# and hk.nets.ResNet agree on these).
CONFIGS = {
    18: {"blocks_per_stage": (2, 2, 2, 2), "block": "basic"},
    34: {"blocks_per_stage": (3, 4, 6, 3), "block": "basic"},
    50: {"blocks_per_stage": (3, 4, 6, 3), "block": "bottleneck"},
    101: {"blocks_per_stage": (3, 4, 23, 3), "block": "bottleneck"},
}
DEPTHS = tuple(CONFIGS)
BLOCKS = ("basic", "bottleneck")
STEMS = ("imagenet", "cifar")
VERSIONS = ("v1.5", "v1")
# Output width of a block relative to its inner width.
EXPANSION = {"basic": 1, "bottleneck": 4}


class _Block(hk.Module):
  """One residual block (basic or bottleneck) on algebra activations."""

  def __init__(
      self,
      *,
      block: str,
      inner_channels: int,
      out_channels: int,
      stride: int,
      version: str,
      algebra: algebras.Algebra,
      layout: str,
      norm: str,
      norm_mode: str,
      bn_decay: float,
      bn_eps: float,
      activation: str,
      kernel_path: str,
      zero_init_last_norm: bool,
      name: str,
  ):
    super().__init__(name=name)
    self.block = block
    self.inner_channels = inner_channels
    self.out_channels = out_channels
    self.stride = stride
    self.version = version
    self.algebra = algebra
    self.layout = layout
    self.norm = norm
    self.norm_mode = norm_mode
    self.bn_decay = bn_decay
    self.bn_eps = bn_eps
    self.activation = activation
    self.kernel_path = kernel_path
    self.zero_init_last_norm = zero_init_last_norm

  @hk.transparent
  def _conv(self, channels: int, kernel: int, stride: int, gain: float, name):
    return layers.Conv2D(
        channels,
        kernel,
        self.algebra,
        stride=stride,
        padding="SAME",
        with_bias=False,
        gain=gain,
        layout=self.layout,
        path=self.kernel_path,
        name=name,
    )

  @hk.transparent
  def _norm(self, name: str, zero_scale: bool = False):
    kw = {"scale_init": jnp.zeros} if zero_scale else {}
    return layers.get_norm(
        self.norm,
        self.algebra,
        mode=self.norm_mode,
        layout=self.layout,
        decay_rate=self.bn_decay,
        eps=self.bn_eps,
        name=name,
        **kw,
    )

  @hk.transparent
  def _act(self, name: str):
    return layers.get_activation(
        self.activation, self.algebra, layout=self.layout, name=name
    )

  def __call__(self, x: jax.Array, is_training: bool) -> jax.Array:
    c_in = x.shape[-2]
    s, inner = self.stride, self.inner_channels
    # Convs that feed an activation get its init gain (He init for ReLU);
    # the last conv of the branch and the projection feed the sum.
    gain = initializers.gain_for(self.activation)
    if self.block == "basic":
      specs = [(inner, 3, s), (self.out_channels, 3, 1)]
    else:
      s0, s1 = (s, 1) if self.version == "v1" else (1, s)
      specs = [(inner, 1, s0), (inner, 3, s1), (self.out_channels, 1, 1)]

    shortcut = x
    if s != 1 or c_in != self.out_channels:
      shortcut = self._conv(self.out_channels, 1, s, 1.0, "shortcut_conv")(x)
      shortcut = self._norm("shortcut_norm")(shortcut, is_training)

    y = x
    last = len(specs) - 1
    for i, (channels, kernel, stride) in enumerate(specs):
      y = self._conv(
          channels, kernel, stride, 1.0 if i == last else gain, f"conv_{i}"
      )(y)
      zero = self.zero_init_last_norm and i == last
      y = self._norm(f"norm_{i}", zero_scale=zero)(y, is_training)
      if i < last:
        y = self._act(f"activation_{i}")(y)
    return self._act("activation_out")(y + shortcut)


class _Stage(hk.Module):
  """`num_blocks` blocks; the first has the stage's stride."""

  def __init__(self, num_blocks: int, *, stride: int, name: str, **block_kw):
    super().__init__(name=name)
    self.num_blocks = num_blocks
    self.stride = stride
    self.block_kw = block_kw

  def __call__(self, x: jax.Array, is_training: bool) -> jax.Array:
    for j in range(self.num_blocks):
      x = _Block(
          stride=self.stride if j == 0 else 1,
          name=f"block_{j}",
          **self.block_kw,
      )(x, is_training)
    return x


class ResNet(hk.Module):
  """Algebra ResNet; see the module docstring for the architecture.

  Called inside `hk.transform_with_state` (BatchNorm running statistics are
  Haiku state) as model(images [B, H, W, c], is_training) -> logits float32
  [B, K].
  """

  def __init__(
      self,
      num_classes: int | None = None,
      *,
      algebra="R",
      width_multiplier: float = 1.0,
      lift: str = "real_stem",
      head: str = "flatten_real",
      norm: str = "batch",
      norm_mode: str = "component",
      bn_decay: float = 0.9,
      bn_eps: float = 1e-5,
      activation: str = "split",
      layout: str = "auto",
      kernel_path: str = "auto",
      depth: int = 50,
      blocks_per_stage: Sequence[int] = (),
      block: str = "",
      stage_widths: Sequence[int] = (64, 128, 256, 512),
      stem: str = "imagenet",
      stem_width: int = 64,
      version: str = "v1.5",
      zero_init_last_norm: bool = False,
      name: str | None = None,
  ):
    """Constructs the model (static hyperparameters only).

    The keyword arguments are the `model` section of a config (defaults:
    ResNet-50 v1.5 in algebra R, i.e. hk.nets.ResNet50); build it from one
    with `algebranets.models.build(config.model, num_classes=K)`.

    Args:
      num_classes: K (from the task). None only while a config is checked
        before the data is loaded (`models.check`).
      algebra, width_multiplier, lift, head, norm, norm_mode, bn_decay,
        bn_eps, activation, layout, kernel_path: the shared vision keys
        (`vision_common`); width_multiplier multiplies every real width
        (stem and stages).
      depth: 18, 34, 50 or 101: the reference network whose
        blocks_per_stage and block are used where those are empty.
      blocks_per_stage: residual blocks per stage (any number of stages);
        () = depth's.
      block: 'basic' or 'bottleneck'; '' = depth's.
      stage_widths: REAL inner width of each stage's blocks (bottleneck
        output = 4x); one per stage.
      stem: 'imagenet' (7x7 stride-2 conv + 3x3/2 max pool) or 'cifar' (3x3
        stride-1 conv, no pool).
      stem_width: REAL width of the stem conv.
      version: 'v1.5' (bottleneck stride on the 3x3 conv, as hk.nets.ResNet)
        or 'v1' (on the first 1x1). Basic blocks are the same in both.
      zero_init_last_norm: initialise the scale of each block's last norm at
        zero, so every block starts as its shortcut (Goyal et al. 2017).
      name: module name; default 'resnet'.

    Raises:
      ValueError: any invalid value; the message says which and how to fix
        it.
    """
    super().__init__(name=name or NAME)
    who = NAME
    self.algebra, self.layout = vision_common.check_common_keys(
        who,
        algebra=algebra,
        width_multiplier=width_multiplier,
        lift=lift,
        head=head,
        norm=norm,
        norm_mode=norm_mode,
        bn_decay=bn_decay,
        bn_eps=bn_eps,
        activation=activation,
        layout=layout,
        kernel_path=kernel_path,
    )
    self.blocks_per_stage, self.block = architecture(
        depth, blocks_per_stage, block
    )
    widths = config_access.check_int_tuple(
        stage_widths, "stage_widths", who, "(64, 128, 256, 512)"
    )
    if len(widths) != len(self.blocks_per_stage):
      raise ValueError(
          f"{who}: stage_widths {widths} has {len(widths)} entries but there "
          f"are {len(self.blocks_per_stage)} stages (blocks_per_stage "
          f"{self.blocks_per_stage}); give one real width per stage."
      )
    config_access.check_choice(stem, "stem", STEMS, who)
    if not config_access.is_int(stem_width) or stem_width < 1:
      raise ValueError(
          f"{who}: stem_width must be a positive int (real width of the stem "
          f"conv), got {stem_width!r}."
      )
    config_access.check_choice(version, "version", VERSIONS, who)
    zero_init_last_norm = config_access.check_bool(
        zero_init_last_norm, "zero_init_last_norm", who
    )
    if zero_init_last_norm and norm == "none":
      raise ValueError(
          f"{who}: zero_init_last_norm=True zeroes the scale of each block's "
          "last norm, but norm='none' has none. Use norm='batch' or "
          "zero_init_last_norm=False."
      )
    self.num_classes = vision_common.check_num_classes(num_classes, who)
    self.stem = stem
    self.version = version
    self.zero_init_last_norm = zero_init_last_norm
    self.lift = lift
    self.head = head
    self.norm = norm
    self.norm_mode = norm_mode
    self.bn_decay = float(bn_decay)
    self.bn_eps = float(bn_eps)
    self.activation = activation
    self.kernel_path = kernel_path

    def channels(real: int) -> int:
      return vision_common.algebra_channels(
          int(real), width_multiplier, self.algebra
      )

    self.stem_channels = channels(stem_width)
    self.inner_channels = tuple(channels(w) for w in widths)
    self.out_channels = tuple(
        channels(EXPANSION[self.block] * w) for w in widths
    )

  def __call__(self, images: jax.Array, is_training: bool) -> jax.Array:
    """Class logits.

    Args:
      images: float [B, H, W, c].
      is_training: use batch statistics in BatchNorm and update the running
        ones (Haiku state).

    Returns:
      logits float32 [B, K].

    Raises:
      ValueError: images not a float array of rank 4.
    """
    images = jnp.asarray(images)
    if images.ndim != 4 or not jnp.issubdtype(images.dtype, jnp.floating):
      raise ValueError(
          "ResNet: expected float images [B, H, W, c], got shape "
          f"{tuple(images.shape)} and dtype {images.dtype}. Cast with "
          "images.astype(jnp.float32); add a channel axis to grey images."
      )
    alg, lay = self.algebra, self.layout
    imagenet = self.stem == "imagenet"
    x = vision_common.ImageLift(
        self.lift,
        self.stem_channels,
        alg,
        kernel_shape=7 if imagenet else 3,
        stride=2 if imagenet else 1,
        layout=lay,
        path=self.kernel_path,
    )(images)
    x = layers.get_norm(
        self.norm,
        alg,
        mode=self.norm_mode,
        layout=lay,
        decay_rate=self.bn_decay,
        eps=self.bn_eps,
        name="initial_norm",
    )(x, is_training)
    x = layers.get_activation(
        self.activation, alg, layout=lay, name="initial_activation"
    )(x)
    if imagenet:
      x = vision_common.max_pool(x, 3, 2, lay)
    for i, num_blocks in enumerate(self.blocks_per_stage):
      x = _Stage(
          num_blocks,
          block=self.block,
          inner_channels=self.inner_channels[i],
          out_channels=self.out_channels[i],
          stride=2 if i > 0 else 1,
          version=self.version,
          algebra=alg,
          layout=lay,
          norm=self.norm,
          norm_mode=self.norm_mode,
          bn_decay=self.bn_decay,
          bn_eps=self.bn_eps,
          activation=self.activation,
          kernel_path=self.kernel_path,
          zero_init_last_norm=self.zero_init_last_norm,
          name=f"stage_{i}",
      )(x, is_training)
    x = vision_common.global_avg_pool(x, lay)
    return vision_common.ClassifierHead(
        self.head, self.num_classes, alg, layout=lay, path=self.kernel_path
    )(x)


def architecture(
    depth: int, blocks_per_stage: Sequence[int] = (), block: str = ""
) -> tuple[tuple[int, ...], str]:
  """(blocks_per_stage, block): depth's reference values where empty.

  Raises:
    ValueError: unknown depth (checked even when both are overridden, so a
      typo never passes silently), bad blocks_per_stage or block.
  """
  who = NAME
  blocks = config_access.check_int_tuple(
      blocks_per_stage, "blocks_per_stage", who, "(3, 4, 6, 3)"
  )
  if not config_access.is_int(depth) or depth not in CONFIGS:
    raise ValueError(
        f"{who}: unknown depth {depth!r}; valid depths: "
        f"{', '.join(map(str, DEPTHS))}. For other networks keep a valid "
        "depth and set blocks_per_stage (and block), e.g. "
        "blocks_per_stage=(1, 1, 1), block='basic'."
    )
  if block == "":
    block = CONFIGS[depth]["block"]
  config_access.check_choice(
      block, "block", BLOCKS, who, " Use '' to take it from depth."
  )
  return blocks or CONFIGS[depth]["blocks_per_stage"], block
