"""The study machinery: configs/study_*.py, scripts/study_runs.py,
scripts/study_report.py (docs/results.md)."""

import csv
import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from algebranets.training import config_lib, trainer
from configs import _study, _study_selected, _study_widths
from scripts import study_report, study_runs, sweep
from tests import subprocess_env

ROOT = subprocess_env.ROOT
LM, IMAGES = "configs/study_lm.py", "configs/study_images.py"


def _module(path):
  return config_lib.load_config_file(str(ROOT / path))


def _arg_of(job):
  """The job's config arg without the sweep selector."""
  arg = job["config_arg"].partition(":")[2]
  return ",".join(t for t in arg.split(",") if not t.startswith("sweep="))


# ------------------------------------------------------------- configs --
@pytest.mark.parametrize(
    "path, name, count",
    [(LM, "r_seeds", 3), (LM, "lr_sweep", 9 * 4), (IMAGES, "lr_sweep", 9 * 3)],
)
def test_sweeps_expand_validate_and_name_runs_by_their_arg(
    path, name, count, monkeypatch
):
  # No selection yet: the bare grids (the extension is tested below).
  monkeypatch.setattr(_study_selected, "LR", {"lm": {}, "images": {}})
  module = _module(path)
  jobs = sweep.expand(f"{path}:sweep={name}", workdir_root="w")
  assert len(jobs) == count
  for job in jobs:
    # No --config.X overrides: the command ends with the workdir, and the
    # workdir's name is the canonical arg that rebuilds the config.
    assert job["overrides"] == {}
    assert job["command"][-1] == f"--workdir=w/{job['name']}"
    assert job["name"] == _arg_of(job)
    config = module.get_config(job["name"])
    assert module.config_arg(config) == job["name"]
  if name == "lr_sweep":
    points = {(j["name"].split(",")[0], j["name"].split(",")[1]) for j in jobs}
    assert {p[0] for p in points} == {f"algebra={a}" for a in _study.ALGEBRAS}
    assert {p[1] for p in points} == {f"lr={x:g}" for x in module.LR_GRID}


def test_lr_grid_extends_past_the_edge_the_best_rate_sits_on():
  grid = (0.001, 0.002, 0.004)
  assert _study.lr_grid(grid, None) == grid
  assert _study.lr_grid(grid, 0.002) == grid
  assert _study.lr_grid(grid, 0.004) == (0.001, 0.002, 0.004, 0.008)
  assert _study.lr_grid(grid, 0.008) == (0.001, 0.002, 0.004, 0.008, 0.016)
  assert _study.lr_grid(grid, 0.001) == (0.0005, 0.001, 0.002, 0.004)


def test_lr_sweep_extends_only_edge_algebras(monkeypatch):
  table = {a: 0.002 for a in _study.ALGEBRAS}
  table["H"] = 0.008
  monkeypatch.setattr(_study_selected, "LR", {"lm": table, "images": {}})
  jobs = sweep.expand(f"{LM}:sweep=lr_sweep", workdir_root="w")
  extra = [j["name"] for j in jobs if "lr=0.016" in j["name"]]
  assert extra == ["algebra=H,lr=0.016,seed=0"]
  assert len(jobs) == 9 * 4 + 1


def test_selected_sweeps_need_selected_rates(monkeypatch):
  monkeypatch.setattr(_study_selected, "LR", {"lm": {}, "images": {}})
  with pytest.raises(config_lib.ConfigError, match="lr_sweep"):
    sweep.expand(f"{LM}:sweep=seeds")
  with pytest.raises(config_lib.ConfigError, match="needs sweep="):
    sweep.expand(LM)


def test_selected_sweeps_sizes(monkeypatch):
  table = {a: 0.002 for a in _study.ALGEBRAS}
  monkeypatch.setattr(
      _study_selected, "LR", {"lm": table, "images": {"R": 0.05}}
  )
  counts = {
      "seeds": 9 * 2,  # seeds 1-2; seed 0 is the lr_sweep run
      "sizes": 5 * 2 * 3,  # R, C, H, M2R, M4R x small, large x 3 seeds
      # 6 kinds (R: unstructured, 2x2, 4x4; M2R, H, M4R elements) x (3
      # targets with seed 0 + 3 seeds at 0.9)
      "sparsity": 6 * 6,
      "ablation": 2 * 4,
  }
  module = _module(LM)
  for name, count in counts.items():
    jobs = sweep.expand(f"{LM}:sweep={name}")
    assert len(jobs) == count, name
    for job in jobs:
      assert module.config_arg(module.get_config(job["name"])) == job["name"]
  blocks = {
      module.get_config(j["name"]).sparsity.block_shape
      for j in sweep.expand(f"{LM}:sweep=sparsity")
      if "granularity=block" in j["name"]
  }
  assert blocks == {(2, 2), (4, 4)}
  # An algebra without a selection is left out (and named), not an error.
  assert len(sweep.expand(f"{IMAGES}:sweep=seeds")) == 2


def test_bad_args_are_one_line_errors():
  for path, arg, message in [
      (LM, "size=huge", "size='huge'"),
      (LM, "sweep=nope", "sweep='nope'"),
      (LM, "algebr=H", "Did you mean"),
      (IMAGES, "lr=fast", "expected float"),
  ]:
    with pytest.raises(config_lib.ConfigError, match=message) as e:
      _module(path).get_config(arg)
    assert "\n" not in str(e.value)


def test_matched_widths_are_within_rounding_of_r():
  for size, table in _study_widths.LM.items():
    ref = table["R"]["params"]
    for alg, e in table.items():
      assert abs(e["params"] / ref - 1) < 0.01, (size, alg)
  # The ResNet rounds every layer to whole algebra channels; at R width 0.5
  # its first stage has only 16 real channels (4 of H, 1 of M4R), so the
  # closest counts that match_width finds miss by up to about 2.4%.
  ref = _study_widths.IMAGES["R"]["params"]
  for alg, e in _study_widths.IMAGES.items():
    assert abs(e["params"] / ref - 1) < 0.025, alg


def test_stored_lm_widths_are_what_the_config_builds():
  """The counts in configs/_study_widths.py are still measured on today's
  model (a model change that moves a count needs a regenerated table)."""
  from scripts import study_widths

  module = _module(LM)
  for alg in ("R", "M4R"):
    entry = _study_widths.LM["medium"][alg]
    counts = study_widths.lm_counts(
        module, "medium", alg, entry["width_multiplier"], entry["d_inner"]
    )
    assert counts["params"] == entry["params"]
    assert counts["macs_per_token"] == entry["macs_per_token"]


# ----------------------------------------------------------- collector --
DENSE = "algebra=R,lr=0.002,seed=0,runlocal,path={}"
PRUNED = (
    "algebra=R,lr=0.004,seed=1,sparsity=0.5,granularity=block,block=2,"
    "runlocal,path={}"
)


def _train(tmp_path, name, arg):
  workdir = tmp_path / "study_lm" / name
  trainer.train_and_evaluate(_module(LM).get_config(arg), workdir)
  return workdir


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, tiny_corpus):
  """Two runlocal study runs on the tiny corpus: dense R, R pruned in 2x2
  blocks."""
  tmp = tmp_path_factory.mktemp("runs")
  dense = _train(tmp, "dense", DENSE.format(tiny_corpus))
  pruned = _train(tmp, "pruned", PRUNED.format(tiny_corpus))
  return tmp, dense, pruned


def test_collector_rows_of_a_dense_run(tiny_runs, tiny_corpus, monkeypatch):
  monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
  _, dense, _ = tiny_runs
  rows = study_runs.rows_for(dense, ROOT, selected={"lm": {"R": 0.002}})
  assert [r["split"] for r in rows] == ["valid", "test"]
  final = json.loads((dense / "final_metrics.json").read_text())
  test = json.loads((dense / "eval_test_step20.json").read_text())
  acc = json.loads((dense / "accounting.json").read_text())
  valid_row, test_row = rows
  assert valid_row["value"] == final["bits_per_byte"]
  assert test_row["value"] == test["bits_per_byte"]
  for r in rows:
    assert r["study"] == "lm" and r["size"] == "medium"
    assert (r["algebra"], r["seed"], r["learning_rate"]) == ("R", 0, 0.002)
    assert r["selected"] == 1
    assert (r["sparsity"], r["granularity"], r["variant"]) == (0.0, "none", "")
    assert r["params"] == r["nonzero_params"] == acc["params_total"]
    assert r["macs"] == pytest.approx(acc["macs_per_example"] / 16)
    assert r["metric"] == "bits_per_byte" and r["steps"] == 20
    assert r["seconds"] > 0
    # The command rebuilds the stored config (checked by rows_for too).
    assert r["command"] == (
        "python -m experiments.train --config=configs/study_lm.py:"
        f"{DENSE.format(tiny_corpus)} --workdir={dense}"
    )
  assert study_runs.rows_for(dense, ROOT, selected={})[0]["selected"] == 0


def test_collector_rows_of_a_pruned_run(tiny_runs, tiny_corpus):
  _, _, pruned = tiny_runs
  rows = study_runs.rows_for(pruned, ROOT, run_eval=False, selected={})
  assert [r["split"] for r in rows] == ["valid"]  # test not evaluated
  (row,) = rows
  final = json.loads((pruned / "final_metrics.json").read_text())
  assert row["study"] == "sparsity"
  assert (row["sparsity"], row["granularity"]) == (0.5, "block")
  assert row["variant"] == "block=2x2"
  assert row["nonzero_params"] == final["nonzero_params"] < row["params"]
  assert row["macs"] == pytest.approx(final["sparse_macs_per_example"] / 16)
  assert row["command"].endswith(
      f":{PRUNED.format(tiny_corpus)} --workdir={pruned}"
  )


def test_collector_refuses_a_run_its_command_would_not_reproduce(
    tiny_runs, tmp_path
):
  import shutil

  _, dense, _ = tiny_runs
  copy = tmp_path / "copy"
  shutil.copytree(dense, copy)
  config = json.loads((copy / "config.json").read_text())
  config["train"]["batch_size"] = 8  # not expressible by the config's args
  (copy / "config.json").write_text(json.dumps(config))
  with pytest.raises(study_runs.StaleRunError, match=r"train\.batch_size"):
    study_runs.rows_for(copy, ROOT, run_eval=False)


def test_collect_writes_the_issue_columns(tiny_runs, tmp_path):
  root, _, _ = tiny_runs
  out = tmp_path / "runs.csv"
  study_runs.collect([root / "study_lm"], out, ROOT, run_eval=False)
  with out.open() as f:
    reader = csv.DictReader(f)
    rows = list(reader)
  assert tuple(reader.fieldnames) == study_runs.COLUMNS
  assert study_runs.COLUMNS[:17] == (
      "study", "size", "algebra", "seed", "learning_rate", "selected",
      "sparsity", "granularity", "params", "nonzero_params", "macs", "split",
      "metric", "value", "steps", "seconds", "command",
  )  # fmt: skip
  assert {r["study"] for r in rows} == {"lm", "sparsity"}
  # Rows of runs no longer on disk are kept.
  study_runs.collect([tmp_path / "nothing"], out, ROOT, run_eval=False)
  assert len(study_report.read_rows(out)) == len(rows)


# -------------------------------------------------------------- report --
def _row(**kw):
  base = dict(
      study="lm", size="medium", algebra="R", seed=0, learning_rate=0.002,
      selected=0, sparsity=0.0, granularity="none", params=1000,
      nonzero_params=1000, macs=100.0, split="valid", metric="bits_per_byte",
      value=3.0, steps=1500, seconds=60.0, command="c", variant="",
  )  # fmt: skip
  base.update(kw)
  return base


def _synthetic_rows():
  rng = np.random.default_rng(0)
  rows = []
  best = {"R": 0.002, "H": 0.004}
  for alg, shift in (("R", 0.0), ("H", -0.1)):
    for lr in study_report.LM_GRID:
      penalty = abs(math.log2(lr / best[alg])) * 0.05
      rows.append(
          _row(algebra=alg, learning_rate=lr, value=3 + shift + penalty)
      )
    for seed in (0, 1, 2):
      for split in ("valid", "test"):
        for size, params in (("medium", 1000), ("small", 300)):
          if size == "medium" and seed == 0 and split == "valid":
            continue  # that is the lr_sweep row
          rows.append(
              _row(
                  algebra=alg, learning_rate=best[alg], seed=seed,
                  split=split, size=size, params=params, macs=params / 10,
                  value=3 + shift + 0.01 * rng.standard_normal()
                  + (0.3 if size == "small" else 0.0),
                  selected=1,
              )
          )  # fmt: skip
  for target in (0.5, 0.9):
    for seed in (0, 1, 2):
      rows.append(
          _row(
              study="sparsity", split="test", sparsity=target, seed=seed,
              granularity="block", variant="block=2x2",
              nonzero_params=int(1000 * (1 - target)), value=3 + target,
          )
      )  # fmt: skip
  return rows


def _write_rows(path, rows):
  with path.open("w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=study_runs.COLUMNS)
    w.writeheader()
    w.writerows(rows)


def test_select_picks_the_best_valid_rate_of_complete_grids():
  rows = _synthetic_rows()
  assert study_report.select(rows, "lm") == {"R": 0.002, "H": 0.004}
  partial = [
      r
      for r in rows
      if not (r["algebra"] == "H" and r["learning_rate"] == 0.001)
  ]
  assert study_report.select(partial, "lm") == {"R": 0.002}
  # A rate past the grid's edge competes once the grid is complete.
  extra = dict(
      next(r for r in rows if r["algebra"] == "H" and r["split"] == "valid"),
      learning_rate=0.1,
      value=0.5,
  )
  assert study_report.select([*rows, extra], "lm")["H"] == 0.1
  text = study_report.selected_module_text({"lm": {"H": 0.004, "R": 0.002}})
  namespace = {}
  exec(text, namespace)
  assert namespace["LR"] == {"images": {}, "lm": {"R": 0.002, "H": 0.004}}


def test_selected_module_text_passes_the_format_check(tmp_path):
  # scripts/test.sh runs `pyink --check` over configs/: the generated file
  # must already be in pyink's layout.
  path = tmp_path / "_study_selected.py"
  path.write_text(
      study_report.selected_module_text(
          {"lm": {"H": 0.004, "R": 0.002, "M4R": 0.008}, "images": {}}
      )
  )
  root = pathlib.Path(__file__).resolve().parents[1]
  done = subprocess.run(
      [sys.executable, "-m", "pyink", "--check", "--config",
       str(root / "pyproject.toml"), str(path)],
      capture_output=True, text=True,
  )  # fmt: skip
  assert done.returncode == 0, done.stderr


def _errorbars(ax):
  return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_figures_have_labels_error_bars_and_one_colour_per_algebra():
  rows = _synthetic_rows()
  sweep_fig = study_report.figure_lr_sweep(rows, "lm")
  (ax,) = sweep_fig.axes
  assert ax.get_xscale() == "log"
  assert "learning rate" in ax.get_xlabel()
  assert "bits per byte" in ax.get_ylabel()
  colours = {c.get_label(): c.lines[0].get_color() for c in _errorbars(ax)}
  assert set(colours) == {"R", "H"}

  alg_fig = study_report.figure_algebras(rows, "lm")
  (ax,) = alg_fig.axes
  bars = _errorbars(ax)
  assert [c.get_label() for c in bars] == ["R", "H"]
  for c in bars:
    assert c.has_yerr
    assert c.lines[0].get_color() == colours[c.get_label()]
    # The bar spans mean ± sample std of the three test seeds.
    vals = [
        r["value"]
        for r in rows
        if r["algebra"] == c.get_label()
        and r["study"] == "lm"
        and r["split"] == "test"
        and r["size"] == "medium"
    ]
    (segments,) = [s.get_segments() for s in c.lines[2]]
    low, high = segments[0][0][1], segments[0][1][1]
    assert (high - low) / 2 == pytest.approx(np.std(vals, ddof=1))
  assert "test" in ax.get_ylabel()

  size_fig = study_report.figure_sizes(rows)
  assert [a.get_xlabel() for a in size_fig.axes] == [
      "parameters (log scale)",
      "intrinsic MACs per token (log scale)",
  ]
  for a in size_fig.axes:
    for c in _errorbars(a):
      assert c.lines[0].get_color() == colours[c.get_label()]
      assert len(c.lines[0].get_xdata()) == 2  # small and medium

  sparse_fig = study_report.figure_sparsity(rows)
  assert "non-zero parameters" in sparse_fig.axes[0].get_xlabel()
  (c,) = _errorbars(sparse_fig.axes[0])
  assert c.get_label() == "R block=2x2" and c.lines[0].get_linestyle() == "--"


def test_report_fills_sections_with_data_and_says_what_is_missing(tmp_path):
  runs = tmp_path / "runs.csv"
  _write_rows(runs, _synthetic_rows())
  doc = tmp_path / "results.md"
  doc.write_text(
      "".join(
          f"<!-- BEGIN generated: {n} -->\nOLD-TEXT\n<!-- END generated: {n} -->\n"
          for n in study_report.SECTIONS
      )
  )
  figures = tmp_path / "figures"
  study_report.main(
      [
          f"--runs={runs}",
          f"--doc={doc}",
          f"--figures={figures}",
          f"--decode={tmp_path / 'no_decode.json'}",
      ]
  )
  text = doc.read_text()
  assert "*Not run yet* (quality against batch-1 decode time)" in text
  assert "OLD-TEXT" not in text
  assert "| R | 1,000 | 100 |" in text  # lr sweep row: params, MACs
  assert "**3.0000**" in text  # R's selected rate
  assert "*Not run yet* (images learning-rate sweep)" in text
  assert "sweep=lr_sweep --workdir_root=workdirs/study_images" in text
  assert sorted(p.name for p in figures.iterdir()) == [
      "lm_algebras.png",
      "lm_lr_sweep.png",
      "lm_sizes.png",
      "sparsity.png",
  ]
  with pytest.raises(SystemExit, match="no '<!-- BEGIN generated: lm -->'"):
    doc.write_text("nothing\n")
    study_report.main([f"--runs={runs}", f"--doc={doc}", "--only=lm"])


def _decode_json(path):
  rows = [
      dict(algebra="R", params=1000, ms_per_token=0.05, bytes_per_token=2e6),
      dict(algebra="H", params=1010, ms_per_token=0.08, bytes_per_token=3e6),
  ]
  path.write_text(
      json.dumps(
          dict(
              rows=rows,
              tokens=256,
              machine=dict(
                  cpu_model="Test CPU",
                  load_average=[0.5, 0.4, 0.3],
                  timestamp="2026-12-08T03:00:00+00:00",
              ),
          )
      )
  )


def test_decode_section_and_figure_pair_quality_with_decode_time(tmp_path):
  rows = _synthetic_rows()
  _decode_json(tmp_path / "decode.json")
  runs = tmp_path / "runs.csv"
  _write_rows(runs, rows)
  doc = tmp_path / "results.md"
  doc.write_text(
      "<!-- BEGIN generated: lm_decode -->\n<!-- END generated: lm_decode -->\n"
  )
  figures = tmp_path / "figures"
  study_report.main(
      [
          f"--runs={runs}",
          f"--doc={doc}",
          f"--figures={figures}",
          f"--decode={tmp_path / 'decode.json'}",
          "--only=lm_decode",
      ]
  )
  text = doc.read_text()
  # H: 0.08 ms = 80.0 µs, 1.60x R; its test mean over the three seeds.
  h = [
      r["value"]
      for r in rows
      if r["algebra"] == "H" and r["split"] == "test" and r["size"] == "medium"
  ]
  mean, std = np.mean(h), np.std(h, ddof=1)
  assert (
      f"| H | 1,010 | 100 | {mean:.4f} ± {std:.4f} | 3 | 80.0 | 1.60 | 3.00 |"
      in text
  )
  assert "load average 0.50" in text
  assert [p.name for p in figures.iterdir()] == ["lm_decode.png"]
  fig = study_report.figure_decode(
      rows, study_report.read_decode(tmp_path / "decode.json")
  )
  (ax,) = fig.axes
  assert "decode time per token" in ax.get_xlabel()
  bars = {c.get_label(): c for c in _errorbars(ax)}
  assert set(bars) == {"R", "H"}
  assert bars["H"].lines[0].get_xdata()[0] == pytest.approx(80.0)


def test_study_decode_times_the_study_models(tmp_path):
  from scripts import study_decode

  out = tmp_path / "decode.json"
  results = study_decode.main(
      [
          "--size=small",
          "--algebras=R,H",
          "--tokens=2",
          "--repeats=1",
          f"--out={out}",
      ]
  )
  assert json.loads(out.read_text())["rows"] == results["rows"]
  rows = {r["algebra"]: r for r in results["rows"]}
  for alg in ("R", "H"):
    # The very model the study trains: its stored parameter count.
    assert rows[alg]["params"] == _study_widths.LM["small"][alg]["params"]
    assert rows[alg]["eval_mem_len"] == 128
    assert rows[alg]["ms_per_token"] > 0
  assert rows["R"]["time_vs_R"] == 1.0
  with pytest.raises(SystemExit):
    study_decode.main(["--algebras=R,Q"])


def test_versus_is_welchs_test_against_r():
  # Equal variances and sizes: Welch's t = 3 / sqrt(2/3), df = 4, whose
  # two-sided p has the closed form 1 - x (3 - x^2) / 2, x = t / sqrt(t^2
  # + 4) (Student's t with 4 degrees of freedom).
  diff, p = study_report.versus([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
  t = 3 / math.sqrt(2 / 3)
  x = t / math.sqrt(t * t + 4)
  assert diff == 3.0
  assert p == pytest.approx(1 - x * (3 - x * x) / 2, rel=1e-9)
  # One seed: a difference but no test.
  diff, p = study_report.versus([1.0, 2.0, 3.0], [4.0])
  assert diff == 2.0 and math.isnan(p)
