"""Depthwise kernels against an independent float64 numpy reference.

The reference zero-pads, strides and dilates in numpy and loops over the
kernel taps and channels, multiplying with the textbook products of
tests/reference_products.py (complex numbers, the Hamilton product,
np.matmul of real/complex/quaternion matrices, ...; no structure constants
except for the random 'generic3' algebra). Gradients are checked against
the same reference through linearity (<ct, f(u, w)> = <dx, u> for every u)
and against the other path; both paths and both layouts must agree.
"""

from __future__ import annotations

import functools
import math

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import algebras, kernels, layers
from algebranets import layout as layout_lib
from algebranets.kernels import depthwise
from tests import tolerances
from tests.reference_products import CASES, MATRIX_NAMES, NAMES

PATHS = depthwise.PATHS
TOL = dict(rtol=2e-5, atol=2e-5)

pytestmark = pytest.mark.usefixtures("strict_numerics")

# name -> (stride, padding, dilation, kernel (kh, kw), input (H, W)).
GEOMETRIES = {
    "s1_same": (1, "SAME", 1, (3, 3), (5, 6)),
    "s2_same": (2, "SAME", 1, (3, 3), (6, 5)),
    "s2_valid": (2, "VALID", 1, (3, 3), (7, 6)),
    "s1_same_dil2": (1, "SAME", 2, (3, 3), (6, 5)),
    "mixed_explicit": ((2, 1), ((2, 0), (1, 3)), (1, 2), (3, 2), (6, 5)),
}


# -- reference -----------------------------------------------------------------


def _pair(v):
  return (v, v) if isinstance(v, int) else tuple(v)


def _reference_pads(padding, in_hw, k_hw, stride, dilation):
  """((top, bottom), (left, right)) by the TF/XLA conventions, written out."""
  if isinstance(padding, str):
    if padding == "VALID":
      return ((0, 0), (0, 0))
    pads = []
    for size, k, s, r in zip(in_hw, k_hw, stride, dilation, strict=True):
      out = math.ceil(size / s)
      total = max((out - 1) * s + (k - 1) * r + 1 - size, 0)
      pads.append((total // 2, total - total // 2))
    return tuple(pads)
  return tuple(tuple(p) for p in padding)


def _reference(product, x, w, stride, padding, dilation):
  """y[b, p, c] = sum_taps w[tap, c] x[b, p * s + tap * r - pad, c] in float64,
  looping over taps and channels (x [B, H, W, C, d], w [kh, kw, 1, C, d])."""
  x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
  stride, dilation = _pair(stride), _pair(dilation)
  kh, kw, _, c, _ = w.shape
  (top, bottom), (left, right) = _reference_pads(
      padding, x.shape[1:3], (kh, kw), stride, dilation
  )
  xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0), (0, 0)))
  out_h = (xp.shape[1] - (kh - 1) * dilation[0] - 1) // stride[0] + 1
  out_w = (xp.shape[2] - (kw - 1) * dilation[1] - 1) // stride[1] + 1
  y = np.zeros((x.shape[0], out_h, out_w, c, x.shape[-1]))
  for i in range(kh):
    for j in range(kw):
      h0, w0 = i * dilation[0], j * dilation[1]
      window = xp[
          :,
          h0 : h0 + (out_h - 1) * stride[0] + 1 : stride[0],
          w0 : w0 + (out_w - 1) * stride[1] + 1 : stride[1],
      ]
      for ch in range(c):
        y[:, :, :, ch] += product(w[i, j, 0, ch], window[:, :, :, ch])
  return y


def _inputs(name, geometry, seed=0, batch=2, channels=3):
  _, _, _, (kh, kw), (h, wd) = GEOMETRIES[geometry]
  d = algebras.get(CASES[name][0]).dim
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((batch, h, wd, channels, d)).astype(np.float32)
  w = rng.standard_normal((kh, kw, 1, channels, d)).astype(np.float32)
  return x, w


def _call(x, w, algebra, geometry, path, folded=False):
  stride, padding, dilation, _, _ = GEOMETRIES[geometry]
  kw = dict(stride=stride, padding=padding, dilation=dilation, path=path)
  if folded:
    y_f = depthwise.depthwise_conv2d_folded(
        layout_lib.fold(x, algebra), w, algebra, **kw
    )
    return layout_lib.unfold(y_f, algebra)
  return depthwise.depthwise_conv2d(x, w, algebra, **kw)


def _check_against_reference(name, geometry, path, folded=False):
  """Values and gradients of one path against the numpy reference."""
  algebra, product = CASES[name]
  stride, padding, dilation, _, _ = GEOMETRIES[geometry]
  x, w = _inputs(name, geometry)
  fn = jax.jit(lambda x, w: _call(x, w, algebra, geometry, path, folded))
  y, vjp = jax.vjp(fn, jnp.asarray(x), jnp.asarray(w))
  want = _reference(product, x, w, stride, padding, dilation)
  assert y.shape == want.shape
  np.testing.assert_allclose(y, want, **TOL)
  # The convolution is linear in x and in w, so its vector-Jacobian product
  # is the adjoint of the reference map: <ct, f(u, w)> = <dx, u> for any u.
  rng = np.random.default_rng(1)
  ct = rng.standard_normal(want.shape)
  dx, dw = vjp(jnp.asarray(ct, jnp.float32))
  u, v = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
  ref = functools.partial(
      _reference, product, stride=stride, padding=padding, dilation=dilation
  )
  np.testing.assert_allclose(
      np.sum(np.asarray(dx, np.float64) * u), np.sum(ct * ref(u, w)), rtol=1e-4
  )
  np.testing.assert_allclose(
      np.sum(np.asarray(dw, np.float64) * v), np.sum(ct * ref(x, v)), rtol=1e-4
  )
  return y, dx, dw


# -- values and gradients ------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_algebra_both_paths_match_reference(name):
  """Every algebra (built-in and custom, incl. the dense-constant fallback
  of 'generic3' and the quaternion-matrix base of 'M2H'), one geometry with
  stride (2, 1), asymmetric explicit padding and dilation (1, 2)."""
  results = [_check_against_reference(name, "mixed_explicit", p) for p in PATHS]
  (y0, dx0, dw0), (y1, dx1, dw1) = results
  np.testing.assert_allclose(y1, y0, **TOL)
  np.testing.assert_allclose(dx1, dx0, **TOL)
  np.testing.assert_allclose(dw1, dw0, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "name,geometry",
    [
        ("H", "s1_same"),
        ("H", "s2_same"),
        ("H", "s2_valid"),
        ("H", "s1_same_dil2"),
        ("M2C", "s2_valid"),
        ("M2C", "s1_same_dil2"),
    ],
)
def test_geometries_match_reference(name, geometry):
  for path in PATHS:
    _check_against_reference(name, geometry, path)


@pytest.mark.parametrize("name", MATRIX_NAMES)
@pytest.mark.parametrize("path", PATHS)
def test_folded_layout_matches_reference(name, path):
  """Values and gradients on the folded layout (the standard layout's are
  checked against the same reference above)."""
  geometry = "s2_same" if name in ("M3R", "M4R") else "mixed_explicit"
  _check_against_reference(name, geometry, path, folded=True)


def test_second_order_gradients_agree():
  """Reverse-over-reverse through the hand-written backward pass."""
  x, w = _inputs("C", "s2_same")
  # In float64: the two paths sum in different orders, in float32 by a
  # CPU-dependent amount (issue 16). Any order in float64 is within the
  # worst-case bound of the longest sum (a weight gradient sums over every
  # element of x) through ~4 chained passes (forward, backward, and the
  # backward of both).
  x, w = x.astype(np.float64), w.astype(np.float64)

  def curvature(path):
    def loss(x, w):
      y = depthwise.depthwise_conv2d(x, w, "C", stride=2, path=path)
      return jnp.sum(jnp.sin(y))

    def inner(w):
      return jnp.sum(jax.grad(loss)(x, w) ** 2)

    return jax.jit(jax.grad(inner))(w)

  with jax.enable_x64(True):
    got, want = curvature("taps"), curvature("grouped")
  assert got.dtype == np.float64
  tol = tolerances.float64_error(x.size, np.abs(want).max(), depth=4)
  np.testing.assert_allclose(got, want, rtol=0, atol=tol)


def test_raw_constants_and_bfloat16():
  x, w = _inputs("H", "s1_same")
  c = algebras.get("H").structure_constants
  y = depthwise.depthwise_conv2d(x, w, "H", path="taps")
  np.testing.assert_allclose(
      depthwise.depthwise_conv2d(x, w, c, path="taps"), y, **TOL
  )
  # bfloat16 in, bfloat16 out, with float32 sums inside: within bfloat16
  # rounding of the inputs and the output.
  xb, wb = jnp.asarray(x, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16)
  yb = depthwise.depthwise_conv2d(xb, wb, "H", path="taps")
  assert yb.dtype == jnp.bfloat16
  want = _reference(
      CASES["H"][1],
      np.asarray(xb, np.float32),
      np.asarray(wb, np.float32),
      1,
      "SAME",
      1,
  )
  np.testing.assert_allclose(
      np.asarray(yb, np.float32), want, rtol=2e-2, atol=5e-2
  )


# -- path choice ---------------------------------------------------------------


def test_choose_path_by_backend(monkeypatch):
  assert depthwise.choose_path("H", (1, 4, 4, 2, 4), (3, 3, 1, 2, 4)) == "taps"
  assert kernels.choose_depthwise_path("R") == "taps"
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert depthwise.choose_path("H") == "grouped"
  assert depthwise.choose_path("M2R") == "grouped"


def test_traced_constants_use_grouped():
  x, w = _inputs("C", "s1_same")
  c = algebras.get("C").structure_constants

  @jax.jit
  def auto(c):
    assert depthwise.choose_path(c) == "grouped"
    return depthwise.depthwise_conv2d(x, w, c)

  np.testing.assert_allclose(
      auto(jnp.asarray(c, jnp.float32)),
      depthwise.depthwise_conv2d(x, w, "C", path="taps"),
      **TOL,
  )

  @jax.jit
  def forced(c):
    return depthwise.depthwise_conv2d(x, w, c, path="taps")

  with pytest.raises(ValueError, match=r"traced.*path='grouped'"):
    forced(jnp.asarray(c, jnp.float32))


def test_auto_is_taps_on_cpu_and_exported():
  assert kernels.DEPTHWISE_PATHS == ("grouped", "taps")
  assert kernels.depthwise_conv2d is depthwise.depthwise_conv2d
  assert kernels.depthwise_conv2d_folded is depthwise.depthwise_conv2d_folded
  x, w = _inputs("M2R", "s1_same")
  jaxpr = str(
      jax.make_jaxpr(lambda x, w: kernels.depthwise_conv2d(x, w, "M2R"))(x, w)
  )
  assert "custom_vjp_call" in jaxpr and "conv_general_dilated" not in jaxpr


# -- errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,shapes,pattern",
    [
        (
            {},
            ((2, 5, 5, 3, 4), (3, 3, 1, 3, 2)),
            r"weight must be \[kh, kw, 1, C, 4\]",
        ),
        ({}, ((2, 5, 5, 3, 4), (3, 3, 2, 3, 4)), r"channel_multiplier 1"),
        (
            {},
            ((2, 5, 5, 3, 4), (3, 3, 1, 5, 4)),
            "weight has 5 channels but x has 3",
        ),
        ({}, ((2, 5, 5, 3), (3, 3, 1, 3, 4)), r"x must be \[B, H, W, C, 4\]"),
        ({"padding": "FULL"}, None, "padding must be 'SAME', 'VALID'"),
        ({"padding": -1}, None, "non-negative"),
        ({"stride": 0}, None, "stride must be a positive int"),
        ({"dilation": (1, 2, 3)}, None, "dilation must be a positive int"),
        (
            {"path": "fold"},
            None,
            r"unknown path 'fold'; valid: auto, grouped, taps",
        ),
        (
            {"padding": "VALID", "dilation": 3},
            None,
            "smaller than the dilated kernel",
        ),
    ],
)
def test_errors(kwargs, shapes, pattern):
  x_shape, w_shape = shapes or ((2, 5, 5, 3, 4), (3, 3, 1, 3, 4))
  with pytest.raises(ValueError, match=pattern):
    depthwise.depthwise_conv2d(
        jnp.zeros(x_shape), jnp.zeros(w_shape), "H", **kwargs
    )


def test_folded_errors():
  w = jnp.zeros((3, 3, 1, 3, 4))
  with pytest.raises(ValueError, match="needs a matrix algebra"):
    depthwise.depthwise_conv2d_folded(jnp.zeros((2, 1, 4, 4, 3, 2)), w, "H")
  with pytest.raises(
      ValueError, match=r"folded \[2, B, H, W, C, 2\].*layout.fold"
  ):
    depthwise.depthwise_conv2d_folded(jnp.zeros((1, 4, 4, 3, 4)), w, "M2R")
  with pytest.raises(ValueError, match="weight has 3 channels but x has 5"):
    depthwise.depthwise_conv2d_folded(jnp.zeros((2, 1, 4, 4, 5, 2)), w, "M2R")


# -- the layer routes through the kernel ---------------------------------------


def _layer_outputs(name, layout, paths, multiplier=1, stride=2):
  """DepthwiseConv2D outputs and gradients for several paths, same params."""
  alg = algebras.get(name)
  x = jax.random.normal(jax.random.key(0), (2, 6, 5, 3, alg.dim))
  if layout == "folded":
    x = layout_lib.fold(x, alg)

  def make(path):
    def f(x):
      return layers.DepthwiseConv2D(
          3,
          alg,
          channel_multiplier=multiplier,
          stride=stride,
          layout=layout,
          path=path,
          name="dw",
      )(x)

    return hk.without_apply_rng(hk.transform(f))

  params = make(paths[0]).init(jax.random.key(1), x)
  params = jax.tree.map(
      lambda p: jax.random.normal(jax.random.key(2), p.shape), params
  )
  outs = []
  for path in paths:
    apply = make(path).apply

    def loss(p, x, apply=apply):
      y = apply(p, x)
      return jnp.sum(jnp.sin(y)), y

    (_, y), grads = jax.jit(jax.value_and_grad(loss, (0, 1), has_aux=True))(
        params, x
    )
    outs.append((y, grads))
  return outs


@pytest.mark.parametrize(
    "name,layout,multiplier,paths",
    [
        ("H", "standard", 1, ["auto", "grouped", "einsum"]),
        ("dual", "standard", 2, ["taps", "expand"]),
        ("M2R", "folded", 1, ["auto", "fold"]),
        ("M2C", "folded", 2, ["taps", "grouped"]),
    ],
)
def test_layer_paths_agree(name, layout, multiplier, paths):
  outs = _layer_outputs(name, layout, paths, multiplier)
  (y0, g0), rest = outs[0], outs[1:]
  for y, g in rest:
    np.testing.assert_allclose(y, y0, **TOL)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4),
        g,
        g0,
    )


def test_layer_auto_uses_taps_on_cpu():
  def f(x):
    return layers.DepthwiseConv2D(3, "C", name="dw")(x)

  t = hk.without_apply_rng(hk.transform(f))
  x = jnp.ones((1, 4, 4, 2, 2))
  params = t.init(jax.random.key(0), x)
  jaxpr = str(jax.make_jaxpr(t.apply)(params, x))
  assert "custom_vjp_call" in jaxpr and "conv_general_dilated" not in jaxpr


@pytest.mark.parametrize(
    "layout,path,pattern",
    [
        ("standard", "tapz", "unknown path 'tapz'; valid: auto, grouped, taps"),
        ("folded", "expand", "folded layout takes path 'auto', 'grouped'"),
        ("standard", "fold", "path='fold' needs a matrix algebra"),
    ],
)
def test_layer_path_errors(layout, path, pattern):
  algebra = "M2R" if layout == "folded" else "H"
  with pytest.raises(ValueError, match=pattern):
    hk.transform(
        lambda x: layers.DepthwiseConv2D(3, algebra, layout=layout, path=path)(
            x
        )
    ).init(jax.random.key(0), jnp.ones((1, 4, 4, 2, 4)))
