"""Dense kernels against independent float64 numpy references.

The references below write every product by its textbook formula (complex
numbers via numpy complex128, the Hamilton product written out, np.cross,
np.matmul of real / complex matrices, ...); none of them reads the library's
structure constants. The only exception is `generic3`, an algebra with random
non-integer constants that has no textbook product: its reference is the
defining formula (a b)_k = sum_ij c_ijk a_i b_j in numpy.
"""

from __future__ import annotations

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util as jtu

from algebranets import algebras, kernels, layout
from tests import reference_products as refs
from tests.reference_products import CASES, MATRIX_NAMES, NAMES


def _paths(name, all_paths=kernels.DENSE_PATHS):
  alg = algebras.get(CASES[name][0])
  return [p for p in all_paths if p != "fold" or alg.matrix_shape is not None]


def reference_dense(product, x, w):
  """y[..., m] = sum_n w[n, m] x[..., n] (algebra product, weight left)."""
  return product(w, x[..., :, None, :]).sum(axis=-3)


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def _assert_close_scaled(got, want, rtol=1e-5, what=""):
  """max |got - want| <= rtol * max |want| (float32 comparisons)."""
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  assert got.shape == want.shape, (what, got.shape, want.shape)
  err = np.max(np.abs(got - want))
  scale = np.max(np.abs(want))
  assert err <= rtol * scale, f"{what}: max err {err:.3g}, scale {scale:.3g}"


# -- coverage -----------------------------------------------------------------


def test_every_registered_builtin_has_a_reference():
  builtins = set(algebras._BUILTIN_FACTORIES)
  assert builtins <= set(algebras.names())
  assert builtins <= set(CASES)


@pytest.mark.parametrize("name", NAMES)
def test_textbook_reference_matches_structure_constants(name):
  """Sanity check of the references themselves (and of the test's algebras)."""
  alg, product = CASES[name]
  alg = algebras.get(alg)
  a, b = np.random.default_rng(0).normal(size=(2, 5, alg.dim))
  np.testing.assert_allclose(product(a, b), alg.multiply(a, b), atol=1e-12)


# -- forward ------------------------------------------------------------------


def _all_paths(fn, paths):
  """jit(lambda *args: {path: fn(*args, path=path)}): one compile per test
  (XLA CPU compile time dominates these tiny shapes)."""
  return jax.jit(lambda *args: {p: fn(*args, path=p) for p in paths})


@pytest.mark.parametrize("name", NAMES)
def test_dense_matches_reference_float64(name, x64):
  alg, product = CASES[name]
  d = refs.dim(name)
  rng = np.random.default_rng(1)
  w = rng.normal(size=(3, 4, d))
  f = _all_paths(
      functools.partial(kernels.dense, algebra=alg), [*_paths(name), "auto"]
  )
  for lead in [(2, 3), ()]:
    x = rng.normal(size=(*lead, 3, d))
    want = reference_dense(product, x, w)
    assert want.shape == (*lead, 4, d)
    for path, got in f(x, w).items():
      assert got.dtype == jnp.float64
      np.testing.assert_allclose(
          got, want, rtol=1e-10, atol=1e-10, err_msg=f"{path} lead={lead}"
      )


@pytest.mark.parametrize("name", ["H", "M2C", "generic3"])
def test_dense_eager_float64(name, x64):
  alg, product = CASES[name]
  d = refs.dim(name)
  rng = np.random.default_rng(2)
  x, w = rng.normal(size=(5, 2, d)), rng.normal(size=(2, 3, d))
  for path in [*_paths(name), "auto"]:
    got = kernels.dense(jnp.asarray(x), jnp.asarray(w), alg, path=path)
    np.testing.assert_allclose(
        got, reference_dense(product, x, w), rtol=1e-10, atol=1e-10
    )


def _dense_forward_and_grads(x, w, ct, *, algebra, path):
  y, vjp = jax.vjp(
      functools.partial(kernels.dense, algebra=algebra, path=path), x, w
  )
  return (y, *vjp(ct))


@pytest.mark.parametrize("name", NAMES)
def test_dense_paths_agree_float32(name):
  """Forward and both gradients of every path agree with 'einsum'."""
  alg, _ = CASES[name]
  d = refs.dim(name)
  rng = np.random.default_rng(9)
  x = jnp.asarray(rng.normal(size=(6, 8, d)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(8, 5, d)), jnp.float32)
  ct = jnp.asarray(rng.normal(size=(6, 5, d)), jnp.float32)
  with jax.default_matmul_precision("highest"):
    outs = _all_paths(
        functools.partial(_dense_forward_and_grads, algebra=alg),
        [*_paths(name), "auto"],
    )(x, w, ct)
  want = outs.pop("einsum")
  for path, got in outs.items():
    assert got[0].dtype == jnp.float32
    for what, g, ref in zip(("y", "dx", "dw"), got, want, strict=True):
      _assert_close_scaled(g, ref, what=f"{path} {what}")


# -- gradients ----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_dense_check_grads(name, x64):
  """Finite differences for every path at once (the outputs of all paths
  form one pytree, so a wrong vjp in any path breaks the check; the float32
  agreement test above says which path)."""
  alg, _ = CASES[name]
  d = refs.dim(name)
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(2, 2, d)))
  w = jnp.asarray(rng.normal(size=(2, 3, d)))
  f = _all_paths(
      functools.partial(kernels.dense, algebra=alg), [*_paths(name), "auto"]
  )
  jtu.check_grads(f, (x, w), order=1, modes=["rev"])


def test_check_grads_catches_a_wrong_vjp_in_one_path(x64):
  """The combined check above is sensitive to one bad path among several."""

  @jax.custom_vjp
  def bad(x, w):
    return kernels.dense(x, w, "H", path="expand")

  def bad_fwd(x, w):
    return bad(x, w), (x, w)

  def bad_bwd(res, ct):
    x, w = res
    _, vjp = jax.vjp(functools.partial(kernels.dense, algebra="H"), x, w)
    gx, gw = vjp(ct)
    return gx, 1.01 * gw  # 1% too large

  bad.defvjp(bad_fwd, bad_bwd)
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(2, 2, 4)))
  w = jnp.asarray(rng.normal(size=(2, 3, 4)))

  @jax.jit
  def f(x, w):
    out = {p: kernels.dense(x, w, "H", path=p) for p in ("einsum", "right")}
    return {**out, "bad": bad(x, w)}

  with pytest.raises(AssertionError):
    jtu.check_grads(f, (x, w), order=1, modes=["rev"])


# -- learned structure constants ----------------------------------------------

_LEARNED_PATHS = ("auto", "einsum", "expand", "right")


@pytest.mark.parametrize("name", NAMES)
def test_dense_learned_structure_constants(name, x64):
  alg, product = CASES[name]
  alg = algebras.get(alg)
  d = alg.dim
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(3, 2, d)))
  w = jnp.asarray(rng.normal(size=(2, 3, d)))
  ct = jnp.asarray(rng.normal(size=(3, 3, d)))
  c = jnp.asarray(alg.structure_constants)
  want = reference_dense(product, np.asarray(x), np.asarray(w))
  # dL/dc_ijk for L = sum(ct * y), y_tmk = sum_{n,ij} c_ijk w_nmi x_tnj.
  want_dc = np.einsum("nmi,tnj,tmk->ijk", w, x, ct)

  def f(c, path):
    return kernels.dense(x, w, c, path=path)

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


def test_fold_path_with_learned_constants_raises():
  c = jnp.asarray(algebras.get("M2R").structure_constants)
  with pytest.raises(ValueError, match="matrix algebra"):
    kernels.dense(jnp.ones((2, 3, 4)), jnp.ones((3, 2, 4)), c, path="fold")


# -- prepared weights ---------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_prepare_dense_matches_dense(name, x64):
  alg, product = CASES[name]
  d = refs.dim(name)
  rng = np.random.default_rng(5)
  x, w = rng.normal(size=(4, 3, d)), rng.normal(size=(3, 2, d))
  want = reference_dense(product, x, w)
  for path in _paths(name):
    p = kernels.prepare_dense(jnp.asarray(w), alg, path)
    assert isinstance(p, kernels.PreparedDense)
    assert (p.path, p.in_channels, p.out_channels, p.dim) == (path, 3, 2, d)
    got = kernels.dense_prepared(jnp.asarray(x), p)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=path)


@pytest.mark.parametrize("path", ["expand", "right", "fold"])
def test_prepared_dense_both_row_regimes_and_output_major_layout(path, x64):
  # Up to dense.SMALL_ROWS rows the prepared product runs weight-on-the-left
  # (matrix-vector speed); above it, activations on the left. Both must be
  # the same product, and the cached weight is stored output-major.
  dense_lib = importlib.import_module("algebranets.kernels.dense")
  alg = "M2R"
  rng = np.random.default_rng(7)
  w = jnp.asarray(rng.normal(size=(3, 5, 4)))
  p = kernels.prepare_dense(w, alg, path)
  # [out, in]: expand L(w)^T [M*d, N*d]; right [M, N*d]; fold W_f^T
  # [M*n, N*n] (n = 2).
  want_shape = {"expand": (20, 12), "right": (5, 12), "fold": (10, 6)}
  assert p.weight.shape == want_shape[path]
  small = dense_lib.SMALL_ROWS
  for rows in (1, small // 4, small, small + 1, 3 * small):
    # 'right' multiplies d rows per token, 'fold' n rows per token.
    x = jnp.asarray(rng.normal(size=(rows, 3, 4)))
    want = kernels.dense(x, w, alg, path="einsum")
    np.testing.assert_allclose(
        kernels.dense_prepared(x, p), want, rtol=1e-10, atol=1e-10
    )
  grads = jax.grad(lambda x: kernels.dense_prepared(x, p).sum())(
      jnp.ones((2, 3, 4))
  )
  want = jax.grad(lambda x: kernels.dense(x, w, alg, path="einsum").sum())(
      jnp.ones((2, 3, 4))
  )
  np.testing.assert_allclose(grads, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("path", kernels.DENSE_PATHS)
def test_prepared_dense_is_a_pytree_and_does_not_retrace(path):
  alg = "M2C"
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.normal(size=(1, 3, 8)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 5, 8)), jnp.float32)
  p = kernels.prepare_dense(w, alg, path)
  leaves, treedef = jax.tree.flatten(p)
  assert len(leaves) == 1 and leaves[0] is p.weight
  assert jax.tree.unflatten(treedef, leaves) == p
  traces = []

  @jax.jit
  def step(x, p):
    traces.append(1)
    return kernels.dense_prepared(x, p)

  with jax.default_matmul_precision("highest"):
    y1 = step(x, p)
    y2 = step(x + 1.0, p)
    # New weight values, same static metadata: still no retrace.
    y3 = step(x, kernels.prepare_dense(2.0 * w, alg, path))
    want = kernels.dense(x, w, alg, path="einsum")
  assert len(traces) == 1
  _assert_close_scaled(y1, want)
  _assert_close_scaled(y2, kernels.dense(x + 1.0, w, alg, path="einsum"))
  _assert_close_scaled(y3, 2.0 * want)


def test_prepare_rejects_learned_constants_and_bad_paths():
  c = jnp.asarray(algebras.get("H").structure_constants)
  w = jnp.ones((3, 2, 4))
  with pytest.raises(ValueError, match="registered algebra"):
    kernels.prepare_dense(w, c, "expand")
  with pytest.raises(ValueError, match="Unknown dense path 'bogus'"):
    kernels.prepare_dense(w, "H", "bogus")
  with pytest.raises(ValueError, match=r"weight must be \[N, M, 4\]"):
    kernels.prepare_dense(jnp.ones((3, 2, 2)), "H", "expand")
  p = kernels.prepare_dense(w, "H", "expand")
  with pytest.raises(
      ValueError, match=r"dense_prepared: x must be \[\.\.\., 3, 4\]"
  ):
    kernels.dense_prepared(jnp.ones((5, 2, 4)), p)


# -- path choice --------------------------------------------------------------


def test_choose_dense_path():
  for name in MATRIX_NAMES:
    alg = CASES[name][0]
    d = refs.dim(name)
    assert kernels.choose_dense_path(alg, (512, 8, d), (8, 64, d)) == "fold"
    # 1-2 tokens: M_n(R) still folds; over a base of dimension e > 1 (M2C,
    # M2H) the folded weight is e times the stored one, so the compact
    # weight (activation side) wins.
    _, e = layout.matrix_shape(algebras.get(alg))
    want = "fold" if e == 1 else "right"
    assert kernels.choose_dense_path(alg, (1, 8, d), (8, 64, d)) == want
    assert kernels.choose_dense_path(alg, (2, 8, d), (8, 64, d)) == want
    # From a few tokens on the fold's n-fold fewer MACs win for every base.
    assert kernels.choose_dense_path(alg, (4, 8, d), (8, 64, d)) == "fold"
  for tokens in (1, 512):
    assert kernels.choose_dense_path("R", (tokens, 8, 1), (8, 64, 1)) == (
        "expand"
    )
  # H: one token (batch-1 sampling) with many output channels -> right.
  assert kernels.choose_dense_path("H", (1, 64, 4), (64, 256, 4)) == "right"
  assert kernels.choose_dense_path("H", (1, 1, 64, 4), (64, 256, 4)) == "right"
  # H: many tokens -> expand; tokens are all leading axes together.
  assert kernels.choose_dense_path("H", (512, 64, 4), (64, 256, 4)) == "expand"
  assert kernels.choose_dense_path("H", (16, 32, 64, 4), (64, 256, 4)) == (
      "expand"
  )
  # Learned constants (no Algebra) follow the same token rule.
  c = jnp.asarray(algebras.get("M2R").structure_constants)
  assert kernels.choose_dense_path(c, (512, 8, 4), (8, 64, 4)) == "expand"
  assert kernels.choose_dense_path(c, (1, 8, 4), (8, 64, 4)) == "right"


# -- folded layout ------------------------------------------------------------


@pytest.mark.parametrize("name", MATRIX_NAMES)
def test_dense_folded_matches_fold_of_dense(name, x64):
  alg, product = CASES[name]
  d = refs.dim(name)
  rng = np.random.default_rng(7)
  w = jnp.asarray(rng.normal(size=(3, 2, d)))
  for lead in [(2, 5), ()]:
    x = jnp.asarray(rng.normal(size=(*lead, 3, d)))
    want = layout.fold(kernels.dense(x, w, alg, path="einsum"), alg)
    got = kernels.dense_folded(layout.fold(x, alg), w, alg)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        layout.unfold(got, alg),
        reference_dense(product, np.asarray(x), np.asarray(w)),
        rtol=1e-10,
        atol=1e-10,
    )


def test_dense_folded_errors():
  w = jnp.ones((3, 2, 4))
  with pytest.raises(ValueError, match=r"dense_folded: x must be folded"):
    kernels.dense_folded(jnp.ones((2, 5, 4, 2)), w, "M2R")  # N=4 != 3
  with pytest.raises(ValueError, match=r"dense_folded: x must be folded"):
    kernels.dense_folded(jnp.ones((3, 5, 3, 2)), w, "M2R")  # leading 3 != n
  with pytest.raises(ValueError, match="needs a matrix algebra"):
    kernels.dense_folded(jnp.ones((2, 5, 3, 2)), w, "H")


# -- bad input ----------------------------------------------------------------


def test_dense_bad_input():
  x, w = jnp.ones((5, 3, 4)), jnp.ones((3, 2, 4))
  with pytest.raises(ValueError, match=r"weight must be \[N, M, 4\].*\(3, 4\)"):
    kernels.dense(x, w[:, 0], "H")
  with pytest.raises(
      ValueError, match=r"weight must be \[N, M, 4\].*\(3, 2, 2\)"
  ):
    kernels.dense(x, jnp.ones((3, 2, 2)), "H")
  with pytest.raises(
      ValueError, match=r"x must be \[\.\.\., N=3, d=4\].*\(5, 2, 4\)"
  ):
    kernels.dense(jnp.ones((5, 2, 4)), w, "H")
  with pytest.raises(ValueError, match=r"x must be \[\.\.\., N=3, d=4\]"):
    kernels.dense(jnp.ones((5, 3, 2)), w, "H")
  with pytest.raises(ValueError, match=r"x must be \[\.\.\., N=3, d=4\]"):
    kernels.dense(jnp.ones((4,)), w, "H")
  with pytest.raises(ValueError, match=r"Unknown dense path 'bogus'.*einsum"):
    kernels.dense(x, w, "H", path="bogus")
  with pytest.raises(ValueError, match=r"matrix algebra.*'H'"):
    kernels.dense(x, w, "H", path="fold")
  with pytest.raises(ValueError, match="Unknown algebra 'HH'"):
    kernels.dense(x, w, "HH")
  with pytest.raises(ValueError, match=r"\[d, d, d\] array.*\(4, 4\)"):
    kernels.dense(x, w, jnp.ones((4, 4)))


# -- algebras identified by constants, not by name ----------------------------


def test_custom_constants_are_not_confused_with_a_builtin_of_the_same_name(
    x64,
):
  """An unregistered algebra named 'C' with split-complex constants must give
  split-complex results in every path (no cache keyed on the name)."""
  impostor = algebras.from_structure_constants(
      "C", refs.split_complex_algebra().structure_constants
  )
  assert algebras.fingerprint(impostor) != algebras.fingerprint("C")
  assert impostor != algebras.get("C")
  rng = np.random.default_rng(8)
  x, w = rng.normal(size=(4, 3, 2)), rng.normal(size=(3, 2, 2))
  want_c = reference_dense(refs.complex_product, x, w)
  want_split = reference_dense(refs.split_complex, x, w)
  assert np.max(np.abs(want_c - want_split)) > 1e-3

  @jax.jit
  def run(x, p):
    return kernels.dense_prepared(x, p)

  for path in _paths("C"):
    for alg, want in [("C", want_c), (impostor, want_split), ("C", want_c)]:
      got = kernels.dense(jnp.asarray(x), jnp.asarray(w), alg, path=path)
      np.testing.assert_allclose(got, want, atol=1e-10, err_msg=path)
      p = kernels.prepare_dense(jnp.asarray(w), alg, path)
      np.testing.assert_allclose(run(x, p), want, atol=1e-10, err_msg=path)


@pytest.mark.parametrize("name", ["M2R", "M3R", "M2C"])
def test_dense_prepared_folded_matches_the_reference(name, x64):
  alg, product = CASES[name]
  d = refs.dim(name)
  rng = np.random.default_rng(7)
  x, w = rng.normal(size=(2, 4, 3, d)), rng.normal(size=(3, 5, d))
  want = reference_dense(product, x, w)
  p = kernels.prepare_dense(jnp.asarray(w), alg, "fold")
  x_f = layout.fold(jnp.asarray(x), alg)
  got = layout.unfold(kernels.dense_prepared_folded(x_f, p), alg)
  np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_dense_prepared_folded_rejects_bad_input():
  w = jnp.ones((3, 2, 4))
  with pytest.raises(ValueError, match="needs prepare\\(w, algebra, 'fold'\\)"):
    kernels.dense_prepared_folded(
        jnp.ones((2, 5, 3, 2)), kernels.prepare_dense(w, "M2R", "expand")
    )
  p = kernels.prepare_dense(w, "M2R", "fold")
  with pytest.raises(
      ValueError, match=r"x_f must be folded \[2, \.\.\., 3, 2\]"
  ):
    kernels.dense_prepared_folded(jnp.ones((5, 3, 4)), p)
