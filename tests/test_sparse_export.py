"""Pruned-weight export and the block-sparse algebra dense kernel."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse

from algebranets import algebras, kernels
from algebranets.sparsity import export


def _weight_and_mask(seed, n_in, m_out, d, sparsity):
  rng = np.random.default_rng(seed)
  w = rng.standard_normal((n_in, m_out, d)).astype(np.float32)
  elem = np.ones(n_in * m_out, bool)
  elem[rng.permutation(n_in * m_out)[: round(sparsity * n_in * m_out)]] = False
  mask = np.repeat(elem.reshape(n_in, m_out)[..., None], d, axis=-1)
  return jnp.asarray(w), mask


def test_export_pruned_and_roundtrip(tmp_path):
  w, mask = _weight_and_mask(0, 3, 2, 4, 0.5)
  params = {"net/~/lin": {"w": w, "b": jnp.ones((2, 4))}}
  masks = {"net/~/lin": {"w": mask, "b": None}}
  flat_params, flat_masks = export.export_pruned(params, masks)
  assert sorted(flat_params) == ["net/~/lin/b", "net/~/lin/w"]
  assert list(flat_masks) == ["net/~/lin/w"]
  pw = flat_params["net/~/lin/w"]
  assert isinstance(pw, np.ndarray)
  np.testing.assert_array_equal(pw[~mask], 0.0)
  np.testing.assert_array_equal(pw[mask], np.asarray(w)[mask])
  np.testing.assert_array_equal(flat_params["net/~/lin/b"], 1.0)

  np.savez(tmp_path / "p.npz", **flat_params)
  np.savez(tmp_path / "m.npz", **flat_masks)
  with np.load(tmp_path / "p.npz") as p, np.load(tmp_path / "m.npz") as m:
    params2, masks2 = export.load_pruned(p, m)
  np.testing.assert_array_equal(params2["net/~/lin"]["w"], pw)
  np.testing.assert_array_equal(masks2["net/~/lin"]["w"], mask)
  assert masks2["net/~/lin"]["b"] is None


def test_export_rejects_bad_mask():
  params = {"lin": {"w": jnp.ones((3, 2, 4))}}
  with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
    export.export_pruned(params, {"lin": {"w": np.ones((3, 2), bool)}})


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_to_block_sparse_nse_is_kept_elements(sparsity):
  w, mask = _weight_and_mask(1, 6, 5, 4, sparsity)
  mask[0, 0] = True
  w = w.at[0, 0].set(0.0)  # a kept element whose VALUE is 0 is still stored
  kept = int(mask[..., 0].sum())
  b = export.to_block_sparse(w, mask)
  assert b.nse == kept
  assert b.n_dense == 1 and b.data.shape == (kept, 4)
  np.testing.assert_array_equal(b.todense(), np.where(mask, w, 0.0))
  # The element-mask form gives the same BCOO.
  b2 = export.to_block_sparse(w, mask[..., 0])
  np.testing.assert_array_equal(b2.indices, b.indices)


@pytest.mark.parametrize("name", ["R", "C", "H", "M2R"])
@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_sparse_dense_matches_masked_dense(name, sparsity):
  d = algebras.get(name).dim
  w, mask = _weight_and_mask(2, 7, 5, d, sparsity)
  x = jax.random.normal(jax.random.key(3), (2, 3, 7, d))
  want = kernels.dense(x, w * mask, name, path="einsum")
  got = export.sparse_dense(x, export.to_block_sparse(w, mask), name)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # BCOO.fromdense's layout works too.
  from_dense = sparse.BCOO.fromdense(w * mask, n_dense=1)
  np.testing.assert_allclose(
      export.sparse_dense(x, from_dense, name), want, rtol=1e-5, atol=1e-5
  )


def test_jit_with_padding():
  w, mask = _weight_and_mask(4, 6, 4, 4, 0.5)
  kept = int(mask[..., 0].sum())
  x = jax.random.normal(jax.random.key(5), (3, 6, 4))

  @jax.jit
  def f(x, w, mask):
    # Two padding slots beyond the kept elements must contribute nothing.
    b = export.to_block_sparse(w, mask, nse=kept + 2)
    return export.sparse_dense(x, b, "H")

  want = kernels.dense(x, w * mask, "H", path="einsum")
  np.testing.assert_allclose(f(x, w, mask), want, rtol=1e-5, atol=1e-5)
  b = export.to_block_sparse(w, mask)
  y = jax.jit(export.sparse_dense, static_argnums=2)(x, b, "H")
  np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_errors():
  w, mask = _weight_and_mask(6, 3, 2, 4, 0.5)
  with pytest.raises(ValueError, match="nse="):
    jax.jit(export.to_block_sparse)(w, mask)
  with pytest.raises(ValueError, match=r"\(3, 5\)"):
    export.to_block_sparse(w, np.ones((3, 5), bool))
  b = export.to_block_sparse(w, mask)
  with pytest.raises(ValueError, match=r"\[\.\.\., 3, 4\]"):
    export.sparse_dense(jnp.ones((2, 4, 4)), b, "H")
  with pytest.raises(ValueError, match="n_dense=1"):
    export.sparse_dense(jnp.ones((3, 4)), b, "C")
