"""Tests for algebranets.config_access."""

import ml_collections
import pytest

from algebranets import config_access


def test_configdict_mapping_and_references():
  ref = ml_collections.FieldReference(3)
  cfg = ml_collections.ConfigDict({"a": ref, "b": "x"})
  assert config_access.as_dict(cfg, "cfg") == {"a": 3, "b": "x"}
  frozen = ml_collections.FrozenConfigDict({"a": 1})
  assert config_access.as_dict(frozen, "cfg") == {"a": 1}
  plain = {"a": 1}
  got = config_access.as_dict(plain, "cfg")
  assert got == plain and got is not plain


def test_bad_type_message():
  with pytest.raises(
      TypeError, match=r"The model config must be .* got list\. Use X"
  ):
    config_access.as_dict([1], "The model config", "Use X")


def test_with_defaults_fills_and_rejects_typos():
  got = config_access.with_defaults({"a": 5}, {"a": 1, "b": 2}, "m")
  assert got == {"a": 5, "b": 2}
  with pytest.raises(
      ValueError,
      match=r"m: unknown config key\(s\) 'bb' \(did you mean 'b'\?\)",
  ):
    config_access.with_defaults({"bb": 1}, {"a": 1, "b": 2}, "m")


def test_check_choice():
  config_access.check_choice("x", "kind", ("x", "y"), "m")
  with pytest.raises(
      ValueError,
      match=r"m: unknown kind 'yy'\. Did you mean 'y'\? Valid: x, y\.!",
  ):
    config_access.check_choice("yy", "kind", ("x", "y"), "m", "!")
