"""The single pytree that holds everything a run needs to continue."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax


class TrainState(NamedTuple):
  """All training state.

  Attributes:
    step: int32 scalar, the number of optimizer steps taken.
    params: Haiku params (float32 even under bfloat16 compute).
    model_state: Haiku state (e.g. BatchNorm moving averages; recurrent
      memories); {} when the model has none.
    opt_state: optax state.
    rng: uint32 raw key data of the run's base key (`jax.random.key_data`);
      step s uses `fold_in(key, s)`, so no key is ever split in the loop.
  """

  step: jax.Array
  params: Any
  model_state: Any
  opt_state: Any
  rng: jax.Array

  def key(self) -> jax.Array:
    return jax.random.wrap_key_data(self.rng)

  def to_dict(self) -> dict[str, Any]:
    """The checkpointed layout: a plain dict with these five entries."""
    return dict(self._asdict())

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> TrainState:
    return cls(**{k: d[k] for k in cls._fields})
