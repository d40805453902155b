"""The study's design maths: teachers, sample budgets and the width grid.

Pure functions of numbers (no config objects), used by
`configs/teacher_student.py` to turn its args into run configs and sweep
points; docs/studies.md explains the choices.

  sigma(t) = a0 + a1 t + a3 t^3 (+ a5 t^5), monomial coefficients
  C(d+3, 3) = the number of monomials of degree <= 3 in d variables: the
              sample size above which plain cubic regression identifies a
              cubic teacher exactly, hence the unit of the sample budget.
"""

from __future__ import annotations

import math


def monomial_coeffs(
    a0: float,
    a1: float,
    a3: float,
    a5: float = 0.0,
    *,
    hermite3_only: bool = False,
) -> tuple[float, ...]:
  """Monomial coefficients (a0, a1, 0, a3[, 0, a5]) of sigma.

  Args:
    a0, a1, a3, a5: the coefficients of 1, t, t^3, t^5.
    hermite3_only: replace a1 by -(3 a3 + 15 a5), which zeroes the linear
      Hermite coefficient c_1 = a1 + 3 a3 + 15 a5 (for a5 = 0 sigma is
      a3 He_3(t) + a0): the best linear predictor is then no better than
      E[y].

  Returns:
    The tuple `data.coeffs` takes; the t^5 entries only when a5 != 0.
  """
  if hermite3_only:
    a1 = -(3.0 * a3 + 15.0 * a5)
  coeffs = (a0, a1, 0.0, a3)
  if a5:
    coeffs += (0.0, a5)
  return coeffs


def cubic_dim(d: int) -> int:
  """C(d+3, 3): the number of monomials of degree <= 3 in d variables."""
  return math.comb(d + 3, 3)


def budget_examples(budget: float, d: int) -> int:
  """Training examples of a budget: round(budget * C(d+3, 3)), >= d + 2.

  d + 2: least squares on [1, x] needs d + 1 examples to be determined,
  one more leaves a residual.
  """
  return max(d + 2, round(budget * cubic_dim(d)))


def r_grid(d: int, points: int) -> tuple[int, ...]:
  """`points` teacher widths on a log grid from d/2 to d^2 (rounded,
  duplicates dropped, ascending)."""
  lo, hi = d / 2, float(d * d)
  grid = (round(lo * (hi / lo) ** (j / (points - 1))) for j in range(points))
  return tuple(sorted(set(grid)))
