r"""Algebra MobileNet v1 on ImageNet (the paper's second image model).

  python -m experiments.train --config configs/imagenet_mobilenet.py:algebra=M2R \
      --config.data.data_dir=/data/tfds --workdir workdirs/mbv1_M2R
  python -m experiments.eval --workdir workdirs/mbv1_M2R --split valid

Data: TFDS `imagenet2012` prepared from the manually downloaded archives
(`python -m algebranets.data.imagenet --data_dir D --manual_dir M`). Model:
MobileNet v1 (alpha 1.0, 224 input) with algebra depthwise convolutions (each
algebra channel its own algebra-valued 3x3 kernel; depthwise=component via
--config.model.depthwise=component), real stem and real head.

Recipe (labelled: the RigL MobileNet recipe family, NOT confirmed to be the
paper's): batch 1024, SGD Nesterov 0.9, LR 0.1 per 256, 5-epoch warmup, then
x0.1 at epochs 30/60/80 or cosine, L2 1e-4 coupled, label smoothing 0.1, 90
epochs (RigL trains MobileNets longer; pass epochs=).

Args: as configs/imagenet_resnet50.py (algebra, match, width, data_dir,
manual_dir, batch, epochs, schedule, bf16, sparsity, sweep_sparsity,
runlocal, seed); match widths are stored per model in
configs/_vision_widths.py.
Sweep: `python -m scripts.sweep --config configs/imagenet_mobilenet.py`.
"""

from algebranets.training import config_lib
from configs import _imagenet_common as common

MODEL_KEY = "mobilenet"


def get_config(arg=None):
  a = common.parse(arg)
  config = config_lib.base_config("image_classification", "mobilenet")
  config.seed = a.seed
  m = config.model
  m.algebra = a.algebra
  m.alpha = 1.0
  m.width_multiplier = common.width_multiplier(MODEL_KEY, a)
  m.depthwise = "algebra"
  m.lift = "real_stem"
  m.head = "flatten_real"
  common.apply_recipe(config, a)
  if a.runlocal:
    common.shrink_for_cpu(config)
  return config


def sweep(add, arg=None):
  """Algebras at matched params and MACs (+ pruned with sweep_sparsity)."""
  common.sweep(get_config, add, MODEL_KEY, arg)
