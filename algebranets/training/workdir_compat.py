"""What a workdir's checkpoints were trained with, and refusing anything else.

A training run records, in its workdir, after the checkpoint check passed
and before its first step (process 0 only):

  algebra.json  the algebra's record (`algebra_files.to_record`: name,
                fingerprint, [d, d, d] constants, ...). It is itself a valid
                algebra file: `--config.model.algebra=<workdir>/algebra.json`.
  model.json    {"task": ..., "model": {...}}: the model the checkpoints hold.
  config.json   the full config of the latest run.

Nothing is written before `check_resume` has passed, so a refused rerun
leaves the workdir exactly as it was (it still evaluates and resumes).

The compatibility rule. A workdir holding checkpoints only resumes (train)
or evaluates (eval, sample) with the same `task`, the same model section
and, where `algebra.json` exists, an algebra with the recorded fingerprint.
Keys that may differ (`MUTABLE_MODEL_KEYS`, and every key starting with
`eval_`) select an implementation or an evaluation-time setting, never the
function the parameters compute: `kernel_path` and `layout` run the same
product (tested equal to float32 tolerance), `eval_mem_len` etc. only change
how an evaluation is run. Workdirs written before algebra.json/model.json
existed are checked against their config.json, the algebra by name; keys
that only one side has (added or renamed since) are not compared.
To continue from a checkpoint with a different model, use a new workdir and
`train.init_from=<old workdir>` (parameters only; shapes must match).

Entry points that read a workdir (experiments.eval, scripts.sample) call
`restore` through `evaluator.load_config`: it registers the recorded algebra
(so a file algebra evaluates after its file is gone, or on another machine)
and checks config.json against the records.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
from typing import Any

import ml_collections

from algebranets import algebra_files, algebras
from algebranets.training import checkpointing, config_lib

ALGEBRA_FILE = "algebra.json"
MODEL_FILE = "model.json"
CONFIG_FILE = "config.json"
# trainer.CHECKPOINT_DIR (the trainer imports this module, not vice versa).
CHECKPOINT_DIR = "checkpoints"
MUTABLE_MODEL_KEYS = ("kernel_path", "layout")
MUTABLE_MODEL_PREFIX = "eval_"


def is_mutable(key: str) -> bool:
  """True for model keys that may change between runs of one workdir."""
  return key in MUTABLE_MODEL_KEYS or key.startswith(MUTABLE_MODEL_PREFIX)


def has_checkpoints(workdir: str | os.PathLike) -> bool:
  """True if `workdir/checkpoints` holds a step directory (readable or not:
  a damaged step falls back to older steps of the same model)."""
  root = pathlib.Path(workdir) / CHECKPOINT_DIR
  if not root.is_dir():
    return False
  return any(p.name.isdigit() and p.is_dir() for p in root.iterdir())


def _read_json(path: pathlib.Path, error=checkpointing.CheckpointError):
  try:
    return json.loads(path.read_text(encoding="utf-8"))
  except (OSError, ValueError) as e:
    raise error(
        f"{path} is unreadable or not valid JSON ({e}); restore it from a "
        "backup or delete it to skip this check."
    ) from None


def _write_json(path: pathlib.Path, obj: Any, *, flat: bool = False) -> None:
  """Atomic (tmp + rename): a crash never leaves half a record.

  `flat`: one line per top-level key, so [d, d, d] constants do not become
  d^3 lines.
  """
  if flat:
    text = (
        "{\n"
        + ",\n".join(
            f"  {json.dumps(k)}: {json.dumps(obj[k], sort_keys=True)}"
            for k in sorted(obj)
        )
        + "\n}"
    )
  else:
    text = json.dumps(obj, indent=2, sort_keys=True)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(text + "\n")
  os.replace(tmp, path)


def _plain(section: Any) -> dict[str, Any]:
  """A config section as plain JSON values (tuples -> lists)."""
  if isinstance(section, ml_collections.ConfigDict):
    section = section.to_dict()
  return json.loads(json.dumps(dict(section)))


def resolve_algebra(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike | None = None
) -> ml_collections.ConfigDict:
  """`config` with a file path in `model.algebra` replaced by its name.

  The file's algebra is registered (`algebra_files.resolve`). A name that is
  not registered but is the one recorded in `workdir/algebra.json` is
  registered from the record, and so is a path that no longer exists whose
  stem is the recorded name's base (rerunning the same command resumes after
  the file was deleted or on another machine).

  Returns:
    `config` itself if nothing changed, else a copy.

  Raises:
    config_lib.ConfigError: a bad algebra file.
    checkpointing.CheckpointError: the workdir's record does not restore.
  """
  model = config.get("model")
  value = model.get("algebra") if model is not None else None
  if not isinstance(value, str):
    return config
  record_path = pathlib.Path(workdir or "") / ALGEBRA_FILE
  record = {}
  if workdir is not None and record_path.is_file():
    record = _read_json(record_path)
    if not isinstance(record, dict):
      raise checkpointing.CheckpointError(
          f"{record_path} is not an algebra record (a JSON object); restore "
          "it from a backup or delete it to skip this check."
      )
  recorded_name = str(record.get("name", ""))

  def from_record():
    try:
      return algebra_files.restore(record, where=str(record_path))
    except algebra_files.AlgebraFileError as e:
      raise checkpointing.CheckpointError(str(e)) from None

  if algebra_files.is_path(value):
    file = pathlib.Path(value)
    if not file.exists() and recorded_name.split("@")[0] == file.stem:
      name = from_record().name
    else:
      try:
        name = algebra_files.resolve(file).name
      except algebra_files.AlgebraFileError as e:
        raise config_lib.ConfigError(f"config.model.algebra: {e}") from None
  elif value not in algebras.names() and recorded_name == value:
    name = from_record().name
  else:
    return config  # a registered (or misspelled) name: validation decides
  if name == value:
    return config
  config = copy.deepcopy(config)
  config.model.algebra = name
  return config


def _recorded_model(workdir: pathlib.Path) -> tuple[dict, pathlib.Path] | None:
  """(the {"task", "model"} the checkpoints hold, the file it came from)."""
  for name in (MODEL_FILE, CONFIG_FILE):
    path = workdir / name
    if path.is_file():
      obj = _read_json(path)
      if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise checkpointing.CheckpointError(
            f"{path} has no 'model' section; restore it from a backup."
        )
      return {"task": obj.get("task"), "model": obj["model"]}, path
  return None


def differences(recorded: dict[str, Any], task: str, model: Any) -> list[str]:
  """'key: recorded -> now' for every difference that matters (see module).

  Args:
    recorded: {"task": ..., "model": {...}} of the checkpoints.
    task: the task of this run.
    model: the model section of this run.
  """
  out = []
  if recorded.get("task") is not None and recorded["task"] != task:
    out.append(f"task: {recorded['task']!r} -> {task!r}")
  old, new = _plain(recorded["model"]), _plain(model)
  for key in sorted(old.keys() & new.keys()):
    if not is_mutable(key) and old[key] != new[key]:
      out.append(f"model.{key}: {old[key]!r} -> {new[key]!r}")
  return out


def _algebra_difference(workdir: pathlib.Path, model: Any) -> str | None:
  """The fingerprint difference, or None (also without a record)."""
  path = workdir / ALGEBRA_FILE
  name = model.get("algebra")
  if not path.is_file() or not isinstance(name, str):
    return None
  record = _read_json(path)
  if not isinstance(record, dict):
    return f"{path.name}: not an algebra record (a JSON object)"
  try:
    now = algebras.fingerprint(name)
  except ValueError:
    return None  # unknown name: config validation reports it
  if record.get("fingerprint") != now:
    return (
        f"algebra constants: fingerprint {record.get('fingerprint')} "
        f"({record.get('name')!r}) -> {now} ({name!r})"
    )
  return None


def check_resume(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike
) -> None:
  """Refuses to train `config` on checkpoints of a different model.

  Call with the algebra resolved (`resolve_algebra`) and before anything is
  written to `workdir`. A workdir without checkpoints accepts any config.

  Raises:
    checkpointing.CheckpointError: naming every key that differs.
  """
  workdir = pathlib.Path(workdir)
  if not has_checkpoints(workdir):
    return
  found = _recorded_model(workdir)
  if found is None:
    return  # nothing recorded: the restore still checks every shape
  recorded, path = found
  diffs = differences(recorded, config.task, config.model)
  algebra = _algebra_difference(workdir, config.model)
  if algebra and not any(d.startswith("model.algebra:") for d in diffs):
    diffs.append(algebra)
  if diffs:
    raise checkpointing.CheckpointError(
        f"{workdir} holds checkpoints of a different model ({path.name}): "
        f"{'; '.join(diffs)}. Rerun with the recorded values, or train in a "
        "new --workdir (train.init_from=<this workdir> starts from its "
        "parameters)."
    )


def record(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike
) -> None:
  """Writes algebra.json, model.json, then config.json (after the checks)."""
  workdir = pathlib.Path(workdir)
  name = config.model.get("algebra")
  if isinstance(name, str):
    _write_json(
        workdir / ALGEBRA_FILE, algebra_files.to_record(name), flat=True
    )
  _write_json(
      workdir / MODEL_FILE,
      {"task": config.task, "model": _plain(config.model)},
  )
  tmp = workdir / (CONFIG_FILE + ".tmp")
  tmp.write_text(config_lib.to_json(config) + "\n")
  os.replace(tmp, workdir / CONFIG_FILE)


def restore(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike
) -> None:
  """Registers the workdir's algebra and checks config.json against it.

  For readers of a workdir (eval, sampling); writes nothing.

  Raises:
    checkpointing.CheckpointError: an edited config.json (model keys or
      algebra that differ from model.json / algebra.json), an edited
      algebra.json, or a registered algebra of the recorded name with other
      constants.
  """
  workdir = pathlib.Path(workdir)
  path = workdir / ALGEBRA_FILE
  if path.is_file():
    try:
      algebra_files.restore(_read_json(path), where=str(path))
    except algebra_files.AlgebraFileError as e:
      raise checkpointing.CheckpointError(str(e)) from None
  if not (workdir / MODEL_FILE).is_file():
    return  # written before model.json existed: checked by name on resume
  recorded, _ = _recorded_model(workdir)
  diffs = differences(recorded, config.get("task"), config.model)
  algebra = _algebra_difference(workdir, config.model)
  if algebra and not any(d.startswith("model.algebra:") for d in diffs):
    diffs.append(algebra)
  if diffs:
    raise checkpointing.CheckpointError(
        f"{workdir / CONFIG_FILE} differs from the model its checkpoints "
        f"were trained with ({MODEL_FILE}): {'; '.join(diffs)}. Restore "
        f"those keys in {CONFIG_FILE} (only {', '.join(MUTABLE_MODEL_KEYS)} "
        f"and {MUTABLE_MODEL_PREFIX}* may change)."
    )
