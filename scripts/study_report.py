r"""Tables and figures of docs/results.md, from docs/results/runs.csv only.

  python -m scripts.study_report                  # every table and figure
  python -m scripts.study_report --only=lr_sweep  # one of them (SECTIONS)
  python -m scripts.study_report --select         # also store the selected
                                                  # learning rates

Every number it writes comes from a row of the runs file (see
scripts/study_runs.py); nothing is typed in by hand. Each section of
docs/results.md between `<!-- BEGIN generated: NAME -->` and
`<!-- END generated: NAME -->` is replaced by the section NAME built from
the rows; a section whose runs are not in the file says so and gives the
commands that produce them. Figures go to docs/figures/<NAME>.png, one
colour per algebra (`algebranets.palette`) in every figure, error bars = sample
standard deviation over seeds (ddof=1) where a point has several seeds.

--select writes configs/_study_selected.py: per study (lm, images) and
algebra whose whole learning-rate grid has a valid result, the learning
rate with the best valid metric (seed 0, the study's main size).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import pathlib
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from algebranets import palette
from algebranets.training import config_lib

RUNS = "docs/results/runs.csv"
# Batch-1 decoding times of the study models (python -m scripts.study_decode);
# main() points decode_path at --decode.
DECODE = "docs/results/decode.json"
decode_path = DECODE
DOC = "docs/results.md"
FIGURES = "docs/figures"
SELECTED_MODULE = "configs/_study_selected.py"
ALGEBRAS = ("R", "C", "dual", "cross", "H", "M2R", "M3R", "M4R", "M2C")
# One colour per algebra in every figure the project draws (the palette).
ALGEBRA_COLORS = {name: palette.algebra_color(name) for name in ALGEBRAS}
# The learning-rate grids are the sweeps' own (one place each).
_CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
LM_GRID = config_lib.load_config_file(str(_CONFIGS / "study_lm.py")).LR_GRID
IMAGES_GRID = config_lib.load_config_file(
    str(_CONFIGS / "study_images.py")
).LR_GRID
METRIC_LABELS = {
    "bits_per_byte": "bits per byte (lower is better)",
    "top1": "top-1 accuracy (%)",
}
TITLES = {"lm": "Transformer-XL (medium)", "images": "Fashion-MNIST ResNet"}
SWEEP = "python -m scripts.sweep --config=configs/study_{study}.py:sweep={name} --workdir_root=workdirs/study_{study}"
COLLECT = "python -m scripts.study_runs && python -m scripts.study_report"


# ----------------------------------------------------------------- rows --
def read_rows(path: str | pathlib.Path) -> list[dict[str, Any]]:
  """runs.csv with numeric columns converted."""
  ints = ("seed", "selected", "params", "nonzero_params", "steps")
  floats = ("learning_rate", "sparsity", "macs", "value", "seconds")
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  for r in rows:
    for k in ints:
      r[k] = int(r[k])
    for k in floats:
      r[k] = float(r[k])
  return rows


def where(rows, **conds) -> list[dict[str, Any]]:
  return [r for r in rows if all(r[k] == v for k, v in conds.items())]


def stats(values: Sequence[float]) -> tuple[float, float, int]:
  """(mean, sample std (ddof=1; nan for one value), n)."""
  n = len(values)
  mean = statistics.fmean(values)
  std = statistics.stdev(values) if n > 1 else math.nan
  return mean, std, n


def _shown(metric: str, value: float) -> float:
  return 100.0 * value if metric == "top1" else value


def _fmt(metric: str, mean: float, std: float, n: int) -> str:
  digits = 2 if metric == "top1" else 4
  mean, std = _shown(metric, mean), _shown(metric, std)
  if n > 1:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
  return f"{mean:.{digits}f}"


def versus(
    ref: Sequence[float], values: Sequence[float]
) -> tuple[float, float]:
  """(mean(values) - mean(ref), Welch's two-sided t-test p); nan where
  either side has fewer than 2 values."""
  if len(ref) < 2 or len(values) < 2:
    return (
        (statistics.fmean(values) - statistics.fmean(ref))
        if ref and values
        else math.nan
    ), math.nan
  from scipy import stats as scipy_stats  # only the report needs it

  result = scipy_stats.ttest_ind(values, ref, equal_var=False)
  return statistics.fmean(values) - statistics.fmean(ref), float(result.pvalue)


def _signed(metric: str, value: float) -> str:
  digits = 2 if metric == "top1" else 4
  return f"{_shown(metric, value):+.{digits}f}"


def _order(names) -> list[str]:
  return sorted(
      set(names), key=lambda a: (ALGEBRAS.index(a) if a in ALGEBRAS else 99, a)
  )


def _lr(x: float) -> str:
  return f"{x:g}"


def _cmd(row: dict) -> str:
  return row["command"]


# --------------------------------------------------------- selection ------
def lr_sweep_rows(rows, study: str) -> list[dict[str, Any]]:
  """The valid rows of a learning-rate sweep (seed 0, main size, dense)."""
  size = "medium" if study == "lm" else "width0.5"
  return where(rows, study=study, size=size, seed=0, split="valid", variant="")


def select(rows, study: str) -> dict[str, float]:
  """{algebra: best learning rate} for algebras whose grid is complete,
  over every rate measured for it (the grid and its extensions)."""
  grid = LM_GRID if study == "lm" else IMAGES_GRID
  lower = study != "images"
  by_alg: dict[str, dict[float, float]] = defaultdict(dict)
  for r in lr_sweep_rows(rows, study):
    by_alg[r["algebra"]][r["learning_rate"]] = r["value"]
  out = {}
  for alg, vals in by_alg.items():
    # Rates past the grid's edge (configs/_study.lr_grid) compete too.
    if all(lr in vals for lr in grid):
      out[alg] = (min if lower else max)(vals, key=lambda lr: vals[lr])
  return out


def selected_module_text(selected: dict[str, dict[str, float]]) -> str:
  def literal(d):
    # One entry per line with a trailing comma: the layout pyink keeps, so
    # the generated file passes the formatting check of scripts/test.sh.
    if not d:
      return "{}"
    lines = "".join(f'        "{k}": {d[k]!r},\n' for k in _order(d))
    return "{\n" + lines + "    }"

  inner = ",\n".join(
      f'    "{s}": {literal(selected.get(s, {}))}' for s in ("images", "lm")
  )
  return (
      '"""Learning rates selected on valid for the study sweeps (generated).\n'
      "\n"
      "Written by `python -m scripts.study_report --select` from the lr_sweep"
      " rows\nof docs/results/runs.csv: per study and algebra, the learning "
      "rate with the\nbest valid metric (lowest bits/byte, highest top-1). An "
      "algebra is absent\nuntil its learning-rate sweep has finished.\n"
      '"""\n\n'
      f"LR = {{\n{inner},\n}}\n"
  )


# ------------------------------------------------------------ figures ----
def _errorbar(ax, xs, means, stds, algebra, label=None, **kw):
  """Points (and bars of `stds`; nan = one seed, no bar) in the colour of
  `algebra`, labelled `label` (default: the algebra)."""
  stds = [0.0 if math.isnan(s) else s for s in stds]
  return ax.errorbar(
      xs,
      means,
      yerr=stds,
      color=ALGEBRA_COLORS.get(algebra, "black"),
      label=label or algebra,
      marker="o",
      capsize=3,
      **kw,
  )


def figure_lr_sweep(rows, study: str = "lm") -> Figure:
  """Valid metric against the learning rate, one line per algebra."""
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  data = lr_sweep_rows(rows, study)
  metric = data[0]["metric"] if data else "bits_per_byte"
  for alg in _order(r["algebra"] for r in data):
    pts = sorted(
        (r["learning_rate"], _shown(metric, r["value"]))
        for r in where(data, algebra=alg)
    )
    _errorbar(ax, [p[0] for p in pts], [p[1] for p in pts], [0] * len(pts), alg)
  ax.set_xscale("log")
  ax.set_xlabel("peak learning rate (log scale)")
  ax.set_ylabel(f"valid {METRIC_LABELS[metric]}")
  ax.set_title(f"{TITLES[study]}: learning-rate sweep (seed 0)")
  ax.legend(fontsize=8, ncol=3)
  fig.tight_layout()
  return fig


def _groups(rows, keys: Sequence[str]) -> dict[tuple, list[dict]]:
  out: dict[tuple, list[dict]] = defaultdict(list)
  for r in rows:
    out[tuple(r[k] for k in keys)].append(r)
  return out


def figure_algebras(rows, study: str, split: str = "test") -> Figure:
  """Metric mean ± std over seeds per algebra at its selected LR."""
  data = main_rows(rows, study, split)
  metric = data[0]["metric"] if data else "bits_per_byte"
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  algs = _order(r["algebra"] for r in data)
  for i, alg in enumerate(algs):
    m, s, _ = stats(
        [_shown(metric, r["value"]) for r in where(data, algebra=alg)]
    )
    _errorbar(ax, [i], [m], [s], alg, linestyle="none")
  ax.set_xticks(range(len(algs)), algs)
  ax.set_xlabel("algebra (parameters matched to R)")
  ax.set_ylabel(f"{split} {METRIC_LABELS[metric]}")
  counts = sorted({len(where(data, algebra=a)) for a in algs}) or [0]
  seeds = (
      "one seed, no error bars"
      if counts == [1]
      else f"mean ± std over {counts[0]}-{counts[-1]} seeds"
  )
  ax.set_title(f"{TITLES[study]}: selected learning rate\n({seeds})")
  fig.tight_layout()
  return fig


def figure_tradeoff(
    rows, x_keys: Sequence[tuple[str, str]], title: str
) -> Figure:
  """Test metric against each x column (one panel each), one line per
  row['_label'] (coloured by algebra, dashed by row['_style']), mean ± std
  over seeds at each point."""
  fig, axes = plt.subplots(1, len(x_keys), figsize=(6.0 * len(x_keys), 4.2))
  axes = list(axes) if len(x_keys) > 1 else [axes]
  metric = rows[0]["metric"] if rows else "bits_per_byte"
  lines = _groups(rows, ("_label",)) if rows else {}
  for ax, (key, xlabel) in zip(axes, x_keys, strict=True):
    for (label,), group in sorted(lines.items()):
      pts = []
      for _, g in _groups(group, (key,)).items():
        m, s, _ = stats([_shown(metric, r["value"]) for r in g])
        pts.append((g[0][key], m, s))
      pts.sort()
      alg = group[0]["algebra"]
      bars = _errorbar(
          ax,
          [p[0] for p in pts],
          [p[1] for p in pts],
          [p[2] for p in pts],
          alg,
          label=label,
      )
      bars.lines[0].set_linestyle(group[0].get("_style", "-"))
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"test {METRIC_LABELS[metric]}")
    ax.legend(fontsize=8)
  fig.suptitle(title)
  fig.tight_layout()
  return fig


def figure_sizes(rows) -> Figure:
  data = [
      dict(r, _label=r["algebra"])
      for r in where(rows, study="lm", selected=1, split="test", variant="")
  ]
  return figure_tradeoff(
      data,
      [
          ("params", "parameters (log scale)"),
          ("macs", "intrinsic MACs per token (log scale)"),
      ],
      "Transformer-XL sizes at the selected learning rate",
  )


_STYLES = {
    "unstructured": ":",
    "block=2x2": "--",
    "block=4x4": "-.",
    "element": "-",
}


def _sparse_label(r) -> str:
  kind = r["variant"] if r["granularity"] == "block" else r["granularity"]
  return f"{r['algebra']} {kind}"


def figure_sparsity(rows) -> Figure:
  data = []
  for r in where(rows, study="sparsity", split="test"):
    kind = r["variant"] if r["granularity"] == "block" else r["granularity"]
    data.append(dict(r, _label=_sparse_label(r), _style=_STYLES.get(kind, "-")))
  return figure_tradeoff(
      data,
      [
          ("nonzero_params", "non-zero parameters (log scale)"),
          ("macs", "intrinsic MACs per token after pruning (log scale)"),
      ],
      "Pruned Transformer-XL (medium)",
  )


# ------------------------------------------------------------- tables ----
def main_rows(rows, study: str, split: str) -> list[dict]:
  size = "medium" if study == "lm" else "width0.5"
  return where(
      rows, study=study, size=size, selected=1, split=split, variant=""
  )


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
  out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  out += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
  return "\n".join(out)


def _missing(what: str, commands: Sequence[str]) -> str:
  cmds = "\n".join(f"    {c}" for c in commands)
  return f"*Not run yet* ({what}). To run it:\n\n{cmds}\n"


def section_r_seeds(rows) -> str:
  data = where(
      rows,
      study="lm",
      size="medium",
      algebra="R",
      learning_rate=0.002,
      variant="",
  )
  seeds = sorted({r["seed"] for r in data})
  if len(seeds) < 2:
    return _missing(
        "R at lr 0.002, seeds 0-2",
        [SWEEP.format(study="lm", name="r_seeds"), COLLECT],
    )
  body = []
  for split in ("valid", "test"):
    vals = {r["seed"]: r["value"] for r in where(data, split=split)}
    if not vals:
      continue
    m, s, n = stats(list(vals.values()))
    body.append(
        [split]
        + [f"{vals[k]:.4f}" if k in vals else "-" for k in seeds]
        + [f"{m:.4f}", f"{s:.4f}", str(n)]
    )
  secs = [r["seconds"] for r in where(data, split="valid")]
  test = [r["value"] for r in where(data, split="test")]
  noise = ""
  if len(test) > 1:
    _, std, n = stats(test)
    noise = (
        f" With R's test std of {std:.4f} bits/byte, two {n}-seed means "
        f"differ beyond noise (two standard errors of their difference) "
        f"only by more than {2 * std * math.sqrt(2 / n):.4f}; two single "
        f"runs (the learning-rate sweep) by more than "
        f"{2 * std * math.sqrt(2):.4f}."
    )
  return (
      _table(
          ["split"] + [f"seed {k}" for k in seeds] + ["mean", "std", "n"],
          body,
      )
      + "\n\nstd: sample standard deviation (ddof = 1)."
      + noise
      + f" Training wall time per run: {min(secs):.0f}-{max(secs):.0f} s "
      "(shared machine, see the protocol).\n"
  )


def section_lr_sweep(rows, study: str = "lm") -> str:
  data = lr_sweep_rows(rows, study)
  grid = LM_GRID if study == "lm" else IMAGES_GRID
  if not data:
    return _missing(
        f"{study} learning-rate sweep",
        [SWEEP.format(study=study, name="lr_sweep"), COLLECT],
    )
  metric = data[0]["metric"]
  chosen = select(rows, study)
  grid = sorted(set(grid) | {r["learning_rate"] for r in data})
  body = []
  for alg in _order(r["algebra"] for r in data):
    got = {r["learning_rate"]: r for r in where(data, algebra=alg)}
    any_row = next(iter(got.values()))
    cells = []
    for lr in grid:
      if lr not in got:
        cells.append("-")
        continue
      text = _fmt(metric, got[lr]["value"], math.nan, 1)
      cells.append(f"**{text}**" if chosen.get(alg) == lr else text)
    body.append(
        [
            alg,
            f"{any_row['params']:,}",
            f"{any_row['macs']:,.0f}",
            *cells,
            _lr(chosen[alg]) if alg in chosen else "grid incomplete",
        ]
    )
  unit = "MACs/token" if study == "lm" else "MACs/image"
  return (
      _table(
          ["algebra", "params", unit]
          + [f"lr {_lr(x)}" for x in grid]
          + ["selected"],
          body,
      )
      + f"\n\nValid {METRIC_LABELS[metric]}, seed 0; bold: the selected "
      "learning rate (complete grids only).\n\n"
      f"![{study} learning-rate sweep](figures/{study}_lr_sweep.png)\n"
  )


def section_main(rows, study: str) -> str:
  test = main_rows(rows, study, "test")
  if not test:
    return _missing(
        f"{study}: seeds 0-2 at the selected learning rates",
        [
            SWEEP.format(study=study, name="seeds"),
            COLLECT,
        ],
    )
  valid = main_rows(rows, study, "valid")
  metric = test[0]["metric"]
  ref = [r["value"] for r in where(test, algebra="R")]
  body = []
  for alg in _order(r["algebra"] for r in test):
    t = where(test, algebra=alg)
    v = where(valid, algebra=alg)
    diff, p_value = versus(ref, [r["value"] for r in t])
    body.append(
        [
            alg,
            _lr(t[0]["learning_rate"]),
            str(len(t)),
            _fmt(metric, *stats([r["value"] for r in t])),
            "-" if alg == "R" or math.isnan(diff) else _signed(metric, diff),
            "-" if alg == "R" or math.isnan(p_value) else f"{p_value:.3f}",
            _fmt(metric, *stats([r["value"] for r in v])) if v else "-",
            f"{t[0]['params']:,}",
            f"{t[0]['macs']:,.0f}",
        ]
    )
  unit = "MACs/token" if study == "lm" else "MACs/image"
  return (
      _table(
          [
              "algebra",
              "lr",
              "n seeds",
              "test (mean ± std)",
              "test - R",
              "p (Welch)",
              "valid",
              "params",
              unit,
          ],
          body,
      )
      + "\n\n`test - R`: difference of the test means from R's; `p "
      "(Welch)`: two-sided p-value of Welch's t-test between the algebra's "
      "seeds and R's (unequal variances; with 3 seeds each, a p below 0.05 "
      "needs a difference of about three standard errors).\n\n"
      f"![{study} per algebra](figures/{study}_algebras.png)\n"
  )


def section_sizes(rows) -> str:
  data = where(rows, study="lm", selected=1, split="test", variant="")
  if len({r["size"] for r in data}) < 2:
    return _missing(
        "second and third model sizes",
        [SWEEP.format(study="lm", name="sizes"), COLLECT],
    )
  body = []
  for (alg, size), g in sorted(_groups(data, ("algebra", "size")).items()):
    body.append(
        [
            alg,
            size,
            str(len(g)),
            _fmt(g[0]["metric"], *stats([r["value"] for r in g])),
            f"{g[0]['params']:,}",
            f"{g[0]['macs']:,.0f}",
        ]
    )
  return (
      _table(
          ["algebra", "size", "n", "test bits/byte", "params", "MACs/token"],
          body,
      )
      + "\n\n![sizes](figures/lm_sizes.png)\n"
  )


def section_sparsity(rows) -> str:
  data = where(rows, study="sparsity", split="test")
  if not data:
    return _missing(
        "pruning", [SWEEP.format(study="lm", name="sparsity"), COLLECT]
    )
  body = []
  for (label, target), g in sorted(
      _groups(
          [dict(r, _label=_sparse_label(r)) for r in data],
          ("_label", "sparsity"),
      ).items()
  ):
    body.append(
        [
            label,
            f"{target:g}",
            str(len(g)),
            _fmt("bits_per_byte", *stats([r["value"] for r in g])),
            f"{g[0]['nonzero_params']:,}",
            f"{g[0]['macs']:,.0f}",
        ]
    )
  return (
      _table(
          [
              "pruning",
              "target",
              "n",
              "test bits/byte",
              "non-zero params",
              "MACs/token",
          ],
          body,
      )
      + "\n\n![sparsity](figures/sparsity.png)\n"
  )


def section_ablation(rows) -> str:
  data = where(rows, study="ablation", split="test")
  if not data:
    return _missing(
        "design-choice ablation",
        [SWEEP.format(study="lm", name="ablation"), COLLECT],
    )
  base = {
      r["algebra"]: r["value"]
      for r in where(
          rows,
          study="lm",
          size="medium",
          selected=1,
          seed=0,
          split="test",
          variant="",
      )
  }
  body = []
  for r in sorted(data, key=lambda r: (r["algebra"], r["variant"])):
    ref = base.get(r["algebra"])
    body.append(
        [
            r["algebra"],
            r["variant"],
            f"{r['value']:.4f}",
            f"{r['value'] - ref:+.4f}" if ref is not None else "-",
        ]
    )
  return (
      _table(
          ["algebra", "change", "test bits/byte", "vs default (seed 0)"], body
      )
      + "\n"
  )


def read_decode(path: str | pathlib.Path = DECODE) -> dict[str, Any] | None:
  """scripts.study_decode's JSON, or None when it has not been run."""
  path = pathlib.Path(path)
  if not path.is_file():
    return None
  return json.loads(path.read_text())


def decode_rows(rows, decode) -> list[dict[str, Any]]:
  """Per algebra with both: test bits/byte of the lm seeds (selected LR,
  medium) and the batch-1 decode time of the same model."""
  if not decode:
    return []
  test = main_rows(rows, "lm", "test")
  out = []
  for d in decode["rows"]:
    t = where(test, algebra=d["algebra"])
    if t:
      m, s, n = stats([r["value"] for r in t])
      out.append(dict(d, mean=m, std=s, n=n, macs=t[0]["macs"]))
  return out


def _load_note(decode) -> str:
  load = decode["machine"].get("load_average")
  when = decode["machine"].get("timestamp", "")
  text = f"load average {load[0]:.2f}" if load else "load not recorded"
  return f"{decode['machine'].get('cpu_model', 'CPU')}, {text}" + (
      f", {when[:10]}" if when else ""
  )


def figure_decode(rows, decode) -> Figure:
  """Test bits/byte against batch-1 decode time per token, per algebra."""
  data = decode_rows(rows, decode)
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for d in data:
    _errorbar(
        ax,
        [d["ms_per_token"] * 1e3],
        [d["mean"]],
        [d["std"]],
        d["algebra"],
        linestyle="none",
    )
    ax.annotate(
        d["algebra"],
        (d["ms_per_token"] * 1e3, d["mean"]),
        textcoords="offset points",
        xytext=(5, 4),
        fontsize=8,
    )
  ax.set_xlabel("batch-1 decode time per token (µs, 2 CPU cores)")
  ax.set_ylabel(f"test {METRIC_LABELS['bits_per_byte']}")
  ax.set_title(
      "Transformer-XL (medium), matched parameters:\nquality against "
      "decode time (mean ± std over seeds)"
  )
  fig.tight_layout()
  return fig


def section_decode(rows) -> str:
  decode = read_decode(decode_path)
  data = decode_rows(rows, decode)
  if not data:
    return _missing(
        "quality against batch-1 decode time",
        [
            "python -m scripts.study_decode   # alone on the machine: a timing",
            SWEEP.format(study="lm", name="seeds"),
            COLLECT,
        ],
    )
  ref = data[0]
  body = [
      [
          d["algebra"],
          f"{d['params']:,}",
          f"{d['macs']:,.0f}",
          _fmt("bits_per_byte", d["mean"], d["std"], d["n"]),
          str(d["n"]),
          f"{d['ms_per_token'] * 1e3:.1f}",
          f"{d['ms_per_token'] / ref['ms_per_token']:.2f}",
          f"{d['bytes_per_token'] / 1e6:.2f}",
      ]
      for d in data
  ]
  return (
      _table(
          [
              "algebra",
              "params",
              "MACs/token",
              "test bits/byte",
              "n seeds",
              "µs/token (B=1)",
              f"x {ref['algebra']}",
              "MB read/token",
          ],
          body,
      )
      + f"\n\nDecode times: `python -m scripts.study_decode` "
      f"({decode['tokens']} tokens per call, every algebra interleaved, "
      f"{_load_note(decode)}); the models are the study's medium models "
      "(evaluation memory 128) with random weights, decoded by "
      "`models.txl_decoding.TXLDecoder`.\n\n"
      "![quality against decode time](figures/lm_decode.png)\n"
  )


def section_widths(rows) -> str:
  """The matched widths (configs/_study_widths.py: configuration)."""
  del rows
  from configs import _study_widths

  body = []
  for size, table in sorted(
      _study_widths.LM.items(),
      key=lambda kv: ("small", "medium", "large").index(kv[0]),
  ):
    for alg in _order(table):
      e = table[alg]
      body.append(
          [
              "lm " + size,
              alg,
              f"{e['width_multiplier']:g}",
              str(e["d_inner"]),
              f"{e['params']:,}",
              f"{e['relative_error']:+.2%}",
              f"{e['macs_per_token']:,.0f}",
          ]
      )
  for alg in _order(_study_widths.IMAGES):
    e = _study_widths.IMAGES[alg]
    body.append(
        [
            "images",
            alg,
            f"{e['width_multiplier']:g}",
            "-",
            f"{e['params']:,}",
            f"{e['relative_error']:+.2%}",
            f"{e['macs']:,}",
        ]
    )
  return (
      _table(
          [
              "model",
              "algebra",
              "width x",
              "d_inner",
              "params",
              "vs R",
              "MACs (per token / per image)",
          ],
          body,
      )
      + "\n"
  )


SECTIONS: dict[str, Callable[[list], str]] = {
    "widths": section_widths,
    "r_seeds": section_r_seeds,
    "lm_lr_sweep": lambda rows: section_lr_sweep(rows, "lm"),
    "lm": lambda rows: section_main(rows, "lm"),
    "lm_sizes": section_sizes,
    "images_lr_sweep": lambda rows: section_lr_sweep(rows, "images"),
    "images": lambda rows: section_main(rows, "images"),
    "sparsity": section_sparsity,
    "ablation": section_ablation,
    "lm_decode": section_decode,
}
FIGURES_OF: dict[
    str, tuple[str, Callable[[list], Figure], Callable[[list], bool]]
] = {
    "lm_lr_sweep": (
        "lm_lr_sweep",
        lambda rows: figure_lr_sweep(rows, "lm"),
        lambda rows: bool(lr_sweep_rows(rows, "lm")),
    ),
    "lm": (
        "lm_algebras",
        lambda rows: figure_algebras(rows, "lm"),
        lambda rows: bool(main_rows(rows, "lm", "test")),
    ),
    "lm_sizes": (
        "lm_sizes",
        figure_sizes,
        lambda rows: len(
            {
                r["size"]
                for r in where(rows, study="lm", selected=1, split="test")
            }
        )
        > 1,
    ),
    "images_lr_sweep": (
        "images_lr_sweep",
        lambda rows: figure_lr_sweep(rows, "images"),
        lambda rows: bool(lr_sweep_rows(rows, "images")),
    ),
    "images": (
        "images_algebras",
        lambda rows: figure_algebras(rows, "images"),
        lambda rows: bool(main_rows(rows, "images", "test")),
    ),
    "sparsity": (
        "sparsity",
        figure_sparsity,
        lambda rows: bool(where(rows, study="sparsity", split="test")),
    ),
    "lm_decode": (
        "lm_decode",
        lambda rows: figure_decode(rows, read_decode(decode_path)),
        lambda rows: bool(decode_rows(rows, read_decode(decode_path))),
    ),
}


def replace_section(doc: str, name: str, body: str) -> str:
  """`doc` with the generated section `name` replaced by `body`.

  Raises:
    ValueError: the markers of `name` are not in `doc`.
  """
  pattern = re.compile(
      rf"(<!-- BEGIN generated: {re.escape(name)} -->\n).*?"
      rf"(<!-- END generated: {re.escape(name)} -->)",
      re.S,
  )
  if not pattern.search(doc):
    raise ValueError(
        f"{DOC} has no '<!-- BEGIN generated: {name} -->' ... '<!-- END "
        f"generated: {name} -->' markers; add them where the section goes."
    )
  return pattern.sub(
      lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), doc
  )


def main(argv: Sequence[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--runs", default=RUNS)
  p.add_argument("--doc", default=DOC)
  p.add_argument("--figures", default=FIGURES)
  p.add_argument("--decode", default=DECODE, help="scripts.study_decode's JSON")
  p.add_argument("--only", default="", help=f"one of {', '.join(SECTIONS)}")
  p.add_argument(
      "--select", action="store_true", help=f"write {SELECTED_MODULE}"
  )
  args = p.parse_args(argv)
  if args.only and args.only not in SECTIONS:
    sys.exit(
        f"study_report: --only={args.only!r}; use one of {', '.join(SECTIONS)}."
    )
  if not pathlib.Path(args.runs).is_file():
    sys.exit(
        f"study_report: {args.runs} not found; run `python -m scripts.study_runs` first."
    )
  rows = read_rows(args.runs)
  global decode_path
  decode_path = args.decode
  if args.select:
    chosen = {s: select(rows, s) for s in ("lm", "images")}
    pathlib.Path(SELECTED_MODULE).write_text(selected_module_text(chosen))
    print(f"wrote {SELECTED_MODULE}: {chosen}")
  names = [args.only] if args.only else list(SECTIONS)
  doc_path = pathlib.Path(args.doc)
  doc = doc_path.read_text()
  for name in names:
    try:
      doc = replace_section(doc, name, SECTIONS[name](rows))
    except ValueError as e:
      sys.exit(f"study_report: {e}")
    if name in FIGURES_OF:
      stem, make, has_data = FIGURES_OF[name]
      if has_data(rows):
        out = pathlib.Path(args.figures) / f"{stem}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        fig = make(rows)
        fig.savefig(out, dpi=120)
        plt.close(fig)
        print(f"wrote {out}")
  doc_path.write_text(doc)
  print(f"wrote {doc_path} ({', '.join(names)})")


if __name__ == "__main__":
  main()
