"""Checkpoints of the training state, on orbax-checkpoint's CheckpointManager.

Saved layout. The trainer saves a plain dict (see `STATE_KEYS`)::

  {'step': int32[],            # optimizer steps taken
   'params': {...},            # Haiku params
   'model_state': {...},       # Haiku state ({} when the model has none)
   'opt_state': (...),         # optax state (NamedTuples, (), None allowed)
   'rng': uint32[2]}           # raw key data: jax.random.key_data(key)

`Checkpointer` itself accepts any pytree of arrays; only `restore_params`
needs the top-level 'params' entry. Typed PRNG keys cannot be saved; store
`jax.random.key_data(key)` and rebuild with `jax.random.wrap_key_data`.

On disk (orbax 0.12.8, local filesystem)::

  <workdir>/checkpoints/<step>/                    one directory per step
      _CHECKPOINT_METADATA                         step metadata (JSON), with
                                                   our per-array fingerprints
      default/_METADATA, manifest.ocdbt, d/, ...   the arrays (OCDBT/zarr)
  <workdir>/checkpoints/<step>.orbax-checkpoint-tmp/  a save in progress, or
                                                   one killed mid-write
  <workdir>/checkpoints/<step>.corrupt/            a step found unreadable
                                                   and moved aside on restore

Saves are atomic: orbax writes `<step>.orbax-checkpoint-tmp/` and renames it
to `<step>/` once every file is written, so a process killed mid-save leaves
the older steps intact; orbax never lists tmp directories as steps, and the
first `save()` of the next run deletes them.

Corruption. Orbax/tensorstore detect truncated files and damaged OCDBT
b-tree nodes, but NOT damage inside a (compressed) array chunk: a flipped
byte there restores silently wrong values. So `save()` also records a 64-bit
fingerprint of every array's bits in the step metadata, and `restore()`
checks the restored arrays against them. `restore()` without a step falls
back from an unreadable newest step to older ones (with a warning), and then
moves the unreadable ones aside to `<step>.corrupt` so that the resumed run
can save those steps again; a checkpoint that is readable but does not match
the requested structure (the config changed) is an error, not a fallback.
"""

from __future__ import annotations

import errno
import logging as py_logging
import os
import pathlib
import shutil
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

STATE_KEYS = ("step", "params", "model_state", "opt_state", "rng")

# orbax 0.12.8 names an unfinished save `<step>.orbax-checkpoint-tmp`.
_ORBAX_TMP_MARK = ".orbax-checkpoint-tmp"
_ITEM = "default"  # orbax's name for a manager's single unnamed item
_META_KEY = "algebranets"
_FORMAT_VERSION = 1
_MAX_DIFF_LINES = 8
_MAX_ERROR_CHARS = 400


class CheckpointError(RuntimeError):
  """No usable checkpoint: missing, unreadable, or not matching the config."""


class CheckpointWarning(UserWarning):
  """A checkpoint step was unreadable and an older one was used instead."""


class _DamagedError(Exception):
  """A step exists but cannot be read back intact."""


# --------------------------------------------------------------------------
# Logging.


class _DropOrbaxInfo(py_logging.Filter):
  """Drops orbax's INFO/DEBUG records (several per save); keeps warnings.

  Also drops orbax's logged exceptions: the same exception reaches
  `Checkpointer`, which reports it once as a CheckpointError (a full disk
  otherwise printed ~300 lines of orbax/asyncio tracebacks per save).
  """

  def filter(self, record: py_logging.LogRecord) -> bool:
    if f"{os.sep}orbax{os.sep}" not in record.pathname:
      return True
    if record.levelno < py_logging.WARNING:
      return False
    return not (record.exc_info or record.exc_text)


_ORBAX_FILTER = _DropOrbaxInfo()


def _quiet_orbax() -> None:
  # Orbax logs through absl, i.e. the 'absl' Python logger; a logger-level
  # filter there leaves every other library's absl logging untouched.
  logger = py_logging.getLogger("absl")
  if _ORBAX_FILTER not in logger.filters:
    logger.addFilter(_ORBAX_FILTER)


def _os_error(err: BaseException) -> OSError | None:
  """The first OSError in `err`'s cause/context chain, if any."""
  seen = set()
  while err is not None and id(err) not in seen:
    seen.add(id(err))
    if isinstance(err, OSError) and err.errno is not None:
      return err
    err = err.__cause__ or err.__context__
  return None


def _save_hint(err: BaseException) -> str:
  os_err = _os_error(err)
  code = os_err.errno if os_err is not None else None
  # tensorstore reports OS errors as ValueError text ("... No space left on
  # device [os_error_code='28']"), so look at the message as well.
  text = str(err)
  if code == errno.ENOSPC or os.strerror(errno.ENOSPC) in text:
    return "The disk is full: free space there"
  not_writable = (errno.EACCES, errno.EPERM, errno.EROFS)
  if code in not_writable or any(os.strerror(c) in text for c in not_writable):
    return "The directory is not writable: make it writable"
  return "Fix the cause in parentheses"


def _short(err: BaseException) -> str:
  # tensorstore errors embed the whole JSON spec; keep the informative head.
  text = " ".join(str(err).split())
  if len(text) > _MAX_ERROR_CHARS:
    text = text[:_MAX_ERROR_CHARS] + " ..."
  return f"{type(err).__name__}: {text}"


# --------------------------------------------------------------------------
# Paths, shapes and fingerprints.


def _key_str(key: Any) -> str:
  for attr in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _path_str(path: Sequence[Any]) -> str:
  """'opt_state/0/mu/w' for both a NamedTuple and orbax's dict/list mirror."""
  return "/".join(_key_str(k) for k in path)


def _flat(tree: Any) -> dict[str, Any]:
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {_path_str(p): leaf for p, leaf in leaves}


def _is_prng_key(x: Any) -> bool:
  dtype = getattr(x, "dtype", None)
  return dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)


def _check_no_prng_keys(tree: Any, what: str) -> None:
  bad = [p for p, x in _flat(tree).items() if _is_prng_key(x)]
  if bad:
    raise TypeError(
        f"{what} holds typed PRNG key arrays at {bad[:5]}; checkpoints store "
        "raw key data. Store jax.random.key_data(key) (uint32) instead and "
        "rebuild the key with jax.random.wrap_key_data."
    )


def _as_abstract(abstract_state: Any) -> Any:
  """Checks the restore target: ShapeDtypeStructs (or arrays) with shardings."""
  _check_no_prng_keys(abstract_state, "abstract_state")
  missing = []

  def convert(path, x):
    if isinstance(x, jax.Array):
      return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    if not isinstance(x, jax.ShapeDtypeStruct):
      raise TypeError(
          f"abstract_state leaf {_path_str(path)!r} is a {type(x).__name__}; "
          "expected jax.ShapeDtypeStruct (with .sharding) or jax.Array. "
          "Build the target with jax.eval_shape(...) and attach shardings."
      )
    if x.sharding is None:
      missing.append(_path_str(path))
    return x

  out = jax.tree_util.tree_map_with_path(convert, abstract_state)
  if missing:
    raise ValueError(
        f"abstract_state leaves {missing[:5]}"
        f"{' ...' if len(missing) > 5 else ''} have no sharding, so the "
        "restore would not know where to place them. Set it, e.g. "
        "jax.ShapeDtypeStruct(shape, dtype, sharding=NamedSharding(mesh, P()))."
    )
  return out


def _bit_width(dtype: Any) -> int:
  if jnp.issubdtype(dtype, jnp.integer):
    return jnp.iinfo(dtype).bits
  return jnp.finfo(dtype).bits


def _uint32_words(x: jax.Array) -> jax.Array:
  """The bits of `x` as a flat uint32 vector (an injective map per dtype)."""
  if x.dtype == jnp.bool_:
    return x.astype(jnp.uint32).ravel()
  if jnp.issubdtype(x.dtype, jnp.complexfloating):
    return _uint32_words(jnp.stack([x.real, x.imag], axis=-1))
  bits = _bit_width(x.dtype)
  if bits < 8:  # int4, float4, ...: exactly representable in float32
    x, bits = x.astype(jnp.float32), 32
  if bits == 64:
    return jax.lax.bitcast_convert_type(x, jnp.uint32).ravel()
  unsigned = {8: jnp.uint8, 16: jnp.uint16, 32: jnp.uint32}[bits]
  return jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32).ravel()


def _fingerprint_one(x: jax.Array) -> jax.Array:
  """uint32[2]: two position-weighted sums of the bits of `x`, mod 2**32.

  Every weight of the first sum is odd, so any single flipped bit changes it;
  sums mod 2**32 are exact in any reduction order, hence the same for any
  sharding of `x` on any backend.
  """
  u = _uint32_words(x)
  i = jax.lax.iota(jnp.uint32, u.shape[0])
  w1 = (i * jnp.uint32(0x9E3779B1) + jnp.uint32(0x7F4A7C15)) | jnp.uint32(1)
  w2 = ((i ^ jnp.uint32(0x5BD1E995)) * jnp.uint32(0xC2B2AE3D)) | jnp.uint32(1)
  mixed = u ^ (u >> jnp.uint32(15))
  h1 = jnp.sum(u * w1, dtype=jnp.uint32)
  h2 = jnp.sum(mixed * w2, dtype=jnp.uint32)
  return jnp.stack([h1, h2])


@jax.jit
def _fingerprint_leaves(leaves: list[jax.Array]) -> list[jax.Array]:
  return [_fingerprint_one(x) for x in leaves]


def _fingerprints(tree: Any) -> dict[str, str]:
  """{path: 16 hex digits} for every array leaf of `tree`."""
  flat = {
      p: x
      for p, x in _flat(tree).items()
      if isinstance(x, (jax.Array, np.ndarray, np.generic))
  }
  if not flat:
    return {}
  values = jax.device_get(_fingerprint_leaves(list(flat.values())))
  return {
      p: f"{int(v[0]):08x}{int(v[1]):08x}"
      for p, v in zip(flat, values, strict=True)
  }


def _describe(shape: Any, dtype: Any) -> str:
  return f"{tuple(shape)} {np.dtype(dtype).name}"


def _structure_diffs(
    saved: dict[str, Any], target: dict[str, Any]
) -> tuple[list[str], int]:
  """Human-readable differences (capped) and their total count."""
  lines = []
  for p in sorted(set(target) - set(saved)):
    t = target[p]
    lines.append(f"  {p}: {_describe(t.shape, t.dtype)} now, not in checkpoint")
  for p in sorted(set(saved) - set(target)):
    s = saved[p]
    lines.append(
        f"  {p}: {_describe(s.shape, s.dtype)} in checkpoint, not in the "
        "current config"
    )
  for p in sorted(set(saved) & set(target)):
    s, t = saved[p], target[p]
    if tuple(s.shape) != tuple(t.shape) or np.dtype(s.dtype) != np.dtype(
        t.dtype
    ):
      lines.append(
          f"  {p}: {_describe(s.shape, s.dtype)} in checkpoint, "
          f"{_describe(t.shape, t.dtype)} now"
      )
  total = len(lines)
  if total > _MAX_DIFF_LINES:
    lines = [
        *lines[:_MAX_DIFF_LINES],
        f"  ... and {total - _MAX_DIFF_LINES} more",
    ]
  return lines, total


# --------------------------------------------------------------------------
# The orbax manager and the restore-with-fallback logic shared by
# `Checkpointer.restore` and `restore_params`.


def _make_manager(
    directory: pathlib.Path,
    *,
    keep: int | None,
    async_save: bool,
    create: bool,
) -> ocp.CheckpointManager:
  # PyTreeCheckpointHandler (not Standard) because it supports partial
  # restore, which `restore_params` uses to read only the params. Passed as
  # the single `item_handlers` (not a handler registry) so that the manager
  # is in single-item mode from the start: with a registry orbax infers the
  # mode from the first step it reads, and a step missing its `default/`
  # folder then made every other step unreadable too.
  handler = ocp.PyTreeCheckpointHandler()
  options = ocp.CheckpointManagerOptions(
      preservation_policy=ocp.checkpoint_managers.LatestN(n=keep),
      enable_async_checkpointing=async_save,
      create=create,
      # Deleting tmp directories at start-up would also delete the in-flight
      # save of a trainer that a concurrent reader (an evaluator) shares the
      # directory with; `Checkpointer.save` cleans them up instead.
      cleanup_tmp_directories=False,
      # A step directory that cannot be created (read-only or full disk)
      # must fail in `save()` itself: created in orbax's background threads,
      # the failure left other threads waiting ~300 s for its signal, and the
      # process could not exit.
      async_options=ocp.AsyncOptions(create_directories_asynchronously=False),
  )
  return ocp.CheckpointManager(
      directory, options=options, item_handlers=handler
  )


def _step_dir(directory: pathlib.Path, step: int) -> pathlib.Path:
  return directory / str(step)


def _saved_arrays(
    manager: ocp.CheckpointManager, directory: pathlib.Path, step: int
) -> dict[str, Any]:
  """{path: array metadata} of a step; _DamagedError if unreadable."""
  try:
    meta = manager.item_metadata(step)
    # Inside the try: for a damaged step the metadata object itself may
    # raise on attribute access (KeyError, not AttributeError).
    tree = getattr(meta, "tree", meta)
    flat = _flat(tree) if tree is not None else {}
  except Exception as e:  # any read failure means damage
    raise _DamagedError(
        f"its array metadata is unreadable ({_short(e)})"
    ) from e
  if not flat:
    raise _DamagedError(
        f"its array metadata {_step_dir(directory, step) / _ITEM}/_METADATA is "
        "missing or empty"
    )
  return flat


def _verify(
    manager: ocp.CheckpointManager, step: int, restored: Any, prefix: str
) -> None:
  """Compares restored arrays with the fingerprints taken at save time."""
  try:
    custom = manager.metadata(step).custom_metadata or {}
    recorded = custom[_META_KEY]["fingerprints"]
  except Exception as e:
    # The arrays themselves read fine; only the record to check them is gone.
    logging.warning(
        "Checkpoint step %d has no array fingerprints (%s); restored it "
        "without verifying the values.",
        step,
        _short(e),
    )
    return
  got = _fingerprints(restored)
  bad = [
      prefix + p for p, fp in got.items() if recorded.get(prefix + p, fp) != fp
  ]
  if bad:
    raise _DamagedError(
        f"{len(bad)} restored array(s) differ from the fingerprints recorded "
        f"when the step was saved (damaged data files), e.g. {bad[:3]}"
    )


def _quarantine(directory: pathlib.Path, steps: Sequence[int]) -> list[str]:
  """Renames unreadable step directories out of orbax's sight."""
  if jax.process_count() > 1:
    return []  # would need a cross-host barrier; leave them in place
  moved = []
  for step in steps:
    src = _step_dir(directory, step)
    dst = directory / f"{step}.corrupt"
    n = 1
    while dst.exists():
      dst = directory / f"{step}.corrupt-{n}"
      n += 1
    try:
      src.rename(dst)
    except OSError as e:
      logging.warning("Could not move %s aside: %s", src, _short(e))
      continue
    moved.append(str(dst))
  return moved


def _restore_with_fallback(
    manager: ocp.CheckpointManager,
    directory: pathlib.Path,
    abstract: Any,
    step: int | None,
    *,
    subtree: str | None,
    quarantine: bool,
) -> tuple[int, Any]:
  """Restores `step` (or the newest readable step) into `abstract`.

  Args:
    manager: the orbax manager of `directory`.
    directory: the checkpoints directory (for messages and quarantine).
    abstract: target pytree of ShapeDtypeStructs with shardings; when
      `subtree` is set, `{subtree: target}`.
    step: a step to restore, or None for the newest readable one.
    subtree: restore only this top-level entry of the saved dict.
    quarantine: move unreadable newer steps aside after a fallback.

  Returns:
    (step, restored pytree with the structure of `abstract`).
  """
  manager.reload()  # the directory may have changed since the manager started
  available = sorted(manager.all_steps())
  if step is not None:
    if step not in available:
      raise CheckpointError(
          f"No checkpoint for step {step} in {directory}; available steps: "
          f"{available or 'none'}. Pass one of those, or step=None for the "
          "newest readable one."
      )
    candidates = [step]
  else:
    if not available:
      raise CheckpointError(
          f"No checkpoints in {directory} (no <step>/ directories). Point to "
          "the workdir or checkpoints/ directory of a run that saved one."
      )
    candidates = available[::-1]

  target = _flat(abstract)
  prefix = f"{subtree}/" if subtree else ""
  failures: list[tuple[int, str]] = []
  for s in candidates:
    where = _step_dir(directory, s)
    try:
      saved = _saved_arrays(manager, directory, s)
      if subtree:
        saved = {p: m for p, m in saved.items() if p.startswith(prefix)}
      diffs, total = _structure_diffs(saved, target)
      if diffs:
        if subtree:
          fix = (
              "init_from needs a run of the same model config: pass such a "
              "run, or clear init_from to start from scratch."
          )
          head = f"The {subtree} in {where} do not"
        else:
          fix = (
              "The model/optimizer config differs from the run that wrote "
              "it. Rerun with the original config, or start a fresh run in a "
              f"new --workdir (or delete {directory})."
          )
          head = f"The checkpoint at {where} does not"
        raise CheckpointError(
            f"{head} match the current config; {total} difference(s) "
            "(path: checkpoint vs now):\n" + "\n".join(diffs) + "\n" + fix
        )
      try:
        restored = manager.restore(
            s,
            args=ocp.args.PyTreeRestore(
                item=abstract,
                restore_args=ocp.checkpoint_utils.construct_restore_args(
                    abstract
                ),
                partial_restore=subtree is not None,
            ),
        )
      except Exception as e:
        raise _DamagedError(f"reading its arrays failed ({_short(e)})") from e
      _verify(manager, s, restored[subtree] if subtree else restored, prefix)
    except _DamagedError as e:
      if step is not None:
        raise CheckpointError(
            f"Checkpoint step {s} at {where} is unreadable: {e}. The available "
            f"steps: {available}; pass another step, or step=None to use the "
            "newest readable one."
        ) from e
      failures.append((s, str(e)))
      older = [c for c in candidates if c < s]
      warnings.warn(
          f"Checkpoint step {s} at {where} is unreadable: {e}. "
          + (
              f"Falling back to step {older[0]}."
              if older
              else "No older step to fall back to."
          ),
          CheckpointWarning,
          stacklevel=3,
      )
      continue
    if failures and quarantine:
      moved = _quarantine(directory, [f for f, _ in failures])
      if moved:
        logging.warning(
            "Restored step %d; moved unreadable newer step(s) aside to %s "
            "(delete them when no longer needed).",
            s,
            ", ".join(moved),
        )
        manager.reload()
    return s, restored

  tried = "\n".join(f"  step {s}: {err}" for s, err in failures)
  raise CheckpointError(
      f"No readable checkpoint in {directory}; tried:\n{tried}\n"
      "To start over, delete that directory or pass a different --workdir; "
      "to keep trying, restore a specific step."
  )


# --------------------------------------------------------------------------
# Public API.


class Checkpointer:
  """Saves and restores the training state under one checkpoints directory.

  Example::

    ckpt = Checkpointer(workdir / "checkpoints", keep=3)
    if ckpt.latest_step() is not None:
      step, state = ckpt.restore(abstract_state)  # newest readable step
    ...
    ckpt.save(step, state)  # async; returns once arrays are copied to host
    ckpt.close()            # waits for pending saves

  Not thread-safe; one Checkpointer (one process group) may write a
  directory at a time. Readers (evaluators) may share it.
  """

  def __init__(
      self,
      directory: str | os.PathLike,
      *,
      keep: int = 3,
      async_save: bool = True,
      read_only: bool = False,
  ):
    """Opens (creating if missing) a checkpoints directory.

    Args:
      directory: `<workdir>/checkpoints`.
      keep: number of most recent steps to keep (>= 1); older ones are
        deleted after each save.
      async_save: write in a background thread; `save` returns once the
        arrays are copied to host memory.
      read_only: for readers (evaluation, sampling): nothing in the
        directory is ever created, renamed or deleted (an unreadable newest
        step is skipped, not moved aside), and `save` raises.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
      raise ValueError(
          f"keep must be an integer >= 1 (the number of checkpoints to keep), "
          f"got {keep!r}."
      )
    _quiet_orbax()
    self._directory = pathlib.Path(directory).absolute()
    if self._directory.exists() and not self._directory.is_dir():
      raise NotADirectoryError(
          f"Checkpoint directory {self._directory} exists and is a file; "
          "pass a directory path (normally <workdir>/checkpoints)."
      )
    self._read_only = read_only
    if read_only and not self._directory.is_dir():
      raise CheckpointError(
          f"No checkpoints directory at {self._directory}. Point to the "
          "workdir of a run that saved a checkpoint."
      )
    if jax.process_index() == 0 and not read_only:
      self._directory.mkdir(parents=True, exist_ok=True)
    self._manager = _make_manager(
        self._directory,
        keep=keep,
        async_save=async_save,
        create=not read_only,
    )
    self._tmp_cleaned = False
    self._closed = False
    self._failed: CheckpointError | None = None
    self._pending_step: int | None = None

  @property
  def directory(self) -> pathlib.Path:
    return self._directory

  def _check_open(self) -> None:
    if self._closed:
      raise RuntimeError(
          f"Checkpointer for {self._directory} is closed; create a new one."
      )

  def _save_failed(self, step: int, err: BaseException) -> CheckpointError:
    """Records a failed save; every later save/wait raises the same error."""
    if self._failed is None:
      done = [s for s in self.all_steps() if s != step]
      self._failed = CheckpointError(
          f"Saving checkpoint step {step} in {self._directory} failed "
          f"({_short(err)}). "
          + (
              f"The last complete checkpoint is step {done[-1]}"
              if done
              else "No checkpoint was completed"
          )
          + f". {_save_hint(err)}, then rerun the same command to resume."
      )
    return self._failed

  def check(self) -> None:
    """Raises CheckpointError if an earlier (async) save has failed.

    Cheap; the trainer calls it at every log step so that a failed
    background save stops the run at once, not at the next save.
    """
    if self._failed is not None:
      raise self._failed
    try:
      self._manager.check_for_errors()
    except Exception as e:
      raise self._save_failed(self._pending_step, e) from e

  def _remove_stale_tmp_dirs(self) -> None:
    # Saves killed mid-write leave `<step>.orbax-checkpoint-tmp`; orbax never
    # reads them. This writer owns the directory, so remove them now.
    if self._tmp_cleaned:
      return
    self._tmp_cleaned = True
    if jax.process_index() != 0:
      return
    for path in self._directory.iterdir():
      if _ORBAX_TMP_MARK in path.name:
        logging.info("Removing unfinished checkpoint %s", path)
        shutil.rmtree(path, ignore_errors=True)

  def save(self, step: int, state: Any) -> None:
    """Saves `state` as step `step` (atomically; async if so configured).

    A step that is already saved is left as it is (no error). Older steps
    beyond `keep` are deleted once the save completes.

    Args:
      step: the step number (>= 0), normally `state['step']`.
      state: a pytree of arrays (the layout in the module docstring).
    """
    self._check_open()
    if self._read_only:
      raise RuntimeError(
          f"Checkpointer for {self._directory} is read-only; cannot save."
      )
    step = int(step)
    if step < 0:
      raise ValueError(f"step must be >= 0, got {step}.")
    if step in self._manager.all_steps():
      logging.info("Checkpoint step %d already exists; not saving it.", step)
      return
    _check_no_prng_keys(state, "state")
    self._remove_stale_tmp_dirs()
    custom = {
        _META_KEY: {
            "format_version": _FORMAT_VERSION,
            "fingerprints": _fingerprints(state),
        }
    }
    # orbax waits for the previous async save first anyway; waiting here
    # attributes a failure of that save to its own step.
    self.wait()
    self._pending_step = step
    try:
      self._manager.save(
          step,
          args=ocp.args.PyTreeSave(state),
          force=True,
          custom_metadata=custom,
      )
    except ocp.checkpoint_manager.StepAlreadyExistsError:
      logging.info("Checkpoint step %d already exists; not saving it.", step)
    except Exception as e:
      raise self._save_failed(step, e) from e

  def wait(self) -> None:
    """Blocks until pending async saves (and deletions) are finished.

    Raises:
      CheckpointError: a save failed (read-only or full disk, ...).
    """
    if self._failed is not None:
      raise self._failed
    try:
      self._manager.wait_until_finished()
    except Exception as e:
      raise self._save_failed(self._pending_step, e) from e

  def all_steps(self) -> list[int]:
    """Saved steps, ascending (including one whose async save is pending)."""
    return sorted(int(s) for s in self._manager.all_steps())

  def latest_step(self) -> int | None:
    steps = self.all_steps()
    return steps[-1] if steps else None

  def restore(
      self, abstract_state: Any, step: int | None = None
  ) -> tuple[int, Any]:
    """Restores a step into the shardings of `abstract_state`.

    Args:
      abstract_state: the saved structure with jax.ShapeDtypeStruct leaves
        (or arrays), each with `.sharding` set; arrays are placed there, so
        a checkpoint from any device count restores on this machine.
      step: the step to restore; None = the newest readable one, falling back
        from unreadable steps (with a CheckpointWarning) to older ones.

    Returns:
      (step, state) with state shaped like `abstract_state`.

    Raises:
      CheckpointError: the step is missing or unreadable, no step is
        readable, or the checkpoint does not match `abstract_state` (the
        config changed since it was written).
    """
    self._check_open()
    abstract = _as_abstract(abstract_state)
    self.wait()
    return _restore_with_fallback(
        self._manager,
        self._directory,
        abstract,
        None if step is None else int(step),
        subtree=None,
        quarantine=not self._read_only,
    )

  def close(self) -> None:
    """Waits for pending saves, then releases orbax's resources. Idempotent.

    After a failed save this does not raise (the error was raised where it
    happened); it only releases what it can.
    """
    if self._closed:
      return
    self._closed = True
    try:
      self._manager.close()
    except Exception as e:
      if self._failed is None:
        raise self._save_failed(self._pending_step, e) from e

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def _resolve_checkpoints(path: pathlib.Path) -> tuple[pathlib.Path, int | None]:
  """(checkpoints directory, step or None) for a workdir, dir or step dir."""
  if path.is_dir() and path.name.isdigit() and (path / _ITEM).is_dir():
    return path.parent, int(path.name)
  if (path / "checkpoints").is_dir():
    return path / "checkpoints", None
  if path.is_dir():
    return path, None
  raise CheckpointError(
      f"init_from path {path} does not exist. Pass the workdir of an earlier "
      "run, its checkpoints/ directory, or one checkpoints/<step>/ directory."
  )


def restore_params(
    path_or_workdir: str | os.PathLike, abstract_params: Any
) -> Any:
  """Loads only the params of another run's checkpoint (for `init_from`).

  Reads the 'params' entry of the saved dict (see the module docstring) and
  nothing else, so the other run's optimizer or model state may differ. The
  other run's directory is never modified.

  Args:
    path_or_workdir: a run's workdir, its `checkpoints/` directory (newest
      readable step), or a `checkpoints/<step>/` directory (that step).
    abstract_params: the current model's params as jax.ShapeDtypeStruct
      leaves (or arrays) with `.sharding` set.

  Returns:
    The params, shaped and sharded like `abstract_params`.

  Raises:
    CheckpointError: nothing readable there, or its params do not match
      `abstract_params` (a different model config).
  """
  _quiet_orbax()
  directory, step = _resolve_checkpoints(
      pathlib.Path(path_or_workdir).absolute()
  )
  abstract = {"params": _as_abstract(abstract_params)}
  manager = _make_manager(directory, keep=None, async_save=False, create=False)
  try:
    got, restored = _restore_with_fallback(
        manager, directory, abstract, step, subtree="params", quarantine=False
    )
  finally:
    manager.close()
  logging.info("Loaded params from %s", _step_dir(directory, got))
  return restored["params"]
