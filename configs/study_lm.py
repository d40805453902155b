r"""Study: Transformer-XL byte models of every algebra at matched parameters.

  python -m experiments.train --config=configs/study_lm.py:algebra=H,lr=0.002,seed=0 \
      --workdir=workdirs/study_lm/algebra=H,lr=0.002,seed=0
  python -m experiments.eval --workdir=workdirs/study_lm/algebra=H,lr=0.002,seed=0 --split=test
  python -m scripts.sweep --config=configs/study_lm.py:sweep=lr_sweep \
      --workdir_root=workdirs/study_lm

The reduced-scale language-model protocol of docs/results.md (issue 17),
sized for 2 CPU cores. Data: the embedded enwiki sample (as
configs/quickstart.py; 90/5/5 split, bits per byte). Model: Transformer-XL,
2 layers, relative positions, segments of 64 bytes with 64 bytes of memory
in training and 128 in evaluation; no dropout (1,500 steps of batch 16 see
1.5 M bytes, a quarter of an epoch: no overfitting to fight). The real model
of each size (R, width 1):

  size    d_model  d_inner  heads  R params
  small        32      128      2  (docs/results.md)
  medium       64      256      2  the size of the learning-rate sweep
  large       128      512      4  the quick-start model's widths

Every other algebra runs at the width multiplier that makes its total
parameter count closest to R's (configs/_study_widths.py, measured by
`python -m scripts.study_widths`; heads must divide the algebra channels, so
the real width moves in steps of d * heads; where the closest such width
misses R's count by more than 1%, the FFN width d_inner moves by whole
algebra channels too). Training: Adam, cosine decay to
0 after 100 warm-up steps, gradient clipping at 1.0 (configs/quickstart.py's
recipe), batch 16, 1,500 steps; the final evaluation covers the whole valid
split, and `experiments.eval --split=test` the test split.

Args (combine with commas; scripts/study_runs.py writes them in this order):
  size=small|medium|large (default medium); algebra=<name> (default R);
  lr=<float> (Adam peak learning rate, default 0.002); seed=<int>;
  sparsity=<target> with granularity=element|unstructured|block and
  block=<int> (block=2: 2x2 real blocks, the left matrix of M2R/C;
  block=4: of H/M4R) for gradual magnitude pruning; norm_mode=component|
  whiten, activation=split|modrelu, init_scale=<float> (x init_std and
  proj_init_std) for the design-choice ablation; width=<float> (a width
  multiplier instead of the matched one: scripts.study_widths measures with
  it); runlocal (a few-second smoke run); path=<file> (data.path).
  sweep=<name> picks the sweep and changes nothing in the config.

Sweeps (`python -m scripts.sweep --config=configs/study_lm.py:sweep=NAME
--workdir_root=workdirs/study_lm`; finished runs are skipped):
  r_seeds    R at the default learning rate, seeds 0-2 (the noise floor)
  lr_sweep   every algebra x LR_GRID, seed 0 (the medium size); an algebra
             whose best rate is on the grid's edge gets 2x past it (see
             _study.lr_grid; rerun after each `--select`)
  seeds      every algebra at its selected learning rate, seeds 1-2 (seed
             0 is the lr_sweep run at that rate)
  sizes      R, C, H, M2R, M4R at small and large, selected LR, seeds 0-2
  sparsity   R unstructured, R 2x2 and 4x4 blocks, M2R/H/M4R elements, at
             SPARSITY_TARGETS (seed 0; seeds 0-2 at 0.9), selected LR
  ablation   M2R and H: norm_mode=whiten, activation=modrelu,
             init_scale=0.5 and 2 (seed 0, selected LR)
Selected learning rates live in configs/_study_selected.py, written from
docs/results/runs.csv by `python -m scripts.study_report --select`.
"""

import sys

from algebranets.training import config_lib
from configs import _study, _study_selected, _study_widths

STUDY = "lm"
SIZES = {
    "small": dict(d_model=32, d_inner=128, num_heads=2),
    "medium": dict(d_model=64, d_inner=256, num_heads=2),
    "large": dict(d_model=128, d_inner=512, num_heads=4),
}
LR_GRID = (0.001, 0.002, 0.004, 0.008)
SIZE_ALGEBRAS = ("R", "C", "H", "M2R", "M4R")
SPARSITY_TARGETS = (0.5, 0.75, 0.9, 0.95)
SPARSITY_SEEDS_AT = 0.9
ABLATION_ALGEBRAS = ("M2R", "H")
INIT_STD, PROJ_INIT_STD = 0.02, 0.01
SWEEPS = ("r_seeds", "lr_sweep", "seeds", "sizes", "sparsity", "ablation")

# Every arg with its default, in canonical order (see configs/_study.py).
DEFAULTS = dict(
    size="medium",
    algebra="R",
    lr=0.002,
    seed=0,
    sparsity=0.0,
    granularity="element",
    block=4,
    norm_mode="component",
    activation="split",
    init_scale=1.0,
    width=0.0,
    runlocal=False,
    path="",
    sweep="",
)
ALWAYS = ("algebra", "lr", "seed")


def parse(arg):
  return config_lib.parse_arg(arg, **DEFAULTS)


def matched(size: str, algebra: str) -> dict:
  """{'width_multiplier', 'd_inner', ...} of configs/_study_widths.py."""
  table = _study_widths.LM.get(size, {})
  if algebra not in table:
    raise config_lib.ConfigError(
        f"No matched width for algebra={algebra!r} at size={size!r} in "
        "configs/_study_widths.py; run `python -m scripts.study_widths "
        "--write` or pass width=<float>."
    )
  return table[algebra]


def get_config(arg=None):
  a = parse(arg)
  if a.size not in SIZES:
    raise config_lib.ConfigError(
        f"size={a.size!r}; use one of {sorted(SIZES)}."
    )
  if a.sweep and a.sweep not in SWEEPS:
    raise config_lib.ConfigError(
        f"sweep={a.sweep!r}; use one of {list(SWEEPS)}."
    )
  s = SIZES[a.size]
  config = config_lib.base_config("stream_lm", "transformer_xl")
  config.seed = a.seed
  config.data.name = "enwiki_sample"
  config.data.path = a.path
  config.data.tgt_len = 64
  config.data.eval_tgt_len = 64

  m = config.model
  m.algebra = a.algebra
  m.d_model = s["d_model"]
  if a.width > 0:
    m.width_multiplier = a.width
    m.d_inner = s["d_inner"]
  else:
    match = matched(a.size, a.algebra)
    m.width_multiplier = match["width_multiplier"]
    m.d_inner = match["d_inner"]
  m.num_heads = s["num_heads"]
  m.num_layers = 2
  m.dropout_rate = 0.0
  m.attention_dropout_rate = 0.0
  m.mem_len = 64
  m.eval_mem_len = 128
  m.clamp_len = -1
  m.eval_clamp_len = 128
  m.same_length = False
  m.eval_same_length = True
  m.norm_mode = a.norm_mode
  m.activation = a.activation
  m.init_std = INIT_STD * a.init_scale
  m.proj_init_std = PROJ_INIT_STD * a.init_scale

  opt = config.optimizer
  opt.name = "adam"
  opt.learning_rate = a.lr
  opt.schedule = "cosine"
  opt.end_learning_rate_factor = 0.0
  opt.warmup_steps = 100
  opt.grad_clip_norm = 1.0

  tr = config.train
  tr.batch_size = 16
  tr.num_steps = 1500
  tr.log_every = 100
  tr.checkpoint_every = 1500  # the final checkpoint, for experiments.eval
  tr.keep_checkpoints = 1

  ev = config.eval
  ev.every_steps = 0  # only the final evaluation: the whole valid split
  ev.batch_size = 16
  ev.split = "valid"

  if a.sparsity > 0:
    sp = config.sparsity
    sp.method = "gradual"
    sp.target = a.sparsity
    sp.granularity = a.granularity
    sp.block_shape = (a.block, a.block)
  if a.runlocal:
    config.data.tgt_len = config.data.eval_tgt_len = 16
    m.mem_len = 16
    m.eval_mem_len = m.eval_clamp_len = 32
    opt.warmup_steps = 2
    tr.batch_size = 4
    tr.num_steps = tr.checkpoint_every = 20
    tr.log_every = 10
    ev.batch_size = 4
    config.sparsity.frequency = 2
  return config


def config_arg(config) -> str:
  """The canonical arg whose `get_config` is meant to give `config` (a
  finished run's config.json); scripts/study_runs.py verifies it does.

  Raises:
    config_lib.ConfigError: the config is not one of this file's.
  """
  m = config.model
  sizes = [k for k, s in SIZES.items() if s["d_model"] == m.d_model]
  if config.task != "stream_lm" or not sizes:
    raise config_lib.ConfigError(
        f"not a configs/study_lm.py run (task {config.task}, d_model "
        f"{m.get('d_model')})."
    )
  size = sizes[0]
  sp = config.sparsity
  pruned = sp.method != "none" and sp.target > 0
  table = _study_widths.LM.get(size, {}).get(m.algebra, {})
  values = dict(
      size=size,
      algebra=m.algebra,
      lr=float(config.optimizer.learning_rate),
      seed=int(config.seed),
      sparsity=float(sp.target) if pruned else 0.0,
      granularity=sp.granularity if pruned else DEFAULTS["granularity"],
      block=int(sp.block_shape[0]) if pruned else DEFAULTS["block"],
      norm_mode=m.norm_mode,
      activation=m.activation,
      init_scale=float(m.init_std) / INIT_STD,
      width=(
          0.0
          if table.get("width_multiplier") == m.width_multiplier
          and table.get("d_inner") == m.d_inner
          else float(m.width_multiplier)
      ),
      runlocal=config.train.num_steps == 20,
      path=config.data.path,
  )
  if values["granularity"] != "block":
    values["block"] = DEFAULTS["block"]
  return _study.canonical_arg(values, DEFAULTS, ALWAYS)


def arg_for(**values) -> str:
  """The canonical arg of a run (keys of DEFAULTS)."""
  return _study.canonical_arg(values, DEFAULTS, ALWAYS)


def _log(text: str) -> None:
  print(text, file=sys.stderr, flush=True)


def sweep(add, arg=None):
  """The study's sweeps (see the module docstring); `sweep=<name>` picks."""
  a = parse(arg)
  if a.sweep not in SWEEPS:
    raise config_lib.ConfigError(
        f"configs/study_lm.py needs sweep=<name>, one of {list(SWEEPS)} "
        f"(got {a.sweep!r})."
    )
  selected = _study_selected.LR.get(STUDY, {})
  fix = (
      "finish `python -m scripts.sweep --config=configs/study_lm.py:"
      "sweep=lr_sweep --workdir_root=workdirs/study_lm`, collect it and run "
      "`python -m scripts.study_report --select`."
  )
  base = dict(runlocal=a.runlocal, path=a.path)

  def select(what, algebras, point):
    _study.add_selected(
        add, selected, algebras, point, what=what, fix=fix, log=_log
    )

  if a.sweep == "r_seeds":
    for seed in _study.SEEDS:
      add(config_arg=arg_for(algebra="R", seed=seed, **base))
  elif a.sweep == "lr_sweep":
    # The default learning rate first for every algebra, so that a partly
    # finished sweep already compares all nine at one learning rate.
    for lr in sorted(LR_GRID, key=lambda x: (x != DEFAULTS["lr"], x)):
      for algebra in _study.ALGEBRAS:
        add(config_arg=arg_for(algebra=algebra, lr=lr, **base))
    # Then past the grid's edge for algebras whose best rate lies on it.
    for algebra in _study.ALGEBRAS:
      for lr in _study.lr_grid(LR_GRID, selected.get(algebra)):
        if lr not in LR_GRID:
          add(config_arg=arg_for(algebra=algebra, lr=lr, **base))
  elif a.sweep == "seeds":
    select(
        "seeds",
        _study.ALGEBRAS,
        lambda alg, lr: [
            arg_for(algebra=alg, lr=lr, seed=s, **base)
            for s in _study.REPEAT_SEEDS
        ],
    )
  elif a.sweep == "sizes":
    select(
        "sizes",
        SIZE_ALGEBRAS,
        lambda alg, lr: [
            arg_for(size=size, algebra=alg, lr=lr, seed=s, **base)
            for size in ("small", "large")
            for s in _study.SEEDS
        ],
    )
  elif a.sweep == "sparsity":
    kinds = {
        "R": [("unstructured", 4), ("block", 2), ("block", 4)],
        "M2R": [("element", 4)],
        "H": [("element", 4)],
        "M4R": [("element", 4)],
    }

    def pruned(alg, lr):
      out = []
      for granularity, block in kinds[alg]:
        for target in SPARSITY_TARGETS:
          seeds = _study.SEEDS if target == SPARSITY_SEEDS_AT else (0,)
          out += [
              arg_for(
                  algebra=alg,
                  lr=lr,
                  seed=s,
                  sparsity=target,
                  granularity=granularity,
                  block=block,
                  **base,
              )
              for s in seeds
          ]
      return out

    select("sparsity", tuple(kinds), pruned)
  else:  # ablation
    variants = (
        dict(norm_mode="whiten"),
        dict(activation="modrelu"),
        dict(init_scale=0.5),
        dict(init_scale=2.0),
    )
    select(
        "ablation",
        ABLATION_ALGEBRAS,
        lambda alg, lr: [
            arg_for(algebra=alg, lr=lr, **v, **base) for v in variants
        ],
    )
