"""Two-layer student networks over an algebra (the teacher-student study).

    x [B, d] real
      -> lift: [B, N, A] algebra channels (consecutive features fill an
         element: feature n*A + j is component j of channel n)
      -> Linear (algebra weights [N, H, A], bias [H, A])   module 'hidden'
      -> activation                                       [B, H, A]
      -> real head: all H*A real components -> 1, bias    module 'head'
      -> predictions [B]

Shape glossary: B = batch, d = input features, A = algebra dimension,
N = input algebra channels (d / A, or ceil(d / A) with lift 'pad'),
H = hidden algebra channels (H*A real hidden units).

Keys (keyword arguments of `TwoLayer`, the model section of a config):
  algebra     any registered algebra.
  hidden      real hidden units of the R student this one is compared with.
  match       'params': H is chosen so that the total parameter count is the
              closest to that R student's (`matched_channels`); 'none':
              H = hidden // A.
  activation  'poly': the teacher's polynomial sigma(t) = sum_k a_k t^k on
              every real component (the coefficients come from the task);
              'relu': component-wise ReLU; 'poly_algebra': sum_k a_k q^k
              with the algebra product, q^k = q q^{k-1} (left powers; for a
              non-associative algebra this fixes the bracketing), a_0 times
              the algebra's unit (an algebra without a unit, e.g. 'cross',
              needs a_0 = 0).
  lift        'reshape': d must be divisible by A (otherwise a ValueError
              names the fix); 'pad': x is zero-padded to N*A features first.

Initialisation: the hidden layer uses the library's
`AlgebraVarianceScaling` with gain 1 before a polynomial (so every real
hidden unit's effective direction has squared norm about 1, the teacher's
scale) and sqrt(2) before ReLU; the head weights start at zero, so the
student starts as a constant (the trivial predictor, with the task's output
offset): a random head on cubic units (Var(t + t^3) = 22 for t ~ N(0, 1))
would start tens of Var(y) away and take most of a short run to recover.

`effective_directions` expands each algebra weight w_nm into its real
left-regular block L(w_nm) [A, A], so real hidden unit m*A + k has the input
direction (L(w_1m)[k, :], ..., L(w_Nm)[k, :]) in R^d.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras, config_access, layers
from algebranets.layers import initializers

NAME = "two_layer"
ACTIVATIONS = ("poly", "relu", "poly_algebra")
MATCHES = ("params", "none")
LIFTS = ("reshape", "pad")
HIDDEN_MODULE = "hidden"
HEAD_MODULE = "head"


def input_channels(input_dim: int, algebra, lift: str = "reshape") -> int:
  """N, the algebra channels of the lifted input.

  Raises:
    ValueError: lift 'reshape' with d not divisible by A (names the fix).
  """
  alg = algebras.get(algebra)
  dim = alg.dim
  if lift == "pad":
    return -(-input_dim // dim)
  if lift != "reshape":
    config_access.check_choice(lift, "model.lift", LIFTS, NAME)
  if input_dim % dim:
    padded = -(-input_dim // dim) * dim
    raise ValueError(
        f"{NAME}: data.input_dim={input_dim} is not divisible by the "
        f"dimension {dim} of algebra {alg.name!r}; use "
        f"--config.model.lift=pad (zero-pads x to {padded} features), "
        f"choose data.input_dim as a multiple of {dim}, or another algebra."
    )
  return input_dim // dim


def num_params(
    input_dim: int, channels: int, algebra, lift: str = "reshape"
) -> int:
  """Real parameters of a student with H = `channels` algebra channels.

  N*H*A (hidden weights) + H*A (hidden bias) + H*A (head weights) + 1.
  """
  dim = algebras.get(algebra).dim
  n_in = input_channels(input_dim, algebra, lift)
  return n_in * channels * dim + 2 * channels * dim + 1


def matched_channels(
    input_dim: int, hidden: int, algebra, lift: str = "reshape"
) -> int:
  """H >= 1 whose parameter count is the closest to the R student's.

  The R student with `hidden` units has hidden * (d + 2) + 1 parameters;
  ties go to the smaller H.
  """
  target = num_params(input_dim, hidden, "R")
  dim = algebras.get(algebra).dim
  per_channel = dim * (input_channels(input_dim, algebra, lift) + 2)
  guess = (target - 1) / per_channel
  candidates = {max(1, math.floor(guess)), max(1, math.ceil(guess))}
  return min(
      sorted(candidates),
      key=lambda h: abs(num_params(input_dim, h, algebra, lift) - target),
  )


def polynomial(x: jax.Array, coeffs: Sequence[float]) -> jax.Array:
  """sum_k coeffs[k] x^k elementwise (Horner), x's shape and dtype."""
  out = jnp.full_like(x, coeffs[-1])
  for a in reversed(coeffs[:-1]):
    out = out * x + jnp.asarray(a, x.dtype)
  return out


def algebra_polynomial(
    q: jax.Array, coeffs: Sequence[float], algebra
) -> jax.Array:
  """sum_k coeffs[k] q^k with the algebra product.

  Args:
    q: [..., A] algebra elements.
    coeffs: real coefficients (a_0, ..., a_K).
    algebra: name or `Algebra`.

  Returns:
    [..., A]: a_0 * unit + sum_{k>=1} a_k q^k with left powers
    q^1 = q, q^k = q q^{k-1}.

  Raises:
    ValueError: a_0 != 0 for an algebra without a unit.
  """
  alg = algebras.get(algebra)
  out = coeffs[1] * q
  power = q
  for a in coeffs[2:]:
    power = alg.multiply(q, power)
    if a != 0:
      out = out + a * power
  if coeffs[0] != 0:
    if alg.unit is None:
      raise ValueError(
          f"algebra_polynomial: a_0 = {coeffs[0]} needs a unit, but algebra "
          f"{alg.name!r} has none; use a_0 = 0."
      )
    unit = jnp.broadcast_to(jnp.asarray(alg.unit, q.dtype), q.shape)
    out = out + coeffs[0] * unit
  return out


class TwoLayer(hk.Module):
  """Lift -> algebra Linear -> activation -> real linear head (1 output)."""

  def __init__(
      self,
      input_dim: int | None = None,
      coeffs: Sequence[float] | None = None,
      *,
      algebra="R",
      hidden: int = 16,
      match: str = "params",
      activation: str = "poly",
      lift: str = "reshape",
      name: str | None = None,
  ):
    """Constructs the student.

    The keyword arguments are the `model` section of a config; build it from
    one with `algebranets.models.build(config.model, input_dim=d,
    coeffs=a)`.

    Args:
      input_dim: d, real input features (from the task). None only while a
        config is checked before the data is loaded (`models.check`): the
        checks against the data (d, coeffs) then wait for the build.
      coeffs: the teacher's monomial coefficients (from the task), needed by
        'poly' and 'poly_algebra'.
      algebra: registered name or `Algebra`.
      hidden: real hidden units of the R student this one is compared with.
      match: 'params' (H = `matched_channels`) or 'none' (H = hidden // A).
      activation: one of ACTIVATIONS.
      lift: 'reshape' or 'pad'.
      name: module name; default 'two_layer'.

    Attributes:
      channels: H, hidden algebra channels (H*A real hidden units); None
        while input_dim is None with match='params'.

    Raises:
      ValueError: unknown algebra, match, activation or lift; hidden < 1;
        match='none' with hidden < A (no channel); d not divisible by A
        with lift 'reshape'; a polynomial activation without coefficients;
        'poly_algebra' with a_0 != 0 in an algebra without a unit. Messages
        name the fix.
    """
    super().__init__(name=name or NAME)
    who = NAME
    alg = self.algebra = algebras.get(algebra)
    if not config_access.is_int(hidden) or hidden < 1:
      raise ValueError(
          f"{who}: model.hidden={hidden!r} must be an int >= 1 (real "
          "hidden units of the R student), e.g. --config.model.hidden=16."
      )
    config_access.check_choice(match, "model.match", MATCHES, who)
    config_access.check_choice(activation, "model.activation", ACTIVATIONS, who)
    config_access.check_choice(lift, "model.lift", LIFTS, who)
    if match == "none" and hidden < alg.dim:
      raise ValueError(
          f"{who}: model.match='none' gives hidden // {alg.dim} = 0 channels "
          f"of algebra {alg.name!r} for model.hidden={hidden}; raise "
          f"model.hidden to at least {alg.dim} or use model.match='params'."
      )
    self.hidden = int(hidden)
    self.match = match
    self.activation = activation
    self.lift = lift
    self.coeffs = None if coeffs is None else tuple(float(a) for a in coeffs)
    self.input_dim = self.n_in = None
    self.channels = None if match == "params" else self.hidden // alg.dim
    if input_dim is None:
      return
    self.input_dim = int(input_dim)
    self.n_in = input_channels(self.input_dim, alg, lift)
    if match == "params":
      self.channels = matched_channels(self.input_dim, self.hidden, alg, lift)
    if activation in ("poly", "poly_algebra"):
      if coeffs is None or len(coeffs) < 2:
        raise ValueError(
            f"{who}: activation {activation!r} needs the teacher's "
            f"polynomial coefficients (at least a0, a1), got {coeffs!r}; use "
            "it with the teacher_student task or model.activation='relu'."
        )
      if activation == "poly_algebra" and alg.unit is None and coeffs[0] != 0:
        raise ValueError(
            f"{who}: activation 'poly_algebra' adds a_0 = {coeffs[0]} times "
            f"the unit, but algebra {alg.name!r} has no unit; use "
            "model.activation='poly' (component-wise) or a0 = 0."
        )

  def __call__(self, x: jax.Array, is_training: bool = False) -> jax.Array:
    """Predictions for real inputs.

    Args:
      x: float [B, d].
      is_training: unused (no dropout or normalisation); kept for the
        models' common call signature.

    Returns:
      float [B].
    """
    del is_training
    if x.ndim != 2 or x.shape[1] != self.input_dim:
      raise ValueError(
          f"TwoLayer: expected x [B, {self.input_dim}], got shape "
          f"{tuple(x.shape)}."
      )
    dim = self.algebra.dim
    width = self.n_in * dim
    if width != self.input_dim:
      x = jnp.pad(x, ((0, 0), (0, width - self.input_dim)))
    h = x.reshape(x.shape[0], self.n_in, dim)
    relu = self.activation == "relu"
    gain = initializers.gain_for("relu" if relu else None)
    h = layers.Linear(
        self.channels, self.algebra, gain=gain, name=HIDDEN_MODULE
    )(h)
    if relu:
      h = jax.nn.relu(h)
    elif self.activation == "poly":
      h = polynomial(h, self.coeffs)
    else:
      h = algebra_polynomial(h, self.coeffs, self.algebra)
    # A zero head starts every student at the trivial predictor (the task
    # adds E[y]); a random head on cubic units starts tens of Var(y) away.
    out = layers.FlattenReal(
        1, algebra=self.algebra, w_init=jnp.zeros, name=HEAD_MODULE
    )(h)
    return out[:, 0]


def _hidden_weight(params: Mapping[str, Any]) -> np.ndarray:
  found = [
      mod
      for mod in params
      if mod.split("/")[-1] == HIDDEN_MODULE and "w" in params[mod]
  ]
  if len(found) != 1:
    raise ValueError(
        f"effective_directions: expected exactly one module named "
        f"'.../{HIDDEN_MODULE}' with a weight 'w' in params, found "
        f"{found or 'none'} among {sorted(params)}; pass the params of a "
        f"{NAME} model."
    )
  return np.asarray(params[found[0]]["w"], dtype=np.float64)


def effective_directions(
    params: Mapping[str, Any], algebra, *, input_dim: int | None = None
) -> np.ndarray:
  """Real input direction of every real hidden unit.

  Args:
    params: the student's parameters (Haiku dict; host or device arrays).
    algebra: the student's algebra (name or `Algebra`; model.algebra).
    input_dim: d; with lift 'pad' the directions are cut to the first d
      features (the padded ones are always zero). None keeps N*A columns.

  Returns:
    float64 [H*A, d]: row m*A + k is the weight vector of component k of
    hidden channel m, (L(w_1m)[k, :], ..., L(w_Nm)[k, :]) with L(w) the
    left-regular matrix (L(w) b = w b), in the head's flattening order.

  Raises:
    ValueError: no hidden layer in params, a weight whose last axis is not
      the algebra dimension, or input_dim larger than N*A.
  """
  alg = algebras.get(algebra)
  w = _hidden_weight(params)
  if w.ndim != 3 or w.shape[-1] != alg.dim:
    raise ValueError(
        f"effective_directions: hidden weight has shape {w.shape}, not "
        f"[N, H, {alg.dim}] for algebra {alg.name!r}; pass the algebra the "
        "params were trained with."
    )
  n_in, channels, dim = w.shape
  blocks = alg.left_matrix(w)  # [N, H, A(k), A(j)]
  dirs = blocks.transpose(1, 2, 0, 3).reshape(channels * dim, n_in * dim)
  if input_dim is not None:
    if input_dim > n_in * dim:
      raise ValueError(
          f"effective_directions: input_dim={input_dim} exceeds the "
          f"{n_in * dim} lifted features of these params."
      )
    dirs = dirs[:, :input_dim]
  return dirs
