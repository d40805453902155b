"""Tests for algebranets.data.wikitext_sample (WikiText-style stand-in)."""

import collections
import shutil

import pytest

from algebranets.data import corpora, enwiki_sample, wikitext_sample

ws = wikitext_sample


# --------------------------------------------------------------- tokenize --


@pytest.mark.parametrize(
    "text, tokens",
    [
        (
            "A 1,000-year-old U.S. film.",
            "A 1 @,@ 000 @-@ year @-@ old U.S. film .",
        ),
        ("pi is 3.14 (roughly)", "pi is 3 @.@ 14 ( roughly )"),
        ("role-playing game", "role @-@ playing game"),
        ("pre- and post-war", "pre - and post @-@ war"),
        ("John's dog didn't", "John 's dog didn 't"),
        ("the 1990's", "the 1990 's"),
        ("'quoted' words", "' quoted ' words"),
        ("Mr. Smith met St. Peter.", "Mr. Smith met St. Peter ."),
        ("J. R. R. Tolkien", "J. R. R. Tolkien"),
        ("approx. the end. Next", "approx. the end . Next"),
        ("so, e.g. this... ok", "so , e.g. this ... ok"),
        ('He said "yes"!', 'He said " yes " !'),
        ("Media.Vision sold 5% for $3", "Media.Vision sold 5 % for $ 3"),
        ("1990\u201391 season", "1990 \u2013 91 season"),  # en dash
        ("a\u00a0b\tc", "a b c"),
    ],
)
def test_tokenize(text, tokens):
  assert ws.tokenize(text) == tokens.split(" ")


# ----------------------------------------------------------- strip_markup --


@pytest.mark.parametrize(
    "wikitext, plain",
    [
        ("a {{t|x={{inner|y}}|z}} b", "a  b"),
        ("a {|\n| {{flag|}} cell\n|-\n| x\n|} b", "a  b"),
        ("a {{t|{|\n|x\n|}}} b", "a  b"),
        ("[[File:X.jpg|thumb|A [[cap|caption]] here]]x", "x"),
        ("[[Image:Y.png]][[Category:Things| ]]x", "x"),
        ("[[a|b]] [[c]]s [[:Category:K|k]]", "b cs k"),
        ("x [[fr:Anarchisme]] [[wikt:foo|bar]]", "x  bar"),
        (
            "[http://x.org Label] [http://y.org] http://z.org/q end",
            "Label   end",
        ),
        (
            "'''bold''' and ''italic'' and '''''both'''''",
            "bold and italic and both",
        ),
        ('r<ref name=a/>s<ref name="b">cite {{t}}</ref>t', "rst"),
        ("x<ref>one</ref>y<ref>two</ref>z", "xyz"),
        ("a<!-- hidden\n -->b<math>x^2</math>c", "abc"),
        ('a<br/>b<br>c <span style="x">s</span>', "a b c s"),
        ("m<sup>2</sup> &amp; &ndash; &nbsp;", "m2 & \u2013 \u00a0"),
        ("__NOTOC__text", "text"),
        ("stray }} kept", "stray }} kept"),
    ],
)
def test_strip_markup(wikitext, plain):
  assert ws.strip_markup(wikitext) == plain


# ---------------------------------------------------------- article_lines --

ARTICLE = """{{Infobox thing
| name = Foo
}}
'''Foo''' is a [[bar|thing]] of
1,000 parts.<ref>cite</ref>

Second paragraph.
* a list item
== Empty section ==
* only a list
== History ==
=== Early ===
It began in 1990.
{| class="wikitable"
| cell
|}
== See also ==
* [[Baz]]
[[Category:Things]]
"""


def test_article_lines_structure():
  lines = ws.article_lines("Foo (thing)", ARTICLE)
  assert [" ".join(line) for line in lines] == [
      "",
      "= Foo ( thing ) =",
      "",
      "Foo is a thing of 1 @,@ 000 parts .",
      "Second paragraph .",
      "",
      "= = History = =",
      "",
      "",
      "= = = Early = = =",
      "",
      "It began in 1990 .",
  ]


def test_article_without_prose_is_empty():
  assert (
      ws.article_lines("X", "{{stub}}\n* list\n== A ==\n[[Category:Y]]") == []
  )


# -------------------------------------------------------- read / build --

NS = "http://www.mediawiki.org/xml/export-0.10/"


def _page(title, text, ns=0, redirect=False):
  red = f'<redirect title="{title}x" />' if redirect else ""
  return (
      f"<page><title>{title}</title><ns>{ns}</ns>{red}<revision>"
      f'<text xml:space="preserve">{text}</text></revision></page>'
  )


def _xml(pages, namespace=True):
  attr = f' xmlns="{NS}"' if namespace else ""
  return f"<mediawiki{attr}>{''.join(pages)}</mediawiki>"


def test_read_articles_skips_non_articles(tmp_path):
  pages = [
      _page("Alpha", "Alpha is &lt;b&gt;bold&lt;/b&gt; &amp;nbsp;"),
      _page("Talk:Alpha", "chat", ns=1),
      _page("Beta", "#REDIRECT [[Alpha]]", redirect=True),
      _page("Gamma", "#redirect [[Alpha]]"),
      _page("Delta (disambiguation)", "Delta may be"),
      _page("Epsilon", "Epsilon may be\n{{disambiguation}}"),
      _page("Zeta", "Zeta text"),
  ]
  for namespace in (True, False):
    path = tmp_path / f"d{namespace}.xml"
    path.write_text(_xml(pages, namespace), encoding="utf-8")
    got = list(ws.read_articles(path))
    assert got == [
        ("Alpha", "Alpha is <b>bold</b> &nbsp;"),
        ("Zeta", "Zeta text"),
    ]


SENTENCE = "the cat sat on a mat and then it ran far away"


def _tiny_dump(tmp_path, n=12):
  words = SENTENCE.split()
  pages = []
  for i in range(n):
    body = " ".join(words[j % len(words)] for j in range(i, i + 25))
    # mark{i} occurs 3 times: kept in train, <unk> if held out (unseen).
    text = (
        f"'''Page{i}''' {body} [[w{i}|mark{i}]].\n\n== Part ==\n{body} "
        f"mark{i} again mark{i}."
    )
    pages.append(_page(f"Page{i}", text))
  path = tmp_path / "dump.xml"
  path.write_text(_xml(pages), encoding="utf-8")
  return path


def _read_lines(path):
  return path.read_text(encoding="utf-8").split("\n")[:-1]


def test_build_from_xml_files(tmp_path):
  out = ws.build_from_xml(_tiny_dump(tmp_path), tmp_path / "out")
  assert out == tmp_path / "out"
  files = {s: out / f"wiki.{s}.tokens" for s in ("train", "valid", "test")}
  num_articles = {}
  for split, path in files.items():
    lines = _read_lines(path)
    # WikiText layout: " tokens " lines, " " blank lines.
    assert all(line == " " or (line[0] == line[-1] == " ") for line in lines)
    # Titles are unique words, hence <unk>: count the level-1 headings.
    num_articles[split] = sum(
        1 for line in lines if line.startswith(" = ") and line[3] != "="
    )
  assert sum(num_articles.values()) == 12
  assert all(num_articles.values())
  train_words = collections.Counter(files["train"].read_text().split())
  # Words seen < 3 times in train are <unk> (titles, Page{i}).
  assert all(c >= 3 for w, c in train_words.items() if w != "<unk>")
  assert not any(w.startswith("Page") for w in train_words)
  marks = {w for w in train_words if w.startswith("mark")}
  assert len(marks) == num_articles["train"]
  # Held-out words unseen in train (their mark{i}) are <unk> too.
  for split in ("valid", "test"):
    words = set(files[split].read_text().split())
    assert words <= set(train_words)
    assert not any(w.startswith("mark") for w in words)


def test_build_from_xml_is_deterministic(tmp_path):
  dump = _tiny_dump(tmp_path)
  a = ws.build_from_xml(dump, tmp_path / "a")
  b = ws.build_from_xml(dump, tmp_path / "b")
  for f in ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"):
    assert (a / f).read_bytes() == (b / f).read_bytes()


def test_build_from_xml_needs_three_articles(tmp_path):
  path = tmp_path / "d.xml"
  path.write_text(_xml([_page("A", "Some text."), _page("B", "More.")]))
  with pytest.raises(ValueError, match="2 article pages with prose"):
    ws.build_from_xml(path, tmp_path / "out")


def test_assign_splits_targets_five_percent():
  # 40 articles of 10 tokens (+1 <eos> per line): 5% = 2 articles each.
  arts = [(f"T{i}", [["w"] * 10]) for i in range(40)]
  parts = ws._assign_splits(arts)
  assert len(parts["valid"]) == len(parts["test"]) == 2
  assert sorted(i for p in parts.values() for i in p) == list(range(40))
  # Tiny dump: every article is large, each held-out split still gets one.
  parts = ws._assign_splits(arts[:3])
  assert [len(parts[s]) for s in ("train", "valid", "test")] == [1, 1, 1]


def test_build_caches_and_reuses(tmp_path, monkeypatch):
  dump = _tiny_dump(tmp_path)
  monkeypatch.setattr(
      enwiki_sample, "fetch_enwiki_sample", lambda cache_dir=None: dump
  )
  out = ws.build(tmp_path / "cache")
  assert out == tmp_path / "cache" / ws.SAMPLE_DIRNAME
  assert sorted(p.name for p in out.iterdir()) == [
      "wiki.test.tokens",
      "wiki.train.tokens",
      "wiki.valid.tokens",
  ]
  # No temporary directory is left behind.
  assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
      ws.SAMPLE_DIRNAME
  ]

  def fail(*a, **k):
    raise AssertionError("rebuilt")

  monkeypatch.setattr(ws, "build_from_xml", fail)
  assert ws.build(tmp_path / "cache") == out
  # A missing file triggers a rebuild.
  (out / "wiki.valid.tokens").unlink()
  with pytest.raises(AssertionError, match="rebuilt"):
    ws.build(tmp_path / "cache")


@pytest.mark.slow
def test_full_sample_counts(tmp_path):
  # Slow tests may use the package registry (downloads the gensim wheel).
  cached = enwiki_sample.fetch_enwiki_sample()
  shutil.copy(cached, tmp_path / enwiki_sample.SAMPLE_FILENAME)
  out = ws.build(tmp_path)
  c = corpora.load_corpus("wikitext_sample", out, cache_dir=tmp_path)
  # The numbers in the module docstring.
  sizes = {k: v.size for k, v in c.splits.items()}
  assert sizes == {"train": 445_643, "valid": 25_476, "test": 25_110}
  assert c.vocab_size == 12_253
  assert c.symbols[:3] == ("<eos>", "<unk>", "the")
  heads = [
      line
      for line in _read_lines(out / "wiki.test.tokens")
      if line.startswith(" = ") and not line.startswith(" = =")
  ]
  # Alabama, Andre Agassi: words not in the train vocabulary -> <unk>.
  assert heads == [" = <unk> = ", " = <unk> <unk> = ", " = Atlantic Ocean = "]
