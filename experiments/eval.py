r"""Evaluates a checkpoint of a training workdir.

  python -m experiments.eval --workdir workdirs/NAME [--step N] [--split test]

Rebuilds the model from the workdir's config.json, restores the latest (or
--step) checkpoint onto this machine's devices and evaluates the whole split.
Shows progress with an ETA on a terminal (not in logs or pipes; --noprogress
turns it off), prints the metrics and ends with the line
`wrote <workdir>/eval_<split>_step<N>.json`. (The teacher-student study's
closed-form learners have no checkpoints: `python -m
algebranets.studies.teacher_student.evaluate` reloads theirs.)
"""

from absl import app, flags

from algebranets.training import (
    entry_point,
    evaluator,
    metric_writer,
    progress,
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
_PROGRESS = flags.DEFINE_bool(
    "progress", True, "Progress line with an ETA (only on a terminal)."
)
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  sharding.maybe_initialize_distributed()
  result = _evaluate_checkpoint()
  metrics = {k: v for k, v in result.items() if k not in ("step", "split")}
  print(
      f"{_WORKDIR.value} step {result['step']} {result['split']}: "
      + metric_writer.format_metrics(metrics),
      flush=True,
  )
  path = evaluator.eval_json_path(
      _WORKDIR.value, result["split"], result["step"]
  )
  print(f"wrote {path}", flush=True)


def _evaluate_checkpoint():
  # Errors end in one line (entry_point.run).
  bar = None
  try:
    split = _SPLIT.value or evaluator.load_config(_WORKDIR.value).eval.split
    bar = progress.console_progress(f"eval {split}", enabled=_PROGRESS.value)
    return evaluator.evaluate_workdir(
        _WORKDIR.value,
        step=_STEP.value,
        split=_SPLIT.value,
        batch_size=_BATCH.value,
        num_batches=_NUM_BATCHES.value,
        data_path=_DATA_PATH.value,
        progress=bar,
    )
  finally:
    if bar:
      bar.close()


if __name__ == "__main__":
  entry_point.run(main)
