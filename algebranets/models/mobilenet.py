"""Algebra-valued MobileNet v1 (Howard et al. 2017).

Shape glossary: B = batch, H/W = spatial, c = real image channels, C =
algebra channels, d = algebra dimension, K = number of classes, n/e = matrix
size/base dimension of M_n(base). Activations are [B, H, W, C, d]
(standard) or [n, B, H, W, C, n*e] (folded: M_n(base) with layout 'auto' or
'folded'; the whole network then runs folded, see `algebranets.layout`).

    images [B, H, W, c]
      -> 'stem': ImageLift, 3x3 conv with stride stem_stride to C(32)
      -> initial_norm -> initial_activation
      -> block_0 .. block_12, depthwise-separable:
           depthwise 3x3/s -> depthwise_norm -> depthwise_activation
           -> pointwise 1x1 -> pointwise_norm -> pointwise_activation
      -> global average pool             -> [B, C(1024), d]
      -> dropout (dropout_rate, training only)
      -> 'head': ClassifierHead          -> logits float32 [B, K]

    block  0    1    2    3    4    5    6-10      11    12
    width  64   128  128  256  256  512  512 x5    1024  1024   (real)
    stride 1    2    1    2    1    2    1         2     1      (depthwise)

C(r) = max(1, round(r * alpha * width_multiplier / d)): `alpha` is
MobileNet's own width multiplier on the reference REAL widths and
`width_multiplier` the shared vision key (algebra width matching) on top.
All convolutions have 'SAME' padding (for stride 2 and even sizes that is
Keras' ZeroPadding2D(((0, 1), (0, 1))) + 'valid') and no bias (a norm
follows); the flatten_real head has a bias. With algebra 'R', alpha 1.0 and
1000 classes the model has Keras MobileNet's 4,231,976 trainable parameters
and 568,740,352 MACs at 224x224 (tests). Differences from Keras' MobileNet:
the activation is the shared `activation` key ('split' = ReLU, not ReLU6)
and the widths round instead of truncating (equal at alpha 1.0).

Depthwise convolutions (`depthwise`):
  'algebra'    each algebra channel has its own algebra-valued 3x3 kernel
               (`layers.DepthwiseConv2D`, weight [3, 3, 1, C, d]); the output
               element is the algebra product sum_taps w * x.
  'component'  a REAL depthwise convolution over all d*C real components
               (weight [3, 3, 1, C*d], real channels in the standard order
               (channel, component)): the components do not mix. The same
               number of parameters as 'algebra', d times fewer MACs for
               algebras with macs_per_product = d^2.
Both run on `kernels.depthwise_conv2d`, whose automatic path avoids XLA:CPU's
slow grouped-convolution backward pass.

Parameters (canonical shapes, the same in both layouts), under 'mobilenet/':
  stem/real_stem/conv         w [3, 3, c, d*C(32)] (lift 'real_stem'), or
  stem/conv                   w [3, 3, c, C(32), d] (lifts 'pad'/'tile');
  initial_norm, block_{i}/depthwise_norm, block_{i}/pointwise_norm
                              scale, offset [C, d] (whiten: scale [C, d, d]);
  block_{i}/depthwise         w [3, 3, 1, C, d] ('algebra') or
                              w [3, 3, 1, C*d] ('component');
  block_{i}/pointwise         w [1, 1, C_in, C_out, d];
  head/flatten_real/linear    w [C(1024)*d, K], b [K] (head 'flatten_real'),
  or head/linear              w [C(1024), K, d], b [K, d] (other heads);
  .../*activation             bias [C] (activation 'modrelu' only).
State: every norm's running statistics.
"""

from __future__ import annotations

import math

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras, config_access, kernels, layers
from algebranets import layout as layout_lib
from algebranets.layers import initializers
from algebranets.models import vision_common

NAME = "mobilenet"
STEM_WIDTH = 32
# (real pointwise output width, depthwise stride) of the 13 blocks.
BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    *((512, 1),) * 5,
    (1024, 2),
    (1024, 1),
)
DEPTHWISE = ("algebra", "component")


def algebra_channels(
    real: int, alpha: float, width_multiplier: float, algebra
) -> int:
  """Algebra channels of a layer of reference real width `real`:
  max(1, round(real * alpha * width_multiplier / d)) (Python's round).

  Raises:
    ValueError: unknown algebra.
  """
  d = algebras.get(algebra).dim
  return max(1, round(real * alpha * width_multiplier / d))


class ComponentDepthwiseConv2D(hk.Module):
  """Real depthwise convolution of every real component (no bias).

  x [B, H, W, C, d] is convolved as the real array [B, H, W, C*d] (channel
  c, component k is real channel c*d + k) with one real kh x kw kernel per
  real channel: weight 'w' [kh, kw, 1, C*d], hk.DepthwiseConv2D's shape.

  Folded layout (exact, no transposes): real channel (c, row a, column b,
  base component k) sits in x_f[b, ..., c, (a, k)]. Column b of the folded
  activation is therefore an ordinary standard array [B, H, W, C * n*e]
  whose real channels are exactly the components (c, a, b, k), so it is
  convolved with those components' kernels, w viewed as [kh, kw, 1, C, n(a),
  n(b), e] and sliced at b; the n column results are stacked back along the
  leading axis. Every real component keeps its own kernel, as in the
  standard layout, so both layouts compute the same function from the same
  stored weight.
  """

  def __init__(
      self,
      kernel_shape: int,
      algebra,
      *,
      stride: int = 1,
      gain: float = 1.0,
      layout: str = "standard",
      path: str = "auto",
      name: str | None = None,
  ):
    """Constructs the layer.

    Args:
      kernel_shape: kernel size k (k x k).
      algebra: registered name or `Algebra`.
      stride: spatial stride; padding is 'SAME'.
      gain: init gain; w is truncated normal with variance gain^2 / (k*k).
      layout: 'standard' or 'folded' (matrix algebras only).
      path: `kernels.depthwise_conv2d` path ('auto', 'grouped', 'taps').
      name: module name.

    Raises:
      ValueError: unknown algebra, layout or path; folded layout with a
        non-matrix algebra.
    """
    super().__init__(name=name)
    self.algebra = algebras.get(algebra)
    self.layout = layout_lib.check_layout(layout)
    if layout == layout_lib.FOLDED:
      layout_lib.matrix_shape(self.algebra)
    if path not in ("auto", *kernels.DEPTHWISE_PATHS):
      raise ValueError(
          f"ComponentDepthwiseConv2D: unknown path {path!r}; valid: auto, "
          f"{', '.join(kernels.DEPTHWISE_PATHS)}."
      )
    self.kernel_shape = kernel_shape
    self.stride = stride
    self.gain = gain
    self.path = path

  def _conv(self, x_real, w):
    """x_real [B, H, W, K], w [kh, kw, 1, K] -> [B, H', W', K]."""
    y = kernels.depthwise_conv2d(
        x_real[..., None],
        w[..., None],
        "R",
        stride=self.stride,
        padding="SAME",
        path=self.path,
    )
    return y[..., 0]

  def __call__(self, x: jax.Array) -> jax.Array:
    """Applies the convolution.

    Args:
      x: [B, H, W, C, d] (standard) or [n, B, H, W, C, n*e] (folded).

    Returns:
      [B, H', W', C, d] or [n, B, H', W', C, n*e], H' = ceil(H / stride).
    """
    alg, folded = self.algebra, self.layout == layout_lib.FOLDED
    if folded:
      n, e = layout_lib.matrix_shape(alg)
      ok = x.ndim == 6 and x.shape[0] == n and x.shape[-1] == n * e
      want = f"[{n}, B, H, W, C, {n * e}]"
    else:
      ok = x.ndim == 5 and x.shape[-1] == alg.dim
      want = f"[B, H, W, C, {alg.dim}]"
    if not ok:
      raise ValueError(
          f"ComponentDepthwiseConv2D: expected {self.layout} activations "
          f"{want} for algebra {alg.name!r}, got shape {tuple(x.shape)}."
      )
    k, d, c = self.kernel_shape, alg.dim, x.shape[-2]
    # fan_in = k * k (one input channel per kernel), as a real depthwise conv.
    w_init = hk.initializers.VarianceScaling(
        self.gain**2, "fan_in", "truncated_normal"
    )
    w = hk.get_parameter("w", (k, k, 1, c * d), x.dtype, init=w_init)
    if not folded:
      b, h, wd = x.shape[:3]
      y = self._conv(x.reshape(b, h, wd, c * d), w)
      return y.reshape(*y.shape[:3], c, d)
    w_cols = w.reshape(k, k, 1, c, n, n, e)  # (channel, row a, column b, k)
    cols = []
    for col in range(n):
      x_b = x[col]  # [B, H, W, C, n*e]: components (c, a, col, k)
      w_b = w_cols[:, :, :, :, :, col, :].reshape(k, k, 1, c * n * e)
      y_b = self._conv(x_b.reshape(*x_b.shape[:3], c * n * e), w_b)
      cols.append(y_b.reshape(*y_b.shape[:3], c, n * e))
    return jnp.stack(cols)

  @hk.transparent
  def mac_count(self, x, y) -> int:
    """One real multiply-add per real component, tap and output position."""
    lead = slice(1, -2) if self.layout == layout_lib.FOLDED else slice(0, -2)
    positions = math.prod(y.shape[lead])
    return int(
        positions * self.kernel_shape**2 * y.shape[-2] * self.algebra.dim
    )


class MobileNet(hk.Module):
  """Algebra MobileNet v1; see the module docstring for the architecture.

  Called inside `hk.transform_with_state` (BatchNorm running statistics are
  Haiku state) as model(images [B, H, W, c], is_training) -> logits float32
  [B, K]. Training with dropout_rate > 0 needs an rng in `apply`.
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
      alpha: float = 1.0,
      depthwise: str = "algebra",
      dropout_rate: float = 0.001,
      stem_stride: int = 2,
      name: str | None = None,
  ):
    """Constructs the model (static hyperparameters only).

    The keyword arguments are the `model` section of a config (defaults:
    MobileNet v1 1.0 for 224x224 ImageNet in algebra R, Keras' MobileNet up
    to ReLU for ReLU6); build it from one with
    `algebranets.models.build(config.model, num_classes=K)`.

    Args:
      num_classes: K (from the task). None only while a config is checked
        before the data is loaded (`models.check`).
      algebra, width_multiplier, lift, head, norm, norm_mode, bn_decay,
        bn_eps, activation, layout, kernel_path: the shared vision keys
        (`vision_common`); width_multiplier multiplies on top of alpha;
        kernel_path also goes to the depthwise convolutions ('auto' lets
        `kernels.choose_depthwise_path` pick, a conv path forces a grouped
        convolution on that path).
      alpha: MobileNet's width multiplier on the reference real widths.
      depthwise: 'algebra' or 'component' (module docstring).
      dropout_rate: dropout on the pooled features during training.
      stem_stride: stride of the stem conv (2 for ImageNet, 1 for small
        images).
      name: module name; default 'mobilenet'.

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
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float, np.integer, np.floating))
        or not math.isfinite(alpha)
        or not alpha > 0
    ):
      raise ValueError(
          f"{who}: alpha must be a positive finite number (MobileNet's width "
          f"multiplier, e.g. 1.0, 0.75, 0.5, 0.25), got {alpha!r}."
      )
    config_access.check_choice(
        depthwise,
        "depthwise",
        DEPTHWISE,
        who,
        " 'algebra': algebra-valued kernels per algebra channel; 'component': "
        "a real kernel per real component.",
    )
    if (
        isinstance(dropout_rate, bool)
        or not isinstance(dropout_rate, (int, float, np.integer, np.floating))
        or not 0.0 <= dropout_rate < 1.0
    ):
      raise ValueError(
          f"{who}: dropout_rate must be a number in [0, 1) (0 turns dropout "
          f"off; Keras' MobileNet uses 0.001), got {dropout_rate!r}."
      )
    if not config_access.is_int(stem_stride) or stem_stride < 1:
      raise ValueError(
          f"{who}: stem_stride must be a positive int (2 for 224x224 "
          f"ImageNet, 1 for small images such as 32x32), got {stem_stride!r}."
      )
    self.num_classes = vision_common.check_num_classes(num_classes, who)
    self.depthwise = depthwise
    self.dropout_rate = float(dropout_rate)
    self.stem_stride = int(stem_stride)
    self.lift = lift
    self.head = head
    self.norm = norm
    self.norm_mode = norm_mode
    self.bn_decay = float(bn_decay)
    self.bn_eps = float(bn_eps)
    self.activation = activation
    self.kernel_path = kernel_path
    self.stem_channels = algebra_channels(
        STEM_WIDTH, alpha, width_multiplier, self.algebra
    )
    self.block_channels = tuple(
        algebra_channels(real, alpha, width_multiplier, self.algebra)
        for real, _ in BLOCKS
    )

  @hk.transparent
  def _norm(self, name: str):
    return layers.get_norm(
        self.norm,
        self.algebra,
        mode=self.norm_mode,
        layout=self.layout,
        decay_rate=self.bn_decay,
        eps=self.bn_eps,
        name=name,
    )

  @hk.transparent
  def _act(self, name: str):
    return layers.get_activation(
        self.activation, self.algebra, layout=self.layout, name=name
    )

  @hk.transparent
  def _depthwise(self, stride: int, gain: float, name: str):
    if self.depthwise == "component":
      # 'auto' lets the kernel choose; a forced conv path means "grouped".
      path = "auto" if self.kernel_path == "auto" else "grouped"
      return ComponentDepthwiseConv2D(
          3,
          self.algebra,
          stride=stride,
          gain=gain,
          layout=self.layout,
          path=path,
          name=name,
      )
    return layers.DepthwiseConv2D(
        3,
        self.algebra,
        stride=stride,
        padding="SAME",
        with_bias=False,
        gain=gain,
        layout=self.layout,
        path=self.kernel_path,
        name=name,
    )

  def __call__(self, images: jax.Array, is_training: bool) -> jax.Array:
    """Class logits.

    Args:
      images: float [B, H, W, c].
      is_training: use batch statistics in BatchNorm (and update the running
        ones) and apply dropout.

    Returns:
      logits float32 [B, K].

    Raises:
      ValueError: images not a float array of rank 4.
    """
    images = jnp.asarray(images)
    if images.ndim != 4 or not jnp.issubdtype(images.dtype, jnp.floating):
      raise ValueError(
          "MobileNet: expected float images [B, H, W, c], got shape "
          f"{tuple(images.shape)} and dtype {images.dtype}. Cast with "
          "images.astype(jnp.float32); add a channel axis to grey images."
      )
    alg, lay = self.algebra, self.layout
    # Every conv feeds a norm and then the activation: He-style gain.
    gain = initializers.gain_for(self.activation)
    x = vision_common.ImageLift(
        self.lift,
        self.stem_channels,
        alg,
        kernel_shape=3,
        stride=self.stem_stride,
        layout=lay,
        path=self.kernel_path,
    )(images)
    x = self._norm("initial_norm")(x, is_training)
    x = self._act("initial_activation")(x)
    for i, ((_, stride), channels) in enumerate(
        zip(BLOCKS, self.block_channels, strict=True)
    ):
      with hk.experimental.name_scope(f"block_{i}"):
        x = self._depthwise(stride, gain, "depthwise")(x)
        x = self._norm("depthwise_norm")(x, is_training)
        x = self._act("depthwise_activation")(x)
        x = layers.Conv2D(
            channels,
            1,
            alg,
            with_bias=False,
            gain=gain,
            layout=lay,
            path=self.kernel_path,
            name="pointwise",
        )(x)
        x = self._norm("pointwise_norm")(x, is_training)
        x = self._act("pointwise_activation")(x)
    x = vision_common.global_avg_pool(x, lay)
    if is_training and self.dropout_rate > 0:
      x = hk.dropout(hk.next_rng_key(), self.dropout_rate, x)
    return vision_common.ClassifierHead(
        self.head, self.num_classes, alg, layout=lay, path=self.kernel_path
    )(x)
