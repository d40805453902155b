"""Tests of the density benchmark: smoke run on a tiny layer (no timing
assertions), every variant against a float64 numpy reference, the weight
rotation, the regime/crossover/target logic and the argument checks."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import algebras, layout
from bench import density
from tests import reference_products as refs

_ROW_KEYS = {
    "algebra",
    "d",
    "density",
    "macs_per_product",
    "batch",
    "mode",
    "channels",
    "params",
    "real_width",
    "real_params",
    "auto_path",
    "variant",
    "library_variant",
    "is_library",
    "fastest_variant",
    "is_fastest",
    "library_vs_fastest",
    "weight_copies",
    "macs",
    "ms_median",
    "ms_q25",
    "ms_q75",
    "ms_min",
    "ms_max",
    "n_samples",
    "gflops",
    "real_ms",
    "real_gflops",
    "time_vs_real",
    "gflops_vs_real",
}
_SUMMARY_KEYS = {
    "algebra",
    "mode",
    "density",
    "small_batch",
    "small_time_vs_real",
    "small_gflops_vs_real",
    "large_batch",
    "large_time_vs_real",
    "large_time_vs_density",
    "crossover_batch",
}


def test_main_writes_complete_json(tmp_path, capsys):
  out = tmp_path / "density.json"
  results = density.main(
      [
          "--params=256",
          "--batches=3,1",
          "--algebras=M2R,H",
          "--modes=fwd,fwd+bwd",
          "--repeats=2",
          "--min-sample-ms=0.2",
          "--rotate-mb=0",
          f"--out={out}",
      ]
  )
  printed = capsys.readouterr().out
  assert "jaxlib" in printed and "CPU:" in printed
  assert "## fwd: time per call, library path" in printed
  assert "## fwd+bwd: every variant" in printed
  assert "## Regimes" in printed and "crossover" in printed
  assert "## Batch-1 targets" in printed

  data = json.loads(out.read_text())
  assert data["rows"] == json.loads(json.dumps(results["rows"]))
  assert {"cpu_model", "cpu_count", "jax", "jaxlib", "device_kind"} <= set(
      data["machine"]
  )
  assert data["config"]["params"] == 256
  assert data["config"]["batches"] == [3, 1]
  rows = data["rows"]
  groups = {}
  for r in rows:
    assert set(r) >= _ROW_KEYS, _ROW_KEYS - set(r)
    for key in ("ms_median", "gflops", "real_gflops", "time_vs_real"):
      assert math.isfinite(r[key]) and r[key] > 0, (key, r)
    assert r["ms_min"] <= r["ms_median"] <= r["ms_max"]
    assert r["n_samples"] == 2 and r["weight_copies"] == 1
    assert r["real_width"] == 16 and r["real_params"] == 256
    assert r["time_vs_real"] == pytest.approx(r["ms_median"] / r["real_ms"])
    groups.setdefault((r["algebra"], r["batch"], r["mode"]), []).append(r)
  assert set(groups) == {
      (a, b, m) for a in ("M2R", "H") for b in (1, 3) for m in density.MODES
  }
  for (name, batch, mode), group in groups.items():
    alg = algebras.get(name)
    assert [r["variant"] for r in group] == [
        *density.variants(alg, mode),
        "real",
    ]
    assert sum(r["is_library"] for r in group) == 1
    assert sum(r["is_fastest"] for r in group) == 1
    lib = next(r for r in group if r["is_library"])
    assert lib["variant"] == density.library_variant_for(
        alg, batch, lib["channels"], mode
    )
    for r in group:
      if r["variant"] != "real":
        # 256 real parameters: 8 x 8 x 4 for both algebras.
        assert r["channels"] == 8 and r["params"] == 256
        assert r["macs"] == batch * 64 * alg.macs_per_product
        assert r["gflops_vs_real"] == pytest.approx(
            alg.density / r["time_vs_real"]
        )
  summary = {(s["algebra"], s["mode"]): s for s in data["summary"]}
  assert set(summary) == {(a, m) for a in ("M2R", "H") for m in density.MODES}
  for s in summary.values():
    assert set(s) >= _SUMMARY_KEYS
    assert (s["small_batch"], s["large_batch"]) == (1, 3)
  targets = {t["algebra"]: t for t in data["targets"]}
  assert set(targets) == {"M2R", "H"}  # M4R was not run
  for t in targets.values():
    assert t["pass"] == (t["gflops_vs_real"] >= t["needed_gflops_vs_real"])
    assert ("PASS" if t["pass"] else "FAIL") in printed


def _reference(name, x, w):
  """y[b, m] = sum_n w[n, m] x[b, n], textbook products in float64."""
  product = refs.CASES[name][1]
  return product(w[None], x[:, :, None, :]).sum(axis=1)


@pytest.mark.parametrize("name", ["C", "M2C", "M3R"])
def test_every_variant_matches_float64_reference(name):
  """Forward of every variant (with its converted inputs, output unfolded)
  against numpy float64; fwd+bwd gradients by bilinearity and against the
  einsum variant's."""
  alg = algebras.get(name)
  rng = np.random.default_rng(1)
  n = 3
  x = rng.standard_normal((2, n, alg.dim)).astype(np.float32)
  w = rng.standard_normal((n, n, alg.dim)).astype(np.float32)
  want = _reference(name, x.astype(np.float64), w.astype(np.float64))
  ct = rng.standard_normal(want.shape).astype(np.float32)
  for variant in density.variants(alg, "fwd"):
    fn = density.variant_fn(alg, variant)
    x_in = density.variant_x(alg, variant, jnp.asarray(x))
    y = fn(x_in, density.variant_w(alg, variant, jnp.asarray(w)))
    if variant.endswith("folded"):
      y = layout.unfold(y, alg)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4, err_msg=variant)
  grads = {}
  for variant in density.variants(alg, "fwd+bwd"):
    fn = density.variant_fn(alg, variant)
    folded = variant == "folded"
    x_in = density.variant_x(alg, variant, jnp.asarray(x))
    ct_in = layout.fold(ct, alg) if folded else ct
    dx, dw = density._jitted(fn, "fwd+bwd")(x_in, jnp.asarray(w), ct_in)
    inner = float(np.sum(ct * want))
    assert float(np.sum(dx * x_in)) == pytest.approx(inner, rel=1e-3)
    assert float(np.sum(dw * w)) == pytest.approx(inner, rel=1e-3)
    grads[variant] = (layout.unfold(dx, alg) if folded else dx, dw)
  for variant, pair in grads.items():
    for got, ref in zip(pair, grads["einsum"], strict=True):
      np.testing.assert_allclose(
          got, ref, rtol=1e-4, atol=1e-4, err_msg=variant
      )


def test_variant_sets_and_library_choice():
  m2r, h, r = (algebras.get(n) for n in ("M2R", "H", "R"))
  assert density.variants(m2r, "fwd") == (
      "einsum",
      "expand",
      "right",
      "fold",
      "prepared_expand",
      "prepared_right",
      "prepared_fold",
      "folded",
      "prepared_folded",
  )
  assert density.variants(m2r, "fwd+bwd") == (
      "einsum",
      "expand",
      "right",
      "fold",
      "folded",
  )
  assert density.variants(h, "fwd") == (
      "einsum",
      "expand",
      "right",
      "prepared_expand",
      "prepared_right",
  )
  # M_n: folded activations with the cached folded weight (inference), the
  # folded layout (training).
  assert density.library_variant_for(m2r, 1, 1024, "fwd") == "prepared_folded"
  assert density.library_variant_for(m2r, 1, 1024, "fwd+bwd") == "folded"
  # M2C: the compact weight at 1-2 tokens (its folded weight is twice the
  # stored one; see kernels.choose_dense_path), folded from 4 on.
  m2c = algebras.get("M2C")
  assert density.library_variant_for(m2c, 1, 512, "fwd") == "prepared_right"
  assert density.library_variant_for(m2c, 4, 512, "fwd") == "prepared_folded"
  # Others follow kernels.choose_dense_path: the activation-side path while
  # there are fewer tokens than output channels.
  assert density.library_variant_for(h, 1, 1024, "fwd") == "prepared_right"
  assert density.library_variant_for(h, 1024, 1024, "fwd") == "prepared_expand"
  assert density.library_variant_for(h, 1, 1024, "fwd+bwd") == "right"
  assert density.library_variant_for(r, 1, 2048, "fwd") == "prepared_expand"
  with pytest.raises(ValueError, match="Unknown variant 'folded' for H"):
    density.variant_fn(h, "folded")


def test_shapes_hold_the_same_parameters():
  params = density.DEFAULT_PARAMS
  assert density.real_width(params) == 2048
  want = {"R": 2048, "C": 1448, "dual": 1448, "cross": 1182, "H": 1024}
  want |= {"M2R": 1024, "M3R": 683, "M4R": 512, "M2C": 724}
  for name, n in want.items():
    alg = algebras.get(name)
    assert density.channels_for_params(alg, params) == n
    assert n * n * alg.dim == pytest.approx(params, rel=1e-3)
  assert density.channels_for_params(algebras.get("M4R"), 3) == 1


def test_weight_bank_rotates_copies_within_budget():
  alg = algebras.get("M4R")
  # w [2, 2, 16] float32 = 256 bytes; budget of 3 weights -> 3 copies.
  bank = density.WeightBank(alg, 64, jnp.float32, rotate_bytes=3 * 256)
  ws = bank.weights("fold")
  assert len(ws) == 3 and ws[0].shape == (2, 2, 16)
  assert not np.allclose(ws[0], ws[1])
  assert bank.weights("folded") is ws  # shared, not regenerated
  # The block expansion is 16x larger: one copy covers the budget.
  assert len(bank.weights("prepared_expand")) == 1
  assert bank.weights("prepared_folded") is bank.weights("prepared_fold")
  assert len(bank.weights("prepared_fold")) == 3
  real = bank.weights("real")  # 8 x 8 float32 = 256 bytes
  assert len(real) == 3 and real[0].shape == (8, 8)
  assert len(density.WeightBank(alg, 64, jnp.float32, 0).weights("real")) == 1
  big = density.WeightBank(alg, 64, jnp.float32, 2**40)
  assert len(big.weights("einsum")) == density._MAX_COPIES
  seen = []
  call = density._rotating(lambda a: seen.append(a), [(1,), (2,), (3,)])
  for _ in range(4):
    call()
  assert seen == [1, 2, 3, 1]


def test_run_point_times_every_variant_and_real():
  alg = algebras.get("M2R")
  rows = density.run_point(
      alg,
      2,
      "fwd",
      params=64,
      repeats=1,
      dtype=jnp.float32,
      min_sample_s=0.0,
      rotate_bytes=2 * 64 * 4,
  )
  assert [r["variant"] for r in rows] == [*density.variants(alg, "fwd"), "real"]
  copies = {r["variant"]: r["weight_copies"] for r in rows}
  assert copies["einsum"] == copies["real"] == 2
  assert copies["prepared_expand"] == 1  # 2x the canonical size already
  assert all(r["macs"] > 0 and r["ms_median"] > 0 for r in rows)


def _lib_row(algebra, batch, ratio, density_=4.0, mode="fwd"):
  return {
      "algebra": algebra,
      "mode": mode,
      "batch": batch,
      "density": density_,
      "params": 100,
      "real_params": 100,
      "variant": "prepared_right",
      "is_library": True,
      "time_vs_real": ratio,
      "gflops_vs_real": density_ / ratio,
      "library_vs_fastest": 1.0,
      "fastest_variant": "prepared_right",
  }


def test_crossover_regimes_and_targets():
  assert density.crossover_batch([(4, 1.3), (1, 1.0), (2, 1.25)]) == 4
  assert density.crossover_batch([(1, 1.0), (8, 1.2)]) is None
  assert density.crossover_batch([(1, 2.0)], threshold=2.5) is None
  rows = [
      _lib_row("H", 1, 1.6),  # 2.5x FLOP/s: exactly the target
      _lib_row("H", 8, 1.1),
      _lib_row("H", 64, 1.5),
      _lib_row("H", 512, 3.8),
      _lib_row("M2R", 1, 1.26, 2.0),  # 1.587x FLOP/s < 1.6
      _lib_row("M4R", 2, 1.0),  # batch 1 not measured: no target
  ]
  summary = {s["algebra"]: s for s in density.summarize(rows)}
  h = summary["H"]
  assert h["crossover_batch"] == 1  # already 1.6x real at batch 1
  assert h["large_batch"] == 512
  assert h["large_time_vs_density"] == pytest.approx(3.8 / 4)
  assert summary["M2R"]["crossover_batch"] == 1
  targets = {t["algebra"]: t for t in density.batch1_targets(rows)}
  assert set(targets) == {"H", "M2R"}
  assert targets["H"]["pass"]
  assert targets["H"]["max_time_vs_real"] == pytest.approx(1.6)
  assert not targets["M2R"]["pass"]
  assert targets["M2R"]["max_time_vs_real"] == pytest.approx(1.25)
  rows2 = [_lib_row("C", b, r, 2.0) for b, r in ((1, 0.9), (4, 1.2))]
  assert density.summarize(rows2)[0]["crossover_batch"] is None
  text = density.tables(
      [
          {
              **r,
              "ms_median": r["time_vs_real"],
              "real_gflops": 1.0,
              "gflops": r["gflops_vs_real"],
              "weight_copies": 1,
              "is_fastest": True,
          }
          for r in rows2
      ]
      + [
          {
              **_lib_row("C", b, 1.0, 2.0),
              "variant": "real",
              "is_library": False,
              "is_fastest": False,
              "ms_median": 1.0,
              "real_gflops": 1.0,
              "gflops": 1.0,
              "weight_copies": 1,
          }
          for b in (1, 4)
      ]
  )
  assert "| 4 | 1 | 1.2 (1.20x) |" in text
  assert "> 4 |" in text  # no crossover up to the largest batch


def test_bad_args(capsys):
  for argv, message in [
      (["--batches=1,0"], "--batches must be positive"),
      (["--batches=1,x"], "--batches must be comma-separated integers"),
      (["--algebras=R,Q"], "'Q'"),
      (["--modes=bwd"], "unknown --modes ['bwd']"),
      (["--params=0"], "--params must be >= 1"),
      (["--repeats=0"], "--repeats must be >= 1"),
      (["--rotate-mb=-1"], "--rotate-mb must be >= 0"),
  ]:
    with pytest.raises(SystemExit):
      density.parse_args(argv)
    assert message in capsys.readouterr().err, argv
  args = density.parse_args(["--quick"])
  assert args.params == 1024 * 1024 and args.modes == ("fwd",)
  assert args.algebras == ("H", "M2R", "M4R")
  args = density.parse_args([])
  assert args.batches == density.DEFAULT_BATCHES
  assert args.algebras == density.DEFAULT_ALGEBRAS
  assert jax.numpy.dtype(args.dtype) == jnp.float32
