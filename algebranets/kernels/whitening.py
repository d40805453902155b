"""ZCA whitening of algebra elements: covariances and inverse square roots.

Pure functions of arrays behind `layers.BatchNorm` / `layers.LayerNorm`
with mode='whiten' (Trabelsi et al. 2018, Gaudet & Maida 2018): per
algebra channel (BatchNorm) or per token (LayerNorm) the d x d covariance
of the elements' real components, and its shifted inverse square root
W = (cov + shift I)^(-1/2), so that W x has identity covariance.

Shape glossary: N = samples, C = algebra channels, d = algebra dimension,
'...' = any leading axes (tokens).

Numerics (peers.md b.1): the shift scales with the covariance
(eps * trace / d + eps), so float32 rounding on large activations cannot
make the shifted covariance indefinite (the Cholesky failure of pdearena#29 /
cliffordlayers PR#12); and the inverse square root has a custom derivative
that stays finite for repeated eigenvalues, where differentiating `eigh`
itself gives inf/NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Covariances and whitening are tiny matmuls whose accuracy matters more than
# their speed; the default precision on TPU (bf16 passes) or GPU (TF32) would
# visibly break the whitening.
HIGHEST = jax.lax.Precision.HIGHEST


@jax.custom_jvp
def inv_sqrtm(cov: jax.Array, shift: jax.Array) -> jax.Array:
  """(cov + shift I)^(-1/2) for symmetric PSD cov [..., d, d], shift [...].

  Eigenvalues below 0 (float rounding of a PSD matrix) are clamped to 0
  before the shift, so the result is finite whenever shift > 0. The
  derivative (`jax.jvp`, and reverse mode through it) is the closed-form
  Daleckii-Krein one, finite for repeated eigenvalues.

  Returns:
    [..., d, d], symmetric.
  """
  return _inv_sqrtm_parts(cov, shift)[0]


def _inv_sqrtm_parts(cov, shift):
  lam, v = jnp.linalg.eigh(cov, symmetrize_input=True)
  inv_s = jax.lax.rsqrt(jnp.maximum(lam, 0) + shift[..., None])  # [..., d]
  f = jnp.einsum("...ik,...k,...jk->...ij", v, inv_s, v, precision=HIGHEST)
  return f, v, inv_s


@inv_sqrtm.defjvp
def _inv_sqrtm_jvp(primals, tangents):
  # Daleckii-Krein: for F = f(A), dF = V (K * (V^T dA V)) V^T with
  # K_ij = (f(l_i) - f(l_j)) / (l_i - l_j). For f(l) = (l + shift)^(-1/2)
  # the divided difference has the closed form -1 / (s_i s_j (s_i + s_j)),
  # s = sqrt(l + shift), which equals f'(l_i) on the diagonal and stays
  # bounded for repeated eigenvalues (differentiating eigh divides by
  # l_i - l_j and returns inf/NaN there, e.g. for rank-deficient inputs).
  cov, shift = primals
  dcov, dshift = tangents
  f, v, inv_s = _inv_sqrtm_parts(cov, shift)
  d = cov.shape[-1]
  da = 0.5 * (dcov + jnp.swapaxes(dcov, -1, -2))
  da = da + dshift[..., None, None] * jnp.eye(d, dtype=cov.dtype)
  s = 1.0 / inv_s
  k = -(inv_s[..., :, None] * inv_s[..., None, :]) / (
      s[..., :, None] + s[..., None, :]
  )
  db = jnp.einsum("...ki,...kl,...lj->...ij", v, da, v, precision=HIGHEST)
  df = jnp.einsum("...ik,...kl,...jl->...ij", v, k * db, v, precision=HIGHEST)
  return f, df


def whitening_shift(cov: jax.Array, eps: float) -> jax.Array:
  """eps * (trace(cov) / d) + eps for cov [..., d, d] -> [...].

  The relative part keeps the shifted covariance positive definite in float
  rounding for large activations; the absolute part for zero ones.
  """
  d = cov.shape[-1]
  return eps * jnp.trace(cov, axis1=-2, axis2=-1) / d + eps


def whitening_matrix(cov: jax.Array, eps: float) -> jax.Array:
  """W = inv_sqrtm(cov, whitening_shift(cov, eps)): [..., d, d] -> same."""
  return inv_sqrtm(cov, whitening_shift(cov, eps))


def sample_covariance(centred: jax.Array) -> jax.Array:
  """Per-channel covariance over samples (BatchNorm).

  Args:
    centred: [N, C, d], the samples minus their mean (any float dtype).

  Returns:
    [C, d, d]: sum_n x_n x_n^T / N (the biased estimate, as hk.BatchNorm),
    in the input dtype.
  """
  n = jnp.asarray(centred.shape[0], centred.dtype)
  return jnp.einsum("nci,ncj->cij", centred, centred, precision=HIGHEST) / n


def channel_covariance(centred: jax.Array) -> jax.Array:
  """Per-token covariance over the channels (LayerNorm).

  Args:
    centred: [..., C, d], each token minus its mean element over C.

  Returns:
    [..., d, d]: sum_c x_c x_c^T / C, in the input dtype.
  """
  c = jnp.asarray(centred.shape[-2], centred.dtype)
  return (
      jnp.einsum("...ci,...cj->...ij", centred, centred, precision=HIGHEST) / c
  )


__all__ = [
    "HIGHEST",
    "channel_covariance",
    "inv_sqrtm",
    "sample_covariance",
    "whitening_matrix",
    "whitening_shift",
]
