"""Algebras from .npy/.json files, and algebra records."""

import json

import numpy as np
import pytest

from algebranets import algebra_files, algebras


def split_complex() -> np.ndarray:
  # (a + b j)(c + d j) = (ac + bd) + (ad + bc) j, j^2 = +1.
  c = np.zeros((2, 2, 2))
  c[0, 0, 0] = c[1, 1, 0] = 1
  c[0, 1, 1] = c[1, 0, 1] = 1
  return c


@pytest.fixture(autouse=True)
def _scratch_names():
  """Algebras a test registers are removed afterwards (global registry)."""
  before = set(algebras.names())
  yield
  for name in set(algebras.names()) - before:
    del algebras._REGISTRY[name]


@pytest.fixture
def npy(tmp_path):
  path = tmp_path / "split_complex.npy"
  np.save(path, split_complex())
  return path


def test_npy_file_algebra_multiplies_like_split_complex(npy):
  alg = algebra_files.resolve(npy)
  assert alg.name in algebras.names()
  a, b = np.array([2.0, 3.0]), np.array([5.0, -7.0])
  # Independent reference: the split-complex product written out.
  want = [2 * 5 + 3 * -7, 2 * -7 + 3 * 5]
  np.testing.assert_array_equal(alg.multiply(a, b), want)
  assert alg.unit.tolist() == [1.0, 0.0]


def test_file_algebra_name_is_stem_and_fingerprint(npy):
  alg = algebra_files.from_file(npy)
  fp = algebras.fingerprint(alg)
  assert alg.name == f"split_complex@{fp[:8]}"
  # Same constants, other file: same name; edited constants: another name.
  assert algebra_files.from_file(npy).name == alg.name
  c = split_complex()
  c[1, 1, 0] = -1  # the complex numbers
  np.save(npy, c)
  other = algebra_files.from_file(npy)
  assert other.name != alg.name
  assert other.name.split("@")[1] == algebras.fingerprint("C")[:8]


def test_json_file_as_list_and_as_object(tmp_path):
  listed = tmp_path / "split.json"
  listed.write_text(json.dumps(split_complex().tolist()))
  obj = tmp_path / "record.json"
  obj.write_text(
      json.dumps(
          {"name": "mine@0000", "structure_constants": split_complex().tolist()}
      )
  )
  a, b = algebra_files.from_file(listed), algebra_files.from_file(obj)
  np.testing.assert_array_equal(a.structure_constants, split_complex())
  np.testing.assert_array_equal(b.structure_constants, split_complex())
  assert a.name.startswith("split@")
  # An object's "name" is the base (its old fingerprint suffix dropped).
  assert b.name == "mine@" + a.name.split("@")[1]


def test_fingerprint_ignores_negative_zero():
  c = split_complex()
  c[0, 0, 1] = -0.0
  same = algebras.from_structure_constants("z", c)
  assert algebras.fingerprint(same) == algebras.fingerprint(
      algebras.from_structure_constants("z2", split_complex())
  )


@pytest.mark.parametrize(
    "write, message",
    [
        (
            lambda p: np.save(p, np.zeros((2, 2))),
            r"shape \(2, 2\).*\[d, d, d\]",
        ),
        (lambda p: np.save(p, np.zeros((2, 3, 2))), r"shape \(2, 3, 2\)"),
        (lambda p: np.save(p, np.zeros((2, 2, 2))), "all-zero"),
        (
            lambda p: np.save(p, np.full((1, 1, 1), np.nan)),
            "non-finite",
        ),
        (lambda p: p.write_bytes(b"garbage"), "not readable as a numeric"),
        (
            lambda p: np.save(p, np.array([{"a": 1}], dtype=object)),
            "not readable as a numeric",
        ),
    ],
)
def test_malformed_npy_is_one_line_naming_the_file(tmp_path, write, message):
  path = tmp_path / "bad.npy"
  write(path)
  with pytest.raises(algebra_files.AlgebraFileError, match=message) as e:
    algebra_files.resolve(path)
  assert str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not readable as a numeric"),
        ('{"constants": [[[1]]]}', "no 'structure_constants' key"),
        ("[[[1, 0], [0]], [[0, 1], [1, 0]]]", "not readable as a numeric"),
        ('[[["a"]]]', "not readable as a numeric"),
        ("[1, 2]", r"shape \(2,\)"),
    ],
)
def test_malformed_json_is_one_line_naming_the_file(tmp_path, text, message):
  path = tmp_path / "bad.json"
  path.write_text(text)
  with pytest.raises(algebra_files.AlgebraFileError, match=message) as e:
    algebra_files.resolve(path)
  assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_missing_file_and_names(tmp_path):
  with pytest.raises(algebra_files.AlgebraFileError, match=r"not found.*M2R"):
    algebra_files.resolve(tmp_path / "nope.npy")
  assert algebra_files.resolve("H") is algebras.get("H")
  with pytest.raises(ValueError, match=r"Unknown algebra 'Q'.*npy/.json"):
    algebra_files.resolve("Q")
  assert not algebra_files.is_path("M2R")
  assert algebra_files.is_path("x/Y.NPY")


@pytest.mark.parametrize("name", ["H", "M2C", "cross"])
def test_record_round_trips_exactly(name):
  alg = algebras.get(name)
  record = json.loads(json.dumps(algebra_files.to_record(alg)))
  assert algebra_files.restore(record) is alg  # same name, same constants
  rebuilt = algebra_files._from_record(record, "test")
  assert rebuilt == alg  # constants, name and matrix structure
  assert algebras.fingerprint(rebuilt) == record["fingerprint"]


def test_restore_registers_an_unknown_recorded_algebra():
  alg = algebras.from_structure_constants("rec_test@1", split_complex())
  record = json.loads(json.dumps(algebra_files.to_record(alg)))
  assert "rec_test@1" not in algebras.names()
  assert algebra_files.restore(record).name == "rec_test@1"
  assert algebras.fingerprint("rec_test@1") == record["fingerprint"]


def test_restore_refuses_edited_record_and_redefined_name():
  record = algebra_files.to_record("C")
  edited = dict(record, structure_constants=split_complex().tolist())
  with pytest.raises(algebra_files.AlgebraFileError, match="was edited"):
    algebra_files.restore(edited, where="wd/algebra.json")
  # A consistent record whose name is registered with other constants.
  imposter = algebra_files.to_record(
      algebras.from_structure_constants("C", split_complex())
  )
  with pytest.raises(
      algebra_files.AlgebraFileError, match="'C' is registered here"
  ):
    algebra_files.restore(imposter, where="wd/algebra.json")
