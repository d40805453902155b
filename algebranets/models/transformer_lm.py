"""A small causal Transformer language model on algebra-valued tokens.

Shape glossary: B = batch, T = sequence length, V = vocabulary size, C =
algebra channels per token, d = algebra dimension (real width d_model =
C * d), F = mlp_ratio * C, n/e = matrix size/base dimension of M_n(base).

    tokens [B, T] int -> embed [B, T, C, d] (+ fixed real sinusoids)
      -> (folded [n, B, T, C, n*e] if layout='folded')
      -> num_layers x pre-LN block:
           x = x + Dropout(Attn(LN(x)))
           x = x + Dropout(Linear_C(Act(Linear_F(LN(x)))))
      -> LN -> FlattenReal ('head': real dense on the C * d reals)
      -> logits [B, T, V] float32

Paper section 7 [P]: the embedding table is algebra-valued (V x C x d reals),
Q/K/V/O and the MLP are algebra linear layers, attention scores are real dot
products over each head's flattened reals, positions stay real, and the
output is a real dense layer on the flattened real vector. Section 5 [P]: the
default LayerNorm is a standard LN over all C * d reals of a token
(norm_mode='component'). Absolute sinusoidal positions replace
Transformer-XL's relative encodings and memory (a simplification; what the
paper's TXL did is [U]).

The constructor's keyword arguments are the config's model section; its
widths are REAL: d_model * width_multiplier real numbers per token, i.e. C = d_model * width_multiplier / d algebra channels.
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras, config_access, kernels, layers
from algebranets import layout as layout_lib
from algebranets.layers import _checks, initializers

NAME = "transformer_lm"

# Config values this model supports for the generic model-section keys.
LIFTS = ("algebra_embed",)
HEADS = ("flatten_real",)
NORMS = ("layer",)


def sinusoidal_positions(length: int, width: int) -> np.ndarray:
  """Fixed real sinusoidal position encodings (Vaswani et al. 2017).

  Args:
    length: T, number of positions.
    width: D, real features per position (any D >= 1; an odd D drops the
      last cosine).

  Returns:
    float32 numpy array [T, D]: [t, 2i] = sin(t / 10000^(2i/D)),
    [t, 2i + 1] = cos(t / 10000^(2i/D)).
  """
  half = (width + 1) // 2
  t = np.arange(length, dtype=np.float64)[:, None]
  freq = np.power(10000.0, -2.0 * np.arange(half) / width)[None, :]
  pe = np.stack([np.sin(t * freq), np.cos(t * freq)], axis=-1)
  return pe.reshape(length, 2 * half)[:, :width].astype(np.float32)


class _Block(hk.Module):
  """One pre-LN Transformer block on [B, T, C, d] (or folded) activations."""

  def __init__(
      self,
      *,
      num_heads: int,
      algebra: algebras.Algebra,
      mlp_ratio: int,
      activation: str,
      norm_mode: str,
      dropout_rate: float,
      layout: str,
      kernel_path: str,
      name: str,
  ):
    super().__init__(name=name)
    self.num_heads = num_heads
    self.algebra = algebra
    self.mlp_ratio = mlp_ratio
    self.activation = activation
    self.norm_mode = norm_mode
    self.dropout_rate = dropout_rate
    self.layout = layout
    self.kernel_path = kernel_path

  def _dropout(self, x: jax.Array, is_training: bool) -> jax.Array:
    if is_training and self.dropout_rate > 0:
      return hk.dropout(hk.next_rng_key(), self.dropout_rate, x)
    return x

  @hk.transparent
  def _norm(self, name: str):
    return layers.get_norm(
        "layer",
        self.algebra,
        mode=self.norm_mode,
        layout=self.layout,
        name=name,
    )

  def __call__(self, x: jax.Array, *, is_training: bool) -> jax.Array:
    alg, lay, path = self.algebra, self.layout, self.kernel_path
    c = x.shape[-2]
    y = self._norm("attention_norm")(x)
    y = layers.MultiHeadAttention(
        self.num_heads, alg, layout=lay, path=path, name="attention"
    )(y)
    x = x + self._dropout(y, is_training)

    y = self._norm("mlp_norm")(x)
    # The first MLP layer feeds the activation: init gain for it (the
    # library's convention, `initializers.gain_for`).
    y = layers.Linear(
        self.mlp_ratio * c,
        alg,
        gain=initializers.gain_for(self.activation),
        layout=lay,
        path=path,
        name="mlp_in",
    )(y)
    y = layers.get_activation(self.activation, alg, layout=lay)(y)
    y = layers.Linear(c, alg, layout=lay, path=path, name="mlp_out")(y)
    return x + self._dropout(y, is_training)


class TransformerLM(hk.Module):
  """Causal Transformer LM with algebra-valued embeddings and layers.

  Parameters (canonical shapes, the same in both layouts):
    embed/embeddings [V, C, d];
    block_{i}/attention_norm, mlp_norm: LayerNorm scale/offset [C, d] (per
      mode);
    block_{i}/attention/{query,key,value,output}: w [C, C, d], b [C, d];
    block_{i}/mlp_in: w [C, F, d], b [F, d]; mlp_out: w [F, C, d], b [C, d];
    block_{i}/activation: bias [F] (activation='modrelu' only);
    final_norm; head/linear: w [C * d, V], b [V] (real; the path component
      'head' marks it as the real output layer for the accounting code).
  All under the model's name, e.g. 'transformer_lm/block_0/attention/query'.
  """

  def __init__(
      self,
      vocab_size: int | None = None,
      *,
      algebra="M2R",
      width_multiplier: float = 1.0,
      d_model: int = 128,
      num_layers: int = 2,
      num_heads: int = 4,
      mlp_ratio: int = 4,
      activation: str = "split",
      norm: str = "layer",
      norm_mode: str = "component",
      lift: str = "algebra_embed",
      head: str = "flatten_real",
      layout: str = "standard",
      dropout_rate: float = 0.0,
      kernel_path: str = "auto",
      max_len: int | None = 4096,
      name: str | None = None,
  ):
    """Constructs the model (static hyperparameters only).

    The keyword arguments are the `model` section of a config; build it from
    one with `algebranets.models.build(config.model, vocab_size=V,
    max_len=T)`.

    Args:
      vocab_size: V (from the task). None only while a config is checked
        before the data is loaded (`models.check`).
      algebra: registered name or `Algebra`.
      width_multiplier: multiplies d_model.
      d_model: REAL width D; C = d_model * width_multiplier / d algebra
        channels per token (an integer divisible by num_heads).
      num_layers: number of Transformer blocks.
      num_heads: attention heads; must divide C.
      mlp_ratio: hidden algebra channels of the MLP per channel (F = ratio*C).
      activation: MLP activation kind (`layers.ACTIVATIONS`).
      norm: 'layer' only (pre-LN blocks; the flavour is norm_mode).
      norm_mode: LayerNorm mode (`layers.NORM_MODES`); 'component' is a
        standard LN over the C * d reals of a token.
      lift: 'algebra_embed' only (an algebra-valued token embedding).
      head: 'flatten_real' only (a real dense layer on the C * d reals).
      layout: 'standard' or 'folded' (matrix algebras).
      dropout_rate: dropout on the attention and MLP outputs when training.
      kernel_path: kernel path of the algebra linear layers.
      max_len: the longest sequence the model accepts (from the task).
      name: module name; default 'transformer_lm'.

    Raises:
      ValueError: any invalid value; the message says which and how to fix
        it.
    """
    super().__init__(name=name or NAME)
    who = NAME
    ca = config_access
    self.algebra = algebras.get(algebra)  # Lists the valid names.
    if vocab_size is not None:
      vocab_size = _checks.positive(vocab_size, f"{who}: vocab_size")
    self.vocab_size = vocab_size
    if max_len is not None:
      max_len = _checks.positive(max_len, f"{who}: max_len")
    self.max_len = max_len
    self.num_layers = ca.check_int(num_layers, "num_layers", who, 1)
    self.num_heads = ca.check_int(num_heads, "num_heads", who, 1)
    self.mlp_ratio = ca.check_int(mlp_ratio, "mlp_ratio", who, 1)
    d = self.algebra.dim
    c = ca.algebra_channels(
        d_model, width_multiplier, d, self.algebra.name, who, "d_model"
    )
    if c % num_heads:
      divisors = [h for h in range(1, c + 1) if c % h == 0]
      raise ValueError(
          f"{who}: C = d_model*width_multiplier / {d} = {c * d} / {d} = {c} "
          f"algebra channels ({self.algebra.name}) is not divisible by "
          f"num_heads={num_heads} (heads split the algebra channels). Choose "
          f"num_heads in {divisors}, or a real width that is a multiple of "
          f"{d * num_heads}."
      )
    self.num_channels = c
    ca.check_choice(activation, "activation", layers.ACTIVATIONS, who)
    ca.check_choice(
        norm,
        "norm",
        NORMS,
        who,
        " transformer_lm supports only norm='layer' (pre-LN blocks); choose "
        "the LayerNorm flavour with norm_mode.",
    )
    ca.check_choice(norm_mode, "norm_mode", layers.NORM_MODES, who)
    ca.check_choice(
        lift,
        "lift",
        LIFTS,
        who,
        " transformer_lm supports only lift='algebra_embed' (an algebra-"
        "valued token embedding); image lifts do not apply to tokens.",
    )
    ca.check_choice(
        head,
        "head",
        HEADS,
        who,
        " transformer_lm supports only head='flatten_real' (a real dense "
        "layer on the flattened C * d reals).",
    )
    ca.check_choice(layout, "layout", layout_lib.LAYOUTS, who)
    if layout == layout_lib.FOLDED and self.algebra.matrix_shape is None:
      raise ValueError(
          f"{who}: layout='folded' needs a matrix algebra M_n(base) (e.g. "
          f"M2R, M3R, M4R, M2C); {self.algebra.name!r} is not one. Use "
          "layout='standard'."
      )
    self.layout = layout
    ca.check_choice(
        kernel_path, "kernel_path", ("auto", *kernels.DENSE_PATHS), who
    )
    self.kernel_path = _checks.path(
        self.algebra, self.layout, kernel_path, kernels.DENSE_PATHS, who
    )
    self.dropout_rate = ca.check_rate(dropout_rate, "dropout_rate", who)
    self.activation = activation
    self.norm_mode = norm_mode

  def __call__(self, tokens: jax.Array, *, is_training: bool) -> jax.Array:
    """Next-token logits.

    Args:
      tokens: int [B, T] with values in [0, V) and T <= max_len.
      is_training: enables dropout (needs an rng when dropout_rate > 0).

    Returns:
      logits [B, T, V] float32; position t depends on tokens[:, :t + 1] only.

    Raises:
      ValueError: tokens not of rank 2 or not integers, or T > max_len.
    """
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(
          "TransformerLM: expected integer tokens [B, T], got shape "
          f"{tuple(tokens.shape)} and dtype {tokens.dtype}."
      )
    t = tokens.shape[1]
    if self.max_len is not None and t > self.max_len:
      raise ValueError(
          f"TransformerLM: sequence length T={t} exceeds max_len="
          f"{self.max_len}; pass shorter sequences or build the model with a "
          "larger max_len."
      )
    alg, c, d = self.algebra, self.num_channels, self.algebra.dim
    x = layers.Embed(self.vocab_size, c, alg, name="embed")(tokens)
    pe = sinusoidal_positions(t, c * d).reshape(1, t, c, d)
    x = x + jnp.asarray(pe, x.dtype)
    x = layout_lib.convert(x, alg, layout_lib.STANDARD, self.layout)
    for i in range(self.num_layers):
      x = _Block(
          num_heads=self.num_heads,
          algebra=alg,
          mlp_ratio=self.mlp_ratio,
          activation=self.activation,
          norm_mode=self.norm_mode,
          dropout_rate=self.dropout_rate,
          layout=self.layout,
          kernel_path=self.kernel_path,
          name=f"block_{i}",
      )(x, is_training=is_training)
    x = layers.get_norm(
        "layer", alg, mode=self.norm_mode, layout=self.layout, name="final_norm"
    )(x)
    logits = layers.FlattenReal(
        self.vocab_size, algebra=alg, layout=self.layout, name="head"
    )(x)
    return logits.astype(jnp.float32)
