r"""Algebra ResNet-50 on ImageNet (the paper's image experiment).

  python -m experiments.train --config configs/imagenet_resnet50.py:algebra=H \
      --config.data.data_dir=/data/tfds --workdir workdirs/rn50_H
  python -m experiments.eval --workdir workdirs/rn50_H --split valid

Data: TFDS `imagenet2012` prepared from the manually downloaded archives
(`python -m algebranets.data.imagenet --data_dir D --manual_dir M`; nothing
is downloaded). Model: ResNet-50 v1.5, real 7x7 stem and real classifier
head (paper section 7 defaults), algebra BatchNorm per component, split
ReLU; M_n(R) runs in the column-folded layout end to end.

Recipe (labelled: the State-of-Sparsity / RigL ImageNet recipe, NOT
confirmed to be the paper's): batch 1024, SGD Nesterov 0.9, LR 0.1 per 256,
5-epoch warmup, x0.1 at epochs 30/60/80 (or cosine), L2 1e-4 coupled, label
smoothing 0.1, 90 epochs; eval on the full validation split every 5 epochs.

Args (combine with commas): algebra=<name> (default R); match=params
(default) | params_without_io | macs | none: the width multiplier that
matches the real ResNet-50 (stored in configs/_vision_widths.py); width=<f>
(explicit multiplier, overrides match); data_dir=, manual_dir=; batch=1024;
epochs=90; schedule=step|cosine; bf16; sparsity=<target> (gradual element
pruning 25%->75% of training); sweep_sparsity; runlocal (12 steps, 64x64
images, widths /8: a smoke run on CPU); seed=<int>.
Sweep: `python -m scripts.sweep --config configs/imagenet_resnet50.py`
(every algebra at matched params and at matched MACs).
"""

from algebranets.training import config_lib
from configs import _imagenet_common as common

MODEL_KEY = "resnet50"


def get_config(arg=None):
  a = common.parse(arg)
  config = config_lib.base_config("image_classification", "resnet")
  config.seed = a.seed
  m = config.model
  m.algebra = a.algebra
  m.depth = 50
  m.version = "v1.5"
  m.stem = "imagenet"
  m.width_multiplier = common.width_multiplier(MODEL_KEY, a)
  m.lift = "real_stem"
  m.head = "flatten_real"
  m.zero_init_last_norm = False
  common.apply_recipe(config, a)
  if a.runlocal:
    common.shrink_for_cpu(config)
  return config


def sweep(add, arg=None):
  """Algebras at matched params and MACs (+ pruned with sweep_sparsity)."""
  common.sweep(get_config, add, MODEL_KEY, arg)
