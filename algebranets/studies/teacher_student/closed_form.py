"""Fits and evaluates a closed-form learner of the teacher-student study.

The entry points are `python -m algebranets.studies.teacher_student.fit`
(`fit_and_evaluate`) and `python -m
algebranets.studies.teacher_student.evaluate` (`evaluate_workdir`); the
generic trainer and `experiments.eval` know nothing of these learners.
`scripts.sweep` runs a config file's closed-form points through the fit
entry point (`add(..., entry=FIT_ENTRY)`), after checking them with
`validate`.

A run config is the harness's (`config_lib.base_config`) with the
learner's section as `model` (`base_config(learner)`). The learner sees
`task.fit_data(n)`: the first n examples of the training stream, the same
rows a network sees in its first n / B steps, with

    n = model.fit_examples, or data.train_examples when that is 0, or
        DEFAULT_FIT_EXAMPLES when both are 0 (an endless stream).

Workdir contents (written by process 0; same names as a trained run where
the meaning is the same, so scripts/results.py reads both):

  config.json         the full config
  data.json           the task's describe() (teacher mean, variance, ...)
  accounting.json     params_total (numbers the predictor stores),
                      params_real_io (0), params_algebra (= params_total),
                      macs_per_example / flops_per_example (multiply-adds of
                      the predictor's linear maps), macs_by_kind, and 'fit'
                      (examples; seconds, drawing the fit sample included;
                      the learner's fit_info, e.g. decomposition residual)
  fitted.npz          the estimator's state() arrays + '_learner' (its name)
  metrics.jsonl       one 'eval' line at step 0
  final_metrics.json  {'step': 0, 'split', task metrics (nmse, mse, loss),
                      recovery metrics (recovery_cos, recovery_error,
                      matched_cos) when the learner estimates directions}

Rerunning the command fits again (deterministic given the config, and
seconds); there is nothing to resume.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np

from algebranets import tasks
from algebranets.sparsity import from_config as sparsity_config
from algebranets.studies.teacher_student import learners as learners_lib
from algebranets.training import config_lib, metric_writer
from algebranets.training.evaluator import load_config, write_json

# The module `scripts.sweep` runs a closed-form point with.
FIT_ENTRY = "algebranets.studies.teacher_student.fit"
# The only task whose data the learners read (`fit_data`, the teacher).
TASK = "teacher_student"
FITTED_FILE = "fitted.npz"
# The learner name inside fitted.npz (estimator state keys never start
# with an underscore).
_LEARNER_KEY = "_learner"
# Fit sample when neither model.fit_examples nor data.train_examples is set.
DEFAULT_FIT_EXAMPLES = 20000


def _say(*args) -> None:
  if jax.process_index() == 0:
    print(*args, flush=True)


def base_config(learner: str) -> ml_collections.ConfigDict:
  """The full default config of `learner` on the teacher_student task.

  The harness's sections (`config_lib.base_config`; a fit reads only data,
  model, sparsity and eval) with the learner's `default_config()` as the
  model section.

  Raises:
    ValueError: not a closed-form learner.
  """
  section = learners_lib.get(learner).default_config()
  config = config_lib.base_config(TASK, "two_layer")
  config.model = ml_collections.ConfigDict(section)
  return config


def fit_examples(config) -> int:
  """Examples the learner is fitted on (see the module docstring)."""
  if config.model.fit_examples > 0:
    return int(config.model.fit_examples)
  if config.data.get("train_examples", 0) > 0:
    return int(config.data.train_examples)
  return DEFAULT_FIT_EXAMPLES


def _is_section(section) -> bool:
  # ConfigDict is not a collections.abc.Mapping.
  return isinstance(section, Mapping | ml_collections.ConfigDict)


def _check_keys(section, defaults, where: str) -> None:
  if not _is_section(section):
    raise config_lib.ConfigError(
        f"Config section {where!r} must be a ConfigDict, got "
        f"{type(section).__name__}."
    )
  keys = list(section.keys())
  for k in keys:
    if k not in defaults:
      raise config_lib.ConfigError(
          f"Unknown config key '{where}.{k}'."
          + config_lib.suggest(k, defaults)
          + f" Valid keys of {where}: {sorted(defaults)}."
      )
  for k in defaults:
    if k not in keys:
      raise config_lib.ConfigError(
          f"Key '{where}.{k}' missing from config; start the config from "
          "algebranets.studies.teacher_student.closed_form.base_config("
          "learner)."
      )


def validate(config, *, check_data: bool = True) -> None:
  """Checks a closed-form run config before anything is fitted.

  What a fit reads: the task (teacher_student), the data section (the
  task's own checks), the learner's model section, sparsity (must be off:
  nothing is trained) and eval; the sample size against the budget. The
  optimizer and train sections are carried along unread.

  Args:
    config: a config from `base_config(learner)` (with overrides).
    check_data: also load data.teacher_weights when it names a file.

  Raises:
    config_lib.ConfigError: naming the key, its value and the fix.
  """
  for k in config_lib.TOP_LEVEL:
    if k not in config:
      raise config_lib.ConfigError(
          f"Key {k!r} missing from config; start the config from "
          "algebranets.studies.teacher_student.closed_form.base_config("
          "learner)."
      )
  if not _is_section(config.model):
    raise config_lib.ConfigError(
        "config.model must be a ConfigDict with a 'name'."
    )
  name = config.model.get("name")
  try:
    learner = learners_lib.get(name)
  except ValueError as e:
    raise config_lib.ConfigError(
        f"config.model.name: {e} Train networks with experiments.train."
    ) from None
  if config.task != TASK:
    raise config_lib.ConfigError(
        f"config.task={config.task!r}: the closed-form learner {name!r} is "
        f"fitted on the {TASK!r} task's teacher; set --config.task={TASK}."
    )
  task_spec = tasks.get(TASK)
  _check_keys(config.data, task_spec.data_defaults(), "data")
  _check_keys(config.model, learner.default_config(), "model")
  _check_keys(config.sparsity, sparsity_config.default_config(), "sparsity")
  _check_keys(config.eval, config_lib.eval_defaults(), "eval")
  try:
    learner.validate_config(config.model)
    task_spec.validate_config(config, check_data=check_data)
  except ValueError as e:
    raise config_lib.ConfigError(str(e)) from None
  ev = config.eval
  for key, least in (("batch_size", 1), ("num_batches", 0)):
    value = ev[key]
    if not learners_lib.estimator.is_int(value) or value < least:
      raise config_lib.ConfigError(
          f"eval.{key} must be an integer >= {least}, got {value!r}."
      )
  if sparsity_config.is_enabled(config.sparsity):
    raise config_lib.ConfigError(
        f"sparsity.target={config.sparsity.target} prunes weights during SGD "
        f"training; the closed-form learner {name!r} is not trained. Set "
        "sparsity.target=0 (or sparsity.method='none')."
    )
  budget = config.data.train_examples
  n = fit_examples(config)
  if budget > 0 and n > budget:
    raise config_lib.ConfigError(
        f"model.fit_examples={n} exceeds data.train_examples={budget}, the "
        "fixed training set (the stream would only repeat it); set "
        "model.fit_examples=0 to fit on the whole set, or raise "
        "data.train_examples."
    )


def _build(config):
  """Validates `config` and builds its task (one process sees all data).

  Raises:
    config_lib.ConfigError: see `validate`; or the data cannot be built.
  """
  validate(config)
  try:
    return tasks.get(config.task).build(
        config, process_index=0, process_count=1
    )
  except (ValueError, FileNotFoundError, IsADirectoryError) as e:
    raise config_lib.ConfigError(f"data ({config.task}): {e}") from e


def evaluate_estimator(
    task, fitted, split: str, *, batch_size: int, num_batches: int = 0
) -> dict[str, float]:
  """Task metrics of `fitted` on `split`, plus recovery metrics.

  Args:
    task: a built task with eval_batches, metric_sums, summarize and
      recovery_metrics.
    fitted: an estimator (`learners.estimator.FittedEstimator`).
    split: 'valid' or 'test' (or whatever the task offers).
    batch_size: evaluation batch.
    num_batches: 0 = the whole split.

  Returns:
    task.summarize(sums) merged with task.recovery_metrics(directions) when
    the estimator has directions.
  """
  totals: dict[str, float] = {}
  for batch in task.eval_batches(
      split, batch_size=batch_size, num_batches=num_batches
  ):
    sums = task.metric_sums(fitted.predict(np.asarray(batch["x"])), batch)
    for k, v in sums.items():
      totals[k] = totals.get(k, 0.0) + float(v)
  if not totals:
    raise ValueError(f"Split {split!r} produced no evaluation batches.")
  out = dict(task.summarize(totals))
  if fitted.directions is not None:
    out.update(
        {
            k: float(v)
            for k, v in task.recovery_metrics(fitted.directions).items()
        }
    )
  return out


def _accounting(fitted, config, n: int, seconds: float) -> dict[str, Any]:
  macs = int(fitted.macs_per_example)
  fit_info = {
      "examples": n,
      "seconds": seconds,
      **{k: float(v) for k, v in getattr(fitted, "fit_info", {}).items()},
  }
  return {
      "algebra": config.model.get("algebra", "R"),
      "params_total": int(fitted.num_params),
      "params_real_io": 0,
      "params_algebra": int(fitted.num_params),
      "macs_per_example": macs,
      "flops_per_example": 2 * macs,
      "macs_by_kind": {"closed_form": macs},
      "state_total": 0,
      "fit": fit_info,
  }


def fit_and_evaluate(config, workdir: str | os.PathLike) -> dict[str, float]:
  """Fits the config's closed-form learner and evaluates it on eval.split.

  Args:
    config: a closed-form run config (`base_config(learner)`).
    workdir: output directory; created if missing.

  Returns:
    The final metrics (task metrics and recovery metrics).

  Raises:
    config_lib.ConfigError: bad config (including a fit sample too small
      for the learner), before anything is fitted.
  """
  workdir = pathlib.Path(workdir)
  chief = jax.process_index() == 0
  task = _build(config)
  learner = learners_lib.get(config.model.name)
  ev = config.eval
  n = fit_examples(config)
  if chief:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config_lib.to_json(config) + "\n")
  _say(
      f"algebranets: task={config.task} model={config.model.name} (closed "
      f"form, fitted on the host) on {n:,} examples; workdir {workdir}"
  )
  data_info = task.describe()
  if chief:
    write_json(workdir / "data.json", data_info)
  _say(
      "data: "
      + ", ".join(
          f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
          for k, v in data_info.items()
      )
  )

  start = time.perf_counter()
  fit_data = task.fit_data(n)
  try:
    fitted = learner.fit(fit_data, task, config.model)
  except ValueError as e:
    # Too few examples, a teacher the learner cannot use: config fixes.
    raise config_lib.ConfigError(f"config.model: {e}") from None
  seconds = time.perf_counter() - start
  acc = _accounting(fitted, config, n, seconds)
  _say(
      f"fitted {config.model.name} on {n:,} examples in {seconds:.2f} s: "
      f"{acc['params_total']:,} parameters, {acc['macs_per_example']:,} "
      "MACs/example"
  )

  final = evaluate_estimator(task, fitted, ev.split, batch_size=ev.batch_size)
  if chief:
    write_json(workdir / "accounting.json", acc)
    state = {**fitted.state(), _LEARNER_KEY: np.array(config.model.name)}
    tmp = workdir / (FITTED_FILE + ".tmp.npz")
    np.savez(tmp, **state)
    os.replace(tmp, workdir / FITTED_FILE)
    # A rerun fits again: its line replaces the previous run's.
    metric_writer.truncate_after(workdir, -1)
    with metric_writer.MetricWriter(
        workdir, enabled=True, tensorboard=False
    ) as writer:
      writer.write_scalars(0, "eval", {**final, "fit_seconds": seconds})
    write_json(
        workdir / "final_metrics.json", {"step": 0, "split": ev.split, **final}
    )
  _say(f"final {ev.split} (fitted): " + metric_writer.format_metrics(final))
  _say(f"results: {workdir / 'final_metrics.json'}")
  _say(f"fitted estimator: {workdir / FITTED_FILE}")
  return final


def load_fitted(workdir: str | os.PathLike, name: str):
  """The estimator saved in `workdir`/fitted.npz by `fit_and_evaluate`.

  Raises:
    FileNotFoundError: no fitted.npz (the run did not finish).
    ValueError: it holds another learner than `name`.
  """
  path = pathlib.Path(workdir) / FITTED_FILE
  if not path.is_file():
    raise FileNotFoundError(
        f"{path} not found: the closed-form run in {workdir} did not finish; "
        f"rerun its fit command (python -m {FIT_ENTRY})."
    )
  with np.load(path, allow_pickle=False) as npz:
    state = {k: npz[k] for k in npz.files}
  saved = str(state.pop(_LEARNER_KEY, name))
  if saved != name:
    raise ValueError(
        f"{path} holds a {saved!r} estimator but config.json names "
        f"{name!r}; the workdir is inconsistent, rerun python -m {FIT_ENTRY}."
    )
  return learners_lib.restore(name, state)


def evaluate_fitted(
    config,
    workdir: str | os.PathLike,
    split: str | None = None,
    *,
    batch_size: int | None = None,
    num_batches: int = 0,
    write: bool = True,
) -> dict[str, Any]:
  """Reloads a fitted estimator and evaluates it (experiments.eval).

  Args:
    config: the workdir's config (`evaluator.load_config(workdir)`).
    workdir: the closed-form run's workdir.
    split: None = config.eval.split.
    batch_size: None = config.eval.batch_size.
    num_batches: 0 = the whole split.
    write: also write `<workdir>/eval_<split>_step0.json` (process 0).

  Returns:
    {'step': 0, 'split', **metrics}.
  """
  workdir = pathlib.Path(workdir)
  if split is not None:
    config.eval.split = split
  if batch_size is not None:
    config.eval.batch_size = batch_size
  task = _build(config)
  fitted = load_fitted(workdir, config.model.name)
  split = config.eval.split
  result = evaluate_estimator(
      task,
      fitted,
      split,
      batch_size=config.eval.batch_size,
      num_batches=num_batches,
  )
  out = {"step": 0, "split": split, **result}
  if write and jax.process_index() == 0:
    write_json(workdir / f"eval_{split}_step0.json", out)
  return out


def evaluate_workdir(
    workdir: str | os.PathLike, **kwargs: Any
) -> dict[str, Any]:
  """`evaluate_fitted` with the config read from `workdir`/config.json."""
  return evaluate_fitted(load_config(workdir), workdir, **kwargs)
