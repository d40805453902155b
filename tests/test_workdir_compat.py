"""The workdir compatibility rule (training/workdir_compat.py), in-process.

The fixture workdir of tests/test_old_workdir.py (written by 822c61b, before
algebra.json/model.json existed) and records written by `record` stand in
for trained workdirs; the entry points are run for real in
tests/test_user_algebra_cli.py.
"""

import json
import shutil

import numpy as np
import pytest

from algebranets import algebras
from algebranets.training import checkpointing, config_lib, workdir_compat
from algebranets.training.evaluator import load_config
from tests import subprocess_env

FIXTURE = subprocess_env.ROOT / "tests" / "fixtures" / "workdir_822c61b"
QUICKSTART = subprocess_env.ROOT / "configs" / "quickstart.py"


def quickstart(arg="runlocal"):
  config = config_lib.load_config_file(QUICKSTART).get_config(arg)
  config.data.path = "tests/fixtures/tiny_corpus.txt"
  return config


def split_complex() -> np.ndarray:
  c = np.zeros((2, 2, 2))
  c[0, 0, 0] = c[1, 1, 0] = c[0, 1, 1] = c[1, 0, 1] = 1
  return c


@pytest.fixture
def old_workdir(tmp_path):
  workdir = tmp_path / "old"
  shutil.copytree(FIXTURE, workdir)
  return workdir


@pytest.fixture
def scratch_names():
  """Names registered by a test are removed afterwards (global registry)."""
  before = set(algebras.names())
  yield
  for name in set(algebras.names()) - before:
    del algebras._REGISTRY[name]


def test_same_model_resumes_old_workdir(old_workdir):
  workdir_compat.check_resume(quickstart(), old_workdir)


def test_algebra_with_the_same_shapes_is_refused_by_name(old_workdir):
  # M2R and H have identical parameter shapes: only the name tells them
  # apart in a workdir written before the constants were recorded.
  with pytest.raises(checkpointing.CheckpointError) as e:
    workdir_compat.check_resume(quickstart("runlocal,algebra=H"), old_workdir)
  msg = str(e.value)
  assert "model.algebra: 'M2R' -> 'H'" in msg and "(config.json)" in msg
  assert "\n" not in msg


def test_every_differing_architecture_key_is_named(old_workdir):
  config = quickstart()
  config.model.num_heads = 4
  config.model.activation = "relu"
  with pytest.raises(checkpointing.CheckpointError) as e:
    workdir_compat.check_resume(config, old_workdir)
  assert "model.activation: 'split' -> 'relu'" in str(e.value)
  assert "model.num_heads: 2 -> 4" in str(e.value)


def test_implementation_and_eval_keys_may_change(old_workdir):
  config = quickstart()
  config.model.eval_mem_len = 16
  config.model.eval_same_length = False
  config.model.kernel_path = "einsum"
  workdir_compat.check_resume(config, old_workdir)


def test_task_change_is_refused(old_workdir):
  recorded = {"task": "stream_lm", "model": {"algebra": "M2R"}}
  assert workdir_compat.differences(recorded, "byte_lm", {"algebra": "M2R"})


def test_workdir_without_checkpoints_accepts_anything(old_workdir, tmp_path):
  shutil.rmtree(old_workdir / "checkpoints")
  workdir_compat.check_resume(quickstart("runlocal,algebra=H"), old_workdir)
  # A save in progress (orbax tmp dir) is not a checkpoint.
  (old_workdir / "checkpoints" / "10.orbax-checkpoint-tmp-1").mkdir(
      parents=True
  )
  assert not workdir_compat.has_checkpoints(old_workdir)
  assert not workdir_compat.has_checkpoints(tmp_path / "missing")


def test_record_then_check_uses_model_json_and_fingerprint(
    old_workdir, scratch_names
):
  config = quickstart()
  workdir_compat.record(config, old_workdir)
  record = json.loads((old_workdir / "algebra.json").read_text())
  assert record["name"] == "M2R"
  assert record["fingerprint"] == algebras.fingerprint("M2R")
  model = json.loads((old_workdir / "model.json").read_text())
  assert model["task"] == "stream_lm" and model["model"]["algebra"] == "M2R"
  with pytest.raises(checkpointing.CheckpointError, match=r"\(model.json\)"):
    workdir_compat.check_resume(quickstart("runlocal,algebra=H"), old_workdir)
  # The name M2R now means other constants (same shapes): refused by the
  # fingerprint although every config key is equal.
  algebras.register(
      algebras.from_structure_constants(
          "M2R", -algebras.get("M2R").structure_constants
      ),
      overwrite=True,
  )
  try:
    with pytest.raises(
        checkpointing.CheckpointError, match="algebra constants: fingerprint"
    ):
      workdir_compat.check_resume(config, old_workdir)
    with pytest.raises(checkpointing.CheckpointError, match="registered here"):
      load_config(old_workdir)
  finally:
    algebras.register(algebras.matrix_algebra(2, "R"), overwrite=True)


def test_eval_refuses_edited_config_json(old_workdir):
  workdir_compat.record(quickstart(), old_workdir)
  config = json.loads((old_workdir / "config.json").read_text())
  config["model"]["eval_mem_len"] = 16  # allowed: an evaluation setting
  (old_workdir / "config.json").write_text(json.dumps(config))
  assert load_config(old_workdir).model.eval_mem_len == 16
  config["model"]["algebra"] = "H"
  (old_workdir / "config.json").write_text(json.dumps(config))
  with pytest.raises(checkpointing.CheckpointError) as e:
    load_config(old_workdir)
  assert "model.algebra: 'M2R' -> 'H'" in str(e.value)
  assert "config.json differs" in str(e.value)


def test_old_workdir_loads_without_records(old_workdir):
  assert load_config(old_workdir).model.algebra == "M2R"


def test_resolve_algebra_path_and_records(tmp_path, old_workdir, scratch_names):
  npy = tmp_path / "split_complex.npy"
  np.save(npy, split_complex())
  config = quickstart(f"runlocal,algebra={npy}")
  resolved = workdir_compat.resolve_algebra(config, old_workdir)
  name = resolved.model.algebra
  assert name.startswith("split_complex@") and name in algebras.names()
  assert config.model.algebra == str(npy)  # the caller's config is kept
  assert workdir_compat.resolve_algebra(resolved, old_workdir) is resolved

  workdir_compat.record(resolved, old_workdir)
  record = json.loads((old_workdir / "algebra.json").read_text())
  np.testing.assert_array_equal(record["structure_constants"], split_complex())
  # Another process (or machine): the name is unknown, the file is gone.
  del algebras._REGISTRY[name]
  npy.unlink()
  again = workdir_compat.resolve_algebra(config, old_workdir)
  assert again.model.algebra == name
  del algebras._REGISTRY[name]
  by_name = quickstart(f"runlocal,algebra={name}")
  assert workdir_compat.resolve_algebra(by_name, old_workdir) is by_name
  assert name in algebras.names()  # registered from algebra.json
  del algebras._REGISTRY[name]
  assert load_config(old_workdir).model.algebra == name
  assert algebras.fingerprint(name) == record["fingerprint"]


def test_resolve_algebra_bad_file_is_a_config_error(tmp_path):
  bad = tmp_path / "bad.npy"
  np.save(bad, np.ones((2, 2)))
  config = quickstart(f"runlocal,algebra={bad}")
  with pytest.raises(config_lib.ConfigError, match=r"bad.npy.*\[d, d, d\]"):
    workdir_compat.resolve_algebra(config, tmp_path)
  # A missing file whose stem is not the recorded algebra's.
  with pytest.raises(config_lib.ConfigError, match="not found"):
    workdir_compat.resolve_algebra(
        quickstart(f"runlocal,algebra={tmp_path / 'gone.npy'}"), tmp_path
    )
  # Misspelled names are left to config validation ("Did you mean").
  typo = quickstart("runlocal,algebra=M2Q")
  assert workdir_compat.resolve_algebra(typo, tmp_path) is typo


def test_edited_npy_is_refused_on_resume(tmp_path, old_workdir, scratch_names):
  npy = tmp_path / "split_complex.npy"
  np.save(npy, split_complex())
  config = workdir_compat.resolve_algebra(
      quickstart(f"runlocal,algebra={npy}"), old_workdir
  )
  workdir_compat.record(config, old_workdir)
  edited = split_complex()
  edited[1, 1, 0] = -1
  np.save(npy, edited)
  rerun = workdir_compat.resolve_algebra(
      quickstart(f"runlocal,algebra={npy}"), old_workdir
  )
  with pytest.raises(checkpointing.CheckpointError) as e:
    workdir_compat.check_resume(rerun, old_workdir)
  assert f"model.algebra: '{config.model.algebra}' -> " in str(e.value)


@pytest.mark.parametrize("text", ["[1, 2]", "{broken"])
def test_damaged_algebra_json_is_one_line(old_workdir, text):
  workdir_compat.record(quickstart(), old_workdir)
  (old_workdir / "algebra.json").write_text(text)
  for call in (
      lambda: load_config(old_workdir),
      lambda: workdir_compat.check_resume(quickstart(), old_workdir),
      lambda: workdir_compat.resolve_algebra(
          quickstart("runlocal,algebra=gone@1"), old_workdir
      ),
  ):
    with pytest.raises(checkpointing.CheckpointError) as e:
      call()
    assert "algebra.json" in str(e.value) and "\n" not in str(e.value)
