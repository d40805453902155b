"""Algebra-valued 2-D convolutions (NHWC plus an algebra axis).

Shape glossary: B = batch, H/W = spatial, C = input algebra channels,
M = output algebra channels, G = feature groups, kh/kw = kernel size,
d = algebra dimension, n/e = matrix size/base dimension of M_n(base).

    standard: x [B, H, W, C, d]       -> y [B, H', W', M, d]
    folded:   x [n, B, H, W, C, n*e]  -> y [n, B, H', W', M, n*e]

y[b, p, m] = sum_{taps, c in group(m)} w[tap, c, m] x[b, p + tap, c] + b_m,
algebra product with the weight on the LEFT (the maths lives in
`kernels.conv2d` / `kernels.conv2d_folded`). Parameters are stored in the
canonical layout whatever the activation layout: 'w' [kh, kw, C/G, M, d],
'b' [M, d].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import haiku as hk
import jax
import jax.numpy as jnp

from algebranets import kernels
from algebranets import layout as layout_lib
from algebranets.layers import _checks, initializers


class _AlgebraConv2D(hk.Module):
  """Shared parameter creation, validation and MAC count."""

  def __init__(
      self,
      kernel_shape: int | Sequence[int],
      algebra,
      *,
      stride,
      padding,
      rate,
      with_bias: bool,
      w_init,
      b_init,
      gain: float,
      layout: str,
      path: str,
      precision,
      what: str,
      name: str | None,
      learned_structure: bool = False,
      structure_init=None,
  ):
    super().__init__(name=name)
    self._what = what
    self.algebra, self.layout = _checks.resolve(algebra, layout)
    self.kernel_shape = _checks.pair(kernel_shape, f"{what}: kernel_shape")
    for k in self.kernel_shape:
      _checks.positive(k, f"{what}: kernel_shape entries")
    self.stride = _checks.pair(stride, f"{what}: stride")
    self.rate = _checks.pair(rate, f"{what}: rate")
    self.padding = padding
    self.with_bias = with_bias
    self.gain = gain
    self.w_init = w_init or initializers.AlgebraVarianceScaling(
        self.algebra, gain
    )
    self.b_init = b_init or jnp.zeros
    self.precision = precision
    self.path = self._check_path(path)
    self.learned_structure = learned_structure
    self.structure_init = _checks.structure_initializer(
        self.algebra, learned_structure, structure_init, layout, path, what
    )

  def _check_path(self, path: str) -> str:
    return _checks.path(
        self.algebra, self.layout, path, kernels.CONV_PATHS, self._what
    )

  def _apply(self, x, m: int, groups: int, precision) -> jax.Array:
    what, alg, lay = self._what, self.algebra, self.layout
    _checks.check_input(x, alg, lay, what=what, body="B, H, W, C", rank=5)
    _checks.check_float(x, what)
    c_in, d = x.shape[-2], alg.dim
    if c_in % groups or m % groups:
      raise ValueError(
          f"{what}: input channels ({c_in}) and output channels ({m}) must "
          f"both be divisible by feature_group_count ({groups}). Change the "
          "channel counts or the group count."
      )
    kh, kw = self.kernel_shape
    w_shape = (kh, kw, c_in // groups, m, d)
    _checks.check_param_shape(self, "w", w_shape, what)
    dtype = x.dtype
    w = hk.get_parameter("w", w_shape, dtype, init=self.w_init)
    precision = precision if precision is not None else self.precision
    kwargs = dict(
        stride=self.stride,
        padding=self.padding,
        dilation=self.rate,
        feature_group_count=groups,
        precision=precision,
    )
    if self.learned_structure:
      c = hk.get_parameter("structure", (d, d, d), dtype, self.structure_init)
      y = kernels.conv2d(x, w, c, path=self.path, **kwargs)
    else:
      y = self._kernel(x, w, self.path, kwargs)
    if self.with_bias:
      b = hk.get_parameter("b", (m, d), dtype, init=self.b_init)
      y = y + layout_lib.broadcast_param(b, alg, lay, y.ndim)
    return y

  def _kernel(self, x, w, path: str, kwargs) -> jax.Array:
    """The grouped convolution kernel for this layer's layout."""
    if self.layout == layout_lib.FOLDED:
      return kernels.conv2d_folded(x, w, self.algebra, **kwargs)
    return kernels.conv2d(x, w, self.algebra, path=path, **kwargs)

  @hk.transparent
  def mac_count(self, x, y) -> int:
    """Intrinsic multiply-adds of one call that mapped x to y.

    B * H' * W' * kh * kw * (C/G) * M * macs_per_product (the fold axis of
    the folded layout holds parts of the same elements and is not counted;
    bias adds are not counted). x, y may be `jax.ShapeDtypeStruct`s.
    """
    lead = slice(1, -2) if self.layout == layout_lib.FOLDED else slice(0, -2)
    positions = math.prod(y.shape[lead])
    kh, kw = self.kernel_shape
    c_per_group = x.shape[-2] // self._groups(x.shape[-2])
    # A learned product is a dense bilinear map: d^2 MACs per product.
    per_product = (
        self.algebra.dim**2
        if self.learned_structure
        else self.algebra.macs_per_product
    )
    return int(positions * kh * kw * c_per_group * y.shape[-2] * per_product)

  def _groups(self, c_in: int) -> int:
    raise NotImplementedError


class Conv2D(_AlgebraConv2D):
  """Algebra 2-D convolution over x [B, H, W, C, d] (or folded)."""

  def __init__(
      self,
      output_channels: int,
      kernel_shape: int | Sequence[int],
      algebra,
      *,
      stride: int | Sequence[int] = 1,
      padding="SAME",
      rate: int | Sequence[int] = 1,
      feature_group_count: int = 1,
      with_bias: bool = True,
      w_init: hk.initializers.Initializer | None = None,
      b_init: hk.initializers.Initializer | None = None,
      gain: float = 1.0,
      layout: str = "standard",
      path: str = "auto",
      precision: jax.lax.Precision | None = None,
      learned_structure: bool = False,
      structure_init=None,
      name: str | None = None,
  ):
    """Constructs the layer.

    Args:
      output_channels: M, output algebra channels.
      kernel_shape: int or (kh, kw).
      algebra: registered name or `Algebra`.
      stride: int or (sh, sw).
      padding: 'SAME', 'VALID', an int, (ph, pw) or ((lo, hi), (lo, hi)).
      rate: kernel dilation, int or (rh, rw).
      feature_group_count: G; C and M must be divisible by it.
      with_bias: add an algebra-valued bias 'b' [M, d] (zeros init).
      w_init: initializer for 'w' [kh, kw, C/G, M, d]; default
        `AlgebraVarianceScaling(algebra, gain)` (fan_in = kh * kw * C/G).
      b_init: initializer for 'b'; default zeros.
      gain: init gain used by the default w_init.
      layout: 'standard' or 'folded' (matrix algebras only).
      path: 'auto' or one of `kernels.CONV_PATHS` ('auto'/'fold' if folded).
      precision: conv precision passed to the kernel.
      learned_structure: make the structure constants a trainable parameter
        'structure' [d, d, d] (the PHC convolution of Zhang et al. 2021),
        initialised from the algebra's constants; standard layout only.
      structure_init: initializer or [d, d, d] array for 'structure'.
      name: module name.

    Raises:
      ValueError: unknown algebra, layout or path, folded layout with a
        non-matrix algebra, non-positive sizes, learned_structure with the
        folded layout or path='fold'.
    """
    super().__init__(
        kernel_shape,
        algebra,
        stride=stride,
        padding=padding,
        rate=rate,
        with_bias=with_bias,
        w_init=w_init,
        b_init=b_init,
        gain=gain,
        layout=layout,
        path=path,
        precision=precision,
        what="Conv2D",
        name=name,
        learned_structure=learned_structure,
        structure_init=structure_init,
    )
    self.output_channels = _checks.positive(
        output_channels, "Conv2D: output_channels"
    )
    self.feature_group_count = _checks.positive(
        feature_group_count, "Conv2D: feature_group_count"
    )

  def __call__(
      self, x: jax.Array, *, precision: jax.lax.Precision | None = None
  ) -> jax.Array:
    """Applies the convolution.

    Args:
      x: [B, H, W, C, d] (standard) or [n, B, H, W, C, n*e] (folded).
      precision: overrides the constructor's precision for this call.

    Returns:
      y: [B, H', W', M, d] or [n, B, H', W', M, n*e].

    Raises:
      ValueError: wrong rank or component axis, C or M not divisible by the
        group count, or C different from the parameters' first call.
    """
    return self._apply(
        x, self.output_channels, self.feature_group_count, precision
    )

  def _groups(self, c_in: int) -> int:
    return self.feature_group_count


class DepthwiseConv2D(_AlgebraConv2D):
  """Algebra depthwise convolution: each algebra channel has its own
  algebra-valued kh x kw kernels (feature_group_count = C), M = C * mult.

  Output channel c * channel_multiplier + j comes from input channel c.

  Kernel paths (`path`): 'auto' picks `kernels.choose_depthwise_path` (the
  'taps' kernel on CPU, whose backward pass is 100-1000x faster there than a
  grouped convolution's, see `kernels.depthwise`; the grouped convolution
  elsewhere); 'taps' and 'grouped' force `kernels.depthwise_conv2d`'s paths;
  one of `kernels.CONV_PATHS` forces that path of the grouped
  `kernels.conv2d` (the folded layout takes 'auto', 'grouped', 'taps' and
  'fold'). With channel_multiplier > 1 the 'taps' kernel sees every input
  channel repeated channel_multiplier times (output channel c * mult + j
  reads input channel c), which is the same convolution.
  """

  def __init__(
      self,
      kernel_shape: int | Sequence[int],
      algebra,
      *,
      channel_multiplier: int = 1,
      stride: int | Sequence[int] = 1,
      padding="SAME",
      rate: int | Sequence[int] = 1,
      with_bias: bool = True,
      w_init: hk.initializers.Initializer | None = None,
      b_init: hk.initializers.Initializer | None = None,
      gain: float = 1.0,
      layout: str = "standard",
      path: str = "auto",
      precision: jax.lax.Precision | None = None,
      name: str | None = None,
  ):
    """Constructs the layer; arguments as for `Conv2D`.

    Args:
      kernel_shape: int or (kh, kw).
      algebra: registered name or `Algebra`.
      channel_multiplier: output channels per input channel.
      stride: int or (sh, sw).
      padding: 'SAME', 'VALID', an int, (ph, pw) or ((lo, hi), (lo, hi)).
      rate: kernel dilation.
      with_bias: add an algebra-valued bias 'b' [C * mult, d].
      w_init: initializer for 'w' [kh, kw, 1, C * mult, d]; default
        `AlgebraVarianceScaling(algebra, gain)` (fan_in = kh * kw).
      b_init: initializer for 'b'; default zeros.
      gain: init gain used by the default w_init.
      layout: 'standard' or 'folded' (matrix algebras only).
      path: 'auto', one of `kernels.DEPTHWISE_PATHS` ('grouped', 'taps') or
        one of `kernels.CONV_PATHS` (a grouped convolution on that path;
        only 'fold' in the folded layout).
      precision: conv precision passed to the kernel (grouped paths).
      name: module name.

    Raises:
      ValueError: unknown algebra, layout or path, folded layout with a
        non-matrix algebra or a conv path other than 'fold', non-positive
        sizes.
    """
    super().__init__(
        kernel_shape,
        algebra,
        stride=stride,
        padding=padding,
        rate=rate,
        with_bias=with_bias,
        w_init=w_init,
        b_init=b_init,
        gain=gain,
        layout=layout,
        path=path,
        precision=precision,
        what="DepthwiseConv2D",
        name=name,
    )
    self.channel_multiplier = _checks.positive(
        channel_multiplier, "DepthwiseConv2D: channel_multiplier"
    )

  def __call__(
      self, x: jax.Array, *, precision: jax.lax.Precision | None = None
  ) -> jax.Array:
    """Applies the depthwise convolution.

    Args:
      x: [B, H, W, C, d] (standard) or [n, B, H, W, C, n*e] (folded).
      precision: overrides the constructor's precision for this call.

    Returns:
      y: [B, H', W', C * channel_multiplier, d] (or folded).
    """
    _checks.check_input(
        x, self.algebra, self.layout, what=self._what, body="B, H, W, C", rank=5
    )
    c_in = x.shape[-2]
    return self._apply(x, c_in * self.channel_multiplier, c_in, precision)

  def _check_path(self, path: str) -> str:
    depthwise = ("auto", *kernels.DEPTHWISE_PATHS)
    if path in depthwise:
      return path
    folded = self.layout == layout_lib.FOLDED
    if folded and path in kernels.CONV_PATHS and path != "fold":
      raise ValueError(
          f"DepthwiseConv2D: the folded layout takes path 'auto', 'grouped', "
          f"'taps' or 'fold'; got path={path!r}. Use one of those, or "
          "layout='standard'."
      )
    if path not in kernels.CONV_PATHS:
      raise ValueError(
          f"DepthwiseConv2D: unknown path {path!r}; valid: "
          f"{', '.join((*depthwise, *kernels.CONV_PATHS))}."
      )
    return super()._check_path(path)

  def _kernel(self, x, w, path: str, kwargs) -> jax.Array:
    alg, folded = self.algebra, self.layout == layout_lib.FOLDED
    if path == "auto":
      path = kernels.choose_depthwise_path(alg, x.shape, w.shape)
    if path not in kernels.DEPTHWISE_PATHS:
      return super()._kernel(x, w, path, kwargs)  # A forced conv path.
    if path == "grouped":
      return super()._kernel(x, w, "auto", kwargs)
    mult = self.channel_multiplier
    if mult > 1:
      x = jnp.repeat(x, mult, axis=-2)
    fn = kernels.depthwise_conv2d_folded if folded else kernels.depthwise_conv2d
    return fn(
        x,
        w,
        alg,
        stride=kwargs["stride"],
        padding=kwargs["padding"],
        dilation=kwargs["dilation"],
        path="taps",
    )

  def _groups(self, c_in: int) -> int:
    return c_in
