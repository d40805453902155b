"""Helpers shared by the benchmarks: machine description and robust timing.

Timing protocol (`time_interleaved`):
  1. Warm-up: every variant is called `warmup` times and blocked on, so
     compilation and first-touch allocation are excluded.
  2. Calibration: from the last warm-up call, each variant gets an inner
     repeat count so that one sample lasts at least `min_sample_s` (cheap
     kernels are otherwise dominated by timer and dispatch jitter).
  3. Rounds: in each of `repeats` rounds every variant takes one sample; the
     order rotates from round to round, so slow drifts of the machine (other
     jobs, thermal or frequency changes) hit all variants alike. With
     `max_seconds`, pathologically slow problems get fewer rounds (never
     fewer than `min_repeats`).
  4. Report the median per-call time and its spread (quartiles, min, max).

Nothing here asserts on timings; the numbers are for humans and JSON files.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jaxlib


def cpu_model() -> str:
  """CPU model name from /proc/cpuinfo ('unknown' where there is none)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.lower().startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
  """What the numbers were measured on (printed and stored with results)."""
  devices = jax.devices()
  try:
    usable_cores = len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    usable_cores = os.cpu_count()
  try:
    load = os.getloadavg()
  except OSError:
    load = None
  return {
      "cpu_model": cpu_model(),
      "cpu_count": os.cpu_count(),
      "usable_cores": usable_cores,
      "load_average": load,
      "python": sys.version.split()[0],
      "platform": platform.platform(),
      "jax": jax.__version__,
      "jaxlib": jaxlib.__version__,
      "backend": jax.default_backend(),
      "device_kind": devices[0].device_kind,
      "device_count": len(devices),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "timestamp": datetime.datetime.now(datetime.UTC).isoformat(
          timespec="seconds"
      ),
  }


def format_machine_info(info: Mapping[str, Any]) -> str:
  load = info.get("load_average")
  load_s = "n/a" if load is None else " ".join(f"{v:.2f}" for v in load)
  return (
      f"CPU: {info['cpu_model']} ({info['usable_cores']} usable of "
      f"{info['cpu_count']} cores; load average {load_s})\n"
      f"JAX {info['jax']} / jaxlib {info['jaxlib']} on {info['backend']}: "
      f"{info['device_count']} x {info['device_kind']}\n"
      f"Python {info['python']}, {info['platform']}, {info['timestamp']}"
  )


@dataclasses.dataclass(frozen=True)
class Timing:
  """Per-call times (seconds) of one variant, one entry per round."""

  samples: tuple[float, ...]
  inner: int  # calls per sample

  @property
  def median(self) -> float:
    return statistics.median(self.samples)

  def quantile(self, q: float) -> float:
    """Linear-interpolated quantile of the samples, q in [0, 1]."""
    s = sorted(self.samples)
    pos = q * (len(s) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)

  def summary_ms(self) -> dict[str, float]:
    return {
        "ms_median": 1e3 * self.median,
        "ms_q25": 1e3 * self.quantile(0.25),
        "ms_q75": 1e3 * self.quantile(0.75),
        "ms_min": 1e3 * min(self.samples),
        "ms_max": 1e3 * max(self.samples),
        "n_samples": len(self.samples),
        "inner": self.inner,
    }


def _call(fn: Callable[[], Any], n: int) -> float:
  """Seconds per call of n back-to-back calls, blocking once at the end."""
  t0 = time.perf_counter()
  out = None
  for _ in range(n):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - t0) / n


def time_interleaved(
    fns: Mapping[str, Callable[[], Any]],
    *,
    repeats: int,
    warmup: int = 2,
    min_sample_s: float = 0.005,
    max_inner: int = 100,
    max_seconds: float | None = None,
    min_repeats: int = 3,
) -> dict[str, Timing]:
  """Time zero-argument callables (returning jax arrays) against each other.

  Args:
    fns: name -> callable; each call must do the full work (e.g. a jitted
      function applied to fixed device arrays).
    repeats: rounds, i.e. samples per variant (>= 1).
    warmup: untimed calls per variant first (>= 1, includes compilation).
    min_sample_s: each sample repeats the call until it lasts about this long.
    max_inner: cap on calls per sample.
    max_seconds: optional budget for the timed rounds: fewer rounds (but at
      least `min_repeats`) when the warm-up says `repeats` would take longer
      (for pathologically slow variants; `Timing.samples` says how many).
    min_repeats: lower bound on rounds under `max_seconds`.

  Returns:
    name -> Timing, per-call seconds.

  Raises:
    ValueError: repeats or warmup < 1, or no variants.
  """
  if repeats < 1 or warmup < 1:
    raise ValueError(
        f"time_interleaved: repeats ({repeats}) and warmup ({warmup}) must be "
        ">= 1."
    )
  if not fns:
    raise ValueError("time_interleaved: no variants to time.")
  names = list(fns)
  inner = {}
  round_s = 0.0
  for name in names:
    t = 0.0
    for _ in range(warmup):
      t = _call(fns[name], 1)
    inner[name] = max(1, min(max_inner, math.ceil(min_sample_s / max(t, 1e-9))))
    round_s += inner[name] * t
  if max_seconds is not None and repeats * round_s > max_seconds:
    repeats = max(min(min_repeats, repeats), int(max_seconds / round_s))
  samples: dict[str, list[float]] = {name: [] for name in names}
  for r in range(repeats):
    k = r % len(names)
    for name in names[k:] + names[:k]:
      samples[name].append(_call(fns[name], inner[name]))
  return {name: Timing(tuple(samples[name]), inner[name]) for name in names}


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
  """A GitHub-markdown table (cells converted with str)."""
  lines = [
      "| " + " | ".join(header) + " |",
      "|" + "|".join(["---"] * len(header)) + "|",
  ]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def write_results(path: str | None, results: Mapping[str, Any]) -> None:
  """Writes a benchmark's results as indented JSON to `path` (if given) and
  says where."""
  if not path:
    return
  with open(path, "w") as f:
    json.dump(results, f, indent=1)
  print(f"wrote {path}")
