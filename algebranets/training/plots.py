"""Training curves of one run as a PNG, from its metrics.jsonl.

  plot_metrics("runs/lm_H")           # -> runs/lm_H/curves.png
  fig = curves_figure("runs/lm_H")    # the matplotlib Figure itself

One panel per metric (x = step): the training curve, the periodic
evaluations (a few batches each, `eval.num_batches`) as a line with dots,
the final whole-split evaluation as a star, and the task's baseline from
data.json (unigram entropy of the evaluated split for language models,
majority-class error for classifiers) as a dashed grey line. A last panel
shows the gradient norm and the training throughput (steps/s; compilation,
evaluation and checkpointing excluded). Panels fill a two-column grid with
none left empty (an odd last panel spans both columns).

Uses matplotlib's object-oriented API with the Agg canvas directly (no
`pyplot`), so it neither changes the backend of an interactive session nor
needs a display.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from algebranets import palette
from algebranets.training import metric_writer

# Shown first and in this order when present; see `plot_metrics`.
PREFERRED_METRICS = (
    "loss",
    "bits_per_byte",
    "perplexity",
    "accuracy",
    "error",
    "nmse",
    "learning_rate",
)
CURVES_FILE = "curves.png"
SIGNAL_PANEL = "gradient norm and throughput"
_Y_LABELS = {
    "loss": "loss (nats)",
    "bits_per_byte": "bits per byte",
    "accuracy": "next-byte accuracy",
    "error": "top-1 error",
    "top1": "top-1 accuracy",
    "nmse": "nmse = MSE / Var(y)",
    "learning_rate": "learning rate",
}
_TRAIN_STYLE = {"color": "tab:blue", "linewidth": 1.2}
_PERIODIC_STYLE = {"color": "tab:orange", "marker": "o", "markersize": 3}
_FINAL_STYLE = {
    "color": "tab:red",
    "marker": "*",
    "markersize": 12,
    "linestyle": "none",
}


def _read_json(path: pathlib.Path) -> dict[str, Any]:
  try:
    data = json.loads(path.read_text(encoding="utf-8"))
  except (OSError, ValueError):
    return {}  # Missing or unreadable: plot without what it would add.
  return data if isinstance(data, dict) else {}


def baseline(
    metric: str, data_info: Mapping[str, Any], split: str
) -> tuple[float, str] | None:
  """The value a trivial predictor gets on `metric`, and its legend label.

  Args:
    metric: a metric name ('loss' of a language model, 'bits_per_byte',
      'perplexity', 'error', 'top1', 'nmse').
    data_info: the run's data.json (`task.describe()`).
    split: the evaluated split.

  Returns:
    (value, label), or None when the task records no baseline for it.
  """
  keys = {
      "bits_per_byte": (f"{split}_unigram_bits", "unigram entropy"),
      "perplexity": (f"{split}_unigram_perplexity", "unigram perplexity"),
      "error": (f"{split}_majority_error", "majority class"),
      "top1": (f"{split}_majority_error", "majority class"),
  }
  if metric == "loss" and f"{split}_unigram_bits" in data_info:
    # Language models' loss is the cross-entropy in nats per token.
    value = float(data_info[f"{split}_unigram_bits"]) * math.log(2.0)
    return value, f"unigram entropy ({split}) {value:.4g} nats"
  if metric == "nmse" and "least_squares_population_nmse" in data_info:
    value = float(data_info["least_squares_population_nmse"])
    return value, f"best linear predictor {value:.3g}"
  if metric not in keys or keys[metric][0] not in data_info:
    return None
  key, name = keys[metric]
  value = float(data_info[key])
  if metric == "top1":
    value = 1.0 - value
  return value, f"{name} ({split}) {value:.4g}"


def _title(workdir: pathlib.Path, config: Mapping[str, Any]) -> str:
  """Workdir name, task, algebra and width multiplier."""
  title = workdir.resolve().name
  model = config.get("model", {})
  if not isinstance(model, dict):
    model = {}
  extras = []
  if "task" in config:
    extras.append(str(config["task"]))
  if "algebra" in model:
    extras.append(f"algebra {model['algebra']}")
  if "width_multiplier" in model:
    extras.append(f"width x{model['width_multiplier']}")
  return f"{title} ({', '.join(extras)})" if extras else title


def _numeric_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
  keys: dict[str, None] = {}
  for row in rows:
    for k, v in row.items():
      if k in metric_writer.RESERVED_KEYS:
        continue
      if isinstance(v, (int, float)) and not isinstance(v, bool):
        keys[k] = None
  return list(keys)


def _series(rows, split: str, name: str, steps=None) -> tuple[list, list]:
  """(steps, values) of `name` in the rows of `split` (only `steps`)."""
  points = sorted(
      (r["step"], float(r[name]))
      for r in rows
      if r["split"] == split
      and isinstance(r.get(name), (int, float))
      and (steps is None or r["step"] in steps)
  )
  return [p[0] for p in points], [p[1] for p in points]


def _final_steps(workdir: pathlib.Path, config: Mapping[str, Any]) -> set:
  """Steps whose "eval" rows are whole-split final evaluations.

  The trainer evaluates the whole split at the last step of a run and never
  runs a periodic evaluation there; final_metrics.json names that step.
  """
  final = _read_json(workdir / "final_metrics.json")
  if isinstance(final.get("step"), int):
    return {final["step"]}
  train = config.get("train", {})
  if isinstance(train, dict) and isinstance(train.get("num_steps"), int):
    return {train["num_steps"]}
  return set()


def curves_figure(
    workdir: str | os.PathLike, *, metrics: Sequence[str] | None = None
):
  """The curves of a run as a matplotlib Figure (see the module docstring).

  Args:
    workdir: the run's work directory (metrics.jsonl; config.json,
      data.json and final_metrics.json, when present, add the title, the
      split names, the baselines and the final-evaluation marker).
    metrics: metric names to plot, one panel each, and no gradient-norm
      panel. Default: those of `PREFERRED_METRICS` that appear in any split,
      in that order (if none does, every numeric metric), then the gradient
      norm and throughput panel when the run logged them.

  Returns:
    A `matplotlib.figure.Figure` with an Agg canvas. Each panel's title is
    its metric name (or SIGNAL_PANEL); its twin throughput axis has none.

  Raises:
    FileNotFoundError: no metrics.jsonl in `workdir`.
    ValueError: the file has no rows, or none of the requested metrics.
  """
  # Imported here: matplotlib costs ~1 s, and only plotting needs it.
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  workdir = pathlib.Path(workdir)
  rows = metric_writer.read_metrics(workdir)
  path = workdir / metric_writer.METRICS_FILE
  if not rows:
    raise ValueError(
        f"plot_metrics: {str(path)!r} has no complete rows; nothing to plot. "
        "Plot after the run has logged at least one step."
    )
  config = _read_json(workdir / "config.json")
  data_info = _read_json(workdir / "data.json")
  eval_cfg = (
      config.get("eval", {}) if isinstance(config.get("eval"), dict) else {}
  )
  split = str(eval_cfg.get("split", ""))  # "" without a config
  num_batches = eval_cfg.get("num_batches")
  present = _numeric_keys(rows)
  if metrics is None:
    names = [m for m in PREFERRED_METRICS if m in present] or [
        m for m in present if m not in ("grad_norm", *_RATE_KEYS)
    ]
    train_keys = {k for r in rows if r["split"] == "train" for k in r}
    if {"grad_norm", "steps_per_sec"} & train_keys:
      names.append(SIGNAL_PANEL)
  else:
    names = [m for m in metrics if m in present]
  if not names:
    raise ValueError(
        f"plot_metrics: none of the metrics {list(metrics or PREFERRED_METRICS)}"
        f" appear in {str(path)!r}; it has {present}."
    )

  final_steps = _final_steps(workdir, config)
  eval_steps = {r["step"] for r in rows if r["split"] == "eval"}
  periodic_steps = eval_steps - final_steps
  split_text = f" {split}" if split else ""
  periodic_label = f"eval{split_text} (periodic"
  if isinstance(num_batches, int) and num_batches > 0:
    periodic_label += f", {num_batches} batches"
  periodic_label += ")"
  other_splits = [
      s
      for s in dict.fromkeys(str(r["split"]) for r in rows)
      if s not in ("train", "eval")
  ]

  n = len(names)
  ncols = 1 if n == 1 else 2
  nrows = math.ceil(n / ncols)
  fig = Figure(figsize=(6 * ncols, 3.8 * nrows), layout="constrained")
  FigureCanvasAgg(fig)
  grid = fig.add_gridspec(nrows, ncols)
  for i, name in enumerate(names):
    r, c = divmod(i, ncols)
    last_odd = i == n - 1 and n % ncols
    ax = fig.add_subplot(grid[r, :] if last_odd else grid[r, c])
    if name == SIGNAL_PANEL:
      _signal_panel(ax, rows)
      continue
    steps, values = _series(rows, "train", name)
    if steps:
      ax.plot(steps, values, label="train", **_TRAIN_STYLE)
    steps, values = _series(rows, "eval", name, periodic_steps)
    if steps:
      ax.plot(steps, values, label=periodic_label, **_PERIODIC_STYLE)
    steps, values = _series(rows, "eval", name, final_steps)
    if steps:
      ax.plot(
          steps,
          values,
          label=f"final{split_text} (whole split)",
          **_FINAL_STYLE,
      )
    for other in other_splits:
      steps, values = _series(rows, other, name)
      if steps:
        ax.plot(steps, values, label=other, marker="o", markersize=3)
    ref = baseline(name, data_info, split)
    if ref is not None:
      ax.axhline(ref[0], label=ref[1], **palette.BASELINE_STYLE)
    ax.set_title(name)
    ax.set_xlabel("step")
    ax.set_ylabel(_Y_LABELS.get(name, name))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
  fig.suptitle(_title(workdir, config))
  return fig


_RATE_KEYS = ("steps_per_sec", "examples_per_sec")


def _signal_panel(ax, rows) -> None:
  """Gradient norm (left axis) and steps/s (right axis) of the train rows."""
  handles = []
  steps, values = _series(rows, "train", "grad_norm")
  if steps:
    handles += ax.plot(steps, values, color="tab:purple", label="grad norm")
  ax.set_ylabel("gradient norm (mean per log interval)")
  ax.set_xlabel("step")
  ax.set_title(SIGNAL_PANEL)
  ax.grid(True, alpha=0.3)
  steps, values = _series(rows, "train", "steps_per_sec")
  if steps:
    twin = ax.twinx()
    handles += twin.plot(
        steps,
        values,
        color="tab:green",
        marker=".",
        label="steps/s (excl. compile, eval, checkpoints)",
    )
    twin.set_ylabel("steps/s")
    twin.set_ylim(bottom=0)
  ax.legend(handles=handles, fontsize="small")


def plot_metrics(
    workdir: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    *,
    metrics: Sequence[str] | None = None,
) -> pathlib.Path:
  """Writes `curves_figure(workdir, metrics=metrics)` as a PNG.

  Args:
    workdir: the run's work directory.
    out_path: the PNG to write; default `<workdir>/curves.png`. Parent
      directories are created.
    metrics: see `curves_figure`.

  Returns:
    The path of the PNG written.

  Raises:
    FileNotFoundError: no metrics.jsonl in `workdir`.
    ValueError: the file has no rows, or none of the requested metrics.
  """
  fig = curves_figure(workdir, metrics=metrics)
  workdir = pathlib.Path(workdir)
  out = (
      pathlib.Path(out_path) if out_path is not None else workdir / CURVES_FILE
  )
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, format="png", dpi=100)
  return out


__all__ = [
    "CURVES_FILE",
    "PREFERRED_METRICS",
    "SIGNAL_PANEL",
    "baseline",
    "curves_figure",
    "plot_metrics",
]
