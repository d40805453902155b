r"""Evaluates the fitted estimator of a closed-form learner's workdir.

  python -m algebranets.studies.teacher_student.evaluate \
      --workdir workdirs/NAME [--split valid] [--batch_size N] \
      [--num_batches N]

Reloads fitted.npz and config.json written by
`python -m algebranets.studies.teacher_student.fit` and evaluates the whole
split (or --num_batches batches); writes <workdir>/eval_<split>_step0.json.
The study's networks are evaluated by `experiments.eval`.
"""

from absl import app, flags

from algebranets.studies.teacher_student import closed_form
from algebranets.training import evaluator, metric_writer

_WORKDIR = flags.DEFINE_string("workdir", None, "A fitted learner's workdir.")
_SPLIT = flags.DEFINE_string(
    "split", None, "Split to evaluate (default: the config's eval.split)."
)
_BATCH = flags.DEFINE_integer(
    "batch_size", None, "Eval batch (default: the config's)."
)
_NUM_BATCHES = flags.DEFINE_integer(
    "num_batches", 0, "Evaluate only this many batches (0 = whole split)."
)
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    config = evaluator.load_config(_WORKDIR.value)
    result = closed_form.evaluate_fitted(
        config,
        _WORKDIR.value,
        _SPLIT.value,
        batch_size=_BATCH.value,
        num_batches=_NUM_BATCHES.value,
    )
  except (FileNotFoundError, ValueError) as e:
    # ConfigError is a ValueError; the message says what to change.
    raise SystemExit(f"{type(e).__name__}: {e}") from None
  metrics = {k: v for k, v in result.items() if k not in ("step", "split")}
  print(
      f"{_WORKDIR.value} step 0 {result['split']}: "
      + metric_writer.format_metrics(metrics),
      flush=True,
  )


if __name__ == "__main__":
  app.run(main)
