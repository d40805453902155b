"""Environment for running the entry points as real subprocesses."""

import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def env(**extra: str) -> dict[str, str]:
  """os.environ plus the repo on PYTHONPATH and fast CPU compilation."""
  out = dict(os.environ)
  out["PYTHONPATH"] = os.pathsep.join(
      [str(ROOT), *filter(None, [out.get("PYTHONPATH")])]
  )
  # The same switch tests/conftest.py sets in-process.
  out["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
  out["JAX_PLATFORMS"] = "cpu"
  out.update(extra)
  return out


def python() -> str:
  return sys.executable
