"""Activation layouts: standard and column-folded (for M_n(base) algebras).

Shape glossary: B = batch (any leading axes), C = algebra channels,
d = algebra dimension, n = matrix size, e = base-algebra dimension
(d = n * n * e; e = 1 for M_n(R), 2 for M2(C)).

standard: x[..., C, d], components (row a, column b, base p) row-major.

folded:   x[n, ..., C, n * e], the matrix COLUMN b moved to a new leading
          axis, leaving (row, base) per channel. An M_n layer y = W x (weight
          on the left) maps each column of x independently with the same W, so
          on this layout a dense layer or convolution is ONE real matmul/conv
          on [n * B, ..., C * n * e] with a weight of [C * n * e, M * n * e]:
          n^3 e^2 multiply-adds per weight-activation pair, no n^4 expansion.
          Merging the leading n into the batch is a free reshape, so networks
          can stay folded from the stem to the head without transposes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from algebranets import algebras

STANDARD = "standard"
FOLDED = "folded"
LAYOUTS = (STANDARD, FOLDED)


def check_layout(layout: str) -> str:
  if layout not in LAYOUTS:
    raise ValueError(
        f"Unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}."
    )
  return layout


def matrix_shape(algebra) -> tuple[int, int]:
  """(n, e) of a matrix algebra M_n(base); ValueError for any other algebra."""
  if not isinstance(algebra, (str, algebras.Algebra)):
    raise ValueError(
        "The folded layout needs a matrix algebra M_n(base) given by name or "
        f"Algebra; got {type(algebra).__name__} (raw structure constants "
        "cannot be folded; use path='expand' or 'einsum')."
    )
  alg = algebras.get(algebra)
  if alg.matrix_shape is None:
    raise ValueError(
        f"The folded layout needs a matrix algebra M_n(base) (e.g. M2R, M3R, "
        f"M4R, M2C, or algebras.matrix_algebra(n, base)); {alg.name!r} is not "
        "one. Use layout='standard'."
    )
  n, base = alg.matrix_shape
  return n, algebras.get(base).dim


def fold(x: jax.Array, algebra) -> jax.Array:
  """[..., C, d] standard -> [n, ..., C, n*e] folded."""
  n, e = matrix_shape(algebra)
  d = n * n * e
  if x.ndim < 2 or x.shape[-1] != d:
    raise ValueError(
        f"fold: expected x[..., C, {d}] for {algebras.get(algebra).name}, got "
        f"shape {tuple(x.shape)}."
    )
  lead = x.shape[:-1]
  x = x.reshape(*lead, n, n, e)  # (row, col, base)
  x = jnp.moveaxis(x, -2, 0)  # col to front: [n, ..., C, row, base]
  return x.reshape(n, *lead, n * e)


def unfold(x_f: jax.Array, algebra) -> jax.Array:
  """[n, ..., C, n*e] folded -> [..., C, d] standard."""
  n, e = matrix_shape(algebra)
  if x_f.ndim < 3 or x_f.shape[0] != n or x_f.shape[-1] != n * e:
    raise ValueError(
        f"unfold: expected folded x[{n}, ..., C, {n * e}] for "
        f"{algebras.get(algebra).name}, got shape {tuple(x_f.shape)}."
    )
  lead = x_f.shape[1:-1]
  x = x_f.reshape(n, *lead, n, e)  # [col, ..., C, row, base]
  x = jnp.moveaxis(x, 0, -2)  # [..., C, row, col, base]
  return x.reshape(*lead, n * n * e)


def element_view(x: jax.Array, algebra, layout: str) -> tuple[jax.Array, tuple]:
  """Reshape so that each algebra element's components are explicit axes.

  Returns (view, component_axes): reducing `view` over `component_axes`
  reduces over the d components of each element, in either layout. Used by
  norm-based activations and element/whitening normalization.

  standard: view = x [..., C, d], component_axes = (-1,).
  folded:   view = x [n, ..., C, n*e], component_axes = (0, -1).
  """
  check_layout(layout)
  if layout == STANDARD:
    return x, (-1,)
  matrix_shape(algebra)
  return x, (0, x.ndim - 1)


def broadcast_param(p: jax.Array, algebra, layout: str, ndim: int) -> jax.Array:
  """A per-channel algebra parameter p [C, d] ready to combine with an
  activation of rank `ndim` in `layout` (bias, norm scale/offset).

  standard: [1, ..., 1, C, d];  folded: [n, 1, ..., 1, C, n*e].
  Parameters are always STORED as [C, d] so checkpoints do not depend on the
  layout a network ran in.
  """
  check_layout(layout)
  if layout == STANDARD:
    return p.reshape((1,) * (ndim - p.ndim) + p.shape)
  p_f = fold(p, algebra)  # [n, C, n*e]
  return p_f.reshape(p_f.shape[:1] + (1,) * (ndim - 3) + p_f.shape[1:])


def convert(x: jax.Array, algebra, src: str, dst: str) -> jax.Array:
  """Convert activations between layouts ('standard' <-> 'folded')."""
  check_layout(src)
  check_layout(dst)
  if src == dst:
    return x
  return fold(x, algebra) if dst == FOLDED else unfold(x, algebra)
