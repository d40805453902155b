"""tasks.Task: a task with only the required methods trains and evaluates
on the defaults; the task-specific report lines are the trainer's old
ones."""

import json

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import tasks
from algebranets.sparsity import report as sparsity_report
from algebranets.tasks import byte_lm
from algebranets.training import (
    checkpointing,
    config_lib,
    evaluator,
    trainer,
)
from algebranets.training.experiment import Experiment

NAME = "toy_regression_test"
DIM = 3
NUM_EXAMPLES = 64
W_TRUE = np.array([1.0, -2.0, 0.5], np.float32)


class _Regression(tasks.Task):
  """y = x . w on fixed Gaussian inputs; exactly the abstract methods."""

  def __init__(self, config):
    x = np.random.default_rng(0).normal(size=(NUM_EXAMPLES, DIM))
    self.x = x.astype(np.float32)
    self.y = self.x @ W_TRUE
    self.batch_size = config.train.batch_size

  def model_fn(self, batch, is_training):
    del is_training
    pred = hk.Linear(1, name="linear")(batch["x"])[:, 0]
    err = jnp.square(pred - batch["y"])
    sums = {"sq_err": jnp.sum(err), "count": jnp.float32(err.shape[0])}
    return jnp.mean(err), sums

  def example_batch(self, batch_size, is_training=True):
    del is_training
    return {
        "x": np.zeros((batch_size, DIM), np.float32),
        "y": np.zeros((batch_size,), np.float32),
    }

  def macs_fn(self):
    def fn(x):
      return hk.Linear(1, name="linear")(x)

    return fn, (jax.ShapeDtypeStruct((1, DIM), jnp.float32),)

  def train_batch(self, step):
    start = (step * self.batch_size) % NUM_EXAMPLES
    rows = slice(start, start + self.batch_size)
    return {"x": self.x[rows], "y": self.y[rows]}

  def eval_batches(self, split, *, batch_size, num_batches=0):
    del split
    starts = range(0, NUM_EXAMPLES, batch_size)
    if num_batches:
      starts = starts[:num_batches]
    for s in starts:
      yield {"x": self.x[s : s + batch_size], "y": self.y[s : s + batch_size]}

  def summarize(self, sums):
    mse = float(sums["sq_err"]) / float(sums["count"])
    return {"loss": mse, "mse": mse}

  def describe(self):
    return {"examples": NUM_EXAMPLES}


def _spec(build):
  return tasks.TaskSpec(
      name=NAME,
      data_defaults=lambda: {"name": "toy"},
      validate_config=lambda config, check_data=True: None,
      build=lambda config, **_: build(config),
  )


def _config():
  # The model section only has to validate: the task builds its own model.
  config = config_lib.base_config(NAME, "resnet")
  config.train.batch_size = 8
  config.train.num_steps = 6
  config.train.log_every = 3
  config.train.checkpoint_every = 6
  config.eval.every_steps = 0
  config.eval.batch_size = 8
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 0.05
  config.optimizer.schedule = "constant"
  config.optimizer.warmup_steps = 0
  return config


class _Config:
  """The one config key `_Regression` reads, without a full config."""

  class train:  # noqa: N801  (mirrors config.train)
    batch_size = 8


@pytest.fixture
def registered(monkeypatch):
  monkeypatch.setitem(tasks.registry._REGISTRY, NAME, _spec(_Regression))


def test_defaults_of_the_hooks():
  task = _Regression(_Config())
  assert task.sum_names is None
  assert task.num_eval_batches("valid", 8) is None
  assert task.state_batch_axis("['~']['mems']", np.zeros((2, 8))) is None

  def fresh():
    raise AssertionError("the default must not build a fresh state")

  trained = {"bn": {"mean": np.ones(2)}}
  assert task.eval_model_state(trained, fresh) is trained
  assert task.param_metrics({"linear": {"w": np.ones((DIM, 1))}}) == {}
  assert task.report({"loss": 1.0}, task.describe(), "valid") == []


def test_a_task_must_implement_the_required_methods():
  class NoSummary(_Regression):
    summarize = tasks.Task.summarize

  with pytest.raises(TypeError, match="summarize"):
    NoSummary(_Config())


def test_minimal_task_trains_and_evaluates(registered, tmp_path):
  config = _config()
  final = trainer.train_and_evaluate(config, tmp_path)
  assert set(final) == {"loss", "mse"}
  rows = [
      json.loads(line)
      for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
  ]
  train = [r for r in rows if r["split"] == "train"]
  assert [r["step"] for r in train] == [3, 6]
  for r in train:
    # sum_names=None sums every key of model_fn's sums over the logged
    # steps; with equal batches their mse is the mean of the step losses.
    assert r["mse"] == pytest.approx(r["loss"], rel=1e-6)
  # The final evaluation against NumPy on the trained parameters.
  exp = Experiment(config)
  params = jax.device_get(
      checkpointing.restore_params(tmp_path, exp.abstract_state().params)
  )
  task = exp.task
  pred = task.x.astype(np.float64) @ params["linear"]["w"][:, 0]
  mse = np.mean(np.square(pred + params["linear"]["b"][0] - task.y))
  # float32 sums of 64 squared errors of size ~mse: relative error ~1e-6.
  assert final["mse"] == pytest.approx(mse, rel=1e-5)
  again = evaluator.evaluate_workdir(tmp_path, write=False)
  assert again["step"] == 6 and again["mse"] == final["mse"]


def test_a_builder_must_return_a_task(monkeypatch):
  monkeypatch.setitem(
      tasks.registry._REGISTRY, NAME, _spec(lambda config: object())
  )
  with pytest.raises(
      config_lib.ConfigError,
      match=f"task '{NAME}' built a object, which is not an "
      r"algebranets.tasks.Task; subclass Task \(tasks/base.py\).",
  ):
    Experiment(_config())


def test_unigram_report_lines():
  info = {"valid_unigram_bits": 5.0, "test_unigram_perplexity": 900.0}
  assert byte_lm.unigram_report({"bits_per_byte": 3.25}, info, "valid") == [
      "unigram entropy of the valid split: 5.0000 bits/byte; the model is "
      "1.7500 bits below."
  ]
  assert byte_lm.unigram_report({"perplexity": 312.04}, info, "test") == [
      "unigram perplexity of the test split: 900.0; the model's is 312.0."
  ]
  # No baseline for the split, or no matching metric: no line.
  assert byte_lm.unigram_report({"bits_per_byte": 3.0}, info, "test") == []
  assert byte_lm.unigram_report({"loss": 3.0}, info, "valid") == []


def test_sparsity_headline():
  sparse = {
      "nonzero_params": 1500,
      "sparse_macs_per_example": 25000,
      "sparsity": 0.5,
  }
  dense = {"params_total": 2500, "macs_per_example": 45000}
  assert sparsity_report.headline(sparse, dense) == (
      "pruned model: 1,500 of 2,500 parameters non-zero, 25,000 of 45,000 "
      "intrinsic MACs/example (sparsity 0.500; per layer: sparsity.txt)"
  )
