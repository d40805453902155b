"""Pruning inside the harness: config, schedule, masks in the state, report."""

import json
import shutil

import jax
import numpy as np
import pytest

from algebranets.training import checkpointing, config_lib, trainer
from algebranets.training.experiment import Experiment
from tests import lm_helpers

PRUNE = {
    "sparsity.target": 0.75,  # the default method is gradual
    "sparsity.begin_step": 0,
    "sparsity.end_step": 8,
    "sparsity.frequency": 2,
}


def _state(config, workdir):
  exp = Experiment(config)
  with checkpointing.Checkpointer(workdir / "checkpoints") as ckpt:
    _, restored = ckpt.restore(exp.abstract_state().to_dict())
  return jax.device_get(restored)


@pytest.fixture(scope="module")
def pruned_run(tiny_corpus, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("pruned")
  config = lm_helpers.txl_config(tiny_corpus, **PRUNE)
  final = trainer.train_and_evaluate(config, workdir)
  return config, workdir, final


def test_reaches_target_and_reports_sparse_counts(pruned_run):
  _, workdir, final = pruned_run
  assert np.isfinite(final["loss"])
  assert final["sparsity"] == pytest.approx(0.75, abs=0.02)
  acc = json.loads((workdir / "accounting.json").read_text())
  assert acc["sparse"]["nonzero_params"] < acc["params_total"]
  assert acc["sparse"]["sparse_macs_per_example"] < acc["macs_per_example"]
  assert (workdir / "sparsity.txt").read_text().startswith("| layer |")
  rows = [
      json.loads(x)
      for x in (workdir / "metrics.jsonl").read_text().splitlines()
  ]
  logged = [r["sparsity"] for r in rows if r["split"] == "train"]
  assert logged == sorted(logged) and logged[-1] > 0.7  # follows the schedule


def test_pruned_weights_are_zero_and_masks_are_checkpointed(pruned_run):
  config, workdir, _ = pruned_run
  state = _state(config, workdir)
  masks = state["opt_state"].masks
  checked = 0
  for module, leaves in masks.items():
    for leaf, mask in leaves.items():
      if mask is None:
        continue
      w = state["params"][module][leaf]
      assert np.all(w[~mask] == 0.0)
      # Element granularity: all d components of an element go together.
      assert np.all(mask.all(-1) == mask.any(-1))
      checked += 1
  assert checked >= 5
  assert all(
      masks[m][leaf] is None
      for m in masks
      for leaf in masks[m]
      if "embed" in m or "head" in m
  )


def test_resume_keeps_masks_exactly(pruned_run, tmp_path):
  config, workdir, _ = pruned_run
  run = tmp_path / "run"
  shutil.copytree(workdir, run)
  shutil.rmtree(run / "checkpoints" / "12")
  trainer.train_and_evaluate(config, run)
  jax.tree.map(
      np.testing.assert_array_equal,
      _state(config, run),
      _state(config, workdir),
  )


def test_unstructured_pruning_of_the_memoryless_lm(tiny_corpus, tmp_path):
  config = lm_helpers.tiny_config(
      tiny_corpus,
      **{
          **PRUNE,
          "sparsity.granularity": "unstructured",
          "train.num_steps": 10,
          "eval.every_steps": 0,
      },
  )
  final = trainer.train_and_evaluate(config, tmp_path)
  assert final["sparsity"] == pytest.approx(0.75, abs=0.02)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"sparsity.method": "none", "sparsity.target": 0.5},
            "needs a pruning method",
        ),
        ({"sparsity.method": "prune"}, "unknown method 'prune'"),
        ({**PRUNE, "sparsity.granularity": "rows"}, "unknown granularity"),
        ({**PRUNE, "sparsity.target": 1.0}, r"must be in \[0, 1\)"),
        ({**PRUNE, "sparsity.end_step": 100}, "begin_step"),
        (
            {
                **PRUNE,
                "sparsity.ranking": "global",
                "sparsity.distribution": "erk",
            },
            "distribution='uniform'",
        ),
        ({**PRUNE, "sparsity.methd": "x"}, 'Did you mean "method"'),
    ],
)
def test_bad_sparsity_config(tiny_corpus, overrides, message):
  config = lm_helpers.txl_config(tiny_corpus, **overrides)
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(config, num_devices=1)


def test_patterns_that_select_nothing(tiny_corpus):
  config = lm_helpers.txl_config(
      tiny_corpus, **{**PRUNE, "sparsity.include": ("no_such_module",)}
  )
  with pytest.raises(ValueError, match="select no 'w' weight"):
    Experiment(config)


def test_export_writes_npz_and_block_sparse_matches_dense(pruned_run):
  from scripts import export_pruned

  _, workdir, _ = pruned_run
  path, checks = export_pruned.export_workdir(workdir)
  saved = np.load(path)
  assert any(k.startswith("mask:") for k in saved.files)
  assert len(checks) >= 5
  for c in checks:
    assert c["kept"] <= 0.3 * c["total"]  # 75% of the elements were pruned
    assert c["max_abs_err"] < 1e-5


def test_off_by_default_and_target_alone_turns_it_on(tiny_corpus):
  config = lm_helpers.txl_config(tiny_corpus)
  assert config.sparsity.target == 0.0
  assert not Experiment(config).pruning
  config.sparsity.target = 0.5
  assert Experiment(config).pruning
