"""Data parallelism: 1 and 8 (fake CPU) devices take the same steps."""

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
    out = {}
    params = {}
    for n in (1, 8):
      config = lm_helpers.tiny_config(corpus, **{
          "model.algebra": "M2R", "train.batch_size": 16,
          "train.num_steps": 3, "train.num_devices": n,
          "eval.batch_size": 8, "eval.every_steps": 0,
          # Adam's first steps are ~lr * sign(g): rounding noise in a
          # near-zero gradient would flip whole updates. SGD keeps the
          # comparison about the sharding.
          "optimizer.name": "sgd", "optimizer.learning_rate": 0.5,
          "optimizer.weight_decay": 0.0})
      final = trainer.train_and_evaluate(config, f"{root}/n{n}")
      abstract = Experiment(config).abstract_state().params
      params[n] = jax.device_get(
          checkpointing.restore_params(f"{root}/n{n}", abstract))
      out[n] = final
    diffs = jax.tree.leaves(jax.tree.map(
        lambda a, b: float(np.max(np.abs(a - b))), params[1], params[8]))
    print("RESULT" + json.dumps({"loss1": out[1]["loss"],
        "loss8": out[8]["loss"], "max_param_diff": max(diffs)}))
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
  result = json.loads(line[len("RESULT") :])
  assert abs(result["loss1"] - result["loss8"]) < 1e-5, result
  assert result["max_param_diff"] < 1e-5, result
  # The 8-device run really was sharded 8 ways.
  assert "on 8 cpu device(s)" in proc.stdout
  # ... and its checkpoint evaluates here, on this process's single device.
  assert jax.device_count() == 1
  result = evaluator.evaluate_workdir(tmp_path / "n8", write=False)
  final = json.loads((tmp_path / "n8" / "final_metrics.json").read_text())
  assert result["step"] == 3
  assert abs(result["bits_per_byte"] - final["bits_per_byte"]) < 1e-5
