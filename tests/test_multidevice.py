"""Data parallelism: 1 and 8 (fake CPU) devices take the same steps.

What is guaranteed (README "Multi-device and multi-process"): the same
device count reproduces a run bit for bit; a different device count changes
only the order of float32 reductions, so short runs agree to float32
rounding and long ones drift apart by less than a change of seed moves them
(the same distribution of results, not the same bits).
"""

import json
import subprocess
import textwrap

import jax

from algebranets.training import evaluator
from tests import subprocess_env

_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from algebranets.training import checkpointing, trainer
    from algebranets.training.experiment import Experiment
    from tests import lm_helpers

    corpus, root = sys.argv[1], sys.argv[2]
    assert jax.device_count() == 8, jax.devices()
    # Adam's first steps are ~lr * sign(g): rounding noise in a near-zero
    # gradient would flip whole updates. SGD keeps the comparison about the
    # sharding.
    sgd = {"optimizer.name": "sgd", "optimizer.learning_rate": 0.5,
           "optimizer.weight_decay": 0.0, "optimizer.warmup_steps": 0,
           "eval.every_steps": 0, "eval.batch_size": 8}
    makers = {
        # Random windows, no recurrent state.
        "lm": lambda n: lm_helpers.tiny_config(corpus, **{
            "model.algebra": "M2R", "train.batch_size": 16,
            "train.num_steps": 3, "train.num_devices": n, **sgd}),
        # Transformer-XL: memories sharded on the batch axis, carried over.
        "txl": lambda n: lm_helpers.txl_config(corpus, **{
            "train.num_steps": 3, "train.num_devices": n, **sgd}),
    }
    result = {}
    for kind, make in makers.items():
      out, params = {}, {}
      for n in (1, 8):
        config = make(n)
        workdir = f"{root}/{kind}{n}"
        out[n] = trainer.train_and_evaluate(config, workdir)
        abstract = Experiment(config).abstract_state().params
        params[n] = jax.device_get(
            checkpointing.restore_params(workdir, abstract))
      diffs = jax.tree.leaves(jax.tree.map(
          lambda a, b: float(np.max(np.abs(a - b))), params[1], params[8]))
      result[kind] = {"loss1": out[1]["loss"], "loss8": out[8]["loss"],
                      "max_param_diff": max(diffs)}
    # Same device count, run again: bit-identical. Another seed on 1 device:
    # the spread a device-count change must stay well inside.
    config = makers["lm"](8)
    again = trainer.train_and_evaluate(config, f"{root}/lm8_again")
    abstract = Experiment(config).abstract_state().params
    same = jax.device_get(
        checkpointing.restore_params(f"{root}/lm8_again", abstract))
    first = jax.device_get(checkpointing.restore_params(f"{root}/lm8", abstract))
    result["lm"]["rerun_bit_identical"] = all(jax.tree.leaves(jax.tree.map(
        lambda a, b: a.tobytes() == b.tobytes(), same, first)))
    result["lm"]["rerun_loss_equal"] = again["loss"] == result["lm"]["loss8"]
    config = makers["lm"](1)
    config.seed = 1
    result["lm"]["loss1_seed1"] = trainer.train_and_evaluate(
        config, f"{root}/lm1_seed1")["loss"]
    print("RESULT" + json.dumps(result))
    """)


def test_one_and_eight_devices_agree(tiny_corpus, tmp_path):
  proc = subprocess.run(
      [subprocess_env.python(), "-c", _SCRIPT, str(tiny_corpus), str(tmp_path)],
      cwd=subprocess_env.ROOT,
      env=subprocess_env.env(
          XLA_FLAGS="--xla_force_host_platform_device_count=8"
      ),
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
  results = json.loads(line[len("RESULT") :])
  for result in results.values():
    assert abs(result["loss1"] - result["loss8"]) < 1e-5, results
    assert result["max_param_diff"] < 1e-5, results
  lm = results["lm"]
  assert lm["rerun_bit_identical"] and lm["rerun_loss_equal"], lm
  seed_spread = abs(lm["loss1_seed1"] - lm["loss1"])
  assert abs(lm["loss1"] - lm["loss8"]) < 0.01 * seed_spread, lm
  # The 8-device run really was sharded 8 ways.
  assert "on 8 cpu device(s)" in proc.stdout
  # ... and its checkpoint evaluates here, on this process's single device.
  assert jax.device_count() == 1
  for kind in ("lm", "txl"):
    workdir = tmp_path / f"{kind}8"
    result = evaluator.evaluate_workdir(workdir, write=False)
    final = json.loads((workdir / "final_metrics.json").read_text())
    assert result["step"] == 3
    assert abs(result["bits_per_byte"] - final["bits_per_byte"]) < 1e-5
