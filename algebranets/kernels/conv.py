"""Algebra-valued 2-D convolution kernels (NHWC with an algebra axis).

Shape glossary: B = batch, H/W = spatial, C = input algebra channels,
M = output algebra channels, G = feature groups, kh/kw = kernel size,
d = algebra dimension.

    x [B, H, W, C, d],  w [kh, kw, C/G, M, d]  ->  y [B, H', W', M, d]
    y[b, p, m] = sum_{taps, c in group(m)} w[tap, c, m] * x[b, p + tap, c]

with the algebra product and the weight on the LEFT. Depthwise is
G == C (each algebra channel convolved with its own algebra-valued kernel).

Paths:
  einsum  d real convs-worth of work without expanding the weight: all d
          activation components go to the batch axis, one conv with the
          weight components as extra output channels, then a contraction with
          the structure constants. Generic for any constants.
  expand  left-regular block expansion of the weight to [kh, kw, C/G*d,
          M*d] and ONE real conv on the element-major activations [.., C*d]
          (groups stay intact because each element's d components are
          adjacent). Generic; no waste for C and H.
  fold    M_n(base) only: matrix columns folded into the batch, one conv with
          n^3 e^2 MACs per pair (see algebranets.layout).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from algebranets import layout as layout_lib
from algebranets.kernels import structure

PATHS = ("einsum", "expand", "fold")
_DIMS = ("NHWC", "HWIO", "NHWC")


def choose_path(algebra, x_shape, w_shape) -> str:
  """The path `conv2d(..., path='auto')` uses.

  fold for M_n(base) (n^3 e^2 MACs, measured at 0.9-1.1x the MAC-matched real
  conv), else the block expansion (one dense conv; no waste for C and H).
  Depthwise convs (one input channel per group) always use the expansion:
  they are memory-bound, the fold's extra grouping made the forward pass
  1.6-2x slower for every matrix algebra in bench.kernels, and training time
  is the same for all paths (see docs/performance.md).
  """
  alg, c = structure.resolve(algebra)
  depthwise = w_shape[2] == 1 and x_shape[3] > 1
  if depthwise:
    return "expand"
  if alg is not None and alg.matrix_shape is not None and c.shape[0] > 1:
    return "fold"
  return "expand"


def _pair(v, what) -> tuple[int, int]:
  if isinstance(v, int):
    return (v, v)
  v = tuple(v)
  if len(v) != 2 or not all(isinstance(i, int) for i in v):
    raise ValueError(f"conv2d: {what} must be an int or a pair, got {v!r}.")
  return v


def _padding(padding):
  if isinstance(padding, str):
    if padding.upper() not in ("SAME", "VALID"):
      raise ValueError(
          f"conv2d: padding must be 'SAME', 'VALID', an int or pairs, got "
          f"{padding!r}."
      )
    return padding.upper()
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  pads = tuple(padding)
  if len(pads) == 2 and all(isinstance(p, int) for p in pads):
    return ((pads[0], pads[0]), (pads[1], pads[1]))
  if len(pads) == 2 and all(
      isinstance(p, (tuple, list))
      and len(p) == 2
      and all(isinstance(i, int) for i in p)
      for p in pads
  ):
    return tuple(tuple(p) for p in pads)
  raise ValueError(
      "conv2d: padding must be 'SAME', 'VALID', an int, (ph, pw) or "
      f"((top, bottom), (left, right)); got {padding!r}."
  )


def _check(x, w, d, groups):
  if w.ndim != 5 or w.shape[-1] != d:
    raise ValueError(
        f"conv2d: weight must be [kh, kw, C/G, M, {d}], got {tuple(w.shape)}."
    )
  if x.ndim != 5 or x.shape[-1] != d:
    raise ValueError(
        f"conv2d: x must be [B, H, W, C, {d}] (NHWC plus the algebra axis), "
        f"got shape {tuple(x.shape)}."
    )
  c_in, m = x.shape[3], w.shape[3]
  if c_in % groups or m % groups:
    raise ValueError(
        f"conv2d: channels in ({c_in}) and out ({m}) must be divisible by "
        f"feature_group_count ({groups})."
    )
  if w.shape[2] * groups != c_in:
    raise ValueError(
        f"conv2d: weight has {w.shape[2]} input channels per group but x has "
        f"{c_in} channels / {groups} groups = {c_in // groups}."
    )


def conv2d(
    x: jax.Array,
    w: jax.Array,
    algebra,
    *,
    stride: int | Sequence[int] = 1,
    padding="SAME",
    dilation: int | Sequence[int] = 1,
    feature_group_count: int = 1,
    path: str = "auto",
    precision=None,
) -> jax.Array:
  """Algebra 2-D convolution without bias.

  Args:
    x: [B, H, W, C, d].
    w: [kh, kw, C/G, M, d] (canonical stored layout).
    algebra: name, `Algebra`, or [d, d, d] constants (may be trainable).
    stride, dilation: int or (h, w). dilation is the kernel (rhs) dilation.
    padding: 'SAME', 'VALID', int, (ph, pw) or ((lo, hi), (lo, hi)).
    feature_group_count: G; G == C gives a depthwise convolution.
    path: 'auto' or one of PATHS.
    precision: passed to `lax.conv_general_dilated`.

  Returns:
    y: [B, H', W', M, d].
  """
  _, c = structure.resolve(algebra)
  d = c.shape[0]
  _check(x, w, d, feature_group_count)
  if path == "auto":
    path = choose_path(algebra, x.shape, w.shape)
  if path not in PATHS:
    raise ValueError(f"Unknown conv2d path {path!r}; valid: auto, {PATHS}.")
  structure.check_fold_path(path, algebra, "conv2d")
  kwargs = dict(
      window_strides=_pair(stride, "stride"),
      padding=_padding(padding),
      rhs_dilation=_pair(dilation, "dilation"),
      feature_group_count=feature_group_count,
      dimension_numbers=_DIMS,
      precision=precision,
  )
  kh, kw, cg, m, _ = w.shape
  b, h, wd, c_in, _ = x.shape
  if path == "fold":
    y_f = conv2d_folded(
        layout_lib.fold(x, algebra), w, algebra, **_public(kwargs)
    )
    return layout_lib.unfold(y_f, algebra)
  if path == "expand":
    wl = structure.expand_left(w, algebra)  # [kh, kw, cg, m, j, k]
    wl = wl.transpose(0, 1, 2, 4, 3, 5).reshape(kh, kw, cg * d, m * d)
    y = lax.conv_general_dilated(x.reshape(b, h, wd, c_in * d), wl, **kwargs)
    return y.reshape(*y.shape[:3], m, d)
  # einsum: components j of x into the batch, components i of w into the
  # output channels (channel-major, so groups stay contiguous).
  xs = jnp.moveaxis(x, -1, 0).reshape(d * b, h, wd, c_in)
  ws = w.reshape(kh, kw, cg, m * d)
  ys = lax.conv_general_dilated(xs, ws, **kwargs)  # [d_j * b, H', W', m*d_i]
  ys = ys.reshape(d, b, *ys.shape[1:3], m, d)
  c = jnp.asarray(c, ys.dtype)
  return jnp.einsum("jbhwmi,ijk->bhwmk", ys, c, precision=precision)


def _public(kwargs):
  return dict(
      stride=kwargs["window_strides"],
      padding=kwargs["padding"],
      dilation=kwargs["rhs_dilation"],
      feature_group_count=kwargs["feature_group_count"],
      precision=kwargs["precision"],
  )


def conv2d_folded(
    x_f: jax.Array,
    w: jax.Array,
    algebra,
    *,
    stride=1,
    padding="SAME",
    dilation=1,
    feature_group_count: int = 1,
    precision=None,
) -> jax.Array:
  """Convolution on folded activations (M_n(base) only).

  Args:
    x_f: [n, B, H, W, C, n*e] (see algebranets.layout).
    w: [kh, kw, C/G, M, d] canonical weight.

  Returns:
    y_f: [n, B, H', W', M, n*e].
  """
  n, e = layout_lib.matrix_shape(algebra)
  if w.ndim != 5 or w.shape[-1] != n * n * e:
    raise ValueError(
        f"conv2d_folded: weight must be [kh, kw, C/G, M, {n * n * e}], got "
        f"{tuple(w.shape)}."
    )
  cg, m = w.shape[2], w.shape[3]
  if x_f.ndim != 6 or x_f.shape[0] != n or x_f.shape[-1] != n * e:
    raise ValueError(
        f"conv2d_folded: x must be folded [{n}, B, H, W, C, {n * e}], got "
        f"shape {tuple(x_f.shape)}."
    )
  _, b, h, wd, c_in, _ = x_f.shape
  if cg * feature_group_count != c_in:
    raise ValueError(
        f"conv2d_folded: weight has {cg} input channels per group but x has "
        f"{c_in} channels / {feature_group_count} groups."
    )
  w_f = structure.fold_weight(w, algebra)  # [kh, kw, cg*n*e, m*n*e]
  y = lax.conv_general_dilated(
      x_f.reshape(n * b, h, wd, c_in * n * e),
      w_f,
      window_strides=_pair(stride, "stride"),
      padding=_padding(padding),
      rhs_dilation=_pair(dilation, "dilation"),
      feature_group_count=feature_group_count,
      dimension_numbers=_DIMS,
      precision=precision,
  )
  return y.reshape(n, b, *y.shape[1:3], m, n * e)
