"""The model benchmark's ceilings (dense matmul, 3x3 conv), derived numbers
(throughput, GFLOP/s, MFU, time / R) and markdown output."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from bench import common
from bench.models_common import DTYPES, TXL, VISION_CONFIGS
from bench.models_txl import CORPUS_BYTES, CORPUS_SYMBOLS, TXL_SIZES

# Conv ceiling problem: a ResNet-50 stage-2 3x3 conv at batch 8.
CONV_CEILING = dict(batch=8, hw=28, cin=128, cout=128)


def measure_ceilings(
    size: int,
    *,
    dtype: str = "float32",
    repeats: int = 5,
    conv: bool = True,
) -> dict[str, dict[str, Any]]:
  """GFLOP/s of a dense matmul [size, size] @ [size, size] (forward) and of
  a 3x3 SAME convolution (CONV_CEILING shapes, NHWC/HWIO), interleaved.

  Returns:
    {'matmul': {...}, 'conv3x3': {...}} (conv only if `conv`), each with
    'shape', 'flops', 'gflops' (from the fastest sample: the ceiling),
    'gflops_median' and `Timing.summary_ms`.
  """
  dt = DTYPES[dtype]
  k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
  a = jax.random.normal(k1, (size, size), dt)
  b = jax.random.normal(k2, (size, size), dt)
  mm = jax.jit(jnp.matmul)
  fns = {"matmul": lambda: mm(a, b)}
  flops = {"matmul": 2 * size**3}
  shapes = {"matmul": f"{size}x{size} @ {size}x{size} {dtype}"}
  if conv:
    c = CONV_CEILING
    x = jax.random.normal(k3, (c["batch"], c["hw"], c["hw"], c["cin"]), dt)
    w = jax.random.normal(k4, (3, 3, c["cin"], c["cout"]), dt)
    cv = jax.jit(
        lambda x, w: lax.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
    )
    fns["conv3x3"] = lambda: cv(x, w)
    flops["conv3x3"] = 2 * c["batch"] * c["hw"] ** 2 * 9 * c["cin"] * c["cout"]
    shapes["conv3x3"] = (
        f"B={c['batch']} {c['hw']}x{c['hw']} {c['cin']}->{c['cout']} 3x3 "
        f"{dtype}"
    )
  timings = common.time_interleaved(
      fns, repeats=repeats, warmup=2, min_sample_s=0.05
  )
  return {
      name: {
          "shape": shapes[name],
          "flops": flops[name],
          "gflops": flops[name] / min(timings[name].samples) / 1e9,
          "gflops_median": flops[name] / timings[name].median / 1e9,
          **timings[name].summary_ms(),
      }
      for name in fns
  }


def add_derived(
    rows: Sequence[dict[str, Any]], ceilings: Mapping[str, Mapping[str, Any]]
) -> None:
  """Adds throughput, FLOPs, GFLOP/s, MFU and the ratio to R to timed rows.

  Per row: 'flops_per_step' = 6 * macs_per_example * batch, 'per_s' =
  items_per_step / median seconds, 'gflops' = flops_per_step / median
  seconds / 1e9, 'mfu' = gflops / ceilings['matmul']['gflops'] (and
  'mfu_conv' against 'conv3x3' when measured), 'vs_R' = median / the median
  of algebra R of the same model (None without an R row).
  """
  r_ms = {r["model"]: r["ms_median"] for r in rows if r["algebra"] == "R"}
  for r in rows:
    sec = r["ms_median"] / 1e3
    r["flops_per_step"] = 6 * r["macs_per_example"] * r["batch"]
    r["per_s"] = r["items_per_step"] / sec
    r["gflops"] = r["flops_per_step"] / sec / 1e9
    r["mfu"] = r["gflops"] / ceilings["matmul"]["gflops"]
    if "conv3x3" in ceilings:
      r["mfu_conv"] = r["gflops"] / ceilings["conv3x3"]["gflops"]
    ref = r_ms.get(r["model"])
    r["vs_R"] = r["ms_median"] / ref if ref else None


def _count(n: float) -> str:
  if n >= 1e9:
    return f"{n / 1e9:.2f}G"
  if n >= 1e6:
    return f"{n / 1e6:.2f}M"
  if n >= 1e3:
    return f"{n / 1e3:.1f}k"
  return f"{n:.0f}"


def _ms(r: Mapping[str, Any]) -> str:
  def f(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"

  return f"{f(r['ms_median'])} [{f(r['ms_q25'])}-{f(r['ms_q75'])}]"


def format_ceilings(ceilings: Mapping[str, Mapping[str, Any]]) -> str:
  lines = []
  for name, c in ceilings.items():
    lines.append(
        f"ceiling {name} ({c['shape']}): {c['gflops']:.1f} GFLOP/s "
        f"(fastest of {c['n_samples']} samples, {c['ms_min']:.2f} ms; median "
        f"{c['ms_median']:.2f} ms = {c['gflops_median']:.1f} GFLOP/s)"
    )
  return "\n".join(lines)


def tables(
    rows: Sequence[dict[str, Any]], samples: Sequence[dict[str, Any]] = ()
) -> str:
  """Markdown: one line per (model, algebra); then the sampling speeds."""
  body = [
      [
          r["model"],
          r["algebra"],
          f"{r['width_multiplier']:.3f}",
          _count(r["params"]),
          _count(r["macs_per_example"]),
          _ms(r),
          f"{r['per_s']:,.{0 if r['per_s'] >= 1000 else 1}f} "
          f"{'img' if r['unit'] == 'images' else 'tok'}/s",
          f"{r['gflops']:.1f}",
          f"{r['mfu']:.1%}",
          "n/a" if r["vs_R"] is None else f"{r['vs_R']:.2f}",
      ]
      for r in rows
  ]
  out = [
      "## Training step (compile excluded; median [IQR] of interleaved "
      "rounds; GFLOP/s and MFU from intrinsic FLOPs = 6 x MACs/example x "
      "batch)",
      "",
      common.markdown_table(
          [
              "model",
              "algebra",
              "width x",
              "params",
              "MACs/example",
              "step ms [IQR]",
              "throughput",
              "GFLOP/s",
              "MFU",
              "time / R",
          ],
          body,
      ),
  ]
  if samples:
    out += [
        "",
        "## Transformer-XL sampling, batch 1 with memory (training.sampling."
        "Sampler; compile excluded; median [min-max] of the generations)",
        "",
        common.markdown_table(
            [
                "algebra",
                "width x",
                "params",
                "memory",
                "tokens",
                "tokens/s",
                "ms/token",
            ],
            [
                [
                    s["algebra"],
                    f"{s['width_multiplier']:.3f}",
                    _count(s["params"]),
                    s["mem_len"],
                    s["num_tokens"],
                    f"{s['tokens_per_s']:,.0f} [{s['tokens_per_s_min']:,.0f}"
                    f"-{s['tokens_per_s_max']:,.0f}]",
                    f"{s['ms_per_token']:.2f}",
                ]
                for s in samples
            ],
        ),
    ]
  return "\n".join(out)


def notes(args: argparse.Namespace) -> list[str]:
  """What the numbers include and exclude (printed and stored)."""
  out = []
  if any(m in VISION_CONFIGS for m in args.models):
    out.append(
        f"Vision: random images [{args.batch}, {args.image_size}, "
        f"{args.image_size}, 3] and labels made once on the device; the "
        "ImageNet data pipeline (TFDS decode, augmentation, host-to-device "
        "copy) is NOT measured. Widths: matched by "
        f"--match={args.match} x width_scale {args.width_scale}."
    )
  if TXL in args.models:
    s = TXL_SIZES[args.txl_size]
    out.append(
        f"Transformer-XL ({args.txl_size}): {s.num_layers} layers, d_model "
        f"{s.d_model}, {s.num_heads} heads, d_inner {s.d_inner} (real widths "
        f"before matching), tgt_len {s.tgt_len}, mem_len {s.mem_len}, batch "
        f"{s.batch}; one fixed batch of a generated {CORPUS_BYTES:,}-byte "
        f"Markov file ({CORPUS_SYMBOLS} symbols) on the device. Widths: "
        + ("1 (--match none)" if args.match == "none" else "match_params")
        + f". Sampling memory {s.eval_mem_len}."
    )
  out.append(
      "MACs count linear layers only (no attention scores, norms or "
      "optimizer); MFU is against the dense matmul ceiling above; time / R "
      "compares algebras timed in the same interleaved rounds."
  )
  if jax.config.read("jax_disable_most_optimizations"):
    out.append(
        "WARNING: jax_disable_most_optimizations is on; these timings are "
        "not representative."
    )
  return out
