"""Variance-preserving initializers for algebra-valued weights.

Shape glossary: N = input algebra channels, M = output algebra channels,
d = algebra dimension, kh/kw = kernel size, G = feature groups.

Weights are stored with the output channels second-to-last and the d
components last: dense [N, M, d], conv [kh, kw, C/G, M, d]. The fan-in is
the product of all the other axes (N, or kh * kw * C/G).

Derivation (paper section 4). A layer computes
y_k = sum_n sum_ij c_ijk w_ni x_nj. With independent zero-mean weight
components of variance Var(w_i) and activations with second moments
E[x_j^2], the cross terms vanish and

    E[y_k^2] = fan_in * sum_ij c_ijk^2 Var(w_i) E[x_j^2].

With the same variance sigma^2 for every weight component and the same
second moment v for every activation component this is
fan_in * sigma^2 * m_k * v, where m_k = sum_ij c_ijk^2 (the algebra's
`component_gains`). `AlgebraVarianceScaling` uses

    sigma^2 = gain^2 / (fan_in * m_bar),   m_bar = mean_k m_k,

so output component k has second moment gain^2 * (m_k / m_bar) * v: exactly
gain^2 * v for every algebra whose m_k are all equal (R, C, H, cross,
M_n(R), M2(C)). For m_bar = compute density this is He/LeCun init of the
expanded real block matrix with its true (nonzero) fan-in.

Dual numbers (m = (1, 2)) are the exception. Writing r = E[x_1^2] /
E[x_0^2] for the input ratio, only c_000 feeds component 0 while c_011 and
c_101 feed component 1, so

    E[y_0^2] = fan_in sigma^2 E[x_0^2],
    E[y_1^2] = fan_in sigma^2 (E[x_0^2] + E[x_1^2]),

and the output ratio is r' = 1 + r. Component-wise ReLU halves both second
moments, so the ratio grows by exactly 1 per layer: after L layers from a
balanced input, E[x_1^2] / E[x_0^2] = 1 + L. With gain sqrt(2) the real
part shrinks by 2/1.5 * 1/2 = 2/3 per layer, E[x_0^2] = (2/3)^L v, and
E[x_1^2] = (1 + L) (2/3)^L v: the eps component dominates and the real part
fades.

`balance='components'` removes the drift: weight component i gets variance
sigma^2 * s_i with s >= 0 solving sum_ij c_ijk^2 s_i = m_bar for all k, so
every output component has second moment gain^2 * v when the input
components are balanced. When several solutions exist the one closest to
s = 1 (the default) is used, so algebras with uniform m_k get exactly the
default. For dual the solution is unique, s = (1.5, 0): the eps weight
component starts at ZERO (each layer starts as a real scaling acting on both
components alike) and is learned from there (its gradient is not zero).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras

DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")
BALANCES = ("none", "components")

# Standard deviation of a unit normal truncated to [-2, 2]; dividing the
# pre-truncation stddev by it gives the truncated samples the target variance
# (the same constant as hk.initializers.VarianceScaling).
_TRUNC_STD = 0.87962566103423978

# Activation name -> gain. ReLU-like functions keep about half of the second
# moment of a zero-mean symmetric input (ReLU exactly half, the first-component
# gate exactly half, GELU/SiLU close to it), so He's sqrt(2) restores it.
# Functions that are close to the identity near zero (tanh, sigmoid around its
# offset, modReLU with its zero bias init, which IS the identity) get 1, as in
# LeCun init.
_SQRT2 = math.sqrt(2.0)
_GAINS = {
    "relu": _SQRT2,
    "split": _SQRT2,  # Component-wise ReLU (the default split activation).
    "first_component": _SQRT2,
    "leaky_relu": _SQRT2,
    "relu6": _SQRT2,
    "gelu": _SQRT2,
    "silu": _SQRT2,
    "swish": _SQRT2,
    "elu": _SQRT2,
    "celu": _SQRT2,
    "modrelu": 1.0,
    "linear": 1.0,
    "identity": 1.0,
    "none": 1.0,
    "tanh": 1.0,
    "sigmoid": 1.0,
    "soft_sign": 1.0,
    "hard_tanh": 1.0,
}


def gain_for(activation: str | None) -> float:
  """The init gain for the activation that follows a layer.

  sqrt(2) for ReLU-like functions (relu, split, first_component, leaky_relu,
  relu6, gelu, silu, swish, elu, celu): they keep about half of the second
  moment of a symmetric input. 1 for the identity-like ones (linear,
  identity, none/None, tanh, sigmoid, soft_sign, hard_tanh, and modrelu,
  which is the identity at its zero bias init).

  Raises:
    ValueError: unknown name; the message lists the valid ones.
  """
  if activation is None:
    return 1.0
  if activation not in _GAINS:
    raise ValueError(
        f"No init gain known for activation {activation!r}; valid names: "
        f"{', '.join(sorted(_GAINS))}. Pass gain= explicitly instead."
    )
  return _GAINS[activation]


def fan_in(shape: Sequence[int]) -> int:
  """prod(shape[:-2]): N for a dense [N, M, d], kh*kw*C/G for a conv."""
  return math.prod(shape[:-2])


@functools.cache
def _balanced_scales(alg: algebras.Algebra) -> np.ndarray:
  # A[k, i] = sum_j c_ijk^2: the gain from weight component i to output k.
  a = np.einsum("ijk->ki", alg.structure_constants**2)
  d = alg.dim
  m_bar = float(np.mean(alg.component_gains))
  b = np.full(d, m_bar)
  ones = np.ones(d)
  tol = 1e-9 * max(m_bar, 1.0)
  if np.all(np.abs(a @ ones - b) <= tol):
    return ones
  gains = np.array2string(alg.component_gains, precision=3)
  a_pinv = np.linalg.pinv(a)
  if np.max(np.abs(a @ (a_pinv @ b) - b)) > 1e-6 * m_bar:
    raise ValueError(
        f"balance='components': no per-component weight scales make the "
        f"output variances of algebra {alg.name!r} equal (component gains "
        f"m_k = {gains}; some output component cannot be reached). Use "
        "balance='none'."
    )

  def project_affine(s):  # Orthogonal projection onto {s : A s = b}.
    return s - a_pinv @ (a @ s - b)

  # Dykstra's alternating projections: converges to the projection of s = 1
  # onto {A s = b} intersected with {s >= 0}, i.e. the admissible scales
  # closest to the default. d <= 16, so each step is a few tiny matvecs.
  s, p, q = ones, np.zeros(d), np.zeros(d)
  for _ in range(20000):
    y = project_affine(s + p)
    p = s + p - y
    s_new = np.maximum(y + q, 0.0)
    q = y + q - s_new
    done = np.max(np.abs(s_new - s)) < 1e-12
    s = s_new
    if done:
      break
  if np.max(np.abs(a @ s - b)) > 1e-6 * m_bar:
    raise ValueError(
        f"balance='components': no NON-NEGATIVE per-component weight "
        f"variance scales equalise the output variances of algebra "
        f"{alg.name!r} (component gains m_k = {gains}); the equalising "
        "scales would need a negative variance. Use balance='none'."
    )
  s[s < 1e-12] = 0.0
  return s


def component_scales(algebra, balance: str = "none") -> np.ndarray:
  """Per-weight-component variance multipliers s [d] (numpy, float64).

  'none' gives all ones; 'components' gives the non-negative s closest to
  ones with sum_ij c_ijk^2 s_i = m_bar for every k (see the module
  docstring). E.g. dual -> (1.5, 0); every uniform-gain algebra -> ones.

  Raises:
    ValueError: unknown balance, or no non-negative s equalises the
      components of this algebra.
  """
  alg = algebras.get(algebra)
  if balance not in BALANCES:
    raise ValueError(
        f"Unknown balance {balance!r}; valid: {', '.join(BALANCES)}."
    )
  if balance == "none":
    return np.ones(alg.dim)
  return _balanced_scales(alg).copy()


class AlgebraVarianceScaling(hk.initializers.Initializer):
  """Variance-preserving init for algebra weights [..., M, d].

  Each weight component is drawn independently (one draw of the full shape)
  with variance sigma^2 * s_i, sigma^2 = gain^2 / (fan_in * m_bar),
  fan_in = prod(shape[:-2]), s from `component_scales(algebra, balance)`.
  A single layer on inputs whose components all have second moment v then
  gives output component k the second moment gain^2 * m_k / m_bar * v
  (balance='none') or gain^2 * v (balance='components').

  The truncated normal is cut at 2 standard deviations and rescaled so the
  samples have exactly the target variance.
  """

  def __init__(
      self,
      algebra,
      gain: float = 1.0,
      distribution: str = "truncated_normal",
      balance: str = "none",
  ):
    """Initializes the initializer.

    Args:
      algebra: registered name or `Algebra`.
      gain: sqrt(2) before ReLU-like activations, 1 before linear ones (see
        `gain_for`).
      distribution: 'truncated_normal', 'normal' or 'uniform'.
      balance: 'none' (one variance for all weight components) or
        'components' (per-component variances that equalise the output
        components; differs from 'none' only for non-uniform algebras such
        as dual).

    Raises:
      ValueError: unknown algebra, distribution or balance, negative gain, or
        balance='components' impossible for this algebra.
    """
    self.algebra = algebras.get(algebra)
    if distribution not in DISTRIBUTIONS:
      raise ValueError(
          f"Unknown distribution {distribution!r}; valid: "
          f"{', '.join(DISTRIBUTIONS)}."
      )
    if not gain >= 0:
      raise ValueError(f"gain must be >= 0, got {gain!r}.")
    self.gain = float(gain)
    self.distribution = distribution
    self.balance = balance
    self.scales = component_scales(self.algebra, balance)

  def variance(self, shape: Sequence[int]) -> np.ndarray:
    """Target per-component weight variance [d] for a weight of `shape`."""
    m_bar = float(np.mean(self.algebra.component_gains))
    return self.gain**2 / (fan_in(shape) * m_bar) * self.scales

  def __call__(self, shape: Sequence[int], dtype) -> jax.Array:
    shape = tuple(shape)
    d = self.algebra.dim
    if len(shape) < 2 or shape[-1] != d:
      raise ValueError(
          f"AlgebraVarianceScaling({self.algebra.name!r}): expected a weight "
          f"shape [..., M, {d}] (output channels, then the algebra "
          f"dimension), got {shape}."
      )
    if fan_in(shape) == 0:
      raise ValueError(
          f"AlgebraVarianceScaling: weight shape {shape} has zero fan-in."
      )
    std = np.sqrt(self.variance(shape)).reshape((1,) * (len(shape) - 1) + (d,))
    std = jnp.asarray(std, dtype)  # [1, ..., 1, d]
    key = hk.next_rng_key()
    # One flat draw of all the weights, reshaped: the same distribution as a
    # draw of `shape`, but XLA compiles the flat random-bit generator about
    # 10x faster (seconds per weight for rank-3+ shapes on CPU).
    flat = (math.prod(shape),)
    if self.distribution == "truncated_normal":
      unit = jax.random.truncated_normal(key, -2.0, 2.0, flat, dtype)
      std = std / _TRUNC_STD
    elif self.distribution == "normal":
      unit = jax.random.normal(key, flat, dtype)
    else:
      # Uniform on [-a, a] has variance a^2 / 3.
      unit = jax.random.uniform(key, flat, dtype, -1.0, 1.0)
      std = std * math.sqrt(3.0)
    return unit.reshape(shape) * std
