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

from algebranets import layout as layout_lib
from algebranets.kernels import structure

PATHS = ("einsum", "expand", "right", "fold")


def choose_path(algebra, x_shape, w_shape) -> str:
  """The path `dense(..., path='auto')` uses for these shapes.

  M_n(base) always folds (minimal MACs, weight only transposed). Otherwise
  the block expansion, unless there are fewer tokens than output channels:
  then building L(w) (N*M*d^2 writes per call) costs more than expanding the
  activations (T*N*d^2), so the activation-side path is used.
  """
  alg, c = structure.resolve(algebra)
  d = c.shape[0]
  if alg is not None and alg.matrix_shape is not None and d > 1:
    return "fold"
  if d == 1:
    return "expand"
  tokens = math.prod(x_shape[:-2])
  out_channels = w_shape[1]
  return "right" if tokens < out_channels else "expand"


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


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PreparedDense:
  """A dense weight converted once into a kernel's native layout.

  For inference (e.g. autoregressive sampling) build it once with `prepare`
  and call `dense_prepared` every step, so the expansion / transpose is not
  redone per call. A pytree: jit-able, `weight` is the only leaf.
  """

  weight: jax.Array
  path: str = dataclasses.field(metadata=dict(static=True))
  algebra: object = dataclasses.field(metadata=dict(static=True))
  in_channels: int = dataclasses.field(metadata=dict(static=True))
  out_channels: int = dataclasses.field(metadata=dict(static=True))
  dim: int = dataclasses.field(metadata=dict(static=True))


def prepare(w: jax.Array, algebra, path: str) -> PreparedDense:
  """Convert a stored weight [N, M, d] into `path`'s native layout.

  expand -> L(w) [N*d, M*d]; right -> compact [N*d, M]; fold -> W_f
  [N*n*e, M*n*e]. (einsum keeps [N, M, d].) `algebra` must be hashable here
  (a name or Algebra); learned constants go through `dense` directly.
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
  return PreparedDense(native, path, alg, N, M, d)


def dense_prepared(x: jax.Array, p: PreparedDense, *, precision=None):
  """`dense` with a weight from `prepare`: x [..., N, d] -> [..., M, d]."""
  N, M, d = p.in_channels, p.out_channels, p.dim
  if x.ndim < 2 or x.shape[-2:] != (N, d):
    raise ValueError(
        f"dense_prepared: x must be [..., {N}, {d}], got {tuple(x.shape)}."
    )
  return _apply(x, p.weight, p.algebra, p.path, (N, M, d), precision)


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
  return _matmul(x_f, p.weight, N * n * e, (M, n * e), precision)


def _native(w, algebra, path):
  """The stored weight [N, M, d] in `path`'s native layout."""
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


def _apply(x, native, algebra, path, sizes, precision):
  N, M, d = sizes
  if path == "expand":
    return _matmul(x, native, N * d, (M, d), precision)
  if path == "right":
    r = structure.expand_right(x, algebra)  # [..., N, i, k]
    lead = x.shape[:-2]
    r = jnp.swapaxes(r.reshape(-1, N * d, d), 1, 2)  # [T, k, N*d]
    y = jnp.dot(r, native, precision=precision)  # [T, k, M]
    return jnp.swapaxes(y, 1, 2).reshape(*lead, M, d)
  if path == "fold":
    n, e = layout_lib.matrix_shape(algebra)
    x_f = layout_lib.fold(x, algebra)
    y_f = _matmul(x_f, native, N * n * e, (M, n * e), precision)
    return layout_lib.unfold(y_f, algebra)
  return dense(x, native, algebra, path="einsum", precision=precision)
