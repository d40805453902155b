"""Fashion-MNIST from its original idx files (no TensorFlow, no download).

Fashion-MNIST (Xiao, Rasul, Vollgraf 2017) is 70,000 grayscale 28 x 28
images of clothing in 10 classes: 60,000 for training and 10,000 for
testing, as four idx files. Debian's ``dataset-fashion-mnist`` package
installs the original gzipped files under `DEFAULT_DIR`
(``apt-get install dataset-fashion-mnist``); TFDS's builtin builder rejects
them on its checksums, so this module reads them directly.

The idx format (LeCun's MNIST page): a 4-byte magic number (two zero bytes,
a type code, the number of dimensions), one big-endian uint32 per dimension,
then the values in C order, big-endian. `read_idx` validates all of it, so a
truncated download or a wrong file fails with a message instead of garbage.

Typical use::

  splits = load()                       # DEFAULT_DIR; or load('/data/fmnist')
  images, labels = splits['train']      # uint8 [60000, 28, 28], uint8 [60000]
  CLASS_NAMES[labels[0]]                # 'Ankle boot'

Shape glossary: N = examples, H = W = 28 pixels.
"""

from __future__ import annotations

import gzip
import math
import os
import pathlib
import zlib

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
IMAGE_SIZE = 28
NUM_CLASSES = 10
# Label i is CLASS_NAMES[i] (the dataset's README).
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Split -> (images file, labels file), without the optional '.gz'.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# idx type code -> big-endian NumPy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_FIX = (
    "Install the data with `apt-get install dataset-fashion-mnist` (files "
    f"in {DEFAULT_DIR}) or point --config.data.path=DIR at a directory "
    "holding the four original idx files (gzipped or not)."
)


def _read_bytes(path: pathlib.Path) -> bytes:
  """The file's contents, decompressed if it is gzip (detected by content)."""
  with open(path, "rb") as f:
    raw = f.read()
  if not raw.startswith(_GZIP_MAGIC):
    return raw
  try:
    return gzip.decompress(raw)
  except (EOFError, OSError, zlib.error) as e:
    raise ValueError(
        f"{path}: corrupt or truncated gzip data ({e}); download or "
        "reinstall the file."
    ) from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads an idx file (gzipped or plain).

  Args:
    path: the file; gzip is recognised by its content, not its name.

  Returns:
    A writable array of the file's shape in the native byte order of its
    dtype (uint8 for the image and label files of (Fashion-)MNIST).

  Raises:
    FileNotFoundError: no such file.
    ValueError: corrupt gzip data, a bad magic number or type code, a header
      shorter than its dimensions need, or a data section shorter or longer
      than the product of the dimensions.
  """
  path = pathlib.Path(path)
  raw = _read_bytes(path)
  if len(raw) < 4:
    raise ValueError(
        f"{path}: {len(raw)} bytes is too short for an idx header (4-byte "
        "magic number); the file is truncated or not an idx file."
    )
  magic = int.from_bytes(raw[:4], "big")
  code, ndim = raw[2], raw[3]
  if raw[:2] != b"\0\0" or code not in IDX_DTYPES or ndim == 0:
    raise ValueError(
        f"{path}: bad idx magic number 0x{magic:08X}; an idx file starts "
        "with two zero bytes, a type code in "
        f"{[hex(c) for c in IDX_DTYPES]} and the number of dimensions "
        "(>= 1), e.g. 0x00000803 for uint8 images. Is it an idx file?"
    )
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise ValueError(
        f"{path}: truncated header: {ndim} dimensions need {header} bytes, "
        f"the file has {len(raw)}."
    )
  dims = tuple(
      int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
  )
  dtype = IDX_DTYPES[code]
  expected = math.prod(dims) * dtype.itemsize
  found = len(raw) - header
  if found != expected:
    what = "truncated" if found < expected else "has trailing bytes"
    raise ValueError(
        f"{path}: {what}: shape {dims} of {dtype.newbyteorder('=')} needs "
        f"{expected} data bytes after the header, found {found}."
    )
  data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
  return data.astype(dtype.newbyteorder("="))  # a native, writable copy


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
  """Writes `array` as an idx file, gzipped if `path` ends in '.gz'.

  Args:
    path: output file.
    array: at least 1-D, of dtype uint8, int8, int16, int32, float32 or
      float64; each dimension < 2**32.

  Raises:
    ValueError: a 0-d array, an unsupported dtype or a dimension too large.
  """
  array = np.asarray(array)
  codes = {dt.newbyteorder("="): c for c, dt in IDX_DTYPES.items()}
  dtype = array.dtype.newbyteorder("=")
  if dtype not in codes:
    raise ValueError(
        f"write_idx: dtype {array.dtype} has no idx type code; use one of "
        f"{[str(d) for d in codes]}."
    )
  if array.ndim == 0 or array.ndim > 255:
    raise ValueError(
        f"write_idx: idx holds 1 to 255 dimensions, got shape {array.shape}."
    )
  if any(n >= 2**32 for n in array.shape):
    raise ValueError(f"write_idx: a dimension of {array.shape} is >= 2**32.")
  header = bytes([0, 0, codes[dtype], array.ndim]) + b"".join(
      int(n).to_bytes(4, "big") for n in array.shape
  )
  data = (
      header
      + np.ascontiguousarray(array, dtype=IDX_DTYPES[codes[dtype]]).tobytes()
  )
  path = pathlib.Path(path)
  if path.suffix == ".gz":
    # mtime=0: the same array always gives the same bytes.
    data = gzip.compress(data, compresslevel=6, mtime=0)
  path.write_bytes(data)


def find_files(path_dir: str | os.PathLike = DEFAULT_DIR) -> dict:
  """The idx files of `path_dir`, preferring 'NAME.gz' over plain 'NAME'.

  Args:
    path_dir: a directory with the four files named in `FILES`.

  Returns:
    {'train': (images path, labels path), 'test': (...)}.

  Raises:
    FileNotFoundError: the directory or one of the files is missing; the
      message names it and how to install the data.
  """
  root = pathlib.Path(path_dir)
  if not root.is_dir():
    raise FileNotFoundError(
        f"Fashion-MNIST directory {str(root)!r} does not exist. {_FIX}"
    )
  out = {}
  for split, names in FILES.items():
    paths = []
    for name in names:
      for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
          paths.append(candidate)
          break
      else:
        raise FileNotFoundError(
            f"Fashion-MNIST file {name}.gz (or {name}) is missing from "
            f"{root}. {_FIX}"
        )
    out[split] = tuple(paths)
  return out


def load(
    path_dir: str | os.PathLike = DEFAULT_DIR,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Loads both splits of Fashion-MNIST.

  Args:
    path_dir: directory of the four idx files ('' means `DEFAULT_DIR`).

  Returns:
    {'train': (images uint8 [N, 28, 28], labels uint8 [N]), 'test': (...)};
    N is 60,000 / 10,000 for the real data (any N is accepted, so small
    generated files work too).

  Raises:
    FileNotFoundError: see `find_files`.
    ValueError: a malformed file (see `read_idx`), images that are not
      uint8 [N, 28, 28], labels that are not uint8 [N] in [0, 10), or image
      and label counts that differ.
  """
  files = find_files(path_dir or DEFAULT_DIR)
  out = {}
  for split, (image_path, label_path) in files.items():
    images, labels = read_idx(image_path), read_idx(label_path)
    want = (IMAGE_SIZE, IMAGE_SIZE)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != want:
      raise ValueError(
          f"{image_path}: expected uint8 images [N, 28, 28], got "
          f"{images.dtype} {images.shape}; is it the Fashion-MNIST images "
          "file?"
      )
    if labels.dtype != np.uint8 or labels.ndim != 1:
      raise ValueError(
          f"{label_path}: expected uint8 labels [N], got {labels.dtype} "
          f"{labels.shape}; is it the Fashion-MNIST labels file?"
      )
    if labels.shape[0] != images.shape[0]:
      raise ValueError(
          f"{split}: {images.shape[0]} images ({image_path.name}) but "
          f"{labels.shape[0]} labels ({label_path.name}); the files belong "
          "to different splits or one is damaged."
      )
    if labels.size and labels.max() >= NUM_CLASSES:
      raise ValueError(
          f"{label_path}: label {int(labels.max())} is outside [0, "
          f"{NUM_CLASSES}); not a Fashion-MNIST labels file."
      )
    out[split] = (images, labels)
  return out
