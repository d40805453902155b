"""Tests for algebranets.training.metric_writer."""

import json
import math

import pytest

from algebranets.training.metric_writer import (
    MetricWriter,
    format_duration,
    format_progress,
    read_metrics,
    truncate_after,
)


def _event_bytes(workdir) -> bytes:
  files = list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  assert len(files) == 1, files
  return files[0].read_bytes()


def test_writes_parseable_jsonl_and_tensorboard(tmp_path):
  with MetricWriter(tmp_path) as w:
    w.write_scalars(10, "train", {"loss": 2.5, "learning_rate": 1e-3})
    w.write_scalars(20, "eval", {"loss": 2.25, "accuracy": 0.5})
    w.write_text("config", "the-config-text")
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  rows = [json.loads(line) for line in lines]
  assert [(r["step"], r["split"]) for r in rows] == [
      (10, "train"),
      (20, "eval"),
  ]
  assert rows[0]["loss"] == 2.5 and rows[0]["learning_rate"] == 1e-3
  assert rows[1]["accuracy"] == 0.5
  assert all(isinstance(r["time"], float) for r in rows)
  events = _event_bytes(tmp_path)
  for tag in (b"train/loss", b"train/learning_rate", b"eval/accuracy"):
    assert tag in events
  assert b"the-config-text" in events


def test_each_line_is_on_disk_before_close(tmp_path):
  w = MetricWriter(tmp_path, tensorboard=False)
  w.write_scalars(1, "train", {"loss": 1.0})
  # A killed process never reaches close(); the line must already be there.
  assert read_metrics(tmp_path)[0]["loss"] == 1.0
  assert not (tmp_path / "tensorboard").exists()
  w.close()


def test_accepts_numpy_and_jax_scalars(tmp_path):
  import jax.numpy as jnp
  import numpy as np

  with MetricWriter(tmp_path, tensorboard=False) as w:
    w.write_scalars(
        np.int64(3), "train", {"a": np.float32(0.5), "b": jnp.asarray(2.0)}
    )
  (row,) = read_metrics(tmp_path)
  assert row["step"] == 3 and row["a"] == 0.5 and row["b"] == 2.0


def test_non_finite_round_trip(tmp_path):
  with MetricWriter(tmp_path, tensorboard=False) as w:
    w.write_scalars(
        1, "train", {"a": math.nan, "b": math.inf, "c": -math.inf, "d": 1.0}
    )
  text = (tmp_path / "metrics.jsonl").read_text()
  # Standard JSON (no bare NaN/Infinity tokens) so other tools can read it.
  assert "NaN" not in text and "Infinity" not in text
  json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}"))
  (row,) = read_metrics(tmp_path)
  assert math.isnan(row["a"])
  assert row["b"] == math.inf and row["c"] == -math.inf and row["d"] == 1.0
  assert row["split"] == "train"


def test_truncated_last_line_is_ignored(tmp_path):
  with MetricWriter(tmp_path, tensorboard=False) as w:
    w.write_scalars(1, "train", {"loss": 1.0})
    w.write_scalars(2, "train", {"loss": 0.5})
  path = tmp_path / "metrics.jsonl"
  path.write_text(path.read_text() + '{"step": 3, "split": "tr')
  assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]
  assert [r["step"] for r in read_metrics(path)] == [1, 2]


def test_corrupt_middle_line_raises_with_line_number(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1, "split": "train"}\n{oops\n{"step": 2}\n')
  with pytest.raises(ValueError, match=r"metrics.jsonl:2: corrupt"):
    read_metrics(tmp_path)


def test_reopening_repairs_a_partial_last_line(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1, "split": "train", "loss": 1.0}\n{"step": 2, "sp')
  with MetricWriter(tmp_path, tensorboard=False) as w:
    w.write_scalars(2, "train", {"loss": 0.5})
  assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]
  # A complete last object that only lacks its newline is kept.
  path.write_text('{"step": 1, "split": "train", "loss": 1.0}')
  with MetricWriter(tmp_path, tensorboard=False) as w:
    w.write_scalars(2, "train", {"loss": 0.5})
  assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]


def test_read_metrics_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="No metrics file"):
    read_metrics(tmp_path)


def test_truncate_after(tmp_path):
  with MetricWriter(tmp_path, tensorboard=False) as w:
    for step in (10, 20, 30, 40):
      w.write_scalars(step, "train", {"loss": step / 10})
    w.write_scalars(30, "eval", {"loss": 9.0})
  path = tmp_path / "metrics.jsonl"
  path.write_text(path.read_text() + '{"step": 50, "spl')
  assert truncate_after(tmp_path, 20) == 4  # 30, 40, eval 30, partial line.
  rows = read_metrics(tmp_path)
  assert [(r["step"], r["split"]) for r in rows] == [
      (10, "train"),
      (20, "train"),
  ]
  assert path.read_text().endswith("\n")
  assert truncate_after(path, 20) == 0
  assert list(tmp_path.iterdir()) == [path]  # No temporary file left behind.
  assert truncate_after(tmp_path / "missing", 5) == 0


def test_truncate_after_while_a_writer_is_open(tmp_path):
  # The trainer creates its writer, then truncates on resume; later lines
  # must land in the rewritten file, not in the replaced one.
  path = tmp_path / "metrics.jsonl"
  path.write_text(
      "".join(f'{{"step": {s}, "split": "train"}}\n' for s in (1, 2))
  )
  with MetricWriter(tmp_path, tensorboard=False) as w:
    truncate_after(tmp_path, 1)
    w.write_scalars(2, "train", {"loss": 0.25})
  assert [(r["step"], r.get("loss")) for r in read_metrics(tmp_path)] == [
      (1, None),
      (2, 0.25),
  ]


def test_disabled_writer_writes_nothing(tmp_path):
  workdir = tmp_path / "run"
  with MetricWriter(workdir, enabled=False) as w:
    w.write_scalars(1, "train", {"loss": 1.0})
    w.write_text("config", "x")
    w.flush()
  assert not workdir.exists()


def test_close_is_idempotent_and_later_writes_raise(tmp_path):
  w = MetricWriter(tmp_path)
  w.write_scalars(1, "train", {"loss": 1.0})
  w.close()
  w.close()
  w.flush()
  with pytest.raises(RuntimeError, match="closed"):
    w.write_scalars(2, "train", {"loss": 1.0})


def test_rejects_reserved_names_and_bad_values(tmp_path):
  with MetricWriter(tmp_path, tensorboard=False) as w:
    with pytest.raises(ValueError, match=r"\['step'\] are reserved"):
      w.write_scalars(1, "train", {"step": 1.0})
    with pytest.raises(ValueError, match="split must be"):
      w.write_scalars(1, "", {"loss": 1.0})
    with pytest.raises(TypeError, match="'loss' has value 'abc'"):
      w.write_scalars(1, "train", {"loss": "abc"})
  assert not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    "seconds, expected",
    [
        (0, "0s"),
        (45, "45s"),
        (59.4, "59s"),
        (59.6, "1m00s"),
        (122, "2m02s"),
        (3599, "59m59s"),
        (3780, "1h03m"),
        (90000, "25h00m"),
        (math.inf, "?"),
        (math.nan, "?"),
    ],
)
def test_format_duration(seconds, expected):
  assert format_duration(seconds) == expected


def test_format_duration_rejects_negative():
  with pytest.raises(ValueError, match="negative duration -1"):
    format_duration(-1)


def test_format_progress_full_line():
  line = format_progress(
      500,
      2000,
      {"loss": 2.31414, "bits_per_byte": 3.33842, "learning_rate": 1e-3},
      steps_per_sec=12.34,
      examples_per_sec=394.4,
      eta_seconds=122,
  )
  assert line == (
      "step  500/2000 | loss 2.3141 | bits_per_byte 3.338 | lr 1.0e-03 | "
      "12.3 steps/s | 394 ex/s | ETA 2m02s"
  )


def test_format_progress_omits_none_and_uses_scalar_rates():
  line = format_progress(
      7,
      100,
      {"grad_norm": 0.123456, "steps_per_sec": 2.5, "accuracy": math.nan},
      steps_per_sec=None,
      examples_per_sec=None,
      eta_seconds=None,
  )
  assert line == "step   7/100 | grad_norm 0.1235 | accuracy nan | 2.50 steps/s"
  # An explicit rate wins over the one in scalars.
  line = format_progress(
      100,
      100,
      {"steps_per_sec": 2.5},
      steps_per_sec=0.5,
      examples_per_sec=1500.0,
      eta_seconds=0.0,
  )
  assert line == "step 100/100 | 0.500 steps/s | 1500 ex/s | ETA 0s"


def test_format_metrics_ints_and_floats():
  from algebranets.training.metric_writer import format_metrics

  got = format_metrics({"loss": 2.12244, "nonzero_params": 7112, "ok": True})
  assert got == "loss 2.1224 | nonzero_params 7,112 | ok True"
