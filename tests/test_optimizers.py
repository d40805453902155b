"""Tests for algebranets.training.optimizers.

Schedules are checked against values written out by hand, updates against a
float64 numpy implementation of SGD (Nesterov, L2), Adam (L2) and AdamW
(decoupled) written here from the papers' formulas, not from optax.
"""

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl.testing import absltest, parameterized

from algebranets import layers
from algebranets.training import optimizers

# The example tree of the brief: algebra biases and norm affines are 2-D like
# the real head weight, so only names can tell them apart.
EXAMPLE_SHAPES = {
    "transformer_lm/~/block_0/attention/query": {"w": (3, 2, 4), "b": (2, 4)},
    "transformer_lm/~/layer_norm": {"scale": (5, 4), "offset": (5, 4)},
    "head/linear": {"w": (6, 7), "b": (7,)},
    "embed": {"embeddings": (7, 5, 4)},
}


def _example_params():
  return jax.tree.map(
      lambda s: np.ones(s, np.float32),
      EXAMPLE_SHAPES,
      is_leaf=lambda x: isinstance(x, tuple),
  )


def _cfg(**overrides):
  cfg = optimizers.default_config()
  cfg.update(overrides)
  return cfg


def _sched_values(cfg, num_steps, steps):
  schedule = optimizers.make_schedule(cfg, num_steps)
  return np.array([float(schedule(s)) for s in steps])


# -- default_config -------------------------------------------------------------


class DefaultConfigTest(absltest.TestCase):

  def test_keys_and_values(self):
    self.assertEqual(
        optimizers.default_config(),
        dict(
            name="adamw",
            learning_rate=1e-3,
            schedule="cosine",
            warmup_steps=0,
            end_learning_rate_factor=0.0,
            decay_boundaries=(0.3, 0.6, 0.9),
            decay_factor=0.1,
            momentum=0.9,
            nesterov=True,
            b1=0.9,
            b2=0.999,
            eps=1e-8,
            weight_decay=0.0,
            decay_param_names=("w",),
            grad_clip_norm=0.0,
        ),
    )

  def test_returns_a_fresh_dict(self):
    optimizers.default_config()["name"] = "sgd"
    self.assertEqual(optimizers.default_config()["name"], "adamw")

  def test_defaults_are_valid(self):
    optimizers.validate_config(optimizers.default_config(), 1)


# -- schedules ----------------------------------------------------------------


class ScheduleTest(parameterized.TestCase):

  def test_cosine_with_warmup(self):
    # lr 0.5, warmup 4, T = 20, end factor 0.1: the cosine runs over 16
    # steps from 0.5 to 0.05, so its midpoint (step 12) is 0.275.
    cfg = _cfg(learning_rate=0.5, warmup_steps=4, end_learning_rate_factor=0.1)
    got = _sched_values(cfg, 20, [0, 1, 2, 4, 8, 12, 16, 20, 25])
    c8 = 0.05 + 0.45 * (1 + np.cos(np.pi * 4 / 16)) / 2
    c16 = 0.05 + 0.45 * (1 + np.cos(np.pi * 12 / 16)) / 2
    want = [0.0, 0.125, 0.25, 0.5, c8, 0.275, c16, 0.05, 0.05]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)

  def test_cosine_every_step_against_formula(self):
    lr, w, t, f = 2.0, 3, 13, 0.25
    cfg = _cfg(learning_rate=lr, warmup_steps=w, end_learning_rate_factor=f)
    steps = np.arange(t + 3)
    frac = np.clip((steps - w) / (t - w), 0, 1)
    want = np.where(
        steps < w,
        lr * steps / w,
        lr * (f + (1 - f) * 0.5 * (1 + np.cos(np.pi * frac))),
    )
    np.testing.assert_allclose(
        _sched_values(cfg, t, steps), want, rtol=1e-6, atol=1e-7
    )

  def test_cosine_without_warmup_starts_at_peak(self):
    got = _sched_values(_cfg(learning_rate=0.3), 10, [0, 5, 10])
    np.testing.assert_allclose(got, [0.3, 0.15, 0.0], rtol=1e-6, atol=1e-7)

  def test_step_schedule_around_each_boundary(self):
    # T = 10 -> boundaries at steps 3, 6, 9; warmup 2.
    cfg = _cfg(schedule="step", learning_rate=0.2, warmup_steps=2)
    got = _sched_values(cfg, 10, range(12))
    want = 0.2 * np.array(
        [0, 0.5, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 1e-3, 1e-3, 1e-3]
    )
    np.testing.assert_allclose(got, want, rtol=1e-6)

  def test_step_schedule_rounds_boundaries_half_up(self):
    # T = 10: 0.25 * 10 = 2.5 -> step 3 (not 2), 0.66 * 10 = 6.6 -> step 7.
    cfg = _cfg(
        schedule="step",
        learning_rate=1.0,
        decay_boundaries=(0.25, 0.66),
        decay_factor=0.5,
    )
    got = _sched_values(cfg, 10, range(10))
    np.testing.assert_allclose(
        got, [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    )

  def test_constant(self):
    cfg = _cfg(schedule="constant", learning_rate=0.6, warmup_steps=3)
    got = _sched_values(cfg, 10, [0, 1, 2, 3, 4, 9, 50])
    np.testing.assert_allclose(
        got, [0, 0.2, 0.4, 0.6, 0.6, 0.6, 0.6], rtol=1e-6
    )

  def test_constant_without_warmup(self):
    sched = optimizers.make_schedule(_cfg(schedule="constant"), 5)
    np.testing.assert_allclose(
        jax.jit(jax.vmap(sched))(jnp.arange(6)), [1e-3] * 6, rtol=1e-6
    )
    self.assertEqual(sched(0).dtype, jnp.float32)

  @parameterized.parameters("cosine", "step", "constant")
  def test_jit_matches_eager_and_accepts_config_dict(self, schedule):
    cfg = ml_collections.ConfigDict(
        _cfg(schedule=schedule, learning_rate=0.1, warmup_steps=2)
    )
    sched = optimizers.make_schedule(cfg, 10)
    steps = jnp.arange(12)
    np.testing.assert_allclose(
        jax.jit(jax.vmap(sched))(steps),
        [float(sched(int(s))) for s in steps],
        rtol=1e-6,
    )


# -- mask ---------------------------------------------------------------------


class WeightDecayMaskTest(absltest.TestCase):

  def test_example_tree_only_w(self):
    mask = optimizers.weight_decay_mask(_example_params(), ("w",))
    self.assertEqual(
        mask,
        {
            "transformer_lm/~/block_0/attention/query": {
                "w": True,
                "b": False,
            },
            "transformer_lm/~/layer_norm": {"scale": False, "offset": False},
            "head/linear": {"w": True, "b": False},
            "embed": {"embeddings": False},
        },
    )

  def test_custom_names(self):
    mask = optimizers.weight_decay_mask(
        _example_params(), ("embeddings", "scale")
    )
    self.assertEqual(
        jax.tree.leaves(mask),
        jax.tree.leaves(
            {
                "transformer_lm/~/block_0/attention/query": {
                    "w": False,
                    "b": False,
                },
                "transformer_lm/~/layer_norm": {"scale": True, "offset": False},
                "head/linear": {"w": False, "b": False},
                "embed": {"embeddings": True},
            }
        ),
    )
    self.assertEqual(
        jax.tree.structure(mask), jax.tree.structure(_example_params())
    )

  def test_empty_names_mask_nothing(self):
    mask = optimizers.weight_decay_mask(_example_params(), ())
    self.assertFalse(any(jax.tree.leaves(mask)))

  def test_real_haiku_model(self):
    def forward(tokens):
      h = layers.Embed(11, 3, "H")(tokens)
      h = layers.Linear(3, "H")(h)
      h = layers.LayerNorm("H")(h)
      return layers.FlattenReal(5)(h)

    params = hk.transform(forward).init(
        jax.random.key(0), jnp.zeros([2], jnp.int32)
    )
    mask = optimizers.weight_decay_mask(params, ("w",))
    decayed = {
        (module, leaf)
        for module, leaves in mask.items()
        for leaf, on in leaves.items()
        if on
    }
    want = {
        (module, "w")
        for module, leaves in params.items()
        if "w" in leaves  # Linear weight and FlattenReal's hk.Linear weight
    }
    self.assertEqual(decayed, want)
    self.assertLen(want, 2)

  def test_string_names_rejected(self):
    with self.assertRaisesRegex(ValueError, r"got the string 'w'.*\('w',\)"):
      optimizers.weight_decay_mask(_example_params(), "w")


# -- make_optimizer against numpy ---------------------------------------------


def _tiny_params(seed=0):
  rng = np.random.default_rng(seed)
  return {
      "lin": {
          "w": rng.normal(size=(3, 2, 4)),  # [N, M, d]
          "b": rng.normal(size=(2, 4)),  # [M, d]: 2-D, must not decay
      },
      "ln": {
          "scale": rng.normal(size=(2, 4)),
          "offset": rng.normal(size=(2, 4)),
      },
      "head": {"w": rng.normal(size=(8, 3)), "b": rng.normal(size=(3,))},
  }


def _grads(num, seed=1):
  rng = np.random.default_rng(seed)
  return [
      jax.tree.map(lambda p: rng.normal(size=p.shape), _tiny_params())
      for _ in range(num)
  ]


def _decays(path):
  return path[-1].key == "w"


def _ref_sgd(params, grads, lrs, momentum, nesterov, wd):
  """float64 SGD with L2 weight decay on 'w' leaves; returns params."""
  p = jax.tree.map(np.array, params)
  v = jax.tree.map(np.zeros_like, p)
  for g_tree, lr in zip(grads, lrs, strict=True):

    def step(path, x, g, vel, lr=lr):
      g = g + (wd * x if _decays(path) else 0.0)
      vel[...] = momentum * vel + g
      u = g + momentum * vel if nesterov else vel
      return x - lr * u

    p = jax.tree_util.tree_map_with_path(step, p, g_tree, v)
  return p


def _ref_adam(params, grads, lrs, b1, b2, eps, wd, decoupled):
  """float64 Adam (L2) / AdamW (decoupled) with decay on 'w' leaves."""
  p = jax.tree.map(np.array, params)
  mu = jax.tree.map(np.zeros_like, p)
  nu = jax.tree.map(np.zeros_like, p)
  for t, (g_tree, lr) in enumerate(zip(grads, lrs, strict=True), start=1):

    def step(path, x, g, m, n, lr=lr, t=t):
      decay = wd * x if _decays(path) else 0.0
      if not decoupled:
        g = g + decay
      m[...] = b1 * m + (1 - b1) * g
      n[...] = b2 * n + (1 - b2) * g**2
      u = (m / (1 - b1**t)) / (np.sqrt(n / (1 - b2**t)) + eps)
      if decoupled:
        u = u + decay
      return x - lr * u

    p = jax.tree_util.tree_map_with_path(step, p, g_tree, mu, nu)
  return p


def _run(cfg, num_steps, params, grads, jit=False):
  tx, _ = optimizers.make_optimizer(cfg, num_steps)
  p = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  state = tx.init(p)

  def step(p, state, g):
    updates, state = tx.update(g, state, p)
    return optax.apply_updates(p, updates), state

  if jit:
    step = jax.jit(step)
  for g in grads:
    g = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), g)
    p, state = step(p, state, g)
  return p, step


def _assert_trees_close(got, want, rtol=1e-5, atol=1e-6):
  jax.tree.map(
      lambda g, w: np.testing.assert_allclose(g, w, rtol=rtol, atol=atol),
      got,
      want,
  )


class MakeOptimizerTest(parameterized.TestCase):

  # Warmup 2 over 10 steps with a constant schedule: LRs 0, lr/2, lr, lr.
  # The first update then has LR 0, which checks that the chain's schedule
  # counts from 0 like the returned one.
  def _lrs(self, lr):
    return [0.0, lr / 2, lr, lr]

  @parameterized.parameters(True, False)
  def test_sgd_l2(self, nesterov):
    cfg = _cfg(
        name="sgd",
        learning_rate=0.1,
        schedule="constant",
        warmup_steps=2,
        momentum=0.9,
        nesterov=nesterov,
        weight_decay=0.05,
    )
    params, grads = _tiny_params(), _grads(4)
    got, _ = _run(cfg, 10, params, grads)
    want = _ref_sgd(params, grads, self._lrs(0.1), 0.9, nesterov, 0.05)
    _assert_trees_close(got, want)

  def test_sgd_without_momentum_is_plain_gradient_descent(self):
    cfg = _cfg(
        name="sgd",
        learning_rate=0.5,
        schedule="constant",
        momentum=0.0,
        nesterov=False,
        weight_decay=0.1,
    )
    params, grads = _tiny_params(), _grads(1)
    got, _ = _run(cfg, 10, params, grads)
    want = _ref_sgd(params, grads, [0.5], 0.0, False, 0.1)
    _assert_trees_close(got, want)

  @parameterized.named_parameters(
      ("adamw", "adamw", True), ("adam_l2", "adam", False)
  )
  def test_adam(self, name, decoupled):
    cfg = _cfg(
        name=name,
        learning_rate=0.01,
        schedule="constant",
        warmup_steps=2,
        b1=0.8,
        b2=0.99,
        eps=1e-6,
        weight_decay=0.3,
    )
    params, grads = _tiny_params(), _grads(4)
    got, _ = _run(cfg, 10, params, grads)
    want = _ref_adam(
        params, grads, self._lrs(0.01), 0.8, 0.99, 1e-6, 0.3, decoupled
    )
    _assert_trees_close(got, want)

  def test_adamw_decays_only_masked_leaves(self):
    # Zero gradients: Adam's step is 0 / (0 + eps) = 0, so the whole update
    # is the decoupled decay -lr * wd * w, on 'w' leaves only.
    cfg = _cfg(learning_rate=0.5, schedule="constant", weight_decay=0.2)
    params = _tiny_params()
    zeros = jax.tree.map(np.zeros_like, params)
    got, _ = _run(cfg, 10, params, [zeros])
    np.testing.assert_allclose(got["lin"]["w"], params["lin"]["w"] * 0.9, 1e-6)
    np.testing.assert_allclose(
        got["head"]["w"], params["head"]["w"] * 0.9, 1e-6
    )
    for module, leaf in [
        ("lin", "b"),
        ("ln", "scale"),
        ("ln", "offset"),
        ("head", "b"),
    ]:
      np.testing.assert_array_equal(
          got[module][leaf], params[module][leaf].astype(np.float32)
      )

  def test_custom_decay_names(self):
    cfg = _cfg(
        learning_rate=0.5,
        schedule="constant",
        weight_decay=0.2,
        decay_param_names=("scale",),
    )
    params = _tiny_params()
    got, _ = _run(cfg, 10, params, [jax.tree.map(np.zeros_like, params)])
    np.testing.assert_allclose(
        got["ln"]["scale"], params["ln"]["scale"] * 0.9, 1e-6
    )
    np.testing.assert_array_equal(
        got["lin"]["w"], params["lin"]["w"].astype(np.float32)
    )

  def test_clipping_to_global_norm(self):
    # Plain SGD with LR 1: the update is minus the clipped gradient.
    cfg = _cfg(
        name="sgd",
        learning_rate=1.0,
        schedule="constant",
        momentum=0.0,
        nesterov=False,
        grad_clip_norm=2.0,
    )
    tx, _ = optimizers.make_optimizer(cfg, 10)
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), _tiny_params())
    state = tx.init(params)
    huge = jax.tree.map(lambda g: np.float32(1e4 * g), _grads(1)[0])
    norm = np.sqrt(sum(np.sum(g**2) for g in jax.tree.leaves(huge)))
    updates, _ = tx.update(huge, state, params)
    got_norm = np.sqrt(sum(np.sum(u**2) for u in jax.tree.leaves(updates)))
    self.assertAlmostEqual(float(got_norm), 2.0, places=4)
    _assert_trees_close(updates, jax.tree.map(lambda g: -2.0 * g / norm, huge))
    # Below the threshold the gradient passes unchanged.
    small = jax.tree.map(lambda g: g / norm, huge)  # global norm 1
    updates, _ = tx.update(small, state, params)
    _assert_trees_close(updates, jax.tree.map(np.negative, small))

  @parameterized.parameters("sgd", "adam", "adamw")
  def test_jit_matches_eager_and_compiles_once(self, name):
    cfg = _cfg(
        name=name,
        learning_rate=0.05,
        warmup_steps=1,
        weight_decay=0.01,
        grad_clip_norm=1.0,
    )
    params, grads = _tiny_params(), _grads(3)
    eager, _ = _run(cfg, 5, params, grads)
    jitted, step = _run(cfg, 5, params, grads, jit=True)
    _assert_trees_close(jitted, eager, rtol=1e-6, atol=1e-7)
    # A changing state dtype or weak type would recompile on step 2.
    self.assertEqual(step._cache_size(), 1)

  def test_returned_schedule_is_the_applied_one(self):
    cfg = _cfg(name="sgd", momentum=0.0, nesterov=False, warmup_steps=3)
    tx, schedule = optimizers.make_optimizer(cfg, 10)
    params = {"m": {"w": jnp.zeros([2])}}
    state = tx.init(params)
    ones = {"m": {"w": jnp.ones([2])}}
    for step in range(5):
      updates, state = tx.update(ones, state, params)
      np.testing.assert_allclose(
          updates["m"]["w"], -float(schedule(step)) * np.ones(2), rtol=1e-6
      )

  def test_invalid_config_raises_before_building(self):
    with self.assertRaisesRegex(ValueError, "Did you mean 'adamw'"):
      optimizers.make_optimizer(_cfg(name="adamW"), 10)


# -- validate_config ----------------------------------------------------------


class ValidateConfigTest(parameterized.TestCase):

  @parameterized.named_parameters(
      (
          "unknown_key",
          dict(learning_rat=0.1),
          10,
          r"Unknown optimizer config key\(s\): 'learning_rat' Did you mean "
          r"'learning_rate'\?.*Valid keys: name, learning_rate",
      ),
      (
          "two_unknown_keys",
          dict(moment=0.9, zzz=1),
          10,
          r"'moment' Did you mean 'momentum'\?; 'zzz'\. Valid keys",
      ),
      (
          "unknown_name",
          dict(name="adamww"),
          10,
          r"Unknown optimizer.name 'adamww'\. Did you mean 'adamw'\? Valid "
          r"names: sgd, adam, adamw\.",
      ),
      (
          "unknown_name_no_hint",
          dict(name="lamb"),
          10,
          r"Unknown optimizer.name 'lamb'\. Valid names: sgd, adam, adamw\.",
      ),
      (
          "unknown_schedule",
          dict(schedule="cosin"),
          10,
          r"Unknown optimizer.schedule 'cosin'\. Did you mean 'cosine'\? "
          r"Valid schedules: cosine, step, constant\.",
      ),
      (
          "num_steps_zero",
          {},
          0,
          r"num_steps must be a positive integer, got 0",
      ),
      (
          "learning_rate_zero",
          dict(learning_rate=0.0),
          10,
          r"optimizer.learning_rate must be > 0 .*got 0\.0",
      ),
      (
          "learning_rate_negative",
          dict(learning_rate=-1e-3),
          10,
          r"learning_rate must be > 0 .*got -0\.001",
      ),
      (
          "learning_rate_string",
          dict(learning_rate="1e-3"),
          10,
          r"optimizer.learning_rate must be a number, got '1e-3' \(str\); "
          r"default: 0\.001",
      ),
      (
          "warmup_negative",
          dict(warmup_steps=-1),
          10,
          r"warmup_steps must be an integer in \[0, num_steps\) = \[0, 10\), "
          r"got -1",
      ),
      (
          "warmup_too_long",
          dict(warmup_steps=10),
          10,
          r"warmup_steps .*\[0, 10\), got 10; warmup must end before",
      ),
      (
          "warmup_fractional",
          dict(warmup_steps=1.5),
          10,
          r"warmup_steps must be an integer .*got 1\.5",
      ),
      (
          "end_factor_negative",
          dict(end_learning_rate_factor=-0.1),
          10,
          r"end_learning_rate_factor must be >= 0 .*got -0\.1",
      ),
      (
          "boundaries_decreasing",
          dict(schedule="step", decay_boundaries=(0.6, 0.3)),
          10,
          r"decay_boundaries must be a non-empty, strictly increasing tuple "
          r"of fractions of num_steps in \(0, 1\), got \(0\.6, 0\.3\)",
      ),
      (
          "boundaries_repeated",
          dict(schedule="step", decay_boundaries=(0.5, 0.5)),
          10,
          r"strictly increasing .*got \(0\.5, 0\.5\)",
      ),
      (
          "boundary_zero",
          dict(schedule="step", decay_boundaries=(0.0, 0.5)),
          10,
          r"in \(0, 1\), got \(0\.0, 0\.5\)",
      ),
      (
          "boundary_one",
          dict(schedule="step", decay_boundaries=(0.5, 1.0)),
          10,
          r"in \(0, 1\), got \(0\.5, 1\.0\)",
      ),
      (
          "boundaries_empty",
          dict(schedule="step", decay_boundaries=()),
          10,
          r"non-empty.*got \(\)",
      ),
      (
          "boundaries_merge_after_rounding",
          dict(schedule="step", decay_boundaries=(0.3, 0.35)),
          4,
          r"decay_boundaries \(0\.3, 0\.35\) with num_steps=4 fall at steps "
          r"\(1, 1\); they must be distinct and after warmup_steps=0",
      ),
      (
          "boundary_inside_warmup",
          dict(schedule="step", decay_boundaries=(0.3,), warmup_steps=5),
          10,
          r"fall at steps \(3,\); .*after warmup_steps=5",
      ),
      (
          "decay_factor_zero",
          dict(schedule="step", decay_factor=0.0),
          10,
          r"decay_factor must be > 0 .*got 0\.0",
      ),
      (
          "momentum_one",
          dict(momentum=1.0),
          10,
          r"optimizer.momentum must be in \[0, 1\), got 1\.0",
      ),
      (
          "nesterov_not_bool",
          dict(nesterov="yes"),
          10,
          r"nesterov must be True or False, got 'yes'",
      ),
      (
          "nesterov_without_momentum",
          dict(name="sgd", momentum=0.0, nesterov=True),
          10,
          r"nesterov=True needs momentum > 0, got momentum=0; set momentum "
          r"\(e\.g\. 0\.9\) or nesterov=False",
      ),
      (
          "b1_one",
          dict(b1=1.0),
          10,
          r"optimizer.b1 must be in \[0, 1\), got 1\.0 \(default 0\.9\)",
      ),
      (
          "b2_negative",
          dict(b2=-0.1),
          10,
          r"optimizer.b2 must be in \[0, 1\), got -0\.1 \(default 0\.999\)",
      ),
      (
          "eps_negative",
          dict(eps=-1e-8),
          10,
          r"optimizer.eps must be >= 0, got -1e-08",
      ),
      (
          "weight_decay_negative",
          dict(weight_decay=-0.1),
          10,
          r"weight_decay must be >= 0, got -0\.1; use 0 to switch",
      ),
      (
          "decay_names_empty",
          dict(weight_decay=0.1, decay_param_names=()),
          10,
          r"weight_decay=0\.1 but decay_param_names is empty, so nothing "
          r"would decay\. Name the leaves",
      ),
      (
          "decay_names_string",
          dict(decay_param_names="w"),
          10,
          r"decay_param_names must be a tuple of parameter leaf names, got "
          r"'w'; write e\.g\. \('w',\), not 'w'",
      ),
      (
          "clip_negative",
          dict(grad_clip_norm=-1.0),
          10,
          r"grad_clip_norm must be >= 0, got -1\.0; use 0 to switch",
      ),
  )
  def test_error(self, overrides, num_steps, regex):
    with self.assertRaisesRegex(ValueError, regex):
      optimizers.validate_config(overrides, num_steps)
    # A ConfigDict gives the same error.
    with self.assertRaisesRegex(ValueError, regex):
      optimizers.validate_config(
          ml_collections.ConfigDict(_cfg(**overrides)), num_steps
      )

  def test_not_a_mapping(self):
    with self.assertRaisesRegex(TypeError, r"got list\. Start from"):
      optimizers.validate_config([("name", "sgd")], 10)

  @parameterized.product(
      name=["sgd", "adam", "adamw"], schedule=["cosine", "step", "constant"]
  )
  def test_valid_configs_pass(self, name, schedule):
    optimizers.validate_config(
        _cfg(name=name, schedule=schedule, warmup_steps=2, weight_decay=1e-4),
        10,
    )

  def test_step_only_checks_ignored_for_other_schedules(self):
    optimizers.validate_config(_cfg(decay_boundaries=(0.9, 0.1)), 10)

  def test_partial_dict_takes_defaults(self):
    optimizers.validate_config({"name": "sgd"}, 3)


if __name__ == "__main__":
  absltest.main()
