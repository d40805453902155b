"""`Task`: what the trainer, the evaluator and the benchmarks ask of a task.

A task owns the data of a run, its loss and its metrics; the training loop
(`algebranets.training`) is the same for every task. Subclass `Task`,
implement the abstract methods, override a default hook only where the
task needs it, and register a builder with `tasks.register(TaskSpec(...))`.

The class lives in the tasks layer (not in `training/`) so that tasks never
import from the layer above them.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax

Batch = Mapping[str, Any]


class Task(abc.ABC):
  """Base class of every task.

  Batches are dicts of arrays with the global (or, from `train_batch` and
  `eval_batches`, this process's) batch on axis 0.

  Attributes:
    sum_names: keys of `model_fn`'s sums that the trainer adds up over the
      logged training steps before calling `summarize`; None (the default)
      means every key the sums have.
    input_keys: the batch's floating model INPUTS (images, features): the
      train and eval steps cast them to `train.compute_dtype` with the
      parameters (a bfloat16 conv refuses float32 images). Labels, loss
      weights and regression targets are not listed and keep their dtype.
  """

  sum_names: tuple[str, ...] | None = None
  input_keys: tuple[str, ...] = ()

  # ------------------------------------------------------------- required --
  @abc.abstractmethod
  def model_fn(
      self, batch: Batch, is_training: bool
  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(scalar loss to minimise, {name: scalar sum}); called inside
    `hk.transform_with_state`. The sums over any set of batches are what
    `summarize` turns into metrics (e.g. summed NLL and token count)."""

  @abc.abstractmethod
  def example_batch(self, batch_size: int, is_training: bool = True) -> Batch:
    """Zeros of the shapes of a global batch (training or evaluation)."""

  @abc.abstractmethod
  def macs_fn(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """(untransformed fn, ShapeDtypeStruct args) of one example's forward
    pass, for `metrics.count_macs`."""

  @abc.abstractmethod
  def train_batch(self, step: int) -> Batch:
    """This process's rows of the training batch of `step`, a function of
    (config, step) only so that resuming is exact."""

  @abc.abstractmethod
  def eval_batches(
      self, split: str, *, batch_size: int, num_batches: int = 0
  ) -> Iterable[Batch]:
    """This process's rows of the evaluation batches of `split`, in order
    (global `batch_size`; `num_batches` 0 = the whole split)."""

  @abc.abstractmethod
  def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
    """Metrics ({'loss', ...}) from sums of `model_fn`'s sums."""

  @abc.abstractmethod
  def describe(self) -> dict[str, Any]:
    """JSON-able facts about the data (split sizes, baselines), written to
    the workdir's data.json and printed at start-up."""

  # -------------------------------------------------------- default hooks --
  def num_eval_batches(self, split: str, batch_size: int) -> int | None:
    """How many batches `eval_batches(split)` yields; None = unknown."""
    del split, batch_size
    return None

  def state_batch_axis(self, path: str, leaf: Any) -> int | None:
    """The axis of a model-state leaf that holds the batch, or None.

    Such leaves (e.g. recurrent memories [L, B, ...]) are sharded on the
    data axis like the batch; the others (and all by default) are
    replicated. `path` is `jax.tree_util.keystr` of the leaf's path.
    """
    del path, leaf
    return None

  def eval_model_state(self, trained: Any, fresh: Callable[[], Any]) -> Any:
    """The model state evaluation starts from.

    Args:
      trained: the model state of training (e.g. BatchNorm averages).
      fresh: () -> zeros of the model state of an evaluation batch (built
        only when called), for state that must restart (e.g. memories).

    Returns:
      By default the trained state as is.
    """
    del fresh
    return trained

  def param_metrics(self, params: Any) -> dict[str, float]:
    """Final metrics computed from the trained parameters themselves
    (replicated device arrays: `jax.device_get` them for NumPy), reported
    with the final evaluation; {} by default."""
    del params
    return {}

  def report(
      self, final: Mapping[str, float], data_info: Mapping[str, Any], split: str
  ) -> list[str]:
    """Lines the trainer prints after the final evaluation of `split`
    (e.g. the model against a baseline in `data_info`); [] by default.

    Args:
      final: the final metrics.
      data_info: what `describe` returned.
      split: the evaluated split.
    """
    del final, data_info, split
    return []
