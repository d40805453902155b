r"""Trains an experiment config.

  python -m experiments.train --config configs/quickstart.py[:arg] \
      --workdir workdirs/NAME [--config.section.key=value ...]

Rerunning the same command resumes from the latest checkpoint in --workdir.
"""

from absl import app, flags
from ml_collections import config_flags

from algebranets.training import checkpointing, config_lib, sharding, trainer

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
  try:
    trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (
      config_lib.ConfigError,
      checkpointing.CheckpointError,
      trainer.NonFiniteError,
      trainer.PreemptedError,
  ) as e:
    # The message says what to change; a traceback would only bury it.
    raise SystemExit(f"{type(e).__name__}: {e}") from None


if __name__ == "__main__":
  app.run(main)
