"""Results table and trade-off plots of a sweep of training runs.

  python -m scripts.results --workdirs 'runs/sweep/*' \\
      --metric bits_per_byte --out runs/sweep_results

Collects every work directory matching the globs (several, comma-separated)
that has `config.json` and `final_metrics.json` (others are listed in a
warning), groups runs by (algebra, width multiplier, sparsity target),
aggregates the final metric over seeds (mean, sample std with ddof=1), and
writes

  <out>.md             markdown table (also printed)
  <out>.csv            the same numbers, unformatted
  <out>_vs_params.png  metric vs real parameters (with and without the real
                       stem/head), log x, one curve per algebra, std bars
  <out>_vs_macs.png    metric vs intrinsic MACs per example

The plots' title names the task, data, split, training steps and seeds; a
dashed grey line marks the task's trivial baseline when the runs' data.json
records one (unigram entropy for bits per byte, majority class for error);
each algebra has its colour from `algebranets.palette`, as in every figure
of the project.

Parameter and MAC columns come from each run's `accounting.json`; see
docs/macs_and_flops.md for their exact definitions.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import pathlib
import statistics
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from algebranets import algebras, palette
from algebranets.training import plots

CONFIG_FILE = "config.json"
FINAL_METRICS_FILE = "final_metrics.json"
ACCOUNTING_FILE = "accounting.json"

# Table/legend order: the registry's (built-ins first); algebras it does not
# hold (user algebras recorded in a workdir) follow alphabetically.
ALGEBRA_ORDER = tuple(algebras.names())
DATA_FILE = "data.json"
# Metric-name fragments for which higher is better (see lower_is_better_for).
_HIGHER_IS_BETTER = ("accuracy", "acc", "auc", "f1", "precision", "recall")
ACCOUNTING_KEYS = (
    "params_total",
    "params_real_io",
    "params_algebra",
    "macs_per_example",
    "flops_per_example",
)
X_LABELS = {
    "params_total": "real parameters (total)",
    "params_algebra": "real parameters without real stem/head",
    "macs_per_example": "intrinsic MACs per example",
    "flops_per_example": "FLOPs per example",
}


def lower_is_better_for(metric: str) -> bool:
  """Default direction: False for accuracy-like names, True otherwise."""
  parts = metric.lower().replace("-", "_").split("_")
  return not any(p in _HIGHER_IS_BETTER for p in parts)


def _split_globs(globs: str | Sequence[str]) -> list[str]:
  if isinstance(globs, (str, os.PathLike)):
    globs = [os.fspath(globs)]
  out = []
  for g in globs:
    out.extend(p.strip() for p in str(g).split(",") if p.strip())
  return out


def _read_json(path: pathlib.Path) -> Any:
  return json.loads(path.read_text(encoding="utf-8"))


def _load_run(workdir: pathlib.Path) -> dict[str, Any]:
  """One run's record; raises ValueError with the reason if unusable."""
  try:
    config = _read_json(workdir / CONFIG_FILE)
    final = _read_json(workdir / FINAL_METRICS_FILE)
  except ValueError as e:
    raise ValueError(f"invalid JSON ({e})") from None
  data_info = {}
  if (workdir / DATA_FILE).is_file():
    try:
      data_info = _read_json(workdir / DATA_FILE)
    except ValueError:
      data_info = {}  # only the baseline line needs it
  accounting = {}
  if (workdir / ACCOUNTING_FILE).is_file():
    try:
      accounting = _read_json(workdir / ACCOUNTING_FILE)
    except ValueError as e:
      raise ValueError(f"invalid {ACCOUNTING_FILE} ({e})") from None
  model = config.get("model") or {}
  algebra = accounting.get("algebra", model.get("algebra"))
  if algebra is None:
    raise ValueError(
        f"no algebra in {ACCOUNTING_FILE} or config.json's model.algebra"
    )
  sparsity = config.get("sparsity") or {}
  return {
      "workdir": str(workdir),
      "algebra": str(algebra),
      "width_multiplier": float(model.get("width_multiplier", 1.0)),
      "sparsity_method": str(sparsity.get("method", "none")),
      "sparsity": float(sparsity.get("target", 0.0)),
      "seed": config.get("seed"),
      "step": final.get("step"),
      "final_metrics": final,
      **{k: accounting.get(k) for k in ACCOUNTING_KEYS},
      "config": config,
      "data_info": data_info if isinstance(data_info, dict) else {},
  }


def collect_runs(globs: str | Sequence[str]) -> list[dict[str, Any]]:
  """Loads every finished run among the directories matching `globs`.

  Args:
    globs: a glob or a sequence of globs; each may hold several globs
      separated by commas ("runs/a/*,runs/b/*"). Matches that are files are
      ignored (an output table may sit next to the runs).

  Returns:
    One dict per run, sorted by workdir: "workdir", "algebra",
    "width_multiplier", "sparsity" (target), "sparsity_method", "seed",
    "step", "final_metrics" (the final_metrics.json dict), the accounting.json
    numbers "params_total", "params_real_io", "params_algebra",
    "macs_per_example", "flops_per_example" (None without accounting.json),
    "config" and "data_info" (data.json; {} without it).

  Warns:
    UserWarning: listing matched directories skipped because they lack
      config.json or final_metrics.json (unfinished runs) or are unreadable.

  Raises:
    ValueError: no usable run.
  """
  patterns = _split_globs(globs)
  dirs = sorted(
      {
          pathlib.Path(p)
          for pattern in patterns
          for p in glob.glob(os.path.expanduser(pattern))
          if os.path.isdir(p)
      }
  )
  runs, skipped = [], []
  for d in dirs:
    missing = [
        f for f in (CONFIG_FILE, FINAL_METRICS_FILE) if not (d / f).is_file()
    ]
    if missing:
      skipped.append(f"{d} (no {', '.join(missing)})")
      continue
    try:
      runs.append(_load_run(d))
    except (ValueError, AttributeError, TypeError) as e:
      skipped.append(f"{d} ({e})")
  if skipped:
    warnings.warn(
        f"results: skipped {len(skipped)} work dir(s) without a finished "
        "run:\n  " + "\n  ".join(skipped),
        UserWarning,
        stacklevel=2,
    )
  if not runs:
    raise ValueError(
        f"results: no finished run found for {patterns} ({len(dirs)} "
        f"matching director{'y' if len(dirs) == 1 else 'ies'}). A finished run"
        f" has {CONFIG_FILE} and {FINAL_METRICS_FILE}; check the globs (quote "
        "them so the shell does not expand them)."
    )
  return runs


_algebra_key = palette.algebra_sort_key


def aggregate(runs: Sequence[dict[str, Any]], metric: str) -> list[dict]:
  """Aggregates a final metric over seeds per (algebra, width, sparsity).

  Args:
    runs: records from `collect_runs`.
    metric: a key of every run's final_metrics.json, e.g. "bits_per_byte".

  Returns:
    One row per group, sorted by algebra (ALGEBRA_ORDER), width multiplier,
    sparsity: "algebra", "width_multiplier", "sparsity", the accounting
    numbers of the group's first run, "metric" (the name), "mean", "std"
    (sample std, ddof=1; None for a single run), "n_seeds" (number of runs),
    "seeds" (sorted), "values" and "workdirs" (per run, in seed order).

  Warns:
    UserWarning: runs of one group disagree on parameter or MAC counts
      (different models grouped together), or repeat a seed.

  Raises:
    ValueError: a run without `metric` (the message lists the ones it has).
  """
  groups: dict[tuple, list[dict]] = {}
  for run in runs:
    if metric not in run["final_metrics"]:
      available = sorted(
          k for k in run["final_metrics"] if k not in ("step", "split")
      )
      raise ValueError(
          f"aggregate: run {run['workdir']!r} has no metric {metric!r} in its "
          f"{FINAL_METRICS_FILE}; it has {available}. Pick one of those."
      )
    key = (run["algebra"], run["width_multiplier"], run["sparsity"])
    groups.setdefault(key, []).append(run)

  rows = []
  for key in sorted(groups, key=lambda k: (_algebra_key(k[0]), k[1], k[2])):
    members = sorted(groups[key], key=lambda r: (str(r["seed"]), r["workdir"]))
    first = members[0]
    for k in ACCOUNTING_KEYS:
      by_run = {m["workdir"]: m[k] for m in members}
      if len(set(by_run.values())) > 1:
        warnings.warn(
            f"aggregate: runs of group algebra={key[0]} width={key[1]} "
            f"sparsity={key[2]} differ in {k}: {by_run}; showing the first. "
            "Were different models grouped together?",
            UserWarning,
            stacklevel=2,
        )
    seeds = [m["seed"] for m in members]
    if len(set(map(str, seeds))) < len(seeds):
      warnings.warn(
          f"aggregate: group algebra={key[0]} width={key[1]} "
          f"sparsity={key[2]} repeats a seed: {seeds} "
          f"({[m['workdir'] for m in members]}).",
          UserWarning,
          stacklevel=2,
      )
    values = [float(m["final_metrics"][metric]) for m in members]
    rows.append(
        {
            "algebra": key[0],
            "width_multiplier": key[1],
            "sparsity": key[2],
            **{k: first[k] for k in ACCOUNTING_KEYS},
            "metric": metric,
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "n_seeds": len(values),
            "seeds": seeds,
            "values": values,
            "workdirs": [m["workdir"] for m in members],
        }
    )
  return rows


# -- table -------------------------------------------------------------------


def _si(n: float | None) -> str:
  if n is None:
    return "—"
  for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
    if abs(n) >= div:
      return f"{n / div:.3g} {unit}"
  return f"{n:g}"


def _int(n: int | None) -> str:
  return "—" if n is None else f"{int(n):,}"


def _mean_std(row: dict) -> str:
  std = "—" if row["std"] is None else f"{row['std']:.4f}"
  return f"{row['mean']:.4f} ± {std}"


def _best_index(rows: Sequence[dict], lower_is_better: bool) -> int | None:
  finite = [i for i, r in enumerate(rows) if math.isfinite(r["mean"])]
  if not finite:
    return None
  sign = 1 if lower_is_better else -1
  return min(finite, key=lambda i: sign * rows[i]["mean"])


def markdown_table(
    rows: Sequence[dict], metric: str, *, lower_is_better: bool = True
) -> str:
  """The results as a markdown table; the best mean is in bold.

  Args:
    rows: from `aggregate`.
    metric: the metric name (column header).
    lower_is_better: which mean is the best one.

  Returns:
    Header line, table and a short legend, joined by newlines.
  """
  direction = "lower" if lower_is_better else "higher"
  lines = [
      f"| algebra | width multiplier | params (total) | params (no real "
      f"stem/head) | MACs / example | FLOPs / example | sparsity | {metric} "
      f"(mean ± std, {direction} is better) | seeds |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ]
  best = _best_index(rows, lower_is_better)
  for i, r in enumerate(rows):
    value = _mean_std(r)
    if i == best:
      value = f"**{value}**"
    lines.append(
        f"| {r['algebra']} | {r['width_multiplier']:g} | "
        f"{_int(r['params_total'])} | {_int(r['params_algebra'])} | "
        f"{_si(r['macs_per_example'])} | {_si(r['flops_per_example'])} | "
        f"{r['sparsity']:g} | {value} | {r['n_seeds']} |"
    )
  lines += [
      "",
      "std: sample standard deviation over seeds (ddof=1; — for one seed). "
      "Params are real numbers; MACs are intrinsic algebra multiply-adds and "
      "FLOPs = 2 x MACs (docs/macs_and_flops.md).",
  ]
  return "\n".join(lines)


CSV_COLUMNS = (
    "algebra",
    "width_multiplier",
    "params_total",
    "params_algebra",
    "params_real_io",
    "macs_per_example",
    "flops_per_example",
    "sparsity",
    "metric",
    "mean",
    "std",
    "n_seeds",
    "seeds",
)


def write_table(
    rows: Sequence[dict],
    out: str | os.PathLike,
    metric: str,
    *,
    lower_is_better: bool = True,
) -> tuple[pathlib.Path, pathlib.Path]:
  """Writes `<out>.md` (see `markdown_table`) and `<out>.csv`.

  The CSV has the columns CSV_COLUMNS with unformatted numbers; "std" is
  empty for one seed, missing accounting numbers are empty, "seeds" is
  space-separated.

  Returns:
    (markdown path, CSV path).
  """
  out = pathlib.Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  md_path = out.with_name(out.name + ".md")
  csv_path = out.with_name(out.name + ".csv")
  md_path.write_text(
      markdown_table(rows, metric, lower_is_better=lower_is_better) + "\n",
      encoding="utf-8",
  )
  with open(csv_path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
      record = dict(r, seeds=" ".join(str(s) for s in r["seeds"]))
      writer.writerow(
          ["" if record[c] is None else record[c] for c in CSV_COLUMNS]
      )
  return md_path, csv_path


# -- plots -------------------------------------------------------------------


def _range_text(values: Sequence[int]) -> str:
  """'3', '0-4' (consecutive), '0, 2, 7' or '0, 1, ..., 9' (not)."""
  values = sorted(set(values))
  if len(values) == 1:
    return str(values[0])
  if values == list(range(values[0], values[-1] + 1)):
    return f"{values[0]}-{values[-1]}"
  if len(values) <= 4:
    return ", ".join(map(str, values))
  return f"{values[0]}, {values[1]}, ..., {values[-1]}"


def figure_title(runs: Sequence[dict[str, Any]]) -> str:
  """'stream_lm on enwiki_sample, valid split, 600 steps, seeds 0-2 (16
  runs)': what the runs of a results figure were.

  Args:
    runs: records from `collect_runs`.
  """
  tasks = sorted({str(r["config"].get("task", "?")) for r in runs})
  data = sorted(
      {
          str((r["config"].get("data") or {}).get("name", ""))
          for r in runs
          if (r["config"].get("data") or {}).get("name")
      }
  )
  splits = sorted({str(r["final_metrics"].get("split", "?")) for r in runs})
  steps = [r["step"] for r in runs if isinstance(r["step"], int)]
  seeds = [r["seed"] for r in runs if isinstance(r["seed"], int)]
  text = ", ".join(tasks)
  if data:
    text += f" on {', '.join(data)}"
  text += f", {'/'.join(splits)} split"
  if steps:
    lo, hi = min(steps), max(steps)
    text += f", {lo} steps" if lo == hi else f", {lo}-{hi} steps"
  if seeds:
    text += f", seed{'s' if len(set(seeds)) > 1 else ''} {_range_text(seeds)}"
  return text + f" ({len(runs)} run{'s' if len(runs) != 1 else ''})"


def baselines(
    runs: Sequence[dict[str, Any]], metric: str
) -> list[tuple[float, str]]:
  """The trivial predictors' values of `metric` (`plots.baseline`) in the
  runs' data.json files, each distinct one once."""
  found: dict[float, str] = {}
  for r in runs:
    split = str(r["final_metrics"].get("split", ""))
    ref = plots.baseline(metric, r.get("data_info") or {}, split)
    if ref is not None:
      found.setdefault(round(ref[0], 9), ref[1])
  return sorted(found.items())


_SPARSITY_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"))


def tradeoff_figure(
    rows: Sequence[dict],
    metric: str,
    x_keys: str | Sequence[str],
    *,
    lower_is_better: bool = True,
    title: str | None = None,
    reference_lines: Sequence[tuple[float, str]] = (),
):
  """The metric against cost as a matplotlib Figure, one panel per x key.

  One curve per algebra in its `palette` colour (and per sparsity target
  when a sweep has several: same colour, another line style), points
  sorted by x, log x, error bars = std over seeds (none for one seed).

  Args:
    rows: from `aggregate`.
    metric: the metric name (y label).
    x_keys: row keys for x, e.g. "macs_per_example" or ("params_total",
      "params_algebra").
    lower_is_better: noted in the y label.
    title: the figure title (e.g. `figure_title(runs)`).
    reference_lines: (value, label) horizontal dashed lines (e.g.
      `baselines(runs, metric)`).

  Returns:
    A `matplotlib.figure.Figure` with an Agg canvas.

  Raises:
    ValueError: no row has a positive value for an x key (runs without
      accounting.json).
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  keys = [x_keys] if isinstance(x_keys, str) else list(x_keys)
  sparsities = sorted({r["sparsity"] for r in rows})
  fig = Figure(figsize=(6 * len(keys), 4.5), layout="constrained")
  FigureCanvasAgg(fig)
  axes = fig.subplots(1, len(keys), squeeze=False)[0]
  for ax, key in zip(axes, keys, strict=True):
    usable = [r for r in rows if r.get(key) is not None and r[key] > 0]
    if not usable:
      raise ValueError(
          f"plot_tradeoff: no run has a positive {key!r} (it comes from "
          f"{ACCOUNTING_FILE}, which the trainer writes); cannot plot "
          f"{metric} against it."
      )
    curves: dict[tuple, list[dict]] = {}
    for r in usable:
      curves.setdefault((r["algebra"], r["sparsity"]), []).append(r)
    for algebra, sparsity in sorted(
        curves, key=lambda k: (_algebra_key(k[0]), k[1])
    ):
      pts = sorted(curves[(algebra, sparsity)], key=lambda r: r[key])
      label = algebra + (
          f" (sparsity {sparsity:g})" if len(sparsities) > 1 else ""
      )
      linestyle, marker = _SPARSITY_STYLES[
          sparsities.index(sparsity) % len(_SPARSITY_STYLES)
      ]
      ax.errorbar(
          [r[key] for r in pts],
          [r["mean"] for r in pts],
          yerr=[0.0 if r["std"] is None else r["std"] for r in pts],
          color=palette.algebra_color(algebra),
          linestyle=linestyle,
          marker=marker,
          capsize=3,
          label=label,
      )
    for value, label in reference_lines:
      ax.axhline(value, label=label, **palette.BASELINE_STYLE)
    ax.set_xscale("log")
    ax.set_xlabel(X_LABELS.get(key, key))
    direction = "lower" if lower_is_better else "higher"
    ax.set_ylabel(f"{metric} ({direction} is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
  if title:
    fig.suptitle(title)
  return fig


def plot_tradeoff(
    rows: Sequence[dict],
    metric: str,
    x_keys: str | Sequence[str],
    out_path: str | os.PathLike,
    *,
    lower_is_better: bool = True,
    title: str | None = None,
    reference_lines: Sequence[tuple[float, str]] = (),
) -> pathlib.Path:
  """Writes `tradeoff_figure(...)` as a PNG at `out_path`; returns the path.

  Raises:
    ValueError: as `tradeoff_figure`.
  """
  fig = tradeoff_figure(
      rows,
      metric,
      x_keys,
      lower_is_better=lower_is_better,
      title=title,
      reference_lines=reference_lines,
  )
  out = pathlib.Path(out_path)
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, format="png", dpi=100)
  return out


# -- command line -------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m scripts.results",
      description=__doc__.split("\n\n")[0],
  )
  parser.add_argument(
      "--workdirs",
      required=True,
      help="Globs of run directories, comma-separated (quote them).",
  )
  parser.add_argument(
      "--metric",
      default="bits_per_byte",
      help="Key of final_metrics.json to report (default bits_per_byte).",
  )
  parser.add_argument(
      "--out",
      required=True,
      help="Output prefix: writes <out>.md, <out>.csv, <out>_vs_params.png, "
      "<out>_vs_macs.png.",
  )
  parser.add_argument(
      "--lower_is_better",
      action=argparse.BooleanOptionalAction,
      default=None,
      help="Direction of the metric (marks the best row). Default: inferred "
      "from the name (accuracy-like names: higher is better).",
  )
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
  """Command-line entry point; returns the exit status."""
  args = _parse_args(argv)
  lower = args.lower_is_better
  if lower is None:
    lower = lower_is_better_for(args.metric)
  try:
    runs = collect_runs(args.workdirs)
    rows = aggregate(runs, args.metric)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  md_path, csv_path = write_table(
      rows, args.out, args.metric, lower_is_better=lower
  )
  written = [md_path, csv_path]
  for suffix, keys in (
      ("_vs_params", ("params_total", "params_algebra")),
      ("_vs_macs", ("macs_per_example",)),
  ):
    png = pathlib.Path(args.out + suffix + ".png")
    try:
      written.append(
          plot_tradeoff(
              rows,
              args.metric,
              keys,
              png,
              lower_is_better=lower,
              title=figure_title(runs),
              reference_lines=baselines(runs, args.metric),
          )
      )
    except ValueError as e:
      warnings.warn(
          f"results: not writing {png}: {e}", UserWarning, stacklevel=1
      )
  print(md_path.read_text(encoding="utf-8"))
  print(f"{len(runs)} runs in {len(rows)} groups. Wrote:")
  for p in written:
    print(f"  {p}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
