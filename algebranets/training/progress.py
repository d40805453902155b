"""A one-line progress display with an ETA, for loops over a whole split.

  progress = console_progress("eval valid")   # None when stdout is no TTY
  for i, batch in enumerate(batches):
    ...
    if progress:
      progress(i + 1, total)                  # total may be None (unknown)
  if progress:
    progress.close()

On a terminal the line rewrites itself ('\\r') at most every `min_interval`
seconds; piped into a file or a log it would only add noise, so
`console_progress` returns None there, as `tqdm`-style tools do.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from algebranets.training import metric_writer


class ConsoleProgress:
  """Callable `(done, total)`: updates 'label: done/total batches (..%) |
  r batches/s | ETA t'.

  The rate is measured from the first completed batch on, so the first
  batch's compilation does not inflate the ETA.

  Args:
    label: what is being counted over, e.g. 'eval valid'.
    stream: where to write (default sys.stdout).
    min_interval: seconds between redraws.
    clock: seconds as a float (tests pass a fake clock).
  """

  def __init__(
      self,
      label: str,
      *,
      stream: TextIO | None = None,
      min_interval: float = 0.5,
      clock: Callable[[], float] = time.perf_counter,
  ):
    self.label = label
    self._stream = stream if stream is not None else sys.stdout
    self._min_interval = min_interval
    self._clock = clock
    self._start = clock()
    self._first: tuple[int, float] | None = None  # (done, time) of batch 1
    self._last_draw = -float("inf")
    self._done, self._total = 0, None
    self._width = 0

  def text(self) -> str:
    """The current line (without '\\r')."""
    done, total = self._done, self._total
    if total:
      line = f"{self.label}: {done}/{total} batches ({100 * done / total:.0f}%)"
    else:
      line = f"{self.label}: {done} batches"
    now = self._clock()
    if self._first is not None and done > self._first[0]:
      rate = (done - self._first[0]) / max(now - self._first[1], 1e-9)
      line += f" | {rate:.0f}" if rate >= 100 else f" | {rate:.3g}"
      line += " batches/s"
      if total:
        eta = max(total - done, 0) / rate
        line += f" | ETA {metric_writer.format_duration(eta)}"
    return line

  def __call__(self, done: int, total: int | None) -> None:
    self._done, self._total = done, total
    now = self._clock()
    if self._first is None and done > 0:
      self._first = (done, now)
    if now - self._last_draw < self._min_interval:
      return
    self._last_draw = now
    self._draw(self.text())

  def _draw(self, line: str) -> None:
    # Pad with spaces over a longer previous line.
    pad = max(self._width - len(line), 0)
    self._width = len(line)
    self._stream.write("\r" + line + " " * pad)
    self._stream.flush()

  def close(self) -> None:
    """Draws the final count with the elapsed time and ends the line (if
    anything was drawn)."""
    if not self._width:
      return
    elapsed = metric_writer.format_duration(self._clock() - self._start)
    self._draw(f"{self.label}: {self._done} batches in {elapsed}")
    self._stream.write("\n")
    self._stream.flush()


def console_progress(
    label: str, *, enabled: bool = True, stream: TextIO | None = None
) -> ConsoleProgress | None:
  """A `ConsoleProgress` if `enabled` and `stream` (default stdout) is a
  terminal on process 0, else None (quiet in logs, pipes and on the other
  processes of a multi-host run)."""
  import jax

  stream = stream if stream is not None else sys.stdout
  if not enabled or jax.process_index() != 0:
    return None
  isatty = getattr(stream, "isatty", None)
  if isatty is None or not isatty():
    return None
  return ConsoleProgress(label, stream=stream)


__all__ = ["ConsoleProgress", "console_progress"]
