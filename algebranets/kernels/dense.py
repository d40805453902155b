"""Algebra-valued dense (fully connected) kernels.

Shape glossary: T = tokens (all leading axes of x flattened), N = input
algebra channels, M = output algebra channels, d = algebra dimension.

    y[..., m, :] = sum_n  w[n, m] * x[..., n]     (algebra product, weight LEFT)

Paths (all exact; they differ in cost and memory):

  einsum  one 3-operand einsum with the structure constants. The reference
          generic path; XLA picks the contraction order.
  expand  build the left-regular block matrix L(w) [N*d, M*d] and do ONE
          real matmul: d^2 MACs per pair, no waste for C and H (4/3 for dual,
          3/2 for cross, n for M_n). Generic for any constants.
  right   activation-side: expand each activation into R(x) [d, d] and do one
          matmul against the COMPACT weight [N*d, M]. Same MACs as expand but
          the weight is read once as stored: wins when there are fewer tokens
          than output channels (batch-1 autoregressive sampling).
  fold    M_n(base) only: fold the matrix columns into the token axis; one
          matmul of [n*T, N*n*e] x [N*n*e, M*n*e]: n^3 e^2 MACs per pair, the
          intrinsic count. The weight is a transpose of the stored one.

`path='auto'` picks per algebra AND shape (see `choose_path`).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax import lax

from algebranets import layout as layout_lib
from algebranets.kernels import structure

PATHS = ("einsum", "expand", "right", "fold")
# Prepared (cached) weights are multiplied with the weight on the left up to
# this many activation rows (see `_matmul_prepared`).
SMALL_ROWS = 64
# M_n over a base with e > 1 uses the activation-side path up to this many
# tokens (see `choose_path`).
MATRIX_RIGHT_MAX_TOKENS = 2


def choose_path(algebra, x_shape, w_shape) -> str:
  """The path `dense(..., path='auto')` uses for these shapes.

  M_n(base) folds (minimal MACs, weight only transposed), except over a
  base of dimension e > 1 (M2C) at 1-2 tokens: its folded weight holds e
  times the stored reals (each base entry becomes an e x e real block), and
  at batch 1 the weight read dominates; the activation-side path reads the
  compact weight but does d^2 / (n^3 e^2) = 2x the MACs, so it only wins
  while there is almost no arithmetic (bench.density, M2C with 4M
  parameters: 0.83 vs 1.55 ms at 1 token, a tie at 2, the fold 1.3x faster
  at 4 and 2-3x from 8 on). Otherwise the block expansion, unless there are
  fewer tokens than output channels: then building L(w) (N*M*d^2 writes
  per call) costs more than expanding the activations (T*N*d^2), so the
  activation-side path is used.
  """
  alg, c = structure.resolve(algebra)
  d = c.shape[0]
  if d == 1:
    return "expand"
  tokens = math.prod(x_shape[:-2])
  if alg is not None and alg.matrix_shape is not None:
    _, e = layout_lib.matrix_shape(alg)
    return "right" if e > 1 and tokens <= MATRIX_RIGHT_MAX_TOKENS else "fold"
  return "right" if tokens < w_shape[1] else "expand"


def _check(x, w, d):
  if w.ndim != 3 or w.shape[-1] != d:
    raise ValueError(
        f"dense: weight must be [N, M, {d}] (d = algebra dimension), got "
        f"shape {tuple(w.shape)}."
    )
  if x.ndim < 2 or x.shape[-1] != d or x.shape[-2] != w.shape[0]:
    raise ValueError(
        f"dense: x must be [..., N={w.shape[0]}, d={d}] to match weight "
        f"{tuple(w.shape)}, got shape {tuple(x.shape)}."
    )


def dense(
    x: jax.Array,
    w: jax.Array,
    algebra,
    *,
    path: str = "auto",
    precision=None,
) -> jax.Array:
  """Algebra dense layer without bias.

  Args:
    x: [..., N, d] activations.
    w: [N, M, d] weights (the canonical stored layout).
    algebra: name, `Algebra`, or [d, d, d] structure constants (may be a
      trainable array).
    path: 'auto' or one of PATHS (to force a path, e.g. for benchmarks).
    precision: passed to the underlying matmul (`jax.lax.Precision`).

  Returns:
    y: [..., M, d] with y_m = sum_n w_nm x_n (weight on the left).

  Raises:
    ValueError: shapes that do not match, unknown path, or 'fold' for a
      non-matrix algebra.
  """
  _, c = structure.resolve(algebra)
  d = c.shape[0]
  _check(x, w, d)
  if path == "auto":
    path = choose_path(algebra, x.shape, w.shape)
  if path == "einsum":
    c = jnp.asarray(c, jnp.result_type(x, w))
    return jnp.einsum("...nj,nmi,ijk->...mk", x, w, c, precision=precision)
  if path not in PATHS:
    raise ValueError(f"Unknown dense path {path!r}; valid: auto, {PATHS}.")
  structure.check_fold_path(path, algebra, "dense")
  N, M, _ = w.shape
  return _apply(
      x, _native(w, algebra, path), algebra, path, (N, M, d), precision
  )


def dense_folded(x_f, w, algebra, *, precision=None) -> jax.Array:
  """Dense layer on folded activations x_f [n, ..., N, n*e] -> [n, ..., M, n*e].

  See `algebranets.layout` for the folded layout.
  """
  n, e = layout_lib.matrix_shape(algebra)
  N, M, _ = w.shape
  if x_f.ndim < 3 or x_f.shape[0] != n or x_f.shape[-2:] != (N, n * e):
    raise ValueError(
        f"dense_folded: x must be folded [{n}, ..., N={N}, {n * e}], got "
        f"shape {tuple(x_f.shape)}."
    )
  w_f = structure.fold_weight(w, algebra)
  return _matmul(x_f, w_f, N * n * e, (M, n * e), precision)


def _matmul(x, w2, k, out_tail, precision):
  lead = x.shape[: x.ndim - 2]
  y = jnp.dot(x.reshape(-1, k), w2, precision=precision)
  return y.reshape(*lead, *out_tail)


def _matmul_prepared(x, w_t, k, out_tail, precision):
  """x [..., A, B] with A * B = k, times a weight stored OUTPUT-major.

  w_t is [out, k]; returns [..., *out_tail]. Up to SMALL_ROWS rows the
  product is computed as w_t @ x^T, weight on the left: XLA:CPU runs that
  as a kernel that streams the weight once, while x @ W with 2-16 rows took
  1.5-1.7x as long (2048 x 2048 float32 weights rotated past the cache: 2
  rows 0.75 vs 1.21 ms, 1 row 0.71 vs 0.91 ms; at 1024 rows both orders are
  within 5%). The barrier keeps XLA from fusing the final transpose into the
  dot, which would bring back the slow order.
  """
  lead = x.shape[: x.ndim - 2]
  x2 = x.reshape(-1, k)
  contract = (((1,), (1,)), ((), ()))
  if x2.shape[0] <= SMALL_ROWS:
    y_t = lax.dot_general(w_t, x2, contract, precision=precision)
    y = lax.optimization_barrier(y_t).T
  else:
    y = lax.dot_general(x2, w_t, contract, precision=precision)
  return y.reshape(*lead, *out_tail)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PreparedDense:
  """A dense weight converted once into a kernel's native layout.

  For inference (e.g. autoregressive sampling) build it once with `prepare`
  and call `dense_prepared` every step, so the expansion / transpose is not
  redone per call. The matrix paths store the weight output-major
  (transposed), which makes small-batch calls read it at matrix-vector
  speed (see `_matmul_prepared`). A pytree: jit-able, `weight` is the only
  leaf.
  """

  weight: jax.Array
  path: str = dataclasses.field(metadata=dict(static=True))
  algebra: object = dataclasses.field(metadata=dict(static=True))
  in_channels: int = dataclasses.field(metadata=dict(static=True))
  out_channels: int = dataclasses.field(metadata=dict(static=True))
  dim: int = dataclasses.field(metadata=dict(static=True))


def prepare(w: jax.Array, algebra, path: str) -> PreparedDense:
  """Convert a stored weight [N, M, d] into `path`'s native layout.

  Stored output-major: expand -> L(w)^T [M*d, N*d]; right -> the compact
  weight [M, N*d]; fold -> W_f^T [M*n*e, N*n*e]. (einsum keeps [N, M, d].)
  `algebra` must be hashable here (a name or Algebra); learned constants go
  through `dense` directly.
  """
  alg, c = structure.resolve(algebra)
  if alg is None:
    raise ValueError(
        "prepare needs a registered algebra (name or Algebra); for learned "
        "structure constants call dense() directly."
    )
  d = c.shape[0]
  if w.ndim != 3 or w.shape[-1] != d:
    raise ValueError(f"prepare: weight must be [N, M, {d}], got {w.shape}.")
  N, M, _ = w.shape
  native = _native(w, alg, path)
  if path != "einsum":
    native = native.T  # output-major: see _matmul_prepared
  return PreparedDense(native, path, alg, N, M, d)


def dense_prepared(x: jax.Array, p: PreparedDense, *, precision=None):
  """`dense` with a weight from `prepare`: x [..., N, d] -> [..., M, d]."""
  N, M, d = p.in_channels, p.out_channels, p.dim
  if x.ndim < 2 or x.shape[-2:] != (N, d):
    raise ValueError(
        f"dense_prepared: x must be [..., {N}, {d}], got {tuple(x.shape)}."
    )
  return _apply(
      x, p.weight, p.algebra, p.path, (N, M, d), precision, prepared=True
  )


def dense_prepared_folded(x_f: jax.Array, p: PreparedDense, *, precision=None):
  """Folded activations times a cached folded weight (M_n(base) inference).

  The batch-1 fast path of a network that keeps its activations folded:
  neither the activation fold/unfold of `dense(path='fold')` nor the weight
  refold of `dense_folded` happens per call (bench.density measured the
  refold at 1.7x (M2R) and 4x (M4R) the cached call at batch 1, 4M params).

  Args:
    x_f: [n, ..., N, n*e] (see algebranets.layout).
    p: `prepare(w, algebra, 'fold')`.

  Returns:
    y_f: [n, ..., M, n*e].

  Raises:
    ValueError: `p` not prepared for the 'fold' path, or x_f of the wrong
      shape.
  """
  if p.path != "fold":
    raise ValueError(
        f"dense_prepared_folded needs prepare(w, algebra, 'fold'), got a "
        f"weight prepared for {p.path!r}; use dense_prepared for it."
    )
  n, e = layout_lib.matrix_shape(p.algebra)
  N, M = p.in_channels, p.out_channels
  if x_f.ndim < 3 or x_f.shape[0] != n or x_f.shape[-2:] != (N, n * e):
    raise ValueError(
        f"dense_prepared_folded: x_f must be folded [{n}, ..., {N}, "
        f"{n * e}], got {tuple(x_f.shape)}."
    )
  return _matmul_prepared(x_f, p.weight, N * n * e, (M, n * e), precision)


def _native(w, algebra, path):
  """The stored weight [N, M, d] in `path`'s native (input-major) layout."""
  N, M, d = w.shape
  if path == "expand":
    native = structure.expand_left(w, algebra)  # [N, M, j, k]
    return native.transpose(0, 2, 1, 3).reshape(N * d, M * d)
  if path == "right":
    return w.transpose(0, 2, 1).reshape(N * d, M)
  if path == "fold":
    return structure.fold_weight(w, algebra)
  if path == "einsum":
    return w
  raise ValueError(f"Unknown dense path {path!r}; valid: {PATHS}.")


def _apply(x, native, algebra, path, sizes, precision, *, prepared=False):
  """x times a weight in `path`'s layout: input-major [in, out] from
  `_native`, or output-major [out, in] when `prepared`."""
  N, M, d = sizes

  def matmul(x, k, out_tail):
    if prepared:
      return _matmul_prepared(x, native, k, out_tail, precision)
    return _matmul(x, native, k, out_tail, precision)

  if path == "expand":
    return matmul(x, N * d, (M, d))
  if path == "right":
    r = structure.expand_right(x, algebra)  # [..., N, i, k]
    lead = x.shape[:-2]
    r = jnp.swapaxes(r.reshape(-1, N, d, d), 1, 3)  # [T, k, i, N]
    r = jnp.swapaxes(r, 2, 3)  # [T, k, N, i]
    y = matmul(r, N * d, (M,))  # [T, k, M]
    return jnp.swapaxes(y, 1, 2).reshape(*lead, M, d)
  if path == "fold":
    n, e = layout_lib.matrix_shape(algebra)
    x_f = layout_lib.fold(x, algebra)
    y_f = matmul(x_f, N * n * e, (M, n * e))
    return layout_lib.unfold(y_f, algebra)
  return dense(x, native, algebra, path="einsum", precision=precision)
