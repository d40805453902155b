"""Shared pieces of the Transformer-XL configs (not a config itself)."""

import math

from algebranets import algebras

HEAD_ALGEBRAS = ("R", "C", "H", "M2R")


def matched_width(algebra: str, d_model: int, num_heads: int) -> float:
  """Width multiplier giving about the real model's layer parameters.

  An algebra layer of real width D has D^2 / d parameters (the real one
  D^2), so the real width grows by sqrt(d); the result is rounded to the
  nearest width that the algebra and the heads divide.
  """
  d = algebras.get(algebra).dim
  step = d * num_heads
  target = d_model * math.sqrt(d)
  width = max(step, round(target / step) * step)
  return width / d_model


def apply_official_optimizer(config, *, warmup_steps: int) -> None:
  """Transformer-XL's recipe (kimiyoung/transformer-xl scripts): Adam,
  lr 2.5e-4, cosine decay to 0, gradient clipping at 0.25, no decay."""
  opt = config.optimizer
  opt.name = "adam"
  opt.learning_rate = 2.5e-4
  opt.schedule = "cosine"
  opt.end_learning_rate_factor = 0.0
  opt.warmup_steps = warmup_steps
  opt.grad_clip_norm = 0.25
  opt.weight_decay = 0.0
