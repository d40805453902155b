"""Weight transforms shared by the dense and convolution kernels.

Shape glossary: N = input algebra channels, M = output algebra channels,
d = algebra dimension, n/e = matrix size/base dimension of M_n(base).

An algebra can be given as a registered name, an `Algebra`, or a raw
[d, d, d] array of structure constants (possibly a traced, trainable
parameter: the learned-structure / PHM layers). Everything that only needs
the constants works for all three; the fold path needs a registered matrix
algebra.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras


def resolve(algebra) -> tuple[algebras.Algebra | None, jax.Array | np.ndarray]:
  """(Algebra or None, structure constants [d, d, d])."""
  if isinstance(algebra, (str, algebras.Algebra)):
    alg = algebras.get(algebra)
    return alg, alg.structure_constants
  c = algebra
  if (
      not hasattr(c, "shape")
      or c.ndim != 3
      or not (c.shape[0] == c.shape[1] == c.shape[2])
  ):
    raise ValueError(
        "algebra must be a name, an Algebra or a [d, d, d] array of structure "
        f"constants; got {type(algebra).__name__} with shape "
        f"{getattr(algebra, 'shape', None)}."
    )
  return None, c


@functools.cache
def _signed_gather(alg: algebras.Algebra):
  """(index [d, d], sign [d, d]) with L[j, k] = sign * w[index] if c allows.

  Every built-in algebra has at most one nonzero c[i, j, k] per (j, k), so
  its left-regular block L(w)[k, j] = sum_i c_ijk w_i is a signed gather of
  one weight component: d^2 copies instead of a d^3 contraction. Returns
  None for algebras where that does not hold (then an einsum is used).
  """
  c = alg.structure_constants
  nnz = np.count_nonzero(c, axis=0)  # [j, k]
  if nnz.max() > 1 or np.any((c != 0) & (np.abs(c) != 1)):
    return None
  index = np.argmax(c != 0, axis=0).astype(np.int32)  # [j, k]
  sign = np.take_along_axis(c, index[None], axis=0)[0]  # [j, k], 0 where nnz=0
  return index, sign


def expand_left(w: jax.Array, algebra) -> jax.Array:
  """Left-regular expansion: w[..., d] -> L[..., d_j, d_k] with
  L[j, k] = sum_i c[i, j, k] w_i, so that (w x)_k = sum_j x_j L[j, k].

  The [j, k] order (input component, output component) makes
  x[..., N*d] @ L[N*d, M*d] a plain row-vector matmul.
  """
  alg, c = resolve(algebra)
  gather = _signed_gather(alg) if alg is not None else None
  if gather is not None:
    index, sign = gather
    # Explicit leading 1s: callers may run under numpy_rank_promotion='raise'.
    sign = jnp.asarray(sign, w.dtype).reshape((1,) * (w.ndim - 1) + sign.shape)
    return w[..., index] * sign
  return jnp.einsum("...i,ijk->...jk", w, jnp.asarray(c, w.dtype))


def expand_right(x: jax.Array, algebra) -> jax.Array:
  """Right-regular expansion of activations: x[..., d] -> R[..., d_i, d_k]
  with R[i, k] = sum_j c[i, j, k] x_j, so that (w x)_k = sum_i w_i R[i, k]."""
  alg, c = resolve(algebra)
  gather = _signed_gather_right(alg) if alg is not None else None
  if gather is not None:
    index, sign = gather
    sign = jnp.asarray(sign, x.dtype).reshape((1,) * (x.ndim - 1) + sign.shape)
    return x[..., index] * sign
  return jnp.einsum("...j,ijk->...ik", x, jnp.asarray(c, x.dtype))


@functools.cache
def _signed_gather_right(alg: algebras.Algebra):
  transposed = algebras.Algebra(
      name=alg.name + "^T",
      structure_constants=alg.structure_constants.transpose(1, 0, 2),
  )
  return _signed_gather(transposed)


def fold_weight(w: jax.Array, algebra) -> jax.Array:
  """M_n(base) weight [..., N, M, d] -> folded real weight
  [..., N * n * e, M * n * e] acting on folded activations (see layout.py).

  Rows are (N, col c, base j), columns (M, row a, base k):
  W_f[(N,c,j), (M,a,k)] = sum_i w[N, M, (a, c, i)] cb[i, j, k].
  For M_n(R) (e = 1) this is a pure transpose of the stored weight.
  """
  alg, _ = resolve(algebra)
  if alg is None or alg.matrix_shape is None:
    what = "raw structure constants" if alg is None else repr(alg.name)
    raise ValueError(f"fold_weight needs a matrix algebra, got {what}.")
  n, base_name = alg.matrix_shape
  base = algebras.get(base_name)
  e = base.dim
  *lead, N, M, _ = w.shape
  wm = w.reshape(*lead, N, M, n, n, e)  # (a, c, i)
  if e == 1:
    blocks = wm  # [.., N, M, a, c, 1]: L is the scalar itself
  else:
    blocks = expand_left(wm, base)  # [.., N, M, a, c, j, k]
  # -> [.., N, c, j, M, a, k]
  nl = len(lead)
  perm = [*range(nl), nl, nl + 3, nl + 4, nl + 1, nl + 2, nl + 5]
  if e == 1:
    blocks = blocks.reshape(*lead, N, M, n, n, 1, 1)
  return blocks.transpose(perm).reshape(*lead, N * n * e, M * n * e)


def check_fold_path(path: str, algebra, who: str) -> None:
  """ValueError unless path != 'fold' or the algebra is M_n(base)."""
  if path != "fold":
    return
  alg, _ = resolve(algebra)
  if alg is None or alg.matrix_shape is None:
    what = "raw structure constants" if alg is None else repr(alg.name)
    raise ValueError(
        f"{who}: path='fold' needs a matrix algebra M_n(base) (M2R, M3R, "
        f"M4R, M2C, algebras.matrix_algebra); got {what}. Use path='auto', "
        "'expand' or 'einsum'."
    )
