"""Byte-level causal language modelling (enwik8-style data), scored in bits.

Data sources (`data.name`):
  enwiki_sample  the Wikipedia XML slice shipped in the gensim wheel
                 (`algebranets.data.enwiki_sample`); `data.path` '' means the
                 default cache, fetched once from PyPI if absent.
  bytes_file     any raw file (plain, .bz2 or single-member .zip) at
                 `data.path`, e.g. enwik8.

Either is split contiguously by `data.split` (enwik8's 90/5/5 by default).
Training windows are drawn by (seed, step) (`data.byte_windows`), so the data
position is the step and resuming is exact. Metrics: `loss` (nats per byte),
`bits_per_byte` (= loss / ln 2) and next-byte `accuracy`.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from algebranets import models
from algebranets.data import byte_windows, enwiki_sample
from algebranets.tasks import registry
from algebranets.tasks.base import Task

VOCAB_SIZE = 256
SOURCES = ("enwiki_sample", "bytes_file")
SPLITS = ("train", "valid", "test")


def data_defaults() -> dict[str, Any]:
  return dict(
      name="enwiki_sample",
      path="",  # '' = default cache for enwiki_sample; required for bytes_file
      seq_len=128,
      split=(0.9, 0.05, 0.05),
  )


def validate_config(config, *, check_data: bool = True) -> None:
  """Task-level checks of `config.data` and `config.eval.split`."""
  data = config.data
  if data.name not in SOURCES:
    close = [s for s in SOURCES if s[:3] == str(data.name)[:3]]
    hint = f' Did you mean "{close[0]}"?' if close else ""
    raise ValueError(
        f"data.name={data.name!r} is not a byte source; valid: "
        f"{list(SOURCES)}.{hint}"
    )
  if not isinstance(data.seq_len, int) or data.seq_len < 1:
    raise ValueError(f"data.seq_len must be an int >= 1, got {data.seq_len!r}.")
  split = tuple(data.split)
  if (
      len(split) != 3
      or any(f <= 0 for f in split)
      or not math.isclose(sum(split), 1.0, abs_tol=1e-6)
  ):
    raise ValueError(
        f"data.split={split!r} must be three positive fractions (train, "
        "valid, test) summing to 1, e.g. (0.9, 0.05, 0.05)."
    )
  if config.eval.split not in SPLITS:
    raise ValueError(
        f"eval.split={config.eval.split!r}; use one of {list(SPLITS)}."
    )
  if data.name == "bytes_file" and not data.path:
    raise ValueError(
        "data.name='bytes_file' needs data.path: the raw file to train on "
        "(e.g. --config.data.path=/data/enwik8)."
    )
  if check_data and data.path and not pathlib.Path(data.path).is_file():
    raise ValueError(
        f"data.path={data.path!r} is not a file. Point it at a raw byte "
        "file (plain, .bz2 or .zip), or leave it '' with "
        "data.name='enwiki_sample' to use the embedded Wikipedia sample."
    )


def _load(data_cfg) -> dict[str, np.ndarray]:
  path = data_cfg.path
  if data_cfg.name == "enwiki_sample" and not path:
    path = enwiki_sample.fetch_enwiki_sample()  # cached after the first call
  raw = enwiki_sample.load_bytes(path)
  return enwiki_sample.split_bytes(raw, tuple(data_cfg.split))


def unigram_report(
    final: Mapping[str, float], data_info: Mapping[str, Any], split: str
) -> list[str]:
  """The model against the unigram baseline of `split` (`Task.report`).

  Reads '<split>_unigram_bits' (with 'bits_per_byte') or
  '<split>_unigram_perplexity' (with 'perplexity') from `data_info`.
  """
  lines = []
  baseline = data_info.get(f"{split}_unigram_bits")
  if baseline is not None and "bits_per_byte" in final:
    lines.append(
        f"unigram entropy of the {split} split: {baseline:.4f} bits/byte;"
        f" the model is {baseline - final['bits_per_byte']:.4f} bits below."
    )
  baseline = data_info.get(f"{split}_unigram_perplexity")
  if baseline is not None and "perplexity" in final:
    lines.append(
        f"unigram perplexity of the {split} split: {baseline:.1f}; the "
        f"model's is {final['perplexity']:.1f}."
    )
  return lines


class ByteLMTask(Task):
  """The byte LM task of one run (the interface the trainer uses).

  Batches are dicts of NumPy arrays with the batch on axis 0: 'inputs' and
  'targets' int32 [B, T], and for evaluation 'weights' float32 [B, T].
  """

  metric_names = ("loss", "bits_per_byte", "accuracy")
  # The keys of model_fn's sums (what `summarize` reads).
  sum_names = ("nll", "correct", "count")
  # Lower is better for the headline metric (sweep tables, best checkpoint).
  headline_metric = "bits_per_byte"

  def __init__(self, config, *, process_index: int = 0, process_count: int = 1):
    self.config = config
    self.seq_len = config.data.seq_len
    self.process_index = process_index
    self.process_count = process_count
    self.splits = _load(config.data)
    for part in self.splits.values():
      byte_windows.num_eval_windows(part, self.seq_len)  # fails if too short
    self.vocab_size = VOCAB_SIZE

  # ---------------------------------------------------------------- model --
  def model_fn(
      self, batch: dict[str, jax.Array], is_training: bool
  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Loss and metric sums; call inside `hk.transform_with_state`.

    Returns:
      (mean loss over weighted tokens, {'nll', 'correct', 'count'} sums).
    """
    model = models.build(
        self.config.model, vocab_size=self.vocab_size, max_len=self.seq_len
    )
    logits = model(batch["inputs"], is_training=is_training)
    logits = logits.astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    targets = batch["targets"]
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    weights = batch.get("weights")
    if weights is None:
      weights = jnp.ones_like(nll)
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    count = jnp.sum(weights)
    sums = {
        "nll": jnp.sum(nll * weights),
        "correct": jnp.sum(correct * weights),
        "count": count,
    }
    return sums["nll"] / jnp.maximum(count, 1.0), sums

  def macs_fn(self):
    """(untransformed fn, args) for `metrics.count_macs` on one example."""

    def fn(tokens):
      model = models.build(
          self.config.model, vocab_size=self.vocab_size, max_len=self.seq_len
      )
      return model(tokens, is_training=False)

    return fn, (jax.ShapeDtypeStruct((1, self.seq_len), jnp.int32),)

  def example_batch(
      self, batch_size: int, is_training: bool = True
  ) -> dict[str, np.ndarray]:
    del is_training  # same shapes for training and evaluation
    z = np.zeros((batch_size, self.seq_len), np.int32)
    return {"inputs": z, "targets": z}

  # ----------------------------------------------------------------- data --
  def train_batch(self, step: int) -> dict[str, np.ndarray]:
    return byte_windows.train_batch(
        self.splits["train"],
        seq_len=self.seq_len,
        global_batch=self.config.train.batch_size,
        seed=self.config.seed,
        step=step,
        process_index=self.process_index,
        process_count=self.process_count,
    )

  def eval_batches(
      self, split: str, *, batch_size: int, num_batches: int = 0
  ) -> Iterator[dict[str, np.ndarray]]:
    if split not in self.splits:
      raise ValueError(f"Unknown split {split!r}; valid: {list(self.splits)}.")
    return byte_windows.eval_batches(
        self.splits[split],
        seq_len=self.seq_len,
        global_batch=batch_size,
        num_batches=num_batches,
        process_index=self.process_index,
        process_count=self.process_count,
    )

  def num_eval_batches(self, split: str, batch_size: int) -> int:
    n = byte_windows.num_eval_windows(self.splits[split], self.seq_len)
    return -(-n // batch_size)

  # -------------------------------------------------------------- metrics --
  @staticmethod
  def summarize(sums: dict[str, float]) -> dict[str, float]:
    """Metric values from summed 'nll', 'correct', 'count'."""
    count = max(float(sums["count"]), 1.0)
    loss = float(sums["nll"]) / count
    return {
        "loss": loss,
        "bits_per_byte": loss / math.log(2.0),
        "accuracy": float(sums["correct"]) / count,
    }

  def describe(self) -> dict[str, float]:
    """Split sizes and unigram baselines (bits per byte) to beat."""
    train = self.splits["train"]
    out: dict[str, float] = {}
    for name, part in self.splits.items():
      out[f"{name}_bytes"] = int(part.size)
      ref = None if name == "train" else train
      out[f"{name}_unigram_bits"] = enwiki_sample.unigram_entropy_bits(
          part, reference=ref
      )
    return out

  def report(self, final, data_info, split) -> list[str]:
    """The model's bits/byte below the unigram entropy of `split`."""
    return unigram_report(final, data_info, split)


def _build(config, *, process_index: int = 0, process_count: int = 1):
  return ByteLMTask(
      config, process_index=process_index, process_count=process_count
  )


registry.register(
    registry.TaskSpec(
        name="byte_lm",
        data_defaults=data_defaults,
        validate_config=validate_config,
        build=_build,
    )
)
