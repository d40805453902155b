r"""Plot and table of the teacher-student study (configs/teacher_student.py).

  python -m scripts.plot_teacher_student \
      --workdirs 'workdirs/sweeps/teacher_student/*' \
      --out workdirs/sweeps/teacher_student/study

Reads every finished teacher_student run among the globs
(`scripts.results.collect_runs`), groups them by (teacher activation,
sample budget, learner, d, r) and averages over seeds. The sample budget of
a run is read back from its config: n = data.train_examples is a budget b
when n = max(d + 2, round(b * C(d+3, 3))) (how
`configs/teacher_student.py:budget=b` sets n) for b = n / C(d+3, 3)
rounded to 1, 2 or 3 significant digits, the fewest that work, so runs of
one budget line up across d; any other n is its own group ('n = 20000
training examples'), n = 0 is 'endless fresh samples'. Writes

  <out>.png  one row of two panels per (teacher activation, budget). Left:
             final nmse (test MSE / Var(y); 1 = the trivial predictor E[y];
             log y down to 1e-4: lines of exact fits leave the panel at the
             bottom) against r / d^{3/2}, log x, one line per learner and d
             (colour = learner: a network in its algebra's palette colour,
             hollow markers for a non-default activation; marker and line
             style = d). Right: the
             direction-recovery error (1 - mean_i max_j |cos(w_i, u_j)|) of
             the learners that estimate teacher directions.
  <out>.md   the same numbers as markdown tables, one per (teacher,
             budget) under a bold heading (also printed), with the training
             examples n and the population nmse of the best linear
             predictor from each run's data.json ('OLS pop.') as a
             reference.

Learners are named from each run's config: 'network <algebra>' for the
two-layer student (with its activation when it is not the teacher's
polynomial), else the closed-form learner's model name.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import statistics
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from algebranets import palette
from scripts import results

METRIC = "nmse"
RECOVERY = "recovery_error"
# Bottom of the log nmse axis (lower values leave the panel at the bottom).
NMSE_FLOOR = 1e-4
# Legend order; learners not listed follow alphabetically.
LEARNER_ORDER = ("mean", "least_squares", "moment_tensor")
_MARKERS = ("o", "s", "^", "D", "v", "P")
_LINESTYLES = ("-", "--", ":", "-.")


def learner_label(run: dict[str, Any]) -> str:
  """'network R', 'network H (relu)', 'mean', 'moment_tensor', ..."""
  model = run["config"].get("model") or {}
  name = str(model.get("name", "?"))
  if name != "two_layer":
    return name
  label = f"network {model.get('algebra', 'R')}"
  activation = model.get("activation", "poly")
  return label if activation == "poly" else f"{label} ({activation})"


def sigma_text(coeffs: Sequence[float]) -> str:
  """'sigma(t) = t + t^3' for monomial coefficients (0, 1, 0, 1)."""
  terms = []
  for k, a in enumerate(coeffs):
    if a == 0:
      continue
    power = "" if k == 0 else ("t" if k == 1 else f"t^{k}")
    if k > 0 and abs(a) == 1:
      terms.append(("-" if a < 0 else "") + power)
    else:
      terms.append(f"{a:g}" + (f" {power}" if power else ""))
  text = " + ".join(terms).replace("+ -", "- ")
  return f"sigma(t) = {text or '0'}"


# Budget kinds in table and panel order (see `budget_key`).
_BUDGET_KINDS = ("budget", "examples", "endless")


def cubic_dim(d: int) -> int:
  """C(d+3, 3), the number of monomials of degree <= 3 in d variables (as
  algebranets.studies.teacher_student.design.cubic_dim; not imported, which
  would load JAX)."""
  return math.comb(d + 3, 3)


def budget_key(data: dict[str, Any]) -> tuple[int, float]:
  """The sample-budget group of a run's data section.

  Args:
    data: config.json's 'data' ('input_dim', 'train_examples').

  Returns:
    (kind, value): (0, b) for n = max(d + 2, round(b * C(d+3, 3))) with b
    = n / C(d+3, 3) to the fewest significant digits (1 to 3) that give n
    back; (1, n) for any other fixed training set of n examples; (2, 0.0)
    for endless fresh samples (n = 0).
    Sorts budgets first, ascending.
  """
  n = int(data.get("train_examples", 0))
  d = int(data["input_dim"])
  if n == 0:
    return (_BUDGET_KINDS.index("endless"), 0.0)
  for digits in (1, 2, 3):
    # The shortest b wins: 82 examples at d = 8 are budget 0.5, not 0.497.
    budget = float(f"{n / cubic_dim(d):.{digits}g}")
    if max(d + 2, round(budget * cubic_dim(d))) == n:
      return (_BUDGET_KINDS.index("budget"), budget)
  return (_BUDGET_KINDS.index("examples"), float(n))


def budget_text(key: tuple[int, float]) -> str:
  """'budget n = 0.5 x C(d+3,3)', 'n = 20000 training examples', or
  'endless fresh samples' for a `budget_key`."""
  kind, value = _BUDGET_KINDS[key[0]], key[1]
  if kind == "budget":
    return f"budget n = {value:g} x C(d+3,3)"
  if kind == "examples":
    return f"n = {value:.0f} training examples"
  return "endless fresh samples"


def _learner_key(label: str) -> tuple[int, str]:
  if label in LEARNER_ORDER:
    return (LEARNER_ORDER.index(label), "")
  # Networks after the closed-form learners, real first.
  return (len(LEARNER_ORDER), "" if label == "network R" else label)


def learner_colors(learners: Sequence[str]) -> dict[str, str]:
  """'network <algebra>[ (activation)]' -> the algebra's palette colour (as
  in every figure of the project); other learners -> `palette.other_colors`
  in the given order."""
  others = [name for name in learners if not name.startswith("network ")]
  out = dict(zip(others, palette.other_colors(len(others)), strict=True))
  for name in learners:
    if name.startswith("network "):
      algebra = name.removeprefix("network ").split(" (")[0]
      out[name] = palette.algebra_color(algebra)
  return out


def _population_ols(workdir: str) -> float | None:
  path = pathlib.Path(workdir) / "data.json"
  try:
    value = json.loads(path.read_text(encoding="utf-8")).get(
        "least_squares_population_nmse"
    )
  except (OSError, ValueError):
    return None
  return None if value is None else float(value)


def _stats(values: list[float]) -> tuple[float | None, float | None]:
  if not values:
    return None, None
  std = statistics.stdev(values) if len(values) > 1 else None
  return statistics.fmean(values), std


def study_rows(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """Aggregates runs over seeds per (teacher coeffs, budget, learner, d, r).

  Args:
    runs: records from `scripts.results.collect_runs`; runs of other tasks
      are skipped with a warning.

  Returns:
    Rows sorted by (coeffs, budget, d, r, learner): 'learner', 'coeffs' (the
    teacher's monomial coefficients, a tuple), 'budget' (`budget_key`),
    'train_examples' (data.train_examples, 0 = endless), 'd', 'r', 'x' (=
    r / d^1.5), 'nmse' and 'nmse_std' (mean and sample std over seeds; std
    None for one run), 'recovery_error' and 'recovery_error_std' (None when
    the learner reports none), 'ols_population' (from data.json, or None),
    'n' (runs), 'workdirs'.

  Raises:
    ValueError: no teacher_student run, or a run without 'nmse'.
  """
  groups: dict[tuple, list[dict]] = {}
  other = []
  for run in runs:
    config = run["config"]
    if config.get("task") != "teacher_student":
      other.append(run["workdir"])
      continue
    data = config.get("data") or {}
    if METRIC not in run["final_metrics"]:
      raise ValueError(
          f"{run['workdir']}: final_metrics.json has no {METRIC!r} (it has "
          f"{sorted(run['final_metrics'])}); is it a teacher_student run?"
      )
    key = (
        tuple(float(a) for a in data.get("coeffs", ())),
        budget_key(data),
        int(data.get("train_examples", 0)),
        learner_label(run),
        int(data["input_dim"]),
        int(data["teacher_units"]),
    )
    groups.setdefault(key, []).append(run)
  if other:
    warnings.warn(
        f"plot_teacher_student: skipped {len(other)} run(s) of other tasks: "
        + ", ".join(other),
        UserWarning,
        stacklevel=2,
    )
  if not groups:
    raise ValueError(
        "plot_teacher_student: no teacher_student run among the workdirs; "
        "run the sweep of configs/teacher_student.py first."
    )
  rows = []
  for (coeffs, budget, examples, learner, d, r), members in groups.items():
    final = [m["final_metrics"] for m in members]
    nmse, nmse_std = _stats([float(f[METRIC]) for f in final])
    rec, rec_std = _stats([float(f[RECOVERY]) for f in final if RECOVERY in f])
    ols = [_population_ols(m["workdir"]) for m in members]
    ols = [v for v in ols if v is not None]
    rows.append(
        {
            "learner": learner,
            "coeffs": coeffs,
            "budget": budget,
            "train_examples": examples,
            "d": d,
            "r": r,
            "x": r / d**1.5,
            "nmse": nmse,
            "nmse_std": nmse_std,
            "recovery_error": rec,
            "recovery_error_std": rec_std,
            "ols_population": ols[0] if ols else None,
            "n": len(members),
            "workdirs": sorted(m["workdir"] for m in members),
        }
    )
  rows.sort(
      key=lambda row: (
          row["coeffs"],
          row["budget"],
          row["d"],
          row["r"],
          _learner_key(row["learner"]),
      )
  )
  return rows


def _panels(rows: Sequence[dict[str, Any]]) -> list[tuple]:
  """The (teacher coeffs, budget key) groups of the rows, in order."""
  return sorted({(row["coeffs"], row["budget"]) for row in rows})


def panel_title(coeffs: Sequence[float], budget: tuple[int, float]) -> str:
  """'sigma(t) = t + t^3, budget n = 0.5 x C(d+3,3)'."""
  return f"{sigma_text(coeffs)}, {budget_text(budget)}"


def _fmt(mean: float | None, std: float | None) -> str:
  if mean is None:
    return "—"
  return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def _group_table(rows: Sequence[dict[str, Any]]) -> list[str]:
  """Markdown lines of one (teacher, budget) group: a line per (d, r)."""
  learners = sorted({row["learner"] for row in rows}, key=_learner_key)
  cells: dict[tuple, dict[str, dict]] = {}
  for row in rows:
    cells.setdefault((row["d"], row["r"]), {})[row["learner"]] = row
  recovering = [
      name
      for name in learners
      if any(
          row["learner"] == name and row["recovery_error"] is not None
          for row in rows
      )
  ]
  header = ["d", "r", "r / d^1.5", "n train", "OLS pop."]
  header += [f"nmse {name}" for name in learners]
  header += [f"rec. err. {name}" for name in recovering]
  lines = [
      "| " + " | ".join(header) + " |",
      "| " + " | ".join(["---:"] * len(header)) + " |",
  ]
  for (d, r), by_learner in sorted(cells.items()):
    first = next(iter(by_learner.values()))
    ols = first["ols_population"]
    examples = first["train_examples"]
    best = min(v["nmse"] for v in by_learner.values())
    line = [str(d), str(r), f"{r / d**1.5:.3g}"]
    line.append(str(examples) if examples else "endless")
    line.append("—" if ols is None else f"{ols:.3f}")
    for name in learners:
      row = by_learner.get(name)
      if row is None:
        line.append("")
        continue
      text = _fmt(row["nmse"], row["nmse_std"])
      line.append(f"**{text}**" if row["nmse"] == best else text)
    for name in recovering:
      row = by_learner.get(name)
      line.append(
          ""
          if row is None
          else _fmt(row["recovery_error"], row["recovery_error_std"])
      )
    lines.append("| " + " | ".join(line) + " |")
  return lines


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
  """One table per (teacher, budget) under a bold heading: a line per
  (d, r) with the nmse of every learner (best in bold) and the recovery
  error where reported."""
  lines = []
  for coeffs, budget in _panels(rows):
    group = [
        row
        for row in rows
        if row["coeffs"] == coeffs and row["budget"] == budget
    ]
    lines += [f"**{panel_title(coeffs, budget)}**", ""]
    lines += [*_group_table(group), ""]
  lines += [
      "nmse: test MSE / Var(y) (closed form); 1 = the trivial predictor "
      "E[y], lower is better, best per row in bold; mean ± sample std over "
      "seeds. n train: training examples every learner of the row saw "
      "(C(d+3,3) = 165, 969, 6545 cubic monomials at d = 8, 16, 32). OLS "
      "pop.: population nmse of the best linear predictor. rec. err.: 1 - "
      "mean_i max_j |cos(w_i, u_j)| between teacher and learned directions.",
  ]
  return "\n".join(lines)


def plot(rows: Sequence[dict[str, Any]], out_path: str | pathlib.Path):
  """Writes the PNG (see the module docstring); returns its path."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  learners = sorted({row["learner"] for row in rows}, key=_learner_key)
  panels = _panels(rows)
  dims = sorted({row["d"] for row in rows})
  colours = learner_colors(learners)
  fig = Figure(figsize=(13, 5 * len(panels)), layout="constrained")
  FigureCanvasAgg(fig)
  axes = fig.subplots(len(panels), 2, squeeze=False)
  for (ax_err, ax_rec), (coeffs, budget) in zip(axes, panels, strict=True):
    has_recovery = False
    for learner in learners:
      for j, d in enumerate(dims):
        pts = sorted(
            (
                row
                for row in rows
                if row["learner"] == learner
                and row["d"] == d
                and row["coeffs"] == coeffs
                and row["budget"] == budget
            ),
            key=lambda row: row["x"],
        )
        if not pts:
          continue
        style = dict(
            color=colours[learner],
            markerfacecolor="none" if learner.endswith(")") else None,
            marker=_MARKERS[j % len(_MARKERS)],
            linestyle=_LINESTYLES[j % len(_LINESTYLES)],
            capsize=3,
            label=f"{learner}, d={d}",
        )
        ax_err.errorbar(
            [row["x"] for row in pts],
            [row["nmse"] for row in pts],
            yerr=[row["nmse_std"] or 0.0 for row in pts],
            **style,
        )
        rec = [row for row in pts if row["recovery_error"] is not None]
        if rec:
          has_recovery = True
          ax_rec.errorbar(
              [row["x"] for row in rec],
              [row["recovery_error"] for row in rec],
              yerr=[row["recovery_error_std"] or 0.0 for row in rec],
              **style,
          )
    for ax in (ax_err, ax_rec):
      ax.set_xscale("log")
      ax.set_xlabel(r"$r\,/\,d^{3/2}$")
      ax.axvline(1.0, color="grey", linewidth=0.8)  # r = d^{3/2}
      ax.grid(True, which="both", alpha=0.3)
    ax_err.axhline(1.0, color="black", linewidth=0.8)  # the trivial predictor
    # Log y: learners differ by orders of magnitude below 1 and an overfitted
    # one can sit far above it. Exact fits (1e-12) would squash the rest, so
    # the axis stops at NMSE_FLOOR; the table has those values.
    ax_err.set_yscale("log")
    shown = [
        row["nmse"]
        for row in rows
        if row["coeffs"] == coeffs and row["budget"] == budget
    ]
    ax_err.set_ylim(bottom=max(NMSE_FLOOR, 0.5 * min(shown)))
    ax_err.set_ylabel("test nmse = MSE / Var(y) (1 = E[y]), log")
    title = panel_title(coeffs, budget)
    ax_err.set_title(f"prediction error\n{title}")
    ax_rec.set_ylabel("direction recovery error (0 = all recovered)")
    ax_rec.set_title(f"teacher direction recovery\n{title}")
    ax_err.legend(fontsize=7, ncol=2)
    if has_recovery:
      ax_rec.legend(fontsize=7, ncol=2)
  out = pathlib.Path(out_path)
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, format="png", dpi=100)
  return out


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m scripts.plot_teacher_student",
      description=__doc__.split("\n\n")[0],
  )
  parser.add_argument(
      "--workdirs",
      required=True,
      help="Globs of run directories, comma-separated (quote them).",
  )
  parser.add_argument(
      "--out", required=True, help="Output prefix: writes <out>.png, <out>.md."
  )
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
  """Command-line entry point; returns the exit status."""
  args = _parse_args(argv)
  try:
    rows = study_rows(results.collect_runs(args.workdirs))
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  table = markdown_table(rows)
  md = pathlib.Path(args.out + ".md")
  md.parent.mkdir(parents=True, exist_ok=True)
  md.write_text(table + "\n", encoding="utf-8")
  png = plot(rows, args.out + ".png")
  print(table)
  print(f"{sum(row['n'] for row in rows)} runs in {len(rows)} groups. Wrote:")
  print(f"  {md}\n  {png}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
