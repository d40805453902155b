"""`train_and_evaluate(config, workdir)`: the training loop of every experiment.

Workdir contents (all written by process 0):

  config.json          the full config of the (latest) run
  algebra.json         the algebra's constants and fingerprint, model.json
                       the model the checkpoints hold (`workdir_compat`;
                       written with config.json after the checkpoint check)
  accounting.json      params (total, real stem/head, algebra), intrinsic MACs
  params.txt, macs.txt per-module parameter and MAC tables
  data.json            split sizes and unigram baselines of the task
  metrics.jsonl        one JSON object per log/eval event
  tensorboard/         TensorBoard event files
  checkpoints/<step>/  orbax checkpoints of the full TrainState
  final_metrics.json   the final evaluation, plus "timing" (wall time split
                       into setup, compile, train steps, evaluation,
                       checkpointing) and "machine" (devices, CPU cores, load)
  curves.png           training and evaluation curves
  profile/             jax.profiler trace (if train.profile_start_step >= 0)
  .lock                held (fcntl.flock) by the running trainer; see
                       `workdir_lock`

Resume order: a checkpoint in `workdir/checkpoints` > `train.init_from`
(params only) > scratch. The data position is the step (batches are a
function of (seed, step)), so a resumed run continues bit-exactly.
"""

from __future__ import annotations

import math
import os
import pathlib
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np

from algebranets import metrics as metrics_lib
from algebranets.sparsity import report as sparsity_report
from algebranets.training import (
    checkpointing,
    config_lib,
    metric_writer,
    plots,
    progress,
    steps,
    timing,
    workdir_compat,
    workdir_lock,
)
from algebranets.training.evaluator import evaluate, write_json
from algebranets.training.experiment import Experiment
from algebranets.training.state import TrainState

CHECKPOINT_DIR = "checkpoints"


class NonFiniteError(RuntimeError):
  """The loss, the gradient norm or the state to be saved became NaN/Inf."""


class PreemptedError(RuntimeError):
  """SIGTERM arrived; a checkpoint of the current step was saved."""


def _say(*args) -> None:
  if jax.process_index() == 0:
    print(*args, flush=True)


def _summarize_train(exp: Experiment, host_metrics: list[dict]) -> dict:
  sums: dict[str, float] = {}
  # The task's summed keys; by default every key the step did not add.
  names = exp.task.sum_names or [
      k for k in host_metrics[0] if k not in steps.STEP_METRICS
  ]
  for m in host_metrics:
    for k in names:
      if k in m:
        sums[k] = sums.get(k, 0.0) + float(m[k])
  out = exp.task.summarize(sums) if sums else {}
  out["loss"] = float(np.mean([float(m["loss"]) for m in host_metrics]))
  out["grad_norm"] = float(
      np.mean([float(m["grad_norm"]) for m in host_metrics])
  )
  out["learning_rate"] = float(host_metrics[-1]["learning_rate"])
  if "sparsity" in host_metrics[-1]:
    out["sparsity"] = float(host_metrics[-1]["sparsity"])
  return out


_NON_FINITE_FIX = (
    "Lower optimizer.learning_rate, set optimizer.grad_clip_norm, or use "
    "train.compute_dtype='float32'"
)


def _last_good(ckpt) -> str:
  """Where a rerun resumes from (every saved step passed `_check_state`)."""
  ckpt.wait()
  last = ckpt.latest_step()
  if last is None:
    return (
        "no checkpoint was saved, so the run starts over. "
        + _NON_FINITE_FIX
        + ", then rerun the same command."
    )
  return (
      f"the last good checkpoint is step {last}. {_NON_FINITE_FIX}, then "
      "rerun the same command to resume from it."
  )


def _check_finite(host_metrics: list[dict], first_step: int, ckpt) -> None:
  for i, m in enumerate(host_metrics):
    loss, gnorm = float(m["loss"]), float(m["grad_norm"])
    if not (math.isfinite(loss) and math.isfinite(gnorm)):
      bad = first_step + i + 1
      raise NonFiniteError(
          f"Non-finite training signal at step {bad} (loss={loss}, "
          f"grad_norm={gnorm}); the steps checked were {first_step + 1}.."
          f"{first_step + len(host_metrics)}. Nothing was saved after it: "
          + _last_good(ckpt)
      )


@jax.jit
def _finite_leaves(leaves: list[jax.Array]) -> list[jax.Array]:
  return [jnp.all(jnp.isfinite(x)) for x in leaves]


def _check_state(state: TrainState, step: int, ckpt) -> None:
  """Refuses to save a state holding NaN/Inf (a finite loss and gradient
  norm at step t say nothing about the parameters after the update of t)."""
  flat, _ = jax.tree_util.tree_flatten_with_path(state.to_dict())
  floats = [
      (jax.tree_util.keystr(p), x)
      for p, x in flat
      if jnp.issubdtype(x.dtype, jnp.inexact)
  ]
  ok = jax.device_get(_finite_leaves([x for _, x in floats]))
  bad = [name for (name, _), good in zip(floats, ok, strict=True) if not good]
  if bad:
    raise NonFiniteError(
        f"The training state after step {step} holds NaN/Inf in "
        f"{len(bad)} array(s), e.g. {', '.join(bad[:3])}; it was not saved: "
        + _last_good(ckpt)
    )


class _Preemption:
  """Turns SIGTERM into 'save a checkpoint and stop' (cluster preemption)."""

  def __init__(self):
    self.requested = False
    self._old = None

  def __enter__(self):
    try:
      self._old = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread (e.g. a notebook worker)
      self._old = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def __exit__(self, *exc):
    if self._old is not None:
      signal.signal(signal.SIGTERM, self._old)


def _restore_or_init(exp: Experiment, ckpt, workdir: pathlib.Path):
  """Resume order: workdir checkpoint > train.init_from > scratch."""
  abstract = exp.abstract_state()
  if ckpt.latest_step() is not None:
    step, restored = ckpt.restore(abstract.to_dict())
    _say(f"Resuming from {workdir / CHECKPOINT_DIR}, step {step}.")
    return TrainState.from_dict(restored), "checkpoint"
  state = exp.init()
  init_from = exp.config.train.init_from
  if init_from:
    params = checkpointing.restore_params(init_from, abstract.params)
    state = state._replace(params=params)
    _say(f"Initialised parameters from {init_from}.")
    return state, "init_from"
  return state, "scratch"


def train_and_evaluate(config, workdir: str | os.PathLike) -> dict[str, float]:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint).

  Args:
    config: a full experiment ConfigDict (see `config_lib`).
    workdir: output directory; created if missing.

  Returns:
    The final evaluation metrics (e.g. {'loss', 'bits_per_byte', ...}).

  Raises:
    config_lib.ConfigError: bad config, before anything compiles.
    NonFiniteError: NaN/Inf loss, gradient norm or state to be saved (the
      last good checkpoint is kept; no non-finite state is ever saved).
    checkpointing.CheckpointError: no readable checkpoint matches the
      config, or a save failed (read-only or full disk).
    workdir_lock.WorkdirInUseError: another trainer is using `workdir`.
  """
  # A file path in model.algebra becomes its registered name.
  config = workdir_compat.resolve_algebra(config, workdir)
  timer = timing.PhaseTimer()
  workdir = pathlib.Path(workdir)
  # Before anything is written: a refused rerun leaves the workdir intact.
  workdir_compat.check_resume(config, workdir)
  exp = Experiment(config)
  chief = jax.process_index() == 0
  # Before anything is written: a second trainer on this workdir stops here.
  with workdir_lock.WorkdirLock(workdir, enabled=chief):
    return _train_and_evaluate(exp, workdir, timer)


def _train_and_evaluate(
    exp: Experiment, workdir: pathlib.Path, timer: timing.PhaseTimer
) -> dict:
  config = exp.config
  chief = jax.process_index() == 0
  tr, ev = config.train, config.eval
  if chief:
    workdir.mkdir(parents=True, exist_ok=True)

  _say(
      f"algebranets: task={config.task} model={config.model.name} "
      f"algebra={config.model.get('algebra', '-')} on {exp.mesh.size} "
      f"{jax.devices()[0].platform} device(s), {jax.process_count()} "
      f"process(es); global batch {tr.batch_size}; workdir {workdir}"
  )
  data_info = exp.task.describe()
  _say(
      "data: "
      + ", ".join(
          f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
          for k, v in data_info.items()
      )
  )

  ckpt = checkpointing.Checkpointer(
      workdir / CHECKPOINT_DIR, keep=tr.keep_checkpoints
  )
  writer = metric_writer.MetricWriter(workdir, enabled=chief)
  try:
    state, origin = _restore_or_init(exp, ckpt, workdir)
    start = int(jax.device_get(state.step))
    if chief and origin == "checkpoint":
      metric_writer.truncate_after(workdir, start)
    if chief:  # the restore accepted the checkpoint (or there was none)
      workdir_compat.record(config, workdir)
      write_json(workdir / "data.json", data_info)

    acc = exp.accounting(state.params)
    report = acc.pop("_report")
    acc["state_total"] = int(metrics_lib.count_state(state.model_state))
    if chief:
      write_json(workdir / "accounting.json", acc)
      table = metrics_lib.param_table(jax.device_get(state.params)).table()
      (workdir / "params.txt").write_text(table + "\n")
      (workdir / "macs.txt").write_text(report.table() + "\n")
      writer.write_text("config", config_lib.to_json(config))
      writer.write_text("params", table)
    _say(
        f"params: {acc['params_total']:,} total, {acc['params_real_io']:,} in "
        f"the real stem/head, {acc['params_algebra']:,} algebra-side; "
        f"intrinsic MACs/example {acc['macs_per_example']:,} "
        f"(FLOPs = 2 x MACs; see docs/macs_and_flops.md)"
    )

    timer.charge_segment_to("setup")  # everything since the start
    with timer.phase("train_steps"):
      state = _train_loop(exp, state, start, ckpt, writer, workdir, timer)

    bar = progress.console_progress(f"final eval {ev.split}")
    with timer.phase("evaluation"):
      final = evaluate(
          exp, state, ev.split, batch_size=ev.batch_size, progress=bar
      )
    if bar:
      bar.close()
    # Metrics of the trained parameters themselves (e.g. teacher-direction
    # recovery), reported with the final ones.
    param_metrics = exp.task.param_metrics(jax.device_get(state.params))
    final.update({k: float(v) for k, v in param_metrics.items()})
    step = int(jax.device_get(state.step))
    if exp.pruning:
      params = jax.device_get(state.params)
      masks = jax.device_get(state.opt_state.masks)
      algebra = config.model.get("algebra")
      sparse = sparsity_report.summary(params, masks, report, algebra)
      final.update(sparse)
      if chief:
        acc["sparse"] = sparse
        write_json(workdir / "accounting.json", acc)
        sparsity_report.write_table(workdir, params, masks, report, algebra)
      _say(sparsity_report.headline(sparse, acc))
    writer.write_scalars(step, "eval", final)
    with timer.phase("checkpointing"):
      ckpt.wait()
    # The first step of this invocation compiles; the others are timed.
    timed = max(tr.num_steps - start - 1, 0)
    times = timer.report(steps=timed, examples_per_step=tr.batch_size)
    machine = timing.machine_info()
    if chief:
      write_json(
          workdir / "final_metrics.json",
          {
              "step": step,
              "split": ev.split,
              **final,
              "timing": times,
              "machine": machine,
          },
      )
    _say(
        f"final {ev.split} (step {step}): "
        + metric_writer.format_metrics(final)
    )
    for line in exp.task.report(final, data_info, ev.split):
      _say(line)
  finally:
    writer.close()
    ckpt.close()

  if chief:
    png = plots.plot_metrics(workdir)
    _say(f"results: {workdir / 'final_metrics.json'}")
    _say(f"metrics: {workdir / 'metrics.jsonl'}")
    _say(f"TensorBoard: tensorboard --logdir {workdir / 'tensorboard'}")
    _say(f"plot: {png}")
    _say(f"checkpoints: {workdir / CHECKPOINT_DIR}")
  for line in timing.summary_lines(times, machine):
    _say(line)
  return final


def _train_loop(
    exp: Experiment,
    state: TrainState,
    start: int,
    ckpt,
    writer,
    workdir: pathlib.Path,
    timer: timing.PhaseTimer,
) -> TrainState:
  config = exp.config
  tr, ev = config.train, config.eval
  num_steps = tr.num_steps
  examples_per_step = tr.batch_size
  pending: list = []
  checked_until = start  # every step <= this was finite
  period_start_time = None
  period_start_step = start
  steps_per_sec = None
  profiling = False
  profile_dir = workdir / "profile"

  def flush() -> list[dict]:
    nonlocal pending, checked_until
    host = jax.device_get(pending)
    _check_finite(host, checked_until, ckpt)
    ckpt.check()  # a failed background save stops the run here
    checked_until += len(host)
    pending = []
    return host

  with _Preemption() as preempt:
    step = start
    log_buffer: list[dict] = []
    while step < num_steps:
      if tr.profile_start_step >= 0 and step == tr.profile_start_step:
        jax.profiler.start_trace(str(profile_dir))
        profiling = True
      batch = exp.to_device(exp.task.train_batch(step))
      with jax.transfer_guard("disallow"):
        state, metrics = exp.train_step(state, batch)
      pending.append(metrics)
      step += 1
      if period_start_time is None:
        # The first step compiles; time only what follows it.
        jax.block_until_ready(metrics)
        timer.charge_segment_to("compile")
        period_start_time = time.perf_counter()
        period_start_step = step
      if profiling and step >= tr.profile_start_step + tr.profile_num_steps:
        jax.block_until_ready(state)
        jax.profiler.stop_trace()
        profiling = False
        _say(f"profile trace written to {profile_dir}")

      last = step == num_steps
      do_log = step % tr.log_every == 0 or last
      do_eval = ev.every_steps > 0 and step % ev.every_steps == 0 and not last
      do_ckpt = step % tr.checkpoint_every == 0 or last or preempt.requested
      if do_log or do_eval or do_ckpt:
        log_buffer.extend(flush())
      if do_log and log_buffer:
        now = time.perf_counter()
        timed = step - period_start_step
        if timed > 0:
          steps_per_sec = timed / max(now - period_start_time, 1e-9)
        period_start_time, period_start_step = now, step
        scalars = _summarize_train(exp, log_buffer)
        log_buffer = []
        if steps_per_sec:
          scalars["steps_per_sec"] = steps_per_sec
          scalars["examples_per_sec"] = steps_per_sec * examples_per_step
        writer.write_scalars(step, "train", scalars)
        eta = (num_steps - step) / steps_per_sec if steps_per_sec else None
        _say(
            metric_writer.format_progress(
                step,
                num_steps,
                {
                    k: v
                    for k, v in scalars.items()
                    if k not in ("steps_per_sec", "examples_per_sec")
                },
                steps_per_sec=steps_per_sec,
                examples_per_sec=scalars.get("examples_per_sec"),
                eta_seconds=eta,
            )
        )
      paused_at = time.perf_counter()
      if do_eval:
        with timer.phase("evaluation"):
          result = evaluate(
              exp,
              state,
              ev.split,
              batch_size=ev.batch_size,
              num_batches=ev.num_batches,
          )
        writer.write_scalars(step, "eval", result)
        _say(
            f"eval {ev.split} @ {step}: "
            + " | ".join(f"{k} {v:.4f}" for k, v in result.items())
        )
      if do_ckpt:
        _check_state(state, step, ckpt)
        with timer.phase("checkpointing"):
          ckpt.save(step, state.to_dict())
      if (do_eval or do_ckpt) and period_start_time is not None:
        # Evaluation and checkpointing are not training time.
        period_start_time += time.perf_counter() - paused_at
      if preempt.requested and not last:
        ckpt.wait()
        raise PreemptedError(
            f"SIGTERM received: saved a checkpoint at step {step} in "
            f"{workdir / CHECKPOINT_DIR}; rerun the same command to resume."
        )
  if profiling:
    jax.profiler.stop_trace()
  return state
