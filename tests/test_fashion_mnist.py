"""Tests for the Fashion-MNIST idx reader (generated files; the real data
only where the Debian package is installed)."""

import gzip
import pathlib

import numpy as np
import pytest

from algebranets.data import fashion_mnist

REAL_FILES = pathlib.Path(fashion_mnist.DEFAULT_DIR) / (
    "train-images-idx3-ubyte.gz"
)


def _idx_bytes_by_hand(array: np.ndarray, code: int) -> bytes:
  """The idx encoding written out from the format's definition."""
  out = bytearray([0, 0, code, array.ndim])
  for n in array.shape:
    out += bytes([(n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255])
  return bytes(out) + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "dtype, code",
    [
        (np.uint8, 0x08),
        (np.int8, 0x09),
        (np.int16, 0x0B),
        (np.int32, 0x0C),
        (np.float32, 0x0D),
        (np.float64, 0x0E),
    ],
)
def test_round_trip_and_encoding(tmp_path, suffix, dtype, code):
  rng = np.random.default_rng(0)
  array = (rng.normal(size=(3, 5, 7)) * 100).astype(dtype)
  path = tmp_path / f"x.idx{suffix}"
  fashion_mnist.write_idx(path, array)
  raw = path.read_bytes()
  assert raw.startswith(b"\x1f\x8b") == (suffix == ".gz")
  if suffix == ".gz":
    raw = gzip.decompress(raw)
  assert raw == _idx_bytes_by_hand(array, code)
  got = fashion_mnist.read_idx(path)
  assert got.dtype == np.dtype(dtype) and got.dtype.isnative
  assert got.flags.writeable
  np.testing.assert_array_equal(got, array)


def test_reads_gzip_by_content_not_name(tmp_path):
  array = np.arange(12, dtype=np.uint8).reshape(3, 4)
  fashion_mnist.write_idx(tmp_path / "a.gz", array)
  (tmp_path / "a.gz").rename(tmp_path / "plain_name")
  np.testing.assert_array_equal(
      fashion_mnist.read_idx(tmp_path / "plain_name"), array
  )


def test_hand_written_mnist_label_file(tmp_path):
  # 0x00000801, one dimension of 3, labels 7 0 9 (the MNIST page's layout).
  path = tmp_path / "labels"
  path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9]))
  np.testing.assert_array_equal(fashion_mnist.read_idx(path), [7, 0, 9])


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x00\x00", "too short for an idx header"),
        (bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]), "bad idx magic number 0x01000801"),
        (bytes([0, 0, 7, 1, 0, 0, 0, 1, 5]), "bad idx magic number 0x00000701"),
        (bytes([0, 0, 8, 0, 5]), "bad idx magic number 0x00000800"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0]), "truncated header: 3 dim"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3]), "truncated: shape \\(4,\\)"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 1, 1, 2]), "has trailing bytes"),
    ],
)
def test_malformed_files(tmp_path, raw, message):
  path = tmp_path / "bad"
  path.write_bytes(raw)
  with pytest.raises(ValueError, match=message):
    fashion_mnist.read_idx(path)


def test_truncated_files(tmp_path):
  array = np.random.default_rng(1).integers(0, 256, (20, 28, 28), np.uint8)
  fashion_mnist.write_idx(tmp_path / "x.gz", array)
  fashion_mnist.write_idx(tmp_path / "x", array)
  gz = (tmp_path / "x.gz").read_bytes()
  (tmp_path / "cut.gz").write_bytes(gz[: len(gz) // 2])
  with pytest.raises(ValueError, match="corrupt or truncated gzip data"):
    fashion_mnist.read_idx(tmp_path / "cut.gz")
  plain = (tmp_path / "x").read_bytes()
  (tmp_path / "cut").write_bytes(plain[:-100])
  with pytest.raises(
      ValueError, match=r"truncated: shape \(20, 28, 28\) of uint8 needs 15680"
  ):
    fashion_mnist.read_idx(tmp_path / "cut")


def test_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError):
    fashion_mnist.read_idx(tmp_path / "nope")


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((2,), np.uint16), "dtype uint16 has no idx type code"),
        (np.zeros((), np.uint8), "1 to 255 dimensions"),
    ],
)
def test_write_idx_rejects(tmp_path, array, message):
  with pytest.raises(ValueError, match=message):
    fashion_mnist.write_idx(tmp_path / "x", array)


def write_dataset(root, n_train=30, n_test=10, gz=True, seed=0):
  """Generated Fashion-MNIST-shaped idx files; returns the arrays."""
  rng = np.random.default_rng(seed)
  root.mkdir(parents=True, exist_ok=True)
  arrays = {}
  for split, n in (("train", n_train), ("test", n_test)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, (n,), dtype=np.uint8)
    names = fashion_mnist.FILES[split]
    suffix = ".gz" if gz else ""
    fashion_mnist.write_idx(root / (names[0] + suffix), images)
    fashion_mnist.write_idx(root / (names[1] + suffix), labels)
    arrays[split] = (images, labels)
  return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_load(tmp_path, gz):
  arrays = write_dataset(tmp_path, gz=gz)
  got = fashion_mnist.load(tmp_path)
  assert set(got) == {"train", "test"}
  for split in ("train", "test"):
    for a, b in zip(got[split], arrays[split], strict=True):
      assert a.dtype == np.uint8
      np.testing.assert_array_equal(a, b)
  suffix = ".gz" if gz else ""
  files = fashion_mnist.find_files(tmp_path)
  assert files["test"] == (
      tmp_path / f"t10k-images-idx3-ubyte{suffix}",
      tmp_path / f"t10k-labels-idx1-ubyte{suffix}",
  )


def test_missing_files_name_the_file_and_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"does not exist.*apt-get"):
    fashion_mnist.load(tmp_path / "absent")
  write_dataset(tmp_path)
  (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
  with pytest.raises(
      FileNotFoundError,
      match=r"t10k-labels-idx1-ubyte.gz \(or t10k-labels-idx1-ubyte\) is "
      r"missing.*apt-get install dataset-fashion-mnist.*--config.data.path",
  ):
    fashion_mnist.load(tmp_path)


@pytest.mark.parametrize(
    "name, array, message",
    [
        (
            "train-images-idx3-ubyte.gz",
            np.zeros((30, 28, 27), np.uint8),
            r"expected uint8 images \[N, 28, 28\], got uint8 \(30, 28, 27\)",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            np.zeros((30, 1), np.uint8),
            r"expected uint8 labels \[N\]",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            np.zeros((29,), np.uint8),
            "30 images .* but 29 labels",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            np.full((30,), 10, np.uint8),
            r"label 10 is outside \[0, 10\)",
        ),
    ],
)
def test_load_rejects_wrong_contents(tmp_path, name, array, message):
  write_dataset(tmp_path)
  fashion_mnist.write_idx(tmp_path / name, array)
  with pytest.raises(ValueError, match=message):
    fashion_mnist.load(tmp_path)


def test_class_names():
  assert len(fashion_mnist.CLASS_NAMES) == fashion_mnist.NUM_CLASSES == 10
  assert fashion_mnist.CLASS_NAMES[0] == "T-shirt/top"
  assert fashion_mnist.CLASS_NAMES[9] == "Ankle boot"


@pytest.mark.skipif(
    not REAL_FILES.is_file(),
    reason=f"{REAL_FILES} absent: apt-get install dataset-fashion-mnist",
)
def test_real_files():
  got = fashion_mnist.load()
  images, labels = got["train"]
  assert images.shape == (60000, 28, 28) and labels.shape == (60000,)
  assert got["test"][0].shape == (10000, 28, 28)
  # Balanced classes, as published.
  np.testing.assert_array_equal(np.bincount(labels), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(got["test"][1]), [1000] * 10)
  # The dataset's README: the first training label is 9 (ankle boot).
  assert labels[0] == 9
