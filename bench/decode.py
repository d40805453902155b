r"""Transformer-XL decoding benchmark: time and bytes per token per algebra.

    python -m bench.decode [--quick] [--out results.json] \
        [--sizes small,base] [--mems 64,2100] [--algebras R,C,H,M2R,M4R] \
        [--batches 1,4,16] [--tokens 64] [--paths measure|default] \
        [--copy_mb 1024] [--max_cache_gb 8] [--no-breakdown]

The compute-density argument end to end: at batch 1 a decoding step reads
every weight once and uses it once, so an algebra model with the real
model's parameters (density 2-4x the multiply-adds) should take about the
same time per token, bounded by the bytes it reads.

What is timed: `models.txl_decoding.TXLDecoder.generate` (K/V rings,
prepared weights, the whole generation one compiled `lax.scan` with
sampling inside) for --tokens tokens at batch B, after a prompt of 8
tokens; ms/token = call time / tokens (a step yields one token per stream,
so tokens/s = B x tokens / call time). The kernel path of each linear is
timed first (`txl_decoding.measure_paths`, stored per row; --paths default
uses `kernels.choose_dense_path`), for R as for the algebras, so the
baseline is as prepared as they are. The algebras of one (size, memory,
batch) point are timed INTERLEAVED (`bench.common.time_interleaved`), so
the ratio to R is robust to a drifting shared machine. RANDOM weights
(initialisation): fine for timing, meaningless text.

Models (every algebra at the real model's parameter count, the width
multiplier of configs/_txl_common.matched_width: real width x sqrt(d),
rounded to what the algebra and heads divide):
  small  configs/quickstart.py: 2 layers, d_model 128, 4 heads, d_inner
         512, V 204, evaluation memory 256 (clamp 256, same_length).
  base   enwik8 base: 12 layers, d_model 512, 8 heads, d_inner 2048, V 204
         (41 M real parameters), memory 64 and the evaluation memory 2,100
         (clamp 820, same_length).
  tiny   1 layer, d_model 16 (for the tests).

Bytes per token (`txl_decoding.bytes_per_token`): weights (the prepared
layer weights, biases, norms, embedding and the tied softmax table, read
once per step whatever B), K/V (both rings of every layer, per stream) and
the position tables W_r R (once per step), divided by B. Achieved
bandwidth = bytes per step / step time, next to the machine's copy
bandwidth measured in the same run (2 x size / time of `a + s` on a
--copy_mb array, fastest of the samples) and its read bandwidth (size /
time of `sum` over the same array): a step mostly reads, so the read rate
is the physical limit (a copy's writes make it the lower of the two).

Breakdown (batch 1, --no-breakdown to skip): the same number of steps of
ONLY the layers' prepared linears (`linears_call`), timed interleaved too;
`rest` = step - linears (attention over the rings, norms, embedding,
softmax and sampling).

Before/after: the "before" column is `training.sampling.reference_generate`
(the previous sampler: the model's log_prob on one position against the
memory of hidden states, re-projecting every key, one call and a host
transfer per token) at batch 1, for the small size and the base size at
memory 64 (the old path at memory 2,100 takes seconds per token on a CPU
and is skipped).

--quick: the small size, 32 tokens, copy of 256 MiB, 3 rounds (under 5
minutes on 2 cores). Nothing is asserted on timings.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras, kernels, layout
from algebranets.models import transformer_xl as txl
from algebranets.models import txl_decoding
from algebranets.training import sampling
from bench import common

PROMPT_LEN = 8


@dataclasses.dataclass(frozen=True)
class Size:
  name: str
  num_layers: int
  d_model: int
  num_heads: int
  d_inner: int
  vocab: int
  mems: tuple[tuple[int, int], ...]  # (mem_len, clamp_len)


SIZES = {
    "tiny": Size("tiny", 1, 16, 2, 32, 30, ((4, 4),)),
    "small": Size("small", 2, 128, 4, 512, 204, ((256, 256),)),
    "base": Size("base", 12, 512, 8, 2048, 204, ((64, -1), (2100, 820))),
}


def matched_width(algebra: str, d_model: int, num_heads: int) -> float:
  """configs/_txl_common.matched_width (imported lazily: configs/ is not a
  package dependency of the library)."""
  from configs import _txl_common

  return _txl_common.matched_width(algebra, d_model, num_heads)


def width_for(alg, size: Size) -> float:
  """The width multiplier of `alg` at `size` (R: 1)."""
  if alg.dim == 1:
    return 1.0
  return matched_width(alg.name, size.d_model, size.num_heads)


def ring_bytes(alg, size: Size, mem_len: int, batch: int) -> int:
  """Bytes of the K and V rings of every layer (float32, window = mem_len:
  the bench's models use same_length)."""
  channels = round(size.d_model * width_for(alg, size)) // alg.dim
  return 2 * size.num_layers * batch * mem_len * channels * alg.dim * 4


def build_fn(alg, size: Size, width: float, mem_len: int, clamp_len: int):
  """Zero-argument builder of the evaluation TransformerXL."""
  d = alg.dim
  c = round(size.d_model * width) // d
  f = max(1, round(size.d_inner * width / d))

  def build():
    # Real widths that are exactly C and F algebra channels (the matched
    # width is rounded to whole channels first).
    return txl.TransformerXL(
        size.vocab,
        algebra=alg,
        num_layers=size.num_layers,
        d_model=c * d,
        num_heads=size.num_heads,
        d_inner=f * d,
        dropout_rate=0.0,
        mem_len=mem_len,
        clamp_len=clamp_len,
        same_length=True,
    )

  return build


def init_params(build, seed: int = 0):
  def fwd(tokens):
    return build().log_prob(tokens, None)

  return hk.transform(fwd).init(
      jax.random.PRNGKey(seed), jnp.zeros((1, 2), jnp.int32)
  )


def copy_bandwidth(mb: float, repeats: int) -> dict[str, float]:
  """The machine's memory rates over an mb MiB float32 array: copy = 2 x
  bytes / time of `a + s`, read = bytes / time of `sum(a)` (GB/s, the
  fastest sample and the median)."""
  n = int(mb * 2**20) // 4
  a = jnp.ones((n,), jnp.float32)
  s = jnp.float32(1.0)
  fn = jax.jit(lambda a, s: a + s)
  t = common.time_interleaved(
      {"copy": lambda: fn(a, s)}, repeats=repeats, warmup=2, min_sample_s=0.05
  )["copy"]
  # A decoding step mostly READS (weights, rings): a copy also writes, and
  # its write-allocate traffic makes it a low ceiling for reads, so the
  # read rate of a sum over the same array is measured too.
  total = jax.jit(jnp.sum)
  r = common.time_interleaved(
      {"read": lambda: total(a)}, repeats=repeats, warmup=2, min_sample_s=0.05
  )["read"]
  return {
      "copy_mb": mb,
      "copy_gbps_best": 2 * n * 4 / min(t.samples) / 1e9,
      "copy_gbps_median": 2 * n * 4 / t.median / 1e9,
      "read_gbps_best": n * 4 / min(r.samples) / 1e9,
      "read_gbps_median": n * 4 / r.median / 1e9,
  }


@dataclasses.dataclass
class Point:
  row: dict[str, Any]
  call: Any
  linears: Any = None
  folded: dict[str, Any] = dataclasses.field(default_factory=dict)


def linears_call(
    decoder, weights, batch: int, tokens: int, *, keep_folded: bool = False
):
  """A compiled scan of `tokens` steps running ONLY the prepared linears of
  every layer (fused QKV, output, FFN in and out) at batch `batch`, each
  step's input depending on the last: the weight reads and multiply-adds
  of a decoding step without attention, norms, embedding or softmax (the
  breakdown of a step's time). Returns a zero-argument call.

  keep_folded (M_n algebras, every weight prepared for 'fold'): the
  activations stay in the folded layout from layer to layer
  (`kernels.dense_prepared_folded`), as a decoder that never unfolds
  would run them; without it each 'fold' call folds and unfolds its own.
  """
  m = decoder.model
  c = m.num_channels
  if keep_folded:
    dense, cut = kernels.dense_prepared_folded, (lambda a, i, j: a[..., i:j, :])
  else:
    dense, cut = kernels.dense_prepared, (lambda a, i, j: a[:, i:j])

  def body(x, _):
    for lw in weights["layers"]:
      qkv = dense(x, lw["qkv"])
      # All three thirds used, so no product can be sliced away.
      a = cut(qkv, 0, c) + cut(qkv, c, 2 * c) + cut(qkv, 2 * c, 3 * c)
      y = dense(dense(a, lw["output"]), lw["ffn_in"])
      x = x + 1e-3 * dense(y, lw["ffn_out"])
    return x, None

  x0 = jnp.ones((batch, c, m.algebra.dim), weights["layers"][0]["u"].dtype)
  if keep_folded:
    x0 = layout.fold(x0, m.algebra)
  fn = jax.jit(lambda ws, x: jax.lax.scan(body, x, None, length=tokens)[0])
  compiled = fn.lower(weights, x0).compile()
  return lambda: compiled(weights, x0)


def prepare_point(
    alg, size, mem, batch, tokens, paths, *, breakdown: bool = False
) -> tuple[Point, Any]:
  mem_len, clamp_len = mem
  width = width_for(alg, size)
  build = build_fn(alg, size, width, mem_len, clamp_len)
  params = init_params(build)
  decoder = txl_decoding.TXLDecoder(
      build, batch_size=batch, paths="measure" if paths == "measure" else None
  )
  weights = decoder.prepare(params)
  prompt = np.random.default_rng(0).integers(0, size.vocab, (batch, PROMPT_LEN))
  logp, cache = decoder.start(params, weights, prompt)
  key = jax.random.PRNGKey(0)
  temp = jnp.float32(1.0)
  t0 = time.perf_counter()
  compiled = decoder.generate.lower(
      params, weights, cache, logp, key, temp, num_tokens=tokens
  ).compile()
  compile_s = time.perf_counter() - t0
  nbytes = txl_decoding.bytes_per_token(decoder, params, weights, batch)
  step_bytes = sum(nbytes.values())
  n_params = sum(int(a.size) for a in jax.tree.leaves(params))
  row = {
      "size": size.name,
      "algebra": alg.name,
      "d": alg.dim,
      "density": alg.macs_per_product / alg.dim,
      "width_multiplier": width,
      "channels": decoder.model.num_channels,
      "params": n_params,
      "mem_len": mem_len,
      "clamp_len": clamp_len,
      "window": decoder.window,
      "batch": batch,
      "tokens": tokens,
      "paths": decoder.paths,
      "compile_s": compile_s,
      "bytes_weights_per_step": nbytes["weights"],
      "bytes_kv_per_step": nbytes["kv"],
      "bytes_positions_per_step": nbytes["positions"],
      "bytes_per_token": step_bytes / batch,
  }

  def call():
    return compiled(params, weights, cache, logp, key, temp)

  linears = linears_call(decoder, weights, batch, tokens) if breakdown else None
  folded = {}
  if breakdown and alg.matrix_shape is not None:
    # Per-call fold/unfold against activations kept folded, on the same
    # all-'fold' weights: what a decoder that never unfolds could gain.
    dec_f = txl_decoding.TXLDecoder(
        build,
        batch_size=batch,
        paths=dict.fromkeys(txl_decoding.LINEARS, "fold"),
    )
    w_f = dec_f.prepare(params)
    folded = {
        "fold": linears_call(dec_f, w_f, batch, tokens),
        "kept_folded": linears_call(
            dec_f, w_f, batch, tokens, keep_folded=True
        ),
    }
  return Point(row, call, linears, folded), (build, params)


def before_ms_per_token(build, params, size, mem_len, tokens: int) -> float:
  """ms/token of `sampling.reference_generate` at batch 1 (compile
  excluded by its own timing)."""

  def fwd(t, mems, n):
    return build().log_prob(t, mems, num_valid_mems=n)

  f = jax.jit(hk.without_apply_rng(hk.transform(fwd)).apply)
  model = txl_decoding.capture(build)
  shape = (
      model.num_layers,
      1,
      mem_len,
      model.num_channels,
      model.algebra.dim,
  )
  prompt = list(np.random.default_rng(0).integers(0, size.vocab, PROMPT_LEN))
  _, _, _, tps = sampling.reference_generate(
      f, params, prompt, tokens + 2, mem_shape=shape, seed=0
  )
  return 1e3 / tps


def run(args) -> tuple[list[dict[str, Any]], list[str], dict[str, float]]:
  rows, skipped = [], []
  bw = copy_bandwidth(args.copy_mb, args.repeats)
  print(
      f"copy bandwidth: {bw['copy_gbps_best']:.1f} GB/s best, "
      f"{bw['copy_gbps_median']:.1f} median; read "
      f"{bw['read_gbps_best']:.1f} best, {bw['read_gbps_median']:.1f} "
      f"median ({args.copy_mb:g} MiB)",
      flush=True,
  )
  for size_name in args.sizes:
    size = SIZES[size_name]
    for mem in size.mems:
      if args.mems and mem[0] not in args.mems:
        continue
      for batch in args.batches:
        # Every algebra's rings are alive at once (interleaved timing), and
        # a call copies its own once more.
        need = sum(
            ring_bytes(algebras.get(n), size, mem[0], batch)
            for n in args.algebras
        ) + max(
            ring_bytes(algebras.get(n), size, mem[0], batch)
            for n in args.algebras
        )
        if need > args.max_cache_gb * 1e9:
          note = (
              f"{size_name} mem {mem[0]} B={batch}: skipped, the K/V rings "
              f"need {need / 1e9:.1f} GB (> --max_cache_gb "
              f"{args.max_cache_gb:g})"
          )
          print("  " + note, flush=True)
          skipped.append(note)
          continue
        points, builds = {}, {}
        for name in args.algebras:
          alg = algebras.get(name)
          points[name], builds[name] = prepare_point(
              alg,
              size,
              mem,
              batch,
              args.tokens,
              args.paths,
              breakdown=batch == 1 and args.breakdown,
          )
        timings = common.time_interleaved(
            {n: p.call for n, p in points.items()},
            repeats=args.repeats,
            warmup=1,
            min_sample_s=args.min_sample_ms / 1e3,
        )
        linears = {}
        if batch == 1 and args.breakdown:
          calls = {n: p.linears for n, p in points.items()}
          for n, p in points.items():
            calls.update({f"{n}/{k}": f for k, f in p.folded.items()})
          linears = common.time_interleaved(
              calls,
              repeats=args.repeats,
              warmup=1,
              min_sample_s=args.min_sample_ms / 1e3,
          )
        base_ms = base_gbps = None
        for name, p in points.items():
          t = timings[name]
          r = p.row
          r.update(t.summary_ms())
          r["ms_per_step"] = r["ms_median"] / args.tokens
          r["ms_per_token"] = r["ms_per_step"] / batch
          r["tokens_per_s"] = 1e3 / r["ms_per_token"]
          step_bytes = r["bytes_per_token"] * batch
          r["gbps"] = step_bytes / (r["ms_per_step"] / 1e3) / 1e9
          r["fraction_of_copy"] = r["gbps"] / bw["copy_gbps_best"]
          r["fraction_of_read"] = r["gbps"] / bw["read_gbps_best"]
          if base_ms is None and name == args.algebras[0]:
            base_ms, base_gbps = r["ms_per_step"], r["gbps"]
          r["time_vs_" + args.algebras[0]] = r["ms_per_step"] / base_ms
          r["gbps_vs_" + args.algebras[0]] = r["gbps"] / base_gbps
          if name in linears:
            r["linears_ms_per_step"] = linears[name].median * 1e3 / args.tokens
            r["rest_ms_per_step"] = r["ms_per_step"] - r["linears_ms_per_step"]
          for k in p.folded:
            r[f"linears_{k}_ms_per_step"] = (
                linears[f"{name}/{k}"].median * 1e3 / args.tokens
            )
          want_before = (
              batch == 1
              and (size_name != "base" or mem[0] <= 64)
              and args.before_tokens > 0
          )
          if want_before:
            build, params = builds[name]
            b = before_ms_per_token(
                build, params, size, mem[0], args.before_tokens
            )
            r["before_ms_per_token"] = b
            r["speedup_vs_before"] = b / r["ms_per_token"]
          rows.append(r)
          print(
              f"  {size_name} mem {mem[0]} B={batch} {name:>4}: "
              f"{r['ms_per_token']:.3f} ms/token "
              f"(x{r['time_vs_' + args.algebras[0]]:.2f} per step), "
              f"{r['gbps']:.1f} GB/s"
              + (
                  f", linears {r['linears_ms_per_step']:.3f} + rest "
                  f"{r['rest_ms_per_step']:.3f} ms/step"
                  if "linears_ms_per_step" in r
                  else ""
              )
              + (
                  f" (all-fold linears {r['linears_fold_ms_per_step']:.3f}, "
                  f"kept folded {r['linears_kept_folded_ms_per_step']:.3f})"
                  if "linears_kept_folded_ms_per_step" in r
                  else ""
              )
              + (
                  f", before {r['before_ms_per_token']:.2f} ms/token "
                  f"(x{r['speedup_vs_before']:.1f})"
                  if "before_ms_per_token" in r
                  else ""
              ),
              flush=True,
          )
  return rows, skipped, bw


def table(
    rows: Sequence[dict[str, Any]], bw: dict[str, float], ref: str
) -> str:
  header = [
      "size",
      "mem",
      "B",
      "algebra",
      "params",
      "ms/token",
      "tokens/s",
      f"step x {ref}",
      "MB/token weights / KV / pos",
      "GB/s",
      f"GB/s x {ref}",
      "% copy",
      "% read",
      "before ms/token",
      "speed-up",
  ]
  body = []
  for r in rows:
    b = r["batch"]
    body.append(
        [
            r["size"],
            r["mem_len"],
            b,
            r["algebra"],
            f"{r['params'] / 1e6:.2f} M",
            f"{r['ms_per_token']:.3f}",
            f"{r['tokens_per_s']:.0f}",
            f"{r['time_vs_' + ref]:.2f}",
            " / ".join(
                f"{r[k] / b / 1e6:.2f}"
                for k in (
                    "bytes_weights_per_step",
                    "bytes_kv_per_step",
                    "bytes_positions_per_step",
                )
            ),
            f"{r['gbps']:.1f}",
            f"{r['gbps_vs_' + ref]:.2f}",
            f"{100 * r['fraction_of_copy']:.0f}",
            f"{100 * r['fraction_of_read']:.0f}",
            f"{r['before_ms_per_token']:.2f}"
            if "before_ms_per_token" in r
            else "",
            f"{r['speedup_vs_before']:.1f}x"
            if "speedup_vs_before" in r
            else "",
        ]
    )
  return (
      common.markdown_table(header, body)
      + f"\n\nCopy bandwidth (same run): {bw['copy_gbps_best']:.1f} GB/s "
      f"(fastest; median {bw['copy_gbps_median']:.1f}); read bandwidth "
      f"{bw['read_gbps_best']:.1f} GB/s (median "
      f"{bw['read_gbps_median']:.1f})."
  )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  p = argparse.ArgumentParser(
      prog="python -m bench.decode",
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--quick", action="store_true")
  p.add_argument("--out", default=None, help="write the results as JSON")
  p.add_argument("--sizes", default=None, help="comma list of small,base,tiny")
  p.add_argument("--algebras", default="R,C,H,M2R,M4R")
  p.add_argument("--batches", default="1,4,16")
  p.add_argument(
      "--mems",
      default="",
      help="comma list of memory lengths to run (default: each size's)",
  )
  p.add_argument("--tokens", type=int, default=None)
  p.add_argument(
      "--before_tokens",
      type=int,
      default=16,
      help="tokens of the old sampler at batch 1 (0 = skip)",
  )
  p.add_argument(
      "--paths",
      choices=("default", "measure"),
      default="measure",
      help="kernel paths: timed per linear (default) or choose_dense_path",
  )
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--min_sample_ms", type=float, default=50.0)
  p.add_argument("--copy_mb", type=float, default=None)
  p.add_argument(
      "--breakdown",
      action=argparse.BooleanOptionalAction,
      default=True,
      help="at batch 1, also time the layers' linears alone (linears_call)",
  )
  p.add_argument(
      "--max_cache_gb",
      type=float,
      default=8.0,
      help="skip a (size, memory, batch) point whose K/V rings need more",
  )
  args = p.parse_args(argv)
  args.sizes = (args.sizes or ("small" if args.quick else "small,base")).split(
      ","
  )
  bad = [s for s in args.sizes if s not in SIZES]
  if bad:
    p.error(f"unknown --sizes {bad}; valid: {', '.join(SIZES)}")
  args.algebras = args.algebras.split(",")
  for name in args.algebras:
    try:
      algebras.get(name)
    except ValueError as e:
      p.error(str(e))
  try:
    args.batches = [int(b) for b in args.batches.split(",")]
  except ValueError:
    p.error(f"--batches must be comma-separated ints, got {args.batches!r}")
  try:
    args.mems = [int(m) for m in args.mems.split(",") if m]
  except ValueError:
    p.error(f"--mems must be comma-separated ints, got {args.mems!r}")
  if any(b < 1 for b in args.batches):
    p.error("--batches must be >= 1")
  args.tokens = args.tokens or (32 if args.quick else 64)
  args.repeats = args.repeats or (3 if args.quick else 5)
  args.copy_mb = args.copy_mb or (256 if args.quick else 1024)
  if args.tokens < 1 or args.repeats < 1 or args.copy_mb <= 0:
    p.error("--tokens, --repeats and --copy_mb must be positive")
  return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  args = parse_args(argv)
  info = common.machine_info()
  print(common.format_machine_info(info), flush=True)
  t0 = time.perf_counter()
  rows, skipped, bw = run(args)
  md = table(rows, bw, args.algebras[0])
  print(md, flush=True)
  results = {
      "benchmark": "decode",
      "argv": list(sys.argv[1:] if argv is None else argv),
      "machine": info,
      "copy_bandwidth": bw,
      "rows": rows,
      "skipped": skipped,
      "notes": [
          "random (initialisation) weights; timing only",
          "ms/token = generate call / tokens / batch; interleaved per point",
          "before = training.sampling.reference_generate at batch 1",
      ],
      "seconds": time.perf_counter() - t0,
      "table": md,
  }
  common.write_results(args.out, results)
  print(f"total {results['seconds']:.0f} s", flush=True)
  return results


if __name__ == "__main__":
  main()
