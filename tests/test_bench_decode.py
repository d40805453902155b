"""Smoke test of bench.decode at tiny sizes (numbers are not checked)."""

from __future__ import annotations

import json

import jax
import numpy as np

from algebranets import algebras, kernels, layout
from bench import decode
from tests import tolerances


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
  # The breakdown (linears alone) at batch 1 only.
  r = rows[("H", 1)]
  assert r["rest_ms_per_step"] == r["ms_per_step"] - r["linears_ms_per_step"]
  assert "linears_ms_per_step" not in rows[("H", 2)]
  assert "before_ms_per_token" not in rows[("H", 2)]
  assert (
      rows[("H", 2)]["gbps_vs_R"]
      == rows[("H", 2)]["gbps"] / rows[("R", 2)]["gbps"]
  )
  assert "| tiny | 4 | 1 | H |" in results["table"]
  assert results["skipped"] == []


def test_decode_bench_skips_points_whose_rings_do_not_fit():
  # tiny, B=2: R's rings 2 x 1 layer x 2 x 4 slots x 16 reals x 4 bytes =
  # 1,024 bytes; with H's 2,048 and one more copy of the largest, 5,120.
  args = ["--sizes=tiny", "--algebras=R,H", "--tokens=1", "--repeats=1"]
  args += ["--min_sample_ms=1", "--copy_mb=1", "--before_tokens=0"]
  results = decode.main([*args, "--batches=1,2", "--max_cache_gb=4e-6"])
  assert {r["batch"] for r in results["rows"]} == {1}
  assert results["skipped"] == [
      "tiny mem 4 B=2: skipped, the K/V rings need 0.0 GB (> --max_cache_gb "
      "4e-06)"
  ]


def test_linears_call_runs_every_layers_linears_in_turn():
  alg = algebras.get("H")
  size = decode.SIZES["tiny"]
  point, _ = decode.prepare_point(
      alg, size, size.mems[0], 2, 1, "default", breakdown=True
  )
  build = decode.build_fn(alg, size, decode.width_for(alg, size), 4, 4)
  params = decode.init_params(build)
  dec = decode.txl_decoding.TXLDecoder(build, batch_size=2)
  weights = dec.prepare(params)
  got = np.asarray(decode.linears_call(dec, weights, 2, 2)())
  c = dec.model.num_channels
  x = np.ones((2, c, 4), np.float64)
  for _ in range(2):  # tokens
    for lw in weights["layers"]:
      qkv = np.asarray(kernels.dense_prepared(x.astype(np.float32), lw["qkv"]))
      a = qkv[:, :c] + qkv[:, c : 2 * c] + qkv[:, 2 * c :]
      y = kernels.dense_prepared(a, lw["output"])
      y = kernels.dense_prepared(y, lw["ffn_in"])
      x = x + 1e-3 * np.asarray(kernels.dense_prepared(y, lw["ffn_out"]))
  # Float32 both ways, summed in other orders: 2 tokens x 4 chained
  # products, the longest over the FFN's hidden reals.
  n = dec.model.d_inner_channels * 4
  atol = tolerances.float32_error(n, np.abs(x).max(), depth=8)
  np.testing.assert_allclose(got, x, rtol=0, atol=atol)
  assert point.linears is not None
  jax.block_until_ready(point.linears())


def test_kept_folded_linears_equal_the_per_call_fold():
  # M2R, every weight prepared for 'fold': activations kept folded across
  # the layers compute the same chain as folding and unfolding per call.
  alg = algebras.get("M2R")
  size = decode.SIZES["tiny"]
  build = decode.build_fn(alg, size, decode.width_for(alg, size), 4, 4)
  params = decode.init_params(build)
  dec = decode.txl_decoding.TXLDecoder(
      build,
      batch_size=2,
      paths=dict.fromkeys(decode.txl_decoding.LINEARS, "fold"),
  )
  weights = dec.prepare(params)
  per_call = np.asarray(decode.linears_call(dec, weights, 2, 2)())
  kept = decode.linears_call(dec, weights, 2, 2, keep_folded=True)()
  got = np.asarray(layout.unfold(kept, alg))
  n = dec.model.d_inner_channels * 4
  atol = tolerances.float32_error(n, np.abs(per_call).max(), depth=8)
  np.testing.assert_allclose(got, per_call, rtol=0, atol=atol)
  # The bench times both for M_n algebras at batch 1.
  point, _ = decode.prepare_point(
      alg, size, size.mems[0], 1, 1, "default", breakdown=True
  )
  assert set(point.folded) == {"fold", "kept_folded"}
