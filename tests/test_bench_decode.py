"""Smoke test of bench.decode at tiny sizes (numbers are not checked)."""

from __future__ import annotations

import json

from bench import decode


def test_decode_bench_runs_and_reports(tmp_path):
  out = tmp_path / "decode.json"
  results = decode.main(
      [
          "--sizes=tiny",
          "--algebras=R,H",
          "--batches=1,2",
          "--tokens=2",
          "--repeats=1",
          "--min_sample_ms=1",
          "--copy_mb=1",
          "--before_tokens=2",
          f"--out={out}",
      ]
  )
  assert json.loads(out.read_text())["rows"] == results["rows"]
  rows = {(r["algebra"], r["batch"]): r for r in results["rows"]}
  assert set(rows) == {("R", 1), ("H", 1), ("R", 2), ("H", 2)}
  # tiny: 1 layer, mem 4 with same_length -> 4 slots, d_model 16 (H at
  # the matched width 2: 32 reals), float32; K and V per stream.
  assert rows[("R", 2)]["bytes_kv_per_step"] == 2 * 2 * 4 * 16 * 4
  assert rows[("H", 1)]["bytes_kv_per_step"] == 2 * 1 * 4 * 32 * 4
  assert rows[("R", 1)]["time_vs_R"] == 1.0
  assert "before_ms_per_token" in rows[("H", 1)]
  assert "before_ms_per_token" not in rows[("H", 2)]
  assert "| tiny | 4 | 1 | H |" in results["table"]
