"""Tests for algebranets.sparsity.schedules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets.sparsity import schedules

KW = dict(begin_step=100, end_step=500, frequency=50)


def _closed_form(t, s_i=0.1, s_f=0.9):
  t0, n_dt, dt = 100, 400, 50
  if t < t0:
    return s_i
  if t >= t0 + n_dt:
    return s_f
  t = t0 + ((t - t0) // dt) * dt
  return s_f + (s_i - s_f) * (1 - (t - t0) / n_dt) ** 3


@pytest.mark.parametrize(
    "step", [0, 99, 100, 149, 150, 260, 449, 450, 500, 900]
)
def test_polynomial_matches_closed_form(step):
  got = schedules.polynomial_sparsity(
      step, initial_sparsity=0.1, final_sparsity=0.9, **KW
  )
  np.testing.assert_allclose(got, _closed_form(step), rtol=1e-6)


def test_polynomial_traced_and_only_changes_at_pruning_steps():
  fn = jax.jit(
      lambda t: schedules.polynomial_sparsity(
          t, initial_sparsity=0.1, final_sparsity=0.9, **KW
      )
  )
  steps = np.arange(0, 600)
  vals = np.array([fn(jnp.int32(t)) for t in steps[::7]])
  np.testing.assert_allclose(
      vals, [_closed_form(int(t)) for t in steps[::7]], rtol=1e-6
  )
  all_vals = jax.vmap(fn)(jnp.arange(600))
  changed = np.nonzero(np.diff(np.asarray(all_vals)))[0] + 1
  prune = schedules.is_pruning_step(jnp.arange(600), **KW)
  assert set(changed.tolist()) <= set(np.nonzero(prune)[0].tolist())
  assert changed.tolist() == list(range(150, 501, 50))


def test_is_pruning_step():
  got = [
      bool(schedules.is_pruning_step(t, **KW))
      for t in (50, 100, 125, 150, 500, 550)
  ]
  assert got == [False, True, False, True, True, False]


def test_one_shot():
  vals = [
      float(schedules.one_shot_sparsity(t, at_step=10, sparsity=0.8))
      for t in (0, 9, 10, 50)
  ]
  np.testing.assert_allclose(vals, [0, 0, 0.8, 0.8])


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_bad_sparsity_raises(bad):
  with pytest.raises(ValueError, match=r"\[0, 1\)"):
    schedules.polynomial_sparsity(
        0, initial_sparsity=0.0, final_sparsity=bad, **KW
    )
  with pytest.raises(ValueError, match=r"\[0, 1\)"):
    schedules.layer_sparsities({"a/w": (3, 4)}, bad)


def test_bad_steps_raise():
  with pytest.raises(ValueError, match="frequency"):
    schedules.is_pruning_step(0, begin_step=0, end_step=10, frequency=0)
  with pytest.raises(ValueError, match="end_step"):
    schedules.is_pruning_step(0, begin_step=10, end_step=5, frequency=1)


def test_uniform():
  got = schedules.layer_sparsities({"a/w": (3, 4), "b/w": (5, 6)}, 0.7)
  assert got == {"a/w": 0.7, "b/w": 0.7}


def test_erk_hand_case_drops_algebra_axis():
  # a: [10, 20] elements, raw = 30/200; b: [100, 2], raw = 102/200. Keep
  # 0.1 * 400 = 40 elements: eps = 40 / (0.15 * 200 + 0.51 * 200).
  shapes = {"a/w": (10, 20, 4), "b/w": (100, 2, 4)}
  got = schedules.layer_sparsities(shapes, 0.9, "erk", algebra_dim=4)
  eps = 40 / 132
  np.testing.assert_allclose(got["a/w"], 1 - 0.15 * eps)
  np.testing.assert_allclose(got["b/w"], 1 - 0.51 * eps)


def test_erk_dense_layer_rescaled_and_total_kept():
  # A tiny first-layer-like [3, 2, 4] would get density > 1 and goes dense.
  shapes = {"in/w": (3, 2, 4), "mid/w": (64, 64, 4), "out/w": (64, 10, 4)}
  dims = {"in/w": 4, "mid/w": 4, "out/w": 4}
  got = schedules.layer_sparsities(shapes, 0.8, "erk", algebra_dim=dims)
  assert got["in/w"] == 0.0
  n = {p: np.prod(s[:-1]) for p, s in shapes.items()}
  kept = sum((1 - got[p]) * n[p] for p in shapes)
  np.testing.assert_allclose(kept, 0.2 * sum(n.values()), rtol=1e-9)
  # Non-dense layers keep density proportional to sum/prod of their shape.
  ratio = (1 - got["mid/w"]) / (1 - got["out/w"])
  np.testing.assert_allclose(ratio, (128 / 4096) / (74 / 640), rtol=1e-9)
  traced = jax.jit(
      lambda t: schedules.layer_sparsities(shapes, t, "erk", algebra_dim=dims)
  )(jnp.float32(0.8))
  for p in shapes:
    np.testing.assert_allclose(traced[p], got[p], rtol=1e-5, atol=1e-6)


def test_erk_errors():
  with pytest.raises(ValueError, match="distribution"):
    schedules.layer_sparsities({"a/w": (3, 4)}, 0.5, "random")
  with pytest.raises(ValueError, match="algebra dimension 4"):
    schedules.layer_sparsities({"a/w": (3, 2)}, 0.5, "erk", algebra_dim=4)
