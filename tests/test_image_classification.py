"""Tests for the image classification task and the Fashion-MNIST config.

Most tests run on small generated idx files; the model is a tiny vision
model registered here (the vision model contract: a Module whose keyword
arguments are the config keys, built with `models.build(cfg,
num_classes=K)`, called as module(images, is_training) -> logits), or a
parameter-free
"pixel" model whose logits are pixels of the input, so losses and top-k can
be checked against NumPy exactly.
"""

import json
import math
import pathlib
import subprocess
import sys
import types
from typing import ClassVar

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import algebranets.data
from algebranets import layers, models, tasks
from algebranets.data import fashion_mnist
from algebranets.tasks import image_classification as ic
from algebranets.training import config_lib, evaluator, trainer
from tests.test_fashion_mnist import write_dataset

ROOT = pathlib.Path(__file__).parents[1]
CONFIG_FILE = ROOT / "configs" / "fashion_mnist_resnet.py"
REAL_DIR = pathlib.Path(fashion_mnist.DEFAULT_DIR)
HAVE_REAL = (REAL_DIR / "train-images-idx3-ubyte.gz").is_file()

TINY = "tiny_vision_test"
PIXEL = "pixel_logits_test"


class _Tiny(hk.Module):
  """Real 'stem' conv -> BatchNorm -> ReLU -> algebra conv /2 -> mean pool ->
  real 'head'."""

  def __init__(self, num_classes=None, *, algebra="C", channels=2, name=None):
    del name  # Parameters under 'tiny/' whatever the registry name.
    super().__init__(name="tiny")
    self.algebra, self.channels = algebra, channels
    self.num_classes = num_classes

  def __call__(self, images, is_training):
    alg, ch = self.algebra, self.channels
    x = layers.RealStem(ch, alg, kernel_shape=3, with_bias=False, name="stem")(
        images
    )
    x = layers.BatchNorm(alg)(x, is_training)
    x = jax.nn.relu(x)
    x = layers.Conv2D(ch, 3, alg, stride=2)(x)
    x = jnp.mean(x, axis=(1, 2))
    return layers.FlattenReal(self.num_classes, name="head")(x)


class _Pixel(hk.Module):
  """logits[b, k] = images[b, 0, k, 0]: no parameters."""

  def __init__(self, num_classes=None, name=None):
    del name
    super().__init__(name="pixel")
    self.num_classes = num_classes

  def __call__(self, images, is_training):
    del is_training
    return images[:, 0, : self.num_classes, 0]


def _register():
  for name, module in ((TINY, _Tiny), (PIXEL, _Pixel)):
    models.register(
        models.ModelSpec(name, module, runtime_args=("num_classes",)),
        overwrite=True,
    )


_register()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("fashion")
  arrays = write_dataset(root, n_train=70, n_test=23, seed=3)
  return root, arrays


def make_config(path, model=TINY, **overrides):
  config = config_lib.base_config(ic.NAME, model)
  config.data.path = str(path)
  config.data.valid_examples = 20
  config.train.batch_size = 8
  config.train.num_steps = 3
  config.train.log_every = 1
  config.train.checkpoint_every = 3
  config.eval.every_steps = 0
  config.eval.batch_size = 8
  config.optimizer.learning_rate = 0.01
  for key, value in overrides.items():
    section, name = key.split(".") if "." in key else (None, key)
    if section is None:
      config[name] = value
    else:
      config[section][name] = value
  return config


def make_task(path, process_index=0, process_count=1, **overrides):
  return ic.ImageClassificationTask(
      make_config(path, **overrides),
      process_index=process_index,
      process_count=process_count,
  )


def _normalized(images, mean, std):
  """float64 reference of the pixel normalisation, [n, 28, 28, 1]."""
  return ((images.astype(np.float64) / 255.0 - mean) / std)[..., None]


# -------------------------------------------------------------------- data --


def test_registered_and_defaults():
  assert ic.NAME in tasks.names()
  d = tasks.get(ic.NAME).data_defaults()
  assert d == dict(
      name="fashion_mnist",
      path="",
      data_dir="",
      manual_dir="",
      image_size=0,
      augment=True,
      label_smoothing=0.0,
      valid_examples=5000,
      deterministic=True,
  )


def test_splits_and_statistics(data_dir):
  root, arrays = data_dir
  task = make_task(root)
  train_images = arrays["train"][0][:50]
  ref = train_images.astype(np.float64) / 255.0
  src = task.source
  assert src.mean == pytest.approx(ref.mean(), abs=1e-12)
  assert src.std == pytest.approx(ref.std(), abs=1e-12)
  assert task.num_classes == 10 and task.image_shape == (28, 28, 1)
  assert [src.num_examples(s) for s in ic.SPLITS] == [50, 20, 23]
  info = task.describe()
  assert info["train_examples"] == 50 and info["valid_examples"] == 20
  assert info["test_examples"] == 23 and info["image_size"] == 28
  # Majority class of train, and its error on every split.
  labels = {s: arrays["train"][1][:50] for s in ("train",)}
  labels["valid"] = arrays["train"][1][50:]
  labels["test"] = arrays["test"][1]
  major = np.argmax(np.bincount(labels["train"], minlength=10))
  for split, lab in labels.items():
    assert info[f"{split}_majority_error"] == pytest.approx(
        1 - np.mean(lab == major)
    )


@pytest.mark.parametrize("split, lo, hi", [("valid", 50, 70), ("test", 0, 23)])
def test_eval_batches_cover_split_once_in_order(data_dir, split, lo, hi):
  root, arrays = data_dir
  task = make_task(root)
  images, labels = arrays["train" if split == "valid" else "test"]
  batches = list(task.eval_batches(split, batch_size=8))
  n = hi - lo
  assert len(batches) == math.ceil(n / 8) == task.num_eval_batches(split, 8)
  for b in batches:
    assert b["images"].shape == (8, 28, 28, 1)
    assert b["images"].dtype == np.float32 and b["labels"].dtype == np.int32
    assert b["weights"].dtype == np.float32
  w = np.concatenate([b["weights"] for b in batches])
  np.testing.assert_array_equal(w, (np.arange(len(w)) < n).astype(np.float32))
  got = np.concatenate([b["images"] for b in batches])[:n]
  np.testing.assert_allclose(
      got,
      _normalized(images[lo:hi], task.source.mean, task.source.std),
      atol=1e-6,
  )
  got_labels = np.concatenate([b["labels"] for b in batches])
  np.testing.assert_array_equal(got_labels[:n], labels[lo:hi])
  first = list(task.eval_batches(split, batch_size=8, num_batches=1))
  assert len(first) == 1 and first[0]["labels"].shape == (8,)


def test_normalisation_gives_zero_mean_unit_variance(data_dir):
  root, _ = data_dir
  task = make_task(root)
  batches = list(task.eval_batches("train", batch_size=16))
  w = np.concatenate([b["weights"] for b in batches]) > 0
  x = np.concatenate([b["images"] for b in batches])[w].astype(np.float64)
  assert x.mean() == pytest.approx(0.0, abs=1e-6)
  assert x.std() == pytest.approx(1.0, abs=1e-6)


def test_center_crop_for_smaller_image_size(data_dir):
  root, arrays = data_dir
  task = make_task(root, **{"data.image_size": 24})
  assert task.image_shape == (24, 24, 1)
  b = next(iter(task.eval_batches("test", batch_size=8)))
  ref = _normalized(arrays["test"][0][:8], task.source.mean, task.source.std)
  np.testing.assert_allclose(b["images"], ref[:, 2:26, 2:26], atol=1e-6)
  tb = task.train_batch(0)
  assert tb["images"].shape == (8, 24, 24, 1)


def test_train_batches_walk_epoch_permutations(data_dir):
  root, arrays = data_dir
  task = make_task(root, **{"data.augment": False, "seed": 5})
  images, labels = arrays["train"][0][:50], arrays["train"][1][:50]
  ref = _normalized(images, task.source.mean, task.source.std)
  rows = []
  for step in range(13):  # 104 examples: epoch 0, epoch 1 and part of 2
    b = task.train_batch(step)
    assert b["images"].shape == (8, 28, 28, 1)
    assert b["images"].dtype == np.float32 and b["labels"].dtype == np.int32
    assert "weights" not in b
    rows.append(b)
  got = np.concatenate([b["images"] for b in rows])
  got_labels = np.concatenate([b["labels"] for b in rows])
  order = np.concatenate(
      [np.random.default_rng((5, e)).permutation(50) for e in range(3)]
  )[:104]
  np.testing.assert_allclose(got, ref[order], atol=1e-6)
  np.testing.assert_array_equal(got_labels, labels[order])
  # Each epoch holds every training example exactly once.
  assert sorted(order[:50]) == list(range(50))
  assert sorted(order[50:100]) == list(range(50))


def test_train_batch_is_a_function_of_seed_and_step(data_dir):
  root, _ = data_dir
  a = make_task(root, seed=1)
  b = make_task(root, seed=1)
  c = make_task(root, seed=2)
  # Out of order and repeated: no iterator state.
  for step in (7, 0, 7, 30):
    x, y = a.train_batch(step), b.train_batch(step)
    np.testing.assert_array_equal(x["images"], y["images"])
    np.testing.assert_array_equal(x["labels"], y["labels"])
  assert not np.array_equal(
      a.train_batch(0)["images"], a.train_batch(1)["images"]
  )
  assert not np.array_equal(
      a.train_batch(0)["images"], c.train_batch(0)["images"]
  )


def _shift_flip_reference(image, dy, dx, flip):
  """Explicit loops: pad by 2 with zeros, crop 28x28 at (2+dy, 2+dx), flip."""
  padded = np.zeros((32, 32), np.uint8)
  padded[2:30, 2:30] = image
  out = np.zeros((28, 28), np.uint8)
  for i in range(28):
    for j in range(28):
      out[i, j] = padded[2 + dy + i, 2 + dx + j]
  return out[:, ::-1] if flip else out


def test_augmentation_is_a_shift_of_at_most_two_and_a_flip(data_dir):
  root, arrays = data_dir
  plain = make_task(root, **{"data.augment": False})
  aug = make_task(root)
  mean, std = aug.source.mean, aug.source.std
  images = arrays["train"][0][:50]
  found = []
  for step in range(4):
    p, a = plain.train_batch(step), aug.train_batch(step)
    # The same examples; only their augmentation differs.
    np.testing.assert_array_equal(p["labels"], a["labels"])
    idx = [
        int(
            np.argmin(np.abs(_normalized(images, mean, std) - x).sum((1, 2, 3)))
        )
        for x in p["images"]
    ]
    for row, k in enumerate(idx):
      matches = [
          (dy, dx, flip)
          for dy in range(-2, 3)
          for dx in range(-2, 3)
          for flip in (False, True)
          if np.allclose(
              _normalized(
                  _shift_flip_reference(images[k], dy, dx, flip)[None],
                  mean,
                  std,
              )[0],
              a["images"][row],
              atol=1e-6,
          )
      ]
      assert matches, f"step {step} row {row} is not a shifted/flipped image"
      found.append(matches[0])
  # Random: both flips and several shifts occur in 32 examples.
  assert {f for _, _, f in found} == {False, True}
  assert len({(dy, dx) for dy, dx, _ in found}) > 5


def test_processes_split_the_global_batch(data_dir):
  root, _ = data_dir
  full = make_task(root)
  parts = [make_task(root, process_index=i, process_count=2) for i in (0, 1)]
  for step in (0, 9):
    want = full.train_batch(step)
    got = [p.train_batch(step) for p in parts]
    assert got[0]["images"].shape == (4, 28, 28, 1)
    for key in ("images", "labels"):
      np.testing.assert_array_equal(
          np.concatenate([g[key] for g in got]), want[key]
      )
  want = list(full.eval_batches("valid", batch_size=8))
  got = [list(p.eval_batches("valid", batch_size=8)) for p in parts]
  assert len(got[0]) == len(got[1]) == len(want)
  for w, g0, g1 in zip(want, *got, strict=True):
    for key in ("images", "labels", "weights"):
      np.testing.assert_array_equal(np.concatenate([g0[key], g1[key]]), w[key])
  with pytest.raises(ValueError, match="not divisible by the number of proc"):
    make_task(root, process_count=3)
  with pytest.raises(ValueError, match="not divisible by the number of proc"):
    next(parts[0].eval_batches("valid", batch_size=5))


def test_example_batch_and_split_errors(data_dir):
  root, _ = data_dir
  task = make_task(root)
  b = task.example_batch(4)
  assert b["images"].shape == (4, 28, 28, 1) and b["labels"].shape == (4,)
  assert "weights" not in b
  assert task.example_batch(4, is_training=False)["weights"].shape == (4,)
  with pytest.raises(ValueError, match="Unknown split 'dev'"):
    task.eval_batches("dev", batch_size=8)


def test_too_many_valid_examples(data_dir):
  root, _ = data_dir
  with pytest.raises(ValueError, match="valid_examples=70 leaves no training"):
    make_task(root, **{"data.valid_examples": 70})


# ------------------------------------------------------------ loss, top-k --


def _pixel_task(path, label_smoothing=0.0):
  return make_task(
      path, model=PIXEL, **{"data.label_smoothing": label_smoothing}
  )


def _run_model_fn(task, logits, labels, weights, is_training):
  """model_fn of the pixel model, whose logits are the given array."""
  b, k = logits.shape
  images = np.zeros((b, 28, 28, 1), np.float32)
  images[:, 0, :k, 0] = logits
  batch = {"images": images, "labels": labels.astype(np.int32)}
  if weights is not None:
    batch["weights"] = weights.astype(np.float32)
  f = hk.transform_with_state(task.model_fn)
  params, state = f.init(jax.random.key(0), batch, is_training)
  (loss, sums), _ = f.apply(params, state, None, batch, is_training)
  return float(loss), {k: float(v) for k, v in sums.items()}


def _np_reference(logits, labels, weights, smoothing):
  x = logits.astype(np.float64)
  m = x.max(-1, keepdims=True)
  logp = x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))
  k = x.shape[-1]
  onehot = np.eye(k)[labels]
  q = (1 - smoothing) * onehot + smoothing / k
  smoothed = -(q * logp).sum(-1)
  ce = -logp[np.arange(len(labels)), labels]
  w = np.ones(len(labels)) if weights is None else weights
  # Ranks by explicit loops: classes ranked by descending logit, ties to
  # the lower index.
  top1 = np.zeros(len(labels))
  top5 = np.zeros(len(labels))
  for i in range(len(labels)):
    order = sorted(range(k), key=lambda c, i=i: (-x[i, c], c))
    top1[i] = order[0] == labels[i]
    top5[i] = labels[i] in order[:5]
  return {
      "loss": (smoothed * w).sum() / max(w.sum(), 1),
      "loss_sum": (ce * w).sum(),
      "top1": (top1 * w).sum(),
      "top5": (top5 * w).sum(),
      "count": w.sum(),
  }


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("use_weights", [False, True])
def test_loss_and_topk_against_numpy(data_dir, smoothing, use_weights):
  root, _ = data_dir
  task = _pixel_task(root, smoothing)
  rng = np.random.default_rng(0)
  logits = (rng.normal(size=(12, 10)) * 3).astype(np.float32)
  labels = rng.integers(0, 10, 12)
  weights = (rng.random(12) < 0.7).astype(np.float64) if use_weights else None
  for is_training in (True, False):
    loss, sums = _run_model_fn(task, logits, labels, weights, is_training)
    ref = _np_reference(
        logits, labels, weights, smoothing if is_training else 0.0
    )
    assert loss == pytest.approx(ref["loss"], rel=1e-5)
    assert set(sums) == set(task.sum_names)
    for key in task.sum_names:
      assert sums[key] == pytest.approx(ref[key], rel=1e-5), key
  # The smoothed training loss differs from the evaluation loss.
  if smoothing:
    assert _run_model_fn(task, logits, labels, weights, True)[0] != (
        pytest.approx(_run_model_fn(task, logits, labels, weights, False)[0])
    )


def test_topk_with_ties_and_known_ranks(data_dir):
  root, _ = data_dir
  task = _pixel_task(root)
  logits = np.array(
      [
          np.arange(10)[::-1],  # label 4 is 5th: in top 5
          np.arange(10)[::-1],  # label 5 is 6th: not in top 5
          np.zeros(10),  # all tied: the lowest index ranks first
          np.zeros(10),
      ],
      np.float32,
  )
  labels = np.array([4, 5, 0, 5])
  _, sums = _run_model_fn(task, logits, labels, None, False)
  ref = _np_reference(logits, labels, None, 0.0)
  assert (sums["top1"], sums["top5"]) == (1.0, 2.0)
  assert (ref["top1"], ref["top5"]) == (1.0, 2.0)


def test_summarize():
  got = ic.ImageClassificationTask.summarize(
      {"loss_sum": 6.0, "top1": 3.0, "top5": 4.0, "count": 4.0}
  )
  assert got == {"loss": 1.5, "top1": 0.75, "top5": 1.0, "error": 0.25}
  # Only the sums given (the trainer's log may pass just some).
  assert ic.ImageClassificationTask.summarize({"count": 4.0}) == {}
  assert ic.ImageClassificationTask.summarize({"top1": 1.0, "count": 2.0}) == {
      "top1": 0.5,
      "error": 0.5,
  }
  assert ic.ImageClassificationTask.summarize(
      {"loss_sum": 0.0, "count": 0.0}
  ) == {"loss": 0.0}
  with pytest.raises(KeyError):
    ic.ImageClassificationTask.summarize({"top1": 1.0})
  assert ic.ImageClassificationTask.headline_metric == "error"


# -------------------------------------------------------------- validation --


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"data.name": "fashion"}, "not an image source.*fashion_mnist"),
        ({"data.name": "mnist"}, r"not an image source; valid: \['fashion"),
        ({"data.path": "/nonexistent/fm"}, "does not exist.*apt-get install"),
        (
            {"data.label_smoothing": 1.0},
            r"label_smoothing=1.0 must be .*\[0, 1\)",
        ),
        ({"data.label_smoothing": -0.1}, r"label_smoothing=-0.1 must be"),
        ({"data.image_size": 32}, "image_size=32 is larger.*crop size <= 28"),
        ({"data.image_size": -1}, "image_size=-1 must be an int >= 0"),
        ({"data.valid_examples": 0}, "valid_examples=0 must be an int >= 1"),
        ({"data.data_dir": "/x"}, "data.data_dir='/x' is for .*imagenet2012"),
        ({"eval.split": "dev"}, r"eval.split='dev'; use one of \['train'"),
        ({"seed": -1}, "seed=-1.*int >= 0"),
        (
            {"data.name": "imagenet2012", "data.path": ""},
            "imagenet2012' needs data.data_dir",
        ),
        (
            {"data.name": "imagenet2012", "data.data_dir": "/x"},
            "data.path=.* is for data.name='fashion_mnist'",
        ),
        (
            {
                "data.name": "imagenet2012",
                "data.path": "",
                "data.data_dir": "/nonexistent/tfds",
            },
            "data.data_dir='/nonexistent/tfds' is not a directory",
        ),
        (
            {
                "data.name": "imagenet2012",
                "data.path": "",
                "data.data_dir": "/tmp",
                "eval.split": "test",
            },
            "imagenet2012 has no labelled test split.*valid",
        ),
    ],
)
def test_validate_config_errors(data_dir, overrides, message):
  root, _ = data_dir
  config = make_config(root, **overrides)
  with pytest.raises(ValueError, match=message):
    ic.validate_config(config)
  # The same through the start-up validation, as a ConfigError.
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(config, num_devices=1)


def test_validate_config_rejects_non_bool_flags(data_dir):
  root, _ = data_dir
  for key in ("augment", "deterministic"):
    d = make_config(root).to_dict()
    d["data"][key] = 1  # a typed ConfigDict refuses this; JSON does not
    with pytest.raises(ValueError, match=f"data.{key} must be True or False"):
      ic.validate_config(ml_collections.ConfigDict(d))


def test_validate_config_accepts_and_skips_data_checks(data_dir):
  root, _ = data_dir
  ic.validate_config(make_config(root))
  ic.validate_config(make_config(root, **{"data.image_size": 20}))
  missing = make_config("/nonexistent/fm")
  ic.validate_config(missing, check_data=False)  # eval on another machine
  missing.data.path = ""  # the Debian directory
  if HAVE_REAL:
    ic.validate_config(missing)


# --------------------------------------------------------------- imagenet --


class _FakeImageNet:
  """Records how the task drives `imagenet.ImageNetInput`."""

  calls: ClassVar[list] = []
  num_classes = 1000
  image_shape = (32, 32, 3)

  def __init__(self, data_dir, **kw):
    self.calls.append(("init", data_dir, kw))

  def train_batch(self, step):
    return {"step": step}

  def eval_batches(self, split, *, batch_size, num_batches=0):
    self.calls.append(("eval", split, batch_size, num_batches))
    return iter([])

  def num_examples(self, split):
    return {"train": 1000, "valid": 50}[split]

  def describe(self):
    return {"train_examples": 1000}


def test_imagenet_source_is_delegated(data_dir, monkeypatch, tmp_path):
  fake = types.ModuleType("algebranets.data.imagenet")
  fake.ImageNetInput = _FakeImageNet
  _FakeImageNet.calls = []
  monkeypatch.setitem(sys.modules, "algebranets.data.imagenet", fake)
  monkeypatch.setattr(algebranets.data, "imagenet", fake, raising=False)
  fake.prepare = lambda data_dir, manual_dir: _FakeImageNet.calls.append(
      ("prepare", data_dir, manual_dir)
  )
  config = make_config(
      "",
      **{
          "data.name": "imagenet2012",
          "data.data_dir": str(tmp_path),
          "data.image_size": 32,
          "data.augment": False,
      },
  )
  ic.validate_config(config)
  task = ic.ImageClassificationTask(config, process_index=1, process_count=2)
  assert _FakeImageNet.calls[0] == (
      "init",
      str(tmp_path),
      dict(
          image_size=32,
          global_batch=8,
          seed=0,
          process_index=1,
          process_count=2,
          deterministic=True,
          augment=False,
      ),
  )
  assert task.num_classes == 1000 and task.image_shape == (32, 32, 3)
  assert task.train_batch(7) == {"step": 7}
  list(task.eval_batches("valid", batch_size=16, num_batches=2))
  assert _FakeImageNet.calls[-1] == ("eval", "valid", 16, 2)
  assert task.num_eval_batches("valid", 16) == 4
  assert task.describe()["source"] == "imagenet2012"
  assert task.example_batch(2)["images"].shape == (2, 32, 32, 3)
  with pytest.raises(ValueError, match="no labelled test split"):
    task.eval_batches("test", batch_size=16)
  # image_size 0 is ImageNet's native 224.
  config.data.image_size = 0
  ic.ImageClassificationTask(config)
  assert _FakeImageNet.calls[-1][2]["image_size"] == 224
  # With manual archives, a single process prepares data_dir first; several
  # processes never do (they would race).
  assert not [c for c in _FakeImageNet.calls if c[0] == "prepare"]
  config.data.manual_dir = str(tmp_path / "archives")
  ic.ImageClassificationTask(config)
  assert _FakeImageNet.calls[-2:] == [
      ("prepare", str(tmp_path), str(tmp_path / "archives")),
      _FakeImageNet.calls[-1],
  ]
  assert _FakeImageNet.calls[-1][0] == "init"
  n = len(_FakeImageNet.calls)
  ic.ImageClassificationTask(config, process_index=0, process_count=2)
  assert [c[0] for c in _FakeImageNet.calls[n:]] == ["init"]


def test_fashion_path_never_imports_tensorflow(data_dir):
  root, _ = data_dir
  code = (
      "import sys\n"
      "from algebranets.training import config_lib\n"
      "from algebranets.tasks import image_classification as ic\n"
      "c = config_lib.base_config('image_classification', 'transformer_lm')\n"
      f"c.data.path = {str(root)!r}\n"
      "c.data.valid_examples = 20\n"
      "ic.validate_config(c)\n"
      "t = ic.ImageClassificationTask(c)\n"
      "t.train_batch(0); next(t.eval_batches('test', batch_size=4))\n"
      "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
      "print('ok')\n"
  )
  out = subprocess.run(
      [sys.executable, "-c", code],
      capture_output=True,
      text=True,
      cwd=ROOT,
      timeout=120,
  )
  assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


# -------------------------------------------------------------- end to end --


def test_train_and_evaluate_smoke(data_dir, tmp_path):
  root, _ = data_dir
  config = make_config(root, **{"data.label_smoothing": 0.1})
  final = trainer.train_and_evaluate(config, tmp_path)
  assert set(final) == {"loss", "top1", "top5", "error"}
  assert all(math.isfinite(v) for v in final.values())
  assert final["error"] == pytest.approx(1 - final["top1"])
  # 20 valid images; accuracies are multiples of 1/20.
  assert final["top1"] * 20 == pytest.approx(round(final["top1"] * 20))
  saved = json.loads((tmp_path / "final_metrics.json").read_text())
  assert saved["step"] == 3 and saved["split"] == "valid"
  acc = json.loads((tmp_path / "accounting.json").read_text())
  assert acc["params_real_io"] > 0 and acc["params_algebra"] > 0
  # stem 3x3 conv to 2 C channels (4 reals) on 28x28 + algebra 3x3 conv 2->2
  # at 14x14 (4 real MACs per product) + head 4 -> 10.
  want = 28 * 28 * 9 * 4 + 14 * 14 * 9 * 2 * 2 * 4 + 4 * 10
  assert acc["macs_per_example"] == want
  data = json.loads((tmp_path / "data.json").read_text())
  assert data["train_examples"] == 50 and data["source"] == "fashion_mnist"
  test = evaluator.evaluate_workdir(tmp_path, split="test")
  assert test["split"] == "test" and 0 <= test["error"] <= 1
  assert test["top1"] * 23 == pytest.approx(round(test["top1"] * 23))


# ------------------------------------------------------------------ config --


def _load_config_module():
  return config_lib.load_config_file(CONFIG_FILE)


def _resnet_module():
  try:
    from algebranets.models import resnet
  except ImportError:
    return None
  return resnet


@pytest.fixture
def resnet_registered(monkeypatch):
  """'resnet' in the model registry for this test: as registered by
  models/__init__.py, else registered here and removed afterwards."""
  if "resnet" in models.names():
    return
  resnet = _resnet_module()
  spec = models.ModelSpec(
      resnet.NAME, resnet.ResNet, runtime_args=("num_classes",)
  )
  monkeypatch.setitem(models.registry._REGISTRY, resnet.NAME, spec)


needs_resnet = pytest.mark.skipif(
    "resnet" not in models.names() and _resnet_module() is None,
    reason="algebranets.models.resnet is not available",
)


@needs_resnet
def test_config_file(data_dir, tmp_path, resnet_registered):
  module = _load_config_module()
  assert "python -m experiments.train" in module.__doc__
  config = module.get_config()
  config_lib.validate(config, num_devices=1, check_data=False)
  assert config.task == ic.NAME and config.model.name == "resnet"
  assert config.model.stem == "cifar" and config.model.block == "basic"
  assert config.data.label_smoothing == 0.1
  assert config.optimizer.name == "sgd" and config.optimizer.nesterov
  assert config.optimizer.schedule == "cosine"
  assert config.optimizer.warmup_steps > 0
  assert not config.data.augment  # a short run: see the config docstring
  h = module.get_config("algebra=H,width=2.0,steps=100,seed=3,augment")
  assert (h.model.algebra, h.model.width_multiplier) == ("H", 2.0)
  assert (h.train.num_steps, h.seed, h.data.augment) == (100, 3, True)
  assert h.optimizer.warmup_steps == 5
  with pytest.raises(config_lib.ConfigError, match="Unknown config arg"):
    module.get_config("algebre=H")
  points = []
  module.sweep(lambda **kw: points.append(kw))
  assert {"model.algebra": "R", "model.width_multiplier": 1.0} in points
  assert {"model.algebra": "H", "model.width_multiplier": 2.0} in points
  assert len(points) == 7
  more = []
  module.sweep(lambda **kw: more.append(kw), "sweep_sparsity")
  assert len(more) == 11 and more[-1]["sparsity.target"] == 0.95
  # runlocal: one step on the generated files.
  small = module.get_config("runlocal")
  assert small.train.num_steps <= 200
  small.data.path = str(data_dir[0])
  small.data.valid_examples = 20
  small.train.num_steps = 1
  small.optimizer.warmup_steps = 0
  small.eval.every_steps = 0
  small.eval.batch_size = 10
  final = trainer.train_and_evaluate(small, tmp_path)
  assert set(final) == {"loss", "top1", "top5", "error"}


@pytest.mark.slow
@needs_resnet
@pytest.mark.skipif(
    not HAVE_REAL,
    reason=f"{REAL_DIR} absent: apt-get install dataset-fashion-mnist",
)
def test_config_reaches_80_percent_test_accuracy(tmp_path, resnet_registered):
  module = _load_config_module()
  config = module.get_config()
  final = trainer.train_and_evaluate(config, tmp_path)
  assert final["top1"] > 0.8
  test = evaluator.evaluate_workdir(tmp_path, split="test")
  assert test["top1"] > 0.8, test


@needs_resnet
def test_config_dict_is_primitives_only(resnet_registered):
  config = _load_config_module().get_config()
  for leaf in jax.tree.leaves(config.to_dict()):
    assert isinstance(leaf, (str, int, float, bool)), leaf
  assert isinstance(config, ml_collections.ConfigDict)
