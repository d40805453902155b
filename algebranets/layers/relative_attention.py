"""Transformer-XL relative multi-head attention on algebra-valued tokens.

Shape glossary: B = batch, T = query (current segment) length, M = memory
length, K = M + T keys, C = algebra channels, H = heads, c = C / H algebra
channels per head, d = algebra dimension, D = C * d real width.

    x [B, T, C, d], mems [B, M, C, d], r [K, C, d] -> y [B, T, C, d]

The algebra version of Transformer-XL's `RelPartialLearnableMultiHeadAttn`
(Dai et al. 2019, kimiyoung/transformer-xl pytorch/mem_transformer.py).
Keys and values see the memory followed by the segment, cat = [mems, x];
queries only the segment. With q_i, k_j the query and key of one head, u =
r_w_bias and v = r_r_bias (per head), R_k the projected relative position
embedding of row k of r (row k encodes the distance K - 1 - k: TXL's
pos_seq runs from K - 1 down to 0), the score of query i and key j is

    (q_i + u) . k_j + (q_i + v) . R_{K-1-(M+i-j)},   times 1 / sqrt(c * d),

i.e. content (AC) plus position (BD) terms, the latter computed for every
row of r and aligned with TXL's `_rel_shift` trick (`rel_shift`). The dot
products are the ordinary real ones over a head's c * d reals (paper section
7, [P]); heads split the ALGEBRA channel axis, as in `MultiHeadAttention`.

Q, K, V, the position projection (TXL's r_net) and the output projection
(o_net) are algebra `Linear` layers C -> C WITHOUT bias. u and v are real
[H, c, d] arrays passed in by the caller (shared across layers in TXL unless
untie_r). There is NO residual connection, LayerNorm or output dropout in
here: the model (`models.transformer_xl`) does them; TXL's pre-LN variant
normalises [mems, x] before the projections, which equals passing normalised
x and mems.

Init (TXL's normal(0, init_std) for every weight): per-component std
init_std * sqrt(d / m_bar), m_bar = mean_k sum_ij c_ijk^2, so every output
component has the variance of the real TXL layer of the same real width. For
algebra 'R' this is exactly TXL.

Masks follow the library convention (as `MultiHeadAttention`): True where a
query MAY attend to a key; TXL's masks are the negation (True = masked).
Scores, softmax and the weighted sum of values accumulate in float32 at
least; the softmax is float32. Only the five projections are multiply-adds
by the library's definition (`metrics.accounting`).
"""

from __future__ import annotations

import math

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras, kernels
from algebranets import layout as layout_lib
from algebranets.layers import _checks
from algebranets.layers.linear import Linear

# Finite stand-in for -inf (see attention.py): a row whose keys are all
# masked gets a uniform distribution instead of NaNs.
_MASK_VALUE = -1e30


def algebra_std(algebra, std: float) -> float:
  """Per-component std of an algebra weight equivalent to a real normal(std).

  std * sqrt(d / m_bar), m_bar = mean_k sum_ij c_ijk^2: each output component
  of an algebra layer then has the variance of the real layer of the same
  real width with weights normal(0, std). Equals std for 'R'.
  """
  alg = algebras.get(algebra)
  m_bar = float(np.mean(alg.component_gains))
  return float(std) * math.sqrt(alg.dim / m_bar)


def rel_shift(x: jax.Array) -> jax.Array:
  """Transformer-XL's `_rel_shift` on the last two axes.

  Pads a zero column in front of x [..., T, K], reads the padded rows as
  [..., K + 1, T], drops the first row and reads the rest as [..., T, K].

  Args:
    x: [..., T, K] with K >= T; x[..., i, k] is query i against relative
      position row k (distance K - 1 - k).

  Returns:
    y [..., T, K] with y[..., i, j] = x[..., i, j + T - 1 - i] wherever
    j <= i + K - T (the keys a causal query i may see: distance
    K - T + i - j >= 0). Elsewhere y holds the next row's values or zeros,
    as in TXL; the causal mask hides them.
  """
  *lead, t, k = x.shape
  pad = jnp.zeros((*lead, t, 1), x.dtype)
  padded = jnp.concatenate([pad, x], axis=-1).reshape(*lead, k + 1, t)
  return padded[..., 1:, :].reshape(*lead, t, k)


def relative_positions(
    klen: int, width: int, *, clamp_len: int = -1, dtype=jnp.float32
) -> jax.Array:
  """Transformer-XL's real sinusoidal relative position embedding.

  pos_seq = K - 1, K - 2, ..., 0 (clamped to clamp_len when clamp_len > 0),
  inv_freq_i = 1 / 10000^(2i / D), row k = [sin(pos_k * inv_freq),
  cos(pos_k * inv_freq)] (all sines, then all cosines, as TXL's
  `PositionalEmbedding`).

  Args:
    klen: K, the number of keys (memory + segment).
    width: D, the real width; an odd D drops the last cosine (TXL needs an
      even d_model).
    clamp_len: distances above it use the embedding of clamp_len; <= 0
      means no clamping (TXL: only clamp_len > 0 clamps).
    dtype: result dtype (computed in float32).

  Returns:
    [K, D] array: row k encodes the distance K - 1 - k (clamped).
  """
  pos = jnp.arange(klen - 1, -1, -1, dtype=jnp.float32)
  if clamp_len > 0:
    pos = jnp.minimum(pos, jnp.float32(clamp_len))
  half = (width + 1) // 2
  inv_freq = 1.0 / (
      10000.0 ** (jnp.arange(0, 2 * half, 2, dtype=jnp.float32) / width)
  )
  angles = pos[:, None] * inv_freq[None, :]
  emb = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
  return emb[:, :width].astype(dtype)


class RelativeMultiHeadAttention(hk.Module):
  """TXL relative multi-head attention with algebra projections.

  Parameters: 'query', 'key', 'value', 'position' (TXL's r_net) and
  'output' (o_net), each an algebra `Linear` without bias, 'w' [C, C, d]
  (5 * C * C * d reals; for 'R' TXL's 3 D^2 of qkv_net + D^2 + D^2).
  """

  def __init__(
      self,
      num_heads: int,
      algebra,
      *,
      attention_dropout_rate: float = 0.0,
      init_std: float = 0.02,
      kernel_path: str = "auto",
      precision: jax.lax.Precision | None = None,
      name: str | None = None,
  ):
    """Constructs the layer.

    Args:
      num_heads: H; must divide the number of algebra channels C.
      algebra: registered name or `Algebra`.
      attention_dropout_rate: dropout on the attention probabilities when
        training (TXL's dropatt).
      init_std: std of the equivalent real weights (see the module
        docstring for the algebra scaling).
      kernel_path: kernel path of the projections ('auto' or one of
        `kernels.DENSE_PATHS`).
      precision: matmul precision of the projections and attention products.
      name: module name.

    Raises:
      ValueError: non-positive num_heads, unknown algebra or path, dropout
        rate outside [0, 1), or init_std <= 0.
    """
    super().__init__(name=name)
    who = "RelativeMultiHeadAttention"
    self.algebra, _ = _checks.resolve(algebra, layout_lib.STANDARD)
    self.num_heads = _checks.positive(num_heads, f"{who}: num_heads")
    if not 0.0 <= attention_dropout_rate < 1.0:
      raise ValueError(
          f"{who}: attention_dropout_rate must be in [0, 1), got "
          f"{attention_dropout_rate!r}."
      )
    if not init_std > 0:
      raise ValueError(f"{who}: init_std must be > 0, got {init_std!r}.")
    self.attention_dropout_rate = float(attention_dropout_rate)
    self.init_std = float(init_std)
    self.path = _checks.path(
        self.algebra, layout_lib.STANDARD, kernel_path, kernels.DENSE_PATHS, who
    )
    self.precision = precision

  @hk.transparent
  def _linear(self, channels: int, name: str) -> Linear:
    std = algebra_std(self.algebra, self.init_std)
    return Linear(
        channels,
        self.algebra,
        with_bias=False,
        w_init=hk.initializers.RandomNormal(stddev=std),
        path=self.path,
        precision=self.precision,
        name=name,
    )

  def _check(self, x, r, r_w_bias, r_r_bias, mems) -> None:
    who = "RelativeMultiHeadAttention"
    alg = self.algebra
    _checks.check_input(
        x, alg, layout_lib.STANDARD, what=who, body="B, T, C", rank=4
    )
    _checks.check_float(x, who)
    b, t, c, d = x.shape
    h = self.num_heads
    if c % h:
      divisors = [n for n in range(1, c + 1) if c % n == 0]
      raise ValueError(
          f"{who}: the C={c} algebra channels of x are not divisible by "
          f"num_heads={h}; heads split the algebra channel axis. Use "
          f"num_heads in {divisors} or a C that is a multiple of {h}."
      )
    m = 0
    if mems is not None:
      if mems.ndim != 4 or (mems.shape[0], *mems.shape[2:]) != (b, c, d):
        raise ValueError(
            f"{who}: mems must be [B, M, C, d] = [{b}, M, {c}, {d}] to match "
            f"x {tuple(x.shape)}, got shape {tuple(mems.shape)}."
        )
      m = mems.shape[1]
    if tuple(r.shape) != (m + t, c, d):
      raise ValueError(
          f"{who}: r must be [K, C, d] = [{m + t}, {c}, {d}] (K = memory "
          f"{m} + segment {t} keys), got shape {tuple(r.shape)}."
      )
    for arg, bias in (("r_w_bias", r_w_bias), ("r_r_bias", r_r_bias)):
      if tuple(bias.shape) != (h, c // h, d):
        raise ValueError(
            f"{who}: {arg} must be [H, C/H, d] = [{h}, {c // h}, {d}], got "
            f"shape {tuple(bias.shape)}."
        )

  def _mask(self, mask, t: int, k: int) -> jax.Array:
    """The boolean mask as rank 4, broadcastable to [B, H, T, K]."""
    who = "RelativeMultiHeadAttention"
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
      raise ValueError(
          f"{who}: mask must be boolean (True = may attend), got dtype "
          f"{mask.dtype}. Use e.g. mask.astype(bool); note that TXL's masks "
          "are the negation (True = masked)."
      )
    if (
        mask.ndim not in (2, 3, 4)
        or mask.shape[-2] not in (1, t)
        or mask.shape[-1] not in (1, k)
    ):
      raise ValueError(
          f"{who}: mask must be [T, K], [B, T, K] or [B, H, T, K] (or "
          f"broadcastable) with T={t} queries and K={k} keys, got shape "
          f"{tuple(mask.shape)}."
      )
    if mask.ndim == 2:
      return mask[None, None]
    if mask.ndim == 3:
      return mask[:, None]
    return mask

  def __call__(
      self,
      x: jax.Array,
      r: jax.Array,
      r_w_bias: jax.Array,
      r_r_bias: jax.Array,
      *,
      mems: jax.Array | None = None,
      mask: jax.Array,
      is_training: bool,
  ) -> jax.Array:
    """Attends from the segment to [memory, segment].

    Args:
      x: current segment [B, T, C, d] (floats; the computation dtype).
      r: relative position embeddings [K, C, d], K = M + T; row k encodes
        the distance K - 1 - k (`relative_positions` reshaped).
      r_w_bias: u [H, C/H, d], the content bias of the queries.
      r_r_bias: v [H, C/H, d], the position bias of the queries.
      mems: memory [B, M, C, d] (inputs of this layer for the previous
        positions) or None (M = 0). Cast to x's dtype.
      mask: boolean, True where query i may attend to key j (keys are the
        M memory positions, then the T segment positions): [T, K], [B, T, K]
        or [B, H, T, K] (or broadcastable). Callers build the causal mask
        j <= M + i; a row with no allowed key attends uniformly.
      is_training: enables attention dropout (needs an rng when
        attention_dropout_rate > 0).

    Returns:
      y [B, T, C, d] with x's dtype (the output projection of the heads'
      weighted values; no residual).

    Raises:
      ValueError: wrong shapes or dtypes of the inputs, C not divisible by
        num_heads, or a bad mask.
    """
    self._check(x, r, r_w_bias, r_r_bias, mems)
    dtype = x.dtype
    b, t, c, d = x.shape
    h = self.num_heads
    cat = x if mems is None else jnp.concatenate([mems.astype(dtype), x], 1)
    k_len = cat.shape[1]
    q = self._linear(c, "query")(x)
    k = self._linear(c, "key")(cat)
    v = self._linear(c, "value")(cat)
    rk = self._linear(c, "position")(r.astype(dtype))

    def heads(a):  # [..., C, d] -> [..., H, C/H, d]
      return a.reshape(*a.shape[:-2], h, c // h, d)

    q, k, v, rk = heads(q), heads(k), heads(v), heads(rk)
    # Explicit rank: [H, c, d] -> [1, 1, H, c, d] (no implicit promotion).
    u = r_w_bias.astype(dtype)[None, None]
    w = r_r_bias.astype(dtype)[None, None]
    acc = jnp.promote_types(dtype, jnp.float32)
    prec = self.precision
    ac = jnp.einsum(
        "bihce,bjhce->bhij",
        q + u,
        k,
        precision=prec,
        preferred_element_type=acc,
    )
    bd = jnp.einsum(
        "bihce,khce->bhik",
        q + w,
        rk,
        precision=prec,
        preferred_element_type=acc,
    )
    scores = (ac + rel_shift(bd)) / math.sqrt((c // h) * d)
    allowed = self._mask(mask, t, k_len)
    scores = jnp.where(allowed, scores, jnp.asarray(_MASK_VALUE, acc))
    probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1)
    if is_training and self.attention_dropout_rate > 0:
      probs = hk.dropout(hk.next_rng_key(), self.attention_dropout_rate, probs)
    out = jnp.einsum(
        "bhij,bjhce->bihce",
        probs.astype(dtype),
        v,
        precision=prec,
        preferred_element_type=acc,
    )
    out = out.reshape(b, t, c, d).astype(dtype)
    return self._linear(c, "output")(out)


def ring_attention(
    q: jax.Array,
    keys: jax.Array,
    values: jax.Array,
    positions: jax.Array,
    r_w_bias: jax.Array,
    r_r_bias: jax.Array,
    *,
    pos: jax.Array,
    precision: jax.lax.Precision | None = None,
) -> jax.Array:
  """One query per stream against cached keys/values in a ring buffer.

  The decoding form of `RelativeMultiHeadAttention` (before its output
  projection): Transformer-XL's content keys W_k h_j and values W_v h_j do
  not depend on the query, so they are computed once per position and kept
  in a fixed-size ring of W slots, position p in slot p mod W; the position
  term only needs W_r R for the W distances, a table computed once. Slot s
  then holds the position pos - ((pos - s) mod W) at distance
  (pos - s) mod W from the query, and is valid when that position is >= 0.

  The cache is head-major with streams and heads in ONE leading dimension,
  [B*H, W, c*d] (c = C/H channels of d reals per head): every product is
  then a batched matrix-vector product over contiguous rows, with no
  per-step transpose of the cache. One dimension, not [B, H, ...]: with two
  XLA:CPU reshapes the updated ring for the products and duplicates the
  update, copying every ring several times per token inside a decoding
  loop (measured in the optimized HLO; bench/decode.py).

  Args:
    q: queries [B, C, d] of the token at absolute position `pos`.
    keys: [B*H, W, c*d] projected keys (stream b, head j in row b*H + j),
      the query's own in slot pos mod W.
    values: [B*H, W, c*d] projected values, same rows and slots.
    positions: [H, T, c*d], row t = the position projection of the
      embedding of distance t (`relative_positions` rows reversed, through
      W_r), split into heads; distances >= T - 1 use row T - 1 (T = W, or
      clamp_len + 1 for a model that clamps its distances).
    r_w_bias: u [H, c, d].
    r_r_bias: v [H, c, d].
    pos: int scalar (traced), the query's absolute position (0 = first).
    precision: matmul precision of the products.

  Returns:
    [B, C, d] in q's dtype: the heads' weighted values (no output
    projection), as `RelativeMultiHeadAttention` computes for a query whose
    keys are the W most recent positions (itself included).
  """
  dtype = q.dtype
  b, c, d = q.shape
  h = r_w_bias.shape[0]
  n, w, k = keys.shape
  if n != b * h:
    raise ValueError(
        f"ring_attention: keys have {n} rows, want B*H = {b}*{h} ([B*H, W, "
        "c*d], streams and heads flattened)."
    )
  qh = q.reshape(b, h, k)
  acc = jnp.promote_types(dtype, jnp.float32)
  ac = jnp.einsum(
      "nk,nsk->ns",
      (qh + r_w_bias.astype(dtype).reshape(1, h, k)).reshape(n, k),
      keys,
      precision=precision,
      preferred_element_type=acc,
  )
  # Scores against the table by distance, then gathered per slot: the
  # decoding form of `rel_shift`.
  by_distance = jnp.einsum(
      "bhk,htk->bht",
      qh + r_r_bias.astype(dtype).reshape(1, h, k),
      positions,
      precision=precision,
      preferred_element_type=acc,
  )
  distance = (pos - jnp.arange(w, dtype=jnp.int32)) % w
  last = positions.shape[1] - 1  # a clamped table: farther rows repeat it
  bd = jnp.take(by_distance, jnp.minimum(distance, last), axis=-1)
  bd = bd.reshape(n, w)
  scores = (ac + bd) / math.sqrt(k)
  scores = jnp.where(distance <= pos, scores, jnp.asarray(_MASK_VALUE, acc))
  probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1)
  out = jnp.einsum(
      "ns,nsk->nk",
      probs.astype(dtype),
      values,
      precision=precision,
      preferred_element_type=acc,
  )
  return out.reshape(b, c, d).astype(dtype)
