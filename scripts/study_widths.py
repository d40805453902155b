r"""Matched widths of the study models: every algebra at R's parameter count.

  python -m scripts.study_widths                      # print the tables
  python -m scripts.study_widths --write              # update configs/_study_widths.py
  python -m scripts.study_widths --study lm --sizes medium --algebras R,H

Language models (configs/study_lm.py): the Transformer-XL's real width
d_model * width_multiplier must be a multiple of d * num_heads (heads split
the algebra channels), so the candidates form a lattice; the script measures
the total parameter count of the lattice points around d_model * sqrt(d) and
keeps the closest to R's (width 1); where that still misses by more than
1% (the lattice is coarse for M3R and M4R: steps of 18 and 32 real
features with 2 heads), the FFN width moves by whole algebra channels to
bring the count within rounding of R's (`d_inner` in the table). Images (configs/study_images.py): the
Fashion-MNIST ResNet rounds channels per layer, so any multiplier is valid;
`models.width_matching.match_width` searches it against R at width 0.5.
Every count is measured on the built model (parameters of the abstract
init, intrinsic MACs of `metrics.count_macs`), never from formulas;
tests/test_study.py checks that the stored values are still what the
configs build.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

from algebranets import algebras
from algebranets.models import width_matching
from algebranets.training import config_lib
from algebranets.training.experiment import Experiment

MODULE = "configs/_study_widths.py"
IMAGE_SHAPE, NUM_CLASSES = (28, 28, 1), 10
# A lattice width within this of R's parameters keeps the size's FFN ratio.
FFN_TOLERANCE = 0.01


def lm_counts(
    study_lm, size: str, algebra: str, width: float, d_inner: int = 0
) -> dict:
  """{'params', 'macs_per_token'} of configs/study_lm.py at `width` (and
  real FFN width `d_inner` before the multiplier; 0: the size's)."""
  config = study_lm.get_config(f"size={size},algebra={algebra},width={width}")
  if d_inner:
    config.model.d_inner = d_inner
  exp = Experiment(config)
  acc = exp.accounting(exp.abstract_state().params)
  return {
      "params": int(acc["params_total"]),
      "macs_per_token": acc["macs_per_example"] / config.data.tgt_len,
  }


def match_lm(study_lm, size: str, algebra: str, log=print) -> dict[str, Any]:
  """The lattice width whose parameter count is closest to R's; where that
  misses by more than FFN_TOLERANCE, the FFN width is also moved (by whole
  algebra channels) to bring the count within rounding of R's."""
  s = study_lm.SIZES[size]
  ref = lm_counts(study_lm, size, "R", 1.0)["params"]
  d = algebras.get(algebra).dim
  step = d * s["num_heads"]
  seen: dict[int, dict] = {}

  def measure(k: int) -> dict:
    if k not in seen:
      seen[k] = lm_counts(study_lm, size, algebra, k * step / s["d_model"])
    return seen[k]

  k = max(1, round(s["d_model"] * math.sqrt(d) / step))
  # Parameters grow with k; walk towards the reference, then keep the
  # closer of the two lattice points around it.
  while k > 1 and measure(k)["params"] > ref:
    k -= 1
  while measure(k)["params"] < ref:
    k += 1
  best = min(
      (j for j in (k - 1, k) if j >= 1),
      key=lambda j: abs(measure(j)["params"] - ref),
  )
  width = best * step / s["d_model"]
  c, d_inner = seen[best], s["d_inner"]
  if abs(c["params"] / ref - 1.0) > FFN_TOLERANCE:
    # Parameters are affine in the FFN channels F: one more measurement
    # gives the slope, and F* the channel count closest to R's total.
    f0 = round(s["d_inner"] * width / d)
    up = lm_counts(study_lm, size, algebra, width, _d_inner(f0 + 1, d, width))
    slope = up["params"] - c["params"]
    f_star = f0 + round((ref - c["params"]) / slope)
    d_inner = _d_inner(f_star, d, width)
    c = lm_counts(study_lm, size, algebra, width, d_inner)
  out = {
      "width_multiplier": width,
      "d_inner": d_inner,
      "params": c["params"],
      "macs_per_token": c["macs_per_token"],
      "relative_error": c["params"] / ref - 1.0,
  }
  log(
      f"  lm {size:6s} {algebra:5s} real width {best * step:4d} (x"
      f"{width:.4f}) FFN {round(d_inner * width / d) * d} params {c['params']:,} "
      f"({out['relative_error']:+.2%} vs R)"
  )
  return out


def _d_inner(channels: int, d: int, width: float) -> int:
  """The config d_inner (real, before the multiplier) giving `channels`
  FFN algebra channels (models.transformer_xl.inner_channels_for)."""
  d_inner = round(channels * d / width)
  if round(d_inner * width / d) != channels:
    raise ValueError(f"no integer d_inner gives {channels} FFN channels")
  return d_inner


def image_counter(study_images, algebra: str) -> Callable:
  config = study_images.get_config(f"algebra={algebra},width=1.0")
  return width_matching.vision_counter(
      config.model, num_classes=NUM_CLASSES, image_shape=IMAGE_SHAPE
  )


def match_images(study_images, algebra: str, log=print) -> dict[str, Any]:
  """match_width on total parameters against R at the study's R width."""
  ref = image_counter(study_images, "R")(study_images.R_WIDTH)
  alg = algebras.get(algebra)
  result = width_matching.match_width(
      image_counter(study_images, algebra),
      "params",
      reference=ref,
      tol=0.01,
      start=study_images.R_WIDTH * math.sqrt(alg.dim),
  )
  c = result.counts
  out = {
      "width_multiplier": round(result.width_multiplier, 6),
      "params": c.params_total,
      "macs": c.macs,
      "relative_error": result.relative_error,
  }
  log(
      f"  images {algebra:5s} x{out['width_multiplier']:.4f} params "
      f"{c.params_total:,} ({result.relative_error:+.2%} vs R)"
  )
  return out


def _literal(value: Any, level: int = 0) -> str:
  """A nested dict as pyink writes it (one key per line, sorted keys)."""
  if not isinstance(value, dict):
    return repr(round(value, 6) if isinstance(value, float) else value)
  pad = "    " * (level + 1)
  items = "".join(
      f'{pad}"{k}": {_literal(value[k], level + 1)},\n' for k in sorted(value)
  )
  return "{\n" + items + "    " * level + "}"


def module_text(lm: dict, images: dict) -> str:
  return (
      '"""Matched widths of the study configs (generated; do not edit).\n'
      "\n"
      "Regenerate with `python -m scripts.study_widths --write`.\n"
      "LM[size][algebra] (configs/study_lm.py): width_multiplier, d_inner\n"
      "(the real FFN width before the multiplier), total params, intrinsic\n"
      "MACs per token (one training segment with its memory, divided by its\n"
      "64 tokens) and the params' relative error vs R. IMAGES[algebra]\n"
      "(configs/study_images.py): the same with MACs per 28x28 image.\n"
      '"""\n\n'
      f"LM = {_literal(lm)}\n\nIMAGES = {_literal(images)}\n"
  )


def read_module(path: str) -> tuple[dict, dict]:
  namespace: dict[str, Any] = {}
  try:
    with open(path) as f:
      exec(compile(f.read(), path, "exec"), namespace)
  except FileNotFoundError:
    pass
  return namespace.get("LM", {}), namespace.get("IMAGES", {})


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--study", default="all", choices=("all", "lm", "images"))
  p.add_argument("--sizes", default="small,medium,large")
  p.add_argument("--algebras", default="R,C,dual,cross,H,M2R,M3R,M4R,M2C")
  p.add_argument(
      "--write", action="store_true", help=f"update {MODULE} (kept entries)"
  )
  return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> tuple[dict, dict]:
  args = parse_args(argv)
  study_lm = config_lib.load_config_file("configs/study_lm.py")
  study_images = config_lib.load_config_file("configs/study_images.py")
  names = [a for a in args.algebras.split(",") if a]
  sizes = [s for s in args.sizes.split(",") if s]
  try:
    for a in names:
      algebras.get(a)
    for s in sizes:
      if s not in study_lm.SIZES:
        raise ValueError(f"size {s!r}; valid: {sorted(study_lm.SIZES)}")
  except ValueError as e:
    sys.exit(f"study_widths: {e}")
  lm, images = read_module(MODULE) if args.write else ({}, {})
  if args.study in ("all", "lm"):
    for size in sizes:
      for a in names:
        lm.setdefault(size, {})[a] = match_lm(study_lm, size, a)
  if args.study in ("all", "images"):
    for a in names:
      images[a] = match_images(study_images, a)
  if args.write:
    with open(MODULE, "w") as f:
      f.write(module_text(lm, images))
    print(f"wrote {MODULE}")
  return lm, images


if __name__ == "__main__":
  main()
