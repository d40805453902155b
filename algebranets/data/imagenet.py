"""ImageNet (ILSVRC 2012) input pipeline on TFDS's ``imagenet2012``.

Preparing. ImageNet cannot be downloaded without registering at
https://image-net.org/download-images, so the user fetches
``ILSVRC2012_img_train.tar`` (138 GB) and ``ILSVRC2012_img_val.tar``
(6.3 GB) into a "manual" directory and runs once::

    python -m algebranets.data.imagenet --data_dir D --manual_dir M

which builds TFDS's own ``imagenet2012`` (version 5.1.0) in ``D`` with
``download_and_prepare`` (``DownloadConfig(manual_dir=M,
try_download_gcs=False)``: nothing is fetched from the network; ~145 GB of
TFRecord shards are written). Preparing takes hours on the real archives.
Reading never prepares or downloads: an unprepared ``data_dir`` raises a
``ValueError`` that names the command.

Training batches (`ImageNetInput.train_batch`). Process p of P reads its
share of the train split, ``tfds.even_splits('train', P)[p]`` (n_p records,
the shares differ by at most one; together they are the whole split, each
record once). The share is cut into K = min(`NUM_CHUNKS`, n_p) contiguous
chunks (again ``even_splits``). Epoch e of the share is:

  1. the chunks in a random order (a stateless permutation keyed by
     (seed, p, e)), each read sequentially;
  2. that stream cut into windows of W = min(``shuffle_buffer``, n_p)
     records, the first window shortened to a random length (keyed by
     (seed, p, e)) so window boundaries move from epoch to epoch;
  3. each window permuted uniformly (keyed by (seed, p, e, window)).

TFDS stored the records in a hashed (random) order when it prepared them,
so a chunk is already a random sample of its classes; steps 1-3 give every
epoch a different order and different batch compositions. Epochs follow
each other without a gap (a batch may straddle two). The row r of step s on
process p has the global example index g = s * B + p * B/P + r (B: the
global batch), and its augmentation (crop, flip) is drawn from stateless
random ops keyed by (seed, g). Every random choice is a pure function of
(seed, process, epoch, position), so the batch of step s does not depend
on where the pipeline started: ``train_batch(s)`` after a restart equals
the uninterrupted pipeline's batch s (with ``deterministic=True``).

Positioning at step s (a restart, or any call whose step is not the next
one) starts at epoch e0 = floor(s * B/P / n_p) with no cost for earlier
epochs. Inside e0, chunks wholly before the position are not read at all;
the records before it in the current chunk and in the current window are
read and parsed (serialized JPEG bytes, never decoded) and dropped: at most
n_p / K + W records, e.g. 20,000 + 10,000 records (~3.3 GB of reads, a few
seconds on local disk) for one process on the full train split.

Building a pipeline traces one TFDS reader per chunk (~0.1 s each, a few
seconds for K = 64); the readers are reused by later repositionings.

Memory: a window holds W serialized images (~110 KB each on average); the
pipeline keeps up to three windows, ~3.3 GB at the default W = 10,000.

Evaluation (`ImageNetInput.eval_batches`): the whole split, each process
its ``even_splits`` share in stored order; shorter side resized to
``eval_resize``, central S x S crop (the standard ResNet evaluation); the
last batch padded with zero-weight rows and every process yielding
ceil(N / B) batches.

Augmentation (`preprocess_train`): Inception-style crop (area 8%-100% of
the image, aspect ratio 3/4-4/3, 10 attempts, else a central crop of
S / (S + 32) of the shorter side), resized to S x S, random horizontal
flip. Both paths normalize with the ImageNet mean and standard deviation
(`MEAN_RGB`, `STDDEV_RGB`, on the 0-255 scale). JPEGs are decoded with
libjpeg's exact integer IDCT (as PIL does) and resized bilinearly with
antialiasing (a triangle filter widened when shrinking, as PIL's
``BILINEAR``): the evaluation crop matches PIL + numpy to within one level
of 255.

TensorFlow is imported on first use only (``import algebranets`` stays
TF-free) and is kept off the GPUs, which belong to JAX.

Shape glossary: B = global batch, P = process count, b = B / P rows on this
process, S = image_size, N = examples in a split.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import pathlib
import sys
import tarfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from absl import logging

__all__ = [
    "MEAN_RGB",
    "NUM_CHUNKS",
    "NUM_CLASSES",
    "STDDEV_RGB",
    "ImageNetInput",
    "main",
    "prepare",
    "preprocess_eval",
    "preprocess_train",
]

NAME = "imagenet2012"
NUM_CLASSES = 1000
TRAIN_TAR = "ILSVRC2012_img_train.tar"
VALID_TAR = "ILSVRC2012_img_val.tar"
# Our split names -> TFDS's. ImageNet's test split has no labels.
SPLITS = {"train": "train", "valid": "validation"}
MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)
CROP_AREA_RANGE = (0.08, 1.0)
CROP_ASPECT_RANGE = (3 / 4, 4 / 3)
CROP_MAX_ATTEMPTS = 10
# Fallback crop: S / (S + 32) of the shorter side (224 / 256 at S = 224),
# the central crop of the reference TF ResNet pipeline.
CENTER_CROP_PADDING = 32
# libjpeg's exact integer IDCT: TF's default (the fast one) is off by up to
# ~6 levels; this one decodes as PIL and libjpeg's reference do, for a few
# percent more decoding time.
_DCT_METHOD = "INTEGER_ACCURATE"
# Chunks per process share and epoch (see the module docstring).
NUM_CHUNKS = 64

# Tags separating the random streams drawn from one seed.
_TAG_CHUNKS, _TAG_PHASE, _TAG_WINDOW, _TAG_AUGMENT = 1, 2, 3, 4

_PREPARE_HINT = (
    "python -m algebranets.data.imagenet --data_dir {data_dir} "
    "--manual_dir DIR  (DIR holding " + TRAIN_TAR + " and " + VALID_TAR + ", "
    "downloaded after registering at https://image-net.org/download-images)"
)

_TF = None


def _tf():
  """TensorFlow, imported on first use: quiet, and without GPUs."""
  global _TF
  if _TF is None:
    # Only the import's own C++ logs (CPU feature notices etc.) are hidden;
    # the variable is restored so JAX's logging is untouched.
    old = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
      import tensorflow as tf
    finally:
      if old is None:
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
    # The accelerators belong to JAX; tf.data runs on the host CPU. (A
    # RuntimeError: TF's devices were initialised before us, too late.)
    with contextlib.suppress(RuntimeError):
      tf.config.set_visible_devices([], "GPU")
    tf.get_logger().setLevel("ERROR")
    _TF = tf
  return _TF


def _tfds():
  _tf()
  import tensorflow_datasets as tfds

  return tfds


# ------------------------------------------------------------ preprocessing --
def _normalize(image):
  tf = _tf()
  mean = tf.constant(MEAN_RGB, tf.float32)
  std = tf.constant(STDDEV_RGB, tf.float32)
  return (tf.cast(image, tf.float32) - mean) / std


def _resize(image, height, width):
  tf = _tf()
  size = tf.cast(tf.stack([height, width]), tf.int32)
  return tf.image.resize(image, size, method="bilinear", antialias=True)


def preprocess_train(image_bytes, seed_pair, image_size: int):
  """Inception-style random crop, resize and flip of one JPEG.

  Args:
    image_bytes: tf.string scalar, a JPEG file's bytes.
    seed_pair: int32/int64 [2], the stateless key; equal keys give equal
      outputs, so the result is a pure function of (bytes, key).
    image_size: S.

  Returns:
    float32 [S, S, 3], normalized with `MEAN_RGB` / `STDDEV_RGB`.
  """
  tf = _tf()
  seed = tf.cast(tf.convert_to_tensor(seed_pair), tf.int64)
  crop_seed = tf.random.experimental.stateless_fold_in(seed, 0, alg="philox")
  flip_seed = tf.random.experimental.stateless_fold_in(seed, 1, alg="philox")
  shape = tf.image.extract_jpeg_shape(image_bytes)
  height, width = shape[0], shape[1]
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      shape,
      bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
      seed=crop_seed,
      min_object_covered=0.0,
      aspect_ratio_range=CROP_ASPECT_RANGE,
      area_range=CROP_AREA_RANGE,
      max_attempts=CROP_MAX_ATTEMPTS,
      use_image_if_no_bounding_boxes=True,
  )
  # When all attempts fail the op returns the whole image; as in the
  # reference TF ResNet pipeline, that case takes a central crop instead.
  failed = tf.logical_and(tf.equal(size[0], height), tf.equal(size[1], width))
  side = tf.cast(
      image_size
      / (image_size + CENTER_CROP_PADDING)
      * tf.cast(tf.minimum(height, width), tf.float32),
      tf.int32,
  )
  side = tf.maximum(side, 1)
  center = tf.stack(
      [(height - side + 1) // 2, (width - side + 1) // 2, side, side]
  )
  sampled = tf.stack([begin[0], begin[1], size[0], size[1]])
  window = tf.where(failed, center, sampled)
  image = tf.image.decode_and_crop_jpeg(
      image_bytes, window, channels=3, dct_method=_DCT_METHOD
  )
  image = _resize(image, image_size, image_size)
  image = tf.image.stateless_random_flip_left_right(image, flip_seed)
  image = _normalize(image)
  return tf.ensure_shape(image, [image_size, image_size, 3])


def preprocess_eval(image_bytes, image_size: int, resize: int):
  """Resize the shorter side to `resize`, then the central S x S crop.

  The longer side becomes floor(resize * long / short) (torchvision's
  ``Resize(resize)``); the crop starts at floor((side - S) / 2).

  Args:
    image_bytes: tf.string scalar, a JPEG file's bytes.
    image_size: S.
    resize: the shorter side after resizing, >= S.

  Returns:
    float32 [S, S, 3], normalized with `MEAN_RGB` / `STDDEV_RGB`.
  """
  if resize < image_size:
    raise ValueError(
        f"resize ({resize}) must be >= image_size ({image_size}) to take an "
        f"{image_size}x{image_size} central crop; e.g. resize = "
        f"{math.ceil(image_size * 256 / 224)} (the 256/224 ratio)."
    )
  tf = _tf()
  image = tf.io.decode_jpeg(image_bytes, channels=3, dct_method=_DCT_METHOD)
  shape = tf.cast(tf.shape(image), tf.int64)
  height, width = shape[0], shape[1]
  short = tf.minimum(height, width)
  # Integer floor of resize * side / short, exact for any image size.
  r = tf.constant(resize, tf.int64)
  new_h = tf.where(height <= width, r, r * height // short)
  new_w = tf.where(height <= width, r * width // short, r)
  image = _resize(image, new_h, new_w)
  top = (new_h - image_size) // 2
  left = (new_w - image_size) // 2
  image = image[top : top + image_size, left : left + image_size]
  image = _normalize(image)
  return tf.ensure_shape(image, [image_size, image_size, 3])


# ---------------------------------------------------------------- preparing --
def _missing_tars(manual_dir: pathlib.Path) -> list[str]:
  problems = []
  for name in (TRAIN_TAR, VALID_TAR):
    path = manual_dir / name
    if not path.is_file():
      problems.append(f"{name} is missing")
    elif not tarfile.is_tarfile(path):
      problems.append(f"{name} is not a tar archive (a truncated download?)")
  return problems


def prepare(
    data_dir: str | os.PathLike, manual_dir: str | os.PathLike
) -> dict[str, int]:
  """Builds TFDS ``imagenet2012`` in `data_dir` from the manual archives.

  Uses TFDS's own builder (``download_and_prepare`` with ``manual_dir`` and
  ``try_download_gcs=False``): nothing is downloaded. A data_dir already
  holding the prepared data set is reused and `manual_dir` is not read. An
  ``ILSVRC2012_img_test.tar`` next to the two archives is prepared too (a
  'test' split without labels, which this module does not read).

  Args:
    data_dir: TFDS data directory; the data set goes to
      ``data_dir/imagenet2012/5.1.0`` (~145 GB for the real archives).
    manual_dir: directory holding ``ILSVRC2012_img_train.tar`` and
      ``ILSVRC2012_img_val.tar``.

  Returns:
    {'train': N_train, 'validation': N_valid} (1,281,167 and 50,000 for the
    real archives).

  Raises:
    ValueError: manual_dir is not a directory or lacks a valid archive.
  """
  tfds = _tfds()
  data_dir = pathlib.Path(data_dir)
  builder = tfds.builder(NAME, data_dir=os.fspath(data_dir))
  if not builder.is_prepared():
    manual = pathlib.Path(manual_dir)
    if not manual.is_dir():
      problems = ["is not a directory"]
    else:
      problems = _missing_tars(manual)
    if problems:
      raise ValueError(
          f"manual_dir {os.fspath(manual)!r}: " + "; ".join(problems) + ". "
          f"Put the original {TRAIN_TAR} and {VALID_TAR} there (download "
          "them after registering at https://image-net.org/download-images), "
          "then run python -m algebranets.data.imagenet --data_dir "
          f"{os.fspath(data_dir)} --manual_dir {os.fspath(manual)}"
      )
    try:
      import importlib_resources  # noqa: F401  (tfds needs it offline)
    except ImportError:
      raise ValueError(
          "tensorflow-datasets needs the importlib_resources package to "
          "build imagenet2012 offline; pip install importlib_resources."
      ) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=os.fspath(manual), try_download_gcs=False
        )
    )
  return {
      name: int(builder.info.splits[name].num_examples)
      for name in ("train", "validation")
  }


def _prepared_builder(data_dir: str | os.PathLike):
  """The TFDS builder of a prepared imagenet2012 in `data_dir`.

  Raises:
    ValueError: data_dir is missing, unprepared or lacks a split.
  """
  tfds = _tfds()
  path = pathlib.Path(data_dir)
  hint = "Prepare it with: " + _PREPARE_HINT.format(data_dir=path)
  if not path.is_dir():
    raise ValueError(
        f"ImageNet data_dir {os.fspath(path)!r} does not exist. {hint}"
    )
  builder = tfds.builder(NAME, data_dir=os.fspath(path))
  if not builder.is_prepared():
    root = path / NAME
    found = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    where = (
        f" ({root} holds {found}, not a complete {builder.version})"
        if found
        else ""
    )
    raise ValueError(
        f"ImageNet is not prepared in data_dir {os.fspath(path)!r}: TFDS "
        f"{NAME} {builder.version} not found{where}. {hint}"
    )
  missing = [s for s in SPLITS.values() if s not in builder.info.splits]
  if missing:
    raise ValueError(
        f"The {NAME} prepared in {os.fspath(path)!r} lacks the split(s) "
        f"{missing}: it was prepared without {TRAIN_TAR} or {VALID_TAR}. "
        f"Remove {builder.data_dir} and prepare again with both archives: "
        + _PREPARE_HINT.format(data_dir=path)
    )
  num_classes = builder.info.features["label"].num_classes
  if num_classes != NUM_CLASSES:
    raise ValueError(
        f"{builder.data_dir} has {num_classes} classes, expected "
        f"{NUM_CLASSES}; it is not TFDS's {NAME}."
    )
  return builder


def _tfds_split(split: str) -> str:
  if split == "test":
    raise ValueError(
        "ImageNet's test split has no labels (TFDS gives -1); evaluate on "
        "'valid' (the 50,000 validation images) instead."
    )
  if split not in SPLITS:
    raise ValueError(
        f"Unknown ImageNet split {split!r}; valid: {sorted(SPLITS)}."
    )
  return SPLITS[split]


# ---------------------------------------------------------------- the input --
class ImageNetInput:
  """Training and evaluation batches of a prepared TFDS ``imagenet2012``.

  See the module docstring for the order, the randomness and the costs.
  Attributes: ``num_classes`` (1000), ``image_shape`` ((S, S, 3)),
  ``local_batch`` (b = B / P).
  """

  num_classes = NUM_CLASSES

  def __init__(
      self,
      data_dir: str | os.PathLike,
      *,
      image_size: int = 224,
      global_batch: int,
      seed: int = 0,
      process_index: int = 0,
      process_count: int = 1,
      deterministic: bool = True,
      augment: bool = True,
      shuffle_buffer: int = 10_000,
      eval_resize: int = 256,
  ):
    """Checks the arguments and that `data_dir` is prepared.

    Args:
      data_dir: TFDS data directory holding the prepared imagenet2012.
      image_size: S, the side of the square images.
      global_batch: B, the training batch over all processes.
      seed: data seed; the order and augmentation are functions of it.
      process_index, process_count: this process p and P.
      deterministic: True: fixed order (resumable bit-exactly). False:
        parallel decoding may reorder rows within the pipeline for speed
        (each row's content is still keyed by its index).
      augment: Inception crop and flip for training; False uses the
        evaluation preprocessing for training batches too.
      shuffle_buffer: W, records per shuffle window (>= 1).
      eval_resize: shorter side before the central crop (>= S).

    Raises:
      ValueError: a bad argument, or data_dir is not prepared.
    """
    for name, value in (
        ("image_size", image_size),
        ("global_batch", global_batch),
        ("process_count", process_count),
        ("shuffle_buffer", shuffle_buffer),
    ):
      if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if not 0 <= process_index < process_count:
      raise ValueError(
          f"process_index {process_index} must be in [0, {process_count})."
      )
    if global_batch % process_count:
      raise ValueError(
          f"Global batch size {global_batch} is not divisible by the number "
          f"of processes {process_count}; make train.batch_size a multiple "
          "of it."
      )
    if eval_resize < image_size:
      raise ValueError(
          f"eval_resize ({eval_resize}) must be >= image_size ({image_size}) "
          "for the central crop; the standard ratio is 256/224, e.g. "
          f"eval_resize={math.ceil(image_size * 256 / 224)}."
      )
    self.data_dir = os.fspath(data_dir)
    self.image_size = int(image_size)
    self.global_batch = int(global_batch)
    self.seed = int(seed)
    self.process_index = int(process_index)
    self.process_count = int(process_count)
    self.deterministic = bool(deterministic)
    self.augment = bool(augment)
    self.shuffle_buffer = int(shuffle_buffer)
    self.eval_resize = int(eval_resize)
    self.local_batch = self.global_batch // self.process_count
    self.image_shape = (self.image_size, self.image_size, 3)
    self._builder = _prepared_builder(data_dir)
    tfds = _tfds()
    self._train_split = tfds.even_splits("train", self.process_count)[
        self.process_index
    ]
    self._train_local = self._size(self._train_split)
    if self._train_local < 1:
      raise ValueError(
          f"The train split has {self.num_examples('train')} examples, "
          f"fewer than the {self.process_count} processes; use fewer "
          "processes."
      )
    num_chunks = min(NUM_CHUNKS, self._train_local)
    self._chunk_splits = tfds.even_splits(self._train_split, num_chunks)
    self._chunk_sizes = [self._size(s) for s in self._chunk_splits]
    self._chunks = None
    self._iterator = None
    self._next_step = None

  # ------------------------------------------------------------- sizes --
  def _size(self, split) -> int:
    return int(self._builder.info.splits[split].num_examples)

  def num_examples(self, split: str) -> int:
    """Examples in the whole split ('train' or 'valid'), all processes."""
    return self._size(_tfds_split(split))

  def describe(self) -> dict[str, Any]:
    return {
        "train_examples": self.num_examples("train"),
        "valid_examples": self.num_examples("valid"),
        "num_classes": self.num_classes,
    }

  # -------------------------------------------------------------- reading --
  def _read(self, split):
    """Records of a (sub)split in stored order: {'image': JPEG bytes,
    'label': int64}, nothing decoded."""
    tf, tfds = _tf(), _tfds()
    ds = self._builder.as_dataset(
        split=split,
        shuffle_files=False,
        decoders={"image": tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(skip_prefetch=True, try_autocache=False),
    )
    return ds.map(
        lambda x: {"image": x["image"], "label": tf.cast(x["label"], tf.int64)}
    )

  def _key(self, tag: int, *values):
    """A stateless key [2] int64 for (seed, tag, *values)."""
    tf = _tf()
    key = tf.constant([self.seed, tag], tf.int64)
    for v in values:
      key = tf.random.experimental.stateless_fold_in(
          key, tf.cast(v, tf.int64), alg="philox"
      )
    return key

  def _epoch(self, chunks, epoch, offset):
    """Records [offset, n_p) of `epoch` of this process's share.

    Args:
      chunks: the chunk datasets (from `_read`).
      epoch, offset: int64 scalars.

    Returns:
      A dataset of {'image', 'label'} records, not decoded.
    """
    tf = _tf()
    p = self.process_index
    # A window longer than the epoch would only add padding records.
    width = min(self.shuffle_buffer, self._train_local)
    sizes = tf.constant(self._chunk_sizes, tf.int64)
    k = len(self._chunk_sizes)
    # (1) chunk order; start[c] = where chunk c begins in the epoch stream.
    order = tf.random.experimental.stateless_shuffle(
        tf.range(k, dtype=tf.int64),
        self._key(_TAG_CHUNKS, p, epoch),
        alg="philox",
    )
    ends = tf.cumsum(tf.gather(sizes, order))
    start = tf.scatter_nd(order[:, None], ends - tf.gather(sizes, order), [k])
    # (2) `pad` virtual records precede the stream, so window w covers
    # stream positions [w W - pad, (w + 1) W - pad).
    pad = tf.random.stateless_uniform(
        [],
        self._key(_TAG_PHASE, p, epoch),
        minval=0,
        maxval=width,
        dtype=tf.int64,
        alg="philox",
    )
    first = (offset + pad) // width  # the window holding `offset`
    skip = tf.maximum(first * width - pad, 0)  # stream records before it
    # Records before `skip` are never decoded: whole chunks are left out of
    # the choice sequence (not read); the current one skips its head.
    heads = tf.clip_by_value(skip - start, 0, sizes)
    datasets = [c.skip(heads[i]) for i, c in enumerate(chunks)]
    choice = tf.repeat(order, tf.gather(sizes, order))[skip:]
    stream = tf.data.Dataset.choose_from_datasets(
        datasets, tf.data.Dataset.from_tensor_slices(choice)
    )
    dummy = {"image": tf.constant(b""), "label": tf.constant(-1, tf.int64)}
    padding = tf.data.Dataset.from_tensors(dummy).repeat(
        tf.where(first == 0, pad, 0)
    )
    windows = padding.concatenate(stream).batch(width)

    def shuffle(w, window):
      n = tf.shape(window["label"], out_type=tf.int64)[0]
      perm = tf.random.experimental.stateless_shuffle(
          tf.range(n), self._key(_TAG_WINDOW, p, epoch, w), alg="philox"
      )
      return {key: tf.gather(v, perm) for key, v in window.items()}

    # (3) permute each window; prefetch reads the next one meanwhile.
    records = (
        windows.enumerate(start=first)
        .map(shuffle)
        .prefetch(1)
        .unbatch()
        .filter(lambda x: x["label"] >= 0)
    )
    return records.skip(offset - skip)

  def _options(self):
    tf = _tf()
    options = tf.data.Options()
    options.deterministic = self.deterministic
    return options

  def train_dataset(self, start_step: int = 0):
    """This process's training batches from `start_step` on, endless.

    Args:
      start_step: the step of the first batch.

    Returns:
      A tf.data.Dataset of {'images': float32 [b, S, S, 3], 'labels': int32
      [b]}; its i-th element is the batch of step start_step + i.
    """
    if int(start_step) != start_step or start_step < 0:
      raise ValueError(
          f"start_step must be an integer >= 0, got {start_step!r}."
      )
    tf = _tf()
    b, n = self.local_batch, self._train_local
    first = int(start_step) * b  # this process's stream position
    epoch0, offset0 = divmod(first, n)
    if self._chunks is None:  # built once: ~0.1 s of tracing per chunk
      self._chunks = [self._read(s) for s in self._chunk_splits]
    chunks = self._chunks
    epochs = tf.data.Dataset.counter(start=epoch0).map(
        lambda e: (e, tf.where(e == epoch0, tf.constant(offset0, tf.int64), 0))
    )
    records = epochs.flat_map(lambda e, o: self._epoch(chunks, e, o))
    rows = tf.constant(self.process_index * b, tf.int64)

    def decode(j, x):
      g = (j // b) * self.global_batch + rows + j % b  # global example index
      if self.augment:
        image = preprocess_train(
            x["image"], self._key(_TAG_AUGMENT, g), self.image_size
        )
      else:
        image = preprocess_eval(x["image"], self.image_size, self.eval_resize)
      return {"images": image, "labels": tf.cast(x["label"], tf.int32)}

    ds = records.enumerate(start=first).map(
        decode,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=self.deterministic,
    )
    ds = ds.batch(b, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(self._options())

  def train_batch(self, step: int) -> dict[str, np.ndarray]:
    """This process's rows of the training batch of `step`.

    Consecutive steps reuse one pipeline; any other step (the first call, a
    resume) positions a new one at `step` (cost: module docstring).

    Args:
      step: training step (>= 0).

    Returns:
      {'images': float32 [b, S, S, 3], 'labels': int32 [b]}.
    """
    if self._iterator is None or step != self._next_step:
      if self._iterator is not None:
        logging.info(
            "ImageNet: repositioning the training pipeline from step %d to "
            "step %d.",
            self._next_step,
            step,
        )
      self._iterator = self.train_dataset(step).as_numpy_iterator()
      self._next_step = step
    batch = next(self._iterator)
    self._next_step += 1
    return batch

  def eval_batches(
      self, split: str, *, batch_size: int, num_batches: int = 0
  ) -> Iterator[dict[str, np.ndarray]]:
    """This process's rows of the evaluation batches of `split`.

    Args:
      split: 'valid' (TFDS 'validation') or 'train' (evaluation
        preprocessing); 'test' has no labels and raises.
      batch_size: the global evaluation batch, divisible by P.
      num_batches: stop after this many batches; 0 = the whole split.

    Returns:
      An iterator of ceil(N / batch_size) batches (at most num_batches),
      the same count on every process: {'images': float32 [b, S, S, 3],
      'labels': int32 [b], 'weights': float32 [b]}, weights 1 for the
      split's examples and 0 for the padding rows (zeros) at the end.

    Raises:
      ValueError: unknown split, 'test', or a bad batch size.
    """
    name = _tfds_split(split)
    if int(batch_size) != batch_size or batch_size < 1:
      raise ValueError(
          f"batch_size must be a positive integer, got {batch_size!r}."
      )
    if batch_size % self.process_count:
      raise ValueError(
          f"Evaluation batch size {batch_size} is not divisible by the number "
          f"of processes {self.process_count}; make eval.batch_size a "
          "multiple of it."
      )
    tf, tfds = _tf(), _tfds()
    b = batch_size // self.process_count
    total = -(-self._size(name) // batch_size)
    if num_batches > 0:
      total = min(total, int(num_batches))
    part = tfds.even_splits(name, self.process_count)[self.process_index]
    size, rows = self._size(part), total * b

    def decode(x):
      return {
          "images": preprocess_eval(
              x["image"], self.image_size, self.eval_resize
          ),
          "labels": tf.cast(x["label"], tf.int32),
          "weights": tf.constant(1.0, tf.float32),
      }

    zeros = {
        "images": tf.zeros(self.image_shape, tf.float32),
        "labels": tf.constant(0, tf.int32),
        "weights": tf.constant(0.0, tf.float32),
    }
    ds = self._read(part).map(
        decode,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=self.deterministic,
    )
    pad = tf.data.Dataset.from_tensors(zeros).repeat(max(rows - size, 0))
    ds = ds.concatenate(pad).take(rows).batch(b).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(self._options()).as_numpy_iterator()


# ---------------------------------------------------------------------- CLI --
def main(argv: Sequence[str] | None = None) -> int:
  """``python -m algebranets.data.imagenet --data_dir D --manual_dir M``."""
  parser = argparse.ArgumentParser(
      prog="python -m algebranets.data.imagenet",
      description="Prepare TFDS imagenet2012 from the manually downloaded "
      f"{TRAIN_TAR} and {VALID_TAR} (no network access).",
  )
  parser.add_argument("--data_dir", required=True, help="TFDS data directory")
  parser.add_argument(
      "--manual_dir",
      required=True,
      help=f"directory holding {TRAIN_TAR} and {VALID_TAR}",
  )
  args = parser.parse_args(argv)
  try:
    sizes = prepare(args.data_dir, args.manual_dir)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for name, n in sizes.items():
    print(f"{name}: {n} examples")
  return 0


if __name__ == "__main__":
  sys.exit(main())
