"""Tests for the algebra MobileNet v1 (algebranets/models/mobilenet.py).

Sizes of the reference network (Keras' MobileNet 1.0-224: 4,231,976
trainable parameters, 21,888 BatchNorm statistics) are checked with
jax.eval_shape; the R model is compared with an independent real MobileNet
written here from hk.Conv2D / hk.DepthwiseConv2D / hk.BatchNorm given the
same weights; every algebra runs forward and backward at tiny width.
"""

from __future__ import annotations

import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import algebras, metrics, models
from algebranets import layout as layout_lib
from algebranets.models import mobilenet

pytestmark = pytest.mark.usefixtures("strict_numerics")

# The reference network, written out independently of mobilenet.BLOCKS:
# (pointwise output width, depthwise stride) per block.
REFERENCE_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
REFERENCE_BLOCKS += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
TINY = dict(alpha=0.125, stem_stride=1, dropout_rate=0.0)


def _transform(num_classes=10, **kw):
  def forward(images, is_training):
    return mobilenet.MobileNet(num_classes, **kw)(images, is_training)

  return forward, hk.transform_with_state(forward)


def _shapes(t, image_shape):
  images = jax.ShapeDtypeStruct(image_shape, jnp.float32)
  return jax.eval_shape(
      lambda k, x: t.init(k, x, is_training=True), jax.random.key(0), images
  )


def _params_and_state(t, images, seed=0):
  """Random parameters and the initial BatchNorm state (mean 0, var 1) from
  an abstract init: no compilation of the init pass."""
  params, state = _shapes(t, images.shape)

  def init_stat(path, s):
    return (jnp.ones if path[-1].key == "var" else jnp.zeros)(s.shape, s.dtype)

  return (
      _random_params(params, seed),
      jax.tree_util.tree_map_with_path(init_stat, state),
  )


def _random_params(params, seed=0):
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda p: jnp.asarray(0.3 * rng.standard_normal(p.shape), p.dtype),
      params,
  )


# -- sizes of the reference network --------------------------------------------


def test_r_parameter_count_is_keras_mobilenet():
  _, t = _transform(1000)
  params, state = _shapes(t, (1, 224, 224, 3))
  assert metrics.count_params(params) == 4_231_976
  assert metrics.count_state(state) == 21_888  # Keras' non-trainable count


def test_r_macs_match_formula():
  forward, _ = _transform(1000)
  report = metrics.count_macs(
      forward, jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32), False
  )
  # Stem 3x3/2 3->32 at 112x112, then per block a 3x3 depthwise at the
  # output size and a 1x1 pointwise conv, then the 1024->1000 classifier.
  size, c_in = 112, 32
  want = size * size * 3 * 3 * 3 * c_in
  for c_out, stride in REFERENCE_BLOCKS:
    size //= stride
    want += size * size * 9 * c_in + size * size * c_in * c_out
    c_in = c_out
  want += 1024 * 1000
  assert report.total == want == 568_740_352  # "569 M" (Howard et al.)
  assert not report.uncounted


@pytest.mark.parametrize(
    "algebra,depthwise,want",
    [("H", "algebra", 16), ("M2R", "component", 1)],
)
def test_depthwise_macs_per_component(algebra, depthwise, want):
  """Algebra depthwise: macs_per_product per pair; component: 1 per real."""
  forward, _ = _transform(10, algebra=algebra, depthwise=depthwise, **TINY)
  report = metrics.count_macs(
      forward, jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32), False
  )
  rows = [r for r in report.rows if r.name.endswith("block_0/depthwise")]
  (row,) = rows
  d = algebras.get(algebra).dim
  c = mobilenet.algebra_channels(32, 0.125, 1.0, algebra)
  assert row.macs == 8 * 8 * 9 * c * (want if depthwise == "algebra" else d)
  assert not report.uncounted


def test_widths_and_names():
  _, t = _transform(7, algebra="H", alpha=0.5, width_multiplier=2.0)
  params, _ = _shapes(t, (1, 32, 32, 3))
  # Real width r -> max(1, round(r * 0.5 * 2 / 4)) quaternion channels.
  assert params["mobilenet/block_0/depthwise"]["w"].shape == (3, 3, 1, 8, 4)
  assert params["mobilenet/block_12/pointwise"]["w"].shape == (
      1,
      1,
      256,
      256,
      4,
  )
  assert params["mobilenet/stem/real_stem/conv"]["w"].shape == (3, 3, 3, 32)
  assert params["mobilenet/head/flatten_real/linear"]["w"].shape == (1024, 7)
  # 'stem' and 'head' are only the lift and the classifier (accounting and
  # sparsity find them by these path components).
  for path in params:
    parts = path.split("/")
    if "stem" in parts:
      assert path.startswith("mobilenet/stem/")
    if "head" in parts:
      assert path.startswith("mobilenet/head/")
  convs = [p for p in params if p.endswith("wise")]
  assert len(convs) == 26
  assert all("b" not in params[p] for p in convs)  # Norms follow: no bias.


def test_algebra_channels():
  assert mobilenet.algebra_channels(64, 1.0, 1.0, "H") == 16
  assert mobilenet.algebra_channels(32, 1.0, 1.0, "M3R") == 4  # 3.56
  assert mobilenet.algebra_channels(32, 0.25, 1.0, "M4R") == 1  # max(1, .)
  assert mobilenet.algebra_channels(1024, 0.75, 1.5, "C") == 576


# -- R equals an independent real MobileNet ------------------------------------


def _reference_mobilenet(widths, stem_width, stem_stride, num_classes):
  """Plain Haiku MobileNet v1 (ReLU, SAME padding, no conv biases)."""

  def forward(images, is_training):
    def bn(x, name):
      return hk.BatchNorm(True, True, 0.9, eps=1e-5, name=name)(x, is_training)

    x = hk.Conv2D(
        stem_width, 3, stride=stem_stride, with_bias=False, name="stem"
    )(images)
    x = jax.nn.relu(bn(x, "bn_stem"))
    for i, (width, stride) in enumerate(widths):
      x = hk.DepthwiseConv2D(
          1, 3, stride=stride, with_bias=False, name=f"dw_{i}"
      )(x)
      x = jax.nn.relu(bn(x, f"bn_dw_{i}"))
      x = hk.Conv2D(width, 1, with_bias=False, name=f"pw_{i}")(x)
      x = jax.nn.relu(bn(x, f"bn_pw_{i}"))
    return hk.Linear(num_classes, name="fc")(jnp.mean(x, axis=(1, 2)))

  return hk.transform_with_state(forward)


def test_r_equals_independent_real_mobilenet():
  alpha, classes = 0.125, 5
  kw = dict(alpha=alpha, stem_stride=2, dropout_rate=0.0)
  _, ours = _transform(classes, **kw)
  images = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
  params, state = _params_and_state(ours, images)
  widths = [(round(w * alpha), s) for w, s in REFERENCE_BLOCKS]
  ref = _reference_mobilenet(widths, round(32 * alpha), 2, classes)
  ref_params, ref_state = ref.init(jax.random.key(2), images, True)

  def ours_p(name, key):
    return params[f"mobilenet/{name}"][key]

  mapped = {
      "stem": {"w": ours_p("stem/real_stem/conv", "w")},
      "fc": dict(params["mobilenet/head/flatten_real/linear"]),
  }
  norms = {"bn_stem": "initial_norm"}
  for i in range(13):
    mapped[f"dw_{i}"] = {"w": ours_p(f"block_{i}/depthwise", "w")}
    mapped[f"pw_{i}"] = {"w": ours_p(f"block_{i}/pointwise", "w")}
    norms[f"bn_dw_{i}"] = f"block_{i}/depthwise_norm"
    norms[f"bn_pw_{i}"] = f"block_{i}/pointwise_norm"
  for theirs, mine in norms.items():
    mapped[theirs] = {k: ours_p(mine, k) for k in ("scale", "offset")}
  mapped = {
      mod: {k: v.reshape(ref_params[mod][k].shape) for k, v in leaves.items()}
      for mod, leaves in mapped.items()
  }
  assert jax.tree.structure(mapped) == jax.tree.structure(ref_params)

  def ref_stats(rs, stats):
    """hk.BatchNorm evaluates with its EMAs' 'average': set them to ours."""
    rs = dict(rs)
    for theirs, mine in norms.items():
      for key, ema in (("mean", "mean_ema"), ("var", "var_ema")):
        entry = dict(rs[f"{theirs}/~/{ema}"])
        value = stats[f"mobilenet/{mine}"][key]
        entry["average"] = value.reshape(entry["average"].shape)
        rs[f"{theirs}/~/{ema}"] = entry
    return rs

  @jax.jit
  def run(p, s, rp, rs, images):
    y, new_s = ours.apply(p, s, None, images, True)
    y_ref, new_rs = ref.apply(rp, rs, None, images, True)
    y_eval, _ = ours.apply(p, new_s, None, images, False)
    y_ref_eval, _ = ref.apply(rp, ref_stats(rs, new_s), None, images, False)
    return y, y_ref, y_eval, y_ref_eval, new_s, new_rs

  # Both networks run in float64: 28 conv/BatchNorm layers in float32 in two
  # different operation orders differ by a CPU-dependent amount (3e-4 on an
  # AVX2-only CPU, issue 16), which says nothing about the mapping.
  f64 = functools.partial(jax.tree.map, lambda v: np.asarray(v, np.float64))
  with jax.enable_x64(True):
    images = f64(images)
    y, y_ref, y_eval, y_ref_eval, new_s, new_rs = run(
        f64(params), f64(state), f64(mapped), f64(ref_state), images
    )
  # The head returns float32 logits by design: the only error left is their
  # final rounding, half a float32 ulp (2**-24 relative).
  assert y.shape == (4, classes) and y.dtype == jnp.float32
  np.testing.assert_allclose(y, y_ref, rtol=2**-23, atol=0)
  np.testing.assert_allclose(y_eval, y_ref_eval, rtol=2**-23, atol=0)
  assert float(jnp.std(y)) > 1e-2 and float(jnp.std(y_eval)) > 1e-2
  # Running statistics: decay 0.9 from mean 0 / var 1 without debiasing, i.e.
  # hk's un-debiased EMA ('hidden', which starts at 0) plus 0.9 * the start.
  for theirs, mine in norms.items():
    for key, ema, start in (("mean", "mean_ema", 0.0), ("var", "var_ema", 1.0)):
      hidden = new_rs[f"{theirs}/~/{ema}"]["hidden"]
      np.testing.assert_allclose(
          new_s[f"mobilenet/{mine}"][key].reshape(hidden.shape),
          hidden + 0.9 * start,
          # hk's EMA rounds its 'hidden' to float32: half an ulp.
          rtol=2**-23,
          atol=1e-12,
      )


# -- every algebra, both layouts, both depthwise kinds -------------------------


def _loss_and_grads(t, params, state, images, rng=None):
  def loss(p):
    logits, new_state = t.apply(p, state, rng, images, True)
    return jnp.sum(jnp.sin(logits)), (logits, new_state)

  return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)


def _grouped_path(algebra) -> str:
  """The kernel path that forces grouped convolutions (faster to compile
  than the automatic depthwise taps kernel on CPU)."""
  return "fold" if algebras.get(algebra).matrix_shape else "expand"


# R and M2R run concretely in the default run (reference and layout tests).
_TRACED = [a for a in algebras.names() if a not in ("R", "M2R")]


@pytest.mark.parametrize("algebra", _TRACED)
def test_every_algebra_traces_forward_and_backward(algebra):
  """Every algebra at tiny width, traced abstractly through forward and
  backward: every parameter gets a gradient of its own shape, float32
  logits. (Grouped kernels: tracing the unrolled depthwise kernel of every
  algebra again would double this file's time; test_kernels_depthwise.py
  covers it, and the slow tests below run every algebra concretely with
  both kernels.)"""
  _, t = _transform(
      5, algebra=algebra, kernel_path=_grouped_path(algebra), **TINY
  )
  images = jax.ShapeDtypeStruct((2, 16, 16, 3), jnp.float32)
  params, state = _shapes(t, images.shape)

  def loss(p, s, x):
    logits, new_s = t.apply(p, s, None, x, True)
    return jnp.sum(logits), (logits, new_s)

  (_, (logits, new_state)), grads = jax.eval_shape(
      jax.value_and_grad(loss, has_aux=True), params, state, images
  )
  assert (logits.shape, logits.dtype) == ((2, 5), jnp.float32)
  assert jax.tree.map(lambda a: (a.shape, a.dtype), grads) == jax.tree.map(
      lambda a: (a.shape, a.dtype), params
  )
  assert jax.tree.structure(new_state) == jax.tree.structure(state)


def _run_algebra(algebra, kernel_path="auto"):
  """Concrete forward and backward at tiny width: finite values, every
  parameter with a nonzero gradient."""
  _, t = _transform(5, algebra=algebra, kernel_path=kernel_path, **TINY)
  images = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
  params, state = _params_and_state(t, images)
  (value, (logits, new_state)), grads = _loss_and_grads(
      t, params, state, images
  )
  assert logits.shape == (2, 5) and logits.dtype == jnp.float32
  for leaf in jax.tree.leaves((value, grads, new_state)):
    assert bool(jnp.all(jnp.isfinite(leaf)))
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert float(jnp.max(jnp.abs(g))) > 0, path


@pytest.mark.slow
@pytest.mark.parametrize("algebra", algebras.names())
@pytest.mark.parametrize("kernel_path", ["auto", "grouped"])
def test_every_algebra_runs_forward_and_backward(algebra, kernel_path):
  if kernel_path == "grouped":
    kernel_path = _grouped_path(algebra)
  _run_algebra(algebra, kernel_path)


def _layouts_agree(algebra, depthwise, grouped: bool):
  """Standard and folded networks: same parameters, logits, gradients and
  running statistics."""
  images = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  runs = []
  for layout in ("standard", "folded"):
    path = "auto"
    if grouped:
      path = "fold" if layout == "folded" else "expand"
    _, t = _transform(
        5,
        algebra=algebra,
        depthwise=depthwise,
        layout=layout,
        kernel_path=path,
        **TINY,
    )
    params, state = _params_and_state(t, images)
    if runs:  # Parameters are stored in the canonical layout in both.
      assert jax.tree.map(jnp.shape, params) == jax.tree.map(
          jnp.shape, runs[0][0]
      )
      params = runs[0][0]
    runs.append((params, _loss_and_grads(t, params, state, images)))
  (_, ((v_s, (y_s, st_s)), g_s)), (_, ((v_f, (y_f, st_f)), g_f)) = runs
  np.testing.assert_allclose(y_f, y_s, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(v_f, v_s, rtol=1e-4, atol=1e-4)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4),
      (g_f, st_f),
      (g_s, st_s),
  )
  assert float(jnp.std(y_s)) > 1e-3


def test_folded_equals_standard():
  _layouts_agree("M2R", "algebra", grouped=True)


@pytest.mark.slow
def test_folded_equals_standard_component():
  _layouts_agree("M2C", "component", grouped=True)


@pytest.mark.slow
@pytest.mark.parametrize("algebra", ["M2R", "M2C"])
@pytest.mark.parametrize("depthwise", ["algebra", "component"])
def test_folded_equals_standard_auto_kernels(algebra, depthwise):
  _layouts_agree(algebra, depthwise, grouped=False)


# -- depthwise='component' -----------------------------------------------------


def _component_reference(x, w, stride):
  """Real depthwise conv of x [B, H, W, K] with w [3, 3, 1, K], SAME padding
  (stride 1: 1 each side; stride 2 with even sizes: 0 before, 1 after)."""
  x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
  lo = 1 if stride == 1 else 0
  xp = np.pad(x, ((0, 0), (lo, 1), (lo, 1), (0, 0)))
  out = x.shape[1] // stride
  y = np.zeros((x.shape[0], out, out, x.shape[-1]))
  for i in range(3):
    for j in range(3):
      y += (
          xp[
              :,
              i : i + (out - 1) * stride + 1 : stride,
              j : j + (out - 1) * stride + 1 : stride,
          ]
          * w[i, j, 0]
      )
  return y


@pytest.mark.parametrize(
    "algebra,layout,stride",
    [("H", "standard", 1), ("M2C", "folded", 2)],
)
def test_component_depthwise_is_real_depthwise(algebra, layout, stride):
  alg = algebras.get(algebra)
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 3, alg.dim))

  def f(x):
    return mobilenet.ComponentDepthwiseConv2D(
        3, alg, stride=stride, layout=layout, name="dw"
    )(x)

  t = hk.without_apply_rng(hk.transform(f))
  x_in = layout_lib.fold(x, alg) if layout == "folded" else x
  params = _random_params(t.init(jax.random.key(1), x_in))
  w = params["dw"]["w"]
  assert w.shape == (3, 3, 1, 3 * alg.dim)
  y = t.apply(params, x_in)
  if layout == "folded":
    y = layout_lib.unfold(y, alg)
  # Real channel c * d + k is component k of algebra channel c.
  want = _component_reference(x.reshape(2, 6, 6, -1), w, stride)
  np.testing.assert_allclose(y.reshape(want.shape), want, rtol=1e-5, atol=1e-5)


def _init(fn, x):
  return hk.transform(fn).init(jax.random.key(0), x)


def test_component_depthwise_errors():
  x = jnp.ones((1, 4, 4, 2, 4))
  with pytest.raises(ValueError, match="unknown path 'fold'"):
    _init(
        lambda x: mobilenet.ComponentDepthwiseConv2D(3, "H", path="fold")(x), x
    )
  with pytest.raises(ValueError, match=r"expected folded activations \[2, B"):
    hk.transform(
        lambda x: mobilenet.ComponentDepthwiseConv2D(3, "M2R", layout="folded")(
            x
        )
    ).init(jax.random.key(0), jnp.ones((1, 4, 4, 2, 4)))


# -- dropout -------------------------------------------------------------------


def test_dropout_only_in_training():
  _, t = _transform(
      5, alpha=0.125, stem_stride=1, dropout_rate=0.5, kernel_path="expand"
  )
  images = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  params, state = _params_and_state(t, images)

  @jax.jit
  def run(p, s):
    a, _ = t.apply(p, s, jax.random.key(2), images, True)
    b, _ = t.apply(p, s, jax.random.key(3), images, True)
    e1, _ = t.apply(p, s, None, images, False)
    e2, _ = t.apply(p, s, jax.random.key(3), images, False)
    return a, b, e1, e2

  a, b, e1, e2 = run(params, state)
  assert float(jnp.max(jnp.abs(a - b))) > 1e-4  # different masks
  np.testing.assert_array_equal(e1, e2)


# -- configs -------------------------------------------------------------------


def test_defaults_and_build():
  cfg = models.defaults("mobilenet")
  assert cfg["name"] == "mobilenet"
  assert {k: cfg[k] for k in ("alpha", "depthwise", "dropout_rate")} == {
      "alpha": 1.0,
      "depthwise": "algebra",
      "dropout_rate": 0.001,
  }
  assert cfg["stem_stride"] == 2 and cfg["algebra"] == "R"
  models.check(cfg)
  spec = models.get("mobilenet")
  assert spec.module is mobilenet.MobileNet
  assert spec.runtime_args == ("num_classes",)
  cfg.update(algebra="C", alpha=0.25, stem_stride=1, depthwise="component")

  def forward(images, is_training):
    model = models.build(cfg, num_classes=3)
    assert isinstance(model, mobilenet.MobileNet)
    return model(images, is_training)

  params, _ = _shapes(hk.transform_with_state(forward), (1, 8, 8, 3))
  assert params["mobilenet/block_0/depthwise"]["w"].shape == (3, 3, 1, 8)
  assert params["mobilenet/stem/real_stem/conv"]["w"].shape == (3, 3, 3, 8)


@pytest.mark.parametrize(
    "update,pattern",
    [
        ({"alpha": 0}, "alpha must be a positive finite number"),
        ({"alpha": float("inf")}, "alpha must be a positive finite number"),
        (
            {"depthwise": "real"},
            "unknown depthwise 'real'. Valid: algebra, comp",
        ),
        ({"dropout_rate": 1.0}, r"dropout_rate must be a number in \[0, 1\)"),
        ({"stem_stride": 0}, "stem_stride must be a positive int"),
        ({"stem_stride": 1.5}, "stem_stride must be a positive int"),
        ({"alpah": 1.0}, "alpah"),
        ({"name": "mobilnet"}, "Did you mean 'mobilenet'"),
        ({"algebra": "Q"}, "Unknown algebra"),
        ({"layout": "folded", "algebra": "H"}, "needs a matrix algebra"),
        ({"width_multiplier": -1.0}, "width_multiplier must be a positive"),
    ],
)
def test_bad_config_values(update, pattern):
  cfg = {**models.defaults("mobilenet"), **update}
  with pytest.raises(models.ModelConfigError, match=pattern):
    models.check(cfg)


def test_bad_constructor_values():
  x = jnp.ones((1, 8, 8, 3))
  with pytest.raises(ValueError, match="num_classes must be a positive int"):
    _init(lambda x: mobilenet.MobileNet(0)(x, False), x)
  with pytest.raises(ValueError, match="alpha must be a positive"):
    _init(lambda x: mobilenet.MobileNet(10, alpha=-1.0)(x, False), x)
  with pytest.raises(ValueError, match=r"float images \[B, H, W, c\]"):
    _, t = _transform(3)
    t.init(jax.random.key(0), jnp.ones((2, 8, 8), jnp.float32), True)
