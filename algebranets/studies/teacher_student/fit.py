r"""Fits a closed-form learner of the teacher-student study and evaluates it.

  python -m algebranets.studies.teacher_student.fit \
      --config configs/teacher_student.py:learner=moment_tensor,budget=4 \
      --workdir workdirs/NAME [--config.section.key=value ...]

Writes the workdir files of `closed_form.fit_and_evaluate` (config.json,
data.json, accounting.json, fitted.npz, metrics.jsonl, final_metrics.json);
`python -m algebranets.studies.teacher_student.evaluate --workdir` reloads
it. Rerunning fits again (seconds; nothing to resume). Networks of the
study (learner=network) are trained by `experiments.train` instead.

As a `scripts.sweep` entry module (`add(..., entry=closed_form.FIT_ENTRY)`)
it offers `validate(config, check_data=...)`, and defines its flags only
when run as a program, so the sweep can import it.
"""

from absl import app, flags
from ml_collections import config_flags

from algebranets.studies.teacher_student import closed_form
from algebranets.training import config_lib

# What scripts.sweep checks a point with before anything runs.
validate = closed_form.validate


def _define_flags():
  config = config_flags.DEFINE_config_file(
      "config",
      None,
      "Config file, e.g. configs/teacher_student.py:learner=mean.",
      lock_config=True,
  )
  workdir = flags.DEFINE_string(
      "workdir", None, "Output directory (fitted.npz, metrics)."
  )
  flags.mark_flags_as_required(["config", "workdir"])
  return config, workdir


def main(argv, config_flag, workdir_flag):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    closed_form.fit_and_evaluate(config_flag.value, workdir_flag.value)
  except config_lib.ConfigError as e:
    # The message says what to change; a traceback would only bury it.
    raise SystemExit(f"{type(e).__name__}: {e}") from None


if __name__ == "__main__":
  _config, _workdir = _define_flags()
  app.run(lambda argv: main(argv, _config, _workdir))
