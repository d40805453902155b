r"""Collects finished study workdirs into docs/results/runs.csv.

  python -m scripts.study_runs                 # evaluate what is missing, write
  python -m scripts.study_runs --no_eval       # only what is already evaluated
  python -m scripts.study_runs --roots=workdirs/study_lm --out=/tmp/runs.csv

One row per finished run (a workdir with final_metrics.json under
workdirs/study_lm or workdirs/study_images) and evaluated split: 'valid' is
the trainer's final evaluation (the whole split), 'test' comes from
`python -m experiments.eval --workdir=... --split=test`, which this script
runs for every run that lacks it (unless --no_eval). The config arg of a run
is read back from its config.json (`config_arg` of the study config) and
the config that arg builds today must equal the stored one, so the
`command` column reproduces the run: a run whose config no longer matches
(the config file changed since) is reported and left out.

Columns: study (lm, images, sparsity, ablation), size, algebra, seed,
learning_rate, selected (1: the learning rate stored for that algebra in
configs/_study_selected.py), sparsity (target), granularity (none,
unstructured, block, element), params (total), nonzero_params, macs
(intrinsic multiply-adds per token for the LM, per image for images, after
pruning), split, metric (bits_per_byte, top1 as a fraction), value, steps,
seconds (wall time of the training run: its config.json to its
final_metrics.json, compilation and the final valid evaluation included, on
whatever shared machine ran it), command, and variant (the run's
non-default design args, e.g. 'block=2x2' or 'norm_mode=whiten'; '' for
none). Rows are sorted, so reruns give stable diffs; rows of runs that are
no longer on disk are kept from the existing file.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from algebranets.training import config_lib, evaluator

COLUMNS = (
    "study",
    "size",
    "algebra",
    "seed",
    "learning_rate",
    "selected",
    "sparsity",
    "granularity",
    "params",
    "nonzero_params",
    "macs",
    "split",
    "metric",
    "value",
    "steps",
    "seconds",
    "command",
    "variant",
)
OUT = "docs/results/runs.csv"
ROOTS = ("workdirs/study_lm", "workdirs/study_images")
CONFIG_FILES = {
    "stream_lm": "configs/study_lm.py",
    "image_classification": "configs/study_images.py",
}
METRICS = {"stream_lm": "bits_per_byte", "image_classification": "top1"}
SPLITS = ("valid", "test")
IMAGES_SIZE = "width0.5"  # the ResNet's R width (configs/study_images.py)


class StaleRunError(ValueError):
  """A workdir's config is not what its config arg builds today."""


def _load_module(path: str):
  return config_lib.load_config_file(path)


def _plain(config) -> Any:
  return json.loads(config_lib.to_json(config))


def _diff(a: Any, b: Any, where: str = "") -> list[str]:
  if isinstance(a, dict) and isinstance(b, dict):
    out = []
    for k in sorted(set(a) | set(b)):
      out += _diff(a.get(k), b.get(k), f"{where}.{k}" if where else k)
    return out
  return [] if a == b else [f"{where}: stored {a!r}, now {b!r}"]


def command_for(workdir: pathlib.Path, root: pathlib.Path) -> tuple[str, Any]:
  """(the training command of `workdir`, its config); the command's paths
  are relative to `root` (the repository).

  Raises:
    StaleRunError: the config arg does not rebuild the stored config.
    config_lib.ConfigError: not a study run.
  """
  config = evaluator.load_config(workdir)
  path = CONFIG_FILES.get(config.task)
  if path is None:
    raise config_lib.ConfigError(f"task {config.task} is not a study task")
  module = _load_module(str(root / path))
  arg = module.config_arg(config)
  rebuilt = module.get_config(arg)
  diff = _diff(_plain(config), _plain(rebuilt))
  if diff:
    raise StaleRunError(
        f"{path}:{arg} no longer builds the stored config ({'; '.join(diff[:3])})"
    )
  workdir = pathlib.Path(os.path.abspath(workdir))
  inside = workdir.is_relative_to(pathlib.Path(os.path.abspath(root)))
  rel = os.path.relpath(workdir, root) if inside else str(workdir)
  return (
      f"python -m experiments.train --config={path}:{arg} --workdir={rel}",
      config,
  )


def _read_json(path: pathlib.Path) -> dict | None:
  return json.loads(path.read_text()) if path.is_file() else None


def split_result(workdir: pathlib.Path, split: str, step: int) -> dict | None:
  """The whole-split evaluation of `split` at `step` (None if missing)."""
  got = _read_json(workdir / f"eval_{split}_step{step}.json")
  if got is None and split == "valid":
    final = _read_json(workdir / "final_metrics.json")
    if final and final.get("split") == "valid":
      got = final
  return got


def evaluate(workdir: pathlib.Path, split: str, root: pathlib.Path) -> None:
  """Runs `python -m experiments.eval` on `workdir` (this interpreter)."""
  print(f"evaluating {workdir} on {split}", flush=True)
  subprocess.run(
      [
          sys.executable,
          "-m",
          "experiments.eval",
          f"--workdir={workdir}",
          f"--split={split}",
      ],
      cwd=root,
      check=True,
  )


def _variant(config, study_module) -> str:
  parts = []
  sp = config.sparsity
  if sp.method != "none" and sp.target > 0 and sp.granularity == "block":
    parts.append("block=" + "x".join(str(b) for b in sp.block_shape))
  if config.task == "stream_lm":
    m = config.model
    if m.norm_mode != "component":
      parts.append(f"norm_mode={m.norm_mode}")
    if m.activation != "split":
      parts.append(f"activation={m.activation}")
    scale = m.init_std / study_module.INIT_STD
    if abs(scale - 1.0) > 1e-9:
      parts.append(f"init_scale={scale:g}")
  return ";".join(parts)


def rows_for(
    workdir: pathlib.Path,
    root: pathlib.Path,
    *,
    run_eval: bool = True,
    selected: dict | None = None,
) -> list[dict[str, Any]]:
  """The runs.csv rows of one finished workdir (both splits if available).

  Raises:
    StaleRunError, config_lib.ConfigError: see `command_for`.
  """
  command, config = command_for(workdir, root)
  module = _load_module(str(root / CONFIG_FILES[config.task]))
  final = _read_json(workdir / "final_metrics.json")
  acc = _read_json(workdir / "accounting.json")
  step = int(final["step"])
  sp = config.sparsity
  pruned = sp.method != "none" and sp.target > 0
  variant = _variant(config, module)
  if config.task == "stream_lm":
    family = "lm"
    size = next(
        k
        for k, v in module.SIZES.items()
        if v["d_model"] == config.model.d_model
    )
    per = config.data.tgt_len  # MACs of one segment -> per token
  else:
    family, size, per = "images", IMAGES_SIZE, 1
  study = family
  if pruned:
    study = "sparsity"
  elif variant:
    study = "ablation"
  if selected is None:
    selected = _load_module(str(root / "configs/_study_selected.py")).LR
  lr = float(config.optimizer.learning_rate)
  chosen = selected.get(family, {}).get(config.model.algebra)
  seconds = (workdir / "final_metrics.json").stat().st_mtime - (
      workdir / "config.json"
  ).stat().st_mtime
  rows = []
  for split in SPLITS:
    result = split_result(workdir, split, step)
    if result is None and run_eval:
      evaluate(workdir, split, root)
      result = split_result(workdir, split, step)
    if result is None:
      continue
    sparse = result if pruned else {}
    macs = sparse.get("sparse_macs_per_example", acc["macs_per_example"])
    metric = METRICS[config.task]
    rows.append(
        dict(
            study=study,
            size=size,
            algebra=config.model.algebra,
            seed=int(config.seed),
            learning_rate=lr,
            selected=int(chosen is not None and chosen == lr),
            sparsity=float(sp.target) if pruned else 0.0,
            granularity=sp.granularity if pruned else "none",
            params=int(acc["params_total"]),
            nonzero_params=int(
                sparse.get("nonzero_params", acc["params_total"])
            ),
            macs=round(macs / per, 3),
            split=split,
            metric=metric,
            value=float(result[metric]),
            steps=step,
            seconds=round(seconds, 1),
            command=command,
            variant=variant,
        )
    )
  return rows


def finished_workdirs(roots: Iterable[pathlib.Path]) -> list[pathlib.Path]:
  out = []
  for r in roots:
    if r.is_dir():
      out += sorted(
          p for p in r.iterdir() if (p / "final_metrics.json").is_file()
      )
  return out


def _key(row: dict) -> tuple:
  return (row["command"], row["split"])


def read_csv(path: pathlib.Path) -> list[dict[str, Any]]:
  if not path.is_file():
    return []
  with path.open(newline="") as f:
    return list(csv.DictReader(f))


def write_csv(path: pathlib.Path, rows: Sequence[dict[str, Any]]) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  order = {s: i for i, s in enumerate(("lm", "sparsity", "ablation"))}
  rows = sorted(
      rows,
      key=lambda r: (
          order.get(r["study"], 9),
          r["study"],
          r["command"],
          r["split"],
      ),
  )
  with path.open("w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
      w.writerow({k: r[k] for k in COLUMNS})


def collect(
    roots: Sequence[pathlib.Path],
    out: pathlib.Path,
    root: pathlib.Path,
    *,
    run_eval: bool = True,
) -> list[dict[str, Any]]:
  """Writes `out` from the finished workdirs under `roots` (keeping rows of
  runs that are not on disk); returns the rows."""
  rows = {_key(r): r for r in read_csv(out)}
  for workdir in finished_workdirs(roots):
    try:
      new = rows_for(workdir, root, run_eval=run_eval)
    except (StaleRunError, config_lib.ConfigError) as e:
      print(f"skipped {workdir}: {e}", flush=True)
      continue
    for r in new:
      rows[_key(r)] = r
  selected = _load_module(str(root / "configs/_study_selected.py")).LR
  for r in rows.values():
    # Also rows kept from the file: the selection may have changed since.
    family = "images" if r["study"] == "images" else "lm"
    chosen = selected.get(family, {}).get(r["algebra"])
    r["selected"] = int(
        chosen is not None and chosen == float(r["learning_rate"])
    )
  write_csv(out, list(rows.values()))
  return list(rows.values())


def main(argv: Sequence[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--roots", default=",".join(ROOTS))
  p.add_argument("--out", default=OUT)
  p.add_argument(
      "--no_eval",
      action="store_true",
      help="do not run experiments.eval for missing splits",
  )
  args = p.parse_args(argv)
  root = pathlib.Path.cwd()
  if not (root / "configs" / "study_lm.py").is_file():
    sys.exit("study_runs: run it from the repository root.")
  rows = collect(
      [pathlib.Path(r) for r in args.roots.split(",") if r],
      pathlib.Path(args.out),
      root,
      run_eval=not args.no_eval,
  )
  print(f"wrote {args.out}: {len(rows)} rows")


if __name__ == "__main__":
  main()
