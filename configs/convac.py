r"""ConvACs with and without overlap, and matching ConvNets, on Fashion-MNIST.

  python -m experiments.train --config configs/convac.py \
      --workdir workdirs/convac
  python -m experiments.train --config configs/convac.py:kind=convnet,kernel=1 \
      --workdir workdirs/convnet_k1
  python -m scripts.sweep --config configs/convac.py \
      --workdir_root workdirs/convac_sweep

Study 2 of issue 8 (Sharir & Shashua 2017, "On the Expressive Power of
Overlapping Architectures of Deep Learning"): does overlap (conv stride <
kernel size) make a convolutional arithmetic circuit more expressive per
parameter, and does the same hold for a ConvNet with the same skeleton?

Data: the original Fashion-MNIST idx files (Debian's dataset-fashion-mnist,
/usr/share/datasets/fashion-mnist, or --config.data.path=DIR), no
augmentation; the last 5,000 training images are 'valid' and the final
evaluation is on the official 10,000-image 'test' split. Nothing is selected
per run; the shared LR (1e-2 of 3e-3 / 1e-2 / 1e-3) and step count were
chosen once on 'valid' with the default ConvAC and ConvNet (1e-2 was as good
as 3e-3 for the ConvAC, 82.1% each, and better for the ConvNet, 88.0% vs
86.1%, at 600 steps).

Model (`algebranets.models.convac`): RBF representation on 2x2 patches
(28x28 -> 14x14), then `blocks` blocks of a kernel x kernel convolution with
stride `stride` ('SAME') and 2x2 pooling (14 -> 7 -> 3), then a linear class
layer on the flattened map. kind=convac: product pooling in log space,
convolutions without bias, logits = class scores of the per-example
normalised map (same decision as the raw ConvAC). kind=convnet: the same
skeleton with ReLU and max pooling. kernel=1, stride=1 is the classic
non-overlapping ConvAC (1x1 convs, disjoint pooling windows); kernel=3,
stride=1 overlaps. `channels` is the real width of every block and of the
representation (algebra channels = channels / d).
Training: Adam, LR 1e-2 with 5% linear warmup then cosine to 0, global
norm clipping at 1, batch 64, `steps` steps.

Measured (seed 0, 1000 steps, test top-1; 2 CPU cores shared with other
jobs, load average 1-4). The default run (R ConvAC, kernel 3, width 32,
21,568 parameters): 83.51%, 69 s wall for training and the whole-test
evaluation. The whole default sweep: 8 min 54 s.

  widths 8 / 16 / 32: test top-1 % (parameters)
  ConvAC  R k=1:  76.72 (912)    80.30 (2,080)  81.46 (5,184)
  ConvAC  R k=3:  80.14 (1,936)  83.76 (6,176)  83.51 (21,568)
  ConvNet R k=1:  78.00 (938)    80.82 (2,122)  83.49 (5,258)
  ConvNet R k=3:  85.46 (1,962)  87.06 (6,218)  88.44 (21,642)
  ConvAC  H k=3 width 32: component pooling 82.50, quaternion-product
  pooling 85.25 (7,744 each).

One seed each, so differences below ~1 point are not resolved. Overlap
(k=3) beats no overlap at every width, by 2.0-3.5 points for the ConvAC and
5.0-7.5 for the ConvNet; at about matched parameters (k=3 width 8 vs k=1
width 16, ~2k) the overlapping ConvAC is even (80.1% vs 80.3%) and the
overlapping ConvNet 4.6 points ahead. The ConvNet beats the ConvAC at every
point. The quaternion-product ConvAC is the best ConvAC, with 36% of the
parameters of the real k=3 width-32 one.

Args (combine with commas): kind=convac|convnet, kernel=<int>,
stride=<int>, channels=<int> (real width of every block), blocks=<int>,
algebra=<name>, pooling=component|algebra (convac only),
representation=rbf|linear_relu, patch=<int>, steps=<int>, batch=<int>,
lr=<float>, runlocal (a few-step smoke run), seed=<int>.
Sweep: kind x {kernel 1 (no overlap), kernel 3 (overlap)} x channels
{8, 16, 32}, plus H-valued overlapping ConvACs with component-wise and
quaternion-product pooling at width 32.
"""

from algebranets.training import config_lib

SWEEP_KINDS = ("convac", "convnet")
# (kernel, stride): non-overlapping (k = s) and overlapping (k > s).
SWEEP_OVERLAP = ((1, 1), (3, 1))
SWEEP_CHANNELS = (8, 16, 32)


def parse(arg):
  return config_lib.parse_arg(
      arg,
      kind="convac",
      kernel=3,
      stride=1,
      channels=32,
      blocks=2,
      algebra="R",
      pooling="component",
      representation="rbf",
      patch=2,
      steps=1000,
      batch=64,
      lr=1e-2,
      runlocal=False,
      seed=0,
  )


def get_config(arg=None):
  arg = parse(arg)
  if arg.blocks < 1:
    raise config_lib.ConfigError(
        f"Config arg blocks={arg.blocks}: need at least one conv + pooling "
        "block, e.g. blocks=2."
    )
  config = config_lib.base_config("image_classification", "convac")
  config.seed = arg.seed

  data = config.data
  data.name = "fashion_mnist"
  data.path = ""  # /usr/share/datasets/fashion-mnist
  data.image_size = 0  # native 28 x 28
  data.augment = False
  data.label_smoothing = 0.0
  data.valid_examples = 5000

  m = config.model
  m.kind = arg.kind
  m.algebra = arg.algebra
  m.representation = arg.representation
  m.patch_size = arg.patch
  m.rep_channels = 0  # = channels[0]
  m.channels = (arg.channels,) * arg.blocks
  m.kernel_size = arg.kernel
  m.stride = arg.stride
  m.padding = "SAME"
  m.pool_size = 2
  m.pool_stride = 0  # = pool_size
  m.pooling = arg.pooling
  m.convnet_pool = "max"
  m.head = "flatten"

  opt = config.optimizer
  opt.name = "adam"
  opt.learning_rate = arg.lr
  opt.schedule = "cosine"
  opt.warmup_steps = arg.steps // 20  # 5% of training
  opt.end_learning_rate_factor = 0.0
  opt.weight_decay = 0.0
  opt.grad_clip_norm = 1.0

  tr = config.train
  tr.batch_size = arg.batch
  tr.num_steps = arg.steps
  tr.log_every = 50
  tr.checkpoint_every = arg.steps

  ev = config.eval
  ev.split = "test"
  ev.every_steps = 0  # only the final evaluation (whole test split)
  ev.batch_size = 500

  if arg.runlocal:
    m.channels = (4,) * arg.blocks
    data.valid_examples = 200
    tr.batch_size = 8
    tr.num_steps = 4
    tr.log_every = 2
    tr.checkpoint_every = 2
    opt.warmup_steps = 1
    ev.batch_size = 50
  return config


def sweep(add, arg=None):
  """kind x overlap x width, plus two H-valued overlapping ConvACs."""
  blocks = parse(arg).blocks
  for kind in SWEEP_KINDS:
    for kernel, stride in SWEEP_OVERLAP:
      for channels in SWEEP_CHANNELS:
        add(
            **{
                "model.kind": kind,
                "model.kernel_size": kernel,
                "model.stride": stride,
                "model.channels": (channels,) * blocks,
            }
        )
  for pooling in ("component", "algebra"):
    add(
        **{
            "model.kind": "convac",
            "model.algebra": "H",
            "model.pooling": pooling,
            "model.kernel_size": 3,
            "model.stride": 1,
            "model.channels": (32,) * blocks,
        }
    )
