"""Transformer-XL language modelling: contiguous streams with recurrent memory.

The token stream of a split is cut into `train.batch_size` contiguous
streams; step s trains on segment s (mod the epoch) of every stream, so the
memory a step leaves behind is the context of the next step's segment, as in
Transformer-XL. The memories are Haiku state (`model_state['~']['mems']`,
[L, B, mem_len, C, d]) sharded on the batch axis like the data, checkpointed
with the rest of the TrainState and restored on resume; the batch of a step
is a function of the step, so resuming is exact.

Evaluation follows the Transformer-XL protocol: fresh memories of
`model.eval_mem_len` (with `eval_clamp_len`, `eval_same_length`), segments of
`data.eval_tgt_len` over the whole split in order, and an exact
token-weighted average. Byte corpora report `bits_per_byte` (Transformer-XL's
"bpc" on enwik8, whose characters are bytes); word corpora report
`perplexity`.

Data sources (`data.name`): enwik8 (`data.path` = enwik8 or enwik8.zip),
wikitext103 (`data.path` = the directory of wiki.*.tokens), and the offline
stand-ins enwiki_sample and wikitext_sample (built from the Wikipedia sample
in the gensim wheel; `data.path` '' = the cache).
"""

from __future__ import annotations

import itertools
import math
import pathlib
from collections.abc import Iterator
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras, models
from algebranets.data import corpora, lm_streams
from algebranets.tasks import registry
from algebranets.tasks.base import Task
from algebranets.tasks.byte_lm import unigram_report

SPLITS = ("train", "valid", "test")
RECURRENT_MODELS = ("transformer_xl",)
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def data_defaults() -> dict[str, Any]:
  return dict(
      name="enwiki_sample",
      path="",  # file (enwik8) or directory (wikitext103); '' for samples
      tgt_len=512,  # training segment length
      eval_tgt_len=80,  # evaluation segment length
  )


def validate_config(config, *, check_data: bool = True) -> None:
  """Checks `data`, `eval.split` and that the model is recurrent."""
  data = config.data
  if data.name not in corpora.SOURCES:
    raise ValueError(
        f"data.name={data.name!r} is not a corpus; valid: "
        f"{list(corpora.SOURCES)}."
    )
  for key in ("tgt_len", "eval_tgt_len"):
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(f"data.{key} must be an int >= 1, got {value!r}.")
  if config.model.name not in RECURRENT_MODELS:
    raise ValueError(
        f"task 'stream_lm' needs a model with recurrent memory "
        f"({list(RECURRENT_MODELS)}), got model.name={config.model.name!r}; "
        "use task='byte_lm' for models without memory."
    )
  if config.eval.split not in SPLITS:
    raise ValueError(
        f"eval.split={config.eval.split!r}; use one of {list(SPLITS)}."
    )
  needs_path = data.name in ("enwik8", "wikitext103")
  if needs_path and not data.path:
    where = (
        "the enwik8 file or enwik8.zip"
        if data.name == "enwik8"
        else "the directory holding wiki.{train,valid,test}.tokens"
    )
    raise ValueError(
        f"data.name={data.name!r} needs data.path: {where} (e.g. "
        f"--config.data.path=/data/{data.name}). Without the data, use "
        "data.name='enwiki_sample' or 'wikitext_sample' (offline samples)."
    )
  if check_data and data.path and not pathlib.Path(data.path).exists():
    raise ValueError(f"data.path={data.path!r} does not exist.")


def unigram_bits(
    tokens: np.ndarray, vocab_size: int, reference: np.ndarray | None = None
) -> float:
  """Cross-entropy (bits/token) of `tokens` under the Laplace-smoothed
  unigram distribution of `reference` (default: `tokens` itself)."""
  ref = tokens if reference is None else reference
  counts = np.bincount(ref, minlength=vocab_size).astype(np.float64) + 1.0
  logp = np.log2(counts / counts.sum())
  return float(-np.mean(logp[tokens]))


class StreamLMTask(Task):
  """Transformer-XL language modelling over contiguous token streams."""

  # The keys of model_fn's sums (what `summarize` reads).
  sum_names = ("nll", "count")

  def __init__(self, config, *, process_index: int = 0, process_count: int = 1):
    self.config = config
    self.process_index = process_index
    self.process_count = process_count
    self.corpus = corpora.load_corpus(config.data.name, config.data.path)
    self.vocab_size = self.corpus.vocab_size
    self.byte_level = self.corpus.unit == "byte"
    self.headline_metric = "bits_per_byte" if self.byte_level else "perplexity"
    self.num_channels = models.constructed(
        config.model, vocab_size=self.vocab_size
    ).num_channels
    self.dim = algebras.get(config.model.algebra).dim
    self.compute_dtype = _DTYPES[config.train.compute_dtype]
    # Fail now, not at step 1, if a split is too short for its segments.
    lm_streams.num_segments(
        self.corpus.splits["train"].size,
        config.train.batch_size,
        config.data.tgt_len,
    )
    for split in ("valid", "test"):
      lm_streams.num_eval_segments(
          self.corpus.splits[split].size,
          config.eval.batch_size,
          config.data.eval_tgt_len,
      )

  # ---------------------------------------------------------------- model --
  def _model(self, is_training: bool):
    return models.build(
        self.config.model, vocab_size=self.vocab_size, is_eval=not is_training
    )

  def _mem_len(self, is_training: bool) -> int:
    m = self.config.model
    return m.mem_len if is_training else m.eval_mem_len

  def model_fn(self, batch, is_training: bool):
    """Loss and metric sums; the memories live in Haiku state."""
    model = self._model(is_training)
    inputs, targets = batch["inputs"], batch["targets"]
    mem_len = self._mem_len(is_training)
    mems = num_valid = None
    if mem_len > 0:
      shape = (
          self.config.model.num_layers,
          inputs.shape[0],
          mem_len,
          self.num_channels,
          self.dim,
      )
      # Stored in float32 so the state's dtype never depends on compute.
      mems = hk.get_state("mems", shape, jnp.float32, init=jnp.zeros)
      # How many memory positions hold real context: TXL starts every
      # stream (and every training epoch) with an empty memory; the fixed
      # size buffer is masked up to this count instead.
      count = hk.get_state("mem_count", (), jnp.int32, init=jnp.zeros)
      if "reset" in batch:
        reset = batch["reset"][0] > 0  # all streams start epochs together
        count = jnp.where(reset, 0, count)
        mems = jnp.where(reset, 0.0, mems)
      num_valid = count
      mems = mems.astype(self.compute_dtype)
    nll, new_mems = model(
        inputs, targets, mems, is_training=is_training, num_valid_mems=num_valid
    )
    if mem_len > 0:
      hk.set_state("mems", new_mems.astype(jnp.float32))
      hk.set_state(
          "mem_count", jnp.minimum(num_valid + inputs.shape[1], mem_len)
      )
    weights = batch.get("weights")
    if weights is None:
      weights = jnp.ones_like(nll)
    count = jnp.sum(weights)
    sums = {"nll": jnp.sum(nll * weights), "count": count}
    return sums["nll"] / jnp.maximum(count, 1.0), sums

  def state_batch_axis(self, path: str, leaf) -> int | None:
    """Memories [L, B, ...] are sharded on the batch axis like the data
    (the scalar fill count stays replicated)."""
    del leaf
    return 1 if path.endswith("['mems']") else None

  def eval_model_state(self, trained, fresh):
    """Evaluation starts from empty memories of the evaluation shape."""
    del trained
    return fresh()

  def macs_fn(self):
    """(fn, args) for `metrics.count_macs`: one training segment, B = 1."""
    m = self.config.model
    tgt = self.config.data.tgt_len

    def fn(tokens, mems):
      return self._model(False)(tokens, tokens, mems, is_training=False)

    mem_len = self._mem_len(False)
    args = (jax.ShapeDtypeStruct((1, tgt), jnp.int32),)
    if mem_len > 0:
      mem_shape = (m.num_layers, 1, mem_len, self.num_channels, self.dim)
      args += (jax.ShapeDtypeStruct(mem_shape, jnp.float32),)
    else:
      args += (None,)
    return fn, args

  def example_batch(self, batch_size: int, is_training: bool = True):
    tgt = (
        self.config.data.tgt_len
        if is_training
        else self.config.data.eval_tgt_len
    )
    z = np.zeros((batch_size, tgt), np.int32)
    batch = {"inputs": z, "targets": z}
    if is_training:
      batch["reset"] = np.zeros((batch_size,), np.int32)
    return batch

  # ----------------------------------------------------------------- data --
  def train_batch(self, step: int) -> dict[str, np.ndarray]:
    """Segment `step` of every stream; 'reset' [B] is 1 at an epoch start
    (the memories are emptied there, as Transformer-XL does)."""
    tokens = self.corpus.splits["train"]
    batch = lm_streams.train_segment(
        tokens,
        batch_size=self.config.train.batch_size,
        tgt_len=self.config.data.tgt_len,
        step=step,
        process_index=self.process_index,
        process_count=self.process_count,
    )
    _, segment = lm_streams.stream_position(
        step,
        tokens.size,
        self.config.train.batch_size,
        self.config.data.tgt_len,
    )
    rows = batch["inputs"].shape[0]
    batch["reset"] = np.full((rows,), int(segment == 0), np.int32)
    return batch

  def eval_batches(
      self, split: str, *, batch_size: int, num_batches: int = 0
  ) -> Iterator[dict[str, np.ndarray]]:
    if split not in self.corpus.splits:
      raise ValueError(f"Unknown split {split!r}; valid: {list(SPLITS)}.")
    it = lm_streams.eval_segments(
        self.corpus.splits[split],
        batch_size=batch_size,
        tgt_len=self.config.data.eval_tgt_len,
        process_index=self.process_index,
        process_count=self.process_count,
    )
    return itertools.islice(it, num_batches) if num_batches > 0 else it

  def num_eval_batches(self, split: str, batch_size: int) -> int:
    """Batches `eval_batches(split, batch_size=...)` yields (whole split)."""
    if split not in self.corpus.splits:
      raise ValueError(f"Unknown split {split!r}; valid: {list(SPLITS)}.")
    return lm_streams.num_eval_segments(
        self.corpus.splits[split].size,
        batch_size,
        self.config.data.eval_tgt_len,
    )

  # -------------------------------------------------------------- metrics --
  def summarize(self, sums: dict[str, float]) -> dict[str, float]:
    count = max(float(sums["count"]), 1.0)
    loss = float(sums["nll"]) / count
    out = {"loss": loss}
    if self.byte_level:
      out["bits_per_byte"] = loss / math.log(2.0)
    else:
      out["perplexity"] = math.exp(min(loss, 700.0))
    return out

  def describe(self) -> dict[str, Any]:
    """Corpus sizes and unigram baselines (bits per token, perplexity)."""
    splits = self.corpus.splits
    out: dict[str, Any] = {
        "corpus": self.corpus.name,
        "unit": self.corpus.unit,
        "vocab_size": self.vocab_size,
    }
    for name in SPLITS:
      part = splits[name]
      ref = None if name == "train" else splits["train"]
      bits = unigram_bits(part, self.vocab_size, reference=ref)
      out[f"{name}_tokens"] = int(part.size)
      if self.byte_level:
        out[f"{name}_unigram_bits"] = bits
      else:
        out[f"{name}_unigram_perplexity"] = float(2.0**bits)
    return out

  def report(self, final, data_info, split) -> list[str]:
    """The model against the unigram baseline (bits or perplexity)."""
    return unigram_report(final, data_info, split)


def _build(config, *, process_index: int = 0, process_count: int = 1):
  return StreamLMTask(
      config, process_index=process_index, process_count=process_count
  )


registry.register(
    registry.TaskSpec(
        name="stream_lm",
        data_defaults=data_defaults,
        validate_config=validate_config,
        build=_build,
    )
)
