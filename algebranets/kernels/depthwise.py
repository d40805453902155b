"""Algebra depthwise 2-D convolution with a fast path for XLA:CPU training.

Shape glossary: B = batch, H/W = input spatial, H'/W' = output spatial,
C = algebra channels, kh/kw = kernel size, d = algebra dimension, n/e =
matrix size/base dimension of M_n(base) (folded layout, see
`algebranets.layout`).

    standard: x [B, H, W, C, d],      w [kh, kw, 1, C, d] -> [B, H', W', C, d]
    folded:   x [n, B, H, W, C, n*e], w [kh, kw, 1, C, d]
              -> y [n, B, H', W', C, n*e]

    y[b, p, c] = sum_{taps t} w[t, c] * x[b, p * stride + t * dilation - pad, c]

with the algebra product and the weight on the LEFT: each algebra channel is
convolved with its own algebra-valued kernel (`kernels.conv2d` with
feature_group_count = C and channel multiplier 1; `w` is
`layers.DepthwiseConv2D`'s canonical parameter).

Paths (`PATHS`):
  grouped  `kernels.conv2d` / `conv2d_folded` with feature_group_count = C
           (block expansion or fold: ONE grouped XLA convolution).
  taps     the convolution written out over its kh*kw taps: zero-pad, take
           each tap's strided slice, multiply it by the tap's weight with
           the algebra product, sum. Only pads, slices and element-wise
           arithmetic, which XLA fuses into one loop per output. The product
           is unrolled over the nonzero structure constants for algebras
           with at most 16 of them (R, C, H, dual, cross: macs_per_product
           real multiply-adds per pair) and written as M_n(base) matrix
           blocks otherwise (M_n(R), M_n(C), M_n(H): n^3 e^2 = the intrinsic
           count; see `_Terms` / `_Blocks` for why). The backward pass is
           written by hand (`jax.custom_vjp`):
             dx: the same tap sum over the stride-dilated, re-padded
                 cotangent with the flipped kernel and the transposed
                 product (each input position reads its taps once; autodiff
                 of the forward scatters one padded full-size array per tap
                 and term instead: 2-7x slower);
             dw: per tap, the products summed over B, H', W' by one
                 matrix-vector product with a ones vector (XLA:CPU's own
                 reduction over the leading axes was 10-30x slower).
           Reverse-over-reverse differentiation works (the backward pass is
           built from the same differentiable operations); forward-mode AD
           (`jax.jvp`, `jax.jacfwd`) does not go through a custom_vjp: use
           path='grouped' for it. Compiling is slower than for one grouped
           convolution (about 0.3-1 s per layer's gradient on 2 CPU cores).

Why 'taps' exists (jax issue #13800): XLA:CPU computes the weight gradient
of a grouped convolution whose groups hold more than one channel (every
algebra depthwise conv: d or n*e reals per group) catastrophically slowly.
bench/results/kernels_cpu_2core.json: dw3x3 at B=8 14x14, 128 real
channels, fwd 3-15 ms but fwd+bwd 240-2230 ms (real depthwise, one channel
per group: 11.7 ms).

Measured (`choose_path`): XLA:CPU, 2 cores shared with other jobs (load 4-7,
so the minimum over 5-7 interleaved rounds is reported), jax 0.10.2, float32,
B=4, MobileNet v1 depthwise shapes (real channels 128 at 56x56 stride 1, 256
at 28x28 stride 2, 512 at 14x14, 1024 at 7x7; algebra channels = real / d),
milliseconds per call, command:

    python -m bench.depthwise --algebras R,C,H,M2R
        (also --batch, --shapes, --modes, --repeats)

  algebra shape           mode     grouped   taps autodiff  grp_fold taps_fold
  R       56x56 C=128 s1  fwd         90.0     2.0      2.3
  R       56x56 C=128 s1  fwd+bwd     90.5    43.0     31.7
  R       28x28 C=256 s2  fwd          5.6     0.4      0.3
  R       28x28 C=256 s2  fwd+bwd     76.3     2.5      2.1
  R       14x14 C=512 s1  fwd         11.2     0.6      0.4
  R       14x14 C=512 s1  fwd+bwd     52.6     2.7      3.0
  R       7x7 C=1024 s1   fwd          5.8     0.4      0.3
  R       7x7 C=1024 s1   fwd+bwd     83.7     1.3      1.2
  C       56x56 C=64 s1   fwd         82.4     4.5      4.3
  C       56x56 C=64 s1   fwd+bwd  14680.1    49.5     51.4
  C       28x28 C=128 s2  fwd          7.0     0.7      0.7
  C       28x28 C=128 s2  fwd+bwd   2943.1     3.4      5.1
  C       14x14 C=256 s1  fwd         13.3     1.1      1.0
  C       14x14 C=256 s1  fwd+bwd   7320.9     3.1      4.3
  C       7x7 C=512 s1    fwd          6.8     0.7      0.6
  C       7x7 C=512 s1    fwd+bwd   7375.3     1.8      1.9
  H       56x56 C=32 s1   fwd         64.7     4.6      5.1
  H       56x56 C=32 s1   fwd+bwd   3820.5    31.4     59.4
  H       28x28 C=64 s2   fwd          4.5     1.0      1.2
  H       28x28 C=64 s2   fwd+bwd    937.6     3.8      5.6
  H       14x14 C=128 s1  fwd          8.6     1.3      1.1
  H       14x14 C=128 s1  fwd+bwd   3663.0     3.6     12.6
  H       7x7 C=256 s1    fwd          4.5     1.0      1.3
  H       7x7 C=256 s1    fwd+bwd   3744.3     2.0      6.0
  M2R     56x56 C=32 s1   fwd         64.1     2.4      2.4      86.6       1.6
  M2R     56x56 C=32 s1   fwd+bwd   4613.9    31.1    611.1    4062.4      53.5
  M2R     28x28 C=64 s2   fwd          6.0     0.8      0.6       9.9       0.5
  M2R     28x28 C=64 s2   fwd+bwd    973.4     2.2     70.5     949.1       3.0
  M2R     14x14 C=128 s1  fwd          8.9     0.7      0.4      13.6       0.7
  M2R     14x14 C=128 s1  fwd+bwd   3662.8     2.8    136.6    3841.9       4.6
  M2R     7x7 C=256 s1    fwd          4.5     0.4      0.3       6.8       0.4
  M2R     7x7 C=256 s1    fwd+bwd   3778.0     1.3     66.1    3906.0       2.2

Columns: 'grouped' and 'taps' paths; autodiff: the taps forward pass
differentiated by JAX instead of the custom VJP; grp_fold / taps_fold: the
folded layout (M_n only). Also M4R at 56x56 C=8 / 14x14 C=32 (--algebras
M4R --shapes 128:56:1,512:14:1), fwd+bwd: grouped 1128 / 957, taps 39 /
6.6, taps_fold 86 / 21.5 ms.

So 'taps' is the automatic choice on CPU for every algebra: its forward is
2-45x faster than the grouped convolution here, its forward+backward 2-60x
(R) and 100-4700x (d > 1) faster. On other backends 'grouped' is kept
(cuDNN and the TPU convolution emitters implement grouped convolutions
natively; not measured: no accelerator was available to this work), as it
is for traced structure constants, which 'taps' cannot unroll.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from algebranets import algebras
from algebranets import layout as layout_lib
from algebranets.kernels import conv as conv_lib
from algebranets.kernels import structure

PATHS = ("grouped", "taps")
AUTO = "auto"


# -- choice of path ------------------------------------------------------------


def _concrete_constants(algebra) -> np.ndarray | None:
  """The structure constants as numpy, or None if they are traced."""
  alg, c = structure.resolve(algebra)
  if alg is not None:
    return alg.structure_constants
  try:
    return np.asarray(c, dtype=np.float64)
  except (jax.errors.TracerArrayConversionError, TypeError):
    return None


def choose_path(algebra, x_shape=None, w_shape=None) -> str:
  """The path `depthwise_conv2d(..., path='auto')` uses.

  'taps' on the CPU backend (see the module docstring for the measurements:
  the grouped convolution's backward pass is 100-1000x slower there), else
  'grouped'. Raw structure constants that are traced (trainable) always use
  'grouped', since 'taps' unrolls the product over concrete constants.

  Args:
    algebra: name, `Algebra` or [d, d, d] structure constants.
    x_shape: shape of x (unused: the choice does not depend on it; kept for
      the same signature as `kernels.choose_conv_path`).
    w_shape: shape of w (unused, as x_shape).

  Returns:
    'taps' or 'grouped'.
  """
  del x_shape, w_shape
  if _concrete_constants(algebra) is None:
    return "grouped"
  return "taps" if jax.default_backend() == "cpu" else "grouped"


# -- argument checks -----------------------------------------------------------


def _pair(v, what: str, who: str) -> tuple[int, int]:
  if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
    v = (int(v), int(v))
  try:
    v = tuple(v)
  except TypeError:
    v = (v,)
  if len(v) != 2 or not all(
      isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 1
      for i in v
  ):
    raise ValueError(
        f"{who}: {what} must be a positive int or a pair of positive ints, "
        f"got {v!r}."
    )
  return int(v[0]), int(v[1])


def _explicit_padding(padding, in_hw, window, strides, who: str):
  """((top, bottom), (left, right)) from any accepted padding spec."""
  if isinstance(padding, str):
    if padding.upper() not in ("SAME", "VALID"):
      raise ValueError(
          f"{who}: padding must be 'SAME', 'VALID', an int, (ph, pw) or "
          f"((top, bottom), (left, right)); got {padding!r}."
      )
    pads = lax.padtype_to_pads(in_hw, window, strides, padding.upper())
    return tuple((int(lo), int(hi)) for lo, hi in pads)

  def is_count(v):
    return (
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
    )

  if is_count(padding):
    return ((int(padding),) * 2,) * 2
  try:
    pads = tuple(padding)
  except TypeError:
    pads = ()
  if len(pads) == 2 and all(is_count(p) for p in pads):
    return tuple((int(p), int(p)) for p in pads)
  if len(pads) == 2 and all(
      isinstance(p, (tuple, list)) and len(p) == 2 and all(map(is_count, p))
      for p in pads
  ):
    return tuple((int(p[0]), int(p[1])) for p in pads)
  raise ValueError(
      f"{who}: padding must be 'SAME', 'VALID', a non-negative int, (ph, pw) "
      f"or ((top, bottom), (left, right)) of non-negative ints; got "
      f"{padding!r}."
  )


@dataclasses.dataclass(frozen=True)
class _Geometry:
  """Static geometry of one call (hashable: a custom_vjp static argument)."""

  kernel: tuple[int, int]
  stride: tuple[int, int]
  dilation: tuple[int, int]
  pads: tuple[tuple[int, int], tuple[int, int]]

  def out_size(self, in_hw: Sequence[int]) -> tuple[int, int]:
    return tuple(
        (n + lo + hi - ((k - 1) * r + 1)) // s + 1
        for n, (lo, hi), k, r, s in zip(
            in_hw,
            self.pads,
            self.kernel,
            self.dilation,
            self.stride,
            strict=True,
        )
    )


def _geometry(in_hw, w_shape, stride, padding, dilation, who) -> _Geometry:
  kernel = (int(w_shape[0]), int(w_shape[1]))
  stride = _pair(stride, "stride", who)
  dilation = _pair(dilation, "dilation", who)
  window = tuple((k - 1) * r + 1 for k, r in zip(kernel, dilation, strict=True))
  pads = _explicit_padding(padding, tuple(in_hw), window, stride, who)
  geom = _Geometry(kernel, stride, dilation, pads)
  out = geom.out_size(in_hw)
  if min(out) < 1:
    raise ValueError(
        f"{who}: input of spatial size {tuple(in_hw)} is smaller than the "
        f"dilated kernel {window} after padding {pads}; the output would be "
        f"{out}. Use a larger input, padding='SAME' or a smaller kernel."
    )
  return geom


def _check_shapes(w_shape, d: int, c: int, who: str, x_want: str):
  if len(w_shape) != 5 or w_shape[2] != 1 or w_shape[4] != d:
    raise ValueError(
        f"{who}: weight must be [kh, kw, 1, C, {d}] (DepthwiseConv2D's 'w' "
        f"with channel_multiplier 1), got {tuple(w_shape)}."
    )
  if w_shape[3] != c:
    raise ValueError(
        f"{who}: weight has {w_shape[3]} channels but x has {c}; "
        f"x must be {x_want} with the weight's C."
    )
  if min(w_shape[:2]) < 1:
    raise ValueError(f"{who}: empty kernel {tuple(w_shape[:2])}.")


def _check_path(path: str, algebra, who: str) -> str:
  if path == AUTO:
    return choose_path(algebra)
  if path not in PATHS:
    raise ValueError(
        f"{who}: unknown path {path!r}; valid: {AUTO}, {', '.join(PATHS)}."
    )
  if path == "taps" and _concrete_constants(algebra) is None:
    raise ValueError(
        f"{who}: path='taps' unrolls the product over concrete structure "
        "constants, but they are traced here (e.g. a trainable structure). "
        "Use path='grouped' or 'auto'."
    )
  return path


# -- the taps kernel -----------------------------------------------------------
#
# Two ways to write the per-tap product, both one fused XLA loop per output:
#   _Terms   the product unrolled over the nonzero structure constants, each
#            output component computed as its own [B, H', W', C] plane
#            (vectorised over the channels) and the planes stacked once.
#            Fastest for the small algebras (R, C, H, dual, cross); its graph
#            grows with nnz (9 * nnz products per tap sum).
#   _Blocks  M_n(base) as matrix blocks: y[a, b] = sum_c L(w[a, c]) x[c, b]
#            with the base algebra's left-regular e x e matrices L, one
#            broadcast product per (c, j): 9 * n * e products per tap sum
#            (36 for M4R, where terms would be 576: that made XLA compile one
#            layer's gradient for 26 s). As fast as terms for M_n(R) and
#            M2C, but 4-7x slower for H (n = 1, e = 4), whose blocks are
#            broadcast along the short component axis.
# Both compute n^3 nnz(base) (terms: nnz) multiply-adds per pair (blocks:
# n^3 e^2, equal for every built-in base), i.e. the intrinsic count.


def _terms_of(t: np.ndarray, out_axis: int):
  """Nonzeros of t [p, r, q] grouped by `out_axis`: per output component
  o, ((index on the first remaining axis, on the second, coefficient), ...)."""
  t = np.moveaxis(t, out_axis, -1)
  out = [[] for _ in range(t.shape[-1])]
  for u, v, o in zip(*np.nonzero(t), strict=True):
    out[o].append((int(u), int(v), float(t[u, v, o])))
  return tuple(tuple(terms) for terms in out)


@dataclasses.dataclass(frozen=True)
class _Terms:
  """Unrolled product y_q = sum T[p, r, q] w_p x_r (weight [C, d]).

  fwd[q] = ((p, r, coef), ...); dx[r] = ((p, q, coef), ...) (the transposed
  product, for the input gradient); dw[p] = ((r, q, coef), ...) (for the
  weight gradient). Hashable: a static custom_vjp argument.
  """

  fwd: tuple
  dx: tuple
  dw: tuple

  def tap_sum(self, taps, transpose: bool):
    """sum over taps (w_t [C, d], x_t [B, H', W', C, d]) of w_t x_t (or
    the transposed product) -> [B, H', W', C, d]."""
    planes = []
    for terms in self.dx if transpose else self.fwd:
      acc = None
      for w_t, x_t in taps:
        for p, r, coef in terms:
          prod = x_t[..., r] * w_t[:, p].reshape(1, 1, 1, -1)
          acc = _accumulate(acc, prod, coef)
      planes.append(acc)
    return _stack(planes, taps[0][1].shape[:4], taps[0][1].dtype)

  def weight_products(self, x_t, ct):
    """[B, H', W', C, d]: summed over the rows, the gradient of w_t."""
    planes = []
    for terms in self.dw:
      acc = None
      for r, q, coef in terms:
        acc = _accumulate(acc, x_t[..., r] * ct[..., q], coef)
      planes.append(acc)
    return _stack(planes, ct.shape[:4], ct.dtype)


@dataclasses.dataclass(frozen=True)
class _Blocks:
  """M_n(base) matrix blocks (weight: left-regular blocks [C, n, n, e, e]).

  Components: weight (row a, col c, base i), activation (row c, col b, base
  j), output (row a, col b, base k): y[a, b, k] = sum_{c, j} L[a, c, j, k]
  x[c, b, j] with L[a, c] = `structure.expand_left(w[a, c], base)`. An
  M_n(base) activation has nb = n columns in the standard layout and nb = 1
  in the folded one (its columns are in the batch).
  """

  n: int
  nb: int
  e: int

  def tap_sum(self, taps, transpose: bool):
    """sum over taps (L_t [C, n, n, e, e], x_t [B, H', W', C, n*nb*e]) of
    L_t x_t, or with transpose of L_t^T x_t (sum_{c, j} L[c, a, k, j]
    x[c, b, j]) -> [B, H', W', C, n*nb*e]."""
    n, nb, e = self.n, self.nb, self.e
    lead = taps[0][1].shape[:4]
    out = None
    for l_t, x_t in taps:
      if transpose:
        l_t = l_t.transpose(0, 2, 1, 4, 3)
      lv = l_t.reshape(1, 1, 1, l_t.shape[0], n, n, 1, e, e)  # a, c, _, j, k
      xv = x_t.reshape(*lead, 1, n, nb, e, 1)  # _, c, b, j, _
      for c in range(n):
        for j in range(e):
          # [1, 1, 1, C, n(a), 1, e(k)] * [B, H', W', C, 1, nb, 1]
          prod = lv[..., c, :, j, :] * xv[..., c, :, j, :]
          out = prod if out is None else out + prod
    return out.reshape(*lead, n * nb * e)

  def weight_products(self, x_t, ct):
    """[B, H', W', C, n, n, e, e]: x_t[c, b, j] ct[a, b, k] summed over the
    columns b; summed over the rows, the gradient of L_t."""
    n, nb, e = self.n, self.nb, self.e
    lead = ct.shape[:4]
    cv = ct.reshape(*lead, n, 1, nb, 1, e)  # a, _, b, _, k
    xv = x_t.reshape(*lead, 1, n, nb, e, 1)  # _, c, b, j, _
    out = None
    for b in range(nb):
      prod = cv[..., b, :, :] * xv[..., b, :, :]  # [.., a, c, j, k]
      out = prod if out is None else out + prod
    return out


def _accumulate(acc, prod, coef: float):
  if coef == -1.0:
    return -prod if acc is None else acc - prod
  if coef != 1.0:
    prod = prod * jnp.asarray(coef, prod.dtype)
  return prod if acc is None else acc + prod


def _stack(planes, shape, dtype):
  """Stacks component planes (None: a component with no term: zeros)."""
  return jnp.stack(
      [jnp.zeros(shape, dtype) if p is None else p for p in planes], axis=-1
  )


def _tap_slices(xp, geom: _Geometry, out_hw, stride):
  """[(a, b, strided slice of padded xp for tap (a, b))], [B, H', W', C, k]."""
  (kh, kw), (rh, rw) = geom.kernel, geom.dilation
  ho, wo = out_hw
  sh, sw = stride
  out = []
  for a in range(kh):
    for b in range(kw):
      start = (0, a * rh, b * rw, 0, 0)
      limit = (
          xp.shape[0],
          a * rh + (ho - 1) * sh + 1,
          b * rw + (wo - 1) * sw + 1,
          *xp.shape[3:],
      )
      out.append((a, b, lax.slice(xp, start, limit, (1, sh, sw, 1, 1))))
  return out


def _pad_spatial(x, pads, interior=(0, 0)):
  zero = jnp.zeros((), x.dtype)
  (th, bh), (lw, rw) = pads
  cfg = [(0, 0, 0), (th, bh, interior[0]), (lw, rw, interior[1])]
  cfg += [(0, 0, 0)] * (x.ndim - 3)
  return lax.pad(x, zero, cfg)


def _column_sums(m):
  """[N, K] -> [K]: sums over the rows as ONE matrix-vector product with a
  ones vector. XLA:CPU emits a reduction over a major axis as strided loops
  (measured 10-30x slower than the forward tap sum); the GEMV reads the rows
  contiguously. HIGHEST precision: the sum must stay float32 on TF32 GPUs."""
  ones = jnp.ones((m.shape[0],), m.dtype)
  return jnp.dot(ones, m, precision=lax.Precision.HIGHEST)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _taps(x, wk, form, geom: _Geometry):
  """x [B, H, W, C, k], wk [kh, kw, C, ...] (the form's weight) -> y
  [B, H', W', C, k]."""
  return _taps_fwd_value(x, wk, form, geom)


def _taps_fwd_value(x, wk, form, geom):
  out_hw = geom.out_size(x.shape[1:3])
  xp = _pad_spatial(x, geom.pads)
  slices = _tap_slices(xp, geom, out_hw, geom.stride)
  return form.tap_sum([(wk[a, b], t) for a, b, t in slices], False)


def _taps_fwd(x, wk, form, geom):
  return _taps_fwd_value(x, wk, form, geom), (x, wk)


def _taps_bwd(form, geom, residuals, ct):
  x, wk = residuals
  h, wd = x.shape[1:3]
  ho, wo = ct.shape[1:3]
  (kh, kw), (rh, rw), (sh, sw) = geom.kernel, geom.dilation, geom.stride
  (top, _), (left, _) = geom.pads
  # dx[i] = sum_a u_a[(i + top - a*rh) / sh] (where integral and in range),
  # u_a = w_a^T ct. Dilating ct by the stride (zeros between rows) and
  # padding it so that index i + (kh-1-a)*rh of the result holds term a
  # turns this into a stride-1 tap sum with the flipped, transposed kernel:
  # each input position reads its taps once. (Autodiff of the forward pass
  # gives one padded full-size array per tap and term instead, 2-7x slower.)
  lo_h, lo_w = (kh - 1) * rh - top, (kw - 1) * rw - left
  hi_h = h + (kh - 1) * rh - lo_h - ((ho - 1) * sh + 1)
  hi_w = wd + (kw - 1) * rw - lo_w - ((wo - 1) * sw + 1)
  ctp = _pad_spatial(ct, ((lo_h, hi_h), (lo_w, hi_w)), (sh - 1, sw - 1))
  flipped = [
      (wk[kh - 1 - a, kw - 1 - b], t)
      for a, b, t in _tap_slices(ctp, geom, (h, wd), (1, 1))
  ]
  dx = form.tap_sum(flipped, True)
  # The weight gradient of each tap: products summed over B, H', W'.
  xp = _pad_spatial(x, geom.pads)
  size = math.prod(wk.shape[2:])
  rows = [
      _column_sums(form.weight_products(x_t, ct).reshape(-1, size))
      for _, _, x_t in _tap_slices(xp, geom, (ho, wo), geom.stride)
  ]
  return dx, jnp.stack(rows).reshape(wk.shape)


_taps.defvjp(_taps_fwd, _taps_bwd)


# Largest nnz (structure-constant nonzeros) of a non-matrix algebra unrolled
# as _Terms (H has 16). Matrix algebras always use _Blocks: unrolled, even
# their folded product (n^2 nnz(base) terms per matrix column) made M4R's
# forward+backward 4x slower.
_MAX_TERMS = 16


@functools.cache
def _terms_form(key: bytes, shape: tuple[int, int, int]) -> _Terms:
  t = np.frombuffer(key, np.float64).reshape(shape)  # [p, r, q]
  return _Terms(
      fwd=_terms_of(t, 2),
      dx=_terms_of(t.transpose(0, 2, 1), 2),
      dw=_terms_of(t.transpose(1, 2, 0), 2),
  )


def _run_taps(x, w2, algebra, nb_is_n: bool, geom: _Geometry, autodiff=False):
  """Taps convolution of x [B, H, W, C, n*nb*e] with w2 [kh, kw, C, d] (nb =
  n for M_n(base) in the standard layout, 1 in the folded one and for other
  algebras), in float32 (or wider) arithmetic. autodiff=True differentiates
  the forward pass instead of using the custom VJP (for the benchmark)."""
  out_dtype = jnp.result_type(x.dtype, w2.dtype)
  acc = jnp.promote_types(out_dtype, jnp.float32)
  x, w2 = x.astype(acc), w2.astype(acc)
  alg, c = structure.resolve(algebra)
  kh, kw, ch, d = w2.shape
  if alg is not None and alg.matrix_shape is not None:
    n, base = alg.matrix_shape[0], algebras.get(alg.matrix_shape[1])
  else:
    n, base = 1, (alg if alg is not None else _concrete_constants(c))
  constants = alg.structure_constants if alg is not None else base
  if n == 1 and np.count_nonzero(constants) <= _MAX_TERMS:
    t = np.ascontiguousarray(constants, np.float64)
    form, wk = _terms_form(t.tobytes(), t.shape), w2
  else:
    e = d // (n * n)
    form = _Blocks(n=n, nb=n if nb_is_n else 1, e=e)
    # The left-regular blocks are built outside the custom VJP: autodiff
    # carries their gradient back to w (the transpose of a signed gather).
    wk = structure.expand_left(w2.reshape(kh, kw, ch, n, n, e), base)
  op = _taps_fwd_value if autodiff else _taps
  return op(x, wk, form, geom).astype(out_dtype)


# -- public kernels ------------------------------------------------------------


def depthwise_conv2d(
    x: jax.Array,
    w: jax.Array,
    algebra,
    *,
    stride: int | Sequence[int] = 1,
    padding="SAME",
    dilation: int | Sequence[int] = 1,
    path: str = AUTO,
    precision=None,
) -> jax.Array:
  """Algebra depthwise convolution (channel multiplier 1) without bias.

  Args:
    x: [B, H, W, C, d].
    w: [kh, kw, 1, C, d], each channel's algebra-valued kernel.
    algebra: name, `Algebra`, or [d, d, d] structure constants (traced
      constants need path 'grouped' or 'auto').
    stride: int or (sh, sw).
    padding: 'SAME', 'VALID', an int, (ph, pw) or ((top, bottom), (left,
      right)), as `kernels.conv2d`.
    dilation: kernel dilation, int or (rh, rw).
    path: 'auto' (`choose_path`), 'grouped' or 'taps'.
    precision: convolution precision of the 'grouped' path ('taps' is
      element-wise float32 arithmetic, float32 also for bfloat16 inputs).

  Returns:
    y: [B, H', W', C, d] in the inputs' result dtype, with H' = ceil(H / sh)
    for 'SAME' and (H - (kh - 1) * rh - 1) // sh + 1 for 'VALID'.

  Raises:
    ValueError: wrong shapes, stride/dilation/padding values, an output
      smaller than one position, an unknown path, or 'taps' with traced
      constants.
  """
  who = "depthwise_conv2d"
  _, c = structure.resolve(algebra)
  d = c.shape[0]
  if x.ndim != 5 or x.shape[-1] != d:
    raise ValueError(
        f"{who}: x must be [B, H, W, C, {d}] (NHWC plus the algebra axis), "
        f"got shape {tuple(x.shape)}."
    )
  _check_shapes(w.shape, d, x.shape[3], who, f"[B, H, W, C, {d}]")
  geom = _geometry(x.shape[1:3], w.shape, stride, padding, dilation, who)
  path = _check_path(path, algebra, who)
  if path == "grouped":
    return conv_lib.conv2d(
        x,
        w,
        algebra,
        stride=geom.stride,
        padding=geom.pads,
        dilation=geom.dilation,
        feature_group_count=x.shape[3],
        precision=precision,
    )
  return _run_taps(x, w[:, :, 0], algebra, True, geom)


def depthwise_conv2d_folded(
    x_f: jax.Array,
    w: jax.Array,
    algebra,
    *,
    stride: int | Sequence[int] = 1,
    padding="SAME",
    dilation: int | Sequence[int] = 1,
    path: str = AUTO,
    precision=None,
) -> jax.Array:
  """Depthwise convolution on folded activations (M_n(base) only).

  Same maths as `depthwise_conv2d` on `layout.unfold(x_f)`, without leaving
  the folded layout: the n matrix columns are n independent streams that
  share the weight, merged into the batch (a free reshape).

  Args:
    x_f: [n, B, H, W, C, n*e] (see algebranets.layout).
    w: [kh, kw, 1, C, d] canonical weight, d = n * n * e.
    algebra: a matrix algebra M_n(base), by name or `Algebra`.
    stride, padding, dilation, path, precision: as `depthwise_conv2d`
      ('grouped' is `kernels.conv2d_folded` with feature_group_count = C).

  Returns:
    y_f: [n, B, H', W', C, n*e].

  Raises:
    ValueError: as `depthwise_conv2d`, and for a non-matrix algebra.
  """
  who = "depthwise_conv2d_folded"
  n, e = layout_lib.matrix_shape(algebra)
  if x_f.ndim != 6 or x_f.shape[0] != n or x_f.shape[-1] != n * e:
    raise ValueError(
        f"{who}: x must be folded [{n}, B, H, W, C, {n * e}] for "
        f"{algebras.get(algebra).name}, got shape {tuple(x_f.shape)}. Fold "
        "standard activations with layout.fold(x, algebra)."
    )
  x_want = f"[{n}, B, H, W, C, {n * e}]"
  _check_shapes(w.shape, n * n * e, x_f.shape[4], who, x_want)
  geom = _geometry(x_f.shape[2:4], w.shape, stride, padding, dilation, who)
  path = _check_path(path, algebra, who)
  if path == "grouped":
    return conv_lib.conv2d_folded(
        x_f,
        w,
        algebra,
        stride=geom.stride,
        padding=geom.pads,
        dilation=geom.dilation,
        feature_group_count=x_f.shape[4],
        precision=precision,
    )
  _, b, h, wd, c, k = x_f.shape
  y = _run_taps(
      x_f.reshape(n * b, h, wd, c, k), w[:, :, 0], algebra, False, geom
  )
  return y.reshape(n, b, *y.shape[1:])
