r"""A small CIFAR-style algebra ResNet on Fashion-MNIST, for 2 CPU cores.

  python -m experiments.train --config configs/fashion_mnist_resnet.py \
      --workdir workdirs/fashion_resnet
  python -m experiments.eval --workdir workdirs/fashion_resnet --split test

Data: the original Fashion-MNIST idx files from Debian's
dataset-fashion-mnist (`apt-get install dataset-fashion-mnist`, files in
/usr/share/datasets/fashion-mnist; or --config.data.path=DIR); the last
5,000 training images are 'valid', 'test' is the official 10,000. No
augmentation by default: the run sees fewer than half an epoch, where
random shifts and flips only slow fitting (measured: 82.0% instead of 86.0%
test accuracy); the arg `augment` turns them on for longer runs.

Model: ResNet with the 'cifar' stem (3x3 stride-1 conv, no pool), one basic
block in each of three stages of real widths 32/64/128 (28x28 -> 14x14 ->
7x7), real stem and real classifier head, algebra BatchNorm per component,
split ReLU; 308,074 parameters, 37.2 M intrinsic MACs per image (R).
Training: SGD Nesterov 0.9, LR 0.05 with a 5% linear warmup then cosine to
0, L2 weight decay 5e-4 on conv/linear weights, label smoothing 0.1, batch
64, 400 steps (25,600 images).

Target: better than 80% test accuracy within a few CPU minutes. Measured
(algebra R, seed 0, 2 CPU cores shared with other jobs, load average 2-4):
86.04% test accuracy (86.30% valid, test loss 0.477); training with the
final whole-valid evaluation took 3 min 0 s wall (130 s user CPU, about
3 steps/s), the test evaluation 24 s. Two runs gave identical numbers.

Args (combine with commas): algebra=<name> (default R), width=<float>
(width multiplier of every real width), steps=<int> (training steps),
augment (random shifts and flips), runlocal (a few-step smoke run),
seed=<int>, sparsity=<target> (gradual pruning of algebra elements),
sweep_sparsity (the sweep adds pruned points).
Sweep: `python -m scripts.sweep --config configs/fashion_mnist_resnet.py`
(R, C, H, M2R at width 1 and at about the real net's parameters).
"""

import math

from algebranets import algebras
from algebranets.training import config_lib

# Deliberately the paper's four main algebras, not every registered one.
SWEEP_ALGEBRAS = ("R", "C", "H", "M2R")
SPARSITY_TARGETS = (0.5, 0.75, 0.9, 0.95)


def parse(arg):
  return config_lib.parse_arg(
      arg,
      algebra="R",
      width=1.0,
      steps=400,
      augment=False,
      runlocal=False,
      seed=0,
      sparsity=0.0,
      sweep_sparsity=False,
  )


def get_config(arg=None):
  arg = parse(arg)
  config = config_lib.base_config("image_classification", "resnet")
  config.seed = arg.seed

  data = config.data
  data.name = "fashion_mnist"
  data.path = ""  # /usr/share/datasets/fashion-mnist
  data.image_size = 0  # native 28 x 28
  data.augment = arg.augment  # see the docstring
  data.label_smoothing = 0.1
  data.valid_examples = 5000

  m = config.model
  m.algebra = arg.algebra
  m.width_multiplier = arg.width
  m.depth = 18  # a valid reference depth; the blocks below override it
  m.stem = "cifar"
  m.block = "basic"
  m.blocks_per_stage = (1, 1, 1)
  m.stage_widths = (32, 64, 128)
  m.stem_width = 32
  m.lift = "real_stem"
  m.head = "flatten_real"

  opt = config.optimizer
  opt.name = "sgd"
  opt.momentum = 0.9
  opt.nesterov = True
  opt.learning_rate = 0.05
  opt.schedule = "cosine"
  opt.warmup_steps = arg.steps // 20  # 5% of training
  opt.end_learning_rate_factor = 0.0
  opt.weight_decay = 5e-4  # sgd: L2 added to the gradient
  opt.decay_param_names = ("w",)
  opt.grad_clip_norm = 0.0

  tr = config.train
  tr.batch_size = 64
  tr.num_steps = arg.steps
  tr.log_every = 25
  tr.checkpoint_every = 200

  ev = config.eval
  ev.split = "valid"
  ev.every_steps = 200
  ev.num_batches = 8  # periodic: 2,000 images; the final eval is whole
  ev.batch_size = 250

  config.sparsity.target = arg.sparsity  # > 0: gradual element pruning
  if arg.runlocal:
    m.stage_widths = (8, 16, 16)
    m.stem_width = 8
    data.valid_examples = 200
    tr.batch_size = 8
    tr.num_steps = 6
    tr.log_every = 2
    tr.checkpoint_every = 3
    opt.warmup_steps = 1
    ev.every_steps = 3
    ev.num_batches = 2
    ev.batch_size = 50
  return config


def sweep(add, arg=None):
  """R, C, H, M2R at width 1 (about 1/d of the real parameters) and at
  width sqrt(d) (about the real net's); `sweep_sparsity` adds M2R pruned
  to 50/75/90/95%."""
  for algebra in SWEEP_ALGEBRAS:
    dim = algebras.get(algebra).dim
    widths = (1.0,) if dim == 1 else (1.0, round(math.sqrt(dim), 3))
    for width in widths:
      add(**{"model.algebra": algebra, "model.width_multiplier": width})
  if parse(arg).sweep_sparsity:
    for target in SPARSITY_TARGETS:
      add(**{"model.algebra": "M2R", "sparsity.target": target})
