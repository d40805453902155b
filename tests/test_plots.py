"""Tests for algebranets.training.plots."""

import json
import math
import pathlib
import subprocess
import sys

import pytest

from algebranets.training.metric_writer import MetricWriter
from algebranets.training.plots import (
    SIGNAL_PANEL,
    baseline,
    curves_figure,
    plot_metrics,
)

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


def _panels(fig):
  """{title: Axes} of the panels (twin axes have no title)."""
  return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def _labels(ax):
  return [line.get_label() for line in ax.get_lines()]


def _write_lm_run(workdir, *, final_step=40):
  """A finished LM run: periodic evals at 20, the whole-split one at 40."""
  with MetricWriter(workdir, tensorboard=False) as w:
    for step in (10, 20, 30, 40):
      w.write_scalars(
          step,
          "train",
          {
              "loss": 4.0 - step / 40,
              "bits_per_byte": (4.0 - step / 40) / 0.6931,
              "learning_rate": 1e-3,
              "grad_norm": 0.5 + step / 100,
              "steps_per_sec": 4.0,
              "examples_per_sec": 128.0,
          },
      )
    w.write_scalars(20, "eval", {"loss": 3.6, "bits_per_byte": 5.2})
    w.write_scalars(40, "eval", {"loss": 3.1, "bits_per_byte": 4.47})
  (workdir / "config.json").write_text(
      json.dumps(
          {
              "task": "stream_lm",
              "model": {"algebra": "H", "width_multiplier": 2.0},
              "train": {"num_steps": 40},
              "eval": {"split": "valid", "num_batches": 8},
          }
      )
  )
  (workdir / "data.json").write_text(
      json.dumps({"valid_unigram_bits": 5.11, "train_unigram_bits": 5.17})
  )
  (workdir / "final_metrics.json").write_text(
      json.dumps({"step": final_step, "split": "valid", "loss": 3.1})
  )


def test_lm_curves_panels_baseline_and_final_marker(tmp_path):
  _write_lm_run(tmp_path)
  fig = curves_figure(tmp_path)
  panels = _panels(fig)
  assert list(panels) == [
      "loss",
      "bits_per_byte",
      "learning_rate",
      SIGNAL_PANEL,
  ]
  # Four panels fill the 2 x 2 grid: nothing empty or hidden.
  assert all(ax.get_visible() for ax in fig.axes)
  assert all(ax.has_data() for ax in fig.axes)
  bpb = panels["bits_per_byte"]
  assert bpb.get_xlabel() == "step" and bpb.get_ylabel() == "bits per byte"
  labels = _labels(bpb)
  assert labels == [
      "train",
      "eval valid (periodic, 8 batches)",
      "final valid (whole split)",
      "unigram entropy (valid) 5.11",
  ]
  lines = dict(zip(labels, bpb.get_lines(), strict=True))
  # The periodic and final evaluations are separate series, drawn unlike.
  assert list(lines["eval valid (periodic, 8 batches)"].get_xdata()) == [20]
  final = lines["final valid (whole split)"]
  assert list(final.get_xdata()) == [40]
  assert list(final.get_ydata()) == [4.47]
  assert final.get_linestyle() == "None" and final.get_marker() == "*"
  # The reference line: horizontal at the valid split's unigram entropy.
  assert list(lines["unigram entropy (valid) 5.11"].get_ydata()) == [5.11, 5.11]
  # The loss panel carries the same entropy in nats.
  loss_ref = _panels(fig)["loss"].get_lines()[-1]
  assert loss_ref.get_ydata()[0] == pytest.approx(5.11 * math.log(2))
  assert "H" in fig.get_suptitle() and "stream_lm" in fig.get_suptitle()


def test_signal_panel_has_grad_norm_and_throughput_axes(tmp_path):
  _write_lm_run(tmp_path)
  fig = curves_figure(tmp_path)
  ax = _panels(fig)[SIGNAL_PANEL]
  twins = [
      other
      for other in fig.axes
      if other is not ax and other.get_shared_x_axes().joined(ax, other)
  ]
  assert len(twins) == 1
  assert ax.get_ylabel().startswith("gradient norm")
  assert twins[0].get_ylabel() == "steps/s"
  assert list(ax.get_lines()[0].get_ydata()) == pytest.approx(
      [0.6, 0.7, 0.8, 0.9]
  )
  assert list(twins[0].get_lines()[0].get_ydata()) == [4.0] * 4
  legend = [t.get_text() for t in ax.get_legend().get_texts()]
  assert legend[0] == "grad norm" and legend[1].startswith("steps/s")


def test_odd_panel_count_spans_the_last_panel(tmp_path):
  _write_run(tmp_path)  # loss, accuracy, learning_rate + signal panel
  fig = curves_figure(tmp_path)
  assert len(_panels(fig)) == 4
  fig = curves_figure(tmp_path, metrics=["loss", "accuracy", "grad_norm"])
  panels = _panels(fig)
  assert list(panels) == ["loss", "accuracy", "grad_norm"]
  spec = panels["grad_norm"].get_subplotspec()
  # The third panel takes the whole second row: no empty cell.
  assert (spec.colspan.start, spec.colspan.stop) == (0, 2)
  assert all(ax.has_data() for ax in fig.axes)


def test_without_config_all_evals_are_periodic_and_no_baseline(tmp_path):
  _write_run(tmp_path)
  fig = curves_figure(tmp_path)
  assert _labels(_panels(fig)["accuracy"]) == ["eval (periodic)"]


def test_classification_baseline_is_the_majority_class():
  assert baseline("error", {"test_majority_error": 0.9}, "test") == (
      0.9,
      "majority class (test) 0.9",
  )
  value, _ = baseline("top1", {"test_majority_error": 0.9}, "test")
  assert value == pytest.approx(0.1)
  assert baseline("accuracy", {"valid_unigram_bits": 5.0}, "valid") is None


def test_plot_metrics_writes_the_png(tmp_path):
  _write_lm_run(tmp_path)
  out = plot_metrics(tmp_path)
  assert out == tmp_path / "curves.png"
  assert _png_size(out) == (1200, 760)  # 2 x 2 panels at 100 dpi
  out = plot_metrics(tmp_path, tmp_path / "sub" / "c.png", metrics=["loss"])
  assert out == tmp_path / "sub" / "c.png"
  assert _png_size(out) == (600, 380)


def test_falls_back_to_all_metrics_without_preferred_ones(tmp_path):
  with MetricWriter(tmp_path, tensorboard=False) as w:
    w.write_scalars(1, "train", {"foo": 1.0, "bar": 2.0, "baz": float("nan")})
  assert list(_panels(curves_figure(tmp_path))) == ["foo", "bar", "baz"]


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
