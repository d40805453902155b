"""Tests for the algebra Transformer LM, its config handling and the registry."""

import functools

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from algebranets import algebras, metrics, models
from algebranets.models import transformer_lm as tlm
from tests import tolerances

V, B, T = 32, 2, 6


# Strict numerics for every test here (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("strict_numerics")


def _cfg(**kw):
  return {
      **models.defaults("transformer_lm"),
      "d_model": 16,
      "num_layers": 1,
      **kw,
  }


def _forward(cfg, max_len=16):
  def f(tokens, is_training=False):
    model = models.build(cfg, vocab_size=V, max_len=max_len)
    return model(tokens, is_training=is_training)

  return f


def _tokens(seed=0, shape=(B, T)):
  return jax.random.randint(jax.random.key(seed), shape, 0, V, jnp.int32)


def _random_params(model, tokens, seed=0):
  """Random parameters of the model's shapes, without compiling its init.

  Each new shape costs XLA compilations on 2 CPU cores; the tests below
  only need some parameters, and random ones also make biases and norm
  affines non-trivial.
  """
  shapes = jax.eval_shape(model.init, jax.random.key(0), tokens)
  leaves, treedef = jax.tree.flatten(shapes)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(
      treedef,
      [
          0.5 * jax.random.normal(k, leaf.shape, leaf.dtype)
          for k, leaf in zip(keys, leaves, strict=True)
      ],
  )


def _jit_apply(model):
  return jax.jit(model.apply, static_argnames="is_training")


# -- the model -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["R", "C", "H", "M2R"])
def test_logits_shape_and_dtype(name):
  model = hk.transform(_forward(_cfg(algebra=name, num_heads=2)))
  tokens = _tokens()
  params = _random_params(model, tokens)
  d = algebras.get(name).dim
  assert params["transformer_lm/embed"]["embeddings"].shape == (V, 16 // d, d)
  logits = _jit_apply(model)(params, None, tokens)
  assert logits.shape == (B, T, V) and logits.dtype == jnp.float32
  assert np.isfinite(np.asarray(logits)).all()


def test_whole_model_is_causal():
  model = hk.transform(_forward(_cfg(algebra="H", num_layers=2, num_heads=2)))
  tokens = _tokens()
  params = _random_params(model, tokens)
  t = 2
  changed = tokens.at[:, t + 1 :].set((tokens[:, t + 1 :] + 1) % V)
  apply = _jit_apply(model)
  y, y2 = apply(params, None, tokens), apply(params, None, changed)
  np.testing.assert_allclose(
      y[:, : t + 1], y2[:, : t + 1], rtol=1e-5, atol=1e-5
  )
  assert not np.allclose(y[:, t + 1 :], y2[:, t + 1 :])


def test_folded_equals_standard():
  cfg = _cfg(algebra="M2R", num_layers=2, num_heads=2)
  std = hk.transform(_forward(cfg))
  fold = hk.transform(_forward({**cfg, "layout": "folded"}))
  tokens = _tokens()
  params = _random_params(std, tokens)
  params_f = jax.eval_shape(fold.init, jax.random.key(0), tokens)
  assert jax.tree.map(jnp.shape, params_f) == jax.tree.map(jnp.shape, params)
  # Both in float64: two float32 layouts sum in different orders, by a
  # CPU-dependent amount (issue 16). The logits are float32 by design:
  # each layout rounds the same float64 value, at most an ulp apart.
  f64 = functools.partial(jax.tree.map, lambda v: np.asarray(v, np.float64))
  with jax.enable_x64(True):
    for model in (std, fold):
      assert (
          tolerances.float32_products(model.apply, f64(params), None, tokens)
          == []
      )
    got = _jit_apply(fold)(f64(params), None, tokens)
    want = _jit_apply(std)(f64(params), None, tokens)
    off = _jit_apply(std)(
        f64(params)
        | {
            "transformer_lm/embed": jax.tree.map(
                lambda v: v * (1 + 1e-5), f64(params["transformer_lm/embed"])
            )
        },
        None,
        tokens,
    )
  tol = tolerances.ulps32(np.abs(want).max(), k=2)
  np.testing.assert_allclose(got, want, rtol=0, atol=tol)
  # The bound can fail: embeddings 1e-5 off (relative) are caught.
  assert np.abs(np.asarray(off) - np.asarray(want)).max() > tol


def test_dropout_only_when_training():
  cfg = _cfg(algebra="C", num_heads=2, dropout_rate=0.5)
  model = hk.transform(_forward(cfg))
  plain = hk.transform(_forward({**cfg, "dropout_rate": 0.0}))
  tokens = _tokens()
  params = _random_params(model, tokens)
  apply, apply_plain = _jit_apply(model), _jit_apply(plain)
  evaluation = apply(params, None, tokens)  # No rng needed.
  np.testing.assert_allclose(evaluation, apply_plain(params, None, tokens))
  a = apply(params, jax.random.key(1), tokens, is_training=True)
  b = apply(params, jax.random.key(2), tokens, is_training=True)
  assert not np.allclose(a, b)
  assert not np.allclose(a, evaluation)
  # Rate 0 in training is the evaluation function.
  np.testing.assert_allclose(
      apply_plain(params, jax.random.key(1), tokens, is_training=True),
      evaluation,
  )


def _hand_params(c, d, layers, ratio, vocab):
  f = ratio * c
  block = (
      2 * c * d  # attention LayerNorm scale + offset
      + 4 * (c * c * d + c * d)  # Q, K, V, O
      + 2 * c * d  # MLP LayerNorm
      + (c * f * d + f * d)  # mlp_in
      + (f * c * d + c * d)  # mlp_out
  )
  return vocab * c * d + layers * block + 2 * c * d + (c * d * vocab + vocab)


def test_parameter_count_matches_hand_formula():
  cfg = _cfg(algebra="M2R", d_model=24, num_layers=3, num_heads=3, mlp_ratio=2)
  params = jax.eval_shape(
      hk.transform(_forward(cfg)).init, jax.random.key(0), _tokens()
  )
  assert metrics.count_params(params) == _hand_params(6, 4, 3, 2, V)
  # The real output head is a top-level child named 'head'.
  assert params["transformer_lm/head/linear"]["w"].shape == (24, V)


@pytest.mark.parametrize("layout", ["standard", "folded"])
def test_mac_count_matches_hand_formula(layout):
  cfg = _cfg(
      algebra="M2R", d_model=32, num_layers=2, num_heads=2, layout=layout
  )
  report = metrics.count_macs(
      _forward(cfg), jax.ShapeDtypeStruct((B, T), jnp.int32)
  )
  assert report.uncounted == ()
  c, f, m, p = 8, 32, 8, B * T  # M2R: 8 MACs per product.
  per_block = 4 * p * c * c * m + 2 * p * c * f * m
  assert report.total == 2 * per_block + p * (c * 4) * V
  assert report.param_count == _hand_params(c, 4, 2, 4, V)


def test_sequence_too_long_and_bad_tokens():
  model = hk.transform(_forward(_cfg(num_heads=2), max_len=4))
  with pytest.raises(ValueError, match="T=6 exceeds max_len=4"):
    model.init(jax.random.key(0), _tokens())
  with pytest.raises(ValueError, match=r"integer tokens \[B, T\]"):
    model.init(jax.random.key(0), jnp.ones((B, T)))


def test_constructor_rejects_bad_heads():
  def f(tokens):
    return tlm.TransformerLM(
        V, num_layers=1, d_model=24, num_heads=4, algebra="H"
    )(tokens, is_training=False)

  with pytest.raises(
      ValueError, match=r"= 6 algebra channels .* not divisible by num_heads=4"
  ):
    hk.transform(f).init(jax.random.key(0), _tokens())


def test_sinusoidal_positions():
  pe = tlm.sinusoidal_positions(7, 5)
  assert pe.shape == (7, 5) and pe.dtype == np.float32
  t, i = 3, 1  # Pair i uses frequency 10000^(-2i/D).
  w = 10000.0 ** (-2 * i / 5)
  np.testing.assert_allclose(pe[t, 2 * i], np.sin(t * w), rtol=1e-6)
  np.testing.assert_allclose(pe[t, 2 * i + 1], np.cos(t * w), rtol=1e-6)
  np.testing.assert_allclose(pe[0], [0, 1, 0, 1, 0])


def test_overfits_a_repeated_pattern():
  cfg = _cfg(algebra="H", num_heads=2)
  pattern = np.array([3, 1, 4, 1, 5, 9, 2, 6], np.int32)
  data = jnp.asarray(np.tile(pattern, 5)[None, :33])
  inputs, targets = data[:, :-1], data[:, 1:]
  model = hk.without_apply_rng(hk.transform(_forward(cfg, max_len=32)))
  params = jax.jit(model.init)(jax.random.key(0), inputs)
  opt = optax.adam(1e-2)
  state = opt.init(params)

  def loss_fn(p):
    logits = model.apply(p, inputs)
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, targets
    ).mean()

  @jax.jit
  def step(p, s):
    loss, grads = jax.value_and_grad(loss_fn)(p)
    updates, s = opt.update(grads, s)
    return optax.apply_updates(p, updates), s, loss

  first = None
  for _ in range(50):
    params, state, loss = step(params, state)
    first = loss if first is None else first
  final = jax.jit(loss_fn)(params)
  assert final < 0.2 * first, (first, final)


# -- configs -------------------------------------------------------------------


def test_default_config_keys():
  assert models.defaults("transformer_lm") == {
      "name": "transformer_lm",
      "algebra": "M2R",
      "width_multiplier": 1.0,
      "d_model": 128,
      "num_layers": 2,
      "num_heads": 4,
      "mlp_ratio": 4,
      "activation": "split",
      "norm": "layer",
      "norm_mode": "component",
      "lift": "algebra_embed",
      "head": "flatten_real",
      "layout": "standard",
      "dropout_rate": 0.0,
      "kernel_path": "auto",
  }
  models.defaults("transformer_lm")["d_model"] = 1  # A fresh dict each call.
  assert models.defaults("transformer_lm")["d_model"] == 128


@pytest.mark.parametrize(
    ("overrides", "channels"),
    [
        ({}, 32),
        ({"algebra": "R"}, 128),
        ({"algebra": "H", "d_model": 64, "width_multiplier": 2.0}, 32),
        ({"algebra": "C", "width_multiplier": 1.5}, 96),
        ({"algebra": "M3R", "d_model": 72, "num_heads": 2}, 8),
    ],
)
def test_num_channels(overrides, channels):
  cfg = {**models.defaults("transformer_lm"), **overrides}
  for c in (cfg, ml_collections.ConfigDict(cfg)):
    assert models.constructed(c, vocab_size=V).num_channels == channels


def test_check_accepts_config_dicts():
  cfg = models.defaults("transformer_lm")
  models.check(ml_collections.ConfigDict(cfg))
  models.check(ml_collections.FrozenConfigDict(cfg))
  # Partial: missing keys take the constructor's defaults.
  models.check({"name": "transformer_lm", "algebra": "M2C", "layout": "folded"})


@pytest.mark.parametrize(
    ("overrides", "messages"),
    [
        ({"algebra": "M2X"}, ["Unknown algebra 'M2X'", "Did you mean"]),
        (
            {"d_model": 130},
            [
                "d_model*width_multiplier = 130 is not divisible by the "
                "dimension 4 of algebra M2R",
                "multiple of 4, e.g. 128 or 132",
            ],
        ),
        (
            {"d_model": 100, "width_multiplier": 1.005},
            ["not an integer", "100.5"],
        ),
        ({"width_multiplier": 0}, ["width_multiplier must be a positive"]),
        (
            {"num_heads": 3},
            ["C = d_model*width_multiplier / 4 = 128 / 4 = 32", "num_heads=3"],
        ),
        ({"activation": "relu"}, ["unknown activation 'relu'", "split"]),
        ({"norm": "batch"}, ["unknown norm 'batch'", "only norm='layer'"]),
        ({"norm_mode": "comp"}, ["unknown norm_mode", "component"]),
        ({"lift": "real_stem"}, ["only lift='algebra_embed'"]),
        ({"head": "norm"}, ["only head='flatten_real'"]),
        ({"layout": "fold"}, ["unknown layout 'fold'", "Did you mean"]),
        (
            {"algebra": "H", "layout": "folded"},
            ["layout='folded' needs a matrix algebra", "'H'"],
        ),
        (
            {"layout": "folded", "kernel_path": "expand"},
            ["always uses the fold kernel"],
        ),
        ({"algebra": "C", "kernel_path": "fold"}, ["needs a matrix algebra"]),
        ({"kernel_path": "fast"}, ["unknown kernel_path 'fast'"]),
        ({"num_layers": 0}, ["num_layers must be an integer >= 1, got 0"]),
        ({"d_model": -8}, ["d_model must be an integer >= 1"]),
        ({"mlp_ratio": 2.5}, ["mlp_ratio must be an integer >= 1"]),
        ({"dropout_rate": 1.0}, ["dropout_rate must be in [0, 1)"]),
        (
            {"num_head": 2},
            ["Unknown config key 'model.num_head'", 'Did you mean "num_heads"'],
        ),
        ({"name": "transformer_lmm"}, ["Did you mean 'transformer_lm'"]),
    ],
)
def test_check_errors(overrides, messages):
  cfg = ml_collections.ConfigDict(
      {**models.defaults("transformer_lm"), **overrides}
  )
  with pytest.raises(models.ModelConfigError) as err:
    models.check(cfg)
  for message in messages:
    assert message in str(err.value)


def test_build_validates():
  with pytest.raises(models.ModelConfigError, match="not divisible"):
    models.constructed(
        {"name": "transformer_lm", "d_model": 130}, vocab_size=V, max_len=8
    )


def test_runtime_args_are_checked_at_build():
  # Before the data: vocab_size and max_len unknown, the config passes.
  models.check({"name": "transformer_lm"})
  with pytest.raises(models.ModelConfigError, match="vocab_size must be a"):
    models.constructed({"name": "transformer_lm"}, vocab_size=0)


# -- registry ------------------------------------------------------------------


def test_registry_get():
  spec = models.get("transformer_lm")
  assert isinstance(spec, models.ModelSpec)
  assert spec.name == "transformer_lm"
  assert spec.module is tlm.TransformerLM
  assert spec.runtime_args == ("vocab_size", "max_len")
  assert "transformer_lm" in models.names()


def test_registry_unknown_name():
  with pytest.raises(ValueError, match="Did you mean 'transformer_lm'") as err:
    models.get("transformer_lmm")
  assert "Valid names: " in str(err.value)


class _Toy(hk.Module):

  def __init__(self, size=None, *, width: int = 3, name=None):
    super().__init__(name=name)
    self.size, self.width = size, width


class _NoDefault(hk.Module):

  def __init__(self, *, width, name=None):
    super().__init__(name=name)


def test_registry_register(monkeypatch):
  monkeypatch.setattr(
      models.registry, "_REGISTRY", dict(models.registry._REGISTRY)
  )
  spec = models.ModelSpec("toy", _Toy, runtime_args=("size",))
  assert models.register(spec) is spec
  assert models.get("toy") is spec and "toy" in models.names()
  assert models.defaults("toy") == {"name": "toy", "width": 3}
  with pytest.raises(ValueError, match="already registered"):
    models.register(spec)
  models.register(spec, overwrite=True)
  with pytest.raises(ValueError, match="'depth' is not an argument"):
    models.register(models.ModelSpec("toy2", _Toy, runtime_args=("depth",)))
  with pytest.raises(ValueError, match="'width' has no default"):
    models.register(models.ModelSpec("toy3", _NoDefault))
  with pytest.raises(TypeError, match="ModelSpec"):
    models.register({"name": "toy2"})
