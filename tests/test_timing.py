"""Tests of the run timer, the end-of-run summary and eval progress."""

import io
import json
import re

import pytest

from algebranets.training import evaluator, progress, timing, trainer
from tests import lm_helpers


class FakeClock:

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now

  def advance(self, seconds):
    self.now += seconds


def test_phases_are_exclusive_and_add_up_to_the_wall():
  clock = FakeClock()
  timer = timing.PhaseTimer(clock)
  clock.advance(3.0)  # outside any phase: "other"
  timer.charge_segment_to("setup")  # ... unless charged afterwards
  with timer.phase("train_steps"):
    clock.advance(7.0)  # first step: trace + compile
    timer.charge_segment_to("compile")
    clock.advance(20.0)
    with timer.phase("evaluation"):  # pauses train_steps
      clock.advance(5.0)
    clock.advance(10.0)
    with timer.phase("checkpointing"):
      clock.advance(1.5)
  clock.advance(0.5)  # logging, files
  report = timer.report(steps=30, examples_per_step=8)
  assert report["setup_s"] == 3.0
  assert report["compile_s"] == 7.0
  assert report["train_steps_s"] == 30.0
  assert report["evaluation_s"] == 5.0
  assert report["checkpointing_s"] == 1.5
  assert report["other_s"] == 0.5
  assert report["wall_s"] == 47.0
  assert report["steps_per_sec"] == 1.0 and report["examples_per_sec"] == 8.0


def test_open_phase_counts_its_running_segment():
  clock = FakeClock()
  timer = timing.PhaseTimer(clock)
  with timer.phase("evaluation"):
    clock.advance(2.0)
    assert timer.seconds()["evaluation"] == 2.0
  assert "steps_per_sec" not in timer.report(steps=0)


def test_summary_lines():
  report = {
      "wall_s": 176.0,
      "setup_s": 3.14,
      "compile_s": 4.2,
      "train_steps_s": 130.0,
      "evaluation_s": 36.0,
      "checkpointing_s": 0.84,
      "other_s": 1.82,
      "timed_steps": 599,
      "steps_per_sec": 4.6077,
      "examples_per_sec": 147.45,
  }
  machine = {
      "platform": "cpu",
      "device_kind": "cpu",
      "device_count": 1,
      "process_count": 1,
      "cpu_cores": 2,
      "load_average": [1.95, 1.8, 1.2],
  }
  time_line, machine_line = timing.summary_lines(report, machine)
  assert time_line == (
      "time: 2m56s wall = setup 3.1s + compile 4.2s + train steps 2m10s (599 "
      "steps, 4.61 steps/s, 147 examples/s) + evaluation 36s + checkpointing "
      "0.8s + other 1.8s"
  )
  assert machine_line == (
      "machine: 1 x cpu (cpu), 2 CPU cores, load average 1.95 1.80 1.20 "
      "(1/5/15 min)"
  )
  gpu = dict(
      machine, platform="gpu", device_kind="NVIDIA H100", load_average=None
  )
  gpu.update(device_count=8, process_count=2)
  assert timing.summary_lines(report, gpu)[1] == (
      "machine: 8 x NVIDIA H100 (gpu) in 2 processes, 2 CPU cores"
  )


def test_machine_info_names_this_machine():
  import os

  import jax

  info = timing.machine_info()
  assert info["device_count"] == jax.device_count()
  assert info["device_kind"] == jax.devices()[0].device_kind
  assert 1 <= info["cpu_cores"] <= os.cpu_count()
  assert len(info["load_average"]) == 3


def test_training_ends_with_the_timing_summary(tiny_corpus, tmp_path, capsys):
  config = lm_helpers.tiny_config(
      tiny_corpus,
      **{
          "train.num_steps": 6,
          "train.log_every": 3,
          "train.checkpoint_every": 3,
          "eval.every_steps": 3,
      },
  )
  trainer.train_and_evaluate(config, tmp_path)
  lines = capsys.readouterr().out.strip().splitlines()
  assert lines[-2].startswith("time: ")
  assert re.fullmatch(
      r"time: \S+ wall = setup \S+ \+ compile \S+ \+ train steps \S+ \(5 "
      r"steps, \S+ steps/s, \S+ examples/s\) \+ evaluation \S+ \+ "
      r"checkpointing \S+ \+ other \S+",
      lines[-2],
  ), lines[-2]
  assert lines[-1].startswith("machine: 1 x cpu (cpu), ")
  saved = json.loads((tmp_path / "final_metrics.json").read_text())
  times, machine = saved["timing"], saved["machine"]
  phases = [f"{p}_s" for p in (*timing.PHASES, "other")]
  assert sum(times[k] for k in phases) == pytest.approx(times["wall_s"])
  # Two checkpoints and a periodic plus the final evaluation took time.
  assert all(times[k] > 0 for k in ("compile_s", "evaluation_s"))
  assert times["checkpointing_s"] > 0 and times["timed_steps"] == 5
  assert times["steps_per_sec"] == pytest.approx(5 / times["train_steps_s"])
  assert machine["cpu_cores"] >= 1 and machine["platform"] == "cpu"
  # The existing keys are unchanged.
  assert saved["step"] == 6 and "bits_per_byte" in saved

  # Evaluation progress counts finished batches up to the split's total,
  # and watching it changes no number.
  calls = []
  watched = evaluator.evaluate_workdir(
      tmp_path, progress=lambda *a: calls.append(a), write=False
  )
  plain = evaluator.evaluate_workdir(tmp_path, write=False)
  assert watched == plain
  total = calls[-1][1]
  assert calls[-1] == (total, total) and total > 1
  done = [c[0] for c in calls]
  assert done == sorted(done) and all(c[1] == total for c in calls)


class _Tty(io.StringIO):

  def isatty(self):
    return True


def test_console_progress_draws_eta_and_ends_the_line():
  clock = FakeClock()
  out = _Tty()
  bar = progress.ConsoleProgress("eval valid", stream=out, clock=clock)
  bar(0, 10)
  clock.advance(5.0)  # compile of the first batch: not in the rate
  bar(1, 10)
  clock.advance(2.0)
  bar(5, 10)
  assert bar.text() == "eval valid: 5/10 batches (50%) | 2 batches/s | ETA 2s"
  clock.advance(2.5)
  bar(10, 10)
  bar.close()
  *drawn, last = out.getvalue().split("\r")
  assert drawn[-1] == "eval valid: 10/10 batches (100%) | 2 batches/s | ETA 0s"
  assert last.rstrip(" \n") == "eval valid: 10 batches in 10s"
  # Blanks cover the longer previous line; one newline ends the display.
  assert len(last) == len(drawn[-1]) + 1 and last.endswith("\n")
  assert "".join(drawn).count("\n") == 0


def test_console_progress_only_on_a_terminal():
  assert progress.console_progress("x", stream=io.StringIO()) is None
  assert progress.console_progress("x", stream=_Tty(), enabled=False) is None
  assert isinstance(
      progress.console_progress("x", stream=_Tty()), progress.ConsoleProgress
  )


@pytest.mark.parametrize("split, batch_size", [("valid", 8), ("test", 3)])
def test_stream_lm_counts_its_eval_batches(tiny_corpus, split, batch_size):
  from algebranets.training.experiment import Experiment

  task = Experiment(lm_helpers.txl_config(tiny_corpus)).task
  batches = list(task.eval_batches(split, batch_size=batch_size))
  assert task.num_eval_batches(split, batch_size) == len(batches)
