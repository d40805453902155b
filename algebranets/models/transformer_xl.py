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

The constructor's keyword arguments are the config's model section; its
widths are REAL: C = d_model * width_multiplier / d and F = d_inner *
width_multiplier / d algebra channels.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets import config_access, kernels, layers
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
      vocab_size: int | None = None,
      *,
      algebra="M2R",
      width_multiplier: float = 1.0,
      d_model: int = 512,
      num_layers: int = 12,
      num_heads: int = 8,
      d_inner: int = 2048,
      dropout_rate: float = 0.1,
      attention_dropout_rate: float = 0.0,
      dropout_unit: str = "element",
      mem_len: int = 512,
      eval_mem_len: int = 2100,
      clamp_len: int = -1,
      eval_clamp_len: int = 820,
      same_length: bool = False,
      eval_same_length: bool = True,
      pre_norm: bool = False,
      untie_r: bool = False,
      cutoffs: Sequence[int] = (),
      div_val: int = 1,
      tie_weight: bool = True,
      tie_projs: Sequence[bool] = (False,),
      init_std: float = 0.02,
      proj_init_std: float = 0.01,
      activation: str = "split",
      norm: str = "layer",
      norm_mode: str = "component",
      lift: str = "adaptive_embed",
      head: str = "adaptive_softmax",
      layout: str = layout_lib.STANDARD,
      kernel_path: str = "auto",
      is_eval: bool = False,
      name: str | None = None,
  ):
    """Constructs the model (static hyperparameters only).

    The keyword arguments are the `model` section of a config (their
    defaults are the official enwik8 base model, kimiyoung/transformer-xl
    run_enwik8_base.sh, in algebra M2R at the same real width); build it
    from one with `algebranets.models.build(config.model, vocab_size=V)`.

    Args:
      vocab_size: V (from the data). None only while a config is checked
        before the data is loaded (`models.check`): the checks that need V
        (adaptive cutoffs) then wait.
      algebra: registered name or `Algebra`.
      width_multiplier: multiplies d_model and d_inner.
      d_model: REAL model width D; C = d_model * width_multiplier / d
        algebra channels per token (an integer, divisible by num_heads).
      num_layers: L.
      num_heads: H; must divide C (head real width (C / H) * d).
      d_inner: REAL FFN width; F = round(d_inner * width_multiplier / d)
        algebra channels (rounded: a multiplier such as sqrt(d) that keeps
        d_model valid may make d_inner fractional).
      dropout_rate: TXL's dropout (see the module docstring for where).
      attention_dropout_rate: TXL's dropatt, on the attention probabilities.
      dropout_unit: 'element' or 'component' (see `algebra_dropout`).
      mem_len: positions of memory returned for the next segment in
        training (0 = no memory); also the window of same_length.
      eval_mem_len, eval_clamp_len, eval_same_length: mem_len, clamp_len
        and same_length when built with is_eval=True (TXL's evaluation
        settings).
      clamp_len: relative distances above it share one embedding; -1 means
        no clamping.
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
      norm: 'layer' only (TXL's LayerNorm; the flavour is norm_mode).
      norm_mode: LayerNorm mode (`layers.NORM_MODES`); 'component' is a
        standard LN over the C * d reals of a token.
      lift: 'adaptive_embed' only (TXL's adaptive input embedding).
      head: 'adaptive_softmax' only (cutoffs=() makes it a plain softmax).
      layout: 'standard' only (the fold kernel is still used inside each
        layer for matrix algebras, see kernel_path).
      kernel_path: kernel path of the algebra linear layers.
      is_eval: use the eval_* memory settings (from the task).
      name: module name; default 'transformer_xl'.

    Raises:
      ValueError: any invalid value; the message says which and how to fix
        it.
    """
    super().__init__(name=name or NAME)
    who = NAME
    ca = config_access
    self.algebra, _ = _checks.resolve(algebra, layout_lib.STANDARD)
    d = self.algebra.dim
    if vocab_size is not None:
      vocab_size = _checks.positive(vocab_size, f"{who}: vocab_size")
    self.vocab_size = vocab_size
    self.num_layers = ca.check_int(num_layers, "num_layers", who, 1)
    self.num_channels = ca.algebra_channels(
        d_model, width_multiplier, d, self.algebra.name, who, "d_model"
    )
    self.num_heads = ca.check_int(num_heads, "num_heads", who, 1)
    c = self.num_channels
    if c % num_heads:
      divisors = [h for h in range(1, c + 1) if c % h == 0]
      raise ValueError(
          f"{who}: C = d_model*width_multiplier / {d} = {c} algebra "
          f"channels ({self.algebra.name}) is not divisible by num_heads="
          f"{num_heads} (heads split the algebra channels). Choose num_heads "
          f"in {divisors}, or a real width that is a multiple of "
          f"{d * num_heads}."
      )
    ca.check_int(d_inner, "d_inner", who, 1)
    ca.check_positive_number(width_multiplier, "width_multiplier", who)
    self.d_inner_channels = max(1, round(d_inner * width_multiplier / d))
    self.dropout_rate = ca.check_rate(dropout_rate, "dropout_rate", who)
    self.attention_dropout_rate = ca.check_rate(
        attention_dropout_rate, "attention_dropout_rate", who
    )
    ca.check_choice(dropout_unit, "dropout_unit", DROPOUT_UNITS, who)
    self.dropout_unit = dropout_unit
    for key, value in (("mem_len", mem_len), ("eval_mem_len", eval_mem_len)):
      ca.check_int(value, key, who, 0, " Use 0 for no memory.")
    for key, value in (
        ("clamp_len", clamp_len),
        ("eval_clamp_len", eval_clamp_len),
    ):
      ca.check_int(value, key, who, -1, " Use -1 for no clamping.")
    for key, value in (
        ("same_length", same_length),
        ("eval_same_length", eval_same_length),
        ("pre_norm", pre_norm),
        ("untie_r", untie_r),
        ("tie_weight", tie_weight),
        ("is_eval", is_eval),
    ):
      ca.check_bool(value, key, who)
    for same, mem, s, m in (
        ("same_length", "mem_len", same_length, mem_len),
        ("eval_same_length", "eval_mem_len", eval_same_length, eval_mem_len),
    ):
      if s and m == 0:
        raise ValueError(
            f"{who}: {same}=True needs {mem} >= 1 (every query attends to "
            f"its {mem} most recent keys; 0 would mask all). Set {mem} > 0 "
            f"or {same}=False."
        )
    self.mem_len = int(eval_mem_len if is_eval else mem_len)
    self.clamp_len = int(eval_clamp_len if is_eval else clamp_len)
    self.same_length = bool(eval_same_length if is_eval else same_length)
    self.pre_norm = bool(pre_norm)
    self.untie_r = bool(untie_r)
    self.tie_weight = bool(tie_weight)
    self.cutoffs, self.div_val, self.tie_projs = _check_clusters(
        cutoffs, div_val, tie_projs, c, vocab_size
    )
    self.init_std = ca.check_positive_number(init_std, "init_std", who)
    self.proj_init_std = ca.check_positive_number(
        proj_init_std, "proj_init_std", who
    )
    ca.check_choice(activation, "activation", layers.ACTIVATIONS, who)
    self.activation = activation
    ca.check_choice(
        norm,
        "norm",
        NORMS,
        who,
        " transformer_xl supports only norm='layer' (TXL's LayerNorm); "
        "choose the flavour with norm_mode.",
    )
    ca.check_choice(norm_mode, "norm_mode", layers.NORM_MODES, who)
    self.norm_mode = norm_mode
    ca.check_choice(
        lift,
        "lift",
        LIFTS,
        who,
        " transformer_xl supports only lift='adaptive_embed' (TXL's adaptive "
        "input embedding with algebra-valued tables).",
    )
    ca.check_choice(
        head,
        "head",
        HEADS,
        who,
        " transformer_xl supports only head='adaptive_softmax' (TXL's "
        "projected adaptive softmax; cutoffs=() makes it a plain softmax).",
    )
    if layout == layout_lib.FOLDED:
      raise ValueError(
          f"{who}: layout='folded' is not implemented for Transformer-XL (its "
          "relative attention, memory and adaptive embedding/softmax work on "
          "the standard layout); use layout='standard'. The fold kernel is "
          "still used inside each layer for matrix algebras with "
          "kernel_path='auto' or 'fold'."
      )
    ca.check_choice(layout, "layout", LAYOUTS, who)
    ca.check_choice(
        kernel_path, "kernel_path", ("auto", *kernels.DENSE_PATHS), who
    )
    if kernel_path == "fold" and self.algebra.matrix_shape is None:
      raise ValueError(
          f"{who}: kernel_path='fold' needs a matrix algebra; "
          f"{self.algebra.name!r} is not one. Use kernel_path='auto'."
      )
    self.kernel_path = kernel_path

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


def _check_clusters(cutoffs, div_val, tie_projs, c: int, vocab_size):
  """(cutoffs, div_val, tie_projs padded to one per cluster), checked.

  Cutoffs >= vocab_size are dropped by the adaptive layers (with a warning),
  so the divisibility by div_val**i is checked for the clusters that
  remain; before the vocabulary is known, for all of them.
  """
  who = NAME
  ca = config_access
  cutoffs = ca.check_sequence(
      cutoffs, "cutoffs", who, "() or (20000, 40000, 200000)"
  )
  if not all(ca.is_int(x) and x >= 1 for x in cutoffs) or any(
      b <= a for a, b in itertools.pairwise(cutoffs)
  ):
    raise ValueError(
        f"{who}: cutoffs must be strictly increasing positive ints (the "
        f"first token id of each tail cluster), got {cutoffs!r}; e.g. "
        "(20000, 40000, 200000)."
    )
  cutoffs = tuple(int(x) for x in cutoffs)
  div_val = ca.check_int(div_val, "div_val", who, 1)
  tie_projs = ca.check_sequence(
      tie_projs, "tie_projs", who, "(False,) or (False, True, True, True)"
  )
  if not all(isinstance(t, (bool, np.bool_)) for t in tie_projs):
    raise ValueError(f"{who}: tie_projs must hold bools, got {tie_projs!r}.")
  tie_projs = tuple(bool(t) for t in tie_projs)
  if len(tie_projs) > len(cutoffs) + 1:
    raise ValueError(
        f"{who}: tie_projs {tie_projs} has {len(tie_projs)} entries but "
        f"cutoffs {cutoffs} make only {len(cutoffs) + 1} clusters; give at "
        "most one per cluster (missing ones are False)."
    )
  clusters = len(cutoffs) + 1
  if vocab_size is not None:
    clusters = len(adaptive.check_cutoffs(cutoffs, vocab_size))
  for i in range(clusters):
    if c % (div_val**i):
      raise ValueError(
          f"{who}: C = {c} algebra channels is not divisible by "
          f"div_val**{i} = {div_val**i} (adaptive cluster {i} has C / "
          f"div_val**{i} channels). Use div_val=1, fewer cutoffs, or a "
          f"width whose C is a multiple of {div_val ** (clusters - 1)}."
      )
  tie_projs = tie_projs + (False,) * (len(cutoffs) + 1 - len(tie_projs))
  return cutoffs, div_val, tie_projs
