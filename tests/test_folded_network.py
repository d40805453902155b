"""A whole M_n network run in the folded layout equals the standard one.

Same parameters (they are stored in the canonical layout either way), same
logits, same gradients, same BatchNorm running statistics; and the folded
network's compiled step contains no transposes between layers.
"""

import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets import layers
from tests import tolerances

SPATIAL_AXES = {"standard": (1, 2), "folded": (2, 3)}


def _cnn(algebra, layout, norm_mode):
  def forward(images, is_training):
    h = layers.RealStem(4, algebra, kernel_shape=3, layout=layout, name="stem")(
        images
    )
    h = layers.Conv2D(6, 3, algebra, stride=2, layout=layout, name="conv1")(h)
    h = layers.BatchNorm(algebra, mode=norm_mode, layout=layout, name="bn1")(
        h, is_training
    )
    h = layers.Activation("split", algebra, layout=layout)(h)
    h = layers.DepthwiseConv2D(3, algebra, layout=layout, name="dw")(h)
    h = layers.Activation("first_component", algebra, layout=layout)(h)
    h = layers.Conv2D(5, 1, algebra, layout=layout, name="conv2")(h)
    h = layers.BatchNorm(algebra, mode=norm_mode, layout=layout, name="bn2")(
        h, is_training
    )
    h = layers.Activation("modrelu", algebra, layout=layout)(h)
    h = jnp.mean(h, axis=SPATIAL_AXES[layout])
    h = layers.Linear(3, algebra, layout=layout, name="dense")(h)
    h = layers.LayerNorm(algebra, layout=layout, name="ln")(h)
    return layers.FlattenReal(7, layout=layout, name="head")(h)

  return hk.transform_with_state(forward)


@pytest.mark.parametrize(
    "algebra,norm_mode",
    [("M2R", "component"), ("M3R", "element"), ("M2C", "component")],
)
def test_folded_network_equals_standard(algebra, norm_mode):
  images = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
  standard = _cnn(algebra, "standard", norm_mode)
  folded = _cnn(algebra, "folded", norm_mode)
  params, state = standard.init(jax.random.key(1), images, True)
  params_f, state_f = folded.init(jax.random.key(1), images, True)
  # Identical parameter and state trees: checkpoints are layout-independent.
  assert jax.tree.structure(params) == jax.tree.structure(params_f)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, params_f)
  assert jax.tree.map(jnp.shape, state) == jax.tree.map(jnp.shape, state_f)

  def loss(apply, p, s):
    logits, new_s = apply(p, s, None, images, True)
    return jnp.sum(jnp.sin(logits)), (logits, new_s)

  def run(model):
    grad_fn = jax.value_and_grad(
        lambda p: loss(model.apply, p, state), has_aux=True
    )
    (value, (logits, new_state)), grads = grad_fn(params)
    eval_logits, _ = model.apply(params, new_state, None, images, False)
    return value, logits, new_state, grads, eval_logits

  # In float64: the two layouts sum in different orders, and in float32
  # by a CPU-dependent amount (issue 16); in float64 any order is within
  # the worst-case rounding bound of the longest sums (a 3x3 conv over 6
  # channels of M3R: 216 terms; batch statistics: 4*8*8 = 256 terms),
  # chained through ~8 layers forward and back.
  f64 = functools.partial(jax.tree.map, lambda v: np.asarray(v, np.float64))
  params, state, images = f64(params), f64(state), f64(images)
  with jax.enable_x64(True), jax.default_matmul_precision("highest"):
    for model in (standard, folded):
      assert (
          tolerances.float32_products(
              lambda p, m=model: m.apply(p, state, None, images, True), params
          )
          == []
      )
    l_s, logits_s, new_state_s, g_s, eval_s = jax.jit(lambda: run(standard))()
    l_f, logits_f, new_state_f, g_f, eval_f = jax.jit(lambda: run(folded))()

  def check(got, want):
    # One absolute bound per tree, at its largest value: gradients that are
    # zero in exact arithmetic (biases before a BatchNorm) come out as
    # rounding noise of the tree's scale.
    scale = max(np.abs(np.asarray(w)).max() for w in jax.tree.leaves(want))
    tol = tolerances.float64_error(256, scale, depth=16)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=tol),
        got,
        want,
    )

  assert logits_s.dtype == np.float64
  check(logits_f, logits_s)
  check(eval_f, eval_s)
  check(g_f, g_s)
  check(new_state_f, new_state_s)
  check(l_f, l_s)
  # The logits are not trivially equal (e.g. all zero).
  assert float(np.asarray(logits_s).std()) > 1e-3


def test_folded_dense_stack_has_no_transposes_between_layers(xla_optimizations):
  """Consecutive folded layers compile to matmuls without transposes."""
  algebra = "M4R"

  def stack(layout):
    def f(x):
      for i in range(4):
        x = layers.Linear(8, algebra, layout=layout, name=f"l{i}")(x)
        x = layers.Activation("split", algebra, layout=layout)(x)
      return x

    return hk.without_apply_rng(hk.transform(f))

  x_f = jnp.ones((4, 32, 8, 4))  # folded [n, B, C, n]
  folded = stack("folded")
  params = folded.init(jax.random.key(0), x_f)
  hlo = jax.jit(folded.apply).lower(params, x_f).compile().as_text()
  dots = hlo.count(" dot(")
  assert dots == 4, f"expected 4 matmuls, got {dots}"
  # Activation transposes would appear as transpose ops on [n, B, ...]
  # shaped arrays; only (at most) the 4 weight transposes may remain.
  act_transposes = [
      line
      for line in hlo.splitlines()
      if "transpose(" in line and "f32[4,32," in line.split("=")[0]
  ]
  assert not act_transposes, act_transposes
