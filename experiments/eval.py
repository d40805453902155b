r"""Evaluates a checkpoint of a training workdir.

  python -m experiments.eval --workdir workdirs/NAME [--step N] [--split test]

Rebuilds the model from the workdir's config.json, restores the latest (or
--step) checkpoint onto this machine's devices and evaluates the whole split.
Writes <workdir>/eval_<split>_step<N>.json. A closed-form learner's workdir
(model with ModelSpec.fit: no checkpoints) is evaluated from its fitted.npz
instead and writes eval_<split>_step0.json.
"""

from absl import app, flags

from algebranets.training import (
    closed_form,
    entry_point,
    evaluator,
    metric_writer,
    sharding,
)

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default latest).")
_SPLIT = flags.DEFINE_string(
    "split", None, "Split to evaluate (default: the config's eval.split)."
)
_BATCH = flags.DEFINE_integer(
    "batch_size", None, "Global eval batch (default: the config's)."
)
_NUM_BATCHES = flags.DEFINE_integer(
    "num_batches",
    0,
    "Evaluate only this many batches (0 = whole split).",
    lower_bound=0,
)
_DATA_PATH = flags.DEFINE_string(
    "data_path", None, "Override data.path (data moved to another machine)."
)
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  sharding.maybe_initialize_distributed()
  if _is_fitted(_WORKDIR.value):
    result = _evaluate_fitted()
  else:
    result = _evaluate_checkpoint()
  metrics = {k: v for k, v in result.items() if k not in ("step", "split")}
  print(
      f"{_WORKDIR.value} step {result['step']} {result['split']}: "
      + metric_writer.format_metrics(metrics),
      flush=True,
  )


def _is_fitted(workdir: str) -> bool:
  """True for the workdir of a closed-form learner (no checkpoints)."""
  try:
    config = evaluator.load_config(workdir)
  except (FileNotFoundError, ValueError):
    return False  # evaluate_workdir reports it
  return closed_form.is_closed_form(config)


def _evaluate_fitted():
  if _STEP.value not in (None, 0):
    raise SystemExit(
        f"--step={_STEP.value}: {_WORKDIR.value} holds a fitted closed-form "
        "estimator (fitted.npz), which has no training steps; drop --step."
    )
  try:
    config = evaluator.load_config(_WORKDIR.value)
    if _DATA_PATH.value is not None:
      config.data.path = _DATA_PATH.value
    return closed_form.evaluate_fitted(
        config,
        _WORKDIR.value,
        _SPLIT.value,
        batch_size=_BATCH.value,
        num_batches=_NUM_BATCHES.value,
    )
  except (FileNotFoundError, ValueError) as e:
    raise SystemExit(f"{type(e).__name__}: {e}") from None


def _evaluate_checkpoint():
  # Errors end in one line (entry_point.run).
  return evaluator.evaluate_workdir(
      _WORKDIR.value,
      step=_STEP.value,
      split=_SPLIT.value,
      batch_size=_BATCH.value,
      num_batches=_NUM_BATCHES.value,
      data_path=_DATA_PATH.value,
  )


if __name__ == "__main__":
  entry_point.run(main)
