"""Shared pieces of the Transformer-XL configs (not a config itself)."""

import math

from algebranets import algebra_files
from algebranets.training import config_lib

# Deliberately the paper's four head algebras, not every registered one.
HEAD_ALGEBRAS = ("R", "C", "H", "M2R")


def matched_width(algebra: str, d_model: int, num_heads: int) -> float:
  """Width multiplier giving about the real model's layer parameters.

  An algebra layer of real width D has D^2 / d parameters (the real one
  D^2), so the real width grows by sqrt(d); the result is rounded to the
  nearest width that the algebra and the heads divide.
  """
  d = algebra_files.resolve(algebra).dim  # a name or a .npy/.json file
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


def parse(arg):
  """The args every Transformer-XL config accepts."""
  return config_lib.parse_arg(
      arg,
      algebra="M2R",
      size="base",
      width=1.0,
      match_params=False,
      runlocal=False,
      seed=0,
      path="",
      sparsity=0.0,
      sweep_sparsity=False,
  )


def make_config(arg, sizes: dict, data_name: str):
  """The Transformer-XL config of `sizes[arg.size]` on `data_name`."""
  if arg.size not in sizes:
    raise config_lib.ConfigError(
        f"size={arg.size!r}; use one of {sorted(sizes)}."
    )
  s = sizes[arg.size]
  config = config_lib.base_config("stream_lm", "transformer_xl")
  config.seed = arg.seed
  config.data.name = data_name
  config.data.path = arg.path
  config.data.tgt_len = s["tgt_len"]
  config.data.eval_tgt_len = s["eval_tgt_len"]

  m = config.model
  m.algebra = arg.algebra
  for key in (
      "num_layers",
      "d_model",
      "num_heads",
      "d_inner",
      "dropout_rate",
      "attention_dropout_rate",
      "mem_len",
      "eval_mem_len",
      "eval_clamp_len",
  ):
    m[key] = s[key]
  m.width_multiplier = (
      matched_width(arg.algebra, s["d_model"], s["num_heads"])
      if arg.match_params
      else arg.width
  )
  m.clamp_len = -1
  m.same_length = False
  m.eval_same_length = True
  m.tie_weight = True

  apply_official_optimizer(config, warmup_steps=s["warmup_steps"])
  config.train.batch_size = s["batch_size"]
  config.train.num_steps = s["num_steps"]
  config.train.log_every = 200
  config.train.checkpoint_every = 4000
  config.eval.every_steps = 4000
  config.eval.num_batches = 200
  config.eval.batch_size = 10
  config.eval.split = "valid"
  if arg.sparsity > 0:
    # Gradual magnitude pruning of whole algebra elements (Zhu & Gupta).
    config.sparsity.target = arg.sparsity
  return config


def shrink_for_cpu(config, arg, *, data_name: str, tgt_len: int) -> None:
  """`runlocal`: a 2-layer, d_model 64 model for 100 steps on a sample."""
  m = config.model
  config.data.name = data_name
  config.data.tgt_len = tgt_len
  config.data.eval_tgt_len = 32
  m.num_layers = 2
  m.d_model = 64
  m.num_heads = 2
  m.d_inner = 128
  if arg.match_params:
    m.width_multiplier = matched_width(arg.algebra, 64, 2)
  m.dropout_rate = 0.0
  m.attention_dropout_rate = 0.0
  m.mem_len = tgt_len
  m.eval_mem_len = 2 * tgt_len if tgt_len >= 64 else 64
  m.eval_clamp_len = m.eval_mem_len
  config.optimizer.learning_rate = 2e-3
  config.optimizer.warmup_steps = 10
  config.train.batch_size = 8
  config.train.num_steps = 100
  config.train.log_every = 20
  config.train.checkpoint_every = 50
  config.eval.every_steps = 50
  config.eval.num_batches = 10
  config.eval.batch_size = 16
  if arg.sparsity > 0:
    config.sparsity.frequency = 5


SPARSITY_TARGETS = (0.5, 0.75, 0.9, 0.95)


def sweep_matched(get_config, add, arg=None) -> None:
  """The head algebras at (about) the real model's layer parameters; with
  the arg `sweep_sparsity`, each also pruned to every SPARSITY_TARGETS."""
  targets = (0.0,) + (SPARSITY_TARGETS if parse(arg).sweep_sparsity else ())
  for algebra in HEAD_ALGEBRAS:
    cfg = get_config(
        ",".join(filter(None, [arg, "match_params"])) + f",algebra={algebra}"
    )
    for target in targets:
      point = {
          "model.algebra": algebra,
          "model.width_multiplier": cfg.model.width_multiplier,
      }
      if target > 0:
        point["sparsity.target"] = target
      add(**point)
