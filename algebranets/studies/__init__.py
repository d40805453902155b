"""Controlled studies built on the library (issue 8).

`grid_tensor`: the ConvAC expressivity probe (grid tensors of score
functions and the numerical rank of their matricizations).
"""

from algebranets.studies import grid_tensor

__all__ = ["grid_tensor"]
