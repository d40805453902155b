"""Tests for the algebra Linear, Conv2D, DepthwiseConv2D and Embed layers."""

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import algebras, kernels
from algebranets import layout as layout_lib
from algebranets.layers import activations, conv, embed, linear

ALGEBRAS = algebras.names()
MATRIX = ["M2R", "M3R", "M2C"]
TOL = dict(rtol=1e-5, atol=1e-5)


# Strict numerics for every test here (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("strict_numerics")


def _run(fn, *args, seed=0):
  t = hk.transform(fn)
  params = t.init(jax.random.key(seed), *args)
  return params, t.apply(params, None, *args), t


def _rand(seed, shape):
  return jax.random.normal(jax.random.key(seed), shape)


def _with_random_bias(params, seed=7):
  """Replaces every zero-initialised bias 'b' by random values."""
  out = {}
  for i, (mod, ps) in enumerate(sorted(params.items())):
    ps = dict(ps)
    if "b" in ps:
      ps["b"] = _rand(seed + i, ps["b"].shape)
    out[mod] = ps
  return out


# -- shapes and agreement with the kernels --------------------------------------


def _three_layers(name, lay="standard"):
  """Linear, grouped strided Conv2D and DepthwiseConv2D on two inputs."""

  def f(x, img):
    return (
        linear.Linear(4, name, layout=lay, name="lin")(x),
        conv.Conv2D(
            6, 3, name, stride=2, feature_group_count=2, layout=lay, name="conv"
        )(img),
        conv.DepthwiseConv2D(
            3, name, channel_multiplier=2, layout=lay, name="dw"
        )(img),
    )

  return hk.transform(f)


def _random_params(t, *args, seed=0):
  """Random values for every parameter of t (shapes from an abstract init).

  Cheaper than running the initializers (no compile), and random biases and
  weights check more than the init values would.
  """
  shapes = jax.eval_shape(t.init, jax.random.key(0), *args)
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda s: jnp.asarray(rng.normal(size=s.shape), s.dtype), shapes
  )


@pytest.mark.parametrize("name", ALGEBRAS)
def test_layers_match_kernels(name):
  alg = algebras.get(name)
  d = alg.dim
  x, img = _rand(0, (2, 3, 5, d)), _rand(1, (2, 6, 6, 4, d))
  t = _three_layers(name)
  params = _random_params(t, x, img)
  shapes = jax.tree.map(jnp.shape, params)
  assert shapes == {
      "lin": {"w": (5, 4, d), "b": (4, d)},
      "conv": {"w": (3, 3, 2, 6, d), "b": (6, d)},
      "dw": {"w": (3, 3, 1, 8, d), "b": (8, d)},
  }

  @jax.jit
  def layers_and_reference(params):
    lin, cv, dw = params["lin"], params["conv"], params["dw"]
    reference = (
        kernels.dense(x, lin["w"], alg) + lin["b"][None, None],
        kernels.conv2d(img, cv["w"], alg, stride=2, feature_group_count=2)
        + cv["b"][None, None, None],
        kernels.conv2d(img, dw["w"], alg, feature_group_count=4)
        + dw["b"][None, None, None],
    )
    return t.apply(params, None, x, img), reference

  (y_lin, y_conv, y_dw), reference = layers_and_reference(params)
  assert y_lin.shape == (2, 3, 4, d)
  assert y_conv.shape == (2, 3, 3, 6, d)
  assert y_dw.shape == (2, 6, 6, 8, d)
  for got, want in zip((y_lin, y_conv, y_dw), reference, strict=True):
    np.testing.assert_allclose(got, want, **TOL)


def test_default_inits():
  x = _rand(0, (2, 3, 5, 4))
  params = jax.jit(_three_layers("H").init)(
      jax.random.key(0), x, _rand(1, (2, 6, 6, 4, 4))
  )
  for p in params.values():
    np.testing.assert_array_equal(p["b"], 0.0)  # Zero biases.
  # Default w_init is AlgebraVarianceScaling(gain=1): var = 1 / (fan_in * 4).
  np.testing.assert_allclose(
      np.var(params["conv"]["w"]), 1 / (9 * 2 * 4), rtol=0.1
  )
  np.testing.assert_allclose(np.var(params["dw"]["w"]), 1 / (9 * 4), rtol=0.2)


@pytest.mark.parametrize("name", ALGEBRAS)
def test_embed(name):
  d = algebras.get(name).dim
  tokens = jnp.array([[0, 3, 9], [9, 1, 0]])
  params, y, _ = _run(lambda t: embed.Embed(10, 5, name)(t), tokens)
  table = params["embed"]["embeddings"]
  assert table.shape == (10, 5, d)
  assert y.shape == (2, 3, 5, d)
  np.testing.assert_array_equal(y, np.asarray(table)[np.asarray(tokens)])


def test_embed_default_init_is_unit_truncated_normal():
  params, _, _ = _run(
      lambda t: embed.Embed(1000, 64, "H")(t), jnp.zeros(2, int)
  )
  table = np.asarray(params["embed"]["embeddings"])
  assert np.max(np.abs(table)) <= 2.0
  np.testing.assert_allclose(np.std(table, axis=(0, 1)), 0.8796, rtol=0.02)


# -- independent numpy references (float64 loops over algebra.multiply) ----------


def _np(a):
  return np.asarray(a, np.float64)


def test_linear_numpy_reference():
  alg = algebras.get("H")  # Non-commutative: checks the weight is on the left.
  x = _rand(0, (3, 4, 4))
  t = hk.transform(lambda x: linear.Linear(2, "H")(x))
  params = _random_params(t, x)
  y = t.apply(params, None, x)
  w, b, xn = _np(params["linear"]["w"]), _np(params["linear"]["b"]), _np(x)
  want = np.zeros((3, 2, 4))
  for tok in range(3):
    for m in range(2):
      want[tok, m] = b[m]
      for n in range(4):
        want[tok, m] += alg.multiply(w[n, m], xn[tok, n])
  np.testing.assert_allclose(y, want, **TOL)


def _conv_reference(alg, x, w, b, stride, rate, groups):
  """VALID convolution by explicit loops: y = sum w(tap) x(pos + tap) + b."""
  bsz, h, wd, _, _ = x.shape
  kh, kw, cg, m, d = w.shape
  sh, sw = stride
  rh, rw = rate
  ho = (h - (kh - 1) * rh - 1) // sh + 1
  wo = (wd - (kw - 1) * rw - 1) // sw + 1
  mg = m // groups
  y = np.zeros((bsz, ho, wo, m, d))
  for bi in range(bsz):
    for i in range(ho):
      for j in range(wo):
        for o in range(m):
          acc = b[o].copy()
          g = o // mg
          for p in range(kh):
            for q in range(kw):
              for ci in range(cg):
                xv = x[bi, i * sh + p * rh, j * sw + q * rw, g * cg + ci]
                acc += alg.multiply(w[p, q, ci, o], xv)
          y[bi, i, j, o] = acc
  return y


def test_conv_numpy_reference():
  alg = algebras.get("H")
  x = _rand(0, (1, 6, 5, 4, 4))

  def f(x):
    return conv.Conv2D(
        4,
        (2, 2),
        "H",
        stride=(1, 2),
        rate=(2, 1),
        padding="VALID",
        feature_group_count=2,
    )(x)

  t = hk.transform(f)
  params = _random_params(t, x)
  y = t.apply(params, None, x)
  p = params["conv2_d"]
  want = _conv_reference(
      alg, _np(x), _np(p["w"]), _np(p["b"]), (1, 2), (2, 1), 2
  )
  assert y.shape == want.shape
  np.testing.assert_allclose(y, want, **TOL)


def test_depthwise_numpy_reference():
  alg = algebras.get("dual")
  x = _rand(0, (2, 4, 4, 3, 2))

  def f(x):
    return conv.DepthwiseConv2D(
        (3, 2), "dual", channel_multiplier=2, padding="VALID"
    )(x)

  t = hk.transform(f)
  params = _random_params(t, x)
  y = t.apply(params, None, x)
  p = params["depthwise_conv2_d"]
  want = _conv_reference(
      alg, _np(x), _np(p["w"]), _np(p["b"]), (1, 1), (1, 1), 3
  )
  np.testing.assert_allclose(y, want, **TOL)


# -- jit ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["H", "M2R"])
def test_jit_equals_eager_and_compiles_once(name):
  d = algebras.get(name).dim
  traces = []

  def f(x):
    traces.append(1)  # Python side effect: runs once per trace.
    h = linear.Linear(3, name)(x)
    return conv.Conv2D(2, 3, name)(h)

  t = hk.transform(f)
  x = _rand(0, (2, 4, 4, 3, d))
  params = _random_params(t, x)
  traces.clear()
  apply = jax.jit(t.apply)
  y1 = apply(params, None, x)
  y2 = apply(params, None, x + 1.0)
  assert len(traces) == 1
  np.testing.assert_allclose(y1, t.apply(params, None, x), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(
      y2, t.apply(params, None, x + 1.0), rtol=1e-6, atol=1e-6
  )


# -- folded layout -----------------------------------------------------------------


@pytest.mark.parametrize("name", MATRIX)
def test_folded_layers_match_standard(name):
  d = algebras.get(name).dim
  x, img = _rand(0, (2, 3, 5, d)), _rand(1, (2, 5, 5, 4, d))
  x_f, img_f = layout_lib.fold(x, name), layout_lib.fold(img, name)
  t_std, t_fold = _three_layers(name), _three_layers(name, "folded")
  params = _random_params(t_std, x, img)
  # Parameters are stored in the canonical layout: identical trees.
  params_f = jax.eval_shape(t_fold.init, jax.random.key(0), x_f, img_f)
  assert jax.tree.map(jnp.shape, params_f) == jax.tree.map(jnp.shape, params)

  @jax.jit
  def both(params):
    return t_std.apply(params, None, x, img), t_fold.apply(
        params, None, x_f, img_f
    )

  ys, ys_f = both(params)
  for y, y_f in zip(ys, ys_f, strict=True):
    np.testing.assert_allclose(y_f, layout_lib.fold(y, name), **TOL)


@pytest.mark.parametrize("name", MATRIX)
def test_folded_embed(name):
  tokens = jnp.array([[1, 2], [3, 0]])
  t_std = hk.transform(lambda t: embed.Embed(4, 3, name, name="e")(t))
  t_f = hk.transform(
      lambda t: embed.Embed(4, 3, name, layout="folded", name="e")(t)
  )
  params = t_std.init(jax.random.key(0), tokens)
  np.testing.assert_array_equal(
      t_f.apply(params, None, tokens),
      layout_lib.fold(t_std.apply(params, None, tokens), name),
  )


# -- learned structure -------------------------------------------------------------


@pytest.mark.parametrize("name", ["H", "dual", "M2R"])
def test_learned_structure(name):
  alg = algebras.get(name)
  d = alg.dim
  x = _rand(0, (3, 4, d))
  params, y, t = _run(
      lambda x: linear.Linear(2, name, learned_structure=True)(x), x
  )
  c = params["linear"]["structure"]
  np.testing.assert_array_equal(c, alg.structure_constants.astype(np.float32))
  params = _with_random_bias(params)
  y = t.apply(params, None, x)
  fixed = hk.transform(lambda x: linear.Linear(2, name)(x))
  fixed_params = {"linear": {k: params["linear"][k] for k in ("w", "b")}}
  np.testing.assert_allclose(y, fixed.apply(fixed_params, None, x), **TOL)
  # Same weights as the fixed layer at the same seed (structure uses no rng).
  np.testing.assert_array_equal(
      params["linear"]["w"], fixed.init(jax.random.key(0), x)["linear"]["w"]
  )

  def loss(p):
    return jnp.sum(jnp.square(t.apply(p, None, x)))

  g = jax.grad(loss)(params)["linear"]["structure"]
  assert g.shape == (d, d, d)
  assert np.all(np.isfinite(g)) and np.any(np.abs(g) > 1e-3)


@pytest.mark.parametrize("name", ["H", "M2R"])
def test_learned_structure_conv(name):
  alg = algebras.get(name)
  d = alg.dim
  x = _rand(0, (2, 5, 5, 3, d))
  params, _, t = _run(
      lambda x: conv.Conv2D(4, 3, name, stride=2, learned_structure=True)(x), x
  )
  np.testing.assert_array_equal(
      params["conv2_d"]["structure"], alg.structure_constants.astype(np.float32)
  )
  params = _with_random_bias(params)
  fixed = hk.transform(lambda x: conv.Conv2D(4, 3, name, stride=2)(x))
  fixed_params = {"conv2_d": {k: params["conv2_d"][k] for k in ("w", "b")}}
  np.testing.assert_allclose(
      t.apply(params, None, x), fixed.apply(fixed_params, None, x), **TOL
  )
  # A perturbed product is what the layer computes: the generic kernel with
  # the learned constants.
  c = params["conv2_d"]["structure"] + 0.1 * _rand(1, (d, d, d))
  params["conv2_d"]["structure"] = c
  expected = (
      kernels.conv2d(x, params["conv2_d"]["w"], c, stride=2, path="einsum")
      + params["conv2_d"]["b"][None, None, None]
  )
  np.testing.assert_allclose(t.apply(params, None, x), expected, **TOL)
  g = jax.grad(lambda p: jnp.sum(jnp.square(t.apply(p, None, x))))(params)
  assert np.any(np.abs(g["conv2_d"]["structure"]) > 1e-3)
  match = (
      "learned_structure=True works" if alg.matrix_shape else "needs a matrix"
  )
  with pytest.raises(ValueError, match=match):
    hk.transform(
        lambda x: conv.Conv2D(4, 3, name, learned_structure=True, path="fold")(
            x
        )
    ).init(jax.random.key(0), x)


def test_learned_structure_init_array():
  c = np.random.default_rng(0).normal(size=(2, 2, 2)).astype(np.float32)
  x = _rand(0, (3, 4, 2))
  params, y, _ = _run(
      lambda x: linear.Linear(
          2, "C", learned_structure=True, structure_init=c, with_bias=False
      )(x),
      x,
  )
  np.testing.assert_array_equal(params["linear"]["structure"], c)
  w = params["linear"]["w"]
  want = jnp.einsum("tnj,nmi,ijk->tmk", x, w, c)
  np.testing.assert_allclose(y, want, **TOL)


# -- MAC counts -----------------------------------------------------------------


def _macs(make, x):
  """mac_count of the module from make() applied to x (shapes only)."""
  out = []

  def f(x):
    mod = make()
    y = mod(x)
    out.append(mod.mac_count(x, jax.ShapeDtypeStruct(y.shape, y.dtype)))

  jax.eval_shape(hk.transform(f).init, jax.random.key(0), x)
  return out[0]


def test_mac_counts():
  h = algebras.get("H")
  x = _rand(0, (2, 3, 5, 4))
  assert _macs(lambda: linear.Linear(4, "H"), x) == 6 * 5 * 4 * 16
  assert _macs(lambda: linear.Linear(4, "H", learned_structure=True), x) == (
      6 * 5 * 4 * 16
  )
  m2 = algebras.get("M2R")
  x = _rand(0, (2, 3, 5, 4))
  std = _macs(lambda: linear.Linear(4, "M2R"), x)
  fold = _macs(
      lambda: linear.Linear(4, "M2R", layout="folded"),
      layout_lib.fold(x, "M2R"),
  )
  assert std == fold == 6 * 5 * 4 * m2.macs_per_product == 6 * 5 * 4 * 8
  x = _rand(0, (2, 6, 6, 4, 4))
  assert (
      _macs(lambda: conv.Conv2D(6, 3, "H", stride=2, feature_group_count=2), x)
      == (2 * 3 * 3) * 9 * 2 * 6 * h.macs_per_product
  )
  assert (
      _macs(
          lambda: conv.Conv2D(6, 3, "M2R", layout="folded"),
          layout_lib.fold(x, "M2R"),
      )
      == (2 * 6 * 6) * 9 * 4 * 6 * 8
  )
  assert (
      _macs(lambda: conv.DepthwiseConv2D(3, "H", channel_multiplier=2), x)
      == (2 * 6 * 6) * 9 * 1 * 8 * 16
  )
  assert _macs(lambda: embed.Embed(10, 3, "H"), jnp.zeros(4, int)) == 0


# -- errors ---------------------------------------------------------------------

ERROR_CASES = [
    ("rank", lambda: linear.Linear(3, "H"), (4,), r"rank >= 2.*\(4,\)"),
    (
        "last_axis",
        lambda: linear.Linear(3, "H"),
        (2, 5, 3),
        r"last axis must be the algebra dimension d=4 of 'H'.*\(2, 5, 3\)",
    ),
    ("conv_rank", lambda: conv.Conv2D(3, 3, "C"), (2, 5, 5, 2), r"rank-5"),
    (
        "groups",
        lambda: conv.Conv2D(4, 3, "C", feature_group_count=3),
        (1, 5, 5, 4, 2),
        r"input channels \(4\).*divisible by feature_group_count \(3\)",
    ),
    (
        "depthwise_last_axis",
        lambda: conv.DepthwiseConv2D(3, "H"),
        (1, 5, 5, 4, 2),
        r"d=4 of 'H'",
    ),
    (
        "folded_fold_axis",
        lambda: linear.Linear(3, "M2R", layout="folded"),
        (3, 4, 5, 2),
        r"folded input \[2, \.\.\., N, 2\].*\(3, 4, 5, 2\)",
    ),
    (
        "int_input",
        lambda: linear.Linear(3, "C"),
        ("int", (2, 3, 2)),
        r"floating-point.*int32",
    ),
]


@pytest.mark.parametrize(
    "make,shape,match",
    [c[1:] for c in ERROR_CASES],
    ids=[c[0] for c in ERROR_CASES],
)
def test_input_errors(make, shape, match):
  if shape[0] == "int":
    x = jnp.zeros(shape[1], jnp.int32)
  else:
    x = jnp.zeros(shape)
  with pytest.raises(ValueError, match=match):
    hk.transform(lambda x: make()(x)).init(jax.random.key(0), x)


@pytest.mark.parametrize(
    "make,match",
    [
        (
            lambda: linear.Linear(3, "quat"),
            r"Unknown algebra 'quat'.*Valid names",
        ),
        (lambda: conv.Conv2D(3, 3, "oct"), r"Unknown algebra 'oct'"),
        (
            lambda: linear.Linear(3, "H", layout="fold"),
            r"Unknown layout 'fold'",
        ),
        (
            lambda: linear.Linear(3, "H", layout="folded"),
            r"folded layout needs a matrix algebra.*'H' is not one",
        ),
        (
            lambda: conv.Conv2D(3, 3, "cross", layout="folded"),
            r"folded layout needs a matrix algebra",
        ),
        (
            lambda: activations.Activation("bogus", "H"),
            r"Unknown activation 'bogus'; valid: split, modrelu",
        ),
        (
            lambda: linear.Linear(
                3, "M2R", learned_structure=True, layout="folded"
            ),
            r"learned_structure=True works on the standard layout",
        ),
        (lambda: linear.Linear(3, "H", path="fast"), r"unknown path 'fast'"),
        (
            lambda: linear.Linear(3, "H", path="fold"),
            r"path='fold' needs a matrix",
        ),
        (
            lambda: linear.Linear(3, "H", structure_init=np.zeros((4, 4, 4))),
            r"only used with learned_structure=True",
        ),
        (
            lambda: linear.Linear(
                3,
                "H",
                learned_structure=True,
                structure_init=np.zeros((2, 2, 2)),
            ),
            r"\[4, 4, 4\] array.*\(2, 2, 2\)",
        ),
        (
            lambda: linear.Linear(0, "H"),
            r"output_size must be a positive int, got 0",
        ),
        (
            lambda: conv.Conv2D(3, (3, 3, 3), "H"),
            r"kernel_shape must be an int or",
        ),
        (lambda: embed.Embed(10, 3, "C", layout="folded"), r"'C' is not one"),
    ],
)
def test_constructor_errors(make, match):
  with pytest.raises(ValueError, match=match):
    hk.transform(lambda: make()).init(jax.random.key(0))


def test_channel_mismatch_on_later_call():
  f = hk.transform(lambda x: linear.Linear(3, "H")(x))
  params = f.init(jax.random.key(0), jnp.zeros((2, 5, 4)))
  with pytest.raises(
      ValueError, match=r"'w' of shape \(6, 3, 4\).*\(5, 3, 4\)"
  ):
    f.apply(params, None, jnp.zeros((2, 6, 4)))

  def twice(x, z):
    mod = conv.Conv2D(3, 3, "C")
    return mod(x), mod(z)

  with pytest.raises(ValueError, match=r"created with shape \(3, 3, 4, 3, 2\)"):
    hk.transform(twice).init(
        jax.random.key(0),
        jnp.zeros((1, 4, 4, 4, 2)),
        jnp.zeros((1, 4, 4, 5, 2)),
    )


def test_embed_float_tokens():
  with pytest.raises(
      ValueError, match=r"tokens must be integers, got dtype float32"
  ):
    hk.transform(lambda t: embed.Embed(10, 3, "H")(t)).init(
        jax.random.key(0), jnp.zeros((2,), jnp.float32)
    )
