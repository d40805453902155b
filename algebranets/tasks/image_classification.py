"""Image classification (Fashion-MNIST, ImageNet), scored by top-1 error.

Data sources (`data.name`):
  fashion_mnist  the original idx files (`algebranets.data.fashion_mnist`) in
                 `data.path` ('' = /usr/share/datasets/fashion-mnist, Debian's
                 dataset-fashion-mnist). 'train' is the official training set
                 minus its last `data.valid_examples` images, which are
                 'valid'; 'test' is the official 10,000-image test set.
                 Pixels are normalised to zero mean and unit variance with
                 the statistics of the 'train' split. Training augmentation
                 (`data.augment`): a random translation by up to 2 pixels
                 (zero padding by 2, then a random crop) and a random
                 horizontal flip.
  imagenet2012   TFDS's imagenet2012 through `algebranets.data.imagenet`
                 (`data.data_dir` = the TFDS data directory; with
                 `data.manual_dir` = the directory of the original archives
                 a single-process run prepares it there first if needed);
                 'valid' is the 50,000-image validation set and there is no
                 labelled 'test' split. TensorFlow is imported only here.

Training batches are a pure function of (seed, step): example k of the run
(k = step * B + row) is element k mod N of the permutation of epoch k // N,
drawn from `np.random.default_rng((seed, epoch))`, and its augmentation from
`(seed, step, tag)`. There is no iterator state, a resumed run sees the
batches of an uninterrupted one, and each process of a multi-host job builds
only its own rows. Evaluation walks a whole split in order; the last batch is
padded with zero-weight rows.

Metrics: `loss` (cross entropy in nats; `data.label_smoothing` applies to
the training loss only), `top1` and `top5` accuracy, `error` = 1 - top1
(the headline metric, lower is better).

Shape glossary: B = batch (global unless "local"), S = image size,
c = image channels (1 for Fashion-MNIST, 3 for ImageNet), K = classes.
"""

from __future__ import annotations

import numbers
import pathlib
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from algebranets import models
from algebranets.data import fashion_mnist, process_rows
from algebranets.tasks import registry
from algebranets.tasks.base import Task

NAME = "image_classification"
SOURCES = ("fashion_mnist", "imagenet2012")
SPLITS = ("train", "valid", "test")
NATIVE_SIZE = {"fashion_mnist": fashion_mnist.IMAGE_SIZE, "imagenet2012": 224}
# Fashion-MNIST augmentation: translations of up to this many pixels.
MAX_SHIFT = 2
TOP_K = 5
# Third word of the augmentation seed, so the augmentation stream of step s
# never equals the permutation stream of epoch s (NumPy's SeedSequence
# treats (a, b) and (a, b, 0) as the same seed).
_AUGMENT_TAG = 0x61756700


def data_defaults() -> dict[str, Any]:
  return dict(
      name="fashion_mnist",  # 'fashion_mnist' | 'imagenet2012'
      path="",  # fashion_mnist: idx directory ('' = fashion_mnist.DEFAULT_DIR)
      data_dir="",  # imagenet2012: TFDS data_dir (prepared)
      manual_dir="",  # imagenet2012: directory of the manual archives
      image_size=0,  # 0 = the source's native size (28 / 224)
      augment=True,  # training augmentation (see the module docstring)
      label_smoothing=0.0,  # training loss only
      valid_examples=5000,  # fashion_mnist: held out from the end of train
      deterministic=True,  # imagenet2012: deterministic tf.data order
  )


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def validate_config(config, *, check_data: bool = True) -> None:
  """Task-level checks of `config.data`, `config.eval.split` and the seed.

  Raises:
    ValueError: naming the key, its value and the fix.
  """
  data = config.data
  if data.name not in SOURCES:
    close = [s for s in SOURCES if s[:4] == str(data.name)[:4]]
    hint = f' Did you mean "{close[0]}"?' if close else ""
    raise ValueError(
        f"data.name={data.name!r} is not an image source; valid: "
        f"{list(SOURCES)}.{hint}"
    )
  if not _is_int(config.seed) or config.seed < 0:
    raise ValueError(
        f"seed={config.seed!r}: the image task seeds its data order with it "
        "and needs an int >= 0, e.g. --config.seed=0."
    )
  for key in ("augment", "deterministic"):
    if not isinstance(data[key], bool):
      raise ValueError(f"data.{key} must be True or False, got {data[key]!r}.")
  ls = data.label_smoothing
  if (
      not isinstance(ls, numbers.Real)
      or isinstance(ls, bool)
      or not (0.0 <= ls < 1.0)
  ):
    raise ValueError(
        f"data.label_smoothing={ls!r} must be a number in [0, 1), e.g. 0.1 "
        "(0 = no smoothing)."
    )
  size = data.image_size
  if not _is_int(size) or size < 0:
    raise ValueError(
        f"data.image_size={size!r} must be an int >= 0 (0 = the native size "
        f"of the source: {NATIVE_SIZE})."
    )
  if config.eval.split not in SPLITS:
    raise ValueError(
        f"eval.split={config.eval.split!r}; use one of {list(SPLITS)}."
    )
  if data.name == "fashion_mnist":
    _validate_fashion(data, check_data)
  else:
    _validate_imagenet(config, check_data)


def _validate_fashion(data, check_data: bool) -> None:
  native = fashion_mnist.IMAGE_SIZE
  if data.image_size > native:
    raise ValueError(
        f"data.image_size={data.image_size} is larger than Fashion-MNIST's "
        f"{native} x {native} images; use 0 or {native} (native) or a crop "
        f"size <= {native}."
    )
  if not _is_int(data.valid_examples) or data.valid_examples < 1:
    raise ValueError(
        f"data.valid_examples={data.valid_examples!r} must be an int >= 1 "
        "(training images held out for 'valid'), e.g. 5000."
    )
  for key in ("data_dir", "manual_dir"):
    if data[key]:
      raise ValueError(
          f"data.{key}={data[key]!r} is for data.name='imagenet2012'; "
          "Fashion-MNIST reads data.path (the idx directory). Clear it with "
          f"--config.data.{key}=''."
      )
  if check_data:
    try:
      fashion_mnist.find_files(data.path or fashion_mnist.DEFAULT_DIR)
    except FileNotFoundError as e:
      raise ValueError(f"data.path={data.path!r}: {e}") from None


def _validate_imagenet(config, check_data: bool) -> None:
  data = config.data
  if config.eval.split == "test":
    raise ValueError(_IMAGENET_NO_TEST)
  if data.path:
    raise ValueError(
        f"data.path={data.path!r} is for data.name='fashion_mnist'; "
        "imagenet2012 reads data.data_dir (prepared TFDS data) and "
        "data.manual_dir (the original archives). Clear it with "
        "--config.data.path=''."
    )
  # Without check_data (config linting, sweeps expanded on a laptop) the
  # data location may legitimately be filled in later.
  if check_data and not data.data_dir:
    raise ValueError(
        "data.name='imagenet2012' needs data.data_dir: the TFDS data "
        "directory holding (or to hold) the prepared imagenet2012, e.g. "
        "--config.data.data_dir=/data/tfds; with data.manual_dir=DIR "
        "holding ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar it is "
        "prepared there first."
    )
  if check_data:
    for key in ("data_dir", "manual_dir"):
      if data[key] and not pathlib.Path(data[key]).is_dir():
        raise ValueError(
            f"data.{key}={data[key]!r} is not a directory; create it or "
            f"point --config.data.{key} at the right place."
        )


_IMAGENET_NO_TEST = (
    "imagenet2012 has no labelled test split; evaluate on 'valid' (the "
    "50,000 validation images): --config.eval.split=valid or --split=valid."
)


class _FashionSource:
  """Fashion-MNIST in memory: splits, normalisation and step-keyed batches."""

  num_classes = fashion_mnist.NUM_CLASSES

  def __init__(
      self,
      data_cfg,
      *,
      seed: int,
      global_batch: int,
      process_index: int,
      process_count: int,
  ):
    self.process = (process_index, process_count)
    self.rows = process_rows.local_rows(
        global_batch, process_index, process_count
    )
    raw = fashion_mnist.load(data_cfg.path or fashion_mnist.DEFAULT_DIR)
    images, labels = raw["train"]
    held = data_cfg.valid_examples
    if held >= images.shape[0]:
      raise ValueError(
          f"data.valid_examples={held} leaves no training images (the "
          f"training set has {images.shape[0]}); lower it, e.g. "
          f"{images.shape[0] // 12}."
      )
    cut = images.shape[0] - held
    self.splits = {
        "train": (images[:cut], labels[:cut]),
        "valid": (images[cut:], labels[cut:]),
        "test": raw["test"],
    }
    self.size = data_cfg.image_size or fashion_mnist.IMAGE_SIZE
    self.image_shape = (self.size, self.size, 1)
    self.augment = data_cfg.augment
    self.seed = seed
    self.global_batch = global_batch
    train = self.splits["train"][0].astype(np.float64) / 255.0
    self.mean, self.std = float(train.mean()), float(train.std())
    # uint8 pixel -> normalised float32, one lookup per pixel.
    self._lut = ((np.arange(256) / 255.0 - self.mean) / self.std).astype(
        np.float32
    )
    self._perms: dict[int, np.ndarray] = {}

  def num_examples(self, split: str) -> int:
    return int(self.splits[split][1].shape[0])

  def _permutation(self, epoch: int) -> np.ndarray:
    if epoch not in self._perms:
      if len(self._perms) >= 4:  # a batch spans at most a few epochs
        self._perms.pop(next(iter(self._perms)))
      n = self.num_examples("train")
      self._perms[epoch] = np.random.default_rng(
          (self.seed, epoch)
      ).permutation(n)
    return self._perms[epoch]

  def _crop(self, images: np.ndarray, dy: np.ndarray, dx: np.ndarray):
    """Crops of size S at offsets (dy, dx) from the images padded by
    MAX_SHIFT; uint8 [n, 28, 28] -> float32 [n, S, S, 1]."""
    pad = MAX_SHIFT
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    ar = np.arange(self.size)
    ys = (dy[:, None] + ar)[:, :, None]
    xs = (dx[:, None] + ar)[:, None, :]
    crops = padded[np.arange(images.shape[0])[:, None, None], ys, xs]
    return self._lut[crops][..., None]

  def _center(self) -> int:
    # Offset of the centred crop in padded coordinates.
    return (fashion_mnist.IMAGE_SIZE - self.size) // 2 + MAX_SHIFT

  def train_batch(self, step: int) -> dict[str, np.ndarray]:
    images, labels = self.splits["train"]
    n = labels.shape[0]
    b = self.global_batch
    k = step * b + np.arange(b)[self.rows]
    epochs, pos = np.divmod(k, n)
    idx = np.empty_like(pos)
    for epoch in np.unique(epochs):
      sel = epochs == epoch
      idx[sel] = self._permutation(int(epoch))[pos[sel]]
    # Drawn for the whole global batch, so a row's augmentation does not
    # depend on the process count.
    rng = np.random.default_rng((self.seed, step, _AUGMENT_TAG))
    shift = rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, size=(2, b))[:, self.rows]
    flip = rng.random(b)[self.rows] < 0.5
    if not self.augment:
      shift, flip = np.zeros_like(shift), np.zeros_like(flip)
    c = self._center()
    out = self._crop(images[idx], c + shift[0], c + shift[1])
    out = np.where(flip[:, None, None, None], out[:, :, ::-1], out)
    return {"images": out, "labels": labels[idx].astype(np.int32)}

  def eval_batches(
      self, split: str, *, batch_size: int, num_batches: int = 0
  ) -> Iterator[dict[str, np.ndarray]]:
    images, labels = self.splits[split]
    n = labels.shape[0]
    rows = process_rows.local_rows(batch_size, *self.process)
    total = -(-n // batch_size)
    if num_batches > 0:
      total = min(total, num_batches)
    c = self._center()
    for b in range(total):
      k = np.arange(b * batch_size, (b + 1) * batch_size)[rows]
      valid = k < n
      idx = np.where(valid, k, 0)
      offset = np.full(idx.shape, c)
      yield {
          "images": self._crop(images[idx], offset, offset),
          "labels": np.where(valid, labels[idx], 0).astype(np.int32),
          "weights": valid.astype(np.float32),
      }

  def describe(self) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for split in SPLITS:
      labels = self.splits[split][1]
      out[f"{split}_examples"] = int(labels.size)
      counts = np.bincount(labels, minlength=self.num_classes)
      # Error of always predicting the most frequent training class.
      majority = int(np.argmax(np.bincount(self.splits["train"][1])))
      out[f"{split}_majority_error"] = float(
          1.0 - counts[majority] / max(labels.size, 1)
      )
    out["pixel_mean"] = self.mean
    out["pixel_std"] = self.std
    return out


def classification_loss(
    logits: jax.Array,
    labels: jax.Array,
    weights: jax.Array | None = None,
    *,
    label_smoothing: float = 0.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The task's loss and metric sums from logits (pure; `model_fn`'s).

  Args:
    logits: [B, K] (any float dtype; computed in float32).
    labels: int [B].
    weights: float [B] (0 on padding rows); None = all 1.
    label_smoothing: a; the loss's target is (1 - a) * onehot + a / K.

  Returns:
    (weighted mean smoothed loss, sums 'loss_sum' (unsmoothed cross
    entropy), 'top1', 'top5' (weighted correct counts), 'count' (sum of
    weights)), float32 scalars.
  """
  logits = logits.astype(jnp.float32)
  logp = jax.nn.log_softmax(logits, axis=-1)
  ce = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
  if weights is None:
    weights = jnp.ones_like(ce)
  weights = weights.astype(jnp.float32)
  loss = ce
  if label_smoothing > 0:
    a = label_smoothing
    loss = (1.0 - a) * ce - a * jnp.mean(logp, axis=-1)
  k = min(TOP_K, logits.shape[-1])
  _, top = jax.lax.top_k(logits, k)  # ties: the lower class index first
  hit = top == labels[:, None]
  count = jnp.sum(weights)
  sums = {
      "loss_sum": jnp.sum(ce * weights),
      "top1": jnp.sum(hit[:, 0].astype(jnp.float32) * weights),
      "top5": jnp.sum(jnp.any(hit, axis=-1).astype(jnp.float32) * weights),
      "count": count,
  }
  return jnp.sum(loss * weights) / jnp.maximum(count, 1.0), sums


class ImageClassificationTask(Task):
  """The image classification task of one run (the trainer's interface).

  Batches are dicts of NumPy arrays with the batch on axis 0: 'images'
  float32 [B, S, S, c] and 'labels' int32 [B]; evaluation batches add
  'weights' float32 [B] (0 on padding rows).
  """

  metric_names = ("loss", "top1", "top5", "error")
  # The keys of model_fn's sums (what `summarize` reads).
  sum_names = ("loss_sum", "top1", "top5", "count")
  input_keys = ("images",)
  # Lower is better for the headline metric (sweep tables, best checkpoint).
  headline_metric = "error"

  def __init__(self, config, *, process_index: int = 0, process_count: int = 1):
    """Loads the data (fails with the missing file and the fix).

    Raises:
      ValueError: data too small for `data.valid_examples`, or the batch not
        divisible by the process count.
      FileNotFoundError: Fashion-MNIST files missing.
    """
    self.config = config
    self.process_index = process_index
    self.process_count = process_count
    self.source_name = config.data.name
    self.label_smoothing = float(config.data.label_smoothing)
    batch = config.train.batch_size
    if self.source_name == "fashion_mnist":
      self.source = _FashionSource(
          config.data,
          seed=config.seed,
          global_batch=batch,
          process_index=process_index,
          process_count=process_count,
      )
    else:
      # Lazily: only ImageNet needs TensorFlow.
      from algebranets.data import imagenet

      if config.data.manual_dir and process_count == 1:
        # Builds TFDS's imagenet2012 from the archives unless data_dir
        # already holds it (then the archives are not read). Several
        # processes must not build it concurrently: they need it prepared
        # beforehand (ImageNetInput's error names the command).
        imagenet.prepare(config.data.data_dir, config.data.manual_dir)
      self.source = imagenet.ImageNetInput(
          config.data.data_dir,
          image_size=config.data.image_size or NATIVE_SIZE["imagenet2012"],
          global_batch=batch,
          seed=config.seed,
          process_index=process_index,
          process_count=process_count,
          deterministic=config.data.deterministic,
          augment=config.data.augment,
      )
    self.num_classes = int(self.source.num_classes)
    self.image_shape = tuple(self.source.image_shape)

  # ---------------------------------------------------------------- model --
  def _model(self):
    return models.build(self.config.model, num_classes=self.num_classes)

  def model_fn(
      self, batch: dict[str, jax.Array], is_training: bool
  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Loss and metric sums; call inside `hk.transform_with_state`.

    Args:
      batch: 'images' float [B, S, S, c], 'labels' int [B], optionally
        'weights' float [B] (default 1).
      is_training: training mode (batch statistics, label smoothing).

    Returns:
      (weighted mean loss, sums): the loss is smoothed with
      `data.label_smoothing` when training; sums are 'loss_sum' (unsmoothed
      cross entropy), 'top1', 'top5' (weighted correct counts) and 'count'
      (sum of weights), all float32 scalars.
    """
    logits = self._model()(batch["images"], is_training=is_training)
    return classification_loss(
        logits,
        batch["labels"],
        batch.get("weights"),
        label_smoothing=self.label_smoothing if is_training else 0.0,
    )

  def macs_fn(self):
    """(untransformed fn, args) for `metrics.count_macs` on one image."""

    def fn(images):
      return self._model()(images, is_training=False)

    return fn, (jax.ShapeDtypeStruct((1, *self.image_shape), jnp.float32),)

  def example_batch(
      self, batch_size: int, is_training: bool = True
  ) -> dict[str, np.ndarray]:
    """Zeros of a batch's shapes ('weights' added for evaluation)."""
    batch = {
        "images": np.zeros((batch_size, *self.image_shape), np.float32),
        "labels": np.zeros((batch_size,), np.int32),
    }
    if not is_training:
      batch["weights"] = np.zeros((batch_size,), np.float32)
    return batch

  # ----------------------------------------------------------------- data --
  def _check_split(self, split: str) -> None:
    if split not in SPLITS:
      raise ValueError(f"Unknown split {split!r}; valid: {list(SPLITS)}.")
    if self.source_name == "imagenet2012" and split == "test":
      raise ValueError(_IMAGENET_NO_TEST)

  def train_batch(self, step: int) -> dict[str, np.ndarray]:
    """This process's rows of the training batch of `step`.

    Returns:
      {'images': float32 [B/P, S, S, c], 'labels': int32 [B/P]}; a function
      of (config.seed, step) only.
    """
    return self.source.train_batch(step)

  def eval_batches(
      self, split: str, *, batch_size: int, num_batches: int = 0
  ) -> Iterator[dict[str, np.ndarray]]:
    """This process's rows of the evaluation batches of `split`, in order.

    Args:
      split: 'train', 'valid' or 'test'.
      batch_size: global batch.
      num_batches: stop after this many; 0 = the whole split.

    Yields:
      {'images': float32 [B/P, S, S, c], 'labels': int32 [B/P],
       'weights': float32 [B/P]}; the last batch is padded with weight 0.
    """
    self._check_split(split)
    return self.source.eval_batches(
        split, batch_size=batch_size, num_batches=num_batches
    )

  def num_eval_batches(self, split: str, batch_size: int) -> int:
    self._check_split(split)
    return -(-self.source.num_examples(split) // batch_size)

  # -------------------------------------------------------------- metrics --
  @staticmethod
  def summarize(sums: dict[str, float]) -> dict[str, float]:
    """Metrics from summed 'loss_sum', 'top1', 'top5' and 'count'.

    A metric whose sum is absent is left out ('error' needs 'top1'), so a
    caller that forwards only some sums still gets the others.

    Raises:
      KeyError: 'count' is missing.
    """
    count = max(float(sums["count"]), 1.0)
    out = {}
    if "loss_sum" in sums:
      out["loss"] = float(sums["loss_sum"]) / count
    for key in ("top1", "top5"):
      if key in sums:
        out[key] = float(sums[key]) / count
    if "top1" in sums:
      out["error"] = 1.0 - out["top1"]
    return out

  def describe(self) -> dict[str, Any]:
    """Split sizes, the majority-class error to beat and the source's
    own details."""
    out = {
        "source": self.source_name,
        "num_classes": self.num_classes,
        "image_size": self.image_shape[0],
    }
    out.update(self.source.describe())
    return out


def _build(config, *, process_index: int = 0, process_count: int = 1):
  return ImageClassificationTask(
      config, process_index=process_index, process_count=process_count
  )


registry.register(
    registry.TaskSpec(
        name=NAME,
        data_defaults=data_defaults,
        validate_config=validate_config,
        build=_build,
    )
)
