"""Tests for the teacher_student task, its config file and the trainer hook."""

import collections
import itertools
import json
import math
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import models, tasks
from algebranets.studies.teacher_student import closed_form, design, learners
from algebranets.training import config_lib, trainer
from configs import teacher_student as ts_config
from scripts import sweep as sweep_script

CONFIG_FILE = pathlib.Path(__file__).parents[1] / "configs/teacher_student.py"


def _config(model="two_layer", **data):
  if learners.is_learner(model):
    config = closed_form.base_config(model)
  else:
    config = config_lib.base_config("teacher_student", model)
  config.data.input_dim = 6
  config.data.teacher_units = 3
  config.data.valid_examples = 300
  config.data.test_examples = 500
  config.data.update(data)
  config.train.batch_size = 8
  config.eval.split = "test"
  if model == "two_layer":
    config.model.hidden = 4
  return config


def _task(config, **kwargs):
  return tasks.get("teacher_student").build(config, **kwargs)


# -- stream -------------------------------------------------------------------


@pytest.mark.parametrize("train_examples", [0, 20])
def test_batches_are_a_function_of_the_step(train_examples):
  config = _config(train_examples=train_examples)
  a, b = _task(config), _task(config)
  steps = [5, 0, 3, 5, 200]
  first = {s: a.train_batch(s) for s in steps}
  for s in reversed(steps):  # another order, another instance
    got = b.train_batch(s)
    np.testing.assert_array_equal(got["x"], first[s]["x"])
    np.testing.assert_array_equal(got["y"], first[s]["y"])
  assert first[0]["x"].shape == (8, 6) and first[0]["y"].shape == (8,)
  assert first[0]["x"].dtype == np.float32
  assert not np.array_equal(first[0]["x"], first[3]["x"])


@pytest.mark.parametrize("train_examples", [0, 20])
def test_process_rows_concatenate_to_the_global_batch(train_examples):
  config = _config(train_examples=train_examples)
  whole = _task(config).train_batch(7)
  parts = [
      _task(config, process_index=i, process_count=4).train_batch(7)
      for i in range(4)
  ]
  for key in ("x", "y"):
    np.testing.assert_array_equal(
        np.concatenate([p[key] for p in parts]), whole[key]
    )


def test_stream_does_not_depend_on_the_batch_size():
  small, large = _config(), _config()
  large.train.batch_size = 24
  a, b = _task(small), _task(large)
  xs = np.concatenate([a.train_batch(s)["x"] for s in range(3)])
  np.testing.assert_array_equal(xs, b.train_batch(0)["x"])


def test_fixed_training_set_is_cycled_in_permuted_epochs():
  config = _config(train_examples=20)
  config.train.batch_size = 10
  task = _task(config)
  train = task.split_data("train")
  # The fixed set is the start of the endless stream of the same seed.
  endless = _task(_config()).fit_data(20)
  np.testing.assert_array_equal(train["x"], endless["x"])
  rows = lambda xs: sorted(map(tuple, xs.tolist()))  # noqa: E731
  for epoch in range(3):
    x = np.concatenate([task.train_batch(2 * epoch + s)["x"] for s in range(2)])
    assert rows(x) == rows(train["x"])
  e0 = np.concatenate([task.train_batch(s)["x"] for s in (0, 1)])
  e1 = np.concatenate([task.train_batch(s)["x"] for s in (2, 3)])
  assert not np.array_equal(e0, e1)


@pytest.mark.parametrize("train_examples", [0, 40])
def test_fit_data_is_what_the_network_sees_first(train_examples):
  task = _task(_config(train_examples=train_examples))
  fit = task.fit_data(24)
  x = np.concatenate([task.train_batch(s)["x"] for s in range(3)])
  y = np.concatenate([task.train_batch(s)["y"] for s in range(3)])
  np.testing.assert_array_equal(fit["x"], x)
  np.testing.assert_array_equal(fit["y"], y)


def test_fit_data_errors():
  with pytest.raises(ValueError, match=r"endless stream.*train_examples=N"):
    _task(_config()).fit_data(0)
  task = _task(_config(train_examples=30))
  assert task.fit_data(0)["x"].shape == (30, 6)
  with pytest.raises(ValueError, match="at most that many"):
    task.fit_data(31)


def test_heldout_splits_are_fixed_by_the_teacher_seed():
  a = _task(_config())
  other_seed = _config()
  other_seed.seed = 9
  b = _task(other_seed)
  np.testing.assert_array_equal(
      a.split_data("test")["x"], b.split_data("test")["x"]
  )
  assert not np.array_equal(
      a.split_data("test")["x"][:300], a.split_data("valid")["x"]
  )
  assert not np.array_equal(a.fit_data(300)["x"], a.split_data("valid")["x"])
  assert not np.array_equal(
      a.train_batch(0)["x"], b.train_batch(0)["x"]
  ), "the training stream follows config.seed"
  c = _task(_config(teacher_seed=1))
  assert not np.array_equal(
      a.split_data("test")["x"], c.split_data("test")["x"]
  )


def test_eval_batches_cover_the_split_with_padding():
  task = _task(_config())
  batches = list(task.eval_batches("valid", batch_size=128))
  assert len(batches) == task.num_eval_batches("valid", 128) == 3
  weights = np.concatenate([b["weights"] for b in batches])
  assert weights.sum() == 300 and weights[300:].sum() == 0
  x = np.concatenate([b["x"] for b in batches])[:300]
  np.testing.assert_array_equal(x, task.split_data("valid")["x"])
  assert (
      len(list(task.eval_batches("valid", batch_size=128, num_batches=1))) == 1
  )
  with pytest.raises(ValueError, match="only for a fixed training set"):
    list(task.eval_batches("train", batch_size=8))
  with pytest.raises(ValueError, match="Unknown split"):
    task.num_eval_batches("dev", 8)


# -- metrics ------------------------------------------------------------------


def _nmse(task, predictions, split="test"):
  data = task.split_data(split)
  return task.summarize(task.metric_sums(predictions, data))["nmse"]


def test_teacher_predictions_have_zero_nmse_without_noise():
  task = _task(_config())
  x = task.split_data("test")["x"]
  assert _nmse(task, task.teacher.predict(x)) < 1e-10


def test_teacher_predictions_reach_the_noise_floor():
  task = _task(_config(noise_std=2.0, test_examples=20000))
  x = task.split_data("test")["x"]
  got = _nmse(task, task.teacher.predict(x))
  want = 4.0 / task.target_variance
  # mean of n noise^2 values: standard error sqrt(2 / n) noise^2.
  assert abs(got - want) < 5 * math.sqrt(2 / 20000) * want


def test_constant_mean_has_nmse_one():
  task = _task(_config(test_examples=20000))
  y = task.split_data("test")["y"].astype(np.float64)
  got = _nmse(task, np.full(y.shape, task.target_mean))
  # (y - mu)^2 / Var has mean 1 and standard error sqrt(var_of_it / n).
  z = (y - task.target_mean) ** 2 / task.target_variance
  assert abs(got - 1.0) < 5 * z.std() / math.sqrt(z.size)


def test_metric_sums_numpy_and_jax_agree():
  task = _task(_config())
  batch = next(task.eval_batches("valid", batch_size=256))
  pred = batch["y"] + np.linspace(-1, 1, 256).astype(np.float32)
  host = task.metric_sums(pred, batch)
  dev = task.metric_sums(
      jnp.asarray(pred), {k: jnp.asarray(v) for k, v in batch.items()}
  )
  want = np.sum(np.linspace(-1, 1, 256) ** 2 * batch["weights"])
  assert float(host["sq_err"]) == pytest.approx(want, rel=1e-5)
  assert float(dev["sq_err"]) == pytest.approx(want, rel=1e-5)
  assert float(host["count"]) == float(dev["count"]) == 256
  s = task.summarize({"sq_err": 8.0, "count": 2.0})
  assert s["loss"] == s["mse"] == 4.0
  assert s["nmse"] == pytest.approx(4.0 / task.teacher.variance())
  with pytest.raises(ValueError, match=r"squeeze a trailing axis"):
    task.metric_sums(pred[:, None], batch)


def test_recovery_metrics():
  task = _task(_config(teacher_units=4))
  w = task.teacher.weights
  perm = np.array([2, 0, 3, 1])
  scaled = np.array([-2.0, 0.5, 3.0, -1.0])[:, None] * w[perm]
  got = task.recovery_metrics(np.concatenate([scaled, np.zeros((1, 6))]))
  assert got["recovery_cos"] == pytest.approx(1.0)
  assert got["recovery_error"] == pytest.approx(0.0, abs=1e-12)
  assert got["matched_cos"] == pytest.approx(1.0)
  # One direction found twice, the others missing: max-matching counts it
  # for one unit only, the one-to-one matching exposes the duplicate.
  dup = task.recovery_metrics(np.stack([w[0], w[0], w[1], w[2]]))
  assert dup["matched_cos"] < dup["recovery_cos"] <= 1.0
  rand = task.recovery_metrics(np.random.default_rng(0).normal(size=(2, 6)))
  assert rand["recovery_cos"] < 0.95 and "matched_cos" not in rand
  # An explicit value: e_1 against the teacher rows.
  e1 = np.eye(6)[:1]
  want = np.mean(np.abs(w[:, 0]) / np.linalg.norm(w, axis=1))
  assert task.recovery_metrics(e1)["recovery_cos"] == pytest.approx(want)
  with pytest.raises(ValueError, match=r"directions must be \[m, 6\]"):
    task.recovery_metrics(np.ones(6))
  with pytest.raises(ValueError, match="NaN or Inf"):
    task.recovery_metrics(np.full((1, 6), np.nan))


def test_describe_reports_the_closed_forms():
  task = _task(_config(coeffs=(0.0, -3.0, 0.0, 1.0)))
  info = task.describe()
  json.dumps(info)  # data.json must be writable
  assert info["hermite_coeffs"] == [0.0, 0.0, 0.0, 1.0]
  assert info["least_squares_population_nmse"] == pytest.approx(1.0)
  assert info["teacher_variance"] == pytest.approx(task.teacher.variance())
  assert info["test_examples"] == 500
  assert info["r_over_d_1.5"] == pytest.approx(3 / 6**1.5)


def test_param_metrics_use_the_student_directions():
  config = _config()
  task = _task(config)
  channels = models.constructed(
      config.model, input_dim=6, coeffs=config.data.coeffs
  ).channels
  w = np.zeros((6, channels, 1), np.float32)
  w[:, :3, 0] = task.teacher.weights.T  # the teacher in the first 3 units
  params = {"two_layer/hidden": {"w": w, "b": np.zeros((channels, 1))}}
  got = task.param_metrics(params)
  assert got["recovery_cos"] == pytest.approx(1.0, abs=1e-6)
  closed = _task(_config(model="mean"))
  assert closed.param_metrics(params) == {}


# -- validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate,pattern",
    [
        (
            lambda c: setattr(c.data, "teacher_units", 0),
            r"data.teacher_units=0",
        ),
        (lambda c: setattr(c.data, "input_dim", -1), r"data.input_dim=-1"),
        (lambda c: setattr(c.data, "coeffs", (1.0,)), r"data.coeffs=.*degree"),
        (lambda c: setattr(c.data, "noise_std", -0.5), r"data.noise_std=-0.5"),
        (lambda c: setattr(c.data, "name", "gauss"), r"polynomial_teacher"),
        (lambda c: setattr(c.eval, "split", "train"), r"fixed training set"),
        (lambda c: setattr(c.eval, "split", "dev"), r"eval.split='dev'"),
        (lambda c: setattr(c, "seed", -1), r"seed=-1 must be an int in"),
        (
            lambda c: (
                setattr(c.model, "algebra", "H"),
                setattr(c.data, "input_dim", 6),
            ),
            r"input_dim=6 is not divisible.*model.lift=pad",
        ),
        (
            lambda c: setattr(c.data, "teacher_weights", "/nonexistent/w.npy"),
            r"teacher_weights=.*is not a file",
        ),
    ],
)
def test_config_errors(mutate, pattern):
  config = _config()
  mutate(config)
  with pytest.raises(config_lib.ConfigError, match=pattern):
    config_lib.validate(config, num_devices=1)


def test_malformed_weights_file_is_a_config_error(tmp_path):
  path = tmp_path / "w.npy"
  np.save(path, np.ones((2, 6)))
  config = _config(teacher_weights=str(path))
  with pytest.raises(config_lib.ConfigError, match=r"shape \(2, 6\)"):
    config_lib.validate(config, num_devices=1)
  np.save(path, np.ones((3, 6)))
  config_lib.validate(config, num_devices=1)


# -- config file and training -------------------------------------------------


def test_config_args():
  config = ts_config.get_config("d=12,r=30,hermite3_only,a5=0.1,noise=0.5")
  assert (config.data.input_dim, config.data.teacher_units) == (12, 30)
  assert config.data.coeffs == (0.0, -4.5, 0.0, 1.0, 0.0, 0.1)
  assert config.model.hidden == 30 and config.data.noise_std == 0.5
  config_lib.validate(config, num_devices=1)
  closed = ts_config.get_config("learner=least_squares,samples=5000")
  assert closed.model.name == "least_squares"
  assert closed.data.train_examples == 5000
  closed_form.validate(closed)
  with pytest.raises(config_lib.ConfigError, match="Did you mean"):
    ts_config.get_config("learner=moments_tensor")


def _count_monomials(d, degree):
  """Monomials of degree <= `degree` in d variables, by explicit counting."""
  return sum(
      1
      for powers in itertools.product(range(degree + 1), repeat=d)
      if sum(powers) <= degree
  )


def test_budget_counts_cubic_monomials():
  for d in (1, 2, 5, 8):
    assert design.cubic_dim(d) == _count_monomials(d, 3)
  assert [design.cubic_dim(d) for d in (8, 16, 32)] == [165, 969, 6545]
  # round(b * C(d+3, 3)), floored at d + 2.
  assert design.budget_examples(0.5, 8) == 82
  assert design.budget_examples(4.0, 32) == 26180
  assert design.budget_examples(1e-3, 8) == 10


def test_budget_arg_sets_the_training_set_and_batch():
  config = ts_config.get_config("d=8,r=4,budget=0.5")
  assert config.data.train_examples == 82
  # Smaller than the default batch of 100: the batch is the whole set.
  assert config.train.batch_size == 82
  config_lib.validate(config, num_devices=1)
  big = ts_config.get_config("d=32,r=8,budget=4,learner=moment_tensor")
  assert big.data.train_examples == 26180 and big.train.batch_size == 100
  assert big.model.fit_examples == 0  # fits on the whole budget
  # budget wins over samples; samples applies without a budget.
  assert ts_config.get_config("budget=2,samples=7").data.train_examples == (
      2 * 969
  )
  assert ts_config.get_config("samples=7").train.batch_size == 7
  assert ts_config.get_config("samples=0").train.batch_size == 100
  local = ts_config.get_config("runlocal,budget=0.5")
  assert local.data.train_examples == 82 and local.train.batch_size == 32
  for bad in ("-1", "nan"):
    with pytest.raises(config_lib.ConfigError, match=r"budget=.*>= 0"):
      ts_config.get_config(f"budget={bad}")


def test_full_batch_step_sees_every_budget_example_once():
  config = ts_config.get_config("d=8,r=4,budget=0.5")
  task = _task(config)
  train = task.split_data("train")
  rows = lambda xs: sorted(map(tuple, xs.tolist()))  # noqa: E731
  for step in (0, 1, 5):
    assert rows(task.train_batch(step)["x"]) == rows(train["x"])
  # A batch larger than the set would run into the next epoch instead.
  config.train.batch_size = 100
  first = _task(config).train_batch(0)["x"]
  assert first.shape == (100, 8)
  assert len(set(map(tuple, first.tolist()))) == 82


def _job_config(job):
  arg = job["config_arg"].partition(":")[2]
  config = ts_config.get_config(arg)
  for key, value in job["overrides"].items():
    section, leaf = key.split(".")
    config[section][leaf] = value
  return config


def test_one_sweep_runs_every_learner_at_every_point():
  assert ts_config.r_grid(8) == (4, 8, 16, 32, 64)
  assert ts_config.r_grid(32)[0] == 16 and ts_config.r_grid(32)[-1] == 1024
  jobs = sweep_script.expand(
      f"{CONFIG_FILE}:hermite3_only", workdir_root="unused"
  )
  # 3 d x 2 budgets x 5 r x (3 closed-form learners + 2 networks).
  assert len(jobs) == 3 * 2 * 5 * 5
  names = [j["name"] for j in jobs]
  assert len(set(names)) == len(names)
  assert names[0] == "hermite3_only,d=8,r=4,budget=0.5,learner=mean"
  assert names[4] == (
      "hermite3_only,d=8,r=4,budget=0.5,learner=network,algebra=H"
  )
  seen = collections.Counter()
  for job in jobs:
    config = _job_config(job)
    data, model = config.data, config.model
    d = data.input_dim
    assert data.coeffs == (0.0, -3.0, 0.0, 1.0)  # the sweep's own arg
    assert data.teacher_units in ts_config.r_grid(d)
    budget = data.train_examples / design.cubic_dim(d)
    assert budget == pytest.approx(0.5, abs=0.01) or budget == 4.0
    if model.name == "two_layer":
      assert model.hidden == data.teacher_units
      assert model.match == "params"
      learner = f"network {model.algebra}"
    else:
      learner = model.name
    seen[learner] += 1
    assert job["name"].startswith(
        f"hermite3_only,d={d},r={data.teacher_units},"
        f"budget={'0.5' if budget < 1 else '4'},"
    )
  assert seen == {
      name: 30
      for name in (
          "mean",
          "least_squares",
          "moment_tensor",
          "network R",
          "network H",
      )
  }
  # The plain sweep (t + t^3) never shares a workdir with this one.
  plain = sweep_script.expand(str(CONFIG_FILE), workdir_root="unused")
  assert len(plain) == len(jobs)
  assert not {j["name"] for j in plain} & set(names)
  assert _job_config(plain[0]).data.coeffs == (0.0, 1.0, 0.0, 1.0)


def test_sweep_arg_pins_axes_and_names_its_settings():
  jobs = sweep_script.expand(
      f"{CONFIG_FILE}:d=16,budget=2,steps=500,a3=0.3333333333,algebra=C",
      workdir_root="unused",
  )
  assert len(jobs) == 5 * 5  # one d, one budget: r x learners
  config = _job_config(jobs[-1])
  assert config.data.input_dim == 16 and config.data.train_examples == 1938
  assert config.train.num_steps == 500 and config.model.algebra == "C"
  assert config.data.coeffs[3] == 0.3333333333  # exactly, through the name
  assert jobs[-1]["name"] == (
      "a3=0.3333333333,steps=500,d=16,r=256,budget=2,learner=network,"
      "algebra=C"
  )
  local = sweep_script.expand(f"{CONFIG_FILE}:runlocal", workdir_root="x")
  assert len(local) == 2 * 3 * 5  # d = 8 only, 3 widths
  assert all(j["name"].startswith("runlocal,d=8,") for j in local)
  assert _job_config(local[-1]).data.teacher_units == 64


def test_runlocal_training_beats_the_trivial_predictor(tmp_path):
  config = ts_config.get_config("runlocal")
  final = trainer.train_and_evaluate(config, tmp_path)
  # The trivial predictor has nmse 1; least squares 0.30 on this teacher.
  assert final["nmse"] < 0.6
  assert 0.0 <= final["recovery_error"] <= 1.0
  saved = json.loads((tmp_path / "final_metrics.json").read_text())
  assert saved["nmse"] == pytest.approx(final["nmse"])
  assert "recovery_cos" in saved and "matched_cos" in saved
  data = json.loads((tmp_path / "data.json").read_text())
  assert data["teacher_units"] == 4
  acc = json.loads((tmp_path / "accounting.json").read_text())
  # R student, 4 hidden units on 8 inputs: 4 * (8 + 2) + 1.
  assert acc["params_total"] == 41
