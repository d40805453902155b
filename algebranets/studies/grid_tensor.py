"""Grid tensors of score functions and the numerical rank of matricizations.

The expressivity probe of the ConvAC literature (Cohen, Sharir & Shashua
2016; Sharir & Shashua 2018, "On the Expressive Power of Overlapping
Architectures of Deep Learning"). A network scores inputs made of N
positions (patches) x_1..x_N. Fix M template patches t_1..t_M and evaluate
the score on every one of the M^N inputs built from them:

    A[d_1, ..., d_N] = score(t_{d_1}, ..., t_{d_N}),   d_i in {0..M-1}.

A is the grid tensor. For a ConvAC with M representation functions f_m the
score is sum_{m_1..m_N} W[m_1..m_N] prod_i f_{m_i}(x_i), so A = W x_1 F
... x_N F with F[d, m] = f_m(t_d): when F is invertible, A and the
coefficient tensor W have the same ranks. Split the positions into two
groups (I, J); the matricization [A]_{I,J} is the M^|I| x M^|J| matrix
with rows indexed by the templates at positions I and columns by those at
J. Its rank measures how strongly the network can correlate the two
groups (separation rank): a function that is a product g(x_I) h(x_J) has
rank 1, a sum of Z such products rank <= Z, and the largest possible rank
is min(M^|I|, M^|J|). Shallow and non-overlapping ConvACs have provably
low rank for some partitions; overlapping receptive fields raise it
(Sharir & Shashua 2018). Partitions here: 'odd_even' (the canonical one:
positions 1, 3, 5, ... against 2, 4, 6, ... counting from 1) and
'left_right' (first half against second half).

Numerical rank: the number of singular values above rtol * s_max. The
default rtol is numpy's matrix_rank rule, max(rows, cols) * eps of the
matrix's dtype, so a grid tensor evaluated in float64 is judged at float64
precision and one evaluated in float32 at float32 precision (the score
function decides the dtype; `convac_score_fn` evaluates in float64). Pass
rtol to override it, and look at `RankResult.gap` (the ratio of the last
kept to the first dropped singular value) to see how clear the cut is.

ConvACs: `convac_probe_config` describes a 1-D ConvAC (kernel k, stride
s, width, depth, pooling window) of `algebranets.models.convac`,
`make_convac_probe` gives it random weights and a float64 score function
(the raw class score of the log-space circuit, not the normalised logits),
and `random_templates` draws random orthonormal templates. With the
'identity' representation the templates are the features themselves.
scripts/convac_rank.py runs the probe over kernel sizes and widths.

Shape glossary: M = number of templates, N = number of positions, P... =
the shape of one patch (e.g. [c] for one pixel with c channels).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import haiku as hk
import jax
import numpy as np

from algebranets import metrics, models
from algebranets.models import convac

# 2^22 entries = 32 MiB in float64 and as many network evaluations; beyond
# that the SVD of the matricization (up to 2^11 x 2^11) stops being quick.
DEFAULT_MAX_ENTRIES = 1 << 22
PARTITIONS = ("odd_even", "left_right")
# Accepted spellings of PARTITIONS.
_PARTITION_ALIASES = {"canonical": "odd_even"}


def num_entries(num_templates: int, num_positions: int) -> int:
  """M^N, the number of entries (and score evaluations) of a grid tensor."""
  return int(num_templates) ** int(num_positions)


def check_size(num_templates: int, num_positions: int, max_entries: int):
  if num_positions < 1:
    raise ValueError(
        f"grid_tensor: num_positions must be >= 1, got {num_positions}; it "
        "is the number N of patches an input is made of."
    )
  if num_templates < 1:
    raise ValueError(
        f"grid_tensor: need at least one template patch, got {num_templates}"
        "; pass templates of shape [M, *patch_shape] with M >= 1."
    )
  n = num_entries(num_templates, num_positions)
  if n > max_entries:
    raise ValueError(
        f"grid_tensor: the grid tensor would have M^N = {num_templates}^"
        f"{num_positions} = {n:,} entries, more than max_entries="
        f"{max_entries:,}; use fewer templates or positions, or raise "
        "max_entries if the memory and time are acceptable."
    )


def grid_tensor(
    score_fn: Callable[[np.ndarray], Any],
    templates: np.ndarray,
    num_positions: int,
    *,
    batch_size: int = 8192,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> np.ndarray:
  """Evaluates the grid tensor A[d_1..d_N] = score(t_{d_1}, ..., t_{d_N}).

  Every combination is evaluated once, in batches; entry (d_1, ..., d_N)
  is the score of the input whose position i holds template d_i.

  Args:
    score_fn: maps inputs [B, N, *P] (the templates' dtype) to scores [B]
      (numpy or jax array; any float dtype, kept in the result).
    templates: the M template patches, [M, *P].
    num_positions: N, the number of positions of one input.
    batch_size: inputs per score_fn call (the last batch may be smaller).
    max_entries: refuse grid tensors with more than this many entries.

  Returns:
    A, numpy array of shape (M,) * N and the dtype score_fn returns.

  Raises:
    ValueError: M^N > max_entries, N < 1, M < 1, templates without a
      template axis, batch_size < 1, score_fn returning a wrong shape or
      non-finite scores.
  """
  templates = np.asarray(templates)
  if templates.ndim < 1:
    raise ValueError(
        "grid_tensor: templates must have shape [M, *patch_shape], got a "
        "scalar; stack the template patches along a first axis."
    )
  m = templates.shape[0]
  check_size(m, num_positions, max_entries)
  if batch_size < 1:
    raise ValueError(f"grid_tensor: batch_size must be >= 1, got {batch_size}.")
  total = num_entries(m, num_positions)
  shape = (m,) * num_positions
  chunks = []
  for start in range(0, total, batch_size):
    flat = np.arange(start, min(start + batch_size, total))
    # Row-major: the last position varies fastest, matching A.reshape(-1).
    index = np.stack(np.unravel_index(flat, shape), axis=1)  # [B, N]
    scores = np.asarray(score_fn(templates[index]))
    if scores.shape != (len(flat),):
      raise ValueError(
          f"grid_tensor: score_fn must map inputs {templates[index].shape} "
          f"to scores of shape ({len(flat)},), got {scores.shape}; return "
          "one scalar score per input."
      )
    chunks.append(scores)
  values = np.concatenate(chunks)
  if not np.all(np.isfinite(values)):
    bad = int(np.sum(~np.isfinite(values)))
    raise ValueError(
        f"grid_tensor: {bad} of {total} scores are not finite; the score "
        "overflows on these templates. Use templates and weights of smaller "
        "magnitude, or fewer positions."
    )
  return values.reshape(shape)


def partition(name: str, num_positions: int) -> tuple[tuple[int, ...], ...]:
  """The (rows, cols) position groups of a named partition.

  Args:
    name: 'odd_even' (alias 'canonical'): rows = positions 1, 3, 5, ...
      counting from 1, i.e. indices 0, 2, 4, ...; cols = the others.
      'left_right': rows = the first floor(N / 2) positions.
    num_positions: N >= 2.

  Returns:
    (rows, cols): two tuples of 0-based position indices, increasing.

  Raises:
    ValueError: unknown name (lists the valid ones), N < 2.
  """
  key = _PARTITION_ALIASES.get(name, name)
  if key not in PARTITIONS:
    valid = ", ".join(PARTITIONS + tuple(_PARTITION_ALIASES))
    raise ValueError(
        f"partition: unknown partition {name!r}; valid names: {valid}."
    )
  if num_positions < 2:
    raise ValueError(
        f"partition: a matricization needs N >= 2 positions, got "
        f"{num_positions}."
    )
  if key == "odd_even":
    rows = tuple(range(0, num_positions, 2))
  else:
    rows = tuple(range(num_positions // 2))
  cols = tuple(i for i in range(num_positions) if i not in rows)
  return rows, cols


def _resolve_rows(
    rows: str | Sequence[int], num_positions: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """(rows, cols) from a partition name or explicit row positions."""
  if isinstance(rows, str):
    return partition(rows, num_positions)
  rows = tuple(int(r) for r in rows)
  if len(set(rows)) != len(rows):
    raise ValueError(
        f"matricize: row positions {rows} repeat a position; list each "
        "position once."
    )
  bad = [r for r in rows if not 0 <= r < num_positions]
  if bad:
    raise ValueError(
        f"matricize: row positions {bad} are outside 0..{num_positions - 1} "
        f"(the tensor has {num_positions} positions)."
    )
  if not rows or len(rows) == num_positions:
    raise ValueError(
        f"matricize: rows must be a nonempty proper subset of the "
        f"{num_positions} positions, got {rows}; both sides of a "
        "matricization need at least one position."
    )
  cols = tuple(i for i in range(num_positions) if i not in rows)
  return rows, cols


def matricize(tensor: np.ndarray, rows: str | Sequence[int]) -> np.ndarray:
  """The matricization [A]_{I,J}: positions I index rows, the rest columns.

  Args:
    tensor: A, shape (M_1, ..., M_N), N >= 2.
    rows: the row positions I (0-based, in the order that indexes the rows,
      row-major), or a partition name (see `partition`). Columns are the
      remaining positions in increasing order, row-major.

  Returns:
    [prod_{i in I} M_i, prod_{j not in I} M_j] array, same dtype:
    entry (r, c) = A at the multi-index whose I-part unravels from r and
    J-part from c.

  Raises:
    ValueError: tensor with fewer than 2 axes; rows empty, all positions,
      repeated or out of range; unknown partition name.
  """
  tensor = np.asarray(tensor)
  n = tensor.ndim
  if n < 2:
    raise ValueError(
        f"matricize: need a tensor with at least 2 positions (axes), got "
        f"shape {tensor.shape}."
    )
  rows, cols = _resolve_rows(rows, n)
  num_rows = math.prod(tensor.shape[i] for i in rows)
  return np.transpose(tensor, rows + cols).reshape(num_rows, -1)


def max_rank(shape: Sequence[int], rows: str | Sequence[int]) -> int:
  """min(prod_{i in I} M_i, prod_{j in J} M_j): the largest possible rank."""
  rows, cols = _resolve_rows(rows, len(shape))
  return min(
      math.prod(shape[i] for i in rows), math.prod(shape[j] for j in cols)
  )


def singular_values(matrix: np.ndarray) -> np.ndarray:
  """Singular values, float64, descending (computed in float64)."""
  matrix = np.asarray(matrix, dtype=np.float64)
  if matrix.ndim != 2:
    raise ValueError(
        f"singular_values: need a 2-D matrix, got shape {matrix.shape}; "
        "matricize the tensor first."
    )
  return np.linalg.svd(matrix, compute_uv=False)


def default_rtol(shape: Sequence[int], dtype: Any) -> float:
  """numpy's matrix_rank tolerance: max(shape) * eps(dtype), relative."""
  dtype = np.dtype(dtype)
  if not np.issubdtype(dtype, np.floating):
    dtype = np.dtype(np.float64)
  return float(max(shape) * np.finfo(dtype).eps)


def numerical_rank(matrix: np.ndarray, *, rtol: float | None = None) -> int:
  """Number of singular values > rtol * (largest singular value).

  Args:
    matrix: [m, n].
    rtol: relative tolerance; default `default_rtol(matrix.shape,
      matrix.dtype)` (numpy's rule at the matrix's own precision).

  Returns:
    The numerical rank (0 for an all-zero matrix).

  Raises:
    ValueError: matrix not 2-D, rtol not in [0, 1).
  """
  matrix = np.asarray(matrix)
  sv = singular_values(matrix)
  if rtol is None:
    rtol = default_rtol(matrix.shape, matrix.dtype)
  return _rank_from_sv(sv, rtol)


def _rank_from_sv(sv: np.ndarray, rtol: float) -> int:
  if not 0.0 <= rtol < 1.0:
    raise ValueError(
        f"numerical_rank: rtol must be in [0, 1), got {rtol}; it is relative "
        "to the largest singular value."
    )
  if sv.size == 0 or sv[0] == 0.0:
    return 0
  return int(np.sum(sv > rtol * sv[0]))


@dataclasses.dataclass(frozen=True)
class RankResult:
  """The numerical rank of one matricization of a grid tensor.

  Attributes:
    rank: singular values above rtol * s_max.
    max_rank: min(M^|I|, M^|J|), the largest possible rank.
    rows, cols: the position groups I and J (0-based).
    rtol: the relative tolerance used.
    singular_values: all singular values divided by the largest, float64,
      descending (all zero for a zero tensor).
    gap: s[rank-1] / s[rank] (last kept over first dropped; inf when none is
      dropped, nan for rank 0): a large gap means a clear-cut rank.
  """

  rank: int
  max_rank: int
  rows: tuple[int, ...]
  cols: tuple[int, ...]
  rtol: float
  singular_values: np.ndarray
  gap: float

  def to_json(self) -> dict[str, Any]:
    """A JSON-serialisable dict (inf/nan gap as None)."""
    return {
        "rank": self.rank,
        "max_rank": self.max_rank,
        "rows": list(self.rows),
        "cols": list(self.cols),
        "rtol": self.rtol,
        "gap": self.gap if math.isfinite(self.gap) else None,
        "singular_values": [float(s) for s in self.singular_values],
    }


def matricization_rank(
    tensor: np.ndarray,
    rows: str | Sequence[int] = "odd_even",
    *,
    rtol: float | None = None,
) -> RankResult:
  """Numerical rank of the matricization of `tensor` for a partition.

  Args:
    tensor: the grid tensor, shape (M,) * N (or any (M_1, ..., M_N)).
    rows: a partition name ('odd_even' = 'canonical', 'left_right') or the
      row positions I.
    rtol: relative tolerance; default from the tensor's dtype (module
      docstring).

  Returns:
    A `RankResult`.

  Raises:
    ValueError: see `matricize` and `numerical_rank`.
  """
  tensor = np.asarray(tensor)
  rows_t, cols_t = _resolve_rows(rows, tensor.ndim)
  matrix = matricize(tensor, rows_t)
  if rtol is None:
    rtol = default_rtol(matrix.shape, matrix.dtype)
  sv = singular_values(matrix)
  rank = _rank_from_sv(sv, rtol)
  scale = sv[0] if sv.size and sv[0] > 0 else 1.0
  if rank == 0:
    gap = math.nan
  elif rank == sv.size:
    gap = math.inf
  else:
    gap = float(sv[rank - 1] / sv[rank]) if sv[rank] > 0 else math.inf
  return RankResult(
      rank=rank,
      max_rank=max_rank(tensor.shape, rows_t),
      rows=rows_t,
      cols=cols_t,
      rtol=float(rtol),
      singular_values=sv / scale,
      gap=gap,
  )


# -- ConvAC score functions ------------------------------------------------------


def convac_probe_config(
    *,
    kernel: int,
    channels: int,
    stride: int = 1,
    depth: int = 1,
    pool: int = 1,
    padding: str = "SAME",
    representation: str = "identity",
    rep_channels: int = 0,
    algebra: str = "R",
    pooling: str = "component",
) -> dict[str, Any]:
  """The model config of a 1-D ConvAC for the probe (`models.convac`).

  Inputs are images of height 1, one pixel per position (patch_size 1).
  The network: representation -> `depth` blocks of [convolution with kernel
  (1, kernel), stride (1, stride), `channels` real width, no bias; product
  pooling over (1, pool) windows] -> global product pooling over the
  remaining positions -> one real linear class score. Overlap when stride <
  kernel. pool=1 means no pooling inside the blocks (depth 1 and pool 1 is
  the shallow ConvAC: one convolution, then the global product).

  Args:
    kernel: k, the convolution's receptive field in positions.
    channels: real width of every block's convolution (algebra channels =
      width / d).
    stride: s, the convolution stride.
    depth: number of blocks L.
    pool: product pooling window (and stride) inside every block.
    padding: 'SAME' (zero padding; with stride 1 the positions are kept)
      or 'VALID'.
    representation: 'identity' (the template values are the features, so
      F = templates; see the module docstring), 'linear_relu' or 'rbf'.
    rep_channels: real width of a non-identity representation (0 =
      channels).
    algebra: algebra of the convolutions.
    pooling: 'component' or 'algebra' product pooling.

  Returns:
    A plain convac model section (`models.build(cfg, num_classes=K)`).

  Raises:
    ValueError: depth < 1, or an invalid value (the model's own checks).
  """
  if int(depth) < 1:
    raise ValueError(
        f"convac_probe_config: depth must be >= 1 block, got {depth}."
    )
  cfg = {
      **models.defaults(convac.NAME),
      "kind": "convac",
      "algebra": algebra,
      "representation": representation,
      "patch_size": 1,
      "rep_channels": int(rep_channels),
      "channels": (int(channels),) * int(depth),
      "kernel_size": (1, int(kernel)),
      "stride": (1, int(stride)),
      "padding": padding,
      "pool_size": (1, int(pool)),
      "pool_stride": 0,
      "pooling": pooling,
      "head": "global",
  }
  models.check(cfg, num_classes=1)
  return cfg


@dataclasses.dataclass(frozen=True)
class ConvACProbe:
  """A random-weight ConvAC on 1-D inputs and its scalar class score.

  Attributes:
    model_cfg: the convac model config (see `convac_probe_config`).
    params: its Haiku parameters (in `dtype`).
    num_positions: N, positions (pixels) of one input.
    input_channels: c, channels of one position.
    dtype: 'float64' or 'float32', the precision the score is computed in.
    num_params: real parameters (`metrics.count_params`).
  """

  model_cfg: dict[str, Any]
  params: Any
  num_positions: int
  input_channels: int
  dtype: str
  num_params: int
  _apply: Callable[..., Any] = dataclasses.field(repr=False)

  def score(self, inputs: np.ndarray) -> np.ndarray:
    """The raw class score (no normalisation) of each input.

    Args:
      inputs: [B, N, c].

    Returns:
      scores [B] in `dtype` (s * exp(la) of the log-space circuit, computed
      in float64 numpy; +-inf beyond the dtype's range).

    Raises:
      ValueError: inputs not [B, N, c].
    """
    inputs = np.asarray(inputs)
    expected = (self.num_positions, self.input_channels)
    if inputs.ndim != 3 or inputs.shape[1:] != expected:
      raise ValueError(
          f"ConvACProbe.score: inputs must be [B, N={expected[0]}, "
          f"c={expected[1]}], got shape {inputs.shape}."
      )
    images = inputs[:, None].astype(self.dtype)  # [B, 1, N, c]
    with _precision(self.dtype):
      la, s = self._apply(self.params, images)
    la = np.asarray(la, np.float64)[:, 0]
    s = np.asarray(s, np.float64)[:, 0]
    with np.errstate(over="ignore"):
      y = np.where(s == 0, 0.0, s * np.exp(np.where(s == 0, 0.0, la)))
    return y.astype(self.dtype)

  __call__ = score


def _precision(dtype: str):
  return jax.enable_x64(dtype == "float64")


def make_convac_probe(
    model_cfg: dict[str, Any],
    *,
    num_positions: int,
    input_channels: int,
    seed: int = 0,
    dtype: str = "float64",
) -> ConvACProbe:
  """Initialises a ConvAC with random weights for the rank probe.

  Weights follow the model's own initialisers (seeded by `seed`). float64
  (the default) evaluates the whole circuit in double precision, so the
  numerical rank is not limited by float32 rounding.

  Args:
    model_cfg: a kind='convac' config, e.g. from `convac_probe_config`.
    num_positions: N.
    input_channels: c (with representation 'identity', c features per
      position; the algebra dimension must divide c).
    seed: PRNG seed of the weights.
    dtype: 'float64' or 'float32'.

  Returns:
    A `ConvACProbe`; `probe.score` (or `probe(...)`) is a score function
    for `grid_tensor`.

  Raises:
    ValueError: invalid config or sizes (e.g. too few positions for the
      kernels and pooling windows), unknown dtype.
  """
  if dtype not in ("float64", "float32"):
    raise ValueError(
        f"make_convac_probe: dtype must be 'float64' or 'float32', got "
        f"{dtype!r}."
    )
  if num_positions < 1 or input_channels < 1:
    raise ValueError(
        f"make_convac_probe: need num_positions >= 1 and input_channels >= 1,"
        f" got {num_positions} and {input_channels}."
    )
  models.check(model_cfg, num_classes=1)
  init, apply = _compiled_model(_freeze(model_cfg))
  dummy = np.zeros((1, 1, num_positions, input_channels), dtype)
  with _precision(dtype):
    params = init(jax.random.key(seed), dummy)
  return ConvACProbe(
      model_cfg=dict(model_cfg),
      params=params,
      num_positions=int(num_positions),
      input_channels=int(input_channels),
      dtype=dtype,
      num_params=int(metrics.count_params(params)),
      _apply=apply,
  )


def _freeze(value: Any) -> Any:
  """A hashable copy of a (nested) config: dicts -> sorted item tuples."""
  if hasattr(value, "to_dict"):  # ml_collections.ConfigDict
    value = value.to_dict()
  if isinstance(value, dict):
    return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
  if isinstance(value, (list, tuple)):
    return tuple(_freeze(v) for v in value)
  return value


def _thaw(frozen: tuple) -> dict[str, Any]:
  return {k: v for k, v in frozen}


@functools.lru_cache(maxsize=64)
def _compiled_model(frozen_cfg: tuple):
  """(init, jitted apply) of one architecture, shared by all seeds so a
  sweep over seeds compiles each architecture once."""
  model = hk.without_apply_rng(
      hk.transform(convac.log_scores_fn(_thaw(frozen_cfg), num_classes=1))
  )
  return model.init, jax.jit(model.apply)


def random_templates(
    num_templates: int, channels: int, *, seed: int = 0
) -> np.ndarray:
  """M generic template patches in R^c, as well conditioned as possible.

  With c >= M the rows are orthonormal (a uniformly random orthonormal
  frame: QR of a Gaussian matrix). For the 'identity' representation
  F = templates is then an isometry, so the grid tensor's matricizations
  have exactly the singular values of the circuit's coefficient tensor:
  ill-conditioned templates would push true singular values towards the
  rounding floor and blur the numerical rank. With c < M (the templates
  cannot be independent) the rows are N(0, I_c) draws scaled to unit norm.

  Args:
    num_templates: M >= 1.
    channels: c >= 1.
    seed: numpy PRNG seed.

  Returns:
    float64 [M, c].

  Raises:
    ValueError: M or c < 1.
  """
  if num_templates < 1 or channels < 1:
    raise ValueError(
        f"random_templates: need M >= 1 templates of c >= 1 channels, got "
        f"M={num_templates}, c={channels}."
    )
  rng = np.random.default_rng(seed)
  g = rng.normal(size=(channels, num_templates))
  if channels >= num_templates:
    q, r = np.linalg.qr(g)
    # Sign fix so the frame is Haar-distributed, not biased by QR's choice.
    return (q * np.sign(np.diag(r))).T
  t = g.T
  return t / np.linalg.norm(t, axis=1, keepdims=True)
