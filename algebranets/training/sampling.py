"""Autoregressive sampling from a Transformer-XL checkpoint with cached memory.

The batch-1 inference setting the paper motivates: the prompt is run once,
then every new token is ONE position attending to the cached memory of the
previous `model.eval_mem_len` positions, so a token costs the same whatever
the length of the text so far. Two programs are compiled (prompt, one token)
and the time per token excludes compilation.
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
  ):
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
    self._fwd = jax.jit(
        lambda p, t, m, n: fwd.apply(cast_floating(p, dtype), t, m, n)
    )

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
    ids = self.encode(prompt)
    if not ids:
      raise ValueError("The prompt is empty; give at least one character.")
    if num_tokens < 1:
      raise ValueError(f"num_tokens must be >= 1, got {num_tokens}.")
    if temperature < 0:
      raise ValueError(f"temperature must be >= 0, got {temperature}.")
    mems = jnp.zeros(self._mem_shape, self.exp.compute_dtype)
    start = time.perf_counter()
    logp, mems = self._fwd(
        self.params, jnp.asarray([ids], jnp.int32), mems, jnp.int32(0)
    )
    logp = np.asarray(jax.device_get(logp[0, -1]), np.float64)
    prompt_seconds = time.perf_counter() - start
    seen = len(ids)
    rng = np.random.default_rng(seed)
    out: list[int] = []
    timed_start = None
    for i in range(num_tokens):
      token = _choose(logp, temperature, top_k, rng)
      out.append(token)
      if i == num_tokens - 1:
        break
      logp, mems = self._fwd(
          self.params,
          jnp.asarray([[token]], jnp.int32),
          mems,
          jnp.int32(min(seen, self.mem_len)),
      )
      seen += 1
      logp = np.asarray(jax.device_get(logp[0, -1]), np.float64)
      if timed_start is None:  # the first one-token call compiles
        timed_start = time.perf_counter()
        timed_from = i + 1
    elapsed = time.perf_counter() - timed_start if timed_start else 0.0
    timed = num_tokens - 1 - timed_from if timed_start else 0
    return SampleResult(
        prompt=prompt,
        text=self.decode(out),
        token_ids=out,
        prompt_seconds=prompt_seconds,
        tokens_per_second=timed / elapsed if elapsed > 0 and timed > 0 else 0.0,
        step=self.step,
    )


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
