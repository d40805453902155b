"""Compute density at equal parameters: algebra vs real Linear by batch size.

    python -m bench.density [--quick] [--out results.json] \\
        [--params 4194304] [--algebras R,C,H,...] [--batches 1,2,4,...] \\
        [--modes fwd[,fwd+bwd]] [--repeats N] [--rotate-mb 128]

The paper's argument (AlgebraNets, sections 3 and 11): an algebra Linear
layer with the SAME number of real parameters as a real one does `density`
times the multiply-adds (density = macs_per_product / d: 2 for C and M2R, 4
for H, M4R and M2C, 3 for M3R, 1.5 for dual, 2 for cross). At batch 1 the
layer is memory bound (every weight is read once per call and used once), so
its time should stay close to the real layer's while it does `density` x the
FLOPs; at large batch it is compute bound and costs `density` x the time.
This benchmark measures both regimes and the crossover between them.

Shapes: the real layer is x [B, K] times w [K, K], K = round(sqrt(params)); the
algebra layer is x [B, N, d] with w [N, N, d], N = round(sqrt(params / d))
(exact for d = 1, 4, 16; within 0.1% of `params` for d = 2, 3, 8, 9 at the
default 4M). Both are timed in the same interleaved rounds. Forward, the
real layer runs through the same inference path as the algebra layers
(`kernels.dense_prepared` of R with a weight prepared once, stored
output-major; at small batch it is faster than a plain x @ w, see
`kernels.dense`), so the comparison isolates the algebra; forward+backward
it is a plain x @ w.

Variants of the algebra layer (forward):
  einsum, expand, right, fold   `kernels.dense(path=...)` on the canonical
                                weight: the weight is converted on every call
                                (what a training step does).
  prepared_<path>               `kernels.dense_prepared` with a weight
                                converted ONCE by `kernels.prepare_dense`
                                (inference; expand / right / fold).
  folded                        M_n(base) only: `kernels.dense_folded` on
                                activations kept in the folded layout
                                (`algebranets.layout`), canonical weight
                                folded on every call (a folded network).
  prepared_folded               M_n(base) only: folded activations AND the
                                folded weight cached by `prepare_dense(...,
                                'fold')` and applied by
                                `kernels.dense_prepared_folded`: one matmul
                                of [n*B, N*n*e] and the cached [M*n*e,
                                N*n*e] weight.
The LIBRARY variant (main tables, crossover, targets) is the library's best
inference path: prepared_folded for M_n(base); otherwise prepared_<p> with p
= `kernels.choose_dense_path` for that batch. With --modes fwd+bwd (training)
the prepared variants are not timed (they are inference caches) and the
library variant is `folded` for M_n(base), else the raw auto path.

Weight rotation: at batch 1 the layer reads its whole weight per call. A 4M
parameter float32 layer (16 MB) fits in many last-level caches (32 MB here,
50 MB L2 on an H100), and timing the same weight back to back would then
measure cache, not memory, bandwidth. Each variant therefore cycles through
enough copies of its (prepared) weight to cover --rotate-mb (default 128 MB,
at most 32 copies), as the layers of a real network would; --rotate-mb=0
measures the cache-resident case.

FLOP accounting: intrinsic forward FLOPs = 2 * B * N * N * macs_per_product
(the algebra's naive product count, whatever the path does); forward +
backward counts 3x that. `x real time` = algebra time / real time;
`x real FLOP/s` = algebra intrinsic FLOP/s / real FLOP/s.

Timing (see bench.common): compile excluded, median of interleaved rounds,
spread as quartiles and min-max; --max-seconds cuts the rounds of very slow
problems (at least 3). No timing is asserted anywhere. Runs unchanged on
GPU/TPU (block_until_ready; the device kind is printed).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from algebranets import algebras, kernels
from algebranets import layout as layout_lib
from bench import common

MODES = ("fwd", "fwd+bwd")
_MODE_FLOP_FACTOR = {"fwd": 1, "fwd+bwd": 3}
DEFAULT_ALGEBRAS = tuple(algebras.names())  # every registered algebra
DEFAULT_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
DEFAULT_PARAMS = 2048 * 2048  # "4M": the real layer is 2048 x 2048
_QUICK = dict(
    params=1024 * 1024,
    batches=(1, 4, 16, 64, 256),
    algebras=("H", "M2R", "M4R"),
    repeats=5,
)
_FULL_REPEATS = 7
# Algebra time / real time above this counts as the compute-bound regime.
CROSSOVER_TIME_RATIO = 1.25
# Batch-1 targets: minimum intrinsic FLOP/s of the algebra layer relative to
# the real layer (M2R: time <= 1.25x real at density 2, i.e. >= 1.6x FLOP/s).
BATCH1_TARGETS = {"M2R": 1.6, "H": 2.5, "M4R": 2.5}
SLOW_LIBRARY = 1.2  # flag library choices this much slower than the fastest
_MAX_COPIES = 32
RAW_PATHS = tuple(kernels.DENSE_PATHS)


def is_matrix(alg: algebras.Algebra) -> bool:
  return alg.matrix_shape is not None and alg.dim > 1


def channels_for_params(alg: algebras.Algebra, params: int) -> int:
  """Algebra channels N such that w [N, N, d] holds about `params` reals."""
  return max(1, round(math.sqrt(params / alg.dim)))


def real_width(params: int) -> int:
  """K such that a real K x K weight holds about `params` reals."""
  return max(1, round(math.sqrt(params)))


def variants(alg: algebras.Algebra, mode: str) -> tuple[str, ...]:
  """The algebra-layer variants timed for `alg` in `mode` (see module doc)."""
  matrix = is_matrix(alg)
  raw = tuple(p for p in RAW_PATHS if p != "fold" or matrix)
  if mode == "fwd+bwd":
    return raw + (("folded",) if matrix else ())
  prepared = tuple(f"prepared_{p}" for p in raw if p != "einsum")
  folded = ("folded", "prepared_folded") if matrix else ()
  return raw + prepared + folded


def _auto_path(alg: algebras.Algebra, batch: int, channels: int) -> str:
  d = alg.dim
  return kernels.choose_dense_path(
      alg, (batch, channels, d), (channels, channels, d)
  )


def library_variant_for(
    alg: algebras.Algebra, batch: int, channels: int, mode: str
) -> str:
  """The variant that is the library's best path for these shapes.

  Args:
    alg: the algebra.
    batch: tokens per call.
    channels: N = M algebra channels.
    mode: 'fwd' (inference: cached weight) or 'fwd+bwd' (training).

  Returns:
    A name from `variants(alg, mode)`.
  """
  path = _auto_path(alg, batch, channels)
  if path == "fold":
    return "prepared_folded" if mode == "fwd" else "folded"
  return f"prepared_{path}" if mode == "fwd" and path != "einsum" else path


def variant_fn(alg: algebras.Algebra, variant: str) -> Callable[..., Any]:
  """fn(x_in, w_in) -> y for one variant (un-jitted).

  x_in / w_in are what `variant_x` / `variant_w` return; y is [B, M, d],
  or folded [n, B, M, n*e] for 'folded' and 'prepared_folded'.
  """
  _known(alg, variant)
  if variant in RAW_PATHS:
    return lambda x, w: kernels.dense(x, w, alg, path=variant)
  if variant == "folded":
    return lambda x, w: kernels.dense_folded(x, w, alg)
  if variant == "prepared_folded":
    return kernels.dense_prepared_folded
  return kernels.dense_prepared


def variant_x(alg: algebras.Algebra, variant: str, x: jax.Array) -> jax.Array:
  """The activation `variant` takes: x [B, N, d], folded for the folded ones."""
  _known(alg, variant)
  return layout_lib.fold(x, alg) if variant.endswith("folded") else x


def variant_w(alg: algebras.Algebra, variant: str, w: jax.Array) -> Any:
  """The weight `variant` takes, from the canonical w [N, M, d]: w itself
  for raw paths and 'folded', else a `kernels.PreparedDense`."""
  _known(alg, variant)
  if variant == "prepared_folded":
    return kernels.prepare_dense(w, alg, "fold")
  if variant.startswith("prepared_"):
    return kernels.prepare_dense(w, alg, variant[len("prepared_") :])
  return w


def _known(alg, variant):
  if variant not in variants(alg, "fwd"):
    raise ValueError(
        f"Unknown variant {variant!r} for {alg.name}; valid: "
        f"{', '.join(variants(alg, 'fwd'))}."
    )


def _jitted(fn: Callable, mode: str) -> Callable:
  """jit of fn(x, w) (fwd) or of its vjp w.r.t. (x, w) (fwd+bwd)."""
  if mode == "fwd":
    return jax.jit(fn)

  def fwd_bwd(x, w, ct):
    _, vjp = jax.vjp(fn, x, w)
    return vjp(ct)

  return jax.jit(fwd_bwd)


def _nbytes(tree) -> int:
  return sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(tree))


def _copies(nbytes: int, rotate_bytes: int) -> int:
  return max(1, min(_MAX_COPIES, math.ceil(rotate_bytes / max(nbytes, 1))))


def _rotating(fn: Callable, arg_sets: Sequence[tuple]) -> Callable[[], Any]:
  """A zero-argument callable applying fn to the next argument set."""
  it = itertools.cycle(arg_sets)
  return lambda: fn(*next(it))


def _weights(key, shape, count, dtype) -> list[jax.Array]:
  scale = 1.0 / math.sqrt(shape[0])
  keys = jax.random.split(key, count)
  return [scale * jax.random.normal(k, shape, dtype) for k in keys]


class WeightBank:
  """Rotated weight copies of one algebra layer and of the real layer.

  Built lazily and reused for every batch size (generating and preparing
  hundreds of MB per point would dominate a sweep).

  Args:
    alg: the algebra.
    params: real parameters per layer.
    dtype: weight dtype.
    rotate_bytes: each variant cycles through copies totalling at least
      this many bytes (at most `_MAX_COPIES`, at least 1).
    seed: PRNG seed.
  """

  def __init__(self, alg, params: int, dtype, rotate_bytes: int, seed=0):
    self.alg = alg
    self.channels = channels_for_params(alg, params)
    self.real_width = real_width(params)
    self.dtype = jnp.dtype(dtype)
    self.rotate_bytes = rotate_bytes
    self._key = jax.random.key(seed)
    self._cache: dict[str, list] = {}

  def _get(self, name: str) -> list:
    if name in self._cache:
      return self._cache[name]
    if name == "real":
      k = self.real_width
      count = _copies(k * k * self.dtype.itemsize, self.rotate_bytes)
      out = _weights(
          jax.random.fold_in(self._key, 1), (k, k), count, self.dtype
      )
    elif name == "real_prepared":
      out = [
          kernels.prepare_dense(w[:, :, None], "R", "expand")
          for w in self._get("real")
      ]
    elif name == "canonical":
      n, d = self.channels, self.alg.dim
      count = _copies(n * n * d * self.dtype.itemsize, self.rotate_bytes)
      out = _weights(
          jax.random.fold_in(self._key, 0), (n, n, d), count, self.dtype
      )
    else:
      # Prepared layouts can be much larger than the canonical weight (the
      # M4R block expansion is 16x): only as many copies as the budget
      # needs.
      ws = self._get("canonical")
      first = variant_w(self.alg, name, ws[0])
      count = min(len(ws), _copies(_nbytes(first), self.rotate_bytes))
      out = [first] + [variant_w(self.alg, name, w) for w in ws[1:count]]
    self._cache[name] = out
    return out

  def weights(self, variant: str) -> list:
    """The rotated weight inputs of `variant` (or 'real', 'real_prepared')."""
    if variant in ("real", "real_prepared"):
      return self._get(variant)
    if variant in RAW_PATHS or variant == "folded":
      return self._get("canonical")
    # prepared_fold and prepared_folded share their copies.
    return self._get(
        "prepared_fold" if variant == "prepared_folded" else variant
    )


def run_point(
    alg: algebras.Algebra,
    batch: int,
    mode: str,
    *,
    params: int,
    repeats: int,
    dtype,
    min_sample_s: float,
    rotate_bytes: int,
    max_seconds: float | None = None,
    seed: int = 0,
    bank: WeightBank | None = None,
) -> list[dict[str, Any]]:
  """Time every variant of `alg` and the real layer at one batch size.

  Args:
    alg: the algebra.
    batch: tokens per call.
    mode: 'fwd' or 'fwd+bwd'.
    params: real parameters per layer (both layers).
    repeats, min_sample_s, max_seconds: see `common.time_interleaved`.
    dtype: activation and weight dtype.
    rotate_bytes: weight rotation budget (see module doc).
    seed: PRNG seed of the activations (and weights without `bank`).
    bank: weights to reuse (must match alg, params, dtype, rotate_bytes).

  Returns:
    One row (dict) per variant plus one for 'real'.
  """
  dtype = jnp.dtype(dtype)
  if bank is None:
    bank = WeightBank(alg, params, dtype, rotate_bytes, seed)
  d = alg.dim
  n_ch = bank.channels
  k = bank.real_width
  names = variants(alg, mode)
  lib = library_variant_for(alg, batch, n_ch, mode)
  kx, kr, kc = jax.random.split(jax.random.key(seed + 1), 3)
  x = jax.random.normal(kx, (batch, n_ch, d), dtype)
  xr = jax.random.normal(kr, (batch, k), dtype)
  fns: dict[str, Callable[[], Any]] = {}
  copies: dict[str, int] = {}
  for name in [*names, "real"]:
    if name == "real" and mode == "fwd":
      fn, x_in = kernels.dense_prepared, xr[:, :, None]
      w_ins = bank.weights("real_prepared")
    elif name == "real":
      fn, x_in = jnp.dot, xr
      w_ins = bank.weights(name)
    else:
      fn, x_in = variant_fn(alg, name), variant_x(alg, name, x)
      w_ins = bank.weights(name)
    copies[name] = len(w_ins)
    if mode == "fwd":
      arg_sets = [(x_in, w_in) for w_in in w_ins]
    else:
      y = jax.eval_shape(fn, x_in, w_ins[0])
      ct = jax.random.normal(kc, y.shape, dtype)
      arg_sets = [(x_in, w_in, ct) for w_in in w_ins]
    fns[name] = _rotating(_jitted(fn, mode), arg_sets)
  timings = common.time_interleaved(
      fns, repeats=repeats, min_sample_s=min_sample_s, max_seconds=max_seconds
  )
  factor = 2 * _MODE_FLOP_FACTOR[mode]
  real_t = timings["real"].median
  real_macs = batch * k * k
  real_gflops = factor * real_macs / real_t / 1e9
  alg_macs = batch * n_ch * n_ch * alg.macs_per_product
  fastest = min(names, key=lambda v: timings[v].median)
  base = {
      "algebra": alg.name,
      "d": d,
      "macs_per_product": alg.macs_per_product,
      "density": alg.density,
      "batch": batch,
      "mode": mode,
      "channels": n_ch,
      "params": n_ch * n_ch * d,
      "real_width": k,
      "real_params": k * k,
      "auto_path": _auto_path(alg, batch, n_ch),
      "library_variant": lib,
      "fastest_variant": fastest,
      "library_vs_fastest": timings[lib].median / timings[fastest].median,
      "real_ms": 1e3 * real_t,
      "real_gflops": real_gflops,
      "dtype": jnp.dtype(dtype).name,
  }
  rows = []
  for name in [*names, "real"]:
    t = timings[name]
    macs = real_macs if name == "real" else alg_macs
    gflops = factor * macs / t.median / 1e9
    rows.append(
        {
            **base,
            "variant": name,
            "is_library": name == lib,
            "is_fastest": name == fastest,
            "weight_copies": copies[name],
            "macs": macs,
            **t.summary_ms(),
            "gflops": gflops,
            "time_vs_real": t.median / real_t,
            "gflops_vs_real": gflops / real_gflops,
        }
    )
  return rows


# ---------------------------------------------------------------- summaries


def _library_rows(rows, algebra, mode):
  out = [
      r
      for r in rows
      if r["algebra"] == algebra and r["mode"] == mode and r["is_library"]
  ]
  return sorted(out, key=lambda r: r["batch"])


def crossover_batch(
    batch_ratios: Sequence[tuple[int, float]],
    threshold: float = CROSSOVER_TIME_RATIO,
) -> int | None:
  """First batch (ascending) whose algebra / real time exceeds `threshold`.

  Args:
    batch_ratios: (batch, algebra time / real time) pairs, any order.
    threshold: the ratio that counts as "slower than real".

  Returns:
    The batch size, or None if no measured batch exceeds the threshold.
  """
  for b, ratio in sorted(batch_ratios):
    if ratio > threshold:
      return b
  return None


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """Per (algebra, mode): both regimes and the crossover (library variant)."""
  out = []
  keys = dict.fromkeys((r["algebra"], r["mode"]) for r in rows)
  for algebra, mode in keys:
    lib = _library_rows(rows, algebra, mode)
    if not lib:
      continue
    first, last = lib[0], lib[-1]
    out.append(
        {
            "algebra": algebra,
            "mode": mode,
            "density": first["density"],
            "params": first["params"],
            "real_params": first["real_params"],
            "small_batch": first["batch"],
            "small_time_vs_real": first["time_vs_real"],
            "small_gflops_vs_real": first["gflops_vs_real"],
            "small_variant": first["variant"],
            "large_batch": last["batch"],
            "large_time_vs_real": last["time_vs_real"],
            "large_time_vs_density": last["time_vs_real"] / first["density"],
            "large_variant": last["variant"],
            "crossover_batch": crossover_batch(
                [(r["batch"], r["time_vs_real"]) for r in lib]
            ),
        }
    )
  return out


def batch1_targets(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """The paper's batch-1 targets (fwd, library variant) as PASS/FAIL rows."""
  out = []
  for algebra, needed in BATCH1_TARGETS.items():
    hit = [
        r
        for r in rows
        if r["algebra"] == algebra
        and r["mode"] == "fwd"
        and r["batch"] == 1
        and r["is_library"]
    ]
    if not hit:
      continue
    r = hit[0]
    out.append(
        {
            "algebra": algebra,
            "variant": r["variant"],
            "gflops_vs_real": r["gflops_vs_real"],
            "time_vs_real": r["time_vs_real"],
            "needed_gflops_vs_real": needed,
            "max_time_vs_real": r["density"] / needed,
            "pass": r["gflops_vs_real"] >= needed,
        }
    )
  return out


# ------------------------------------------------------------------- tables


def _cell(r) -> str:
  return f"{r['ms_median']:.3g} ({r['time_vs_real']:.2f}x)"


def tables(rows: Sequence[dict[str, Any]]) -> str:
  """All markdown tables of one run (see module doc for the columns)."""
  out = []
  algs = list(dict.fromkeys(r["algebra"] for r in rows))
  modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
  for mode in modes:
    batches = sorted({r["batch"] for r in rows if r["mode"] == mode})
    lib = {
        (r["algebra"], r["batch"]): r
        for r in rows
        if r["mode"] == mode and r["is_library"]
    }
    real = {}
    for r in rows:
      if r["mode"] == mode and r["variant"] == "real":
        real.setdefault(r["batch"], []).append(r["ms_median"])
    dens = {r["algebra"]: r["density"] for r in rows}
    header = ["batch", "real ms"] + [
        f"{a} (x{dens[a]:g}) ms (x real)" for a in algs
    ]
    body = []
    for b in batches:
      cells = [str(b), f"{sorted(real[b])[len(real[b]) // 2]:.3g}"]
      cells += [_cell(lib[(a, b)]) if (a, b) in lib else "" for a in algs]
      body.append(cells)
    out += [
        f"## {mode}: time per call, library path ((xD) after the algebra = "
        "its density; x real = algebra time / real time, same parameters)",
        "",
        common.markdown_table(header, body),
        "",
    ]
    header = ["batch", "real GF/s"] + [f"{a} GF/s (x real)" for a in algs]
    body = []
    for b in batches:
      gf = [r["real_gflops"] for (a, bb), r in lib.items() if bb == b]
      cells = [str(b), f"{sorted(gf)[len(gf) // 2]:.3g}" if gf else ""]
      for a in algs:
        r = lib.get((a, b))
        cells.append(
            f"{r['gflops']:.3g} ({r['gflops_vs_real']:.2f}x)" if r else ""
        )
      body.append(cells)
    out += [
        f"## {mode}: achieved intrinsic GFLOP/s, library path",
        "",
        common.markdown_table(header, body),
        "",
    ]
    # Every variant: rows (algebra, variant), columns batches.
    header = ["algebra", "variant", "copies"] + [f"B={b}" for b in batches]
    body = []
    for a in algs:
      names = list(
          dict.fromkeys(
              r["variant"]
              for r in rows
              if r["algebra"] == a and r["mode"] == mode
          )
      )
      for v in names:
        by_b = {
            r["batch"]: r
            for r in rows
            if r["algebra"] == a and r["mode"] == mode and r["variant"] == v
        }
        copies = sorted({r["weight_copies"] for r in by_b.values()})
        cells = [a, v, "/".join(map(str, copies))]
        for b in batches:
          r = by_b.get(b)
          if r is None:
            cells.append("")
            continue
          tag = ("L" if r["is_library"] else "") + (
              "*" if r["is_fastest"] else ""
          )
          cells.append(f"{r['ms_median']:.3g}{(' ' + tag) if tag else ''}")
        body.append(cells)
    out += [
        f"## {mode}: every variant, ms per call (L = library path, * = "
        "fastest; copies = rotated weight copies)",
        "",
        common.markdown_table(header, body),
        "",
    ]
  summary = summarize(rows)
  body = [
      [
          s["algebra"],
          s["mode"],
          f"{s['density']:g}",
          f"{s['params']:,}",
          f"{s['small_time_vs_real']:.2f}",
          f"{s['small_gflops_vs_real']:.2f}",
          f"{s['large_time_vs_real']:.2f} (B={s['large_batch']})",
          f"{s['large_time_vs_density']:.2f}",
          (
              str(s["crossover_batch"])
              if s["crossover_batch"] is not None
              else f"> {s['large_batch']}"
          ),
      ]
      for s in summary
  ]
  small_b = summary[0]["small_batch"] if summary else 1
  out += [
      f"## Regimes (library path): memory bound at B={small_b}, compute "
      "bound at the largest batch; crossover = first batch with algebra "
      f"time > {CROSSOVER_TIME_RATIO}x real",
      "",
      common.markdown_table(
          [
              "algebra",
              "mode",
              "density",
              "params",
              f"B={small_b} x real time",
              f"B={small_b} x real FLOP/s",
              "large-batch x real time",
              "large / density",
              "crossover batch",
          ],
          body,
      ),
      "",
  ]
  slow = [
      r
      for r in rows
      if r["is_library"] and r["library_vs_fastest"] > SLOW_LIBRARY
  ]
  if slow:
    out += [
        f"## Library path more than {SLOW_LIBRARY}x slower than the fastest "
        "variant",
        "",
        common.markdown_table(
            ["algebra", "mode", "batch", "library", "fastest", "ratio"],
            [
                [
                    r["algebra"],
                    r["mode"],
                    r["batch"],
                    r["variant"],
                    r["fastest_variant"],
                    f"{r['library_vs_fastest']:.2f}",
                ]
                for r in slow
            ],
        ),
        "",
    ]
  else:
    out += [
        f"Library path within {SLOW_LIBRARY}x of the fastest variant "
        "everywhere.",
        "",
    ]
  targets = batch1_targets(rows)
  out += [
      "## Batch-1 targets (fwd, library path)",
      "",
      common.markdown_table(
          [
              "algebra",
              "variant",
              "x real FLOP/s",
              "needed",
              "x real time",
              "allowed",
              "result",
          ],
          [
              [
                  t["algebra"],
                  t["variant"],
                  f"{t['gflops_vs_real']:.2f}",
                  f">= {t['needed_gflops_vs_real']:g}",
                  f"{t['time_vs_real']:.2f}",
                  f"<= {t['max_time_vs_real']:.3g}",
                  "PASS" if t["pass"] else "FAIL",
              ]
              for t in targets
          ],
      )
      if targets
      else "(batch 1 of M2R / H / M4R not measured)",
  ]
  return "\n".join(out)


# ---------------------------------------------------------------------- CLI


def _int_list(text: str, what: str, parser) -> tuple[int, ...]:
  try:
    values = tuple(int(v) for v in text.split(",") if v)
  except ValueError:
    parser.error(f"{what} must be comma-separated integers, got {text!r}.")
  if not values or min(values) < 1:
    parser.error(f"{what} must be positive integers, got {text!r}.")
  return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m bench.density",
      description=__doc__.split("\n\n")[0],
  )
  parser.add_argument(
      "--quick",
      action="store_true",
      help=f"{_QUICK['params']:,} parameters, batches "
      f"{','.join(map(str, _QUICK['batches']))}, algebras "
      f"{','.join(_QUICK['algebras'])} (~1-2 min on 2 CPU cores)",
  )
  parser.add_argument("--out", default=None, help="write JSON results here")
  parser.add_argument(
      "--params",
      type=int,
      default=None,
      help=f"real parameters per layer (default {DEFAULT_PARAMS:,})",
  )
  parser.add_argument(
      "--algebras",
      default=None,
      help=f"comma-separated (default {','.join(DEFAULT_ALGEBRAS)})",
  )
  parser.add_argument(
      "--batches",
      default=None,
      help=f"comma-separated (default {','.join(map(str, DEFAULT_BATCHES))})",
  )
  parser.add_argument(
      "--modes", default="fwd", help="fwd (default), fwd+bwd or both"
  )
  parser.add_argument("--repeats", type=int, default=None)
  parser.add_argument("--min-sample-ms", type=float, default=5.0)
  parser.add_argument(
      "--max-seconds",
      type=float,
      default=20.0,
      help="time budget for the timed rounds of one (algebra, batch, mode); "
      "slower points get fewer rounds (at least 3); 0 = no budget",
  )
  parser.add_argument(
      "--rotate-mb",
      type=float,
      default=128.0,
      help="cycle each variant through weight copies totalling this many MB "
      "(defeats the last-level cache; 0 = one copy)",
  )
  parser.add_argument(
      "--dtype", choices=("float32", "bfloat16"), default="float32"
  )
  args = parser.parse_args(argv)
  q = args.quick
  if args.params is None:
    args.params = _QUICK["params"] if q else DEFAULT_PARAMS
  if args.params < 1:
    parser.error(f"--params must be >= 1, got {args.params}.")
  if args.algebras is None:
    args.algebras = _QUICK["algebras"] if q else DEFAULT_ALGEBRAS
  else:
    args.algebras = tuple(a for a in args.algebras.split(",") if a)
  for name in args.algebras:
    try:
      algebras.get(name)
    except ValueError as e:
      parser.error(str(e))
  if args.batches is None:
    args.batches = _QUICK["batches"] if q else DEFAULT_BATCHES
  else:
    args.batches = _int_list(args.batches, "--batches", parser)
  if args.repeats is None:
    args.repeats = _QUICK["repeats"] if q else _FULL_REPEATS
  if args.repeats < 1:
    parser.error(f"--repeats must be >= 1, got {args.repeats}.")
  if args.rotate_mb < 0:
    parser.error(f"--rotate-mb must be >= 0, got {args.rotate_mb}.")
  args.modes = tuple(m for m in args.modes.split(",") if m)
  bad = [m for m in args.modes if m not in MODES]
  if bad or not args.modes:
    parser.error(f"unknown --modes {bad}; valid: {', '.join(MODES)}.")
  return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Run the benchmark; print machine info and tables; return the results
  (also written as JSON to --out)."""
  args = parse_args(argv)
  info = common.machine_info()
  print(common.format_machine_info(info), flush=True)
  k = real_width(args.params)
  print(
      f"params={args.params:,} (real {k}x{k}) batches="
      f"{','.join(map(str, args.batches))} repeats={args.repeats} "
      f"dtype={args.dtype} rotate={args.rotate_mb:g} MB "
      f"algebras={','.join(args.algebras)} modes={','.join(args.modes)}",
      flush=True,
  )
  dtype = jnp.dtype(args.dtype)
  rows: list[dict[str, Any]] = []
  t_start = time.perf_counter()
  for name in args.algebras:
    alg = algebras.get(name)
    bank = WeightBank(alg, args.params, dtype, int(args.rotate_mb * 2**20))
    for mode in args.modes:
      for batch in sorted(args.batches):
        t0 = time.perf_counter()
        new = run_point(
            alg,
            batch,
            mode,
            params=args.params,
            repeats=args.repeats,
            dtype=dtype,
            min_sample_s=args.min_sample_ms / 1e3,
            rotate_bytes=int(args.rotate_mb * 2**20),
            max_seconds=args.max_seconds or None,
            bank=bank,
        )
        rows += new
        lib = next(r for r in new if r["is_library"])
        print(
            f"  {name:>5} {mode:<7} B={batch:<5} {lib['variant']:<16} "
            f"{lib['ms_median']:.3g} ms x real {lib['time_vs_real']:.2f} "
            f"fastest={lib['fastest_variant']} "
            f"({time.perf_counter() - t0:.1f}s)",
            file=sys.stderr,
            flush=True,
        )
  wall = time.perf_counter() - t_start
  print()
  print(tables(rows))
  print(f"\nwall time {wall:.1f}s")
  results = {
      "machine": info,
      "config": {
          "params": args.params,
          "real_width": k,
          "algebras": list(args.algebras),
          "batches": list(args.batches),
          "modes": list(args.modes),
          "repeats": args.repeats,
          "min_sample_ms": args.min_sample_ms,
          "max_seconds": args.max_seconds,
          "rotate_mb": args.rotate_mb,
          "dtype": args.dtype,
          "argv": list(sys.argv[1:] if argv is None else argv),
      },
      "wall_s": wall,
      "rows": rows,
      "summary": summarize(rows),
      "targets": batch1_targets(rows),
  }
  common.write_results(args.out, results)
  return results


if __name__ == "__main__":
  main()
