"""Smoke test of the kernel benchmark (tiny shapes; no timing assertions)."""

from __future__ import annotations

import json
import math

import pytest

from algebranets import algebras
from bench import common
from bench import kernels as bench_kernels

_ROW_KEYS = {
    "algebra",
    "d",
    "macs_per_product",
    "op",
    "case",
    "shape",
    "mode",
    "path",
    "resolved_path",
    "auto_path",
    "is_auto_choice",
    "fastest_path",
    "is_fastest",
    "chosen_vs_fastest",
    "vs_fastest",
    "ms_median",
    "ms_q25",
    "ms_q75",
    "ms_min",
    "ms_max",
    "n_samples",
    "macs",
    "gflops",
    "real_gflops",
    "ratio_to_real",
}
_NUMBERS = (
    "ms_median",
    "ms_q25",
    "ms_q75",
    "ms_min",
    "ms_max",
    "gflops",
    "real_gflops",
    "ratio_to_real",
    "vs_fastest",
    "chosen_vs_fastest",
)


def test_main_writes_complete_json(tmp_path, capsys):
  out = tmp_path / "results.json"
  results = bench_kernels.main(
      [
          "--size=tiny",
          "--algebras=M2R",
          "--repeats=2",
          "--min-sample-ms=0.2",
          f"--out={out}",
      ]
  )
  printed = capsys.readouterr().out
  assert "| algebra | op | shape | path |" in printed
  assert "Auto choice vs fastest" in printed
  assert "jaxlib" in printed and "CPU:" in printed

  data = json.loads(out.read_text())
  assert data["rows"] == json.loads(json.dumps(results["rows"]))
  assert {"cpu_model", "cpu_count", "jax", "jaxlib", "device_kind"} <= set(
      data["machine"]
  )
  assert data["config"]["repeats"] == 2
  rows = data["rows"]
  # 4 ops x 2 modes x (4 dense paths | 3 conv paths, + auto + real).
  ops = {r["op"] for r in rows}
  assert ops == set(bench_kernels.OPS)
  assert {r["mode"] for r in rows} == {"fwd", "fwd+bwd"}
  for r in rows:
    assert set(r) >= _ROW_KEYS, _ROW_KEYS - set(r)
    for key in _NUMBERS:
      assert math.isfinite(r[key]) and r[key] > 0, (key, r)
    assert r["ms_min"] <= r["ms_median"] <= r["ms_max"]
    assert r["n_samples"] == 2
    assert r["algebra"] == "M2R"
    # The library's own choice: depthwise uses the expansion, the rest fold.
    assert r["auto_path"] == ("expand" if r["op"] == "dw3x3" else "fold")
  dense_paths = {r["path"] for r in rows if r["op"] == "dense"}
  assert dense_paths == {"einsum", "expand", "right", "fold", "auto", "real"}
  conv_paths = {r["path"] for r in rows if r["op"] == "conv3x3"}
  assert conv_paths == {"einsum", "expand", "fold", "auto", "real"}
  for r in rows:
    if r["path"] == "real":
      assert r["ratio_to_real"] == pytest.approx(1.0)
    if r["path"] not in ("auto", "real"):
      assert r["is_auto_choice"] == (r["path"] == r["auto_path"]), r
    # Same intrinsic work for every path of one problem.
    if r["path"] != "real":
      assert r["macs"] == rows_for(rows, r)[0]["macs"]
    assert sum(x["is_fastest"] for x in rows_for(rows, r)) == 1


def rows_for(rows, r):
  return [
      x
      for x in rows
      if (x["op"], x["case"], x["mode"]) == (r["op"], r["case"], r["mode"])
      and x["path"] != "real"
  ]


def test_problem_shapes_keep_real_channels_and_match_macs():
  case = bench_kernels.Case("dense", "t", 512, 512, tokens=8)
  for name in ("R", "C", "H", "M2R", "M4R", "M2C"):
    alg = algebras.get(name)
    p = bench_kernels.make_problem(alg, case)
    assert p.x_shape == (8, 512 // alg.dim, alg.dim)
    assert p.intrinsic_macs == 8 * (512 // alg.dim) ** 2 * alg.macs_per_product
    # The real baseline does (almost exactly) the same number of MACs.
    assert p.real_macs == pytest.approx(p.intrinsic_macs, rel=0.01)
  dw = bench_kernels.Case("dw3x3", "t", 64, 64, batch=1, hw=4)
  p = bench_kernels.make_problem(algebras.get("H"), dw)
  assert p.w_shape == (3, 3, 1, 16, 4)
  assert p.real_macs == p.intrinsic_macs
  conv = bench_kernels.Case("conv3x3_s2", "t", 64, 64, batch=1, hw=5)
  p = bench_kernels.make_problem(algebras.get("M2R"), conv)
  assert p.pairs == 1 * 3 * 3 * 9 * 16 * 16  # SAME, stride 2: 5x5 -> 3x3


def test_time_interleaved_and_bad_args():
  calls = []
  timings = common.time_interleaved(
      {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
      repeats=3,
      warmup=1,
      min_sample_s=0.0,
  )
  assert set(timings) == {"a", "b"}
  assert all(len(t.samples) == 3 and t.inner == 1 for t in timings.values())
  # Rounds rotate the order: a b | b a | a b (after one warm-up call each).
  assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
  # A budget far below one round still leaves min_repeats samples.
  timings = common.time_interleaved(
      {"a": lambda: None}, repeats=50, max_seconds=1e-9, min_repeats=3
  )
  assert len(timings["a"].samples) == 3
  with pytest.raises(ValueError, match=r"repeats \(0\)"):
    common.time_interleaved({"a": lambda: None}, repeats=0)
  with pytest.raises(SystemExit):
    bench_kernels.parse_args(["--ops=dense,conv5x5"])
  with pytest.raises(SystemExit):
    bench_kernels.parse_args(["--algebras=Q"])
