"""Pruning masks for Haiku parameter dicts.

Mask convention: a masks pytree has the structure of the params
({module_path: {leaf_name: ...}}); a pruned leaf's mask is a bool array of
the param's shape (True = kept), a leaf that is not pruned has mask None.
Paths are written "module_path/leaf_name".

Granularities:
  'element': one score per algebra element, the algebra norm over the
    trailing d axis; all d components are kept or pruned together.
  'unstructured': one score |w| per real component.
  'block': real weights [N, M] or [kh, kw, C, M]; one score per b_h x b_w
    block of the last two axes (the L2 norm of the block).

Everything is jnp with static shapes, so masks can be recomputed under
`jax.jit` with traced sparsities.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras

GRANULARITIES = ("element", "unstructured", "block")
RANKINGS = ("layer", "global")

Params = Mapping[str, Mapping[str, jax.Array]]


def path_of(module: str, leaf: str) -> str:
  """The "module_path/leaf_name" key used for patterns and sparsities."""
  return f"{module}/{leaf}"


def leaves(tree: Mapping) -> list[tuple[str, str, object]]:
  """(module, leaf_name, value) triples of a two-level Haiku dict."""
  return [(m, k, v) for m, sub in tree.items() for k, v in sub.items()]


def select(
    params: Params,
    include: Sequence[str] = (".*",),
    exclude: Sequence[str] = (),
    leaf_names: Sequence[str] = ("w",),
) -> dict[str, dict[str, bool]]:
  """Which leaves are pruned, by regex on "module_path/leaf_name".

  A leaf is selected when its name is in `leaf_names`, its path matches
  (re.search) some `include` pattern and no `exclude` pattern. Dimensions
  play no part: exclude e.g. the first layer and the head by name.

  Returns:
    {module: {leaf: bool}} with the structure of `params`.
  """
  if isinstance(include, str) or isinstance(exclude, str):
    raise TypeError(
        "include/exclude must be sequences of patterns, e.g. ('head',), not a"
        f" bare string: got include={include!r}, exclude={exclude!r}."
    )
  inc = [re.compile(p) for p in include]
  exc = [re.compile(p) for p in exclude]
  out: dict[str, dict[str, bool]] = {}
  for module, sub in params.items():
    out[module] = {}
    for leaf in sub:
      path = path_of(module, leaf)
      out[module][leaf] = bool(
          leaf in leaf_names
          and any(p.search(path) for p in inc)
          and not any(p.search(path) for p in exc)
      )
  return out


def _check_granularity(granularity: str) -> None:
  if granularity not in GRANULARITIES:
    raise ValueError(
        f"granularity must be one of {GRANULARITIES}, got {granularity!r}."
    )


def _check_sparsity(sparsity, where: str = "") -> None:
  if isinstance(sparsity, (int, float, np.floating, np.integer)) and not (
      0.0 <= float(sparsity) < 1.0
  ):
    raise ValueError(
        f"sparsity{where} must be in [0, 1) (the fraction pruned), got"
        f" {sparsity!r}."
    )


def _is_r_weight(w_shape) -> bool:
  # An algebra layer over R stores [N, M, 1] (conv [kh, kw, C, M, 1]): a real
  # weight with a trailing d = 1 axis, block-pruned like the plain one.
  return len(w_shape) in (3, 5) and w_shape[-1] == 1


def _real_block_view(w_shape: tuple, block_shape) -> tuple[int, int]:
  """Validates a block-pruned real weight; returns (b_h, b_w)."""
  if block_shape is None or len(block_shape) != 2:
    raise ValueError(
        f"granularity='block' needs block_shape=(b_h, b_w), got {block_shape!r}."
    )
  if len(w_shape) not in (2, 4):
    raise ValueError(
        "granularity='block' takes real weights [N, M] or [kh, kw, C, M]"
        f" (or an R layer's [..., 1]); got shape {w_shape}. Use 'element' for"
        " algebra weights."
    )
  bh, bw = (int(b) for b in block_shape)
  c, m = w_shape[-2:]
  if bh <= 0 or bw <= 0 or c % bh or m % bw:
    raise ValueError(
        f"block_shape {(bh, bw)} does not divide the last two axes {(c, m)} of"
        f" a weight of shape {w_shape}; pick divisors of {c} and {m}."
    )
  return bh, bw


def scores(
    w: jax.Array,
    *,
    granularity: str = "element",
    algebra: str | algebras.Algebra | None = None,
    block_shape: Sequence[int] | None = None,
) -> jax.Array:
  """Pruning scores (larger = more important).

  Args:
    w: weight; for 'element' its last axis is the algebra dimension d.
    granularity: 'element', 'unstructured' or 'block'.
    algebra: the algebra (name or Algebra); needed for 'element'.
    block_shape: (b_h, b_w) for 'block'.

  Returns:
    'element': algebra.norm(w), shape w.shape[:-1];
    'unstructured': |w|, shape w.shape;
    'block': block L2 norms, shape [..., C / b_h, M / b_w].
  """
  _check_granularity(granularity)
  w = jnp.asarray(w)
  if granularity == "unstructured":
    return jnp.abs(w)
  if granularity == "element":
    if algebra is None:
      raise ValueError(
          "granularity='element' needs the algebra (e.g. algebra='H') to"
          " score each element by its norm."
      )
    alg = algebras.get(algebra)
    if w.ndim < 1 or w.shape[-1] != alg.dim:
      raise ValueError(
          f"weight of shape {w.shape} does not end in {alg.name}'s dimension"
          f" {alg.dim}; algebra weights are [..., d]."
      )
    return alg.norm(w)
  if _is_r_weight(w.shape):
    w = w[..., 0]
  bh, bw = _real_block_view(w.shape, block_shape)
  c, m = w.shape[-2:]
  lead = w.shape[:-2]
  blocks = w.reshape(*lead, c // bh, bh, m // bw, bw)
  return jnp.sqrt(jnp.sum(jnp.square(blocks), axis=(-3, -1)))


def _ranked_keep(flat: jax.Array, sparsity) -> jax.Array:
  """Keeps all but the round(sparsity * n) lowest of a 1-D score vector.

  A stable argsort breaks ties by position (the earlier index is pruned
  first), so the result is deterministic and prunes exactly that many.
  """
  n = flat.shape[0]
  n_prune = jnp.round(jnp.asarray(sparsity, jnp.float32) * n).astype(jnp.int32)
  order = jnp.argsort(flat, stable=True)
  rank = (
      jnp.zeros((n,), jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))
  )
  return rank >= n_prune


def mask_from_scores(score: jax.Array, sparsity) -> jax.Array:
  """Bool mask of `score`'s shape keeping the top (1 - sparsity) fraction.

  Exactly round(sparsity * score.size) entries are pruned (False); ties are
  broken by flat index (lower index pruned first). `sparsity` may be traced.
  """
  _check_sparsity(sparsity)
  score = jnp.asarray(score)
  return _ranked_keep(score.reshape(-1), sparsity).reshape(score.shape)


def expand_mask(
    mask: jax.Array,
    w_shape: Sequence[int],
    granularity: str,
    block_shape: Sequence[int] | None = None,
) -> jax.Array:
  """Expands a score-shaped mask to the param shape `w_shape`.

  'element' masks [..., ] broadcast over the trailing d axis; 'block' masks
  [..., C/b_h, M/b_w] are repeated b_h x b_w; 'unstructured' is unchanged.
  """
  _check_granularity(granularity)
  w_shape = tuple(w_shape)
  if granularity == "element":
    return jnp.broadcast_to(mask[..., None], w_shape)
  if granularity == "block":
    r_weight = _is_r_weight(w_shape)
    real_shape = w_shape[:-1] if r_weight else w_shape
    bh, bw = _real_block_view(real_shape, block_shape)
    mask = jnp.repeat(jnp.repeat(mask, bh, axis=-2), bw, axis=-1)
    if r_weight:
      mask = mask[..., None]
  return jnp.broadcast_to(mask, w_shape)


def reduce_mask(
    mask: jax.Array,
    granularity: str,
    block_shape: Sequence[int] | None = None,
) -> jax.Array:
  """Inverse of `expand_mask`: a param-shaped mask back to score shape."""
  _check_granularity(granularity)
  if granularity == "element":
    return mask[..., 0]
  if granularity == "block":
    if _is_r_weight(mask.shape):
      mask = mask[..., 0]
    bh, bw = _real_block_view(mask.shape, block_shape)
    return mask[..., ::bh, ::bw]
  return mask


def _per_path(value, path: str, what: str):
  if isinstance(value, Mapping):
    if path not in value:
      raise KeyError(
          f"no {what} for selected leaf {path!r}; given for {sorted(value)}."
      )
    return value[path]
  return value


def compute_masks(
    params: Params,
    selected: Mapping[str, Mapping[str, bool]],
    sparsities: Mapping[str, float] | float,
    *,
    granularity: str = "element",
    algebra: str | algebras.Algebra | Mapping | None = None,
    block_shape: Sequence[int] | None = None,
    ranking: str = "layer",
    previous_masks: Mapping | None = None,
) -> dict[str, dict[str, jax.Array | None]]:
  """Magnitude masks for the selected leaves of `params`.

  Args:
    params: {module: {leaf: array}}.
    selected: same structure, bools (see `select`).
    sparsities: one sparsity for all, or "module/leaf" -> sparsity (layer
      ranking only). Values in [0, 1), may be traced.
    granularity: 'element', 'unstructured' or 'block'.
    algebra: name/Algebra for all leaves or "module/leaf" -> name ('element').
    block_shape: (b_h, b_w) for 'block'.
    ranking: 'layer' prunes each leaf to its own sparsity; 'global' uses one
      threshold over all selected leaves' scores, comparing the scores of
      different layers directly (so layers with smaller weights, e.g. wider
      ones under fan-in scaled init, lose more) and counting units
      (elements, components or blocks) rather than real parameters.
    previous_masks: an earlier masks pytree; units it pruned get the lowest
      score, so they stay pruned while sparsity does not decrease (even if
      some kept weights are exactly zero too).

  Returns:
    masks pytree: bool [param shape] for selected leaves, None otherwise.
  """
  _check_granularity(granularity)
  if ranking not in RANKINGS:
    raise ValueError(f"ranking must be one of {RANKINGS}, got {ranking!r}.")
  if ranking == "global" and isinstance(sparsities, Mapping):
    raise ValueError(
        "ranking='global' uses one sparsity for all layers; pass a float, not"
        f" a dict of {len(sparsities)} per-layer sparsities."
    )
  if isinstance(sparsities, Mapping):
    for p, s in sparsities.items():
      _check_sparsity(s, f" for {p!r}")
  else:
    _check_sparsity(sparsities)

  chosen = [(m, k, v) for m, k, v in leaves(params) if selected[m][k]]
  layer_scores = {}
  for module, leaf, w in chosen:
    path = path_of(module, leaf)
    alg = _per_path(algebra, path, "algebra") if algebra is not None else None
    s = scores(w, granularity=granularity, algebra=alg, block_shape=block_shape)
    if previous_masks is not None and previous_masks[module][leaf] is not None:
      prev = reduce_mask(previous_masks[module][leaf], granularity, block_shape)
      # Norms are >= 0, so -1 ranks every previously pruned unit first.
      s = jnp.where(prev, s, -1.0)
    layer_scores[path] = s

  small = {}
  if ranking == "layer":
    for path, s in layer_scores.items():
      small[path] = mask_from_scores(s, _per_path(sparsities, path, "sparsity"))
  elif layer_scores:
    flat = jnp.concatenate([s.reshape(-1) for s in layer_scores.values()])
    keep = _ranked_keep(flat, sparsities)
    start = 0
    for path, s in layer_scores.items():
      small[path] = keep[start : start + s.size].reshape(s.shape)
      start += s.size

  out: dict[str, dict[str, jax.Array | None]] = {}
  for module, sub in params.items():
    out[module] = {}
    for leaf, w in sub.items():
      path = path_of(module, leaf)
      out[module][leaf] = (
          expand_mask(small[path], w.shape, granularity, block_shape)
          if path in small
          else None
      )
  return out
