"""Batch and layer normalization for algebra-valued activations.

Shape glossary: B = batch, S = spatial/sequence axes (any number, also none),
C = algebra channels, d = algebra dimension, n = matrix size and e = base
dimension of a matrix algebra M_n(base) (d = n * n * e).

Activations come in the layouts of `algebranets.layout`:

  standard: x[B, S..., C, d]
  folded:   x[n, B, S..., C, n * e]  (matrix column on axis 0)

Parameters and running statistics are ALWAYS stored in canonical per-channel
shapes ([C, d], [C, d, d], [C]) that do not depend on the layout, so a
checkpoint trained folded loads into a standard network and vice versa.

Three modes say what a "channel" is (paper.md section 5):

  'component': every real component of every algebra channel is its own
      channel. BatchNorm is exactly `hk.BatchNorm` on x.reshape(..., C * d);
      LayerNorm is a real LayerNorm over the C * d reals of a token. This is
      the paper's default and the cheapest.
  'element': one variance per algebra channel (mean squared norm / d) after
      subtracting the mean element, then an algebra-valued affine
      y = gamma x_hat + beta (algebra product, gamma on the left). Preserves
      the algebra structure (no per-component rescaling) at component cost.
  'whiten': Trabelsi et al. 2018 / Gaudet & Maida 2018 whitening: per
      algebra channel a d x d covariance, ZCA whitening with its inverse
      square root, then a learned d x d affine. Costs an eigendecomposition
      of a d x d matrix per channel (BatchNorm) or per token (LayerNorm).

Numerics (peers.md b.1): statistics are two-pass (centre, then square) and
computed in float32 for bfloat16/float16 inputs; normalizers use rsqrt. The
whitening maths (covariances, the scaled eps, the inverse square root with a
derivative that stays finite for repeated eigenvalues) is the pure
`algebranets.kernels.whitening`; argument checks are in `layers/_checks.py`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras
from algebranets import layout as layout_lib
from algebranets.kernels import whitening
from algebranets.layers import _checks

MODES = ("component", "element", "whiten")
KINDS = ("batch", "layer", "none")
# String alternative to a callable `scale_init` for mode='whiten'.
TRABELSI = "trabelsi"

_HIGHEST = whitening.HIGHEST

Initializer = Callable[[Sequence[int], jnp.dtype], jax.Array]


def _compute_dtype(dtype) -> jnp.dtype:
  # float32 for bfloat16/float16 (statistics of low-precision activations
  # are too coarse); otherwise keep the input dtype (no float64 upcast).
  return jnp.promote_types(dtype, jnp.float32)


# -- pure helpers --------------------------------------------------------------


def _canonical(stat: jax.Array, algebra, layout: str) -> jax.Array:
  """Per-component statistic in the layout ([C, d] / [n, C, n*e]) -> [C, d]."""
  if layout == layout_lib.STANDARD:
    return stat
  return layout_lib.unfold(stat, algebra)


def _bcast(p: jax.Array, algebra, layout: str, ndim: int) -> jax.Array:
  return layout_lib.broadcast_param(p, algebra, layout, ndim)


def _left_multiply(
    gamma: jax.Array, x: jax.Array, algebra: algebras.Algebra, layout: str
) -> jax.Array:
  """gamma x with the algebra product, gamma [C, d], x in `layout`."""
  lmat = algebra.left_matrix(gamma)  # [C, d, d], lmat @ x == gamma x
  if layout == layout_lib.FOLDED:
    # Left multiplication by a matrix acts on every column alike: L(gamma) is
    # block diagonal over the column, so the folded layout only needs the
    # (row, base) x (row, base) block of column 0.
    n, e = layout_lib.matrix_shape(algebra)
    c = gamma.shape[0]
    lmat = lmat.reshape(c, n, n, e, n, n, e)[:, :, 0, :, :, 0, :]
    lmat = lmat.reshape(c, n * e, n * e)
  return jnp.einsum("...cj,cij->...ci", x, lmat, precision=_HIGHEST)


# -- parameters ----------------------------------------------------------------


def _make_affine(
    algebra: algebras.Algebra,
    mode: str,
    channels: int,
    dtype,
    create_scale: bool,
    create_offset: bool,
    scale_init: Initializer | str | None,
) -> tuple[jax.Array | None, jax.Array | None]:
  """Creates (scale, offset) in canonical shapes; None where not created."""
  d = algebra.dim
  scale = offset = None
  if create_scale:
    if mode == "whiten":
      shape = (channels, d, d)
      if scale_init is None:
        init = _eye_init
      elif isinstance(scale_init, str):
        init = _trabelsi_init
      else:
        init = scale_init
    else:
      shape = (channels, d)
      if scale_init is not None:
        init = scale_init
      elif mode == "element" and algebra.unit is not None:
        init = _unit_init(algebra.unit)
      else:
        init = jnp.ones
    scale = hk.get_parameter("scale", shape, dtype, init=init)
    scale = scale.astype(dtype)
  if create_offset:
    offset = hk.get_parameter("offset", (channels, d), dtype, init=jnp.zeros)
    offset = offset.astype(dtype)
  return scale, offset


def _eye_init(shape, dtype):
  return jnp.broadcast_to(jnp.eye(shape[-1], dtype=dtype), shape)


def _trabelsi_init(shape, dtype):
  # Trabelsi et al. 2018 (C) and Gaudet & Maida 2018 (H) start gamma at
  # I / sqrt(d), so each whitened element has unit expected squared norm.
  return _eye_init(shape, dtype) / np.sqrt(shape[-1]).astype(dtype)


def _unit_init(unit: np.ndarray) -> Initializer:
  def init(shape, dtype):
    return jnp.broadcast_to(jnp.asarray(unit, dtype), shape)

  return init


def _check_scale_init(scale_init, mode: str, create_scale: bool, who: str):
  return _checks.scale_init(
      scale_init, mode, create_scale, who, named=TRABELSI, named_mode="whiten"
  )


def _apply_affine(
    xhat: jax.Array,
    scale: jax.Array | None,
    offset: jax.Array | None,
    algebra: algebras.Algebra,
    mode: str,
    layout: str,
) -> jax.Array:
  """Component-wise or algebra-valued affine for 'component'/'element'."""
  if scale is not None:
    if mode == "element" and algebra.unit is not None:
      xhat = _left_multiply(scale, xhat, algebra, layout)
    else:
      xhat = xhat * _bcast(scale, algebra, layout, xhat.ndim)
  if offset is not None:
    xhat = xhat + _bcast(offset, algebra, layout, xhat.ndim)
  return xhat


# -- modules -------------------------------------------------------------------


class BatchNorm(hk.Module):
  """Batch normalization of algebra-valued activations.

  Statistics are taken over the batch and all spatial axes, separately for
  every algebra channel; see the module docstring for the three modes.

  Parameters (canonical shapes, independent of `layout`):
    mode='component': scale [C, d] (init 1), offset [C, d] (init 0).
    mode='element':   scale [C, d] = algebra-valued gamma (init the algebra's
        unit), applied as gamma * x_hat with the algebra product, gamma on
        the left; offset [C, d] (init 0). Algebras without a unit ('cross')
        get a component-wise real scale [C, d] (init 1) instead: the cross
        product with any fixed gamma has rank 2 and would delete the
        component of x_hat along gamma.
    mode='whiten':    scale [C, d, d] (init identity, or I / sqrt(d) with
        scale_init='trabelsi' as in Trabelsi et al. 2018), offset [C, d].

  State (Haiku state, updated only when is_training):
    mean [C, d] (init 0) in every mode; var [C, d] ('component', init 1),
    var [C] ('element', mean squared norm / d, init 1) or cov [C, d, d]
    ('whiten', init identity). Updated as running = decay_rate * running +
    (1 - decay_rate) * batch (no zero-debiasing, unlike hk.BatchNorm).
    Variances are the biased (1/N) batch estimates, as in hk.BatchNorm.

  With layout='folded', 'component' and 'element' run on the folded array
  directly (the fold axis holds the matrix column, so it is not reduced);
  'whiten' unfolds, whitens and folds back, because the d x d whitening
  mixes all components of an element, i.e. across the fold axis.
  """

  # Normalisation is not a linear-layer MAC (see metrics.accounting).
  performs_no_macs = True

  def __init__(
      self,
      algebra: str | algebras.Algebra,
      *,
      mode: str = "component",
      layout: str = layout_lib.STANDARD,
      decay_rate: float = 0.9,
      eps: float = 1e-5,
      create_scale: bool = True,
      create_offset: bool = True,
      scale_init: Initializer | str | None = None,
      name: str | None = None,
  ):
    """Constructs a BatchNorm.

    Args:
      algebra: algebra name or `Algebra`.
      mode: 'component', 'element' or 'whiten'.
      layout: 'standard' or 'folded' (matrix algebras only).
      decay_rate: EMA decay of the running statistics, in [0, 1].
      eps: added to variances; for 'whiten' the shift is
        eps * trace(cov) / d + eps.
      create_scale: whether to learn a scale (see class docstring).
      create_offset: whether to learn an offset [C, d].
      scale_init: Haiku initializer for the scale (default per mode, see the
        class docstring), or 'trabelsi' for mode='whiten'.
      name: module name.

    Raises:
      ValueError: unknown mode/layout, folded layout with a non-matrix
        algebra, decay_rate outside [0, 1], eps <= 0, or a bad scale_init.
    """
    super().__init__(name=name)
    who = "BatchNorm"
    self.algebra = algebras.get(algebra)
    self.mode = _checks.one_of(mode, MODES, who, "mode")
    self.layout = _checks.layout_for(self.algebra, layout, who)
    if not 0.0 <= decay_rate <= 1.0:
      raise ValueError(
          f"{who}: decay_rate must be in [0, 1], got {decay_rate}. Typical "
          "values are 0.9 to 0.999."
      )
    self.decay_rate = float(decay_rate)
    self.eps = _checks.positive_eps(eps, who)
    self.create_scale = create_scale
    self.create_offset = create_offset
    self.scale_init = _check_scale_init(scale_init, mode, create_scale, who)

  def __call__(
      self,
      x: jax.Array,
      is_training: bool,
      test_local_stats: bool = False,
  ) -> jax.Array:
    """Normalizes x.

    Args:
      x: [B, S..., C, d] (standard) or [n, B, S..., C, n*e] (folded).
      is_training: use batch statistics and update the running ones.
      test_local_stats: with is_training=False, use batch statistics without
        updating the running ones.

    Returns:
      An array of the shape and dtype of x.

    Raises:
      ValueError: wrong shape or dtype of x; mode='whiten' with fewer than 2
        samples per channel (B times spatial size) when using batch stats.
    """
    x = jnp.asarray(x)
    _checks.check_activations(x, self.algebra, self.layout, 1, "BatchNorm")
    dtype = _compute_dtype(x.dtype)
    xc = x.astype(dtype)
    use_batch = is_training or test_local_stats
    if self.mode == "whiten" and self.layout == layout_lib.FOLDED:
      xs = layout_lib.unfold(xc, self.algebra)
      y = self._whiten(xs, use_batch, is_training, dtype)
      y = layout_lib.fold(y, self.algebra)
    elif self.mode == "whiten":
      y = self._whiten(xc, use_batch, is_training, dtype)
    else:
      y = self._moments(xc, use_batch, is_training, dtype)
    return y.astype(x.dtype)

  def _sample_axes(self, ndim: int) -> tuple[int, ...]:
    first = 1 if self.layout == layout_lib.FOLDED else 0
    return tuple(range(first, ndim - 2))

  def _update(self, name: str, batch_value: jax.Array) -> None:
    old = hk.get_state(name)
    new = self.decay_rate * old + (1.0 - self.decay_rate) * batch_value
    hk.set_state(name, jax.lax.stop_gradient(new).astype(old.dtype))

  def _moments(self, x, use_batch, is_training, dtype):
    """'component' and 'element' modes, in either layout."""
    alg, layout = self.algebra, self.layout
    c, d, ndim = x.shape[-2], alg.dim, x.ndim
    axes = self._sample_axes(ndim)
    var_shape = (c, d) if self.mode == "component" else (c,)
    run_mean = hk.get_state("mean", (c, d), dtype, init=jnp.zeros)
    run_var = hk.get_state("var", var_shape, dtype, init=jnp.ones)
    if use_batch:
      mean = _canonical(jnp.mean(x, axis=axes), alg, layout)
      xc = x - _bcast(mean, alg, layout, ndim)
      if self.mode == "component":
        var = _canonical(jnp.mean(jnp.square(xc), axis=axes), alg, layout)
      else:
        # Mean squared norm / d of the centred element: the element's
        # components are the last axis plus, when folded, axis 0.
        comp_axes = (ndim - 1,) + ((0,) if layout == layout_lib.FOLDED else ())
        var = jnp.mean(jnp.square(xc), axis=axes + comp_axes)
    else:
      mean, var = run_mean.astype(dtype), run_var.astype(dtype)
      xc = x - _bcast(mean, alg, layout, ndim)
    if is_training:
      self._update("mean", mean)
      self._update("var", var)
    inv = jax.lax.rsqrt(var + jnp.asarray(self.eps, dtype))
    if self.mode == "component":
      xhat = xc * _bcast(inv, alg, layout, ndim)
    else:
      # Explicit leading ones: the house rule forbids implicit rank promotion.
      xhat = xc * inv.reshape((1,) * (ndim - 2) + (c, 1))
    scale, offset = _make_affine(
        alg,
        self.mode,
        c,
        dtype,
        self.create_scale,
        self.create_offset,
        self.scale_init,
    )
    return _apply_affine(xhat, scale, offset, alg, self.mode, layout)

  def _whiten(self, x, use_batch, is_training, dtype):
    """'whiten' mode on the standard layout x[B, S..., C, d]."""
    c, d = x.shape[-2], self.algebra.dim
    run_mean = hk.get_state("mean", (c, d), dtype, init=jnp.zeros)
    run_cov = hk.get_state("cov", (c, d, d), dtype, init=_eye_init)
    lead = (1,) * (x.ndim - 2)  # explicit ranks (no implicit promotion)
    if use_batch:
      flat = x.reshape(-1, c, d)
      if flat.shape[0] < 2:
        raise ValueError(
            "BatchNorm(mode='whiten'): needs at least 2 samples per channel "
            f"(batch x spatial size) to estimate a covariance, got x of shape "
            f"{tuple(x.shape)}. Use a larger batch, mode='component', or "
            "is_training=False."
        )
      mean = jnp.mean(flat, axis=0)
      xc = x - mean.reshape((*lead, c, d))
      cov = whitening.sample_covariance(flat - mean[None])
    else:
      mean, cov = run_mean.astype(dtype), run_cov.astype(dtype)
      xc = x - mean.reshape((*lead, c, d))
    if is_training:
      self._update("mean", mean)
      self._update("cov", cov)
    w = whitening.whitening_matrix(cov, self.eps)  # [C, d, d]
    scale, offset = _make_affine(
        self.algebra,
        "whiten",
        c,
        dtype,
        self.create_scale,
        self.create_offset,
        self.scale_init,
    )
    if scale is not None:
      # One [d, d] matrix per channel: gamma @ W, applied once.
      w = jnp.einsum("cij,cjk->cik", scale, w, precision=_HIGHEST)
    y = jnp.einsum("...cj,cij->...ci", xc, w, precision=_HIGHEST)
    if offset is not None:
      y = y + offset.reshape((*lead, c, d))
    return y


class LayerNorm(hk.Module):
  """Per-token normalization over all algebra channels of a token.

  x is [..., C, d] (standard) or [n, ..., C, n*e] (folded); every leading
  axis (of the folded array: every axis after the first) indexes tokens.

  Modes:
    'component': mean and variance over the C * d reals of the token (in the
        folded layout those sit on axis 0 and the last two axes), then a
        per-real scale [C, d] (init 1) and offset [C, d] (init 0). This is
        what a real Transformer with d_model = C * d does.
    'element': subtract the token's mean element (mean over C of each
        component), divide by sqrt(mean over C of squared norm / d + eps),
        then y = gamma x_hat + beta with the algebra product, gamma [C, d]
        (init unit; component-wise real scale for algebras without a unit,
        see BatchNorm), beta [C, d].
    'whiten': per token the d x d covariance over the C channels, ZCA
        whitening, then per channel y = gamma[c] x_w + beta[c] with gamma
        [C, d, d] (init identity, or scale_init='trabelsi'), beta [C, d].
        Costs one d x d eigendecomposition per token; needs C >= 2 (and
        C >= d to actually whiten all d directions). The folded layout is
        unfolded for it (the whitening mixes across the fold axis).

  There is no state; `is_training` is accepted for a uniform call signature
  with BatchNorm and ignored.
  """

  # Normalisation is not a linear-layer MAC (see metrics.accounting).
  performs_no_macs = True

  def __init__(
      self,
      algebra: str | algebras.Algebra,
      *,
      mode: str = "component",
      layout: str = layout_lib.STANDARD,
      eps: float = 1e-5,
      create_scale: bool = True,
      create_offset: bool = True,
      scale_init: Initializer | str | None = None,
      name: str | None = None,
  ):
    """Constructs a LayerNorm.

    Args:
      algebra: algebra name or `Algebra`.
      mode: 'component', 'element' or 'whiten'.
      layout: 'standard' or 'folded' (matrix algebras only).
      eps: added to variances; for 'whiten' the shift is
        eps * trace(cov) / d + eps.
      create_scale: whether to learn a scale (see class docstring).
      create_offset: whether to learn an offset [C, d].
      scale_init: Haiku initializer for the scale (default per mode), or
        'trabelsi' for mode='whiten'.
      name: module name.

    Raises:
      ValueError: unknown mode/layout, folded layout with a non-matrix
        algebra, eps <= 0, or a bad scale_init.
    """
    super().__init__(name=name)
    who = "LayerNorm"
    self.algebra = algebras.get(algebra)
    self.mode = _checks.one_of(mode, MODES, who, "mode")
    self.layout = _checks.layout_for(self.algebra, layout, who)
    self.eps = _checks.positive_eps(eps, who)
    self.create_scale = create_scale
    self.create_offset = create_offset
    self.scale_init = _check_scale_init(scale_init, mode, create_scale, who)

  def __call__(self, x: jax.Array, is_training: bool | None = None):
    """Normalizes each token of x.

    Args:
      x: [..., C, d] (standard) or [n, ..., C, n*e] (folded).
      is_training: ignored (LayerNorm has no running statistics).

    Returns:
      An array of the shape and dtype of x.

    Raises:
      ValueError: wrong shape or dtype of x; mode='whiten' with C < 2.
    """
    del is_training  # Same computation in training and evaluation.
    x = jnp.asarray(x)
    _checks.check_activations(x, self.algebra, self.layout, 0, "LayerNorm")
    dtype = _compute_dtype(x.dtype)
    xc = x.astype(dtype)
    if self.mode == "whiten":
      if self.layout == layout_lib.FOLDED:
        y = self._whiten(layout_lib.unfold(xc, self.algebra), dtype)
        y = layout_lib.fold(y, self.algebra)
      else:
        y = self._whiten(xc, dtype)
      return y.astype(x.dtype)
    alg, layout, ndim = self.algebra, self.layout, x.ndim
    token_axes = (ndim - 2, ndim - 1)
    if layout == layout_lib.FOLDED:
      token_axes = (0, *token_axes)
    eps = jnp.asarray(self.eps, dtype)
    if self.mode == "component":
      mean = jnp.mean(xc, axis=token_axes, keepdims=True)
    else:
      # Mean element over the channels; each component (and, folded, each
      # column on axis 0) keeps its own mean.
      mean = jnp.mean(xc, axis=-2, keepdims=True)
    xc = xc - mean
    # In both modes the variance is the mean over the token's C * d reals of
    # the centred values (= mean over C of squared norm / d for 'element').
    var = jnp.mean(jnp.square(xc), axis=token_axes, keepdims=True)
    xhat = xc * jax.lax.rsqrt(var + eps)
    scale, offset = _make_affine(
        alg,
        self.mode,
        x.shape[-2],
        dtype,
        self.create_scale,
        self.create_offset,
        self.scale_init,
    )
    y = _apply_affine(xhat, scale, offset, alg, self.mode, layout)
    return y.astype(x.dtype)

  def _whiten(self, x, dtype):
    """'whiten' mode on the standard layout x[..., C, d]."""
    c = x.shape[-2]
    if c < 2:
      raise ValueError(
          "LayerNorm(mode='whiten'): needs at least 2 algebra channels per "
          f"token to estimate a covariance, got x of shape {tuple(x.shape)} "
          "(C = 1). Use mode='component' or 'element'."
      )
    xc = x - jnp.mean(x, axis=-2, keepdims=True)
    cov = whitening.channel_covariance(xc)  # [..., d, d]
    w = whitening.whitening_matrix(cov, self.eps)  # [..., d, d]
    y = jnp.einsum("...cj,...ij->...ci", xc, w, precision=_HIGHEST)
    scale, offset = _make_affine(
        self.algebra,
        "whiten",
        c,
        dtype,
        self.create_scale,
        self.create_offset,
        self.scale_init,
    )
    if scale is not None:
      y = jnp.einsum("...cj,cij->...ci", y, scale, precision=_HIGHEST)
    if offset is not None:
      y = y + offset.reshape((1,) * (y.ndim - 2) + offset.shape)
    return y


def _no_norm(
    x: jax.Array,
    is_training: bool | None = None,
    test_local_stats: bool = False,
) -> jax.Array:
  """Identity with the normalizers' call signature (kind='none')."""
  del is_training, test_local_stats
  return x


def get_norm(
    kind: str,
    algebra: str | algebras.Algebra,
    mode: str = "component",
    layout: str = layout_lib.STANDARD,
    **kw,
) -> BatchNorm | LayerNorm | Callable[..., jax.Array]:
  """Builds a normalizer from config strings (call inside hk.transform).

  Args:
    kind: 'batch' (BatchNorm), 'layer' (LayerNorm) or 'none' (identity).
    algebra: algebra name or `Algebra`.
    mode: 'component', 'element' or 'whiten' (see the module docstring).
    layout: 'standard' or 'folded'.
    **kw: further constructor arguments of the chosen class (e.g.
      decay_rate, eps, name). Ignored for kind='none', so that a config can
      switch normalization off without deleting its options.

  Returns:
    A module (or, for 'none', a function) called as f(x, is_training).

  Raises:
    ValueError: unknown kind, mode or layout, or an option the chosen class
      does not take.
  """
  _checks.one_of(kind, KINDS, "get_norm", "kind")
  alg = algebras.get(algebra)
  who = f"get_norm({kind!r})"
  _checks.one_of(mode, MODES, who, "mode")
  _checks.layout_for(alg, layout, who)
  if kind == "none":
    return _no_norm
  cls = BatchNorm if kind == "batch" else LayerNorm
  params = inspect.signature(cls.__init__).parameters
  accepted = [
      p for p in params if p not in ("self", "algebra", "mode", "layout")
  ]
  unknown = sorted(set(kw) - set(accepted))
  if unknown:
    raise ValueError(
        f"{who}: {cls.__name__} does not take {', '.join(unknown)}; it "
        f"accepts {', '.join(accepted)}."
    )
  return cls(alg, mode=mode, layout=layout, **kw)
