"""Algebra-valued token embedding.

Shape glossary: V = vocabulary size, C = embed_dim (algebra channels),
d = algebra dimension, n/e = matrix size/base dimension of M_n(base).

    tokens [...] (int)  ->  standard [..., C, d]  or  folded [n, ..., C, n*e]

The table is stored as 'embeddings' [V, C, d] whatever the layout: a model
width of d * C real numbers per token (paper section 7).
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp

from algebranets import layout as layout_lib
from algebranets.layers import _checks


class Embed(hk.Module):
  """Looks up algebra-valued embeddings for integer tokens.

  The default init draws every component from a truncated normal with
  stddev 1 (cut at 2 stddevs, as hk.initializers.TruncatedNormal; the
  samples' own stddev is about 0.88). Unit-scale components are what the
  variance-preserving layers after it expect; scale the table (or pass
  w_init) if a model wants another input scale.
  """

  def __init__(
      self,
      vocab_size: int,
      embed_dim: int,
      algebra,
      *,
      w_init: hk.initializers.Initializer | None = None,
      layout: str = "standard",
      name: str | None = None,
  ):
    """Constructs the embedding.

    Args:
      vocab_size: V, number of rows.
      embed_dim: C, algebra channels per token.
      algebra: registered name or `Algebra`.
      w_init: initializer for 'embeddings' [V, C, d]; default
        TruncatedNormal(stddev=1) per component.
      layout: output layout, 'standard' or 'folded' (matrix algebras).
      name: module name.

    Raises:
      ValueError: unknown algebra or layout, folded layout with a non-matrix
        algebra, non-positive sizes.
    """
    super().__init__(name=name)
    self.algebra, self.layout = _checks.resolve(algebra, layout)
    self.vocab_size = _checks.positive(vocab_size, "Embed: vocab_size")
    self.embed_dim = _checks.positive(embed_dim, "Embed: embed_dim")
    self.w_init = w_init or hk.initializers.TruncatedNormal(stddev=1.0)

  def __call__(self, tokens: jax.Array) -> jax.Array:
    """Looks up the embeddings.

    Args:
      tokens: integer array [...] with values in [0, V).

    Returns:
      [..., C, d] (standard) or [n, ..., C, n*e] (folded), float32. Ids
      outside [0, V) give NaN rows (jnp.take's fill mode) rather than a
      silently clipped row.

    Raises:
      ValueError: a non-integer token dtype.
    """
    tokens = jnp.asarray(tokens)
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(
          f"Embed: tokens must be integers, got dtype {tokens.dtype}. Pass "
          "token ids (e.g. tokens.astype(jnp.int32)), not features; lift real "
          "features with algebranets.layers.io instead."
      )
    table = hk.get_parameter(
        "embeddings",
        (self.vocab_size, self.embed_dim, self.algebra.dim),
        jnp.float32,
        init=self.w_init,
    )
    y = jnp.take(table, tokens, axis=0)
    return layout_lib.convert(y, self.algebra, layout_lib.STANDARD, self.layout)

  @hk.transparent
  def mac_count(self, x, y) -> int:
    """0: a lookup has no multiply-adds."""
    del x, y
    return 0
