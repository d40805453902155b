"""What the model benchmark's parts share: the model names, the
--override syntax, a timed `Variant` and how variants are compiled and timed
(`bench/models.py` has the whole method)."""

from __future__ import annotations

import ast
import dataclasses
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp

from algebranets import models
from algebranets.training.state import TrainState
from bench import common

VISION_CONFIGS = {
    "resnet": "configs.imagenet_resnet50",
    "mobilenet": "configs.imagenet_mobilenet",
}


TXL = "transformer_xl"


MODELS = (*VISION_CONFIGS, TXL)


MATCH = ("params", "params_without_io", "macs", "none")


DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


# Compiler options for programs that run ONCE (parameter init): XLA's
# optimisation passes would take longer than the program (ResNet-50 init:
# 7 s to compile optimised, 3.5 s like this, milliseconds to run).
_RUN_ONCE_COMPILER_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}


def parse_override(text: str) -> tuple[str, str, Any]:
  """'MODEL.KEY=VALUE' -> (model, key, value).

  VALUE is a Python literal (`ast.literal_eval`: 18, 0.5, (1, 1, 1, 1),
  True, 'v1') or else taken as a plain string (v1).

  Raises:
    ValueError: not of the form MODEL.KEY=VALUE, or an unknown MODEL.
  """
  target, eq, value_text = text.partition("=")
  model, dot, key = target.strip().partition(".")
  if not eq or not dot or not model or not key:
    raise ValueError(
        f"--override {text!r} must look like MODEL.KEY=VALUE, e.g. "
        "resnet.depth=18 or transformer_xl.num_layers=2."
    )
  if model not in MODELS:
    raise ValueError(
        f"--override {text!r}: unknown model {model!r}; valid: "
        f"{', '.join(MODELS)}."
    )
  value_text = value_text.strip()
  try:
    value = ast.literal_eval(value_text)
  except (ValueError, SyntaxError):
    value = value_text
  return model, key.strip(), value


def apply_overrides(
    model_cfg, model: str, overrides: Sequence[tuple[str, str, Any]]
) -> None:
  """Sets this model's overrides on its model section (in place)."""
  with model_cfg.unlocked():
    for name, key, value in overrides:
      if name != model:
        continue
      try:
        model_cfg[key] = value
      except TypeError as e:  # ConfigDict keeps each field's type
        raise ValueError(
            f"--override {name}.{key}={value!r}: {e}. Give a value of the "
            f"field's type (current value {model_cfg[key]!r})."
        ) from None


def validate_model(model_cfg, overrides) -> None:
  try:
    models.check(model_cfg)
  except ValueError as e:
    mine = [f"{m}.{k}={v!r}" for m, k, v in overrides if m == model_cfg.name]
    if not mine:
      raise
    raise ValueError(f"after --override {', '.join(mine)}: {e}") from None


@dataclasses.dataclass
class Variant:
  """One (model, algebra) to time: its compiled step and live state.

  Calling it runs one training step on `batch` and keeps the new state (the
  old one is donated), so `common.time_interleaved` can call it repeatedly.

  Attributes:
    row: the result row (config, counts; timing fields are added later).
    step: compiled train_step(state, batch) -> (state, metrics).
    batch: the fixed device batch.
    state: the current TrainState.
  """

  row: dict[str, Any]
  step: Any
  batch: Any
  state: TrainState

  def __call__(self) -> TrainState:
    self.state, _ = self.step(self.state, self.batch)
    return self.state


def compile_step(step_fn, state, batch) -> tuple[Any, float]:
  """(step_fn compiled ahead of time for (state, batch), compile seconds)."""
  t0 = time.perf_counter()
  compiled = step_fn.lower(state, batch).compile()
  return compiled, time.perf_counter() - t0


def run_once(jitted, *args):
  """Calls a jitted function compiled without XLA's optimisation passes."""
  compiled = jitted.lower(*args).compile(
      compiler_options=_RUN_ONCE_COMPILER_OPTIONS
  )
  return compiled(*args)


def log(msg: str) -> None:
  """Progress on stderr (stdout holds the tables)."""
  print(msg, file=sys.stderr, flush=True)


def time_variants(
    variants: Mapping[str, Variant],
    *,
    repeats: int,
    warmup: int,
    max_seconds: float | None,
    min_sample_s: float = 0.1,
) -> None:
  """Times the variants interleaved; adds timing fields to their rows
  (`Timing.summary_ms`: ms_median, ms_q25, ms_q75, ms_min, ms_max,
  n_samples, inner)."""
  timings = common.time_interleaved(
      dict(variants),
      repeats=repeats,
      warmup=warmup,
      max_seconds=max_seconds,
      min_sample_s=min_sample_s,
  )
  for name, v in variants.items():
    v.row.update(timings[name].summary_ms())
