r"""A small M2(R) causal byte Transformer (no memory) on embedded Wikipedia.

  python -m experiments.train --config configs/byte_transformer.py \
      --workdir workdirs/byte_transformer
  python -m experiments.eval --workdir workdirs/byte_transformer --split test

Data: the enwiki XML slice in the gensim wheel (6.09 MB, enwik8's kind of
data, split 90/5/5), fetched once from PyPI into ~/.cache/algebranets.
Runtime: about 3 minutes on 2 CPU cores. Target: valid bits per byte at
least 1 bit below the split's unigram entropy (5.13 bits/byte).

Args (combine with commas): algebra=<name> (default M2R), width=<float>
(width multiplier), runlocal (a 1-minute smoke run), seed=<int>,
sparsity=<target>, sweep_sparsity (the sweep adds pruned points).
The quick start (configs/quickstart.py) trains Transformer-XL instead; this
config is the simplest model of the harness (random windows, no recurrence).
"""

from algebranets.training import config_lib
from configs import _small_lm


def get_config(arg=None):
  arg = _small_lm.parse(arg)
  config = config_lib.base_config("byte_lm", "transformer_lm")
  config.seed = arg.seed

  config.data.name = "enwiki_sample"
  config.data.seq_len = 128

  config.model.algebra = arg.algebra
  config.model.width_multiplier = arg.width
  config.model.d_model = 128
  config.model.num_layers = 2
  config.model.num_heads = 4
  config.model.mlp_ratio = 4

  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 3e-3
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 50
  config.optimizer.weight_decay = 0.01
  config.optimizer.grad_clip_norm = 1.0

  config.train.batch_size = 32
  config.train.num_steps = 600
  config.train.log_every = 50
  config.train.checkpoint_every = 200

  config.eval.every_steps = 200
  config.eval.num_batches = 8
  config.eval.batch_size = 64
  config.eval.split = "valid"

  config.sparsity.target = arg.sparsity  # > 0: gradual element pruning
  if arg.runlocal:
    config.data.seq_len = 64
    config.model.d_model = 32
    config.model.num_layers = 1
    config.model.num_heads = 2
    config.train.batch_size = 8
    config.train.num_steps = 20
    config.train.log_every = 5
    config.train.checkpoint_every = 10
    config.optimizer.warmup_steps = 2
    config.eval.every_steps = 10
    config.eval.num_batches = 2
    config.eval.batch_size = 16
  return config


def sweep(add, arg=None):
  """Algebras x widths (`scripts.sweep --config configs/byte_transformer.py`); the arg
  `sweep_sparsity` adds M2R pruned to 50/75/90/95%."""
  _small_lm.sweep(add, arg)
