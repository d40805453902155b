"""The `sparsity` config section: defaults, validation and the optax wrapper.

method        'none', 'gradual' (Zhu & Gupta 2017 polynomial schedule) or
              'one_shot' (all of `target` at `begin_step`)
target        final fraction of pruned units, in [0, 1)
granularity   'element' (whole algebra elements, scored by their norm),
              'unstructured' (real components) or 'block' (real
              block_shape blocks: the real-network baseline)
distribution  'uniform' or 'erk' per-layer sparsities
ranking       'layer' or 'global' magnitude ranking
begin_step, end_step, frequency
              the schedule; -1 = 10% / 75% of train.num_steps
include, exclude
              regexes searched in 'module/leaf' paths of 'w' leaves; the
              real stem, the embedding and the head stay dense by default
"""

from __future__ import annotations

import functools
from typing import Any

import optax

from algebranets import config_access
from algebranets.sparsity import masks, pruner, schedules

METHODS = ("none", "gradual", "one_shot")
GRANULARITIES = ("element", "unstructured", "block")
DISTRIBUTIONS = ("uniform", "erk")
RANKINGS = ("layer", "global")
WHO = "sparsity"


def default_config() -> dict[str, Any]:
  return dict(
      method="gradual",
      target=0.0,
      granularity="element",
      block_shape=(4, 4),
      distribution="uniform",
      ranking="layer",
      begin_step=-1,
      end_step=-1,
      frequency=100,
      include=(".*",),
      exclude=("stem", "head", "embed"),
  )


def schedule_steps(cfg, num_steps: int) -> tuple[int, int]:
  """(begin_step, end_step) with -1 resolved against `num_steps`."""
  begin = cfg["begin_step"] if cfg["begin_step"] >= 0 else num_steps // 10
  end = cfg["end_step"] if cfg["end_step"] >= 0 else (3 * num_steps) // 4
  return begin, end


def validate_config(section, num_steps: int) -> None:
  """ValueError naming the key and the fix."""
  cfg = config_access.with_defaults(section, default_config(), WHO)
  config_access.check_choice(cfg["method"], "method", METHODS, WHO)
  config_access.check_choice(
      cfg["granularity"], "granularity", GRANULARITIES, WHO
  )
  config_access.check_choice(
      cfg["distribution"], "distribution", DISTRIBUTIONS, WHO
  )
  config_access.check_choice(cfg["ranking"], "ranking", RANKINGS, WHO)
  target = cfg["target"]
  if isinstance(target, bool) or not isinstance(target, int | float):
    raise ValueError(f"sparsity.target must be a number, got {target!r}.")
  if not 0.0 <= target < 1.0:
    raise ValueError(f"sparsity.target must be in [0, 1), got {target!r}.")
  if cfg["method"] == "none":
    if target != 0.0:
      raise ValueError(
          f"sparsity.target={target!r} needs a pruning method, but "
          "sparsity.method='none'; set sparsity.method='gradual' (or "
          "'one_shot'), or target=0.0."
      )
    return
  if target == 0.0:
    return  # pruning off
  begin, end = schedule_steps(cfg, num_steps)
  if cfg["method"] == "gradual" and not 0 <= begin < end <= num_steps:
    raise ValueError(
        f"sparsity: need 0 <= begin_step ({begin}) < end_step ({end}) <= "
        f"train.num_steps ({num_steps}); -1 picks 10% / 75% of training."
    )
  if cfg["method"] == "one_shot" and not 0 <= begin < num_steps:
    raise ValueError(
        f"sparsity.begin_step={begin} must be in [0, {num_steps}) for "
        "one-shot pruning."
    )
  if not isinstance(cfg["frequency"], int) or cfg["frequency"] < 1:
    raise ValueError(
        f"sparsity.frequency must be an int >= 1, got {cfg['frequency']!r}."
    )
  shape = tuple(cfg["block_shape"])
  if cfg["granularity"] == "block" and (
      len(shape) != 2 or any(not isinstance(b, int) or b < 1 for b in shape)
  ):
    raise ValueError(
        f"sparsity.block_shape must be two ints >= 1, got {shape!r}."
    )
  if cfg["ranking"] == "global" and cfg["distribution"] != "uniform":
    raise ValueError(
        "sparsity.ranking='global' ranks all layers together; use "
        "distribution='uniform' with it."
    )


def is_enabled(section) -> bool:
  return section["method"] != "none" and section["target"] > 0


def schedule_fn(section, num_steps: int):
  """step -> overall target sparsity."""
  cfg = config_access.with_defaults(section, default_config(), WHO)
  begin, end = schedule_steps(cfg, num_steps)
  if cfg["method"] == "one_shot":
    return functools.partial(
        schedules.one_shot_sparsity, at_step=begin, sparsity=cfg["target"]
    )
  return functools.partial(
      schedules.polynomial_sparsity,
      begin_step=begin,
      end_step=end,
      frequency=cfg["frequency"],
      initial_sparsity=0.0,
      final_sparsity=cfg["target"],
  )


def wrap_optimizer(
    inner: optax.GradientTransformation,
    section,
    params_shapes,
    *,
    algebra,
    num_steps: int,
) -> optax.GradientTransformation:
  """`inner` with magnitude pruning of the selected 'w' leaves.

  Raises:
    ValueError: the include/exclude patterns select no weight.
  """
  cfg = config_access.with_defaults(section, default_config(), WHO)
  selected = masks.select(
      params_shapes,
      include=tuple(cfg["include"]),
      exclude=tuple(cfg["exclude"]),
  )
  if not any(v for leaves in selected.values() for v in leaves.values()):
    raise ValueError(
        f"sparsity: include={tuple(cfg['include'])} / exclude="
        f"{tuple(cfg['exclude'])} select no 'w' weight to prune; the model's "
        f"weights are {sorted(params_shapes)}."
    )
  return pruner.wrap(
      inner,
      selected=selected,
      schedule_fn=schedule_fn(section, num_steps),
      granularity=cfg["granularity"],
      algebra=algebra if cfg["granularity"] == "element" else None,
      block_shape=tuple(cfg["block_shape"]),
      distribution=cfg["distribution"],
      ranking=cfg["ranking"],
  )
