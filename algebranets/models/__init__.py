"""Model registry: config-driven builders of the library's models.

A model is registered under a name with a `ModelSpec`: its config defaults,
a validator and a builder. Training code selects a model by the `name` key
of the config's model section:

  spec = models.get(cfg.model.name)
  spec.validate_config(cfg.model)          # actionable ValueErrors, early
  def forward(tokens, is_training):
    model = spec.from_config(cfg.model, vocab_size=256, max_len=512)
    return model(tokens, is_training=is_training)

Registered: 'transformer_lm' (`algebranets.models.transformer_lm`),
'transformer_xl' (`algebranets.models.transformer_xl`), 'resnet'
(`algebranets.models.resnet`), 'mobilenet' (`algebranets.models.mobilenet`),
'two_layer' (`algebranets.models.two_layer`, the teacher-student student:
from_config(model_cfg, input_dim=d, coeffs=...), module(x [B, d],
is_training) -> predictions [B]).
Vision models are built as from_config(model_cfg, num_classes=K) and called
as model(images [B, H, W, c], is_training) -> logits [B, K]; so is 'convac'
(`algebranets.models.convac`: ConvACs in log space and matching ConvNets).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """How to configure and build one model.

  Attributes:
    name: registry name (also the config's model.name).
    default_config: () -> dict of the model section's default values.
    validate_config: (model_cfg) -> None; raises ValueError on bad values.
    from_config: (model_cfg, **model-specific keywords) -> hk.Module; call
      inside hk.transform.
    channels_for: (model_cfg) -> int, the algebra channels C of the model's
      activations (d_model * width_multiplier / algebra dim); tasks that
      keep activations as state (recurrent memories) size it with this.
  """

  name: str
  default_config: Callable[[], dict[str, Any]]
  validate_config: Callable[[Any], None]
  from_config: Callable[..., Any]
  channels_for: Callable[[Any], int] | None = None


_REGISTRY: dict[str, ModelSpec] = {}


def register(
    name: str, spec: ModelSpec, *, overwrite: bool = False
) -> ModelSpec:
  """Registers `spec` under `name` and returns it.

  Raises:
    ValueError: `name` is already registered (pass overwrite=True to replace
      it), or `spec.name` differs from `name`.
    TypeError: `spec` is not a `ModelSpec`.
  """
  if not isinstance(spec, ModelSpec):
    raise TypeError(
        f"models.register: spec must be a ModelSpec, got {type(spec).__name__}."
    )
  if spec.name != name:
    raise ValueError(
        f"models.register: spec.name {spec.name!r} differs from the name "
        f"{name!r} it is registered under; make them equal."
    )
  if name in _REGISTRY and not overwrite:
    raise ValueError(
        f"models.register: {name!r} is already registered; pass "
        "overwrite=True to replace it."
    )
  _REGISTRY[name] = spec
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


# Imported after the registry exists so model modules may use it.
from algebranets.models import (  # noqa: E402
    convac,
    mobilenet,
    resnet,
    transformer_lm,
    transformer_xl,
    two_layer,
)

register(
    transformer_lm.NAME,
    ModelSpec(
        name=transformer_lm.NAME,
        default_config=transformer_lm.default_config,
        validate_config=transformer_lm.validate_config,
        from_config=transformer_lm.from_config,
        channels_for=transformer_lm.channels_for,
    ),
)

register(
    transformer_xl.NAME,
    ModelSpec(
        name=transformer_xl.NAME,
        default_config=transformer_xl.default_config,
        validate_config=transformer_xl.validate_config,
        from_config=transformer_xl.from_config,
        channels_for=transformer_xl.channels_for,
    ),
)

register(
    resnet.NAME,
    ModelSpec(
        name=resnet.NAME,
        default_config=resnet.default_config,
        validate_config=resnet.validate_config,
        from_config=resnet.from_config,
    ),
)

register(
    mobilenet.NAME,
    ModelSpec(
        name=mobilenet.NAME,
        default_config=mobilenet.default_config,
        validate_config=mobilenet.validate_config,
        from_config=mobilenet.from_config,
    ),
)

register(
    convac.NAME,
    ModelSpec(
        name=convac.NAME,
        default_config=convac.default_config,
        validate_config=convac.validate_config,
        from_config=convac.from_config,
    ),
)

register(
    two_layer.NAME,
    ModelSpec(
        name=two_layer.NAME,
        default_config=two_layer.default_config,
        validate_config=two_layer.validate_config,
        from_config=two_layer.from_config,
    ),
)

__all__ = [
    "ModelSpec",
    "convac",
    "get",
    "mobilenet",
    "names",
    "register",
    "resnet",
    "transformer_lm",
    "transformer_xl",
    "two_layer",
]
