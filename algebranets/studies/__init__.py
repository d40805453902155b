"""Controlled studies built on the library (issue 8).

Each depends on the library, never the other way round.

`grid_tensor`: the ConvAC expressivity probe (grid tensors of score
functions and the numerical rank of their matricizations).
`teacher_student` (imported on demand: its learners load SciPy): the
teacher-student study's design maths, closed-form learners and their fit /
evaluate entry points.
"""

from algebranets.studies import grid_tensor

__all__ = ["grid_tensor"]
