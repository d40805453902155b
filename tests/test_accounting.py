"""Parameter and MAC accounting against hand counts.

Every expected number below is written out by hand (or, for ResNet-50, from
an independent layer list), never recomputed with the rules under test.
"""

import math

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from algebranets.metrics import (
    accounting,
    count_macs,
    count_params,
    param_table,
)

F32 = jnp.float32


def _x(*shape, dtype=F32):
  return jax.ShapeDtypeStruct(shape, dtype)


# -- test modules ---------------------------------------------------------------


class Scale(hk.Module):
  """y = x * w per channel; reports one MAC per output element."""

  def __call__(self, x):
    w = hk.get_parameter("w", [x.shape[-1]], x.dtype, init=jnp.ones)
    return x * w

  def mac_count(self, x, y) -> int:
    del x
    return math.prod(y.shape)


class Block(hk.Module):
  """A container without a rule: Linear(4) then Scale."""

  def __init__(self, name=None):
    super().__init__(name=name)
    self.lin = hk.Linear(4)
    self.scale = Scale()

  def __call__(self, x):
    return self.scale(self.lin(x))


class Fused(hk.Module):
  """A counted layer that calls a counted layer internally."""

  def __call__(self, x):
    return hk.Linear(5)(x)

  def mac_count(self, x, y) -> int:
    del x, y
    return 1000


class DoubledLinear(hk.Linear):
  """Subclass whose __call__ goes through hk.Linear.__call__ again."""

  def __call__(self, x):
    return super().__call__(x) * 2.0


class NoRule(hk.Module):
  """Owns a weight but has no MAC rule."""

  def __call__(self, x):
    w = hk.get_parameter("w", [x.shape[-1], 3], x.dtype, init=jnp.ones)
    return x @ w


class BadCount(hk.Module):

  def __init__(self, value, name=None):
    super().__init__(name=name)
    self.value = value

  def __call__(self, x):
    return x

  def mac_count(self, x, y):
    del x, y
    return self.value


# -- parameters -----------------------------------------------------------------


def _resnet50(x, is_training=True):
  return hk.nets.ResNet50(1000)(x, is_training=is_training)


class CountParamsTest(parameterized.TestCase):

  def test_resnet50_params(self):
    init = hk.transform_with_state(_resnet50).init
    params, state = jax.eval_shape(init, jax.random.key(0), _x(1, 224, 224, 3))
    n = count_params(params)
    print(f"ResNet-50 params: {n:,}")
    self.assertEqual(n, 25_557_032)
    self.assertEqual(param_table(params).total, 25_557_032)
    # Moving averages are state, not parameters.
    self.assertGreater(accounting.count_state(state), 0)

  def test_algebra_weight_counts_every_component(self):
    params = {
        "linear": {"w": np.zeros([3, 5, 4]), "b": np.zeros([5, 4])},
        "conv": {"w": jax.ShapeDtypeStruct((3, 3, 2, 6, 8), F32)},
    }
    # 3*5*4 + 5*4 + 3*3*2*6*8 = 60 + 20 + 864.
    self.assertEqual(count_params(params), 944)
    self.assertEqual(count_params({}), 0)

  def test_param_table_rows(self):
    def mlp(x):
      x = jax.nn.relu(hk.Linear(7)(x))
      return hk.Linear(2)(x)

    params = jax.eval_shape(hk.transform(mlp).init, jax.random.key(0), _x(3, 5))
    table = param_table(params)
    rows = {r.module: r for r in table.rows}
    self.assertEqual(set(rows), {"linear", "linear_1"})
    self.assertEqual(rows["linear"].shapes, {"b": (7,), "w": (5, 7)})
    self.assertEqual(rows["linear"].count, 42)  # 5*7 + 7
    self.assertEqual(rows["linear_1"].count, 16)  # 7*2 + 2
    self.assertEqual(table.total, 58)
    text = table.table()
    for name in ("linear", "linear_1", "**total**", "58"):
      self.assertIn(name, text)

  def test_param_table_generic_pytree(self):
    table = param_table({"a": {"b": {"c": np.zeros([2, 3])}}, "d": np.ones(4)})
    rows = {r.module: r for r in table.rows}
    self.assertEqual(rows["a/b"].shapes, {"c": (2, 3)})
    self.assertEqual(rows["~"].shapes, {"d": (4,)})
    self.assertEqual(table.total, 10)


# -- MACs of Haiku layers -------------------------------------------------------


def _resnet50_hand_macs(batch):
  """ResNet-50 v1.5 from its published layer list (not from Haiku)."""
  total = 112 * 112 * (7 * 7 * 3) * 64  # conv1 7x7/2 -> 112x112
  hw, c_in = 56, 64  # after the 3x3/2 max pool
  for blocks, c_out, stride in (
      (3, 256, 1),
      (4, 512, 2),
      (6, 1024, 2),
      (3, 2048, 2),
  ):
    mid = c_out // 4
    for i in range(blocks):
      s = stride if i == 0 else 1
      out_hw = hw // s
      if i == 0:  # 1x1 projection shortcut with the block's stride
        total += out_hw * out_hw * c_in * c_out
      total += hw * hw * c_in * mid  # 1x1, stride 1 (v1.5)
      total += out_hw * out_hw * 9 * mid * mid  # 3x3 carries the stride
      total += out_hw * out_hw * mid * c_out  # 1x1 expand
      hw, c_in = out_hw, c_out
  total += 2048 * 1000  # fc
  return batch * total


class ResNet50MacsTest(absltest.TestCase):

  def test_resnet50_matches_hand_count(self):
    report = count_macs(_resnet50, _x(1, 224, 224, 3))
    expected = _resnet50_hand_macs(1)
    print(
        f"ResNet-50 @224: {report.total:,} MACs ({report.total / 1e9:.3f} G),"
        f" params {report.param_count:,}"
    )
    self.assertEqual(report.total, expected)
    self.assertEqual(report.total, 4_089_184_256)  # the known ~4.09 GMACs
    self.assertEqual(report.param_count, 25_557_032)
    self.assertEqual(report.flops, 2 * expected)
    kinds = [r.kind for r in report.rows]
    self.assertEqual(kinds.count("hk.Conv2D"), 53)
    self.assertEqual(kinds.count("hk.Linear"), 1)
    self.assertEqual(report.uncounted, ())  # BatchNorms are not "uncounted"
    self.assertEqual(report.rows[0].macs, 118_013_952)  # 112^2 * 147 * 64
    self.assertEqual(report.rows[-1].name, "res_net50/~/logits")
    self.assertEqual(report.rows[-1].params, 2_049_000)

  def test_resnet50_batch2_doubles(self):
    report = count_macs(_resnet50, _x(2, 224, 224, 3))
    self.assertEqual(report.total, 2 * 4_089_184_256)


class HaikuLayerMacsTest(parameterized.TestCase):

  def test_mlp(self):
    def mlp(x):
      return hk.Linear(2)(jax.nn.relu(hk.Linear(7)(x)))

    report = count_macs(mlp, _x(2, 3, 5))
    # 6 tokens: 6*5*7 + 6*7*2 = 210 + 84.
    self.assertEqual([r.macs for r in report.rows], [210, 84])
    self.assertEqual(report.total, 294)
    self.assertEqual(report.param_count, 58)
    self.assertEqual([r.params for r in report.rows], [42, 16])
    self.assertEqual(report.rows[0].input_shape, (2, 3, 5))
    self.assertEqual(report.rows[0].output_shape, (2, 3, 7))

  def test_cnn_stride_padding_groups_depthwise(self):
    def cnn(x):
      x = hk.Conv2D(8, 3, stride=2, padding="SAME")(x)  # -> [2, 5, 5, 8]
      x = hk.Conv2D(6, 3, padding="VALID", feature_group_count=2)(x)  # 3x3x6
      x = hk.DepthwiseConv2D(2, 2, padding="VALID")(x)  # -> [2, 2, 2, 12]
      return hk.Linear(3)(hk.Flatten()(x))  # [2, 48] -> [2, 3]

    report = count_macs(cnn, _x(2, 9, 9, 4))
    # 50 positions * 9*4*8; 18 * 9*(8/2)*6; 8 * 4 taps * 12; 2*48*3.
    self.assertEqual([r.macs for r in report.rows], [14400, 3888, 384, 288])
    self.assertEqual(report.total, 18960)
    self.assertEqual(
        report.by_kind(),
        {"hk.Conv2D": 18288, "hk.DepthwiseConv2D": 384, "hk.Linear": 288},
    )

  def test_nchw_and_unbatched_conv(self):
    nchw = count_macs(
        lambda x: hk.Conv2D(8, 3, stride=2, data_format="NCHW")(x),
        _x(2, 4, 9, 9),
    )
    self.assertEqual(nchw.total, 14400)  # same as NHWC: 50 * 9*4*8
    unbatched = count_macs(lambda x: hk.Conv2D(8, 3, stride=2)(x), _x(9, 9, 4))
    self.assertEqual(unbatched.total, 7200)  # 25 * 9*4*8

  def test_conv1d_conv3d_transpose_embed(self):
    c1 = count_macs(lambda x: hk.Conv1D(4, 5, padding="VALID")(x), _x(2, 10, 3))
    self.assertEqual(c1.total, 720)  # 2*6 positions * 5*3*4
    c3 = count_macs(lambda x: hk.Conv3D(3, 2, stride=2)(x), _x(1, 4, 4, 4, 2))
    self.assertEqual(c3.total, 384)  # 8 positions * 8 taps * 2*3
    tr = count_macs(
        lambda x: hk.Conv2DTranspose(5, 3, stride=2)(x), _x(1, 4, 4, 3)
    )
    self.assertEqual(tr.rows[0].output_shape, (1, 8, 8, 5))
    self.assertEqual(tr.total, 2160)  # 16 input positions * 9 * 3*5
    emb = count_macs(
        lambda ids: hk.Embed(10, 6)(ids), _x(2, 5, dtype=jnp.int32)
    )
    self.assertEqual(emb.total, 0)
    self.assertEqual(len(emb.rows), 1)
    self.assertEqual(emb.rows[0].params, 60)

  def test_haiku_containers_count_through_children(self):
    mlp = count_macs(lambda x: hk.nets.MLP([7, 2])(x), _x(6, 5))
    self.assertEqual([r.macs for r in mlp.rows], [210, 84])
    sep = count_macs(
        lambda x: hk.SeparableDepthwiseConv2D(1, 3)(x), _x(1, 6, 6, 4)
    )
    # Two depthwise convs of 3 taps each: 36 positions * 4 channels * 3.
    self.assertEqual([r.macs for r in sep.rows], [432, 432])
    self.assertTrue(all(r.kind == "hk.DepthwiseConv2D" for r in sep.rows))


# -- the mac_count protocol, nesting, repeats -----------------------------------


class ProtocolTest(parameterized.TestCase):

  def test_container_called_twice(self):
    def model(x):
      block = Block()
      return block(block(x))

    report = count_macs(model, _x(3, 4))
    # Per call: Linear 3*4*4 = 48, Scale 3*4 = 12; two calls.
    self.assertEqual([r.macs for r in report.rows], [48, 12, 48, 12])
    self.assertEqual(report.total, 120)
    self.assertEqual(
        [r.name for r in report.rows],
        ["block/~/linear", "block/~/scale"] * 2,
    )
    self.assertEqual(report.param_count, 24)  # 4*4 + 4 + 4, shared
    self.assertEqual(report.rows[1].params, 4)

  def test_counted_module_is_not_double_counted(self):
    fused = count_macs(lambda x: Fused()(x), _x(3, 4))
    self.assertEqual(fused.total, 1000)
    self.assertEqual([r.name for r in fused.rows], ["fused"])
    sub = count_macs(lambda x: DoubledLinear(5)(x), _x(3, 4))
    self.assertEqual(sub.total, 60)  # 3*4*5 once, not twice
    self.assertLen(sub.rows, 1)

  def test_uncounted_modules_are_reported(self):
    def model(x):
      x = hk.LayerNorm(-1, True, True)(x)
      x = hk.BatchNorm(True, True, 0.9)(x, is_training=True)
      return hk.Linear(2)(NoRule()(x))

    report = count_macs(model, _x(3, 4))
    self.assertEqual(report.total, 18)  # only the Linear on [3, 3]: 3*3*2
    self.assertLen(report.uncounted, 1)
    self.assertIn("no_rule", report.uncounted[0])
    self.assertIn("no_rule", report.table())
    self.assertIn("NOT counted", report.table())

  def test_algebranets_norms_are_not_reported_uncounted(self):
    from algebranets import layers

    def model(x):
      x = layers.BatchNorm("H", name="bn")(x, is_training=True)
      x = layers.LayerNorm("H", mode="element", name="ln")(x)
      return layers.Linear(2, "H", name="dense")(x)

    report = count_macs(model, _x(3, 5, 4))
    self.assertEqual(report.total, 3 * 5 * 2 * 16)
    self.assertEqual(report.uncounted, ())

    def without_opt_in(x):
      x = NoRule()(x)  # [3, 5, 4] -> [3, 5, 3]: cross elements
      return layers.Linear(2, "cross", name="dense")(x)

    # The opt-in attribute is what keeps norms out: a parameter-owning module
    # without it is still reported.
    self.assertNotEqual(count_macs(without_opt_in, _x(3, 5, 4)).uncounted, ())

  def test_static_and_concrete_arguments(self):
    def model(x, n_layers, *, is_training):
      for _ in range(n_layers):
        x = hk.Linear(4)(x)
      return hk.dropout(hk.next_rng_key(), 0.5, x) if is_training else x

    report = count_macs(model, jnp.ones([3, 4]), 2, is_training=True)
    self.assertEqual(report.total, 96)  # 2 * 3*4*4
    again = count_macs(model, jnp.ones([3, 4]), 3, is_training=False)
    self.assertEqual(again.total, 144)  # fresh trace, 3 layers

  def test_table_lists_every_layer_and_total(self):
    def model(x):
      return hk.Linear(3, name="head")(Block(name="body")(x))

    report = count_macs(model, _x(3, 4))
    text = report.table()
    for r in report.rows:
      self.assertIn(f"| {r.name} |", text)
    self.assertIn("**total**", text)
    self.assertIn(f"{report.total:,}", text)
    self.assertEqual(report.total, 48 + 12 + 36)

  def test_rejects_transformed(self):
    with self.assertRaisesRegex(TypeError, "untransformed"):
      count_macs(hk.transform(lambda x: hk.Linear(2)(x)), _x(3, 4))

  @parameterized.named_parameters(
      ("float", 1.5), ("negative", -1), ("array", np.ones(2))
  )
  def test_bad_mac_count(self, value):
    with self.assertRaisesRegex(ValueError, "mac_count"):
      count_macs(lambda x: BadCount(value)(x), _x(3, 4))


# -- algebranets layers -----------------------------------------------------------


class AlgebraLayersTest(parameterized.TestCase):

  @parameterized.named_parameters(
      # tokens 6: 6*5*7*mpp + 6*7*2*mpp, mpp = nonzeros of the constants.
      ("H", "H", 4, 3360 + 1344),  # 16
      ("M2R", "M2R", 4, 1680 + 672),  # 8
      ("C", "C", 2, 840 + 336),  # 4
      ("R", "R", 1, 210 + 84),  # 1
  )
  def test_two_layer_mlp(self, algebra, d, expected):
    from algebranets.layers import linear

    def mlp(x):
      x = linear.Linear(7, algebra)(x)
      return linear.Linear(2, algebra)(x)

    report = count_macs(mlp, _x(2, 3, 5, d))
    self.assertEqual(report.total, expected)
    # w [5, 7, d] + b [7, d] + w [7, 2, d] + b [2, d] = 58 * d.
    self.assertEqual(report.param_count, 58 * d)
    self.assertLen(report.rows, 2)
    self.assertEqual(report.uncounted, ())

  def test_folded_layout_same_count(self):
    from algebranets.layers import linear

    report = count_macs(
        lambda x: linear.Linear(7, "M2R", layout="folded")(x), _x(2, 6, 5, 2)
    )
    self.assertEqual(report.total, 1680)  # 6 tokens * 5*7 * 8

  def test_conv(self):
    from algebranets.layers import conv

    def cnn(x):
      x = conv.Conv2D(6, 3, "H", stride=2, padding="SAME")(x)  # [2,5,5,6,4]
      return conv.Conv2D(4, 3, "H", padding="VALID", feature_group_count=2)(x)

    report = count_macs(cnn, _x(2, 9, 9, 4, 4))
    # 50 positions * 9*4*6 * 16; 18 positions * 9*(6/2)*4 * 16.
    self.assertEqual([r.macs for r in report.rows], [172800, 31104])
    self.assertEqual(report.total, 203904)

  def test_depthwise_and_embed(self):
    from algebranets.layers import conv, embed

    dw = count_macs(
        lambda x: conv.DepthwiseConv2D(
            3, "C", channel_multiplier=2, padding="VALID"
        )(x),
        _x(1, 5, 5, 3, 2),
    )
    self.assertEqual(dw.total, 1944)  # 9 positions * 9 taps * 6 outputs * 4
    emb = count_macs(
        lambda t: embed.Embed(10, 3, "H")(t), _x(2, 5, dtype=jnp.int32)
    )
    self.assertEqual(emb.total, 0)
    self.assertEqual(emb.param_count, 120)
    self.assertEqual(emb.uncounted, ())


if __name__ == "__main__":
  absltest.main()
