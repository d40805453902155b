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
