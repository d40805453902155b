"""Finite-dimensional real algebras defined by structure constants.

Every algebra is a real vector space with basis e_0..e_{d-1} and a bilinear
product given by its structure-constant tensor c of shape [d, d, d]:

    e_i e_j = sum_k c[i, j, k] e_k,   (a b)_k = sum_ij c[i, j, k] a_i b_j.

Elements are stored as real arrays whose last axis has size d (component
order documented per algebra below). Nothing here assumes associativity,
commutativity or a unit: the cross product has none of them.

Built-in algebras (`names()`):

  R      d=1   the reals.
  C      d=2   (re, im).
  H      d=4   (1, i, j, k), Hamilton's rules i^2=j^2=k^2=ijk=-1.
  dual   d=2   (a, b) for a + b eps, eps^2 = 0.
  cross  d=3   (x, y, z), product = R^3 cross product (no unit, not assoc.).
  M2R    d=4   2x2 real matrices, row-major flattening.
  M3R    d=9   3x3 real matrices, row-major.
  M4R    d=16  4x4 real matrices, row-major.
  M2C    d=8   2x2 complex matrices, row-major entries, each as (re, im).

Users add their own with `from_structure_constants` + `register`, or build
matrix algebras over any registered base with `matrix_algebra`; a config's
`model.algebra` may also be the path of a .npy/.json file of constants
(`algebranets.algebra_files`).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = np.ndarray | jax.Array

# Tolerance used when deciding structural facts (unit, associativity) from the
# structure constants: they are small exact numbers for every sensible algebra.
_EXACT_TOL = 1e-9


@dataclasses.dataclass(frozen=True, eq=False)
class Algebra:
  """A real algebra given by its structure constants.

  Instances are immutable and hashable (by name and constants) so they can be
  passed as static arguments to `jax.jit`.

  Attributes:
    name: registry name, e.g. "H".
    structure_constants: float64 numpy array [d, d, d] with
      e_i e_j = sum_k c[i, j, k] e_k.
    conjugation: optional [d, d] real matrix J of a linear involution
      (conjugate(a) = J @ a), e.g. diag(1, -1, -1, -1) for H. None where the
      algebra has no standard conjugation.
    matrix_shape: (n, base_name) when the algebra is M_n(base) with components
      ordered (row, col, base component); enables the column-fold fast path.
      None otherwise.
    description: one line for listings.
  """

  name: str
  structure_constants: np.ndarray
  conjugation: np.ndarray | None = None
  matrix_shape: tuple[int, str] | None = None
  description: str = ""

  def __post_init__(self):
    c = np.asarray(self.structure_constants, dtype=np.float64)
    _check_structure_constants(self.name, c)
    c.setflags(write=False)
    object.__setattr__(self, "structure_constants", c)
    if self.conjugation is not None:
      j = np.asarray(self.conjugation, dtype=np.float64)
      if j.shape != (self.dim, self.dim):
        raise ValueError(
            f"Algebra {self.name!r}: conjugation must be a [{self.dim}, "
            f"{self.dim}] matrix, got shape {j.shape}."
        )
      j.setflags(write=False)
      object.__setattr__(self, "conjugation", j)

  # -- identity -------------------------------------------------------------

  def _key(self):
    return (self.name, self.structure_constants.tobytes(), self.matrix_shape)

  def __hash__(self):
    return hash(self._key())

  def __eq__(self, other):
    return isinstance(other, Algebra) and self._key() == other._key()

  def __repr__(self):
    return f"Algebra({self.name!r}, dim={self.dim})"

  # -- derived facts ----------------------------------------------------------

  @property
  def dim(self) -> int:
    """Number of real components d."""
    return self.structure_constants.shape[0]

  @property
  def macs_per_product(self) -> int:
    """Real multiply-adds of one naive algebra product: nonzeros of c."""
    return int(np.count_nonzero(self.structure_constants))

  @property
  def density(self) -> float:
    """Compute density: multiply-adds per weight parameter per use (M / d)."""
    return self.macs_per_product / self.dim

  @property
  def component_gains(self) -> np.ndarray:
    """m_k = sum_ij c[i, j, k]^2, shape [d].

    With iid zero-mean weight and activation components,
    Var((w x)_k) = m_k Var(w) Var(x); used by variance-preserving init.
    """
    return np.sum(self.structure_constants**2, axis=(0, 1))

  @property
  def unit(self) -> np.ndarray | None:
    """The two-sided identity element [d], or None if there is none."""
    return _find_unit(self.structure_constants)

  @property
  def is_associative(self) -> bool:
    c = self.structure_constants
    # (e_i e_j) e_l vs e_i (e_j e_l), as tensors [i, j, l, out].
    left = np.einsum("ijk,klm->ijlm", c, c)
    right = np.einsum("jlk,ikm->ijlm", c, c)
    return bool(np.allclose(left, right, atol=_EXACT_TOL))

  @property
  def is_commutative(self) -> bool:
    c = self.structure_constants
    return bool(np.allclose(c, c.transpose(1, 0, 2), atol=_EXACT_TOL))

  # -- operations on elements ------------------------------------------------

  def multiply(self, a: Array, b: Array) -> Array:
    """Algebra product a b of arrays [..., d] (broadcasting).

    numpy inputs give a float64 numpy result; otherwise a jax array.
    """
    a, b = self._check_last_axis(a, "a"), self._check_last_axis(b, "b")
    if _all_numpy(a, b):
      return np.einsum("...i,...j,ijk->...k", a, b, self.structure_constants)
    c = jnp.asarray(self.structure_constants, dtype=jnp.result_type(a, b))
    return jnp.einsum("...i,...j,ijk->...k", a, b, c)

  def left_matrix(self, a: Array) -> Array:
    """L(a) [..., d, d] with L(a) @ b == multiply(a, b)."""
    a = self._check_last_axis(a, "a")
    if _all_numpy(a):
      return np.einsum("...i,ijk->...kj", a, self.structure_constants)
    c = jnp.asarray(self.structure_constants, dtype=a.dtype)
    return jnp.einsum("...i,ijk->...kj", a, c)

  def right_matrix(self, b: Array) -> Array:
    """R(b) [..., d, d] with R(b) @ a == multiply(a, b)."""
    b = self._check_last_axis(b, "b")
    if _all_numpy(b):
      return np.einsum("...j,ijk->...ki", b, self.structure_constants)
    c = jnp.asarray(self.structure_constants, dtype=b.dtype)
    return jnp.einsum("...j,ijk->...ki", b, c)

  def norm(self, a: Array) -> Array:
    """Euclidean (Frobenius for matrices) norm over the d components [...]."""
    a = self._check_last_axis(a, "a")
    if _all_numpy(a):
      return np.sqrt(np.sum(np.square(a), axis=-1))
    return jnp.sqrt(jnp.sum(jnp.square(a), axis=-1))

  def conjugate(self, a: Array) -> Array:
    """The algebra's conjugation (C, H, dual, M_n transpose, M2C adjoint)."""
    if self.conjugation is None:
      raise ValueError(
          f"Algebra {self.name!r} has no conjugation defined. Pass "
          "`conjugation=` to from_structure_constants to give it one."
      )
    a = self._check_last_axis(a, "a")
    if _all_numpy(a):
      return a @ self.conjugation.T
    return a @ jnp.asarray(self.conjugation.T, dtype=a.dtype)

  def random(self, key: jax.Array, shape=()) -> jax.Array:
    """Standard-normal elements of shape [*shape, d] (for tests and demos)."""
    return jax.random.normal(key, (*tuple(shape), self.dim))

  def _check_last_axis(self, a, what):
    if not isinstance(a, (np.ndarray, jax.Array)):
      a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0 or a.shape[-1] != self.dim:
      raise ValueError(
          f"{self.name}.{what}: expected an array whose last axis is the "
          f"algebra dimension {self.dim}, got shape {tuple(a.shape)}."
      )
    return a


def _all_numpy(*arrays) -> bool:
  return all(isinstance(a, np.ndarray) for a in arrays)


def _check_structure_constants(name: str, c: np.ndarray) -> None:
  if c.ndim != 3 or not (c.shape[0] == c.shape[1] == c.shape[2]):
    raise ValueError(
        f"Algebra {name!r}: structure constants must have shape [d, d, d], "
        f"got {c.shape}."
    )
  if c.shape[0] == 0:
    raise ValueError(f"Algebra {name!r}: dimension must be at least 1.")
  if not np.all(np.isfinite(c)):
    raise ValueError(f"Algebra {name!r}: structure constants are not finite.")
  if not np.any(c):
    raise ValueError(f"Algebra {name!r}: structure constants are all zero.")


def _find_unit(c: np.ndarray) -> np.ndarray | None:
  d = c.shape[0]
  eye = np.eye(d)
  # u e_j = e_j for all j:  sum_i u_i c[i, j, k] = delta_jk, and
  # e_i u = e_i for all i:  sum_j u_j c[i, j, k] = delta_ik.
  a = np.concatenate(
      [c.reshape(d, d * d).T, c.transpose(1, 0, 2).reshape(d, d * d).T]
  )
  b = np.concatenate([eye.reshape(-1), eye.reshape(-1)])
  u, *_ = np.linalg.lstsq(a, b, rcond=None)
  if np.allclose(a @ u, b, atol=1e-8):
    # Snap to exact small integers where lstsq left rounding noise.
    rounded = np.round(u)
    return np.where(np.abs(u - rounded) < 1e-8, rounded, u)
  return None


# -- constructors -------------------------------------------------------------


def from_structure_constants(
    name: str,
    structure_constants: Array,
    *,
    conjugation: Array | None = None,
    description: str = "",
) -> Algebra:
  """Build an algebra from a [d, d, d] tensor (e_i e_j = sum_k c_ijk e_k).

  Example (split-complex numbers, j^2 = +1):

    c = np.zeros((2, 2, 2)); c[0, 0, 0] = c[0, 1, 1] = c[1, 0, 1] = 1
    c[1, 1, 0] = 1
    algebras.register(algebras.from_structure_constants("split", c))

  Raises:
    ValueError: wrong shape, non-finite or all-zero constants.
  """
  return Algebra(
      name=name,
      structure_constants=np.asarray(structure_constants, np.float64),
      conjugation=conjugation,
      description=description,
  )


def matrix_algebra(n: int, base: str | Algebra = "R", name: str | None = None):
  """M_n(base): n x n matrices with entries in `base`.

  Components are ordered (row, col, base component), row-major. The result
  carries `matrix_shape = (n, base.name)`, which lets the kernels use the
  column-fold fast path (n^3 base products per weight-activation pair).
  """
  base = get(base)
  if n < 1:
    raise ValueError(f"matrix_algebra: n must be >= 1, got {n}.")
  e = base.dim
  cb = base.structure_constants
  d = n * n * e
  c = np.zeros((d, d, d))

  def idx(r, col, p):
    return (r * n + col) * e + p

  for a in range(n):
    for b in range(n):
      for cc in range(n):  # (E_ab x u)(E_b,cc x v) = E_a,cc x (u v)
        for p in range(e):
          for q in range(e):
            for r in range(e):
              if cb[p, q, r]:
                c[idx(a, b, p), idx(b, cc, q), idx(a, cc, r)] = cb[p, q, r]
  conj = None
  if base.conjugation is not None:
    # Conjugate transpose: (X^*)_{ab} = conj(X_{ba}).
    conj = np.zeros((d, d))
    for a in range(n):
      for b in range(n):
        conj[
            idx(a, b, 0) : idx(a, b, 0) + e, idx(b, a, 0) : idx(b, a, 0) + e
        ] = base.conjugation
  name = name or f"M{n}{base.name}"
  return Algebra(
      name=name,
      structure_constants=c,
      conjugation=conj,
      matrix_shape=(n, base.name),
      description=f"{n}x{n} matrices over {base.name}, row-major",
  )


def _reals() -> Algebra:
  return Algebra("R", np.ones((1, 1, 1)), np.eye(1), None, "real numbers")


def _complex() -> Algebra:
  c = np.zeros((2, 2, 2))
  c[0, 0, 0] = 1
  c[0, 1, 1] = c[1, 0, 1] = 1
  c[1, 1, 0] = -1
  return Algebra("C", c, np.diag([1.0, -1.0]), None, "complex numbers (re, im)")


def _quaternions() -> Algebra:
  # Hamilton's table for the basis (1, i, j, k): e_a e_b = sign * e_out.
  table = {
      (1, 1): (-1, 0),
      (2, 2): (-1, 0),
      (3, 3): (-1, 0),
      (1, 2): (1, 3),
      (2, 1): (-1, 3),
      (2, 3): (1, 1),
      (3, 2): (-1, 1),
      (3, 1): (1, 2),
      (1, 3): (-1, 2),
  }
  c = np.zeros((4, 4, 4))
  for i in range(4):
    c[0, i, i] = c[i, 0, i] = 1
  for (a, b), (sign, out) in table.items():
    c[a, b, out] = sign
  return Algebra(
      "H", c, np.diag([1.0, -1.0, -1.0, -1.0]), None, "quaternions (1, i, j, k)"
  )


def _dual() -> Algebra:
  c = np.zeros((2, 2, 2))
  c[0, 0, 0] = 1
  c[0, 1, 1] = c[1, 0, 1] = 1
  return Algebra(
      "dual", c, np.diag([1.0, -1.0]), None, "dual numbers a + b eps, eps^2=0"
  )


def _cross() -> Algebra:
  c = np.zeros((3, 3, 3))
  for i, j, k in [(0, 1, 2), (1, 2, 0), (2, 0, 1)]:
    c[i, j, k] = 1
    c[j, i, k] = -1
  return Algebra("cross", c, None, None, "R^3 with the cross product")


# -- registry -----------------------------------------------------------------

_REGISTRY: dict[str, Algebra] = {}
_BUILTIN_FACTORIES: dict[str, Callable[[], Algebra]] = {
    "R": _reals,
    "C": _complex,
    "H": _quaternions,
    "dual": _dual,
    "cross": _cross,
    "M2R": lambda: matrix_algebra(2, "R"),
    "M3R": lambda: matrix_algebra(3, "R"),
    "M4R": lambda: matrix_algebra(4, "R"),
    "M2C": lambda: matrix_algebra(2, "C"),
}


def register(algebra: Algebra, *, overwrite: bool = False) -> Algebra:
  """Add `algebra` to the registry under `algebra.name`; returns it.

  Raises:
    ValueError: the name is taken by a different algebra and not `overwrite`.
  """
  if not isinstance(algebra, Algebra):
    raise TypeError(
        f"register expects an Algebra, got {type(algebra).__name__}. Build one "
        "with algebras.from_structure_constants(name, c)."
    )
  old = _REGISTRY.get(algebra.name)
  if old is not None and old != algebra and not overwrite:
    raise ValueError(
        f"An algebra named {algebra.name!r} is already registered with "
        "different structure constants; choose another name or pass "
        "overwrite=True."
    )
  _REGISTRY[algebra.name] = algebra
  return algebra


def names() -> list[str]:
  """Names of all registered algebras (built-ins first)."""
  return list(_REGISTRY)


def get(name: str | Algebra) -> Algebra:
  """Look up an algebra by name (an `Algebra` is returned unchanged).

  Raises:
    ValueError: unknown name; the message lists the valid names.
  """
  if isinstance(name, Algebra):
    return name
  if not isinstance(name, str):
    raise TypeError(f"algebras.get expects a name or an Algebra, got {name!r}.")
  if name in _REGISTRY:
    return _REGISTRY[name]
  hint = difflib.get_close_matches(name, _REGISTRY, n=1)
  did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
  raise ValueError(
      f"Unknown algebra {name!r}.{did_you_mean} Valid names: "
      f"{', '.join(_REGISTRY)}. Register new ones with algebras.register(), "
      "or give the path of a .npy/.json file of [d, d, d] structure "
      "constants."
  )


def fingerprint(algebra: str | Algebra) -> str:
  """Short stable hash of an algebra's constants (for checkpoints/configs).

  12 hex digits of SHA-1 over the constants as little-endian float64, so the
  same constants give the same fingerprint on every machine; -0.0 counts as
  0.0 (the same product).
  """
  a = get(algebra)
  c = np.ascontiguousarray(a.structure_constants + 0.0, dtype="<f8")
  return hashlib.sha1(c.tobytes()).hexdigest()[:12]


for _name, _factory in _BUILTIN_FACTORIES.items():
  register(_factory())
