"""Transformer-XL language modelling task: memory state, resume, protocol."""

import json
import shutil

import jax
import numpy as np
import pytest

from algebranets.tasks import stream_lm
from algebranets.training import checkpointing, config_lib, trainer
from algebranets.training.experiment import Experiment
from tests import lm_helpers


def _state(config, workdir):
  exp = Experiment(config)
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints")
  try:
    _, restored = ckpt.restore(exp.abstract_state().to_dict())
  finally:
    ckpt.close()
  return jax.device_get(restored)


@pytest.fixture(scope="module")
def txl_run(tiny_corpus, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("txl")
  config = lm_helpers.txl_config(tiny_corpus)
  final = trainer.train_and_evaluate(config, workdir)
  return config, workdir, final


def test_trains_and_reports_bits_per_byte(txl_run):
  _, workdir, final = txl_run
  assert set(final) == {"loss", "bits_per_byte"}
  assert final["bits_per_byte"] == pytest.approx(final["loss"] / np.log(2))
  rows = [
      json.loads(x)
      for x in (workdir / "metrics.jsonl").read_text().splitlines()
  ]
  train = [r["loss"] for r in rows if r["split"] == "train"]
  assert train[-1] < train[0]
  data = json.loads((workdir / "data.json").read_text())
  assert data["unit"] == "byte" and data["vocab_size"] <= 256


def test_memory_is_state_sharded_checkpointed_and_counted(txl_run):
  config, workdir, _ = txl_run
  state = _state(config, workdir)
  mems = state["model_state"]["~"]["mems"]
  m = config.model
  assert mems.shape == (m.num_layers, 8, m.mem_len, 16, 4)  # d_model 64, M2R
  assert np.abs(mems).sum() > 0
  assert int(state["model_state"]["~"]["mem_count"]) == m.mem_len
  exp = Experiment(config)
  sharding = exp.state_sharding.model_state["~"]["mems"]
  assert sharding.spec == jax.sharding.PartitionSpec(None, "data")


def test_resume_restores_memory_exactly(txl_run, tmp_path):
  config, workdir, _ = txl_run
  run = tmp_path / "run"
  shutil.copytree(workdir, run)
  shutil.rmtree(run / "checkpoints" / "12")  # killed after step 6
  trainer.train_and_evaluate(config, run)
  got, want = _state(config, run), _state(config, workdir)
  jax.tree.map(np.testing.assert_array_equal, got, want)


def test_epoch_start_resets_memory(tiny_corpus):
  config = lm_helpers.txl_config(tiny_corpus)
  task = Experiment(config).task
  n = task.corpus.splits["train"].size
  per_epoch = stream_lm.lm_streams.num_segments(n, 8, 16)
  assert task.train_batch(0)["reset"].tolist() == [1] * 8
  assert task.train_batch(1)["reset"].tolist() == [0] * 8
  assert task.train_batch(per_epoch)["reset"].tolist() == [1] * 8


def test_evaluation_starts_from_empty_memory(txl_run):
  config, workdir, _ = txl_run
  exp = Experiment(config)
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints")
  _, restored = ckpt.restore(exp.abstract_state().to_dict())
  ckpt.close()
  from algebranets.training.state import TrainState

  state = TrainState.from_dict(restored)
  fresh = exp.eval_model_state(state, batch_size=8)
  assert fresh["~"]["mems"].shape[2] == config.model.eval_mem_len
  assert float(np.abs(fresh["~"]["mems"]).sum()) == 0.0
  assert int(fresh["~"]["mem_count"]) == 0


def test_word_level_corpus_reports_perplexity(tiny_wikitext, tmp_path):
  from configs import wikitext103_transformer_xl

  config = wikitext103_transformer_xl.get_config("runlocal")
  lm_helpers.override(
      config,
      **{
          "data.name": "wikitext_sample",
          "data.path": str(tiny_wikitext),
          "data.tgt_len": 16,
          "data.eval_tgt_len": 16,
          "model.cutoffs": (10, 30),
          "train.num_steps": 4,
          "optimizer.warmup_steps": 0,
          "eval.every_steps": 0,
          "eval.batch_size": 4,
      },
  )
  final = trainer.train_and_evaluate(config, tmp_path)
  assert set(final) == {"loss", "perplexity"}
  assert final["perplexity"] == pytest.approx(np.exp(final["loss"]))


def test_unigram_bits_matches_hand_computation():
  tokens = np.array([0, 0, 1, 2], np.int32)
  p = np.array([3, 2, 2], float) / 7  # Laplace-smoothed counts (2,1,1)+1
  want = -np.mean(np.log2(p[tokens]))
  assert stream_lm.unigram_bits(tokens, 3) == pytest.approx(want)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model.name": "transformer_lm"}, "needs a model with recurrent"),
        ({"data.name": "enwik9"}, "not a corpus"),
        ({"data.name": "enwik8", "data.path": ""}, "needs data.path"),
        ({"data.tgt_len": 0}, "data.tgt_len must be an int >= 1"),
        ({"data.path": "/nonexistent/enwik8"}, "does not exist"),
    ],
)
def test_bad_config(tiny_corpus, overrides, message):
  config = lm_helpers.txl_config(tiny_corpus)
  if overrides.get("model.name") == "transformer_lm":
    # Swap the whole model section so only the task check can fail.
    config.model = config_lib.base_config("byte_lm", "transformer_lm").model
    overrides = {}
  lm_helpers.override(config, **overrides)
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(config, num_devices=1)


def test_sampler_generates_with_cached_memory(txl_run):
  from algebranets.training import sampling

  _, workdir, _ = txl_run
  sampler = sampling.Sampler(workdir)
  assert sampler.step == 12
  ids = sampler.encode("the city")
  assert sampler.decode(ids) == "the city"
  greedy = sampler.generate("the ", 12, temperature=0.0)
  again = sampler.generate("the ", 12, temperature=0.0)
  assert greedy.token_ids == again.token_ids and len(greedy.token_ids) == 12
  assert greedy.tokens_per_second > 0
  sampled = sampler.generate("the ", 12, temperature=1.0, top_k=5, seed=1)
  assert len(sampled.text.encode()) >= 1
  # One token at a time through the memory == one pass over the whole text.
  text_ids = ids + greedy.token_ids[:-1]
  full, _ = sampler._fwd(
      sampler.params,
      np.asarray([text_ids], np.int32),
      np.zeros(sampler._mem_shape, np.float32),
      np.int32(0),
  )
  assert int(np.argmax(full[0, -1])) == greedy.token_ids[-1]


def test_sampler_matches_the_reference_sampler_and_script(txl_run):
  import os
  import subprocess
  import sys

  from algebranets.training import sampling

  _, workdir, _ = txl_run
  sampler = sampling.Sampler(workdir)
  # Past the evaluation memory, so the decoder's rings wrap around.
  n = sampler.mem_len + 20
  new = sampler.generate("the ", n, temperature=0.0)
  ref, logps = sampler.reference_generate(
      "the ", n, temperature=0.0, forced=new.token_ids
  )
  assert ref.token_ids == new.token_ids
  top2 = np.sort(logps, axis=-1)[:, -2:]
  clear = top2[:, 1] - top2[:, 0] >= 1e-4
  assert clear.mean() > 0.8
  got = np.asarray(new.token_ids)
  np.testing.assert_array_equal(got[clear], logps.argmax(-1)[clear])
  out = subprocess.run(
      [
          sys.executable,
          "-m",
          "scripts.sample",
          f"--workdir={workdir}",
          "--num_tokens=5",
          "--prompt=the ",
      ],
      capture_output=True,
      text=True,
      check=True,
      env={**os.environ, "JAX_PLATFORMS": "cpu"},
  )
  assert "tokens/s after compile, batch 1" in out.stdout


def test_sampler_rejects_bad_input(txl_run, tiny_corpus, tmp_path):
  from algebranets.training import sampling

  _, workdir, _ = txl_run
  sampler = sampling.Sampler(workdir)
  with pytest.raises(ValueError, match="prompt is empty"):
    sampler.generate("", 3)
  with pytest.raises(ValueError, match="not in the vocabulary"):
    sampler.encode("\u00e9\u00e9")  # bytes absent from the tiny corpus
  byte_lm = lm_helpers.tiny_config(
      tiny_corpus, **{"train.num_steps": 1, "optimizer.warmup_steps": 0}
  )
  trainer.train_and_evaluate(byte_lm, tmp_path)
  with pytest.raises(ValueError, match="task 'stream_lm'"):
    sampling.Sampler(tmp_path)
