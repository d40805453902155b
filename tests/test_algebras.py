"""Algebras against independent textbook references (numpy float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import algebras
from tests import reference_products as refs

BUILTINS = ["R", "C", "H", "dual", "cross", "M2R", "M3R", "M4R", "M2C"]


EXPECTED = {
    # name: (dim, macs_per_product, associative, commutative, has_unit)
    "R": (1, 1, True, True, True),
    "C": (2, 4, True, True, True),
    "H": (4, 16, True, False, True),
    "dual": (2, 3, True, True, True),
    "cross": (3, 6, False, False, False),
    "M2R": (4, 8, True, False, True),
    "M3R": (9, 27, True, False, True),
    "M4R": (16, 64, True, False, True),
    "M2C": (8, 32, True, False, True),
}


def test_builtin_names_registered():
  assert set(BUILTINS) <= set(algebras.names())
  assert algebras.names()[: len(BUILTINS)] == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_structure_constants_match_textbook_product(name):
  alg = algebras.get(name)
  rng = np.random.default_rng(0)
  a = rng.standard_normal((7, 3, alg.dim))
  b = rng.standard_normal((7, 3, alg.dim))
  np.testing.assert_allclose(
      alg.multiply(a, b), refs.CASES[name][1](a, b), atol=1e-12
  )
  # The jax path computes the same thing.
  np.testing.assert_allclose(
      np.asarray(alg.multiply(jnp.asarray(a), jnp.asarray(b))),
      refs.CASES[name][1](a, b),
      rtol=1e-5,
      atol=1e-5,
  )


@pytest.mark.parametrize("name", BUILTINS)
def test_facts(name):
  alg = algebras.get(name)
  dim, macs, assoc, comm, has_unit = EXPECTED[name]
  assert alg.dim == dim
  assert alg.structure_constants.shape == (dim, dim, dim)
  assert alg.macs_per_product == macs
  assert alg.density == macs / dim
  assert alg.is_associative is assoc
  assert alg.is_commutative is comm
  assert (alg.unit is not None) is has_unit


@pytest.mark.parametrize("name", BUILTINS)
def test_associativity_numerically(name):
  alg = algebras.get(name)
  rng = np.random.default_rng(1)
  a, b, c = rng.standard_normal((3, 5, alg.dim))
  left = alg.multiply(alg.multiply(a, b), c)
  right = alg.multiply(a, alg.multiply(b, c))
  if EXPECTED[name][2]:
    np.testing.assert_allclose(left, right, atol=1e-10)
  else:
    assert np.max(np.abs(left - right)) > 1e-3


@pytest.mark.parametrize("name", [n for n in BUILTINS if n != "cross"])
def test_unit_is_two_sided_identity(name):
  alg = algebras.get(name)
  x = np.random.default_rng(2).standard_normal((4, alg.dim))
  u = np.broadcast_to(alg.unit, x.shape)
  np.testing.assert_allclose(alg.multiply(u, x), x, atol=1e-12)
  np.testing.assert_allclose(alg.multiply(x, u), x, atol=1e-12)


def test_units_are_the_expected_elements():
  np.testing.assert_array_equal(algebras.get("H").unit, [1, 0, 0, 0])
  np.testing.assert_array_equal(algebras.get("M2R").unit, [1, 0, 0, 1])
  np.testing.assert_array_equal(
      algebras.get("M2C").unit, [1, 0, 0, 0, 0, 0, 1, 0]
  )
  assert algebras.get("cross").unit is None


@pytest.mark.parametrize("name", BUILTINS)
def test_left_and_right_matrices(name):
  alg = algebras.get(name)
  rng = np.random.default_rng(3)
  a, b = rng.standard_normal((2, 6, alg.dim))
  ab = alg.multiply(a, b)
  np.testing.assert_allclose(
      np.einsum("...kj,...j->...k", alg.left_matrix(a), b), ab, atol=1e-12
  )
  np.testing.assert_allclose(
      np.einsum("...ki,...i->...k", alg.right_matrix(b), a), ab, atol=1e-12
  )
  lj = np.asarray(alg.left_matrix(jnp.asarray(a)))
  np.testing.assert_allclose(lj, alg.left_matrix(a), rtol=1e-5, atol=1e-6)


def test_known_left_matrices():
  a, b = 2.0, 3.0
  np.testing.assert_array_equal(
      algebras.get("C").left_matrix(np.array([a, b])), [[a, -b], [b, a]]
  )
  np.testing.assert_array_equal(
      algebras.get("dual").left_matrix(np.array([a, b])), [[a, 0], [b, a]]
  )
  w = np.array([1.0, 2.0, 3.0])
  np.testing.assert_array_equal(
      algebras.get("cross").left_matrix(w),
      [[0, -3, 2], [3, 0, -1], [-2, 1, 0]],
  )


@pytest.mark.parametrize("name", BUILTINS)
def test_norm_is_euclidean(name):
  alg = algebras.get(name)
  x = np.random.default_rng(4).standard_normal((5, alg.dim))
  np.testing.assert_allclose(alg.norm(x), np.linalg.norm(x, axis=-1))
  np.testing.assert_allclose(
      np.asarray(alg.norm(jnp.asarray(x))), np.linalg.norm(x, axis=-1), 1e-6
  )


@pytest.mark.parametrize("name", ["C", "H"])
def test_norm_is_multiplicative_for_division_algebras(name):
  alg = algebras.get(name)
  a, b = np.random.default_rng(5).standard_normal((2, 9, alg.dim))
  np.testing.assert_allclose(
      alg.norm(alg.multiply(a, b)), alg.norm(a) * alg.norm(b), rtol=1e-12
  )


def test_conjugates():
  rng = np.random.default_rng(6)
  z = rng.standard_normal(2)
  np.testing.assert_array_equal(algebras.get("C").conjugate(z), [z[0], -z[1]])
  q = rng.standard_normal(4)
  h = algebras.get("H")
  np.testing.assert_allclose(
      h.multiply(q, h.conjugate(q)), [np.sum(q**2), 0, 0, 0], atol=1e-12
  )
  m = rng.standard_normal(9)
  np.testing.assert_array_equal(
      algebras.get("M3R").conjugate(m), m.reshape(3, 3).T.ravel()
  )
  x = rng.standard_normal(8)
  adjoint = refs.as_complex(x).reshape(2, 2).conj().T
  np.testing.assert_allclose(
      refs.as_complex(algebras.get("M2C").conjugate(x)), adjoint.ravel()
  )
  with pytest.raises(ValueError, match="no conjugation"):
    algebras.get("cross").conjugate(np.ones(3))


def test_component_gains():
  np.testing.assert_array_equal(algebras.get("dual").component_gains, [1, 2])
  np.testing.assert_array_equal(algebras.get("M3R").component_gains, [3] * 9)
  np.testing.assert_array_equal(algebras.get("H").component_gains, [4] * 4)


def test_get_unknown_lists_valid_names():
  with pytest.raises(ValueError, match=r"Unknown algebra 'quaternion'.*M2R"):
    algebras.get("quaternion")
  with pytest.raises(ValueError, match="Did you mean 'M2R'"):
    algebras.get("M2r")
  with pytest.raises(TypeError):
    algebras.get(3)


def test_get_passes_algebra_through():
  h = algebras.get("H")
  assert algebras.get(h) is h


def test_multiply_rejects_wrong_last_axis():
  with pytest.raises(ValueError, match="last axis is the algebra dimension 4"):
    algebras.get("H").multiply(np.ones(3), np.ones(4))


def test_user_defined_split_complex_and_register():
  c = np.zeros((2, 2, 2))
  c[0, 0, 0] = c[0, 1, 1] = c[1, 0, 1] = c[1, 1, 0] = 1
  split = algebras.from_structure_constants("split_test", c)
  assert split.dim == 2 and split.macs_per_product == 4
  assert split.is_commutative and split.is_associative
  np.testing.assert_array_equal(split.unit, [1, 0])
  # j * j = +1.
  np.testing.assert_array_equal(
      split.multiply(np.r_[0.0, 1], np.r_[0.0, 1]), [1, 0]
  )
  algebras.register(split)
  assert algebras.get("split_test") is split
  algebras.register(split)  # same constants: idempotent
  other = algebras.from_structure_constants("split_test", -c)
  with pytest.raises(ValueError, match="already registered"):
    algebras.register(other)
  algebras.register(other, overwrite=True)
  assert algebras.get("split_test") is other


def test_bad_structure_constants():
  with pytest.raises(ValueError, match=r"shape \[d, d, d\]"):
    algebras.from_structure_constants("bad", np.ones((2, 2, 3)))
  with pytest.raises(ValueError, match="not finite"):
    algebras.from_structure_constants("bad", np.full((2, 2, 2), np.nan))
  with pytest.raises(ValueError, match="all zero"):
    algebras.from_structure_constants("bad", np.zeros((2, 2, 2)))
  with pytest.raises(TypeError, match="from_structure_constants"):
    algebras.register("H")


def test_matrix_algebra_over_quaternions():
  m2h = algebras.matrix_algebra(2, "H")
  assert m2h.dim == 16 and m2h.matrix_shape == (2, "H")
  assert m2h.macs_per_product == 8 * 16  # n^3 quaternion products
  rng = np.random.default_rng(7)
  a, b = rng.standard_normal((2, 16))
  qa, qb = a.reshape(2, 2, 4), b.reshape(2, 2, 4)
  ref = np.zeros((2, 2, 4))
  for r in range(2):
    for col in range(2):
      for k in range(2):
        ref[r, col] += refs.hamilton(qa[r, k], qb[k, col])
  np.testing.assert_allclose(m2h.multiply(a, b), ref.ravel(), atol=1e-12)
  assert m2h.is_associative and not m2h.is_commutative


def test_hashable_and_usable_as_static_jit_argument():
  h = algebras.get("H")
  assert hash(h) == hash(algebras.get("H"))
  assert h != algebras.get("M2R")
  f = jax.jit(lambda a, b, alg: alg.multiply(a, b), static_argnums=2)
  x = jnp.ones(4)
  np.testing.assert_allclose(f(x, x, h), [-2, 2, 2, 2])


def test_fingerprint_stable_and_distinct():
  assert algebras.fingerprint("H") == algebras.fingerprint(algebras.get("H"))
  assert algebras.fingerprint("H") != algebras.fingerprint("M2R")
