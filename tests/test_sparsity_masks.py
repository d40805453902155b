"""Tests for algebranets.sparsity.masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets.sparsity import masks


def _params():
  k = jax.random.split(jax.random.key(0), 3)
  return {
      "net/~/conv_0": {
          "w": jax.random.normal(k[0], (3, 3, 2, 5, 4)),
          "b": jnp.zeros((5, 4)),
      },
      "net/~/linear_1": {"w": jax.random.normal(k[1], (10, 6, 4))},
      "head": {"w": jax.random.normal(k[2], (6, 3, 4))},
  }


def test_select_by_patterns():
  sel = masks.select(_params(), exclude=("^head",))
  assert sel == {
      "net/~/conv_0": {"w": True, "b": False},
      "net/~/linear_1": {"w": True},
      "head": {"w": False},
  }
  sel = masks.select(_params(), include=("linear",))
  assert sel["net/~/linear_1"]["w"] and not sel["net/~/conv_0"]["w"]
  with pytest.raises(TypeError, match="sequences"):
    masks.select(_params(), exclude="head")


def test_element_scores_and_mask_prune_lowest_norm_elements():
  w = np.asarray(_params()["net/~/linear_1"]["w"])
  s = masks.scores(w, granularity="element", algebra="H")
  np.testing.assert_allclose(s, np.linalg.norm(w, axis=-1), rtol=1e-6)
  m = masks.mask_from_scores(s, 0.25)
  assert m.shape == (10, 6) and int((~m).sum()) == 15
  lowest = np.argsort(np.linalg.norm(w, axis=-1).ravel(), kind="stable")[:15]
  expected = np.ones(60, bool)
  expected[lowest] = False
  np.testing.assert_array_equal(np.asarray(m).ravel(), expected)
  full = masks.expand_mask(m, w.shape, "element")
  assert full.shape == w.shape
  # Whole algebra elements are kept or pruned.
  assert np.all(np.asarray(full).all(-1) == np.asarray(full).any(-1))


def test_ties_are_deterministic_and_count_exact():
  m = masks.mask_from_scores(jnp.zeros((7,)), 3 / 7)
  np.testing.assert_array_equal(m, [False] * 3 + [True] * 4)
  with pytest.raises(ValueError, match=r"\[0, 1\)"):
    masks.mask_from_scores(jnp.zeros((7,)), 1.0)


def test_unstructured():
  w = jnp.asarray([[-3.0, 0.5], [2.0, -0.1]])
  s = masks.scores(w, granularity="unstructured")
  m = masks.mask_from_scores(s, 0.5)
  np.testing.assert_array_equal(m, [[True, False], [True, False]])


def test_block_scores_and_expand():
  w = jnp.arange(4 * 2 * 4 * 6, dtype=jnp.float32).reshape(4, 2, 4, 6) - 90
  s = masks.scores(w, granularity="block", block_shape=(2, 3))
  assert s.shape == (4, 2, 2, 2)
  ref = np.sqrt(
      (np.asarray(w).reshape(4, 2, 2, 2, 2, 3) ** 2).sum(axis=(-3, -1))
  )
  np.testing.assert_allclose(s, ref, rtol=1e-6)
  m = masks.mask_from_scores(s, 0.5)
  full = np.asarray(masks.expand_mask(m, w.shape, "block", (2, 3)))
  assert full.shape == w.shape
  np.testing.assert_array_equal(full[..., ::2, ::3], np.asarray(m))
  np.testing.assert_array_equal(full[..., 1::2, 2::3], np.asarray(m))
  np.testing.assert_array_equal(masks.reduce_mask(full, "block", (2, 3)), m)


def test_errors():
  with pytest.raises(ValueError, match="granularity"):
    masks.scores(jnp.ones((2, 2)), granularity="row")
  with pytest.raises(ValueError, match="does not divide"):
    masks.scores(jnp.ones((4, 6)), granularity="block", block_shape=(3, 3))
  with pytest.raises(ValueError, match="algebra"):
    masks.scores(jnp.ones((4, 6)), granularity="element")
  with pytest.raises(ValueError, match="dimension 4"):
    masks.scores(jnp.ones((4, 6)), granularity="element", algebra="H")
  p = _params()
  sel = masks.select(p)
  with pytest.raises(ValueError, match=r"\[0, 1\)"):
    masks.compute_masks(p, sel, -0.2, algebra="H")
  with pytest.raises(ValueError, match="one sparsity"):
    masks.compute_masks(p, sel, {"head/w": 0.5}, algebra="H", ranking="global")


def test_compute_masks_layer_ranking_per_layer_sparsity():
  p = _params()
  sel = masks.select(p, exclude=("head",))
  sp = {"net/~/conv_0/w": 0.5, "net/~/linear_1/w": 0.8}
  out = masks.compute_masks(p, sel, sp, granularity="element", algebra="H")
  assert out["head"]["w"] is None and out["net/~/conv_0"]["b"] is None
  conv = np.asarray(out["net/~/conv_0"]["w"])
  assert conv.shape == (3, 3, 2, 5, 4) and conv.dtype == bool
  assert (~conv[..., 0]).sum() == round(0.5 * 90)
  assert (~np.asarray(out["net/~/linear_1"]["w"])[..., 0]).sum() == 48
  # Per-path algebra dicts work too.
  alg = {"net/~/conv_0/w": "H", "net/~/linear_1/w": "M2R"}
  out2 = masks.compute_masks(p, sel, 0.5, algebra=alg)
  assert (~np.asarray(out2["net/~/linear_1"]["w"])[..., 0]).sum() == 30


def test_compute_masks_global_one_threshold():
  p = _params()
  p["net/~/linear_1"]["w"] = p["net/~/linear_1"]["w"] * 10.0
  sel = masks.select(p, exclude=("head",))
  out = masks.compute_masks(p, sel, 0.5, algebra="H", ranking="global")
  conv = np.asarray(out["net/~/conv_0"]["w"])[..., 0]
  lin = np.asarray(out["net/~/linear_1"]["w"])[..., 0]
  assert (~conv).sum() + (~lin).sum() == 75
  # The scaled-up layer loses far fewer than half its elements.
  assert (~lin).sum() < 30 < (~conv).sum()
  norms = np.concatenate(
      [
          np.linalg.norm(p["net/~/conv_0"]["w"], axis=-1).ravel(),
          np.linalg.norm(p["net/~/linear_1"]["w"], axis=-1).ravel(),
      ]
  )
  thresh = np.sort(norms)[75]
  kept = np.concatenate([conv.ravel(), lin.ravel()])
  np.testing.assert_array_equal(kept, norms >= thresh)


def test_previous_masks_keep_pruned_units_pruned():
  w = jnp.asarray([[0.0, 0.0, 3.0, 0.0, 1.0, 2.0]]).reshape(6, 1)
  p = {"l": {"w": w}}
  sel = {"l": {"w": True}}
  prev = {
      "l": {"w": jnp.asarray([True, True, True, False, True, True])[:, None]}
  }
  out = masks.compute_masks(
      p, sel, 2 / 6, granularity="unstructured", previous_masks=prev
  )
  np.testing.assert_array_equal(
      out["l"]["w"][:, 0], [False, True, True, False, True, True]
  )


def test_compute_masks_jit_traced_sparsity():
  p = _params()
  sel = masks.select(p)
  fn = jax.jit(lambda p, s: masks.compute_masks(p, sel, s, algebra="H"))
  out = fn(p, jnp.float32(0.5))
  eager = masks.compute_masks(p, sel, 0.5, algebra="H")
  for m in p:
    for k in p[m]:
      if eager[m][k] is None:
        assert out[m][k] is None
      else:
        np.testing.assert_array_equal(out[m][k], eager[m][k])


def test_block_pruning_of_r_layer_weights_with_trailing_unit_axis():
  w = jax.random.normal(jax.random.key(3), (4, 6, 1))
  plain = masks.scores(w[..., 0], granularity="block", block_shape=(2, 3))
  got = masks.scores(w, granularity="block", block_shape=(2, 3))
  np.testing.assert_array_equal(got, plain)
  keep = masks.mask_from_scores(got, 0.5)
  full = masks.expand_mask(keep, w.shape, "block", (2, 3))
  assert full.shape == (4, 6, 1)
  np.testing.assert_array_equal(
      full[..., 0],
      masks.expand_mask(keep, (4, 6), "block", (2, 3)),
  )
  np.testing.assert_array_equal(masks.reduce_mask(full, "block", (2, 3)), keep)
