r"""Times the paths of `kernels.depthwise_conv2d` (the table behind its
`choose_path`; the numbers are in `algebranets/kernels/depthwise.py`).

    python -m bench.depthwise --algebras R,C,H,M2R \\
        [--batch 4] [--shapes 128:56:1,256:28:2,...] [--modes fwd,fwd+bwd] \\
        [--repeats 5]

MobileNet v1 depthwise shapes (3x3, SAME) by default; prints one line per
(algebra, shape, mode) and then a markdown table of milliseconds per call.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from algebranets import algebras
from algebranets import layout as layout_lib
from algebranets.kernels import depthwise

# MobileNet v1 depthwise layers at 224x224: (real channels, spatial, stride).
_BENCH_SHAPES = ((128, 56, 1), (256, 28, 2), (512, 14, 1), (1024, 7, 1))


def _min_ms(fns, repeats: int, budget_s: float) -> dict[str, float]:
  """Minimum wall milliseconds per call of each jitted callable, over
  interleaved rounds (the minimum is the least disturbed by other jobs on a
  shared machine). A callable slower than budget_s is timed once."""

  def once(f):
    t0 = time.perf_counter()
    jax.block_until_ready(f())
    return time.perf_counter() - t0

  best, rounds = {}, {}
  for k, f in fns.items():
    once(f)  # compile
    best[k] = once(f)
    rounds[k] = 1 if best[k] > budget_s else repeats
  for r in range(1, repeats):
    for k, f in fns.items():
      if r < rounds[k]:
        best[k] = min(best[k], once(f))
  return {k: 1e3 * v for k, v in best.items()}


def _benchmark(
    algebra_names: Sequence[str] = ("R", "C", "H", "M2R"),
    *,
    batch: int = 4,
    shapes: Sequence[tuple[int, int, int]] = _BENCH_SHAPES,
    modes: Sequence[str] = ("fwd", "fwd+bwd"),
    repeats: int = 5,
    budget_s: float = 2.0,
) -> list[dict]:
  """Times the paths on MobileNet-like depthwise shapes (3x3, SAME).

  Variants: 'grouped' and 'taps' (standard layout), 'taps_autodiff' (the
  taps forward differentiated by JAX instead of the hand-written backward:
  the reason for the custom VJP) and, for M_n(base), 'taps_folded' and
  'grouped_folded' on the folded layout that folded networks use.

  Returns:
    One dict per (algebra, shape, mode): algebra, shape, mode and the
    milliseconds of each variant.
  """
  rng = np.random.default_rng(0)
  rows = []
  for name in algebra_names:
    alg = algebras.get(name)
    d = alg.dim
    for real, hw, s in shapes:
      c = max(1, round(real / d))
      x = jnp.asarray(rng.standard_normal((batch, hw, hw, c, d)), jnp.float32)
      w = jnp.asarray(rng.standard_normal((3, 3, 1, c, d)) / 3, jnp.float32)
      geom = depthwise._geometry((hw, hw), w.shape, s, "SAME", 1, "benchmark")
      variants = {
          "grouped": (
              x,
              functools.partial(depthwise.depthwise_conv2d, path="grouped"),
          ),
          "taps": (
              x,
              functools.partial(depthwise.depthwise_conv2d, path="taps"),
          ),
          "taps_autodiff": (
              x,
              lambda x, w, algebra, stride, geom=geom: depthwise._run_taps(
                  x, w[:, :, 0], algebra, True, geom, autodiff=True
              ),
          ),
      }
      if alg.matrix_shape is not None:
        x_f = layout_lib.fold(x, alg)
        for p in depthwise.PATHS:
          variants[f"{p}_folded"] = (
              x_f,
              functools.partial(depthwise.depthwise_conv2d_folded, path=p),
          )
      for mode in modes:
        fns = {}
        for key, (xin, fn) in variants.items():
          f = functools.partial(fn, algebra=alg, stride=s)
          if mode == "fwd":
            fns[key] = functools.partial(jax.jit(f), xin, w)
            continue
          ct = jnp.asarray(
              rng.standard_normal(jax.eval_shape(f, xin, w).shape), jnp.float32
          )
          step = jax.jit(lambda x, w, ct, f=f: jax.vjp(f, x, w)[1](ct))
          fns[key] = functools.partial(step, xin, w, ct)
        ms = _min_ms(fns, repeats, budget_s)
        shape = f"B={batch} {hw}x{hw} C={c} s{s}"
        rows.append({"algebra": name, "shape": shape, "mode": mode, **ms})
        print(
            name,
            shape,
            mode,
            " ".join(f"{k}={v:.2f}" for k, v in ms.items()),
            flush=True,
        )
  return rows


def _main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=_benchmark.__doc__)
  parser.add_argument("--algebras", default="R,C,H,M2R")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument(
      "--shapes",
      default=",".join(f"{r}:{h}:{s}" for r, h, s in _BENCH_SHAPES),
      help="real_channels:spatial:stride,...",
  )
  parser.add_argument("--modes", default="fwd,fwd+bwd")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args(argv)
  shapes = [tuple(int(v) for v in s.split(":")) for s in args.shapes.split(",")]
  print(f"backend {jax.default_backend()}, jax {jax.__version__}")
  rows = _benchmark(
      args.algebras.split(","),
      batch=args.batch,
      shapes=shapes,
      modes=args.modes.split(","),
      repeats=args.repeats,
  )
  keys = sorted({k for r in rows for k in r} - {"algebra", "shape", "mode"})
  print("| algebra | shape | mode | " + " | ".join(keys) + " |")
  print("|" + "---|" * (3 + len(keys)))
  for r in rows:
    cells = [f"{r[k]:.1f}" if k in r else "" for k in keys]
    print(
        f"| {r['algebra']} | {r['shape']} | {r['mode']} | "
        + " | ".join(cells)
        + " |"
    )


if __name__ == "__main__":
  _main()
