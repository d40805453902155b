r"""Exports a pruned model: zeroed dense weights, masks, block-sparse check.

  python -m scripts.export_pruned --workdir workdirs/e8_m2r_s90 [--step N]

Writes <workdir>/pruned_step<N>.npz (every parameter with pruned entries
exactly 0, plus `mask:<module>/<leaf>` for the pruned leaves) and checks,
for every element-pruned algebra dense weight [N, M, d], that the
block-sparse form (BCOO, one stored entry per kept algebra element) gives
the same layer output as the dense masked weight.
"""

import pathlib

import jax
import numpy as np
from absl import app, flags

from algebranets import kernels
from algebranets.sparsity import export
from algebranets.training import checkpointing, evaluator
from algebranets.training.experiment import Experiment
from algebranets.training.state import TrainState

_WORKDIR = flags.DEFINE_string("workdir", None, "A pruned training workdir.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default latest).")
flags.mark_flags_as_required(["workdir"])


def export_workdir(workdir, step=None) -> tuple[pathlib.Path, list[dict]]:
  """Writes the npz; returns its path and one row per block-sparse check."""
  workdir = pathlib.Path(workdir)
  config = evaluator.load_config(workdir)
  if config.sparsity.method == "none":
    raise ValueError(
        f"{workdir} was trained without pruning (sparsity.method)."
    )
  exp = Experiment(config)
  with checkpointing.Checkpointer(
      workdir / "checkpoints", read_only=True
  ) as ckpt:
    got, restored = ckpt.restore(exp.abstract_state().to_dict(), step=step)
  state = TrainState.from_dict(restored)
  params = jax.device_get(state.params)
  masks = jax.device_get(state.opt_state.masks)
  dense, mask_np = export.export_pruned(params, masks)
  out = workdir / f"pruned_step{got}.npz"
  np.savez(out, **dense, **{f"mask:{k}": v for k, v in mask_np.items()})
  algebra = config.model.algebra
  checks = []
  rng = np.random.default_rng(0)
  for module, leaves in masks.items():
    mask = leaves.get("w")
    if mask is None:
      continue
    w = params[module]["w"]
    element = w.ndim == 3 and bool(np.all(mask.all(-1) == mask.any(-1)))
    if not element:
      continue
    x = rng.standard_normal((4, w.shape[0], w.shape[2])).astype(np.float32)
    bcoo = export.to_block_sparse(w, mask)
    got_y = export.sparse_dense(x, bcoo, algebra)
    want = kernels.dense(x, w * mask, algebra, precision="highest")
    err = float(np.max(np.abs(np.asarray(got_y) - np.asarray(want))))
    checks.append(
        {
            "layer": module,
            "kept": int(bcoo.nse),
            "total": int(np.prod(w.shape[:2])),
            "max_abs_err": err,
        }
    )
  return out, checks


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  path, checks = export_workdir(_WORKDIR.value, _STEP.value)
  print(f"wrote {path}")
  for c in checks:
    print(
        f"{c['layer']}: {c['kept']}/{c['total']} algebra elements stored; "
        f"block-sparse vs dense masked output max |diff| {c['max_abs_err']:.2e}"
    )
  if any(c["max_abs_err"] > 1e-4 for c in checks):
    raise SystemExit("block-sparse output differs from the dense masked model")


if __name__ == "__main__":
  app.run(main)
