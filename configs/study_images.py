r"""Study: Fashion-MNIST ResNets of every algebra at matched parameters.

  python -m experiments.train --config=configs/study_images.py:algebra=H,lr=0.05,seed=0 \
      --workdir=workdirs/study_images/algebra=H,lr=0.05,seed=0
  python -m experiments.eval --workdir=workdirs/study_images/algebra=H,lr=0.05,seed=0 --split=test
  python -m scripts.sweep --config=configs/study_images.py:sweep=lr_sweep \
      --workdir_root=workdirs/study_images

The image protocol of docs/results.md (issue 17): configs/fashion_mnist_resnet.py
(CIFAR-style ResNet, one basic block per stage, real stem and head, SGD
Nesterov, cosine, 400 steps of batch 64, no augmentation) with R at
width 0.5 and every other algebra at the width multiplier whose total
parameter count is closest to it (configs/_study_widths.py, from
`python -m scripts.study_widths`). Learning rates are picked on 'valid',
the last 5,000 training images (never trained on: `data.valid_examples`);
the final evaluation covers all of them, and `experiments.eval
--split=test` the official 10,000 test images.

Args: algebra=<name> (default R); lr=<float> (SGD peak learning rate,
default 0.05, the Fashion-MNIST config's); seed=<int>; width=<float> (a
multiplier instead of the matched one); runlocal (a few-step smoke run);
path=<dir> (data.path); sweep=<name> picks the sweep, nothing else.

Sweeps (`python -m scripts.sweep --config=configs/study_images.py:sweep=NAME
--workdir_root=workdirs/study_images`):
  lr_sweep   every algebra x LR_GRID, seed 0; an algebra whose best rate
             is on the grid's edge gets 2x past it (_study.lr_grid; rerun
             after each `python -m scripts.study_report --select`)
  seeds      every algebra at its selected learning rate
             (configs/_study_selected.py), seeds 1-2 (seed 0 is the
             lr_sweep run at that rate)
"""

import sys

from algebranets.training import config_lib
from configs import _study, _study_selected, _study_widths, fashion_mnist_resnet

STUDY = "images"
R_WIDTH = 0.5
STEPS = 400
LR_GRID = (0.025, 0.05, 0.1)
SWEEPS = ("lr_sweep", "seeds")
DEFAULTS = dict(
    algebra="R",
    lr=0.05,
    seed=0,
    width=0.0,
    runlocal=False,
    path="",
    sweep="",
)
ALWAYS = ("algebra", "lr", "seed")


def parse(arg):
  return config_lib.parse_arg(arg, **DEFAULTS)


def width_for(algebra: str) -> float:
  if algebra == "R":
    return R_WIDTH
  if algebra not in _study_widths.IMAGES:
    raise config_lib.ConfigError(
        f"No matched width for algebra={algebra!r} in "
        "configs/_study_widths.py; run `python -m scripts.study_widths "
        "--write` or pass width=<float>."
    )
  return _study_widths.IMAGES[algebra]["width_multiplier"]


def get_config(arg=None):
  a = parse(arg)
  if a.sweep and a.sweep not in SWEEPS:
    raise config_lib.ConfigError(
        f"sweep={a.sweep!r}; use one of {list(SWEEPS)}."
    )
  width = a.width if a.width > 0 else width_for(a.algebra)
  config = fashion_mnist_resnet.get_config(
      f"algebra={a.algebra},width={width},steps={STEPS},seed={a.seed}"
      + (",runlocal" if a.runlocal else "")
  )
  config.data.path = a.path
  config.optimizer.learning_rate = a.lr
  config.train.checkpoint_every = config.train.num_steps  # final only
  config.train.keep_checkpoints = 1
  config.eval.every_steps = 0  # the final evaluation: the whole valid split
  return config


def config_arg(config) -> str:
  """The canonical arg meant to rebuild `config` (a run's config.json);
  scripts/study_runs.py verifies that it does.

  Raises:
    config_lib.ConfigError: the config is not one of this file's.
  """
  m = config.model
  if config.task != "image_classification" or config.data.name != (
      "fashion_mnist"
  ):
    raise config_lib.ConfigError(
        f"not a configs/study_images.py run (task {config.task})."
    )
  matched = (
      R_WIDTH
      if m.algebra == "R"
      else _study_widths.IMAGES.get(m.algebra, {}).get("width_multiplier")
  )
  values = dict(
      algebra=m.algebra,
      lr=float(config.optimizer.learning_rate),
      seed=int(config.seed),
      width=0.0 if matched == m.width_multiplier else m.width_multiplier,
      runlocal=config.train.num_steps != STEPS,
      path=config.data.path,
  )
  return _study.canonical_arg(values, DEFAULTS, ALWAYS)


def arg_for(**values) -> str:
  return _study.canonical_arg(values, DEFAULTS, ALWAYS)


def sweep(add, arg=None):
  """lr_sweep or seeds (module docstring); `sweep=<name>` picks."""
  a = parse(arg)
  if a.sweep not in SWEEPS:
    raise config_lib.ConfigError(
        f"configs/study_images.py needs sweep=<name>, one of {list(SWEEPS)} "
        f"(got {a.sweep!r})."
    )
  base = dict(runlocal=a.runlocal, path=a.path)
  selected = _study_selected.LR.get(STUDY, {})
  if a.sweep == "lr_sweep":
    for algebra in _study.ALGEBRAS:
      for lr in _study.lr_grid(LR_GRID, selected.get(algebra)):
        add(config_arg=arg_for(algebra=algebra, lr=lr, **base))
    return
  _study.add_selected(
      add,
      selected,
      _study.ALGEBRAS,
      lambda alg, lr: [
          arg_for(algebra=alg, lr=lr, seed=s, **base)
          for s in _study.REPEAT_SEEDS
      ],
      what="seeds",
      fix=(
          "finish `python -m scripts.sweep --config=configs/"
          "study_images.py:sweep=lr_sweep --workdir_root=workdirs/"
          "study_images`, collect it and run `python -m scripts."
          "study_report --select`."
      ),
      log=lambda text: print(text, file=sys.stderr, flush=True),
  )
