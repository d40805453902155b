"""Algebra-valued multi-head (causal) self-attention (paper section 7).

Shape glossary: B = batch, T = sequence length (queries and keys), C =
algebra channels, H = heads, c = C / H algebra channels per head, d = algebra
dimension, n/e = matrix size/base dimension of M_n(base) (d = n * n * e).

    standard: x [B, T, C, d]        -> y [B, T, C, d]
    folded:   x [n, B, T, C, n*e]   -> y [n, B, T, C, n*e]   (M_n(base) only)

Q, K, V and the output projection are algebra `Linear` layers C -> C. Heads
split the ALGEBRA channel axis, so a head holds c whole algebra elements,
i.e. c * d real numbers. Attention scores are the ordinary real dot product
of a query and a key over those c * d reals, scaled by 1 / sqrt(c * d), as in
a real Transformer of width d_model = C * d (paper section 7, [P]; what the
paper itself did is unknown). The softmax runs in float32 whatever the input
dtype. Each head's output is the softmax-weighted sum of its value elements.

In the folded layout a head's c * d reals are spread over the leading fold
axis and the last two axes, so the dot product simply also sums over the fold
axis: no conversion to the standard layout is needed, and the result equals
the standard layout's exactly (up to float summation order).

Only the four projections are multiply-adds by the library's definition
(`metrics.accounting`); score and value products are not counted.
"""

from __future__ import annotations

import math

import haiku as hk
import jax
import jax.numpy as jnp

from algebranets import kernels
from algebranets import layout as layout_lib
from algebranets.layers import _checks
from algebranets.layers.linear import Linear

# Finite stand-in for -inf: a row whose keys are all masked then gets a
# uniform (finite) distribution instead of NaNs from exp(-inf - -inf).
_MASK_VALUE = -1e30


def causal_mask(length: int) -> jax.Array:
  """Boolean [T, T] lower-triangular mask: query t may attend to keys <= t."""
  return jnp.tril(jnp.ones((length, length), dtype=bool))


class MultiHeadAttention(hk.Module):
  """Multi-head self-attention on algebra-valued tokens.

  Parameters (canonical shapes, independent of the layout): 'query', 'key',
  'value', 'output', each an algebra `Linear` with 'w' [C, C, d] and
  'b' [C, d].
  """

  def __init__(
      self,
      num_heads: int,
      algebra,
      *,
      causal: bool = True,
      layout: str = "standard",
      path: str = "auto",
      gain: float = 1.0,
      output_gain: float | None = None,
      precision: jax.lax.Precision | None = None,
      name: str | None = None,
  ):
    """Constructs the layer.

    Args:
      num_heads: H; must divide the number of algebra channels C of the input.
      algebra: registered name or `Algebra`.
      causal: mask keys after the query position (autoregressive models).
      layout: activation layout, 'standard' or 'folded' (matrix algebras).
      path: kernel path of the four projections ('auto' or one of
        `kernels.DENSE_PATHS`; the folded layout uses 'fold').
      gain: init gain of the query, key and value projections.
      output_gain: init gain of the output projection; None means `gain`.
      precision: matmul precision of the projections and the attention
        products.
      name: module name.

    Raises:
      ValueError: non-positive num_heads, unknown algebra, layout or path,
        or the folded layout with a non-matrix algebra.
    """
    super().__init__(name=name)
    self.algebra, self.layout = _checks.resolve(algebra, layout)
    self.num_heads = _checks.positive(
        num_heads, "MultiHeadAttention: num_heads"
    )
    self.causal = causal
    # Validate the path now rather than at the first call of a projection.
    self.path = _checks.path(
        self.algebra,
        self.layout,
        path,
        kernels.DENSE_PATHS,
        "MultiHeadAttention",
    )
    self.gain = gain
    self.output_gain = gain if output_gain is None else output_gain
    self.precision = precision

  @hk.transparent
  def _linear(self, channels: int, gain: float, name: str) -> Linear:
    return Linear(
        channels,
        self.algebra,
        gain=gain,
        layout=self.layout,
        path=self.path,
        precision=self.precision,
        name=name,
    )

  def _check(self, x: jax.Array) -> None:
    _checks.check_input(
        x,
        self.algebra,
        self.layout,
        what="MultiHeadAttention",
        body="B, T, C",
        rank=4,
    )
    _checks.check_float(x, "MultiHeadAttention")
    c = x.shape[-2]
    if c % self.num_heads:
      lower = max(
          h for h in range(1, c + 1) if c % h == 0 and h <= self.num_heads
      )
      raise ValueError(
          f"MultiHeadAttention: the C={c} algebra channels of the input are "
          f"not divisible by num_heads={self.num_heads}; heads split the "
          "algebra channel axis. Use a num_heads that divides C (e.g. "
          f"{lower}) or a C that is a multiple of {self.num_heads}."
      )

  def _mask(self, mask: jax.Array | None, t: int) -> jax.Array | None:
    """Combined boolean mask of rank 4, broadcastable to [B, H, T, T]."""
    full = causal_mask(t)[None, None] if self.causal else None
    if mask is None:
      return full
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
      raise ValueError(
          "MultiHeadAttention: mask must be boolean (True = may attend), "
          f"got dtype {mask.dtype}. Use e.g. mask.astype(bool)."
      )
    if mask.ndim not in (2, 3, 4) or any(
        m not in (1, t) for m in mask.shape[-2:]
    ):
      raise ValueError(
          "MultiHeadAttention: mask must be [T, T], [B, T, T] or [B, H, T, T] "
          f"(or broadcastable to them) with T={t}, got shape "
          f"{tuple(mask.shape)}."
      )
    # Explicit rank 4 (no implicit rank promotion): [B, 1, T, T] for a
    # per-example mask shared by all heads, [1, 1, T, T] for [T, T].
    if mask.ndim == 2:
      mask = mask[None, None]
    elif mask.ndim == 3:
      mask = mask[:, None]
    return mask if full is None else jnp.logical_and(mask, full)

  def __call__(
      self, x: jax.Array, *, mask: jax.Array | None = None
  ) -> jax.Array:
    """Attends over the T positions of x.

    Args:
      x: standard [B, T, C, d] or folded [n, B, T, C, n*e] floats.
      mask: optional boolean, True where query t may attend to key s:
        [T, T], [B, T, T] or [B, H, T, T] (or broadcastable to them). It is
        combined (logical and) with the causal mask. A query whose keys are
        all masked attends uniformly to every key.

    Returns:
      y with the shape and dtype of x.

    Raises:
      ValueError: x of the wrong rank or component axis for the layout, a
        non-float dtype, C not divisible by num_heads, or a bad mask.
    """
    self._check(x)
    dtype = x.dtype
    c = x.shape[-2]
    h = self.num_heads
    q = self._linear(c, self.gain, "query")(x)
    k = self._linear(c, self.gain, "key")(x)
    v = self._linear(c, self.gain, "value")(x)

    # Split heads along the algebra channel axis: [..., C, r] -> [..., H,
    # C/H, r] with r the per-channel reals on the last axis (d, or n*e
    # folded, where the fold axis n in front holds the rest of the element).
    def heads(a):
      return a.reshape(*a.shape[:-2], h, c // h, a.shape[-1])

    q, k, v = heads(q), heads(k), heads(v)
    head_reals = (c // h) * self.algebra.dim
    folded = self.layout == layout_lib.FOLDED
    # Real dot product over all of a head's reals; folded, that includes the
    # leading fold axis 'n'.
    lead = "n" if folded else ""
    # Scores, softmax and the weighted sum accumulate in float32 at least:
    # bfloat16 logits are too coarse for a softmax over many keys.
    acc = jnp.promote_types(dtype, jnp.float32)
    scores = jnp.einsum(
        f"{lead}bthce,{lead}bshce->bhts",
        q,
        k,
        precision=self.precision,
        preferred_element_type=acc,
    )
    scores = scores / math.sqrt(head_reals)
    mask = self._mask(mask, x.shape[-3])
    if mask is not None:
      scores = jnp.where(mask, scores, jnp.asarray(_MASK_VALUE, acc))
    weights = jax.nn.softmax(scores, axis=-1)
    out = jnp.einsum(
        f"bhts,{lead}bshce->{lead}bthce",
        weights.astype(dtype),
        v,
        precision=self.precision,
        preferred_element_type=acc,
    )
    out = out.reshape(*out.shape[:-3], c, out.shape[-1]).astype(dtype)
    return self._linear(c, self.output_gain, "output")(out)
