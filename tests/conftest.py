"""Suite-wide JAX settings.

Tests compile many small programs on 2 CPU cores; XLA's optimisation passes
dominate their runtime and change no numerics that the tests compare (all
comparisons have float32 tolerances), so they are switched off. A test that
inspects optimised HLO re-enables them with `optimized_xla()`.
"""

import contextlib

import jax
import pytest

jax.config.update("jax_disable_most_optimizations", True)


@contextlib.contextmanager
def optimized_xla():
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", False)
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", old)


@pytest.fixture
def xla_optimizations():
  with optimized_xla():
    yield


@pytest.fixture(autouse=True, scope="session")
def _private_data_cache(tmp_path_factory):
  """Corpora encoded by tests are cached in a temporary directory, not in
  the user's ~/.cache (subprocesses inherit it through the environment)."""
  import os

  old = os.environ.get("ALGEBRANETS_DATA")
  os.environ["ALGEBRANETS_DATA"] = str(tmp_path_factory.mktemp("data_cache"))
  yield
  if old is None:
    os.environ.pop("ALGEBRANETS_DATA", None)
  else:
    os.environ["ALGEBRANETS_DATA"] = old


@pytest.fixture
def strict_numerics():
  """No implicit rank promotion (house rule) and full-precision matmuls, so
  float32 comparisons also hold on TF32 GPUs. Layer and model tests use it."""
  with (
      jax.numpy_rank_promotion("raise"),
      jax.default_matmul_precision("highest"),
  ):
    yield


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
  """A 40 kB generated text file (see tests/lm_helpers.py)."""
  from tests import lm_helpers

  return lm_helpers.write_corpus(tmp_path_factory.mktemp("data") / "tiny.txt")


@pytest.fixture(scope="session")
def tiny_wikitext(tmp_path_factory):
  """A tiny generated WikiText-style directory (tests/lm_helpers.py)."""
  from tests import lm_helpers

  return lm_helpers.write_wikitext(tmp_path_factory.mktemp("wikitext"))
