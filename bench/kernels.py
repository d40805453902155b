"""Kernel benchmark: every algebra x op x shape x kernel path, fwd and fwd+bwd.

    python -m bench.kernels [--quick] [--out results.json] \\
        [--algebras R,C,H,...] [--repeats N] [--ops dense,conv3x3,...]

For each algebra and case (below) every kernel variant the library has is
timed under jit, forward and forward+backward (grads w.r.t. x and w):

  dense    einsum, expand, right, fold (`kernels.dense(path=...)`; fold for
           M_n(base) only); 'fold_persistent' = `kernels.dense_folded` on an
           activation already in the folded layout (no fold/unfold in the
           timed function: a network that stays folded); 'prepared' =
           `kernels.dense_prepared` with a PreparedDense cached for the auto
           path (inference only, so forward only); 'auto'.
  conv     einsum, expand, fold (`kernels.conv2d(path=...)`),
           'fold_persistent' = `kernels.conv2d_folded` on a pre-folded input,
           'auto'.
  dw       the conv variants with feature_group_count = C, plus, once
           `algebranets.kernels.depthwise` exists, every DEPTHWISE_PATHS
           entry p as 'dw_<p>' (`depthwise_conv2d`) and 'dw_<p>_folded'
           (`depthwise_conv2d_folded` on a pre-folded input, replacing
           fold_persistent); 'auto' is then `depthwise_conv2d(path='auto')`
           (what DepthwiseConv2D calls).

Next to them a REAL BASELINE: a plain real matmul / conv whose MAC count
equals the algebra layer's intrinsic count (pairs x macs_per_product),
measured in the same interleaved rounds. Its GFLOP/s is the machine's
practical ceiling at that size, so `x real` = algebra GFLOP/s / baseline
GFLOP/s says how close a variant gets to it (1.0 = as fast as real
arithmetic of the same intrinsic work; the expansion of dual and cross is
bounded by their useful fraction 3/4 and 6/9, that of M_n by 1/n). Except
for depthwise on XLA:CPU: its real depthwise conv runs at 0.2-0.5 GFLOP/s
(measured), far below the taps kernel, so `x real` far above 1 there says
that this baseline is no ceiling.

Every algebra sees the SAME number of real activation channels: algebra
channels = round(real channels / d) (exact for d in 1, 2, 4, 8, 16; +-1 real
channel for d = 3, 9).

Shapes (--size full, the default). Budget: the whole run should stay under
~15 min on 2 CPU cores (measured on a shared machine, load ~5: M4R 2.7
min, C 1 min, so 12-14 min for all nine algebras), so the realistic shapes
are a subset:
  * Transformer projections, T = 128 x 8 = 1024 tokens (target length 128,
    batch 8: a CPU-feasible stand-in for 512 x 8), d_model 512 and 1024.
  * ResNet-50 3x3 convs at batch 8 (every stage has the same MACs; what
    decides kernel efficiency is the aspect, from wide-spatial/few-channel
    to the reverse): stride 1 at stages 1, 3 and 4 (56x56x64, 14x14x256,
    7x7x512 real channels; stage 2, 28x28x128, lies between stages 1 and
    3 in both respects), and the first and last stride-2 convs (56x56x128
    -> 28x28 and 14x14x512 -> 7x7).
  * MobileNet depthwise 3x3 at batch 8, 14x14x512 (five of its 13 blocks).
    One shape only: on CPU the MAC-matched REAL depthwise baseline alone
    takes 2.5 s per fwd+bwd call for the density-4 algebras (2048 real
    channels), so every depthwise case adds about a minute.
Batch-1 decoding (the memory-bound regime) is `bench.density`'s subject.

Depthwise training on XLA:CPU: the weight gradient of a grouped convolution
with more than one channel per group (the einsum, expand and fold paths of
every algebra other than R, and 'dw_grouped') costs 100-400x its forward and
grows with groups^2 (jax#13800; docs/performance.md): measured for M4R at
B=8 14x14x512, einsum 6.1 s per fwd+bwd call against 0.25 s for 'dw_taps'.
On the CPU backend those fwd+bwd variants are therefore skipped for cases
marked `cpu_grouped_grads=False` (listed under "skipped" in the JSON and the
printed tables; --dw-grouped-grads times them anyway). Other backends time
everything.

FLOP accounting: intrinsic forward FLOPs = 2 * macs_per_product * pairs
(pairs = weight-activation element pairs); forward+backward counts 3x that
(the two backward products have the same size as the forward one).

Targets (printed as PASS/FAIL with the number, never asserted): dense and
conv fwd+bwd through 'auto' reach >= 0.8x the real ceiling (dual >= 0.8 x
3/4, cross >= 0.8 x 6/9: the useful fraction of their expansion), and M4R
dense time <= 1.3x the real time at the same intrinsic MACs.

Timing (see bench.common): compile excluded, median of interleaved rounds,
spread as quartiles (IQR) and min-max; problems that would blow the
--max-seconds budget get fewer rounds (n_samples in the JSON, at least 3).
No timing is asserted anywhere.
Runs unchanged on GPU/TPU (the device kind is printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from algebranets import algebras, kernels
from algebranets import layout as layout_lib
from bench import common

_DIMS = ("NHWC", "HWIO", "NHWC")
MODES = ("fwd", "fwd+bwd")
_MODE_FLOP_FACTOR = {"fwd": 1, "fwd+bwd": 3}
OPS = ("dense", "conv3x3", "conv3x3_s2", "dw3x3")
SLOW_AUTO = 1.2  # flag auto choices this much slower than the fastest path
TARGET_FRACTION = 0.8  # of the real ceiling (times the useful fraction)
M4R_DENSE_MAX_TIME = 1.3  # M4R dense time / real time at equal MACs
# Variants whose depthwise backward is a grouped conv with more than one
# channel per group (slow on XLA:CPU, see the module doc).
GROUPED_DW_VARIANTS = (
    "einsum",
    "expand",
    "fold",
    "fold_persistent",
    "dw_grouped",
    "dw_grouped_folded",
)


def has_depthwise() -> bool:
  """Whether algebranets.kernels has the dedicated depthwise kernel."""
  return all(
      hasattr(kernels, n)
      for n in (
          "depthwise_conv2d",
          "depthwise_conv2d_folded",
          "DEPTHWISE_PATHS",
          "choose_depthwise_path",
      )
  )


@dataclasses.dataclass(frozen=True)
class Case:
  """One benchmark shape, in REAL channels (shared by all algebras).

  op: 'dense' (x [tokens, C, d]), 'conv3x3' / 'conv3x3_s2' (SAME, stride 1
  / 2) or 'dw3x3' (depthwise, channel multiplier 1, stride 1).
  cpu_grouped_grads: time the grouped-conv depthwise backward on CPU (see
  the module doc); False for shapes where it takes tens of seconds.
  """

  op: str
  label: str
  real_in: int
  real_out: int
  tokens: int = 0  # dense
  batch: int = 0  # conv
  hw: int = 0  # conv
  cpu_grouped_grads: bool = True


_SIZES: dict[str, list[Case]] = {
    "full": [
        Case("dense", "transformer proj T=128x8", 512, 512, tokens=1024),
        Case("dense", "transformer proj T=128x8", 1024, 1024, tokens=1024),
        Case("conv3x3", "resnet50 stage1", 64, 64, batch=8, hw=56),
        Case("conv3x3", "resnet50 stage3", 256, 256, batch=8, hw=14),
        Case("conv3x3", "resnet50 stage4", 512, 512, batch=8, hw=7),
        Case("conv3x3_s2", "resnet50 stage2 entry", 128, 128, batch=8, hw=56),
        Case("conv3x3_s2", "resnet50 stage4 entry", 512, 512, batch=8, hw=14),
        Case(
            "dw3x3",
            "mobilenet dw blocks7-11",
            512,
            512,
            batch=8,
            hw=14,
            cpu_grouped_grads=False,
        ),
    ],
    "quick": [
        Case("dense", "transformer proj", 256, 256, tokens=128),
        Case("conv3x3", "resnet50 stage", 64, 64, batch=2, hw=14),
        Case("conv3x3_s2", "resnet50 downsample", 64, 64, batch=2, hw=14),
        Case(
            "dw3x3",
            "mobilenet-like dw",
            128,
            128,
            batch=2,
            hw=14,
            cpu_grouped_grads=False,
        ),
    ],
    "tiny": [
        Case("dense", "tiny", 16, 16, tokens=4),
        Case("dense", "tiny batch-1", 16, 16, tokens=1),
        Case("conv3x3", "tiny", 16, 16, batch=1, hw=6),
        Case("conv3x3_s2", "tiny", 16, 16, batch=1, hw=6),
        Case("dw3x3", "tiny", 16, 16, batch=1, hw=6),
    ],
}
_DEFAULTS = {
    # size: (algebras, repeats)
    "full": (None, 7),  # None = every registered algebra
    "quick": (("R", "C", "H", "M2R", "M4R"), 5),
    "tiny": (("C", "M2R"), 2),
}


def _channels(real: int, d: int) -> int:
  return max(1, round(real / d))


def _identity(a):
  return a


@dataclasses.dataclass(frozen=True)
class Variant:
  """One way of computing a problem's op.

  fn(x_in, w_in) -> y, with x_in = x_in_fn(x) and w_in = w_in_fn(w) computed
  once, outside the timed function (x [.., C, d] standard, w canonical).
  y is standard, or folded for the folded variants (`folded_output`).
  `selectable`: a value `auto` chooses among (compared as 'fastest_path').
  """

  fn: Callable[..., jax.Array]
  x_in_fn: Callable[[jax.Array], Any] = _identity
  w_in_fn: Callable[[jax.Array], Any] = _identity
  modes: tuple[str, ...] = MODES
  selectable: bool = True
  folded_output: bool = False


@dataclasses.dataclass
class Problem:
  """One (algebra, case): concrete shapes, the algebra op and its baseline."""

  algebra: algebras.Algebra
  case: Case
  x_shape: tuple[int, ...]
  w_shape: tuple[int, ...]
  pairs: int  # weight-activation element pairs (one fwd)
  shape: str  # human-readable, algebra channels
  real_x_shape: tuple[int, ...]
  real_w_shape: tuple[int, ...]
  real_macs: int
  real_shape: str
  op: Callable[..., jax.Array]  # (x, w, path) -> y, path='auto' included
  real_op: Callable[[jax.Array, jax.Array], jax.Array]
  variants: dict[str, Variant]  # every variant but 'auto'
  auto_path: str  # the variant name 'auto' resolves to

  @property
  def intrinsic_macs(self) -> int:
    return self.pairs * self.algebra.macs_per_product

  @property
  def paths(self) -> tuple[str, ...]:
    """The variants `auto` chooses among."""
    return tuple(n for n, v in self.variants.items() if v.selectable)


def _path_variants(op, names, selectable=True) -> dict[str, Variant]:
  return {
      p: Variant(lambda x, w, p=p: op(x, w, path=p), selectable=selectable)
      for p in names
  }


def make_problem(alg: algebras.Algebra, case: Case) -> Problem:
  """Shapes for `case` in `alg`, its variants and a MAC-matched baseline."""
  d, mpp = alg.dim, alg.macs_per_product
  matrix = alg.matrix_shape is not None and d > 1
  c_in, c_out = _channels(case.real_in, d), _channels(case.real_out, d)
  fold = functools.partial(layout_lib.fold, algebra=alg)
  if case.op == "dense":
    x_shape, w_shape = (case.tokens, c_in, d), (c_in, c_out, d)
    pairs = case.tokens * c_in * c_out
    # Real K x K' matmul with K * K' = c_in * c_out * mpp (aspect kept).
    k_in = max(1, round(math.sqrt(c_in * c_out * mpp * c_in / c_out)))
    k_out = max(1, round(c_in * c_out * mpp / k_in))
    real_x, real_w = (case.tokens, k_in), (k_in, k_out)
    real_macs = case.tokens * k_in * k_out
    shape = f"T={case.tokens} {c_in}->{c_out}"
    real_shape = f"T={case.tokens} {k_in}->{k_out}"
    op = functools.partial(kernels.dense, algebra=alg)
    real_op = jnp.dot
    auto = kernels.choose_dense_path(alg, x_shape, w_shape)
    variants = _path_variants(
        op, [p for p in kernels.DENSE_PATHS if p != "fold" or matrix]
    )
    if matrix:
      variants["fold_persistent"] = Variant(
          functools.partial(kernels.dense_folded, algebra=alg),
          x_in_fn=fold,
          selectable=False,
          folded_output=True,
      )
    variants["prepared"] = Variant(
        kernels.dense_prepared,
        w_in_fn=functools.partial(
            kernels.prepare_dense, algebra=alg, path=auto
        ),
        modes=("fwd",),
        selectable=False,
    )
  elif case.op in ("conv3x3", "conv3x3_s2", "dw3x3"):
    stride = 2 if case.op == "conv3x3_s2" else 1
    depthwise = case.op == "dw3x3"
    b, hw = case.batch, case.hw
    out_hw = math.ceil(hw / stride)
    groups = c_in if depthwise else 1
    m = c_in if depthwise else c_out
    x_shape = (b, hw, hw, c_in, d)
    w_shape = (3, 3, c_in // groups, m, d)
    pairs = b * out_hw * out_hw * 9 * (c_in // groups) * m
    if depthwise:
      k_in = k_out = c_in * mpp  # real depthwise, same MACs
      real_groups = k_in
      real_w = (3, 3, 1, k_out)
    else:
      k_in = max(1, round(math.sqrt(c_in * m * mpp)))
      k_out = max(1, round(c_in * m * mpp / k_in))
      real_groups = 1
      real_w = (3, 3, k_in, k_out)
    real_x = (b, hw, hw, k_in)
    real_macs = b * out_hw * out_hw * 9 * (k_in // real_groups) * k_out
    kind = "dw" if depthwise else f"s{stride}"
    shape = f"B={b} {hw}x{hw} {c_in}->{m} {kind}"
    real_shape = f"B={b} {hw}x{hw} {k_in}->{k_out} {kind}"
    conv_kw = dict(stride=stride, padding="SAME")
    conv = functools.partial(
        kernels.conv2d, algebra=alg, feature_group_count=groups, **conv_kw
    )
    real_op = functools.partial(
        lax.conv_general_dilated,
        window_strides=(stride, stride),
        padding="SAME",
        feature_group_count=real_groups,
        dimension_numbers=_DIMS,
    )
    dedicated = depthwise and has_depthwise()
    # With the dedicated depthwise kernel (what DepthwiseConv2D calls), its
    # paths are the ones `auto` chooses among; conv2d's stay as variants.
    variants = _path_variants(
        conv,
        [p for p in kernels.CONV_PATHS if p != "fold" or matrix],
        selectable=not dedicated,
    )
    op, auto = conv, kernels.choose_conv_path(alg, x_shape, w_shape)
    if matrix and not dedicated:
      variants["fold_persistent"] = Variant(
          functools.partial(
              kernels.conv2d_folded,
              algebra=alg,
              feature_group_count=groups,
              **conv_kw,
          ),
          x_in_fn=fold,
          selectable=False,
          folded_output=True,
      )
    if dedicated:
      dw = functools.partial(kernels.depthwise_conv2d, algebra=alg, **conv_kw)
      dw_folded = functools.partial(
          kernels.depthwise_conv2d_folded, algebra=alg, **conv_kw
      )
      for p in kernels.DEPTHWISE_PATHS:
        variants[f"dw_{p}"] = Variant(lambda x, w, p=p: dw(x, w, path=p))
      if matrix:
        # The folded depthwise kernel, per path, on a pre-folded input
        # (its 'grouped' path is conv2d_folded: the conv ops'
        # fold_persistent).
        for p in kernels.DEPTHWISE_PATHS:
          variants[f"dw_{p}_folded"] = Variant(
              lambda x, w, p=p: dw_folded(x, w, path=p),
              x_in_fn=fold,
              selectable=False,
              folded_output=True,
          )

      def op(x, w, path, dw=dw):
        return dw(x, w, path=path.removeprefix("dw_"))

      auto = "dw_" + kernels.choose_depthwise_path(alg, x_shape, w_shape)
  else:
    raise ValueError(f"Unknown op {case.op!r}; valid: {', '.join(OPS)}.")
  return Problem(
      algebra=alg,
      case=case,
      x_shape=x_shape,
      w_shape=w_shape,
      pairs=pairs,
      shape=shape,
      real_x_shape=real_x,
      real_w_shape=real_w,
      real_macs=real_macs,
      real_shape=real_shape,
      op=op,
      real_op=real_op,
      variants=variants,
      auto_path=auto,
  )


def skip_reason(
    prob: Problem, variant: str, mode: str, *, grouped_grads: bool = False
) -> str | None:
  """Why `variant` of `prob` is not timed in `mode` (None: it is timed).

  Args:
    prob: the problem.
    variant: a name from `prob.variants`, or 'auto'.
    mode: 'fwd' or 'fwd+bwd'.
    grouped_grads: time slow grouped depthwise gradients on CPU anyway.
  """
  name = prob.auto_path if variant == "auto" else variant
  if mode not in prob.variants[name].modes:
    return "inference cache (forward only)"
  if (
      mode == "fwd+bwd"
      and prob.case.op == "dw3x3"
      and prob.algebra.dim > 1
      and name in GROUPED_DW_VARIANTS
      and not prob.case.cpu_grouped_grads
      and not grouped_grads
      and jax.default_backend() == "cpu"
  ):
    return (
        "XLA:CPU grouped-conv weight gradient (jax#13800); "
        "--dw-grouped-grads to time"
    )
  return None


def variant_call(
    prob: Problem, variant: str, mode: str
) -> tuple[Callable[..., Any], Callable[[jax.Array, jax.Array], tuple]]:
  """(jitted function f, inputs) for one variant of `prob` (or 'auto').

  `f(*inputs(x, w, ct))` runs the variant on x (standard [.., C, d]) and w
  (canonical), converted to the variant's layouts outside f. fwd: f returns
  y (folded for `folded_output` variants). fwd+bwd: f returns the
  cotangents of (x_in, w_in) for the output cotangent ct (in y's layout;
  ones when None).
  """
  if variant == "auto":
    v = Variant(functools.partial(prob.op, path="auto"))
  else:
    v = prob.variants[variant]

  def inputs(x, w, ct=None):
    args = (v.x_in_fn(x), v.w_in_fn(w))
    if mode == "fwd":
      return args
    if ct is None:
      y = jax.eval_shape(v.fn, *args)
      ct = jnp.ones(y.shape, y.dtype)
    return (*args, ct)

  return _jitted(v.fn, mode), inputs


def _jitted(fn: Callable, mode: str) -> Callable:
  """jit of fn(x, w) (fwd) or of its vjp w.r.t. (x, w) (fwd+bwd)."""
  if mode == "fwd":
    return jax.jit(fn)

  def fwd_bwd(x, w, ct):
    _, vjp = jax.vjp(fn, x, w)
    return vjp(ct)

  return jax.jit(fwd_bwd)


def _arrays(x_shape, w_shape, fn, mode, dtype, rng):
  scale = 1.0 / math.sqrt(math.prod(w_shape[:-1]))
  x = jnp.asarray(rng.standard_normal(x_shape), dtype)
  w = jnp.asarray(scale * rng.standard_normal(w_shape), dtype)
  if mode == "fwd":
    return (x, w)
  y = jax.eval_shape(fn, x, w)
  ct = jnp.asarray(rng.standard_normal(y.shape), dtype)
  return (x, w, ct)


def run_problem(
    prob: Problem,
    mode: str,
    *,
    repeats: int,
    dtype,
    min_sample_s: float,
    max_seconds: float | None = None,
    seed: int = 0,
    grouped_grads: bool = False,
    skipped: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
  """Time every variant, 'auto' and the real baseline of one problem.

  Args:
    prob: from `make_problem`.
    mode: 'fwd' or 'fwd+bwd'.
    repeats, min_sample_s, max_seconds: see `common.time_interleaved`.
    dtype: of activations and weights.
    seed: numpy seed of the inputs.
    grouped_grads: see `skip_reason`.
    skipped: variants not timed are appended here (with the reason).

  Returns:
    One row per timed variant, 'auto' and 'real'.
  """
  rng = np.random.default_rng(seed)
  names = []
  for name in [*prob.variants, "auto"]:
    why = skip_reason(prob, name, mode, grouped_grads=grouped_grads)
    if why is None:
      names.append(name)
    elif skipped is not None:
      skipped.append(
          {
              "algebra": prob.algebra.name,
              "op": prob.case.op,
              "case": prob.case.label,
              "shape": prob.shape,
              "mode": mode,
              "path": name,
              "reason": why,
          }
      )
  x, w = _arrays(prob.x_shape, prob.w_shape, None, "fwd", dtype, rng)
  y = jax.eval_shape(functools.partial(prob.op, path="auto"), x, w)
  ct = jnp.asarray(rng.standard_normal(y.shape), dtype)
  fns = {}
  for name in names:
    f, inputs = variant_call(prob, name, mode)
    v = prob.variants.get(name)
    ct_in = ct
    if v is not None and v.folded_output:
      ct_in = layout_lib.fold(ct, prob.algebra)
    fns[name] = functools.partial(f, *inputs(x, w, ct_in))
  real_args = _arrays(
      prob.real_x_shape, prob.real_w_shape, prob.real_op, mode, dtype, rng
  )
  fns["real"] = functools.partial(_jitted(prob.real_op, mode), *real_args)
  timings = common.time_interleaved(
      fns,
      repeats=repeats,
      min_sample_s=min_sample_s,
      max_seconds=max_seconds,
  )
  factor = 2 * _MODE_FLOP_FACTOR[mode]
  # The auto variant is timed on its own (its dispatch included) and so is
  # its chosen path: both ratios to the fastest path are reported, and only
  # a gap in both is more than noise.
  real_t = timings["real"].median
  real_gflops = factor * prob.real_macs / real_t / 1e9
  timed = [n for n in names if n != "auto"]
  selectable = [n for n in prob.paths if n in timings]
  fastest = min(selectable or timed, key=lambda p: timings[p].median)
  fastest_variant = min(timed, key=lambda p: timings[p].median)
  chosen = timings.get(prob.auto_path)
  base = {
      "algebra": prob.algebra.name,
      "d": prob.algebra.dim,
      "macs_per_product": prob.algebra.macs_per_product,
      "op": prob.case.op,
      "case": prob.case.label,
      "real_channels": [prob.case.real_in, prob.case.real_out],
      "mode": mode,
      "auto_path": prob.auto_path,
      "fastest_path": fastest,
      "fastest_variant": fastest_variant,
      # None when the auto choice itself was skipped (see skip_reason).
      "chosen_vs_fastest": (
          chosen.median / timings[fastest].median if chosen else None
      ),
      "real_gflops": real_gflops,
      "dtype": jnp.dtype(dtype).name,
  }
  rows = []
  for name in [*names, "real"]:
    t = timings[name]
    if name == "real":
      macs, shape = prob.real_macs, prob.real_shape
      x_shape, w_shape = prob.real_x_shape, prob.real_w_shape
    else:
      macs, shape = prob.intrinsic_macs, prob.shape
      x_shape, w_shape = prob.x_shape, prob.w_shape
    gflops = factor * macs / t.median / 1e9
    rows.append(
        {
            **base,
            "path": name,
            "resolved_path": prob.auto_path if name == "auto" else name,
            "is_auto_choice": name in ("auto", prob.auto_path),
            "is_fastest": name == fastest,
            "is_fastest_variant": name == fastest_variant,
            "shape": shape,
            "x_shape": list(x_shape),
            "w_shape": list(w_shape),
            "macs": macs,
            **t.summary_ms(),
            "gflops": gflops,
            "ratio_to_real": gflops / real_gflops,
            "vs_fastest": t.median / timings[fastest].median,
        }
    )
  return rows


def _fmt_ms(row, repeats: int | None) -> str:
  star = "*" if row["is_fastest"] else ""
  star += "+" if row.get("is_fastest_variant") else ""
  few = ""
  if repeats is not None and row["n_samples"] < repeats:
    few = f" (n={row['n_samples']})"  # cut by --max-seconds
  return (
      f"{row['ms_median']:.3g}{star} "
      f"[{row['ms_q25']:.3g}-{row['ms_q75']:.3g}]{few}"
  )


def ceiling_fraction(alg: algebras.Algebra) -> float:
  """The fraction of the real ceiling the library's best path can reach.

  1 for matrix algebras (the fold does exactly the intrinsic MACs) and for
  algebras whose block expansion has no structural zeros (R, C, H);
  macs_per_product / d^2 otherwise (dual 3/4, cross 6/9).
  """
  if alg.matrix_shape is not None:
    return 1.0
  return alg.macs_per_product / alg.dim**2


def targets(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """The issue's kernel targets, evaluated on the 'auto' rows.

  'ceiling': dense and conv fwd+bwd reach TARGET_FRACTION x
  ceiling_fraction of the real ceiling. 'm4r_dense_time': M4R dense time
  <= M4R_DENSE_MAX_TIME x the real time at equal intrinsic MACs (both
  modes). Each entry also gives the best measured variant's value.
  """
  groups: dict[tuple, list[dict[str, Any]]] = {}
  for r in rows:
    if r["path"] != "real":
      key = (r["algebra"], r["op"], r["shape"], r["mode"])
      groups.setdefault(key, []).append(r)
  out = []
  for r in rows:
    if r["path"] != "auto" or r["op"] == "dw3x3":
      continue
    # Best measured: any variant, auto included (same MACs, so max GF/s).
    best = max(
        groups[(r["algebra"], r["op"], r["shape"], r["mode"])],
        key=lambda x: x["ratio_to_real"],
    )
    best_name = best["path"]
    if best_name == "auto":
      best_name = f"auto={r['auto_path']}"
    common_fields = {
        "algebra": r["algebra"],
        "op": r["op"],
        "case": r["case"],
        "shape": r["shape"],
        "mode": r["mode"],
        "auto_path": r["auto_path"],
        "best_variant": best_name,
    }
    if r["mode"] == "fwd+bwd":
      needed = TARGET_FRACTION * ceiling_fraction(algebras.get(r["algebra"]))
      out.append(
          {
              **common_fields,
              "target": "ceiling",
              "value": r["ratio_to_real"],
              "needed": needed,
              "pass": r["ratio_to_real"] >= needed,
              "best_value": best["ratio_to_real"],
              "best_pass": best["ratio_to_real"] >= needed,
          }
      )
    if r["algebra"] == "M4R" and r["op"] == "dense":
      out.append(
          {
              **common_fields,
              "target": "m4r_dense_time",
              "value": 1 / r["ratio_to_real"],
              "needed": M4R_DENSE_MAX_TIME,
              "pass": 1 / r["ratio_to_real"] <= M4R_DENSE_MAX_TIME,
              "best_value": 1 / best["ratio_to_real"],
              "best_pass": 1 / best["ratio_to_real"] <= M4R_DENSE_MAX_TIME,
          }
      )
  return out


def _verdict(ok: bool) -> str:
  return "PASS" if ok else "FAIL"


def targets_tables(tgts: Sequence[dict[str, Any]]) -> str:
  """Markdown for `targets`: one row per case, then one per algebra."""
  ceiling = [t for t in tgts if t["target"] == "ceiling"]
  m4r = [t for t in tgts if t["target"] == "m4r_dense_time"]
  out = [
      "## Targets (computed, never asserted)",
      "",
      f"fwd+bwd through auto >= {TARGET_FRACTION} x the real ceiling x the "
      "useful fraction (1; dual 3/4; cross 6/9); best = the best measured "
      "variant of any kind, auto included (e.g. fold_persistent).",
      "",
      common.markdown_table(
          [
              "algebra",
              "op",
              "shape",
              "auto",
              "auto x real",
              "needed",
              "result",
              "best variant",
              "best x real",
              "best result",
          ],
          [
              [
                  t["algebra"],
                  t["op"],
                  t["shape"],
                  t["auto_path"],
                  f"{t['value']:.2f}",
                  f">= {t['needed']:.2f}",
                  _verdict(t["pass"]),
                  t["best_variant"],
                  f"{t['best_value']:.2f}",
                  _verdict(t["best_pass"]),
              ]
              for t in ceiling
          ],
      ),
  ]
  per_alg: dict[str, dict[str, list]] = {}
  for t in ceiling:
    kind = "dense" if t["op"] == "dense" else "conv"
    per_alg.setdefault(t["algebra"], {}).setdefault(kind, []).append(t)
  body = []
  for alg, kinds in per_alg.items():
    cells = [alg]
    for kind in ("dense", "conv"):
      ts = kinds.get(kind)
      if not ts:
        cells.append("")
        continue
      worst = min(ts, key=lambda t: t["value"] - t["needed"])
      n_pass = sum(t["pass"] for t in ts)
      cells.append(
          f"{_verdict(n_pass == len(ts))} ({n_pass}/{len(ts)}; worst "
          f"{worst['value']:.2f} vs {worst['needed']:.2f})"
      )
    body.append(cells)
  out += [
      "",
      "Per algebra (auto, all cases of the kind):",
      "",
      common.markdown_table(["algebra", "dense fwd+bwd", "conv fwd+bwd"], body),
  ]
  if m4r:
    out += [
        "",
        f"M4R dense time / real time at equal intrinsic MACs <= "
        f"{M4R_DENSE_MAX_TIME}:",
        "",
        common.markdown_table(
            [
                "shape",
                "mode",
                "auto",
                "time / real",
                "result",
                "best variant",
                "best time / real",
                "best result",
            ],
            [
                [
                    t["shape"],
                    t["mode"],
                    t["auto_path"],
                    f"{t['value']:.2f}",
                    _verdict(t["pass"]),
                    t["best_variant"],
                    f"{t['best_value']:.2f}",
                    _verdict(t["best_pass"]),
                ]
                for t in m4r
            ],
        ),
    ]
  return "\n".join(out)


def tables(
    rows: Sequence[dict[str, Any]],
    repeats: int | None = None,
    skipped: Sequence[dict[str, Any]] = (),
) -> str:
  """Markdown: one line per (algebra, op, shape, variant), fwd and fwd+bwd
  side by side; the auto-vs-fastest summary; the skipped variants; the
  targets. Rows with fewer than `repeats` samples are marked."""
  by_key: dict[tuple, dict[str, dict]] = {}
  for r in rows:
    key = (r["algebra"], r["op"], r["shape"], r["path"])
    by_key.setdefault(key, {})[r["mode"]] = r
  body = []
  for key, modes in by_key.items():
    any_row = next(iter(modes.values()))
    path = key[3]
    if path == "auto":
      path = f"auto={any_row['auto_path']}"
    cells = [
        key[0],
        key[1],
        key[2],
        path,
        "<-" if any_row["is_auto_choice"] and key[3] != "auto" else "",
    ]
    for mode in MODES:
      r = modes.get(mode)
      if r is None:
        cells += ["-", "", ""]
      else:
        cells += [
            _fmt_ms(r, repeats),
            f"{r['gflops']:.1f}",
            f"{r['ratio_to_real']:.2f}",
        ]
    body.append(cells)
  header = ["algebra", "op", "shape", "variant", "auto"]
  for mode in MODES:
    header += [f"{mode} ms [IQR]", f"{mode} GF/s", f"{mode} x real"]
  out = [
      "## Per variant (* = fastest path auto can choose, + = fastest of all "
      "variants; GF/s = intrinsic algebra GFLOP/s; x real = GF/s / "
      "MAC-matched real baseline GF/s; - = not timed, see below)",
      "",
      common.markdown_table(header, body),
  ]
  summary = []
  for r in rows:
    if r["path"] != "auto":
      continue
    chosen = r["chosen_vs_fastest"]
    slow = chosen is not None and min(r["vs_fastest"], chosen) > SLOW_AUTO
    summary.append(
        [
            r["algebra"],
            r["op"],
            r["shape"],
            r["mode"],
            r["auto_path"],
            r["fastest_path"],
            r["fastest_variant"],
            f"{r['vs_fastest']:.2f}",
            ("n/a" if chosen is None else f"{chosen:.2f}")
            + ("  **SLOW**" if slow else ""),
            f"{r['ratio_to_real']:.2f}",
        ]
    )
  out += [
      "",
      "## Auto choice vs fastest measured path",
      "",
      f"(**SLOW**: both the auto variant and its chosen path are more than "
      f"{SLOW_AUTO}x slower than the fastest path auto could choose; "
      "fastest variant includes fold_persistent / prepared, which need a "
      "different call)",
      "",
      common.markdown_table(
          [
              "algebra",
              "op",
              "shape",
              "mode",
              "auto picks",
              "fastest path",
              "fastest variant",
              "auto / fastest path",
              "chosen path / fastest path",
              "auto x real",
          ],
          summary,
      ),
  ]
  if skipped:
    grouped: dict[tuple, list[str]] = {}
    for k in skipped:
      grouped.setdefault(
          (k["op"], k["shape"], k["mode"], k["reason"]), []
      ).append(f"{k['algebra']}:{k['path']}")
    out += [
        "",
        "## Not timed",
        "",
        common.markdown_table(
            ["op", "shape", "mode", "reason", "variants"],
            [[*key, " ".join(v)] for key, v in grouped.items()],
        ),
    ]
  tgts = targets(rows)
  if tgts:
    out += ["", targets_tables(tgts)]
  return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m bench.kernels",
      description=__doc__.split("\n\n")[0],
  )
  parser.add_argument(
      "--quick",
      action="store_true",
      help="small shapes, few algebras and repeats (~1-2 min on 2 CPU cores)",
  )
  parser.add_argument(
      "--size",
      choices=tuple(_SIZES),
      default=None,
      help="shape set; default 'full' ('quick' with --quick)",
  )
  parser.add_argument("--out", default=None, help="write JSON results here")
  parser.add_argument(
      "--algebras",
      default=None,
      help="comma-separated algebra names (default: all registered; "
      "R,C,H,M2R,M4R with --quick)",
  )
  parser.add_argument(
      "--ops",
      default=",".join(OPS),
      help=f"comma-separated subset of {','.join(OPS)}",
  )
  parser.add_argument(
      "--modes", default=",".join(MODES), help="fwd, fwd+bwd or both"
  )
  parser.add_argument(
      "--repeats",
      type=int,
      default=None,
      help="interleaved rounds (samples) per variant",
  )
  parser.add_argument(
      "--min-sample-ms",
      type=float,
      default=5.0,
      help="repeat cheap calls within a sample until it lasts this long",
  )
  parser.add_argument(
      "--max-seconds",
      type=float,
      default=30.0,
      help="time budget for the timed rounds of one (algebra, case, mode); "
      "slower problems get fewer rounds (at least 3); 0 = no budget",
  )
  parser.add_argument(
      "--dtype", choices=("float32", "bfloat16"), default="float32"
  )
  parser.add_argument(
      "--dw-grouped-grads",
      action="store_true",
      help="on CPU, also time the grouped-conv depthwise fwd+bwd variants "
      "that are skipped by default at full size (tens of seconds per call)",
  )
  args = parser.parse_args(argv)
  if args.size is None:
    args.size = "quick" if args.quick else "full"
  default_algebras, default_repeats = _DEFAULTS[args.size]
  if args.algebras is None:
    args.algebras = default_algebras or tuple(algebras.names())
  else:
    args.algebras = tuple(a for a in args.algebras.split(",") if a)
  if args.repeats is None:
    args.repeats = default_repeats
  if args.repeats < 1:
    parser.error(f"--repeats must be >= 1, got {args.repeats}.")
  args.ops = tuple(o for o in args.ops.split(",") if o)
  bad = [o for o in args.ops if o not in OPS]
  if bad:
    parser.error(f"unknown --ops {bad}; valid: {', '.join(OPS)}.")
  args.modes = tuple(m for m in args.modes.split(",") if m)
  bad = [m for m in args.modes if m not in MODES]
  if bad:
    parser.error(f"unknown --modes {bad}; valid: {', '.join(MODES)}.")
  for name in args.algebras:
    try:
      algebras.get(name)
    except ValueError as e:
      parser.error(str(e))
  return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Run the benchmark; print machine info and tables; return the results
  (also written as JSON to --out)."""
  args = parse_args(argv)
  info = common.machine_info()
  print(common.format_machine_info(info), flush=True)
  print(
      f"size={args.size} repeats={args.repeats} dtype={args.dtype} "
      f"algebras={','.join(args.algebras)} ops={','.join(args.ops)}",
      flush=True,
  )
  cases = [c for c in _SIZES[args.size] if c.op in args.ops]
  dtype = jnp.dtype(args.dtype)
  rows: list[dict[str, Any]] = []
  skipped: list[dict[str, Any]] = []
  print(
      "depthwise kernel: "
      + (
          f"kernels.depthwise_conv2d, paths {kernels.DEPTHWISE_PATHS}"
          if has_depthwise()
          else "not in this library version (conv2d paths only)"
      ),
      flush=True,
  )
  t_start = time.perf_counter()
  for name in args.algebras:
    alg = algebras.get(name)
    for case in cases:
      prob = make_problem(alg, case)
      for mode in args.modes:
        t0 = time.perf_counter()
        new = run_problem(
            prob,
            mode,
            repeats=args.repeats,
            dtype=dtype,
            min_sample_s=args.min_sample_ms / 1e3,
            max_seconds=args.max_seconds or None,
            grouped_grads=args.dw_grouped_grads,
            skipped=skipped,
        )
        rows += new
        auto = [r for r in new if r["path"] == "auto"]
        vs = f"{auto[0]['vs_fastest']:.2f}" if auto else "n/a"
        print(
            f"  {name:>5} {case.op:<10} {prob.shape:<28} {mode:<7} "
            f"auto={prob.auto_path:<6} fastest={new[0]['fastest_path']:<6} "
            f"auto/fastest={vs} ({time.perf_counter() - t0:.1f}s)",
            file=sys.stderr,
            flush=True,
        )
  wall = time.perf_counter() - t_start
  print()
  print(tables(rows, args.repeats, skipped))
  print(f"\nwall time {wall:.1f}s")
  results = {
      "machine": info,
      "config": {
          "size": args.size,
          "algebras": list(args.algebras),
          "ops": list(args.ops),
          "modes": list(args.modes),
          "repeats": args.repeats,
          "min_sample_ms": args.min_sample_ms,
          "max_seconds": args.max_seconds,
          "dtype": args.dtype,
          "dw_grouped_grads": args.dw_grouped_grads,
          "depthwise_kernel": has_depthwise(),
          "argv": list(sys.argv[1:] if argv is None else argv),
      },
      "wall_s": wall,
      "rows": rows,
      "skipped": skipped,
      "targets": targets(rows),
  }
  common.write_results(args.out, results)
  return results


if __name__ == "__main__":
  main()
