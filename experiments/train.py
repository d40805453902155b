r"""Trains an experiment config.

  python -m experiments.train --config configs/quickstart.py[:arg] \
      --workdir workdirs/NAME [--config.section.key=value ...]

Rerunning the same command resumes from the latest checkpoint in --workdir.
"""

from absl import app, flags
from ml_collections import config_flags

from algebranets.training import config_lib, entry_point, sharding, trainer

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Config file, e.g. configs/quickstart.py:runlocal.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Output directory (checkpoints, metrics, logs)."
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  if config.get("task") == "teacher_student":
    _refuse_closed_form(config)
  sharding.maybe_initialize_distributed()
  # Errors end in one line (entry_point.run): the message says what to
  # change; a traceback would only bury it.
  trainer.train_and_evaluate(config, _WORKDIR.value)


def _refuse_closed_form(config) -> None:
  """A closed-form learner is fitted, not trained: name its entry point
  rather than failing on an 'unknown model'."""
  # Imported only for this task: the study's learners are not part of the
  # trainer's imports.
  from algebranets.studies.teacher_student import closed_form, learners

  name = config.get("model", {}).get("name")
  if learners.is_learner(name):
    raise config_lib.ConfigError(
        f"model.name={name!r} is a closed-form learner, fitted rather than "
        f"trained: run `python -m {closed_form.FIT_ENTRY} --config=... "
        "--workdir=...` with the same arguments (experiments.train trains "
        "networks only)."
    )


if __name__ == "__main__":
  entry_point.run(main)
