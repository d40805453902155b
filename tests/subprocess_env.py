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


def run(*argv: str, timeout: float = 300, **env_extra: str):
  """`python *argv` from the repo root with `env()`; output captured as text.

  Returns:
    The `subprocess.CompletedProcess` (check returncode, stdout, stderr).
  """
  import subprocess

  return subprocess.run(
      [python(), *argv],
      cwd=ROOT,
      env=env(**env_extra),
      capture_output=True,
      text=True,
      timeout=timeout,
  )
