r"""Quick start: a small M2(R) Transformer-XL byte model on embedded Wikipedia.

  python -m experiments.train --config configs/quickstart.py \
      --workdir workdirs/quickstart
  python -m experiments.eval --workdir workdirs/quickstart --split test
  python -m scripts.sample --workdir workdirs/quickstart --prompt '<page>'

Data: the enwiki XML slice in the gensim wheel (6.09 MB, enwik8's kind of
data; 90/5/5 split, Transformer-XL's byte vocabulary without newlines),
fetched once from PyPI into ~/.cache/algebranets. Model: Transformer-XL
(relative positions, segment recurrence) with M2(R)-valued embeddings,
projections and FFNs; 2 layers, d_model 128 (32 algebra channels x 4),
segments of 128 bytes with 128 bytes of memory. Runtime: about 3 minutes on
2 CPU cores. Target: valid bits per byte at least 1 bit below the split's
unigram entropy (5.11); measured in README.

Args (combine with commas): algebra=<name> (default M2R), width=<float>,
runlocal (a 20-second smoke run), seed=<int>, sparsity=<target> (gradual
pruning of algebra elements), sweep_sparsity (the sweep adds pruned points).
"""

from algebranets.training import config_lib
from configs import _small_lm


def get_config(arg=None):
  arg = _small_lm.parse(arg)
  config = config_lib.base_config("stream_lm", "transformer_xl")
  config.seed = arg.seed
  config.data.name = "enwiki_sample"
  config.data.tgt_len = 128
  config.data.eval_tgt_len = 128

  m = config.model
  m.algebra = arg.algebra
  m.width_multiplier = arg.width
  m.d_model = 128
  m.num_layers = 2
  m.num_heads = 4
  m.d_inner = 512
  m.dropout_rate = 0.0
  m.attention_dropout_rate = 0.0
  m.mem_len = 128
  m.eval_mem_len = 256
  m.clamp_len = -1
  m.eval_clamp_len = 256
  m.same_length = False
  m.eval_same_length = True

  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 50
  config.optimizer.grad_clip_norm = 1.0

  config.train.batch_size = 32
  config.train.num_steps = 600
  config.train.log_every = 50
  config.train.checkpoint_every = 200

  config.eval.every_steps = 200
  config.eval.num_batches = 8
  config.eval.batch_size = 32
  config.eval.split = "valid"

  config.sparsity.target = arg.sparsity  # > 0: gradual element pruning
  if arg.runlocal:
    config.data.tgt_len = 32
    config.data.eval_tgt_len = 32
    m.d_model = 32
    m.num_layers = 1
    m.num_heads = 2
    m.d_inner = 64
    m.mem_len = 32
    m.eval_mem_len = 64
    m.eval_clamp_len = 64
    config.optimizer.warmup_steps = 2
    config.train.batch_size = 8
    config.train.num_steps = 20
    config.train.log_every = 5
    config.train.checkpoint_every = 10
    config.eval.every_steps = 10
    config.eval.num_batches = 2
    config.eval.batch_size = 16
  return config


def sweep(add, arg=None):
  """Algebras x widths (`scripts.sweep --config configs/quickstart.py`); the arg
  `sweep_sparsity` adds M2R pruned to 50/75/90/95%."""
  _small_lm.sweep(add, arg)
