"""Tests for the ConvAC / ConvNet model (algebranets.models.convac) and
configs/convac.py: float64 references, the logit normalisation, every
algebra/pooling/representation option, accounting and config errors."""

import itertools
import pathlib

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import metrics, models
from algebranets.models import convac
from algebranets.training import config_lib
from tests import reference_products as ref
from tests.test_product_pooling import (
    _conv_reference,
    _ordered_pool_reference,
    _pool_reference,
)

pytestmark = pytest.mark.usefixtures("strict_numerics")

K = 3


def _cfg(**kw):
  return {**models.defaults("convac"), **kw}


def _logits_model(cfg, num_classes=K):
  return hk.without_apply_rng(
      hk.transform(
          lambda im: models.build(cfg, num_classes=num_classes)(im, True)
      )
  )


def _images(shape, seed=0, scale=1.0):
  return jnp.asarray(
      np.random.default_rng(seed).normal(size=shape) * scale, jnp.float32
  )


def test_convac_is_registered():
  spec = models.get("convac")
  assert spec.module is convac.ConvAC
  assert spec.runtime_args == ("num_classes",)
  assert models.defaults("convac")["kind"] == "convac"


# -- raw scores against a float64 reference ------------------------------------


def _pair(v):
  return (v, v) if isinstance(v, int) else tuple(v)


def _reference_scores(cfg, params, images, product):
  """Raw ConvAC scores in float64 with explicit loops (identity
  representation, patch 1): conv -> product pooling per block -> head."""
  d = ref.dim(cfg["algebra"]) if cfg["algebra"] in ref.CASES else 1
  x = np.asarray(images, np.float64)
  x = x.reshape(*x.shape[:3], x.shape[3] // d, d)
  if cfg["pooling"] == "algebra":

    def pool(v, w, s):
      return _ordered_pool_reference(v, product, w, s)

  else:
    pool = _pool_reference
  window = _pair(cfg["pool_size"])
  for i in range(len(cfg["channels"])):
    w = np.asarray(params[f"convac/conv_{i}"]["w"], np.float64)
    x = _conv_reference(x, w, product, _pair(cfg["stride"]), cfg["padding"])
    x = pool(x, window, window)
  if cfg["head"] == "global":
    x = pool(x, x.shape[1:3], x.shape[1:3])
  head = np.asarray(params["convac/head"]["w"], np.float64)
  return x.reshape(x.shape[0], -1) @ head


@pytest.mark.parametrize(
    "algebra, pooling, padding, stride, head",
    [
        ("R", "component", "SAME", 1, "flatten"),
        ("R", "component", "VALID", 2, "global"),
        ("H", "algebra", "SAME", 1, "global"),
        ("M2R", "component", "VALID", 1, "flatten"),
    ],
)
def test_raw_scores_equal_a_float64_reference(
    algebra, pooling, padding, stride, head
):
  d = ref.dim(algebra)
  cfg = _cfg(
      algebra=algebra,
      representation="identity",
      patch_size=1,
      channels=(2 * d, 2 * d),
      kernel_size=(1, 3),
      stride=(1, stride),
      padding=padding,
      pool_size=(1, 2),
      pooling=pooling,
      head=head,
  )
  images = _images((3, 1, 24, 2 * d), seed=1)
  model = hk.without_apply_rng(
      hk.transform(convac.log_scores_fn(cfg, num_classes=K))
  )
  params = jax.jit(model.init)(jax.random.key(0), images)
  got = convac.raw_scores(cfg, params, images, num_classes=K)
  want = _reference_scores(cfg, params, images, ref.CASES[algebra][1])
  assert got.shape == (3, K) and got.dtype == np.float64
  np.testing.assert_allclose(
      got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max()
  )


def test_logits_are_the_raw_scores_times_a_positive_per_example_factor():
  cfg = _cfg(channels=(6, 6), head="flatten")
  images = _images((4, 10, 10, 1), seed=2)
  model = _logits_model(cfg)
  params = jax.jit(model.init)(jax.random.key(1), images)
  logits = np.asarray(jax.jit(model.apply)(params, images), np.float64)
  raw = convac.raw_scores(cfg, params, images, num_classes=K)
  # The raw scores of RBF products are far from O(1); the logits are not.
  assert np.all(np.abs(raw) < 1e-6)
  assert 0.01 < np.abs(logits).max() < 100
  factor = np.sum(logits * raw, axis=1) / np.sum(raw * raw, axis=1)
  assert np.all(factor > 0)
  np.testing.assert_allclose(logits, factor[:, None] * raw, rtol=1e-4)


def test_logits_stay_finite_where_the_raw_scores_overflow():
  cfg = _cfg(representation="linear_relu", channels=(4, 4, 4))
  images = _images((2, 16, 16, 1), seed=3, scale=1e6)
  model = _logits_model(cfg)
  params = jax.jit(model.init)(jax.random.key(2), images)
  raw = convac.raw_scores(cfg, params, images, num_classes=K)
  # 2x2 products over 3 blocks of values ~1e6: ~1e6^64, beyond float64.
  assert not np.all(np.isfinite(raw))
  logits = jax.jit(model.apply)(params, images)
  assert np.all(np.isfinite(np.asarray(logits)))
  grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, images) ** 2)))(
      params
  )
  for leaf in jax.tree.leaves(grads):
    assert np.all(np.isfinite(np.asarray(leaf)))


# -- every option: shapes and finite gradients ---------------------------------


@pytest.mark.parametrize(
    "kind, algebra, pooling, representation, head",
    [
        ("convac", "R", "component", "rbf", "flatten"),
        ("convac", "H", "algebra", "linear_relu", "global"),
        # The algebra product pooling of M2R and cross is checked against
        # textbook products in tests/test_product_pooling.py; these two
        # whole-model gradients only add compile time to the default run.
        pytest.param(
            "convac", "M2R", "algebra", "rbf", "flatten", marks=pytest.mark.slow
        ),
        pytest.param(
            "convac",
            "cross",
            "algebra",
            "rbf",
            "global",
            marks=pytest.mark.slow,
        ),
        ("convac", "C", "component", "identity", "flatten"),
        ("convnet", "R", "component", "linear_relu", "flatten"),
        ("convnet", "H", "component", "rbf", "global"),
    ],
)
def test_every_option_gives_logits_and_finite_gradients(
    kind, algebra, pooling, representation, head
):
  cfg = _cfg(
      kind=kind,
      algebra=algebra,
      pooling=pooling,
      representation=representation,
      head=head,
      channels=(12, 12),
      convnet_pool="average" if head == "global" else "max",
  )
  images = _images((2, 8, 8, 1), seed=4)
  labels = jnp.array([0, 2])
  model = _logits_model(cfg)
  params = jax.jit(model.init)(jax.random.key(3), images)
  logits = jax.jit(model.apply)(params, images)
  assert logits.shape == (2, K) and logits.dtype == jnp.float32

  def loss(p):
    logp = jax.nn.log_softmax(model.apply(p, images))
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

  grads = jax.jit(jax.grad(loss))(params)
  for leaf in jax.tree.leaves(grads):
    assert np.all(np.isfinite(np.asarray(leaf)))
  # Every parameter takes part (no dead branch in the model).
  assert sum(
      float(jnp.sum(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads)
  ) == (len(jax.tree.leaves(grads)))


def test_convnet_equals_a_float64_reference():
  cfg = _cfg(
      kind="convnet",
      representation="identity",
      patch_size=1,
      channels=(3,),
      kernel_size=3,
      padding="SAME",
      pool_size=2,
      convnet_pool="max",
  )
  images = _images((2, 6, 6, 2), seed=5)
  model = _logits_model(cfg)
  params = jax.jit(model.init)(jax.random.key(4), images)
  noise = np.random.default_rng(8)
  params = jax.tree.map(  # non-zero biases
      lambda p: p + 0.1 * jnp.asarray(noise.normal(size=p.shape), p.dtype),
      params,
  )
  x = np.asarray(images, np.float64)[..., None]
  w = np.asarray(params["convac/conv_0"]["w"], np.float64)
  b = np.asarray(params["convac/conv_0"]["b"], np.float64)
  y = _conv_reference(x, w, ref.CASES["R"][1], (1, 1), "SAME") + b
  y = np.maximum(y, 0.0)
  pooled = np.full((2, 3, 3, 3, 1), -np.inf)
  for i, j, di, dj in itertools.product(range(3), range(3), range(2), range(2)):
    pooled[:, i, j] = np.maximum(pooled[:, i, j], y[:, 2 * i + di, 2 * j + dj])
  want = pooled.reshape(2, -1) @ np.asarray(params["convac/head"]["w"]) + (
      np.asarray(params["convac/head"]["b"])
  )
  np.testing.assert_allclose(
      np.asarray(jax.jit(model.apply)(params, images)),
      want,
      rtol=1e-5,
      atol=1e-6,
  )


def test_rbf_representation_equals_gaussian_features():
  images = _images((1, 4, 4, 1), seed=6)

  def rep(im):
    return convac.Representation("rbf", 4, "R", patch_size=2, log_space=True)(
        im
    )

  model = hk.without_apply_rng(hk.transform(rep))
  params = jax.jit(model.init)(jax.random.key(5), images)
  params = jax.tree.map(
      lambda p: p
      + 0.3
      * jnp.asarray(np.random.default_rng(7).normal(size=p.shape), p.dtype),
      params,
  )
  la, s = jax.jit(model.apply)(params, images)
  mu = np.asarray(params["stem"]["centers"], np.float64)  # [F=4, 4]
  sigma = np.exp(np.asarray(params["stem"]["log_scale"], np.float64))
  x = np.asarray(images, np.float64)[0, :, :, 0]
  for i, j in itertools.product(range(2), range(2)):
    patch = x[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].reshape(4)  # raster
    want = -0.5 * np.sum(((patch[:, None] - mu) / sigma) ** 2, axis=0)
    np.testing.assert_allclose(np.asarray(la)[0, i, j, :, 0], want, rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(s), 1.0)


# -- accounting ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["convac", "convnet"])
def test_parameter_and_mac_counts_match_hand_formulas(kind):
  # H: d = 4, widths 8 -> 2 algebra channels; 28x28, patch 2 -> 14x14.
  cfg = _cfg(kind=kind, algebra="H", channels=(8, 8), kernel_size=3)

  def fn(images):
    return models.build(cfg, num_classes=10)(images, False)

  report = metrics.count_macs(
      fn, jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32)
  )
  assert report.uncounted == ()
  stem = 14 * 14 * 4 * 8 * 2  # rbf: two matmuls of 4 features -> 8 reals
  conv0 = 14 * 14 * 9 * 2 * 2 * 16  # H product: 16 MACs
  conv1 = 7 * 7 * 9 * 2 * 2 * 16
  head = 3 * 3 * 8 * 10
  assert report.total == stem + conv0 + conv1 + head
  bias = 2 * 4 * 2 + 10 if kind == "convnet" else 0
  params = 2 * 4 * 8 + 2 * (9 * 2 * 2 * 4) + 3 * 3 * 8 * 10 + bias
  assert report.param_count == params


# -- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ({"kind": "convacc"}, r"unknown kind 'convacc'.*Did you mean 'convac'"),
        (
            {"pooling": "algebra", "kind": "convnet"},
            "pooling='algebra' is a product",
        ),
        ({"kernel_size": 0}, "kernel_size must be a positive int or a pair"),
        ({"stride": (1, 2, 3)}, "stride must be a positive int or a pair"),
        ({"channels": ()}, "channels must be a non-empty sequence"),
        (
            {"representation": "identity", "rep_channels": 8},
            "Set rep_channels=0",
        ),
        ({"padding": "FULL"}, "unknown padding 'FULL'"),
        ({"head": "dense"}, "unknown head 'dense'"),
        ({"algebra": "Q"}, "Unknown algebra"),
        ({"kernal_size": 3}, "kernal_size"),
    ],
)
def test_config_errors_name_the_fix(override, message):
  with pytest.raises(models.ModelConfigError, match=message):
    models.check(_cfg(**override))


def test_call_errors():
  images = jax.ShapeDtypeStruct((1, 8, 8, 1), jnp.float32)
  cfg = _cfg(kind="convnet", channels=(4,))
  fn = hk.transform(
      lambda im: models.build(cfg, num_classes=2)(im, log_scores=True)
  )
  with pytest.raises(
      ValueError, match=r"log_scores=True .* needs kind='convac'"
  ):
    jax.eval_shape(fn.init, jax.random.key(0), images)
  with pytest.raises(ValueError, match="needs kind='convac'"):
    convac.log_scores_fn(cfg)
  deep = _cfg(channels=(4, 4, 4))  # 4x4 -> 2x2 -> 1x1 -> window 2 too big
  fn = _logits_model(deep)
  with pytest.raises(ValueError, match="smaller than the window"):
    jax.eval_shape(fn.init, jax.random.key(0), images)
  with pytest.raises(ValueError, match=r"expected float images \[B, H, W, c\]"):
    jax.eval_shape(
        _logits_model(_cfg()).init,
        jax.random.key(0),
        jax.ShapeDtypeStruct((8, 8, 1), jnp.float32),
    )
  ident = _cfg(algebra="H", representation="identity", patch_size=1)
  with pytest.raises(ValueError, match="must be divisible by 4"):
    jax.eval_shape(_logits_model(ident).init, jax.random.key(0), images)


# -- the config file ---------------------------------------------------------------


CONFIG = str(pathlib.Path(__file__).parents[1] / "configs" / "convac.py")


def test_config_file_and_sweep():
  from scripts import sweep

  module = config_lib.load_config_file(CONFIG)
  config = module.get_config(None)
  config_lib.validate(config, num_devices=1, check_data=False)
  assert config.model.name == "convac"
  assert config.model.channels == (32, 32)
  jobs = sweep.expand(CONFIG)
  assert len(jobs) == 14
  assert len({j["name"] for j in jobs}) == 14
  overlap = [j for j in jobs if j["overrides"].get("model.kernel_size") == 3]
  assert len(overlap) == 8  # 6 real + the 2 quaternion points
  convnet = module.get_config("kind=convnet,kernel=1,channels=8,blocks=3")
  assert convnet.model.kind == "convnet"
  assert convnet.model.channels == (8, 8, 8)
  with pytest.raises(config_lib.ConfigError, match="blocks=0"):
    module.get_config("blocks=0")


def test_sweep_points_have_increasing_parameter_counts():
  module = config_lib.load_config_file(CONFIG)

  def count(arg):
    cfg = module.get_config(arg).model

    def fn(images):
      return models.build(cfg, num_classes=10)(images, False)

    shapes = jax.eval_shape(
        hk.transform(fn).init,
        jax.random.key(0),
        jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32),
    )
    return metrics.count_params(shapes)

  for kind in ("convac", "convnet"):
    for kernel in (1, 3):
      counts = [
          count(f"kind={kind},kernel={kernel},channels={c}")
          for c in (8, 16, 32)
      ]
      assert counts == sorted(counts) and len(set(counts)) == 3
  # Overlap costs kernel^2 times the conv weights.
  assert count("kernel=3,channels=8") > count("kernel=1,channels=8")
