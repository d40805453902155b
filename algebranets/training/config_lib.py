"""Experiment configs: the common schema, arg parsing and start-up validation.

A config is an `ml_collections.ConfigDict` with the sections

  seed       int, the one seed of a run (init, dropout, data order)
  task       name in `algebranets.tasks` (what is learned and how it is scored)
  data       task-specific (`tasks.get(task).data_defaults()`)
  model      the keyword arguments of the model's constructor
             (`models.defaults(model.name)`; `algebranets.models.registry`)
  optimizer  `training.optimizers.default_config()`
  sparsity   `sparsity_defaults()`
  train      `train_defaults()`
  eval       `eval_defaults()`

and holds only primitives (str, int, float, bool, tuples of them). Config
files in `configs/` start from `base_config(task, model)` and override
fields; `validate` runs before anything is compiled and turns every
inconsistency into a `ConfigError` that says what to change.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import pathlib
from collections.abc import Mapping
from typing import Any

import ml_collections

from algebranets import models, tasks
from algebranets.sparsity import from_config as sparsity_config
from algebranets.training import optimizers

SECTIONS = (
    "data",
    "model",
    "optimizer",
    "sparsity",
    "train",
    "eval",
)
TOP_LEVEL = ("seed", "task", *SECTIONS)
COMPUTE_DTYPES = ("float32", "bfloat16")


class ConfigError(ValueError):
  """A config value is missing, unknown or inconsistent."""


def train_defaults() -> dict[str, Any]:
  return dict(
      batch_size=32,  # global, over all devices and processes
      num_steps=1000,
      log_every=50,
      checkpoint_every=500,
      keep_checkpoints=3,
      init_from="",  # a workdir or checkpoint dir whose params start the run
      compute_dtype="float32",  # 'bfloat16': bf16 compute, f32 params/opt
      num_devices=0,  # 0: every device; n: the first n (data parallel)
      profile_start_step=-1,  # >= 0: jax.profiler trace from this step
      profile_num_steps=5,
  )


def eval_defaults() -> dict[str, Any]:
  return dict(
      every_steps=500,  # 0: only the final evaluation
      num_batches=0,  # per periodic eval; 0 = the whole split
      batch_size=32,
      split="valid",
  )


def sparsity_defaults() -> dict[str, Any]:
  return sparsity_config.default_config()


def base_config(task: str, model: str) -> ml_collections.ConfigDict:
  """The full default config of `task` trained with model `model`."""
  task_spec = tasks.get(task)
  return ml_collections.ConfigDict(
      dict(
          seed=0,
          task=task,
          data=task_spec.data_defaults(),
          model=models.defaults(model),
          optimizer=optimizers.default_config(),
          sparsity=sparsity_defaults(),
          train=train_defaults(),
          eval=eval_defaults(),
      )
  )


_TRUE = ("1", "true", "yes", "y", "on")
_FALSE = ("0", "false", "no", "n", "off")


def _cast(key: str, text: str, default: Any) -> Any:
  if isinstance(default, bool):
    low = text.lower()
    if low in _TRUE:
      return True
    if low in _FALSE:
      return False
    raise ConfigError(
        f"Config arg {key}={text!r}: expected a boolean (true/false)."
    )
  try:
    return type(default)(text)
  except (TypeError, ValueError):
    raise ConfigError(
        f"Config arg {key}={text!r}: expected {type(default).__name__} "
        f"(default {default!r})."
    ) from None


def suggest(key: str, valid) -> str:
  """' Did you mean "x"?' for a close match of `key` in `valid`, else ''."""
  close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
  return f' Did you mean "{close[0]}"?' if close else ""


def parse_arg(arg: str | None, **spec: Any) -> ml_collections.ConfigDict:
  """Parses a config-file arg such as ``"algebra=H,runlocal"``.

  Args:
    arg: the text after ``configs/X.py:`` (None or '' for none).
    **spec: every accepted key with its default; the default's type types the
      value. A bare key (``runlocal``) sets a boolean to True.

  Returns:
    A ConfigDict with every key of `spec`.

  Raises:
    ConfigError: unknown key ("Did you mean") or a value of the wrong type.
  """
  out = ml_collections.ConfigDict(dict(spec))
  for token in (arg or "").split(","):
    token = token.strip()
    if not token:
      continue
    key, has_value, text = token.partition("=")
    key = key.strip()
    if key not in spec:
      raise ConfigError(
          f"Unknown config arg {key!r}; valid args: {sorted(spec)}."
          + suggest(key, spec)
      )
    if not has_value:
      if not isinstance(spec[key], bool):
        raise ConfigError(
            f"Config arg {key!r} needs a value, e.g. {key}={spec[key]!r}."
        )
      out[key] = True
    else:
      out[key] = _cast(key, text.strip(), spec[key])
  return out


def _is_section(section: Any) -> bool:
  # ConfigDict is not a collections.abc.Mapping.
  return isinstance(section, Mapping | ml_collections.ConfigDict)


def _keys(section: Any) -> list[str]:
  return list(section.keys()) if _is_section(section) else []


def _check_keys(section: Any, defaults: Mapping[str, Any], where: str) -> None:
  if not _is_section(section):
    raise ConfigError(
        f"Config section {where!r} must be a ConfigDict, got "
        f"{type(section).__name__}."
    )
  keys = _keys(section)
  unknown = [k for k in keys if k not in defaults]
  if unknown:
    k = unknown[0]
    raise ConfigError(
        f"Unknown config key '{where}.{k}'."
        + suggest(k, defaults)
        + f" Valid keys of {where}: {sorted(defaults)}."
    )
  missing = [k for k in defaults if k not in keys]
  if missing:
    raise ConfigError(
        f"Key '{where}.{missing[0]}' missing from config (missing: "
        f"{missing}); start the config from "
        "algebranets.training.config_lib.base_config(task, model), as "
        "configs/quickstart.py does."
    )


def _positive(value: Any, where: str, allow_zero: bool = False) -> None:
  ok = isinstance(value, int) and not isinstance(value, bool)
  ok = ok and (value >= 0 if allow_zero else value > 0)
  if not ok:
    bound = ">= 0" if allow_zero else ">= 1"
    raise ConfigError(f"{where} must be an integer {bound}, got {value!r}.")


def validate(
    config: ml_collections.ConfigDict,
    *,
    num_devices: int,
    process_count: int = 1,
    check_data: bool = True,
) -> None:
  """Checks a config before anything is built or compiled.

  Args:
    config: the full experiment config.
    num_devices: devices the run will use (after `train.num_devices`).
    process_count: JAX processes (hosts).
    check_data: also check that the data files exist (eval on a machine
      without the training data sets it False only for `data` of splits it
      does not read).

  Raises:
    ConfigError: with the offending key, its value and what to change.
  """
  keys = _keys(config)
  for k in keys:
    if k not in TOP_LEVEL:
      raise ConfigError(
          f"Unknown top-level config key {k!r}."
          + suggest(k, TOP_LEVEL)
          + f" Valid: {list(TOP_LEVEL)}."
      )
  for k in TOP_LEVEL:
    if k not in keys:
      raise ConfigError(
          f"Key {k!r} missing from config; start the config from "
          "algebranets.training.config_lib.base_config(task, model)."
      )
  try:
    task_spec = tasks.get(config.task)
  except ValueError as e:
    raise ConfigError(f"config.task: {e}") from None
  if not _is_section(config.model):
    raise ConfigError("config.model must be a ConfigDict with a 'name'.")
  try:
    model_defaults = models.defaults(config.model.get("name", ""))
  except ValueError as e:
    raise ConfigError(f"config.model.name: {e}") from None

  _check_keys(config.data, task_spec.data_defaults(), "data")
  _check_keys(config.model, model_defaults, "model")
  _check_keys(config.optimizer, optimizers.default_config(), "optimizer")
  _check_keys(config.sparsity, sparsity_defaults(), "sparsity")
  _check_keys(config.train, train_defaults(), "train")
  _check_keys(config.eval, eval_defaults(), "eval")

  if not isinstance(config.seed, int) or isinstance(config.seed, bool):
    raise ConfigError(f"config.seed must be an int, got {config.seed!r}.")
  tr, ev = config.train, config.eval
  for k in ("batch_size", "num_steps", "log_every", "checkpoint_every"):
    _positive(tr[k], f"train.{k}")
  _positive(tr.keep_checkpoints, "train.keep_checkpoints")
  _positive(tr.num_devices, "train.num_devices", allow_zero=True)
  _positive(tr.profile_num_steps, "train.profile_num_steps")
  _positive(ev.every_steps, "eval.every_steps", allow_zero=True)
  _positive(ev.num_batches, "eval.num_batches", allow_zero=True)
  _positive(ev.batch_size, "eval.batch_size")
  if tr.compute_dtype not in COMPUTE_DTYPES:
    raise ConfigError(
        f"train.compute_dtype={tr.compute_dtype!r}; use one of "
        f"{list(COMPUTE_DTYPES)}."
        + suggest(str(tr.compute_dtype), COMPUTE_DTYPES)
    )
  for what, batch in (
      ("train.batch_size", tr.batch_size),
      ("eval.batch_size", ev.batch_size),
  ):
    if batch % num_devices:
      raise ConfigError(
          f"{what} ({batch}) must be divisible by the number of devices "
          f"({num_devices}); use a multiple of {num_devices}, e.g. "
          f"{-(-batch // num_devices) * num_devices}, or set "
          "train.num_devices."
      )
    if batch % process_count:
      raise ConfigError(
          f"{what} ({batch}) must be divisible by the number of processes "
          f"({process_count})."
      )
  if tr.init_from and not pathlib.Path(tr.init_from).exists():
    raise ConfigError(
        f"train.init_from={tr.init_from!r} does not exist; give the workdir "
        "(or its checkpoints/ directory) of an earlier run, or '' to start "
        "from scratch."
    )
  try:
    sparsity_config.validate_config(config.sparsity, tr.num_steps)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  try:
    # The constructor is the schema: building the model once (no data, no
    # compute) runs every check of its arguments.
    models.check(config.model)
  except models.ModelConfigError as e:
    raise ConfigError(str(e)) from None
  try:
    optimizers.validate_config(config.optimizer, tr.num_steps)
  except ValueError as e:
    raise ConfigError(f"config.optimizer: {e}") from None
  try:
    task_spec.validate_config(config, check_data=check_data)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def to_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json_best_effort(indent=2, sort_keys=True)


def _tuplify(obj: Any) -> Any:
  # JSON has no tuples; configs only hold tuples (hashable, like the files).
  if isinstance(obj, dict):
    return {k: _tuplify(v) for k, v in obj.items()}
  if isinstance(obj, list):
    return tuple(_tuplify(v) for v in obj)
  return obj


def from_json(text: str) -> ml_collections.ConfigDict:
  """Inverse of `to_json` (lists become tuples again)."""
  return ml_collections.ConfigDict(_tuplify(json.loads(text)))


def load_config_file(path: str | pathlib.Path):
  """Imports a config file (`configs/X.py`) as a module, like config_flags.

  Raises:
    FileNotFoundError: no such file.
  """
  file = pathlib.Path(path)
  if not file.is_file():
    raise FileNotFoundError(f"Config file {str(path)!r} not found.")
  spec = importlib.util.spec_from_file_location(f"_config_{file.stem}", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
