"""Tests for scripts/plot_teacher_student.py on tiny fake sweep workdirs."""

import json
import statistics

import pytest

from algebranets.studies.teacher_student import design
from scripts import plot_teacher_student as plot_ts
from scripts import results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(
    root,
    name,
    *,
    model,
    d,
    r,
    nmse,
    rec=None,
    seed=0,
    task="teacher_student",
    coeffs=(0.0, 1.0, 0.0, 1.0),
    train_examples=0,
):
  path = root / name
  path.mkdir(parents=True)
  config = {
      "seed": seed,
      "task": task,
      "data": {
          "input_dim": d,
          "teacher_units": r,
          "coeffs": list(coeffs),
          "train_examples": train_examples,
      },
      "model": model,
  }
  final = {"step": 10, "split": "test", "nmse": nmse, "mse": 2 * nmse}
  if rec is not None:
    final.update(recovery_error=rec, recovery_cos=1 - rec)
  (path / "config.json").write_text(json.dumps(config))
  (path / "final_metrics.json").write_text(json.dumps(final))
  (path / "accounting.json").write_text(
      json.dumps({"algebra": model.get("algebra", "R"), "params_total": 10})
  )
  (path / "data.json").write_text(
      json.dumps({"least_squares_population_nmse": 0.25 + 0.001 * r})
  )
  return path


NET_R = {"name": "two_layer", "algebra": "R", "activation": "poly"}
NET_H = {"name": "two_layer", "algebra": "H", "activation": "poly"}
NET_RELU = {"name": "two_layer", "algebra": "C", "activation": "relu"}
MEAN = {"name": "mean", "algebra": "R"}
MOMENTS = {"name": "moment_tensor", "algebra": "R"}


@pytest.fixture
def sweep_dir(tmp_path):
  root = tmp_path / "sweep"
  _run(root, "a", model=MEAN, d=8, r=4, nmse=1.01)
  _run(root, "b0", model=NET_R, d=8, r=4, nmse=0.2, rec=0.1, seed=0)
  _run(root, "b1", model=NET_R, d=8, r=4, nmse=0.3, rec=0.3, seed=1)
  _run(root, "c", model=NET_H, d=8, r=4, nmse=0.1, rec=0.05)
  _run(root, "d", model=MOMENTS, d=8, r=64, nmse=0.9, rec=0.7)
  _run(root, "e", model=MEAN, d=16, r=8, nmse=1.0)
  _run(root, "f", model=NET_RELU, d=16, r=8, nmse=0.5)
  return root


def test_learner_labels():
  assert plot_ts.learner_label({"config": {"model": NET_R}}) == "network R"
  assert plot_ts.learner_label({"config": {"model": NET_RELU}}) == (
      "network C (relu)"
  )
  assert plot_ts.learner_label({"config": {"model": MOMENTS}}) == (
      "moment_tensor"
  )


def test_rows_aggregate_over_seeds(sweep_dir):
  rows = plot_ts.study_rows(results.collect_runs(str(sweep_dir / "*")))
  keyed = {(r["learner"], r["d"], r["r"]): r for r in rows}
  assert len(rows) == 6
  net = keyed[("network R", 8, 4)]
  assert net["n"] == 2
  assert net["nmse"] == pytest.approx(0.25)
  assert net["nmse_std"] == pytest.approx(statistics.stdev([0.2, 0.3]))
  assert net["recovery_error"] == pytest.approx(0.2)
  assert net["x"] == pytest.approx(4 / 8**1.5)
  assert net["ols_population"] == pytest.approx(0.254)
  assert keyed[("mean", 8, 4)]["recovery_error"] is None
  assert keyed[("mean", 8, 4)]["nmse_std"] is None
  # Sorted by d, r, then closed-form learners before networks.
  assert [r["learner"] for r in rows[:3]] == ["mean", "network R", "network H"]


def test_markdown_table(sweep_dir):
  rows = plot_ts.study_rows(results.collect_runs(str(sweep_dir / "*")))
  table = plot_ts.markdown_table(rows)
  lines = table.splitlines()
  header = lines[2]
  assert "nmse mean" in header and "nmse network H" in header
  assert "rec. err. moment_tensor" in header
  assert "rec. err. mean" not in header
  assert lines[0] == "**sigma(t) = t + t^3, endless fresh samples**"
  first = next(line for line in lines if line.startswith("| 8 | 4 |"))
  # d, r, r / d^1.5, training examples, population OLS reference.
  assert first.startswith("| 8 | 4 | 0.177 | endless | 0.254 |")
  assert "**0.100**" in first  # network H is the best at d=8, r=4
  assert "0.250 ± 0.071" in first
  assert any(line.startswith("| 16 | 8 |") for line in lines)


def test_main_writes_png_and_table(sweep_dir, tmp_path, capsys):
  out = tmp_path / "plots" / "study"
  assert (
      plot_ts.main(["--workdirs", str(sweep_dir / "*"), "--out", str(out)]) == 0
  )
  png = out.with_name("study.png")
  assert png.read_bytes()[:8] == PNG_MAGIC
  md = out.with_name("study.md").read_text()
  printed = capsys.readouterr().out
  assert md.strip() in printed
  assert "8 runs in 7 groups" not in printed and "7 runs in 6 groups" in printed


def test_other_tasks_are_skipped_and_empty_sweeps_fail(tmp_path):
  root = tmp_path / "mixed"
  _run(root, "lm", model=NET_R, d=8, r=4, nmse=0.5, task="byte_lm")
  with (
      pytest.warns(UserWarning, match="other tasks"),
      pytest.raises(ValueError, match="no teacher_student run"),
  ):
    plot_ts.study_rows(results.collect_runs(str(root / "*")))
  assert (
      plot_ts.main(
          ["--workdirs", str(tmp_path / "none/*"), "--out", str(tmp_path / "x")]
      )
      == 1
  )


def test_sigma_text():
  assert plot_ts.sigma_text((0.0, 1.0, 0.0, 1.0)) == "sigma(t) = t + t^3"
  assert plot_ts.sigma_text((0.5, -3.0, 0.0, 1.0, 0.0, -1.0)) == (
      "sigma(t) = 0.5 - 3 t + t^3 - t^5"
  )


def test_teachers_are_kept_apart(sweep_dir, tmp_path):
  h3 = (0.0, -3.0, 0.0, 1.0)
  _run(sweep_dir, "h3", model=NET_R, d=8, r=4, nmse=0.7, coeffs=h3)
  rows = plot_ts.study_rows(results.collect_runs(str(sweep_dir / "*")))
  nets = [r for r in rows if r["learner"] == "network R" and r["d"] == 8]
  assert sorted(r["nmse"] for r in nets) == pytest.approx([0.25, 0.7])
  table = plot_ts.markdown_table(rows)
  headings = [x for x in table.splitlines() if x.startswith("**")]
  assert headings == [
      "**sigma(t) = -3 t + t^3, endless fresh samples**",
      "**sigma(t) = t + t^3, endless fresh samples**",
  ]
  png = plot_ts.plot(rows, tmp_path / "two.png")
  assert png.read_bytes()[:8] == PNG_MAGIC


def test_budget_key_reads_the_budget_back_from_the_config():
  for d in (8, 16, 32):
    assert plot_ts.cubic_dim(d) == design.cubic_dim(d)
    for budget in (0.5, 4.0, 0.25, 1.5, 10.0):
      n = design.budget_examples(budget, d)
      key = plot_ts.budget_key({"input_dim": d, "train_examples": n})
      assert key == (0, budget)
  # n / C(d+3, 3) to 3 digits would say 0.497 for budget 0.5 at d = 8.
  n = design.budget_examples(0.497, 8)
  assert plot_ts.budget_key({"input_dim": 8, "train_examples": n})[1] == 0.5
  assert plot_ts.budget_key({"input_dim": 8, "train_examples": 83}) == (
      0,
      0.503,
  )
  # 20,000 examples is no budget of 3 significant digits at these d.
  for d in (8, 16, 32):
    key = plot_ts.budget_key({"input_dim": d, "train_examples": 20000})
    assert key == (1, 20000.0)
  assert plot_ts.budget_key({"input_dim": 8, "train_examples": 0}) == (2, 0.0)
  assert plot_ts.budget_text((0, 0.5)) == "budget n = 0.5 x C(d+3,3)"
  assert plot_ts.budget_text((1, 20000.0)) == "n = 20000 training examples"
  assert plot_ts.budget_text((2, 0.0)) == "endless fresh samples"


def test_budgets_are_grouped_across_d(tmp_path, capsys):
  root = tmp_path / "budgets"
  h3 = (0.0, -3.0, 0.0, 1.0)
  for d, n_half, n_four in ((8, 82, 660), (16, 484, 3876)):
    for budget, n in ((0.5, n_half), (4.0, n_four)):
      for name, model, nmse in (
          ("mean", MEAN, 1.0),
          ("net", NET_R, 0.9 if budget < 1 else 0.1),
      ):
        _run(
            root,
            f"d={d},b={budget},{name}",
            model=model,
            d=d,
            r=d,
            nmse=nmse,
            coeffs=h3,
            train_examples=n,
        )
  _run(root, "fixed", model=NET_R, d=8, r=8, nmse=0.3, train_examples=20000)
  rows = plot_ts.study_rows(results.collect_runs(str(root / "*")))
  assert len(rows) == 9
  half = [r for r in rows if r["budget"] == (0, 0.5)]
  assert sorted((r["d"], r["train_examples"]) for r in half) == [
      (8, 82),
      (8, 82),
      (16, 484),
      (16, 484),
  ]
  nets = {
      (r["budget"], r["d"]): r["nmse"] for r in rows if r["learner"] != "mean"
  }
  assert nets[((0, 0.5), 8)] == 0.9 and nets[((0, 4.0), 16)] == 0.1
  assert nets[((1, 20000.0), 8)] == 0.3
  table = plot_ts.markdown_table(rows)
  headings = [x for x in table.splitlines() if x.startswith("**")]
  assert headings == [
      "**sigma(t) = -3 t + t^3, budget n = 0.5 x C(d+3,3)**",
      "**sigma(t) = -3 t + t^3, budget n = 4 x C(d+3,3)**",
      "**sigma(t) = t + t^3, n = 20000 training examples**",
  ]
  assert "| 16 | 16 | 0.25 | 3876 |" in table
  out = tmp_path / "study"
  assert plot_ts.main(["--workdirs", str(root / "*"), "--out", str(out)]) == 0
  assert out.with_name("study.png").read_bytes()[:8] == PNG_MAGIC
  assert "9 runs in 9 groups" in capsys.readouterr().out
