"""Autoregressive sampling from a Transformer-XL checkpoint with cached memory.

The batch-1 inference setting the paper motivates: the prompt is run once,
then every new token attends to the cached keys and values of the previous
`model.eval_mem_len` positions, so a token costs the same whatever the
length of the text so far. `Sampler.generate` uses
`models.txl_decoding.TXLDecoder`: projected K/V rings, prepared weights and
the whole generation compiled as one `lax.scan` (compiled ahead of time; the
tokens/s exclude compilation).

`reference_generate` is the previous step-by-step path (the model's
`log_prob` on one position against the memory of hidden states, one jitted
call, one host transfer and a NumPy draw per token), kept as the reference
of the tests and the "before" column of `bench.decode`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets.models import txl_decoding
from algebranets.training import checkpointing, evaluator
from algebranets.training.experiment import Experiment, cast_floating


@dataclasses.dataclass
class SampleResult:
  """A generated continuation and how fast it was produced."""

  prompt: str
  text: str
  token_ids: list[int]
  prompt_seconds: float
  tokens_per_second: float
  step: int


class Sampler:
  """Generates text from a `stream_lm` workdir's checkpoint on one device."""

  def __init__(
      self,
      workdir: str | os.PathLike,
      *,
      step: int | None = None,
      data_path: str | None = None,
      paths: dict[str, str] | str | None = None,
  ):
    """Restores a checkpoint and prepares the decoder.

    Args:
      workdir: a `stream_lm` training workdir.
      step: checkpoint step (default the latest).
      data_path: override of data.path (for the vocabulary).
      paths: kernel paths of the decoder's linears (see `TXLDecoder`);
        None = `kernels.choose_dense_path`'s, 'measure' = timed now.

    Raises:
      ValueError: not a stream_lm workdir.
    """
    config = evaluator.load_config(workdir)
    if config.task != "stream_lm":
      raise ValueError(
          f"Sampling needs a Transformer-XL (task 'stream_lm') workdir; "
          f"{workdir} trained task {config.task!r}."
      )
    if data_path is not None:
      config.data.path = data_path
    # One stream on one device; the training batch only has to validate.
    config.train.num_devices = 1
    config.train.batch_size = 1
    config.eval.batch_size = 1
    self.exp = Experiment(config)
    self.task = self.exp.task
    abstract = self.exp.abstract_state().params
    ckpt_dir = os.path.join(os.fspath(workdir), "checkpoints")
    if step is not None:
      ckpt_dir = os.path.join(ckpt_dir, str(step))
    self.params = checkpointing.restore_params(ckpt_dir, abstract)
    self.step = step if step is not None else _latest(ckpt_dir)
    self.corpus = self.task.corpus
    self._byte = self.corpus.unit == "byte"
    self._ids = {s: i for i, s in enumerate(self.corpus.symbols)}
    m = config.model
    self.mem_len = m.eval_mem_len
    self._mem_shape = (
        m.num_layers,
        1,
        self.mem_len,
        self.task.num_channels,
        self.task.dim,
    )
    dtype = self.exp.compute_dtype

    def forward(tokens, mems, num_valid):
      model = self.task._model(is_training=False)
      return model.log_prob(tokens, mems, num_valid_mems=num_valid)

    fwd = hk.without_apply_rng(hk.transform(forward))
    # The reference path (`reference_generate`): one position per call.
    self._fwd = jax.jit(
        lambda p, t, m, n: fwd.apply(cast_floating(p, dtype), t, m, n)
    )
    self.decoder = txl_decoding.TXLDecoder(
        lambda: self.task._model(is_training=False), batch_size=1, paths=paths
    )
    self._dparams = cast_floating(self.params, dtype)
    self._weights = self.decoder.prepare(self._dparams)
    self._compiled = {}

  def encode(self, text: str) -> list[int]:
    """Text -> token ids (bytes of UTF-8, or whitespace-split words)."""
    if self._byte:
      units: list[Any] = list(text.encode("utf-8"))
    else:
      units = text.split()
    unk = self._ids.get("<unk>")
    out = []
    for u in units:
      i = self._ids.get(u, unk)
      if i is None:
        raise ValueError(
            f"Symbol {u!r} is not in the vocabulary of {self.corpus.name}."
        )
      out.append(i)
    return out

  def decode(self, ids) -> str:
    symbols = [self.corpus.symbols[i] for i in ids]
    if self._byte:
      return bytes(symbols).decode("utf-8", errors="replace")
    return " ".join(s if s != "<eos>" else "\n" for s in symbols)

  def generate(
      self,
      prompt: str,
      num_tokens: int,
      *,
      temperature: float = 1.0,
      top_k: int = 0,
      seed: int = 0,
  ) -> SampleResult:
    """Continues `prompt` by `num_tokens` tokens.

    Args:
      prompt: text; must encode to at least one token.
      num_tokens: tokens to generate (>= 1).
      temperature: 0 = greedy; otherwise logits are divided by it.
      top_k: sample among the k most likely tokens (0 = all).
      seed: sampling seed.
    """
    ids = self._check(prompt, num_tokens, temperature, top_k)
    dec, params, weights = self.decoder, self._dparams, self._weights
    start = time.perf_counter()
    logp, cache = dec.start(params, weights, jnp.asarray([ids], jnp.int32))
    jax.block_until_ready(logp)
    prompt_seconds = time.perf_counter() - start
    key = jax.random.PRNGKey(seed)
    greedy = temperature == 0
    temp = jnp.float32(temperature if temperature > 0 else 1.0)
    sig = (num_tokens, greedy, top_k)
    if sig not in self._compiled:
      self._compiled[sig] = dec.generate.lower(
          params,
          weights,
          cache,
          logp,
          key,
          temp,
          num_tokens=num_tokens,
          greedy=greedy,
          top_k=top_k,
      ).compile()
    start = time.perf_counter()
    tokens, _, _ = self._compiled[sig](params, weights, cache, logp, key, temp)
    out = [int(t) for t in jax.device_get(tokens)[0]]
    elapsed = time.perf_counter() - start
    return SampleResult(
        prompt=prompt,
        text=self.decode(out),
        token_ids=out,
        prompt_seconds=prompt_seconds,
        tokens_per_second=num_tokens / elapsed,
        step=self.step,
    )

  def _check(self, prompt, num_tokens, temperature, top_k) -> list[int]:
    ids = self.encode(prompt)
    if not ids:
      raise ValueError("The prompt is empty; give at least one character.")
    if num_tokens < 1:
      raise ValueError(f"num_tokens must be >= 1, got {num_tokens}.")
    if temperature < 0:
      raise ValueError(f"temperature must be >= 0, got {temperature}.")
    if top_k < 0:
      raise ValueError(f"top_k must be >= 0 (0 = all tokens), got {top_k}.")
    return ids

  def reference_generate(
      self,
      prompt: str,
      num_tokens: int,
      *,
      temperature: float = 1.0,
      top_k: int = 0,
      seed: int = 0,
      forced: list[int] | None = None,
  ) -> tuple[SampleResult, np.ndarray]:
    """`reference_generate` on this checkpoint (same arguments)."""
    ids = self._check(prompt, num_tokens, temperature, top_k)
    out, logps, prompt_s, tps = reference_generate(
        self._fwd,
        self.params,
        ids,
        num_tokens,
        mem_shape=self._mem_shape,
        dtype=self.exp.compute_dtype,
        temperature=temperature,
        top_k=top_k,
        seed=seed,
        forced=forced,
    )
    result = SampleResult(
        prompt=prompt,
        text=self.decode(out),
        token_ids=out,
        prompt_seconds=prompt_s,
        tokens_per_second=tps,
        step=self.step,
    )
    return result, logps


def reference_generate(
    forward,
    params,
    ids: list[int],
    num_tokens: int,
    *,
    mem_shape: tuple[int, ...],
    dtype=jnp.float32,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    forced: list[int] | None = None,
) -> tuple[list[int], np.ndarray, float, float]:
  """The step-by-step sampler (batch 1): the "before" path.

  Every token is one `forward(params, tokens [1, T], mems, num_valid)` call
  (the model's `log_prob` against a memory of hidden states [L, 1, M, C,
  d], all keys re-projected), a host transfer and a NumPy draw.

  Args:
    forward: jitted (params, tokens, mems, num_valid_mems) -> (log_probs
      [1, T, V], new_mems).
    params: its parameters.
    ids: prompt token ids (>= 1).
    num_tokens: N >= 1.
    mem_shape: [L, 1, M, C, d] of the memory (M = the evaluation mem_len).
    dtype: dtype of the memory.
    temperature: 0 = greedy.
    top_k: 0 = all tokens.
    seed: NumPy seed of the draws.
    forced: teacher forcing: feed these N tokens instead of the draws
      (the returned tokens are then these).

  Returns:
    (tokens, log_probs [N, V] float64 (row i: the distribution token i was
    drawn from), prompt seconds (with compile), tokens/s of the one-token
    calls after the first (which compiles)).
  """
  mems = jnp.zeros(mem_shape, dtype)
  mem_len = mem_shape[2]
  start = time.perf_counter()
  logp, mems = forward(params, jnp.asarray([ids], jnp.int32), mems, 0)
  logp = np.asarray(jax.device_get(logp[0, -1]), np.float64)
  prompt_seconds = time.perf_counter() - start
  seen = len(ids)
  rng = np.random.default_rng(seed)
  out: list[int] = []
  logps = []
  timed_start = None
  timed_from = 0
  for i in range(num_tokens):
    logps.append(logp)
    token = (
        forced[i]
        if forced is not None
        else _choose(logp, temperature, top_k, rng)
    )
    out.append(token)
    if i == num_tokens - 1:
      break
    logp, mems = forward(
        params,
        jnp.asarray([[token]], jnp.int32),
        mems,
        jnp.int32(min(seen, mem_len)),
    )
    seen += 1
    logp = np.asarray(jax.device_get(logp[0, -1]), np.float64)
    if timed_start is None:  # the first one-token call compiles
      timed_start = time.perf_counter()
      timed_from = i + 1
  elapsed = time.perf_counter() - timed_start if timed_start else 0.0
  timed = num_tokens - 1 - timed_from if timed_start else 0
  tps = timed / elapsed if elapsed > 0 and timed > 0 else 0.0
  return out, np.stack(logps), prompt_seconds, tps


def _choose(logp: np.ndarray, temperature: float, top_k: int, rng) -> int:
  if temperature == 0:
    return int(np.argmax(logp))
  z = logp / temperature
  if 0 < top_k < z.size:
    cut = np.partition(z, -top_k)[-top_k]
    z = np.where(z >= cut, z, -np.inf)
  p = np.exp(z - z.max())
  p /= p.sum()
  return int(rng.choice(p.size, p=p))


def _latest(ckpt_dir: str) -> int:
  steps = [int(n) for n in os.listdir(ckpt_dir) if n.isdigit()]
  return max(steps) if steps else -1
