r"""Transformer-XL on enwik8 (bits per byte = the paper's bpc), any algebra.

  python -m experiments.train --config configs/enwik8_transformer_xl.py \
      --config.data.path=/data/enwik8.zip --workdir workdirs/enwik8_m2r
  python -m experiments.train \
      --config configs/enwik8_transformer_xl.py:algebra=M2R,runlocal \
      --workdir workdirs/txl_smoke          # enwiki sample, CPU, ~1 min
  python -m experiments.eval --workdir workdirs/enwik8_m2r --split test

Args: algebra=<name> (M2R), size=base|large, width=<multiplier> (1.0 = the
real model's width), match_params (width chosen so the layers have about
the real model's parameters), path=<enwik8 file>, sparsity=<target>
(gradual pruning of whole algebra elements), sweep_sparsity (the sweep adds
targets 0.5, 0.75, 0.9, 0.95), runlocal, seed=<int>.

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
        num_steps=400_000,
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
        num_steps=400_000,
        eval_tgt_len=128,
        eval_mem_len=3800,
        eval_clamp_len=1000,
    ),
}


def get_config(arg=None):
  arg = _txl_common.parse(arg)
  config = _txl_common.make_config(arg, SIZES, "enwik8")
  config.model.cutoffs = ()  # a byte vocabulary: plain tied softmax
  if arg.runlocal:
    _txl_common.shrink_for_cpu(
        config, arg, data_name="enwiki_sample", tgt_len=64
    )
  return config


def sweep(add, arg=None):
  """The algebras at (about) the real model's layer parameters.

  `scripts.sweep --config configs/enwik8_transformer_xl.py:path=/data/enwik8.zip`
  """
  _txl_common.sweep_matched(get_config, add, arg)
