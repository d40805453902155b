"""Tests for algebranets.data.corpora (TXL-style corpus encoding)."""

import os
import zipfile

import numpy as np
import pytest

from algebranets.data import corpora, enwiki_sample, wikitext_sample

SMALL_ENWIK8 = 2000  # stands in for 10^8 bytes (monkeypatched)


def _bytes_with_newlines(n, seed=0):
  rng = np.random.default_rng(seed)
  data = rng.choice(np.frombuffer(b"abcde \n", np.uint8), n)
  return data.astype(np.uint8)


def _decode(corpus, ids):
  return np.array([corpus.symbols[i] for i in ids], np.uint8)


@pytest.fixture(name="small_enwik8")
def _small_enwik8(monkeypatch):
  monkeypatch.setattr(corpora, "ENWIK8_NUM_BYTES", SMALL_ENWIK8)


# ------------------------------------------------------------------ bytes --


def test_enwik8_split_drops_newlines_like_txl(tmp_path, small_enwik8):
  data = _bytes_with_newlines(SMALL_ENWIK8)
  path = tmp_path / "enwik8"
  path.write_bytes(data.tobytes())
  c = corpora.load_corpus("enwik8", path, cache_dir=tmp_path / "cache")
  assert c.name == "enwik8" and c.unit == "byte"
  # 90/5/5 by position (1800/100/100 bytes), then newline bytes dropped.
  parts = (data[:1800], data[1800:1900], data[1900:])
  for name, part in zip(("train", "valid", "test"), parts, strict=True):
    ids = c.splits[name]
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(_decode(c, ids), part[part != 10])
  assert 10 not in c.symbols and c.vocab_size == 6


def test_byte_vocab_order_frequency_then_byte_value(tmp_path, small_enwik8):
  # Counts: 'z' 1000, 'b' 400, 'a' 400 (tie: 'a' < 'b'), 'c' 199, '\n' 1.
  data = b"z" * 1000 + b"b" * 400 + b"a" * 400 + b"c" * 199 + b"\n"
  path = tmp_path / "enwik8"
  path.write_bytes(data)
  c = corpora.load_corpus("enwik8", path, cache_dir=tmp_path / "c")
  assert c.symbols == (ord("z"), ord("a"), ord("b"), ord("c"))
  kept = corpora.load_corpus(
      "enwik8", path, cache_dir=tmp_path / "c", keep_newlines=True
  )
  assert kept.symbols == (ord("z"), ord("a"), ord("b"), ord("c"), 10)
  assert kept.splits["test"][-1] == 4  # the final newline byte


def test_byte_encoding_in_chunks_is_exact(tmp_path, monkeypatch):
  data = _bytes_with_newlines(3001, seed=3)
  path = tmp_path / "s.raw"
  path.write_bytes(data.tobytes())
  whole = corpora.load_corpus("enwiki_sample", path, cache_dir=tmp_path / "a")
  monkeypatch.setattr(corpora, "_CHUNK", 7)  # ragged last chunks
  chunked = corpora.load_corpus("enwiki_sample", path, cache_dir=tmp_path / "b")
  assert chunked.symbols == whole.symbols
  for k in whole.splits:
    np.testing.assert_array_equal(chunked.splits[k], whole.splits[k])


def test_enwik8_zip_equals_plain(tmp_path, small_enwik8):
  data = _bytes_with_newlines(SMALL_ENWIK8, seed=1).tobytes()
  plain = tmp_path / "enwik8"
  plain.write_bytes(data)
  zipped = tmp_path / "enwik8.zip"
  with zipfile.ZipFile(zipped, "w") as zf:
    zf.writestr("enwik8", data)
  a = corpora.load_corpus("enwik8", plain, cache_dir=tmp_path / "c")
  b = corpora.load_corpus("enwik8", str(zipped), cache_dir=tmp_path / "c")
  assert a.symbols == b.symbols
  for k in a.splits:
    np.testing.assert_array_equal(a.splits[k], b.splits[k])


def test_enwik8_wrong_size_message(tmp_path, small_enwik8):
  path = tmp_path / "enwik8"
  path.write_bytes(b"x" * 1234)
  with pytest.raises(ValueError) as e:
    corpora.load_corpus("enwik8", path, cache_dir=tmp_path / "c")
  msg = str(e.value)
  assert "1,234 bytes" in msg and f"{SMALL_ENWIK8:,}" in msg
  assert "10^8 bytes" in msg and "Wikipedia" in msg
  assert "http://mattmahoney.net/dc/enwik8.zip" in msg
  assert "--config.data.path=/path/enwik8.zip" in msg


def test_enwik8_real_size_constant():
  assert corpora.ENWIK8_NUM_BYTES == 100_000_000


def test_enwik8_needs_a_path_and_an_existing_file(tmp_path):
  with pytest.raises(ValueError, match="mattmahoney"):
    corpora.load_corpus("enwik8", "", cache_dir=tmp_path)
  with pytest.raises(FileNotFoundError, match="No data file"):
    corpora.load_corpus("enwik8", tmp_path / "nope.zip", cache_dir=tmp_path)


def test_enwiki_sample_from_a_file_splits_like_split_bytes(tmp_path):
  data = _bytes_with_newlines(3001, seed=2)
  path = tmp_path / "sample.xml"
  path.write_bytes(data.tobytes())
  c = corpora.load_corpus("enwiki_sample", path, cache_dir=tmp_path / "c")
  ref = enwiki_sample.split_bytes(data)
  for k, part in ref.items():
    np.testing.assert_array_equal(_decode(c, c.splits[k]), part[part != 10])
  counts = np.bincount(data[data != 10], minlength=256)
  assert sorted(c.symbols) == list(np.flatnonzero(counts))
  assert [counts[s] for s in c.symbols] == sorted(counts[counts > 0])[::-1]


def test_enwiki_sample_default_path_fetches(tmp_path, monkeypatch):
  path = tmp_path / "fetched.xml"
  path.write_bytes(b"<page>hello wiki world</page>\n" * 20)
  seen = []

  def fake_fetch(cache_dir=None):
    seen.append(cache_dir)
    return path

  monkeypatch.setattr(enwiki_sample, "fetch_enwiki_sample", fake_fetch)
  c = corpora.load_corpus("enwiki_sample", cache_dir=tmp_path / "c")
  assert seen == [tmp_path / "c"]
  # "e" and "l" occur 3 times per line, the most; the tie goes to "e".
  assert c.symbols[:2] == (ord("e"), ord("l"))
  total = sum(v.size for v in c.splits.values())
  assert total == 20 * 29  # every byte but the 20 newlines


# ------------------------------------------------------------------ words --

# Train counts (without '<eos>'): '=' 2, 'T' 1, 'x' 2, 'y' 2, 'z' 1, '<unk>' 1.
# most_common keeps first-occurrence order for ties: = x y, then T z <unk>.
TRAIN = " = T = \n \n x y x \n y z <unk> \n"
SYMBOLS = ("<eos>", "=", "x", "y", "T", "z", "<unk>")
TRAIN_IDS = [1, 4, 1, 0, 0, 2, 3, 2, 0, 3, 5, 6, 0]


def _wikitext_dir(root, train=TRAIN, valid=" x w \n", test="z\n\n"):
  root.mkdir(parents=True, exist_ok=True)
  for name, text in (("train", train), ("valid", valid), ("test", test)):
    (root / f"wiki.{name}.tokens").write_bytes(text.encode("utf-8"))
  return root


def test_wikitext_vocab_eos_and_ids(tmp_path):
  d = _wikitext_dir(tmp_path / "wt")
  c = corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")
  assert c.unit == "word" and c.symbols == SYMBOLS and c.vocab_size == 7
  assert c.splits["train"].tolist() == TRAIN_IDS
  # 'w' is not in the train vocabulary -> '<unk>'.
  assert c.splits["valid"].tolist() == [2, 6, 0]
  # A blank line is a lone '<eos>', as in TXL.
  assert c.splits["test"].tolist() == [5, 0, 0]
  assert all(v.dtype == np.int32 for v in c.splits.values())


def test_wikitext_crlf_and_unicode_whitespace_like_txl(tmp_path):
  d = _wikitext_dir(
      tmp_path / "wt",
      train=TRAIN.replace("\n", "\r\n"),
      valid=" x\u00a0y \n",  # str.split() splits on U+00A0 too
  )
  c = corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")
  assert c.symbols == SYMBOLS
  assert c.splits["train"].tolist() == TRAIN_IDS
  assert c.splits["valid"].tolist() == [2, 3, 0]


def test_wikitext_unknown_word_without_unk_fails(tmp_path):
  d = _wikitext_dir(tmp_path / "wt", train=" a b \n", valid=" a \n a q \n")
  with pytest.raises(ValueError, match=r"line 2: word 'q'.*no '<unk>'"):
    corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")


def test_wikitext_missing_files_listed(tmp_path):
  d = tmp_path / "wt"
  d.mkdir()
  (d / "wiki.train.tokens").write_text(" a \n")
  with pytest.raises(FileNotFoundError) as e:
    corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")
  msg = str(e.value)
  assert "wiki.valid.tokens" in msg and "wiki.test.tokens" in msg
  assert "'wiki.train.tokens'" not in msg.split("needs")[0]
  assert "wikitext-103-v1.zip" in msg
  with pytest.raises(FileNotFoundError, match="not a directory"):
    corpora.load_corpus(
        "wikitext103", d / "wiki.train.tokens", cache_dir=tmp_path / "c"
    )


def test_wikitext_empty_or_bad_utf8_files(tmp_path):
  d = _wikitext_dir(tmp_path / "a", valid="")
  with pytest.raises(ValueError, match=r"wiki\.valid\.tokens is empty"):
    corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")
  d = _wikitext_dir(tmp_path / "b")
  (d / "wiki.test.tokens").write_bytes(b" ok \xff\xfe \n")
  with pytest.raises(ValueError, match="not valid UTF-8"):
    corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")


def test_wikitext103_needs_a_path(tmp_path):
  with pytest.raises(ValueError, match=r"wikitext-103-v1\.zip"):
    corpora.load_corpus("wikitext103", cache_dir=tmp_path)


def test_wikitext_sample_default_builds(tmp_path, monkeypatch):
  d = _wikitext_dir(tmp_path / "built")
  monkeypatch.setattr(wikitext_sample, "build", lambda cache_dir=None: d)
  c = corpora.load_corpus("wikitext_sample", cache_dir=tmp_path / "c")
  assert c.name == "wikitext_sample" and c.symbols == SYMBOLS


# ------------------------------------------------------------------ cache --


def test_cache_hit_returns_identical_arrays(tmp_path, monkeypatch):
  d = _wikitext_dir(tmp_path / "wt")
  first = corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")

  def fail(*args, **kwargs):
    raise AssertionError("re-encoded despite a cache entry")

  monkeypatch.setattr(corpora, "_encode_words", fail)
  again = corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")
  assert again.symbols == first.symbols
  for k in first.splits:
    assert again.splits[k].dtype == np.int32
    np.testing.assert_array_equal(again.splits[k], first.splits[k])


def test_cache_misses_when_a_file_changes(tmp_path):
  d = _wikitext_dir(tmp_path / "wt")
  corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")
  (d / "wiki.test.tokens").write_text(" x x y \n")
  st = (d / "wiki.test.tokens").stat()
  os.utime(d / "wiki.test.tokens", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
  c = corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")
  assert c.splits["test"].tolist() == [2, 2, 3, 0]
  assert len(list((tmp_path / "c" / "corpora").iterdir())) == 2


def test_cache_byte_corpus_and_default_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("ALGEBRANETS_DATA", str(tmp_path / "env"))
  path = tmp_path / "s.raw"
  path.write_bytes(_bytes_with_newlines(500).tobytes())
  first = corpora.load_corpus("enwiki_sample", path)
  entries = list((tmp_path / "env" / "corpora").iterdir())
  assert len(entries) == 1 and entries[0].name.startswith("enwiki_sample-")
  # Stored compactly, returned as int32.
  assert np.load(entries[0] / "train.npy").dtype == np.uint8
  monkeypatch.setattr(
      enwiki_sample, "load_bytes", lambda p: pytest.fail("file re-read")
  )
  again = corpora.load_corpus("enwiki_sample", path)
  assert again.symbols == first.symbols
  for k in first.splits:
    np.testing.assert_array_equal(again.splits[k], first.splits[k])
    assert again.splits[k].dtype == np.int32


def test_damaged_cache_entry_is_rebuilt(tmp_path):
  d = _wikitext_dir(tmp_path / "wt")
  corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")
  (entry,) = (tmp_path / "c" / "corpora").iterdir()
  (entry / "symbols.json").write_text("{broken")
  with pytest.warns(UserWarning, match="Rebuilding"):
    c = corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")
  assert c.symbols == SYMBOLS
  assert c.splits["train"].tolist() == TRAIN_IDS


def test_cache_entry_with_wrong_content_is_rebuilt(tmp_path):
  # Issue 16 item 8: a valid .npy with other content (here a 100,000-token
  # array, as in the attack) was used silently.
  d = _wikitext_dir(tmp_path / "wt")
  corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")
  (entry,) = (tmp_path / "c" / "corpora").iterdir()
  np.save(entry / "train.npy", np.zeros(100_000, np.uint8))
  with pytest.warns(UserWarning, match="does not match its record"):
    c = corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")
  assert c.splits["train"].tolist() == TRAIN_IDS
  # Same length, one token changed: caught by the hash, not the size.
  train = np.load(entry / "train.npy")
  train[0] = (train[0] + 1) % len(SYMBOLS)
  np.save(entry / "train.npy", train)
  with pytest.warns(UserWarning, match="does not match its record"):
    c = corpora.load_corpus("wikitext103", d, cache_dir=tmp_path / "c")
  assert c.splits["train"].tolist() == TRAIN_IDS


# ------------------------------------------------------------------- misc --


def test_unknown_source_lists_valid_and_suggests():
  with pytest.raises(ValueError) as e:
    corpora.load_corpus("enwik9")
  msg = str(e.value)
  assert "Did you mean 'enwik8'?" in msg
  for name in corpora.SOURCES:
    assert repr(name) in msg


def test_keep_newlines_only_for_bytes(tmp_path):
  d = _wikitext_dir(tmp_path / "wt")
  with pytest.raises(ValueError, match="byte corpora only"):
    corpora.load_corpus("wikitext103", d, keep_newlines=True)


def test_corpus_vocab_size():
  c = corpora.Corpus(
      name="x", unit="word", symbols=("<eos>", "a", "b"), splits={}
  )
  assert c.vocab_size == 3
