"""The train/eval entry points as users run them (real subprocesses)."""

import json

import pytest

from tests import subprocess_env

QUICK = [
    "--config=configs/byte_transformer.py:runlocal",
    "--config.data.name=bytes_file",
    "--config.data.seq_len=32",
    "--config.eval.batch_size=8",
]


def _run(args):
  return subprocess_env.run(*args)


@pytest.fixture(scope="module")
def trained(tiny_corpus, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("cli")
  proc = _run(
      [
          "-m",
          "experiments.train",
          *QUICK,
          f"--config.data.path={tiny_corpus}",
          "--config.train.num_steps=4",
          f"--workdir={workdir}",
      ]
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir, proc.stdout


def test_train_cli_override_and_output(trained):
  workdir, stdout = trained
  config = json.loads((workdir / "config.json").read_text())
  assert config["train"]["num_steps"] == 4  # the override took effect
  assert "step 4/4" in stdout.replace("  ", " ") or "step 4/4" in stdout
  assert "final valid (step 4)" in stdout
  assert "unigram entropy of the valid split" in stdout
  for where in ("results:", "TensorBoard:", "plot:"):
    assert where in stdout
  # The run ends with where its time went and on what machine.
  *_, time_line, machine_line = stdout.strip().splitlines()
  assert time_line.startswith("time: ") and "train steps" in time_line
  assert machine_line.startswith("machine: 1 x cpu (cpu), ")


def test_eval_cli_restores_and_evaluates(trained):
  workdir, _ = trained
  proc = _run(["-m", "experiments.eval", f"--workdir={workdir}"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "step 4 valid" in proc.stdout and "bits_per_byte" in proc.stdout
  # Not a terminal: no progress line; the last line names the file written.
  assert "batches" not in proc.stdout
  assert proc.stdout.strip().splitlines()[-1] == (
      f"wrote {workdir}/eval_valid_step4.json"
  )
  saved = json.loads((workdir / "eval_valid_step4.json").read_text())
  final = json.loads((workdir / "final_metrics.json").read_text())
  assert saved["bits_per_byte"] == pytest.approx(final["bits_per_byte"], 1e-6)
  test = _run(
      ["-m", "experiments.eval", f"--workdir={workdir}", "--split=test"]
  )
  assert test.returncode == 0, test.stderr[-3000:]
  assert (workdir / "eval_test_step4.json").is_file()


def test_override_typo_is_reported(tiny_corpus, tmp_path):
  proc = _run(
      [
          "-m",
          "experiments.train",
          *QUICK,
          f"--config.data.path={tiny_corpus}",
          "--config.train.num_step=4",
          f"--workdir={tmp_path}",
      ]
  )
  assert proc.returncode != 0
  assert "num_step" in proc.stderr and "num_steps" in proc.stderr


def test_eval_of_non_workdir_fails_clearly(tmp_path):
  proc = _run(["-m", "experiments.eval", f"--workdir={tmp_path}"])
  assert proc.returncode != 0
  assert "is not a training workdir" in proc.stderr


def test_bad_data_fails_with_a_message_not_a_traceback(tiny_corpus, tmp_path):
  proc = _run(
      [
          "-m",
          "experiments.train",
          *QUICK,
          f"--config.data.path={tiny_corpus}",
          "--config.data.seq_len=100000",  # longer than the tiny splits
          f"--workdir={tmp_path}",
      ]
  )
  assert proc.returncode != 0
  assert "ConfigError: data (bytes_file)" in proc.stderr
  assert "fewer than seq_len + 1" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_closed_form_learner_points_to_its_fit_entry(tmp_path):
  workdir = tmp_path / "w"
  proc = _run(
      [
          "-m",
          "experiments.train",
          "--config=configs/teacher_student.py:learner=mean,runlocal",
          f"--workdir={workdir}",
      ]
  )
  assert proc.returncode != 0
  lines = proc.stderr.strip().splitlines()
  assert lines[-1].startswith("ConfigError: model.name='mean' is a closed-form")
  assert "python -m algebranets.studies.teacher_student.fit" in lines[-1]
  assert "Traceback" not in proc.stderr
  assert not workdir.exists()  # nothing written
