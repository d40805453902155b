"""Smoke test of bench/depthwise.py (the measurement behind
`kernels.depthwise.choose_path`): every variant runs on a tiny shape and the
CLI prints its table. No timing is asserted."""

from __future__ import annotations

from bench import depthwise as bench_depthwise


def test_benchmark_smoke(capsys):
  rows = bench_depthwise._benchmark(
      ["M2R"], batch=1, shapes=[(8, 4, 2)], modes=["fwd+bwd"], repeats=1
  )
  assert [(r["algebra"], r["mode"]) for r in rows] == [("M2R", "fwd+bwd")]
  variants = {
      "grouped",
      "taps",
      "taps_autodiff",
      "grouped_folded",
      "taps_folded",
  }
  (row,) = rows
  assert row["shape"] == "B=1 4x4 C=2 s2"
  assert set(row) - {"algebra", "shape", "mode"} == variants
  assert all(row[v] > 0 for v in variants)
  assert "M2R B=1 4x4 C=2 s2 fwd+bwd" in capsys.readouterr().out


def test_cli_prints_table(capsys):
  bench_depthwise._main(
      [
          "--algebras=C",
          "--batch=1",
          "--shapes=4:4:1",
          "--modes=fwd",
          "--repeats=1",
      ]
  )
  out = capsys.readouterr().out
  assert "| algebra | shape | mode | grouped | taps | taps_autodiff |" in out
  assert "| C | B=1 4x4 C=2 s1 | fwd |" in out
