"""Tests for config parsing and start-up validation."""

import ml_collections
import pytest

from algebranets.training import config_lib
from configs import byte_transformer
from tests import lm_helpers

ConfigError = config_lib.ConfigError


def _validate(config, num_devices=1, **kw):
  config_lib.validate(config, num_devices=num_devices, **kw)


def test_parse_arg_types_and_bare_flags():
  arg = config_lib.parse_arg(
      "algebra=H,runlocal,width=0.5,seed=3",
      algebra="M2R",
      runlocal=False,
      width=1.0,
      seed=0,
  )
  assert (arg.algebra, arg.runlocal, arg.width, arg.seed) == ("H", True, 0.5, 3)
  assert isinstance(arg.seed, int) and isinstance(arg.width, float)
  default = config_lib.parse_arg(None, algebra="M2R", runlocal=False)
  assert default.algebra == "M2R" and default.runlocal is False
  assert config_lib.parse_arg("runlocal=false", runlocal=True).runlocal is False


@pytest.mark.parametrize(
    "arg, message",
    [
        ("algebr=H", 'Did you mean "algebra"'),
        ("seed=abc", "expected int"),
        ("runlocal=maybe", "expected a boolean"),
        ("seed", "needs a value"),
    ],
)
def test_parse_arg_errors(arg, message):
  with pytest.raises(ConfigError, match=message):
    config_lib.parse_arg(arg, algebra="M2R", runlocal=False, seed=0)


def test_byte_transformer_config_is_valid_and_has_all_sections(tiny_corpus):
  config = lm_helpers.tiny_config(tiny_corpus)
  for section in config_lib.SECTIONS:
    assert section in config
  _validate(config)
  _validate(byte_transformer.get_config(None), check_data=False)


def test_config_args_combine_with_runlocal():
  config = byte_transformer.get_config("algebra=H,runlocal,width=0.5,seed=2")
  full = byte_transformer.get_config(None)
  assert config.model.algebra == "H" and config.model.width_multiplier == 0.5
  assert config.seed == 2
  assert config.train.num_steps < full.train.num_steps
  assert config.model.d_model < full.model.d_model
  assert config.train.batch_size < full.train.batch_size
  _validate(config, check_data=False)


def test_json_round_trip_keeps_tuples():
  config = byte_transformer.get_config("runlocal")
  back = config_lib.from_json(config_lib.to_json(config))
  assert back.data.split == config.data.split
  assert isinstance(back.data.split, tuple)
  assert back.to_dict() == config.to_dict()


def _bad(tiny_corpus, **overrides):
  return lm_helpers.tiny_config(tiny_corpus, **overrides)


def test_unknown_section_key_suggests(tiny_corpus):
  config = lm_helpers.tiny_config(tiny_corpus)
  config.train.num_step = 3
  with pytest.raises(
      ConfigError, match=r"'train.num_step'.*Did you mean \"num_steps\""
  ):
    _validate(config)


def test_unknown_top_level_key(tiny_corpus):
  config = lm_helpers.tiny_config(tiny_corpus)
  config.optimiser = ml_collections.ConfigDict()
  with pytest.raises(ConfigError, match=r'Did you mean "optimizer"'):
    _validate(config)


def test_missing_key(tiny_corpus):
  config = lm_helpers.tiny_config(tiny_corpus)
  del config.train["log_every"]
  with pytest.raises(ConfigError, match=r"'train\.log_every' missing"):
    _validate(config)


@pytest.mark.parametrize(
    "overrides, num_devices, message",
    [
        (
            {"train.batch_size": 12},
            8,
            r"train.batch_size \(12\) must be divisible by the number of "
            r"devices \(8\); use a multiple of 8, e.g. 16",
        ),
        ({"eval.batch_size": 4}, 8, r"eval.batch_size \(4\) must be divisible"),
        (
            {"model.d_model": 30},
            1,
            "not divisible by the dimension 4 of algebra M2R",
        ),
        ({"model.algebra": "Q"}, 1, "Unknown algebra"),
        ({"data.path": "/nonexistent/enwik8"}, 1, "is not a file"),
        ({"data.name": "enwik9"}, 1, "not a byte source"),
        ({"train.compute_dtype": "float16"}, 1, "train.compute_dtype"),
        ({"train.num_steps": 0}, 1, "train.num_steps must be an integer >= 1"),
        ({"train.init_from": "/nonexistent/run"}, 1, "does not exist"),
        ({"sparsity.method": "magnitude"}, 1, "unknown method .magnitude."),
        (
            {"sparsity.method": "none", "sparsity.target": 0.5},
            1,
            "needs a pruning method",
        ),
        ({"optimizer.name": "adamm"}, 1, "config.optimizer"),
        ({"eval.split": "dev"}, 1, "eval.split='dev'"),
        ({"data.split": (0.5, 0.5, 0.5)}, 1, "summing to 1"),
        ({"task": "byte_llm"}, 1, 'Did you mean "byte_lm"'),
        ({"model.name": "transformer"}, 1, "config.model.name"),
    ],
)
def test_inconsistent_values_fail_with_fix(
    tiny_corpus, overrides, num_devices, message
):
  config = lm_helpers.tiny_config(tiny_corpus, **overrides)
  with pytest.raises(ConfigError, match=message):
    _validate(config, num_devices=num_devices)


def test_bytes_file_needs_path(tiny_corpus):
  config = lm_helpers.tiny_config(tiny_corpus, **{"data.path": ""})
  with pytest.raises(ConfigError, match=r"needs data\.path"):
    _validate(config)
