r"""Transformer-XL on enwik8 (bits per byte = the paper's bpc), any algebra.

  python -m experiments.train --config configs/enwik8_transformer_xl.py \
      --config.data.path=/data/enwik8.zip --workdir workdirs/enwik8_m2r
  python -m experiments.train \
      --config configs/enwik8_transformer_xl.py:algebra=M2R,runlocal \
      --workdir workdirs/txl_smoke          # enwiki sample, CPU, ~1 min
  python -m experiments.eval --workdir workdirs/enwik8_m2r --split test

Args: algebra=<name> (M2R), size=base|large, width=<multiplier> (1.0 = the
real model's width), match_params (width chosen so the layers have about
the real model's parameters), runlocal, seed=<int>.

Model and recipe [A]: the official Transformer-XL enwik8 scripts
(kimiyoung/transformer-xl: pytorch/run_enwik8_base.sh, tf enwik8_tpu.sh):
base 12 layers, d_model 512, 8 heads, d_inner 2048, dropout 0.1, tgt_len =
mem_len = 512, batch 22, 400k steps, Adam 2.5e-4 cosine, clip 0.25, no
warmup; evaluation tgt_len 80, mem_len 2100, clamp_len 820, same_length.
Reported: 1.06 bpc, 41M parameters (ours for algebra R: 41,055,436).
Large: 24 layers, d_model 1024, d_inner 3072, dropout 0.15/0.15, tgt_len =
mem_len = 768, batch 64, warmup 4000; eval 128/3800/1000; 0.99 bpc, 277M.
AlgebraNets' own TXL sizes and schedules are unknown; these are the real
Transformer-XL's. Data: enwik8 (http://mattmahoney.net/dc/enwik8.zip), split
90M/5M/5M. Runtime: days on an accelerator (base); runlocal about a minute.
"""

from algebranets.training import config_lib
from configs import _txl_common

SIZES = {
    "base": dict(
        num_layers=12,
        d_model=512,
        num_heads=8,
        d_inner=2048,
        dropout_rate=0.1,
        attention_dropout_rate=0.0,
        tgt_len=512,
        mem_len=512,
        batch_size=22,
        warmup_steps=0,
        eval_tgt_len=80,
        eval_mem_len=2100,
        eval_clamp_len=820,
    ),
    "large": dict(
        num_layers=24,
        d_model=1024,
        num_heads=8,
        d_inner=3072,
        dropout_rate=0.15,
        attention_dropout_rate=0.15,
        tgt_len=768,
        mem_len=768,
        batch_size=64,
        warmup_steps=4000,
        eval_tgt_len=128,
        eval_mem_len=3800,
        eval_clamp_len=1000,
    ),
}


def get_config(arg=None):
  arg = config_lib.parse_arg(
      arg,
      algebra="M2R",
      size="base",
      width=1.0,
      match_params=False,
      runlocal=False,
      seed=0,
      path="",
  )
  if arg.size not in SIZES:
    raise config_lib.ConfigError(
        f"size={arg.size!r}; use one of {sorted(SIZES)}."
    )
  s = SIZES[arg.size]
  config = config_lib.base_config("stream_lm", "transformer_xl")
  config.seed = arg.seed
  config.data.name = "enwik8"
  config.data.path = arg.path  # required: enwik8 or enwik8.zip
  config.data.tgt_len = s["tgt_len"]
  config.data.eval_tgt_len = s["eval_tgt_len"]

  m = config.model
  m.algebra = arg.algebra
  m.num_layers = s["num_layers"]
  m.d_model = s["d_model"]
  m.num_heads = s["num_heads"]
  m.d_inner = s["d_inner"]
  m.width_multiplier = (
      _txl_common.matched_width(arg.algebra, s["d_model"], s["num_heads"])
      if arg.match_params
      else arg.width
  )
  m.dropout_rate = s["dropout_rate"]
  m.attention_dropout_rate = s["attention_dropout_rate"]
  m.mem_len = s["mem_len"]
  m.eval_mem_len = s["eval_mem_len"]
  m.clamp_len = -1
  m.eval_clamp_len = s["eval_clamp_len"]
  m.same_length = False
  m.eval_same_length = True
  m.cutoffs = ()
  m.tie_weight = True

  _txl_common.apply_official_optimizer(config, warmup_steps=s["warmup_steps"])
  config.train.batch_size = s["batch_size"]
  config.train.num_steps = 400_000
  config.train.log_every = 200
  config.train.checkpoint_every = 4000
  config.eval.every_steps = 4000
  config.eval.num_batches = 200
  config.eval.batch_size = 10
  config.eval.split = "valid"

  if arg.runlocal:
    config.data.name = "enwiki_sample"
    config.data.tgt_len = 64
    config.data.eval_tgt_len = 32
    m.num_layers = 2
    m.d_model = 64
    m.num_heads = 2
    m.d_inner = 128
    if arg.match_params:
      m.width_multiplier = _txl_common.matched_width(arg.algebra, 64, 2)
    m.dropout_rate = 0.0
    m.attention_dropout_rate = 0.0
    m.mem_len = 64
    m.eval_mem_len = 128
    m.eval_clamp_len = 128
    config.optimizer.learning_rate = 2e-3
    config.optimizer.warmup_steps = 10
    config.train.batch_size = 8
    config.train.num_steps = 100
    config.train.log_every = 20
    config.train.checkpoint_every = 50
    config.eval.every_steps = 50
    config.eval.num_batches = 10
    config.eval.batch_size = 16
  return config


def sweep(add, arg=None):
  """The algebras at (about) the real model's layer parameters.

  `scripts.sweep --config configs/enwik8_transformer_xl.py:path=/data/enwik8.zip`
  """
  for algebra in _txl_common.HEAD_ALGEBRAS:
    cfg = get_config(
        ",".join(filter(None, [arg, "match_params"])) + f",algebra={algebra}"
    )
    add(
        **{
            "model.algebra": algebra,
            "model.width_multiplier": cfg.model.width_multiplier,
        }
    )
