"""A user algebra from a .npy file, end to end through the entry points.

train (--config.model.algebra=<file>) -> a rerun with another algebra is
refused and changes nothing -> the file is deleted -> eval, sample, results
and resuming still work from the constants recorded in the workdir -> an
edited config.json is refused by eval. Real subprocesses, as users run them.
"""

import json
import pathlib

import numpy as np
import pytest

from algebranets import algebras
from scripts import results
from tests import subprocess_env

CORPUS = "tests/fixtures/tiny_corpus.txt"


def _run(*args):
  return subprocess_env.run("-m", *args)


def _train(workdir, algebra_flag, num_steps, arg="runlocal"):
  return _run(
      "experiments.train",
      f"--config=configs/quickstart.py:{arg}",
      *([f"--config.model.algebra={algebra_flag}"] if algebra_flag else []),
      f"--config.data.path={CORPUS}",
      f"--config.train.num_steps={num_steps}",
      "--config.train.checkpoint_every=2",
      f"--workdir={workdir}",
  )


def _snapshot(workdir: pathlib.Path) -> dict[str, bytes]:
  return {
      str(p.relative_to(workdir)): p.read_bytes() if p.is_file() else b"/"
      for p in sorted(workdir.rglob("*"))
  }


def _one_line_error(proc, *fragments):
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  last = proc.stderr.strip().splitlines()[-1]
  for f in fragments:
    assert f in last, last


def test_split_complex_from_npy_train_delete_eval_sample_resume(tmp_path):
  c = np.zeros((2, 2, 2))  # split-complex: j^2 = +1
  c[0, 0, 0] = c[1, 1, 0] = c[0, 1, 1] = c[1, 0, 1] = 1
  npy = tmp_path / "split_complex.npy"
  np.save(npy, c)
  name = (
      "split_complex@"
      + algebras.fingerprint(algebras.from_structure_constants("x", c))[:8]
  )
  workdir = tmp_path / "run"

  proc = _train(workdir, npy, 4)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"algebra={name}" in proc.stdout
  record = json.loads((workdir / "algebra.json").read_text())
  assert record["name"] == name
  np.testing.assert_array_equal(record["structure_constants"], c)
  assert (
      json.loads((workdir / "config.json").read_text())["model"]["algebra"]
      == name
  )

  # Issue 16 items 3-4: the complex numbers have the same shapes; the rerun
  # is refused before anything is written.
  before = _snapshot(workdir)
  refused = _train(workdir, None, 6, arg="runlocal,algebra=C")
  _one_line_error(refused, "CheckpointError", f"model.algebra: '{name}' -> 'C'")
  assert _snapshot(workdir) == before

  npy.unlink()
  final = json.loads((workdir / "final_metrics.json").read_text())
  ev = _run("experiments.eval", f"--workdir={workdir}")
  assert ev.returncode == 0, ev.stderr[-3000:]
  saved = json.loads((workdir / "eval_valid_step4.json").read_text())
  assert saved["bits_per_byte"] == pytest.approx(final["bits_per_byte"], 1e-6)

  sample = _run(
      "scripts.sample",
      f"--workdir={workdir}",
      "--prompt=the ",
      "--num_tokens=8",
  )
  assert sample.returncode == 0, sample.stderr[-3000:]
  assert "[step 4] 8 tokens" in sample.stdout

  # scripts.results reads config.json as data, no algebra lookup: in-process.
  assert results.main([f"--workdirs={workdir}", f"--out={tmp_path / 'r'}"]) == 0
  assert name in (tmp_path / "r.md").read_text()

  # The same command resumes although the file is gone.
  resumed = _train(workdir, npy, 6)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resuming from" in resumed.stdout + resumed.stderr
  assert json.loads((workdir / "final_metrics.json").read_text())["step"] == 6

  config = json.loads((workdir / "config.json").read_text())
  config["model"]["algebra"] = "C"
  (workdir / "config.json").write_text(json.dumps(config))
  for entry in ("experiments.eval", "scripts.sample"):
    edited = _run(entry, f"--workdir={workdir}")
    _one_line_error(
        edited, "CheckpointError", f"model.algebra: '{name}' -> 'C'"
    )
