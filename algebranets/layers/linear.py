"""Algebra-valued linear (dense) layer.

Shape glossary: N = input algebra channels, M = output algebra channels,
d = algebra dimension, n/e = matrix size/base dimension of M_n(base).

    standard: x [..., N, d]        -> y [..., M, d]
    folded:   x [n, ..., N, n*e]   -> y [n, ..., M, n*e]   (M_n(base) only)

y_m = sum_n w_nm x_n + b_m with the algebra product (weight on the LEFT).
Parameters are stored in the canonical layout whatever the activation
layout: 'w' [N, M, d], 'b' [M, d] (and 'structure' [d, d, d] for a learned
structure), so checkpoints do not depend on the layout a network ran in.
"""

from __future__ import annotations

import math

import haiku as hk
import jax
import jax.numpy as jnp

from algebranets import kernels
from algebranets import layout as layout_lib
from algebranets.layers import _checks, initializers


class Linear(hk.Module):
  """Algebra dense layer y = W x + b (the maths lives in `kernels.dense`)."""

  def __init__(
      self,
      output_size: int,
      algebra,
      *,
      with_bias: bool = True,
      w_init: hk.initializers.Initializer | None = None,
      b_init: hk.initializers.Initializer | None = None,
      gain: float = 1.0,
      layout: str = "standard",
      path: str = "auto",
      precision: jax.lax.Precision | None = None,
      learned_structure: bool = False,
      structure_init=None,
      name: str | None = None,
  ):
    """Constructs the layer.

    Args:
      output_size: M, the number of output algebra channels.
      algebra: registered name or `Algebra`.
      with_bias: add an algebra-valued bias 'b' [M, d] (zeros init).
      w_init: initializer for 'w' [N, M, d]; default
        `AlgebraVarianceScaling(algebra, gain)`.
      b_init: initializer for 'b'; default zeros.
      gain: init gain used by the default w_init (`initializers.gain_for`).
      layout: activation layout, 'standard' or 'folded' (matrix algebras).
      path: kernel path ('auto' or one of `kernels.DENSE_PATHS`); the folded
        layout always uses the fold kernel ('auto' or 'fold').
      precision: matmul precision passed to the kernel.
      learned_structure: make the structure constants a trainable parameter
        'structure' [d, d, d] (PHM / Kronecker-sum baseline of Zhang et al.
        2021), initialised from the algebra's constants. Standard layout
        only, and not with path='fold'.
      structure_init: initializer or [d, d, d] array for 'structure' (only
        with learned_structure=True); default the algebra's constants.
      name: module name.

    Raises:
      ValueError: unknown algebra or layout, folded layout with a non-matrix
        algebra, invalid output_size or path, learned_structure with the
        folded layout or the fold path, structure_init without
        learned_structure or of the wrong shape.
    """
    super().__init__(name=name)
    self.algebra, self.layout = _checks.resolve(algebra, layout)
    self.output_size = _checks.positive(output_size, "Linear: output_size")
    self.with_bias = with_bias
    self.gain = gain
    self.w_init = w_init or initializers.AlgebraVarianceScaling(
        self.algebra, gain
    )
    self.b_init = b_init or jnp.zeros
    self.precision = precision
    self.path = _checks.path(
        self.algebra, self.layout, path, kernels.DENSE_PATHS, "Linear"
    )
    self.learned_structure = learned_structure
    self.structure_init = _checks.structure_initializer(
        self.algebra, learned_structure, structure_init, layout, path, "Linear"
    )

  def __call__(
      self, x: jax.Array, *, precision: jax.lax.Precision | None = None
  ) -> jax.Array:
    """Applies the layer.

    Args:
      x: standard [..., N, d] or folded [n, ..., N, n*e] floats.
      precision: overrides the constructor's precision for this call.

    Returns:
      y: [..., M, d] (standard) or [n, ..., M, n*e] (folded), x's dtype.

    Raises:
      ValueError: x of rank < 2 (3 folded), a last axis that is not d (n*e
        folded), a non-float dtype, or an input channel count different
        from the one the parameters were created with.
    """
    alg, lay = self.algebra, self.layout
    _checks.check_input(x, alg, lay, what="Linear", body="..., N")
    _checks.check_float(x, "Linear")
    precision = precision if precision is not None else self.precision
    n_in, m, d = x.shape[-2], self.output_size, alg.dim
    _checks.check_param_shape(self, "w", (n_in, m, d), "Linear")
    dtype = x.dtype
    w = hk.get_parameter("w", (n_in, m, d), dtype, init=self.w_init)
    if self.learned_structure:
      c = hk.get_parameter("structure", (d, d, d), dtype, self.structure_init)
      y = kernels.dense(x, w, c, path=self.path, precision=precision)
    elif lay == layout_lib.FOLDED:
      y = kernels.dense_folded(x, w, alg, precision=precision)
    else:
      y = kernels.dense(x, w, alg, path=self.path, precision=precision)
    if self.with_bias:
      b = hk.get_parameter("b", (m, d), dtype, init=self.b_init)
      y = y + layout_lib.broadcast_param(b, alg, lay, y.ndim)
    return y

  @hk.transparent
  def mac_count(self, x, y) -> int:
    """Intrinsic multiply-adds of one call that mapped x to y.

    tokens * N * M * macs_per_product, tokens = output element positions
    (prod(y.shape[:-2]); folded: prod(y.shape[1:-2]), the fold axis holds
    parts of the same elements). With learned_structure the product is a
    dense learned bilinear map, counted as d^2 (one d x d matmul per pair).
    The bias adds are not counted. x, y may be `jax.ShapeDtypeStruct`s.
    """
    lead = slice(1, -2) if self.layout == layout_lib.FOLDED else slice(0, -2)
    tokens = math.prod(y.shape[lead])
    d = self.algebra.dim
    per_pair = (
        d * d if self.learned_structure else self.algebra.macs_per_product
    )
    return int(tokens * x.shape[-2] * y.shape[-2] * per_pair)
