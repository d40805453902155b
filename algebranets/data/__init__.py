"""Datasets for algebranets: raw byte streams for byte-level language models."""

from algebranets.data.corpora import Corpus, load_corpus
from algebranets.data.enwiki_sample import (
    VOCAB_SIZE,
    fetch_enwiki_sample,
    load_bytes,
    load_enwiki_sample,
    split_bytes,
    unigram_entropy_bits,
    vocab_size,
)

__all__ = [
    "VOCAB_SIZE",
    "Corpus",
    "fetch_enwiki_sample",
    "load_bytes",
    "load_corpus",
    "load_enwiki_sample",
    "split_bytes",
    "unigram_entropy_bits",
    "vocab_size",
]
