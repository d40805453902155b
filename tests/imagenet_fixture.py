"""A tiny imagenet2012 prepared by TFDS's real builder from generated archives.

`write_manual_dir` writes what a user downloads from image-net.org, in
miniature: ``ILSVRC2012_img_train.tar`` holding one tar per synset
(``n01440764.tar`` with ``n01440764_1.JPEG`` ...; synsets taken from the
builder's own label list) and ``ILSVRC2012_img_val.tar`` with
``ILSVRC2012_val_00000001.JPEG`` ... (their labels come from the builder's
bundled validation label file, whose i-th line labels the i-th name in
sorted order). The images are random noise JPEGs of random sizes.

The session fixture `tiny_imagenet` prepares it once with the real
`algebranets.data.imagenet.prepare` under `network_guard` and returns the
TFDS data_dir; the manual directory is `manual_dir_of(data_dir)`. Other test
modules use it with::

    from tests.imagenet_fixture import tiny_imagenet  # noqa: F401
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import socket
import tarfile

import numpy as np
import pytest
from PIL import Image

# Indices into the 1000 sorted synsets: both ends of the label range.
SYNSET_INDICES = (0, 1, 500, 999)
PER_SYNSET = 6
NUM_VALID = 10
NUM_TRAIN = len(SYNSET_INDICES) * PER_SYNSET
MIN_SIDE, MAX_SIDE = 20, 64

# Every network access tried under `network_guard`, e.g. "socket.connect".
NETWORK_ATTEMPTS: list[str] = []

# Prepared data_dirs by pytest base temp directory: a fixture imported into
# several test modules gets one FixtureDef per module, and preparing costs
# seconds, so it is done once per session here.
_PREPARED: dict[str, pathlib.Path] = {}


def _tfds_file(name: str) -> pathlib.Path:
  import tensorflow_datasets

  root = pathlib.Path(tensorflow_datasets.__file__).parent
  return root / "datasets" / "imagenet2012" / name


def label_names() -> list[str]:
  """The 1000 synsets in label order (the builder's labels.txt)."""
  return _tfds_file("labels.txt").read_text().split()


def validation_synsets() -> list[str]:
  """Synset of the i-th validation image in sorted name order."""
  return _tfds_file("validation_labels.txt").read_text().split()


def _jpeg(rng: np.random.Generator) -> bytes:
  height, width = rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2)
  pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format="JPEG", quality=90)
  return out.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def write_manual_dir(root: pathlib.Path, seed: int = 0) -> pathlib.Path:
  """Writes the two archives into `root` (created); returns `root`."""
  rng = np.random.default_rng(seed)
  names = label_names()
  root.mkdir(parents=True, exist_ok=True)
  with tarfile.open(root / "ILSVRC2012_img_train.tar", "w") as train:
    for index in SYNSET_INDICES:
      synset = names[index]
      inner = io.BytesIO()
      with tarfile.open(fileobj=inner, mode="w") as tar:
        for i in range(1, PER_SYNSET + 1):
          _add(tar, f"{synset}_{i}.JPEG", _jpeg(rng))
      _add(train, f"{synset}.tar", inner.getvalue())
  with tarfile.open(root / "ILSVRC2012_img_val.tar", "w") as valid:
    for i in range(1, NUM_VALID + 1):
      _add(valid, f"ILSVRC2012_val_{i:08d}.JPEG", _jpeg(rng))
  return root


def read_manual_dir(
    manual_dir: pathlib.Path,
) -> dict[str, list[tuple[str, bytes, int]]]:
  """The examples read back from the archives, without TFDS.

  Returns:
    {'train': [...], 'valid': [...]} of (file name, JPEG bytes, label).
  """
  index = {s: i for i, s in enumerate(label_names())}
  out: dict[str, list[tuple[str, bytes, int]]] = {"train": [], "valid": []}
  with tarfile.open(manual_dir / "ILSVRC2012_img_train.tar") as train:
    for member in train.getmembers():
      synset = member.name.removesuffix(".tar")
      inner = io.BytesIO(train.extractfile(member).read())
      with tarfile.open(fileobj=inner) as tar:
        for m in tar.getmembers():
          data = tar.extractfile(m).read()
          out["train"].append((m.name, data, index[synset]))
  val_synsets = validation_synsets()
  with tarfile.open(manual_dir / "ILSVRC2012_img_val.tar") as valid:
    members = sorted(valid.getmembers(), key=lambda m: m.name)
    for i, member in enumerate(members):
      data = valid.extractfile(member).read()
      out["valid"].append((member.name, data, index[val_synsets[i]]))
  return out


@contextlib.contextmanager
def network_guard():
  """Records (in NETWORK_ATTEMPTS) and refuses every network access: Python
  sockets, TFDS's download manager and its GCS helpers."""
  from tensorflow_datasets.core.download import download_manager
  from tensorflow_datasets.core.utils import gcs_utils

  def refuse(what):
    def fn(*args, **kwargs):
      NETWORK_ATTEMPTS.append(what)
      raise OSError(f"network access refused in tests: {what}")

    return fn

  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(socket.socket, "connect", refuse("socket.connect"))
    mp.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    mp.setattr(socket, "create_connection", refuse("socket.create_connection"))
    mp.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    dm = download_manager.DownloadManager
    for name in ("download", "download_and_extract", "download_checksums"):
      if hasattr(dm, name):
        mp.setattr(dm, name, refuse(f"DownloadManager.{name}"))
    # Called only for gs:// paths (TF's C++ GCS client, not Python sockets).
    mp.setattr(gcs_utils, "exists", refuse("gcs_utils.exists"))
    mp.setattr(gcs_utils, "download_gcs_folder", refuse("gcs download"))
    yield


def manual_dir_of(data_dir: pathlib.Path) -> pathlib.Path:
  return pathlib.Path(data_dir).parent / "manual"


@pytest.fixture(scope="session")
def tiny_imagenet(tmp_path_factory) -> pathlib.Path:
  """TFDS data_dir of the tiny imagenet2012 (24 train, 10 validation)."""
  key = str(tmp_path_factory.getbasetemp())
  if key not in _PREPARED:
    from algebranets.data import imagenet

    root = tmp_path_factory.mktemp("tiny_imagenet")
    manual = write_manual_dir(root / "manual")
    with network_guard():
      imagenet.prepare(root / "tfds", manual)
    _PREPARED[key] = root / "tfds"
  return _PREPARED[key]
