"""One run's assembled pieces: task, model, optimizer, mesh and jitted steps.

`Experiment(config)` validates the config (before anything compiles), builds
the task and the Haiku model, the optax optimizer and a 1-D data mesh, and
exposes pure, jitted functions:

  init()                      -> TrainState (replicated)
  train_step(state, batch)    -> (state, metrics)   state donated
  eval_step(params, model_state, batch) -> (metric sums, model state)

The steps are `training.steps`' pure functions (also what `bench/`
times); both the trainer and `experiments/eval.py` use this class, so
evaluation of a checkpoint runs exactly the computation the trainer ran.
"""

from __future__ import annotations

from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from algebranets import metrics as metrics_lib
from algebranets import models, tasks
from algebranets.sparsity import from_config as sparsity_config
from algebranets.training import config_lib, optimizers, sharding, steps
from algebranets.training.state import TrainState
from algebranets.training.steps import cast_floating

__all__ = ["REAL_IO_MODULES", "Experiment", "cast_floating", "is_real_io"]

_DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}
# Path components that mark the real (non-algebra) input lift and output head.
REAL_IO_MODULES = ("stem", "head")


def is_real_io(module_path: str) -> bool:
  return any(p in REAL_IO_MODULES for p in module_path.split("/"))


class Experiment:
  """Config -> task, model, optimizer, mesh and jitted step functions."""

  def __init__(self, config, *, check_data: bool = True):
    """Validates `config` and builds everything (no compilation yet).

    Raises:
      config_lib.ConfigError: any inconsistent or unknown config value.
    """
    self.config = config
    self.process_index = jax.process_index()
    self.process_count = jax.process_count()
    if config.get("train") is not None and config.train.get("num_devices"):
      self.mesh = sharding.make_mesh(config.train.num_devices)
    else:
      self.mesh = sharding.make_mesh(0)
    config_lib.validate(
        config,
        num_devices=self.mesh.size,
        process_count=self.process_count,
        check_data=check_data,
    )
    try:
      self.task = tasks.get(config.task).build(
          config,
          process_index=self.process_index,
          process_count=self.process_count,
      )
    except (ValueError, FileNotFoundError, IsADirectoryError) as e:
      # Missing, malformed or too-short data: a fix in the config or on
      # disk, reported like every other start-up check.
      raise config_lib.ConfigError(f"data ({config.data.name}): {e}") from e
    if not isinstance(self.task, tasks.Task):
      raise config_lib.ConfigError(
          f"task {config.task!r} built a {type(self.task).__name__}, which "
          "is not an algebranets.tasks.Task; subclass Task (tasks/base.py)."
      )
    self.model = hk.transform_with_state(self.task.model_fn)
    self.optimizer, self.schedule = optimizers.make_optimizer(
        config.optimizer, config.train.num_steps
    )
    self.pruning = sparsity_config.is_enabled(config.sparsity)
    if self.pruning:
      # Masks live in the optimizer state, so they are checkpointed and
      # restored with everything else.
      try:
        shapes = self._param_shapes()
      except models.ModelConfigError as e:
        raise config_lib.ConfigError(str(e)) from None
      self.optimizer = sparsity_config.wrap_optimizer(
          self.optimizer,
          config.sparsity,
          shapes,
          algebra=config.model.get("algebra"),
          num_steps=config.train.num_steps,
      )
    self.compute_dtype = _DTYPES[config.train.compute_dtype]
    self.replicated = sharding.replicated(self.mesh)
    self.batch_sharding = sharding.batch_sharding(self.mesh)

    self._init_fn = steps.make_init(self.model, self.optimizer)
    self._train_step = steps.make_train_step(
        self.model,
        self.optimizer,
        self.schedule,
        compute_dtype=self.compute_dtype,
        input_keys=self.task.input_keys,
        pruning=self.pruning,
    )
    self._eval_step = steps.make_eval_step(
        self.model,
        compute_dtype=self.compute_dtype,
        input_keys=self.task.input_keys,
    )
    try:
      # The first trace builds the model with the data's sizes (vocabulary,
      # classes): checks that needed them run here, still before compiling.
      self.state_sharding = self._state_sharding()
    except models.ModelConfigError as e:
      raise config_lib.ConfigError(str(e)) from None
    self.init = jax.jit(self._init, out_shardings=self.state_sharding)
    self.train_step = jax.jit(
        self._train_step,
        in_shardings=(self.state_sharding, self.batch_sharding),
        out_shardings=(self.state_sharding, self.replicated),
        donate_argnums=0,
    )
    self._eval_steps: dict[Any, Any] = {}

  # ------------------------------------------------------------- pure fns --
  def _param_shapes(self):
    example = self.task.example_batch(self.config.train.batch_size)
    return jax.eval_shape(
        lambda: self.model.init(jax.random.key(0), example, is_training=True)[0]
    )

  def _init(self) -> TrainState:
    # The global batch: recurrent state (Transformer-XL memories) has it.
    example = self.task.example_batch(self.config.train.batch_size)
    return self._init_fn(jax.random.key(self.config.seed), example)

  # -------------------------------------------------------------- helpers --
  def _partition(self, tree) -> Any:
    """NamedShardings for a model-state tree: leaves the task's
    `state_batch_axis` names (recurrent memories have the batch in them)
    are sharded on that axis like the data, the others replicated."""

    def one(path, leaf):
      axis = self.task.state_batch_axis(jax.tree_util.keystr(path), leaf)
      if axis is None:
        return self.replicated
      spec = PartitionSpec(*([None] * axis), sharding.DATA_AXIS)
      return NamedSharding(self.mesh, spec)

    return jax.tree_util.tree_map_with_path(one, tree)

  def _state_sharding(self) -> TrainState:
    shapes = jax.eval_shape(self._init)
    model_state = self._partition(shapes.model_state)
    rest = jax.tree.map(
        lambda _: self.replicated, shapes._replace(model_state=None)
    )
    return rest._replace(model_state=model_state)

  def abstract_state(self) -> TrainState:
    """Shapes, dtypes and shardings of the state; no compute."""
    shapes = jax.eval_shape(self._init)
    return jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
        shapes,
        self.state_sharding,
    )

  def eval_model_state(self, state: TrainState, batch_size: int) -> Any:
    """The model state evaluation starts from.

    Statistics (BatchNorm averages) come from training; recurrent state is
    fresh for the evaluation batch (the task's `eval_model_state(trained,
    fresh)` decides; by default the trained state is used as is).
    """

    def fresh():
      example = self.task.example_batch(batch_size, is_training=False)
      shapes = jax.eval_shape(
          lambda: self.model.init(
              jax.random.key(0), example, is_training=False
          )[1]
      )
      return jax.jit(
          lambda: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes),
          out_shardings=self._partition(shapes),
      )()

    return self.task.eval_model_state(state.model_state, fresh)

  def eval_step(self, params, model_state, batch):
    """(metric sums, next model state) of one evaluation batch."""
    key = jax.tree.map(lambda x: (x.shape, x.dtype, x.sharding), model_state)
    key = jax.tree_util.tree_flatten(key)
    key = (str(key[1]), tuple(key[0]))
    if key not in self._eval_steps:
      self._eval_steps[key] = jax.jit(
          self._eval_step,
          in_shardings=(
              self.replicated,
              jax.tree.map(lambda x: x.sharding, model_state),
              self.batch_sharding,
          ),
          out_shardings=(
              self.replicated,
              jax.tree.map(lambda x: x.sharding, model_state),
          ),
      )
    return self._eval_steps[key](params, model_state, batch)

  def to_device(self, local_batch) -> Any:
    return sharding.to_global(local_batch, self.batch_sharding)

  def accounting(self, params) -> dict[str, Any]:
    """Parameter and intrinsic-MAC counts (docs/macs_and_flops.md)."""
    total = metrics_lib.count_params(params)
    real_io = sum(
        metrics_lib.count_params(leaves)
        for path, leaves in params.items()
        if is_real_io(path)
    )
    fn, args = self.task.macs_fn()
    report = metrics_lib.count_macs(fn, *args)
    algebra = self.config.model.get("algebra", "R")
    return {
        "algebra": algebra,
        "params_total": int(total),
        "params_real_io": int(real_io),
        "params_algebra": int(total - real_io),
        "macs_per_example": int(report.total),
        "flops_per_example": int(report.flops),
        "macs_by_kind": {k: int(v) for k, v in report.by_kind().items()},
        "_report": report,
    }
