"""The vision half of the model benchmark: ResNet and MobileNet configs at
matched widths, their training step (the trainer's loss and optimizer on any
batch) and one timed `Variant` per algebra (`bench/models.py` has the
method)."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp

from algebranets import algebras, metrics, models
from algebranets.models import width_matching
from algebranets.tasks import image_classification
from algebranets.training import (
    optimizers,
    steps,
)
from algebranets.training.experiment import is_real_io
from algebranets.training.state import TrainState
from bench.models_common import (
    MATCH,
    VISION_CONFIGS,
    Variant,
    apply_overrides,
    compile_step,
    run_once,
    validate_model,
)

NUM_CLASSES = 1000  # ImageNet-1k


def _vision_module(model: str):
  return importlib.import_module(VISION_CONFIGS[model])


def vision_config(
    model: str,
    algebra: str,
    *,
    width_multiplier: float,
    image_size: int,
    batch: int,
    overrides: Sequence[tuple[str, str, Any]] = (),
):
  """The ImageNet config of `model` at `width_multiplier` and CPU sizes.

  Args:
    model: 'resnet' or 'mobilenet'.
    algebra: a registered algebra name.
    width_multiplier: the model's width multiplier (already matched/scaled).
    image_size: S of the [B, S, S, 3] input images.
    batch: B.
    overrides: (model, key, value) triples set on the model section (after
      `width_multiplier`, so an override of it wins).

  Returns:
    The config (model, optimizer, data.label_smoothing as the ImageNet
    recipe; data.image_size = S, train.batch_size = B).

  Raises:
    ValueError: an invalid model section (e.g. a bad override).
  """
  config = _vision_module(model).get_config(f"algebra={algebra},match=none")
  config.model.width_multiplier = float(width_multiplier)
  apply_overrides(config.model, model, overrides)
  validate_model(config.model, overrides)
  config.data.image_size = image_size
  config.train.batch_size = batch
  return config


def _stored_width(model: str, algebra: str, match: str) -> float | None:
  """The multiplier of configs/_vision_widths.py, None if not stored.

  Read from the table itself: the config would measure a missing width at
  start-up, and the benchmark wants to say where its width came from.
  """
  if match == "none":
    return 1.0
  try:
    from configs import _vision_widths
  except ImportError:
    return None
  key = _vision_module(model).MODEL_KEY
  width = _vision_widths.MATCHED.get(key, {}).get(match, {}).get(algebra)
  return None if width is None else float(width)


def vision_width(
    model: str,
    algebra: str,
    match: str,
    overrides: Sequence[tuple[str, str, Any]] = (),
) -> tuple[float, str]:
  """The width multiplier matching the real model, and where it came from.

  Args:
    model: 'resnet' or 'mobilenet'.
    algebra: a registered algebra name.
    match: one of MATCH ('none' = width 1).
    overrides: model-section overrides; any for `model` change the
      architecture, so the stored multipliers no longer apply and the match
      is computed on the overridden architecture.

  Returns:
    (width_multiplier, source): source says 'stored', 'computed ...' (by
    `width_matching.match_width` at 224x224 against the algebra-R model of
    the same architecture, with the relative error reached) or why it is 1.

  Raises:
    ValueError: unknown match; invalid model section.
  """
  if match not in MATCH:
    raise ValueError(f"match={match!r}; use one of {list(MATCH)}.")
  if match == "none":
    return 1.0, "match=none"
  alg = algebras.get(algebra)
  if alg.name == "R":
    return 1.0, "reference (R)"
  changed = any(m == model for m, _, _ in overrides)
  if not changed:
    stored = _stored_width(model, alg.name, match)
    if stored is not None:
      return stored, "stored (configs/_vision_widths.py)"

  def section(name: str):
    cfg = _vision_module(model).get_config(f"algebra={name},match=none").model
    apply_overrides(cfg, model, overrides)
    validate_model(cfg, overrides)
    return cfg

  reference = width_matching.vision_counter(section("R"))(1.0)
  counter = width_matching.vision_counter(section(alg.name))
  # Params shrink ~d times at width 1 and MACs ~d/density times (as in
  # scripts/match_width.py): start near the answer.
  start = math.sqrt(alg.dim / alg.density if match == "macs" else alg.dim)
  result = width_matching.match_width(
      counter, match, reference=reference, start=start
  )
  why = "overridden architecture" if changed else "not stored"
  return result.width_multiplier, (
      f"computed ({why}; {match} {result.relative_error:+.2%} vs R)"
  )


def vision_train_fns(
    config, num_classes: int = NUM_CLASSES
) -> tuple[Callable[..., TrainState], Callable[..., Any]]:
  """The trainer's init and train step for a vision config, on any batch.

  The loss is the image_classification task's
  (`image_classification.classification_loss`: softmax cross entropy on
  float32 logits, smoothed by `data.label_smoothing` in training); init and
  step are the trainer's own (`training.steps.make_init`,
  `make_train_step`) with the optimizer of `optimizers.make_optimizer` and
  no pruning, so the benchmark times exactly what `Experiment` runs.

  Args:
    config: a vision config (`vision_config`).
    num_classes: K of the model's head.

  Returns:
    (init, train_step), both jitted: init(key, batch) -> TrainState;
    train_step(state, batch) -> (state, metrics), state donated. batch:
    'images' float32 [B, S, S, 3], 'labels' int32 [B] in [0, K).
  """
  model_cfg = config.model
  smoothing = float(config.data.label_smoothing)

  def model_fn(batch, is_training):
    net = models.build(model_cfg, num_classes=num_classes)
    logits = net(batch["images"], is_training=is_training)
    return image_classification.classification_loss(
        logits,
        batch["labels"],
        batch.get("weights"),
        label_smoothing=smoothing if is_training else 0.0,
    )

  model = hk.transform_with_state(model_fn)
  optimizer, schedule = optimizers.make_optimizer(
      config.optimizer, config.train.num_steps
  )
  compute_dtype = {"float32": None, "bfloat16": jnp.bfloat16}[
      config.train.compute_dtype
  ]
  train_step = steps.make_train_step(
      model,
      optimizer,
      schedule,
      compute_dtype=compute_dtype,
      input_keys=image_classification.ImageClassificationTask.input_keys,
  )
  init = steps.make_init(model, optimizer)
  return jax.jit(init), jax.jit(train_step, donate_argnums=0)


def random_image_batch(
    key: jax.Array, batch: int, image_size: int
) -> dict[str, jax.Array]:
  """{'images': normal float32 [B, S, S, 3], 'labels': int32 [B] in
  [0, 1000)}, made on the default device."""
  k1, k2 = jax.random.split(key)
  return {
      "images": jax.random.normal(
          k1, (batch, image_size, image_size, 3), jnp.float32
      ),
      "labels": jax.random.randint(k2, (batch,), 0, NUM_CLASSES, jnp.int32),
  }


def build_vision_variant(
    model: str,
    algebra: str,
    *,
    match: str,
    width_scale: float,
    image_size: int,
    batch: int,
    compute_dtype: str = "float32",
    overrides: Sequence[tuple[str, str, Any]] = (),
    seed: int = 0,
) -> Variant:
  """Builds, initialises and compiles one vision model's training step.

  Args:
    model: 'resnet' or 'mobilenet'.
    algebra: a registered algebra name.
    match: width matching (MATCH), see `vision_width`.
    width_scale: multiplies the matched width.
    image_size: S of the random [B, S, S, 3] images.
    batch: B.
    compute_dtype: 'float32' or 'bfloat16'.
    overrides: (model, key, value) model-section overrides.
    seed: parameter and data seed.

  Returns:
    A `Variant` whose row holds model, algebra, d, width_multiplier,
    matched_width, width_source, params (all real parameters),
    params_real_io (real stem and head), macs_per_example (intrinsic, at S),
    batch, image_size, unit 'images', items_per_step = B and compile_s.
  """
  matched, source = vision_width(model, algebra, match, overrides)
  width = matched * width_scale
  config = vision_config(
      model,
      algebra,
      width_multiplier=width,
      image_size=image_size,
      batch=batch,
      overrides=overrides,
  )
  config.train.compute_dtype = compute_dtype
  width = float(config.model.width_multiplier)  # an override may set it
  init, step = vision_train_fns(config)
  key = jax.random.key(seed)
  data = random_image_batch(jax.random.fold_in(key, 1), batch, image_size)
  state = run_once(init, key, data)
  compiled, compile_s = compile_step(step, state, data)

  def forward(images):
    net = models.build(config.model, num_classes=NUM_CLASSES)
    return net(images, is_training=True)

  macs = metrics.count_macs(
      forward, jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  ).total
  alg = algebras.get(algebra)
  row = {
      "model": model,
      "algebra": alg.name,
      "d": alg.dim,
      "width_multiplier": width,
      "matched_width": matched,
      "width_source": source,
      "params": metrics.count_params(state.params),
      "params_real_io": sum(
          metrics.count_params(leaves)
          for path, leaves in state.params.items()
          if is_real_io(path)
      ),
      "macs_per_example": int(macs),
      "batch": batch,
      "image_size": image_size,
      "unit": "images",
      "items_per_step": batch,
      "compile_s": compile_s,
  }
  return Variant(row, compiled, data, state)
