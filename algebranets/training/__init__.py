"""Training harness: configs, trainer, checkpoints, metric logging."""
