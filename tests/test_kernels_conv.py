"""Convolution kernels against independent float64 numpy references.

The references write every product by its textbook formula (see
test_kernels_dense.py for the same set; they are repeated here so that each
test module stands alone) and the convolution by explicit im2col: padding,
stride, kernel dilation and feature groups are all done in numpy.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util as jtu

from algebranets import algebras, kernels, layout
from tests import reference_products as refs
from tests.reference_products import CASES, MATRIX_NAMES, NAMES


def _paths(name):
  alg = algebras.get(CASES[name][0])
  return [
      p
      for p in kernels.CONV_PATHS
      if p != "fold" or alg.matrix_shape is not None
  ]


# -- reference convolution ----------------------------------------------------


def _as_pair(v):
  return (v, v) if isinstance(v, int) else tuple(v)


def _reference_pads(padding, in_hw, k_hw, stride, dilation):
  """((lo, hi), (lo, hi)) by the TF/XLA conventions, written out."""
  if isinstance(padding, str):
    if padding.upper() == "VALID":
      return ((0, 0), (0, 0))
    assert padding.upper() == "SAME"
    pads = []
    for size, k, s, r in zip(in_hw, k_hw, stride, dilation, strict=True):
      out = math.ceil(size / s)
      total = max((out - 1) * s + (k - 1) * r + 1 - size, 0)
      pads.append((total // 2, total - total // 2))
    return tuple(pads)
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  if all(isinstance(p, int) for p in padding):
    return tuple((p, p) for p in padding)
  return tuple(tuple(p) for p in padding)


def _patches(x, k_hw, stride, padding, dilation):
  """im2col: x [B, H, W, C, d] -> [B, H', W', kh, kw, C, d]."""
  (sh, sw), (rh, rw) = _as_pair(stride), _as_pair(dilation)
  kh, kw = k_hw
  pads = _reference_pads(padding, x.shape[1:3], k_hw, (sh, sw), (rh, rw))
  xp = np.pad(x, ((0, 0), *pads, (0, 0), (0, 0)))
  ho = (xp.shape[1] - ((kh - 1) * rh + 1)) // sh + 1
  wo = (xp.shape[2] - ((kw - 1) * rw + 1)) // sw + 1
  out = np.zeros((x.shape[0], ho, wo, kh, kw, *x.shape[3:]))
  for a in range(kh):
    for b in range(kw):
      out[:, :, :, a, b] = xp[
          :,
          a * rh : a * rh + (ho - 1) * sh + 1 : sh,
          b * rw : b * rw + (wo - 1) * sw + 1 : sw,
      ]
  return out


def reference_conv(
    product, x, w, stride=1, padding="SAME", dilation=1, groups=1
):
  """y[b, p, m] = sum_{tap, c in group(m)} w[tap, c, m] x[b, p + tap, c]."""
  kh, kw, cg, m, _ = w.shape
  p = _patches(x, (kh, kw), stride, padding, dilation)
  mg = m // groups
  out = []
  for g in range(groups):
    xg = p[:, :, :, :, :, g * cg : (g + 1) * cg, None, :]  # [..,kh,kw,cg,1,d]
    wg = w[:, :, :, g * mg : (g + 1) * mg]  # [kh, kw, cg, mg, d]
    out.append(product(wg, xg).sum(axis=(3, 4, 5)))
  return np.concatenate(out, axis=3)


# name -> (x shape [B, H, W, C], w shape [kh, kw, C/G, M], conv kwargs)
CONFIGS = {
    "s1_same": ((2, 5, 6, 2), (3, 3, 2, 3), dict(stride=1, padding="SAME")),
    "s2_valid": ((1, 7, 6, 2), (3, 3, 2, 2), dict(stride=2, padding="VALID")),
    "s21_explicit": (
        (1, 6, 5, 2),
        (3, 2, 2, 2),
        dict(stride=(2, 1), padding=((1, 2), (0, 1))),
    ),
    "int_pad_dil2": (
        (1, 7, 7, 2),
        (3, 3, 2, 2),
        dict(stride=1, padding=1, dilation=2),
    ),
    "s2_same_dil12": (
        (1, 7, 8, 2),
        (3, 3, 2, 2),
        dict(stride=2, padding="same", dilation=(1, 2)),
    ),
    "grouped": (
        (1, 5, 5, 4),
        (3, 3, 2, 6),
        dict(stride=1, padding=(1, 0), feature_group_count=2),
    ),
    "depthwise_x2_s2": (
        (2, 6, 6, 3),
        (3, 3, 1, 6),
        dict(stride=2, padding="SAME", feature_group_count=3),
    ),
}


def _conv_args(name, config, rng):
  d = refs.dim(name)
  x_shape, w_shape, kwargs = CONFIGS[config]
  x = rng.normal(size=(*x_shape, d))
  w = rng.normal(size=(*w_shape, d))
  return x, w, kwargs


def _reference(name, x, w, kwargs):
  return reference_conv(
      CASES[name][1],
      x,
      w,
      stride=kwargs.get("stride", 1),
      padding=kwargs.get("padding", "SAME"),
      dilation=kwargs.get("dilation", 1),
      groups=kwargs.get("feature_group_count", 1),
  )


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def _assert_close_scaled(got, want, rtol=1e-5, what=""):
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  assert got.shape == want.shape, (what, got.shape, want.shape)
  err = np.max(np.abs(got - want))
  scale = np.max(np.abs(want))
  assert err <= rtol * scale, f"{what}: max err {err:.3g}, scale {scale:.3g}"


def _conv_fn(alg, path, kwargs):
  """jit of conv2d with everything but (x, w) fixed."""
  return jax.jit(
      functools.partial(kernels.conv2d, algebra=alg, path=path, **kwargs)
  )


# -- the reference itself -----------------------------------------------------


def test_reference_conv_matches_lax_for_reals():
  """The numpy im2col reference agrees with a plain real lax conv."""
  rng = np.random.default_rng(0)
  for config in CONFIGS:
    x, w, kwargs = _conv_args("R", config, rng)
    with jax.enable_x64(True):
      want = jax.lax.conv_general_dilated(
          x[..., 0],
          w[..., 0],
          window_strides=_as_pair(kwargs.get("stride", 1)),
          # Strings go to lax as they are: checks our SAME convention too.
          padding=kwargs["padding"].upper()
          if isinstance(kwargs["padding"], str)
          else _reference_pads(kwargs["padding"], None, None, None, None),
          rhs_dilation=_as_pair(kwargs.get("dilation", 1)),
          feature_group_count=kwargs.get("feature_group_count", 1),
          dimension_numbers=("NHWC", "HWIO", "NHWC"),
      )
    np.testing.assert_allclose(
        _reference("R", x, w, kwargs)[..., 0], want, atol=1e-12, err_msg=config
    )


def test_reference_pads_same_is_tf_convention():
  # in=7, k=3, s=2: out 4, total = 3*2 + 3 - 7 = 2 -> (1, 1);
  # in=8, k=3 dilated by 2 (5 taps wide), s=2: out 4, total 6+5-8 = 3 -> (1, 2).
  assert _reference_pads("SAME", (7, 8), (3, 3), (2, 2), (1, 2)) == (
      (1, 1),
      (1, 2),
  )


# -- forward ------------------------------------------------------------------


def _all_paths(fn, paths):
  """jit(lambda *args: {path: fn(*args, path=path)}): one compile per test
  (XLA CPU compile time dominates these tiny shapes)."""
  return jax.jit(lambda *args: {p: fn(*args, path=p) for p in paths})


def _conv_all_paths(name, kwargs):
  return _all_paths(
      functools.partial(kernels.conv2d, algebra=CASES[name][0], **kwargs),
      [*_paths(name), "auto"],
  )


# Every algebra with the configs that exercise the most at once; every config
# with a few algebras (the rest of the cross product adds compile time only).
_FORWARD_CASES = [
    (n, c)
    for n in NAMES
    for c in ("s21_explicit", "s2_same_dil12", "grouped", "depthwise_x2_s2")
] + [
    (n, c)
    for n in ("C", "H", "cross", "M2R", "M2C")
    for c in ("s1_same", "s2_valid", "int_pad_dil2")
]


@pytest.mark.parametrize("name,config", _FORWARD_CASES)
def test_conv2d_matches_reference_float64(name, config, x64):
  x, w, kwargs = _conv_args(name, config, np.random.default_rng(1))
  want = _reference(name, x, w, kwargs)
  for path, got in _conv_all_paths(name, kwargs)(x, w).items():
    assert got.dtype == jnp.float64
    assert got.shape == want.shape, (path, got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=path)


@pytest.mark.parametrize("name", ["H", "M2C"])
def test_conv2d_eager_float64(name, x64):
  alg = CASES[name][0]
  x, w, kwargs = _conv_args(name, "depthwise_x2_s2", np.random.default_rng(2))
  want = _reference(name, x, w, kwargs)
  for path in [*_paths(name), "auto"]:
    got = kernels.conv2d(
        jnp.asarray(x), jnp.asarray(w), alg, path=path, **kwargs
    )
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=path)


def _conv_forward_and_grads(x, w, ct, *, path, **kwargs):
  y, vjp = jax.vjp(functools.partial(kernels.conv2d, path=path, **kwargs), x, w)
  return (y, *vjp(ct))


@pytest.mark.parametrize("config", ["s2_same_dil12", "depthwise_x2_s2"])
@pytest.mark.parametrize("name", NAMES)
def test_conv2d_paths_agree_float32(name, config):
  """Forward and both gradients of every path agree with 'einsum'."""
  alg = CASES[name][0]
  rng = np.random.default_rng(3)
  x, w, kwargs = _conv_args(name, config, rng)
  x, w = jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32)
  with jax.default_matmul_precision("highest"):
    y_shape = jax.eval_shape(
        functools.partial(kernels.conv2d, algebra=alg, **kwargs), x, w
    ).shape
    ct = jnp.asarray(rng.normal(size=y_shape), jnp.float32)
    outs = _all_paths(
        functools.partial(_conv_forward_and_grads, algebra=alg, **kwargs),
        [*_paths(name), "auto"],
    )(x, w, ct)
  want = outs.pop("einsum")
  for path, got in outs.items():
    assert got[0].dtype == jnp.float32
    for what, g, ref in zip(("y", "dx", "dw"), got, want, strict=True):
      _assert_close_scaled(g, ref, what=f"{path} {what}")


# -- gradients ----------------------------------------------------------------

# Grouped, strided (unequal strides) and SAME-padded all at once.
_GRAD_X = (1, 5, 4, 2)
_GRAD_W = (3, 3, 1, 4)
_GRAD_KWARGS = dict(stride=(2, 1), padding="SAME", feature_group_count=2)


@pytest.mark.parametrize("name", NAMES)
def test_conv2d_check_grads(name, x64):
  """Finite differences for every path at once (the outputs of all paths
  form one pytree, so a wrong vjp in any path breaks the check; the float32
  agreement test above says which path)."""
  d = refs.dim(name)
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(*_GRAD_X, d)))
  w = jnp.asarray(rng.normal(size=(*_GRAD_W, d)))
  jtu.check_grads(
      _conv_all_paths(name, _GRAD_KWARGS), (x, w), order=1, modes=["rev"]
  )


# -- learned structure constants ----------------------------------------------

_LEARNED_PATHS = ("auto", "einsum", "expand")


@pytest.mark.parametrize("name", NAMES)
def test_conv2d_learned_structure_constants(name, x64):
  alg = algebras.get(CASES[name][0])
  d = alg.dim
  rng = np.random.default_rng(5)
  x = rng.normal(size=(*_GRAD_X, d))
  w = rng.normal(size=(*_GRAD_W, d))
  want = _reference(name, x, w, _GRAD_KWARGS)
  ct = rng.normal(size=want.shape)
  # dL/dc_ijk for L = sum(ct * y): y_k = sum c_ijk w_i x_j over taps and
  # input channels of the group, so the gradient is an im2col contraction.
  p = _patches(x, _GRAD_W[:2], _GRAD_KWARGS["stride"], "SAME", 1)
  cg, mg = _GRAD_W[2], _GRAD_W[3] // 2
  want_dc = sum(
      np.einsum(
          "bhwuvcj,uvcmi,bhwmk->ijk",
          p[..., g * cg : (g + 1) * cg, :],
          w[:, :, :, g * mg : (g + 1) * mg],
          ct[:, :, :, g * mg : (g + 1) * mg],
      )
      for g in range(2)
  )
  c = jnp.asarray(alg.structure_constants)
  x, w, ct = jnp.asarray(x), jnp.asarray(w), jnp.asarray(ct)

  def f(c, path):
    return kernels.conv2d(x, w, c, path=path, **_GRAD_KWARGS)

  def loss(c, path):
    return jnp.sum(f(c, path) * ct)

  f_all = _all_paths(f, _LEARNED_PATHS)  # c is traced under jit
  for path, got in f_all(c).items():
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=path)
  for path, dc in _all_paths(jax.grad(loss), _LEARNED_PATHS)(c).items():
    assert dc.shape == (d, d, d)
    assert np.all(np.isfinite(dc))
    np.testing.assert_allclose(
        dc, want_dc, rtol=1e-10, atol=1e-10, err_msg=path
    )
  jtu.check_grads(f_all, (c,), order=1, modes=["rev"])


def test_conv2d_fold_path_with_learned_constants_raises():
  c = jnp.asarray(algebras.get("M2R").structure_constants)
  x, w = jnp.ones((1, 4, 4, 2, 4)), jnp.ones((3, 3, 2, 2, 4))
  with pytest.raises(ValueError, match="matrix algebra"):
    kernels.conv2d(x, w, c, path="fold")


# -- path choice --------------------------------------------------------------


def test_choose_conv_path():
  for name in MATRIX_NAMES:
    d = refs.dim(name)
    alg = CASES[name][0]
    for c_in, groups in [(8, 1), (8, 2)]:
      got = kernels.choose_conv_path(
          alg, (2, 8, 8, c_in, d), (3, 3, c_in // groups, 8, d)
      )
      assert got == "fold", name
    # Depthwise: the expansion measured faster than the fold (bench.kernels).
    got = kernels.choose_conv_path(alg, (2, 8, 8, 8, d), (3, 3, 1, 8, d))
    assert got == "expand", name
  for name in ["R", "C", "H", "dual", "cross", "split", "generic3"]:
    d = refs.dim(name)
    got = kernels.choose_conv_path(
        CASES[name][0], (2, 8, 8, 4, d), (3, 3, 4, 8, d)
    )
    assert got == "expand", name
  with pytest.raises(ValueError, match=r"padding must be .*\(1, 2, 3\)"):
    kernels.conv2d(
        jnp.ones((1, 4, 4, 2, 4)),
        jnp.ones((3, 3, 2, 2, 4)),
        "H",
        padding=(1, 2, 3),
    )
  with pytest.raises(ValueError, match="path='fold' needs a matrix algebra"):
    kernels.conv2d(
        jnp.ones((1, 4, 4, 2, 4)), jnp.ones((3, 3, 2, 2, 4)), "H", path="fold"
    )
  with pytest.raises(ValueError, match="path='fold' needs a matrix algebra"):
    kernels.dense(jnp.ones((3, 2, 4)), jnp.ones((2, 5, 4)), "H", path="fold")
  c = jnp.asarray(algebras.get("M2R").structure_constants)
  assert kernels.choose_conv_path(c, (2, 8, 8, 4, 4), (3, 3, 4, 8, 4)) == (
      "expand"
  )


# -- folded layout ------------------------------------------------------------


@pytest.mark.parametrize(
    "config", ["s21_explicit", "grouped", "depthwise_x2_s2"]
)
@pytest.mark.parametrize("name", MATRIX_NAMES)
def test_conv2d_folded_matches_fold_of_conv2d(name, config, x64):
  alg = CASES[name][0]
  x, w, kwargs = _conv_args(name, config, np.random.default_rng(6))
  x, w = jnp.asarray(x), jnp.asarray(w)
  want = layout.fold(_conv_fn(alg, "einsum", kwargs)(x, w), alg)
  got = jax.jit(
      functools.partial(kernels.conv2d_folded, algebra=alg, **kwargs)
  )(layout.fold(x, alg), w)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_conv2d_folded_errors():
  x_f = jnp.ones((2, 1, 4, 4, 3, 2))  # M2R folded, C = 3
  w = jnp.ones((3, 3, 3, 2, 4))
  with pytest.raises(ValueError, match=r"conv2d_folded: x must be folded \[2,"):
    kernels.conv2d_folded(jnp.ones((1, 4, 4, 3, 4)), w, "M2R")
  with pytest.raises(ValueError, match=r"conv2d_folded: x must be folded \[2,"):
    kernels.conv2d_folded(jnp.ones((3, 1, 4, 4, 3, 2)), w, "M2R")
  with pytest.raises(ValueError, match=r"conv2d_folded: weight must be"):
    kernels.conv2d_folded(x_f, jnp.ones((3, 3, 3, 2, 2)), "M2R")
  with pytest.raises(
      ValueError, match="2 input channels per group but x has 3"
  ):
    kernels.conv2d_folded(x_f, jnp.ones((3, 3, 2, 2, 4)), "M2R")
  with pytest.raises(ValueError, match="needs a matrix algebra"):
    kernels.conv2d_folded(x_f, w, "H")


# -- bad input ----------------------------------------------------------------


def test_conv2d_bad_input():
  x, w = jnp.ones((1, 4, 4, 4, 4)), jnp.ones((3, 3, 4, 2, 4))
  with pytest.raises(ValueError, match=r"weight must be \[kh, kw, C/G, M, 4\]"):
    kernels.conv2d(x, w[0], "H")
  with pytest.raises(ValueError, match=r"weight must be \[kh, kw, C/G, M, 4\]"):
    kernels.conv2d(x, jnp.ones((3, 3, 4, 2, 2)), "H")
  with pytest.raises(
      ValueError, match=r"x must be \[B, H, W, C, 4\].*\(4, 4, 4, 4\)"
  ):
    kernels.conv2d(x[0], w, "H")
  with pytest.raises(ValueError, match=r"x must be \[B, H, W, C, 4\]"):
    kernels.conv2d(jnp.ones((1, 4, 4, 4, 2)), w, "H")
  with pytest.raises(
      ValueError, match=r"weight has 4 input channels per group but x has 3"
  ):
    kernels.conv2d(jnp.ones((1, 4, 4, 3, 4)), w, "H")
  with pytest.raises(
      ValueError,
      match=r"in \(3\).*must be divisible by feature_group_count \(2\)",
  ):
    kernels.conv2d(
        jnp.ones((1, 4, 4, 3, 4)),
        jnp.ones((3, 3, 1, 2, 4)),
        "H",
        feature_group_count=2,
    )
  with pytest.raises(
      ValueError,
      match=r"out \(3\) must be divisible by feature_group_count \(2\)",
  ):
    kernels.conv2d(x, jnp.ones((3, 3, 2, 3, 4)), "H", feature_group_count=2)
  with pytest.raises(ValueError, match=r"Unknown conv2d path 'bogus'.*einsum"):
    kernels.conv2d(x, w, "H", path="bogus")
  with pytest.raises(ValueError, match=r"matrix algebra.*'H'"):
    kernels.conv2d(x, w, "H", path="fold")
  with pytest.raises(
      ValueError,
      match="padding must be 'SAME', 'VALID', an int or pairs, got 'FULL'",
  ):
    kernels.conv2d(x, w, "H", padding="FULL")
  with pytest.raises(
      ValueError, match=r"stride must be an int or a pair.*\(1, 2, 3\)"
  ):
    kernels.conv2d(x, w, "H", stride=(1, 2, 3))
  with pytest.raises(ValueError, match=r"dilation must be an int or a pair"):
    kernels.conv2d(x, w, "H", dilation=(1.5, 1))


# -- algebras identified by constants, not by name ----------------------------


def test_custom_constants_are_not_confused_with_a_builtin_of_the_same_name(
    x64,
):
  impostor = algebras.from_structure_constants(
      "C", refs.split_complex_algebra().structure_constants
  )
  rng = np.random.default_rng(7)
  x, w, kwargs = _conv_args("C", "s1_same", rng)
  want_c = reference_conv(refs.complex_product, x, w)
  want_split = reference_conv(refs.split_complex, x, w)
  assert np.max(np.abs(want_c - want_split)) > 1e-3
  for path in _paths("C"):
    for alg, want in [("C", want_c), (impostor, want_split), ("C", want_c)]:
      got = _conv_fn(alg, path, kwargs)(x, w)
      np.testing.assert_allclose(got, want, atol=1e-10, err_msg=path)
