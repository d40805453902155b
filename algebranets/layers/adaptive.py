"""Adaptive input embeddings and projected adaptive log-softmax (TXL).

The vocabulary is split into clusters by `cutoffs` (Grave et al. 2017;
Baevski & Auli 2019), as in Transformer-XL's `AdaptiveEmbedding` and
`ProjectedAdaptiveLogSoftmax` (kimiyoung/transformer-xl, pytorch/
mem_transformer.py and utils/proj_adaptive_softmax.py).

Shape glossary: V = vocabulary size, C = algebra channels of the model
(num_channels), d = algebra dimension, D = C*d the real model width
(TXL's d_model = d_embed = d_proj), n = number of tail clusters
(len(cutoffs)), cluster i in 0..n holds the tokens [l_i, r_i) with
l_0 = 0, r_i = boundaries[i]; V_i = r_i - l_i, C_i = C // div_val**i and
D_i = C_i*d. T = tokens (all leading axes flattened).

    AdaptiveEmbedding:           tokens [...] (int) -> [..., C, d]
    ProjectedAdaptiveLogSoftmax: hidden [..., C, d], targets [...] -> nll [...]

Parameters (R reduces exactly to TXL, also in count):

  AdaptiveEmbedding, div_val == 1: 'embeddings' [V, C, d] (one table, TXL's
    single nn.Embedding), no projection.
  AdaptiveEmbedding, div_val > 1: per cluster 'embeddings_i' [V_i, C_i, d]
    and an algebra projection 'proj_i' [C_i, C, d] (an algebra Linear
    C_i -> C without bias). Like TXL, EVERY cluster gets one, cluster 0
    included although C_0 == C.
  ProjectedAdaptiveLogSoftmax: 'bias' [V] (output biases, also when tied),
    'cluster_weight' [n, D] and 'cluster_bias' [n] (when n > 0); untied
    output weights 'weight' [V, D] (div_val == 1, TXL's single nn.Linear) or
    'weight_i' [V_i, D_i] (div_val > 1); untied projections 'proj_i'
    [D, D_i] (real, TXL's out_projs, only for div_val > 1).

The softmax works on the flattened real vector h [T, D] (paper section 7:
"tied adaptive softmax on the flattened real vector"). Tied output weights
are the embedding's algebra tables read as real [V_i, D_i] matrices; a tied
projection is the embedding's expanded block matrix L_i [D_i, D] used
transposed, proj_hid = h @ L_i^T (TXL: F.linear(h, proj.t()) with proj the
[D, D_i] matrix whose F.linear is the embedding projection).

Init (TXL's `weights_init` with init='normal'): tables, output weights and
cluster weights normal(0, init_std) per real component (a table is looked up
or dotted with the real hidden vector, never multiplied in the algebra, so
each component plays the role of one real TXL weight); real projections
normal(0, proj_init_std); algebra projections normal with per-component std
proj_init_std * sqrt(d / m_bar) (m_bar = mean_k sum_ij c_ijk^2), so each
output component has the variance of the real TXL projection; biases 0.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras, kernels
from algebranets.layers import _checks

# Tokens per chunk of the sparse tail computation in
# `ProjectedAdaptiveLogSoftmax.__call__` (see there).
DEFAULT_TAIL_CHUNK = 1024


def _is_int(v) -> bool:
  return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_cutoffs(cutoffs: Sequence[int], vocab_size: int) -> tuple[int, ...]:
  """Validated cluster boundaries: the kept cutoffs followed by vocab_size.

  Cutoffs >= vocab_size would give empty clusters (e.g. WikiText-103's
  (20000, 40000, 200000) on a small sample with a 38K-word vocabulary); they
  are dropped with a warning, which gives (20000, 38000) there.

  Args:
    cutoffs: strictly increasing positive ints (TXL's `cutoffs` without the
      final n_token).
    vocab_size: V, a positive int.

  Returns:
    (cutoffs < V..., V): the right end of every cluster.

  Raises:
    ValueError: a non-int or non-positive vocab_size or cutoff, or cutoffs
      that are not strictly increasing.
  """
  if not _is_int(vocab_size) or vocab_size < 1:
    raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}.")
  cutoffs = tuple(cutoffs)
  for c in cutoffs:
    if not _is_int(c) or c < 1:
      raise ValueError(
          f"cutoffs must be positive ints, got {cutoffs!r} (bad entry {c!r}). "
          "A cutoff is the first token id of the next cluster, e.g. "
          "(20000, 40000, 200000)."
      )
  for a, b in itertools.pairwise(cutoffs):
    if b <= a:
      raise ValueError(
          f"cutoffs must be strictly increasing, got {cutoffs!r} ({b} after "
          f"{a}). Sort them and remove duplicates."
      )
  kept = tuple(int(c) for c in cutoffs if c < vocab_size)
  dropped = cutoffs[len(kept) :]
  if dropped:
    warnings.warn(
        f"Adaptive softmax/input: cutoffs {tuple(int(c) for c in dropped)} are "
        f">= the vocabulary size {vocab_size} and would give empty clusters; "
        f"dropping them (cutoffs used: {kept}).",
        stacklevel=2,
    )
  return (*kept, int(vocab_size))


def _cluster_channels(
    num_channels: int, div_val: int, n_clusters: int, what: str
) -> tuple[int, ...]:
  """C_i = C // div_val**i for the n_clusters + 1 clusters; C must divide."""
  if not _is_int(div_val) or div_val < 1:
    raise ValueError(
        f"{what}: div_val must be a positive int, got {div_val!r}."
    )
  out = []
  for i in range(n_clusters + 1):
    q = div_val**i
    if num_channels % q:
      raise ValueError(
          f"{what}: num_channels={num_channels} is not divisible by "
          f"div_val**{i} = {q} (cluster {i} would get "
          f"{num_channels / q:g} algebra channels). Use a num_channels "
          f"divisible by {div_val ** n_clusters}, a smaller div_val or fewer "
          "cutoffs."
      )
    out.append(num_channels // q)
  return tuple(out)


def _bounds(boundaries: tuple[int, ...]) -> list[tuple[int, int]]:
  """[(l_i, r_i)] for every cluster."""
  lefts = (0, *boundaries[:-1])
  return list(zip(lefts, boundaries, strict=True))


def _check_tokens(tokens, what: str, arg: str) -> jax.Array:
  tokens = jnp.asarray(tokens)
  if not jnp.issubdtype(tokens.dtype, jnp.integer):
    raise ValueError(
        f"{what}: {arg} must be integer token ids, got dtype {tokens.dtype}. "
        "Cast them, e.g. tokens.astype(jnp.int32)."
    )
  return tokens


def _algebra_proj_std(alg: algebras.Algebra, proj_init_std: float) -> float:
  m_bar = float(np.mean(alg.component_gains))
  return proj_init_std * math.sqrt(alg.dim / m_bar)


class AdaptiveEmbedding(hk.Module):
  """TXL adaptive input embedding with algebra-valued tables.

  Cluster i looks its tokens up in an algebra table [V_i, C_i, d]; for
  div_val > 1 an algebra projection C_i -> C (no bias) maps every cluster to
  the model width. The result is scaled by sqrt(C*d) (TXL's emb_scale =
  d_proj ** 0.5). Standard layout only.
  """

  def __init__(
      self,
      vocab_size: int,
      num_channels: int,
      algebra,
      *,
      cutoffs: Sequence[int] = (),
      div_val: int = 1,
      init_std: float = 0.02,
      proj_init_std: float = 0.01,
      name: str | None = None,
  ):
    """Constructs the embedding.

    Args:
      vocab_size: V.
      num_channels: C, algebra channels of the output (model width C*d).
      algebra: registered name or `Algebra`.
      cutoffs: cluster cutoffs (see `check_cutoffs`); () for one table.
      div_val: cluster i has C // div_val**i algebra channels.
      init_std: std of every table component.
      proj_init_std: std of the equivalent real projection (see the module
        docstring for the algebra scaling).
      name: module name.

    Raises:
      ValueError: unknown algebra, non-positive sizes, bad cutoffs, or
        num_channels not divisible by div_val**i.
    """
    super().__init__(name=name)
    self.algebra = algebras.get(algebra)
    self.vocab_size = _checks.positive(
        vocab_size, "AdaptiveEmbedding: vocab_size"
    )
    self.num_channels = _checks.positive(
        num_channels, "AdaptiveEmbedding: num_channels"
    )
    self.boundaries = check_cutoffs(cutoffs, vocab_size)
    self.div_val = div_val
    self.cluster_channels = _cluster_channels(
        num_channels, div_val, len(self.boundaries) - 1, "AdaptiveEmbedding"
    )
    self.init_std = float(init_std)
    self.proj_init_std = float(proj_init_std)

  @property
  def has_projections(self) -> bool:
    """TXL projects every cluster iff div_val > 1 (here d_embed == d_proj)."""
    return self.div_val > 1

  def _tables(self) -> list[jax.Array]:
    """Algebra tables [V_i, C_i, d] (slices of one table when div_val == 1)."""
    d = self.algebra.dim
    init = hk.initializers.RandomNormal(stddev=self.init_std)
    bounds = _bounds(self.boundaries)
    if self.div_val == 1:
      table = self._single_table()
      return [table[lo:hi] for lo, hi in bounds]
    return [
        hk.get_parameter(
            f"embeddings_{i}", (hi - lo, c_i, d), jnp.float32, init=init
        )
        for i, ((lo, hi), c_i) in enumerate(
            zip(bounds, self.cluster_channels, strict=True)
        )
    ]

  def _single_table(self) -> jax.Array:
    """The one table [V, C, d] of div_val == 1."""
    init = hk.initializers.RandomNormal(stddev=self.init_std)
    shape = (self.vocab_size, self.num_channels, self.algebra.dim)
    return hk.get_parameter("embeddings", shape, jnp.float32, init=init)

  def _proj_weights(self) -> list[jax.Array | None]:
    """Algebra projection weights [C_i, C, d], or None (div_val == 1)."""
    if not self.has_projections:
      return [None] * len(self.boundaries)
    d = self.algebra.dim
    std = _algebra_proj_std(self.algebra, self.proj_init_std)
    init = hk.initializers.RandomNormal(stddev=std)
    return [
        hk.get_parameter(
            f"proj_{i}", (c_i, self.num_channels, d), jnp.float32, init=init
        )
        for i, c_i in enumerate(self.cluster_channels)
    ]

  def cluster_tables(self) -> list[jax.Array]:
    """Real views [V_i, C_i*d] of the tables (creates the params if needed).

    Row v of cluster i is token l_i + v flattened as (channel, component),
    the same order as hidden.reshape(..., C*d).
    """
    return [t.reshape(t.shape[0], -1) for t in self._tables()]

  def cluster_projections(self) -> list[jax.Array | None]:
    """Real block matrices [C_i*d, C*d] of the projections, or None each.

    P_i = expand_left(w_i) so that flatten(w_i x) = flatten(x) @ P_i, i.e.
    the embedding of a cluster-i token is (table_i[v] @ P_i) * sqrt(C*d).
    None for every cluster when div_val == 1 (no projection, as in TXL).
    """
    out = []
    for w in self._proj_weights():
      if w is None:
        out.append(None)
        continue
      c_i, c, d = w.shape
      blocks = kernels.expand_left(w, self.algebra)  # [C_i, C, d_j, d_k]
      out.append(blocks.transpose(0, 2, 1, 3).reshape(c_i * d, c * d))
    return out

  def __call__(self, tokens: jax.Array) -> jax.Array:
    """Embeds tokens.

    Args:
      tokens: integer ids [...] in [0, V).

    Returns:
      [..., C, d] float32, scaled by sqrt(C*d). Ids outside [0, V) give NaN
      rows (as `Embed`) rather than a silently clipped row.

    Raises:
      ValueError: non-integer tokens.
    """
    tokens = _check_tokens(tokens, "AdaptiveEmbedding", "tokens")
    c, d = self.num_channels, self.algebra.dim
    scale = jnp.float32(math.sqrt(c * d))
    valid = ((tokens >= 0) & (tokens < self.vocab_size))[..., None, None]
    if not self.has_projections:
      y = jnp.take(self._single_table(), tokens, axis=0)
      return jnp.where(valid, y, jnp.nan) * scale
    tables = self._tables()
    projs = self._proj_weights()
    y = jnp.zeros((*tokens.shape, c, d), jnp.float32)
    # Static shapes: every cluster embeds and projects every token, and the
    # token's own cluster is selected (TXL gathers the cluster's tokens
    # first; the result is the same).
    for (lo, hi), table, w in zip(
        _bounds(self.boundaries), tables, projs, strict=True
    ):
      local = jnp.clip(tokens - lo, 0, hi - lo - 1)
      e = kernels.dense(jnp.take(table, local, axis=0), w, self.algebra)
      mask = ((tokens >= lo) & (tokens < hi))[..., None, None]
      y = jnp.where(mask, e, y)
    return jnp.where(valid, y, jnp.nan) * scale

  @hk.transparent
  def mac_count(self, x, y) -> int:
    """Projection multiply-adds: 0 for div_val == 1, else every token through
    every cluster's projection (what this implementation computes),
    tokens * sum_i C_i * C * macs_per_product."""
    del y
    if not self.has_projections:
      return 0
    per_token = sum(c_i * self.num_channels for c_i in self.cluster_channels)
    return int(math.prod(x.shape) * per_token * self.algebra.macs_per_product)


class ProjectedAdaptiveLogSoftmax(hk.Module):
  """TXL projected adaptive log-softmax on the flattened real hidden vector.

  The head scores the shortlist [0, cutoffs[0]) plus one "cluster token" per
  tail cluster (rows of 'cluster_weight'); a tail token's log-probability is
  the head log-probability of its cluster token plus the log-softmax within
  its cluster. Tail cluster i (1..n) uses head column V_0 + i - 1, i.e.
  'cluster_weight' row i - 1 (TXL's TF code and HuggingFace's forward; the
  PyTorch TXL reads head column -i, the same rows in reverse order: a
  relabelling with no effect on what the model can represent or on training
  from scratch, but reverse the rows when importing PyTorch TXL weights).

  Without `tied` the module owns its output weights. With `tied` (weight
  tying, TXL's tie_weight) the output weights of cluster i are
  `tied.cluster_tables()[i]`, and the projections of clusters with
  tie_projs[i] come from `tied.cluster_projections()[i]` (used transposed).
  As in TXL, for div_val == 1 there are no projections at all and tie_projs
  has no effect (WikiText-103 base: tie_projs [False, True, True, True]).
  """

  def __init__(
      self,
      vocab_size: int,
      num_channels: int,
      algebra,
      *,
      cutoffs: Sequence[int] = (),
      div_val: int = 1,
      tie_projs: Sequence[bool] | None = None,
      init_std: float = 0.02,
      proj_init_std: float = 0.01,
      tail_chunk: int = DEFAULT_TAIL_CHUNK,
      name: str | None = None,
  ):
    """Constructs the softmax.

    Args:
      vocab_size: V.
      num_channels: C, algebra channels of the hidden input (real width C*d).
      algebra: registered name or `Algebra` of the hidden input (and of the
        tied embedding).
      cutoffs: cluster cutoffs (see `check_cutoffs`); () for a plain softmax.
      div_val: cluster i has width C // div_val**i algebra channels.
      tie_projs: one bool per cluster, len(cutoffs) + 1 (the ORIGINAL
        cutoffs: entries of clusters dropped by `check_cutoffs` are ignored);
        None for all False. Only used with `tied` and div_val > 1.
      init_std: std of the own output and cluster weights.
      proj_init_std: std of the own (real) projections.
      tail_chunk: tokens per chunk of the sparse tail computation of
        `__call__` (memory ~ tail_chunk * V_i floats per chunk); any value
        gives the same result.
      name: module name.

    Raises:
      ValueError: unknown algebra, non-positive sizes, bad cutoffs, C not
        divisible by div_val**i, or tie_projs of the wrong length.
    """
    super().__init__(name=name)
    what = "ProjectedAdaptiveLogSoftmax"
    self.algebra = algebras.get(algebra)
    self.vocab_size = _checks.positive(vocab_size, f"{what}: vocab_size")
    self.num_channels = _checks.positive(num_channels, f"{what}: num_channels")
    cutoffs = tuple(cutoffs)
    self.boundaries = check_cutoffs(cutoffs, vocab_size)
    self.n_clusters = len(self.boundaries) - 1
    self.div_val = div_val
    self.cluster_channels = _cluster_channels(
        num_channels, div_val, self.n_clusters, what
    )
    if tie_projs is None:
      tie_projs = (False,) * (len(cutoffs) + 1)
    tie_projs = tuple(bool(t) for t in tie_projs)
    if len(tie_projs) != len(cutoffs) + 1:
      raise ValueError(
          f"{what}: tie_projs needs one entry per cluster, len(cutoffs) + 1 = "
          f"{len(cutoffs) + 1} for cutoffs {cutoffs}, got {len(tie_projs)}: "
          f"{tie_projs}."
      )
    self.tie_projs = tie_projs[: self.n_clusters + 1]
    self.init_std = float(init_std)
    self.proj_init_std = float(proj_init_std)
    self.tail_chunk = _checks.positive(tail_chunk, f"{what}: tail_chunk")

  @property
  def has_projections(self) -> bool:
    """TXL projects every cluster iff div_val > 1 (here d_embed == d_proj)."""
    return self.div_val > 1

  def _check_tied(self, tied: AdaptiveEmbedding | None) -> None:
    what = "ProjectedAdaptiveLogSoftmax"
    if tied is None:
      if self.has_projections and any(self.tie_projs):
        raise ValueError(
            f"{what}: tie_projs={self.tie_projs} asks for projections tied to "
            "the embedding, but no tied embedding was given. Pass "
            "tied=<the AdaptiveEmbedding>, or tie_projs=None."
        )
      return
    if not isinstance(tied, AdaptiveEmbedding):
      raise ValueError(
          f"{what}: tied must be an AdaptiveEmbedding or None, got "
          f"{type(tied).__name__}."
      )
    mine = (
        self.vocab_size,
        self.num_channels,
        self.algebra.name,
        self.boundaries,
        self.div_val,
    )
    theirs = (
        tied.vocab_size,
        tied.num_channels,
        tied.algebra.name,
        tied.boundaries,
        tied.div_val,
    )
    if mine != theirs:
      raise ValueError(
          f"{what}: the tied embedding must have the same (vocab_size, "
          "num_channels, algebra, cluster boundaries, div_val); softmax has "
          f"{mine}, embedding has {theirs}."
      )

  def _cluster_params(self, tied):
    """(weights [V_i, D_i], biases [V_i], projections [D, D_i] or None)."""
    self._check_tied(tied)
    c, d = self.num_channels, self.algebra.dim
    width = c * d
    bounds = _bounds(self.boundaries)
    w_init = hk.initializers.RandomNormal(stddev=self.init_std)
    bias = hk.get_parameter("bias", (self.vocab_size,), jnp.float32, jnp.zeros)
    biases = [bias[lo:hi] for lo, hi in bounds]
    if tied is not None:
      weights = tied.cluster_tables()
    elif self.div_val == 1:
      w = hk.get_parameter(
          "weight", (self.vocab_size, width), jnp.float32, init=w_init
      )
      weights = [w[lo:hi] for lo, hi in bounds]
    else:
      weights = [
          hk.get_parameter(
              f"weight_{i}", (hi - lo, c_i * d), jnp.float32, init=w_init
          )
          for i, ((lo, hi), c_i) in enumerate(
              zip(bounds, self.cluster_channels, strict=True)
          )
      ]
    projs = [None] * len(bounds)
    if self.has_projections:
      tied_projs = tied.cluster_projections() if tied is not None else None
      p_init = hk.initializers.RandomNormal(stddev=self.proj_init_std)
      for i, c_i in enumerate(self.cluster_channels):
        if tied_projs is not None and self.tie_projs[i]:
          projs[i] = tied_projs[i].T  # [D_i, D] -> [D, D_i]
        else:
          projs[i] = hk.get_parameter(
              f"proj_{i}", (width, c_i * d), jnp.float32, init=p_init
          )
    return weights, biases, projs

  def _head_params(self, weights, biases):
    """Head weight [V_0 + n, D_0] and bias [V_0 + n]."""
    if not self.n_clusters:
      return weights[0], biases[0]
    width = self.num_channels * self.algebra.dim
    init = hk.initializers.RandomNormal(stddev=self.init_std)
    cw = hk.get_parameter(
        "cluster_weight", (self.n_clusters, width), jnp.float32, init=init
    )
    cb = hk.get_parameter(
        "cluster_bias", (self.n_clusters,), jnp.float32, jnp.zeros
    )
    return (
        jnp.concatenate([weights[0], cw], axis=0),
        jnp.concatenate([biases[0], cb], axis=0),
    )

  def _flat_hidden(self, hidden) -> jax.Array:
    what = "ProjectedAdaptiveLogSoftmax"
    alg = self.algebra
    _checks.check_input(hidden, alg, "standard", what=what)
    _checks.check_float(hidden, what)
    if hidden.shape[-2] != self.num_channels:
      raise ValueError(
          f"{what}: hidden must be [..., C={self.num_channels}, d={alg.dim}], "
          f"got shape {tuple(hidden.shape)}."
      )
    # Float32 whatever the activation dtype: log-softmax over 10^5 logits in
    # bfloat16 loses the small probabilities that the perplexity is made of.
    return hidden.reshape(-1, self.num_channels * alg.dim).astype(jnp.float32)

  def log_prob(
      self, hidden: jax.Array, *, tied: AdaptiveEmbedding | None = None
  ) -> jax.Array:
    """Full log-probabilities over the vocabulary.

    Args:
      hidden: [..., C, d] floats (any float dtype; computed in float32).
      tied: the embedding whose tables (and projections, see tie_projs) are
        the output weights, or None for own weights.

    Returns:
      [..., V] float32 log-probabilities (exp sums to 1 over the last axis).

    Raises:
      ValueError: wrong hidden shape or dtype, or a tied embedding of another
        configuration.
    """
    lead = hidden.shape[:-2]
    h = self._flat_hidden(hidden)
    weights, biases, projs = self._cluster_params(tied)
    head_w, head_b = self._head_params(weights, biases)
    head = jax.nn.log_softmax(_logits(h, head_w, head_b, projs[0]), axis=-1)
    v0 = self.boundaries[0]
    out = [head[:, :v0]]
    for i in range(1, self.n_clusters + 1):
      tail = jax.nn.log_softmax(
          _logits(h, weights[i], biases[i], projs[i]), axis=-1
      )
      out.append(head[:, v0 + i - 1 : v0 + i] + tail)
    lp = jnp.concatenate(out, axis=-1) if len(out) > 1 else out[0]
    return lp.reshape((*lead, self.vocab_size))

  def __call__(
      self,
      hidden: jax.Array,
      targets: jax.Array,
      *,
      tied: AdaptiveEmbedding | None = None,
  ) -> jax.Array:
    """Negative log-likelihood of the targets.

    The head is scored for every token. Each tail cluster is scored only for
    the tokens whose target lies in it, as in TXL: the tokens are sorted by
    cluster and cut into static chunks of `tail_chunk`; a chunk computes
    cluster i only if it holds one of its tokens (`lax.cond`), and chunks
    are rematerialised in the backward pass, so memory stays
    ~tail_chunk * V_i instead of T * V and the cost is about
    sum_i (T_i + tail_chunk) * V_i * D_i.

    Args:
      hidden: [..., C, d] floats (any float dtype; computed in float32).
      targets: integer ids [...] (hidden's leading shape) in [0, V).
      tied: the embedding whose tables (and projections, see tie_projs) are
        the output weights, or None for own weights.

    Returns:
      nll [...] float32; NaN where a target is outside [0, V).

    Raises:
      ValueError: wrong shapes or dtypes, or a tied embedding of another
        configuration.
    """
    what = "ProjectedAdaptiveLogSoftmax"
    targets = _check_tokens(targets, what, "targets")
    h = self._flat_hidden(hidden)
    if tuple(targets.shape) != tuple(hidden.shape[:-2]):
      raise ValueError(
          f"{what}: targets must have hidden's leading shape "
          f"{tuple(hidden.shape[:-2])} (hidden {tuple(hidden.shape)}), got "
          f"{tuple(targets.shape)}."
      )
    lead = targets.shape
    t = targets.reshape(-1).astype(jnp.int32)
    weights, biases, projs = self._cluster_params(tied)
    head_w, head_b = self._head_params(weights, biases)
    head = jax.nn.log_softmax(_logits(h, head_w, head_b, projs[0]), axis=-1)
    v0 = self.boundaries[0]
    # Cluster of each target: 0 for the shortlist, i for tail cluster i.
    cid = jnp.zeros_like(t)
    for b in self.boundaries[:-1]:
      cid = cid + (t >= b).astype(t.dtype)
    head_col = jnp.where(cid == 0, t, v0 + cid - 1)
    head_col = jnp.clip(head_col, 0, head.shape[-1] - 1)
    lp = jnp.take_along_axis(head, head_col[:, None], axis=-1)[:, 0]
    if self.n_clusters and t.shape[0]:
      lp = lp + self._tail_logprob(h, t, cid, weights, biases, projs)
    valid = (t >= 0) & (t < self.vocab_size)
    return jnp.where(valid, -lp, jnp.nan).reshape(lead)

  def _tail_logprob(self, h, t, cid, weights, biases, projs) -> jax.Array:
    """Within-cluster log-prob of each tail target [T] (0 for the head)."""
    n_tok = t.shape[0]
    chunk = min(self.tail_chunk, n_tok)
    n_chunks = -(-n_tok // chunk)
    pad = n_chunks * chunk - n_tok
    order = jnp.argsort(cid, stable=True)

    def sort_pad(x):
      x = jnp.take(x, order, axis=0)
      x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))  # cluster 0: no-op
      return x.reshape((n_chunks, chunk, *x.shape[1:]))

    bounds = _bounds(self.boundaries)

    def cluster_lp(i, hc, tc, mask):
      lo, hi = bounds[i]
      logits = _logits(hc, weights[i], biases[i], projs[i])  # [chunk, V_i]
      local = jnp.clip(tc - lo, 0, hi - lo - 1)
      picked = jnp.take_along_axis(logits, local[:, None], axis=-1)[:, 0]
      lp = picked - jax.nn.logsumexp(logits, axis=-1)
      return jnp.where(mask, lp, 0.0)

    @jax.checkpoint
    def body(carry, xs):
      hc, tc, cc = xs
      out = jnp.zeros(tc.shape, jnp.float32)
      for i in range(1, self.n_clusters + 1):
        mask = cc == i
        out = out + jax.lax.cond(
            jnp.any(mask),
            lambda hc, tc, mask, i=i: cluster_lp(i, hc, tc, mask),
            lambda hc, tc, mask: jnp.zeros(tc.shape, jnp.float32),
            hc,
            tc,
            mask,
        )
      return carry, out

    _, out = jax.lax.scan(body, None, (sort_pad(h), sort_pad(t), sort_pad(cid)))
    inverse = jnp.argsort(order)
    return jnp.take(out.reshape(-1)[:n_tok], inverse, axis=0)

  @hk.transparent
  def mac_count(self, x, y) -> int:
    """Upper bound: the MACs of `log_prob` (every token scored in every
    cluster, with the projections). `__call__` scores a tail cluster only
    for its own tokens, which depends on the data:
    tokens * sum_i (D*D_i [projection] + D_i * (V_i [+ n for the head]))."""
    del y
    tokens = math.prod(x.shape[:-2])
    d = self.algebra.dim
    width = self.num_channels * d
    per_token = 0
    for i, ((lo, hi), c_i) in enumerate(
        zip(_bounds(self.boundaries), self.cluster_channels, strict=True)
    ):
      d_i = c_i * d
      rows = hi - lo + (self.n_clusters if i == 0 else 0)
      per_token += d_i * rows + (width * d_i if self.has_projections else 0)
    return int(tokens * per_token)


def _logits(h, weight, bias, proj) -> jax.Array:
  """TXL's _compute_logit: (h @ proj) @ weight^T + bias, h [T, D] -> [T, V_i]."""
  if proj is not None:
    h = h @ proj
  # Contracting both operands' last axes, not `h @ weight.T`: inside a
  # decoding loop XLA:CPU materialised the transposed [D, V] table for
  # every token (M4R at the enwik8 base size: 0.5 ms of a 10 ms token).
  return jnp.einsum("td,vd->tv", h, weight) + bias[None, :]
