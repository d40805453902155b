r"""Transformer-XL on WikiText-103 (perplexity), any algebra.

  python -m experiments.train --config configs/wikitext103_transformer_xl.py:path=/data/wikitext-103 \
      --workdir workdirs/wt103_m2r
  python -m experiments.train \
      --config configs/wikitext103_transformer_xl.py:algebra=M2R,runlocal \
      --workdir workdirs/wt_smoke          # wikitext sample, CPU, ~2 min
  python -m experiments.eval --workdir workdirs/wt103_m2r --split test

Args: algebra=<name> (M2R), size=base|large, width=<multiplier>,
match_params, path=<directory with wiki.{train,valid,test}.tokens>,
sparsity=<target>, sweep_sparsity, runlocal, seed=<int>.

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
  arg = _txl_common.parse(arg)
  config = _txl_common.make_config(arg, SIZES, "wikitext103")
  m = config.model
  m.cutoffs = CUTOFFS
  m.div_val = SIZES[arg.size]["div_val"]
  m.untie_r = SIZES[arg.size]["untie_r"]
  m.tie_projs = (False, True, True, True)
  if arg.runlocal:
    _txl_common.shrink_for_cpu(
        config, arg, data_name="wikitext_sample", tgt_len=32
    )
    m.cutoffs = (2000, 10000)
    m.div_val = 1
    m.untie_r = False
    m.tie_projs = (False, True, True)
  return config


def sweep(add, arg=None):
  """The algebras at (about) the real model's layer parameters.

  `scripts.sweep --config configs/wikitext103_transformer_xl.py:path=/data/wt103`
  """
  _txl_common.sweep_matched(get_config, add, arg)
