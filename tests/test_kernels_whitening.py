"""kernels/whitening.py: the shifted inverse square root and its derivative,
the scaled shift, and the covariances, against float64 NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets.kernels import whitening


def _inv_sqrtm_np(cov, shift):
  lam, v = np.linalg.eigh(cov)
  f = (np.maximum(lam, 0) + shift[..., None]) ** -0.5
  return np.einsum("...ik,...k,...jk->...ij", v, f, v)


def _random_cov(rng, c, d, n):
  a = rng.normal(size=(c, d, n))
  return np.einsum("cik,cjk->cij", a, a) / n


def test_inv_sqrtm_jvp_matches_float64_finite_differences():
  rng = np.random.default_rng(23)
  a = rng.normal(size=(3, 4, 6))
  cov = np.einsum("cik,cjk->cij", a, a) / 6
  cov[2] = 2.0 * np.eye(4)  # fully repeated eigenvalues
  tangent = rng.normal(size=cov.shape)
  tangent = tangent + np.swapaxes(tangent, -1, -2)
  shift = np.array([1e-2, 1e-1, 1e-2])
  dshift = np.array([0.3, -0.2, 0.1])
  _, got = jax.jvp(
      whitening.inv_sqrtm,
      (jnp.asarray(cov, jnp.float32), jnp.asarray(shift, jnp.float32)),
      (jnp.asarray(tangent, jnp.float32), jnp.asarray(dshift, jnp.float32)),
  )
  h = 1e-6
  want = (
      _inv_sqrtm_np(cov + h * tangent, shift + h * dshift)
      - _inv_sqrtm_np(cov - h * tangent, shift - h * dshift)
  ) / (2 * h)
  np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("d", [1, 2, 4, 8])
def test_inv_sqrtm_matches_float64(d):
  rng = np.random.default_rng(d)
  cov = _random_cov(rng, 3, d, 2 * d + 3)
  shift = np.array([1e-3, 1e-2, 0.5])
  got = whitening.inv_sqrtm(
      jnp.asarray(cov, jnp.float32), jnp.asarray(shift, jnp.float32)
  )
  want = _inv_sqrtm_np(cov, shift)
  # float32 eigh of a well-conditioned d x d matrix: relative error a few
  # ulps times the condition number (eigenvalues >= shift >= 1e-3).
  np.testing.assert_allclose(
      got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max()
  )
  # W (cov + shift I) W = I, the defining property.
  eye = np.einsum(
      "cij,cjk,ckl->cil",
      np.asarray(got, np.float64),
      cov + shift[:, None, None] * np.eye(d),
      np.asarray(got, np.float64),
  )
  np.testing.assert_allclose(
      eye, np.broadcast_to(np.eye(d), eye.shape), atol=1e-3
  )


def test_inv_sqrtm_clamps_negative_eigenvalues():
  # A PSD matrix with a rounding-negative eigenvalue stays finite.
  cov = np.diag([1.0, -1e-7]).astype(np.float32)
  got = whitening.inv_sqrtm(jnp.asarray(cov), jnp.asarray(1e-2, jnp.float32))
  np.testing.assert_allclose(got, np.diag([1.01**-0.5, 1e-2**-0.5]), rtol=1e-5)


def test_whitening_shift_scales_with_the_trace():
  cov = np.stack([np.eye(3) * 4.0, np.zeros((3, 3))]).astype(np.float32)
  got = whitening.whitening_shift(jnp.asarray(cov), 1e-5)
  np.testing.assert_allclose(got, [1e-5 * 4 + 1e-5, 1e-5], rtol=1e-6)
  w = whitening.whitening_matrix(jnp.asarray(cov), 1e-5)
  np.testing.assert_allclose(
      w,
      _inv_sqrtm_np(cov.astype(np.float64), np.asarray(got, np.float64)),
      rtol=1e-5,
  )


def test_covariances_match_numpy():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(50, 3, 4))
  xc = x - x.mean(axis=0)
  want = np.einsum("nci,ncj->cij", xc, xc) / 50
  got = whitening.sample_covariance(jnp.asarray(xc, jnp.float32))
  assert got.shape == (3, 4, 4) and got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  tokens = rng.normal(size=(2, 5, 6, 4))
  tc = tokens - tokens.mean(axis=-2, keepdims=True)
  want = np.einsum("...ci,...cj->...ij", tc, tc) / 6
  got = whitening.channel_covariance(jnp.asarray(tc, jnp.float32))
  assert got.shape == (2, 5, 4, 4)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_whitened_samples_have_identity_covariance():
  rng = np.random.default_rng(4)
  mix = rng.normal(size=(4, 4))
  x = rng.normal(size=(4000, 1, 4)) @ mix.T  # correlated components
  xc = jnp.asarray(x - x.mean(axis=0), jnp.float32)
  w = whitening.whitening_matrix(whitening.sample_covariance(xc), 1e-6)
  y = np.asarray(jnp.einsum("ncj,cij->nci", xc, w), np.float64)
  cov = np.einsum("nci,ncj->cij", y, y) / len(y)
  np.testing.assert_allclose(cov[0], np.eye(4), atol=1e-3)


def test_grad_is_finite_for_repeated_eigenvalues():
  def loss(cov):
    return jnp.sum(whitening.whitening_matrix(cov, 1e-3) ** 2)

  g = jax.grad(loss)(jnp.eye(3, dtype=jnp.float32)[None] * 2.0)
  assert np.isfinite(np.asarray(g)).all()
