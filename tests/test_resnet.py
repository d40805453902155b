"""Tests for the algebra ResNet: reference counts, equality with Haiku's
ResNet-18/50, every algebra, folded layout, variants and config errors."""

import re

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from algebranets import algebras, metrics, models
from algebranets.models import resnet
from tests import tolerances

pytestmark = pytest.mark.usefixtures("strict_numerics")

K = 5


def _tiny(**kw):
  """A 2-stage CIFAR-stem ResNet small enough to compile in a second."""
  return {
      "blocks_per_stage": (1, 1),
      "block": "bottleneck",
      "stage_widths": (4, 8),
      "stem": "cifar",
      "stem_width": 8,
      **kw,
  }


def _build(cfg, num_classes=K):
  """The ResNet of a (partial) model section; inside a transform."""
  return models.build({"name": resnet.NAME, **cfg}, num_classes=num_classes)


def _model(cfg, num_classes=K):
  def forward(images, is_training):
    return _build(cfg, num_classes)(images, is_training)

  return hk.transform_with_state(forward)


def _shapes(cfg, image_shape, num_classes=K):
  """(params, state) as ShapeDtypeStructs: nothing is computed."""
  model = _model(cfg, num_classes)
  x = jax.ShapeDtypeStruct(image_shape, jnp.float32)
  return jax.eval_shape(
      lambda k, x: model.init(k, x, True), jax.random.key(0), x
  )


def _random_like(tree, rng, dtype=np.float32):
  """Random values of a params tree's shapes (numpy; no compilation).

  Conv/linear weights are He-scaled, norm scales near 1, offsets/biases
  small but non-zero, so that no term of the forward pass is trivial.
  """

  def leaf(path, x):
    name = path[-1].key
    if name == "w":
      # Fan-in: every axis but the output channel (and algebra) axes.
      # Real weights [..., c, M]; algebra weights [..., C, M, d].
      cut = -1 if len(x.shape) in (2, 4) else -2
      fan_in = int(np.prod(x.shape[:cut]))
      return (rng.normal(size=x.shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
    if name == "scale":
      return (1.0 + 0.1 * rng.normal(size=x.shape)).astype(dtype)
    return (0.1 * rng.normal(size=x.shape)).astype(dtype)

  return jax.tree_util.tree_map_with_path(leaf, tree)


# -- reference counts ----------------------------------------------------------


@pytest.mark.parametrize(
    "depth,expected",
    [
        (18, 11_689_512),  # torchvision resnet18
        (34, 21_797_672),  # torchvision resnet34
        (50, 25_557_032),  # torchvision resnet50 = hk.nets.ResNet50
        (101, 44_549_160),  # torchvision resnet101
    ],
)
def test_real_parameter_counts_equal_the_references(depth, expected):
  params, _ = _shapes({"depth": depth}, (1, 224, 224, 3), num_classes=1000)
  assert metrics.count_params(params) == expected


def test_default_config_is_resnet50_in_r():
  cfg = models.defaults("resnet")
  assert cfg["depth"] == 50 and cfg["algebra"] == "R"
  net = models.constructed(cfg, num_classes=1000)
  assert (net.blocks_per_stage, net.block) == ((3, 4, 6, 3), "bottleneck")
  params, _ = _shapes({}, (1, 224, 224, 3), num_classes=1000)
  assert metrics.count_params(params) == 25_557_032


def _conv_macs(cfg, hw: int, num_classes: int) -> int:
  """Independent MAC formula: loops over the architecture's convs and fc.

  Spatial sizes follow 'SAME' padding (ceil(H / stride)); a layer of real
  width r has C = max(1, round(r * wm / d)) algebra channels and every
  algebra multiply costs macs_per_product; the real stem conv and the
  flatten_real head are plain real layers on d * C reals.
  """
  full = {**models.defaults("resnet"), **cfg}
  alg = algebras.get(full["algebra"])
  d, m, wm = alg.dim, alg.macs_per_product, full["width_multiplier"]
  blocks, block = resnet.architecture(
      full["depth"], full["blocks_per_stage"], full["block"]
  )

  def ch(real):
    return max(1, round(real * wm / d))

  imagenet = full["stem"] == "imagenet"
  k, s = (7, 2) if imagenet else (3, 1)
  size = -(-hw // s)
  c = ch(full["stem_width"])
  total = size * size * k * k * 3 * (d * c)  # real stem conv
  if imagenet:
    size = -(-size // 2)  # 3x3/2 max pool
  for i, n in enumerate(blocks):
    inner = ch(full["stage_widths"][i])
    expansion = 4 if block == "bottleneck" else 1
    out = ch(expansion * full["stage_widths"][i])
    for j in range(n):
      stride = 2 if i > 0 and j == 0 else 1
      out_size = -(-size // stride)
      if block == "basic":
        layers = [(3, c, inner, out_size), (3, inner, out, out_size)]
      elif full["version"] == "v1":
        layers = [
            (1, c, inner, out_size),
            (3, inner, inner, out_size),
            (1, inner, out, out_size),
        ]
      else:
        layers = [
            (1, c, inner, size),
            (3, inner, inner, out_size),
            (1, inner, out, out_size),
        ]
      if stride != 1 or c != out:
        layers.append((1, c, out, out_size))
      for kk, cin, cout, pos in layers:
        total += pos * pos * kk * kk * cin * cout * m
      c, size = out, out_size
  return total + c * d * num_classes  # flatten_real head


def _count_macs(cfg, hw, num_classes=1000):
  def forward(images):
    return _build(cfg, num_classes)(images, True)

  return metrics.count_macs(
      forward, jax.ShapeDtypeStruct((1, hw, hw, 3), jnp.float32)
  )


def test_resnet50_macs_at_224():
  report = _count_macs({}, 224)
  assert report.total == _conv_macs({}, 224, 1000) == 4_089_184_256
  assert report.uncounted == ()
  assert report.param_count == 25_557_032


@pytest.mark.parametrize(
    "cfg",
    [
        {"algebra": "H", "version": "v1"},
        {"algebra": "M3R", "width_multiplier": 1.5, "depth": 18},
    ],
)
def test_algebra_macs_follow_the_formula(cfg):
  assert _count_macs(cfg, 64).total == _conv_macs(cfg, 64, 1000)


# -- equality with Haiku's ResNet ----------------------------------------------


def _our_key(hk_key: str) -> str:
  """Haiku ResNet module path -> ours (an independent name mapping)."""
  k = hk_key.split("/~/", 1)[1]
  k = k.replace("initial_conv", "stem/real_stem/conv")
  k = k.replace("initial_batchnorm", "initial_norm")
  k = re.sub(r"block_group_(\d+)/~/block_(\d+)/~/", r"stage_\1/block_\2/", k)
  k = re.sub(r"(?<!shortcut_)batchnorm_(\d+)", r"norm_\1", k)
  k = k.replace("shortcut_batchnorm", "shortcut_norm")
  k = k.replace("logits", "head/flatten_real/linear")
  return "resnet/" + k


@pytest.mark.parametrize(
    "depth,haiku_cls", [(18, hk.nets.ResNet18), (50, hk.nets.ResNet50)]
)
def test_r_resnet_equals_haiku_resnet(depth, haiku_cls):
  """Same weights and BatchNorm statistics -> the same logits as Haiku's.

  Run in float64: hk.BatchNorm's variance is E[x^2] - E[x]^2 (one pass),
  ours is E[(x - E[x])^2] (two passes); in float32 on a tiny batch the
  last stage has channels of almost zero variance where the one-pass form
  loses all digits (logit differences of O(1) measured at 2x32x32). In
  float64 both are exact to far below the tolerance, so the comparison
  checks the architecture, not rounding. Our logits are cast to float32,
  which bounds the agreement at ~1e-7 relative.
  """
  rng = np.random.default_rng(depth)
  x = rng.normal(size=(2, 32, 32, 3))
  ours = _model({"depth": depth}, num_classes=10)
  theirs = hk.transform_with_state(
      lambda x, is_training: haiku_cls(10)(x, is_training)
  )
  with jax.enable_x64(True):
    params, state = jax.eval_shape(
        lambda k, x: ours.init(k, x, True), jax.random.key(0), x
    )
    params = _random_like(params, rng, np.float64)
    # Running statistics: plausible, non-trivial values.
    state = {
        m: {
            "mean": 0.1 * rng.normal(size=s["mean"].shape),
            "var": rng.uniform(0.5, 1.5, size=s["var"].shape),
        }
        for m, s in state.items()
    }
    hk_params, hk_state = jax.eval_shape(
        lambda k, x: theirs.init(k, x, True), jax.random.key(0), x
    )
    assert metrics.count_params(hk_params) == metrics.count_params(params)
    mapped = {
        m: {n: params[_our_key(m)][n].reshape(v.shape) for n, v in p.items()}
        for m, p in hk_params.items()
    }
    mapped_state = {}
    for m, s in hk_state.items():
      module, ema = m.rsplit("/~/", 1)  # '.../initial_batchnorm/~/mean_ema'
      ours_stat = state[_our_key(module)][
          "mean" if ema == "mean_ema" else "var"
      ]
      value = ours_stat.reshape(s["average"].shape)
      mapped_state[m] = {
          "counter": np.zeros(s["counter"].shape, s["counter"].dtype),
          "hidden": value,
          "average": value,  # what hk.BatchNorm uses at evaluation
      }

    def both(p, s, hp, hs, x):
      out = []
      for is_training in (True, False):
        out.append(ours.apply(p, s, None, x, is_training)[0])
        out.append(theirs.apply(hp, hs, None, x, is_training)[0])
      return out

    got_t, want_t, got_e, want_e = jax.jit(both)(
        params, state, mapped, mapped_state, x
    )
  assert got_t.shape == (2, 10) and got_t.dtype == jnp.float32
  for got, want in ((got_t, want_t), (got_e, want_e)):
    want = np.asarray(want)
    scale = np.abs(want).max()
    assert scale > 0.1  # not a degenerate comparison
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)
  # Training and evaluation differ (batch vs running statistics).
  assert np.abs(np.asarray(got_t) - np.asarray(got_e)).max() > 1e-3


# -- every algebra -------------------------------------------------------------


@pytest.mark.parametrize("alg", algebras.names())
def test_every_algebra_runs_forward_and_backward(alg):
  # One stage keeps the compile short; it still has the stem, a norm, both
  # convs of a basic block, a projection shortcut (8 -> 4 reals), the
  # pooling and the head. Strides and deeper stacks are algebra-agnostic
  # and tested below.
  cfg = _tiny(
      algebra=alg, block="basic", blocks_per_stage=(1,), stage_widths=(4,)
  )
  model = _model(cfg)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  labels = jnp.arange(2) % K
  # Random parameters of the init's shapes: compiling init as well would
  # double this test's cost; init itself is traced by eval_shape.
  params, state = _shapes(cfg, x.shape)
  params = _random_like(params, np.random.default_rng(0))
  state = jax.tree.map(lambda s: np.ones(s.shape, np.float32), state)

  def loss(p):
    logits, _ = model.apply(p, state, None, x, True)
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(logp[jnp.arange(2), labels]), logits

  (value, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
      params
  )
  assert logits.shape == (2, K) and logits.dtype == jnp.float32
  assert np.isfinite(float(value))
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert np.all(np.isfinite(g)), path
  # Every algebra conv receives gradient (the graph is connected).
  conv_grads = [g["w"] for m, g in grads.items() if "conv" in m]
  assert len(conv_grads) >= 3  # stem + 2 (+ the shortcut unless M4R's
  # 1-channel clamp makes 8 and 4 reals the same width)
  assert all(float(jnp.abs(g).sum()) > 0 for g in conv_grads)


# -- folded layout -------------------------------------------------------------


@pytest.mark.parametrize(
    "alg,norm_mode",
    [("M2R", "component"), ("M3R", "element"), ("M2C", "component")],
)
def test_folded_network_equals_standard(alg, norm_mode):
  # BatchNorm modes 'element' and 'whiten' broadcast per-channel statistics
  # by rank promotion (layers/normalization.py), which the strict fixture
  # forbids; allowed here until those layers reshape them explicitly.
  with jax.numpy_rank_promotion("allow"):
    _check_folded_equals_standard(alg, norm_mode)


def _check_folded_equals_standard(alg, norm_mode):
  cfg_s = _tiny(algebra=alg, norm_mode=norm_mode, layout="standard")
  cfg_f = _tiny(algebra=alg, norm_mode=norm_mode, layout="auto")
  std, fol = _model(cfg_s), _model(cfg_f)
  x = np.asarray(jax.random.normal(jax.random.key(0), (3, 8, 8, 3)))
  params, state = _shapes(cfg_s, x.shape)
  assert jax.tree.map(jnp.shape, (params, state)) == jax.tree.map(
      jnp.shape, _shapes(cfg_f, x.shape)
  )
  # In float64: two layouts sum in different orders, in float32 by a
  # CPU-dependent amount (issue 16).
  x = x.astype(np.float64)
  params = _random_like(params, np.random.default_rng(0), np.float64)
  state = jax.tree.map(lambda s: np.ones(s.shape, np.float64), state)

  def run(model, p):
    logits, new_state = model.apply(p, state, None, x, True)
    eval_logits, _ = model.apply(p, new_state, None, x, False)
    return logits, new_state, eval_logits

  # Forward passes only: gradients of folded layers are compared with the
  # standard ones layer by layer in tests/test_folded_network.py.
  with jax.enable_x64(True):
    for model in (std, fol):
      assert (
          tolerances.float32_products(lambda p, m=model: run(m, p), params)
          == []
      )
    got = jax.jit(lambda p: run(fol, p))(params)
    want = jax.jit(lambda p: run(std, p))(params)
  # Logits are float32 by design: each layout rounds float64 values that
  # agree far below an ulp, so they are at most an ulp apart.
  for i in (0, 2):
    tol = tolerances.ulps32(np.abs(want[i]).max(), k=1)
    np.testing.assert_allclose(got[i], want[i], rtol=0, atol=tol)
  # Running statistics stay float64: the worst-case bound of the longest
  # sums (3x3 convs over 64 reals, batch statistics over 3*8*8) through
  # the network's ~10 layers.
  scale = max(np.abs(v).max() for v in jax.tree.leaves(want[1]))
  tol = tolerances.float64_error(3 * 8 * 8 * 9, scale, depth=10)
  jax.tree.map(
      lambda g, w: np.testing.assert_allclose(g, w, rtol=0, atol=tol),
      got[1],
      want[1],
  )


def _activation_transposes(jaxpr, batch: int) -> int:
  """Transposes of arrays that carry the batch axis, in all sub-jaxprs.

  Weight folding (`kernels.fold_weight`) transposes each WEIGHT, which has
  no batch axis; a layout change of the ACTIVATIONS has one. With a batch
  size that no other axis has, counting transposes whose operand has that
  size counts the activation transposes exactly.
  """
  count = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "transpose" and batch in eqn.invars[0].aval.shape:
      count += 1
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
        if hasattr(inner, "eqns"):
          count += _activation_transposes(inner, batch)
  return count


@pytest.mark.parametrize("alg", ["M2R", "M3R", "M2C"])
def test_folded_graph_transposes_activations_only_at_the_ends(alg):
  """How this is checked: the jaxpr of the training forward pass (norms,
  activations, pooling, every conv) is searched for transposes of
  batch-carrying arrays (`_activation_transposes`, batch 5 is unique). The
  folded net has exactly 2 (stem fold, head unfold), however deep it is;
  the standard layout is the control: its count grows with depth, so the
  counter does see per-layer transposes where there are some."""
  batch = 5
  x = jax.ShapeDtypeStruct((batch, 8, 8, 3), jnp.float32)

  def count(layout, blocks):
    cfg = _tiny(algebra=alg, layout=layout, blocks_per_stage=blocks)
    params, state = _shapes(cfg, x.shape)
    model = _model(cfg)
    jaxpr = jax.make_jaxpr(lambda p, s, x: model.apply(p, s, None, x, True))(
        params, state, x
    )
    return _activation_transposes(jaxpr.jaxpr, batch)

  assert count("folded", (1, 1)) == 2
  assert count("folded", (2, 2)) == 2
  assert count("standard", (2, 2)) > count("standard", (1, 1)) > 2


# -- variants ------------------------------------------------------------------


def test_v1_and_v15_differ_only_in_the_stride_position():
  cfg15 = _tiny(version="v1.5")
  cfg1 = _tiny(version="v1")
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  shapes15, _ = _shapes(cfg15, x.shape)
  shapes1, _ = _shapes(cfg1, x.shape)
  assert jax.tree.map(jnp.shape, shapes15) == jax.tree.map(jnp.shape, shapes1)
  params = _random_like(shapes15, np.random.default_rng(0))
  state = jax.tree.map(
      lambda s: np.ones(s.shape, np.float32), _shapes(cfg15, x.shape)[1]
  )
  out15, _ = jax.jit(_model(cfg15).apply, static_argnums=4)(
      params, state, None, x, True
  )
  out1, _ = jax.jit(_model(cfg1).apply, static_argnums=4)(
      params, state, None, x, True
  )
  assert np.abs(np.asarray(out15) - np.asarray(out1)).max() > 1e-3
  # Where the stride sits: output size of stage_1/block_0's convs.

  def out_sizes(cfg):
    def f(images):
      return _build(cfg)(images, True)

    report = metrics.count_macs(f, jax.ShapeDtypeStruct(x.shape, jnp.float32))
    return {
        layer.name.rsplit("/", 1)[-1]: layer.output_shape[1]
        for layer in report.rows
        if "stage_1/block_0/conv_" in layer.name
    }

  assert out_sizes(cfg15) == {"conv_0": 8, "conv_1": 4, "conv_2": 4}
  assert out_sizes(cfg1) == {"conv_0": 4, "conv_1": 4, "conv_2": 4}


def _capturing_model(cfg):
  """The model, also returning {module name: (input, output)} of every
  module call (Haiku interceptor), so a jitted apply can expose them."""

  def forward(images, is_training):
    seen = {}

    def interceptor(next_f, args, kwargs, context):
      out = next_f(*args, **kwargs)
      if context.method_name == "__call__":
        seen[context.module.module_name] = (args[0], out)
      return out

    with hk.intercept_methods(interceptor):
      logits = _build(cfg)(images, is_training)
    return logits, seen

  return hk.transform_with_state(forward)


@pytest.mark.parametrize(
    "alg,block,norm_mode",
    [("R", "basic", "component"), ("M2R", "bottleneck", "whiten")],
)
def test_zero_init_last_norm_makes_every_block_its_shortcut(
    alg, block, norm_mode
):
  last = "norm_1" if block == "basic" else "norm_2"
  cfg = _tiny(
      algebra=alg,
      block=block,
      norm_mode=norm_mode,
      blocks_per_stage=(2, 1),
      zero_init_last_norm=True,
  )
  model = _capturing_model(cfg)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  # Whitening: see test_folded_network_equals_standard.
  with jax.numpy_rank_promotion("allow"):
    params, state = jax.jit(model.init, static_argnums=2)(
        jax.random.key(1), x, True
    )
    apply = jax.jit(lambda p: model.apply(p, state, None, x, True)[0][1])
    seen = apply(params)
    # Control: the same network with the last scales at one instead.
    ones = {
        m: {**p, "scale": jnp.ones_like(p["scale"])} if m.endswith(last) else p
        for m, p in params.items()
    }
    seen_ones = apply(ones)
  zeroed = [m for m, p in params.items() if m.endswith(last)]
  assert len(zeroed) == 3
  for module in zeroed:
    assert not np.any(np.asarray(params[module]["scale"])), module
  blocks = [n for n in seen if re.fullmatch(r"resnet/stage_\d/block_\d", n)]
  assert len(blocks) == 3
  assert f"{blocks[1]}/shortcut_norm" not in seen  # an identity block
  for name in blocks:
    assert not np.any(np.asarray(seen[f"{name}/{last}"][1])), name
    block_in, block_out = seen[name]
    if f"{name}/shortcut_norm" in seen:
      shortcut = jax.nn.relu(seen[f"{name}/shortcut_norm"][1])
      np.testing.assert_allclose(block_out, shortcut, rtol=1e-6, atol=1e-6)
    else:  # identity: relu of a post-relu input is the input
      np.testing.assert_allclose(block_out, block_in, rtol=1e-6, atol=1e-6)
  # The checks above can fail: with unit scales the branches are not zero.
  branch = seen_ones[f"resnet/stage_0/block_1/{last}"][1]
  assert np.abs(np.asarray(branch)).max() > 0.1


def test_width_multiplier_rounds_each_layer():
  # M3R (d = 9) at 1.5x: stem 16 -> 2.67 -> 3, inner 8 -> 1.33 -> 1 and
  # 12 -> 2, outputs 32 -> 5.33 -> 5 and 48 -> 8 algebra channels.
  cfg = _tiny(
      algebra="M3R", width_multiplier=1.5, stem_width=16, stage_widths=(8, 12)
  )
  params, _ = _shapes(cfg, (1, 8, 8, 3))
  shapes = {m: {n: v.shape for n, v in p.items()} for m, p in params.items()}
  assert shapes["resnet/stem/real_stem/conv"]["w"] == (3, 3, 3, 27)
  assert shapes["resnet/stage_0/block_0/conv_0"]["w"] == (1, 1, 3, 1, 9)
  assert shapes["resnet/stage_0/block_0/conv_1"]["w"] == (3, 3, 1, 1, 9)
  assert shapes["resnet/stage_0/block_0/conv_2"]["w"] == (1, 1, 1, 5, 9)
  assert shapes["resnet/stage_0/block_0/shortcut_conv"]["w"] == (1, 1, 3, 5, 9)
  assert shapes["resnet/stage_1/block_0/conv_0"]["w"] == (1, 1, 5, 2, 9)
  assert shapes["resnet/stage_1/block_0/conv_2"]["w"] == (1, 1, 2, 8, 9)
  assert shapes["resnet/head/flatten_real/linear"]["w"] == (72, K)
  # Widths too small for the algebra are clamped to one channel.
  params, _ = _shapes(_tiny(algebra="M4R", stage_widths=(2, 4)), (1, 8, 8, 3))
  assert params["resnet/stage_0/block_0/conv_0"]["w"].shape == (1, 1, 1, 1, 16)


@pytest.mark.parametrize(
    "alg,lift,head", [("H", "pad", "first_component"), ("M2R", "tile", "norm")]
)
def test_algebra_lifts_and_heads(alg, lift, head):
  cfg = _tiny(algebra=alg, lift=lift, head=head, block="basic")
  model = _model(cfg)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  params, state = _shapes(cfg, x.shape)
  d = algebras.get(alg).dim
  # stem: algebra conv on the lifted pixels; head: algebra Linear to K.
  assert params["resnet/stem/conv"]["w"].shape == (3, 3, 3, 8 // d, d)
  assert params["resnet/head/linear"]["w"].shape == (8 // d, K, d)
  params = _random_like(params, np.random.default_rng(0))
  state = jax.tree.map(lambda s: np.ones(s.shape, np.float32), state)
  logits, _ = jax.jit(model.apply, static_argnums=4)(
      params, state, None, x, True
  )
  assert logits.shape == (2, K) and np.all(np.isfinite(logits))
  if head == "norm":
    assert np.all(np.asarray(logits) >= 0)


def test_imagenet_stem_downsamples_by_four():
  cfg = _tiny(stem="imagenet", block="basic")

  def f(images):
    return _build(cfg)(images, True)

  report = metrics.count_macs(
      f, jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
  )
  sizes = {layer.name: layer.output_shape[1:3] for layer in report.rows}
  assert sizes["resnet/stem/real_stem/conv"] == (16, 16)
  assert sizes["resnet/stage_0/block_0/conv_0"] == (8, 8)  # after max pool
  assert sizes["resnet/stage_1/block_0/conv_0"] == (4, 4)


# -- configs -------------------------------------------------------------------


def test_architecture_and_overrides():
  assert resnet.architecture(18) == ((2, 2, 2, 2), "basic")
  assert resnet.architecture(101) == ((3, 4, 23, 3), "bottleneck")
  assert resnet.architecture(18, block="bottleneck") == (
      (2, 2, 2, 2),
      "bottleneck",
  )
  assert resnet.architecture(50, [1, 2, 3]) == ((1, 2, 3), "bottleneck")
  # The constructor resolves depth the same way.
  net = models.constructed({"name": "resnet", "depth": 18}, num_classes=2)
  assert (net.blocks_per_stage, net.block) == ((2, 2, 2, 2), "basic")


def test_config_dict_and_registry():
  cfg = ml_collections.ConfigDict({**models.defaults("resnet"), **_tiny()})
  models.check(cfg)
  spec = models.get("resnet")
  assert spec.module is resnet.ResNet and spec.runtime_args == ("num_classes",)
  params, _ = jax.eval_shape(
      lambda k, x: hk.transform_with_state(
          lambda x: models.build(cfg, num_classes=3)(x, True)
      ).init(k, x),
      jax.random.key(0),
      jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32),
  )
  assert params["resnet/head/flatten_real/linear"]["w"].shape == (32, 3)


@pytest.mark.parametrize(
    "override,message",
    [
        (
            {"dept": 50},
            r"Unknown config key 'model.dept' for model 'resnet'. Did you mean "
            '"depth"',
        ),
        ({"depth": 42}, "unknown depth 42; valid depths: 18, 34, 50, 101"),
        (
            {"stage_widths": (64, 128, 256)},
            r"stage_widths \(64, 128, 256\) has 3 entries but there are 4 "
            "stages",
        ),
        (
            {"blocks_per_stage": (1, 1), "stage_widths": (8,)},
            "has 1 entries but there are 2 stages",
        ),
        ({"lift": "rgb"}, "resnet: unknown lift 'rgb'.*real_stem, pad, tile"),
        (
            {"block": "wide"},
            "unknown block 'wide'.*Use '' to take it from depth",
        ),
        ({"stem": "cifar10"}, "Did you mean 'cifar'"),
        ({"version": "v2"}, "unknown version 'v2'"),
        ({"stem_width": 0}, "stem_width must be a positive int"),
        (
            {"blocks_per_stage": (2, 0)},
            "blocks_per_stage must hold integers >= 1",
        ),
        ({"stage_widths": "64"}, "stage_widths must be a sequence"),
        (
            {"zero_init_last_norm": True, "norm": "none"},
            "norm='none' has none. Use norm='batch'",
        ),
        ({"zero_init_last_norm": 1}, "zero_init_last_norm must be True or"),
        ({"name": "resnt"}, "Unknown model 'resnt'. Did you mean 'resnet'"),
        ({"algebra": "H", "layout": "folded"}, "'H' is not one"),
    ],
)
def test_bad_configs_raise_helpful_errors(override, message):
  with pytest.raises(models.ModelConfigError, match=message):
    models.check({"name": "resnet", **override})


def test_bad_num_classes_and_images():
  with pytest.raises(ValueError, match="num_classes must be a positive int"):
    _shapes(_tiny(), (1, 8, 8, 3), num_classes=0)
  with pytest.raises(ValueError, match=r"expected float images \[B, H, W, c\]"):
    _shapes(_tiny(), (1, 8, 8), num_classes=3)
