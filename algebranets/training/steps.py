"""The one initialiser, train step and eval step of every run.

Pure functions built from a Haiku model and an optax optimizer only: no
task, data, config or mesh is needed, so the trainer (`Experiment`),
`experiments.eval` and the benchmarks (`bench/`) run the same computation.
The caller jits them (and picks the shardings).

The model is `hk.transform_with_state(model_fn)` where
`model_fn(batch, is_training) -> (scalar loss, {name: scalar sum})`, the
contract of `algebranets.tasks.Task.model_fn`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import optax

from algebranets import sparsity
from algebranets.training.state import TrainState

# Keys a train step adds to the model's metric sums.
STEP_METRICS = ("loss", "grad_norm", "learning_rate", "sparsity")


def cast_floating(tree: Any, dtype) -> Any:
  """Casts the floating leaves of `tree` to `dtype` (None: unchanged)."""
  if dtype is None:
    return tree
  return jax.tree.map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
      tree,
  )


def cast_inputs(batch: Any, keys: Sequence[str], dtype) -> Any:
  """`batch` (a dict) with the floating entries `keys` cast to `dtype`
  (None: unchanged); the other entries (labels, weights, targets) as they
  are."""
  if dtype is None or not keys:
    return batch
  return {
      k: cast_floating(v, dtype) if k in keys else v for k, v in batch.items()
  }


def make_init(
    model: hk.TransformedWithState,
    optimizer: optax.GradientTransformation,
) -> Callable[[jax.Array, Any], TrainState]:
  """init(key, example_batch) -> the step-0 TrainState.

  `key` (a typed PRNG key) is split into the parameter-init key and the
  training key kept in the state; `example_batch` only gives shapes (the
  global batch: recurrent state such as Transformer-XL memories has it).
  """

  def init(key: jax.Array, example_batch: Any) -> TrainState:
    init_key, train_key = jax.random.split(key)
    params, model_state = model.init(init_key, example_batch, is_training=True)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=model_state,
        opt_state=optimizer.init(params),
        rng=jax.random.key_data(train_key),
    )

  return init


def make_train_step(
    model: hk.TransformedWithState,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    *,
    compute_dtype: Any = None,
    input_keys: Sequence[str] = (),
    pruning: bool = False,
) -> Callable[[TrainState, Any], tuple[TrainState, dict[str, jax.Array]]]:
  """train_step(state, batch) -> (next state, metrics).

  Args:
    model: the transformed `model_fn` (see the module docstring).
    optimizer: the full optax transformation (pruning wrapper included).
    schedule: step -> learning rate, reported as 'learning_rate'.
    compute_dtype: dtype the floating parameters and the batch's
      `input_keys` entries are cast to inside the loss (e.g. jnp.bfloat16);
      None computes in the parameters' dtype.
    input_keys: the batch's floating model inputs (`Task.input_keys`).
      Gradients and the update stay in the parameters' dtype.
    pruning: the optimizer is `sparsity.wrap`ped: its state has `masks`,
      applied to the updated parameters and reported as 'sparsity'.

  Returns:
    A pure function. Its metrics are the model's sums plus 'loss',
    'grad_norm' (global L2 norm of the gradients), 'learning_rate' (at the
    step before the update) and, when pruning, 'sparsity' (all scalars).
    The dropout key of a step is fold_in(state.key(), state.step), so a
    step is a function of (state, batch) only and resuming is exact.
  """

  def train_step(state: TrainState, batch: Any):
    key = jax.random.fold_in(state.key(), state.step)
    batch = cast_inputs(batch, input_keys, compute_dtype)

    def loss_fn(params):
      compute_params = cast_floating(params, compute_dtype)
      (loss, sums), model_state = model.apply(
          compute_params, state.model_state, key, batch, is_training=True
      )
      return loss, (sums, model_state)

    (loss, (sums, model_state)), grads = jax.value_and_grad(
        loss_fn, has_aux=True
    )(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(sums)
    if pruning:
      params = sparsity.apply_masks(params, opt_state.masks)
      metrics["sparsity"] = sparsity.sparsity_report(opt_state.masks)["total"]
    metrics["loss"] = loss
    metrics["grad_norm"] = optax.tree.norm(grads)
    metrics["learning_rate"] = schedule(state.step)
    new_state = TrainState(
        step=state.step + 1,
        params=params,
        model_state=model_state,
        opt_state=opt_state,
        rng=state.rng,
    )
    return new_state, metrics

  return train_step


def make_eval_step(
    model: hk.TransformedWithState,
    *,
    compute_dtype: Any = None,
    input_keys: Sequence[str] = (),
) -> Callable[[Any, Any, Any], tuple[dict[str, jax.Array], Any]]:
  """eval_step(params, model_state, batch) -> (metric sums, model state).

  Args:
    model: the transformed `model_fn` (see the module docstring).
    compute_dtype, input_keys: as in `make_train_step`.

  Returns:
    A pure function running the model with is_training=False and no
    randomness; the returned model state is the input of the next batch
    (recurrent memories), statistics such as BatchNorm's are not updated.
  """

  def eval_step(params, model_state, batch):
    params = cast_floating(params, compute_dtype)
    batch = cast_inputs(batch, input_keys, compute_dtype)
    (_, sums), model_state = model.apply(
        params, model_state, None, batch, is_training=False
    )
    return sums, model_state

  return eval_step
