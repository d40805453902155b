"""Evaluation: over a split with a live state, or of a saved checkpoint.

`evaluate_workdir` rebuilds the run from its saved `config.json`, restores a
checkpoint into the CURRENT machine's devices (a run trained on 8 devices
evaluates on 1) and runs the full evaluation.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable
from typing import Any

import jax

from algebranets.sparsity import report as sparsity_report
from algebranets.training import checkpointing, config_lib, workdir_compat
from algebranets.training.experiment import Experiment
from algebranets.training.state import TrainState


def write_json(path: pathlib.Path, obj: Any) -> None:
  """Writes JSON atomically (tmp file + rename)."""
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
  os.replace(tmp, path)


def _accumulate(totals: dict[str, float], pending: list) -> None:
  for sums in jax.device_get(pending):
    for k, v in sums.items():
      totals[k] = totals.get(k, 0.0) + float(v)


def _ready(sums) -> bool:
  return all(x.is_ready() for x in jax.tree.leaves(sums))


def eval_json_path(workdir: str | os.PathLike, split: str, step: int):
  """`<workdir>/eval_<split>_step<N>.json`, written by `evaluate_workdir`."""
  return pathlib.Path(workdir) / f"eval_{split}_step{step}.json"


def evaluate(
    exp: Experiment,
    state: TrainState,
    split: str,
    *,
    batch_size: int,
    num_batches: int = 0,
    progress: Callable[[int, int | None], None] | None = None,
) -> dict[str, float]:
  """Runs the eval step over `split` and summarises.

  Args:
    exp: the experiment.
    state: a TrainState on the experiment's mesh.
    split: 'train', 'valid' or 'test' (task dependent).
    batch_size: global evaluation batch (divisible by the device count).
    num_batches: stop after this many batches; 0 = the whole split.
    progress: called as `progress(finished_batches, total)` as batches
      finish (total None when the task cannot count its batches), e.g. a
      `progress.ConsoleProgress`.

  Returns:
    The task's metrics, e.g. {'loss', 'bits_per_byte', 'accuracy'}.
  """
  totals: dict[str, float] = {}
  pending = []
  total = None
  if progress is not None and hasattr(exp.task, "num_eval_batches"):
    total = exp.task.num_eval_batches(split, batch_size)
    if num_batches > 0:
      total = min(total, num_batches)
  finished = 0
  model_state = exp.eval_model_state(state, batch_size)
  for batch in exp.task.eval_batches(
      split, batch_size=batch_size, num_batches=num_batches
  ):
    sums, model_state = exp.eval_step(
        state.params, model_state, exp.to_device(batch)
    )
    pending.append(sums)
    if progress is not None:
      # Count batches the device has finished, not merely dispatched ones
      # (dispatch runs up to 16 ahead), so the ETA is honest.
      ready = 0
      while ready < len(pending) and _ready(pending[ready]):
        ready += 1
      _accumulate(totals, pending[:ready])
      pending = pending[ready:]
      finished += ready
      progress(finished, total)
    if len(pending) >= 16:  # bounded device memory, still runs ahead
      _accumulate(totals, pending)
      finished += len(pending)
      pending = []
  _accumulate(totals, pending)
  finished += len(pending)
  if progress is not None:
    progress(finished, total)
  if not totals:
    raise ValueError(f"Split {split!r} produced no evaluation batches.")
  return exp.task.summarize(totals)


# What every config.json written by the trainer holds.
_CONFIG_SECTIONS = ("task", "model", "data", "train", "eval")


def load_config(workdir: str | os.PathLike):
  """The config a workdir was trained with (its `config.json`).

  Registers the workdir's recorded algebra first (`workdir_compat.restore`).

  Raises:
    FileNotFoundError: no config.json.
    ValueError: config.json is not valid JSON.
    checkpointing.CheckpointError: config.json or algebra.json contradict
      what the checkpoints were trained with.
  """
  path = pathlib.Path(workdir) / "config.json"
  if not path.is_file():
    raise FileNotFoundError(
        f"{path} not found: {workdir} is not a training workdir (it should "
        "hold config.json and checkpoints/ written by experiments.train)."
    )
  fix = "Restore it from the run's records, or rerun in a new --workdir."
  try:
    config = config_lib.from_json(path.read_text())
  except Exception as e:  # any garbage in the file: say which file
    raise config_lib.ConfigError(
        f"{path} is not a valid config ({type(e).__name__}: "
        f"{' '.join(str(e).split())[:200]}). {fix}"
    ) from None
  missing = [k for k in _CONFIG_SECTIONS if k not in config]
  if missing:
    raise config_lib.ConfigError(
        f"{path} is not a training config: no {missing} section(s). {fix}"
    )
  # Registers the recorded algebra (a file algebra needs no file) and
  # refuses a config.json edited away from what the checkpoints hold.
  workdir_compat.restore(config, workdir)
  return config


def evaluate_workdir(
    workdir: str | os.PathLike,
    *,
    step: int | None = None,
    split: str | None = None,
    batch_size: int | None = None,
    num_batches: int = 0,
    data_path: str | None = None,
    write: bool = True,
    progress: Callable[[int, int | None], None] | None = None,
) -> dict[str, Any]:
  """Restores a checkpoint of `workdir` and evaluates it.

  Args:
    workdir: a training workdir.
    step: checkpoint step; None = the latest readable one.
    split: split to evaluate; None = the config's `eval.split`.
    batch_size: global eval batch; None = the config's, rounded up to a
      multiple of this machine's device count.
    num_batches: 0 = the whole split.
    data_path: overrides `data.path` (the data moved to another machine).
    write: also write `<workdir>/eval_<split>_step<N>.json` (process 0).
    progress: passed to `evaluate`.

  Returns:
    {'step', 'split', **metrics}.
  """
  workdir = pathlib.Path(workdir)
  config = load_config(workdir)
  config.train.num_devices = 0  # this machine's devices, whatever trained
  if data_path is not None:
    config.data.path = data_path
  n = jax.device_count()
  if batch_size is None:
    batch_size = -(-config.eval.batch_size // n) * n
  config.eval.batch_size = batch_size
  if split is not None:
    config.eval.split = split
  # The training batch is irrelevant here but must still pass validation.
  config.train.batch_size = -(-config.train.batch_size // n) * n
  exp = Experiment(config)
  # Read-only: evaluation never creates, renames or deletes anything under
  # checkpoints/ (an unreadable newest step is skipped, not moved aside);
  # its only write is eval_<split>_step<N>.json.
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints", read_only=True)
  try:
    got, restored = ckpt.restore(exp.abstract_state().to_dict(), step=step)
  finally:
    ckpt.close()
  state = TrainState.from_dict(restored)
  result = evaluate(
      exp,
      state,
      config.eval.split,
      batch_size=batch_size,
      num_batches=num_batches,
      progress=progress,
  )
  out = {"step": int(got), "split": config.eval.split, **result}
  if exp.pruning:
    report = exp.accounting(state.params)["_report"]
    out.update(
        sparsity_report.summary(
            jax.device_get(state.params),
            jax.device_get(state.opt_state.masks),
            report,
            config.model.get("algebra"),
        )
    )
  if write and jax.process_index() == 0:
    write_json(eval_json_path(workdir, config.eval.split, got), out)
  return out
