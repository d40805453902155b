"""Where a run's wall time went, and on what machine.

  timer = PhaseTimer()
  with timer.phase("setup"):
    ...                                   # data, init, restore
  with timer.phase("train_steps"):
    for step in ...:
      ...
      if first_step:
        timer.charge_segment_to("compile")  # first step = trace + compile
      with timer.phase("evaluation"):     # nested: paused train_steps
        ...
  report = timer.report(steps=599, examples_per_step=32)
  print(summary_lines(report, machine_info()))

Phases are exclusive: time always goes to the innermost open phase, so a
periodic evaluation inside the training loop is evaluation time, not
training time, and the phases plus "other" (time in no phase: logging,
writing files) add up to the wall time exactly.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from algebranets.training import metric_writer

# The phases the trainer reports, in the order of the summary line.
PHASES = ("setup", "compile", "train_steps", "evaluation", "checkpointing")
_LABELS = {"train_steps": "train steps"}


class PhaseTimer:
  """An exclusive wall clock split into named phases.

  Args:
    clock: seconds as a float (default `time.perf_counter`; tests pass a fake
      clock).
  """

  def __init__(self, clock: Callable[[], float] = time.perf_counter):
    self._clock = clock
    self._start = clock()
    self._stack: list[str] = []
    self._since = self._start  # start of the innermost phase's segment
    self._seconds: dict[str, float] = {}

  def _charge(self, now: float, name: str | None = None) -> None:
    """Charges [since, now) to `name` (default the innermost phase)."""
    name = name or (self._stack[-1] if self._stack else None)
    if name is not None:
      self._seconds[name] = self._seconds.get(name, 0.0) + (now - self._since)
    self._since = now

  @contextlib.contextmanager
  def phase(self, name: str) -> Iterator[None]:
    """Charges the time inside the block to `name` (pausing outer phases)."""
    self._charge(self._clock())
    self._stack.append(name)
    try:
      yield
    finally:
      self._charge(self._clock())
      self._stack.pop()

  def charge_segment_to(self, name: str) -> None:
    """Charges the innermost phase's time since its last start or pause to
    `name` instead (e.g. the first training step, which traces and compiles,
    to "compile")."""
    self._charge(self._clock(), name)

  def seconds(self) -> dict[str, float]:
    """{phase: seconds} so far, phases of `PHASES` first (0.0 if unused)."""
    now = self._clock()
    out = {name: 0.0 for name in PHASES}
    out.update(self._seconds)
    if self._stack:  # the open phase's running segment
      out[self._stack[-1]] = out.get(self._stack[-1], 0.0) + now - self._since
    return out

  def wall(self) -> float:
    """Seconds since the timer was created."""
    return self._clock() - self._start

  def report(
      self, *, steps: int = 0, examples_per_step: int = 0
  ) -> dict[str, float]:
    """The wall time and its split, for final_metrics.json.

    Args:
      steps: training steps timed in "train_steps" (those after the first,
        which is charged to "compile").
      examples_per_step: the global batch.

    Returns:
      {'wall_s', '<phase>_s' for each phase, 'other_s' (wall minus the
      phases), 'timed_steps'} and, when steps were timed,
      'steps_per_sec' and 'examples_per_sec' (compile excluded).
    """
    wall = self.wall()
    phases = self.seconds()
    out: dict[str, float] = {"wall_s": wall}
    out.update({f"{k}_s": v for k, v in phases.items()})
    # Clamped: float rounding can make it -1e-16.
    out["other_s"] = max(wall - sum(phases.values()), 0.0)
    out["timed_steps"] = int(steps)
    train = phases.get("train_steps", 0.0)
    if steps > 0 and train > 0:
      out["steps_per_sec"] = steps / train
      out["examples_per_sec"] = steps * examples_per_step / train
    return out


def _cpu_cores() -> int:
  """CPU cores this process may run on (the affinity mask, e.g. of a
  container or `taskset`, else the machine's count)."""
  try:
    return len(os.sched_getaffinity(0))
  except (AttributeError, OSError):
    return os.cpu_count() or 1


def machine_info() -> dict[str, Any]:
  """The machine the timings were taken on.

  Returns:
    {'platform' ('cpu', 'gpu', 'tpu'), 'device_kind' (e.g. 'NVIDIA H100 80GB
    HBM3', 'cpu'), 'device_count' (global), 'process_count', 'cpu_cores'
    (of this process), 'load_average' [1, 5, 15 min] (None where the OS has
    none): a load near the core count means the cores were busy, with this
    run or with others).
  """
  import jax

  device = jax.devices()[0]
  try:
    load = [round(x, 2) for x in os.getloadavg()]
  except OSError:
    load = None
  return {
      "platform": device.platform,
      "device_kind": device.device_kind,
      "device_count": jax.device_count(),
      "process_count": jax.process_count(),
      "cpu_cores": _cpu_cores(),
      "load_average": load,
  }


def _seconds_text(seconds: float) -> str:
  # Sub-second detail matters for the short phases (checkpointing).
  if seconds < 10:
    return f"{seconds:.1f}s"
  return metric_writer.format_duration(seconds)


def _rate_text(x: float) -> str:
  """About 3 significant digits, no exponent: 1234, 12.3, 0.123."""
  return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def summary_lines(report: Mapping[str, float], machine: Mapping[str, Any]):
  """The two lines the trainer prints at the end.

  Example:
    time: 2m56s wall = setup 3.1s + compile 4.2s + train steps 2m10s (599
      steps, 4.61 steps/s, 147 examples/s) + evaluation 36s + checkpointing
      0.8s + other 1.9s
    machine: 1 x cpu (cpu), 2 CPU cores, load average 1.95 1.80 1.20
      (1/5/15 min)

  Args:
    report: `PhaseTimer.report`.
    machine: `machine_info`.

  Returns:
    (time line, machine line).
  """
  parts = []
  for name in (*PHASES, "other"):
    text = f"{_LABELS.get(name, name)} {_seconds_text(report[name + '_s'])}"
    if name == "train_steps" and "steps_per_sec" in report:
      text += (
          f" ({report['timed_steps']} steps, "
          f"{_rate_text(report['steps_per_sec'])} steps/s, "
          f"{_rate_text(report['examples_per_sec'])} examples/s)"
      )
    parts.append(text)
  time_line = f"time: {_seconds_text(report['wall_s'])} wall = " + " + ".join(
      parts
  )
  load = machine.get("load_average")
  load_text = (
      f", load average {' '.join(f'{x:.2f}' for x in load)} (1/5/15 min)"
      if load
      else ""
  )
  processes = machine.get("process_count", 1)
  machine_line = (
      f"machine: {machine['device_count']} x {machine['device_kind']} "
      f"({machine['platform']})"
      + (f" in {processes} processes" if processes > 1 else "")
      + f", {machine['cpu_cores']} CPU cores{load_text}"
  )
  return time_line, machine_line


__all__ = ["PHASES", "PhaseTimer", "machine_info", "summary_lines"]
