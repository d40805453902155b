"""Model registry: a model's Haiku constructor is its config schema.

A model section of a config is the keyword arguments of one Module class
(big_vision's `Model(**config.model)`): its `name` key selects the class
(and is the Haiku module name, so parameter paths start with it), every
other key is a constructor argument, and the constructor's defaults are the
section's defaults. There is no per-model default/validate/from-config code:

  models.defaults("transformer_xl")      # {'name': ..., 'algebra': 'M2R', ...}
  models.check(cfg.model)                # start-up: keys and values, no data
  def forward(tokens, is_training):      # inside hk.transform
    net = models.build(cfg.model, vocab_size=V, is_eval=not is_training)

Arguments that come from the data or the task rather than the config (the
vocabulary size, the number of classes, evaluation mode) are the model's
`runtime_args`. `check` runs before the data is loaded, so it passes None
for the runtime arguments without a default; a constructor skips the
checks that need them until `build` gives the real values.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Any

import haiku as hk

from algebranets import config_access


class ModelConfigError(ValueError):
  """A model section names an unknown key or a value the model rejects."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A registered model.

  Attributes:
    name: registry name: the config's `model.name` and the module name.
    module: the `hk.Module` subclass; its keyword arguments with defaults
      are the config keys.
    runtime_args: constructor arguments supplied by the task (data sizes,
      evaluation mode), never read from the config.
  """

  name: str
  module: type
  runtime_args: tuple[str, ...] = ()

  def defaults(self) -> dict[str, Any]:
    """The model section's keys and default values, `name` first."""
    out: dict[str, Any] = {"name": self.name}
    for p in _config_parameters(self):
      out[p.name] = p.default
    return out


_REGISTRY: dict[str, ModelSpec] = {}


def _config_parameters(spec: ModelSpec) -> list[inspect.Parameter]:
  sig = inspect.signature(spec.module.__init__)
  skip = {"self", "name", *spec.runtime_args}
  return [
      p
      for p in sig.parameters.values()
      if p.name not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
  ]


def register(spec: ModelSpec, *, overwrite: bool = False) -> ModelSpec:
  """Registers `spec` under `spec.name` and returns it.

  Raises:
    TypeError: `spec` is not a `ModelSpec`.
    ValueError: the name is taken (pass overwrite=True to replace it), a
      runtime argument is not a constructor argument, or a config argument
      has no default (the config could not be complete without it).
  """
  if not isinstance(spec, ModelSpec):
    raise TypeError(
        f"models.register: expected a ModelSpec, got {type(spec).__name__}."
    )
  if spec.name in _REGISTRY and not overwrite:
    raise ValueError(
        f"models.register: {spec.name!r} is already registered; pass "
        "overwrite=True to replace it."
    )
  params = inspect.signature(spec.module.__init__).parameters
  for arg in spec.runtime_args:
    if arg not in params:
      raise ValueError(
          f"models.register: runtime argument {arg!r} is not an argument of "
          f"{spec.module.__name__}.__init__."
      )
  for p in _config_parameters(spec):
    if p.default is inspect.Parameter.empty:
      raise ValueError(
          f"models.register: {spec.module.__name__}.__init__ argument "
          f"{p.name!r} has no default; give it one (it is a config key) or "
          "list it in runtime_args."
      )
  _REGISTRY[spec.name] = spec
  return spec


def get(name: str) -> ModelSpec:
  """The `ModelSpec` registered as `name`.

  Raises:
    ValueError: unknown name; the message lists the valid names and the
      closest one.
  """
  if name in _REGISTRY:
    return _REGISTRY[name]
  hint = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
  did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
  raise ValueError(
      f"Unknown model {name!r}.{did_you_mean} Valid names: "
      f"{', '.join(_REGISTRY)}."
  )


def names() -> list[str]:
  """Registered model names, in registration order."""
  return list(_REGISTRY)


def defaults(name: str) -> dict[str, Any]:
  """The default model section of model `name` (a fresh dict)."""
  return get(name).defaults()


def kwargs(model_cfg: Any) -> tuple[ModelSpec, dict[str, Any]]:
  """(spec, constructor keyword arguments) of a model section.

  Missing keys take the constructor's defaults.

  Raises:
    ModelConfigError: no or an unknown `name`, or a key that is not an
      argument of the constructor (with "did you mean").
  """
  cfg = config_access.as_dict(model_cfg, "The model config")
  if "name" not in cfg:
    raise ModelConfigError(
        f"model config has no 'name'; set model.name to one of {names()}."
    )
  try:
    spec = get(cfg["name"])
  except ValueError as e:
    raise ModelConfigError(f"model.name: {e}") from None
  valid = spec.defaults()
  for key in cfg:
    if key not in valid:
      close = difflib.get_close_matches(key, list(valid), n=1)
      hint = f' Did you mean "{close[0]}"?' if close else ""
      raise ModelConfigError(
          f"Unknown config key 'model.{key}' for model {spec.name!r}.{hint} "
          f"Valid keys of model: {sorted(valid)}."
      )
  return spec, {**valid, **cfg}


def build(model_cfg: Any, **runtime: Any) -> hk.Module:
  """Constructs the model of a config section (inside an `hk.transform`).

  Args:
    model_cfg: the model section (ConfigDict or mapping).
    **runtime: the model's `runtime_args` (e.g. vocab_size=V).

  Raises:
    ModelConfigError: an unknown key, or a value the constructor rejects
      (its message says which and how to fix it).
  """
  spec, cfg = kwargs(model_cfg)
  unknown = sorted(set(runtime) - set(spec.runtime_args))
  if unknown:
    raise TypeError(
        f"models.build: {unknown} are not runtime arguments of "
        f"{spec.name!r} (runtime arguments: {list(spec.runtime_args)})."
    )
  try:
    return spec.module(**cfg, **runtime)
  except ModelConfigError:
    raise
  except (ValueError, TypeError) as e:
    raise ModelConfigError(f"config.model: {e}") from None


def check(model_cfg: Any, **runtime: Any) -> None:
  """Validates a model section by constructing the model once; no compute.

  Runtime arguments not given are None (checks that need them wait for
  `build`).

  Raises:
    ModelConfigError: see `build`.
  """
  spec, _ = kwargs(model_cfg)
  params = inspect.signature(spec.module.__init__).parameters
  for arg in spec.runtime_args:
    if arg not in runtime and params[arg].default is inspect.Parameter.empty:
      runtime[arg] = None
  hk.transform(lambda: build(model_cfg, **runtime)).init(None)


def constructed(model_cfg: Any, **runtime: Any) -> hk.Module:
  """The model object of a config, for its static attributes only.

  Built in a throwaway transform (no parameters); read derived sizes from it
  (e.g. `constructed(cfg.model, vocab_size=V).num_channels`), never call it.

  Raises:
    ModelConfigError: see `build`.
  """
  return hk.transform(lambda: build(model_cfg, **runtime)).apply({}, None)
