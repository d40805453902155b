"""Tests for scripts/convac_rank.py (the ConvAC rank-vs-overlap probe)."""

import json
import re

import pytest

from scripts import convac_rank


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """One small run of the script: N = 4, M = 2, Z = 2, k = 1, 2, 2 seeds."""
  out = tmp_path_factory.mktemp("rank") / "sub" / "rank.json"
  argv = [
      "--positions=4",
      "--templates=2",
      "--kernels=1,2",
      "--channels=2",
      "--seeds=2",
      f"--out={out}",
  ]
  return argv, out


def test_writes_well_formed_json_with_hand_checked_ranks(tiny_run, capsys):
  argv, out = tiny_run
  assert convac_rank.main(argv) == 0
  printed = capsys.readouterr().out
  result = json.loads(out.read_text())
  assert set(result) == {"settings", "runs", "summary", "wall_time_s"}
  settings = result["settings"]
  assert settings["layouts"] == ["shallow", "deep"]
  assert settings["kernels"] == [1, 2]
  assert settings["rtol"] == convac_rank.DEFAULT_RTOL
  # 2 layouts x 1 width x 2 kernels x 2 seeds.
  assert len(result["runs"]) == 8
  for run in result["runs"]:
    assert run["overlap"] == (run["kernel"] > 1)
    assert run["depth"] == (1 if run["layout"] == "shallow" else 2)
    for p in ("odd_even", "left_right"):
      r = run["ranks"][p]
      assert r["max_rank"] == 4  # min(2^2, 2^2)
      assert len(r["singular_values"]) == 4
      assert r["singular_values"][0] == 1.0
      assert 1 <= r["rank"] <= 4
  # 2 layouts x 1 width x 2 kernels x 2 partitions.
  assert len(result["summary"]) == 8
  rows = {
      (r["layout"], r["kernel"], r["partition"]): r for r in result["summary"]
  }
  # Hand-derived in tests/test_grid_tensor.py: the shallow 1x1 ConvAC has
  # rank Z = 2 for every partition; the deep 1x1 (pairs) ConvAC has
  # left/right rank Z = 2 and odd/even rank min(Z^2, M^2) = 4.
  expected = {
      ("shallow", 1, "odd_even"): 2,
      ("shallow", 1, "left_right"): 2,
      ("deep", 1, "odd_even"): 4,
      ("deep", 1, "left_right"): 2,
  }
  for key, rank in expected.items():
    assert rows[key]["rank_min"] == rows[key]["rank_max"] == rank, key
  # Overlap never lowers the generic rank: a k = 2 net whose second tap is
  # zero is the k = 1 net ('SAME' pads at the end).
  for layout in ("shallow", "deep"):
    for p in ("odd_even", "left_right"):
      assert (
          rows[(layout, 2, p)]["rank_min"] >= rows[(layout, 1, p)]["rank_max"]
      )
  assert "| layout | partition | channels Z | k=1 | k=2 | max rank |" in printed
  assert "| deep | odd_even | 2 | 4 |" in printed
  assert f"wrote {out}" in printed


def test_layout_blocks():
  assert convac_rank.layout_blocks("shallow", 6) == (1, 1)
  assert convac_rank.layout_blocks("deep", 8) == (3, 2)
  with pytest.raises(ValueError, match=r"power of 2 .*got 6"):
    convac_rank.layout_blocks("deep", 6)
  with pytest.raises(ValueError, match="unknown layout 'wide'"):
    convac_rank.layout_blocks("wide", 8)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--positions=30"], "entries, more than max_entries"),
        (["--layouts=deep", "--positions=6"], "must be a power of 2"),
        (["--partitions=diagonal"], "unknown partition 'diagonal'"),
        (["--seeds=0"], r"--seeds \(0\)"),
    ],
)
def test_errors_exit_nonzero_with_a_message(argv, message, capsys):
  assert convac_rank.main(argv) == 1
  err = capsys.readouterr().err
  assert err.startswith("error: ")
  assert re.search(message, err)


def test_bad_integer_lists_are_rejected(capsys):
  with pytest.raises(SystemExit):
    convac_rank.main(["--kernels=0,1"])
  assert "expected positive integers" in capsys.readouterr().err


def test_markdown_table_shows_rank_ranges():
  settings = {
      "layouts": ["shallow"],
      "partitions": ["odd_even"],
      "channels": [1],
      "kernels": [1, 2],
      "stride": 1,
      "positions": 4,
      "templates": 2,
      "representation": "identity",
      "algebra": "R",
      "seeds": 2,
      "rtol": 1e-13,
      "dtype": "float64",
  }

  def run(kernel, seed, rank, sv):
    return {
        "layout": "shallow",
        "channels": 1,
        "kernel": kernel,
        "stride": 1,
        "seed": seed,
        "params": 3,
        "ranks": {
            "odd_even": {
                "rank": rank,
                "max_rank": 4,
                "gap": sv[rank - 1] / sv[rank] if rank < 4 else None,
                "singular_values": sv,
            }
        },
    }

  runs = [
      run(1, 0, 1, [1.0, 1e-16, 1e-17, 1e-18]),
      run(1, 1, 1, [1.0, 2e-16, 1e-17, 1e-18]),
      run(2, 0, 3, [1.0, 0.5, 0.25, 1e-16]),
      run(2, 1, 4, [1.0, 0.5, 0.25, 0.1]),
  ]
  summary = convac_rank.summarize(runs, ["odd_even"])
  assert [(r["kernel"], r["rank_min"], r["rank_max"]) for r in summary] == [
      (1, 1, 1),
      (2, 3, 4),
  ]
  assert summary[0]["max_dropped"] == 2e-16
  assert summary[1]["max_dropped"] == 1e-16
  assert summary[0]["min_gap"] == 5e15
  table = convac_rank.markdown_table({"settings": settings, "summary": summary})
  assert "| shallow | odd_even | 1 | 1 | 3-4 | 4 |" in table
  assert "Largest dropped singular value (relative): 2e-16" in table
