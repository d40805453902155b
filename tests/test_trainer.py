"""End-to-end tests of train_and_evaluate: files, resume, init_from, NaN."""

import json
import shutil

import jax
import numpy as np
import pytest

from algebranets.training import checkpointing, trainer
from algebranets.training.experiment import Experiment
from tests import lm_helpers


def _params(config, workdir):
  abstract = Experiment(config).abstract_state().params
  return jax.device_get(checkpointing.restore_params(workdir, abstract))


def _assert_trees_equal(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.fixture(scope="module")
def finished_run(tiny_corpus, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  config = lm_helpers.tiny_config(
      tiny_corpus, **{"train.num_steps": 8, "train.checkpoint_every": 4}
  )
  final = trainer.train_and_evaluate(config, workdir)
  return config, workdir, final


def test_workdir_contents(finished_run):
  _, workdir, final = finished_run
  for name in (
      "config.json",
      "accounting.json",
      "params.txt",
      "macs.txt",
      "data.json",
      "metrics.jsonl",
      "final_metrics.json",
      "curves.png",
  ):
    assert (workdir / name).is_file(), name
  assert list((workdir / "tensorboard").iterdir())
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == [
      4,
      8,
  ]
  saved = json.loads((workdir / "final_metrics.json").read_text())
  assert saved["step"] == 8 and saved["split"] == "valid"
  assert saved["bits_per_byte"] == pytest.approx(final["bits_per_byte"])
  assert final["bits_per_byte"] == pytest.approx(final["loss"] / np.log(2))
  acc = json.loads((workdir / "accounting.json").read_text())
  assert acc["algebra"] == "M2R"
  assert acc["params_total"] == acc["params_real_io"] + acc["params_algebra"]
  assert acc["params_real_io"] > 0 and acc["macs_per_example"] > 0
  assert acc["flops_per_example"] == 2 * acc["macs_per_example"]
  rows = [
      json.loads(line)
      for line in (workdir / "metrics.jsonl").read_text().splitlines()
  ]
  train_steps = [r["step"] for r in rows if r["split"] == "train"]
  assert train_steps == [5, 8]  # log_every=5 plus the last step
  assert {r["split"] for r in rows} == {"train", "eval"}


def test_resume_continues_bit_exactly(finished_run, tmp_path):
  config, workdir, _ = finished_run
  # A run killed after its step-4 checkpoint: the finished run minus step 8.
  run = tmp_path / "run"
  shutil.copytree(workdir, run)
  shutil.rmtree(run / "checkpoints" / "8")
  trainer.train_and_evaluate(config, run)
  _assert_trees_equal(_params(config, run), _params(config, workdir))
  rows = [
      json.loads(line)
      for line in (run / "metrics.jsonl").read_text().splitlines()
  ]
  steps = [r["step"] for r in rows if r["split"] == "train"]
  assert steps == [5, 8]  # the stale rows after step 4 were dropped


# Orbax's aborted reads of the damaged files hit its closed asyncio loop
# ("Event loop is closed"): noise from orbax internals (tests/test_checkpointing).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_corrupt_latest_checkpoint_falls_back(finished_run, tmp_path):
  config, workdir, _ = finished_run
  run = tmp_path / "run"
  shutil.copytree(workdir, run)
  for f in (run / "checkpoints" / "8").glob("default/**/d/*"):
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])  # truncated
  with pytest.warns(checkpointing.CheckpointWarning, match="8"):
    trainer.train_and_evaluate(config, run)
  # Resumed from step 4 and retrained 5..8 to the same parameters.
  _assert_trees_equal(_params(config, run), _params(config, workdir))
  assert (run / "checkpoints" / "8.corrupt").is_dir()


def test_same_seed_same_metrics(finished_run, tmp_path):
  config, workdir, final = finished_run
  again = trainer.train_and_evaluate(config, tmp_path)
  assert again == final
  _assert_trees_equal(_params(config, tmp_path), _params(config, workdir))


def test_init_from_loads_params(finished_run, tiny_corpus, tmp_path):
  config, workdir, _ = finished_run
  child = lm_helpers.tiny_config(
      tiny_corpus,
      **{
          "train.num_steps": 1,
          "train.init_from": str(workdir),
          "optimizer.learning_rate": 1e-12,
          "optimizer.warmup_steps": 0,
          "eval.every_steps": 0,
      },
  )
  trainer.train_and_evaluate(child, tmp_path)
  got, want = _params(child, tmp_path), _params(config, workdir)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), got, want
  )


def test_nan_stops_and_keeps_last_good_checkpoint(tiny_corpus, tmp_path):
  good = lm_helpers.tiny_config(
      tiny_corpus, **{"train.num_steps": 4, "train.checkpoint_every": 4}
  )
  trainer.train_and_evaluate(good, tmp_path)
  bad = lm_helpers.tiny_config(
      tiny_corpus,
      **{
          "train.num_steps": 12,
          "train.checkpoint_every": 4,
          "optimizer.learning_rate": 1e30,
          "eval.every_steps": 0,
      },
  )
  with pytest.raises(
      trainer.NonFiniteError, match=r"last good checkpoint is step 4"
  ) as err:
    trainer.train_and_evaluate(bad, tmp_path)
  assert "Non-finite training signal at step" in str(err.value)
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [
      4
  ]


def test_bfloat16_compute_keeps_float32_state(tiny_corpus, tmp_path):
  config = lm_helpers.tiny_config(
      tiny_corpus,
      **{
          "train.num_steps": 3,
          "train.compute_dtype": "bfloat16",
          "eval.every_steps": 0,
      },
  )
  final = trainer.train_and_evaluate(config, tmp_path)
  assert np.isfinite(final["loss"])
  state = Experiment(config).abstract_state()
  floats = [
      x.dtype
      for x in jax.tree.leaves((state.params, state.opt_state))
      if np.issubdtype(x.dtype, np.floating)
  ]
  assert floats and all(d == np.float32 for d in floats)


def test_profiler_writes_trace(tiny_corpus, tmp_path):
  config = lm_helpers.tiny_config(
      tiny_corpus,
      **{
          "train.num_steps": 3,
          "train.profile_start_step": 1,
          "train.profile_num_steps": 1,
          "eval.every_steps": 0,
      },
  )
  trainer.train_and_evaluate(config, tmp_path)
  assert list((tmp_path / "profile").rglob("*.xplane.pb"))


@pytest.mark.parametrize("lr, every", [(1e39, 1), (1e38, 100)])
def test_non_finite_parameters_are_never_saved(
    tiny_corpus, tmp_path, lr, every
):
  # Issue 16 item 2: with lr 1e39 the loss and gradient norm of step 1 are
  # finite but the updated parameters are not, and step 1 used to be saved
  # as the "last good checkpoint"; with no checkpoint yet the message said
  # "last good checkpoint is step None".
  config = lm_helpers.tiny_config(
      tiny_corpus,
      **{
          "train.num_steps": 6,
          "train.checkpoint_every": every,
          "train.log_every": 1,
          "optimizer.learning_rate": lr,
          "optimizer.warmup_steps": 0,
          "optimizer.grad_clip_norm": 0.0,
          "eval.every_steps": 0,
      },
  )
  with pytest.raises(trainer.NonFiniteError) as err:
    trainer.train_and_evaluate(config, tmp_path)
  message = str(err.value)
  assert "None" not in message
  saved = sorted(
      int(p.name)
      for p in (tmp_path / "checkpoints").iterdir()
      if p.name.isdigit()
  )
  # Every saved step is entirely finite, and the message names the newest.
  abstract = Experiment(config).abstract_state().to_dict()
  for step in saved:
    with checkpointing.Checkpointer(
        tmp_path / "checkpoints", read_only=True
    ) as ckpt:
      _, state = ckpt.restore(abstract, step=step)
    for x in jax.tree.leaves(jax.device_get(state)):
      if np.issubdtype(np.asarray(x).dtype, np.floating):
        assert np.isfinite(x).all(), step
  if saved:
    assert f"last good checkpoint is step {saved[-1]}" in message
  else:
    assert "no checkpoint was saved" in message


def test_eval_never_modifies_checkpoints(finished_run, tmp_path):
  # Issue 16 item 9: evaluation renamed a damaged newest step to
  # <step>.corrupt in a workdir it only reads.
  from algebranets.training import evaluator

  _, workdir, _ = finished_run
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  for f in (copy / "checkpoints" / "8").glob("default/**/d/*"):
    f.write_bytes(b"")

  def snapshot():
    return sorted(
        (str(p.relative_to(copy)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in (copy / "checkpoints").rglob("*")
    )

  before = snapshot()
  with pytest.warns(checkpointing.CheckpointWarning, match="step 8"):
    result = evaluator.evaluate_workdir(copy, num_batches=1)
  assert result["step"] == 4  # fell back past the damaged step 8
  assert snapshot() == before
  assert (copy / "eval_valid_step4.json").is_file()
