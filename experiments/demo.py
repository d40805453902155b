r"""Quick-start demo: algebra-valued MLPs on embedded (generated) data.

Until the training harness lands, this is Quick start command (1). It
generates a fixed, seeded classification problem (no download): inputs
x ~ N(0, I_16), labels = argmax of a fixed random real teacher network with
8 classes, 8192 training and 2048 held-out examples. It then trains the same
small MLP in several algebras at (roughly) the same real parameter count:

  RealStem (real dense -> C algebra channels) -> [Linear -> LayerNorm ->
  split ReLU] x depth -> FlattenReal (real dense -> 8 logits)

and prints, per algebra, real parameters, intrinsic MACs per example (from
`algebranets.metrics`), held-out accuracy and training time.

  python -m experiments.demo                       # R, C, H, M2R, M4R
  python -m experiments.demo --algebras=M2R,dual --steps=600 --layout=folded
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags, logging

from algebranets import algebras, layers, metrics

# A deliberate subset (a quick demo); any registered names work.
_ALGEBRAS = flags.DEFINE_list(
    "algebras", ["R", "C", "H", "M2R", "M4R"], "Algebras to train."
)
_REAL_WIDTH = flags.DEFINE_integer(
    "real_width",
    128,
    "Hidden width of the real network. Algebra widths are chosen so the "
    "hidden layers have about the same number of real parameters.",
)
_DEPTH = flags.DEFINE_integer("depth", 2, "Hidden algebra layers.")
_STEPS = flags.DEFINE_integer("steps", 400, "Adam steps per algebra.")
_BATCH = flags.DEFINE_integer("batch", 256, "Batch size.")
_LR = flags.DEFINE_float("lr", 3e-3, "Adam learning rate.")
_LAYOUT = flags.DEFINE_enum(
    "layout",
    "standard",
    ["standard", "folded"],
    "Activation layout; 'folded' applies to matrix algebras only (others "
    "fall back to 'standard').",
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed for data and init.")

NUM_FEATURES, NUM_CLASSES = 16, 8
NUM_TRAIN, NUM_TEST = 8192, 2048


def make_data(seed: int):
  """A fixed teacher-labelled problem: (x_train, y_train, x_test, y_test)."""
  rng = np.random.default_rng(seed)
  w1 = rng.standard_normal((NUM_FEATURES, 64)) / math.sqrt(NUM_FEATURES)
  w2 = rng.standard_normal((64, NUM_CLASSES)) / 8.0
  x = rng.standard_normal((NUM_TRAIN + NUM_TEST, NUM_FEATURES))
  y = np.argmax(np.tanh(x @ w1) @ w2, axis=-1)
  x = x.astype(np.float32)
  return x[:NUM_TRAIN], y[:NUM_TRAIN], x[NUM_TRAIN:], y[NUM_TRAIN:]


def algebra_width(algebra: algebras.Algebra, real_width: int) -> int:
  """Algebra channels C with about real_width^2 hidden parameters: C^2 d."""
  return max(1, round(real_width / math.sqrt(algebra.dim)))


def make_model(algebra: algebras.Algebra, width: int, depth: int, layout: str):
  def forward(x):
    h = layers.RealStem(width, algebra, layout=layout, name="stem")(x)
    for i in range(depth):
      h = layers.Linear(width, algebra, layout=layout, name=f"dense_{i}")(h)
      h = layers.LayerNorm(algebra, layout=layout, name=f"norm_{i}")(h)
      h = layers.Activation("split", algebra, layout=layout)(h)
    return layers.FlattenReal(NUM_CLASSES, layout=layout, name="head")(h)

  return forward


def train_one(name: str, data, *, layout: str, seed: int) -> dict:
  alg = algebras.get(name)
  if alg.matrix_shape is None:
    layout = "standard"
  width = algebra_width(alg, _REAL_WIDTH.value)
  forward = make_model(alg, width, _DEPTH.value, layout)
  model = hk.without_apply_rng(hk.transform(forward))
  x_train, y_train, x_test, y_test = data

  params = model.init(jax.random.key(seed), x_train[:1])
  report = metrics.count_macs(
      forward, jax.ShapeDtypeStruct((1, 16), jnp.float32)
  )
  optimizer = optax.adam(_LR.value)
  opt_state = optimizer.init(params)

  def loss_fn(p, x, y):
    logits = model.apply(p, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  @jax.jit
  def step(p, s, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
    updates, s = optimizer.update(grads, s, p)
    return optax.apply_updates(p, updates), s, loss

  @jax.jit
  def accuracy(p, x, y):
    return jnp.mean(jnp.argmax(model.apply(p, x), -1) == y)

  rng = np.random.default_rng(seed)
  start = time.perf_counter()
  for i in range(_STEPS.value):
    idx = rng.integers(0, NUM_TRAIN, _BATCH.value)
    params, opt_state, loss = step(
        params, opt_state, x_train[idx], y_train[idx]
    )
    if (i + 1) % max(1, _STEPS.value // 4) == 0:
      print(f"  [{name}] step {i + 1:5d}  train loss {float(loss):.4f}")
  acc = float(accuracy(params, x_test, y_test))
  seconds = time.perf_counter() - start
  return dict(
      algebra=name,
      layout=layout,
      width=width,
      params=metrics.count_params(params),
      macs=report.total,
      accuracy=acc,
      seconds=seconds,
  )


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # absl's INFO level would print JAX's backend probing (libtpu) noise.
  logging.set_verbosity(logging.WARNING)
  for name in _ALGEBRAS.value:
    algebras.get(name)  # Fail before any training on a typo.
  data = make_data(_SEED.value)
  chance = np.bincount(data[3], minlength=NUM_CLASSES).max() / NUM_TEST
  print(
      f"Teacher task: {NUM_FEATURES} features, {NUM_CLASSES} classes, "
      f"{NUM_TRAIN} train / {NUM_TEST} held-out; majority-class accuracy "
      f"{chance:.3f}. jax {jax.__version__} on {jax.devices()[0].platform}."
  )
  rows = []
  for name in _ALGEBRAS.value:
    rows.append(train_one(name, data, layout=_LAYOUT.value, seed=_SEED.value))
  print()
  print(
      "| algebra | layout | width (alg. ch.) | real params | MACs/example |"
      " held-out acc | train s |"
  )
  print("| --- | --- | --- | --- | --- | --- | --- |")
  for r in rows:
    print(
        f"| {r['algebra']} | {r['layout']} | {r['width']} | {r['params']:,} |"
        f" {r['macs']:,} | {r['accuracy']:.3f} | {r['seconds']:.1f} |"
    )


if __name__ == "__main__":
  app.run(main)
