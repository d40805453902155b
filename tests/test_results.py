"""Tests for scripts/results.py (sweep tables and trade-off plots)."""

import csv
import json
import math
import pathlib
import statistics
import subprocess
import sys

import pytest

from algebranets import palette
from scripts import results

REPO = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# (algebra, width) -> (params_total, params_real_io, macs_per_example)
ACCOUNTING = {
    ("H", 1.0): (20_000, 5_000, 1_000_000),
    ("H", 2.0): (60_000, 10_000, 4_000_000),
    ("R", 1.0): (65_000, 5_000, 1_000_000),
    ("R", 2.0): (250_000, 10_000, 4_000_000),
}
# (algebra, width, seed) -> final bits_per_byte
BPB = {
    ("H", 1.0, 0): 2.0,
    ("H", 1.0, 1): 2.1,
    ("H", 2.0, 0): 1.5,
    ("H", 2.0, 1): 1.6,
    ("R", 1.0, 0): 1.9,
    ("R", 1.0, 1): 2.3,
    ("R", 2.0, 0): 1.4,
    ("R", 2.0, 1): 1.45,
}


def _make_run(root, algebra, width, seed, bpb, *, accounting=True):
  d = root / f"{algebra}_w{width:g}_s{seed}"
  d.mkdir(parents=True)
  config = {
      "seed": seed,
      "task": "byte_lm",
      "model": {"name": "transformer_lm", "algebra": algebra},
      "sparsity": {"method": "none", "target": 0.0},
  }
  config["model"]["width_multiplier"] = width
  (d / "config.json").write_text(json.dumps(config))
  (d / "final_metrics.json").write_text(
      json.dumps(
          {"step": 100, "split": "valid", "bits_per_byte": bpb, "loss": 0.7}
      )
  )
  if accounting:
    total, real_io, macs = ACCOUNTING[(algebra, width)]
    (d / "accounting.json").write_text(
        json.dumps(
            {
                "algebra": algebra,
                "params_total": total,
                "params_real_io": real_io,
                "params_algebra": total - real_io,
                "state_total": 0,
                "macs_per_example": macs,
                "flops_per_example": 2 * macs,
                "macs_by_kind": {},
            }
        )
    )
  return d


@pytest.fixture
def sweep(tmp_path):
  root = tmp_path / "sweep"
  for (algebra, width, seed), bpb in BPB.items():
    _make_run(root, algebra, width, seed, bpb)
  return root


def test_collect_runs(sweep, tmp_path):
  (sweep / "unfinished").mkdir()
  (sweep / "unfinished" / "config.json").write_text("{}")
  (sweep / "notes.txt").write_text("a file, not a run")
  with pytest.warns(
      UserWarning, match=r"(?s)skipped 1 .*unfinished \(no final"
  ):
    runs = results.collect_runs(str(sweep / "*"))
  assert len(runs) == 8
  h = next(r for r in runs if r["workdir"].endswith("H_w2_s1"))
  assert h["algebra"] == "H" and h["width_multiplier"] == 2.0
  assert h["seed"] == 1 and h["sparsity"] == 0.0 and h["step"] == 100
  assert h["params_total"] == 60_000 and h["params_algebra"] == 50_000
  assert h["macs_per_example"] == 4_000_000
  assert h["final_metrics"]["bits_per_byte"] == 1.6


def test_collect_runs_comma_separated_globs(sweep):
  runs = results.collect_runs(f"{sweep}/H_*, {sweep}/R_w1_*")
  assert sorted(pathlib.Path(r["workdir"]).name for r in runs) == [
      "H_w1_s0",
      "H_w1_s1",
      "H_w2_s0",
      "H_w2_s1",
      "R_w1_s0",
      "R_w1_s1",
  ]


def test_collect_runs_errors_when_none(tmp_path):
  (tmp_path / "a").mkdir()
  with (
      pytest.warns(UserWarning, match="skipped 1"),
      pytest.raises(ValueError, match=r"no finished run .* \(1 matching"),
  ):
    results.collect_runs(str(tmp_path / "*"))


def test_aggregate_mean_std(sweep):
  rows = results.aggregate(
      results.collect_runs(str(sweep / "*")), "bits_per_byte"
  )
  keys = [(r["algebra"], r["width_multiplier"]) for r in rows]
  # R before H (ALGEBRA_ORDER), then by width.
  assert keys == [("R", 1.0), ("R", 2.0), ("H", 1.0), ("H", 2.0)]
  for r in rows:
    values = [BPB[(r["algebra"], r["width_multiplier"], s)] for s in (0, 1)]
    assert r["n_seeds"] == 2 and r["seeds"] == [0, 1]
    assert r["values"] == values
    assert r["mean"] == pytest.approx(sum(values) / 2)
    # ddof=1: for two values, |a - b| / sqrt(2).
    assert r["std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    total, real_io, macs = ACCOUNTING[(r["algebra"], r["width_multiplier"])]
    assert r["params_total"] == total
    assert r["params_algebra"] == total - real_io
    assert r["macs_per_example"] == macs
    assert r["flops_per_example"] == 2 * macs
  assert rows[0]["mean"] == pytest.approx(2.1)
  assert rows[0]["std"] == pytest.approx(statistics.stdev([1.9, 2.3]))


def test_aggregate_single_seed_and_missing_metric(tmp_path):
  _make_run(tmp_path, "C", 1.0, 0, 1.75, accounting=False)
  runs = results.collect_runs(str(tmp_path / "*"))
  (row,) = results.aggregate(runs, "bits_per_byte")
  assert row["std"] is None and row["n_seeds"] == 1 and row["mean"] == 1.75
  assert row["params_total"] is None
  assert "1.7500 ± —" in results.markdown_table([row], "bits_per_byte")
  with pytest.raises(ValueError, match=r"no metric 'acc'.*\['bits_per_byte'"):
    results.aggregate(runs, "acc")


def test_aggregate_warns_on_inconsistent_group(tmp_path):
  _make_run(tmp_path / "a", "H", 1.0, 0, 2.0)
  d = _make_run(tmp_path / "b", "H", 1.0, 0, 2.1)
  acc = json.loads((d / "accounting.json").read_text())
  acc["params_total"] += 1
  (d / "accounting.json").write_text(json.dumps(acc))
  runs = results.collect_runs(str(tmp_path / "*" / "*"))
  with pytest.warns(UserWarning) as record:
    results.aggregate(runs, "bits_per_byte")
  messages = " ".join(str(w.message) for w in record)
  assert "differ in params_total" in messages
  assert "repeats a seed" in messages


def test_write_table(sweep, tmp_path):
  rows = results.aggregate(
      results.collect_runs(str(sweep / "*")), "bits_per_byte"
  )
  md_path, csv_path = results.write_table(
      rows, tmp_path / "out" / "res", "bits_per_byte"
  )
  assert md_path == tmp_path / "out" / "res.md"
  assert csv_path == tmp_path / "out" / "res.csv"

  with open(csv_path, newline="") as f:
    records = list(csv.DictReader(f))
  assert list(records[0]) == list(results.CSV_COLUMNS)
  assert [(r["algebra"], r["width_multiplier"]) for r in records] == [
      ("R", "1.0"),
      ("R", "2.0"),
      ("H", "1.0"),
      ("H", "2.0"),
  ]
  h2 = records[3]
  assert h2["params_total"] == "60000" and h2["params_algebra"] == "50000"
  assert h2["macs_per_example"] == "4000000"
  assert h2["flops_per_example"] == "8000000"
  assert float(h2["mean"]) == pytest.approx(1.55)
  assert float(h2["std"]) == pytest.approx(0.1 / math.sqrt(2))
  assert h2["n_seeds"] == "2" and h2["seeds"] == "0 1"

  md = md_path.read_text().splitlines()
  assert md[0].startswith("| algebra | width multiplier | params (total) |")
  assert "bits_per_byte (mean ± std, lower is better)" in md[0]
  # Best (lowest) mean is R at width 2: 1.425, in bold.
  assert md[3] == (
      "| R | 2 | 250,000 | 240,000 | 4 M | 8 M | 0 | **1.4250 ± 0.0354** | 2 |"
  )
  assert (
      md[5]
      == "| H | 2 | 60,000 | 50,000 | 4 M | 8 M | 0 | 1.5500 ± 0.0707 | 2 |"
  )
  assert sum("**" in line for line in md) == 1


def test_best_row_when_higher_is_better(sweep):
  rows = results.aggregate(
      results.collect_runs(str(sweep / "*")), "bits_per_byte"
  )
  md = results.markdown_table(rows, "bits_per_byte", lower_is_better=False)
  (bold,) = [line for line in md.splitlines() if "**" in line]
  assert bold.startswith("| R | 1 |")  # The highest mean, 2.1.
  assert "higher is better" in md


def test_lower_is_better_for():
  assert results.lower_is_better_for("bits_per_byte")
  assert results.lower_is_better_for("loss")
  assert not results.lower_is_better_for("accuracy")
  assert not results.lower_is_better_for("top1_acc")


def test_plot_tradeoff(sweep, tmp_path):
  rows = results.aggregate(
      results.collect_runs(str(sweep / "*")), "bits_per_byte"
  )
  out = results.plot_tradeoff(
      rows,
      "bits_per_byte",
      ("params_total", "params_algebra"),
      tmp_path / "p.png",
  )
  data = out.read_bytes()
  assert data[:8] == PNG_MAGIC
  assert int.from_bytes(data[16:20], "big") == 1200  # Two panels, 6 in each.
  for r in rows:
    r["macs_per_example"] = None
  with pytest.raises(ValueError, match="no run has a positive 'macs_per"):
    results.plot_tradeoff(rows, "bits_per_byte", "macs_per_example", out)


def test_cli(sweep, tmp_path):
  (sweep / "crashed").mkdir()
  out = tmp_path / "res" / "sweep_results"
  proc = subprocess.run(
      [
          sys.executable,
          "-m",
          "scripts.results",
          f"--workdirs={sweep}/H_*,{sweep}/R_*,{sweep}/crashed",
          "--metric=bits_per_byte",
          f"--out={out}",
      ],
      cwd=REPO,
      capture_output=True,
      text=True,
      check=False,
  )
  assert proc.returncode == 0, proc.stderr
  assert "crashed (no config.json, final_metrics.json)" in proc.stderr
  assert "| R | 2 | 250,000 | 240,000 |" in proc.stdout
  assert "8 runs in 4 groups" in proc.stdout
  for suffix in (".md", ".csv", "_vs_params.png", "_vs_macs.png"):
    path = pathlib.Path(f"{out}{suffix}")
    assert str(path) in proc.stdout
    assert path.stat().st_size > 0
  assert pathlib.Path(f"{out}_vs_macs.png").read_bytes()[:8] == PNG_MAGIC

  proc = subprocess.run(
      [
          sys.executable,
          "-m",
          "scripts.results",
          f"--workdirs={tmp_path}/none*",
          f"--out={out}",
      ],
      cwd=REPO,
      capture_output=True,
      text=True,
      check=False,
  )
  assert proc.returncode == 1
  assert "error: results: no finished run" in proc.stderr


def test_tradeoff_figure_title_baseline_and_algebra_colours(sweep):
  for d in sweep.iterdir():
    (d / "data.json").write_text(json.dumps({"valid_unigram_bits": 5.11}))
  runs = results.collect_runs(str(sweep / "*"))
  rows = results.aggregate(runs, "bits_per_byte")
  title = results.figure_title(runs)
  assert title == "byte_lm, valid split, 100 steps, seeds 0-1 (8 runs)"
  refs = results.baselines(runs, "bits_per_byte")
  assert refs == [(5.11, "unigram entropy (valid) 5.11")]
  fig = results.tradeoff_figure(
      rows,
      "bits_per_byte",
      ("params_total", "params_algebra"),
      title=title,
      reference_lines=refs,
  )
  assert fig.get_suptitle() == title
  axes = fig.axes
  assert [ax.get_xlabel() for ax in axes] == [
      "real parameters (total)",
      "real parameters without real stem/head",
  ]
  for ax in axes:
    assert ax.get_ylabel() == "bits_per_byte (lower is better)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    # matplotlib lists plain lines before error-bar containers.
    assert labels == ["unigram entropy (valid) 5.11", "R", "H"]
    ref = [line for line in ax.get_lines() if line.get_label() == labels[0]]
    assert list(ref[0].get_ydata()) == [5.11, 5.11]
    # Each algebra's curve has the project palette's colour.
    for container in ax.containers:
      line = container.lines[0]
      assert line.get_color() == palette.algebra_color(container.get_label())


def test_figure_title_lists_gapped_seeds_and_step_ranges(sweep):
  runs = results.collect_runs(str(sweep / "*"))
  runs[0] = dict(runs[0], seed=7, step=40)
  assert results.figure_title(runs) == (
      "byte_lm, valid split, 40-100 steps, seeds 0, 1, 7 (8 runs)"
  )
  assert results.baselines(runs, "bits_per_byte") == []
