"""Worker of `python -m bench.peers`: runs inside .venv-peers.

    .venv-peers/bin/python -m bench.peers_worker CONFIG.json OUT.json

Imports PyTorch, the peer packages, JAX and algebranets in ONE process, so
every variant is timed in the same interleaved rounds. The config comes from
`bench.peers.worker_config`; see bench/peers.py for the protocol. Shapes are
in our layout unless a name ends in `_t` (theirs).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bench import peers as spec


def pin_threads(n: int) -> list[int]:
  """Restrict this process to n of its usable cores.

  Must run before JAX starts its CPU client: XLA:CPU sizes its intra-op
  thread pool from the affinity mask (there is no other knob), and
  torch.set_num_threads alone would leave the two frameworks unequal.
  """
  usable = sorted(os.sched_getaffinity(0))
  if n < len(usable):
    os.sched_setaffinity(0, usable[:n])
  return sorted(os.sched_getaffinity(0))


@dataclasses.dataclass
class TorchLayer:
  """A peer layer seen through lists of torch tensors.

  fn: inputs -> outputs (lists; complexPyTorch uses one complex tensor,
    cplxmodule a (real, imag) pair, the others one real tensor).
  params: trainable parameters (gradients are taken w.r.t. all of them).
  weights: indices into params of the weights that `theta_of` reads; the
    others (zeroed biases) get no perturbation in the gradient check.
  theta_of: list of param arrays -> the weight in the Convention's layout.
  to_torch / from_torch: peer-layout numpy <-> list of tensors.
  """

  fn: Callable[[list], list]
  params: list
  weights: list[int]
  theta_of: Callable[[list[np.ndarray]], np.ndarray]
  to_torch: Callable[..., list]
  from_torch: Callable[[Sequence], np.ndarray]


def build_peer(key: str, alg, op: str, c_in: int, c_out: int, x_shape_t):
  """Construct peer `key` for algebra `alg` with its own initialisation."""
  import torch
  import torch.nn.functional as F  # noqa: N812 (torch convention)

  real_io = _real_io(torch)
  if key == "clifford_linear":
    from cliffordlayers.nn.modules.cliffordlinear import CliffordLinear

    g = {"C": [-1.0], "H": [-1.0, -1.0]}[alg.name]
    layer = CliffordLinear(g, c_in, c_out, bias=True)  # bias=False crashes
    torch.nn.init.zeros_(layer.bias)
    return TorchLayer(
        lambda xs: [layer(xs[0])],
        [layer.weight, layer.bias],
        [0],
        lambda ps: ps[0],
        *real_io,
    )
  if key == "clifford_conv2d":
    from cliffordlayers.nn.modules.cliffordconv import CliffordConv2d

    layer = CliffordConv2d(
        [-1.0, -1.0], c_in, c_out, kernel_size=3, padding=1, bias=False
    )
    params = list(layer.weight)
    return TorchLayer(
        lambda xs: [layer(xs[0])],
        params,
        list(range(len(params))),
        np.stack,
        *real_io,
    )
  if key == "hck_dense":
    from HypercomplexKeras import Algebra
    from HypercomplexKeras.HyperdenseTorch import HyperDenseTorch

    layer = HyperDenseTorch(
        c_out,
        (alg.dim * c_in,),
        use_bias=False,
        algebra=Algebra.Quaternions,
    )
    return TorchLayer(
        lambda xs: [layer(xs[0])],
        [layer.kernel],
        [0],
        lambda ps: ps[0],
        *real_io,
    )
  if key == "hck_conv2d":
    from HypercomplexKeras import Algebra
    from HypercomplexKeras.experimental.ExperimentalHyperConvolutionalTorch import (
        HyperConv2DTorchTF,
    )

    layer = HyperConv2DTorchTF(
        input_shape=tuple(x_shape_t),
        filters=c_out,
        kernel_size=(3, 3),
        strides=1,
        padding=1,
        use_bias=False,
        algebra=Algebra.Quaternions,
    )
    return TorchLayer(
        lambda xs: [layer(xs[0])],
        [layer.kernel],
        [0],
        lambda ps: ps[0],
        *real_io,
    )
  if key in ("complexpytorch_linear", "complexpytorch_conv2d"):
    from complexPyTorch import complexLayers

    if key == "complexpytorch_linear":
      layer = complexLayers.ComplexLinear(c_in, c_out)
      re, im = layer.fc_r, layer.fc_i
      # No bias=False option: zero both biases (still added every call).
      torch.nn.init.zeros_(re.bias)
      torch.nn.init.zeros_(im.bias)
      params = [re.weight, im.weight, re.bias, im.bias]
    else:
      layer = complexLayers.ComplexConv2d(c_in, c_out, 3, 1, 1, bias=False)
      params = [layer.conv_r.weight, layer.conv_i.weight]
    return TorchLayer(
        lambda xs: [layer(xs[0])],
        params,
        [0, 1],
        lambda ps: np.stack([ps[0], ps[1]]),
        lambda a, grad=False: [
            torch.tensor(a.astype(np.complex64), requires_grad=grad)
        ],
        lambda ts: ts[0].detach().numpy(),
    )
  if key.startswith("cplx_"):
    from cplxmodule import cplx
    from cplxmodule import nn as cnn

    if "linear" in key:
      layer = cnn.CplxLinear(c_in, c_out, bias=False)
      fn = {
          "cplx_linear": lambda x: layer(x),
          "cplx_linear_cat": lambda x: cplx.linear_cat(x, layer.weight),
          "cplx_linear_3m": lambda x: cplx.linear_3m(x, layer.weight),
      }[key]
    else:
      layer = cnn.CplxConv2d(c_in, c_out, 3, stride=1, padding=1, bias=False)
      conv = {
          "cplx_conv2d": None,
          "cplx_conv2d_naive": cplx.convnd_naive,
          "cplx_conv2d_3m": cplx.convnd_3m,
      }[key]
      if conv is None:
        fn = layer  # groups=1: the module uses cplx.convnd_quick
      else:
        fn = _partial_conv(conv, F.conv2d, layer)
    named = dict(layer.named_parameters())
    params = [named["weight.real"], named["weight.imag"]]

    def run(xs, fn=fn):
      y = fn(cplx.Cplx(xs[0], xs[1]))
      return [y.real, y.imag]

    return TorchLayer(
        run,
        params,
        [0, 1],
        lambda ps: np.stack([ps[0], ps[1]]),
        lambda a, grad=False: [
            torch.tensor(a.real.astype(np.float32), requires_grad=grad),
            torch.tensor(a.imag.astype(np.float32), requires_grad=grad),
        ],
        lambda ts: ts[0].detach().numpy() + 1j * ts[1].detach().numpy(),
    )
  if key in ("reimpl_be", "reimpl_loop"):
    return _reimplementation(key, alg, op, c_in, c_out, torch, F, real_io)
  raise ValueError(
      f"Unknown peer {key!r}; valid: {', '.join(spec.PEERS_BY_KEY)}."
  )


def _partial_conv(conv, conv_fn, layer):
  return lambda x: conv(conv_fn, x, layer.weight, stride=1, padding=1)


def _real_io(torch):
  to_torch = lambda a, grad=False: [  # noqa: E731
      torch.tensor(np.ascontiguousarray(a, np.float32), requires_grad=grad)
  ]
  from_torch = lambda ts: ts[0].detach().numpy()  # noqa: E731
  return to_torch, from_torch


def _reimplementation(key, alg, op, c_in, c_out, torch, F, real_io):
  """Our PyTorch re-implementations of the peers' algorithms for any
  algebra (used for M_n(R), which no installed package offers).

  Parameters follow GeneralAlgebraNets: d component tensors [M, N] (conv
  [M, C, 3, 3]); activations component-major ([T, d*N], NCHW [B, d*C, H,
  W]).
  """
  c = alg.structure_constants
  d = alg.dim
  shape = (c_out, c_in) if op == "dense" else (c_out, c_in, 3, 3)
  comps = torch.nn.ParameterList(
      [torch.nn.Parameter(torch.empty(shape)) for _ in range(d)]
  )
  for p in comps:
    torch.nn.init.kaiming_uniform_(p, a=5**0.5)
  nonzero = [
      (i, j, k, float(c[i, j, k]))
      for i, j, k in zip(*np.nonzero(c), strict=True)
  ]
  if op == "dense":
    apply = F.linear
  else:
    apply = lambda x, w: F.conv2d(x, w, padding=1)  # noqa: E731

  if key == "reimpl_be":

    def fn(xs):
      # GeneralAlgebraNets' expand_matrix: rows of blocks joined by
      # torch.cat; block (k, j) = sum_i c_ijk w_i (structural zeros kept).
      zero = torch.zeros_like(comps[0])
      blocks = [[zero] * d for _ in range(d)]
      for i, j, k, s in nonzero:
        term = comps[i] if s == 1 else s * comps[i]
        blocks[k][j] = term if blocks[k][j] is zero else blocks[k][j] + term
      w = torch.cat([torch.cat(row, dim=1) for row in blocks], dim=0)
      return [apply(xs[0], w)]

  else:

    def fn(xs):
      x = xs[0]
      parts = [x[:, j * c_in : (j + 1) * c_in] for j in range(d)]
      ys = [None] * d
      for i, j, k, s in nonzero:
        term = apply(parts[j], comps[i])
        term = term if s == 1 else s * term
        ys[k] = term if ys[k] is None else ys[k] + term
      return [torch.cat(ys, dim=1)]

  params = list(comps)
  return TorchLayer(fn, params, list(range(d)), np.stack, *real_io)


# --------------------------------------------------------------------------


def _ours(alg, op, path):
  from algebranets import kernels

  if op == "dense":
    return lambda x, w: kernels.dense(x, w, alg, path=path)
  return lambda x, w: kernels.conv2d(x, w, alg, padding="SAME", path=path)


def _jax_modes(fn):
  import jax

  def fwd_bwd(x, w, ct):
    _, vjp = jax.vjp(fn, x, w)
    return vjp(ct)

  return {"fwd": jax.jit(fn), "fwd+bwd": jax.jit(fwd_bwd)}


def _rel(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))


def check_peer(layer, conv, alg, op, x, ct, rng) -> dict[str, float]:
  """Relative errors of the peer against ours: output, input gradient, and
  the derivative along a random perturbation of its weights."""
  import jax
  import torch

  d = alg.dim
  theta = layer.theta_of([p.detach().numpy() for p in layer.params])
  w = conv.weight_to_ours(theta, op, alg.name)
  inputs = layer.to_torch(conv.to_peer(x, op, alg.name), grad=True)
  ys = layer.fn(inputs)
  y_peer = conv.from_peer(layer.from_torch(ys), op, alg.name, d)
  f = _ours(alg, op, "auto")
  y, vjp = jax.vjp(f, x, w.astype(np.float32))
  dx, dw = (np.asarray(g) for g in vjp(ct))
  cts = layer.to_torch(conv.to_peer(ct, op, alg.name))
  grads = torch.autograd.grad(ys, inputs + layer.params, cts)
  dx_peer = conv.from_peer(
      layer.from_torch(list(grads[: len(inputs)])), op, alg.name, d
  )
  g_params = [g.numpy() for g in grads[len(inputs) :]]
  deltas = [np.zeros_like(g) for g in g_params]
  for i in layer.weights:
    deltas[i] = rng.standard_normal(deltas[i].shape)
  delta_w = conv.weight_to_ours(layer.theta_of(deltas), op, alg.name)
  lhs = sum(
      float(np.vdot(g, dl)) for g, dl in zip(g_params, deltas, strict=True)
  )
  rhs = float(np.vdot(dw.astype(np.float64), delta_w))
  scale = float(np.linalg.norm(dw) * np.linalg.norm(delta_w)) or 1.0
  return {
      "err_y": _rel(y, y_peer),
      "err_dx": _rel(dx, dx_peer),
      "err_dw": abs(lhs - rhs) / scale,
  }


def _torch_modes(layer, x_t):
  import torch

  plain = layer.to_torch(x_t)
  req = layer.to_torch(x_t, grad=True)
  ys = layer.fn(req)
  cts = [torch.randn_like(y) for y in ys]

  def fwd():
    with torch.no_grad():
      return layer.fn(plain)

  def fwd_bwd():
    out = layer.fn(req)
    return torch.autograd.grad(out, req + layer.params, cts)

  return {"fwd": fwd, "fwd+bwd": fwd_bwd}


def _real_baselines(prob, rng):
  """A real JAX op and a real torch op of the block-expanded size."""
  import jax.numpy as jnp
  import torch
  import torch.nn.functional as F  # noqa: N812 (torch convention)
  from jax import lax

  d = prob["x_shape"][-1]
  c_in, c_out = prob["w_shape"][-3], prob["w_shape"][-2]
  k_in, k_out = d * c_in, d * c_out
  scale = k_in**-0.5
  if prob["case"]["op"] == "dense":
    t = prob["x_shape"][0]
    x = rng.standard_normal((t, k_in)).astype(np.float32)
    w = (scale * rng.standard_normal((k_in, k_out))).astype(np.float32)
    jfn = jnp.dot
    tx, tw = torch.tensor(x), torch.tensor(w.T.copy())
    tfn = F.linear
  else:
    b, h, wd = prob["x_shape"][:3]
    x = rng.standard_normal((b, h, wd, k_in)).astype(np.float32)
    w = (scale * rng.standard_normal((3, 3, k_in, k_out))).astype(np.float32)
    jfn = lambda x, w: lax.conv_general_dilated(  # noqa: E731
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    tx = torch.tensor(x.transpose(0, 3, 1, 2).copy())
    tw = torch.tensor(w.transpose(3, 2, 0, 1).copy())
    tfn = lambda x, w: F.conv2d(x, w, padding=1)  # noqa: E731
  jm = _jax_modes(jfn)
  y = np.asarray(jm["fwd"](x, w))
  ct = rng.standard_normal(y.shape).astype(np.float32)
  txr, twr = tx.clone().requires_grad_(True), tw.clone().requires_grad_(True)
  tct = torch.randn(tuple(tfn(tx, tw).shape))

  def torch_fwd():
    with torch.no_grad():
      return tfn(tx, tw)

  def torch_fwd_bwd():
    return torch.autograd.grad(tfn(txr, twr), [txr, twr], tct)

  return {
      "real:jax": {
          "fwd": lambda: jm["fwd"](x, w),
          "fwd+bwd": lambda: jm["fwd+bwd"](x, w, ct),
      },
      "real:torch": {"fwd": torch_fwd, "fwd+bwd": torch_fwd_bwd},
  }


def run_problem(prob, cfg, rng) -> tuple[list, list]:
  """Check every peer of one problem, then time all variants per mode."""
  import jax
  import jax.numpy as jnp

  from algebranets import algebras, kernels
  from bench import common

  alg = algebras.get(prob["algebra"])
  op = prob["case"]["op"]
  x_shape, w_shape = tuple(prob["x_shape"]), tuple(prob["w_shape"])
  c_in, c_out = w_shape[-3], w_shape[-2]
  x = rng.standard_normal(x_shape).astype(np.float32)
  w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[:-1]))).astype(
      np.float32
  )
  y_shape = jax.eval_shape(_ours(alg, op, "auto"), x, w).shape
  ct = rng.standard_normal(y_shape).astype(np.float32)
  choose = (
      kernels.choose_dense_path if op == "dense" else kernels.choose_conv_path
  )
  auto_path = choose(alg, x_shape, w_shape)
  base = {
      "algebra": alg.name,
      "d": alg.dim,
      "macs_per_product": alg.macs_per_product,
      "op": op,
      "case": prob["case"]["label"],
      "shape": prob["shape"],
      "real_shape": prob["real_shape"],
      "pairs": prob["pairs"],
  }
  checks, modes_fns, status = [], {}, {}
  for key in prob["peers"]:
    peer = spec.PEERS_BY_KEY[key]
    conv = peer.convention
    x_t = conv.to_peer(x, op, alg.name)
    try:
      layer = build_peer(key, alg, op, c_in, c_out, x_t.shape)
      errs = check_peer(layer, conv, alg, op, x, ct, rng)
      agrees = max(errs.values()) <= cfg["tolerance"]
      error = None if agrees else f"max relative error {max(errs.values()):.2e}"
      if agrees:
        modes_fns[key] = _torch_modes(layer, x_t)
    except Exception as e:  # a broken peer must not hide the others
      traceback.print_exc()
      errs, agrees, error = {}, False, f"{type(e).__name__}: {e}"
    status[key] = (agrees, max(errs.values()) if errs else None, error)
    checks.append(
        {**base, "peer": key, **errs, "agrees": agrees, "error": error}
    )
    print(
        f"  check {alg.name:>4} {op:<8} {key:<22} "
        + " ".join(f"{k}={v:.1e}" for k, v in errs.items())
        + ("" if agrees else f"  DISAGREES: {error}"),
        file=sys.stderr,
        flush=True,
    )
  paths = ["auto"]
  if auto_path != "expand" and any(
      spec.PEERS_BY_KEY[k].same_path == "expand" for k in prob["peers"]
  ):
    paths.append("expand")
  ours = {}
  xj, wj, ctj = jnp.asarray(x), jnp.asarray(w), jnp.asarray(ct)
  for p in paths:
    m = _jax_modes(_ours(alg, op, p))
    ours[f"ours:{p}"] = {
        "fwd": lambda m=m: m["fwd"](xj, wj),
        "fwd+bwd": lambda m=m: m["fwd+bwd"](xj, wj, ctj),
    }
  reals = _real_baselines(prob, rng)
  rows = []
  for mode in cfg["modes"]:
    fns = {name: v[mode] for name, v in {**ours, **reals, **modes_fns}.items()}
    timings = common.time_interleaved(
        fns,
        repeats=cfg["repeats"],
        min_sample_s=cfg["min_sample_s"],
        max_seconds=cfg["max_seconds"],
    )
    for name in [*ours, *reals, *prob["peers"]]:
      row = {**base, "mode": mode, "variant": name}
      if name.startswith("ours:"):
        p = name.split(":")[1]
        row["path"] = auto_path if p == "auto" else p
      if name in status:
        agrees, err, error = status[name]
        row.update(agrees=agrees, max_rel_err=err, error=error)
      if name in timings:
        row.update(timings[name].summary_ms())
      rows.append(row)
    summary = " ".join(
        f"{n}={timings[n].median * 1e3:.3g}" for n in fns if n in timings
    )
    print(
        f"{alg.name:>4} {op:<8} {prob['shape']:<22} {mode:<7} ms: {summary}",
        file=sys.stderr,
        flush=True,
    )
  return rows, checks


def environment(cfg, affinity) -> dict[str, Any]:
  import importlib.metadata as md

  import torch

  from bench import common

  versions = {}
  for dist in (
      "torch",
      "cliffordlayers",
      "hypercomplexkeras",
      "complexpytorch",
      "cplxmodule",
      "jax",
      "jaxlib",
      "numpy",
  ):
    try:
      versions[dist] = md.version(dist)
    except md.PackageNotFoundError:
      versions[dist] = None
  return {
      "machine": common.machine_info(),
      "threads": {
          "requested": cfg["threads"],
          "torch_intra_op": torch.get_num_threads(),
          "torch_inter_op": torch.get_num_interop_threads(),
          "xla_affinity": len(affinity),
          "affinity": affinity,
          "xla_flags": os.environ.get("XLA_FLAGS", ""),
      },
      "versions": versions,
  }


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    raise SystemExit(
        "usage: python -m bench.peers_worker CONFIG.json OUT.json (run "
        "`python -m bench.peers` instead)"
    )
  with open(argv[0]) as f:
    cfg = json.load(f)
  affinity = pin_threads(cfg["threads"])
  # Imported only now: both thread pools must see the pinned affinity.
  import torch

  torch.set_num_threads(cfg["threads"])
  env = environment(cfg, affinity)
  spec.check_torch_version(env["versions"]["torch"])
  rng = np.random.default_rng(0)
  rows, checks = [], []
  for prob in cfg["problems"]:
    r, c = run_problem(prob, cfg, rng)
    rows += r
    checks += c
  with open(argv[1], "w") as f:
    json.dump({"environment": env, "rows": rows, "checks": checks}, f)


if __name__ == "__main__":
  main(sys.argv[1:])
