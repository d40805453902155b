"""Optimizer factory: config section -> optax transformation + LR schedule.

The `optimizer` config section (an `ml_collections.ConfigDict` or a plain
dict) holds only primitives; this module turns it into

    optax.chain(clip_by_global_norm?,          # grad_clip_norm > 0
                add_decayed_weights(mask)?,    # sgd/adam: L2, before scaling
                scale_by_{trace,adam},
                add_decayed_weights(mask)?,    # adamw: decoupled, after adam
                scale_by_learning_rate(schedule))

built only from optax's own transforms, and returns the schedule next to it so
the trainer can log `schedule(step)` (the chain's schedule counts updates from
0, like `TrainState.step`).

Weight decay is masked by parameter *path*: a leaf decays iff its name (the
last key of its path, e.g. 'w' in {'block_0/linear': {'w': ...}}) is in
`decay_param_names`. It is never decided by `ndim`: algebra biases `b [M, d]`
and norm scales `scale [C, d]` are 2-D like a real weight matrix.

Shapes: N, M = input/output algebra channels, C = channels, d = algebra dim,
V = vocabulary, K = head inputs.
"""

from __future__ import annotations

import difflib
import itertools
import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from algebranets import config_access

NAMES = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "step", "constant")

_DEFAULTS = dict(
    name="adamw",
    learning_rate=1e-3,
    schedule="cosine",
    warmup_steps=0,
    end_learning_rate_factor=0.0,
    decay_boundaries=(0.3, 0.6, 0.9),
    decay_factor=0.1,
    momentum=0.9,
    nesterov=True,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    decay_param_names=("w",),
    grad_clip_norm=0.0,
)


def default_config() -> dict[str, Any]:
  """The optimizer section with every key at its default (a fresh dict).

  Keys: `name` ('sgd' | 'adam' | 'adamw'), `learning_rate` (peak, reached at
  the end of warmup), `schedule` ('cosine' | 'step' | 'constant'),
  `warmup_steps` (linear from 0), `end_learning_rate_factor` (cosine end =
  factor * peak), `decay_boundaries` (step schedule: increasing fractions of
  `num_steps` in (0, 1)), `decay_factor` (step schedule multiplier),
  `momentum`/`nesterov` (sgd), `b1`/`b2`/`eps` (adam, adamw), `weight_decay`
  (adamw: decoupled and scaled by the LR; sgd, adam: L2 added to the
  gradient), `decay_param_names` (leaf names that decay), `grad_clip_norm`
  (> 0 clips by global norm first).
  """
  return dict(_DEFAULTS)


# -- config handling ----------------------------------------------------------


def _as_dict(opt_cfg: Any) -> dict[str, Any]:
  return config_access.as_dict(
      opt_cfg,
      "The optimizer config",
      "Start from optimizers.default_config().",
  )


def _resolve(opt_cfg: Any) -> dict[str, Any]:
  """Defaults overridden by `opt_cfg`; keys `opt_cfg` omits keep defaults."""
  cfg = default_config()
  cfg.update(_as_dict(opt_cfg))
  return cfg


def _did_you_mean(value: str, valid: Sequence[str]) -> str:
  # Case slips ('adamW', 'SGD') are the commonest typo; difflib ranks them
  # below shorter names ('adam'), so they are matched first.
  hint = [v for v in valid if v.lower() == value.lower()]
  hint = hint or difflib.get_close_matches(value, valid, n=1)
  return f" Did you mean {hint[0]!r}?" if hint else ""


def _is_number(x: Any) -> bool:
  return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _boundary_steps(
    fractions: Sequence[float], num_steps: int
) -> tuple[int, ...]:
  """Step schedule boundaries as steps: fraction * num_steps rounded half up.

  Half up rather than Python's round-half-to-even, so 0.25 of 10 steps is
  step 3 like 0.35 of 10 is step 4.
  """
  return tuple(math.floor(f * num_steps + 0.5) for f in fractions)


def validate_config(opt_cfg: Any, num_steps: int) -> None:
  """Checks an optimizer section before anything is built.

  Keys missing from `opt_cfg` take their `default_config()` value.

  Args:
    opt_cfg: the optimizer section (ConfigDict or dict).
    num_steps: total number of training steps (>= 1).

  Raises:
    ValueError: an unknown key, name or schedule (with "Did you mean"), or a
      value out of range; the message names the key, the value and the fix.
  """
  user = _as_dict(opt_cfg)
  unknown = sorted(set(user) - set(_DEFAULTS))
  if unknown:
    hints = "; ".join(
        f"{k!r}{_did_you_mean(str(k), list(_DEFAULTS))}" for k in unknown
    )
    raise ValueError(
        f"Unknown optimizer config key(s): {hints}. Valid keys: "
        f"{', '.join(_DEFAULTS)}."
    )
  cfg = _resolve(user)

  if (
      isinstance(num_steps, bool)
      or not isinstance(num_steps, numbers.Integral)
      or num_steps < 1
  ):
    raise ValueError(
        f"num_steps must be a positive integer, got {num_steps!r}; the "
        "schedule spans the whole run, so pass the total number of steps."
    )

  name = cfg["name"]
  if name not in NAMES:
    raise ValueError(
        f"Unknown optimizer.name {name!r}.{_did_you_mean(str(name), NAMES)} "
        f"Valid names: {', '.join(NAMES)}."
    )
  schedule = cfg["schedule"]
  if schedule not in SCHEDULES:
    raise ValueError(
        f"Unknown optimizer.schedule {schedule!r}."
        f"{_did_you_mean(str(schedule), SCHEDULES)} Valid schedules: "
        f"{', '.join(SCHEDULES)}."
    )

  for key in (
      "learning_rate",
      "warmup_steps",
      "end_learning_rate_factor",
      "decay_factor",
      "momentum",
      "b1",
      "b2",
      "eps",
      "weight_decay",
      "grad_clip_norm",
  ):
    if not _is_number(cfg[key]):
      raise ValueError(
          f"optimizer.{key} must be a number, got {cfg[key]!r} "
          f"({type(cfg[key]).__name__}); default: {_DEFAULTS[key]!r}."
      )

  lr = cfg["learning_rate"]
  if lr <= 0:
    raise ValueError(
        f"optimizer.learning_rate must be > 0 (it is the peak LR after "
        f"warmup), got {lr!r}. Use e.g. 1e-3 for adamw or 0.1 for sgd."
    )
  warmup = cfg["warmup_steps"]
  if warmup != int(warmup) or not 0 <= warmup < num_steps:
    raise ValueError(
        f"optimizer.warmup_steps must be an integer in [0, num_steps) = "
        f"[0, {num_steps}), got {warmup!r}; warmup must end before "
        "training does."
    )
  if cfg["end_learning_rate_factor"] < 0:
    raise ValueError(
        "optimizer.end_learning_rate_factor must be >= 0 (the cosine ends "
        "at factor * learning_rate), got "
        f"{cfg['end_learning_rate_factor']!r}."
    )

  if schedule == "step":
    _validate_step_schedule(cfg, num_steps)

  momentum = cfg["momentum"]
  if not 0 <= momentum < 1:
    raise ValueError(
        f"optimizer.momentum must be in [0, 1), got {momentum!r}; 0 means "
        "plain SGD."
    )
  if not isinstance(cfg["nesterov"], bool):
    raise ValueError(
        f"optimizer.nesterov must be True or False, got {cfg['nesterov']!r}."
    )
  if name == "sgd" and cfg["nesterov"] and momentum == 0:
    raise ValueError(
        "optimizer.nesterov=True needs momentum > 0, got momentum=0; set "
        "momentum (e.g. 0.9) or nesterov=False."
    )
  for key in ("b1", "b2"):
    if not 0 <= cfg[key] < 1:
      raise ValueError(
          f"optimizer.{key} must be in [0, 1), got {cfg[key]!r} (default "
          f"{_DEFAULTS[key]!r}); 1 would never forget the first gradient."
      )
  if cfg["eps"] < 0:
    raise ValueError(f"optimizer.eps must be >= 0, got {cfg['eps']!r}.")

  wd = cfg["weight_decay"]
  if wd < 0:
    raise ValueError(
        f"optimizer.weight_decay must be >= 0, got {wd!r}; use 0 to switch "
        "weight decay off."
    )
  names = cfg["decay_param_names"]
  if isinstance(names, str) or not isinstance(names, Sequence):
    raise ValueError(
        "optimizer.decay_param_names must be a tuple of parameter leaf "
        f"names, got {names!r}; write e.g. ('w',), not 'w'."
    )
  if wd > 0 and not names:
    raise ValueError(
        f"optimizer.weight_decay={wd!r} but decay_param_names is empty, so "
        "nothing would decay. Name the leaves to decay (e.g. ('w',) for "
        "Linear/Conv weights) or set weight_decay=0."
    )
  if cfg["grad_clip_norm"] < 0:
    raise ValueError(
        f"optimizer.grad_clip_norm must be >= 0, got "
        f"{cfg['grad_clip_norm']!r}; use 0 to switch clipping off."
    )


def _validate_step_schedule(cfg: dict[str, Any], num_steps: int) -> None:
  fractions = cfg["decay_boundaries"]
  if (
      isinstance(fractions, str)
      or not isinstance(fractions, Sequence)
      or not fractions
      or not all(_is_number(f) for f in fractions)
      or not all(0 < f < 1 for f in fractions)
      or any(a >= b for a, b in itertools.pairwise(fractions))
  ):
    raise ValueError(
        "optimizer.decay_boundaries must be a non-empty, strictly "
        "increasing tuple of fractions of num_steps in (0, 1), got "
        f"{fractions!r}; e.g. (0.3, 0.6, 0.9)."
    )
  steps = _boundary_steps(fractions, num_steps)
  # Rounding to steps can merge boundaries (few steps) or move one into the
  # warmup, where it would silently scale the peak the warmup is aiming at.
  if steps[0] <= cfg["warmup_steps"] or any(
      a >= b for a, b in itertools.pairwise(steps)
  ):
    raise ValueError(
        f"optimizer.decay_boundaries {tuple(fractions)!r} with num_steps="
        f"{num_steps} fall at steps {steps}; they must be distinct and after "
        f"warmup_steps={cfg['warmup_steps']}. Move the fractions apart or "
        "later, or train for more steps."
    )
  if cfg["decay_factor"] <= 0:
    raise ValueError(
        "optimizer.decay_factor must be > 0 (the LR is multiplied by it at "
        f"each boundary), got {cfg['decay_factor']!r}."
    )


# -- schedule, mask, optimizer ------------------------------------------------


def make_schedule(opt_cfg: Any, num_steps: int) -> optax.Schedule:
  """The learning-rate schedule: linear warmup from 0, then the named decay.

  With peak `lr`, warmup `W` and `T = num_steps`:
  - step s < W: `lr * s / W`; s = W: `lr`;
  - 'cosine': `lr * (f + (1 - f) * (1 + cos(pi * (s - W) / (T - W))) / 2)`
    with `f = end_learning_rate_factor`, constant `f * lr` from s = T on;
  - 'step': `lr * decay_factor ** k`, k = number of boundaries
    `fraction * T` (rounded half up) that are <= s;
  - 'constant': `lr`.

  Args:
    opt_cfg: the optimizer section (ConfigDict or dict).
    num_steps: total number of training steps.

  Returns:
    `schedule(step) -> float32 scalar`, jittable, step an int scalar.

  Raises:
    ValueError: see `validate_config`.
  """
  validate_config(opt_cfg, num_steps)
  cfg = _resolve(opt_cfg)
  lr = float(cfg["learning_rate"])
  warmup = int(cfg["warmup_steps"])
  if cfg["schedule"] == "cosine":
    main = optax.cosine_decay_schedule(
        lr,
        decay_steps=num_steps - warmup,
        alpha=float(cfg["end_learning_rate_factor"]),
    )
  elif cfg["schedule"] == "step":
    steps = _boundary_steps(cfg["decay_boundaries"], num_steps)
    # join_schedules hands the second schedule `step - warmup`.
    main = optax.piecewise_constant_schedule(
        lr, {b - warmup: float(cfg["decay_factor"]) for b in steps}
    )
  else:
    main = optax.constant_schedule(lr)
  if warmup > 0:
    main = optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warmup), main], [warmup]
    )

  # optax's constant schedule returns a Python float; one dtype for every
  # schedule keeps logged metrics and jitted callers uniform.
  def schedule(step: jax.typing.ArrayLike) -> jax.Array:
    return jnp.asarray(main(step), jnp.float32)

  return schedule


def _leaf_name(path: jax.tree_util.KeyPath) -> str:
  """Name of a leaf from its key path: the last dict key / attribute."""
  if not path:
    return ""
  last = path[-1]
  if isinstance(last, jax.tree_util.DictKey):
    return str(last.key)
  if isinstance(last, jax.tree_util.GetAttrKey):
    return last.name
  if isinstance(last, jax.tree_util.SequenceKey):
    return str(last.idx)
  return str(last)


def weight_decay_mask(params: Any, decay_param_names: Sequence[str]) -> Any:
  """Which leaves weight decay touches, decided by leaf name, never `ndim`.

  Args:
    params: a parameter (or update) tree, e.g. Haiku's
      `{module_path: {leaf_name: array}}`; arrays of any shape.
    decay_param_names: leaf names that decay, e.g. ('w',).

  Returns:
    A tree of Python bools with the structure of `params`: True where the
    leaf's name (the last key of its path) is in `decay_param_names`.

  Raises:
    ValueError: `decay_param_names` is a bare string.
  """
  if isinstance(decay_param_names, str):
    raise ValueError(
        "decay_param_names must be a tuple of leaf names, got the string "
        f"{decay_param_names!r}; write ({decay_param_names!r},)."
    )
  names = frozenset(decay_param_names)
  return jax.tree_util.tree_map_with_path(
      lambda path, _: _leaf_name(path) in names, params
  )


def make_optimizer(
    opt_cfg: Any, num_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Builds the optimizer chain and its LR schedule from the config section.

  Args:
    opt_cfg: the optimizer section (ConfigDict or dict); see
      `default_config()` for the keys. Missing keys take their defaults.
    num_steps: total number of training steps (the schedule's length).

  Returns:
    `(tx, schedule)`: `tx` a `GradientTransformation` whose `update` needs
    `params` (for weight decay) and works under `jax.jit`; `schedule(step)`
    is the LR that `tx` applies at its `step`-th update (counted from 0),
    for logging.

  Raises:
    ValueError: see `validate_config`.
  """
  validate_config(opt_cfg, num_steps)
  cfg = _resolve(opt_cfg)
  schedule = make_schedule(cfg, num_steps)
  wd = float(cfg["weight_decay"])
  names = tuple(cfg["decay_param_names"])

  def mask(tree: Any) -> Any:
    return weight_decay_mask(tree, names)

  def decay() -> list[optax.GradientTransformation]:
    return [optax.add_decayed_weights(wd, mask)] if wd > 0 else []

  clip = cfg["grad_clip_norm"]
  parts = [optax.clip_by_global_norm(float(clip))] if clip > 0 else []
  if cfg["name"] == "sgd":
    parts += decay()  # L2: the decay term goes through the momentum.
    if cfg["momentum"] > 0:
      parts.append(
          optax.trace(float(cfg["momentum"]), nesterov=cfg["nesterov"])
      )
  else:
    adam = optax.scale_by_adam(
        float(cfg["b1"]), float(cfg["b2"]), float(cfg["eps"])
    )
    if cfg["name"] == "adam":
      parts += [*decay(), adam]  # L2: decay is normalised by Adam too.
    else:
      parts += [adam, *decay()]  # Decoupled (Loshchilov & Hutter).
  parts.append(optax.scale_by_learning_rate(schedule))
  return optax.chain(*parts), schedule


__all__ = [
    "NAMES",
    "SCHEDULES",
    "default_config",
    "make_optimizer",
    "make_schedule",
    "validate_config",
    "weight_decay_mask",
]
