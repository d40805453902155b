"""Gaussian inputs labelled by a two-layer teacher with a polynomial activation.

The data model of Mondelli & Montanari (2018), "On the connection between
learning two-layer neural networks and tensor decomposition":

    x ~ N(0, I_d),   y = sum_{i=1..r} sigma(w_i . x) + noise_std * N(0, 1),
    sigma(t) = sum_k a_k t^k          (monomial coefficients `coeffs`)

with random isotropic unit-norm teacher rows w_i (or rows given by the user,
used as given). Everything a study compares against is in closed form
(float64): the mean and variance of y, the Hermite coefficients of sigma and
the error of the best linear predictor.

Closed forms. With probabilists' Hermite polynomials He_k, a unit vector u
and z = u . x ~ N(0, 1), E[He_k(u.x) He_l(v.x)] = delta_kl k! (u.v)^k. A row
w_i = n_i u_i (n_i = |w_i|) gives sigma(w_i . x) = sigma_i(u_i . x) with
sigma_i(t) = sigma(n_i t) = sum_k c_ik He_k(t), so

    E[y]   = sum_i c_i0
    Var(y) = sum_{k>=1} k! sum_{i,j} c_ik c_jk (u_i . u_j)^k + noise_std^2
    E[y x] = sum_i c_i1 u_i        (the best linear predictor's slope)

and for unit rows (c_ik = c_k) these are r c_0 and
sum_k c_k^2 k! sum_ij rho_ij^k with rho = W W^T.

Shape glossary: n = examples, d = input dimension, r = teacher units,
K = polynomial degree.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import pathlib
from collections.abc import Sequence

import numpy as np
from numpy.polynomial import hermite_e
from numpy.polynomial import polynomial as poly

# Rows of x per block when the teacher labels many examples: bounds the
# [block, r] pre-activation matrix to ~32 MB at r = 1024.
_PREDICT_BLOCK = 4096
# Teacher units per block of the Gram matrix in `variance`.
_GRAM_BLOCK = 2048


@dataclasses.dataclass(frozen=True, eq=False)
class PolynomialTeacher:
  """y = sum_i sigma(w_i . x) (+ Gaussian label noise), sigma a polynomial.

  Attributes:
    weights: float64 [r, d] teacher rows w_i (unit norm when random; any
      non-zero norm when given).
    coeffs: monomial coefficients, sigma(t) = sum_k coeffs[k] t^k.
    noise_std: standard deviation of the additive Gaussian label noise.
  """

  weights: np.ndarray
  coeffs: tuple[float, ...]
  noise_std: float = 0.0

  def __post_init__(self):
    w = np.array(self.weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 1:
      raise ValueError(
          "PolynomialTeacher: weights must be a [r, d] array with r, d >= 1, "
          f"got shape {w.shape}."
      )
    if not np.all(np.isfinite(w)):
      raise ValueError("PolynomialTeacher: weights contain NaN or Inf.")
    norms = np.linalg.norm(w, axis=1)
    if np.any(norms == 0):
      raise ValueError(
          "PolynomialTeacher: teacher row(s) "
          f"{np.flatnonzero(norms == 0).tolist()} are zero; every unit needs "
          "a direction (drop the row or give it a non-zero weight vector)."
      )
    w.setflags(write=False)
    object.__setattr__(self, "weights", w)
    object.__setattr__(self, "coeffs", check_coeffs(self.coeffs, "coeffs"))
    noise = self.noise_std
    if not _is_real(noise) or not math.isfinite(noise) or noise < 0:
      raise ValueError(
          f"PolynomialTeacher: noise_std={noise!r} must be a finite number "
          ">= 0 (0 = noiseless labels)."
      )
    object.__setattr__(self, "noise_std", float(noise))

  @property
  def input_dim(self) -> int:
    """d."""
    return int(self.weights.shape[1])

  @property
  def num_units(self) -> int:
    """r."""
    return int(self.weights.shape[0])

  @property
  def directions(self) -> np.ndarray:
    """Unit rows u_i = w_i / |w_i|, float64 [r, d]."""
    return self.weights / np.linalg.norm(self.weights, axis=1, keepdims=True)

  def sigma(self, t) -> np.ndarray:
    """The activation sum_k coeffs[k] t^k, elementwise (float64, t's shape)."""
    return poly.polyval(np.asarray(t, dtype=np.float64), self.coeffs)

  def hermite_coeffs(self) -> np.ndarray:
    """c [K + 1] with sigma(t) = sum_k c_k He_k(t) (probabilists' Hermite).

    For example sigma(t) = a0 + a1 t + a3 t^3 has c = (a0, a1 + 3 a3, 0, a3)
    since t^3 = He_3(t) + 3 He_1(t).
    """
    return _padded_herme(self.coeffs, len(self.coeffs))

  def unit_hermite_coeffs(self) -> np.ndarray:
    """c [r, K + 1]: row i expands sigma(|w_i| t) in He_k (float64).

    Equal to `hermite_coeffs()` in every row for unit-norm teacher rows.
    """
    norms = np.linalg.norm(self.weights, axis=1)
    a = np.asarray(self.coeffs, dtype=np.float64)
    k = len(a)
    scaled = a[None, :] * norms[:, None] ** np.arange(k)[None, :]
    return np.stack([_padded_herme(row, k) for row in scaled])

  def mean(self) -> float:
    """E[y] = sum_i c_i0 (= r c_0 for unit rows)."""
    return float(np.sum(self.unit_hermite_coeffs()[:, 0]))

  def variance(self) -> float:
    """Var(y) in closed form, label noise included (float64).

    sum_{k>=1} k! sum_{i,j} c_ik c_jk (u_i . u_j)^k + noise_std^2; see the
    module docstring.
    """
    c = self.unit_hermite_coeffs()
    u = self.directions
    total = 0.0
    for start in range(0, self.num_units, _GRAM_BLOCK):
      gram = u[start : start + _GRAM_BLOCK] @ u.T  # [block, r]
      power = np.ones_like(gram)
      for k in range(1, c.shape[1]):
        power = power * gram
        if not np.any(c[:, k]):
          continue
        block_c = c[start : start + _GRAM_BLOCK, k]
        total += math.factorial(k) * float(block_c @ power @ c[:, k])
    return total + self.noise_std**2

  def linear_slope(self) -> np.ndarray:
    """E[y x] = sum_i c_i1 u_i, float64 [d]: the population OLS slope."""
    return self.unit_hermite_coeffs()[:, 1] @ self.directions

  def least_squares_nmse(self) -> float:
    """Population error of the best linear predictor b + v . x over Var(y).

    1 - |E[y x]|^2 / Var(y): the linear Hermite part is all a linear fit can
    explain (the honest baseline; 1.0 when that part vanishes).
    """
    slope = self.linear_slope()
    return float(1.0 - slope @ slope / self.variance())

  def predict(self, x) -> np.ndarray:
    """Noiseless labels sum_i sigma(w_i . x).

    Args:
      x: [n, d] inputs (any float dtype).

    Returns:
      float64 [n].
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != self.input_dim:
      raise ValueError(
          f"PolynomialTeacher.predict: x must be [n, {self.input_dim}], got "
          f"shape {x.shape}."
      )
    out = np.empty(x.shape[0], dtype=np.float64)
    for start in range(0, x.shape[0], _PREDICT_BLOCK):
      pre = x[start : start + _PREDICT_BLOCK] @ self.weights.T
      out[start : start + _PREDICT_BLOCK] = self.sigma(pre).sum(axis=1)
    return out


def _padded_herme(monomial: Sequence[float], length: int) -> np.ndarray:
  """Hermite_e coefficients of a monomial series, zero-padded to `length`."""
  c = hermite_e.poly2herme(np.asarray(monomial, dtype=np.float64))
  out = np.zeros(length, dtype=np.float64)
  out[: len(c)] = c
  return out


def _is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_coeffs(coeffs, key: str = "data.coeffs") -> tuple[float, ...]:
  """Validates monomial coefficients (a0, a1, ..., aK); returns floats.

  Raises:
    ValueError: not a sequence of finite numbers, fewer than 2 entries, or
      every coefficient of degree >= 1 zero (a constant sigma: y would not
      depend on x). The message names `key` and the fix.
  """
  fix = (
      f"Give {key} as monomial coefficients (a0, a1, a2, a3, ...), e.g. "
      "(0.0, 1.0, 0.0, 1.0) for sigma(t) = t + t^3."
  )
  if isinstance(coeffs, (str, bytes)) or not isinstance(coeffs, Sequence):
    raise ValueError(f"{key}={coeffs!r} is not a sequence of numbers. {fix}")
  if len(coeffs) < 2:
    raise ValueError(
        f"{key}={tuple(coeffs)!r} has degree < 1 (a constant activation). "
        + fix
    )
  bad = [c for c in coeffs if not _is_real(c) or not math.isfinite(c)]
  if bad:
    raise ValueError(
        f"{key}={tuple(coeffs)!r} holds {bad[0]!r}, not a finite number. " + fix
    )
  if not any(float(c) != 0.0 for c in coeffs[1:]):
    raise ValueError(
        f"{key}={tuple(coeffs)!r}: every coefficient of degree >= 1 is "
        "zero, so y would not depend on x. " + fix
    )
  return tuple(float(c) for c in coeffs)


def load_weights(
    path: str | os.PathLike, num_units: int, input_dim: int
) -> np.ndarray:
  """Teacher rows from an .npy file of shape [r, d] (used as given).

  Raises:
    ValueError: missing file, unreadable or non-numeric array, wrong shape,
      NaN/Inf or a zero row; the message names data.teacher_weights.
  """
  p = pathlib.Path(path)
  if not p.is_file():
    raise ValueError(
        f"data.teacher_weights={str(path)!r} is not a file. Save the teacher "
        f"rows with numpy.save(path, W) for W of shape [{num_units}, "
        f"{input_dim}] (data.teacher_units x data.input_dim), or set "
        "data.teacher_weights='' for random unit-norm rows."
    )
  try:
    w = np.load(p, allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise ValueError(
        f"data.teacher_weights={str(path)!r} is not a readable .npy array "
        f"({e}). Write it with numpy.save."
    ) from None
  if not np.issubdtype(w.dtype, np.number) or np.iscomplexobj(w):
    raise ValueError(
        f"data.teacher_weights={str(path)!r} holds dtype {w.dtype}; it must "
        "be a real float array."
    )
  if w.shape != (num_units, input_dim):
    raise ValueError(
        f"data.teacher_weights={str(path)!r} has shape {w.shape}, but "
        f"data.teacher_units={num_units} and data.input_dim={input_dim} need "
        f"({num_units}, {input_dim}); set those keys to match the file (or "
        "save the file with that shape)."
    )
  w = w.astype(np.float64)
  if not np.all(np.isfinite(w)):
    raise ValueError(
        f"data.teacher_weights={str(path)!r} contains NaN or Inf values."
    )
  zero = np.flatnonzero(np.linalg.norm(w, axis=1) == 0)
  if zero.size:
    raise ValueError(
        f"data.teacher_weights={str(path)!r}: row(s) {zero.tolist()} are "
        "zero; every teacher unit needs a non-zero weight vector."
    )
  return w


def random_directions(num_units: int, input_dim: int, seed) -> np.ndarray:
  """r isotropic unit vectors in R^d from `np.random.default_rng(seed)`."""
  w = np.random.default_rng(seed).standard_normal((num_units, input_dim))
  return w / np.linalg.norm(w, axis=1, keepdims=True)


def make_teacher(
    input_dim: int,
    num_units: int,
    coeffs: Sequence[float],
    *,
    seed: int,
    weights_path: str = "",
    noise_std: float = 0.0,
) -> PolynomialTeacher:
  """Builds the teacher.

  Args:
    input_dim: d >= 1.
    num_units: r >= 1.
    coeffs: monomial coefficients of sigma (see `check_coeffs`).
    seed: seeds the random unit-norm rows (np.random.default_rng(seed));
      unused with `weights_path`.
    weights_path: '' for random rows, else an .npy file [r, d] whose rows
      are used as given (not normalised).
    noise_std: label noise standard deviation >= 0.

  Returns:
    A `PolynomialTeacher`.

  Raises:
    ValueError: d or r < 1, bad coeffs, or a bad weights file (messages name
      the data.* key and the fix).
  """
  for key, value in (
      ("data.input_dim", input_dim),
      ("data.teacher_units", num_units),
  ):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
      raise ValueError(f"{key}={value!r} must be an int >= 1.")
    if value < 1:
      raise ValueError(
          f"{key}={value} must be >= 1 (the teacher needs at least one "
          "unit in at least one dimension)."
      )
  coeffs = check_coeffs(coeffs)
  if weights_path:
    w = load_weights(weights_path, num_units, input_dim)
  else:
    w = random_directions(num_units, input_dim, seed)
  return PolynomialTeacher(weights=w, coeffs=coeffs, noise_std=noise_std)


def sample(
    teacher: PolynomialTeacher, num_examples: int, key: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
  """Draws labelled examples; a pure function of (teacher, n, key).

  x comes first from `np.random.default_rng(key)`, then the noise, so the
  inputs do not depend on the noise level.

  Args:
    teacher: the teacher.
    num_examples: n >= 0.
    key: seed of the generator (a tuple of non-negative ints).

  Returns:
    (x float32 [n, d], y float32 [n]); y is computed in float64 from the
    float64 x and then rounded.
  """
  rng = np.random.default_rng(key)
  x = rng.standard_normal((num_examples, teacher.input_dim))
  y = teacher.predict(x)
  if teacher.noise_std > 0:
    y = y + teacher.noise_std * rng.standard_normal(num_examples)
  return x.astype(np.float32), y.astype(np.float32)
