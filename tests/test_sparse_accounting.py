"""Sparse parameter and MAC accounting against hand counts."""

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import algebras, layers, metrics
from algebranets.sparsity import accounting

F32 = jnp.float32


def _mlp(x):
  """2-layer H MLP: x [2, 4, 4] -> [2, 3, 4] -> [2, 2, 4]."""
  h = layers.Linear(3, "H", name="l1")(x)
  return layers.Linear(2, "H", name="l2")(h)


def _init(fn, shape):
  return hk.transform(fn).init(jax.random.key(0), jnp.ones(shape, F32))


def _element_mask(shape, pruned, d):
  """Bool [*shape, d] mask, False on the listed elements."""
  m = np.ones(shape, bool)
  for idx in pruned:
    m[idx] = False
  return np.repeat(m[..., None], d, axis=-1)


@pytest.fixture(name="mlp")
def _mlp_fixture():
  params = _init(_mlp, (2, 4, 4))
  # 4 of l1's 12 elements pruned, l2 and the biases not pruned.
  masks = {
      "l1": {
          "w": _element_mask((4, 3), [(0, 0), (1, 1), (2, 2), (3, 0)], 4),
          "b": None,
      },
      "l2": {"w": None, "b": None},
  }
  report = metrics.count_macs(_mlp, jax.ShapeDtypeStruct((2, 4, 4), F32))
  return params, masks, report


def test_nonzero_params_hand_count(mlp):
  params, masks, _ = mlp
  out = accounting.nonzero_params(params, masks)
  # l1: w 4*3*4 = 48, b 12; l2: w 3*2*4 = 24, b 8; 4 elements * 4 reals cut.
  assert out["dense_total"] == 92
  assert out["total"] == 92 - 16
  assert out["leaves"] == {"l1/w": {"kept": 32, "total": 48}}


def test_sparse_macs_hand_count(mlp):
  params, masks, report = mlp
  out = accounting.sparse_macs(report, params, masks, lambda _: "H")
  # l1: 2 tokens * 12 elements * 16 = 384 dense, 8 kept elements -> 256.
  # l2 (unpruned): 2 * 3 * 2 * 16 = 192 both ways.
  assert out["layers"]["l1"]["dense"] == 384
  assert out["layers"]["l1"]["sparse"] == 256
  assert out["layers"]["l1"]["kept_fraction"] == pytest.approx(8 / 12)
  assert out["layers"]["l2"] == {
      "dense": 192,
      "sparse": 192,
      "kept_fraction": 1.0,
  }
  assert out["dense_total"] == 576
  assert out["total"] == 448


def test_no_masks_changes_nothing(mlp):
  params, _, report = mlp
  out = accounting.sparse_macs(report, params, None, lambda _: "H")
  assert out["total"] == out["dense_total"] == 576
  counts = accounting.nonzero_params(params, {})
  assert counts["total"] == counts["dense_total"] == 92
  assert counts["leaves"] == {}


def test_real_layers_unstructured():
  def net(x):
    h = layers.Linear(3, "R", name="alg_r")(x)  # w [4, 3, 1]
    return layers.FlattenReal(5)(h)  # hk.Linear w [3, 5]

  params = _init(net, (2, 4, 1))
  m1 = np.ones((4, 3, 1), bool)
  m1.flat[[0, 3, 5, 7, 11]] = False  # 5 of 12 reals
  m2 = np.ones((3, 5), bool)
  m2[0] = False  # 5 of 15 reals
  masks = {"alg_r": {"w": m1}, "flatten_real/linear": {"w": m2}}
  report = metrics.count_macs(net, jax.ShapeDtypeStruct((2, 4, 1), F32))
  algebra = {"alg_r": "R", "flatten_real/linear": None}
  out = accounting.sparse_macs(report, params, masks, algebra.__getitem__)
  assert out["layers"]["alg_r"]["dense"] == 24  # 2 tokens * 12
  assert out["layers"]["alg_r"]["sparse"] == 14  # 2 * 7
  assert out["layers"]["flatten_real/linear"]["dense"] == 30
  assert out["layers"]["flatten_real/linear"]["sparse"] == 20
  assert out["total"] == 34
  counts = accounting.nonzero_params(params, masks)
  # 12 + 3 (bias [3, 1]) + 15 + 5 reals, 10 pruned.
  assert counts["total"] == 35 - 10


def test_conv_layer_scaled_by_kept_elements():
  def net(x):
    return layers.Conv2D(2, 3, "C", name="conv")(x)

  shape = (1, 4, 4, 3, 2)
  params = _init(net, shape)
  mask = np.ones((3, 3, 3, 2, 2), bool)
  mask[0] = False  # the first kernel row: 1/3 of the elements
  report = metrics.count_macs(net, jax.ShapeDtypeStruct(shape, F32))
  out = accounting.sparse_macs(
      report, params, {"conv": {"w": mask}}, lambda _: algebras.get("C")
  )
  # 16 positions * 9 taps * 3 in * 2 out * 4 MACs per product.
  assert out["dense_total"] == 3456
  assert out["total"] == 2304


def test_partial_element_weighted_by_structure_constants():
  # dual numbers: c[0] has 2 nonzeros (1*1, 1*eps), c[1] one (eps*1).
  def net(x):
    return layers.Linear(1, "dual", name="l")(x)

  params = _init(net, (1, 1, 2))
  report = metrics.count_macs(net, jax.ShapeDtypeStruct((1, 1, 2), F32))
  keep_eps = {"l": {"w": np.array([[[False, True]]])}}
  out = accounting.sparse_macs(report, params, keep_eps, lambda _: "dual")
  assert out["dense_total"] == 3
  assert out["total"] == 1


def test_mask_errors(mlp):
  params, _, report = mlp
  with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
    accounting.nonzero_params(params, {"l1": {"w": np.ones((4, 3), bool)}})
  with pytest.raises(ValueError, match="'typo'"):
    accounting.nonzero_params(params, {"typo": {"w": np.ones((2,), bool)}})
  masks = {"l1": {"w": np.ones((4, 3, 4), bool)}}
  with pytest.raises(ValueError, match="d = 2"):
    accounting.sparse_macs(report, params, masks, lambda _: "C")


def test_table(mlp):
  params, masks, report = mlp
  text = accounting.table(params, masks, report, lambda _: "H")
  lines = text.splitlines()
  assert lines[0].startswith("| layer | params kept/total | sparsity")
  assert "| l1 | 44/60 | 26.7% | 384 | 256 |" in lines
  assert "| l2 | 32/32 | 0.0% | 192 | 192 |" in lines
  assert lines[-1] == "| **total** | 76/92 | 17.4% | 576 | 448 |"
  no_macs = accounting.table(params, masks)
  assert "| l1 | 44/60 | 26.7% | - | - |" in no_macs.splitlines()
  with pytest.raises(ValueError, match="algebra_of"):
    accounting.table(params, masks, report)
