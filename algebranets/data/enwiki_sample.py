"""A small real slice of English Wikipedia XML for byte-level language models.

The data is what enwik8 is made of: raw bytes of an English Wikipedia
``pages-articles`` XML dump (markup, templates, links and UTF-8 text), modelled
byte by byte with a vocabulary of 256. enwik8 itself is the first 10^8 bytes of
such a dump (Hutter prize), split by position into 90M/5M/5M bytes for
train/valid/test. This sample is the same kind of data, 6,089,746 bytes, and
`split_bytes` splits it the same way (first 90% train, next 5% valid, last 5%
test, contiguous and in order).

Origin: the file
``gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302
-shortened.bz2`` shipped inside the gensim wheel on PyPI (1,695,871 bytes bz2).
The project may reach only package registries at run time, so the sample comes
from there: `fetch_enwiki_sample` runs ``pip download --no-deps`` for a pinned
gensim version, takes the one member out of the wheel (a zip) with `zipfile`,
decompresses it with `bz2`, checks its exact size and sha256 and caches the
plain XML. gensim is never installed: 4.3.3 pins ``numpy<2``, which would
conflict with the project's numpy 2.x, and we need none of its code.

Typical use::

  splits = load_enwiki_sample()          # dict(train=, valid=, test=), uint8
  baseline = unigram_entropy_bits(splits['valid'], reference=splits['train'])

The cache directory is ``$ALGEBRANETS_DATA`` if set, else
``~/.cache/algebranets``.
"""

from __future__ import annotations

import bz2
import hashlib
import os
import pathlib
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Sequence

import numpy as np

VOCAB_SIZE = 256

# Pinned so the sample's bytes (and the sha256 below) never change under us.
GENSIM_VERSION = "4.3.3"
WHEEL_MEMBER = (
    "gensim/test/test_data/"
    "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
)
SAMPLE_FILENAME = "enwiki_sample.xml"
# Of the decompressed XML, measured once from the gensim 4.3.3 wheel.
SAMPLE_NUM_BYTES = 6_089_746
SAMPLE_SHA256 = (
    "34c1c63050c87cc8477b9ae36b1cb0edf372612c92938b742e579a7109c20fa4"
)
DEFAULT_FRACTIONS = (0.90, 0.05, 0.05)
SPLIT_NAMES = ("train", "valid", "test")

_CHUNK = 1 << 20
_PIP_TIMEOUT_S = 600
_STDERR_TAIL_CHARS = 2000


def vocab_size() -> int:
  """Returns the vocabulary size of a byte-level model: 256."""
  return VOCAB_SIZE


def _default_cache_dir() -> pathlib.Path:
  env = os.environ.get("ALGEBRANETS_DATA")
  if env:
    return pathlib.Path(env).expanduser()
  return pathlib.Path("~/.cache/algebranets").expanduser()


def _size_and_sha256(path: pathlib.Path) -> tuple[int, str]:
  sha = hashlib.sha256()
  size = 0
  with open(path, "rb") as f:
    while chunk := f.read(_CHUNK):
      sha.update(chunk)
      size += len(chunk)
  return size, sha.hexdigest()


def _check_or_delete(path: pathlib.Path, what: str) -> None:
  """Raises ValueError (and deletes `path`) unless it is the pinned sample."""
  size, sha = _size_and_sha256(path)
  if size == SAMPLE_NUM_BYTES and sha == SAMPLE_SHA256:
    return
  # A wrong file must not be picked up as valid by the next call.
  path.unlink(missing_ok=True)
  raise ValueError(
      f"Checksum mismatch for the enwiki sample ({what}) at {path}: expected "
      f"{SAMPLE_NUM_BYTES} bytes with sha256 {SAMPLE_SHA256}, got {size} "
      f"bytes with sha256 {sha}. The bad file was deleted. Call "
      "fetch_enwiki_sample() again to download it afresh (gensim=="
      f"{GENSIM_VERSION} from PyPI); if it fails again, the wheel on your "
      "index differs from PyPI's."
  )


def _download_wheel(
    dest_dir: pathlib.Path, target: pathlib.Path
) -> pathlib.Path:
  """Runs pip download for the pinned gensim wheel; returns the wheel path."""
  cmd = [
      sys.executable,
      "-m",
      "pip",
      "download",
      "--no-deps",
      "--only-binary=:all:",
      "--disable-pip-version-check",
      f"gensim=={GENSIM_VERSION}",
      "-d",
      str(dest_dir),
  ]
  manual = (
      "No access to PyPI? Put the decompressed file (member "
      f"{WHEEL_MEMBER} of the gensim=={GENSIM_VERSION} wheel, bunzip2'ed) at "
      f"{target} manually, or set data.path to a raw enwik8-style file."
  )
  try:
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
        timeout=_PIP_TIMEOUT_S,
    )
  except subprocess.TimeoutExpired as e:
    raise RuntimeError(
        f"`{' '.join(cmd)}` did not finish within {_PIP_TIMEOUT_S} s. {manual}"
    ) from e
  if result.returncode != 0:
    tail = (result.stderr or "").strip()[-_STDERR_TAIL_CHARS:]
    raise RuntimeError(
        f"`{' '.join(cmd)}` failed with exit code {result.returncode}. "
        f"pip's stderr (tail):\n{tail}\n{manual}"
    )
  wheels = sorted(dest_dir.glob("gensim-*.whl"))
  if len(wheels) != 1:
    found = sorted(p.name for p in dest_dir.iterdir())
    raise RuntimeError(
        f"pip download succeeded but left {len(wheels)} gensim wheels in "
        f"{dest_dir} (files: {found}); expected exactly one "
        f"gensim-{GENSIM_VERSION}-*.whl. {manual}"
    )
  return wheels[0]


def fetch_enwiki_sample(
    cache_dir: str | os.PathLike | None = None,
) -> pathlib.Path:
  """Returns the path of the decompressed enwiki XML sample, fetching it once.

  If ``<cache_dir>/enwiki_sample.xml`` exists it is checked (size and sha256)
  and returned without any network access. Otherwise the pinned gensim wheel
  is downloaded from PyPI with ``pip download --no-deps`` into a temporary
  directory (gensim is not installed), the sample is extracted and
  decompressed, checked, and written atomically (temporary file, then
  `os.replace`), so an interrupted run never leaves a partial file.

  Args:
    cache_dir: directory for the cached file; created if missing. Defaults to
      ``$ALGEBRANETS_DATA`` or ``~/.cache/algebranets``.

  Returns:
    Path of the 6,089,746-byte XML file.

  Raises:
    RuntimeError: pip failed (no PyPI access?) or the wheel lacks the member.
    ValueError: the cached or extracted file has the wrong size or sha256; the
      bad file is deleted.
  """
  cache = (
      pathlib.Path(cache_dir).expanduser()
      if cache_dir is not None
      else _default_cache_dir()
  )
  target = cache / SAMPLE_FILENAME
  if target.is_file():
    _check_or_delete(target, "cached file")
    return target

  cache.mkdir(parents=True, exist_ok=True)
  print(
      f"Downloading gensim=={GENSIM_VERSION} wheel from PyPI (~26 MB, not "
      f"installed) to extract the enwiki sample into {target} ...",
      flush=True,
  )
  with tempfile.TemporaryDirectory(prefix="algebranets_wheel_") as tmp:
    wheel = _download_wheel(pathlib.Path(tmp), target)
    with zipfile.ZipFile(wheel) as zf:
      try:
        info = zf.getinfo(WHEEL_MEMBER)
      except KeyError as e:
        enwiki = [n for n in zf.namelist() if "enwiki" in n]
        raise RuntimeError(
            f"Member {WHEEL_MEMBER!r} is missing from {wheel.name}; members "
            f"mentioning 'enwiki': {enwiki}. GENSIM_VERSION "
            f"({GENSIM_VERSION}) must name a release that ships it (4.3.3 "
            f"does), or put the file at {target} manually."
        ) from e
      # Temp file in the same directory, so os.replace is an atomic rename.
      fd, tmp_name = tempfile.mkstemp(
          dir=cache, prefix=f".{SAMPLE_FILENAME}.", suffix=".part"
      )
      tmp_path = pathlib.Path(tmp_name)
      try:
        with (
            os.fdopen(fd, "wb") as out,
            zf.open(info) as raw,
            bz2.open(raw, "rb") as src,
        ):
          while chunk := src.read(_CHUNK):
            out.write(chunk)
        _check_or_delete(tmp_path, f"extracted from {wheel.name}")
        os.replace(tmp_path, target)
      finally:
        tmp_path.unlink(missing_ok=True)
  return target


def load_bytes(path: str | os.PathLike) -> np.ndarray:
  """Reads a raw byte file as a uint8 array.

  Accepts a plain file, a ``.bz2`` file (decompressed on the fly) or a
  ``.zip`` holding exactly one file (like the original ``enwik8.zip``).

  Args:
    path: the file to read.

  Returns:
    A read-only uint8 array of shape ``[num_bytes]`` (copy it to write).

  Raises:
    FileNotFoundError: `path` does not exist.
    IsADirectoryError: `path` is a directory.
    ValueError: the (decompressed) file is empty, a zip does not hold
      exactly one file, or a .bz2/.zip archive is corrupt or truncated.
  """
  path = pathlib.Path(path).expanduser()
  if not path.exists():
    raise FileNotFoundError(
        f"No data file at {path}. Get the enwiki sample with "
        "algebranets.data.fetch_enwiki_sample() (downloads it once from PyPI) "
        "or set data.path to an existing raw file (plain, .bz2 or .zip, e.g. "
        "enwik8.zip)."
    )
  if path.is_dir():
    raise IsADirectoryError(
        f"Data path {path} is a directory; pass the file itself, e.g. "
        f"{path / SAMPLE_FILENAME}."
    )
  suffix = path.suffix.lower()
  try:
    if suffix == ".bz2":
      with bz2.open(path, "rb") as f:
        raw = f.read()
    elif suffix == ".zip":
      with zipfile.ZipFile(path) as zf:
        files = [i for i in zf.infolist() if not i.is_dir()]
        if len(files) != 1:
          raise ValueError(
              f"Zip archive {path} holds {len(files)} files "
              f"({[i.filename for i in files]}); expected exactly one (like "
              "enwik8.zip). Extract the file you want and pass its path."
          )
        raw = zf.read(files[0])
    else:
      raw = path.read_bytes()
  except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    if suffix not in (".bz2", ".zip"):
      raise
    # bz2 says "Invalid data stream" or EOFError, zipfile "BadZipFile",
    # none of them naming the file.
    raise ValueError(
        f"{path} is not a readable {suffix[1:]} archive: it is corrupt or "
        f"truncated ({type(e).__name__}: {e}). Download it again, or pass "
        "the uncompressed file."
    ) from None
  if not raw:
    raise ValueError(
        f"Data file {path} is empty (0 bytes after decompression). Delete it "
        "and fetch it again (fetch_enwiki_sample()) or point data.path at a "
        "non-empty file."
    )
  return np.frombuffer(raw, dtype=np.uint8)


def split_bytes(
    data: np.ndarray,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> dict[str, np.ndarray]:
  """Splits a byte stream by position into train/valid/test, like enwik8.

  The splits are contiguous and in order: the first ``fractions[0]`` of the
  bytes are train, the next ``fractions[1]`` valid, the rest test (enwik8:
  90M/5M/5M of 10^8). Boundaries are rounded cumulative fractions, so the
  concatenation of the splits is exactly `data`.

  Args:
    data: uint8 array of shape ``[N]``.
    fractions: three positive fractions (train, valid, test) summing to 1.

  Returns:
    ``dict(train=, valid=, test=)`` of uint8 views into `data`, shapes
    ``[N_train]``, ``[N_valid]``, ``[N_test]``.

  Raises:
    ValueError: `data` is not 1-D, bad fractions, or a split would be empty.
  """
  data = np.asarray(data)
  if data.ndim != 1:
    raise ValueError(
        f"data must be a 1-D byte array, got shape {data.shape}; flatten it "
        "with data.reshape(-1) first."
    )
  fractions = tuple(float(f) for f in fractions)
  if len(fractions) != len(SPLIT_NAMES):
    raise ValueError(
        f"fractions must have 3 entries (train, valid, test), got "
        f"{len(fractions)}: {fractions}. Use e.g. {DEFAULT_FRACTIONS}."
    )
  if not all(f > 0 for f in fractions):
    raise ValueError(
        f"fractions must all be positive, got {fractions}. Use e.g. "
        f"{DEFAULT_FRACTIONS}."
    )
  if abs(sum(fractions) - 1.0) > 1e-9:
    raise ValueError(
        f"fractions must sum to 1 (within 1e-9), got {fractions} summing to "
        f"{sum(fractions)!r}. Rescale them, e.g. {DEFAULT_FRACTIONS}."
    )
  n = data.shape[0]
  # Rounding the cumulative boundaries (not each size) keeps the sizes summing
  # to n and gives 90M/5M/5M exactly for enwik8's 10^8 bytes.
  b1 = round(n * fractions[0])
  b2 = round(n * (fractions[0] + fractions[1]))
  parts = (data[:b1], data[b1:b2], data[b2:])
  sizes = tuple(p.shape[0] for p in parts)
  if min(sizes) == 0:
    raise ValueError(
        f"Splitting {n} bytes with fractions {fractions} gives sizes "
        f"(train, valid, test) = {sizes}, and every split must be non-empty. "
        "Use more data or larger fractions."
    )
  return dict(zip(SPLIT_NAMES, parts, strict=True))


def load_enwiki_sample(
    path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, np.ndarray]:
  """Loads the enwiki sample (or any raw byte file) split 90/5/5 by position.

  Args:
    path: a raw file to load instead (plain, .bz2 or .zip, e.g. enwik8.zip).
      If None, the sample is fetched with `fetch_enwiki_sample(cache_dir)`.
    cache_dir: cache directory for the fetched sample; ignored if `path` is
      given.

  Returns:
    ``dict(train=, valid=, test=)`` of read-only uint8 arrays of shape
    ``[N_split]``.
  """
  if path is None:
    path = fetch_enwiki_sample(cache_dir)
  return split_bytes(load_bytes(path))


def _byte_counts(data: np.ndarray, name: str) -> np.ndarray:
  data = np.asarray(data).reshape(-1)
  if data.size == 0:
    raise ValueError(
        f"{name} is empty; the unigram model needs at least 1 byte."
    )
  if not np.issubdtype(data.dtype, np.integer):
    raise ValueError(
        f"{name} must hold byte values (integer dtype), got dtype "
        f"{data.dtype}. Pass the uint8 array from load_bytes()."
    )
  lo, hi = int(data.min()), int(data.max())
  if lo < 0 or hi >= VOCAB_SIZE:
    raise ValueError(
        f"{name} values must lie in [0, {VOCAB_SIZE}), got range [{lo}, {hi}]."
        " Pass raw bytes (uint8)."
    )
  return np.bincount(data, minlength=VOCAB_SIZE).astype(np.float64)


def unigram_entropy_bits(
    data: np.ndarray,
    reference: np.ndarray | None = None,
) -> float:
  """Bits per byte of the empirical unigram (byte-frequency) model.

  With ``reference=None`` this is the entropy of `data`'s own byte
  distribution, ``H(p) = -sum_x p(x) log2 p(x)`` with ``p(x) = count_data(x) /
  N``. That is an in-sample number (the model is fitted on the data it
  scores), so it is a lower bound for any unigram model, not a fair baseline.

  With `reference` (e.g. the train split) it is the cross-entropy of `data`
  under the reference's add-one (Laplace) smoothed unigram distribution over
  all 256 bytes, ``-sum_x p(x) log2 q(x)`` with ``q(x) = (count_ref(x) + 1) /
  (N_ref + 256)``: the held-out bits/byte of the best context-free model, the
  honest baseline a byte-level language model must beat. Smoothing keeps it
  finite when `data` holds a byte unseen in `reference`. By Gibbs' inequality
  it is never below the entropy of `data`.

  Args:
    data: integer array of byte values in [0, 256), any shape (flattened);
      usually uint8 of shape ``[N]``.
    reference: optional integer array of byte values in [0, 256), any shape.

  Returns:
    Bits per byte as a Python float.

  Raises:
    ValueError: an array is empty, not integer, or has values outside
      [0, 256).
  """
  counts = _byte_counts(data, "data")
  p = counts / counts.sum()
  if reference is None:
    nz = p > 0
    # `+ 0.0` turns the -0.0 of a constant array into 0.0.
    return float(-np.sum(p[nz] * np.log2(p[nz]))) + 0.0
  ref_counts = _byte_counts(reference, "reference")
  q = (ref_counts + 1.0) / (ref_counts.sum() + VOCAB_SIZE)
  return float(-np.sum(p * np.log2(q))) + 0.0
