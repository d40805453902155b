"""The library's models, registered by name; a model's constructor is its
config schema (`algebranets.models.registry`).

  models.defaults("resnet")                 # the model section's defaults
  models.check(cfg.model)                   # start-up validation, no data
  net = models.build(cfg.model, num_classes=K)   # inside hk.transform

Registered (name: Module, runtime arguments from the task):
  transformer_lm: `transformer_lm.TransformerLM` (vocab_size, max_len);
    model(tokens [B, T], is_training) -> logits [B, T, V].
  transformer_xl: `transformer_xl.TransformerXL` (vocab_size, is_eval);
    model(tokens, targets, mems, is_training) -> (nll [B, T], new_mems).
  resnet, mobilenet, convac: `resnet.ResNet`, `mobilenet.MobileNet`,
    `convac.ConvAC` (num_classes); model(images [B, H, W, c], is_training)
    -> logits [B, K].
  two_layer: `two_layer.TwoLayer` (input_dim, coeffs), the teacher-student
    student; model(x [B, d], is_training) -> predictions [B].

Add a model: write the hk.Module (every config key a keyword argument with
its default, every check in the constructor) and `register(ModelSpec(name,
Module, runtime_args=(...)))`; see docs/architecture.md.
"""

from __future__ import annotations

from algebranets.models import (
    convac,
    mobilenet,
    resnet,
    transformer_lm,
    transformer_xl,
    two_layer,
)
from algebranets.models.registry import (
    ModelConfigError,
    ModelSpec,
    build,
    check,
    constructed,
    defaults,
    get,
    kwargs,
    names,
    register,
)

register(
    ModelSpec(
        transformer_lm.NAME,
        transformer_lm.TransformerLM,
        runtime_args=("vocab_size", "max_len"),
    )
)
register(
    ModelSpec(
        transformer_xl.NAME,
        transformer_xl.TransformerXL,
        runtime_args=("vocab_size", "is_eval"),
    )
)
register(ModelSpec(resnet.NAME, resnet.ResNet, runtime_args=("num_classes",)))
register(
    ModelSpec(
        mobilenet.NAME, mobilenet.MobileNet, runtime_args=("num_classes",)
    )
)
register(ModelSpec(convac.NAME, convac.ConvAC, runtime_args=("num_classes",)))
register(
    ModelSpec(
        two_layer.NAME,
        two_layer.TwoLayer,
        runtime_args=("input_dim", "coeffs"),
    )
)

__all__ = [
    "ModelConfigError",
    "ModelSpec",
    "build",
    "check",
    "constructed",
    "convac",
    "defaults",
    "get",
    "kwargs",
    "mobilenet",
    "names",
    "register",
    "resnet",
    "transformer_lm",
    "transformer_xl",
    "two_layer",
]
