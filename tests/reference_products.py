"""Textbook algebra products in float64 numpy: independent test oracles.

Every product is written by its textbook formula (complex numbers via numpy
complex128, the Hamilton product written out, np.cross, np.matmul of real /
complex / quaternion matrices, dual and split-complex formulas); none reads
the library's structure constants. The one exception is `generic3`, an
algebra with random non-integer constants that has no textbook product: its
oracle is the defining formula (a b)_k = sum_ij c_ijk a_i b_j.
"""

from __future__ import annotations

import numpy as np

from algebranets import algebras


def hamilton(p, q):
  a1, b1, c1, d1 = np.moveaxis(p, -1, 0)
  a2, b2, c2, d2 = np.moveaxis(q, -1, 0)
  return np.stack(
      [
          a1 * a2 - b1 * b2 - c1 * c2 - d1 * d2,
          a1 * b2 + b1 * a2 + c1 * d2 - d1 * c2,
          a1 * c2 - b1 * d2 + c1 * a2 + d1 * b2,
          a1 * d2 + b1 * c2 - c1 * b2 + d1 * a2,
      ],
      axis=-1,
  )


def as_complex(x):
  return x[..., 0::2] + 1j * x[..., 1::2]


def from_complex(z):
  return np.stack([z.real, z.imag], axis=-1).reshape(*z.shape[:-1], -1)


def _real(a, b):
  return a * b


def complex_product(a, b):
  return from_complex(as_complex(a) * as_complex(b))


def _dual(a, b):
  # (a + b eps)(c + d eps) = ac + (ad + bc) eps.
  return np.stack(
      [a[..., 0] * b[..., 0], a[..., 0] * b[..., 1] + a[..., 1] * b[..., 0]],
      axis=-1,
  )


def split_complex(a, b):
  # (a + b j)(c + d j) = (ac + bd) + (ad + bc) j, with j^2 = +1.
  return np.stack(
      [
          a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1],
          a[..., 0] * b[..., 1] + a[..., 1] * b[..., 0],
      ],
      axis=-1,
  )


def _cross(a, b):
  a, b = np.broadcast_arrays(a, b)
  return np.cross(a, b)


def real_matrices(n):
  def product(a, b):
    a, b = np.broadcast_arrays(a, b)
    shape = (*a.shape[:-1], n, n)
    return np.matmul(a.reshape(shape), b.reshape(shape)).reshape(a.shape)

  return product


def _m2c(a, b):
  a, b = np.broadcast_arrays(a, b)
  za = as_complex(a).reshape(*a.shape[:-1], 2, 2)
  zb = as_complex(b).reshape(*b.shape[:-1], 2, 2)
  return from_complex(np.matmul(za, zb).reshape(*a.shape[:-1], 4))


def _m2h(a, b):
  """2x2 quaternion matrices, entries row-major, each (1, i, j, k)."""
  a, b = np.broadcast_arrays(a, b)
  qa = a.reshape(*a.shape[:-1], 2, 2, 4)
  qb = b.reshape(*b.shape[:-1], 2, 2, 4)
  out = np.zeros_like(qa)
  for r in range(2):
    for c in range(2):
      for k in range(2):
        out[..., r, c, :] += hamilton(qa[..., r, k, :], qb[..., k, c, :])
  return out.reshape(a.shape)


def split_complex_algebra():
  c = np.zeros((2, 2, 2))
  c[0, 0, 0] = c[0, 1, 1] = c[1, 0, 1] = c[1, 1, 0] = 1.0
  return algebras.from_structure_constants("split", c)


# Random constants with non-unit entries and several nonzeros per (j, k): the
# kernels cannot use their signed-gather shortcut and fall back to einsums.
_GENERIC_C = np.round(np.random.default_rng(42).normal(size=(3, 3, 3)), 2)
_GENERIC = algebras.from_structure_constants("generic3", _GENERIC_C)


def _generic(a, b):
  return np.einsum("...i,...j,ijk->...k", a, b, _GENERIC_C)


# id -> (algebra argument passed to the kernels, textbook product).
# Built-ins are passed by name, the custom ones as Algebra objects.
CASES = {
    "R": ("R", _real),
    "C": ("C", complex_product),
    "H": ("H", hamilton),
    "dual": ("dual", _dual),
    "cross": ("cross", _cross),
    "M2R": ("M2R", real_matrices(2)),
    "M3R": ("M3R", real_matrices(3)),
    "M4R": ("M4R", real_matrices(4)),
    "M2C": ("M2C", _m2c),
    "split": (split_complex_algebra(), split_complex),
    "M2H": (algebras.matrix_algebra(2, "H"), _m2h),
    "generic3": (_GENERIC, _generic),
}
NAMES = list(CASES)
MATRIX_NAMES = [n for n in NAMES if algebras.get(CASES[n][0]).matrix_shape]


def dim(name):
  return algebras.get(CASES[name][0]).dim
