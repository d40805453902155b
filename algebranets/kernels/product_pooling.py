"""Log-space kernels for convolutional arithmetic circuits (ConvACs).

Pure functions of arrays (no Haiku). A ConvAC multiplies activations over
pooling windows, so magnitudes grow or shrink exponentially with depth and
window size: 4 values of 1e30 already overflow float32 when multiplied. These
kernels keep every activation as a signed logarithm

    x = s * exp(la),   la = log|x| (float),  s = sign(x) in {-1, 0, +1}

and only exponentiate differences la - max(la) <= 0, so the values entering
a matmul or an algebra product lie in [-1, 1] and products of any length and
linear maps on inputs of any magnitude stay finite.

Precision: a linear map or algebra product computed from inputs scaled to
at most 1 is taken back to logs with |y| floored at the dtype's machine
epsilon (times the largest input magnitude). With weights of order 1 a
result that small is below the rounding error of its largest terms (only an
exact floating-point cancellation, e.g. 1 - 1 + e^-50, loses information);
the floor bounds the gradient of log|y| by 1/eps, where unbounded 1/y
overflowed float32 gradient norms in training.

Zeros: s = 0 marks an exact zero; its la is finite (log of the smallest
normal float, see `log_floor`, or the epsilon floor above) so no -inf ever
enters an arithmetic op (the gradient of log at 0 would be inf). Every
function ignores la where s = 0.

Shape glossary: B = batch, H/W = spatial, C = input algebra channels, M =
output channels, d = algebra dimension (1 for real), kh/kw = kernel size,
ph/pw = pooling window, N = contracted (input) features.

    to_log(x) -> (la, s);  from_log(la, s) -> x       any shape
    log_linear(la, s, w)           la, s [..., N]     w [N, M]
                                   -> [..., M]
    log_linear(la, s, w, algebra)  la, s [..., N, d]  w [N, M, d]
                                   -> [..., M, d]
    log_conv2d(la, s, w, algebra)  la, s [B, H, W, C, d]  w [kh, kw, C, M, d]
                                   -> [B, H', W', M, d]
    log_product_pool(la, s, window, stride)  [B, H, W, ...] -> [B, H', W', ...]
    product_pool(x, window, stride)          same, direct (the reference)
    algebra_product_pool(la, s, algebra, window, stride)
                                   [B, H, W, C, d] -> [B, H', W', C, d]
    log_mean_abs(la, s, axis)      the log of mean |x| over `axis`

Pooling is 'VALID' (windows entirely inside the input, H' = (H - ph) //
stride + 1): a product has no neutral padding that keeps it homogeneous
(see `algebranets.models.convac`). Window elements are visited in raster
order (row by row), which matters only for `algebra_product_pool` with a
non-commutative algebra.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras
from algebranets.kernels.dense import dense as algebra_dense

PADDINGS = ("SAME", "VALID")


def log_floor(dtype) -> float:
  """log of the smallest positive normal number of `dtype` (-87.3 for
  float32, -708.4 for float64): the finite log stored for exact zeros."""
  return float(np.log(np.finfo(np.dtype(dtype)).tiny))


def _tiny(dtype) -> float:
  return float(np.finfo(np.dtype(dtype)).tiny)


def _merge_minor(x: jax.Array) -> jax.Array:
  """[..., a, b] -> [..., a*b]. XLA:CPU vectorises elementwise exp/log only
  along the minor axis: with the algebra axis of size 1 (real) they ran
  5-7x slower (measured), so elementwise work sees merged minor axes."""
  return (
      x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1]) if x.ndim >= 2 else x
  )


def _check_pair(la, s, who: str) -> None:
  if la.shape != s.shape:
    raise ValueError(
        f"{who}: log magnitudes la {tuple(la.shape)} and signs s "
        f"{tuple(s.shape)} must have the same shape; build both with "
        "to_log(x)."
    )
  if not jnp.issubdtype(la.dtype, jnp.floating):
    raise ValueError(
        f"{who}: la must be a float array, got dtype {la.dtype}; cast it, e.g. "
        "la.astype(jnp.float32)."
    )


def to_log(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Signed log-space form of x.

  Args:
    x: float array, any shape.

  Returns:
    (la, s), both of x's shape and dtype: la = log|x| (log_floor where x = 0),
    s = sign(x) in {-1, 0, 1}.

  Raises:
    ValueError: x is not a float array.
  """
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(
        f"to_log: x must be a float array, got dtype {x.dtype}; cast it "
        "first, e.g. x.astype(jnp.float32)."
    )
  xf = _merge_minor(x)
  # max(|x|, tiny): finite log and a zero gradient at x = 0.
  la = jnp.log(jnp.maximum(jnp.abs(xf), _tiny(x.dtype)))
  return la.reshape(x.shape), jnp.sign(xf).reshape(x.shape)


def from_log(la: jax.Array, s: jax.Array) -> jax.Array:
  """x = s * exp(la); exactly 0 where s = 0 (whatever la holds there).

  Magnitudes above the dtype's range overflow to +-inf, as the direct
  computation would.

  Args:
    la, s: same shape (see `to_log`).

  Returns:
    x of that shape.

  Raises:
    ValueError: la and s of different shapes or la not float.
  """
  _check_pair(la, s, "from_log")
  shape = la.shape
  la, s = _merge_minor(la), _merge_minor(s)
  zero = s == 0
  # The inner where keeps exp() of a zero's arbitrary la out of the
  # gradient (0 * inf would be NaN).
  x = jnp.where(zero, 0.0, s * jnp.exp(jnp.where(zero, 0.0, la)))
  return x.astype(la.dtype).reshape(shape)


def _masked_max(la, s, axis):
  """Max of la over `axis` among nonzeros (0 where all are zero), kept dims,
  without gradient: every caller's result is independent of the shift."""
  m = jnp.max(jnp.where(s != 0, la, -jnp.inf), axis=axis, keepdims=True)
  m = jnp.where(jnp.isfinite(m), m, 0.0)
  return jax.lax.stop_gradient(m)


def _shifted(la, s, m):
  """s * exp(la - m) with exact zeros where s = 0 (values in [-1, 1] when m
  is the max over the nonzeros)."""
  d = jnp.where(s != 0, la - m, -jnp.inf)
  return s * jnp.exp(d)


def _back_to_log(y, m):
  """(log|y| + m, sign(y)) of a result y computed from inputs shifted to at
  most 1 in magnitude.

  |y| is floored at the dtype's machine epsilon: a sum of terms of size up
  to 1 that cancels below eps is rounding noise, and the floor bounds
  d log|y| / dy by 1/eps (unbounded 1/y overflowed float32 gradient norms
  in training when a convolution output cancelled to ~1e-30). Exact zeros
  keep sign 0.
  """
  eps = float(np.finfo(np.dtype(y.dtype)).eps)
  la = jnp.log(jnp.maximum(jnp.abs(y), eps)) + m
  return la, jnp.sign(y)


def log_linear(
    la: jax.Array,
    s: jax.Array,
    w: jax.Array,
    algebra=None,
    *,
    path: str = "auto",
    precision=None,
) -> tuple[jax.Array, jax.Array]:
  """A linear map evaluated on log-space inputs, result in log space.

  For every output the inputs are shifted by the largest log magnitude over
  the contraction (m = max_n l_n), so the values entering the matmul lie in
  [-1, 1]: y = exp(m) * (w @ (s * exp(la - m))). Inputs more than ~87 (float32)
  below the largest of their contraction underflow to 0, i.e. are lost only
  where they are below float32 resolution of the sum anyway.

  Args:
    la, s: real inputs [..., N] (algebra=None) or algebra inputs [..., N, d].
    w: real weights [N, M] (algebra=None) or algebra weights [N, M, d]
      (canonical layout, weight on the left: y_m = sum_n w_nm x_n).
    algebra: None for a real matrix product, else a registered name,
      `Algebra` or [d, d, d] constants (through `kernels.dense`).
    path: `kernels.dense` path for algebra weights.
    precision: matmul precision.

  Returns:
    (la_y, s_y): [..., M] or [..., M, d].

  Raises:
    ValueError: mismatched shapes (la vs s, inputs vs weight).
  """
  _check_pair(la, s, "log_linear")
  if algebra is None and (
      w.ndim != 2 or la.ndim < 1 or la.shape[-1] != w.shape[0]
  ):
    raise ValueError(
        f"log_linear: real inputs [..., N] need a weight [N, M]; got inputs "
        f"{tuple(la.shape)} and weight {tuple(w.shape)}. Pass algebra= for "
        "algebra weights [N, M, d]."
    )
  if algebra is None:
    m = _masked_max(la, s, -1)
    y = jnp.matmul(_shifted(la, s, m), w.astype(la.dtype), precision=precision)
    return _back_to_log(y, m)
  # Shift over the contracted (N, d) axes, computed on merged minor axes.
  lf, sf = _merge_minor(la), _merge_minor(s)
  m = _masked_max(lf, sf, -1)  # [..., 1]
  x = _shifted(lf, sf, m).reshape(la.shape)
  y = algebra_dense(
      x, w.astype(x.dtype), algebra, path=path, precision=precision
  )
  la_y, s_y = _back_to_log(_merge_minor(y), m)
  return la_y.reshape(y.shape), s_y.reshape(y.shape)


def _pair(v, what: str, who: str) -> tuple[int, int]:
  if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
    v = (int(v), int(v))
  if (
      not isinstance(v, Sequence)
      or len(v) != 2
      or not all(
          isinstance(i, (int, np.integer))
          and not isinstance(i, bool)
          and i >= 1
          for i in v
      )
  ):
    raise ValueError(
        f"{who}: {what} must be a positive int or a pair of them, e.g. 2 or "
        f"(1, 2); got {v!r}."
    )
  return int(v[0]), int(v[1])


def _same_pads(size: int, window: int, stride: int) -> tuple[int, int]:
  # XLA's 'SAME': output ceil(size / stride), the extra pad at the end.
  out = -(-size // stride)
  total = max((out - 1) * stride + window - size, 0)
  return total // 2, total - total // 2


def _taps(x, window, stride, out_hw):
  """Slices x[:, i + stride*r, j + stride*c] for every window tap (i, j),
  in raster order; each [B, H', W', ...]."""
  (ph, pw), (sh, sw), (oh, ow) = window, stride, out_hw
  out = []
  for i in range(ph):
    for j in range(pw):
      out.append(
          x[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw]
      )
  return out


def _valid_out(hw, window, stride, who: str) -> tuple[int, int]:
  out = []
  for size, k, st, axis in zip(hw, window, stride, "HW", strict=True):
    if size < k:
      raise ValueError(
          f"{who}: the {axis} extent {size} is smaller than the window {k}; "
          "use a smaller window or fewer downsampling layers before it."
      )
    out.append((size - k) // st + 1)
  return tuple(out)


def log_conv2d(
    la: jax.Array,
    s: jax.Array,
    w: jax.Array,
    algebra="R",
    *,
    stride: int | Sequence[int] = 1,
    padding: str = "SAME",
    path: str = "auto",
    precision=None,
) -> tuple[jax.Array, jax.Array]:
  """2-D convolution (no bias) of log-space inputs, result in log space.

  Computes what `kernels.conv2d(from_log(la, s), w, algebra, ...)` computes,
  but shifts every output position by the largest log magnitude in its own
  receptive field (kh x kw taps x C channels x d components), so positions
  of very different magnitudes do not underflow each other. Implemented as
  one (algebra) matmul per tap on the input shifted by each position's own
  largest log magnitude, summed with the taps rescaled to the output
  position's shift.

  Args:
    la, s: [B, H, W, C, d].
    w: [kh, kw, C, M, d] (canonical algebra conv weight; d = 1 for real).
    algebra: registered name, `Algebra` or [d, d, d] constants.
    stride: int or (sh, sw).
    padding: 'SAME' (zeros, XLA's convention) or 'VALID'.
    path: `kernels.dense` path of the per-position algebra product.
    precision: matmul precision.

  Returns:
    (la_y, s_y): [B, H', W', M, d].

  Raises:
    ValueError: bad shapes, stride or padding.
  """
  who = "log_conv2d"
  _check_pair(la, s, who)
  if la.ndim != 5:
    raise ValueError(
        f"{who}: inputs must be [B, H, W, C, d], got shape {tuple(la.shape)}; "
        "add a trailing axis of size 1 for real inputs."
    )
  if w.ndim != 5 or w.shape[2] != la.shape[3] or w.shape[4] != la.shape[4]:
    raise ValueError(
        f"{who}: weight must be [kh, kw, C={la.shape[3]}, M, d={la.shape[4]}], "
        f"got {tuple(w.shape)}."
    )
  if padding not in PADDINGS:
    raise ValueError(
        f"{who}: padding must be one of {PADDINGS}, got {padding!r}."
    )
  kh, kw, _, m_out, d = w.shape
  sh, sw = _pair(stride, "stride", who)
  if padding == "SAME":
    pads = (
        (0, 0),
        _same_pads(la.shape[1], kh, sh),
        _same_pads(la.shape[2], kw, sw),
        (0, 0),
        (0, 0),
    )
    # Padding is zero: sign 0 (its log value is never read).
    la = jnp.pad(la, pads, constant_values=log_floor(la.dtype))
    s = jnp.pad(s, pads)
  out_hw = _valid_out(la.shape[1:3], (kh, kw), (sh, sw), who)
  # Shift of each INPUT position: its largest log magnitude (-inf where all
  # its components are zero), so x_t = s * exp(la - m_in) lies in [-1, 1].
  # Elementwise work on [B, Hp, Wp, C*d] (see _merge_minor).
  lf, sf = _merge_minor(la), _merge_minor(s)
  m_in = jnp.max(jnp.where(sf != 0, lf, -jnp.inf), axis=-1, keepdims=True)
  m_in = jax.lax.stop_gradient(m_in)  # [B, Hp, Wp, 1]
  x_t = _shifted(lf, sf, jnp.where(jnp.isfinite(m_in), m_in, 0.0))
  # Output shift: the largest input shift in the receptive field; each tap
  # is rescaled from its input's shift to it: exp(m_in(p + t) - m_out(p))
  # <= 1, exact (only inputs ~87 below the field's maximum underflow).
  taps_m = _taps(m_in, (kh, kw), (sh, sw), out_hw)
  m_out_pos = functools.reduce(jnp.maximum, taps_m)
  m_out_pos = jnp.where(jnp.isfinite(m_out_pos), m_out_pos, 0.0)
  # One matmul per tap on the shifted input slice (measured 1.6x faster
  # forward + backward than one matmul with all taps' weights followed by
  # slicing its kh*kw times larger output).
  taps_x = _taps(x_t.reshape(la.shape), (kh, kw), (sh, sw), out_hw)
  y = 0.0
  for t, (tm, tx) in enumerate(zip(taps_m, taps_x, strict=True)):
    i, j = divmod(t, kw)
    z = algebra_dense(
        tx, w[i, j].astype(tx.dtype), algebra, path=path, precision=precision
    )
    y = y + jnp.exp(tm - m_out_pos) * _merge_minor(z)  # [B, H', W', M*d]
  la_y, s_y = _back_to_log(y, m_out_pos)
  shape = (*y.shape[:3], m_out, d)
  return la_y.reshape(shape), s_y.reshape(shape)


def _pool_geometry(x, window, stride, who):
  if x.ndim < 3:
    raise ValueError(
        f"{who}: inputs must be [B, H, W, ...], got shape {tuple(x.shape)}."
    )
  window = _pair(window, "window", who)
  stride = window if stride is None else _pair(stride, "stride", who)
  return window, stride, _valid_out(x.shape[1:3], window, stride, who)


def log_product_pool(
    la: jax.Array,
    s: jax.Array,
    window: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Product pooling in log space: sum of logs, product of signs.

  Every trailing component is pooled on its own (component-wise products).

  Args:
    la, s: [B, H, W, ...].
    window: int or (ph, pw).
    stride: int or (sh, sw); None = window (non-overlapping windows).

  Returns:
    (la_y, s_y): [B, H', W', ...], H' = (H - ph) // sh + 1 ('VALID').

  Raises:
    ValueError: shapes, a window larger than the input, bad window/stride.
  """
  who = "log_product_pool"
  _check_pair(la, s, who)
  window, stride, out_hw = _pool_geometry(la, window, stride, who)
  trailing = la.shape[3:]
  # Components pool independently: one merged minor axis (_merge_minor).
  la = la.reshape(*la.shape[:3], -1)
  s = s.reshape(la.shape)
  la_out = sum(_taps(la, window, stride, out_hw))
  # Product of signs by counting: exact and differentiable-free.
  taps_s = _taps(s, window, stride, out_hw)
  negatives = sum((t < 0).astype(jnp.int32) for t in taps_s)
  zeros = sum((t == 0).astype(jnp.int32) for t in taps_s)
  sign = jnp.where(negatives % 2 == 1, -1.0, 1.0)
  s_out = jnp.where(zeros > 0, 0.0, sign).astype(s.dtype)
  shape = (*la_out.shape[:3], *trailing)
  return la_out.reshape(shape), s_out.reshape(shape)


def product_pool(
    x: jax.Array,
    window: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
) -> jax.Array:
  """Direct product pooling (component-wise), the reference of
  `log_product_pool`; overflows for large inputs as float arithmetic does.

  Args:
    x: [B, H, W, ...].
    window, stride: as `log_product_pool`.

  Returns:
    [B, H', W', ...].
  """
  window, stride, out_hw = _pool_geometry(x, window, stride, "product_pool")
  taps = _taps(x, window, stride, out_hw)
  out = taps[0]
  for t in taps[1:]:
    out = out * t
  return out


def algebra_product_pool(
    la: jax.Array,
    s: jax.Array,
    algebra,
    window: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Ordered algebra product over each pooling window, in log space.

  y = ((x_1 x_2) x_3) ... x_n with the algebra product, x_1..x_n the window
  elements in raster order (row by row); for non-commutative algebras (H,
  M_n) the order matters, for non-associative ones (cross) so does the
  left-to-right bracketing. Rescaling that keeps it finite: each element is
  written as exp(a) * u with a = the largest log magnitude of its
  components (so max|u_k| = 1); the running product's u is divided by its
  largest |component| after every multiplication and that factor's log
  added to a. The output is exp(a) * u back in per-component log form.

  Args:
    la, s: [B, H, W, C, d] per-component log form.
    algebra: registered name or `Algebra` (d must match).
    window, stride: as `log_product_pool`.

  Returns:
    (la_y, s_y): [B, H', W', C, d].

  Raises:
    ValueError: shapes, d different from the algebra's, bad window/stride.
  """
  who = "algebra_product_pool"
  _check_pair(la, s, who)
  alg = algebras.get(algebra)
  if la.ndim != 5 or la.shape[-1] != alg.dim:
    raise ValueError(
        f"{who}: inputs must be [B, H, W, C, d={alg.dim}] for algebra "
        f"{alg.name!r}, got shape {tuple(la.shape)}."
    )
  window, stride, out_hw = _pool_geometry(la, window, stride, who)
  a = _masked_max(la, s, -1)  # [..., 1]
  u = _shifted(la, s, a)
  taps_u = _taps(u, window, stride, out_hw)
  taps_a = _taps(a, window, stride, out_hw)
  acc, acc_a = taps_u[0], taps_a[0]
  for ut, at in zip(taps_u[1:], taps_a[1:], strict=True):
    acc = alg.multiply(acc, ut)
    # Rescale by the largest |component|; exact, so no gradient needed.
    r = jax.lax.stop_gradient(jnp.max(jnp.abs(acc), axis=-1, keepdims=True))
    r = jnp.where(r > 0, r, 1.0)
    acc = acc / r
    acc_a = acc_a + at + jnp.log(r)
  return _back_to_log(acc, acc_a)


def log_mean_abs(
    la: jax.Array, s: jax.Array, axis: int | Sequence[int]
) -> jax.Array:
  """log(mean |x| over `axis`) of x = s * exp(la), computed in log space.

  Zeros count in the mean (contribute 0). Where all are zero the result is 0
  (so subtracting it leaves la unchanged).

  Args:
    la, s: same shape.
    axis: int or tuple of axes to reduce.

  Returns:
    The log mean magnitude with the reduced axes kept (size 1).
  """
  _check_pair(la, s, "log_mean_abs")
  axis = (axis,) if isinstance(axis, int) else tuple(axis)
  axis = tuple(sorted(a % la.ndim for a in axis))
  count = int(np.prod([la.shape[a] for a in axis]))
  if axis == tuple(range(axis[0], la.ndim)) and len(axis) > 1:
    # Trailing axes: reduce them merged into one minor axis (_merge_minor).
    out = log_mean_abs(
        la.reshape(*la.shape[: axis[0]], -1),
        s.reshape(*s.shape[: axis[0]], -1),
        -1,
    )
    return out.reshape(*out.shape[:-1], *([1] * len(axis)))
  m = _masked_max(la, s, axis)
  total = jnp.sum(jnp.abs(_shifted(la, s, m)), axis=axis, keepdims=True)
  positive = total > 0
  safe = jnp.where(positive, total, 1.0)
  return jnp.where(positive, jnp.log(safe) + m - np.log(count), 0.0)


__all__ = [
    "PADDINGS",
    "algebra_product_pool",
    "from_log",
    "log_conv2d",
    "log_floor",
    "log_linear",
    "log_mean_abs",
    "log_product_pool",
    "product_pool",
    "to_log",
]
