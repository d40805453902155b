"""Getting data into and out of the algebra (paper section 7).

Shape glossary: B = batch (any leading axes), c = real features/channels,
C = algebra channels, d = algebra dimension, n/e = matrix size/base
dimension of M_n(base) (folded layout x[n, ..., C, n*e]).

Lifts (real -> algebra), `LIFTS`:
  real_stem  a real hk.Conv2D (images [B, H, W, c]) or hk.Linear (features
             [..., c]) to d*C real outputs, read as [..., C, d]. The default
             for images; it uses Haiku's own modules so MAC/parameter
             accounting of real layers applies unchanged.
  pad        each real value becomes one algebra element with the value at
             component `offset` and zeros elsewhere ([..., c] -> [..., c, d]).
  tile       each real value repeated into all d components.

Heads (algebra -> real), `HEADS`:
  flatten_real     flatten the d*C components and apply a real hk.Linear.
  first_component  component 0 of each element (entry (0, 0) of a matrix;
                   or the trace with trace=True).
  norm             the element norms.

Real features are ordered channel-major, element-minor: real index
C_index * d + k is component k of algebra channel C_index, both when a stem's
d*C outputs are read as [..., C, d] and when a head flattens [..., C, d].
"""

from __future__ import annotations

from collections.abc import Sequence

import haiku as hk
import jax
import jax.numpy as jnp

from algebranets import algebras
from algebranets import layout as layout_lib
from algebranets.layers import _checks


def _to_layout(y: jax.Array, alg, layout: str) -> jax.Array:
  return layout_lib.convert(y, alg, layout_lib.STANDARD, layout)


def _check_real(x, what: str, min_rank: int = 1) -> None:
  if x.ndim < min_rank:
    raise ValueError(
        f"{what}: expected real features of rank >= {min_rank} [..., c], got "
        f"shape {tuple(x.shape)}."
    )


# -- lifts ---------------------------------------------------------------------


class RealStem(hk.Module):
  """A real conv/linear layer whose d*C outputs become C algebra channels."""

  def __init__(
      self,
      channels: int,
      algebra,
      *,
      kernel_shape: int | Sequence[int] | None = None,
      stride: int | Sequence[int] = 1,
      padding: str = "SAME",
      with_bias: bool = True,
      w_init: hk.initializers.Initializer | None = None,
      b_init: hk.initializers.Initializer | None = None,
      layout: str = "standard",
      name: str | None = None,
  ):
    """Constructs the stem.

    Args:
      channels: C, output algebra channels (d*C real outputs).
      algebra: registered name or `Algebra`.
      kernel_shape: None for a dense stem on features [..., c]; an int or
        (kh, kw) for a conv stem on images [B, H, W, c].
      stride: conv stride (conv stem only).
      padding: conv padding, 'SAME' or 'VALID' (conv stem only).
      with_bias: real bias on the d*C outputs.
      w_init, b_init: passed to the Haiku module (Haiku's defaults if None).
      layout: output layout, 'standard' or 'folded' (matrix algebras).
      name: module name.

    Raises:
      ValueError: unknown algebra or layout, non-positive channels, or a
        stride other than 1 without kernel_shape.
    """
    super().__init__(name=name)
    self.algebra, self.layout = _checks.resolve(algebra, layout)
    self.channels = _checks.positive(channels, "RealStem: channels")
    if kernel_shape is None and stride != 1:
      raise ValueError(
          f"RealStem: stride={stride!r} needs a conv stem; pass kernel_shape "
          "(e.g. 7) or leave stride=1 for a dense stem."
      )
    self.kernel_shape = kernel_shape
    self.stride = stride
    self.padding = padding
    self.with_bias = with_bias
    self.w_init = w_init
    self.b_init = b_init

  def __call__(self, x: jax.Array) -> jax.Array:
    """Lifts real inputs.

    Args:
      x: images [B, H, W, c] (conv stem) or features [..., c] (dense stem).

    Returns:
      [B, H', W', C, d] / [..., C, d], or folded [n, ..., C, n*e].
    """
    d = self.algebra.dim
    real_out = d * self.channels
    if self.kernel_shape is not None:
      if x.ndim != 4:
        raise ValueError(
            f"RealStem: a conv stem (kernel_shape={self.kernel_shape!r}) "
            f"expects images [B, H, W, c], got shape {tuple(x.shape)}. Use "
            "kernel_shape=None for feature vectors."
        )
      y = hk.Conv2D(
          real_out,
          self.kernel_shape,
          stride=self.stride,
          padding=self.padding,
          with_bias=self.with_bias,
          w_init=self.w_init,
          b_init=self.b_init,
          name="conv",
      )(x)
    else:
      _check_real(x, "RealStem")
      y = hk.Linear(
          real_out,
          with_bias=self.with_bias,
          w_init=self.w_init,
          b_init=self.b_init,
          name="linear",
      )(x)
    y = y.reshape(*y.shape[:-1], self.channels, d)
    return _to_layout(y, self.algebra, self.layout)


class Pad(hk.Module):
  """Real values as one component of an otherwise zero algebra element.

  With offset=1 and H, each value becomes a pure quaternion (0, v, 0, 0).
  With pack=True consecutive real features fill components offset..d-1 of
  one element (zero-padded at the end), e.g. RGB -> (0, R, G, B) for H with
  offset=1: the Gaudet & Maida / Parcollet pure-quaternion input.
  """

  def __init__(
      self,
      algebra,
      *,
      offset: int = 0,
      pack: bool = False,
      layout: str = "standard",
      name: str | None = None,
  ):
    """Constructs the lift.

    Args:
      algebra: registered name or `Algebra`.
      offset: the component (0 <= offset < d) of the first value.
      pack: False: [..., c] -> [..., c, d], one element per real value.
        True: [..., c] -> [..., ceil(c / (d - offset)), d], values packed
        into components offset..d-1.
      layout: output layout.
      name: module name.

    Raises:
      ValueError: offset outside [0, d), unknown algebra or layout.
    """
    super().__init__(name=name)
    self.algebra, self.layout = _checks.resolve(algebra, layout)
    d = self.algebra.dim
    if not isinstance(offset, int) or not 0 <= offset < d:
      raise ValueError(
          f"Pad: offset must be an int in [0, {d}) for algebra "
          f"{self.algebra.name!r} (d={d}), got {offset!r}."
      )
    self.offset = offset
    self.pack = pack

  def __call__(self, x: jax.Array) -> jax.Array:
    """[..., c] real -> [..., c, d] (or packed / folded, see the ctor)."""
    _check_real(x, "Pad")
    d, off = self.algebra.dim, self.offset
    if self.pack:
      slots = d - off
      c = x.shape[-1]
      groups = -(-c // slots)
      pad = [(0, 0)] * (x.ndim - 1) + [(0, groups * slots - c)]
      x = jnp.pad(x, pad).reshape(*x.shape[:-1], groups, slots)
      y = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(off, 0)])
    else:
      y = jnp.pad(x[..., None], [(0, 0)] * x.ndim + [(off, d - 1 - off)])
    return _to_layout(y, self.algebra, self.layout)


class Tile(hk.Module):
  """Each real value repeated into all d components: [..., c] -> [..., c, d]."""

  def __init__(
      self, algebra, *, layout: str = "standard", name: str | None = None
  ):
    super().__init__(name=name)
    self.algebra, self.layout = _checks.resolve(algebra, layout)

  def __call__(self, x: jax.Array) -> jax.Array:
    _check_real(x, "Tile")
    y = jnp.broadcast_to(x[..., None], (*x.shape, self.algebra.dim))
    return _to_layout(y, self.algebra, self.layout)


# -- heads ---------------------------------------------------------------------


def _unfold(x: jax.Array, alg, layout: str, what: str) -> jax.Array:
  """Folded -> standard [..., C, d]; infers (n, e) from x if alg is None."""
  if layout == layout_lib.STANDARD:
    return x
  if alg is not None:
    _checks.check_input(x, alg, layout, what=what)
    return layout_lib.unfold(x, alg)
  n = x.shape[0] if x.ndim >= 3 else 0
  if x.ndim < 3 or n < 1 or x.shape[-1] % n:
    raise ValueError(
        f"{what}: expected a folded input [n, ..., C, n*e], got shape "
        f"{tuple(x.shape)}. Pass algebra= to check it against an algebra."
    )
  e = x.shape[-1] // n
  lead = x.shape[1:-1]
  x = jnp.moveaxis(x.reshape(n, *lead, n, e), 0, -2)
  return x.reshape(*lead, n * n * e)


class FlattenReal(hk.Module):
  """Flattens the d*C real components and applies a real hk.Linear."""

  def __init__(
      self,
      num_outputs: int,
      *,
      algebra=None,
      with_bias: bool = True,
      w_init: hk.initializers.Initializer | None = None,
      b_init: hk.initializers.Initializer | None = None,
      layout: str = "standard",
      name: str | None = None,
  ):
    """Constructs the head.

    Args:
      num_outputs: real outputs (e.g. logits).
      algebra: optional; when given the input is checked against it. Not
        needed otherwise (a folded input's n and e are read from its shape).
      with_bias, w_init, b_init: passed to hk.Linear.
      layout: input layout ('folded' inputs are unfolded first, so the
        logits do not depend on the layout).
      name: module name.
    """
    super().__init__(name=name)
    layout_lib.check_layout(layout)
    self.algebra = None if algebra is None else algebras.get(algebra)
    if self.algebra is not None:
      _checks.resolve(self.algebra, layout)
    self.layout = layout
    self.num_outputs = _checks.positive(num_outputs, "FlattenReal: num_outputs")
    self.with_bias = with_bias
    self.w_init = w_init
    self.b_init = b_init

  def __call__(self, x: jax.Array) -> jax.Array:
    """[..., C, d] (or folded [n, ..., C, n*e]) -> [..., num_outputs]."""
    x = _unfold(x, self.algebra, self.layout, "FlattenReal")
    if self.algebra is not None and self.layout == layout_lib.STANDARD:
      _checks.check_input(x, self.algebra, self.layout, what="FlattenReal")
    if x.ndim < 2:
      raise ValueError(
          f"FlattenReal: expected [..., C, d], got shape {tuple(x.shape)}."
      )
    flat = x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])
    return hk.Linear(
        self.num_outputs,
        with_bias=self.with_bias,
        w_init=self.w_init,
        b_init=self.b_init,
        name="linear",
    )(flat)


class FirstComponent(hk.Module):
  """Component 0 of each element: [..., C, d] -> [..., C].

  For matrix algebras component 0 is entry (0, 0) (base component 0 of it,
  i.e. its real part for M2C). With trace=True (matrix algebras only) the
  result is instead the trace sum_a X[a, a] (its base component 0, i.e. the
  real part of the trace for M2C), which treats all rows alike.
  """

  def __init__(
      self,
      *,
      algebra=None,
      trace: bool = False,
      layout: str = "standard",
      name: str | None = None,
  ):
    """Constructs the head.

    Args:
      algebra: needed for trace=True; otherwise optional (input checking).
      trace: return the trace instead of entry (0, 0).
      layout: input layout.
      name: module name.

    Raises:
      ValueError: trace=True without a matrix algebra; unknown layout.
    """
    super().__init__(name=name)
    layout_lib.check_layout(layout)
    self.algebra = None if algebra is None else algebras.get(algebra)
    if self.algebra is not None:
      _checks.resolve(self.algebra, layout)
    if trace:
      if self.algebra is None:
        raise ValueError(
            "FirstComponent: trace=True needs the matrix algebra, e.g. "
            "FirstComponent(algebra='M2R', trace=True)."
        )
      layout_lib.matrix_shape(self.algebra)  # Raises for non-matrix ones.
    self.trace = trace
    self.layout = layout

  def __call__(self, x: jax.Array) -> jax.Array:
    """[..., C, d] (or folded [n, ..., C, n*e]) -> [..., C]."""
    folded = self.layout == layout_lib.FOLDED
    if self.algebra is not None:
      _checks.check_input(x, self.algebra, self.layout, what="FirstComponent")
    elif x.ndim < 2 + folded:
      raise ValueError(
          f"FirstComponent: expected an input of rank >= {2 + folded} in the "
          f"{self.layout} layout, got shape {tuple(x.shape)}."
      )
    if not self.trace:
      return x[0, ..., 0] if folded else x[..., 0]
    n, e = layout_lib.matrix_shape(self.algebra)
    if folded:  # x[col, ..., C, (row, base)]: the diagonal is col == row.
      return sum(x[a, ..., a * e] for a in range(n))
    m = x.reshape(*x.shape[:-1], n, n, e)
    return jnp.trace(m[..., 0], axis1=-2, axis2=-1)


class Norm(hk.Module):
  """Element norms (Euclidean over the d components): [..., C, d] -> [..., C]."""

  def __init__(
      self, algebra, *, layout: str = "standard", name: str | None = None
  ):
    super().__init__(name=name)
    self.algebra, self.layout = _checks.resolve(algebra, layout)

  def __call__(self, x: jax.Array) -> jax.Array:
    _checks.check_input(x, self.algebra, self.layout, what="Norm")
    view, axes = layout_lib.element_view(x, self.algebra, self.layout)
    return jnp.sqrt(jnp.sum(jnp.square(view), axis=axes))


# -- factories -----------------------------------------------------------------

LIFTS = {"real_stem": RealStem, "pad": Pad, "tile": Tile}
HEADS = {
    "flatten_real": FlattenReal,
    "first_component": FirstComponent,
    "norm": Norm,
}


def get_lift(kind: str, **kwargs) -> hk.Module:
  """The lift named `kind`, built with keyword arguments.

  E.g. get_lift('real_stem', channels=16, algebra='H', kernel_shape=7),
  get_lift('pad', algebra='H', offset=1).

  Raises:
    ValueError: unknown kind; the message lists the valid ones.
  """
  if kind not in LIFTS:
    raise ValueError(f"Unknown lift {kind!r}; valid: {', '.join(LIFTS)}.")
  return LIFTS[kind](**kwargs)


def get_head(kind: str, **kwargs) -> hk.Module:
  """The head named `kind`, built with keyword arguments.

  E.g. get_head('flatten_real', num_outputs=1000),
  get_head('norm', algebra='C').

  Raises:
    ValueError: unknown kind; the message lists the valid ones.
  """
  if kind not in HEADS:
    raise ValueError(f"Unknown head {kind!r}; valid: {', '.join(HEADS)}.")
  return HEADS[kind](**kwargs)
