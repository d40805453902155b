"""bench/device_suite.sh: syntax, the commands it runs, its time budget."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

SCRIPT = (
    pathlib.Path(__file__).resolve().parents[1] / "bench" / "device_suite.sh"
)


def _run(tmp_path, **env):
  return subprocess.run(
      ["bash", str(SCRIPT), str(tmp_path / "out")],
      env={**os.environ, "PYTHON": sys.executable, **env},
      cwd=SCRIPT.parents[1],
      capture_output=True,
      text=True,
      check=False,
  )


def test_syntax():
  subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_dry_run_lists_the_quick_benchmarks(tmp_path):
  r = _run(tmp_path, DRY_RUN="1")
  assert r.returncode == 0, r.stderr
  lines = [x for x in r.stdout.splitlines() if x.startswith("== ")]
  assert [x.split()[1] for x in lines] == [
      "kernels",
      "models",
      "decode",
      "decode_base",
  ]
  assert all("--out " + str(tmp_path / "out") in x for x in lines)
  assert "bench.decode --quick" in r.stdout


def test_limits_over_the_budget_are_refused(tmp_path):
  r = _run(tmp_path, DRY_RUN="1", MODELS_S="400")
  assert r.returncode == 2
  assert r.stderr.count("\n") == 1 and "SUITE_BUDGET" in r.stderr
