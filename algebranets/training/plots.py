"""Training curves of one run as a PNG, from its metrics.jsonl.

  plot_metrics("runs/lm_H")           # -> runs/lm_H/curves.png

Uses matplotlib's object-oriented API with the Agg canvas directly (no
`pyplot`), so it neither changes the backend of an interactive session nor
needs a display.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from collections.abc import Sequence
from typing import Any

from algebranets.training import metric_writer

# Shown first and in this order when present; see `plot_metrics`.
PREFERRED_METRICS = ("loss", "bits_per_byte", "accuracy", "learning_rate")
CURVES_FILE = "curves.png"
_SPLIT_STYLE = {
    "train": {"color": "tab:blue", "linewidth": 1.2},
    "eval": {"color": "tab:orange", "marker": "o", "markersize": 3},
}


def _title(workdir: pathlib.Path) -> str:
  """Workdir name, plus algebra and width multiplier from config.json."""
  title = workdir.resolve().name
  try:
    config = json.loads((workdir / "config.json").read_text(encoding="utf-8"))
  except (OSError, ValueError):
    return title  # No or unreadable config: the name alone still identifies it.
  model = config.get("model", {}) if isinstance(config, dict) else {}
  if not isinstance(model, dict):
    return title
  extras = []
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


def plot_metrics(
    workdir: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    *,
    metrics: Sequence[str] | None = None,
) -> pathlib.Path:
  """Plots train and eval curves (x = step) of a run, one panel per metric.

  Args:
    workdir: the run's work directory (with metrics.jsonl; config.json, when
      present, names the algebra in the title).
    out_path: the PNG to write; default `<workdir>/curves.png`. Parent
      directories are created.
    metrics: metric names to plot, one panel each. Default: those of
      `PREFERRED_METRICS` that appear in any split, in that order; if none
      does, every numeric metric in the file.

  Returns:
    The path of the PNG written.

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
  present = _numeric_keys(rows)
  if metrics is None:
    names = [m for m in PREFERRED_METRICS if m in present] or present
  else:
    names = [m for m in metrics if m in present]
  if not names:
    raise ValueError(
        f"plot_metrics: none of the metrics {list(metrics or PREFERRED_METRICS)}"
        f" appear in {str(path)!r}; it has {present}."
    )

  splits = list(dict.fromkeys(str(r["split"]) for r in rows))
  ncols = min(2, len(names))
  nrows = math.ceil(len(names) / ncols)
  fig = Figure(figsize=(6 * ncols, 3.8 * nrows), layout="constrained")
  FigureCanvasAgg(fig)
  axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
  for ax, name in zip(axes, names, strict=False):
    for split in splits:
      points = sorted(
          (r["step"], float(r[name]))
          for r in rows
          if r["split"] == split and isinstance(r.get(name), (int, float))
      )
      if not points:
        continue
      steps, values = zip(*points, strict=True)
      style = _SPLIT_STYLE.get(split, {})
      ax.plot(steps, values, label=split, **style)
    ax.set_title(name)
    ax.set_xlabel("step")
    ax.grid(True, alpha=0.3)
    ax.legend()
  for ax in axes[len(names) :]:
    ax.set_visible(False)
  fig.suptitle(_title(workdir))

  out = (
      pathlib.Path(out_path) if out_path is not None else workdir / CURVES_FILE
  )
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, format="png", dpi=100)
  return out


__all__ = ["CURVES_FILE", "PREFERRED_METRICS", "plot_metrics"]
