"""The teacher-student study's closed-form harness: fit_and_evaluate,
validation, reloading, and its fit / evaluate entry points."""

import json

import numpy as np
import pytest

from algebranets.studies.teacher_student import closed_form
from algebranets.training import config_lib, trainer
from tests import subprocess_env


def _config(learner="moment_tensor", d=8, r=2, samples=20_000, **overrides):
  if learner == "two_layer":
    config = config_lib.base_config("teacher_student", learner)
  else:
    config = closed_form.base_config(learner)
  config.data.input_dim = d
  config.data.teacher_units = r
  config.data.train_examples = samples
  config.data.valid_examples = 500
  config.data.test_examples = 2_000
  config.eval.split = "test"
  config.eval.batch_size = 500
  for dotted, value in overrides.items():
    section, key = dotted.split(".")
    config[section][key] = value
  return config


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("moment_tensor")
  config = _config()
  final = closed_form.fit_and_evaluate(config, workdir)
  return config, workdir, final


def test_workdir_files_and_keys(fitted_run):
  _, workdir, final = fitted_run
  for name in (
      "config.json",
      "data.json",
      "accounting.json",
      "fitted.npz",
      "metrics.jsonl",
      "final_metrics.json",
  ):
    assert (workdir / name).is_file(), name
  saved = json.loads((workdir / "final_metrics.json").read_text())
  assert saved["step"] == 0 and saved["split"] == "test"
  for key in ("loss", "mse", "nmse", "recovery_cos", "recovery_error"):
    assert saved[key] == pytest.approx(final[key]), key
  assert "matched_cos" in saved  # rank r = teacher_units >= r
  acc = json.loads((workdir / "accounting.json").read_text())
  d, r = 8, 2
  p = 1 + d + r  # [1, x, He_3(u_j . x)]
  assert acc["algebra"] == "R"
  assert acc["params_total"] == r * d + p == acc["params_algebra"]
  assert acc["params_real_io"] == 0
  assert acc["macs_per_example"] == r * d + p - 1
  assert acc["flops_per_example"] == 2 * acc["macs_per_example"]
  assert acc["fit"]["examples"] == 20_000 and acc["fit"]["seconds"] > 0
  data = json.loads((workdir / "data.json").read_text())
  assert data["teacher_units"] == r
  with np.load(workdir / "fitted.npz") as npz:
    assert npz["unit_directions"].shape == (r, d)
    assert str(npz["_learner"]) == "moment_tensor"
  config_saved = config_lib.from_json((workdir / "config.json").read_text())
  assert config_saved.model.name == "moment_tensor"


def test_moment_tensor_recovers_teacher_end_to_end(fitted_run):
  _, _, final = fitted_run
  # Easy regime (d = 8, r = 2, 20,000 samples): the teacher is recovered and
  # the refit predicts y almost exactly.
  assert final["recovery_cos"] > 0.99
  assert final["matched_cos"] > 0.99
  assert final["nmse"] < 0.02


def test_evaluate_fitted_reloads_the_same_estimator(fitted_run):
  config, workdir, final = fitted_run
  again = closed_form.evaluate_workdir(workdir, split="test")
  assert again["step"] == 0 and again["split"] == "test"
  for key in ("nmse", "mse", "recovery_cos"):
    assert again[key] == pytest.approx(final[key], rel=1e-6), key
  assert (workdir / "eval_test_step0.json").is_file()
  valid = closed_form.evaluate_fitted(
      config_lib.from_json(config.to_json()), workdir, "valid", write=False
  )
  assert valid["split"] == "valid" and valid["nmse"] < 0.05


def test_baselines_match_closed_forms(tmp_path):
  mean_final = closed_form.fit_and_evaluate(
      _config("mean", r=4), tmp_path / "mean"
  )
  ols_final = closed_form.fit_and_evaluate(
      _config("least_squares", r=4), tmp_path / "ols"
  )
  data = json.loads((tmp_path / "ols" / "data.json").read_text())
  # E[y] is estimated from 20,000 samples and scored on 2,000 test
  # examples: nmse = test variance / Var(y) + (mean error)^2 / Var(y).
  want = data["test_y_var"] / data["teacher_variance"]
  assert mean_final["nmse"] == pytest.approx(want, abs=0.01)
  assert "recovery_cos" not in mean_final  # the mean has no directions
  # OLS approaches the population optimum 1 - |c_1 sum_i w_i|^2 / Var(y)
  # (d + 1 = 9 coefficients from 20,000 samples: small excess error).
  population = data["least_squares_population_nmse"]
  assert ols_final["nmse"] == pytest.approx(population, abs=0.05)
  assert ols_final["nmse"] < 0.9 * mean_final["nmse"]
  assert not (tmp_path / "mean" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("learner", "overrides", "message"),
    [
        ("moment_tensor", {"model.rank": -1}, "model.rank must be an integer"),
        (
            "least_squares",
            {"model.fit_examples": 5},
            r"5 fit examples are too few: OLS on \[1, x\] at d = 8 needs at "
            "least 9",
        ),
        (
            "moment_tensor",
            {"model.fit_examples": 30_000},
            "model.fit_examples=30000 exceeds data.train_examples=20000",
        ),
        ("mean", {"model.hidden": 4}, "Unknown config key 'model.hidden'"),
        ("mean", {"model.algebra": "H"}, "real estimator"),
        ("mean", {"sparsity.target": 0.5}, "sparsity.target=0.5"),
        ("mean", {"eval.batch_size": 0}, "eval.batch_size must be an integer"),
        ("mean", {"data.input_dim": 0}, "data.input_dim=0 must be an int"),
        (
            "moment_tensor",
            {"data.coeffs": (0.0, 1.0, 0.0, -10.0, 0.0, 1.0)},
            "c_3 is 0",
        ),
    ],
)
def test_bad_configs(learner, overrides, message, tmp_path):
  config = _config(learner, samples=20_000)
  for dotted, value in overrides.items():
    section, key = dotted.split(".")
    config[section][key] = value
  with pytest.raises(config_lib.ConfigError, match=message):
    closed_form.fit_and_evaluate(config, tmp_path)
  assert not (tmp_path / "final_metrics.json").exists()


def test_fit_examples_resolution():
  assert closed_form.fit_examples(_config(samples=3_000)) == 3_000
  endless = _config(samples=0)
  assert closed_form.fit_examples(endless) == closed_form.DEFAULT_FIT_EXAMPLES
  endless.model.fit_examples = 500
  assert closed_form.fit_examples(endless) == 500


def test_load_fitted_errors(fitted_run, tmp_path):
  _, workdir, _ = fitted_run
  with pytest.raises(FileNotFoundError, match="did not finish"):
    closed_form.load_fitted(tmp_path, "mean")
  with pytest.raises(ValueError, match="holds a 'moment_tensor' estimator"):
    closed_form.load_fitted(workdir, "mean")


def test_only_learners_are_fitted():
  with pytest.raises(config_lib.ConfigError, match="not a closed-form learner"):
    closed_form.fit_and_evaluate(_config("two_layer"), "unused")
  typo = _config("mean")
  typo.model.name = "mena"
  with pytest.raises(config_lib.ConfigError, match="Did you mean 'mean'"):
    closed_form.validate(typo)
  other_task = _config("mean")
  other_task.task = "byte_lm"
  with pytest.raises(
      config_lib.ConfigError, match=r"set --config\.task=teacher_student"
  ):
    closed_form.validate(other_task)


def test_trainer_has_no_closed_form_branch(tmp_path):
  # The generic trainer knows only registered models: a learner's config is
  # an unknown model there, before anything is written.
  with pytest.raises(config_lib.ConfigError, match="Unknown model 'mean'"):
    trainer.train_and_evaluate(_config("mean"), tmp_path / "w")
  assert not (tmp_path / "w").exists()


def test_fit_and_evaluate_cli_end_to_end(tmp_path):
  """The study's fit / evaluate entry points on the study's config."""

  def run(*args, ok=True):
    proc = subprocess_env.run("-m", *args)
    assert (proc.returncode == 0) == ok, proc.stderr[-3000:]
    return proc

  stdout = run(
      closed_form.FIT_ENTRY,
      "--config=configs/teacher_student.py:learner=moment_tensor,runlocal",
      f"--workdir={tmp_path}",
  ).stdout
  assert "fitted moment_tensor on 2,000 examples" in stdout
  final = json.loads((tmp_path / "final_metrics.json").read_text())
  # runlocal: d = 8, r = 4 from 2,000 samples (measured nmse 0.11,
  # recovery_cos 0.93; random directions give about 0.5).
  assert 0 <= final["nmse"] < 0.5 and final["recovery_cos"] > 0.8
  stdout = run(
      "algebranets.studies.teacher_student.evaluate",
      f"--workdir={tmp_path}",
      "--split=valid",
  ).stdout
  assert f"{tmp_path} step 0 valid:" in stdout
  saved = json.loads((tmp_path / "eval_valid_step0.json").read_text())
  assert saved["split"] == "valid" and 0 <= saved["nmse"] < 0.5
  # A bad override: one line saying what to change, no traceback.
  proc = run(
      closed_form.FIT_ENTRY,
      "--config=configs/teacher_student.py:learner=mean,runlocal",
      "--config.model.algebra=H",
      f"--workdir={tmp_path / 'bad'}",
      ok=False,
  )
  assert "ConfigError: model.algebra='H'" in proc.stderr
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "bad").exists()
