"""Tests for algebranets.training.plots."""

import json
import pathlib
import subprocess
import sys

import pytest

from algebranets.training.metric_writer import MetricWriter
from algebranets.training.plots import plot_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = pathlib.Path(__file__).resolve().parents[1]


def _png_size(path) -> tuple[int, int]:
  data = path.read_bytes()
  assert data[:8] == PNG_MAGIC
  assert data[12:16] == b"IHDR"
  return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _write_run(workdir, *, eval_metrics=("loss", "accuracy")):
  with MetricWriter(workdir, tensorboard=False) as w:
    for step in range(0, 50, 10):
      w.write_scalars(
          step,
          "train",
          {"loss": 3.0 - step / 25, "learning_rate": 1e-3, "grad_norm": 1.0},
      )
      if step % 20 == 0:
        w.write_scalars(
            step, "eval", {m: 0.5 + step / 100 for m in eval_metrics}
        )


def test_writes_png_with_one_panel_per_preferred_metric(tmp_path):
  _write_run(tmp_path)
  (tmp_path / "config.json").write_text(
      json.dumps({"model": {"algebra": "H", "width_multiplier": 2.0}})
  )
  out = plot_metrics(tmp_path)
  assert out == tmp_path / "curves.png"
  # loss, accuracy, learning_rate: 3 panels in 2 columns x 2 rows at 100 dpi.
  assert _png_size(out) == (1200, 760)


def test_panel_count_follows_present_metrics(tmp_path):
  _write_run(tmp_path, eval_metrics=("loss",))
  out = plot_metrics(tmp_path, tmp_path / "sub" / "c.png")
  assert out == tmp_path / "sub" / "c.png"
  assert _png_size(out) == (1200, 380)  # loss, learning_rate.
  out = plot_metrics(tmp_path, tmp_path / "one.png", metrics=["grad_norm"])
  assert _png_size(out) == (600, 380)


def test_falls_back_to_all_metrics_without_preferred_ones(tmp_path):
  with MetricWriter(tmp_path, tensorboard=False) as w:
    w.write_scalars(1, "train", {"foo": 1.0, "bar": 2.0, "baz": float("nan")})
  assert _png_size(plot_metrics(tmp_path)) == (1200, 760)  # 3 panels.


def test_does_not_import_pyplot(tmp_path):
  _write_run(tmp_path)
  # In a fresh interpreter: other tests in this process may import pyplot.
  code = (
      "import sys; from algebranets.training.plots import plot_metrics; "
      f"plot_metrics({str(tmp_path)!r}); "
      "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
  )
  subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
  assert (tmp_path / "curves.png").read_bytes()[:8] == PNG_MAGIC


def test_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="No metrics file"):
    plot_metrics(tmp_path)
  (tmp_path / "metrics.jsonl").write_text("")
  with pytest.raises(ValueError, match="no complete rows"):
    plot_metrics(tmp_path)
  _write_run(tmp_path)
  with pytest.raises(ValueError, match=r"none of the metrics \['nope'\]"):
    plot_metrics(tmp_path, metrics=["nope"])
