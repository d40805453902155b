r"""Trains an experiment config.

  python -m experiments.train --config configs/quickstart.py[:arg] \
      --workdir workdirs/NAME [--config.section.key=value ...]

Rerunning the same command resumes from the latest checkpoint in --workdir.
"""

from absl import app, flags
from ml_collections import config_flags

from algebranets.training import entry_point, sharding, trainer

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
  sharding.maybe_initialize_distributed()
  # Errors end in one line (entry_point.run): the message says what to
  # change; a traceback would only bury it.
  trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  entry_point.run(main)
