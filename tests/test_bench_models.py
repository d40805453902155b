"""Tests of the model benchmark: an in-process smoke run of a tiny --quick
variant (JSON keys and self-consistency, no timing assertions), the
vision train step against a float64 reference and against the trainer's
step, width matching, the generated corpus, the derived numbers and the
argument checks."""

from __future__ import annotations

import json

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import metrics, models
from algebranets.training.experiment import Experiment
from bench import models as bench_models
from configs import _txl_common
from tests import test_steps
from tests.test_fashion_mnist import write_dataset

# ResNet-50 v1.5 cut to one stage of one bottleneck block (stem, max pool,
# block, head): the benchmark's model code path at a compile time that fits
# the test budget.
_TINY_RESNET = ("resnet.blocks_per_stage=(1,)", "resnet.stage_widths=(64,)")
_TINY_RESNET_OVERRIDES = (
    ("resnet", "blocks_per_stage", (1,)),
    ("resnet", "stage_widths", (64,)),
)
_ROW_KEYS = {
    "model",
    "algebra",
    "d",
    "width_multiplier",
    "matched_width",
    "width_source",
    "params",
    "params_real_io",
    "macs_per_example",
    "batch",
    "unit",
    "items_per_step",
    "compile_s",
    "ms_median",
    "ms_q25",
    "ms_q75",
    "ms_min",
    "ms_max",
    "n_samples",
    "inner",
    "flops_per_step",
    "per_s",
    "gflops",
    "mfu",
    "mfu_conv",
    "vs_R",
}
_SAMPLE_KEYS = {
    "algebra",
    "width_multiplier",
    "params",
    "tokens_per_s",
    "tokens_per_s_min",
    "tokens_per_s_max",
    "ms_per_token",
    "mem_len",
    "num_tokens",
    "prompt_tokens",
    "repeats",
}


# -- smoke run -----------------------------------------------------------------


def _tiny_quick_argv(models_, out):
  return [
      "--quick",
      f"--models={','.join(models_)}",
      "--algebras=R,M2R",
      "--image_size=16",
      "--width_scale=0.125",
      *(f"--override={o}" for o in _TINY_RESNET),
      "--override=transformer_xl.num_layers=1",
      "--repeats=2",
      "--warmup=1",
      "--min_sample_ms=0",
      "--ceiling_size=64",
      "--sample_tokens=4",
      "--sample_repeats=1",
      f"--out={out}",
  ]


def _check_run(models_, results, out, printed):
  assert "CPU:" in printed and "jaxlib" in printed
  assert "ceiling matmul (64x64 @ 64x64 float32)" in printed
  assert "| model | algebra | width x | params | MACs/example |" in printed
  assert "## Transformer-XL sampling" in printed
  assert "data pipeline" in printed and "NOT measured" in printed
  # The test suite runs with XLA optimisations off; the output says so.
  assert "not representative" in printed

  data = json.loads(out.read_text())
  assert data["rows"] == json.loads(json.dumps(results["rows"]))
  assert set(data) == {
      "machine",
      "config",
      "ceilings",
      "rows",
      "sampling",
      "notes",
      "wall_s",
  }
  assert {"cpu_model", "jax", "jaxlib", "device_kind", "backend"} <= set(
      data["machine"]
  )
  assert data["config"]["overrides"] == [
      "resnet.blocks_per_stage=(1,)",
      "resnet.stage_widths=(64,)",
      "transformer_xl.num_layers=1",
  ]
  assert set(data["ceilings"]) == {"matmul", "conv3x3"}
  mm = data["ceilings"]["matmul"]
  assert mm["flops"] == 2 * 64**3
  assert mm["gflops"] == pytest.approx(mm["flops"] / mm["ms_min"] / 1e6)

  rows = data["rows"]
  assert [(r["model"], r["algebra"]) for r in rows] == [
      (m, a) for m in models_ for a in ("R", "M2R")
  ]
  for r in rows:
    assert set(r) >= _ROW_KEYS, _ROW_KEYS - set(r)
    assert r["n_samples"] == 2
    sec = r["ms_median"] / 1e3
    assert r["flops_per_step"] == 6 * r["macs_per_example"] * r["batch"]
    assert r["per_s"] == pytest.approx(r["items_per_step"] / sec)
    assert r["gflops"] == pytest.approx(r["flops_per_step"] / sec / 1e9)
    assert r["mfu"] == pytest.approx(r["gflops"] / mm["gflops"])
    assert r["params"] > r["params_real_io"] > 0
    assert r["macs_per_example"] > 0
  by = {(r["model"], r["algebra"]): r for r in rows}
  for m in models_:
    assert by[m, "R"]["vs_R"] == 1.0
    assert by[m, "M2R"]["vs_R"] == pytest.approx(
        by[m, "M2R"]["ms_median"] / by[m, "R"]["ms_median"]
    )
  txl = by["transformer_xl", "M2R"]
  # runlocal sizes with the override; the matched width of the configs.
  assert (txl["num_layers"], txl["d_model"], txl["tgt_len"]) == (1, 64, 64)
  assert txl["width_multiplier"] == _txl_common.matched_width("M2R", 64, 2)
  assert txl["items_per_step"] == 8 * 64 and txl["unit"] == "tokens"
  assert txl["vocab_size"] == bench_models.CORPUS_SYMBOLS
  for m in models_:
    if m == "transformer_xl":
      continue
    r = by[m, "M2R"]
    assert r["unit"] == "images" and r["image_size"] == 16
    assert r["items_per_step"] == r["batch"] == 2
    assert r["width_multiplier"] == pytest.approx(r["matched_width"] * 0.125)
  if "resnet" in models_:
    source = by["resnet", "M2R"]["width_source"]
    assert source.startswith("computed (overridden architecture")

  samples = data["sampling"]
  assert [s["algebra"] for s in samples] == ["R", "M2R"]
  for s in samples:
    assert set(s) == _SAMPLE_KEYS
    assert s["tokens_per_s"] > 0 and s["mem_len"] == 128
    assert s["num_tokens"] == 4
    assert s["prompt_tokens"] == len(bench_models.SAMPLE_PROMPT)


def test_main_tiny_quick_run_writes_complete_json(tmp_path, capsys):
  models_ = ["resnet", "transformer_xl"]
  out = tmp_path / "results.json"
  results = bench_models.main(_tiny_quick_argv(models_, out))
  _check_run(models_, results, out, capsys.readouterr().out)


@pytest.mark.slow
def test_main_tiny_quick_run_every_model(tmp_path, capsys):
  out = tmp_path / "results.json"
  results = bench_models.main(_tiny_quick_argv(bench_models.MODELS, out))
  _check_run(bench_models.MODELS, results, out, capsys.readouterr().out)


# -- vision pieces -------------------------------------------------------------


def _tiny_vision_config(algebra="R", width=0.125):
  config = bench_models.vision_config(
      "resnet",
      algebra,
      width_multiplier=width,
      image_size=16,
      batch=2,
      overrides=_TINY_RESNET_OVERRIDES,
  )
  config.optimizer.warmup_steps = 0  # a non-zero learning rate at step 0
  config.optimizer.schedule = "constant"
  return config


def test_vision_config_applies_sizes_and_overrides():
  config = _tiny_vision_config("H", 0.3)
  assert config.model.name == "resnet" and config.model.algebra == "H"
  assert config.model.width_multiplier == 0.3
  assert tuple(config.model.blocks_per_stage) == (1,)
  assert tuple(config.model.stage_widths) == (64,)
  assert (config.data.image_size, config.train.batch_size) == (16, 2)
  # The ImageNet recipe is kept.
  assert config.optimizer.name == "sgd" and config.data.label_smoothing == 0.1


def test_vision_config_bad_override_names_it():
  with pytest.raises(
      ValueError,
      match=r"after --override resnet.depth=7: .*resnet: unknown depth",
  ):
    bench_models.vision_config(
        "resnet",
        "R",
        width_multiplier=1.0,
        image_size=16,
        batch=2,
        overrides=(("resnet", "depth", 7),),
    )


def test_vision_train_step_matches_float64_reference():
  config = _tiny_vision_config("C")
  init, step = bench_models.vision_train_fns(config)
  batch = bench_models.random_image_batch(jax.random.key(1), 2, 16)
  state = init(jax.random.key(0), batch)
  params0 = jax.tree.map(np.asarray, state.params)
  model_state0 = state.model_state

  def forward(images, is_training):
    net = models.build(config.model, num_classes=1000)
    return net(images, is_training=is_training)

  fwd = hk.transform_with_state(forward)

  @jax.jit
  def reference(params):
    def loss(p):
      logits = fwd.apply(p, model_state0, None, batch["images"], True)[0]
      return _smoothed_ce(logits, batch["labels"], 0.1), logits

    return jax.grad(loss, has_aux=True)(params)

  grads, logits = reference(state.params)
  grads = jax.tree.map(np.asarray, grads)

  new, m = step(state, batch)
  # Loss: label-smoothed cross entropy in float64 from the same logits.
  z = np.asarray(logits, np.float64)
  logp = z - z.max(-1, keepdims=True)
  logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
  labels = np.asarray(batch["labels"])
  ce = -logp[np.arange(2), labels]
  want = np.mean(0.9 * ce - 0.1 * logp.mean(-1))
  np.testing.assert_allclose(float(m["loss"]), want, rtol=1e-5)
  np.testing.assert_allclose(float(m["loss_sum"]), ce.sum(), rtol=1e-5)
  assert float(m["count"]) == 2.0 and int(new.step) == 1
  # One SGD step: Nesterov momentum 0.9 makes the first update 1.9 x the
  # (L2-decayed, only 'w') gradient, times the learning rate.
  lr = config.optimizer.learning_rate
  wd = config.optimizer.weight_decay
  flat_new = dict(jax.tree_util.tree_leaves_with_path(new.params))
  for path, p0 in jax.tree_util.tree_leaves_with_path(params0):
    g = _get(grads, path)
    if jax.tree_util.keystr(path).endswith("['w']"):
      g = g + wd * p0
    np.testing.assert_allclose(
        np.asarray(flat_new[path]), p0 - lr * 1.9 * g, rtol=1e-4, atol=1e-6
    )
  # BatchNorm statistics moved (training mode).
  assert not all(
      np.array_equal(a, b)
      for a, b in zip(
          jax.tree.leaves(model_state0),
          jax.tree.leaves(new.model_state),
          strict=True,
      )
  )


def test_vision_train_step_is_the_trainers(tmp_path):
  # The benchmark's step, built without data, against the trainer's
  # `Experiment` of the same config on Fashion-MNIST-shaped files: same
  # initial state (tree paths included), same metrics and state bit for bit.
  write_dataset(tmp_path, n_train=40, n_test=10, seed=5)
  config = test_steps.vision_config(tmp_path, "runlocal,algebra=C")
  exp = Experiment(config)
  init, step = bench_models.vision_train_fns(config, num_classes=10)
  batch = bench_models.random_image_batch(jax.random.key(3), 4, 28)
  batch["images"] = batch["images"][..., :1]  # grey images
  batch["labels"] = batch["labels"] % 10
  ours = init(jax.random.key(config.seed), batch)
  theirs = exp.init()
  jax.tree.map(np.testing.assert_array_equal, ours, theirs)
  ours, metrics_ours = step(ours, batch)
  theirs, metrics_theirs = exp.train_step(theirs, exp.to_device(batch))
  jax.tree.map(np.testing.assert_array_equal, metrics_ours, metrics_theirs)
  jax.tree.map(np.testing.assert_array_equal, ours, theirs)
  assert jax.tree.structure(ours) == jax.tree.structure(theirs)


def _smoothed_ce(logits, labels, a):
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  ce = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
  return jnp.mean((1 - a) * ce - a * jnp.mean(logp, axis=-1))


def _get(tree, path):
  for k in path:
    tree = tree[k.key]
  return tree


def test_random_image_batch():
  b = bench_models.random_image_batch(jax.random.key(0), 3, 8)
  assert b["images"].shape == (3, 8, 8, 3) and b["images"].dtype == jnp.float32
  assert b["labels"].shape == (3,) and b["labels"].dtype == jnp.int32
  assert int(b["labels"].min()) >= 0 and int(b["labels"].max()) < 1000


def test_vision_width_none_reference_and_stored():
  assert bench_models.vision_width("resnet", "H", "none") == (1.0, "match=none")
  assert bench_models.vision_width("resnet", "R", "params")[0] == 1.0
  from configs import _vision_widths

  w, source = bench_models.vision_width("resnet", "H", "params")
  assert w == _vision_widths.MATCHED["resnet50"]["params"]["H"]
  assert source.startswith("stored")
  with pytest.raises(ValueError, match="match='flops'; use one of"):
    bench_models.vision_width("resnet", "H", "flops")


def test_stored_width_missing_entry_is_none(monkeypatch):
  from configs import _vision_widths

  table = {
      model: {t: dict(by) for t, by in targets.items()}
      for model, targets in _vision_widths.MATCHED.items()
  }
  del table["resnet50"]["params"]["H"]
  monkeypatch.setattr(_vision_widths, "MATCHED", table)
  assert bench_models._stored_width("resnet", "H", "params") is None
  assert bench_models._stored_width("resnet", "M2R", "params") > 1


def test_vision_width_computed_on_overridden_architecture():
  w, source = bench_models.vision_width(
      "resnet", "H", "params", _TINY_RESNET_OVERRIDES
  )
  assert source.startswith("computed (overridden architecture; params")

  def params_at(algebra, width):
    config = bench_models.vision_config(
        "resnet",
        algebra,
        width_multiplier=width,
        image_size=32,
        batch=1,
        overrides=_TINY_RESNET_OVERRIDES,
    )

    def fn(x):
      net = models.build(config.model, num_classes=1000)
      return net(x, is_training=True)

    shapes, _ = jax.eval_shape(
        hk.transform_with_state(fn).init,
        jax.random.key(0),
        jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32),
    )
    return metrics.count_params(shapes)

  ref = params_at("R", 1.0)
  assert abs(params_at("H", w) / ref - 1) <= 0.01
  # The real head (256 x 1000) dominates this tiny net, so the unmatched H
  # model is only ~16% smaller; matching still has to widen it.
  assert abs(params_at("H", 1.0) / ref - 1) > 0.1 and w > 1.1


# -- Transformer-XL pieces -----------------------------------------------------


def test_txl_config_sizes_and_matching(tmp_path):
  size = bench_models.TXL_SIZES["small"]
  path = tmp_path / "c.bin"
  config = bench_models.txl_config(
      "H",
      size,
      path,
      overrides=(("transformer_xl", "num_heads", 8),),
  )
  m = config.model
  assert (m.num_layers, m.d_model, m.d_inner, m.num_heads) == (4, 256, 1024, 8)
  assert m.width_multiplier == _txl_common.matched_width("H", 256, 8)
  assert (m.mem_len, m.eval_mem_len, m.eval_clamp_len) == (128, 256, 256)
  assert config.data.name == "enwiki_sample"
  assert config.data.path == str(path)
  assert config.data.tgt_len == 128 and config.train.batch_size == 8
  assert config.train.num_devices == 1
  assert (
      bench_models.txl_config("H", size, path, match="none").model[
          "width_multiplier"
      ]
      == 1.0
  )
  wide = bench_models.txl_config(
      "H", size, path, overrides=(("transformer_xl", "width_multiplier", 3.0),)
  )
  assert wide.model.width_multiplier == 3.0  # an explicit width wins
  with pytest.raises(
      ValueError,
      match=r"after --override transformer_xl.dropout_rate=1.5: .*dropout_rate "
      r"must be in \[0, 1\)",
  ):
    bench_models.txl_config(
        "H", size, path, overrides=(("transformer_xl", "dropout_rate", 1.5),)
    )
  with pytest.raises(
      ValueError, match=r"--override transformer_xl\.pre_norm='yes': .*bool"
  ):
    bench_models.txl_config(
        "H", size, path, overrides=(("transformer_xl", "pre_norm", "yes"),)
    )


def test_write_byte_corpus(tmp_path):
  path = bench_models.write_byte_corpus(tmp_path / "c.bin", 50_000, seed=3)
  data = np.frombuffer(path.read_bytes(), np.uint8)
  assert data.size == 50_000
  n = bench_models.CORPUS_SYMBOLS
  assert data.min() >= 32 and data.max() < 32 + n and 10 not in data
  assert len(np.unique(data)) == n
  # Order-1 Markov: steps (mod n) follow P(s) ~ (s + 1)^-1.5.
  steps = np.diff(data.astype(np.int64) - 32) % n
  freq = np.bincount(steps, minlength=n) / steps.size
  p = (np.arange(n) + 1.0) ** -1.5
  np.testing.assert_allclose(freq[:4], (p / p.sum())[:4], rtol=0.05)
  same = bench_models.write_byte_corpus(tmp_path / "d.bin", 50_000, seed=3)
  assert same.read_bytes() == path.read_bytes()
  with pytest.raises(ValueError, match=r"num_symbols \(300\) in 1..224"):
    bench_models.write_byte_corpus(tmp_path / "e.bin", 10, num_symbols=300)


# -- derived numbers and output ------------------------------------------------


def _row(model, algebra, ms, macs=1000, batch=4, items=4):
  return {
      "model": model,
      "algebra": algebra,
      "width_multiplier": 1.0,
      "params": 12_345,
      "macs_per_example": macs,
      "batch": batch,
      "items_per_step": items,
      "unit": "images",
      "ms_median": ms,
      "ms_q25": ms * 0.9,
      "ms_q75": ms * 1.1,
  }


def test_add_derived():
  rows = [
      _row("resnet", "R", 10.0),
      _row("resnet", "H", 25.0, macs=4000),
      _row("transformer_xl", "H", 5.0, items=512),
  ]
  ceilings = {"matmul": {"gflops": 2.0}, "conv3x3": {"gflops": 1.0}}
  bench_models.add_derived(rows, ceilings)
  r, h, t = rows
  assert h["flops_per_step"] == 6 * 4000 * 4
  assert h["per_s"] == pytest.approx(4 / 0.025)
  assert h["gflops"] == pytest.approx(96_000 / 0.025 / 1e9)
  assert h["mfu"] == pytest.approx(h["gflops"] / 2.0)
  assert h["mfu_conv"] == pytest.approx(h["gflops"])
  assert (r["vs_R"], h["vs_R"]) == (1.0, 2.5)
  assert t["vs_R"] is None and t["per_s"] == pytest.approx(512 / 0.005)


def test_tables():
  rows = [_row("resnet", "R", 10.0), _row("resnet", "M2R", 20.0)]
  bench_models.add_derived(rows, {"matmul": {"gflops": 1.0}})
  text = bench_models.tables(rows)
  assert "| resnet | M2R | 1.000 | 12.3k | 1.0k | 20.0 [18.0-22.0] |" in text
  assert "| 200.0 img/s |" in text and "| 2.00 |" in text
  assert "sampling" not in text
  sample = {
      "algebra": "R",
      "width_multiplier": 1.0,
      "params": 100,
      "mem_len": 128,
      "num_tokens": 10,
      "tokens_per_s": 1000.0,
      "tokens_per_s_min": 900.0,
      "tokens_per_s_max": 1100.0,
      "ms_per_token": 1.0,
  }
  text = bench_models.tables(rows, [sample])
  assert "| R | 1.000 | 100 | 128 | 10 | 1,000 [900-1,100] | 1.00 |" in text


def test_measure_ceilings_flops():
  c = bench_models.measure_ceilings(32, repeats=1, conv=False)
  assert set(c) == {"matmul"}
  assert c["matmul"]["flops"] == 2 * 32**3
  assert c["matmul"]["gflops"] >= c["matmul"]["gflops_median"] > 0
  conv = bench_models.measure_ceilings(8, repeats=1)["conv3x3"]
  k = bench_models.CONV_CEILING
  assert (
      conv["flops"] == 2 * k["batch"] * k["hw"] ** 2 * 9 * k["cin"] * k["cout"]
  )


def test_time_variants_threads_the_state_through_every_call():
  step = jax.jit(lambda s, b: (s + b, {"loss": s}), donate_argnums=0)
  variants = {
      name: bench_models.Variant({"algebra": name}, step, inc, jnp.zeros(()))
      for name, inc in (("a", 1.0), ("b", 10.0))
  }
  bench_models.time_variants(
      variants, repeats=3, warmup=2, max_seconds=None, min_sample_s=0.0
  )
  for v in variants.values():
    # 2 warm-up calls + 3 rounds of `inner` calls, each adding the batch.
    calls = 2 + 3 * v.row["inner"]
    assert float(v.state) == calls * float(v.batch)
    assert v.row["n_samples"] == 3
    assert v.row["ms_min"] <= v.row["ms_median"] <= v.row["ms_max"]


# -- arguments -----------------------------------------------------------------


def test_parse_override():
  assert bench_models.parse_override("resnet.depth=18") == (
      "resnet",
      "depth",
      18,
  )
  assert bench_models.parse_override("resnet.version=v1") == (
      "resnet",
      "version",
      "v1",
  )
  assert bench_models.parse_override("transformer_xl.cutoffs=(10, 20)") == (
      "transformer_xl",
      "cutoffs",
      (10, 20),
  )
  with pytest.raises(ValueError, match=r"must look like MODEL\.KEY=VALUE"):
    bench_models.parse_override("depth=18")
  with pytest.raises(ValueError, match="unknown model 'vgg'"):
    bench_models.parse_override("vgg.depth=18")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--models=resnet,vgg"], "unknown --models ['vgg']"),
        (["--algebras=R,Q"], "Unknown algebra"),
        (["--sample_tokens=1"], "--sample_tokens must be 0 (skip) or >= 2"),
        (["--batch=0"], "--batch must be >= 1, got 0"),
        (["--width_scale=0"], "--width_scale must be > 0"),
        (["--override=resnet"], "must look like MODEL.KEY=VALUE"),
    ],
)
def test_parse_args_errors(argv, message, capsys):
  with pytest.raises(SystemExit):
    bench_models.parse_args(argv)
  assert message in capsys.readouterr().err


def test_parse_args_quick_defaults():
  args = bench_models.parse_args(["--quick", "--models=transformer_xl"])
  assert args.algebras == ("R", "H", "M2R")
  assert (args.image_size, args.batch, args.width_scale) == (32, 2, 0.25)
  assert args.txl_size == "runlocal" and args.repeats == 3
  args = bench_models.parse_args(["--models=transformer_xl", "--batch=4"])
  assert args.algebras == ("R", "C", "H", "M2R", "M4R")
  assert (args.image_size, args.batch, args.txl_size) == (128, 4, "small")


def test_unregistered_model_is_a_clear_error(capsys, monkeypatch):
  from algebranets.models import registry

  monkeypatch.setattr(
      registry,
      "_REGISTRY",
      {k: v for k, v in registry._REGISTRY.items() if k != "resnet"},
  )
  with pytest.raises(SystemExit):
    bench_models.parse_args(["--models=resnet"])
  assert "model 'resnet' is not registered" in capsys.readouterr().err
