"""Tests for algebranets.data.enwiki_sample (byte data, splits, baselines)."""

import bz2
import hashlib
import math
import pathlib
import subprocess
import zipfile

import numpy as np
import pytest

from algebranets import data as data_lib
from algebranets.data import enwiki_sample


def _random_bytes(n, seed=0):
  return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)


@pytest.fixture(name="payload")
def _payload():
  return _random_bytes(5000).tobytes()


# --- load_bytes ---


def test_load_bytes_plain(tmp_path, payload):
  p = tmp_path / "x.raw"
  p.write_bytes(payload)
  out = data_lib.load_bytes(p)
  assert out.dtype == np.uint8
  assert out.shape == (len(payload),)
  assert out.tobytes() == payload


def test_load_bytes_bz2(tmp_path, payload):
  p = tmp_path / "x.xml.bz2"
  p.write_bytes(bz2.compress(payload))
  assert data_lib.load_bytes(p).tobytes() == payload


def test_load_bytes_zip(tmp_path, payload):
  p = tmp_path / "enwik8.zip"
  with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
    zf.writestr("enwik8", payload)
  assert data_lib.load_bytes(str(p)).tobytes() == payload


def test_load_bytes_missing(tmp_path):
  with pytest.raises(
      FileNotFoundError, match=r"No data file.*fetch_enwiki_sample"
  ):
    data_lib.load_bytes(tmp_path / "nope.xml")


def test_load_bytes_empty(tmp_path):
  p = tmp_path / "empty.xml"
  p.write_bytes(b"")
  with pytest.raises(ValueError, match=r"is empty \(0 bytes"):
    data_lib.load_bytes(p)


def test_load_bytes_empty_bz2(tmp_path):
  p = tmp_path / "empty.bz2"
  p.write_bytes(bz2.compress(b""))
  with pytest.raises(ValueError, match="is empty"):
    data_lib.load_bytes(p)


def test_load_bytes_directory(tmp_path):
  with pytest.raises(IsADirectoryError, match="is a directory"):
    data_lib.load_bytes(tmp_path)


def test_load_bytes_zip_two_members(tmp_path):
  p = tmp_path / "two.zip"
  with zipfile.ZipFile(p, "w") as zf:
    zf.writestr("a", b"aa")
    zf.writestr("b", b"bb")
  with pytest.raises(ValueError, match=r"holds 2 files \(\['a', 'b'\]\)"):
    data_lib.load_bytes(p)


def _zip_bytes(payload: bytes) -> bytes:
  import io

  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
    zf.writestr("enwik8", payload)
  return buf.getvalue()


@pytest.mark.parametrize(
    "name, content",
    [
        # Issue 16 item 6: these ended in "OSError: Invalid data stream",
        # EOFError and BadZipFile, none naming the file.
        ("garbage.bz2", lambda p: b"this is not bzip2 data" * 10),
        (
            "truncated.bz2",
            lambda p: bz2.compress(p)[: len(bz2.compress(p)) // 2],
        ),
        ("garbage.zip", lambda p: b"this is not a zip archive" * 10),
        ("truncated.zip", lambda p: _zip_bytes(p)[: len(_zip_bytes(p)) // 2]),
        # Intact zip directory, damaged deflate stream.
        (
            "damaged.zip",
            lambda p: _zip_bytes(p)[:60] + bytes(200) + _zip_bytes(p)[260:],
        ),
    ],
)
def test_corrupt_archives_name_the_file(tmp_path, payload, name, content):
  path = tmp_path / name
  path.write_bytes(content(payload))
  with pytest.raises(ValueError, match="corrupt or truncated") as err:
    data_lib.load_bytes(path)
  assert str(path) in str(err.value)


# --- split_bytes ---


def test_split_bytes_sizes_and_order():
  x = _random_bytes(1000)
  splits = data_lib.split_bytes(x)
  assert list(splits) == ["train", "valid", "test"]
  assert [s.shape[0] for s in splits.values()] == [900, 50, 50]
  np.testing.assert_array_equal(np.concatenate(list(splits.values())), x)
  np.testing.assert_array_equal(splits["valid"], x[900:950])


def test_split_bytes_enwik8_sizes():
  # Only the boundaries matter; a broadcast view avoids allocating 100 MB.
  x = np.broadcast_to(np.uint8(0), (10**8,))
  sizes = [s.shape[0] for s in data_lib.split_bytes(x).values()]
  assert sizes == [90_000_000, 5_000_000, 5_000_000]


def test_split_bytes_sample_sizes_sum():
  n = enwiki_sample.SAMPLE_NUM_BYTES
  x = np.broadcast_to(np.uint8(0), (n,))
  sizes = [s.shape[0] for s in data_lib.split_bytes(x).values()]
  assert sum(sizes) == n
  assert sizes == [5_480_771, 304_488, 304_487]


@pytest.mark.parametrize(
    ("fractions", "match"),
    [
        ((0.9, 0.1), "must have 3 entries"),
        ((0.9, 0.1, 0.0), "must all be positive"),
        ((1.1, -0.05, -0.05), "must all be positive"),
        ((0.9, 0.05, 0.06), "must sum to 1"),
    ],
)
def test_split_bytes_bad_fractions(fractions, match):
  with pytest.raises(ValueError, match=match):
    data_lib.split_bytes(_random_bytes(1000), fractions)


def test_split_bytes_empty_split():
  with pytest.raises(
      ValueError, match=r"sizes \(train, valid, test\) = \(9, 1, 0\)"
  ):
    data_lib.split_bytes(_random_bytes(10))


def test_split_bytes_not_1d():
  with pytest.raises(ValueError, match=r"got shape \(10, 10\)"):
    data_lib.split_bytes(_random_bytes(100).reshape(10, 10))


# --- unigram_entropy_bits ---


def test_entropy_uniform_is_8():
  x = np.tile(np.arange(256, dtype=np.uint8), 7)
  assert data_lib.unigram_entropy_bits(x) == 8.0


def test_entropy_constant_is_0():
  assert data_lib.unigram_entropy_bits(np.full(100, 65, np.uint8)) == 0.0


def test_entropy_two_symbols_is_1():
  x = np.array([3, 200] * 50, np.uint8)
  assert data_lib.unigram_entropy_bits(x) == 1.0


def test_cross_entropy_hand_formula():
  data = np.array([0, 0, 1, 2], np.uint8)
  reference = np.array([0, 0, 0, 1], np.uint8)
  # Laplace: q(0) = 4/260, q(1) = 2/260, q(2) = 1/260; p = (1/2, 1/4, 1/4).
  want = -(
      0.5 * math.log2(4 / 260)
      + 0.25 * math.log2(2 / 260)
      + 0.25 * math.log2(1 / 260)
  )
  got = data_lib.unigram_entropy_bits(data, reference=reference)
  assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cross_entropy_at_least_entropy(seed):
  rng = np.random.default_rng(seed)
  probs = rng.dirichlet(np.full(256, 0.3))
  data = rng.choice(256, size=3000, p=probs).astype(np.uint8)
  other = rng.choice(256, size=3000, p=probs).astype(np.uint8)
  h = data_lib.unigram_entropy_bits(data)
  assert data_lib.unigram_entropy_bits(data, reference=other) >= h
  assert data_lib.unigram_entropy_bits(data, reference=data) >= h


def test_entropy_bad_inputs():
  with pytest.raises(ValueError, match="data is empty"):
    data_lib.unigram_entropy_bits(np.zeros(0, np.uint8))
  with pytest.raises(ValueError, match=r"got range \[0, 300\]"):
    data_lib.unigram_entropy_bits(np.array([0, 300]))
  with pytest.raises(ValueError, match="got dtype float32"):
    data_lib.unigram_entropy_bits(np.zeros(3, np.float32))


def test_vocab_size():
  assert data_lib.vocab_size() == data_lib.VOCAB_SIZE == 256


# --- fetch_enwiki_sample (offline, with patched constants) ---


@pytest.fixture(name="small_sample")
def _small_sample(monkeypatch):
  """Pins the expected size/sha to those of a small generated 'sample'."""
  content = b"<mediawiki>" + _random_bytes(3000, seed=7).tobytes()
  monkeypatch.setattr(enwiki_sample, "SAMPLE_NUM_BYTES", len(content))
  monkeypatch.setattr(
      enwiki_sample, "SAMPLE_SHA256", hashlib.sha256(content).hexdigest()
  )
  return content


def _no_subprocess(*args, **kwargs):
  raise AssertionError(f"unexpected subprocess call: {args} {kwargs}")


def test_fetch_cached_valid_file_no_network(
    tmp_path, monkeypatch, small_sample
):
  target = tmp_path / enwiki_sample.SAMPLE_FILENAME
  target.write_bytes(small_sample)
  monkeypatch.setattr(subprocess, "run", _no_subprocess)
  assert data_lib.fetch_enwiki_sample(tmp_path) == target
  assert target.read_bytes() == small_sample


def test_fetch_default_cache_dir_from_env(tmp_path, monkeypatch, small_sample):
  (tmp_path / enwiki_sample.SAMPLE_FILENAME).write_bytes(small_sample)
  monkeypatch.setenv("ALGEBRANETS_DATA", str(tmp_path))
  monkeypatch.setattr(subprocess, "run", _no_subprocess)
  path = data_lib.fetch_enwiki_sample()
  assert path == tmp_path / enwiki_sample.SAMPLE_FILENAME
  splits = data_lib.load_enwiki_sample()
  assert sum(s.size for s in splits.values()) == len(small_sample)


def test_fetch_cached_bad_checksum_deletes_and_raises(
    tmp_path, monkeypatch, small_sample
):
  target = tmp_path / enwiki_sample.SAMPLE_FILENAME
  target.write_bytes(small_sample[:-1] + b"!")
  monkeypatch.setattr(subprocess, "run", _no_subprocess)
  with pytest.raises(ValueError, match=r"Checksum mismatch.*expected.*got"):
    data_lib.fetch_enwiki_sample(tmp_path)
  assert not target.exists()


def test_fetch_pip_failure(tmp_path, monkeypatch):
  def fake_run(cmd, **kwargs):
    del kwargs
    return subprocess.CompletedProcess(
        cmd, 1, stdout="", stderr="ERROR: Could not find a version (offline)"
    )

  monkeypatch.setattr(subprocess, "run", fake_run)
  with pytest.raises(
      RuntimeError, match=r"(?s)exit code 1.*offline.*No access to PyPI"
  ):
    data_lib.fetch_enwiki_sample(tmp_path / "cache")
  assert not (tmp_path / "cache" / enwiki_sample.SAMPLE_FILENAME).exists()


def _fake_pip(member, content):
  """A subprocess.run stand-in that 'downloads' a wheel holding `content`."""

  def fake_run(cmd, **kwargs):
    del kwargs
    assert "--no-deps" in cmd and "--only-binary=:all:" in cmd
    assert f"gensim=={enwiki_sample.GENSIM_VERSION}" in cmd
    dest = pathlib.Path(cmd[cmd.index("-d") + 1])
    wheel = dest / "gensim-4.3.3-cp311-cp311-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
      zf.writestr(member, bz2.compress(content))
    return subprocess.CompletedProcess(cmd, 0, stdout="", stderr="")

  return fake_run


def test_fetch_extracts_from_wheel(tmp_path, monkeypatch, small_sample, capsys):
  monkeypatch.setattr(
      subprocess, "run", _fake_pip(enwiki_sample.WHEEL_MEMBER, small_sample)
  )
  path = data_lib.fetch_enwiki_sample(tmp_path / "cache")
  assert path.read_bytes() == small_sample
  assert "Downloading gensim==" in capsys.readouterr().out
  # No temporary files are left next to the result.
  assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_fetch_member_missing(tmp_path, monkeypatch, small_sample):
  monkeypatch.setattr(
      subprocess, "run", _fake_pip("gensim/other.bz2", small_sample)
  )
  with pytest.raises(RuntimeError, match=r"is missing from gensim-4\.3\.3"):
    data_lib.fetch_enwiki_sample(tmp_path)


def test_fetch_extracted_bad_checksum(tmp_path, monkeypatch, small_sample):
  monkeypatch.setattr(
      subprocess,
      "run",
      _fake_pip(enwiki_sample.WHEEL_MEMBER, small_sample + b"x"),
  )
  with pytest.raises(ValueError, match="Checksum mismatch"):
    data_lib.fetch_enwiki_sample(tmp_path)
  assert list(tmp_path.iterdir()) == []


# --- real download (network to PyPI) ---


@pytest.mark.slow
def test_fetch_real_sample(tmp_path):
  path = data_lib.fetch_enwiki_sample(tmp_path)
  assert path.stat().st_size == 6_089_746
  splits = data_lib.load_enwiki_sample(path)
  everything = np.concatenate(list(splits.values()))
  assert everything[:10].tobytes() == b"<mediawiki"
  sizes = {k: v.size for k, v in splits.items()}
  assert sizes == dict(train=5_480_771, valid=304_488, test=304_487)
  h_train = data_lib.unigram_entropy_bits(splits["train"])
  h_valid = data_lib.unigram_entropy_bits(splits["valid"])
  ce_valid = data_lib.unigram_entropy_bits(
      splits["valid"], reference=splits["train"]
  )
  ce_test = data_lib.unigram_entropy_bits(
      splits["test"], reference=splits["train"]
  )
  print(
      f"\nsplit sizes {sizes}; unigram bits/byte: train H={h_train:.4f}, "
      f"valid H={h_valid:.4f}, valid CE|train={ce_valid:.4f}, "
      f"test CE|train={ce_test:.4f}"
  )
  assert ce_valid >= h_valid
  assert 3.0 < ce_valid < 8.0
  # A second call uses the cache.
  assert data_lib.fetch_enwiki_sample(tmp_path) == path
