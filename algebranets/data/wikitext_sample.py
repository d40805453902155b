"""An offline WikiText-103 stand-in made from the enwiki XML sample.

WikiText-103 (Merity et al. 2016) is Wikipedia article prose, tokenized with
spaces between words and punctuation, rare words replaced by ``<unk>``, one
paragraph per line. `build()` makes files in the same format from the 6 MB
English Wikipedia XML sample of `enwiki_sample` (106 articles), so the
word-level Transformer-XL pipeline (`corpora.load_corpus('wikitext_sample')`)
runs without the 540 MB WikiText-103 download. It is a stand-in, not the
data set: WikiText holds only Good and Featured articles, was extracted from
rendered pages, and its vocabulary (267,735 symbols) is far larger.

Rules (each a simplification of what WikiText did, chosen to reproduce its
look):

Pages: namespace 0 only; redirects and disambiguation pages are skipped
(title ending in "(disambiguation)" or a ``{{disambig...}}``-like template).

Markup (`strip_markup`), in this order:
  1. ``<!-- comments -->`` removed.
  2. ``<ref>...</ref>``, ``<ref .../>`` and the contents of ``math``,
     ``gallery``, ``timeline``, ``imagemap``, ``source``, ``syntaxhighlight``,
     ``pre``, ``score``, ``chem``, ``ce``, ``hiero``, ``graph``,
     ``mapframe``, ``references`` elements removed.
  3. Templates ``{{...}}`` and tables ``{| ... |}`` removed, nested to any
     depth (a brace scanner; an unclosed one removes the rest of the page).
  4. Wiki links, innermost first: ``[[File:...]]``, ``[[Image:...]]``,
     ``[[Media:...]]``, ``[[Category:...]]`` and interlanguage links
     (``[[fr:...]]``) removed with their captions; ``[[a|b]]`` -> ``b``,
     ``[[a]]`` -> ``a`` (a link trail stays attached: ``[[dog]]s`` ->
     ``dogs``).
  5. External links ``[http://x label]`` -> ``label``, ``[http://x]`` and
     bare URLs removed.
  6. ``__MAGIC__`` words and the quote runs of ``'''bold'''`` /
     ``''italic''`` removed.
  7. ``<br>`` -> space; every other HTML tag removed, its text kept.
  8. HTML entities decoded (``&nbsp;`` -> U+00A0, a space to the tokenizer).

Lines (`article_lines`): ``==Heading==`` lines of level n become
``= = Heading = =`` (n ``=`` on each side), the article title a level-1
heading ``= Title =``. Consecutive text lines form one paragraph (as
MediaWiki renders them), ended by a blank line, a heading or a list/table
line. List items (``* # : ;``), table remnants (``| !``) and ``----`` are
dropped. A paragraph without a letter or digit is dropped, and so is a
heading whose section (up to the next heading of the same or a higher level)
keeps no paragraph. As in WikiText, a blank line precedes and follows every
heading, and paragraphs follow each other without blank lines.

Tokens (`tokenize`, a small imitation of the Moses tokenizer with WikiText's
number rules): ``,`` and ``.`` between digits become ``@,@`` and ``@.@``
(``1 @,@ 000``, ``3 @.@ 5``), a hyphen between two letters or digits becomes
``@-@`` (``role @-@ playing``); words and numbers are tokens; an apostrophe
after a letter starts a clitic token (``John 's``, ``don 't``; after a digit
only ``'s``); dotted words keep their dots (``U.S.``, ``e.g.``,
``Media.Vision``); a final period stays on a word that is a common
abbreviation or a single capital letter, or when the next word starts in
lower case (Moses' rule); ``...`` is one token; every other non-space
character is a token of its own.

Files: every line is written as ``" " + " ".join(tokens) + " "`` (a blank
line as ``" "``), as in WikiText. Articles are visited in the sha256 order of
their titles and put in valid while that brings valid closer to 5% of all
tokens, then likewise in test; the rest is train. Each file keeps the XML
order. Words seen fewer than `MIN_COUNT` (3) times in train become ``<unk>``
in all three files, and so do valid/test words missing from that train
vocabulary, so every valid/test word is in the train vocabulary (WikiText:
count < 3 -> ``<unk>``).

Measured on the pinned sample, counting tokens as Transformer-XL does (one
``<eos>`` per line included): train 445,643, valid 25,476, test 25,110, in
all 496,229; 97 articles kept of the 106 non-redirect pages (87 / 7 / 3; valid: Anthropology,
Animation, Animal Farm, Algae, America the Beautiful, Actinopterygii, Amateur
astronomy; test: Alabama, Andre Agassi, Atlantic Ocean). The vocabulary of
`corpora.load_corpus('wikitext_sample')` has 12,253 symbols (``<eos>``
included). ``<unk>`` is 5.5% of the train tokens and 11.3% / 12.7% of valid
/ test, far more than in WikiText-103: the price of a corpus 200 times
smaller.
"""

from __future__ import annotations

import collections
import hashlib
import html
import os
import pathlib
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence

from algebranets.data import enwiki_sample

SPLIT_NAMES = ("train", "valid", "test")
FILENAMES = {s: f"wiki.{s}.tokens" for s in SPLIT_NAMES}
# Versioned, so a change of the rules never reuses files built by old ones.
SAMPLE_DIRNAME = "wikitext_sample_v1"
MIN_COUNT = 3
UNK = "<unk>"
HELD_OUT_FRACTION = 0.05

_DROP_ELEMENTS = (
    "ref",
    "math",
    "gallery",
    "timeline",
    "imagemap",
    "source",
    "syntaxhighlight",
    "pre",
    "score",
    "chem",
    "ce",
    "hiero",
    "graph",
    "mapframe",
    "references",
)
_ELEMENTS = "|".join(_DROP_ELEMENTS)
_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_SELF_CLOSING_RE = re.compile(rf"<(?:{_ELEMENTS})\b[^>]*/>", re.I)
_ELEMENT_RE = re.compile(
    rf"<({_ELEMENTS})\b[^>]*(?<!/)>.*?</\1\s*>", re.I | re.S
)
_BRACE_RE = re.compile(r"(?=\{\{|\}\}|\{\||\|\})")
_LINK_RE = re.compile(r"\[\[([^\[\]]*)\]\]")
_DROP_NAMESPACES = ("file", "image", "media", "category")
_LANG_PREFIX_RE = re.compile(r"[a-z]{2,3}(?:-[a-z]{2,8})*|simple")
_EXT_LINK_RE = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]*\s*([^\]]*)\]")
_BARE_URL_RE = re.compile(r"(?:https?|ftp)://[^\s<>\]]+")
_MAGIC_RE = re.compile(r"__[A-Z]+__")
_QUOTES_RE = re.compile(r"'{2,}")
_BR_RE = re.compile(r"<br\s*/?>", re.I)
_TAG_RE = re.compile(r"</?[a-zA-Z][^<>]*>")
_DISAMBIG_RE = re.compile(
    r"\{\{\s*(?:disambig\w*|dab|hndis|geodis|set index)\s*[|}]", re.I
)
_REDIRECT_RE = re.compile(r"\s*#redirect", re.I)

_HEADING_RE = re.compile(r"(={1,6})(.+?)\1")
_NUMBER_SEP_RE = re.compile(r"(?<=\d)([,.])(?=\d)")
_HYPHEN_RE = re.compile(r"(?<=[^\W_])-(?=[^\W_])")
_TOKEN_RE = re.compile(
    r"""
    @[-,.]@                       # WikiText's separators, kept whole
    | [^\W_]+(?:\.[^\W_]+)+\.?    # dotted words: U.S., e.g., Media.Vision
    | (?<=[^\W\d_])'[^\W\d_]+     # clitic after a letter: 's, 't, 'll
    | (?<=\d)'s(?![^\W_])         # 1990's -> 1990 's
    | [^\W_]+                     # words and numbers
    | \.{2,}                      # ellipsis
    | \S                          # any other character
    """,
    re.X,
)
# Moses' English non-breaking prefixes (a subset): a period after them is
# part of the word.
_ABBREVIATION_WORDS = (
    "Mr Mrs Ms Dr Drs Prof St Jr Sr Gen Col Lt Capt Cmdr Sgt Maj Rev Hon Gov "
    "Sen Rep Adm Brig Cpl Pvt Messrs Mme Mlle Msgr Bros Corp Inc Ltd Co No "
    "Nos vs etc al approx ca cf Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov "
    "Dec"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())


def _remove_nested(text: str) -> str:
  """Removes templates {{...}} and tables {|...|}, nested to any depth."""
  out = []
  stack: list[str] = []
  keep_from = 0
  skip_to = 0
  for m in _BRACE_RE.finditer(text):
    i = m.start()
    if i < skip_to:
      continue  # the second character of a token just consumed
    tok = text[i : i + 2]
    if tok in ("{{", "{|"):
      if not stack:
        out.append(text[keep_from:i])
      stack.append(tok)
      skip_to = i + 2
    elif stack and stack[-1] == ("{{" if tok == "}}" else "{|"):
      stack.pop()
      skip_to = i + 2
      if not stack:
        keep_from = skip_to
    # Else: a stray closer outside any block is kept as text; inside a block
    # of the other kind (the "|}" of "{{a|}}") it closes nothing.
  if not stack:
    out.append(text[keep_from:])
  return "".join(out)


def _replace_link(m: re.Match) -> str:
  inner = m.group(1)
  target, pipe, label = inner.partition("|")
  target = target.strip()
  colon_link = target.startswith(":")
  target = target.lstrip(":").strip()
  prefix, colon, _ = target.partition(":")
  prefix_key = prefix.strip().lower()
  if colon and not colon_link:
    if prefix_key in _DROP_NAMESPACES:
      return ""
    if not pipe and _LANG_PREFIX_RE.fullmatch(prefix.strip()):
      return ""  # interlanguage link, e.g. [[fr:Anarchisme]]
  if pipe and label.strip():
    return label
  return target


def strip_markup(wikitext: str) -> str:
  """Wiki markup -> plain text lines (headings kept as ``==X==`` lines).

  Args:
    wikitext: the text of one page, XML entities already decoded.

  Returns:
    The text with the markup removed as listed in the module docstring; its
    line structure (headings, blank lines, list items) is kept for
    `article_lines`.
  """
  text = _COMMENT_RE.sub("", wikitext)
  text = _SELF_CLOSING_RE.sub("", text)
  text = _ELEMENT_RE.sub("", text)
  text = _remove_nested(text)
  while True:
    new = _LINK_RE.sub(_replace_link, text)
    if new == text:
      break
    text = new
  text = _EXT_LINK_RE.sub(lambda m: m.group(1), text)
  text = _BARE_URL_RE.sub("", text)
  text = _MAGIC_RE.sub("", text)
  text = _QUOTES_RE.sub("", text)
  text = _BR_RE.sub(" ", text)
  text = _TAG_RE.sub("", text)
  return html.unescape(text)


def tokenize(text: str) -> list[str]:
  """WikiText-style tokens of a line of plain text (rules in the docstring).

  Args:
    text: plain text without markup.

  Returns:
    The tokens, e.g. ``tokenize("A 1,000-year-old U.S. film.")`` ->
    ``['A', '1', '@,@', '000', '@-@', 'year', '@-@', 'old', 'U.S.', 'film',
    '.']``.
  """
  text = _NUMBER_SEP_RE.sub(r" @\1@ ", text)
  text = _HYPHEN_RE.sub(" @-@ ", text)
  matches = list(_TOKEN_RE.finditer(text))
  out: list[str] = []
  prev_end = -1
  for i, m in enumerate(matches):
    tok = m.group()
    if tok == "." and out and prev_end == m.start() and out[-1].isalnum():
      word = out[-1]
      nxt = matches[i + 1].group() if i + 1 < len(matches) else ""
      if (
          word in _ABBREVIATIONS
          or (len(word) == 1 and word.isupper())
          or nxt[:1].islower()
      ):
        out[-1] = word + "."
        prev_end = m.end()
        continue
    out.append(tok)
    prev_end = m.end()
  return out


def _heading(level: int, tokens: Sequence[str]) -> list[str]:
  return ["="] * level + list(tokens) + ["="] * level


def article_lines(title: str, wikitext: str) -> list[list[str]]:
  """WikiText lines (token lists; [] is a blank line) of one article.

  Args:
    title: the page title.
    wikitext: the page's wiki markup.

  Returns:
    ``[[], ['=', *title, '='], [], ...]`` then, for each kept heading,
    ``[], ['=', '=', *heading, '=', '='], []`` and for each paragraph its
    tokens on one line. Empty if the article keeps no paragraph.
  """
  blocks: list[tuple[int, list[str]]] = []  # (heading level or 0, tokens)
  paragraph: list[str] = []

  def flush() -> None:
    if paragraph:
      tokens = tokenize(" ".join(paragraph))
      if any(t.isalnum() for t in tokens):
        blocks.append((0, tokens))
      paragraph.clear()

  for raw in strip_markup(wikitext).split("\n"):
    line = raw.strip()
    heading = _HEADING_RE.fullmatch(line)
    if heading:
      flush()
      tokens = tokenize(heading.group(2).strip())
      if tokens:
        blocks.append((len(heading.group(1)), tokens))
    elif not line or line[0] in "*#:;|!{}" or line.startswith("----"):
      flush()
    else:
      paragraph.append(line)
  flush()

  lines: list[list[str]] = []
  for i, (level, tokens) in enumerate(blocks):
    if level == 0:
      lines.append(tokens)
      continue
    # Keep a heading only if its section keeps a paragraph.
    for next_level, _ in blocks[i + 1 :]:
      if next_level == 0:
        lines.extend([[], _heading(level, tokens), []])
        break
      if next_level <= level:
        break
  if not any(lines):
    return []
  return [[], _heading(1, tokenize(title)), [], *lines]


def _local(tag: str) -> str:
  return tag.rsplit("}", 1)[-1]


def read_articles(xml_path: str | os.PathLike) -> Iterator[tuple[str, str]]:
  """Yields (title, wikitext) of the article pages of a MediaWiki XML dump.

  Pages outside namespace 0, redirects and disambiguation pages are
  skipped. The dump's XML namespace is ignored, so a bare ``<mediawiki>``
  snippet works too.
  """
  for _, elem in ET.iterparse(str(xml_path), events=("end",)):
    if _local(elem.tag) != "page":
      continue
    fields = {}
    redirect = False
    for child in elem.iter():
      name = _local(child.tag)
      if name == "redirect":
        redirect = True
      elif name in ("title", "ns", "text") and name not in fields:
        fields[name] = child.text or ""
    elem.clear()
    title = fields.get("title", "").strip()
    text = fields.get("text", "")
    if (
        redirect
        or fields.get("ns", "0").strip() != "0"
        or _REDIRECT_RE.match(text)
        or title.endswith("(disambiguation)")
        or _DISAMBIG_RE.search(text)
    ):
      continue
    yield title, text


def _assign_splits(
    articles: Sequence[tuple[str, list[list[str]]]],
) -> dict[str, list[int]]:
  """Article indices per split: valid and test each ~5% of the tokens."""
  sizes = [sum(len(line) + 1 for line in lines) for _, lines in articles]
  target = HELD_OUT_FRACTION * sum(sizes)
  order = sorted(
      range(len(articles)),
      key=lambda i: hashlib.sha256(articles[i][0].encode()).hexdigest(),
  )
  held: dict[str, list[int]] = {"valid": [], "test": []}
  assigned: set[int] = set()
  for split in ("valid", "test"):
    filled = 0
    for i in order:
      # Take an article if that brings the split closer to its target.
      if i not in assigned and filled + sizes[i] / 2 < target:
        held[split].append(i)
        assigned.add(i)
        filled += sizes[i]
    if not held[split]:
      # Only large articles (a tiny dump): take the first one left.
      i = next(i for i in order if i not in assigned)
      held[split].append(i)
      assigned.add(i)
  return {
      "train": [i for i in range(len(articles)) if i not in assigned],
      "valid": sorted(held["valid"]),
      "test": sorted(held["test"]),
  }


def _write_atomic(path: pathlib.Path, text: str) -> None:
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
  try:
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
      f.write(text)
    os.replace(tmp, path)
  finally:
    pathlib.Path(tmp).unlink(missing_ok=True)


def build_from_xml(
    xml_path: str | os.PathLike, out_dir: str | os.PathLike
) -> pathlib.Path:
  """Writes ``wiki.{train,valid,test}.tokens`` made from a MediaWiki dump.

  Args:
    xml_path: a MediaWiki XML export (pages with ``<title>``, ``<ns>``,
      ``<text>``).
    out_dir: output directory, created if missing; each file is written
      atomically (temporary file, then rename).

  Returns:
    `out_dir` as a path.

  Raises:
    ValueError: fewer than 3 articles keep any prose (train, valid and test
      each need one).
  """
  articles = []
  for title, text in read_articles(xml_path):
    lines = article_lines(title, text)
    if lines:
      articles.append((title, lines))
  if len(articles) < 3:
    raise ValueError(
        f"{xml_path} has {len(articles)} article pages with prose; at least "
        "3 are needed (one each for train, valid and test)."
    )
  parts = _assign_splits(articles)
  counts: collections.Counter = collections.Counter()
  for i in parts["train"]:
    for line in articles[i][1]:
      counts.update(line)
  vocab = {w for w, c in counts.items() if c >= MIN_COUNT}
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  for split, idx in parts.items():
    rows = []
    for i in idx:
      for line in articles[i][1]:
        words = [w if w in vocab else UNK for w in line]
        rows.append(" " + " ".join(words) + " \n" if words else " \n")
    _write_atomic(out / FILENAMES[split], "".join(rows))
  return out


def build(cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """Returns the directory of the wikitext sample, building it once.

  The directory ``<cache_dir>/wikitext_sample_v1`` holds
  ``wiki.{train,valid,test}.tokens``. If they exist they are returned as they
  are; otherwise the enwiki sample is fetched (`fetch_enwiki_sample`, once)
  and the files are built in a temporary directory that is then renamed, so
  an interrupted build leaves nothing half-written.

  Args:
    cache_dir: default ``$ALGEBRANETS_DATA`` or ``~/.cache/algebranets``.

  Returns:
    The directory path.
  """
  cache = (
      pathlib.Path(cache_dir).expanduser()
      if cache_dir is not None
      else enwiki_sample._default_cache_dir()
  )
  target = cache / SAMPLE_DIRNAME
  if all((target / f).is_file() for f in FILENAMES.values()):
    return target
  xml_path = enwiki_sample.fetch_enwiki_sample(cache)
  cache.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(dir=cache, prefix=f".{SAMPLE_DIRNAME}."))
  try:
    build_from_xml(xml_path, tmp)
    if target.exists():
      # Incomplete (a file is missing): replace it.
      shutil.rmtree(target, ignore_errors=True)
    try:
      os.rename(tmp, target)
    except OSError:
      # Another process finished first; use its files.
      if not all((target / f).is_file() for f in FILENAMES.values()):
        raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return target
