"""Tests for scripts/plot_convac.py (ConvAC study plots and tables)."""

import json
import math
import statistics

import pytest

from scripts import convac_rank, plot_convac

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path) -> tuple[int, int]:
  data = path.read_bytes()
  assert data[:8] == PNG_MAGIC
  assert data[12:16] == b"IHDR"
  return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _make_run(root, name, *, seed, top1, params, name_model="convac", **model):
  d = root / f"{name}_s{seed}"
  d.mkdir(parents=True)
  config = {
      "seed": seed,
      "task": "image_classification",
      "model": {
          "name": name_model,
          "algebra": "R",
          "kind": "convac",
          "kernel_size": 3,
          "stride": 1,
          "channels": [8, 8],
          "pooling": "component",
          "convnet_pool": "max",
          "representation": "rbf",
          **model,
      },
      "sparsity": {"method": "none", "target": 0.0},
  }
  (d / "config.json").write_text(json.dumps(config))
  (d / "final_metrics.json").write_text(
      json.dumps({"step": 10, "split": "test", "top1": top1, "loss": 0.5})
  )
  (d / "accounting.json").write_text(
      json.dumps(
          {
              "algebra": config["model"]["algebra"],
              "params_total": params,
              "params_real_io": 10,
              "params_algebra": params - 10,
              "macs_per_example": 1000,
              "flops_per_example": 2000,
          }
      )
  )
  return d


@pytest.fixture
def sweep(tmp_path):
  root = tmp_path / "sweep"
  for seed, (a, b) in enumerate(((0.80, 0.84), (0.82, 0.86))):
    _make_run(root, "ac_k3_c8", seed=seed, top1=a, params=1000)
    _make_run(
        root, "ac_k3_c16", seed=seed, top1=b, params=3000, channels=[16, 16]
    )
    _make_run(
        root, "ac_k1_c8", seed=seed, top1=a - 0.1, params=400, kernel_size=1
    )
  _make_run(
      root,
      "net_k1",
      seed=0,
      top1=0.7,
      params=450,
      kind="convnet",
      kernel_size=1,
  )
  # Pair kernels: overlap along the second axis only.
  _make_run(
      root,
      "net_k13",
      seed=0,
      top1=0.75,
      params=900,
      kind="convnet",
      kernel_size=[1, 3],
      stride=[1, 1],
  )
  _make_run(
      root, "ac_h", seed=0, top1=0.6, params=800, algebra="H", pooling="algebra"
  )
  return root


def test_aggregate_groups_by_architecture_and_averages_seeds(sweep):
  runs = plot_convac.results.collect_runs(str(sweep / "*"))
  rows = plot_convac.aggregate_runs(runs, "top1")
  assert len(rows) == 6
  by = {
      (r["kind"], r["algebra"], r["pooling"], r["kernel"], r["channels"]): r
      for r in rows
  }
  k3 = by[("convac", "R", "component", (3, 3), (8, 8))]
  assert k3["overlap"] is True
  assert k3["n_seeds"] == 2
  assert math.isclose(k3["mean"], 0.81)
  assert math.isclose(k3["std"], statistics.stdev([0.80, 0.82]))
  assert k3["params"] == 1000 and k3["split"] == "test"
  k1 = by[("convac", "R", "component", (1, 1), (8, 8))]
  assert k1["overlap"] is False and math.isclose(k1["mean"], 0.71)
  # A ConvNet is grouped by its own pooling, not by the convac option.
  net = by[("convnet", "R", "max", (1, 1), (8, 8))]
  assert net["overlap"] is False and net["std"] is None
  assert by[("convnet", "R", "max", (1, 3), (8, 8))]["overlap"] is True
  assert by[("convac", "H", "algebra", (3, 3), (8, 8))]["mean"] == 0.6
  # Sorted by kind, then algebra (R before H), pooling, kernel, params.
  assert [r["kind"] for r in rows] == ["convac"] * 4 + ["convnet"] * 2
  assert rows[0]["kernel"] == (1, 1)
  assert rows[-2]["kernel"] == (1, 1)


def test_non_convac_runs_are_skipped_with_a_warning(tmp_path):
  _make_run(tmp_path, "ac", seed=0, top1=0.8, params=100)
  _make_run(tmp_path, "lm", seed=0, top1=0.1, params=100, name_model="resnet")
  runs = plot_convac.results.collect_runs(str(tmp_path / "*"))
  with pytest.warns(UserWarning, match="model.name is 'resnet'"):
    rows = plot_convac.aggregate_runs(runs, "top1")
  assert len(rows) == 1
  only_lm = [r for r in runs if "lm" in r["workdir"]]
  with (
      pytest.warns(UserWarning, match="skipped runs"),
      pytest.raises(ValueError, match="none of the runs is a convac run"),
  ):
    plot_convac.aggregate_runs(only_lm, "top1")


def test_missing_metric_names_the_available_ones(tmp_path):
  _make_run(tmp_path, "ac", seed=0, top1=0.8, params=100)
  runs = plot_convac.results.collect_runs(str(tmp_path / "*"))
  with pytest.raises(ValueError, match=r"no metric 'top5'.*\['loss', 'top1'\]"):
    plot_convac.aggregate_runs(runs, "top5")


def test_accuracy_table():
  rows = [
      {
          "kind": "convac",
          "algebra": "R",
          "pooling": "component",
          "kernel": (3, 3),
          "stride": (1, 1),
          "overlap": True,
          "channels": (8, 8),
          "params": 12345,
          "metric": "top1",
          "split": "test",
          "mean": 0.8123,
          "std": None,
          "n_seeds": 1,
      }
  ]
  table = plot_convac.accuracy_table(rows)
  assert "test top1 (mean ± std)" in table
  assert (
      "| ConvAC | R | component | 3 | 1 | yes | 8,8 | 12,345 | 0.8123 ± — | 1 |"
      in table
  )


def _rank_result():
  settings = {
      "layouts": ["shallow", "deep"],
      "partitions": ["odd_even", "left_right"],
      "channels": [1, 2],
      "kernels": [1, 2, 3],
      "stride": 1,
      "positions": 8,
      "templates": 3,
      "representation": "identity",
      "algebra": "R",
      "seeds": 1,
      "rtol": 1e-13,
      "dtype": "float64",
  }
  runs = []
  for layout in settings["layouts"]:
    for z in settings["channels"]:
      for k in settings["kernels"]:
        ranks = {}
        for p in settings["partitions"]:
          rank = min(81, z * 2 ** (k - 1))
          sv = [1.0 / (i + 1) if i < rank else 1e-16 for i in range(81)]
          ranks[p] = {
              "rank": rank,
              "max_rank": 81,
              "gap": sv[rank - 1] / sv[rank],
              "singular_values": sv,
          }
        runs.append(
            {
                "layout": layout,
                "channels": z,
                "kernel": k,
                "stride": 1,
                "seed": 0,
                "params": 3 * k * z + z,
                "ranks": ranks,
            }
        )
  return {
      "settings": settings,
      "runs": runs,
      "summary": convac_rank.summarize(runs, settings["partitions"]),
      "wall_time_s": 1.0,
  }


def test_main_writes_both_plots_and_tables(sweep, tmp_path, capsys):
  rank_path = tmp_path / "rank.json"
  rank_path.write_text(json.dumps(_rank_result()))
  out = tmp_path / "plots" / "convac"
  rc = plot_convac.main(
      [f"--workdirs={sweep}/*", f"--rank_json={rank_path}", f"--out={out}"]
  )
  assert rc == 0
  acc = tmp_path / "plots" / "convac_accuracy_vs_params.png"
  rank = tmp_path / "plots" / "convac_rank_vs_overlap.png"
  assert _png_size(acc) == (600, 450)
  # 2 partitions x 2 layouts panels of 6 x 4.5 inches at 100 dpi.
  assert _png_size(rank) == (1200, 900)
  md = (tmp_path / "plots" / "convac.md").read_text()
  assert "| ConvAC | R | component | 3 | 1 | yes | 8,8 | 1,000 | 0.8100 ±" in md
  assert "| shallow | odd_even | 2 | 2 | 4 | 8 | 81 |" in md
  printed = capsys.readouterr().out
  assert "| deep | left_right | 1 | 1 | 2 | 4 | 81 |" in printed
  assert str(acc) in printed and str(rank) in printed


def test_main_rank_json_alone(tmp_path):
  rank_path = tmp_path / "rank.json"
  rank_path.write_text(json.dumps(_rank_result()))
  out = tmp_path / "r"
  assert plot_convac.main([f"--rank_json={rank_path}", f"--out={out}"]) == 0
  assert (tmp_path / "r_rank_vs_overlap.png").is_file()
  assert not (tmp_path / "r_accuracy_vs_params.png").exists()


def test_main_errors(tmp_path, capsys):
  out = f"--out={tmp_path / 'x'}"
  assert plot_convac.main([out]) == 1
  assert "nothing to plot" in capsys.readouterr().err
  bad = tmp_path / "bad.json"
  bad.write_text(json.dumps({"runs": []}))
  assert plot_convac.main([f"--rank_json={bad}", out]) == 1
  assert "not a scripts/convac_rank.py output" in capsys.readouterr().err
  assert plot_convac.main([f"--rank_json={tmp_path / 'none.json'}", out]) == 1
  assert "cannot read rank JSON" in capsys.readouterr().err
  assert plot_convac.main([f"--workdirs={tmp_path / 'empty'}/*", out]) == 1
  assert "no finished run" in capsys.readouterr().err


def test_plot_accuracy_needs_parameter_counts(tmp_path):
  row = {"params": None, "kind": "convac", "metric": "top1", "split": "test"}
  with pytest.raises(ValueError, match="no run has params_total"):
    plot_convac.plot_accuracy([row], tmp_path / "a.png")
