r"""Transformer-XL on WikiText-103 (perplexity), any algebra.

  python -m experiments.train --config configs/wikitext103_transformer_xl.py:path=/data/wikitext-103 \
      --workdir workdirs/wt103_m2r
  python -m experiments.train \
      --config configs/wikitext103_transformer_xl.py:algebra=M2R,runlocal \
      --workdir workdirs/wt_smoke          # wikitext sample, CPU, ~2 min
  python -m experiments.eval --workdir workdirs/wt103_m2r --split test

Args: algebra=<name> (M2R), size=base|large, width=<multiplier>,
match_params, path=<directory with wiki.{train,valid,test}.tokens>,
runlocal, seed=<int>.

Model and recipe [A]: the official Transformer-XL WikiText-103 scripts
(kimiyoung/transformer-xl: pytorch/run_wt103_base.sh, run_wt103_large.sh):
base 16 layers, d_model 410, 10 heads, d_inner 2100, dropout 0.1, adaptive
input and softmax with cutoffs (20000, 40000, 200000), div_val 1, tied
weights, tie_projs (False, True, True, True); tgt_len = mem_len = 150,
batch 60, 200k steps, Adam 2.5e-4 cosine, clip 0.25; evaluation tgt_len 64,
mem_len 640, clamp_len 400, same_length. Reported: 24.0 perplexity, 151M
parameters (ours for algebra R: 151,107,538). Large: 18 layers, d_model 1024,
16 heads, d_inner 4096, dropout 0.2/0.2, div_val 4, tgt_len = mem_len = 384,
batch 128, warmup 16000, untie_r; eval 128/1600/1000; 18.3 perplexity, 257M.
AlgebraNets' own TXL sizes and schedules are unknown. Data: WikiText-103
(https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-v1.zip).
Runtime: days on accelerators (base); runlocal a few minutes on CPU.
"""

from algebranets.training import config_lib
from configs import _txl_common

CUTOFFS = (20000, 40000, 200000)
SIZES = {
    "base": dict(
        num_layers=16,
        d_model=410,
        num_heads=10,
        d_inner=2100,
        dropout_rate=0.1,
        attention_dropout_rate=0.0,
        tgt_len=150,
        mem_len=150,
        batch_size=60,
        warmup_steps=0,
        num_steps=200_000,
        div_val=1,
        untie_r=False,
        eval_tgt_len=64,
        eval_mem_len=640,
        eval_clamp_len=400,
    ),
    "large": dict(
        num_layers=18,
        d_model=1024,
        num_heads=16,
        d_inner=4096,
        dropout_rate=0.2,
        attention_dropout_rate=0.2,
        tgt_len=384,
        mem_len=384,
        batch_size=128,
        warmup_steps=16000,
        num_steps=4_000_000,
        div_val=4,
        untie_r=True,
        eval_tgt_len=128,
        eval_mem_len=1600,
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
  config.data.name = "wikitext103"
  config.data.path = arg.path
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
  m.cutoffs = CUTOFFS
  m.div_val = s["div_val"]
  m.untie_r = s["untie_r"]
  m.tie_weight = True
  m.tie_projs = (False, True, True, True)

  _txl_common.apply_official_optimizer(config, warmup_steps=s["warmup_steps"])
  config.train.batch_size = s["batch_size"]
  config.train.num_steps = s["num_steps"]
  config.train.log_every = 200
  config.train.checkpoint_every = 4000
  config.eval.every_steps = 4000
  config.eval.num_batches = 200
  config.eval.batch_size = 10
  config.eval.split = "valid"

  if arg.runlocal:
    config.data.name = "wikitext_sample"
    config.data.tgt_len = 32
    config.data.eval_tgt_len = 32
    m.num_layers = 2
    m.d_model = 64
    m.num_heads = 2
    m.d_inner = 128
    if arg.match_params:
      m.width_multiplier = _txl_common.matched_width(arg.algebra, 64, 2)
    m.dropout_rate = 0.0
    m.attention_dropout_rate = 0.0
    m.mem_len = 32
    m.eval_mem_len = 64
    m.eval_clamp_len = 64
    m.cutoffs = (2000, 10000)
    m.div_val = 1
    m.untie_r = False
    m.tie_projs = (False, True, True)
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

  `scripts.sweep --config configs/wikitext103_transformer_xl.py:path=/data/wt103`
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
