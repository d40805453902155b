"""Pieces shared by the algebra vision models (ResNet, MobileNet).

Shape glossary: B = batch, H/W = spatial, c = real image channels, C =
algebra channels, d = algebra dimension, K = number of classes, n/e = matrix
size/base dimension of M_n(base) (folded layout, see `algebranets.layout`).

    standard activations: [B, H, W, C, d]
    folded activations:   [n, B, H, W, C, n*e]   (M_n(base) only)

    images [B, H, W, c] -> ImageLift ('stem') -> [B, H', W', C, d] / folded
      -> ... model body ...
      -> global_avg_pool -> [B, C, d] / [n, B, C, n*e]
      -> ClassifierHead ('head') -> logits float32 [B, K]

The lift module is always named 'stem' and the head 'head': accounting
(`training.experiment.REAL_IO_MODULES`) and sparsity (excluded from pruning)
find them by those path components.

Shared model-section keys (keyword arguments of every vision model's
constructor, with the same defaults; checked by `check_common_keys`):

    algebra='R'            registered algebra name
    width_multiplier=1.0   multiplies every REAL width of the reference net;
                           algebra channels = max(1, round(real * wm / d))
    lift='real_stem'       'real_stem' | 'pad' | 'tile' (paper section 7)
    head='flatten_real'    'flatten_real' | 'first_component' | 'norm'
    norm='batch'           'batch' | 'none'
    norm_mode='component'  'component' | 'element' | 'whiten'
    bn_decay=0.9, bn_eps=1e-5
    activation='split'     `layers.ACTIVATIONS` kind; split uses relu
    layout='auto'          'auto' (folded for M_n(base) with n > 1, else
                           standard) | 'standard' | 'folded'
    kernel_path='auto'     kernel path of the algebra conv/linear layers
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras, config_access, kernels, layers
from algebranets import layout as layout_lib

AUTO = "auto"
LAYOUTS = (AUTO, *layout_lib.LAYOUTS)
LIFTS = ("real_stem", "pad", "tile")
HEADS = ("flatten_real", "first_component", "norm")
NORMS = ("batch", "none")
# Module names that mark the real input lift and the classifier head.
STEM_NAME = "stem"
HEAD_NAME = "head"


def resolve_layout(algebra, layout: str) -> str:
  """The activation layout a vision model runs in.

  Args:
    algebra: registered name or `Algebra`.
    layout: 'auto' (folded for M_n(base) with n > 1, because a folded network
      needs no transpose between layers; standard otherwise), 'standard' or
      'folded'.

  Returns:
    'standard' or 'folded'.

  Raises:
    ValueError: unknown algebra or layout, or 'folded' with an algebra that
      is not M_n(base).
  """
  alg = algebras.get(algebra)
  if layout not in LAYOUTS:
    raise ValueError(
        f"Unknown layout {layout!r}; valid: {', '.join(LAYOUTS)} ('auto' "
        "folds M_n(base) algebras and keeps the others standard)."
    )
  if layout == AUTO:
    if alg.matrix_shape is not None and alg.matrix_shape[0] > 1:
      return layout_lib.FOLDED
    return layout_lib.STANDARD
  if layout == layout_lib.FOLDED:
    layout_lib.matrix_shape(alg)  # Raises for non-matrix algebras.
  return layout


def algebra_channels(real_width: int, width_multiplier: float, algebra) -> int:
  """Algebra channels of a layer whose reference REAL width is `real_width`.

  max(1, round(real_width * width_multiplier / d)), with Python's round
  (halves to even). E.g. 64 reals at width_multiplier 1 are 16 quaternion
  channels (64 reals) and 7 M3R channels (63 reals).

  Raises:
    ValueError: real_width not a positive int, width_multiplier not a
      positive finite number, or an unknown algebra.
  """
  if (
      isinstance(real_width, bool)
      or not isinstance(real_width, (int, np.integer))
      or real_width < 1
  ):
    raise ValueError(
        f"algebra_channels: real_width must be a positive int, got "
        f"{real_width!r}."
    )
  _check_multiplier(width_multiplier, "algebra_channels")
  d = algebras.get(algebra).dim
  return max(1, round(int(real_width) * width_multiplier / d))


def spatial_axes(layout: str) -> tuple[int, int]:
  """(H axis, W axis) of activations: (1, 2) standard, (2, 3) folded.

  Raises:
    ValueError: unknown layout (resolve 'auto' with `resolve_layout` first).
  """
  layout_lib.check_layout(layout)
  return (2, 3) if layout == layout_lib.FOLDED else (1, 2)


def _check_activation_rank(x, layout: str, what: str) -> None:
  want = 6 if layout == layout_lib.FOLDED else 5
  if x.ndim != want:
    body = "[n, B, H, W, C, n*e]" if want == 6 else "[B, H, W, C, d]"
    raise ValueError(
        f"{what}: expected {layout} activations {body} (rank {want}), got "
        f"shape {tuple(x.shape)}."
    )


def max_pool(
    x: jax.Array,
    window: int,
    stride: int,
    layout: str,
    padding: str = "SAME",
) -> jax.Array:
  """Component-wise max over window x window spatial windows.

  Every real component of every algebra channel is pooled on its own (like
  hk.max_pool on the flattened reals; an algebra has no order to take an
  element-wise max by). 'SAME' padding never selects a padded value.

  Args:
    x: [B, H, W, C, d] (standard) or [n, B, H, W, C, n*e] (folded).
    window: pooling window size.
    stride: pooling stride.
    layout: 'standard' or 'folded'.
    padding: 'SAME' or 'VALID'.

  Returns:
    Pooled activations in the same layout, [B, H', W', C, d] or folded.

  Raises:
    ValueError: wrong rank, non-positive window/stride or unknown padding.
  """
  _check_activation_rank(x, layout, "max_pool")
  for value, key in ((window, "window"), (stride, "stride")):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(
          f"max_pool: {key} must be a positive int, got {value!r}."
      )
  if padding not in ("SAME", "VALID"):
    raise ValueError(
        f"max_pool: padding must be 'SAME' or 'VALID', got {padding!r}."
    )
  dims = [1] * x.ndim
  strides = [1] * x.ndim
  for axis in spatial_axes(layout):
    dims[axis] = window
    strides[axis] = stride
  # A Python scalar init keeps reduce_window on its differentiable
  # monoid path; an array init (even a constant) has no transpose rule.
  return jax.lax.reduce_window(
      x, -np.inf, jax.lax.max, tuple(dims), tuple(strides), padding
  )


def global_avg_pool(x: jax.Array, layout: str) -> jax.Array:
  """Mean over the spatial axes.

  Args:
    x: [B, H, W, C, d] (standard) or [n, B, H, W, C, n*e] (folded).
    layout: 'standard' or 'folded'.

  Returns:
    [B, C, d] (standard) or [n, B, C, n*e] (folded).

  Raises:
    ValueError: wrong rank for the layout.
  """
  _check_activation_rank(x, layout, "global_avg_pool")
  return jnp.mean(x, axis=spatial_axes(layout))


class ImageLift(hk.Module):
  """Images -> algebra activations: the model's input layer ('stem').

  Kinds (`LIFTS`, paper section 7):
    real_stem: a real conv (`layers.RealStem`, no bias since a norm follows)
      to d*C real outputs read as C algebra channels. Parameters:
      stem/real_stem/conv w [kh, kw, c, d*C].
    pad / tile: every real pixel channel becomes an algebra element
      (`layers.Pad`: value in component 0, zeros elsewhere; `layers.Tile`:
      value in all d components), then an algebra Conv2D (no bias) with the
      same kernel_shape/stride to C channels. Parameters:
      stem/conv w [kh, kw, c, C, d].
  """

  def __init__(
      self,
      kind: str,
      channels: int,
      algebra,
      *,
      kernel_shape: int | Sequence[int],
      stride: int | Sequence[int],
      layout: str,
      path: str = AUTO,
      name: str = STEM_NAME,
  ):
    """Constructs the lift.

    Args:
      kind: one of LIFTS.
      channels: C, output algebra channels.
      algebra: registered name or `Algebra`.
      kernel_shape: conv kernel, int or (kh, kw).
      stride: conv stride, int or (sh, sw).
      layout: output layout, 'standard' or 'folded' (resolve 'auto' with
        `resolve_layout` first).
      path: kernel path of the algebra conv (pad/tile only).
      name: module name; keep 'stem' (accounting looks for it).

    Raises:
      ValueError: unknown kind, algebra or layout, folded layout with a
        non-matrix algebra, non-positive channels.
    """
    super().__init__(name=name)
    config_access.check_choice(kind, "lift", LIFTS, "ImageLift")
    self.kind = kind
    self.algebra = algebras.get(algebra)
    self.layout = layout_lib.check_layout(layout)
    if layout == layout_lib.FOLDED:
      layout_lib.matrix_shape(self.algebra)
    if isinstance(channels, bool) or not isinstance(channels, int):
      raise ValueError(f"ImageLift: channels must be an int, got {channels!r}.")
    if channels < 1:
      raise ValueError(f"ImageLift: channels must be >= 1, got {channels}.")
    self.channels = channels
    self.kernel_shape = kernel_shape
    self.stride = stride
    self.path = path

  def __call__(self, images: jax.Array) -> jax.Array:
    """Lifts images.

    Args:
      images: float [B, H, W, c].

    Returns:
      [B, H', W', C, d] (standard) or [n, B, H', W', C, n*e] (folded), with
      H' = ceil(H / stride) ('SAME' padding).

    Raises:
      ValueError: images not of rank 4.
    """
    if images.ndim != 4:
      raise ValueError(
          f"ImageLift: expected images [B, H, W, c], got shape "
          f"{tuple(images.shape)}. Add a channel axis for grey images, e.g. "
          "images[..., None]."
      )
    alg, lay = self.algebra, self.layout
    if self.kind == "real_stem":
      return layers.RealStem(
          self.channels,
          alg,
          kernel_shape=self.kernel_shape,
          stride=self.stride,
          padding="SAME",
          with_bias=False,
          layout=lay,
          name="real_stem",
      )(images)
    if self.kind == "pad":
      x = layers.Pad(alg, layout=lay, name="pad")(images)
    else:
      x = layers.Tile(alg, layout=lay, name="tile")(images)
    return layers.Conv2D(
        self.channels,
        self.kernel_shape,
        alg,
        stride=self.stride,
        padding="SAME",
        with_bias=False,
        layout=lay,
        path=self.path,
        name="conv",
    )(x)


class ClassifierHead(hk.Module):
  """Pooled algebra features -> real logits: the model's output layer ('head').

  Kinds (`HEADS`):
    flatten_real: `layers.FlattenReal`, a real Linear (with bias) on the C*d
      reals. Parameters: head/flatten_real/linear w [C*d, K], b [K].
    first_component / norm: an algebra Linear (with bias) to K algebra
      channels, then component 0 (`layers.FirstComponent`) or the element
      norm (`layers.Norm`) of each. Parameters: head/linear w [C, K, d],
      b [K, d].
  """

  def __init__(
      self,
      kind: str,
      num_classes: int,
      algebra,
      *,
      layout: str,
      path: str = AUTO,
      name: str = HEAD_NAME,
  ):
    """Constructs the head.

    Args:
      kind: one of HEADS.
      num_classes: K.
      algebra: registered name or `Algebra`.
      layout: input layout, 'standard' or 'folded'.
      path: kernel path of the algebra Linear (first_component/norm).
      name: module name; keep 'head' (accounting looks for it).

    Raises:
      ValueError: unknown kind, algebra or layout, folded layout with a
        non-matrix algebra, num_classes < 1.
    """
    super().__init__(name=name)
    config_access.check_choice(kind, "head", HEADS, "ClassifierHead")
    self.kind = kind
    self.algebra = algebras.get(algebra)
    self.layout = layout_lib.check_layout(layout)
    if layout == layout_lib.FOLDED:
      layout_lib.matrix_shape(self.algebra)
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int)
        or num_classes < 1
    ):
      raise ValueError(
          f"ClassifierHead: num_classes must be a positive int, got "
          f"{num_classes!r}."
      )
    self.num_classes = num_classes
    self.path = path

  def __call__(self, pooled: jax.Array) -> jax.Array:
    """Logits from pooled features.

    Args:
      pooled: [B, C, d] (standard) or [n, B, C, n*e] (folded).

    Returns:
      logits float32 [B, K].

    Raises:
      ValueError: pooled of the wrong rank or algebra axes.
    """
    alg, lay = self.algebra, self.layout
    want = 4 if lay == layout_lib.FOLDED else 3
    if pooled.ndim != want:
      body = "[n, B, C, n*e]" if want == 4 else "[B, C, d]"
      raise ValueError(
          f"ClassifierHead: expected pooled {lay} features {body}, got shape "
          f"{tuple(pooled.shape)}. Pool the spatial axes first "
          "(global_avg_pool)."
      )
    if self.kind == "flatten_real":
      logits = layers.FlattenReal(
          self.num_classes, algebra=alg, layout=lay, name="flatten_real"
      )(pooled)
    else:
      y = layers.Linear(
          self.num_classes, alg, layout=lay, path=self.path, name="linear"
      )(pooled)
      if self.kind == "first_component":
        logits = layers.FirstComponent(algebra=alg, layout=lay)(y)
      else:
        logits = layers.Norm(alg, layout=lay)(y)
    return logits.astype(jnp.float32)


# -- config checks -------------------------------------------------------------


def _check_multiplier(wm, who: str) -> None:
  if (
      isinstance(wm, bool)
      or not isinstance(wm, (int, float, np.integer, np.floating))
      or not math.isfinite(wm)
      or not wm > 0
  ):
    raise ValueError(
        f"{who}: width_multiplier must be a positive finite number (it "
        f"multiplies every real width), got {wm!r}."
    )


def _check_decay(value, key: str, who: str) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ValueError(f"{who}: {key} must be a number in [0, 1], got {value!r}.")
  if not 0.0 <= value <= 1.0:
    raise ValueError(
        f"{who}: {key} must be in [0, 1] (EMA decay of the BatchNorm running "
        f"statistics; typical 0.9 to 0.999), got {value!r}."
    )


def check_num_classes(num_classes, who: str) -> int | None:
  """num_classes as an int >= 1; None (a config checked before the data is
  loaded) stays None.

  Raises:
    ValueError: anything else.
  """
  if num_classes is None:
    return None
  if not config_access.is_int(num_classes) or num_classes < 1:
    raise ValueError(
        f"{who}: num_classes must be a positive int, got {num_classes!r}."
    )
  return int(num_classes)


def check_common_keys(
    who: str,
    *,
    algebra,
    width_multiplier,
    lift,
    head,
    norm,
    norm_mode,
    bn_decay,
    bn_eps,
    activation,
    layout,
    kernel_path,
) -> tuple[algebras.Algebra, str]:
  """Checks the shared vision keys of a model's constructor arguments.

  Args:
    who: the model name for messages, e.g. 'resnet'.
    algebra, ...: the shared keys (module docstring), as given.

  Returns:
    (the `Algebra`, the resolved layout 'standard' or 'folded').

  Raises:
    ValueError: unknown algebra, lift, head, norm, norm_mode, activation,
      layout or kernel_path; non-positive width_multiplier or bn_eps;
      bn_decay outside [0, 1]; layout='folded' with a non-matrix algebra; a
      folded layout with a kernel_path other than 'auto'/'fold';
      kernel_path='fold' with a non-matrix algebra. Messages say the fix.
  """

  def choice(value, key: str, valid, note: str = "") -> None:
    config_access.check_choice(value, key, valid, who, note)

  alg = algebras.get(algebra)  # Lists the valid names.
  _check_multiplier(width_multiplier, who)
  choice(lift, "lift", LIFTS)
  choice(head, "head", HEADS)
  choice(
      norm,
      "norm",
      NORMS,
      " Vision models use BatchNorm ('batch') or no normalisation ('none').",
  )
  choice(norm_mode, "norm_mode", layers.NORM_MODES)
  _check_decay(bn_decay, "bn_decay", who)
  eps = bn_eps
  if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
    raise ValueError(
        f"{who}: bn_eps must be a positive number (e.g. 1e-5), got {eps!r}."
    )
  choice(activation, "activation", layers.ACTIVATIONS)
  choice(layout, "layout", LAYOUTS)
  if layout == layout_lib.FOLDED and alg.matrix_shape is None:
    raise ValueError(
        f"{who}: layout='folded' needs a matrix algebra M_n(base) (e.g. M2R, "
        f"M3R, M4R, M2C); {alg.name!r} is not one. Use layout='auto' or "
        "'standard'."
    )
  choice(kernel_path, "kernel_path", (AUTO, *kernels.CONV_PATHS))
  if kernel_path == "fold" and alg.matrix_shape is None:
    raise ValueError(
        f"{who}: kernel_path='fold' needs a matrix algebra; {alg.name!r} is "
        "not one. Use kernel_path='auto'."
    )
  resolved = resolve_layout(alg, layout)
  if resolved == layout_lib.FOLDED and kernel_path not in (AUTO, "fold"):
    raise ValueError(
        f"{who}: layout={layout!r} runs {alg.name} folded, which always uses "
        f"the fold kernel; got kernel_path={kernel_path!r}. Use "
        "kernel_path='auto' or 'fold', or layout='standard'."
    )
  return alg, resolved
