r"""ConvAC expressivity probe: grid-tensor rank vs receptive-field overlap.

  python -m scripts.convac_rank --out workdirs/convac_rank.json
  python -m scripts.convac_rank --kernels 1,2,3 --channels 2 --seeds 2 \
      --positions 6 --templates 2 --layouts shallow --out /tmp/r.json

For every layout, width Z (real channels), kernel size k (stride s fixed,
so k > s overlaps) and seed it builds a random-weight 1-D ConvAC
(`algebranets.studies.grid_tensor`, identity representation by default),
evaluates its raw class score on all M^N inputs made of M random
orthonormal templates in R^M (so F = templates is orthogonal and the grid
tensor's matricizations have the singular values of the circuit's
coefficient tensor), and reports the
numerical rank of the odd/even and left/right matricizations next to the
largest possible rank min(M^|I|, M^|J|).

Layouts (N positions, 'SAME' zero padding, global product pooling at the
end):
  shallow  one block: conv (1, k)/s with Z channels, then the global
           product over all positions. k = 1 is the shallow
           non-overlapping ConvAC, a sum of Z products: rank <= Z.
  deep     log2(N) blocks of conv (1, k)/s and product pooling of
           non-overlapping pairs (N a power of 2). k = 1 is the
           hierarchical (HT) ConvAC: left/right rank <= Z (one sum over Z
           channels joins the two halves), odd/even rank is high.

Prints a markdown table (rank over seeds, min-max, per kernel size) and
writes JSON (--out) that `scripts/plot_convac.py --rank_json` plots.
Measured default run: see docs/studies.md.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any

from algebranets.studies import grid_tensor as gt

LAYOUTS = ("shallow", "deep")
# Measured on the default grid: singular values that are rounding noise are
# <= 5e-16 x the largest (float64), while the smallest genuine ones reach
# 1e-13 (products of many factors have fast-decaying spectra). 1e-13 sits
# 200x above that floor; pass --rtol to see how the ranks move.
DEFAULT_RTOL = 1e-13


def layout_blocks(layout: str, num_positions: int) -> tuple[int, int]:
  """(depth, pool window) of a layout for N positions.

  Raises:
    ValueError: unknown layout; 'deep' with N not a power of 2 >= 2.
  """
  if layout == "shallow":
    return 1, 1
  if layout == "deep":
    depth = num_positions.bit_length() - 1
    if num_positions < 2 or 2**depth != num_positions:
      raise ValueError(
          f"convac_rank: layout 'deep' pools pairs down to one position, so "
          f"--positions must be a power of 2 (>= 2), got {num_positions}."
      )
    return depth, 2
  raise ValueError(
      f"convac_rank: unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}."
  )


def run_probe(
    *,
    layouts: Sequence[str] = LAYOUTS,
    kernels: Sequence[int] = (1, 2, 3, 4),
    stride: int = 1,
    channels: Sequence[int] = (1, 2, 4),
    seeds: int = 3,
    positions: int = 8,
    templates: int = 3,
    partitions: Sequence[str] = ("odd_even", "left_right"),
    representation: str = "identity",
    algebra: str = "R",
    pooling: str = "component",
    rtol: float = DEFAULT_RTOL,
    dtype: str = "float64",
    max_entries: int = gt.DEFAULT_MAX_ENTRIES,
    log=print,
) -> dict[str, Any]:
  """Runs the probe grid; returns the JSON-ready result.

  Returns:
    {"settings": the arguments, "runs": one record per (layout, channels,
    kernel, seed) with "ranks" per partition (`RankResult.to_json()`),
    "summary": one row per (layout, channels, kernel, partition) with
    rank_min / rank_max / rank_mean over seeds and max_rank, "wall_time_s"}.

  Raises:
    ValueError: bad sizes (too big a grid tensor, a layout that does not fit
      the positions, invalid model values).
  """
  start = time.perf_counter()
  gt.check_size(templates, positions, max_entries)  # before any compile
  for p in partitions:
    gt.partition(p, positions)
  blocks = {layout: layout_blocks(layout, positions) for layout in layouts}
  settings = {
      "layouts": list(layouts),
      "kernels": [int(k) for k in kernels],
      "stride": int(stride),
      "channels": [int(c) for c in channels],
      "seeds": int(seeds),
      "positions": int(positions),
      "templates": int(templates),
      "template_channels": int(templates),
      "partitions": list(partitions),
      "representation": representation,
      "algebra": algebra,
      "pooling": pooling,
      "rtol": float(rtol),
      "dtype": dtype,
      "padding": "SAME",
  }
  runs = []
  for layout in layouts:
    depth, pool = blocks[layout]
    for width in channels:
      for kernel in kernels:
        cfg = gt.convac_probe_config(
            kernel=kernel,
            channels=width,
            stride=stride,
            depth=depth,
            pool=pool,
            representation=representation,
            rep_channels=0 if representation == "identity" else templates,
            algebra=algebra,
            pooling=pooling,
        )
        for seed in range(seeds):
          probe = gt.make_convac_probe(
              cfg,
              num_positions=positions,
              input_channels=templates,
              seed=seed,
              dtype=dtype,
          )
          # The templates are drawn per seed too: rank is a generic
          # property of weights and templates together.
          t = gt.random_templates(templates, templates, seed=1000 + seed)
          a = gt.grid_tensor(probe, t, positions, max_entries=max_entries)
          ranks = {
              p: gt.matricization_rank(a, p, rtol=rtol).to_json()
              for p in partitions
          }
          runs.append(
              {
                  "layout": layout,
                  "depth": depth,
                  "pool": pool,
                  "channels": int(width),
                  "kernel": int(kernel),
                  "stride": int(stride),
                  "overlap": int(kernel) > int(stride),
                  "seed": seed,
                  "params": probe.num_params,
                  "ranks": ranks,
              }
          )
        last = runs[-1]["ranks"]
        log(
            f"{layout} Z={width} k={kernel}: "
            + ", ".join(f"{p} rank {last[p]['rank']}" for p in partitions)
            + f" (seed {seeds - 1}; {time.perf_counter() - start:.1f} s)"
        )
  return {
      "settings": settings,
      "runs": runs,
      "summary": summarize(runs, partitions),
      "wall_time_s": time.perf_counter() - start,
  }


def summarize(
    runs: Sequence[dict[str, Any]], partitions: Sequence[str]
) -> list[dict[str, Any]]:
  """Aggregates ranks over seeds per (layout, channels, kernel, partition)."""
  groups: dict[tuple, list[dict]] = {}
  for run in runs:
    key = (run["layout"], run["channels"], run["kernel"], run["stride"])
    groups.setdefault(key, []).append(run)
  rows = []
  for (layout, width, kernel, stride), members in groups.items():
    for p in partitions:
      ranks = [m["ranks"][p]["rank"] for m in members]
      gaps = [m["ranks"][p]["gap"] for m in members]
      finite = [g for g in gaps if g is not None]
      dropped = [
          m["ranks"][p]["singular_values"][m["ranks"][p]["rank"]]
          for m in members
          if 0 < m["ranks"][p]["rank"] < len(m["ranks"][p]["singular_values"])
      ]
      rows.append(
          {
              "layout": layout,
              "channels": width,
              "kernel": kernel,
              "stride": stride,
              "overlap": kernel > stride,
              "partition": p,
              "rank_min": min(ranks),
              "rank_max": max(ranks),
              "rank_mean": sum(ranks) / len(ranks),
              "max_rank": members[0]["ranks"][p]["max_rank"],
              "min_gap": min(finite) if finite else None,
              "max_dropped": max(dropped) if dropped else None,
              "params": members[0]["params"],
              "seeds": len(members),
          }
      )
  return rows


def _rank_cell(row: dict[str, Any]) -> str:
  if row["rank_min"] == row["rank_max"]:
    return str(row["rank_min"])
  return f"{row['rank_min']}-{row['rank_max']}"


def markdown_table(result: dict[str, Any]) -> str:
  """Rank (min-max over seeds) per kernel size, one row per layout,
  partition and width."""
  settings = result["settings"]
  kernels = settings["kernels"]
  stride = settings["stride"]
  head = " | ".join(f"k={k}" for k in kernels)
  lines = [
      f"| layout | partition | channels Z | {head} | max rank |",
      "| --- | --- | ---: | "
      + " | ".join("---:" for _ in kernels)
      + " | ---: |",
  ]
  by_key = {
      (r["layout"], r["partition"], r["channels"], r["kernel"]): r
      for r in result["summary"]
  }
  for layout in settings["layouts"]:
    for p in settings["partitions"]:
      for width in settings["channels"]:
        row = [by_key[(layout, p, width, k)] for k in kernels]
        cells = " | ".join(_rank_cell(r) for r in row)
        lines.append(
            f"| {layout} | {p} | {width} | {cells} | {row[0]['max_rank']} |"
        )
  gaps = [r["min_gap"] for r in result["summary"] if r["min_gap"] is not None]
  dropped = [
      r["max_dropped"]
      for r in result["summary"]
      if r["max_dropped"] is not None
  ]
  lines += [
      "",
      f"Numerical rank of the grid tensor's matricization (N = "
      f"{settings['positions']} positions, M = {settings['templates']} "
      f"templates, {settings['representation']} representation, algebra "
      f"{settings['algebra']}, stride s = {stride}: k > s overlaps), min-max "
      f"over {settings['seeds']} seeds; singular values > rtol = "
      f"{settings['rtol']:g} x the largest ({settings['dtype']}). Largest "
      "dropped singular value (relative): "
      + (f"{max(dropped):.3g}" if dropped else "none dropped")
      + "; smallest ratio of the last kept to the first dropped one: "
      + (f"{min(gaps):.3g}." if gaps else "none dropped."),
  ]
  return "\n".join(lines)


def _int_list(text: str) -> list[int]:
  try:
    values = [int(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"expected comma-separated integers, e.g. 1,2,3; got {text!r}"
    ) from None
  if not values or min(values) < 1:
    raise argparse.ArgumentTypeError(
        f"expected positive integers, e.g. 1,2,3; got {text!r}"
    )
  return values


def _str_list(text: str) -> list[str]:
  return [v.strip() for v in text.split(",") if v.strip()]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m scripts.convac_rank",
      description=__doc__.split("\n\n")[0],
  )
  parser.add_argument("--layouts", type=_str_list, default=list(LAYOUTS))
  parser.add_argument("--kernels", type=_int_list, default=[1, 2, 3, 4])
  parser.add_argument("--stride", type=int, default=1)
  parser.add_argument(
      "--channels",
      type=_int_list,
      default=[1, 2, 4],
      help="Real widths Z of the convolutions (comma-separated).",
  )
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--positions", type=int, default=8, help="N.")
  parser.add_argument(
      "--templates",
      type=int,
      default=3,
      help="M templates in R^M (the grid tensor has M^N entries).",
  )
  parser.add_argument(
      "--partitions", type=_str_list, default=["odd_even", "left_right"]
  )
  parser.add_argument(
      "--representation",
      default="identity",
      choices=("identity", "linear_relu", "rbf"),
  )
  parser.add_argument("--algebra", default="R")
  parser.add_argument(
      "--pooling", default="component", choices=("component", "algebra")
  )
  parser.add_argument(
      "--rtol",
      type=float,
      default=DEFAULT_RTOL,
      help="Relative singular-value tolerance of the numerical rank "
      f"(default {DEFAULT_RTOL:g}).",
  )
  parser.add_argument(
      "--dtype", default="float64", choices=("float64", "float32")
  )
  parser.add_argument("--max_entries", type=int, default=gt.DEFAULT_MAX_ENTRIES)
  parser.add_argument("--out", default="", help="JSON file to write.")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
  """Command-line entry point; returns the exit status."""
  args = _parse_args(argv)
  if args.seeds < 1 or args.stride < 1:
    print(
        f"error: --seeds ({args.seeds}) and --stride ({args.stride}) must be "
        ">= 1.",
        file=sys.stderr,
    )
    return 1
  try:
    result = run_probe(
        layouts=args.layouts,
        kernels=args.kernels,
        stride=args.stride,
        channels=args.channels,
        seeds=args.seeds,
        positions=args.positions,
        templates=args.templates,
        partitions=args.partitions,
        representation=args.representation,
        algebra=args.algebra,
        pooling=args.pooling,
        rtol=args.rtol,
        dtype=args.dtype,
        max_entries=args.max_entries,
    )
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(markdown_table(result))
  print(f"wall time {result['wall_time_s']:.1f} s")
  if args.out:
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
