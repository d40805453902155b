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

Config (`default_config`) widths are REAL: d_model * width_multiplier real
numbers per token, i.e. C = d_model * width_multiplier / d algebra channels.
"""

from __future__ import annotations

import math
from typing import Any

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
      vocab_size: int,
      num_layers: int,
      num_channels: int,
      num_heads: int,
      algebra,
      *,
      mlp_ratio: int = 4,
      activation: str = "split",
      norm_mode: str = "component",
      dropout_rate: float = 0.0,
      max_len: int = 4096,
      layout: str = "standard",
      kernel_path: str = "auto",
      name: str | None = None,
  ):
    """Constructs the model (static hyperparameters only).

    Args:
      vocab_size: V.
      num_layers: number of Transformer blocks.
      num_channels: C, algebra channels per token (real width C * d).
      num_heads: attention heads; must divide C.
      algebra: registered name or `Algebra`.
      mlp_ratio: hidden algebra channels of the MLP per channel (F = ratio*C).
      activation: MLP activation kind (`layers.ACTIVATIONS`).
      norm_mode: LayerNorm mode (`layers.NORM_MODES`); 'component' is a
        standard LN over the C * d reals of a token.
      dropout_rate: dropout on the attention and MLP outputs when training.
      max_len: the longest sequence the model accepts.
      layout: 'standard' or 'folded' (matrix algebras).
      kernel_path: kernel path of the algebra linear layers.
      name: module name; default 'transformer_lm'.

    Raises:
      ValueError: invalid sizes, unknown algebra/activation/norm mode/layout/
        path, folded layout with a non-matrix algebra, or C not divisible by
        num_heads.
    """
    super().__init__(name=name or NAME)
    who = "TransformerLM"
    pos = _checks.positive  # Shared message format for sizes.
    self.vocab_size = pos(vocab_size, f"{who}: vocab_size")
    self.num_layers = pos(num_layers, f"{who}: num_layers")
    self.num_channels = pos(num_channels, f"{who}: num_channels")
    self.num_heads = pos(num_heads, f"{who}: num_heads")
    self.mlp_ratio = pos(mlp_ratio, f"{who}: mlp_ratio")
    self.max_len = pos(max_len, f"{who}: max_len")
    self.algebra, self.layout = _checks.resolve(algebra, layout)
    if num_channels % num_heads:
      raise ValueError(
          f"{who}: num_channels C={num_channels} is not divisible by "
          f"num_heads={num_heads}; heads split the algebra channels. Choose "
          "num_heads dividing C."
      )
    config_access.check_choice(
        activation, "activation", layers.ACTIVATIONS, who
    )
    config_access.check_choice(norm_mode, "norm_mode", layers.NORM_MODES, who)
    if not 0.0 <= dropout_rate < 1.0:
      raise ValueError(
          f"{who}: dropout_rate must be in [0, 1), got {dropout_rate!r}."
      )
    self.activation = activation
    self.norm_mode = norm_mode
    self.dropout_rate = float(dropout_rate)
    self.kernel_path = _checks.path(
        self.algebra, self.layout, kernel_path, kernels.DENSE_PATHS, who
    )

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
    if t > self.max_len:
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


# -- configs -------------------------------------------------------------------


def default_config() -> dict[str, Any]:
  """Defaults of the model section of a config (plain dict, fresh each call).

  d_model is the REAL width before width_multiplier; the model has
  C = d_model * width_multiplier / algebra.dim algebra channels per token.
  """
  return {
      "name": NAME,
      "algebra": "M2R",
      "width_multiplier": 1.0,
      "d_model": 128,
      "num_layers": 2,
      "num_heads": 4,
      "mlp_ratio": 4,
      "activation": "split",
      "norm": "layer",
      "norm_mode": "component",
      "lift": "algebra_embed",
      "head": "flatten_real",
      "layout": "standard",
      "dropout_rate": 0.0,
      "kernel_path": "auto",
  }


def _resolved(model_cfg: Any) -> dict[str, Any]:
  """Defaults updated with model_cfg; unknown keys raise (typos)."""
  return config_access.with_defaults(model_cfg, default_config(), NAME)


def _is_int(v) -> bool:
  return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_positive_int(cfg: dict[str, Any], key: str) -> None:
  v = cfg[key]
  if not _is_int(v) or v < 1:
    raise ValueError(
        f"transformer_lm: {key} must be a positive integer, got {v!r}."
    )


def _check_choice(cfg, key: str, valid, note: str = "") -> None:
  config_access.check_choice(cfg[key], key, valid, NAME, note)


def _real_width(cfg: dict[str, Any]) -> int:
  """d_model * width_multiplier as an int (ValueError if it is not one)."""
  wm = cfg["width_multiplier"]
  if isinstance(wm, bool) or not isinstance(wm, (int, float)) or not wm > 0:
    raise ValueError(
        "transformer_lm: width_multiplier must be a positive number, got "
        f"{wm!r}."
    )
  real = cfg["d_model"] * wm
  rounded = round(real)
  if abs(real - rounded) > 1e-6 * max(1.0, abs(real)):
    raise ValueError(
        f"transformer_lm: d_model*width_multiplier = {cfg['d_model']}*{wm} = "
        f"{real:g} is not an integer number of real features; choose a "
        f"width_multiplier that makes it one (e.g. {math.floor(real)} / "
        f"{cfg['d_model']} or {math.ceil(real)} / {cfg['d_model']})."
    )
  return int(rounded)


def validate_config(model_cfg: Any) -> None:
  """Checks a transformer_lm model config; missing keys take the defaults.

  Args:
    model_cfg: ml_collections ConfigDict or mapping with (a subset of) the
      keys of `default_config()`.

  Raises:
    ValueError: an unknown key, algebra, activation, norm, norm_mode, lift,
      head, layout or kernel_path; non-positive sizes; d_model *
      width_multiplier not an integer or not divisible by the algebra
      dimension; C not divisible by num_heads; layout='folded' with a
      non-matrix algebra; dropout_rate outside [0, 1). Messages say how to
      fix the value.
  """
  cfg = _resolved(model_cfg)
  if cfg["name"] != NAME:
    raise ValueError(
        f"transformer_lm: config name is {cfg['name']!r}; this builder is for "
        f"{NAME!r}. Build other models through algebranets.models.get(name)."
    )
  alg = algebras.get(cfg["algebra"])  # Lists the valid names.
  for key in ("d_model", "num_layers", "num_heads", "mlp_ratio"):
    _check_positive_int(cfg, key)
  _check_choice(cfg, "activation", layers.ACTIVATIONS)
  _check_choice(
      cfg,
      "norm",
      NORMS,
      " transformer_lm supports only norm='layer' (pre-LN blocks); choose "
      "the LayerNorm flavour with norm_mode.",
  )
  _check_choice(cfg, "norm_mode", layers.NORM_MODES)
  _check_choice(
      cfg,
      "lift",
      LIFTS,
      " transformer_lm supports only lift='algebra_embed' (an algebra-valued "
      "token embedding); image lifts do not apply to tokens.",
  )
  _check_choice(
      cfg,
      "head",
      HEADS,
      " transformer_lm supports only head='flatten_real' (a real dense "
      "layer on the flattened C * d reals).",
  )
  _check_choice(cfg, "layout", layout_lib.LAYOUTS)
  if cfg["layout"] == layout_lib.FOLDED and alg.matrix_shape is None:
    raise ValueError(
        f"transformer_lm: layout='folded' needs a matrix algebra M_n(base) "
        f"(e.g. M2R, M3R, M4R, M2C); {alg.name!r} is not one. Use "
        "layout='standard'."
    )
  _check_choice(cfg, "kernel_path", ("auto", *kernels.DENSE_PATHS))
  if cfg["layout"] == layout_lib.FOLDED and cfg["kernel_path"] not in (
      "auto",
      "fold",
  ):
    raise ValueError(
        "transformer_lm: layout='folded' always uses the fold kernel; got "
        f"kernel_path={cfg['kernel_path']!r}. Use 'auto' or 'fold', or "
        "layout='standard'."
    )
  if cfg["kernel_path"] == "fold" and alg.matrix_shape is None:
    raise ValueError(
        f"transformer_lm: kernel_path='fold' needs a matrix algebra; "
        f"{alg.name!r} is not one. Use kernel_path='auto'."
    )
  rate = cfg["dropout_rate"]
  if isinstance(rate, bool) or not isinstance(rate, (int, float)):
    raise ValueError(
        f"transformer_lm: dropout_rate must be a number in [0, 1), got {rate!r}."
    )
  if not 0.0 <= rate < 1.0:
    raise ValueError(
        f"transformer_lm: dropout_rate must be in [0, 1), got {rate!r}."
    )
  channels_for(cfg)


def channels_for(model_cfg: Any) -> int:
  """C = d_model * width_multiplier / algebra.dim, the algebra channels.

  Also checks that C is a positive integer divisible by num_heads.

  Raises:
    ValueError: unknown algebra; d_model * width_multiplier not a positive
      integer or not divisible by the algebra dimension; C not divisible by
      num_heads.
  """
  cfg = _resolved(model_cfg)
  alg = algebras.get(cfg["algebra"])
  _check_positive_int(cfg, "d_model")
  _check_positive_int(cfg, "num_heads")
  real = _real_width(cfg)
  d = alg.dim
  if real < 1 or real % d:
    low = max(d, real - real % d)
    high = (real // d + 1) * d
    examples = f"{low} or {high}" if low != high else f"{high}"
    raise ValueError(
        f"transformer_lm: d_model*width_multiplier = {real} is not divisible "
        f"by the dimension {d} of algebra {alg.name}; choose a multiple of "
        f"{d}, e.g. {examples}."
    )
  c = real // d
  heads = cfg["num_heads"]
  if c % heads:
    divisors = [h for h in range(1, c + 1) if c % h == 0]
    raise ValueError(
        f"transformer_lm: C = d_model*width_multiplier / {d} = {real} / {d} = "
        f"{c} algebra channels ({alg.name}) is not divisible by num_heads="
        f"{heads} (heads split the algebra channels). Choose num_heads in "
        f"{divisors}, or a real width that is a multiple of {d * heads}."
    )
  return c


def from_config(
    model_cfg: Any, *, vocab_size: int, max_len: int
) -> TransformerLM:
  """Builds the model from a validated config (call inside hk.transform).

  Args:
    model_cfg: see `validate_config`.
    vocab_size: V (e.g. 256 for bytes).
    max_len: the longest sequence the model will see.

  Returns:
    A `TransformerLM`, called as model(tokens [B, T], is_training=...).

  Raises:
    ValueError: see `validate_config`.
  """
  validate_config(model_cfg)
  cfg = _resolved(model_cfg)
  return TransformerLM(
      vocab_size=vocab_size,
      num_layers=cfg["num_layers"],
      num_channels=channels_for(cfg),
      num_heads=cfg["num_heads"],
      algebra=cfg["algebra"],
      mlp_ratio=cfg["mlp_ratio"],
      activation=cfg["activation"],
      norm_mode=cfg["norm_mode"],
      dropout_rate=float(cfg["dropout_rate"]),
      max_len=max_len,
      layout=cfg["layout"],
      kernel_path=cfg["kernel_path"],
  )
