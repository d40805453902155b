"""Metric logging for training runs: JSON lines, TensorBoard, console lines.

A run's work directory holds

  metrics.jsonl   one JSON object per line, appended as training goes:
                  {"step": int, "split": "train" | "eval", "time": unix float,
                   <metric>: float, ...}. Non-finite values are written as the
                  strings "nan", "inf", "-inf" (standard JSON has no NaN) and
                  `read_metrics` turns them back into floats.
  tensorboard/    tensorboardX event files; scalars are named "<split>/<name>".

The JSON lines file is the source of truth for plots and result tables
(`algebranets.training.plots`, `scripts.results`); TensorBoard is for looking
at a run while it trains.

  with MetricWriter(workdir, enabled=jax.process_index() == 0) as writer:
    writer.write_text("config", config.to_json_best_effort(indent=2))
    writer.write_scalars(step, "train", {"loss": 2.31, "learning_rate": 1e-3})
  rows = read_metrics(workdir)   # [{"step": ..., "split": "train", ...}]

Resuming: a killed run may have logged steps after its last checkpoint. Call
`truncate_after(workdir, restored_step)` on resume so curves have no
duplicated steps.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import tempfile
import time
from collections.abc import Mapping
from typing import Any

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
# Keys every line has; a scalar with one of these names would overwrite them.
RESERVED_KEYS = ("step", "split", "time")

_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

PathLike = str | os.PathLike


def _metrics_path(path_or_workdir: PathLike) -> pathlib.Path:
  """`<workdir>/metrics.jsonl` for a directory, else the path itself."""
  path = pathlib.Path(path_or_workdir)
  if path.is_dir():
    return path / METRICS_FILE
  return path


def _encode(value: float) -> float | str:
  if math.isfinite(value):
    return value
  if math.isnan(value):
    return "nan"
  return "inf" if value > 0 else "-inf"


def _decode_row(row: dict[str, Any]) -> dict[str, Any]:
  return {
      k: _NON_FINITE[v] if k != "split" and v in _NON_FINITE else v
      for k, v in row.items()
  }


def _to_float(name: str, value: Any) -> float:
  try:
    return float(value)
  except (TypeError, ValueError):
    raise TypeError(
        f"MetricWriter.write_scalars: metric {name!r} has value {value!r} of "
        f"type {type(value).__name__}, which is not a real scalar. Pass "
        "Python/NumPy/JAX scalars (e.g. float(loss)), not arrays or strings."
    ) from None


class MetricWriter:
  """Writes scalar metrics to `metrics.jsonl` and TensorBoard.

  Every `write_scalars` call opens, appends to and closes the JSON lines file,
  so a run killed at any moment keeps every line written before it (at most
  the line being written is lost, and `read_metrics` ignores such a truncated
  last line), and `truncate_after` may rewrite the file while a writer
  exists. A few hundred microseconds per call is negligible at logging
  frequency.

  With `enabled=False` (non-chief processes of a multi-host run) every method
  is a no-op and nothing is created on disk.

  Usable as a context manager; `close` is idempotent.
  """

  def __init__(
      self,
      workdir: PathLike,
      *,
      tensorboard: bool = True,
      enabled: bool = True,
  ):
    """Prepares `workdir` (created if missing) for logging.

    Args:
      workdir: the run's work directory.
      tensorboard: also write TensorBoard event files to
        `<workdir>/tensorboard`.
      enabled: False makes the writer a no-op (non-chief processes).
    """
    self.workdir = pathlib.Path(workdir)
    self.path = self.workdir / METRICS_FILE
    self.enabled = enabled
    self._closed = False
    self._tb = None
    if not enabled:
      return
    self.workdir.mkdir(parents=True, exist_ok=True)
    _drop_partial_last_line(self.path)
    if tensorboard:
      # Imported here so that readers of metrics.jsonl never pay for it.
      import tensorboardX

      self._tb = tensorboardX.SummaryWriter(
          logdir=str(self.workdir / TENSORBOARD_DIR)
      )

  def _check_open(self, what: str) -> None:
    if self._closed:
      raise RuntimeError(
          f"MetricWriter.{what}: the writer for {str(self.workdir)!r} is "
          "closed; create a new MetricWriter to keep logging."
      )

  def write_scalars(
      self, step: int, split: str, scalars: Mapping[str, float]
  ) -> None:
    """Appends one line to metrics.jsonl and writes TensorBoard scalars.

    Args:
      step: training step the values belong to.
      split: "train", "eval", or another split name.
      scalars: {metric name: real scalar}; NaN and +-inf are allowed. Names
        must not be "step", "split" or "time".

    Raises:
      ValueError: a reserved name in `scalars`, or an empty split name.
      TypeError: a value that is not a real scalar.
      RuntimeError: the writer was closed.
    """
    if not self.enabled:
      return
    self._check_open("write_scalars")
    if not isinstance(split, str) or not split:
      raise ValueError(
          f"MetricWriter.write_scalars: split must be a non-empty string such"
          f" as 'train' or 'eval', got {split!r}."
      )
    clash = [k for k in scalars if k in RESERVED_KEYS]
    if clash:
      raise ValueError(
          f"MetricWriter.write_scalars: metric names {clash} are reserved for "
          f"the line's own fields {list(RESERVED_KEYS)}; rename them (e.g. "
          f"'{clash[0]}_value')."
      )
    values = {str(k): _to_float(k, v) for k, v in scalars.items()}
    step = int(step)
    row = {"step": step, "split": split, "time": time.time()}
    row.update({k: _encode(v) for k, v in values.items()})
    line = json.dumps(row, allow_nan=False) + "\n"
    with open(self.path, "a", encoding="utf-8") as f:
      f.write(line)
    if self._tb is not None:
      for name, value in values.items():
        self._tb.add_scalar(f"{split}/{name}", value, global_step=step)

  def write_text(self, tag: str, text: str) -> None:
    """Writes a text summary (e.g. the config) to TensorBoard at step 0.

    A no-op when the writer was created with `tensorboard=False`: text is not
    part of metrics.jsonl.
    """
    if not self.enabled:
      return
    self._check_open("write_text")
    if self._tb is not None:
      self._tb.add_text(tag, text, global_step=0)

  def flush(self) -> None:
    """Flushes TensorBoard events (metrics.jsonl is written through)."""
    if self._tb is not None and not self._closed:
      self._tb.flush()

  def close(self) -> None:
    """Flushes and closes; further writes raise. Safe to call repeatedly."""
    if self._closed:
      return
    self._closed = True
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def __enter__(self) -> MetricWriter:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def _drop_partial_last_line(path: pathlib.Path) -> None:
  """Removes a last line without "\\n" that is not valid JSON.

  A killed run can leave half a line; appending to it would glue the next
  line onto it and make a corrupt line in the middle of the file. A complete
  object that only lacks its newline is kept and terminated.
  """
  if not path.exists():
    return
  data = path.read_bytes()
  if not data or data.endswith(b"\n"):
    return
  start = data.rfind(b"\n") + 1
  try:
    json.loads(data[start:])
    complete = True
  except ValueError:
    complete = False
  with open(path, "r+b") as f:
    if complete:
      f.seek(0, os.SEEK_END)
      f.write(b"\n")
    else:
      f.truncate(start)


def _parse_lines(path: pathlib.Path) -> list[tuple[str, dict | None]]:
  """(raw line, parsed row or None if it is the unparseable last line)."""
  lines = path.read_text(encoding="utf-8").splitlines()
  out = []
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      row = json.loads(line)
      if not isinstance(row, dict) or "step" not in row:
        raise ValueError("not an object with a 'step'")
    except ValueError as e:
      if i == len(lines) - 1:
        out.append((line, None))  # Truncated by a killed process.
        continue
      raise ValueError(
          f"{path}:{i + 1}: corrupt metrics line ({e}): {line[:200]!r}. Only "
          "the last line may be incomplete; fix or delete this line."
      ) from None
    out.append((line, row))
  return out


def read_metrics(path_or_workdir: PathLike) -> list[dict[str, Any]]:
  """Reads metrics.jsonl into a list of rows, in file order.

  Args:
    path_or_workdir: a work directory (its `metrics.jsonl` is read) or the
      path of a JSON lines file.

  Returns:
    One dict per line: "step" (int), "split" (str), "time" (float) and the
    metrics as floats; "nan"/"inf"/"-inf" strings are converted back to
    floats. An incomplete last line (a killed process) is ignored.

  Raises:
    FileNotFoundError: no such file.
    ValueError: a corrupt line that is not the last one.
  """
  path = _metrics_path(path_or_workdir)
  if not path.is_file():
    raise FileNotFoundError(
        f"No metrics file at {str(path)!r}: pass a work directory containing "
        f"{METRICS_FILE} (written by MetricWriter) or the file's path."
    )
  return [_decode_row(row) for _, row in _parse_lines(path) if row is not None]


def truncate_after(path_or_workdir: PathLike, step: int) -> int:
  """Atomically keeps only the lines with line["step"] <= step.

  Called when a run resumes from a checkpoint at `step`: the killed run may
  have logged later steps, which the resumed run will log again. An
  incomplete last line is dropped as well. The file is rewritten to a
  temporary file in the same directory and renamed over the original, so a
  crash during the rewrite leaves either the old or the new file.

  Args:
    path_or_workdir: a work directory or the metrics.jsonl path.
    step: the last step to keep.

  Returns:
    The number of lines removed (0 if the file does not exist yet).
  """
  path = _metrics_path(path_or_workdir)
  if not path.is_file():
    return 0
  parsed = _parse_lines(path)
  kept = [
      line for line, row in parsed if row is not None and row["step"] <= step
  ]
  removed = len(parsed) - len(kept)
  if removed == 0 and path.read_bytes().endswith(b"\n"):
    return 0
  fd, tmp = tempfile.mkstemp(
      dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
  )
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.writelines(line + "\n" for line in kept)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise
  return removed


def format_duration(seconds: float) -> str:
  """A short duration: "45s", "2m02s", "1h03m" (rounded to the second).

  Args:
    seconds: a non-negative duration; NaN or inf (unknown, e.g. an ETA before
      the first timing) gives "?".

  Raises:
    ValueError: a negative duration.
  """
  if not math.isfinite(seconds):
    return "?"
  if seconds < 0:
    raise ValueError(
        f"format_duration: got a negative duration {seconds!r} s; durations "
        "and ETAs must be >= 0."
    )
  total = round(seconds)
  hours, rest = divmod(total, 3600)
  minutes, secs = divmod(rest, 60)
  if hours:
    return f"{hours}h{minutes:02d}m"
  if minutes:
    return f"{minutes}m{secs:02d}s"
  return f"{secs}s"


def _format_rate(x: float) -> str:
  """About 3 significant digits without exponent: 394, 12.3, 1.23, 0.123."""
  if not math.isfinite(x):
    return str(x)
  ax = abs(x)
  if ax >= 100:
    return f"{x:.0f}"
  if ax >= 10:
    return f"{x:.1f}"
  if ax >= 1:
    return f"{x:.2f}"
  return f"{x:#.3g}"


def _format_scalar(name: str, value: float) -> str:
  value = float(value)
  if not math.isfinite(value):
    return str(value)
  if name == "learning_rate":
    return f"{value:.1e}"
  if name.endswith("loss"):
    return f"{value:.4f}"
  return f"{value:.4g}"


_SHORT_NAMES = {"learning_rate": "lr"}
_RATE_KEYS = ("steps_per_sec", "examples_per_sec")


def format_progress(
    step: int,
    num_steps: int,
    scalars: Mapping[str, float],
    *,
    steps_per_sec: float | None,
    examples_per_sec: float | None,
    eta_seconds: float | None,
) -> str:
  """One human-readable progress line.

  Example:
    "step   500/2000 | loss 2.3141 | bits_per_byte 3.338 | lr 1.0e-03 |
    12.3 steps/s | 394 ex/s | ETA 2m02s" (one line).

  Formatting: the step is right-aligned to the width of `num_steps`; metrics
  appear in the order given, losses (names ending in "loss") with 4 decimals,
  `learning_rate` as "lr" in 1-digit scientific notation, others with 4
  significant digits; rates with about 3 significant digits. None fields are
  omitted. "steps_per_sec"/"examples_per_sec" entries of `scalars` are shown
  as rates, and only when the keyword argument of the same name is None.

  Args:
    step: current step.
    num_steps: total steps of the run.
    scalars: {name: value} to show.
    steps_per_sec: training speed, or None.
    examples_per_sec: throughput, or None.
    eta_seconds: estimated time to finish, or None.

  Returns:
    The line, without a trailing newline.
  """
  width = len(str(num_steps))
  parts = [f"step {step:>{width}}/{num_steps}"]
  rates = {"steps_per_sec": steps_per_sec, "examples_per_sec": examples_per_sec}
  for name, value in scalars.items():
    if name in _RATE_KEYS:
      if rates[name] is None:
        rates[name] = value
      continue
    parts.append(
        f"{_SHORT_NAMES.get(name, name)} {_format_scalar(name, value)}"
    )
  if rates["steps_per_sec"] is not None:
    parts.append(f"{_format_rate(float(rates['steps_per_sec']))} steps/s")
  if rates["examples_per_sec"] is not None:
    parts.append(f"{_format_rate(float(rates['examples_per_sec']))} ex/s")
  if eta_seconds is not None:
    parts.append(f"ETA {format_duration(eta_seconds)}")
  return " | ".join(parts)


__all__ = [
    "METRICS_FILE",
    "TENSORBOARD_DIR",
    "MetricWriter",
    "format_duration",
    "format_progress",
    "read_metrics",
    "truncate_after",
]


def format_metrics(metrics: Mapping[str, Any]) -> str:
  """'loss 2.1224 | bits_per_byte 3.0619 | nonzero_params 7,112' (ints as
  ints, floats to 4 decimals)."""
  parts = []
  for k, v in metrics.items():
    text = (
        f"{v:,}"
        if isinstance(v, int) and not isinstance(v, bool)
        else (f"{v:.4f}" if isinstance(v, float) else str(v))
    )
    parts.append(f"{k} {text}")
  return " | ".join(parts)
