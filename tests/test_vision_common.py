"""Tests for the shared vision pieces (layouts, pooling, image lift, head,
shared config keys), against float64 numpy references with explicit loops."""

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from algebranets import algebras, models
from algebranets import layout as layout_lib
from algebranets.models import vision_common as vc

pytestmark = pytest.mark.usefixtures("strict_numerics")

MATRIX = ("M2R", "M3R", "M2C")


# -- numpy references ----------------------------------------------------------


def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
  out = -(-size // s)
  total = max((out - 1) * s + k - size, 0)
  return total // 2, total - total // 2


def _np_max_pool(x, window, stride, padding):
  """x [B, H, W, ...] float64; component-wise max with explicit loops."""
  b, h, w = x.shape[:3]
  if padding == "SAME":
    (top, _), (left, _) = _same_pads(h, window, stride), _same_pads(
        w, window, stride
    )
    oh, ow = -(-h // stride), -(-w // stride)
  else:
    top = left = 0
    oh, ow = (h - window) // stride + 1, (w - window) // stride + 1
  out = np.full((b, oh, ow, *x.shape[3:]), -np.inf)
  for i in range(oh):
    for j in range(ow):
      for di in range(window):
        for dj in range(window):
          r, c = i * stride - top + di, j * stride - left + dj
          if 0 <= r < h and 0 <= c < w:
            out[:, i, j] = np.maximum(out[:, i, j], x[:, r, c])
  return out


def _np_conv_same(x, w, stride, product):
  """SAME conv with explicit loops over output positions and taps.

  x [B, H, W, C, ...], w [kh, kw, C, M, ...]; product(w_tap, x_pos) maps
  w_tap [C, M, ...] and x_pos [B, C, ...] to [B, M, ...].
  """
  b, h, wd = x.shape[:3]
  kh, kw = w.shape[:2]
  (top, _), (left, _) = _same_pads(h, kh, stride), _same_pads(wd, kw, stride)
  oh, ow = -(-h // stride), -(-wd // stride)
  out = None
  for i in range(oh):
    for j in range(ow):
      acc = 0.0
      for di in range(kh):
        for dj in range(kw):
          r, c = i * stride - top + di, j * stride - left + dj
          if 0 <= r < h and 0 <= c < wd:
            acc = acc + product(w[di, dj], x[:, r, c])
      if out is None:
        out = np.zeros((b, oh, ow, *np.shape(acc)[1:]))
      out[:, i, j] = acc
  return out


def _algebra_product(alg):
  c = np.asarray(alg.structure_constants, np.float64)

  def product(w_tap, x_pos):  # [C, M, d], [B, C, d] -> [B, M, d]
    return np.einsum("cmi,bcj,ijk->bmk", w_tap, x_pos, c)

  return product


def _real_product(w_tap, x_pos):  # [c, M], [B, c] -> [B, M]
  return x_pos @ w_tap


def _f64(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


# -- layouts and widths --------------------------------------------------------


@pytest.mark.parametrize("name", algebras.names())
def test_resolve_layout_auto_folds_exactly_the_matrix_algebras(name):
  alg = algebras.get(name)
  want = "folded" if alg.matrix_shape is not None else "standard"
  assert vc.resolve_layout(name, "auto") == want
  assert vc.resolve_layout(name, "standard") == "standard"


def test_resolve_layout_keeps_1x1_matrices_standard():
  # M_1(H) is H itself: folding a 1-column matrix would gain nothing.
  m1h = algebras.matrix_algebra(1, "H")
  assert vc.resolve_layout(m1h, "auto") == "standard"
  assert vc.resolve_layout("M2R", "folded") == "folded"


def test_resolve_layout_errors():
  with pytest.raises(
      ValueError, match=r"'H' is not one\. Use layout='standard'"
  ):
    vc.resolve_layout("H", "folded")
  with pytest.raises(ValueError, match="Unknown layout 'fold'; valid: auto"):
    vc.resolve_layout("M2R", "fold")
  with pytest.raises(ValueError, match="Unknown algebra"):
    vc.resolve_layout("Q", "auto")


@pytest.mark.parametrize(
    "real,wm,alg,want",
    [
        (64, 1.0, "R", 64),
        (64, 1.0, "H", 16),
        (64, 1.0, "M3R", 7),  # 7.11 -> 7
        (64, 2.0, "M3R", 14),  # 14.2 -> 14
        (100, 1.0, "M3R", 11),  # 11.1
        (60, 1.0, "M4R", 4),  # 3.75 -> 4
        (20, 1.0, "M4R", 1),  # 1.25 -> 1
        (4, 1.0, "M4R", 1),  # 0.25 -> clamped to 1
        (64, 0.5, "C", 16),
        (10, 1.5, "R", 15),
    ],
)
def test_algebra_channels(real, wm, alg, want):
  assert vc.algebra_channels(real, wm, alg) == want


def test_algebra_channels_errors():
  with pytest.raises(ValueError, match="real_width must be a positive int"):
    vc.algebra_channels(0, 1.0, "R")
  with pytest.raises(ValueError, match="real_width must be a positive int"):
    vc.algebra_channels(6.5, 1.0, "R")
  with pytest.raises(ValueError, match="width_multiplier must be a positive"):
    vc.algebra_channels(64, 0.0, "R")
  with pytest.raises(ValueError, match="width_multiplier must be a positive"):
    vc.algebra_channels(64, float("inf"), "R")


def test_spatial_axes():
  assert vc.spatial_axes("standard") == (1, 2)
  assert vc.spatial_axes("folded") == (2, 3)
  with pytest.raises(ValueError, match="Unknown layout 'auto'"):
    vc.spatial_axes("auto")


# -- pooling -------------------------------------------------------------------


@pytest.mark.parametrize(
    "window,stride,padding,size",
    [
        (3, 2, "SAME", 7),
        (3, 2, "SAME", 8),
        (2, 2, "VALID", 7),
        (3, 1, "SAME", 5),
    ],
)
def test_max_pool_matches_loops_in_both_layouts(window, stride, padding, size):
  x = np.random.default_rng(0).normal(size=(2, size, size + 1, 3, 4))
  want = _np_max_pool(x, window, stride, padding)
  got = vc.max_pool(
      jnp.asarray(x, jnp.float32), window, stride, "standard", padding
  )
  np.testing.assert_allclose(got, want, rtol=1e-6)
  x_f = layout_lib.fold(jnp.asarray(x, jnp.float32), "M2R")
  got_f = vc.max_pool(x_f, window, stride, "folded", padding)
  np.testing.assert_allclose(layout_lib.unfold(got_f, "M2R"), want, rtol=1e-6)


def test_max_pool_gradient_and_negative_inputs():
  # All-negative inputs: a zero-padded max would return 0 at the borders.
  x = -1.0 - jax.random.uniform(jax.random.key(0), (1, 5, 5, 2, 1))
  assert float(jnp.max(vc.max_pool(x, 3, 2, "standard"))) < -1.0
  check_grads(
      lambda v: vc.max_pool(v, 3, 2, "standard"), (x,), order=1, modes="rev"
  )
  # Under jit as in training (an array init value used to break reverse
  # mode there): the gradient routes 1 to each window's arg-max.
  g = jax.jit(jax.grad(lambda v: vc.max_pool(v, 2, 2, "standard").sum()))(x)
  assert float(g.sum()) == 3 * 3 * 2


def test_max_pool_errors():
  x = jnp.zeros((1, 4, 4, 2, 4))
  with pytest.raises(ValueError, match=r"expected folded activations \[n, B"):
    vc.max_pool(x, 3, 2, "folded")
  with pytest.raises(ValueError, match="window must be a positive int"):
    vc.max_pool(x, 0, 2, "standard")
  with pytest.raises(ValueError, match="padding must be 'SAME' or 'VALID'"):
    vc.max_pool(x, 3, 2, "standard", padding="FULL")


def test_global_avg_pool_matches_numpy_and_is_linear():
  x = np.random.default_rng(1).normal(size=(2, 3, 5, 4, 4))
  got = vc.global_avg_pool(jnp.asarray(x, jnp.float32), "standard")
  np.testing.assert_allclose(got, x.mean(axis=(1, 2)), rtol=1e-5, atol=1e-7)
  x_f = layout_lib.fold(jnp.asarray(x, jnp.float32), "M2R")
  got_f = vc.global_avg_pool(x_f, "folded")
  assert got_f.shape == (2, 2, 4, 2)
  np.testing.assert_allclose(
      layout_lib.unfold(got_f, "M2R"), x.mean(axis=(1, 2)), rtol=1e-5, atol=1e-7
  )
  check_grads(
      lambda v: vc.global_avg_pool(v, "standard"),
      (jnp.asarray(x[:1, :2, :2], jnp.float32),),
      order=1,
  )
  with pytest.raises(ValueError, match=r"global_avg_pool: expected standard"):
    vc.global_avg_pool(jnp.zeros((2, 4, 4)), "standard")


# -- lift ----------------------------------------------------------------------


def _lift(kind, channels, alg, layout, stride=2, kernel=3):
  return hk.without_apply_rng(
      hk.transform(
          lambda x: vc.ImageLift(
              kind,
              channels,
              alg,
              kernel_shape=kernel,
              stride=stride,
              layout=layout,
          )(x)
      )
  )


IMAGES = np.random.default_rng(2).normal(size=(2, 5, 6, 3))


@pytest.mark.parametrize("alg", ["R", "H", "M2C"])
def test_real_stem_lift_is_a_real_conv_read_as_algebra_channels(alg):
  d = algebras.get(alg).dim
  model = _lift("real_stem", 2, alg, "standard")
  params = model.init(jax.random.key(0), jnp.asarray(IMAGES, jnp.float32))
  assert list(params) == ["stem/real_stem/conv"]
  w = params["stem/real_stem/conv"]["w"]
  assert w.shape == (3, 3, 3, 2 * d)  # no bias: a norm follows
  got = model.apply(params, jnp.asarray(IMAGES, jnp.float32))
  want = _np_conv_same(IMAGES, np.asarray(w, np.float64), 2, _real_product)
  want = want.reshape(2, 3, 3, 2, d)  # channel-major, component-minor
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["pad", "tile"])
@pytest.mark.parametrize("alg", ["C", "H", "cross"])
def test_pad_and_tile_lifts_then_algebra_conv(kind, alg):
  a = algebras.get(alg)
  model = _lift(kind, 2, alg, "standard")
  x = jnp.asarray(IMAGES, jnp.float32)
  params = model.init(jax.random.key(0), x)
  assert list(params) == ["stem/conv"]
  w = np.asarray(params["stem/conv"]["w"], np.float64)
  assert w.shape == (3, 3, 3, 2, a.dim)
  lifted = np.zeros((*IMAGES.shape, a.dim))
  if kind == "pad":
    lifted[..., 0] = IMAGES
  else:
    lifted[...] = IMAGES[..., None]
  want = _np_conv_same(lifted, w, 2, _algebra_product(a))
  got = model.apply(params, x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", vc.LIFTS)
@pytest.mark.parametrize("alg", MATRIX)
def test_folded_lift_equals_folded_standard_lift(kind, alg):
  x = jnp.asarray(IMAGES, jnp.float32)
  std = _lift(kind, 3, alg, "standard", stride=1)
  fol = _lift(kind, 3, alg, "folded", stride=1)
  params = std.init(jax.random.key(0), x)
  np.testing.assert_allclose(
      fol.apply(params, x),
      layout_lib.fold(std.apply(params, x), alg),
      rtol=1e-5,
      atol=1e-5,
  )


def _construct(ctor):
  """Runs a module constructor where Haiku allows it (inside a transform)."""
  hk.transform(ctor).init(None)


def test_lift_errors():
  with pytest.raises(ValueError, match=r"unknown lift 'rgb'.*real_stem, pad"):
    _construct(
        lambda: vc.ImageLift(
            "rgb", 2, "H", kernel_shape=3, stride=1, layout="standard"
        )
    )
  with pytest.raises(ValueError, match="channels must be >= 1"):
    _construct(
        lambda: vc.ImageLift(
            "pad", 0, "H", kernel_shape=3, stride=1, layout="standard"
        )
    )
  with pytest.raises(ValueError, match="'H' is not one"):
    _construct(
        lambda: vc.ImageLift(
            "pad", 2, "H", kernel_shape=3, stride=1, layout="folded"
        )
    )
  model = _lift("pad", 2, "H", "standard")
  with pytest.raises(ValueError, match=r"expected images \[B, H, W, c\]"):
    model.init(jax.random.key(0), jnp.zeros((2, 5, 5)))


# -- head ----------------------------------------------------------------------


def _head(kind, alg, layout, k=5):
  return hk.without_apply_rng(
      hk.transform(lambda x: vc.ClassifierHead(kind, k, alg, layout=layout)(x))
  )


@pytest.mark.parametrize("kind", vc.HEADS)
@pytest.mark.parametrize("alg", ["R", "H", "M2R", "cross"])
def test_head_matches_numpy(kind, alg):
  a = algebras.get(alg)
  pooled = np.random.default_rng(3).normal(size=(2, 3, a.dim))
  model = _head(kind, alg, "standard")
  params = model.init(jax.random.key(0), jnp.asarray(pooled, jnp.float32))
  # Non-zero biases so that they are checked too.
  params = jax.tree.map(lambda p: p + 0.1, params)
  got = model.apply(params, jnp.asarray(pooled, jnp.float32))
  assert got.dtype == jnp.float32 and got.shape == (2, 5)
  p = _f64(params)
  if kind == "flatten_real":
    assert list(p) == ["head/flatten_real/linear"]
    lin = p["head/flatten_real/linear"]
    want = pooled.reshape(2, 3 * a.dim) @ lin["w"] + lin["b"]
  else:
    assert list(p) == ["head/linear"]
    lin = p["head/linear"]
    c = np.asarray(a.structure_constants, np.float64)
    y = np.einsum("nmi,bnj,ijk->bmk", lin["w"], pooled, c) + lin["b"]
    want = (
        y[..., 0]
        if kind == "first_component"
        else np.sqrt(np.sum(y**2, axis=-1))
    )
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", vc.HEADS)
@pytest.mark.parametrize("alg", MATRIX)
def test_folded_head_gives_the_standard_logits(kind, alg):
  pooled = jax.random.normal(jax.random.key(4), (2, 3, algebras.get(alg).dim))
  std, fol = _head(kind, alg, "standard"), _head(kind, alg, "folded")
  params = std.init(jax.random.key(0), pooled)
  np.testing.assert_allclose(
      fol.apply(params, layout_lib.fold(pooled, alg)),
      std.apply(params, pooled),
      rtol=1e-5,
      atol=1e-5,
  )


def test_head_errors():
  with pytest.raises(ValueError, match="unknown head 'softmax'"):
    _construct(lambda: vc.ClassifierHead("softmax", 5, "H", layout="standard"))
  with pytest.raises(ValueError, match="num_classes must be a positive int"):
    _construct(lambda: vc.ClassifierHead("norm", 0, "H", layout="standard"))
  model = _head("norm", "H", "standard")
  with pytest.raises(ValueError, match="Pool the spatial axes first"):
    model.init(jax.random.key(0), jnp.zeros((2, 4, 4, 3, 4)))


# -- config --------------------------------------------------------------------


_COMMON = (
    "algebra",
    "width_multiplier",
    "lift",
    "head",
    "norm",
    "norm_mode",
    "bn_decay",
    "bn_eps",
    "activation",
    "layout",
    "kernel_path",
)


def _common(**override):
  """The shared keys at the vision models' defaults, with overrides."""
  return {**{k: models.defaults("resnet")[k] for k in _COMMON}, **override}


def test_shared_defaults_agree_and_pass():
  want = {
      "algebra": "R",
      "width_multiplier": 1.0,
      "lift": "real_stem",
      "head": "flatten_real",
      "norm": "batch",
      "norm_mode": "component",
      "bn_decay": 0.9,
      "bn_eps": 1e-5,
      "activation": "split",
      "layout": "auto",
      "kernel_path": "auto",
  }
  # Every vision model's signature gives the shared keys the same defaults.
  for name in ("resnet", "mobilenet"):
    assert {k: models.defaults(name)[k] for k in _COMMON} == want
  assert vc.check_common_keys("m", **_common()) == (
      algebras.get("R"),
      "standard",
  )
  alg, layout = vc.check_common_keys("m", **_common(algebra="M2C"))
  assert (alg.name, layout) == ("M2C", "folded")


@pytest.mark.parametrize(
    "override,message",
    [
        ({"algebra": "Q"}, "Unknown algebra 'Q'"),
        ({"width_multiplier": -1}, "m: width_multiplier must be a positive"),
        ({"lift": "stem"}, "m: unknown lift 'stem'.*Valid: real_stem, pad"),
        ({"head": "flatten"}, "Did you mean 'flatten_real'"),
        ({"norm": "layer"}, "unknown norm 'layer'.*BatchNorm"),
        ({"norm_mode": "elem"}, "Did you mean 'element'"),
        ({"bn_decay": 1.5}, "m: bn_decay must be in \\[0, 1\\]"),
        ({"bn_eps": 0}, "m: bn_eps must be a positive number"),
        ({"activation": "relu"}, "unknown activation 'relu'.*split"),
        ({"layout": "fold"}, "unknown layout 'fold'"),
        (
            {"algebra": "H", "layout": "folded"},
            "'H' is not one. Use layout='auto' or 'standard'",
        ),
        ({"kernel_path": "fast"}, "unknown kernel_path 'fast'"),
        ({"kernel_path": "fold"}, "kernel_path='fold' needs a matrix algebra"),
        (
            {"algebra": "M2R", "kernel_path": "expand"},
            "runs M2R folded.*Use kernel_path='auto' or 'fold', or "
            "layout='standard'",
        ),
    ],
)
def test_check_common_keys_errors(override, message):
  with pytest.raises(ValueError, match=message):
    vc.check_common_keys("m", **_common(**override))


def test_standard_m2r_may_use_any_conv_path():
  vc.check_common_keys(
      "m", **_common(algebra="M2R", layout="standard", kernel_path="expand")
  )
