"""training.steps: the one init / train step / eval step, built without data.

The steps are built here from a model function written from scratch (a
ResNet and the classification loss; no task, no data files, no
`Experiment`) and must reproduce the `Experiment` of the same config bit
for bit: same initial state and tree paths, same metrics and next state
after training steps (with pruning too), same evaluation sums.
"""

import pathlib

import haiku as hk
import jax
import numpy as np
import pytest

from algebranets import models
from algebranets.sparsity import from_config as sparsity_config
from algebranets.tasks import image_classification
from algebranets.training import config_lib, optimizers, steps
from algebranets.training.experiment import Experiment
from tests.test_fashion_mnist import write_dataset

ROOT = pathlib.Path(__file__).resolve().parents[1]
NUM_CLASSES = 10  # Fashion-MNIST


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("fashion")
  write_dataset(root, n_train=40, n_test=10, seed=5)
  return root


def vision_config(data_dir, arg="runlocal,algebra=C"):
  """The runlocal Fashion-MNIST ResNet on generated files, batch 4."""
  module = config_lib.load_config_file(ROOT / "configs/fashion_mnist_resnet.py")
  config = module.get_config(arg)
  config.data.path = str(data_dir)
  config.data.valid_examples = 8
  config.train.batch_size = 4
  config.eval.batch_size = 4
  return config


def _model(config):
  """The task's loss over a model built from the config alone."""

  def model_fn(batch, is_training):
    net = models.build(config.model, num_classes=NUM_CLASSES)
    logits = net(batch["images"], is_training=is_training)
    smoothing = config.data.label_smoothing if is_training else 0.0
    return image_classification.classification_loss(
        logits,
        batch["labels"],
        batch.get("weights"),
        label_smoothing=smoothing,
    )

  return hk.transform_with_state(model_fn)


def _batch(seed, batch_size, weights=False):
  k1, k2 = jax.random.split(jax.random.key(seed))
  batch = {
      "images": jax.random.normal(k1, (batch_size, 28, 28, 1)),
      "labels": jax.random.randint(k2, (batch_size,), 0, NUM_CLASSES),
  }
  if weights:
    batch["weights"] = np.array([1.0, 1.0, 1.0, 0.0], np.float32)
  return batch


def _assert_same(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_steps_without_data_match_the_experiment(fashion_dir):
  # Pruning takes every branch of the train step (the bench test covers
  # the unpruned one); masks change at steps 0 and 1.
  config = vision_config(fashion_dir, "runlocal,algebra=H,sparsity=0.5")
  config.sparsity.begin_step = 0
  config.sparsity.end_step = 2
  config.sparsity.frequency = 1
  exp = Experiment(config)
  assert exp.pruning

  # Built from the config alone: model, optimizer, schedule.
  model = _model(config)
  optimizer, schedule = optimizers.make_optimizer(
      config.optimizer, config.train.num_steps
  )
  example = _batch(0, 4)
  shapes = jax.eval_shape(
      lambda: model.init(jax.random.key(0), example, is_training=True)[0]
  )
  optimizer = sparsity_config.wrap_optimizer(
      optimizer,
      config.sparsity,
      shapes,
      algebra=config.model.algebra,
      num_steps=config.train.num_steps,
  )
  init = jax.jit(steps.make_init(model, optimizer))
  train_step = jax.jit(
      steps.make_train_step(model, optimizer, schedule, pruning=True)
  )
  eval_step = jax.jit(steps.make_eval_step(model))

  state = init(jax.random.key(config.seed), example)
  theirs = exp.init()
  _assert_same(state, theirs)  # also the tree paths
  for i in range(2):
    batch = _batch(10 + i, 4)
    state, metrics = train_step(state, batch)
    theirs, their_metrics = exp.train_step(theirs, exp.to_device(batch))
    _assert_same(metrics, their_metrics)
    _assert_same(state, theirs)
  expected = {"loss_sum", "top1", "top5", "count", *steps.STEP_METRICS}
  assert set(metrics) == expected
  assert 0.0 < float(metrics["sparsity"]) <= 0.5

  batch = _batch(20, 4, weights=True)
  sums, model_state = eval_step(state.params, state.model_state, batch)
  their_sums, their_model_state = exp.eval_step(
      theirs.params, exp.eval_model_state(theirs, 4), exp.to_device(batch)
  )
  _assert_same(sums, their_sums)
  _assert_same(model_state, their_model_state)
  assert float(sums["count"]) == 3.0  # the weight-0 row is not counted
  # Evaluation leaves the BatchNorm statistics alone.
  _assert_same(model_state, state.model_state)


def test_cast_floating_leaves_integers_alone():
  tree = {"w": np.ones((2,), np.float32), "n": np.ones((2,), np.int32)}
  out = steps.cast_floating(tree, jax.numpy.bfloat16)
  assert out["w"].dtype == jax.numpy.bfloat16 and out["n"].dtype == np.int32
  assert steps.cast_floating(tree, None) is tree


def test_bfloat16_steps_cast_the_image_inputs_only(fashion_dir):
  # A bfloat16 conv refuses float32 images: the steps cast the task's
  # input_keys with the parameters; labels and loss weights keep theirs.
  config = vision_config(fashion_dir, "runlocal,algebra=C")
  config.train.compute_dtype = "bfloat16"
  exp = Experiment(config)
  assert exp.task.input_keys == ("images",)
  state = exp.init()
  state, metrics = exp.train_step(state, exp.to_device(_batch(1, 4)))
  assert np.isfinite(float(metrics["loss"]))
  sums, _ = exp.eval_step(
      state.params,
      exp.eval_model_state(state, 4),
      exp.to_device(_batch(2, 4, weights=True)),
  )
  assert float(sums["count"]) == 3.0
  batch = {"images": np.ones((2, 3), np.float32), "weights": np.ones(2)}
  out = steps.cast_inputs(batch, ("images",), jax.numpy.bfloat16)
  assert out["images"].dtype == jax.numpy.bfloat16
  assert out["weights"].dtype == np.float64
  assert steps.cast_inputs(batch, ("images",), None) is batch
