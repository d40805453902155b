"""Tests for algebranets.sparsity.pruner."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algebranets.sparsity import masks, pruner, schedules


def _params():
  k = jax.random.split(jax.random.key(1), 2)
  return {
      "body": {"w": jax.random.normal(k[0], (8, 6, 4)), "b": jnp.zeros((6,))},
      "head": {"w": jax.random.normal(k[1], (6, 3, 4))},
  }


def _loss(p):
  # A quadratic whose minimum (all ones) would revive any pruned weight.
  return sum(jnp.sum((x - 1.0) ** 2) for x in jax.tree.leaves(p))


@pytest.mark.parametrize(
    "inner",
    [optax.adam(0.05), optax.sgd(0.05, momentum=0.9)],
    ids=["adam", "sgd"],
)
def test_pruned_weights_stay_zero_under_jit(inner):
  params = _params()
  sel = masks.select(params, exclude=("head",))
  sched = functools.partial(
      schedules.polynomial_sparsity,
      begin_step=5,
      end_step=25,
      frequency=5,
      initial_sparsity=0.0,
      final_sparsity=0.75,
  )
  tx = pruner.wrap(inner, selected=sel, schedule_fn=sched, algebra="H")
  state = tx.init(params)
  assert state.masks["head"]["w"] is None and state.masks["body"]["b"] is None
  assert bool(state.masks["body"]["w"].all()) and int(state.count) == 0

  @jax.jit
  def step(p, st):
    u, st = tx.update(jax.grad(_loss)(p), st, p)
    return pruner.apply_masks(optax.apply_updates(p, u), st.masks), st, u

  ever_pruned = np.zeros((8, 6, 4), bool)
  for i in range(50):
    params, state, updates = step(params, state)
    m = np.asarray(state.masks["body"]["w"])
    # The wrapper itself zeroes pruned updates (apply_masks is a backstop).
    assert np.all(np.asarray(updates["body"]["w"])[~m] == 0.0)
    # Once pruned, never revived (sparsity only rises).
    assert not (ever_pruned & m).any()
    ever_pruned |= ~m
    w = np.asarray(params["body"]["w"])
    assert np.all(w[~m] == 0.0)
    expected = float(sched(i))
    np.testing.assert_allclose(
        pruner.sparsity_report(state.masks)["body/w"],
        round(expected * 48) / 48,
    )
  assert int(state.count) == 50
  assert (~ever_pruned).sum() == 12 * 4
  # Unpruned weights still train towards the optimum.
  assert np.abs(np.asarray(params["head"]["w"]) - 1.0).mean() < 0.3
  assert np.abs(w[m] - 1.0).mean() < 0.3


def test_erk_block_and_report():
  params = {
      "a": {"w": jnp.ones((4, 12)) + jnp.arange(48.0).reshape(4, 12)},
      "b": {"w": jnp.ones((2, 2, 4, 6))},
  }
  sel = masks.select(params)
  tx = pruner.wrap(
      optax.sgd(0.1),
      selected=sel,
      schedule_fn=lambda t: schedules.one_shot_sparsity(
          t, at_step=0, sparsity=0.5
      ),
      granularity="block",
      block_shape=(2, 3),
      distribution="erk",
  )
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, state = tx.update(grads, state, params)
  shapes = {"a/w": (4, 12), "b/w": (2, 2, 4, 6)}
  want = schedules.layer_sparsities(shapes, 0.5, "erk")
  rep = pruner.sparsity_report(state.masks)
  for p, s in want.items():
    n_blocks = np.prod(shapes[p]) / 6
    np.testing.assert_allclose(rep[p], round(s * n_blocks) / n_blocks)
  n_pruned = rep["a/w"] * 48 + rep["b/w"] * 96
  np.testing.assert_allclose(rep["total"], n_pruned / 144)
  # Pruned entries get zero update.
  np.testing.assert_array_equal(
      np.asarray(updates["a"]["w"])[~np.asarray(state.masks["a"]["w"])], 0.0
  )
  # Block norms of "a" grow in row-major block order, so the k pruned
  # blocks are the first k.
  k = round(rep["a/w"] * 8)
  assert 0 < k < 8
  blocks = masks.reduce_mask(state.masks["a"]["w"], "block", (2, 3))
  np.testing.assert_array_equal(
      np.asarray(blocks).ravel(), [False] * k + [True] * (8 - k)
  )


def test_global_ranking_and_errors():
  params = _params()
  sel = masks.select(params)
  tx = pruner.wrap(
      optax.sgd(0.1),
      selected=sel,
      schedule_fn=lambda t: jnp.float32(0.5),
      algebra="H",
      ranking="global",
  )
  state = tx.init(params)
  _, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
  np.testing.assert_allclose(pruner.sparsity_report(state.masks)["total"], 0.5)
  with pytest.raises(ValueError, match="needs params"):
    tx.update(params, state)
  with pytest.raises(ValueError, match="uniform"):
    pruner.wrap(
        optax.sgd(0.1),
        selected=sel,
        schedule_fn=lambda t: 0.5,
        algebra="H",
        ranking="global",
        distribution="erk",
    )
  with pytest.raises(ValueError, match="granularity"):
    pruner.wrap(
        optax.sgd(0.1), selected=sel, schedule_fn=lambda t: 0.5, granularity="x"
    )


def test_apply_masks():
  params = {"l": {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}}
  m = {"l": {"w": jnp.asarray([[True, False], [False, True]]), "b": None}}
  out = pruner.apply_masks(params, m)
  np.testing.assert_array_equal(out["l"]["w"], [[1, 0], [0, 1]])
  np.testing.assert_array_equal(out["l"]["b"], [1, 1])
  assert pruner.sparsity_report(m) == {"l/w": 0.5, "total": 0.5}


def test_pruned_grads_do_not_reach_inner_moments():
  params = _params()
  sel = masks.select(params, exclude=("head",))
  tx = pruner.wrap(
      optax.adam(0.1),
      selected=sel,
      schedule_fn=lambda t: schedules.one_shot_sparsity(
          t, at_step=0, sparsity=0.5
      ),
      algebra="H",
  )
  state = tx.init(params)
  for _ in range(3):
    updates, state = tx.update(jax.grad(_loss)(params), state, params)
    params = pruner.apply_masks(
        optax.apply_updates(params, updates), state.masks
    )
  m = np.asarray(state.masks["body"]["w"])
  adam_state = state.inner_state[0]
  assert np.all(np.asarray(adam_state.mu["body"]["w"])[~m] == 0.0)
  assert np.all(np.asarray(adam_state.nu["body"]["w"])[~m] == 0.0)
  assert np.all(np.asarray(adam_state.mu["body"]["w"])[m] != 0.0)
