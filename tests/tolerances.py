"""Tolerances for comparing computations with references, CPU-independent.

Why this module: a float32 computation's rounding error depends on the CPU
it runs on (XLA's kernels sum in a different order and fuse multiply-adds
differently with AVX2 than with AVX-512), so a tolerance tuned until it
passed on one machine can fail on another (issue 16: 3.0e-4 against a
1e-4 tolerance on an AVX2-only EPYC). The suite therefore either

* runs the comparison in float64 (`jax.enable_x64(True)`, float64 inputs
  and parameters): rounding is then ~1e-16 relative on any CPU, and what
  is left is the model's float32-by-design steps (a softmax, a
  positional table, float32 logits), bounded by `ulps32`; or
* bounds the float32 error by the computation with `float32_error`.

Tolerances are absolute (`atol=`, `rtol=0`), stated at the magnitude of
the compared values: a relative tolerance per element would be violated by
elements that are small by cancellation while their error is the error of
the larger terms they were summed from.
"""

import math

import jax
import numpy as np

# Spacing of float32 numbers at 1.0 (twice the unit roundoff u = 2**-24).
EPS32 = float(np.finfo(np.float32).eps)


def ulps32(magnitude, k):
  """k float32 ulps at `magnitude` (largest |value| compared, or an array).

  For float64 runs whose only float32 steps round: each such step adds at
  most half an ulp relative to its own values, and a few steps feeding
  each other through O(1)-conditioned maps (softmax, layer norm, a final
  cast) add a few ulps; k counts them with a margin, not a fit.
  """
  out = k * EPS32 * np.asarray(magnitude, np.float64)
  return float(out) if out.ndim == 0 else out  # Per element if an array.


def float32_error(n, magnitude, *, depth=1, k=6.0):
  """Bound on |float32 result - exact| of `depth` chained reductions.

  Each reduction sums `n` products whose absolute values add up to about
  `magnitude` (the compared values' scale for unit-variance weights).
  Rounding errors of a float32 sum of n terms behave like a random walk
  whatever the order or FMA use: their standard deviation is
  ~u * sqrt(n) * magnitude (u = EPS32 / 2), and |error| < lambda * u *
  sqrt(n) * magnitude holds with probability >= 1 - 2 exp(-lambda^2 / 2)
  per sum (Higham & Mary, SIAM J. Sci. Comput. 41(5), 2019). k = 6
  (lambda = 12) makes a failure from rounding alone a < 1e-30 event per
  element; `depth` chained layers add their errors (well-conditioned
  layers: LayerNorm / softmax / ReLU do not amplify).
  """
  return k * depth * EPS32 * math.sqrt(n) * float(magnitude)


EPS64 = float(np.finfo(np.float64).eps)


def float64_error(n, magnitude, *, depth=1, k=4.0):
  """Worst-case bound on |float64 result - exact| of `depth` chained sums.

  For runs entirely in float64. A sum of n terms whose absolute values add
  up to `magnitude` is off by at most n * u * magnitude in ANY order, FMA
  or not (Higham, Accuracy and Stability, 2nd ed., eq. 4.4); k covers the
  products, exponentials and divisions around each sum. Far below any
  float32 error, so a model that silently computed in float32 fails it.
  """
  return k * depth * n * (EPS64 / 2) * float(magnitude)


def float32_products(fn, *args):
  """Names of fn's matrix products / convolutions that run below float64.

  A float64 comparison only removes the CPU from the result if the model
  really computes in float64; models that return float32 by design (logits,
  nll) hide a silent float32 cast inside, which this finds. Call it under
  `jax.enable_x64(True)` with float64 arguments; expect [].
  """
  heavy = ("dot_general", "conv_general_dilated")
  found = []

  def visit(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name in heavy:
        for v in (*eqn.invars, *eqn.outvars):
          if v.aval.dtype != np.float64:
            found.append(f"{eqn.primitive.name} {v.aval.str_short()}")
            break
      for p in eqn.params.values():
        for sub in p if isinstance(p, (tuple, list)) else (p,):
          inner = getattr(sub, "jaxpr", sub)
          if hasattr(inner, "eqns"):
            visit(inner)

  visit(jax.make_jaxpr(fn)(*args).jaxpr)
  return found
