"""Fast autoregressive decoding for Transformer-XL (batch B >= 1 streams).

Shape glossary: B = streams, P = prompt length, N = generated tokens, L =
layers, C = algebra channels, d = algebra dimension, H = heads, F = FFN
channels, V = vocabulary, W = ring slots (mem_len + 1, or mem_len with
same_length: the keys one query sees).

What a token costs. `TransformerXL.log_prob` on one position against a
memory of hidden states recomputes the key, value AND position projections
of all mem_len + 1 keys in every layer: ~2 (mem_len + 1) D^2 / d + (mem_len
+ 1) D^2 / d multiply-adds per layer against the token's own 12 D^2 / d.
Here each layer keeps the projected keys and values of its W most recent
positions in a fixed-size ring (position p in slot p mod W: no shifting
copies, no reallocation) and the projected position table W_r R by distance
(computed once per `prepare`); a token then costs its own projections, one
score per cached key (`relative_attention.ring_attention`), the FFN and the
softmax. The layers' weights are converted once into their kernel's native
layout (`kernels.prepare_dense`, one fused query/key/value weight per layer)
with the path `kernels.choose_dense_path` picks for B rows, or one measured
(`measure_paths`).

The same maths as the model: the prompt goes through the model's own
`log_prob` (one call, against an empty fixed-size memory), its new memory
is projected into the rings, and every later token attends to exactly the
keys `log_prob` would show it with that memory (the last mem_len positions
and itself; with same_length the oldest of those is hidden). Generation is
one `lax.scan` with the temperature and top-k inside, its uniforms drawn
from the PRNG key before the loop (inverse-CDF draws). The
parameters are the model's own (same Haiku paths, same checkpoints); the
model itself is only read for its hyperparameters.

    dec = TXLDecoder(lambda: TransformerXL(...), batch_size=1)
    weights = dec.prepare(params)
    logp, cache = dec.start(params, weights, prompt_tokens)      # [B, P]
    tokens, cache, logp = dec.generate(params, weights, cache, logp, key,
                                       num_tokens=200, temperature=0.8)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets import kernels, layers
from algebranets.layers import relative_attention as rel_attn
from algebranets.models.transformer_xl import TransformerXL

# The decoder's linear layers: the fused query/key/value projection, the
# attention output and the two FFN layers.
LINEARS = ("qkv", "output", "ffn_in", "ffn_out")


class DecodeCache(NamedTuple):
  """Per-layer rings of projected keys and values, and the position.

  keys, values: L arrays [B*H, W, C/H * d] (streams and heads flattened
  into one leading dimension; position p in slot p mod W).
  pos: int32 scalar, the absolute position of the next token (= tokens
  seen so far).
  """

  keys: tuple[jax.Array, ...]
  values: tuple[jax.Array, ...]
  pos: jax.Array


def capture(build_model: Callable[[], TransformerXL]) -> TransformerXL:
  """Builds the model once (in a throwaway transform) to read its settings.

  Raises:
    ValueError: build_model does not return a `TransformerXL`.
  """
  box = []
  hk.transform(lambda: box.append(build_model())).init(None)
  if not isinstance(box[0], TransformerXL):
    raise ValueError(
        f"TXLDecoder needs a function building a TransformerXL, got one "
        f"building {type(box[0]).__name__}."
    )
  return box[0]


def linear_shapes(model: TransformerXL) -> dict[str, tuple[int, int, int]]:
  """[N, M, d] of each decoder linear (qkv fuses three C -> C weights)."""
  c, f, d = model.num_channels, model.d_inner_channels, model.algebra.dim
  return {
      "qkv": (c, 3 * c, d),
      "output": (c, c, d),
      "ffn_in": (c, f, d),
      "ffn_out": (f, c, d),
  }


def default_paths(model: TransformerXL, batch_size: int) -> dict[str, str]:
  """`kernels.choose_dense_path` for each linear at batch_size rows."""
  alg = model.algebra
  return {
      name: kernels.choose_dense_path(alg, (batch_size, s[0], s[2]), s)
      for name, s in linear_shapes(model).items()
  }


def candidate_paths(algebra) -> tuple[str, ...]:
  """The exact prepared paths worth timing for an algebra."""
  if algebra.dim == 1:
    return ("expand",)
  if algebra.matrix_shape is not None:
    return ("expand", "right", "fold")
  return ("expand", "right")


def measure_paths(
    model: TransformerXL,
    batch_size: int,
    *,
    dtype=jnp.float32,
    min_seconds: float = 0.02,
) -> dict[str, str]:
  """The fastest prepared path per linear, timed at batch_size rows.

  Each linear is timed as the model runs it: num_layers distinct random
  weights of its shape (one per layer) go through `prepare_dense` for
  every candidate path, and one compiled call applies all of them to the
  same input, timed over at least min_seconds (best of 3). Distinct
  weights matter: one weight timed alone stays in the caches, where the
  block expansion's plain matrix product wins, while a model whose weights
  exceed the caches reads every weight from memory each token, where the
  paths that read the stored reals once win (C at the enwik8 base size:
  the single-weight timing picked the expansion, 2x the bytes, 1.66x the
  real model's step). A measurement, so the answer may differ between
  runs when two paths are within noise.
  """
  alg = model.algebra
  out = {}
  keys = jax.random.split(jax.random.PRNGKey(0), model.num_layers + 1)

  def apply_all(x, prepared):
    return [kernels.dense_prepared(x, p) for p in prepared]

  fn = jax.jit(apply_all)
  for name, shape in linear_shapes(model).items():
    ws = [jax.random.normal(k, shape, dtype) for k in keys[1:]]
    x = jax.random.normal(keys[0], (batch_size, shape[0], shape[2]), dtype)
    best = None
    for path in candidate_paths(alg):
      prepared = [kernels.prepare_dense(w, alg, path) for w in ws]
      jax.block_until_ready(fn(x, prepared))
      reps, t = 1, 0.0
      while True:
        t0 = time.perf_counter()
        for _ in range(reps):
          y = fn(x, prepared)
        jax.block_until_ready(y)
        t = time.perf_counter() - t0
        if t >= min_seconds or reps >= 4096:
          break
        reps *= 4
      per_call = t / reps
      for _ in range(2):
        t0 = time.perf_counter()
        for _ in range(reps):
          y = fn(x, prepared)
        jax.block_until_ready(y)
        per_call = min(per_call, (time.perf_counter() - t0) / reps)
      del prepared
      if best is None or per_call < best[0]:
        best = (per_call, path)
    out[name] = best[1]
  return out


class TXLDecoder:
  """Cached, compiled decoding of a Transformer-XL (see the module doc).

  Every method is a pure function of its arguments (jit-compiled once per
  shape); params are the model's Haiku parameters in the computation dtype
  (their floating dtype is the decoding dtype, as in the model).
  """

  def __init__(
      self,
      build_model: Callable[[], TransformerXL],
      *,
      batch_size: int = 1,
      paths: Mapping[str, str] | str | None = None,
  ):
    """Constructs the decoder.

    Args:
      build_model: zero-argument function returning the (evaluation)
        `TransformerXL`, called inside Haiku transforms; its mem_len,
        clamp_len and same_length are the decoding memory.
      batch_size: B, the number of streams (for the path choice; the
        methods accept any B).
      paths: per linear ('qkv', 'output', 'ffn_in', 'ffn_out') a kernel path
        for `prepare_dense`; None = `default_paths`, 'measure' =
        `measure_paths`.

    Raises:
      ValueError: batch_size < 1, unknown linear names or paths.
    """
    if batch_size < 1:
      raise ValueError(
          f"TXLDecoder: batch_size must be >= 1, got {batch_size}."
      )
    self.model = m = capture(build_model)
    self.window = m.mem_len if m.same_length else m.mem_len + 1
    if paths is None:
      paths = default_paths(m, batch_size)
    elif paths == "measure":
      paths = measure_paths(m, batch_size)
    else:
      paths = {**default_paths(m, batch_size), **dict(paths)}
    unknown = sorted(set(paths) - set(LINEARS))
    bad = sorted(p for p in paths.values() if p not in kernels.DENSE_PATHS)
    if unknown or bad:
      raise ValueError(
          f"TXLDecoder: paths must map {', '.join(LINEARS)} to one of "
          f"{', '.join(kernels.DENSE_PATHS)}; got unknown names {unknown} / "
          f"paths {bad}."
      )
    if m.algebra.matrix_shape is None and "fold" in paths.values():
      raise ValueError(
          f"TXLDecoder: path 'fold' needs a matrix algebra; {m.algebra.name} "
          "is not one."
      )
    self.paths = dict(paths)

    def forward(tokens, mems):
      return build_model().log_prob(tokens, mems, num_valid_mems=0)

    def apply(fn):
      return hk.without_apply_rng(hk.transform(fn)).apply

    self._forward = apply(forward)
    self._prepare = apply(self._prepare_fn)
    self._fill = apply(self._fill_fn)
    self._step = apply(self._step_fn)
    self.prepare = jax.jit(self._prepare_impl)
    self.start = jax.jit(self._start_impl)
    self.step = jax.jit(self._step_impl)
    self.generate = jax.jit(
        self._generate_impl,
        static_argnames=("num_tokens", "greedy", "top_k"),
    )
    self.score = jax.jit(self._score_impl)

  # -- Haiku functions (parameters by the model's paths) ---------------------

  def _scope(self):
    return hk.experimental.name_scope(self.model.module_name)

  def _prepare_fn(self) -> dict[str, Any]:
    m = self.model
    alg, c, d, h = m.algebra, m.num_channels, m.algebra.dim, m.num_heads
    shape = (h, c // h, d)
    if m.untie_r:
      shape = (m.num_layers, *shape)
    with self._scope():
      with hk.experimental.name_scope("relative_bias"):
        u = hk.get_parameter("r_w_bias", shape)
        v = hk.get_parameter("r_r_bias", shape)
      dtype = u.dtype
      # Row t = distance t (relative_positions runs from T - 1 down to 0).
      # Distances past clamp_len share one row, so a clamped model keeps
      # clamp_len + 1 rows, not W (820 of 2,100 at enwik8's evaluation).
      rows = self.window
      if m.clamp_len > 0:
        rows = min(rows, m.clamp_len + 1)
      table = rel_attn.relative_positions(
          rows, c * d, clamp_len=m.clamp_len, dtype=dtype
      )[::-1].reshape(rows, c, d)
      out = []
      for i in range(m.num_layers):
        with hk.experimental.name_scope(f"layer_{i}"):
          ws = {}
          with hk.experimental.name_scope("attention"):
            for name in ("query", "key", "value", "position", "output"):
              with hk.experimental.name_scope(name):
                ws[name] = hk.get_parameter("w", (c, c, d))
          bs = {}
          for name, s in (
              ("ffn_in", (c, m.d_inner_channels, d)),
              ("ffn_out", (m.d_inner_channels, c, d)),
          ):
            with hk.experimental.name_scope(name):
              ws[name] = hk.get_parameter("w", s)
              bs[name] = hk.get_parameter("b", s[1:])
        qkv = jnp.concatenate([ws["query"], ws["key"], ws["value"]], axis=1)
        prep = {
            "qkv": qkv,
            "output": ws["output"],
            "ffn_in": ws["ffn_in"],
            "ffn_out": ws["ffn_out"],
        }
        layer = {
            k: kernels.prepare_dense(w.astype(dtype), alg, self.paths[k])
            for k, w in prep.items()
        }
        layer["ffn_in_b"] = bs["ffn_in"].astype(dtype)
        layer["ffn_out_b"] = bs["ffn_out"].astype(dtype)
        positions = kernels.dense(table, ws["position"].astype(dtype), alg)
        layer["positions"] = positions.reshape(rows, h, -1).transpose(1, 0, 2)
        layer["u"] = (u[i] if m.untie_r else u).astype(dtype)
        layer["v"] = (v[i] if m.untie_r else v).astype(dtype)
        out.append(layer)
    return {"layers": tuple(out)}

  def _norms(self):
    m = self.model
    return (
        layers.get_norm(
            "layer", m.algebra, mode=m.norm_mode, name="attention_norm"
        ),
        layers.get_norm("layer", m.algebra, mode=m.norm_mode, name="ffn_norm"),
    )

  def _fill_fn(self, weights, new_mems, prompt_len) -> DecodeCache:
    """Projects the prompt's memory [L, B, mem_len, C, d] into the rings."""
    m = self.model
    c = m.num_channels
    b = new_mems.shape[1]
    mem = new_mems.shape[2]
    w_len = self.window
    slots = (prompt_len - mem + jnp.arange(mem)) % w_len
    keys, values = [], []
    with self._scope():
      for i in range(m.num_layers):
        lw = weights["layers"][i]
        dtype = lw["u"].dtype
        hid = new_mems[i].astype(dtype)
        with hk.experimental.name_scope(f"layer_{i}"):
          attention_norm, _ = self._norms()
          if m.pre_norm:
            hid = attention_norm(hid)
        h = m.num_heads
        shape = (b * h, w_len, c // h * m.algebra.dim)
        k_ring = jnp.zeros(shape, dtype)
        v_ring = jnp.zeros(shape, dtype)
        if mem:
          kv = kernels.dense_prepared(hid, lw["qkv"])

          def head_major(a, h=h):  # [B, M, C, d] -> [B*H, M, c*d]
            a = a.reshape(*a.shape[:2], h, -1).transpose(0, 2, 1, 3)
            return a.reshape(-1, *a.shape[2:])

          k_ring = k_ring.at[:, slots].set(head_major(kv[..., c : 2 * c, :]))
          v_ring = v_ring.at[:, slots].set(head_major(kv[..., 2 * c :, :]))
        keys.append(k_ring)
        values.append(v_ring)
    return DecodeCache(
        tuple(keys), tuple(values), jnp.asarray(prompt_len, jnp.int32)
    )

  def _step_fn(self, weights, cache: DecodeCache, tokens):
    """tokens [B] at position cache.pos -> (log_probs [B, V], cache)."""
    m = self.model
    c = m.num_channels
    pos = cache.pos
    slot = pos % self.window
    keys, values = [], []
    with self._scope():
      embed, head = m._modules()  # pylint: disable=protected-access
      dtype = weights["layers"][0]["u"].dtype
      x = embed(tokens).astype(dtype)  # [B, C, d]
      for i in range(m.num_layers):
        lw = weights["layers"][i]
        with hk.experimental.name_scope(f"layer_{i}"):
          attention_norm, ffn_norm = self._norms()
          act = layers.get_activation(m.activation, m.algebra)
          x_in = attention_norm(x) if m.pre_norm else x
          qkv = kernels.dense_prepared(x_in, lw["qkv"])
          q, k, v = qkv[:, :c], qkv[:, c : 2 * c], qkv[:, 2 * c :]
          b, h = tokens.shape[0], m.num_heads
          k_ring = jax.lax.dynamic_update_slice_in_dim(
              cache.keys[i], k.reshape(b * h, 1, -1), slot, axis=1
          )
          v_ring = jax.lax.dynamic_update_slice_in_dim(
              cache.values[i], v.reshape(b * h, 1, -1), slot, axis=1
          )
          keys.append(k_ring)
          values.append(v_ring)
          a = rel_attn.ring_attention(
              q, k_ring, v_ring, lw["positions"], lw["u"], lw["v"], pos=pos
          )
          a = kernels.dense_prepared(a, lw["output"])

          def ffn(y, lw=lw, act=act):
            y = kernels.dense_prepared(y, lw["ffn_in"]) + lw["ffn_in_b"]
            return (
                kernels.dense_prepared(act(y), lw["ffn_out"]) + lw["ffn_out_b"]
            )

          if m.pre_norm:
            x = x + a
            x = x + ffn(ffn_norm(x))
          else:
            x = attention_norm(x + a)
            x = ffn_norm(x + ffn(x))
      logp = head.log_prob(x, tied=embed if m.tie_weight else None)
    return logp.astype(jnp.float32), DecodeCache(
        tuple(keys), tuple(values), pos + 1
    )

  # -- public (jitted in __init__) --------------------------------------------

  def _prepare_impl(self, params) -> dict[str, Any]:
    """Prepared weights, biases and position tables (once per params)."""
    return self._prepare(params)

  def _start_impl(self, params, weights, tokens):
    """Runs the prompt tokens [B, P] (one model call, empty memory).

    Returns:
      (log_probs [B, V] float32 of the token after the prompt, cache).
    """
    m = self.model
    tokens = jnp.asarray(tokens, jnp.int32)
    b, p = tokens.shape
    dtype = weights["layers"][0]["u"].dtype
    mems = jnp.zeros(
        (m.num_layers, b, m.mem_len, m.num_channels, m.algebra.dim), dtype
    )
    logp, new_mems = self._forward(params, tokens, mems)
    cache = self._fill(params, weights, new_mems, p)
    return logp[:, -1], cache

  def _step_impl(self, params, weights, cache, tokens):
    """One token per stream, tokens [B] -> (log_probs [B, V], cache)."""
    return self._step(params, weights, cache, jnp.asarray(tokens, jnp.int32))

  def _generate_impl(
      self,
      params,
      weights,
      cache: DecodeCache,
      log_probs: jax.Array,
      key: jax.Array,
      temperature: float | jax.Array = 1.0,
      *,
      num_tokens: int,
      greedy: bool = False,
      top_k: int = 0,
  ):
    """Samples num_tokens tokens per stream in one `lax.scan`.

    Each step draws a token from log_probs (greedy: the argmax; else
    log_probs / temperature restricted to the top_k best when top_k > 0,
    ties at the k-th value kept), then runs it through the model. The last
    step's model call gives the log-probs for a continuation.

    Args:
      params, weights: the model's parameters and `prepare(params)`.
      cache: from `start` (or a previous `generate`).
      log_probs: [B, V] for the next token (from `start`).
      key: PRNG key (the draws are a function of it: reproducible).
      temperature: > 0 (traced; ignored when greedy).
      num_tokens: N (static).
      greedy: argmax instead of sampling (static).
      top_k: sample among the k most likely tokens; 0 = all (static).

    Returns:
      (tokens [B, N] int32, cache, log_probs [B, V] after the last token).
    """

    # Every uniform drawn before the loop, one per step and stream: a PRNG
    # call per step is a loop of its own on XLA:CPU (threefry), 28% of the
    # quick-start model's token.
    uniforms = jax.random.uniform(key, (num_tokens, log_probs.shape[0]))

    def body(carry, u):
      cache, logp = carry
      tok = _choose(u, logp, temperature, greedy=greedy, top_k=top_k)
      logp, cache = self._step(params, weights, cache, tok)
      return (cache, logp), tok

    (cache, logp), toks = jax.lax.scan(body, (cache, log_probs), uniforms)
    return toks.T, cache, logp

  def _score_impl(self, params, weights, cache, tokens):
    """Teacher forcing: log_probs [B, N, V] after each of tokens [B, N]."""

    def body(cache, tok):
      logp, cache = self._step(params, weights, cache, tok)
      return cache, logp

    _, logps = jax.lax.scan(body, cache, jnp.asarray(tokens, jnp.int32).T)
    return jnp.swapaxes(logps, 0, 1)


def _choose(u, log_probs, temperature, *, greedy: bool, top_k: int):
  """One token per row of log_probs [B, V] (int32 [B]).

  Greedy: the argmax. Else an inverse-CDF draw from softmax(log_probs /
  temperature), restricted to the top_k best when 0 < top_k < V (ties at
  the k-th value kept): the first token whose cumulative probability
  exceeds u times the total, u [B] uniform in [0, 1). A token of
  probability 0 is never drawn (the cumulative sum does not rise there).
  """
  if greedy:
    return jnp.argmax(log_probs, axis=-1).astype(jnp.int32)
  z = log_probs.astype(jnp.float32) / temperature
  if 0 < top_k < z.shape[-1]:
    cut = jax.lax.top_k(z, top_k)[0][:, -1:]
    z = jnp.where(z >= cut, z, -jnp.inf)
  cdf = jnp.cumsum(jax.nn.softmax(z, axis=-1), axis=-1)
  below = cdf <= u[:, None] * cdf[:, -1:]
  return jnp.minimum(jnp.sum(below, axis=-1), z.shape[-1] - 1).astype(jnp.int32)


def bytes_per_token(
    decoder: TXLDecoder, params, weights, batch_size: int
) -> dict[str, int]:
  """Bytes one decoding step reads, by kind, for batch_size streams.

  weights: the prepared layer weights, the biases, norms and relative
  biases, and the embedding/softmax parameters (the tied softmax reads the
  whole table every step); kv: both rings of every layer (all W slots are
  read once per step, per stream); positions: the W_r R tables. Everything
  but the rings is read once per step whatever B.
  """

  def nbytes(a):
    return int(a.size) * np.dtype(a.dtype).itemsize

  w_total = 0
  pos_total = 0
  kv = 0
  for lw in weights["layers"]:
    for name in LINEARS:
      w_total += nbytes(lw[name].weight)
    for name in ("ffn_in_b", "ffn_out_b", "u", "v"):
      w_total += nbytes(lw[name])
    pos_total += nbytes(lw["positions"])
    item = np.dtype(lw["u"].dtype).itemsize
    m = decoder.model
    kv += (
        2 * batch_size * decoder.window * m.num_channels * m.algebra.dim * item
    )
  # Parameters the prepared weights do not replace (norms, embedding,
  # softmax); the relative biases are already counted per layer.
  for path, leaves in params.items():
    if "/attention/" in path or path.endswith(("/ffn_in", "/ffn_out")):
      continue
    if path.endswith("/relative_bias"):
      continue
    w_total += sum(nbytes(a) for a in leaves.values())
  return {"weights": int(w_total), "kv": int(kv), "positions": int(pos_total)}
