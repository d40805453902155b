"""User algebras from files, and algebra records that travel with a workdir.

`model.algebra` accepts a registered name or a path to a file holding the
[d, d, d] structure constants (e_i e_j = sum_k c[i, j, k] e_k):

  .npy   a float array of shape [d, d, d] (`np.save(path, c)`).
  .json  a nested list [d][d][d], or an object whose "structure_constants"
         holds one (so the `algebra.json` a training run records in its
         workdir is itself an algebra file).

A file algebra is registered as `<base>@<fingerprint[:8]>`, e.g.
`split_complex@3f0c1a2b`: `base` is the JSON object's "name" (up to any '@')
or else the file stem, and the suffix is the start of `algebras.fingerprint`
of the constants. Two different files with the same stem, or a file edited
between runs, therefore never share a name, and the same constants always get
the same name on every machine.

A *record* (`to_record` / `restore`) is the JSON-able description of an
algebra: name, dimension, fingerprint, constants (float64 values written as
JSON numbers, which round-trip exactly), conjugation and matrix structure.
`restore` registers a recorded algebra, or checks that the algebra already
registered under its name has the recorded constants.

Every user mistake raises `AlgebraFileError` (a ValueError) whose one-line
message names the file and says what to do.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Any

import numpy as np

from algebranets import algebras

FILE_SUFFIXES = (".npy", ".json")
# Characters kept in the base of a file algebra's name; others become '_'
# (the name is a label in logs, tables and plots, never a module name).
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_FINGERPRINT_CHARS = 8
_FIX = (
    "save a float array of shape [d, d, d] with e_i e_j = sum_k c[i, j, k] "
    "e_k (np.save(path, c), or JSON [[[...]]])"
)


class AlgebraFileError(ValueError):
  """An algebra file or record is missing, malformed or contradicts another."""


def is_path(value: Any) -> bool:
  """True if `value` names an algebra file (ends in .npy or .json) rather
  than a registered algebra."""
  return isinstance(value, (str, os.PathLike)) and str(value).lower().endswith(
      FILE_SUFFIXES
  )


def load_structure_constants(path: str | os.PathLike) -> np.ndarray:
  """The float64 [d, d, d] structure constants stored in `path`.

  Raises:
    AlgebraFileError: missing file, unknown suffix, unreadable content, or
      not a finite, non-zero [d, d, d] array.
  """
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix not in FILE_SUFFIXES:
    raise AlgebraFileError(
        f"Algebra file {str(path)!r}: unknown suffix {path.suffix!r}; use "
        f"{' or '.join(FILE_SUFFIXES)} and {_FIX}."
    )
  if not path.is_file():
    raise AlgebraFileError(
        f"Algebra file {str(path)!r} not found; give a registered algebra "
        f"({', '.join(algebras.names())}) or the path of an existing "
        ".npy/.json file of [d, d, d] structure constants."
    )
  try:
    if suffix == ".npy":
      raw = np.load(path, allow_pickle=False)
    else:
      raw = json.loads(path.read_text(encoding="utf-8"))
      if isinstance(raw, dict):
        if "structure_constants" not in raw:
          raise AlgebraFileError(
              f"Algebra file {str(path)!r}: the JSON object has no "
              f"'structure_constants' key (keys: {sorted(raw)}); {_FIX}."
          )
        raw = raw["structure_constants"]
    c = np.asarray(raw, dtype=np.float64)
  except AlgebraFileError:
    raise
  except (ValueError, TypeError, OSError, UnicodeDecodeError) as e:
    # np.load raises ValueError for pickles and garbage, json its subclass;
    # ragged nested lists fail in np.asarray.
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise AlgebraFileError(
        f"Algebra file {str(path)!r} is not readable as a numeric array "
        f"({reason}); {_FIX}."
    ) from None
  if c.ndim != 3 or not c.shape[0] == c.shape[1] == c.shape[2] or not c.size:
    raise AlgebraFileError(
        f"Algebra file {str(path)!r} holds an array of shape {c.shape}; "
        f"structure constants must have shape [d, d, d] with d >= 1: {_FIX}."
    )
  if not np.all(np.isfinite(c)):
    raise AlgebraFileError(
        f"Algebra file {str(path)!r} holds non-finite structure constants "
        "(NaN or Inf); every entry must be a finite number."
    )
  if not np.any(c):
    raise AlgebraFileError(
        f"Algebra file {str(path)!r} holds all-zero structure constants; "
        "set at least the nonzero products of the basis elements."
    )
  return c


def file_algebra_name(base: str, structure_constants: np.ndarray) -> str:
  """`<base>@<first 8 hex digits of the constants' fingerprint>`."""
  base = _NAME_UNSAFE.sub("_", base.split("@")[0]) or "algebra"
  fp = algebras.fingerprint(
      algebras.from_structure_constants(base, structure_constants)
  )
  return f"{base}@{fp[:_FINGERPRINT_CHARS]}"


def from_file(path: str | os.PathLike) -> algebras.Algebra:
  """The (unregistered) algebra stored in `path`, named as the module says.

  Raises:
    AlgebraFileError: see `load_structure_constants`.
  """
  path = pathlib.Path(path)
  c = load_structure_constants(path)
  base = path.stem
  if path.suffix.lower() == ".json":
    obj = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(obj, dict) and isinstance(obj.get("name"), str):
      base = obj["name"]
  return algebras.from_structure_constants(
      file_algebra_name(base, c), c, description=f"from {path}"
  )


def resolve(name_or_path: str | os.PathLike | algebras.Algebra):
  """The registered algebra for a name, an `Algebra`, or an algebra file.

  A file is loaded and registered under its file-algebra name (registering
  the same constants again is a no-op). Anything else goes to `algebras.get`
  (whose error lists the valid names).

  Raises:
    AlgebraFileError: a bad file.
    ValueError: an unknown name.
  """
  if is_path(name_or_path):
    return algebras.register(from_file(name_or_path))
  return algebras.get(name_or_path)


# -- records ------------------------------------------------------------------


def to_record(algebra: str | algebras.Algebra) -> dict[str, Any]:
  """A JSON-able description from which `restore` rebuilds `algebra`."""
  alg = algebras.get(algebra)
  record: dict[str, Any] = {
      "name": alg.name,
      "dim": alg.dim,
      "fingerprint": algebras.fingerprint(alg),
      "structure_constants": alg.structure_constants.tolist(),
      "conjugation": (
          None if alg.conjugation is None else alg.conjugation.tolist()
      ),
      "matrix_shape": None,
      "description": alg.description,
  }
  if alg.matrix_shape is not None:
    n, base = alg.matrix_shape
    # The base is needed to rebuild the fast path; record it alongside.
    record["matrix_shape"] = {"n": n, "base": to_record(base)}
  return record


def _from_record(record: dict[str, Any], where: str) -> algebras.Algebra:
  try:
    name = record["name"]
    c = np.asarray(record["structure_constants"], dtype=np.float64)
    conj = record.get("conjugation")
    alg = algebras.from_structure_constants(
        name,
        c,
        conjugation=None if conj is None else np.asarray(conj, np.float64),
        description=record.get("description", ""),
    )
  except (KeyError, TypeError, ValueError) as e:
    raise AlgebraFileError(
        f"{where}: not a valid algebra record ({e}); restore the file from a "
        "backup or rerun training in a fresh workdir."
    ) from None
  got = algebras.fingerprint(alg)
  if got != record.get("fingerprint"):
    raise AlgebraFileError(
        f"{where}: the constants of algebra {name!r} have fingerprint {got} "
        f"but the record says {record.get('fingerprint')!r}: the file was "
        "edited after it was written; restore it (the checkpoints were "
        "trained with the recorded fingerprint)."
    )
  shape = record.get("matrix_shape")
  if shape is not None:
    base = restore(shape["base"], where=where)
    alg = algebras.Algebra(
        name=alg.name,
        structure_constants=alg.structure_constants,
        conjugation=alg.conjugation,
        matrix_shape=(int(shape["n"]), base.name),
        description=alg.description,
    )
  return alg


def restore(record: dict[str, Any], *, where: str = "record"):
  """Registers the algebra of `record` and returns it.

  If its name is already registered, the registered algebra must have the
  recorded constants (a registered name that now means different constants
  would silently evaluate a checkpoint with the wrong product).

  Args:
    record: a `to_record` dict.
    where: what holds the record, for messages (e.g. the file path).

  Raises:
    AlgebraFileError: malformed record, constants that do not match its own
      fingerprint, or a registered algebra of that name with other constants.
  """
  alg = _from_record(record, where)
  if alg.name in algebras.names():
    have = algebras.get(alg.name)
    if algebras.fingerprint(have) != algebras.fingerprint(alg):
      raise AlgebraFileError(
          f"{where}: algebra {alg.name!r} was recorded with constants of "
          f"fingerprint {algebras.fingerprint(alg)}, but {alg.name!r} is "
          f"registered here with fingerprint {algebras.fingerprint(have)}; "
          "register the recorded constants under that name (or none) before "
          "loading this workdir."
      )
    return have
  return algebras.register(alg)
