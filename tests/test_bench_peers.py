"""bench.peers: conversions checked against our kernels with numpy float64
references of what each peer layer computes (no peers needed), the report
logic on synthetic timings, and a smoke run when .venv-peers exists."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from algebranets import kernels
from bench import peers

RNG = np.random.default_rng(0)


def hamilton(a, b):
  """Quaternion product a b, components (1, i, j, k), broadcasting."""
  a0, a1, a2, a3 = np.moveaxis(a, -1, 0)
  b0, b1, b2, b3 = np.moveaxis(b, -1, 0)
  return np.stack(
      [
          a0 * b0 - a1 * b1 - a2 * b2 - a3 * b3,
          a0 * b1 + a1 * b0 + a2 * b3 - a3 * b2,
          a0 * b2 - a1 * b3 + a2 * b0 + a3 * b1,
          a0 * b3 + a1 * b2 - a2 * b1 + a3 * b0,
      ],
      axis=-1,
  )


def _pad_taps(x_nchw_like, spatial_axes):
  """Zero padding 1 on the two spatial axes (torch `padding=1`)."""
  pad = [(0, 0)] * x_nchw_like.ndim
  for ax in spatial_axes:
    pad[ax] = (1, 1)
  return np.pad(x_nchw_like, pad)


def _ours(x, w, algebra, op):
  x, w = np.asarray(x, np.float32), np.asarray(w, np.float32)
  if op == "dense":
    return np.asarray(kernels.dense(x, w, algebra))
  return np.asarray(kernels.conv2d(x, w, algebra, padding="SAME"))


def _close(ours, ref):
  np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


# ---- What each peer computes, written out in numpy (their layouts). ----


def clifford_dense_ref(x_t, theta, algebra):
  """cliffordlayers CliffordLinear: x [T, N, I], weight [I, M, N];
  y_o = sum_i x_i * W_oi (geometric product, x on the LEFT)."""
  t, n, _ = x_t.shape
  m = theta.shape[1]
  y = np.zeros((t, m, theta.shape[0]))
  for o in range(m):
    for i in range(n):
      wq = theta[:, o, i]
      if algebra == "H":
        y[:, o] += hamilton(x_t[:, i], wq)
      else:  # C: (a + b e1)(c + d e1), e1^2 = -1
        z = (x_t[:, i, 0] + 1j * x_t[:, i, 1]) * (wq[0] + 1j * wq[1])
        y[:, o] += np.stack([z.real, z.imag], -1)
  return y


def clifford_conv_ref(x_t, theta):
  """CliffordConv2d (g=[-1,-1]): x [B, C, H, W, 4], weights [4, M, C, 3, 3]."""
  b, c, h, w, _ = x_t.shape
  m = theta.shape[1]
  xp = _pad_taps(x_t, (2, 3))
  y = np.zeros((b, m, h, w, 4))
  for o in range(m):
    for i in range(c):
      for dy in range(3):
        for dx in range(3):
          y[:, o] += hamilton(
              xp[:, i, dy : dy + h, dx : dx + w], theta[:, o, i, dy, dx]
          )
  return y


def hck_dense_ref(x_t, kernel):
  """HyperDenseTorch: x [T, 4N] component-major, kernel [4, N, U];
  y_u = sum_n x_n * K_nu, written component-major [T, 4U]."""
  t = x_t.shape[0]
  n, u = kernel.shape[1:]
  y = np.zeros((t, 4 * u))
  for uu in range(u):
    acc = np.zeros((t, 4))
    for nn in range(n):
      xq = np.stack([x_t[:, k * n + nn] for k in range(4)], -1)
      acc += hamilton(xq, kernel[:, nn, uu])
    for k in range(4):
      y[:, k * u + uu] = acc[:, k]
  return y


def hck_conv_ref(x_t, kernel):
  """HyperConv2DTorchTF: x NHWC [B, H, W, 4C] component-major, kernel
  [4, 3, 3, C, M], padding 1; output [B, H, W, 4M] component-major."""
  b, h, w, _ = x_t.shape
  c, m = kernel.shape[3:]
  xp = _pad_taps(x_t, (1, 2))
  y = np.zeros((b, h, w, 4 * m))
  for o in range(m):
    acc = np.zeros((b, h, w, 4))
    for i in range(c):
      for dy in range(3):
        for dx in range(3):
          patch = xp[:, dy : dy + h, dx : dx + w]
          xq = np.stack([patch[..., k * c + i] for k in range(4)], -1)
          acc += hamilton(xq, kernel[:, dy, dx, i, o])
    for k in range(4):
      y[..., k * m + o] = acc[..., k]
  return y


def complex_dense_ref(z, theta):
  """complexPyTorch / cplxmodule Linear: y = z W^T, W = Re + i Im [M, N]."""
  return z @ (theta[0] + 1j * theta[1]).T


def complex_conv_ref(z, theta):
  """Complex Conv2d, NCHW, weight [M, C, 3, 3] (cross-correlation), pad 1."""
  wc = theta[0] + 1j * theta[1]
  b, _, h, w = z.shape
  zp = _pad_taps(z, (2, 3))
  y = np.zeros((b, wc.shape[0], h, w), complex)
  for dy in range(3):
    for dx in range(3):
      y += np.einsum(
          "bchw,mc->bmhw", zp[:, :, dy : dy + h, dx : dx + w], wc[..., dy, dx]
      )
  return y


def matrix_dense_ref(x_t, theta, n):
  """Re-implementations (component-major [T, d*N], weights [d, M, N]) for
  M_n(R): y_m = sum_k W_km X_k with n x n row-major matrices, weight LEFT."""
  d = n * n
  t, dn = x_t.shape
  big_n = dn // d
  m = theta.shape[1]
  xm = np.stack([x_t[:, j * big_n : (j + 1) * big_n] for j in range(d)], -1)
  xm = xm.reshape(t, big_n, n, n)
  wm = theta.transpose(2, 1, 0).reshape(big_n, m, n, n)  # [N, M, n, n]
  y = np.einsum("kmab,tkbc->tmac", wm, xm).reshape(t, m, d)
  return np.concatenate([y[..., k] for k in range(d)], axis=-1)


def matrix_conv_ref(x_t, theta, n):
  """Re-implementations, conv: NCHW [B, d*C, H, W], weights [d, M, C, 3, 3]."""
  d = n * n
  b, dc, h, w = x_t.shape
  c = dc // d
  m = theta.shape[1]
  xp = _pad_taps(x_t, (2, 3))
  y = np.zeros((b, d * m, h, w))
  for dy in range(3):
    for dx in range(3):
      patch = xp[:, :, dy : dy + h, dx : dx + w]
      xm = np.stack([patch[:, j * c : (j + 1) * c] for j in range(d)], -1)
      xm = xm.reshape(b, c, h, w, n, n)
      wm = theta[..., dy, dx].transpose(2, 1, 0).reshape(c, m, n, n)
      ym = np.einsum("cmar,zchwrq->zmhwaq", wm, xm)
      ym = ym.reshape(b, m, h, w, d)
      for k in range(d):
        y[:, k * m : (k + 1) * m] += ym[..., k]
  return y


# ---- Conversion tests. ----


def _x(op, c, d, rng=RNG):
  shape = (3, c, d) if op == "dense" else (2, 4, 5, c, d)
  return rng.standard_normal(shape)


@pytest.mark.parametrize("algebra", ["C", "H"])
def test_cliffordlayers_dense_conversion(algebra):
  d = {"C": 2, "H": 4}[algebra]
  conv = peers.PEERS_BY_KEY["clifford_linear"].convention
  x, theta = _x("dense", 3, d), RNG.standard_normal((d, 2, 3))
  y_t = clifford_dense_ref(conv.to_peer(x, "dense", algebra), theta, algebra)
  w = conv.weight_to_ours(theta, "dense", algebra)
  assert w.shape == (3, 2, d)
  _close(
      _ours(x, w, algebra, "dense"),
      conv.from_peer(y_t, "dense", algebra, d),
  )


def test_cliffordlayers_conv_conversion():
  conv = peers.PEERS_BY_KEY["clifford_conv2d"].convention
  x, theta = _x("conv3x3", 2, 4), RNG.standard_normal((4, 3, 2, 3, 3))
  x_t = conv.to_peer(x, "conv3x3", "H")
  assert x_t.shape == (2, 2, 4, 5, 4)  # [B, C, H, W, I]
  y_t = clifford_conv_ref(x_t, theta)
  w = conv.weight_to_ours(theta, "conv3x3", "H")
  assert w.shape == (3, 3, 2, 3, 4)
  _close(_ours(x, w, "H", "conv3x3"), conv.from_peer(y_t, "conv3x3", "H", 4))


def test_hypercomplexkeras_conversions():
  conv = peers.PEERS_BY_KEY["hck_dense"].convention
  x, kernel = _x("dense", 3, 4), RNG.standard_normal((4, 3, 2))
  x_t = conv.to_peer(x, "dense", "H")
  assert x_t.shape == (3, 12)
  y_t = hck_dense_ref(x_t, kernel)
  w = conv.weight_to_ours(kernel, "dense", "H")
  _close(_ours(x, w, "H", "dense"), conv.from_peer(y_t, "dense", "H", 4))

  conv = peers.PEERS_BY_KEY["hck_conv2d"].convention
  x, kernel = _x("conv3x3", 2, 4), RNG.standard_normal((4, 3, 3, 2, 3))
  x_t = conv.to_peer(x, "conv3x3", "H")
  assert x_t.shape == (2, 4, 5, 8)  # NHWC, component-major channels
  y_t = hck_conv_ref(x_t, kernel)
  w = conv.weight_to_ours(kernel, "conv3x3", "H")
  _close(_ours(x, w, "H", "conv3x3"), conv.from_peer(y_t, "conv3x3", "H", 4))


def test_right_multiplication_needs_the_conjugation():
  # Without the conjugation the H peers do NOT match ours (x w != w x):
  # this is what the Convention's right_multiplication flag fixes.
  wrong = peers.Convention("blade_last")
  x, theta = _x("dense", 3, 4), RNG.standard_normal((4, 2, 3))
  y_t = clifford_dense_ref(wrong.to_peer(x, "dense", "H"), theta, "H")
  w = wrong.weight_to_ours(theta, "dense", "H")
  diff = _ours(x, w, "H", "dense") - wrong.from_peer(y_t, "dense", "H", 4)
  assert np.abs(diff).max() > 0.1
  # For the commutative C the flag changes nothing.
  right = peers.Convention("blade_last", right_multiplication=True)
  xc = _x("dense", 3, 2)
  np.testing.assert_array_equal(
      right.to_peer(xc, "dense", "C"), wrong.to_peer(xc, "dense", "C")
  )


@pytest.mark.parametrize(
    "key", ["complexpytorch_linear", "cplx_linear", "cplx_linear_3m"]
)
def test_complex_dense_conversion(key):
  conv = peers.PEERS_BY_KEY[key].convention
  x, theta = _x("dense", 3, 2), RNG.standard_normal((2, 4, 3))
  z = conv.to_peer(x, "dense", "C")
  assert np.iscomplexobj(z) and z.shape == (3, 3)
  y_t = complex_dense_ref(z, theta)
  w = conv.weight_to_ours(theta, "dense", "C")
  _close(_ours(x, w, "C", "dense"), conv.from_peer(y_t, "dense", "C", 2))


@pytest.mark.parametrize("key", ["complexpytorch_conv2d", "cplx_conv2d"])
def test_complex_conv_conversion(key):
  conv = peers.PEERS_BY_KEY[key].convention
  x, theta = _x("conv3x3", 3, 2), RNG.standard_normal((2, 2, 3, 3, 3))
  z = conv.to_peer(x, "conv3x3", "C")
  assert z.shape == (2, 3, 4, 5)  # complex NCHW
  y_t = complex_conv_ref(z, theta)
  w = conv.weight_to_ours(theta, "conv3x3", "C")
  _close(_ours(x, w, "C", "conv3x3"), conv.from_peer(y_t, "conv3x3", "C", 2))


@pytest.mark.parametrize("algebra,n", [("M2R", 2), ("M3R", 3)])
def test_reimplementation_conversions(algebra, n):
  d = n * n
  conv = peers.PEERS_BY_KEY["reimpl_be"].convention
  x, theta = _x("dense", 2, d), RNG.standard_normal((d, 3, 2))
  y_t = matrix_dense_ref(conv.to_peer(x, "dense", algebra), theta, n)
  w = conv.weight_to_ours(theta, "dense", algebra)
  _close(
      _ours(x, w, algebra, "dense"), conv.from_peer(y_t, "dense", algebra, d)
  )
  x, theta = _x("conv3x3", 2, d), RNG.standard_normal((d, 2, 2, 3, 3))
  x_t = conv.to_peer(x, "conv3x3", algebra)
  assert x_t.shape == (2, 2 * d, 4, 5)
  y_t = matrix_conv_ref(x_t, theta, n)
  w = conv.weight_to_ours(theta, "conv3x3", algebra)
  _close(
      _ours(x, w, algebra, "conv3x3"),
      conv.from_peer(y_t, "conv3x3", algebra, d),
  )


@pytest.mark.parametrize(
    "layout", ["blade_last", "complex", "hck", "component_major"]
)
@pytest.mark.parametrize("op", peers.OPS)
def test_activation_layouts_round_trip(layout, op):
  algebra, d = ("C", 2) if layout == "complex" else ("H", 4)
  conv = peers.Convention(layout, right_multiplication=layout != "complex")
  x = _x(op, 3, d)
  back = conv.from_peer(conv.to_peer(x, op, algebra), op, algebra, d)
  np.testing.assert_array_equal(back, x)


def test_conversion_errors():
  with pytest.raises(ValueError, match="No weight-on-the-right conversion"):
    peers.conj_if_needed(np.zeros((2, 4)), "M2R")
  with pytest.raises(ValueError, match="Unknown layout 'nhwc'; valid"):
    peers.Convention("nhwc")
  with pytest.raises(ValueError, match="Unknown op 'conv5x5'"):
    peers.Convention("hck").to_peer(np.zeros((1, 2, 4)), "conv5x5", "H")


# ---- Peers table, shapes, setup checks. ----


def test_peer_table():
  assert {p.key for p in peers.peers_for("C", "dense")} == {
      "clifford_linear",
      "complexpytorch_linear",
      "cplx_linear",
      "cplx_linear_cat",
      "cplx_linear_3m",
  }
  assert {p.key for p in peers.peers_for("H", "conv3x3")} == {
      "clifford_conv2d",
      "hck_conv2d",
  }
  assert {p.key for p in peers.peers_for("M4R", "conv3x3")} == {
      "reimpl_be",
      "reimpl_loop",
  }
  for p in peers.PEERS:
    assert set(p.algebras) <= set(peers.ALGEBRA_DIMS), p
    assert p.same_path == ("expand" if p.algorithm.startswith("be") else None)
  # MACs per pair: BE of M2R is n=2 times the intrinsic 8, 3M is 3/4 of C's.
  be, loop = peers.PEERS_BY_KEY["reimpl_be"], peers.PEERS_BY_KEY["reimpl_loop"]
  assert peers.peer_macs_per_pair(be, 4, 8) == 16
  assert peers.peer_macs_per_pair(loop, 4, 8) == 8
  gauss = peers.PEERS_BY_KEY["cplx_linear_3m"]
  assert peers.peer_macs_per_pair(gauss, 2, 4) == 3
  assert peers.ours_macs_per_pair("fold", 16, 64) == 64


def test_problem_shapes():
  case = peers.Case("conv3x3", "t", 64, 64, batch=2, hw=14)
  s = peers.problem_shapes(case, 4)
  assert s["x_shape"] == [2, 14, 14, 16, 4]
  assert s["w_shape"] == [3, 3, 16, 16, 4]
  assert s["pairs"] == 2 * 14 * 14 * 9 * 16 * 16
  assert s["real_shape"] == "B=2 14x14 64->64"
  s = peers.problem_shapes(peers.Case("dense", "t", 256, 256, tokens=8), 2)
  assert s["x_shape"] == [8, 128, 2] and s["real_shape"] == "T=8 256->256"


def test_check_torch_version():
  peers.check_torch_version("2.13.0+cpu")
  peers.check_torch_version("2.13.0")
  for bad in ("2.15.0", None):
    with pytest.raises(RuntimeError, match=r"expected 2\.13\.0"):
      peers.check_torch_version(bad)


def test_setup_installs_torch_first_and_checks_it(monkeypatch, tmp_path):
  calls = []
  monkeypatch.setattr(
      peers, "_run", lambda cmd: calls.append([str(c) for c in cmd])
  )
  versions = {"torch": "2.13.0+cpu"}
  monkeypatch.setattr(
      peers, "installed_version", lambda py, dist: versions.get(dist, "1.0")
  )
  venv = tmp_path / "v"
  peers.setup(venv)
  py = str(peers.venv_python(venv))
  assert calls[0][1:4] == ["-m", "venv", str(venv)]
  assert calls[1] == [
      py,
      "-m",
      "pip",
      "install",
      "torch==2.13.0",
  ]
  assert calls[2][-1].endswith("[peers]") and calls[2][3:5] == ["install", "-e"]
  assert "import torch, cliffordlayers" in calls[3][-1]
  # A peer that replaced torch is reported, naming the fix.
  versions["torch"] = "2.15.0"
  with pytest.raises(
      RuntimeError, match=r"torch in the peers venv is 2\.15\.0"
  ):
    peers.setup(venv)


def test_installed_version_reads_the_environment():
  import sys

  assert peers.installed_version(sys.executable, "numpy") == np.__version__
  assert peers.installed_version(sys.executable, "no-such-dist-xyz") is None


def test_format_environment():
  env = {
      "machine": {
          "cpu_model": "AMD EPYC",
          "usable_cores": 1,
          "cpu_count": 2,
          "load_average": [1.0, 2.0, 3.0],
          "backend": "cpu",
          "device_kind": "cpu",
          "python": "3.11.7",
          "platform": "Linux",
          "timestamp": "now",
      },
      "threads": {
          "requested": 1,
          "torch_intra_op": 1,
          "torch_inter_op": 2,
          "xla_affinity": 1,
          "affinity": [0],
          "xla_flags": "",
      },
      "versions": {"torch": "2.13.0+cpu", "jax": "0.10.2"},
  }
  text = peers.format_environment(env)
  assert "1 usable of 2 cores; load average 1.00 2.00 3.00" in text
  assert "torch.get_num_threads()=1 (inter-op 2)" in text
  assert "XLA:CPU pool = CPU affinity = 1 cores [0]" in text
  assert "versions: torch 2.13.0+cpu, jax 0.10.2" in text


# ---- Reporting on synthetic worker output. ----


def _row(variant, mode, ms, **kw):
  return {
      "algebra": "M2R",
      "d": 4,
      "macs_per_product": 8,
      "op": "dense",
      "case": "t",
      "shape": "T=8 4->4",
      "real_shape": "T=8 16->16",
      "mode": mode,
      "variant": variant,
      "ms_median": ms,
      **kw,
  }


def _rows(mode="fwd"):
  return [
      _row("ours:auto", mode, 1.0, path="fold"),
      _row("ours:expand", mode, 1.5, path="expand"),
      _row("real:jax", mode, 2.0),
      _row("real:torch", mode, 4.0),
      _row("reimpl_be", mode, 3.0, agrees=True, max_rel_err=1e-7),
      _row("reimpl_loop", mode, 0.5, agrees=True, max_rel_err=1e-7),
  ]


def test_comparisons_and_notes():
  comps = peers.comparisons(_rows())
  by = {c["peer"]: c for c in comps}
  be, loop = by["reimpl_be"], by["reimpl_loop"]
  assert be["ratio"] == pytest.approx(1 / 3)
  assert be["same_ratio"] == pytest.approx(0.5)
  assert loop["same_ratio"] is None and loop["ratio"] == pytest.approx(2.0)
  assert (be["target_met"], loop["target_met"]) == (True, False)
  assert be["target"] == "faster than BE for M_n(R)"
  assert be["peer_macs_per_pair"] == 16 and be["ours_macs_per_pair"] == 8
  # The notes decompose the ratio: (1/2) x (2/4) / (3/4) = 1/3.
  assert "ours 0.50x real-JAX (fold: 8 of 16 MACs/pair" in be["notes"]
  assert "JAX/torch 0.50" in be["notes"]
  assert "theirs 0.75x real-torch (16 MACs/pair, 1 op)" in be["notes"]
  assert "ours path=expand 0.50x theirs" in be["notes"]
  assert "(8 MACs/pair, 8 ops)" in loop["notes"]  # n^3 launches for M2R
  text = peers.tables({"comparisons": comps})
  assert "| M2R | dense | T=8 4->4 [real 16->16] | fwd |" in text
  assert "| 0.33 | 0.50 |" in text
  assert "**missed**" in text  # the loop target


def test_comparison_statistic_and_noise_flag():
  rows = _rows()
  for r in rows:
    r.update(
        ms_min=r["ms_median"] / 2, ms_q25=r["ms_median"], ms_q75=r["ms_median"]
    )
  rows[4].update(ms_min=0.25, ms_q25=2.0, ms_q75=4.0)  # IQR 67% of 3.0
  by = {c["peer"]: c for c in peers.comparisons(rows, "min")}
  assert by["reimpl_be"]["ratio"] == pytest.approx(0.5 / 0.25)
  assert "noisy: IQR 67% of the median" in by["reimpl_be"]["notes"]
  assert "noisy" not in by["reimpl_loop"]["notes"]
  text = peers.tables(
      {"comparisons": list(by.values()), "config": {"stat": "min"}}
  )
  assert "theirs ms (min)" in text
  with pytest.raises(ValueError, match="Unknown stat 'mean'"):
    peers.comparisons(rows, "mean")


def test_disagreeing_peer_is_not_timed():
  rows = _rows()
  rows[4] = _row(
      "reimpl_be", "fwd", None, agrees=False, error="max relative error 1e-1"
  )
  rows[4].pop("ms_median")
  c = next(c for c in peers.comparisons(rows) if c["peer"] == "reimpl_be")
  assert c["ratio"] is None and c["target_met"] is None
  assert c["notes"] == "NOT TIMED: max relative error 1e-1"
  assert "| not timed |" in peers.tables({"comparisons": [c]})


def test_parse_args_and_missing_venv(tmp_path):
  args = peers.parse_args(["--quick"])
  assert args.size == "quick" and args.algebras == ("C", "H", "M2R", "M4R")
  assert args.repeats == 5 and args.threads >= 1
  cfg = peers.worker_config(args)
  assert len(cfg["problems"]) == 8  # 4 algebras x (dense, conv3x3)
  assert cfg["problems"][0]["peers"][0] == "clifford_linear"
  for bad in (["--algebras=Q"], ["--ops=dense,conv5x5"], ["--threads=999"]):
    with pytest.raises(SystemExit):
      peers.parse_args(bad)
  with pytest.raises(SystemExit, match=r"--setup"):
    peers.main(["--size=tiny", f"--venv={tmp_path / 'none'}"])


# ---- Smoke run of the real thing (needs .venv-peers). ----


@pytest.mark.skipif(
    not peers.venv_python().exists(),
    reason=f"no {peers.VENV} (create it with `python -m bench.peers --setup`)",
)
def test_smoke_run_with_peers(tmp_path, capsys):
  out = tmp_path / "peers.json"
  results = peers.main(
      [
          "--size=tiny",
          "--repeats=1",
          "--min-sample-ms=0.05",
          "--threads=1",
          f"--out={out}",
      ]
  )
  printed = capsys.readouterr().out
  assert "## Ours vs peers" in printed and "torch.get_num_threads()" in printed
  data = json.loads(out.read_text())
  assert data["environment"]["versions"]["torch"].startswith("2.13.0")
  threads = data["environment"]["threads"]
  # One thread each: torch's setting and the affinity XLA sizes its pool by.
  assert threads["torch_intra_op"] == threads["xla_affinity"] == 1
  assert len(threads["affinity"]) == 1
  assert all(c["agrees"] for c in data["checks"]), data["checks"]
  # Every peer of the tiny algebras (C, H, M2R) ran, in both modes.
  assert {c["peer"] for c in results["comparisons"]} == {
      p.key for p in peers.PEERS
  }
  for c in results["comparisons"]:
    assert math.isfinite(c["ratio"]) and c["ratio"] > 0
    assert c["notes"]
