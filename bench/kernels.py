"""Kernel benchmark: every algebra x op x shape x kernel path, fwd and fwd+bwd.

    python -m bench.kernels [--quick] [--out results.json] \\
        [--algebras R,C,H,...] [--repeats N] [--ops dense,conv3x3,...]

For each algebra and case (below) every applicable kernel path is timed
under jit ('einsum', 'expand', 'right' (dense only), 'fold' (M_n(base) only)
and 'auto'), forward and forward+backward (grads w.r.t. x and w), together
with a REAL BASELINE: a plain real matmul / conv whose MAC count equals the
algebra layer's intrinsic count (pairs x macs_per_product), measured in the
same interleaved rounds. Its GFLOP/s is the machine's practical ceiling at
that size, so `x real` = algebra GFLOP/s / baseline GFLOP/s says how close a
path gets to it (1.0 = as fast as real arithmetic of the same intrinsic
work; the expansion paths of M_n are bounded by 1/n, say).

Every algebra sees the SAME number of real activation channels: algebra
channels = round(real channels / d) (exact for d in 1, 2, 4, 8, 16; +-1 real
channel for d = 3, 9).

FLOP accounting: intrinsic forward FLOPs = 2 * macs_per_product * pairs
(pairs = weight-activation element pairs); forward+backward counts 3x that
(the two backward products have the same size as the forward one).

Timing (see bench.common): compile excluded, median of interleaved rounds,
spread as quartiles (IQR) and min-max; problems that would blow the
--max-seconds budget get fewer rounds (n_samples in the JSON, at least 3).
No timing is asserted anywhere.
Runs unchanged on GPU/TPU (the device kind is printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from algebranets import algebras, kernels
from bench import common

_DIMS = ("NHWC", "HWIO", "NHWC")
MODES = ("fwd", "fwd+bwd")
_MODE_FLOP_FACTOR = {"fwd": 1, "fwd+bwd": 3}
OPS = ("dense", "conv3x3", "conv3x3_s2", "dw3x3")
SLOW_AUTO = 1.2  # flag auto choices this much slower than the fastest path


@dataclasses.dataclass(frozen=True)
class Case:
  """One benchmark shape, in REAL channels (shared by all algebras).

  op: 'dense' (x [tokens, C, d]), 'conv3x3' / 'conv3x3_s2' (SAME, stride 1
  / 2) or 'dw3x3' (depthwise, channel multiplier 1, stride 1).
  """

  op: str
  label: str
  real_in: int
  real_out: int
  tokens: int = 0  # dense
  batch: int = 0  # conv
  hw: int = 0  # conv


_SIZES: dict[str, list[Case]] = {
    "full": [
        Case("dense", "transformer proj", 512, 512, tokens=512),
        Case("dense", "batch-1 decode", 1024, 1024, tokens=1),
        Case("conv3x3", "resnet50 stage", 256, 256, batch=8, hw=28),
        Case("conv3x3_s2", "resnet50 downsample", 256, 256, batch=8, hw=28),
        # Smaller than the convs: on XLA:CPU the WEIGHT gradient of a grouped
        # conv with group size > 1 (every algebra depthwise conv) costs
        # ~100-400x its forward and grows with groups^2; at 28x28x256 one
        # fwd+bwd call of C takes ~25 s (jax#13800). Real depthwise (group size 1) is not affected.
        Case("dw3x3", "mobilenet-like dw", 128, 128, batch=8, hw=14),
    ],
    "quick": [
        Case("dense", "transformer proj", 256, 256, tokens=128),
        Case("dense", "batch-1 decode", 512, 512, tokens=1),
        Case("conv3x3", "resnet50 stage", 64, 64, batch=2, hw=14),
        Case("conv3x3_s2", "resnet50 downsample", 64, 64, batch=2, hw=14),
        Case("dw3x3", "mobilenet-like dw", 128, 128, batch=2, hw=14),
    ],
    "tiny": [
        Case("dense", "tiny", 16, 16, tokens=4),
        Case("dense", "tiny batch-1", 16, 16, tokens=1),
        Case("conv3x3", "tiny", 16, 16, batch=1, hw=6),
        Case("conv3x3_s2", "tiny", 16, 16, batch=1, hw=6),
        Case("dw3x3", "tiny", 16, 16, batch=1, hw=6),
    ],
}
_DEFAULTS = {
    # size: (algebras, repeats)
    "full": (None, 11),  # None = every registered algebra
    "quick": (("R", "C", "H", "M2R", "M4R"), 5),
    "tiny": (("C", "M2R"), 2),
}


def _channels(real: int, d: int) -> int:
  return max(1, round(real / d))


@dataclasses.dataclass
class Problem:
  """One (algebra, case): concrete shapes, the algebra op and its baseline."""

  algebra: algebras.Algebra
  case: Case
  x_shape: tuple[int, ...]
  w_shape: tuple[int, ...]
  pairs: int  # weight-activation element pairs (one fwd)
  shape: str  # human-readable, algebra channels
  real_x_shape: tuple[int, ...]
  real_w_shape: tuple[int, ...]
  real_macs: int
  real_shape: str
  op: Callable[..., jax.Array]  # (x, w, path) -> y
  real_op: Callable[[jax.Array, jax.Array], jax.Array]
  paths: tuple[str, ...]
  auto_path: str

  @property
  def intrinsic_macs(self) -> int:
    return self.pairs * self.algebra.macs_per_product


def make_problem(alg: algebras.Algebra, case: Case) -> Problem:
  """Shapes for `case` in `alg` and a MAC-matched real baseline."""
  d, mpp = alg.dim, alg.macs_per_product
  c_in, c_out = _channels(case.real_in, d), _channels(case.real_out, d)
  if case.op == "dense":
    x_shape, w_shape = (case.tokens, c_in, d), (c_in, c_out, d)
    pairs = case.tokens * c_in * c_out
    # Real K x K' matmul with K * K' = c_in * c_out * mpp (aspect kept).
    k_in = max(1, round(math.sqrt(c_in * c_out * mpp * c_in / c_out)))
    k_out = max(1, round(c_in * c_out * mpp / k_in))
    real_x, real_w = (case.tokens, k_in), (k_in, k_out)
    real_macs = case.tokens * k_in * k_out
    shape = f"T={case.tokens} {c_in}->{c_out}"
    real_shape = f"T={case.tokens} {k_in}->{k_out}"
    paths = tuple(
        p
        for p in kernels.DENSE_PATHS
        if p != "fold" or alg.matrix_shape is not None
    )
    op = functools.partial(kernels.dense, algebra=alg)
    real_op = jnp.dot
    auto = kernels.choose_dense_path(alg, x_shape, w_shape)
  elif case.op in ("conv3x3", "conv3x3_s2", "dw3x3"):
    stride = 2 if case.op == "conv3x3_s2" else 1
    depthwise = case.op == "dw3x3"
    b, hw = case.batch, case.hw
    out_hw = math.ceil(hw / stride)
    groups = c_in if depthwise else 1
    m = c_in if depthwise else c_out
    x_shape = (b, hw, hw, c_in, d)
    w_shape = (3, 3, c_in // groups, m, d)
    pairs = b * out_hw * out_hw * 9 * (c_in // groups) * m
    if depthwise:
      k_in = k_out = c_in * mpp  # real depthwise, same MACs
      real_groups = k_in
      real_w = (3, 3, 1, k_out)
    else:
      k_in = max(1, round(math.sqrt(c_in * m * mpp)))
      k_out = max(1, round(c_in * m * mpp / k_in))
      real_groups = 1
      real_w = (3, 3, k_in, k_out)
    real_x = (b, hw, hw, k_in)
    real_macs = b * out_hw * out_hw * 9 * (k_in // real_groups) * k_out
    kind = "dw" if depthwise else f"s{stride}"
    shape = f"B={b} {hw}x{hw} {c_in}->{m} {kind}"
    real_shape = f"B={b} {hw}x{hw} {k_in}->{k_out} {kind}"
    paths = tuple(
        p
        for p in kernels.CONV_PATHS
        if p != "fold" or alg.matrix_shape is not None
    )
    op = functools.partial(
        kernels.conv2d,
        algebra=alg,
        stride=stride,
        padding="SAME",
        feature_group_count=groups,
    )
    real_op = functools.partial(
        lax.conv_general_dilated,
        window_strides=(stride, stride),
        padding="SAME",
        feature_group_count=real_groups,
        dimension_numbers=_DIMS,
    )
    auto = kernels.choose_conv_path(alg, x_shape, w_shape)
  else:
    raise ValueError(f"Unknown op {case.op!r}; valid: {', '.join(OPS)}.")
  return Problem(
      algebra=alg,
      case=case,
      x_shape=x_shape,
      w_shape=w_shape,
      pairs=pairs,
      shape=shape,
      real_x_shape=real_x,
      real_w_shape=real_w,
      real_macs=real_macs,
      real_shape=real_shape,
      op=op,
      real_op=real_op,
      paths=paths,
      auto_path=auto,
  )


def _jitted(fn: Callable, mode: str) -> Callable:
  """jit of fn(x, w) (fwd) or of its vjp w.r.t. (x, w) (fwd+bwd)."""
  if mode == "fwd":
    return jax.jit(fn)

  def fwd_bwd(x, w, ct):
    _, vjp = jax.vjp(fn, x, w)
    return vjp(ct)

  return jax.jit(fwd_bwd)


def _arrays(x_shape, w_shape, fn, mode, dtype, rng):
  scale = 1.0 / math.sqrt(math.prod(w_shape[:-1]))
  x = jnp.asarray(rng.standard_normal(x_shape), dtype)
  w = jnp.asarray(scale * rng.standard_normal(w_shape), dtype)
  if mode == "fwd":
    return (x, w)
  y = jax.eval_shape(fn, x, w)
  ct = jnp.asarray(rng.standard_normal(y.shape), dtype)
  return (x, w, ct)


def run_problem(
    prob: Problem,
    mode: str,
    *,
    repeats: int,
    dtype,
    min_sample_s: float,
    max_seconds: float | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
  """Time all paths, 'auto' and the real baseline of one problem and mode."""
  rng = np.random.default_rng(seed)
  variants = [*prob.paths, "auto"]
  fns = {}
  alg_fn = functools.partial(prob.op, path="auto")
  args = _arrays(prob.x_shape, prob.w_shape, alg_fn, mode, dtype, rng)
  for path in variants:
    f = _jitted(functools.partial(prob.op, path=path), mode)
    fns[path] = functools.partial(f, *args)
  real_args = _arrays(
      prob.real_x_shape, prob.real_w_shape, prob.real_op, mode, dtype, rng
  )
  fns["real"] = functools.partial(_jitted(prob.real_op, mode), *real_args)
  timings = common.time_interleaved(
      fns,
      repeats=repeats,
      min_sample_s=min_sample_s,
      max_seconds=max_seconds,
  )
  factor = 2 * _MODE_FLOP_FACTOR[mode]
  # The auto variant is timed on its own (its dispatch included) and so is
  # its chosen path: both ratios to the fastest path are reported, and only
  # a gap in both is more than noise.
  real_t = timings["real"].median
  real_gflops = factor * prob.real_macs / real_t / 1e9
  fastest = min(prob.paths, key=lambda p: timings[p].median)
  base = {
      "algebra": prob.algebra.name,
      "d": prob.algebra.dim,
      "macs_per_product": prob.algebra.macs_per_product,
      "op": prob.case.op,
      "case": prob.case.label,
      "real_channels": [prob.case.real_in, prob.case.real_out],
      "mode": mode,
      "auto_path": prob.auto_path,
      "fastest_path": fastest,
      "chosen_vs_fastest": (
          timings[prob.auto_path].median / timings[fastest].median
      ),
      "real_gflops": real_gflops,
      "dtype": jnp.dtype(dtype).name,
  }
  rows = []
  for name in [*variants, "real"]:
    t = timings[name]
    if name == "real":
      macs, shape = prob.real_macs, prob.real_shape
      x_shape, w_shape = prob.real_x_shape, prob.real_w_shape
    else:
      macs, shape = prob.intrinsic_macs, prob.shape
      x_shape, w_shape = prob.x_shape, prob.w_shape
    gflops = factor * macs / t.median / 1e9
    rows.append(
        {
            **base,
            "path": name,
            "resolved_path": prob.auto_path if name == "auto" else name,
            "is_auto_choice": name in ("auto", prob.auto_path),
            "is_fastest": name == fastest,
            "shape": shape,
            "x_shape": list(x_shape),
            "w_shape": list(w_shape),
            "macs": macs,
            **t.summary_ms(),
            "gflops": gflops,
            "ratio_to_real": gflops / real_gflops,
            "vs_fastest": t.median / timings[fastest].median,
        }
    )
  return rows


def _fmt_ms(row, repeats: int | None) -> str:
  star = "*" if row["is_fastest"] else ""
  few = ""
  if repeats is not None and row["n_samples"] < repeats:
    few = f" (n={row['n_samples']})"  # cut by --max-seconds
  return (
      f"{row['ms_median']:.3g}{star} "
      f"[{row['ms_q25']:.3g}-{row['ms_q75']:.3g}]{few}"
  )


def tables(rows: Sequence[dict[str, Any]], repeats: int | None = None) -> str:
  """Markdown: one line per (algebra, op, shape, path), fwd and fwd+bwd side
  by side; then the auto-vs-fastest summary. Rows with fewer than `repeats`
  samples are marked."""
  by_key: dict[tuple, dict[str, dict]] = {}
  for r in rows:
    key = (r["algebra"], r["op"], r["case"], r["path"])
    by_key.setdefault(key, {})[r["mode"]] = r
  body = []
  for key, modes in by_key.items():
    any_row = next(iter(modes.values()))
    path = key[3]
    if path == "auto":
      path = f"auto={any_row['auto_path']}"
    cells = [
        key[0],
        key[1],
        any_row["shape"],
        path,
        "<-" if any_row["is_auto_choice"] and key[3] != "auto" else "",
    ]
    for mode in MODES:
      r = modes.get(mode)
      if r is None:
        cells += ["", "", ""]
      else:
        cells += [
            _fmt_ms(r, repeats),
            f"{r['gflops']:.1f}",
            f"{r['ratio_to_real']:.2f}",
        ]
    body.append(cells)
  header = ["algebra", "op", "shape", "path", "auto"]
  for mode in MODES:
    header += [f"{mode} ms [IQR]", f"{mode} GF/s", f"{mode} x real"]
  out = [
      "## Per path (* = fastest path; GF/s = intrinsic algebra GFLOP/s; "
      "x real = GF/s / MAC-matched real baseline GF/s)",
      "",
      common.markdown_table(header, body),
  ]
  summary = []
  for r in rows:
    if r["path"] != "auto":
      continue
    slow = min(r["vs_fastest"], r["chosen_vs_fastest"]) > SLOW_AUTO
    summary.append(
        [
            r["algebra"],
            r["op"],
            r["shape"],
            r["mode"],
            r["auto_path"],
            r["fastest_path"],
            f"{r['vs_fastest']:.2f}",
            f"{r['chosen_vs_fastest']:.2f}" + ("  **SLOW**" if slow else ""),
            f"{r['ratio_to_real']:.2f}",
        ]
    )
  out += [
      "",
      "## Auto choice vs fastest measured path",
      "",
      f"(**SLOW**: both the auto variant and its chosen path are more than "
      f"{SLOW_AUTO}x slower than the fastest path)",
      "",
      common.markdown_table(
          [
              "algebra",
              "op",
              "shape",
              "mode",
              "auto picks",
              "fastest",
              "auto / fastest",
              "chosen path / fastest",
              "auto x real",
          ],
          summary,
      ),
  ]
  return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m bench.kernels",
      description=__doc__.split("\n\n")[0],
  )
  parser.add_argument(
      "--quick",
      action="store_true",
      help="small shapes, few algebras and repeats (~1-2 min on 2 CPU cores)",
  )
  parser.add_argument(
      "--size",
      choices=tuple(_SIZES),
      default=None,
      help="shape set; default 'full' ('quick' with --quick)",
  )
  parser.add_argument("--out", default=None, help="write JSON results here")
  parser.add_argument(
      "--algebras",
      default=None,
      help="comma-separated algebra names (default: all registered; "
      "R,C,H,M2R,M4R with --quick)",
  )
  parser.add_argument(
      "--ops",
      default=",".join(OPS),
      help=f"comma-separated subset of {','.join(OPS)}",
  )
  parser.add_argument(
      "--modes", default=",".join(MODES), help="fwd, fwd+bwd or both"
  )
  parser.add_argument(
      "--repeats",
      type=int,
      default=None,
      help="interleaved rounds (samples) per variant",
  )
  parser.add_argument(
      "--min-sample-ms",
      type=float,
      default=5.0,
      help="repeat cheap calls within a sample until it lasts this long",
  )
  parser.add_argument(
      "--max-seconds",
      type=float,
      default=30.0,
      help="time budget for the timed rounds of one (algebra, case, mode); "
      "slower problems get fewer rounds (at least 3); 0 = no budget",
  )
  parser.add_argument(
      "--dtype", choices=("float32", "bfloat16"), default="float32"
  )
  args = parser.parse_args(argv)
  if args.size is None:
    args.size = "quick" if args.quick else "full"
  default_algebras, default_repeats = _DEFAULTS[args.size]
  if args.algebras is None:
    args.algebras = default_algebras or tuple(algebras.names())
  else:
    args.algebras = tuple(a for a in args.algebras.split(",") if a)
  if args.repeats is None:
    args.repeats = default_repeats
  if args.repeats < 1:
    parser.error(f"--repeats must be >= 1, got {args.repeats}.")
  args.ops = tuple(o for o in args.ops.split(",") if o)
  bad = [o for o in args.ops if o not in OPS]
  if bad:
    parser.error(f"unknown --ops {bad}; valid: {', '.join(OPS)}.")
  args.modes = tuple(m for m in args.modes.split(",") if m)
  bad = [m for m in args.modes if m not in MODES]
  if bad:
    parser.error(f"unknown --modes {bad}; valid: {', '.join(MODES)}.")
  for name in args.algebras:
    try:
      algebras.get(name)
    except ValueError as e:
      parser.error(str(e))
  return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Run the benchmark; print machine info and tables; return the results
  (also written as JSON to --out)."""
  args = parse_args(argv)
  info = common.machine_info()
  print(common.format_machine_info(info), flush=True)
  print(
      f"size={args.size} repeats={args.repeats} dtype={args.dtype} "
      f"algebras={','.join(args.algebras)} ops={','.join(args.ops)}",
      flush=True,
  )
  cases = [c for c in _SIZES[args.size] if c.op in args.ops]
  dtype = jnp.dtype(args.dtype)
  rows: list[dict[str, Any]] = []
  t_start = time.perf_counter()
  for name in args.algebras:
    alg = algebras.get(name)
    for case in cases:
      prob = make_problem(alg, case)
      for mode in args.modes:
        t0 = time.perf_counter()
        new = run_problem(
            prob,
            mode,
            repeats=args.repeats,
            dtype=dtype,
            min_sample_s=args.min_sample_ms / 1e3,
            max_seconds=args.max_seconds or None,
        )
        rows += new
        auto = next(r for r in new if r["path"] == "auto")
        print(
            f"  {name:>5} {case.op:<10} {prob.shape:<28} {mode:<7} "
            f"auto={prob.auto_path:<6} fastest={auto['fastest_path']:<6} "
            f"auto/fastest={auto['vs_fastest']:.2f} "
            f"({time.perf_counter() - t0:.1f}s)",
            file=sys.stderr,
            flush=True,
        )
  wall = time.perf_counter() - t_start
  print()
  print(tables(rows, args.repeats))
  print(f"\nwall time {wall:.1f}s")
  results = {
      "machine": info,
      "config": {
          "size": args.size,
          "algebras": list(args.algebras),
          "ops": list(args.ops),
          "modes": list(args.modes),
          "repeats": args.repeats,
          "min_sample_ms": args.min_sample_ms,
          "max_seconds": args.max_seconds,
          "dtype": args.dtype,
          "argv": list(sys.argv[1:] if argv is None else argv),
      },
      "wall_s": wall,
      "rows": rows,
  }
  if args.out:
    with open(args.out, "w") as f:
      json.dump(results, f, indent=1)
    print(f"wrote {args.out}")
  return results


if __name__ == "__main__":
  main()
