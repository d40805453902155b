"""Transformer-XL language model on algebra-valued tokens (paper section 8).

Shape glossary: B = batch, T = segment length, M = memory length (of the
given mems), K = M + T keys, L = layers, V = vocabulary size, C = algebra
channels per token, d = algebra dimension (real width D = C * d, TXL's
d_model), H = heads, F = FFN algebra channels (real width F * d, TXL's
d_inner), mem_len = positions kept for the next segment.

    tokens [B, T] -> AdaptiveEmbedding [B, T, C, d] (x sqrt(D)) -> dropout
    r = relative_positions(K, D) -> [K, C, d] -> dropout
    L x layer (post-norm, TXL's default; pre_norm=True moves each LN before
    its sublayer, and TXL has no final LN in either variant):
      x = LN(x + drop(RelAttn(x, r, u, v, mems_i)))
      x = LN(x + drop(Linear_C(drop(Act(Linear_F(x))))))
    -> dropout -> ProjectedAdaptiveLogSoftmax -> nll [B, T] float32

The official Transformer-XL (Dai et al. 2019, kimiyoung/transformer-xl,
pytorch/mem_transformer.py `MemTransformerLM` with attn_type 0) with every
weight matrix an algebra `Linear` and the embedding tables algebra-valued
(paper section 7 [P]; what the paper itself did is [U]). For algebra 'R'
(d = 1) it is the real Transformer-XL, with exactly its parameter counts:

| model | algebra | C | params |
| --- | --- | --- | --- |
| enwik8 base (12L, D 512, 8 heads, d_inner 2048, V 204, tied) | R | 512 | 41,055,436 |
| enwik8 base, same real width D = 512 | C | 256 | 20,608,204 |
| enwik8 base, same real width D = 512 | H | 128 | 10,384,588 |
| enwik8 base, same real width D = 512 | M2R | 128 | 10,384,588 |
| WT103 base (16L, D 410, 10 heads, d_inner 2100, V 267,735, cutoffs 20k/40k/200k, tied) | R | 410 | 151,107,538 |

(An algebra weight [N, M, d] holds N * M * d reals, 1/d of the real layer;
biases, LayerNorms, the embedding, r_w_bias/r_r_bias and the softmax biases
keep the real count.)

Memory (TXL `_update_mems`): the input of every layer (the dropped-out
embedding for layer 0, the output of layer i - 1 for layer i) is kept for
the next segment: new_mems = the last mem_len positions of
concat(mems, layer inputs) with `jax.lax.stop_gradient`, [L, B, mem_len', C,
d] with mem_len' = min(mem_len, M + T) (TXL's memory grows from empty during
the first segments; pass a full mem_len memory to get mem_len positions).
Layer i attends from its segment to [mems[i], segment].

Masks (True = may attend; TXL builds the negation): query i (absolute key
position M + i) sees keys j <= M + i; with same_length, when K > mem_len
every query sees exactly the mem_len most recent keys (itself included),
TXL's mask with its mem_len. `num_valid_mems` additionally hides the first
M - num_valid_mems memory positions (a fixed-size memory that is not yet
full, e.g. batch-1 sampling from empty zeros).

Parameters (all under the model's name, e.g. 'transformer_xl/layer_0/...'):
  embed/...                 `AdaptiveEmbedding` (embeddings [V, C, d], ...)
  relative_bias/r_w_bias, r_r_bias   [H, C/H, d] real ([L, H, C/H, d] with
                            untie_r, one slice per layer; TXL's TF layout)
  layer_{i}/attention/{query,key,value,position,output}/w   [C, C, d]
  layer_{i}/attention_norm, ffn_norm   LayerNorm scale/offset [C, d]
  layer_{i}/ffn_in/w [C, F, d], b [F, d]; ffn_out/w [F, C, d], b [C, d]
  head/...                  `ProjectedAdaptiveLogSoftmax` (bias [V], ...;
                            the path component 'head' marks the real output
                            layer for the accounting code)

Init (TXL's init='normal'): algebra weights normal with per-component std
init_std * sqrt(d / m_bar) (each output component has the variance of the
real TXL layer), r_w_bias/r_r_bias normal(0, init_std), biases 0,
LayerNorm scale 1 and offset 0 (TXL draws the scale from normal(1,
init_std); the exact 1 is a simplification).

Dropout (`dropout_rate`) as in TXL: on the embedding, the position
embedding, inside the FFN, after the attention and FFN sublayers and before
the softmax; `dropout_unit='element'` drops whole algebra elements (one mask
value for all d components), 'component' every real independently (what a
real network of width D does). Attention probabilities use
`attention_dropout_rate`.

Computations run in the dtype of the parameters (bfloat16 parameters give a
bfloat16 network; scores, softmaxes and the nll are float32).

Config (`default_config`) widths are REAL: C = d_model * width_multiplier /
d, F = d_inner * width_multiplier / d.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras, config_access, kernels, layers
from algebranets import layout as layout_lib
from algebranets.layers import _checks, adaptive
from algebranets.layers import relative_attention as rel_attn

NAME = "transformer_xl"

DROPOUT_UNITS = ("element", "component")
# Config values this model supports for the generic model-section keys.
LIFTS = ("adaptive_embed",)
HEADS = ("adaptive_softmax",)
NORMS = ("layer",)
LAYOUTS = (layout_lib.STANDARD,)


def algebra_dropout(
    x: jax.Array, rate: float, *, unit: str, is_training: bool
) -> jax.Array:
  """Dropout on algebra-valued activations [..., C, d].

  Args:
    x: [..., C, d] (any rank >= 1; the last axis holds the d components).
    rate: drop probability in [0, 1); kept values are scaled by
      1 / (1 - rate).
    unit: 'element' (one keep/drop draw per algebra element: all d
      components together) or 'component' (every real independently).
    is_training: no-op when False (or rate == 0); otherwise needs an rng.

  Returns:
    x's shape and dtype.

  Raises:
    ValueError: unknown unit or rate outside [0, 1).
  """
  if unit not in DROPOUT_UNITS:
    raise ValueError(
        f"algebra_dropout: unknown unit {unit!r}; valid: "
        f"{', '.join(DROPOUT_UNITS)}."
    )
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"algebra_dropout: rate must be in [0, 1), got {rate!r}.")
  if not is_training or rate == 0:
    return x
  bcast = (x.ndim - 1,) if unit == "element" else ()
  return hk.dropout(hk.next_rng_key(), rate, x, broadcast_dims=bcast)


def attention_mask(
    qlen: int,
    mlen: int,
    *,
    mem_len: int,
    same_length: bool,
) -> np.ndarray:
  """Boolean [T, K] mask, True where query i may attend to key j.

  Keys are the mlen memory positions followed by the qlen segment positions
  (K = mlen + qlen). Causal: j <= mlen + i. With same_length (TXL): when
  K > mem_len, also j > i + mlen - mem_len, so every query sees exactly its
  mem_len most recent keys (itself included); otherwise plain causal.

  Args:
    qlen: T.
    mlen: M, the memory length of this call.
    mem_len: the model's memory length (TXL's self.mem_len).
    same_length: TXL's same_length.
  """
  klen = mlen + qlen
  i = np.arange(qlen)[:, None]
  j = np.arange(klen)[None, :]
  allowed = j <= i + mlen
  if same_length:
    mask_len = klen - mem_len
    shift = qlen - mask_len if mask_len > 0 else qlen
    allowed &= j > i - shift
  return allowed


class _RelativeBiases(hk.Module):
  """TXL's r_w_bias (u) and r_r_bias (v); no multiply-adds."""

  performs_no_macs = True

  def __call__(
      self, shape: tuple[int, ...], init_std: float
  ) -> tuple[jax.Array, jax.Array]:
    init = hk.initializers.RandomNormal(stddev=init_std)
    u = hk.get_parameter("r_w_bias", shape, jnp.float32, init=init)
    v = hk.get_parameter("r_r_bias", shape, jnp.float32, init=init)
    return u, v


class _Layer(hk.Module):
  """One TXL decoder layer (RelPartialLearnableDecoderLayer)."""

  def __init__(self, model: TransformerXL, name: str):
    super().__init__(name=name)
    self.m = model

  @hk.transparent
  def _norm(self, name: str):
    return layers.get_norm(
        "layer", self.m.algebra, mode=self.m.norm_mode, name=name
    )

  @hk.transparent
  def _linear(self, channels: int, name: str) -> layers.Linear:
    std = rel_attn.algebra_std(self.m.algebra, self.m.init_std)
    return layers.Linear(
        channels,
        self.m.algebra,
        w_init=hk.initializers.RandomNormal(stddev=std),
        path=self.m.kernel_path,
        name=name,
    )

  def _drop(self, x: jax.Array, is_training: bool) -> jax.Array:
    return algebra_dropout(
        x,
        self.m.dropout_rate,
        unit=self.m.dropout_unit,
        is_training=is_training,
    )

  def __call__(
      self,
      x: jax.Array,
      r: jax.Array,
      u: jax.Array,
      v: jax.Array,
      mems: jax.Array | None,
      mask: jax.Array,
      *,
      is_training: bool,
  ) -> jax.Array:
    m = self.m
    attention = rel_attn.RelativeMultiHeadAttention(
        m.num_heads,
        m.algebra,
        attention_dropout_rate=m.attention_dropout_rate,
        init_std=m.init_std,
        kernel_path=m.kernel_path,
        name="attention",
    )
    attention_norm = self._norm("attention_norm")
    ffn_norm = self._norm("ffn_norm")

    def ffn(y):
      y = self._linear(m.d_inner_channels, "ffn_in")(y)
      y = layers.get_activation(m.activation, m.algebra)(y)
      y = self._drop(y, is_training)
      return self._linear(m.num_channels, "ffn_out")(y)

    if m.pre_norm:
      # TXL normalises [mems, x] before the projections; LN is per token,
      # so normalising both separately is the same.
      mems_n = None if mems is None else attention_norm(mems)
      a = attention(
          attention_norm(x),
          r,
          u,
          v,
          mems=mems_n,
          mask=mask,
          is_training=is_training,
      )
      x = x + self._drop(a, is_training)
      return x + self._drop(ffn(ffn_norm(x)), is_training)
    a = attention(x, r, u, v, mems=mems, mask=mask, is_training=is_training)
    x = attention_norm(x + self._drop(a, is_training))
    return ffn_norm(x + self._drop(ffn(x), is_training))


class TransformerXL(hk.Module):
  """Transformer-XL with algebra-valued embeddings and layers.

  See the module docstring for the architecture, parameters, memory and
  masks. Call inside `hk.transform`; `__call__` for training/evaluation
  (per-token nll), `log_prob` for sampling.
  """

  def __init__(
      self,
      vocab_size: int,
      num_layers: int,
      num_channels: int,
      num_heads: int,
      d_inner_channels: int,
      algebra,
      *,
      dropout_rate: float = 0.0,
      attention_dropout_rate: float = 0.0,
      dropout_unit: str = "element",
      mem_len: int = 0,
      clamp_len: int = -1,
      same_length: bool = False,
      pre_norm: bool = False,
      untie_r: bool = False,
      cutoffs: Sequence[int] = (),
      div_val: int = 1,
      tie_weight: bool = True,
      tie_projs: Sequence[bool] = (False,),
      init_std: float = 0.02,
      proj_init_std: float = 0.01,
      activation: str = "split",
      norm_mode: str = "component",
      kernel_path: str = "auto",
      name: str | None = None,
  ):
    """Constructs the model (static hyperparameters only).

    Args:
      vocab_size: V.
      num_layers: L.
      num_channels: C, algebra channels per token (real width C * d).
      num_heads: H; must divide C (head real width (C / H) * d).
      d_inner_channels: F, algebra channels of the FFN hidden layer.
      algebra: registered name or `Algebra`.
      dropout_rate: TXL's dropout (see the module docstring for where).
      attention_dropout_rate: TXL's dropatt, on the attention probabilities.
      dropout_unit: 'element' or 'component' (see `algebra_dropout`).
      mem_len: positions of memory returned for the next segment (0 = no
        memory); also the window of same_length.
      clamp_len: relative distances above it share one embedding; <= 0 (-1
        by convention) means no clamping.
      same_length: every query attends to the same number (mem_len) of keys.
      pre_norm: LayerNorm before each sublayer (TXL's pre_lnorm) instead of
        after the residual add.
      untie_r: one r_w_bias/r_r_bias per layer instead of one shared pair.
      cutoffs: adaptive input/softmax cluster cutoffs (() = one cluster);
        cutoffs >= vocab_size are dropped with a warning.
      div_val: cluster i has C // div_val**i algebra channels.
      tie_weight: the softmax's output weights are the embedding tables.
      tie_projs: per cluster, whether the softmax projection is the
        embedding's (with tie_weight and div_val > 1 only, as in TXL);
        shorter than len(cutoffs) + 1 is padded with False (TXL's default
        (False,)).
      init_std: std of the equivalent real weights.
      proj_init_std: std of the equivalent real adaptive projections.
      activation: FFN activation kind (`layers.ACTIVATIONS`; 'split' = ReLU
        per component, TXL's ReLU for 'R').
      norm_mode: LayerNorm mode (`layers.NORM_MODES`); 'component' is a
        standard LN over the C * d reals of a token.
      kernel_path: kernel path of the algebra linear layers.
      name: module name; default 'transformer_xl'.

    Raises:
      ValueError: invalid sizes or rates, unknown algebra/activation/norm
        mode/dropout unit/path, C not divisible by num_heads or div_val**i,
        same_length with mem_len 0, or tie_projs longer than the clusters.
    """
    super().__init__(name=name or NAME)
    who = "TransformerXL"
    pos = _checks.positive
    self.vocab_size = pos(vocab_size, f"{who}: vocab_size")
    self.num_layers = pos(num_layers, f"{who}: num_layers")
    self.num_channels = pos(num_channels, f"{who}: num_channels")
    self.num_heads = pos(num_heads, f"{who}: num_heads")
    self.d_inner_channels = pos(d_inner_channels, f"{who}: d_inner_channels")
    self.algebra, _ = _checks.resolve(algebra, layout_lib.STANDARD)
    if num_channels % num_heads:
      divisors = [
          h for h in range(1, num_channels + 1) if num_channels % h == 0
      ]
      raise ValueError(
          f"{who}: num_channels C={num_channels} is not divisible by "
          f"num_heads={num_heads}; heads split the algebra channels. Choose "
          f"num_heads in {divisors}."
      )
    for arg, rate in (
        ("dropout_rate", dropout_rate),
        ("attention_dropout_rate", attention_dropout_rate),
    ):
      if not 0.0 <= rate < 1.0:
        raise ValueError(f"{who}: {arg} must be in [0, 1), got {rate!r}.")
    if dropout_unit not in DROPOUT_UNITS:
      raise ValueError(
          f"{who}: unknown dropout_unit {dropout_unit!r}; valid: "
          f"{', '.join(DROPOUT_UNITS)}."
      )
    if not _is_int(mem_len) or mem_len < 0:
      raise ValueError(f"{who}: mem_len must be an int >= 0, got {mem_len!r}.")
    if not _is_int(clamp_len):
      raise ValueError(f"{who}: clamp_len must be an int, got {clamp_len!r}.")
    if same_length and mem_len == 0:
      raise ValueError(
          f"{who}: same_length=True makes every query attend to its mem_len "
          "most recent keys, so it needs mem_len >= 1 (mem_len=0 would mask "
          "every key). Set mem_len > 0 or same_length=False."
      )
    config_access.check_choice(
        activation, "activation", layers.ACTIVATIONS, who
    )
    config_access.check_choice(norm_mode, "norm_mode", layers.NORM_MODES, who)
    for arg, std in (("init_std", init_std), ("proj_init_std", proj_init_std)):
      if not std > 0:
        raise ValueError(f"{who}: {arg} must be > 0, got {std!r}.")
    cutoffs = tuple(int(c) for c in cutoffs)
    tie_projs = tuple(bool(t) for t in tie_projs)
    if len(tie_projs) > len(cutoffs) + 1:
      raise ValueError(
          f"{who}: tie_projs {tie_projs} has more entries than the "
          f"{len(cutoffs) + 1} clusters of cutoffs {cutoffs}; give at most "
          "one per cluster."
      )
    self.dropout_rate = float(dropout_rate)
    self.attention_dropout_rate = float(attention_dropout_rate)
    self.dropout_unit = dropout_unit
    self.mem_len = int(mem_len)
    self.clamp_len = int(clamp_len)
    self.same_length = bool(same_length)
    self.pre_norm = bool(pre_norm)
    self.untie_r = bool(untie_r)
    self.cutoffs = cutoffs
    self.div_val = div_val
    self.tie_weight = bool(tie_weight)
    self.tie_projs = tie_projs + (False,) * (len(cutoffs) + 1 - len(tie_projs))
    self.init_std = float(init_std)
    self.proj_init_std = float(proj_init_std)
    self.activation = activation
    self.norm_mode = norm_mode
    self.kernel_path = _checks.path(
        self.algebra,
        layout_lib.STANDARD,
        kernel_path,
        kernels.DENSE_PATHS,
        who,
    )
    # Fail now (not at the first call) on cutoffs and div_val.
    if not _is_int(div_val) or div_val < 1:
      raise ValueError(f"{who}: div_val must be an int >= 1, got {div_val!r}.")
    boundaries = adaptive.check_cutoffs(cutoffs, vocab_size)
    for i in range(len(boundaries)):
      if num_channels % (div_val**i):
        raise ValueError(
            f"{who}: num_channels C={num_channels} is not divisible by "
            f"div_val**{i} = {div_val**i} (adaptive cluster {i} has C / "
            f"div_val**{i} algebra channels). Use a C divisible by "
            f"{div_val ** (len(boundaries) - 1)} or a smaller div_val."
        )

  # -- pieces ------------------------------------------------------------------

  @hk.transparent
  def _modules(self):
    """(embedding, softmax): created in __call__/log_prob, same names."""
    alg, c = self.algebra, self.num_channels
    embed = adaptive.AdaptiveEmbedding(
        self.vocab_size,
        c,
        alg,
        cutoffs=self.cutoffs,
        div_val=self.div_val,
        init_std=self.init_std,
        proj_init_std=self.proj_init_std,
        name="embed",
    )
    head = adaptive.ProjectedAdaptiveLogSoftmax(
        self.vocab_size,
        c,
        alg,
        cutoffs=self.cutoffs,
        div_val=self.div_val,
        tie_projs=self.tie_projs,
        init_std=self.init_std,
        proj_init_std=self.proj_init_std,
        name="head",
    )
    return embed, head

  def _check_inputs(self, tokens, mems, num_valid_mems):
    who = "TransformerXL"
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(
          f"{who}: expected integer tokens [B, T], got shape "
          f"{tuple(tokens.shape)} and dtype {tokens.dtype}."
      )
    if mems is not None:
      b = tokens.shape[0]
      c, d = self.num_channels, self.algebra.dim
      want = (self.num_layers, b, c, d)
      got = tuple(mems.shape)
      if len(got) != 5 or (got[0], got[1], got[3], got[4]) != want:
        raise ValueError(
            f"{who}: mems must be [L, B, M, C, d] = [{self.num_layers}, {b}, "
            f"M, {c}, {d}] (the new_mems of the previous segment), got shape "
            f"{got}."
        )
      if not jnp.issubdtype(mems.dtype, jnp.floating):
        raise ValueError(
            f"{who}: mems must be floating point, got dtype {mems.dtype}."
        )
    if num_valid_mems is not None and mems is None:
      raise ValueError(
          f"{who}: num_valid_mems={num_valid_mems!r} was given without mems."
      )
    return tokens

  @hk.transparent
  def _hidden(
      self,
      embed: adaptive.AdaptiveEmbedding,
      tokens: jax.Array,
      mems: jax.Array | None,
      num_valid_mems,
      is_training: bool,
  ) -> tuple[jax.Array, jax.Array]:
    """Final hidden states [B, T, C, d] (before the softmax) and new_mems."""
    c, d = self.num_channels, self.algebra.dim
    h, nl = self.num_heads, self.num_layers
    bias_shape = (h, c // h, d)
    if self.untie_r:
      bias_shape = (nl, *bias_shape)
    u, v = _RelativeBiases(name="relative_bias")(bias_shape, self.init_std)
    # The parameters' dtype is the computation dtype (a bfloat16 cast of the
    # params gives a bfloat16 network).
    dtype = u.dtype
    b, t = tokens.shape
    mlen = 0 if mems is None else mems.shape[2]
    klen = mlen + t

    allowed = jnp.asarray(
        attention_mask(
            t, mlen, mem_len=self.mem_len, same_length=self.same_length
        )
    )
    if num_valid_mems is not None:
      first_valid = mlen - jnp.asarray(num_valid_mems, jnp.int32)
      key_pos = jnp.arange(klen, dtype=jnp.int32)
      allowed = jnp.logical_and(allowed, (key_pos >= first_valid)[None, :])

    def drop(x):
      return algebra_dropout(
          x, self.dropout_rate, unit=self.dropout_unit, is_training=is_training
      )

    r = rel_attn.relative_positions(
        klen, c * d, clamp_len=self.clamp_len, dtype=dtype
    ).reshape(klen, c, d)
    r = drop(r)
    x = drop(embed(tokens).astype(dtype))
    layer_inputs = []
    for i in range(nl):
      layer_inputs.append(x)
      ui, vi = (u[i], v[i]) if self.untie_r else (u, v)
      mems_i = None if mems is None else mems[i].astype(dtype)
      x = _Layer(self, name=f"layer_{i}")(
          x, r, ui, vi, mems_i, allowed, is_training=is_training
      )
    x = drop(x)

    if self.mem_len == 0:
      new_mems = jnp.zeros((nl, b, 0, c, d), dtype)
    else:
      hids = jnp.stack(layer_inputs)  # [L, B, T, C, d]
      if mems is not None:
        hids = jnp.concatenate([mems.astype(dtype), hids], axis=2)
      keep = min(self.mem_len, hids.shape[2])
      new_mems = hids[:, :, hids.shape[2] - keep :]
    return x, jax.lax.stop_gradient(new_mems)

  # -- public ------------------------------------------------------------------

  def __call__(
      self,
      tokens: jax.Array,
      targets: jax.Array | None,
      mems: jax.Array | None,
      *,
      is_training: bool,
      num_valid_mems: int | jax.Array | None = None,
  ) -> tuple[jax.Array, jax.Array]:
    """Per-token negative log-likelihood of the targets, and the new memory.

    Args:
      tokens: int [B, T] inputs in [0, V).
      targets: int [B, T] next tokens in [0, V), or None to get the full
        log-probabilities instead of the nll (see `log_prob`).
      mems: [L, B, M, C, d] memory (the new_mems of the previous segment),
        or None (M = 0). Any float dtype (cast to the parameters').
      is_training: enables dropout (needs an rng when a rate is > 0).
      num_valid_mems: optional int scalar (traced or static): only the last
        num_valid_mems memory positions may be attended to (a fixed-size
        memory that is not full yet); None = all M.

    Returns:
      (nll [B, T] float32 (log_probs [B, T, V] float32 when targets is
      None), new_mems [L, B, min(mem_len, M + T), C, d] in the parameters'
      dtype, without gradient).

    Raises:
      ValueError: tokens not int [B, T], mems of the wrong shape, or
        targets of another shape.
    """
    tokens = self._check_inputs(tokens, mems, num_valid_mems)
    if targets is not None:
      targets = jnp.asarray(targets)
      if targets.shape != tokens.shape:
        raise ValueError(
            f"TransformerXL: targets must have the tokens' shape "
            f"{tuple(tokens.shape)}, got {tuple(targets.shape)}."
        )
    embed, head = self._modules()
    x, new_mems = self._hidden(embed, tokens, mems, num_valid_mems, is_training)
    tied = embed if self.tie_weight else None
    if targets is None:
      return head.log_prob(x, tied=tied).astype(jnp.float32), new_mems
    return head(x, targets, tied=tied).astype(jnp.float32), new_mems

  def log_prob(
      self,
      tokens: jax.Array,
      mems: jax.Array | None,
      *,
      num_valid_mems: int | jax.Array | None = None,
  ) -> tuple[jax.Array, jax.Array]:
    """Next-token log-probabilities over the vocabulary (no dropout).

    Args:
      tokens: int [B, T].
      mems: [L, B, M, C, d] or None (see `__call__`).
      num_valid_mems: see `__call__`.

    Returns:
      (log_probs [B, T, V] float32, new_mems as in `__call__`).
    """
    # Through __call__ so that the parameters have the same paths (Haiku
    # scopes modules created in another method under '~log_prob').
    return self(
        tokens, None, mems, is_training=False, num_valid_mems=num_valid_mems
    )


# -- configs -------------------------------------------------------------------


def default_config() -> dict[str, Any]:
  """Defaults of the model section of a config (plain dict, fresh each call).

  The official enwik8 base model (kimiyoung/transformer-xl
  run_enwik8_base.sh) in algebra M2R at the same real width. d_model and
  d_inner are REAL widths before width_multiplier: C = d_model *
  width_multiplier / d and F = d_inner * width_multiplier / d algebra
  channels. eval_* replace mem_len, clamp_len and same_length when the model
  is built for evaluation (`from_config(..., is_eval=True)`).
  """
  return {
      "name": NAME,
      "algebra": "M2R",
      "width_multiplier": 1.0,
      "d_model": 512,
      "num_layers": 12,
      "num_heads": 8,
      "d_inner": 2048,
      "dropout_rate": 0.1,
      "attention_dropout_rate": 0.0,
      "dropout_unit": "element",
      "mem_len": 512,
      "eval_mem_len": 2100,
      "clamp_len": -1,
      "eval_clamp_len": 820,
      "same_length": False,
      "eval_same_length": True,
      "pre_norm": False,
      "untie_r": False,
      "cutoffs": (),
      "div_val": 1,
      "tie_weight": True,
      "tie_projs": (False,),
      "init_std": 0.02,
      "proj_init_std": 0.01,
      "activation": "split",
      "norm": "layer",
      "norm_mode": "component",
      "lift": "adaptive_embed",
      "head": "adaptive_softmax",
      "layout": "standard",
      "kernel_path": "auto",
  }


def _resolved(model_cfg: Any) -> dict[str, Any]:
  """Defaults updated with model_cfg; unknown keys raise (typos)."""
  return config_access.with_defaults(model_cfg, default_config(), NAME)


def _is_int(v) -> bool:
  return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_int(cfg: dict[str, Any], key: str, low: int, note: str = "") -> int:
  v = cfg[key]
  if not _is_int(v) or v < low:
    raise ValueError(
        f"transformer_xl: {key} must be an integer >= {low}, got {v!r}.{note}"
    )
  return int(v)


def _check_bool(cfg: dict[str, Any], key: str) -> None:
  if not isinstance(cfg[key], (bool, np.bool_)):
    raise ValueError(
        f"transformer_xl: {key} must be True or False, got {cfg[key]!r}."
    )


def _check_rate(cfg: dict[str, Any], key: str) -> None:
  v = cfg[key]
  if isinstance(v, bool) or not isinstance(v, (int, float)):
    raise ValueError(
        f"transformer_xl: {key} must be a number in [0, 1), got {v!r}."
    )
  if not 0.0 <= v < 1.0:
    raise ValueError(f"transformer_xl: {key} must be in [0, 1), got {v!r}.")


def _check_positive_number(cfg: dict[str, Any], key: str) -> None:
  v = cfg[key]
  if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
    raise ValueError(
        f"transformer_xl: {key} must be a positive number, got {v!r}."
    )


def _check_choice(cfg, key: str, valid, note: str = "") -> None:
  config_access.check_choice(cfg[key], key, valid, NAME, note)


def _algebra_channels(cfg: dict[str, Any], key: str) -> int:
  """cfg[key] * width_multiplier / d as an int (ValueError if not one)."""
  alg = algebras.get(cfg["algebra"])
  _check_int(cfg, key, 1)
  wm = cfg["width_multiplier"]
  if isinstance(wm, bool) or not isinstance(wm, (int, float)) or not wm > 0:
    raise ValueError(
        "transformer_xl: width_multiplier must be a positive number, got "
        f"{wm!r}."
    )
  real = cfg[key] * wm
  rounded = round(real)
  if abs(real - rounded) > 1e-6 * max(1.0, abs(real)):
    raise ValueError(
        f"transformer_xl: {key}*width_multiplier = {cfg[key]}*{wm} = "
        f"{real:g} is not an integer number of real features; choose a "
        f"width_multiplier that makes it one (e.g. {math.floor(real)} / "
        f"{cfg[key]} or {math.ceil(real)} / {cfg[key]})."
    )
  real, d = int(rounded), alg.dim
  if real < 1 or real % d:
    low = max(d, real - real % d)
    high = (real // d + 1) * d
    examples = f"{low} or {high}" if low != high else f"{high}"
    raise ValueError(
        f"transformer_xl: {key}*width_multiplier = {real} is not divisible "
        f"by the dimension {d} of algebra {alg.name}; choose a multiple of "
        f"{d}, e.g. {examples}."
    )
  return real // d


def channels_for(model_cfg: Any) -> int:
  """C = d_model * width_multiplier / algebra.dim, the algebra channels.

  Also checks that C is a positive integer divisible by num_heads.

  Raises:
    ValueError: unknown algebra; d_model * width_multiplier not a positive
      integer or not divisible by the algebra dimension; C not divisible by
      num_heads.
  """
  cfg = _resolved(model_cfg)
  c = _algebra_channels(cfg, "d_model")
  heads = _check_int(cfg, "num_heads", 1)
  if c % heads:
    d = algebras.get(cfg["algebra"]).dim
    divisors = [h for h in range(1, c + 1) if c % h == 0]
    raise ValueError(
        f"transformer_xl: C = d_model*width_multiplier / {d} = {c} algebra "
        f"channels ({cfg['algebra']}) is not divisible by num_heads={heads} "
        f"(heads split the algebra channels). Choose num_heads in "
        f"{divisors}, or a real width that is a multiple of {d * heads}."
    )
  return c


def inner_channels_for(model_cfg: Any) -> int:
  """F = round(d_inner * width_multiplier / algebra.dim), the FFN channels.

  Unlike d_model (which heads and the algebra must divide), the FFN width
  has no structural constraint, so a width multiplier that scales d_model to
  a valid width (e.g. sqrt(d) for matched parameters) is allowed to give a
  fractional d_inner, rounded to the nearest algebra channel. Exact for
  multipliers that keep d_inner integral and divisible.

  Raises:
    ValueError: d_inner not a positive int, or a bad width_multiplier.
  """
  cfg = _resolved(model_cfg)
  _check_int(cfg, "d_inner", 1)
  wm = cfg["width_multiplier"]
  if isinstance(wm, bool) or not isinstance(wm, (int, float)) or not wm > 0:
    raise ValueError(
        "transformer_xl: width_multiplier must be a positive number, got "
        f"{wm!r}."
    )
  d = algebras.get(cfg["algebra"]).dim
  return max(1, round(cfg["d_inner"] * wm / d))


def _check_cutoffs(cfg: dict[str, Any], c: int) -> None:
  cutoffs, tie_projs = cfg["cutoffs"], cfg["tie_projs"]
  if isinstance(cutoffs, (str, bytes)) or not isinstance(
      cutoffs, Sequence | np.ndarray
  ):
    raise ValueError(
        f"transformer_xl: cutoffs must be a sequence of ints, got "
        f"{cutoffs!r}; e.g. () or (20000, 40000, 200000)."
    )
  cutoffs = tuple(cutoffs)
  if not all(_is_int(x) and x >= 1 for x in cutoffs) or any(
      b <= a for a, b in itertools.pairwise(cutoffs)
  ):
    raise ValueError(
        f"transformer_xl: cutoffs must be strictly increasing positive ints "
        f"(the first token id of each tail cluster), got {cutoffs!r}; e.g. "
        "(20000, 40000, 200000)."
    )
  div_val = _check_int(cfg, "div_val", 1)
  for i in range(len(cutoffs) + 1):
    if c % (div_val**i):
      raise ValueError(
          f"transformer_xl: C = {c} algebra channels is not divisible by "
          f"div_val**{i} = {div_val**i} (adaptive cluster {i} has C / "
          f"div_val**{i} channels). Use div_val=1, fewer cutoffs, or a "
          f"width whose C is a multiple of {div_val ** len(cutoffs)}."
      )
  if isinstance(tie_projs, (str, bytes)) or not isinstance(
      tie_projs, Sequence | np.ndarray
  ):
    raise ValueError(
        f"transformer_xl: tie_projs must be a sequence of bools, got "
        f"{tie_projs!r}; e.g. (False,) or (False, True, True, True)."
    )
  tie_projs = tuple(tie_projs)
  if not all(isinstance(t, (bool, np.bool_)) for t in tie_projs):
    raise ValueError(
        f"transformer_xl: tie_projs must hold bools, got {tie_projs!r}."
    )
  if len(tie_projs) > len(cutoffs) + 1:
    raise ValueError(
        f"transformer_xl: tie_projs {tie_projs} has {len(tie_projs)} entries "
        f"but cutoffs {cutoffs} make only {len(cutoffs) + 1} clusters; give "
        "at most one per cluster (missing ones are False)."
    )


def validate_config(model_cfg: Any) -> None:
  """Checks a transformer_xl model config; missing keys take the defaults.

  Args:
    model_cfg: ml_collections ConfigDict or mapping with (a subset of) the
      keys of `default_config()`.

  Raises:
    ValueError: an unknown key, algebra, activation, norm, norm_mode, lift,
      head, layout, dropout_unit or kernel_path; non-positive sizes; real
      widths not integers or not divisible by the algebra dimension; C not
      divisible by num_heads or div_val**i; negative memory lengths; rates
      outside [0, 1); same_length with a zero memory. Messages say how to
      fix the value.
  """
  cfg = _resolved(model_cfg)
  if cfg["name"] != NAME:
    raise ValueError(
        f"transformer_xl: config name is {cfg['name']!r}; this builder is for "
        f"{NAME!r}. Build other models through algebranets.models.get(name)."
    )
  alg = algebras.get(cfg["algebra"])  # Lists the valid names.
  _check_int(cfg, "num_layers", 1)
  c = channels_for(cfg)
  inner_channels_for(cfg)
  _check_rate(cfg, "dropout_rate")
  _check_rate(cfg, "attention_dropout_rate")
  _check_choice(cfg, "dropout_unit", DROPOUT_UNITS)
  for key in ("mem_len", "eval_mem_len"):
    _check_int(cfg, key, 0, " Use 0 for no memory.")
  for key in ("clamp_len", "eval_clamp_len"):
    _check_int(cfg, key, -1, " Use -1 for no clamping.")
  for key in (
      "same_length",
      "eval_same_length",
      "pre_norm",
      "untie_r",
      "tie_weight",
  ):
    _check_bool(cfg, key)
  for same, mem in (
      ("same_length", "mem_len"),
      ("eval_same_length", "eval_mem_len"),
  ):
    if cfg[same] and cfg[mem] == 0:
      raise ValueError(
          f"transformer_xl: {same}=True needs {mem} >= 1 (every query attends "
          f"to its {mem} most recent keys; 0 would mask all). Set {mem} > 0 "
          f"or {same}=False."
      )
  _check_cutoffs(cfg, c)
  _check_positive_number(cfg, "init_std")
  _check_positive_number(cfg, "proj_init_std")
  _check_choice(cfg, "activation", layers.ACTIVATIONS)
  _check_choice(
      cfg,
      "norm",
      NORMS,
      " transformer_xl supports only norm='layer' (TXL's LayerNorm); choose "
      "the flavour with norm_mode.",
  )
  _check_choice(cfg, "norm_mode", layers.NORM_MODES)
  _check_choice(
      cfg,
      "lift",
      LIFTS,
      " transformer_xl supports only lift='adaptive_embed' (TXL's adaptive "
      "input embedding with algebra-valued tables).",
  )
  _check_choice(
      cfg,
      "head",
      HEADS,
      " transformer_xl supports only head='adaptive_softmax' (TXL's "
      "projected adaptive softmax; cutoffs=() makes it a plain softmax).",
  )
  if cfg["layout"] == layout_lib.FOLDED:
    raise ValueError(
        "transformer_xl: layout='folded' is not implemented for "
        "Transformer-XL (its relative attention, memory and adaptive "
        "embedding/softmax work on the standard layout); use "
        "layout='standard'. The fold kernel is still used inside each layer "
        "for matrix algebras with kernel_path='auto' or 'fold'."
    )
  _check_choice(cfg, "layout", LAYOUTS)
  _check_choice(cfg, "kernel_path", ("auto", *kernels.DENSE_PATHS))
  if cfg["kernel_path"] == "fold" and alg.matrix_shape is None:
    raise ValueError(
        f"transformer_xl: kernel_path='fold' needs a matrix algebra; "
        f"{alg.name!r} is not one. Use kernel_path='auto'."
    )


def from_config(
    model_cfg: Any,
    *,
    vocab_size: int,
    max_len: int | None = None,
    is_eval: bool = False,
) -> TransformerXL:
  """Builds the model from a config (call inside hk.transform).

  Args:
    model_cfg: see `validate_config`.
    vocab_size: V.
    max_len: ignored (relative positions have no maximum length); accepted
      for the models' common builder signature.
    is_eval: use eval_mem_len, eval_clamp_len and eval_same_length (TXL's
      evaluation settings) instead of mem_len, clamp_len and same_length.

  Returns:
    A `TransformerXL`.

  Raises:
    ValueError: see `validate_config`.
  """
  del max_len
  validate_config(model_cfg)
  cfg = _resolved(model_cfg)
  prefix = "eval_" if is_eval else ""
  return TransformerXL(
      vocab_size,
      cfg["num_layers"],
      channels_for(cfg),
      cfg["num_heads"],
      inner_channels_for(cfg),
      cfg["algebra"],
      dropout_rate=float(cfg["dropout_rate"]),
      attention_dropout_rate=float(cfg["attention_dropout_rate"]),
      dropout_unit=cfg["dropout_unit"],
      mem_len=int(cfg[f"{prefix}mem_len"]),
      clamp_len=int(cfg[f"{prefix}clamp_len"]),
      same_length=bool(cfg[f"{prefix}same_length"]),
      pre_norm=bool(cfg["pre_norm"]),
      untie_r=bool(cfg["untie_r"]),
      cutoffs=tuple(cfg["cutoffs"]),
      div_val=int(cfg["div_val"]),
      tie_weight=bool(cfg["tie_weight"]),
      tie_projs=tuple(cfg["tie_projs"]),
      init_std=float(cfg["init_std"]),
      proj_init_std=float(cfg["proj_init_std"]),
      activation=cfg["activation"],
      norm_mode=cfg["norm_mode"],
      kernel_path=cfg["kernel_path"],
  )
