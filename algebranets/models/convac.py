"""Convolutional arithmetic circuits (ConvACs) and their matching ConvNets.

A ConvAC (Cohen, Sharir & Shashua 2016; Sharir & Shashua 2017 for
overlapping receptive fields) is a ConvNet whose only nonlinearity is a
product: a representation layer, then blocks of a linear convolution
followed by product pooling, then a linear class layer. Its class scores
are polynomials of the representation features whose coefficient tensors
have a hierarchical low-rank structure; overlap (conv stride < kernel size)
is what the overlapping-ConvAC paper proves raises their rank exponentially.
kind='convnet' is the same skeleton with ReLU after each convolution and
max or average pooling, the standard ConvNet it is compared with.

Shape glossary: B = batch, H/W = spatial, c = image channels, P = patch
size, C_i = algebra channels of block i (real width / d), d = algebra
dimension, K = classes.

    images [B, H, W, c]
      -> 'stem': representation f_theta on non-overlapping P x P patches
         ('VALID'), C_0 algebra channels         -> [B, H/P, W/P, C_0, d]
      -> block_i, i = 0..L-1 (L = len(channels)):
           'conv_i': convolution, kernel k, stride s, no bias (convac) / with
                   bias then component-wise ReLU (convnet), C_{i+1} channels
           pooling window p, stride q ('VALID'):
             convac:  product (component-wise or algebra product)
             convnet: max or average (component-wise)
      -> head 'flatten' (all remaining positions) or 'global' (global
         product / max / average pooling over the positions)
      -> 'head': real linear layer on the flattened reals -> logits [B, K]

Representations (`representation`):
  linear_relu  a real P x P stride-P conv with bias, then ReLU
               (stem/conv w [P, P, c, C_0 d], b [C_0 d]).
  rbf          Gaussian features exp(-sum_f ((x_f - mu_fj) / sigma_fj)^2 / 2)
               over the F = P*P*c patch values, with learned centres
               stem/centers [F, C_0 d] (init N(0, 1), inputs are
               standardised) and log-widths stem/log_scale [F, C_0 d]
               (init 0). In log space its log is computed directly.
  identity     the raw patch values as features (no parameters; C_0 d =
               P*P*c): the grid-tensor probe uses it, so templates are
               representation values directly.

Log space (kind='convac'). Every activation is a signed logarithm (la, s)
(`algebranets.kernels.product_pooling`): the convolution multiplies inputs
scaled by their position's largest magnitude and rescales every tap to the
largest magnitude of the output's receptive field, and product pooling adds
logs, so no product over any depth or window overflows or underflows (a
convolution output that cancels below float epsilon of its inputs is
rounded to that magnitude, see the kernels). Component-wise pooling multiplies each real component over the
window; pooling='algebra' takes the ordered algebra product of the window's
elements (raster order; non-commutative for H and M_n, left-bracketed for
the non-associative cross product), rescaled as described in
`kernels.algebra_product_pool`.

Logits (kind='convac'). The raw class scores are homogeneous polynomials
whose magnitudes can be exp(+-1000), useless for a softmax. After the
representation, every operation is positively homogeneous (convolutions
without bias are linear, a product over n window elements is n-homogeneous,
'VALID' windows all have the same size), so multiplying a whole activation
map by a positive per-example constant multiplies every class score of
that example by one positive constant. The model therefore divides each
block's output by its mean |x| over positions, channels and components
(a per-example constant, `kernels.log_mean_abs`) and takes the head's
linear scores on the normalised map as logits: the same scores up to a
positive per-example factor, hence the same class decision and signs as
the raw ConvAC, with |features| of mean 1 so the logits are O(1). The
head has no bias (a bias would break this equivalence); the ConvNet's
head has one. Pooling is 'VALID' only for the same reason (a padded
product window would have fewer factors). The raw scores, without any
normalisation, are what `__call__(..., log_scores=True)` returns.

Parameters (under 'convac/'):
  stem/conv w, b (linear_relu) or stem/centers, stem/log_scale (rbf);
  conv_{i} w [k_h, k_w, C_i, C_{i+1}, d] (+ b [C_{i+1}, d] convnet);
  head w [F, K] (+ b [K] convnet), F = remaining positions (1 for 'global')
  * C_L * d.
MACs (`metrics.count_macs`): stem P*P*c*C_0*d per position (rbf: twice
that, two matmuls), conv k_h*k_w*C_i*C_{i+1}*macs_per_product per output
position, head F*K; pooling (products included) is not counted, as for
every other model.

API for the grid-tensor rank probe (`algebranets.studies.grid_tensor`):

    cfg = {**models.defaults('convac'), 'representation': 'identity',
           'patch_size': 1, 'channels': (4,), 'kernel_size': (1, 3),
           'stride': (1, 1), 'pool_size': (1, 4), 'head': 'global'}
    fn = convac.log_scores_fn(cfg, num_classes=1)     # untransformed
    model = hk.without_apply_rng(hk.transform(fn))
    params = model.init(jax.random.key(0), images)    # images [B, 1, N, c]
    la, s = model.apply(params, images)                # [B, 1] each
    scores = convac.raw_scores(cfg, params, images)   # float64 [B, K]

1-D inputs are images of height 1 with (1, k) kernels and (1, p) windows;
kernel_size, stride, patch_size and pool_size take an int or a pair.
Everything is dtype-generic (float64 inputs with jax_enable_x64 on give
float64 scores).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras, config_access, layers
from algebranets.kernels import product_pooling as pp
from algebranets.layers import initializers
from algebranets.models import registry, vision_common

NAME = "convac"
KINDS = ("convac", "convnet")
REPRESENTATIONS = ("linear_relu", "rbf", "identity")
POOLINGS = ("component", "algebra")
CONVNET_POOLS = ("max", "average")
HEADS = ("flatten", "global")
PADDINGS = ("SAME", "VALID")


def _pair(v, key: str, who: str) -> tuple[int, int]:
  if config_access.is_int(v):
    v = (v, v)
  if (
      isinstance(v, (str, bytes))
      or not isinstance(v, (Sequence, np.ndarray))
      or len(v) != 2
      or not all(config_access.is_int(i) and i >= 1 for i in v)
  ):
    raise ValueError(
        f"{who}: {key} must be a positive int or a pair (h, w) of them, e.g. "
        f"3 or (1, 3); got {v!r}."
    )
  return int(v[0]), int(v[1])


def _positions(shape) -> int:
  return math.prod(shape[:3])


class Representation(hk.Module):
  """f_theta on non-overlapping P x P patches ('stem'); see the module
  docstring for the kinds. Called as (images [B, H, W, c]) -> (la, s) (log
  space) or x, each [B, H/P, W/P, C_0, d]."""

  def __init__(
      self,
      kind: str,
      channels: int,
      algebra,
      *,
      patch_size: int | Sequence[int],
      log_space: bool,
      name: str = vision_common.STEM_NAME,
  ):
    """Constructs the layer.

    Args:
      kind: one of REPRESENTATIONS.
      channels: C_0 algebra channels (0 = identity's P*P*c / d).
      algebra: registered name or `Algebra`.
      patch_size: P, int or (P_h, P_w).
      log_space: return (la, s) instead of values.
      name: keep 'stem' (accounting counts it as real input layer).
    """
    super().__init__(name=name)
    config_access.check_choice(
        kind, "representation", REPRESENTATIONS, "Representation"
    )
    self.kind = kind
    self.algebra = algebras.get(algebra)
    self.channels = channels
    self.patch = _pair(patch_size, "patch_size", "Representation")
    self.log_space = log_space

  def _patches(self, images):
    """[B, H, W, c] -> [B, H/P, W/P, P_h*P_w*c] (crop to a multiple of P;
    features ordered (row, column, channel) like a conv's HWIO weight)."""
    (ph, pw), (b, h, w, c) = self.patch, images.shape
    oh, ow = h // ph, w // pw
    x = images[:, : oh * ph, : ow * pw]
    x = x.reshape(b, oh, ph, ow, pw, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, oh, ow, ph * pw * c)

  def _features(self, images) -> int:
    return self.patch[0] * self.patch[1] * images.shape[-1]

  def __call__(self, images: jax.Array):
    (ph, pw), d = self.patch, self.algebra.dim
    if images.shape[1] < ph or images.shape[2] < pw:
      raise ValueError(
          f"Representation: images {tuple(images.shape)} are smaller than the "
          f"patch {self.patch}; lower patch_size."
      )
    f = self._features(images)
    if self.kind == "identity":
      if f % d:
        raise ValueError(
            f"Representation: 'identity' reads the {f} = P_h*P_w*c patch "
            f"values as algebra elements of dimension {d}, so {f} must be "
            f"divisible by {d}; change patch_size or the image channels."
        )
      if self.channels not in (0, f // d):
        raise ValueError(
            f"Representation: 'identity' has exactly P_h*P_w*c / d = {f // d} "
            f"algebra channels; got rep_channels={self.channels * d} reals. "
            "Set rep_channels=0."
        )
      x = self._patches(images)
      return self._out(*pp.to_log(x) if self.log_space else (x,))
    m = self.channels * d
    if self.kind == "linear_relu":
      y = hk.Conv2D(
          m,
          self.patch,
          stride=self.patch,
          padding="VALID",
          w_init=hk.initializers.VarianceScaling(2.0, "fan_in"),
          name="conv",
      )(images)
      x = jax.nn.relu(y)
      return self._out(*pp.to_log(x) if self.log_space else (x,))
    # rbf: -0.5 sum_f ((x_f - mu_fj) / sigma_fj)^2 as two matmuls.
    dtype = images.dtype
    mu = hk.get_parameter(
        "centers", (f, m), dtype, hk.initializers.RandomNormal(1.0)
    )
    log_scale = hk.get_parameter("log_scale", (f, m), dtype, jnp.zeros)
    a = jnp.exp(-2.0 * log_scale)  # 1 / sigma^2
    x = self._patches(images)
    q = (
        jnp.matmul(x * x, a)
        - 2.0 * jnp.matmul(x, mu * a)
        + jnp.sum(mu * mu * a, axis=0).reshape(1, 1, 1, m)
    )
    log_f = -0.5 * q
    if self.log_space:
      return self._out(log_f, jnp.ones_like(log_f))
    return self._out(jnp.exp(log_f))

  def _out(self, *arrays):
    d = self.algebra.dim
    out = tuple(a.reshape(*a.shape[:3], a.shape[3] // d, d) for a in arrays)
    return out if len(out) > 1 else out[0]

  @hk.transparent
  def mac_count(self, x, y) -> int:
    """positions * P_h*P_w*c * C_0*d (rbf: twice, two matmuls; identity 0)."""
    if self.kind == "identity":
      return 0
    y0 = y[0] if isinstance(y, tuple) else y
    f = self.patch[0] * self.patch[1] * x.shape[-1]
    per = 2 if self.kind == "rbf" else 1
    return int(per * _positions(y0.shape) * f * y0.shape[3] * y0.shape[4])


class LogConv2D(hk.Module):
  """Algebra (or real, d = 1) convolution without bias on log-space
  activations: (la, s) [B, H, W, C, d] -> (la, s) [B, H', W', M, d] with
  `kernels.log_conv2d`. Parameter 'w' [kh, kw, C, M, d], initialised like
  `layers.Conv2D` (`AlgebraVarianceScaling`, gain 1)."""

  def __init__(
      self,
      output_channels: int,
      kernel_shape: int | Sequence[int],
      algebra,
      *,
      stride: int | Sequence[int] = 1,
      padding: str = "SAME",
      name: str | None = None,
  ):
    super().__init__(name=name)
    self.output_channels = output_channels
    self.kernel_shape = _pair(kernel_shape, "kernel_shape", "LogConv2D")
    self.stride = _pair(stride, "stride", "LogConv2D")
    self.padding = padding
    self.algebra = algebras.get(algebra)

  def __call__(self, la: jax.Array, s: jax.Array):
    kh, kw = self.kernel_shape
    shape = (kh, kw, la.shape[3], self.output_channels, self.algebra.dim)
    w = hk.get_parameter(
        "w",
        shape,
        la.dtype,
        init=initializers.AlgebraVarianceScaling(self.algebra, 1.0),
    )
    return pp.log_conv2d(
        la, s, w, self.algebra, stride=self.stride, padding=self.padding
    )

  @hk.transparent
  def mac_count(self, x, y) -> int:
    """Output positions * kh*kw*C * M * macs_per_product (as Conv2D)."""
    y0 = y[0]
    kh, kw = self.kernel_shape
    return int(
        _positions(y0.shape)
        * kh
        * kw
        * x.shape[3]
        * y0.shape[3]
        * self.algebra.macs_per_product
    )


class ClassLayer(hk.Module):
  """The real class layer 'head': w [F, K] (+ b [K]).

  Called as (x [B, F]) -> [B, K] in linear space, or (la [B, F], s [B, F])
  -> (la, s) [B, K] in log space (`kernels.log_linear`; the bias, if any, is
  not applied there: log space is the raw ConvAC, which has none).
  """

  def __init__(
      self,
      num_classes: int,
      *,
      with_bias: bool,
      name: str = vision_common.HEAD_NAME,
  ):
    super().__init__(name=name)
    self.num_classes = num_classes
    self.with_bias = with_bias

  def __call__(self, x: jax.Array, s: jax.Array | None = None):
    f, dtype = x.shape[-1], x.dtype
    w = hk.get_parameter(
        "w",
        (f, self.num_classes),
        dtype,
        hk.initializers.TruncatedNormal(1.0 / math.sqrt(f)),
    )
    b = None
    if self.with_bias:
      b = hk.get_parameter("b", (self.num_classes,), dtype, jnp.zeros)
    if s is not None:
      return pp.log_linear(x, s, w)
    y = jnp.matmul(x, w)
    return y if b is None else y + b.reshape((1,) * (y.ndim - 1) + b.shape)

  @hk.transparent
  def mac_count(self, x, y) -> int:
    """Rows * F * K."""
    return int(math.prod(x.shape[:-1]) * x.shape[-1] * self.num_classes)


def _reduce_pool(x, window, stride, kind: str):
  """Component-wise max/average pooling over spatial axes 1, 2 ('VALID')."""
  dims = (1, *window) + (1,) * (x.ndim - 3)
  strides = (1, *stride) + (1,) * (x.ndim - 3)
  if kind == "max":
    # A Python scalar init keeps reduce_window differentiable.
    return jax.lax.reduce_window(
        x, -np.inf, jax.lax.max, dims, strides, "VALID"
    )
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, strides, "VALID")
  return total / (window[0] * window[1])


class ConvAC(hk.Module):
  """ConvAC or ConvNet; see the module docstring for the architecture.

  Called inside `hk.transform` (or `hk.transform_with_state`: it has no
  state) as model(images [B, H, W, c], is_training) -> logits float32
  [B, K], or model(images, log_scores=True) -> (la, s) [B, K] of the raw
  ConvAC class scores (kind 'convac' only).
  """

  def __init__(
      self,
      num_classes: int | None = None,
      *,
      kind: str = "convac",
      algebra="R",
      representation: str = "rbf",
      patch_size: int | Sequence[int] = 2,
      rep_channels: int = 0,
      channels: Sequence[int] = (32, 32),
      kernel_size: int | Sequence[int] = 3,
      stride: int | Sequence[int] = 1,
      padding: str = "SAME",
      pool_size: int | Sequence[int] = 2,
      pool_stride: int | Sequence[int] = 0,
      pooling: str = "component",
      convnet_pool: str = "max",
      head: str = "flatten",
      name: str | None = None,
  ):
    """Constructs the model (static hyperparameters only).

    The keyword arguments are the `model` section of a config (defaults: a
    real 2-block overlapping ConvAC: RBF features on 2x2 patches, 3x3
    stride-1 convs of width 32, 2x2 product pooling, flatten head); build it
    from one with `algebranets.models.build(config.model, num_classes=K)`.

    Args:
      num_classes: K (from the task). None only while a config is checked
        before the data is loaded (`models.check`).
      kind: 'convac' or 'convnet'.
      algebra: registered name or `Algebra` of the convolutions.
      representation: one of REPRESENTATIONS.
      patch_size: P of the representation patches (int or pair).
      rep_channels: REAL width C_0 * d of the representation; 0 = channels[0]
        (identity: 0 or P*P*c).
      channels: REAL width of each block's convolution (one per block);
        algebra channels = max(1, round(width / d)).
      kernel_size: conv kernel k (int or pair).
      stride: conv stride s (int or pair); s < k overlaps.
      padding: conv padding, 'SAME' or 'VALID'.
      pool_size: pooling window p (int or pair).
      pool_stride: pooling stride (int or pair); 0 = pool_size.
      pooling: convac product pooling, 'component' or 'algebra'.
      convnet_pool: convnet pooling, 'max' or 'average' (unused by convac).
      head: 'flatten' or 'global'.
      name: module name; default 'convac'.

    Raises:
      ValueError: any invalid value; the message says which and how to fix
        it.
    """
    super().__init__(name=name or NAME)
    who = NAME

    def choice(value, key, valid):
      config_access.check_choice(value, key, valid, who)

    choice(kind, "kind", KINDS)
    self.algebra = algebras.get(algebra)  # Lists the valid names.
    choice(representation, "representation", REPRESENTATIONS)
    self.patch_size = _pair(patch_size, "patch_size", who)
    self.kernel_size = _pair(kernel_size, "kernel_size", who)
    self.stride = _pair(stride, "stride", who)
    self.pool_size = _pair(pool_size, "pool_size", who)
    self.pool_stride = (
        self.pool_size
        if config_access.is_int(pool_stride) and pool_stride == 0
        else _pair(pool_stride, "pool_stride", who)
    )
    if (
        isinstance(channels, (str, bytes))
        or not isinstance(channels, (Sequence, np.ndarray))
        or len(channels) < 1
        or not all(config_access.is_int(c) and c >= 1 for c in channels)
    ):
      raise ValueError(
          f"{who}: channels must be a non-empty sequence of positive ints "
          f"(the real width of each block's convolution), got {channels!r}; "
          "e.g. (32, 32) for two blocks."
      )
    if not config_access.is_int(rep_channels) or rep_channels < 0:
      raise ValueError(
          f"{who}: rep_channels must be an int >= 0 (real width of the "
          f"representation; 0 = channels[0]), got {rep_channels!r}."
      )
    if representation == "identity" and rep_channels:
      raise ValueError(
          f"{who}: representation='identity' has exactly P*P*c features (no "
          f"parameters); got rep_channels={rep_channels}. Set "
          "rep_channels=0."
      )
    choice(padding, "padding", PADDINGS)
    choice(pooling, "pooling", POOLINGS)
    choice(convnet_pool, "convnet_pool", CONVNET_POOLS)
    choice(head, "head", HEADS)
    if kind == "convnet" and pooling == "algebra":
      raise ValueError(
          f"{who}: pooling='algebra' is a product pooling of kind='convac'; "
          "the ConvNet pools with convnet_pool ('max' or 'average'). Use "
          "pooling='component' with kind='convnet'."
      )
    self.num_classes = vision_common.check_num_classes(num_classes, who)
    self.kind = kind
    self.representation = representation
    widths = tuple(int(c) for c in channels)
    self.channels = tuple(
        vision_common.algebra_channels(c, 1.0, self.algebra) for c in widths
    )
    self.rep_channels = (
        0
        if representation == "identity"
        else vision_common.algebra_channels(
            int(rep_channels) or widths[0], 1.0, self.algebra
        )
    )
    self.padding = padding
    self.pooling = pooling
    self.convnet_pool = convnet_pool
    self.head = head

  def __call__(
      self,
      images: jax.Array,
      is_training: bool = False,
      *,
      log_scores: bool = False,
  ):
    """Class logits, or the raw ConvAC scores in log space.

    Args:
      images: float [B, H, W, c].
      is_training: unused (no normalisation state, no dropout); kept for the
        vision model interface.
      log_scores: return (la, s) float [B, K] of the raw class scores
        y = s * exp(la) (no per-example normalisation; kind 'convac' only).

    Returns:
      logits float32 [B, K], or (la, s) in the images' dtype.

    Raises:
      ValueError: images not float of rank 4; log_scores with
        kind='convnet'; a spatial extent smaller than a window.
    """
    del is_training
    images = jnp.asarray(images)
    if images.ndim != 4 or not jnp.issubdtype(images.dtype, jnp.floating):
      raise ValueError(
          "ConvAC: expected float images [B, H, W, c], got shape "
          f"{tuple(images.shape)} and dtype {images.dtype}. Cast with "
          "images.astype(jnp.float32); add a channel axis to grey images; "
          "1-D inputs are images of height 1."
      )
    if log_scores and self.kind != "convac":
      raise ValueError(
          "ConvAC: log_scores=True returns the raw product-circuit scores and "
          "needs kind='convac'; a ConvNet's logits are its scores."
      )
    stem = Representation(
        self.representation,
        self.rep_channels,
        self.algebra,
        patch_size=self.patch_size,
        log_space=self.kind == "convac",
    )
    if self.kind == "convnet":
      return self._convnet(stem(images)).astype(jnp.float32)
    la, s = stem(images)
    normalize = not log_scores
    for i, c in enumerate(self.channels):
      la, s = LogConv2D(
          c,
          self.kernel_size,
          self.algebra,
          stride=self.stride,
          padding=self.padding,
          name=f"conv_{i}",
      )(la, s)
      la, s = self._product_pool(la, s, self.pool_size, self.pool_stride)
      if normalize:
        la = la - pp.log_mean_abs(la, s, (1, 2, 3, 4))
    if self.head == "global":
      la, s = self._product_pool(la, s, la.shape[1:3], la.shape[1:3])
      if normalize:
        la = la - pp.log_mean_abs(la, s, (1, 2, 3, 4))
    b = la.shape[0]
    la, s = la.reshape(b, -1), s.reshape(b, -1)
    head = ClassLayer(self.num_classes, with_bias=False)
    if log_scores:
      return head(la, s)
    return head(pp.from_log(la, s)).astype(jnp.float32)

  @hk.transparent
  def _product_pool(self, la, s, window, stride):
    if self.pooling == "algebra":
      return pp.algebra_product_pool(la, s, self.algebra, window, stride)
    return pp.log_product_pool(la, s, window, stride)

  @hk.transparent
  def _convnet(self, x):
    gain = initializers.gain_for("relu")
    for i, c in enumerate(self.channels):
      x = layers.Conv2D(
          c,
          self.kernel_size,
          self.algebra,
          stride=self.stride,
          padding=self.padding,
          gain=gain,
          name=f"conv_{i}",
      )(x)
      x = jax.nn.relu(x)
      if min(x.shape[1:3]) < 1 or any(
          n < p for n, p in zip(x.shape[1:3], self.pool_size, strict=True)
      ):
        raise ValueError(
            f"ConvAC: block {i} output {tuple(x.shape[1:3])} is smaller than "
            f"the pooling window {self.pool_size}; use fewer blocks, a "
            "smaller patch_size/stride or smaller windows."
        )
      x = _reduce_pool(x, self.pool_size, self.pool_stride, self.convnet_pool)
    if self.head == "global":
      x = _reduce_pool(x, x.shape[1:3], x.shape[1:3], self.convnet_pool)
    x = x.reshape(x.shape[0], -1)
    return ClassLayer(self.num_classes, with_bias=True)(x)


def log_scores_fn(model_cfg: Any, *, num_classes: int = 1):
  """The untransformed function images -> (la, s) of the raw class scores.

  Args:
    model_cfg: a convac model section with kind='convac' (ConfigDict or
      mapping with 'name'; missing keys take the constructor's defaults).
    num_classes: K.

  Returns:
    fn(images [B, H, W, c]) -> (la, s), each [B, K] in the images' dtype,
    with raw scores y = s * exp(la); wrap it in `hk.transform`.

  Raises:
    ModelConfigError: invalid config, another model, or kind='convnet'.
  """
  spec, cfg = registry.kwargs(model_cfg)
  if spec.module is not ConvAC or cfg["kind"] != "convac":
    raise registry.ModelConfigError(
        "log_scores_fn: needs kind='convac' (the raw scores of a product "
        f"circuit); got model {spec.name!r} with kind={cfg.get('kind')!r}."
    )
  registry.check(model_cfg, num_classes=num_classes)

  def fn(images):
    model = registry.build(model_cfg, num_classes=num_classes)
    return model(images, log_scores=True)

  return fn


def raw_scores(
    model_cfg: Any, params, images, *, num_classes: int = 1
) -> np.ndarray:
  """The raw ConvAC class scores as float64 numpy (s * exp(la) in float64).

  Args:
    model_cfg: a kind='convac' model section (see `log_scores_fn`).
    params: parameters of `hk.transform(log_scores_fn(model_cfg, ...))`.
    images: [B, H, W, c].
    num_classes: K.

  Returns:
    float64 [B, K]; entries beyond float64's range are +-inf.
  """
  fn = hk.without_apply_rng(
      hk.transform(log_scores_fn(model_cfg, num_classes=num_classes))
  )
  la, s = jax.jit(fn.apply)(params, images)
  la = np.asarray(la, np.float64)
  s = np.asarray(s, np.float64)
  with np.errstate(over="ignore"):
    return np.where(s == 0, 0.0, s * np.exp(np.where(s == 0, 0.0, la)))
