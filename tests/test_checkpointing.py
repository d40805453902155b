"""Checkpointer and restore_params: round trip, pruning, damage, shardings."""

from __future__ import annotations

import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algebranets.training import checkpointing
from algebranets.training.checkpointing import (
    Checkpointer,
    CheckpointError,
    CheckpointWarning,
    restore_params,
)

REPO = pathlib.Path(__file__).resolve().parents[1]

# When orbax aborts a restore on a damaged file, tensorstore callbacks for the
# reads still in flight hit orbax's already-closed asyncio loop ("Event loop
# is closed"). Harmless noise from orbax's internals, not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning"
)


def _state(i: int, width: int = 4) -> dict:
  """The trainer's saved layout, with values that depend on `i`."""
  rng = np.random.default_rng(i)
  params = {
      "linear": {
          "w": jnp.asarray(rng.normal(size=(3, width)), jnp.float32),
          "b": jnp.asarray(rng.normal(size=(width,)), jnp.bfloat16),
      },
      "scale": jnp.float32(1.5 + i),
  }
  opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
  return {
      "step": jnp.int32(i),
      "params": params,
      "model_state": {"bn": {"mean": jnp.full((width,), i, jnp.float32)}},
      # Real optax state (NamedTuples, EmptyState) plus a None and an
      # empty tuple, as some optax transforms produce.
      "opt_state": (opt.init(params), None, ()),
      "rng": jax.random.key_data(jax.random.key(i)),
  }


def _abstract(tree):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      tree,
  )


def _assert_bit_identical(got, want):
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def _data_files(step_dir: pathlib.Path) -> list[pathlib.Path]:
  """The OCDBT data files orbax wrote for one step."""
  files = [p for p in step_dir.glob("default/**/d/*") if p.is_file()]
  assert files, f"no data files under {step_dir}"
  return files


def _save_steps(directory, steps, **kw) -> Checkpointer:
  ckpt = Checkpointer(directory, **kw)
  for s in steps:
    ckpt.save(s, _state(s))
  ckpt.wait()
  return ckpt


@pytest.mark.parametrize("async_save", [True, False])
def test_round_trip_is_bit_identical(tmp_path, async_save):
  want = _state(5)
  with Checkpointer(tmp_path / "ckpt", async_save=async_save) as ckpt:
    ckpt.save(5, want)
    ckpt.wait()
    assert ckpt.all_steps() == [5]
    step, got = ckpt.restore(_abstract(_state(0)))
  assert step == 5
  _assert_bit_identical(got, want)
  assert isinstance(got["opt_state"][0][1][0], optax.ScaleByAdamState)
  assert got["rng"].dtype == jnp.uint32
  assert got["params"]["linear"]["b"].dtype == jnp.bfloat16
  device = jax.devices()[0]
  assert all(x.devices() == {device} for x in jax.tree.leaves(got))


def test_directory_created_and_empty_restore_raises(tmp_path):
  directory = tmp_path / "work" / "checkpoints"
  with Checkpointer(directory) as ckpt:
    assert directory.is_dir()
    assert ckpt.all_steps() == [] and ckpt.latest_step() is None
    with pytest.raises(CheckpointError, match="No checkpoints in"):
      ckpt.restore(_abstract(_state(0)))


@pytest.mark.parametrize("keep", [0, -1, 1.5, True])
def test_keep_must_be_positive_int(tmp_path, keep):
  with pytest.raises(ValueError, match="keep must be an integer >= 1"):
    Checkpointer(tmp_path, keep=keep)


def test_keep_prunes_and_resaving_a_step_is_a_no_op(tmp_path):
  ckpt = _save_steps(tmp_path, [1, 2, 3], keep=2)
  assert ckpt.all_steps() == [2, 3] and ckpt.latest_step() == 3
  assert sorted(p.name for p in tmp_path.iterdir()) == ["2", "3"]
  ckpt.save(3, _state(99))  # already saved: keeps the original
  ckpt.wait()
  step, got = ckpt.restore(_abstract(_state(0)))
  assert step == 3
  _assert_bit_identical(got, _state(3))
  _, got2 = ckpt.restore(_abstract(_state(0)), step=2)
  _assert_bit_identical(got2, _state(2))
  ckpt.close()
  # A new process sees the same steps.
  with Checkpointer(tmp_path, keep=2) as again:
    assert again.all_steps() == [2, 3]


def test_close_waits_for_the_async_save_and_is_idempotent(tmp_path):
  big = {"x": jnp.ones((1024, 1024), jnp.float32), "step": jnp.int32(1)}
  ckpt = Checkpointer(tmp_path)
  ckpt.save(1, big)
  ckpt.close()
  assert [p.name for p in tmp_path.iterdir()] == ["1"]  # renamed, final
  ckpt.close()
  with pytest.raises(RuntimeError, match="closed"):
    ckpt.save(2, big)


def test_truncated_data_files_fall_back_to_older_step(tmp_path):
  ckpt = _save_steps(tmp_path, [1, 2])
  for f in _data_files(tmp_path / "2"):
    f.write_bytes(b"")
  with pytest.warns(CheckpointWarning, match=r"step 2 at .*2 is unreadable"):
    step, got = ckpt.restore(_abstract(_state(0)))
  assert step == 1
  _assert_bit_identical(got, _state(1))
  # The damaged step is moved aside, so the resumed run can save it again.
  assert (tmp_path / "2.corrupt").is_dir() and not (tmp_path / "2").exists()
  assert ckpt.all_steps() == [1]
  ckpt.save(2, _state(2))
  step, got = ckpt.restore(_abstract(_state(0)))
  assert step == 2
  _assert_bit_identical(got, _state(2))
  ckpt.close()


def test_garbage_data_files_fall_back(tmp_path):
  ckpt = _save_steps(tmp_path, [1, 2])
  rng = np.random.default_rng(0)
  for f in _data_files(tmp_path / "2"):
    f.write_bytes(rng.bytes(f.stat().st_size))
  with pytest.warns(CheckpointWarning, match="Falling back to step 1"):
    step, _ = ckpt.restore(_abstract(_state(0)))
  assert step == 1
  ckpt.close()


def test_missing_metadata_file_falls_back(tmp_path):
  ckpt = _save_steps(tmp_path, [1, 2])
  (tmp_path / "2" / "default" / "_METADATA").unlink()
  with pytest.warns(CheckpointWarning, match="_METADATA"):
    step, got = ckpt.restore(_abstract(_state(0)))
  assert step == 1
  _assert_bit_identical(got, _state(1))
  ckpt.close()


def test_lost_step_metadata_restores_unverified_with_a_warning(
    tmp_path, caplog
):
  # The arrays are intact; only the fingerprint record is gone, so the step
  # is still used, with a logged warning instead of a fallback.
  ckpt = _save_steps(tmp_path, [1, 2])
  (tmp_path / "2" / "_CHECKPOINT_METADATA").unlink()
  with caplog.at_level(logging.WARNING):
    step, got = ckpt.restore(_abstract(_state(0)))
  assert step == 2
  _assert_bit_identical(got, _state(2))
  assert any("without verifying" in r.getMessage() for r in caplog.records)
  ckpt.close()


def test_damage_inside_an_array_chunk_is_caught_by_fingerprints(tmp_path):
  # Random (incompressible) values: one flipped byte in the chunk data is
  # not detected by orbax/tensorstore themselves.
  def state(i):
    x = np.random.default_rng(i).normal(size=(256, 256)).astype(np.float32)
    return {"step": jnp.int32(i), "params": {"w": jnp.asarray(x)}}

  ckpt = Checkpointer(tmp_path)
  ckpt.save(1, state(1))
  ckpt.save(2, state(2))
  ckpt.wait()
  chunk = max(_data_files(tmp_path / "2"), key=lambda p: p.stat().st_size)
  data = bytearray(chunk.read_bytes())
  data[len(data) // 2] ^= 0x10
  chunk.write_bytes(bytes(data))
  with pytest.warns(CheckpointWarning, match="fingerprints"):
    step, got = ckpt.restore(_abstract(state(0)))
  assert step == 1
  _assert_bit_identical(got, state(1))
  ckpt.close()


def test_explicit_bad_or_missing_step_raises(tmp_path):
  ckpt = _save_steps(tmp_path, [1, 2])
  for f in _data_files(tmp_path / "2"):
    f.write_bytes(b"")
  with pytest.raises(
      CheckpointError, match=r"step 2 .* available steps: \[1, 2\]"
  ):
    ckpt.restore(_abstract(_state(0)), step=2)
  assert (tmp_path / "2").is_dir()  # explicit requests never move data
  with pytest.raises(
      CheckpointError, match=r"step 7 .*available steps: \[1, 2\]"
  ):
    ckpt.restore(_abstract(_state(0)), step=7)
  step, _ = ckpt.restore(_abstract(_state(0)), step=1)
  assert step == 1
  ckpt.close()


def test_no_readable_step_raises_listing_what_was_tried(tmp_path):
  ckpt = _save_steps(tmp_path, [1, 2])
  for s in (1, 2):
    for f in _data_files(tmp_path / str(s)):
      f.write_bytes(b"")
  with pytest.warns(CheckpointWarning), pytest.raises(CheckpointError) as err:
    ckpt.restore(_abstract(_state(0)))
  msg = str(err.value)
  assert "step 2:" in msg and "step 1:" in msg
  assert "delete that directory or pass a different --workdir" in msg
  # Nothing restored, so nothing was moved aside.
  assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "2"]
  ckpt.close()


@pytest.mark.parametrize(
    "change, expect",
    [
        (
            lambda s: s["params"]["linear"].update(
                w=jax.ShapeDtypeStruct(
                    (3, 5), jnp.float32, sharding=s["rng"].sharding
                )
            ),
            r"params/linear/w: \(3, 4\) float32 in checkpoint, \(3, 5\) "
            r"float32 now",
        ),
        (
            lambda s: s["params"].update(extra=s["params"]["scale"]),
            "params/extra: .* now, not in checkpoint",
        ),
        (
            lambda s: s["params"].pop("scale"),
            "params/scale: .* in checkpoint, not in the current config",
        ),
        (
            lambda s: s["model_state"]["bn"].update(
                mean=jax.ShapeDtypeStruct(
                    (4,), jnp.bfloat16, sharding=s["rng"].sharding
                )
            ),
            r"model_state/bn/mean: \(4,\) float32 in checkpoint, \(4,\) "
            "bfloat16 now",
        ),
    ],
)
def test_config_mismatch_raises_without_fallback(
    tmp_path, recwarn, change, expect
):
  ckpt = _save_steps(tmp_path, [1, 2])
  target = _abstract(_state(0))
  change(target)
  with pytest.raises(CheckpointError) as err:
    ckpt.restore(target)
  msg = str(err.value)
  assert f"checkpoint at {tmp_path / '2'} does not match the current" in msg
  assert "--workdir" in msg and "original config" in msg
  assert re.search(expect, msg), msg
  assert not [w for w in recwarn if w.category is CheckpointWarning]
  assert ckpt.all_steps() == [1, 2]
  ckpt.close()


def test_interrupted_save_tmp_dir_is_ignored_then_removed(tmp_path):
  _save_steps(tmp_path, [1, 2]).close()
  # What a save killed mid-write leaves (orbax 0.12.8 naming): a partial
  # copy of a step under `<step>.orbax-checkpoint-tmp`.
  # Step 5, not the next step saved below, because orbax's save of a step
  # replaces that step's own stale tmp directory anyway.
  tmp = tmp_path / "5.orbax-checkpoint-tmp"
  shutil.copytree(tmp_path / "2", tmp)
  for f in _data_files(tmp):
    f.write_bytes(b"")
  ckpt = Checkpointer(tmp_path)
  assert ckpt.all_steps() == [1, 2]
  step, got = ckpt.restore(_abstract(_state(0)))
  assert step == 2
  _assert_bit_identical(got, _state(2))
  assert tmp.is_dir()  # readers (evaluators) leave it alone
  ckpt.save(3, _state(3))
  ckpt.wait()
  assert not tmp.exists()
  assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "2", "3"]
  _, got = ckpt.restore(_abstract(_state(0)))
  _assert_bit_identical(got, _state(3))
  ckpt.close()


def _python(code: str, **env_vars: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu", **env_vars)
  env["PYTHONPATH"] = os.pathsep.join(
      [str(REPO), *filter(None, [env.get("PYTHONPATH")])]
  )
  return subprocess.run(
      [sys.executable, "-c", textwrap.dedent(code)],
      env=env,
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=300,
      check=False,
  )


def test_process_killed_mid_save_keeps_older_steps(tmp_path):
  out = _python(f"""
      import os, signal
      import jax.numpy as jnp
      from tests.test_checkpointing import _state
      from algebranets.training.checkpointing import Checkpointer
      ckpt = Checkpointer({str(tmp_path)!r})
      ckpt.save(1, _state(1))
      ckpt.wait()
      ckpt.save(2, {{"big": jnp.ones((4096, 4096)), **_state(2)}})
      os.kill(os.getpid(), signal.SIGKILL)  # while the async write runs
      """)
  assert out.returncode == -9, out.stderr[-3000:]
  names = sorted(p.name for p in tmp_path.iterdir())
  with Checkpointer(tmp_path) as ckpt:
    if "2" not in names:  # the usual outcome: killed mid-write
      assert names == ["1", "2.orbax-checkpoint-tmp"]
      assert ckpt.all_steps() == [1]
      step, got = ckpt.restore(_abstract(_state(0)))
      assert step == 1
      _assert_bit_identical(got, _state(1))
    ckpt.save(3, _state(3))
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
      {"1", "3"} | ({"2"} & set(names))
  )


def test_restore_params_from_workdir_checkpoints_or_step_dir(tmp_path):
  _save_steps(tmp_path / "run" / "checkpoints", [1, 2]).close()
  abstract = _abstract(_state(0)["params"])
  for path in (tmp_path / "run", tmp_path / "run" / "checkpoints"):
    _assert_bit_identical(restore_params(path, abstract), _state(2)["params"])
  got = restore_params(str(tmp_path / "run" / "checkpoints" / "1"), abstract)
  _assert_bit_identical(got, _state(1)["params"])


def test_restore_params_ignores_other_state_and_never_modifies(tmp_path):
  ckpt = Checkpointer(tmp_path / "checkpoints")
  # Another run with a different optimizer and model state: only the params
  # need to match.
  other = dict(_state(1), opt_state=(), model_state={})
  ckpt.save(1, other)
  ckpt.save(2, dict(_state(2), opt_state=(), model_state={}))
  ckpt.close()
  for f in _data_files(tmp_path / "checkpoints" / "2"):
    f.write_bytes(b"")
  abstract = _abstract(_state(0)["params"])
  with pytest.warns(CheckpointWarning, match="Falling back to step 1"):
    got = restore_params(tmp_path, abstract)
  _assert_bit_identical(got, _state(1)["params"])
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
      "1",
      "2",
  ]


def test_restore_params_errors(tmp_path):
  _save_steps(tmp_path / "checkpoints", [1]).close()
  wrong = _abstract(_state(0, width=6)["params"])
  with pytest.raises(
      CheckpointError, match="init_from needs a run of the same"
  ):
    restore_params(tmp_path, wrong)
  with pytest.raises(CheckpointError, match="does not exist"):
    restore_params(tmp_path / "nope", wrong)


def test_rejects_typed_keys_and_unsharded_targets(tmp_path):
  with Checkpointer(tmp_path) as ckpt:
    with pytest.raises(TypeError, match="key_data"):
      ckpt.save(1, {"rng": jax.random.key(0)})
    ckpt.save(1, _state(1))
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _state(0)
    )
    with pytest.raises(ValueError, match="have no sharding"):
      ckpt.restore(target)


@pytest.mark.parametrize(
    "x",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.arange(7, dtype=np.int32),
        np.array([True, False, True]),
        np.arange(5, dtype=np.uint32),
        np.linspace(-1, 1, 9).astype(jnp.bfloat16),
        np.arange(6, dtype=np.int8),
    ],
    ids=lambda x: str(x.dtype),
)
def test_fingerprint_sees_every_single_value_change(x):
  base = checkpointing._fingerprints({"x": jnp.asarray(x)})["x"]
  assert base == checkpointing._fingerprints({"x": np.asarray(x)})["x"]
  flat = x.reshape(-1)
  for i in range(flat.size):
    y = flat.copy()
    y[i] = not y[i] if x.dtype == np.bool_ else y[i] + 1
    assert checkpointing._fingerprints({"x": y.reshape(x.shape)})["x"] != base
  # Swapping two different values moves them; the fingerprint notices.
  y = flat.copy()
  y[0], y[1] = flat[1], flat[0]
  assert checkpointing._fingerprints({"x": y.reshape(x.shape)})["x"] != base


def test_orbax_info_logs_are_silenced(tmp_path, caplog):
  caplog.set_level(logging.INFO, logger="absl")
  with Checkpointer(tmp_path) as ckpt:
    ckpt.save(1, _state(1))
    ckpt.restore(_abstract(_state(0)))
  orbax_info = [
      r
      for r in caplog.records
      if f"{os.sep}orbax{os.sep}" in r.pathname and r.levelno < logging.WARNING
  ]
  assert not orbax_info


def _device_job(n: int, mode: str, directory: str) -> None:
  """Saves or restores (and checks) a state on a ('data',) mesh of n devices.

  Runs in this process (n=1) and in a subprocess with n forced CPU devices.
  """
  devices = jax.devices()[:n]
  assert len(devices) == n, jax.devices()
  mesh = jax.make_mesh(
      (n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices
  )
  rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  want = {
      "step": jnp.int32(7),
      "params": {
          "w": jnp.arange(24.0).reshape(4, 6),
          "b": jnp.linspace(0, 1, 6).astype(jnp.bfloat16),
      },
      "rows": jnp.arange(8, dtype=jnp.int32),  # sharded over 'data'
      "rng": jax.random.key_data(jax.random.key(3)),
  }
  shard = {
      "step": rep,
      "params": {"w": rep, "b": rep},
      "rows": split,
      "rng": rep,
  }
  with Checkpointer(directory) as ckpt:
    if mode == "save":
      ckpt.save(7, jax.device_put(want, shard))
      return
    abstract = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        want,
        shard,
    )
    step, got = ckpt.restore(abstract)
  assert step == 7
  for a, s in zip(jax.tree.leaves(got), jax.tree.leaves(shard), strict=True):
    assert a.sharding == s, (a.sharding, s)
  _assert_bit_identical(got, want)


def test_restore_across_device_counts(tmp_path):
  one, four = tmp_path / "one", tmp_path / "four"
  _device_job(1, "save", str(one))
  # XLA_FLAGS must be set before jax is imported, hence a fresh interpreter.
  code = f"""
      from tests.test_checkpointing import _device_job
      _device_job(4, "restore", {str(one)!r})
      _device_job(4, "save", {str(four)!r})
      print("OK")
      """
  out = _python(code, XLA_FLAGS="--xla_force_host_platform_device_count=4")
  assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]
  _device_job(1, "restore", str(four))


def test_step_without_its_default_folder_falls_back(tmp_path):
  # Issue 16 item 5: orbax's metadata for such a step raises
  # KeyError('Unknown key: tree') on attribute access.
  _save_steps(tmp_path, [1, 2]).close()
  shutil.rmtree(tmp_path / "2" / "default")
  ckpt = Checkpointer(tmp_path)  # a new run: nothing cached in the manager
  with pytest.warns(CheckpointWarning, match="Falling back to step 1"):
    step, got = ckpt.restore(_abstract(_state(0)))
  assert step == 1
  _assert_bit_identical(got, _state(1))
  ckpt.close()
