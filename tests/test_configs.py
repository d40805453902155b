"""Every config file in configs/ builds and runs one step in runlocal form."""

import pathlib

import pytest

from algebranets.training import config_lib, trainer
from tests.imagenet_fixture import tiny_imagenet  # noqa: F401

CONFIGS = sorted(
    p
    for p in (pathlib.Path(__file__).parents[1] / "configs").glob("*.py")
    if not p.name.startswith("_")
)


def test_there_are_configs():
  assert any(p.name == "quickstart.py" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_runs_one_step_runlocal(
    path, tiny_corpus, tiny_wikitext, tmp_path, request
):
  module = config_lib.load_config_file(str(path))
  assert module.__doc__ and "python -m experiments.train" in module.__doc__
  config = module.get_config("runlocal")
  assert config.train.num_steps <= 200, "runlocal must be a short CPU run"
  config_lib.validate(config, num_devices=1, check_data=False)
  # Local generated data instead of the embedded samples.
  if config.task == "image_classification":
    if config.data.name == "fashion_mnist":
      from tests.test_fashion_mnist import write_dataset

      write_dataset(tmp_path / "fashion", n_train=60, n_test=20)
      config.data.path = str(tmp_path / "fashion")
      config.data.valid_examples = 20
    else:  # imagenet2012: the tiny generated dataset, real TFDS builder
      config.data.data_dir = str(request.getfixturevalue("tiny_imagenet"))
      config.data.manual_dir = ""
    config.eval.batch_size = 8
  elif config.task == "byte_lm":
    config.data.name = "bytes_file"
    config.data.path = str(tiny_corpus)
    config.data.seq_len = min(config.data.seq_len, 32)
    config.eval.batch_size = 8
  elif config.task == "teacher_student":
    # Synthetic data, nothing to replace; smaller held-out sets.
    config.data.valid_examples = config.data.test_examples = 100
    config.eval.batch_size = 50
  elif config.data.name in ("wikitext103", "wikitext_sample"):
    config.data.name = "wikitext_sample"
    config.data.path = str(tiny_wikitext)
    config.data.tgt_len = config.data.eval_tgt_len = 16
    config.eval.batch_size = 4
  else:
    config.data.name = "enwiki_sample"
    config.data.path = str(tiny_corpus)
    config.data.tgt_len = config.data.eval_tgt_len = 16
    config.eval.batch_size = 8
  config.train.num_steps = 1
  config.optimizer.warmup_steps = 0
  if config.optimizer.schedule == "step":
    # Three decay boundaries cannot be distinct within one step; the
    # schedule itself is tested in tests/test_optimizers.py.
    config.optimizer.schedule = "constant"
  config.eval.every_steps = 0
  final = trainer.train_and_evaluate(config, tmp_path)
  assert all(isinstance(v, float) for v in final.values())
