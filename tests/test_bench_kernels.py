"""Tests of the kernel benchmark: smoke run on tiny shapes (no timing
assertions), every timed variant against a float64 numpy reference, the
target evaluation and the argument checks."""

from __future__ import annotations

import functools
import json
import math

import jax
import numpy as np
import pytest

from algebranets import algebras, kernels, layout
from bench import common
from bench import kernels as bench_kernels
from tests import reference_products as refs

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
    "fastest_variant",
    "is_fastest",
    "is_fastest_variant",
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
)
_TARGET_KEYS = {
    "algebra",
    "op",
    "shape",
    "mode",
    "target",
    "auto_path",
    "value",
    "needed",
    "pass",
    "best_variant",
    "best_value",
    "best_pass",
}


def _dw_paths():
  if bench_kernels.has_depthwise():
    return {f"dw_{p}" for p in kernels.DEPTHWISE_PATHS}
  return set()


def _dw_folded():
  """The folded depthwise variants of a matrix algebra."""
  if bench_kernels.has_depthwise():
    return {f"dw_{p}_folded" for p in kernels.DEPTHWISE_PATHS}
  return {"fold_persistent"}


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
  assert "| algebra | op | shape | variant |" in printed
  assert "Auto choice vs fastest" in printed
  assert "## Targets" in printed and "M4R dense time" not in printed
  assert "jaxlib" in printed and "CPU:" in printed

  data = json.loads(out.read_text())
  assert data["rows"] == json.loads(json.dumps(results["rows"]))
  assert {"cpu_model", "cpu_count", "jax", "jaxlib", "device_kind"} <= set(
      data["machine"]
  )
  assert data["config"]["repeats"] == 2
  assert data["config"]["depthwise_kernel"] == bench_kernels.has_depthwise()
  rows = data["rows"]
  assert {r["op"] for r in rows} == set(bench_kernels.OPS)
  assert {r["mode"] for r in rows} == {"fwd", "fwd+bwd"}
  for r in rows:
    assert set(r) >= _ROW_KEYS, _ROW_KEYS - set(r)
    for key in _NUMBERS:
      assert math.isfinite(r[key]) and r[key] > 0, (key, r)
    assert r["ms_min"] <= r["ms_median"] <= r["ms_max"]
    assert r["n_samples"] == 2
    assert r["algebra"] == "M2R"
    if r["op"] in ("dense", "conv3x3", "conv3x3_s2"):
      assert r["auto_path"] == "fold"
    elif bench_kernels.has_depthwise():
      assert r["auto_path"] in _dw_paths()
    else:  # conv2d's own rule for depthwise
      assert r["auto_path"] == "expand"

  def paths(op, mode):
    return {r["path"] for r in rows if r["op"] == op and r["mode"] == mode}

  common_dense = {"einsum", "expand", "right", "fold", "fold_persistent"}
  assert paths("dense", "fwd") == common_dense | {"prepared", "auto", "real"}
  # The prepared layout is an inference cache: forward only.
  assert paths("dense", "fwd+bwd") == common_dense | {"auto", "real"}
  conv = {"einsum", "expand", "fold", "fold_persistent", "auto", "real"}
  assert paths("conv3x3", "fwd") == paths("conv3x3_s2", "fwd+bwd") == conv
  # Tiny depthwise shapes time the grouped gradients too.
  dw = conv - {"fold_persistent"} | _dw_paths() | _dw_folded()
  assert paths("dw3x3", "fwd") == paths("dw3x3", "fwd+bwd") == dw
  skipped = {(s["op"], s["mode"], s["path"]) for s in data["skipped"]}
  assert skipped == {("dense", "fwd+bwd", "prepared")}

  groups = {}
  for r in rows:
    if r["path"] != "real":
      groups.setdefault((r["op"], r["shape"], r["mode"]), []).append(r)
  for r in rows:
    if r["path"] == "real":
      assert r["ratio_to_real"] == pytest.approx(1.0)
      continue
    group = groups[(r["op"], r["shape"], r["mode"])]
    if r["path"] != "auto":
      assert r["is_auto_choice"] == (r["path"] == r["auto_path"]), r
    # Same intrinsic work for every variant of one problem.
    assert r["macs"] == group[0]["macs"]
    assert sum(x["is_fastest"] for x in group) == 1
    assert sum(x["is_fastest_variant"] for x in group) == 1
    fastest = min(
        (x for x in group if x["path"] != "auto"),
        key=lambda x: x["ms_median"],
    )
    assert r["fastest_variant"] == fastest["path"]
  tgts = data["targets"]
  assert tgts == bench_kernels.targets(rows)
  # One 'ceiling' target per dense / conv case (fwd+bwd); no M4R here.
  assert len(tgts) == 4
  for t in tgts:
    assert set(t) >= _TARGET_KEYS
    assert t["target"] == "ceiling" and t["mode"] == "fwd+bwd"
    assert t["needed"] == pytest.approx(0.8)
    assert t["pass"] == (t["value"] >= 0.8)
    assert t["best_value"] >= t["value"]


def _np(a):
  return np.asarray(a, np.float64)


def _reference_conv(product, x, w, stride, groups):
  """SAME-padded 3x3 conv in float64 numpy (taps written out)."""
  b, h, wd = x.shape[:3]
  kh, kw, cg, m, _ = w.shape
  out_h, out_w = -(-h // stride), -(-wd // stride)
  pads = [
      max((o - 1) * stride + k - s, 0)
      for o, k, s in ((out_h, kh, h), (out_w, kw, wd))
  ]
  xp = np.pad(
      x,
      (
          (0, 0),
          (pads[0] // 2, pads[0] - pads[0] // 2),
          (pads[1] // 2, pads[1] - pads[1] // 2),
          (0, 0),
          (0, 0),
      ),
  )
  y = np.zeros((b, out_h, out_w, m, x.shape[-1]))
  mg = m // groups
  for i in range(kh):
    for j in range(kw):
      patch = xp[
          :, i : i + stride * out_h : stride, j : j + stride * out_w : stride
      ]
      for g in range(groups):
        xs = patch[..., g * cg : (g + 1) * cg, None, :]  # [.., cg, 1, d]
        ws = w[i, j, :, g * mg : (g + 1) * mg]  # [cg, mg, d]
        y[..., g * mg : (g + 1) * mg, :] += product(ws, xs).sum(axis=-3)
  return y


def _reference(prob, product, x, w):
  if prob.case.op == "dense":
    return product(w, x[..., :, None, :]).sum(axis=-3)
  stride = 2 if prob.case.op == "conv3x3_s2" else 1
  groups = x.shape[3] if prob.case.op == "dw3x3" else 1
  return _reference_conv(product, x, w, stride, groups)


_TINY = {
    "dense": bench_kernels.Case("dense", "t", 12, 8, tokens=3),
    "conv3x3_s2": bench_kernels.Case("conv3x3_s2", "t", 8, 8, batch=1, hw=5),
    "dw3x3": bench_kernels.Case("dw3x3", "t", 8, 8, batch=1, hw=4),
}


@pytest.mark.parametrize(
    "name,op",
    [
        ("H", "dense"),
        ("M2C", "dense"),
        ("M2C", "conv3x3_s2"),
        ("M2R", "dw3x3"),
    ],
)
def test_every_variant_matches_float64_reference(name, op):
  """What each variant computes (inputs converted outside the timed
  function, folded outputs and cotangents) is the algebra layer: forward
  against numpy float64; gradients by bilinearity (<ct, y> = <dx, x> =
  <dw, w>) and against the einsum variant's, unfolded where folded."""
  alg = algebras.get(name)
  product = refs.CASES[name][1]
  prob = bench_kernels.make_problem(alg, _TINY[op])
  rng = np.random.default_rng(0)
  x = rng.standard_normal(prob.x_shape).astype(np.float32)
  w = rng.standard_normal(prob.w_shape).astype(np.float32)
  want = _reference(prob, product, _np(x), _np(w))
  ct = rng.standard_normal(want.shape).astype(np.float32)
  names = [*prob.variants, "auto"]
  folded_names = _dw_folded() if op == "dw3x3" else {"fold_persistent"}
  assert folded_names <= set(names) or not alg.matrix_shape
  grads = {}
  for variant in names:
    v = prob.variants.get(variant)
    folded = v is not None and v.folded_output

    def std(a, folded=folded):
      return _np(layout.unfold(a, alg)) if folded else _np(a)

    f, inputs = bench_kernels.variant_call(prob, variant, "fwd")
    got = std(f(*inputs(x, w)))
    np.testing.assert_allclose(
        got, want, rtol=1e-4, atol=1e-4 * abs(want).max()
    )
    if v is not None and "fwd+bwd" not in v.modes:
      assert variant == "prepared"
      continue
    f, inputs = bench_kernels.variant_call(prob, variant, "fwd+bwd")
    ct_in = layout.fold(ct, alg) if folded else ct
    x_in, w_in, ct_in = inputs(x, w, ct_in)
    dx, dw = f(x_in, w_in, ct_in)
    inner = float(np.sum(_np(ct) * want))
    for g, a in ((dx, x_in), (dw, w_in)):
      assert float(np.sum(_np(g) * _np(a))) == pytest.approx(inner, rel=1e-3)
    grads[variant] = (std(dx), _np(dw))
  for variant, (dx, dw) in grads.items():
    for got, want in zip((dx, dw), grads["einsum"], strict=True):
      np.testing.assert_allclose(
          got, want, rtol=1e-4, atol=1e-4, err_msg=variant
      )


def test_depthwise_variants_follow_the_library():
  """Depthwise problems bench the dedicated kernel's paths once it exists
  (and its auto rule), else conv2d's."""
  case = _TINY["dw3x3"]
  prob = bench_kernels.make_problem(algebras.get("C"), case)
  if bench_kernels.has_depthwise():
    assert set(prob.paths) == _dw_paths()
    assert prob.auto_path == "dw_" + kernels.choose_depthwise_path(
        "C", prob.x_shape, prob.w_shape
    )
    assert {"einsum", "expand"} <= set(prob.variants)
  else:
    assert prob.paths == ("einsum", "expand")
    assert prob.auto_path == "expand"


def test_grouped_depthwise_grads_are_skipped_only_where_marked(monkeypatch):
  case = bench_kernels.Case(
      "dw3x3", "t", 8, 8, batch=1, hw=4, cpu_grouped_grads=False
  )
  prob = bench_kernels.make_problem(algebras.get("M2R"), case)
  skip = functools.partial(bench_kernels.skip_reason, prob)
  assert "jax#13800" in skip("expand", "fwd+bwd")
  for name in _dw_folded():
    grouped = name in ("fold_persistent", "dw_grouped_folded")
    assert (skip(name, "fwd+bwd") is not None) == grouped, name
  if bench_kernels.has_depthwise():
    assert "jax#13800" in skip("dw_grouped", "fwd+bwd")
    assert skip("dw_taps", "fwd+bwd") is None
    assert skip("auto", "fwd+bwd") is None  # taps on CPU
  # einsum: a grouped conv with d output channels per group.
  assert "jax#13800" in skip("einsum", "fwd+bwd")
  assert skip("expand", "fwd") is None
  assert skip("expand", "fwd+bwd", grouped_grads=True) is None
  # R's depthwise conv has one channel per group: fast.
  real = bench_kernels.make_problem(algebras.get("R"), case)
  for name in ("einsum", "expand"):
    assert bench_kernels.skip_reason(real, name, "fwd+bwd") is None
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert skip("expand", "fwd+bwd") is None
  dense = bench_kernels.make_problem(algebras.get("H"), _TINY["dense"])
  assert "forward only" in bench_kernels.skip_reason(
      dense, "prepared", "fwd+bwd"
  )


def _row(algebra, op, mode, path, ratio, auto_path="expand"):
  return {
      "algebra": algebra,
      "op": op,
      "case": "c",
      "shape": "s",
      "mode": mode,
      "path": path,
      "auto_path": auto_path,
      "ratio_to_real": ratio,
  }


def test_targets_use_the_useful_fraction_and_m4r_time():
  rows = [
      _row("dual", "dense", "fwd+bwd", "auto", 0.61),
      _row("dual", "dense", "fwd+bwd", "expand", 0.59),
      _row("cross", "conv3x3", "fwd+bwd", "auto", 0.53),
      _row("cross", "conv3x3", "fwd+bwd", "einsum", 0.55),
      _row("C", "conv3x3_s2", "fwd+bwd", "auto", 0.79),
      _row("C", "dw3x3", "fwd+bwd", "auto", 0.01),  # no target for dw
      _row("M4R", "dense", "fwd", "auto", 1 / 1.31, "fold"),
      _row("M4R", "dense", "fwd", "fold_persistent", 1 / 1.2, "fold"),
      _row("M4R", "dense", "fwd+bwd", "auto", 1 / 1.29, "fold"),
      _row("M4R", "dense", "fwd", "real", 1.0, "fold"),
  ]
  tgts = bench_kernels.targets(rows)
  got = {(t["algebra"], t["mode"], t["target"]): t for t in tgts}
  assert set(got) == {
      ("dual", "fwd+bwd", "ceiling"),
      ("cross", "fwd+bwd", "ceiling"),
      ("C", "fwd+bwd", "ceiling"),
      ("M4R", "fwd", "m4r_dense_time"),
      ("M4R", "fwd+bwd", "ceiling"),
      ("M4R", "fwd+bwd", "m4r_dense_time"),
  }
  dual = got[("dual", "fwd+bwd", "ceiling")]
  assert dual["needed"] == pytest.approx(0.6) and dual["pass"]
  assert dual["best_variant"] == "auto=expand"
  cross = got[("cross", "fwd+bwd", "ceiling")]
  assert cross["needed"] == pytest.approx(0.8 * 6 / 9)
  assert not cross["pass"] and cross["best_pass"]
  assert cross["best_variant"] == "einsum"
  assert not got[("C", "fwd+bwd", "ceiling")]["pass"]
  m4r = got[("M4R", "fwd", "m4r_dense_time")]
  assert m4r["value"] == pytest.approx(1.31) and not m4r["pass"]
  assert m4r["best_value"] == pytest.approx(1.2) and m4r["best_pass"]
  assert got[("M4R", "fwd+bwd", "m4r_dense_time")]["pass"]
  text = bench_kernels.targets_tables(tgts)
  assert "| dual | PASS (1/1; worst 0.61 vs 0.60) |" in text
  assert "| C |  | FAIL (0/1; worst 0.79 vs 0.80) |" in text
  assert "| s | fwd | fold | 1.31 | FAIL | fold_persistent | 1.20 | PASS |" in (
      text
  )
  assert bench_kernels.ceiling_fraction(algebras.get("M2C")) == 1.0
  assert bench_kernels.ceiling_fraction(algebras.get("H")) == 1.0


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
  with pytest.raises(ValueError, match="Unknown op 'conv5x5'"):
    bench_kernels.make_problem(
        algebras.get("C"), bench_kernels.Case("conv5x5", "t", 4, 4)
    )


def test_full_size_is_the_documented_subset():
  full = bench_kernels._SIZES["full"]
  dense = [(c.tokens, c.real_in) for c in full if c.op == "dense"]
  assert dense == [(1024, 512), (1024, 1024)]
  s1 = [(c.batch, c.hw, c.real_in) for c in full if c.op == "conv3x3"]
  assert s1 == [(8, 56, 64), (8, 14, 256), (8, 7, 512)]
  s2 = [(c.batch, c.hw, c.real_in) for c in full if c.op == "conv3x3_s2"]
  assert s2 == [(8, 56, 128), (8, 14, 512)]
  dw = [(c.batch, c.hw, c.real_in) for c in full if c.op == "dw3x3"]
  assert dw == [(8, 14, 512)]
  assert all(not c.cpu_grouped_grads for c in full if c.op == "dw3x3")


def test_time_interleaved_and_bad_args(capsys):
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
  assert "unknown --ops ['conv5x5']" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    bench_kernels.parse_args(["--algebras=Q"])
  assert "'Q'" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    bench_kernels.parse_args(["--modes=bwd"])
  assert "unknown --modes ['bwd']" in capsys.readouterr().err
  args = bench_kernels.parse_args(["--quick", "--dw-grouped-grads"])
  assert args.size == "quick" and args.dw_grouped_grads
