"""Language-modelling corpora encoded as Transformer-XL encodes them.

`load_corpus(name, path)` returns a `Corpus`: the vocabulary (``symbols``,
id -> symbol) and the train/valid/test splits as int32 token ids. Sources:

``enwik8`` (`path` = the enwik8 file or the original enwik8.zip)
  The first 10^8 bytes of the 2006 English Wikipedia XML dump, split by
  position into 90M/5M/5M bytes (TXL's ``prep_enwik8.py``). The file must be
  exactly 100,000,000 bytes.

``enwiki_sample`` (`path` '' = the shipped 6 MB Wikipedia XML sample, see
`enwiki_sample.fetch_enwiki_sample`; or any raw byte file)
  The same treatment as enwik8, split 90/5/5 by position with `split_bytes`.

``wikitext103`` (`path` = the directory of ``wiki.{train,valid,test}.tokens``)
  Word-level WikiText-103.

``wikitext_sample`` (`path` '' = built by `wikitext_sample.build()`)
  An offline WikiText-103 stand-in made from the enwiki sample, read exactly
  like wikitext103.

Byte corpora (``unit='byte'``; report bits per byte, TXL's "bpc"), as TXL
builds them (``prep_enwik8.py`` writes each byte as its decimal value with
newline bytes as line breaks; ``data_utils.Corpus`` reads the lines with
``add_eos=False``):
  * **Newline bytes (10) are dropped** from every split, because TXL's line
    tokenizer discards the line breaks and adds no ``<eos>`` for enwik8. So
    the bpc TXL reports (and this corpus measures) is per non-newline byte;
    keeping them changes bpc by about 0.02 (facebookresearch/adaptive-span
    issue #5). Pass ``keep_newlines=True`` to keep them as an ordinary byte
    symbol.
  * The vocabulary is the byte values present in the three splits, most
    frequent first, no special tokens. TXL orders by ``Counter.most_common``,
    which breaks count ties by first occurrence; here ties go to the smaller
    byte value, so the order does not depend on where a byte first occurs.
    (Ties need equal counts over 10^8 bytes, so this can only reorder rare
    bytes.) On real enwik8 this gives TXL's 204 symbols (205 distinct bytes
    minus the newline; fastmoe issue #163 shows TXL's log "final vocab size
    204"); that has not been verified here, without the file.

Word corpora (``unit='word'``; report perplexity), as TXL builds wt103
(``Vocab(special=['<eos>'], lower_case=False)``):
  * Every line of a file (read as UTF-8 with universal newlines) is stripped
    and split on whitespace (Python's ``str.split()``), and ``'<eos>'`` is
    appended, blank lines included (they become a lone ``'<eos>'``; TXL does
    not skip them).
  * The vocabulary is built from the TRAIN file only: ``'<eos>'`` first (id
    0, TXL's special symbol), then the train words by ``Counter.most_common``
    (count ties in order of first occurrence, exactly TXL's order). No
    ``<unk>`` is added; WikiText already contains ``'<unk>'`` as a word.
  * A valid/test word missing from the vocabulary maps to ``'<unk>'`` if that
    is in the vocabulary, else loading fails (TXL would hit an assertion;
    real WikiText-103 has no such words).
  * On real WikiText-103 this gives TXL's n_token = 267,735 symbols; that has
    not been verified here, without the files.

Encoded corpora are cached under ``<cache_dir>/corpora/`` (``cache_dir`` =
``$ALGEBRANETS_DATA`` or ``~/.cache/algebranets``), keyed by source, options
and the input files' paths, sizes and mtimes; a changed file is re-encoded.
Each entry records the length and sha256 of every split it holds, checked on
every load: an entry that does not match (a damaged or replaced ``.npy``, an
entry written before the record existed) is rebuilt from the source, never
used.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import hashlib
import json
import os
import pathlib
import shutil
import tempfile
import warnings
from array import array

import numpy as np

from algebranets.data import enwiki_sample, wikitext_sample

SOURCES = ("enwik8", "enwiki_sample", "wikitext103", "wikitext_sample")
SPLIT_NAMES = ("train", "valid", "test")

ENWIK8_NUM_BYTES = 100_000_000
ENWIK8_URL = "http://mattmahoney.net/dc/enwik8.zip"
WIKITEXT103_URL = (
    "https://s3.amazonaws.com/research.metamind.io/wikitext/"
    "wikitext-103-v1.zip"
)
WIKITEXT_FILES = {s: f"wiki.{s}.tokens" for s in SPLIT_NAMES}
EOS = "<eos>"
UNK = "<unk>"
NEWLINE_BYTE = 10

# Bump when the encoding changes, so stale caches are not picked up.
_CACHE_VERSION = 1
_CHUNK = 1 << 24


@dataclasses.dataclass(frozen=True, eq=False)
class Corpus:
  """An encoded language-modelling corpus.

  Attributes:
    name: the source name (one of `SOURCES`).
    unit: ``'byte'`` (report bits per byte) or ``'word'`` (perplexity).
    symbols: id -> symbol; ints 0..255 for byte corpora, str for words.
    splits: ``'train'``, ``'valid'``, ``'test'`` -> int32 token ids [N].
  """

  name: str
  unit: str
  symbols: tuple
  splits: dict[str, np.ndarray]

  @property
  def vocab_size(self) -> int:
    """Number of symbols; every id lies in [0, vocab_size)."""
    return len(self.symbols)


# ------------------------------------------------------------------ bytes --


def _byte_vocab(
    splits: dict[str, np.ndarray],
) -> tuple[tuple[int, ...], dict[str, np.ndarray]]:
  """Frequency-ordered byte vocabulary over all splits, and the id arrays."""
  counts = np.zeros(256, np.int64)
  for v in splits.values():
    # In chunks: bincount and fancy indexing copy their uint8 input to intp
    # (8 bytes per byte, 720 MB for enwik8's train split at once).
    for i in range(0, v.size, _CHUNK):
      counts += np.bincount(v[i : i + _CHUNK], minlength=256)
  present = np.flatnonzero(counts)
  # lexsort: the last key is primary (count descending), then byte value.
  order = present[np.lexsort((present, -counts[present]))]
  lut = np.full(256, -1, np.int32)
  lut[order] = np.arange(order.size, dtype=np.int32)
  ids = {}
  for k, v in splits.items():
    ids[k] = np.empty(v.size, np.int32)
    for i in range(0, v.size, _CHUNK):
      ids[k][i : i + _CHUNK] = lut[v[i : i + _CHUNK]]
  return tuple(int(b) for b in order), ids


def _encode_bytes(
    split: dict[str, np.ndarray], keep_newlines: bool
) -> tuple[tuple[int, ...], dict[str, np.ndarray]]:
  if not keep_newlines:
    split = {k: v[v != NEWLINE_BYTE] for k, v in split.items()}
  for k, v in split.items():
    if v.size == 0:
      raise ValueError(
          f"The {k} split is empty after dropping newline bytes; use a "
          "larger file or keep_newlines=True."
      )
  return _byte_vocab(split)


def _enwik8_split(data: np.ndarray) -> dict[str, np.ndarray]:
  if data.size != ENWIK8_NUM_BYTES:
    raise ValueError(
        f"enwik8 must be exactly {ENWIK8_NUM_BYTES:,} bytes (the first 10^8 "
        "bytes of the 2006 English Wikipedia XML dump, Hutter prize), but "
        f"the file holds {data.size:,} bytes. Download {ENWIK8_URL} and pass "
        "--config.data.path=/path/enwik8.zip (the zip or the extracted "
        "enwik8 file). For other byte files use data.name='enwiki_sample' "
        "with data.path set."
    )
  # TXL's prep_enwik8.py: the last 2 * 5M bytes are valid and test.
  n_test = data.size // 20
  return {
      "train": data[: -2 * n_test],
      "valid": data[-2 * n_test : -n_test],
      "test": data[-n_test:],
  }


# ------------------------------------------------------------------ words --


def _wikitext_paths(directory: pathlib.Path, name: str) -> dict:
  if not directory.is_dir():
    raise FileNotFoundError(
        f"{name}: {directory} is not a directory. Pass the directory holding "
        f"{', '.join(WIKITEXT_FILES.values())} (unzip {WIKITEXT103_URL}; the "
        "files are in wikitext-103/)."
    )
  paths = {s: directory / f for s, f in WIKITEXT_FILES.items()}
  missing = [p.name for p in paths.values() if not p.is_file()]
  if missing:
    raise FileNotFoundError(
        f"{name}: {directory} lacks {missing} (needs "
        f"{list(WIKITEXT_FILES.values())}). Get WikiText-103 from "
        f"{WIKITEXT103_URL}, unzip it and pass the wikitext-103/ directory "
        "as --config.data.path."
    )
  for p in paths.values():
    if p.stat().st_size == 0:
      raise ValueError(
          f"{name}: {p} is empty (0 bytes). Re-extract it from "
          f"{WIKITEXT103_URL}."
      )
  return paths


def _lines(path: pathlib.Path):
  """Yields TXL's token lists: stripped, whitespace-split, plus '<eos>'."""
  try:
    # Text mode with universal newlines, like TXL's open(path, 'r').
    with open(path, encoding="utf-8") as f:
      for line in f:
        symbols = line.split()
        symbols.append(EOS)
        yield symbols
  except UnicodeDecodeError as e:
    raise ValueError(
        f"{path} is not valid UTF-8 ({e.reason}). WikiText "
        "token files are UTF-8; re-extract the file or convert it."
    ) from e


def _encode_words(
    paths: dict[str, pathlib.Path],
) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
  counter: collections.Counter = collections.Counter()
  for symbols in _lines(paths["train"]):
    # TXL counts the train file without '<eos>' (add_eos=False) and adds it
    # as a special symbol in front.
    counter.update(symbols[:-1])
  # most_common sorts stably by count, so ties keep first-occurrence order.
  idx2sym = [EOS] + [w for w, _ in counter.most_common() if w != EOS]
  sym2idx = {w: i for i, w in enumerate(idx2sym)}
  unk = sym2idx.get(UNK)
  splits = {}
  for split, path in paths.items():
    ids = array("i")
    for lineno, symbols in enumerate(_lines(path), start=1):
      try:
        ids.extend([sym2idx[w] for w in symbols])
      except KeyError as e:
        if unk is None:
          raise ValueError(
              f"{path} line {lineno}: word {e.args[0]!r} is not in the "
              f"vocabulary of {paths['train'].name}, and the vocabulary has "
              f"no {UNK!r} to map it to. Replace rare words by {UNK} in the "
              "files (as WikiText does), or add the word to the train file."
          ) from None
        ids.extend([sym2idx.get(w, unk) for w in symbols])
    # Shares the array's memory (up to 412 MB for WikiText-103 train).
    splits[split] = np.frombuffer(ids, dtype=np.int32)
  return tuple(idx2sym), splits


# ------------------------------------------------------------------ cache --


def _file_key(path: pathlib.Path) -> list:
  st = path.stat()
  return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _cache_root(cache_dir) -> pathlib.Path:
  base = (
      pathlib.Path(cache_dir).expanduser()
      if cache_dir is not None
      else enwiki_sample._default_cache_dir()
  )
  return base / "corpora"


def _digest(ids: np.ndarray) -> dict:
  """The record a cached split is checked against: length and sha256."""
  data = np.ascontiguousarray(ids)
  return {
      "size": int(data.size),
      "dtype": data.dtype.str,
      "sha256": hashlib.sha256(data.view(np.uint8)).hexdigest(),
  }


def _load_cached(entry: pathlib.Path):
  """The entry's contents; ValueError if they do not match their record."""
  meta = json.loads((entry / "symbols.json").read_text(encoding="utf-8"))
  recorded = meta.get("splits")
  if not isinstance(recorded, dict):
    raise ValueError(f"{entry}: no size/sha256 record (an older entry)")
  splits = {}
  for s in SPLIT_NAMES:
    stored = np.load(entry / f"{s}.npy", allow_pickle=False)
    if _digest(stored) != recorded.get(s):
      raise ValueError(f"{entry}/{s}.npy does not match its record")
    splits[s] = stored.astype(np.int32)
  return meta["unit"], tuple(meta["symbols"]), splits


def _store(entry: pathlib.Path, unit: str, symbols: tuple, splits) -> None:
  """Writes the entry into a temporary directory, then renames it."""
  entry.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(
      tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}.")
  )
  try:
    # The smallest dtype that holds the ids: enwik8 is 100 MB, not 400 MB.
    dtype = np.min_scalar_type(max(len(symbols) - 1, 0))
    record = {}
    for s in SPLIT_NAMES:
      stored = splits[s].astype(dtype, copy=False)
      np.save(tmp / f"{s}.npy", stored, allow_pickle=False)
      record[s] = _digest(stored)
    (tmp / "symbols.json").write_text(
        json.dumps(
            {"unit": unit, "symbols": list(symbols), "splits": record},
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    try:
      os.rename(tmp, entry)
    except OSError:
      # Another process stored the same entry first; keep theirs.
      if not entry.is_dir():
        raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------- main --


def _check_name(name: str) -> None:
  if name in SOURCES:
    return
  close = difflib.get_close_matches(str(name), SOURCES, n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  raise ValueError(f"Unknown corpus {name!r}; valid: {list(SOURCES)}.{hint}")


def load_corpus(
    name: str,
    path: str | os.PathLike = "",
    *,
    cache_dir: str | os.PathLike | None = None,
    keep_newlines: bool = False,
) -> Corpus:
  """Loads (and caches) an encoded corpus.

  Args:
    name: one of `SOURCES`.
    path: enwik8: the enwik8 file or enwik8.zip (required). enwiki_sample: a
      raw byte file, or '' for the shipped sample. wikitext103: the
      directory of ``wiki.{train,valid,test}.tokens`` (required).
      wikitext_sample: such a directory, or '' to build/reuse the sample.
    cache_dir: where the enwiki sample, the wikitext sample and the encoded
      corpora are cached; default ``$ALGEBRANETS_DATA`` or
      ``~/.cache/algebranets``.
    keep_newlines: byte corpora only: keep newline bytes as a symbol instead
      of dropping them as TXL does.

  Returns:
    The `Corpus`, splits int32 [N_split] with ids in [0, vocab_size).

  Raises:
    ValueError: unknown name, missing path, wrong enwik8 size, empty or
      non-UTF-8 WikiText files, unknown words without '<unk>'.
    FileNotFoundError: missing files.
  """
  _check_name(name)
  byte_level = name in ("enwik8", "enwiki_sample")
  if keep_newlines and not byte_level:
    raise ValueError(
        f"keep_newlines applies to byte corpora only, not {name!r}."
    )
  path = str(path) if path is not None else ""
  if name in ("enwik8", "wikitext103") and not path:
    where = (
        f"the enwik8 file or enwik8.zip (download {ENWIK8_URL})"
        if name == "enwik8"
        else f"the directory of wiki.*.tokens (unzip {WIKITEXT103_URL})"
    )
    raise ValueError(
        f"Corpus {name!r} needs a path: {where}; pass "
        "--config.data.path=... . Offline, use 'enwiki_sample' or "
        "'wikitext_sample'."
    )
  if name == "enwiki_sample" and not path:
    path = str(enwiki_sample.fetch_enwiki_sample(cache_dir))
  if name == "wikitext_sample" and not path:
    path = str(wikitext_sample.build(cache_dir))
  source = pathlib.Path(path).expanduser()

  if byte_level:
    if not source.exists():
      # load_bytes explains how to get the data.
      enwiki_sample.load_bytes(source)
    files = [_file_key(source)]
  else:
    paths = _wikitext_paths(source, name)
    files = [_file_key(paths[s]) for s in SPLIT_NAMES]
  key_src = json.dumps(
      [_CACHE_VERSION, name, keep_newlines, files], sort_keys=True
  )
  key = hashlib.sha256(key_src.encode()).hexdigest()[:20]
  entry = _cache_root(cache_dir) / f"{name}-{key}"

  if entry.is_dir():
    try:
      unit, symbols, splits = _load_cached(entry)
      return Corpus(name=name, unit=unit, symbols=symbols, splits=splits)
    except (OSError, ValueError, KeyError) as e:
      # A damaged or unverifiable entry is rebuilt rather than trusted.
      warnings.warn(f"Rebuilding the corpus cache entry: {e}", stacklevel=2)
      shutil.rmtree(entry, ignore_errors=True)

  if byte_level:
    unit = "byte"
    data = enwiki_sample.load_bytes(source)
    split = (
        _enwik8_split(data)
        if name == "enwik8"
        else enwiki_sample.split_bytes(data)
    )
    symbols, splits = _encode_bytes(split, keep_newlines)
  else:
    unit = "word"
    symbols, splits = _encode_words(paths)
  _store(entry, unit, symbols, splits)
  return Corpus(name=name, unit=unit, symbols=symbols, splits=splits)
