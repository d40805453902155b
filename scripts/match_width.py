r"""Width multipliers matching the real ResNet-50 / MobileNet, per algebra.

  python -m scripts.match_width --model resnet50 --targets params,macs
  python -m scripts.match_width --model all --write configs/_vision_widths.py
  python -m scripts.match_width --model mobilenet --algebras my_alg.npy \
      --targets params --write configs/_vision_widths.py

For every algebra and target (parameters with the real stem and head,
parameters without them, or MACs) it searches the width multiplier whose
count is closest to the algebra='R' model's (`models.width_matching`), and
prints a markdown table of the measured counts at that multiplier: total
parameters, the real stem+head share, the algebra part, and intrinsic MACs
per 224x224 image, each also relative to the real model. `--write` stores the
multipliers as a Python module the ImageNet configs read (their sweeps run
at matched parameters and at matched MACs); tests/test_width_matching.py
checks that the stored values still match.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from algebranets import algebra_files, algebras, models
from algebranets.models import width_matching

# The reference models of the paper's image experiments (real, width 1).
PRESETS: dict[str, dict[str, Any]] = {
    "resnet50": {"name": "resnet", "depth": 50},
    "mobilenet": {"name": "mobilenet", "alpha": 1.0},
}
# Every registered algebra (the built-ins, in a fresh process).
DEFAULT_ALGEBRAS = tuple(algebras.names())


def preset_config(model: str, algebra: str) -> dict[str, Any]:
  """The full model section of preset `model` with `algebra`."""
  if model not in PRESETS:
    raise ValueError(
        f"Unknown model preset {model!r}; valid: {', '.join(PRESETS)}."
    )
  preset = PRESETS[model]
  cfg = models.defaults(preset["name"])
  cfg.update(preset)
  cfg["algebra"] = algebra
  return cfg


def match_all(
    model: str,
    algebra_names: Sequence[str],
    targets: Sequence[str],
    *,
    tol: float = 0.01,
    log=print,
) -> list[dict[str, Any]]:
  """One row per (algebra, target): multiplier and measured counts."""
  ref_counter = width_matching.vision_counter(preset_config(model, "R"))
  reference = ref_counter(1.0)
  rows = []
  for name in algebra_names:
    alg = algebra_files.resolve(name)  # a name or a .npy/.json file
    counter = width_matching.vision_counter(preset_config(model, alg.name))
    for target in targets:
      t0 = time.perf_counter()
      if alg.name == "R":
        result = width_matching.match_width(
            counter, target, reference=reference, tol=tol
        )
      else:
        # Params shrink ~d times at width 1 and MACs ~d/density times; start
        # near the answer to save evaluations.
        guess = (
            (alg.dim / alg.density) ** 0.5 if target == "macs" else alg.dim**0.5
        )
        result = width_matching.match_width(
            counter, target, reference=reference, tol=tol, start=guess
        )
      c = result.counts
      rows.append(
          {
              "model": model,
              "algebra": alg.name,
              "target": target,
              "width_multiplier": result.width_multiplier,
              "relative_error": result.relative_error,
              "within_tolerance": result.within_tolerance,
              "params_total": c.params_total,
              "params_real_io": c.params_real_io,
              "params_without_io": c.params_without_io,
              "macs": c.macs,
              "params_vs_real": c.params_total / reference.params_total,
              "macs_vs_real": c.macs / reference.macs,
          }
      )
      log(
          f"  {model} {alg.name:5s} {target:17s} width x"
          f"{result.width_multiplier:.4f} error {result.relative_error:+.4%}"
          f" ({result.evaluations} evaluations, "
          f"{time.perf_counter() - t0:.1f} s)"
      )
  return rows


def matched_width(
    model: str, algebra: str, target: str, *, tol: float = 0.01
) -> float:
  """The multiplier of preset `model` in `algebra` matching the real model's
  `target` count (what `--write` would store; ~20 s of CPU per call)."""
  rows = match_all(model, [algebra], [target], tol=tol, log=lambda *_: None)
  return rows[0]["width_multiplier"]


def _m(n: int) -> str:
  return f"{n / 1e6:.2f}M"


def markdown(rows: Sequence[dict[str, Any]]) -> str:
  """The README table."""
  out = [
      "| model | matched | algebra | width x | params | real stem+head |"
      " algebra params | MACs/image | params vs R | MACs vs R |",
      "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    out.append(
        f"| {r['model']} | {r['target']} | {r['algebra']} |"
        f" {r['width_multiplier']:.3f} | {_m(r['params_total'])} |"
        f" {_m(r['params_real_io'])} | {_m(r['params_without_io'])} |"
        f" {r['macs'] / 1e9:.2f}G | {r['params_vs_real']:.3f} |"
        f" {r['macs_vs_real']:.2f} |"
    )
  return "\n".join(out)


def read_module(path: str) -> dict[str, dict[str, dict[str, float]]]:
  """MATCHED of an existing multipliers module ({} if there is none)."""
  try:
    with open(path) as f:
      text = f.read()
  except FileNotFoundError:
    return {}
  namespace: dict[str, Any] = {}
  exec(compile(text, path, "exec"), namespace)
  return namespace.get("MATCHED", {})


def module_text(
    rows: Sequence[dict[str, Any]],
    existing: dict[str, dict[str, dict[str, float]]] | None = None,
) -> str:
  """Python source of the stored multipliers (configs/_vision_widths.py);
  entries of `existing` that `rows` do not remeasure are kept."""
  table: dict[str, dict[str, dict[str, float]]] = {
      model: {t: dict(by_alg) for t, by_alg in by_target.items()}
      for model, by_target in (existing or {}).items()
  }
  for r in rows:
    table.setdefault(r["model"], {}).setdefault(r["target"], {})[
        r["algebra"]
    ] = round(r["width_multiplier"], 6)
  return (
      '"""Width multipliers matching the real models (generated; do not edit).\n'
      "\n"
      "Regenerate with\n"
      "  python -m scripts.match_width --model all --targets "
      "params,params_without_io,macs \\\n"
      "      --write configs/_vision_widths.py\n"
      "MATCHED[model][target][algebra] = width_multiplier; see\n"
      "algebranets/models/width_matching.py for the targets.\n"
      '"""\n\n'
      f"MATCHED = {_literal(table, 0)}\n"
  )


def _literal(value: Any, level: int) -> str:
  """A nested dict as the formatter (pyink) writes it: one key per line."""
  if not isinstance(value, dict):
    return repr(value)
  pad = "    " * (level + 1)
  items = "".join(
      f'{pad}"{k}": {_literal(value[k], level + 1)},\n' for k in sorted(value)
  )
  return "{\n" + items + "    " * level + "}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--model", default="all", help=f"{', '.join(PRESETS)} or all")
  p.add_argument("--algebras", default=",".join(DEFAULT_ALGEBRAS))
  p.add_argument(
      "--targets",
      default="params,macs",
      help=f"comma list of {', '.join(width_matching.TARGETS)}",
  )
  p.add_argument("--tol", type=float, default=0.01)
  p.add_argument(
      "--write",
      default="",
      help="update (or create) the multipliers module at this path",
  )
  return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
  args = parse_args(argv)
  model_names = list(PRESETS) if args.model == "all" else [args.model]
  targets = [t for t in args.targets.split(",") if t]
  algebra_names = [a for a in args.algebras.split(",") if a]
  try:
    for t in targets:
      width_matching.Counts(1.0, 0, 0, 0).value(t)  # raises for unknown
    for a in algebra_names:
      algebra_files.resolve(a)
    for m in model_names:
      preset_config(m, "R")
  except ValueError as e:
    sys.exit(f"match_width: {e}")
  rows = []
  for m in model_names:
    rows += match_all(m, algebra_names, targets, tol=args.tol)
  print(markdown(rows))
  missed = [r for r in rows if not r["within_tolerance"]]
  for r in missed:
    print(
        f"warning: {r['model']} {r['algebra']} {r['target']}: closest "
        f"multiplier misses by {r['relative_error']:+.2%} (> {args.tol:.0%})"
    )
  if args.write:
    text = module_text(rows, read_module(args.write))
    with open(args.write, "w") as f:
      f.write(text)
    print(f"wrote {args.write}")
  return rows


if __name__ == "__main__":
  main()
