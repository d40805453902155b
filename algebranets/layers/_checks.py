"""Input validation shared by the algebra layers.

Haiku reports a wrong input shape late and cryptically (a parameter shape
mismatch deep in `hk.get_parameter`, or an XLA dot error). These helpers
check shapes up front and say what was expected, what arrived, and how to
fix it.

Shape glossary: C = algebra channels, d = algebra dimension, n/e = matrix
size/base dimension of M_n(base) (folded layout x[n, ..., C, n*e]).
"""

from __future__ import annotations

import haiku as hk
import jax.numpy as jnp
import numpy as np

from algebranets import algebras
from algebranets import layout as layout_lib


def resolve(algebra, layout: str) -> tuple[algebras.Algebra, str]:
  """(Algebra, layout) after validating both.

  Raises:
    ValueError: unknown algebra name (lists the valid ones), unknown layout,
      or the folded layout with an algebra that is not M_n(base).
  """
  alg = algebras.get(algebra)
  layout_lib.check_layout(layout)
  if layout == layout_lib.FOLDED:
    layout_lib.matrix_shape(alg)  # Raises for non-matrix algebras.
  return alg, layout


def expected_shape(alg: algebras.Algebra, layout: str, body: str) -> str:
  """Human-readable expected shape, e.g. '[..., N, 4]' or '[2, ..., N, 2]'."""
  if layout == layout_lib.FOLDED:
    n, e = layout_lib.matrix_shape(alg)
    return f"[{n}, {body}, {n * e}]"
  return f"[{body}, {alg.dim}]"


def check_input(
    x,
    alg: algebras.Algebra,
    layout: str,
    *,
    what: str,
    body: str = "..., C",
    rank: int | None = None,
    min_rank: int = 2,
) -> None:
  """Checks an algebra-valued input for its layout.

  Args:
    x: the input (only `.shape` and `.dtype` are read).
    alg: the layer's algebra.
    layout: 'standard' or 'folded'.
    what: the layer name used in messages (e.g. "Linear").
    body: the middle of the expected shape, for the message.
    rank: exact rank required in the STANDARD layout (folded adds one), or
      None for "at least min_rank".
    min_rank: minimum standard-layout rank when `rank` is None.

  Raises:
    ValueError: wrong rank, wrong component axis, or wrong fold axis.
  """
  folded = layout == layout_lib.FOLDED
  extra = 1 if folded else 0
  want = expected_shape(alg, layout, body)
  shape = tuple(x.shape)
  if rank is not None and len(shape) != rank + extra:
    raise ValueError(
        f"{what}: expected a rank-{rank + extra} input {want} for algebra "
        f"{alg.name!r} in the {layout} layout, got shape {shape} "
        f"(rank {len(shape)})."
    )
  if rank is None and len(shape) < min_rank + extra:
    raise ValueError(
        f"{what}: expected an input of rank >= {min_rank + extra} {want} for "
        f"algebra {alg.name!r} in the {layout} layout, got shape {shape} "
        f"(rank {len(shape)}). Add a channel axis, e.g. x[..., None, :]."
    )
  if folded:
    n, e = layout_lib.matrix_shape(alg)
    if shape[0] != n or shape[-1] != n * e:
      raise ValueError(
          f"{what}: expected a folded input {want} for algebra {alg.name!r}, "
          f"got shape {shape}. Convert standard activations with "
          "layout.fold(x, algebra)."
      )
  elif shape[-1] != alg.dim:
    raise ValueError(
        f"{what}: the last axis must be the algebra dimension d={alg.dim} of "
        f"{alg.name!r}, i.e. x{want}, got shape {shape}. Lift real inputs "
        "with algebranets.layers.io (RealStem, Pad or Tile)."
    )


def check_float(x, what: str) -> None:
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(
        f"{what}: expected a floating-point input, got dtype {x.dtype}. Cast "
        "it, e.g. x.astype(jnp.float32)."
    )


def check_param_shape(
    module: hk.Module, param: str, shape: tuple[int, ...], what: str
) -> None:
  """Raises if `param` already exists with a shape other than `shape`.

  A module's parameters are created from the first input it sees; a later
  call with a different channel count would otherwise fail inside Haiku with
  a message that does not name the input.
  """
  existing = module.params_dict().get(f"{module.module_name}/{param}")
  if existing is not None and tuple(existing.shape) != tuple(shape):
    raise ValueError(
        f"{what} {module.module_name!r}: this input needs parameter {param!r} "
        f"of shape {tuple(shape)}, but it was created with shape "
        f"{tuple(existing.shape)} from an earlier input. A module's channel "
        "counts are fixed by its first call; use a separate module for inputs "
        "with a different number of channels."
    )


def pair(v, what: str) -> tuple[int, int]:
  """An int or a pair of ints -> (h, w)."""
  if isinstance(v, int) and not isinstance(v, bool):
    return (v, v)
  try:
    v = tuple(v)
  except TypeError:
    v = (v,)
  if len(v) != 2 or not all(isinstance(i, int) for i in v):
    raise ValueError(f"{what} must be an int or a pair of ints, got {v!r}.")
  return v


def positive(v: int, what: str) -> int:
  if not isinstance(v, int) or isinstance(v, bool) or v < 1:
    raise ValueError(f"{what} must be a positive int, got {v!r}.")
  return v


def structure_initializer(
    alg: algebras.Algebra,
    learned: bool,
    structure_init,
    layout: str,
    path: str,
    what: str,
):
  """Validated initializer of a learned 'structure' [d, d, d] parameter.

  Returns None when `learned` is False. The default initializer is the
  algebra's own constants, so a learned-structure layer starts as the fixed
  algebra (PHM / Kronecker-sum baseline of Zhang et al. 2021).
  """
  d = alg.dim
  if not learned:
    if structure_init is not None:
      raise ValueError(
          f"{what}: structure_init is only used with learned_structure=True."
      )
    return None
  if layout == layout_lib.FOLDED or path == "fold":
    raise ValueError(
        f"{what}: learned_structure=True works on the standard layout with a "
        "generic path only (a learned product is no longer a matrix "
        f"algebra); got layout={layout!r}, path={path!r}."
    )
  if structure_init is None:
    return hk.initializers.Constant(alg.structure_constants)
  if hasattr(structure_init, "shape"):
    if tuple(structure_init.shape) != (d, d, d):
      raise ValueError(
          f"{what}: structure_init must be a [{d}, {d}, {d}] array for "
          f"algebra {alg.name!r}, got shape {tuple(structure_init.shape)}."
      )
    return hk.initializers.Constant(np.asarray(structure_init))
  return structure_init


def path(alg: algebras.Algebra, layout: str, path: str, valid, what: str):
  """Validates a layer's kernel path choice against its algebra and layout."""
  if path != "auto" and path not in valid:
    raise ValueError(
        f"{what}: unknown path {path!r}; valid: auto, {', '.join(valid)}."
    )
  if layout == layout_lib.FOLDED and path not in ("auto", "fold"):
    raise ValueError(
        f"{what}: the folded layout always uses the fold kernel; got "
        f"path={path!r}. Use path='auto' or 'fold', or layout='standard'."
    )
  if path == "fold" and alg.matrix_shape is None:
    raise ValueError(
        f"{what}: path='fold' needs a matrix algebra; {alg.name!r} is not "
        "one. Use path='auto'."
    )
  return path


def one_of(value, valid, who: str, what: str):
  """`value` if it is one of `valid`, else ValueError naming them all.

  E.g. one_of(mode, MODES, 'BatchNorm', 'mode') -> "BatchNorm: unknown mode
  'x'; valid modes: component, element, whiten."
  """
  if value not in valid:
    raise ValueError(
        f"{who}: unknown {what} {value!r}; valid {what}s: "
        f"{', '.join(valid)}."
    )
  return value


def layout_for(alg: algebras.Algebra, layout: str, who: str) -> str:
  """`layout` after `resolve`'s checks, the message prefixed with `who`."""
  try:
    resolve(alg, layout)
  except ValueError as err:
    raise ValueError(f"{who}: {err}") from None
  return layout


def positive_eps(eps: float, who: str) -> float:
  """float(eps) for eps > 0 (it keeps rsqrt finite on constant channels)."""
  if not eps > 0:
    raise ValueError(
        f"{who}: eps must be > 0 (it keeps rsqrt finite on constant "
        f"channels), got {eps}."
    )
  return float(eps)


def check_activations(
    x, alg: algebras.Algebra, layout: str, lead: int, who: str
) -> None:
  """Dtype, rank and algebra axes of a normalizer's input.

  Args:
    x: the input (only `.shape` and `.dtype` are read).
    alg: the layer's algebra.
    layout: 'standard' ([lead..., ..., C, d]) or 'folded' ([n, lead...,
      ..., C, n*e]).
    lead: required leading batch axes (1 for BatchNorm, 0 for LayerNorm).
    who: the layer name used in messages.

  Raises:
    ValueError: a non-float dtype, too low a rank or wrong algebra axes.
  """
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(
        f"{who}: expected floating-point activations, got dtype {x.dtype}. "
        "Cast the input with x.astype(jnp.float32)."
    )
  batch = "B, ..., " if lead else "..., "
  if layout == layout_lib.STANDARD:
    d = alg.dim
    if x.ndim < 2 + lead or x.shape[-1] != d:
      raise ValueError(
          f"{who}({alg.name}, layout='standard'): expected x[{batch}C, "
          f"{d}] (last axis = algebra dimension {d}), got shape "
          f"{tuple(x.shape)}. Reshape real features to [..., C, {d}] first."
      )
  else:
    n, e = layout_lib.matrix_shape(alg)
    if x.ndim < 3 + lead or x.shape[0] != n or x.shape[-1] != n * e:
      raise ValueError(
          f"{who}({alg.name}, layout='folded'): expected x[{n}, {batch}C,"
          f" {n * e}], got shape {tuple(x.shape)}. Convert standard "
          "activations with layout.fold(x, algebra)."
      )


def scale_init(
    init, mode: str, create_scale: bool, who: str, *, named: str, named_mode
):
  """A normalizer's scale initializer: None, a callable, or the string
  `named`, which only mode `named_mode` understands (e.g. 'trabelsi' with
  'whiten': gamma = I / sqrt(d)).

  Raises:
    ValueError: an initializer without create_scale, another string, the
      string with another mode, or not a callable.
  """
  if init is None:
    return None
  if not create_scale:
    raise ValueError(
        f"{who}: scale_init={init!r} has no effect with "
        "create_scale=False; drop one of them."
    )
  if isinstance(init, str):
    if init != named or mode != named_mode:
      raise ValueError(
          f"{who}: scale_init={init!r} is not understood for "
          f"mode={mode!r}. Pass a Haiku initializer (callable), None, or "
          f"{named!r} (only with mode={named_mode!r}: gamma = I / sqrt(d))."
      )
  elif not callable(init):
    raise ValueError(
        f"{who}: scale_init must be a callable initializer, None or "
        f"{named!r}, got {init!r}."
    )
  return init
