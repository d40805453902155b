r"""Plots of the ConvAC study: accuracy vs parameters, and rank vs overlap.

  python -m scripts.plot_convac --workdirs 'workdirs/convac_sweep/*' \
      --rank_json workdirs/convac_rank.json --out workdirs/convac_plots/convac

(a) --workdirs: runs of configs/convac.py (`scripts.results.collect_runs`).
    Runs are grouped by (kind, algebra, pooling, kernel, stride, channels,
    representation) and the final metric (default 'top1', the accuracy of
    the config's eval split) is averaged over seeds. Writes
    <out>_accuracy_vs_params.png: metric vs real parameters (log x), one
    line per (kind, algebra, pooling, kernel, stride) through the widths;
    solid = overlapping (kernel > stride), dashed = non-overlapping; circles
    ConvAC, squares ConvNet.
(b) --rank_json: the JSON of scripts/convac_rank.py. Writes
    <out>_rank_vs_overlap.png: numerical rank vs kernel size at the fixed
    stride, one panel per (layout, partition), one line per width (mean
    over seeds, bars min-max), the largest possible rank dashed.
Both tables go to <out>.md and are printed.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from algebranets import palette
from scripts import convac_rank, results

KIND_LABELS = {"convac": "ConvAC", "convnet": "ConvNet"}
KIND_MARKERS = {"convac": "o", "convnet": "s"}
METRIC_LABELS = {"top1": "top-1 accuracy", "top5": "top-5 accuracy"}


def _pair(value: Any) -> tuple[int, int]:
  if isinstance(value, (list, tuple)):
    if len(value) != 2:
      raise ValueError(f"expected an int or a pair, got {value!r}")
    return int(value[0]), int(value[1])
  return int(value), int(value)


def _pair_text(pair: tuple[int, int]) -> str:
  return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def convac_record(run: dict[str, Any]) -> dict[str, Any]:
  """The study's fields of one `results.collect_runs` record.

  Returns:
    dict with "kind", "algebra", "pooling", "representation", "kernel" and
    "stride" ((h, w) pairs), "overlap" (kernel > stride along some axis),
    "channels" (tuple of real widths per block), "params" (params_total),
    "workdir", "seed", "final_metrics".

  Raises:
    ValueError: not a convac run (model.name), or a malformed model section.
  """
  model = run["config"].get("model") or {}
  if model.get("name") != "convac":
    raise ValueError(
        f"{run['workdir']}: model.name is {model.get('name')!r}, not 'convac'"
    )
  try:
    kernel = _pair(model["kernel_size"])
    stride = _pair(model["stride"])
    channels = tuple(int(c) for c in model["channels"])
  except (KeyError, TypeError, ValueError) as e:
    raise ValueError(
        f"{run['workdir']}: model section lacks a valid kernel_size, stride "
        f"or channels ({e!r})"
    ) from None
  kind = str(model.get("kind", "convac"))
  return {
      "kind": kind,
      "algebra": str(run["algebra"]),
      # A ConvNet ignores `pooling`; do not split its groups by it.
      "pooling": str(model.get("pooling", "component"))
      if kind == "convac"
      else str(model.get("convnet_pool", "max")),
      "representation": str(model.get("representation", "")),
      "kernel": kernel,
      "stride": stride,
      "overlap": any(k > s for k, s in zip(kernel, stride, strict=True)),
      "channels": channels,
      "params": run["params_total"],
      "workdir": run["workdir"],
      "seed": run["seed"],
      "final_metrics": run["final_metrics"],
  }


def aggregate_runs(
    runs: Sequence[dict[str, Any]], metric: str
) -> list[dict[str, Any]]:
  """Groups convac runs and averages `metric` over seeds.

  Args:
    runs: from `results.collect_runs`; non-convac runs are skipped with a
      warning.
    metric: key of final_metrics.json, e.g. 'top1'.

  Returns:
    Rows sorted by (kind, algebra, pooling, kernel, stride, params) with the
    record fields plus "metric", "split", "mean", "std" (ddof=1, None for
    one seed), "n_seeds", "values".

  Raises:
    ValueError: no convac run, or a run without `metric`.
  """
  groups: dict[tuple, list[dict]] = {}
  skipped = []
  for run in runs:
    try:
      rec = convac_record(run)
    except ValueError as e:
      skipped.append(str(e))
      continue
    if metric not in rec["final_metrics"]:
      have = sorted(
          k for k in rec["final_metrics"] if k not in ("step", "split")
      )
      raise ValueError(
          f"plot_convac: run {rec['workdir']!r} has no metric {metric!r} in "
          f"final_metrics.json; it has {have}. Pick one with --metric."
      )
    key = (
        rec["kind"],
        rec["algebra"],
        rec["pooling"],
        rec["kernel"],
        rec["stride"],
        rec["channels"],
        rec["representation"],
    )
    groups.setdefault(key, []).append(rec)
  if skipped:
    warnings.warn(
        "plot_convac: skipped runs that are not ConvAC study runs:\n  "
        + "\n  ".join(skipped),
        UserWarning,
        stacklevel=2,
    )
  if not groups:
    raise ValueError(
        "plot_convac: none of the runs is a convac run (model.name "
        "'convac'); point --workdirs at runs of configs/convac.py."
    )
  rows = []
  for members in groups.values():
    values = [float(m["final_metrics"][metric]) for m in members]
    first = members[0]
    rows.append(
        {
            **{k: v for k, v in first.items() if k != "final_metrics"},
            "metric": metric,
            "split": str(first["final_metrics"].get("split", "")),
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "n_seeds": len(values),
            "values": values,
        }
    )
  rows.sort(
      key=lambda r: (
          r["kind"],
          _algebra_key(r["algebra"]),
          r["pooling"],
          r["kernel"],
          r["stride"],
          r["params"] or 0,
      )
  )
  return rows


_algebra_key = palette.algebra_sort_key


def accuracy_table(rows: Sequence[dict[str, Any]]) -> str:
  """Markdown table of `aggregate_runs` rows."""
  metric = rows[0]["metric"]
  split = rows[0]["split"]
  lines = [
      f"| kind | algebra | pooling | kernel | stride | overlap | channels | "
      f"params | {split} {metric} (mean ± std) | seeds |",
      "| --- | --- | --- | ---: | ---: | --- | --- | ---: | ---: | ---: |",
  ]
  for r in rows:
    std = "—" if r["std"] is None else f"{r['std']:.4f}"
    params = "—" if r["params"] is None else f"{int(r['params']):,}"
    lines.append(
        f"| {KIND_LABELS.get(r['kind'], r['kind'])} | {r['algebra']} | "
        f"{r['pooling']} | {_pair_text(r['kernel'])} | "
        f"{_pair_text(r['stride'])} | {'yes' if r['overlap'] else 'no'} | "
        f"{','.join(map(str, r['channels']))} | {params} | "
        f"{r['mean']:.4f} ± {std} | {r['n_seeds']} |"
    )
  return "\n".join(lines)


def _figure(ncols: int, nrows: int = 1, size=(6.0, 4.5)):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
  FigureCanvasAgg(fig)
  return fig, fig.subplots(nrows, ncols, squeeze=False)


def plot_accuracy(
    rows: Sequence[dict[str, Any]], out_path: str | pathlib.Path
) -> pathlib.Path:
  """Metric vs parameters (log x), one line per architecture family.

  Raises:
    ValueError: no row has a parameter count (runs without accounting.json).
  """
  usable = [r for r in rows if r["params"]]
  if not usable:
    raise ValueError(
        "plot_convac: no run has params_total (accounting.json, written by "
        "the trainer); cannot plot against parameters."
    )
  fig, axes = _figure(1)
  ax = axes[0][0]
  lines: dict[tuple, list[dict]] = {}
  for r in usable:
    key = (r["kind"], r["algebra"], r["pooling"], r["kernel"], r["stride"])
    lines.setdefault(key, []).append(r)
  for (kind, algebra, pooling, kernel, stride), pts in lines.items():
    pts = sorted(pts, key=lambda r: r["params"])
    overlap = pts[0]["overlap"]
    label = (
        f"{KIND_LABELS.get(kind, kind)} {algebra} {pooling}, "
        f"k={_pair_text(kernel)} s={_pair_text(stride)} "
        f"({'overlap' if overlap else 'no overlap'})"
    )
    ax.errorbar(
        [r["params"] for r in pts],
        [r["mean"] for r in pts],
        yerr=[0.0 if r["std"] is None else r["std"] for r in pts],
        # Colour = algebra (the project's palette), marker = kind, line
        # style = overlap, hollow markers = algebra-product pooling.
        color=palette.algebra_color(algebra),
        marker=KIND_MARKERS.get(kind, "^"),
        markerfacecolor="none" if pooling == "algebra" else None,
        linestyle="-" if overlap else "--",
        capsize=3,
        label=label,
    )
  ax.set_xscale("log")
  ax.set_xlabel("real parameters (total)")
  metric = usable[0]["metric"]
  ax.set_ylabel(
      f"{usable[0]['split']} {METRIC_LABELS.get(metric, metric)}".strip()
  )
  ax.set_title("ConvAC vs ConvNet, overlapping vs not")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize="small")
  out = pathlib.Path(out_path)
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, format="png", dpi=100)
  return out


def load_rank_json(path: str | pathlib.Path) -> dict[str, Any]:
  """Reads and checks a scripts/convac_rank.py JSON.

  Raises:
    ValueError: unreadable, or missing "settings"/"summary".
  """
  path = pathlib.Path(path)
  try:
    data = json.loads(path.read_text(encoding="utf-8"))
  except (OSError, ValueError) as e:
    raise ValueError(
        f"plot_convac: cannot read rank JSON {path}: {e}"
    ) from None
  if not isinstance(data, dict) or not {"settings", "summary"} <= set(data):
    raise ValueError(
        f"plot_convac: {path} is not a scripts/convac_rank.py output (needs "
        "'settings' and 'summary'); rerun python -m scripts.convac_rank "
        "--out FILE."
    )
  return data


def plot_rank(
    rank_result: dict[str, Any], out_path: str | pathlib.Path
) -> pathlib.Path:
  """Rank vs kernel size, one panel per (layout, partition)."""
  settings = rank_result["settings"]
  summary = rank_result["summary"]
  panels = [
      (lay, p) for lay in settings["layouts"] for p in settings["partitions"]
  ]
  fig, axes = _figure(len(settings["partitions"]), len(settings["layouts"]))
  for i, (layout, partition) in enumerate(panels):
    ax = axes[i // len(settings["partitions"])][i % len(settings["partitions"])]
    rows = [
        r
        for r in summary
        if r["layout"] == layout and r["partition"] == partition
    ]
    max_rank = None
    for width in settings["channels"]:
      pts = sorted(
          (r for r in rows if r["channels"] == width), key=lambda r: r["kernel"]
      )
      if not pts:
        continue
      max_rank = pts[0]["max_rank"]
      ax.errorbar(
          [r["kernel"] for r in pts],
          [r["rank_mean"] for r in pts],
          yerr=[
              [r["rank_mean"] - r["rank_min"] for r in pts],
              [r["rank_max"] - r["rank_mean"] for r in pts],
          ],
          marker="o",
          capsize=3,
          label=f"Z = {width}",
      )
    if max_rank is not None:
      ax.axhline(max_rank, color="gray", linestyle="--", label="max rank")
    ax.set_yscale("log")
    ax.set_xticks(settings["kernels"])
    ax.set_xlabel(
        f"kernel size k (stride {settings['stride']}; k > "
        f"{settings['stride']} overlaps)"
    )
    ax.set_ylabel("numerical rank")
    ax.set_title(f"{layout}, {partition} matricization")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
  out = pathlib.Path(out_path)
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, format="png", dpi=100)
  return out


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m scripts.plot_convac",
      description=__doc__.split("\n\n")[0],
  )
  parser.add_argument(
      "--workdirs", default="", help="Globs of convac runs (quote them)."
  )
  parser.add_argument(
      "--rank_json", default="", help="Output of scripts/convac_rank.py."
  )
  parser.add_argument(
      "--metric", default="top1", help="final_metrics.json key (top1)."
  )
  parser.add_argument(
      "--out",
      required=True,
      help="Output prefix: <out>.md, <out>_accuracy_vs_params.png, "
      "<out>_rank_vs_overlap.png.",
  )
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
  """Command-line entry point; returns the exit status."""
  args = _parse_args(argv)
  if not args.workdirs and not args.rank_json:
    print(
        "error: nothing to plot; pass --workdirs (convac sweep runs) and/or "
        "--rank_json (scripts/convac_rank.py output).",
        file=sys.stderr,
    )
    return 1
  tables, written = [], []
  try:
    if args.workdirs:
      rows = aggregate_runs(results.collect_runs(args.workdirs), args.metric)
      tables.append(accuracy_table(rows))
      written.append(plot_accuracy(rows, args.out + "_accuracy_vs_params.png"))
    if args.rank_json:
      rank = load_rank_json(args.rank_json)
      tables.append(convac_rank.markdown_table(rank))
      written.append(plot_rank(rank, args.out + "_rank_vs_overlap.png"))
  except (ValueError, KeyError) as e:
    print(f"error: {e!s}", file=sys.stderr)
    return 1
  text = "\n\n".join(tables)
  md = pathlib.Path(args.out + ".md")
  md.parent.mkdir(parents=True, exist_ok=True)
  md.write_text(text + "\n", encoding="utf-8")
  written.insert(0, md)
  print(text)
  print("Wrote:")
  for p in written:
    print(f"  {p}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
