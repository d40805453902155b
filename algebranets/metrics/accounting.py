"""Parameter and multiply-add (MAC) accounting for Haiku models.

Definitions used throughout (and by every number this module reports):

  params  the number of real numbers in a pytree: an algebra weight of shape
          [N, M, d] counts N * M * d. Haiku state (BatchNorm moving averages)
          is counted separately (`count_state`), never as parameters.
  MACs    real multiply-adds of the LINEAR layers only: dense and
          convolution layers (and anything defining `mac_count`). Biases,
          normalisation, activations, pooling, softmax, residual adds and
          attention score/value products are NOT counted, so the figure is the
          conventional one quoted for models (ResNet-50 at 224x224: 4.09 G).
  intrinsic algebra MACs
          for an algebra layer, the naive product count: each weight-activation
          pair costs `Algebra.macs_per_product` (nonzeros of the structure
          constants: R 1, C 4, dual 3, cross 6, H 16, M2R 8, M3R 27, M4R 64,
          M2C 32) real multiply-adds, whatever the kernel path actually runs.
  FLOPs   2 x MACs (one multiply plus one add).

Convolutions count the full kernel at every output position (zero padding is
not discounted); a transposed convolution counts every tap of every INPUT
position. `hk.Embed` is a lookup and counts 0.

Shape glossary: T = tokens (all leading axes of a dense input), B = batch,
C = input channels, O = output channels, G = feature groups, K = kernel
positions (prod(kernel_shape)), d = algebra dimension.

Example:

  def net(x):
    return hk.nets.ResNet50(1000)(x, is_training=False)

  report = count_macs(net, jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32))
  print(report.table())   # per layer, then "total ... 4,089,184,256"
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import haiku as hk
import jax
import numpy as np

Shape = tuple[int, ...]

# Modules that own parameters or state but perform no linear-layer MACs by the
# definition above; they are never reported as "uncounted". Other modules opt
# in with a class attribute `performs_no_macs = True` (algebranets' norms and
# parametric activations do).
_ZERO_MAC_MODULES = tuple(
    getattr(hk, n)
    for n in (
        "BatchNorm",
        "LayerNorm",
        "GroupNorm",
        "RMSNorm",
        "InstanceNorm",
        "Bias",
        "ExponentialMovingAverage",
        "EMAParamsTree",
        "SpectralNorm",
        "SNParamsTree",
    )
    if hasattr(hk, n)
)

_TRANSFORMED_TYPES = (
    hk.Transformed,
    hk.TransformedWithState,
    hk.MultiTransformed,
    hk.MultiTransformedWithState,
)


# -- parameters ---------------------------------------------------------------


def _leaf_size(leaf) -> int:
  shape = getattr(leaf, "shape", None)
  if shape is None:
    shape = np.shape(leaf)
  return math.prod(shape)


def count_params(params: Any) -> int:
  """Total number of real numbers in a pytree of arrays.

  Args:
    params: any pytree whose leaves have a `.shape` (arrays, tracers,
      `jax.ShapeDtypeStruct` from `jax.eval_shape(init, ...)`) or are numbers.
      An algebra weight [N, M, d] counts N * M * d.

  Returns:
    The sum of the leaf sizes, a Python int (0 for an empty tree).
  """
  return sum(_leaf_size(leaf) for leaf in jax.tree.leaves(params))


def count_state(state: Any) -> int:
  """Total number of real numbers in Haiku state (e.g. BatchNorm averages).

  Same rule as `count_params`; kept separate so that state is never silently
  added to a parameter count.
  """
  return count_params(state)


@dataclasses.dataclass(frozen=True)
class ParamRow:
  """One module's entries in a params (or state) tree.

  Attributes:
    module: Haiku module name, e.g. "res_net50/~/initial_conv" (for a generic
      pytree: the key path of the leaf's parent).
    shapes: {parameter name: shape}, in tree order.
    count: real numbers in this module's leaves.
  """

  module: str
  shapes: dict[str, Shape]
  count: int


@dataclasses.dataclass(frozen=True)
class ParamTable:
  """Per-module parameter counts; see `param_table`."""

  rows: tuple[ParamRow, ...]

  @property
  def total(self) -> int:
    return sum(r.count for r in self.rows)

  def table(self) -> str:
    """Markdown table: module, parameter shapes, count, then a total line."""
    lines = ["| module | shapes | count |", "| --- | --- | ---: |"]
    for r in self.rows:
      shapes = ", ".join(f"{k} {list(v)}" for k, v in r.shapes.items())
      lines.append(f"| {r.module} | {shapes} | {r.count:,} |")
    lines.append(f"| **total** | | {self.total:,} |")
    return "\n".join(lines)


def _key_name(k) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def param_table(params: Any) -> ParamTable:
  """Groups a params (or state) tree by module, with exact real counts.

  Args:
    params: Haiku params or state, {module_name: {param_name: array}}, as
      arrays or `jax.ShapeDtypeStruct`s. Other pytrees also work: a leaf's
      parent key path plays the module and its last key the parameter name.

  Returns:
    A `ParamTable` with one `ParamRow` per module in tree order; `.total`
    equals `count_params(params)`.
  """
  grouped: dict[str, dict[str, Shape]] = {}
  counts: dict[str, int] = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = [_key_name(k) for k in path]
    module = "/".join(names[:-1]) if len(names) > 1 else "~"
    name = names[-1] if names else "~"
    shape = tuple(getattr(leaf, "shape", np.shape(leaf)))
    grouped.setdefault(module, {})[name] = shape
    counts[module] = counts.get(module, 0) + math.prod(shape)
  rows = tuple(ParamRow(m, s, counts[m]) for m, s in grouped.items())
  return ParamTable(rows)


# -- MAC rules ----------------------------------------------------------------


def _shape(a) -> Shape:
  return tuple(a.shape)


def _size(a) -> int:
  return math.prod(a.shape)


def _check_rank(module, x, allowed: Sequence[int]):
  if x.ndim not in allowed:
    raise ValueError(
        f"count_macs: {type(module).__name__} {module.module_name!r} got an "
        f"input of shape {_shape(x)}; its MAC rule expects rank in "
        f"{list(allowed)}. If this is a subclass with a different layout "
        "(e.g. an algebra axis), give it a `mac_count(self, x, y) -> int` "
        "method."
    )


def _linear_macs(module: hk.Linear, x, y) -> int:
  # y[..., O] = x[..., C] @ w[C, O]: T * C * O == y.size * C.
  return _size(y) * x.shape[-1]


def _conv_macs(module: hk.ConvND, x, y) -> int:
  # K * C/G multiply-adds per output element y[b, pos, o].
  n = module.num_spatial_dims
  _check_rank(module, x, (n + 1, n + 2))
  batched = x.shape if x.ndim == n + 2 else (1, *x.shape)
  in_channels = batched[module.channel_index]
  k = math.prod(module.kernel_shape)
  return _size(y) * k * (in_channels // module.feature_group_count)


def _depthwise_macs(module, x, y) -> int:
  # Each output element sees K taps of exactly one input channel.
  n = module.num_spatial_dims
  _check_rank(module, x, (n + 2,))
  return _size(y) * math.prod(module.kernel_shape)


def _conv_transpose_macs(module: hk.ConvNDTranspose, x, y) -> int:
  # Every input element is multiplied into K * O outputs (taps that land in
  # cropped padding are still counted, as is conventional).
  n = module.num_spatial_dims
  _check_rank(module, x, (n + 1, n + 2))
  return _size(x) * math.prod(module.kernel_shape) * module.output_channels


def _embed_macs(module, x, y) -> int:
  del module, x, y  # A table lookup; ONE_HOT style is an implementation detail.
  return 0


# Checked in order after `mac_count`; the first isinstance match wins.
_HAIKU_RULES: tuple[tuple[tuple[type, ...], Callable[..., int]], ...] = (
    ((hk.Linear,), _linear_macs),
    ((hk.ConvND,), _conv_macs),
    (
        (hk.DepthwiseConv1D, hk.DepthwiseConv2D, hk.DepthwiseConv3D),
        _depthwise_macs,
    ),
    ((hk.ConvNDTranspose,), _conv_transpose_macs),
    ((hk.Embed,), _embed_macs),
)


def _rule_for(module) -> Callable[[Any, Any], int] | None:
  """The MAC rule of a module, or None when it is not a compute layer."""
  method = getattr(module, "mac_count", None)
  if callable(method):
    return method
  for types, rule in _HAIKU_RULES:
    if isinstance(module, types):
      return lambda x, y, rule=rule: rule(module, x, y)
  return None


# -- MAC report ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LayerMacs:
  """One counted call of a compute module.

  Attributes:
    name: Haiku module name, e.g. "res_net50/~/logits".
    kind: "hk.Linear", "hk.Conv2D", or "<package>.<Class>" for other modules.
    input_shape: shape of the first positional input.
    output_shape: shape of the output (a pytree of shapes if not an array).
    params: real numbers in the parameters this module owns directly.
    macs: real multiply-adds of this call.
  """

  name: str
  kind: str
  input_shape: Any
  output_shape: Any
  params: int
  macs: int


@dataclasses.dataclass(frozen=True)
class MacReport:
  """Result of `count_macs`: one row per call of a compute module.

  Attributes:
    rows: counted calls in execution order (a module called twice appears
      twice).
    param_count: real numbers in the whole model's params.
    state_count: real numbers in the whole model's state.
    uncounted: names of modules that own parameters but have no MAC rule and
      are not inside a counted module (e.g. a custom layer calling
      `hk.get_parameter` without defining `mac_count`). Their compute is
      MISSING from `total`; give them a `mac_count` method. Normalisation and
      bias modules are never listed.
  """

  rows: tuple[LayerMacs, ...]
  param_count: int
  state_count: int
  uncounted: tuple[str, ...] = ()

  @property
  def total(self) -> int:
    """Total real multiply-adds of one call (see the module docstring)."""
    return sum(r.macs for r in self.rows)

  @property
  def flops(self) -> int:
    """2 x `total`."""
    return 2 * self.total

  def by_kind(self) -> dict[str, int]:
    """{kind: MACs}, kinds in order of first appearance."""
    out: dict[str, int] = {}
    for r in self.rows:
      out[r.kind] = out.get(r.kind, 0) + r.macs
    return out

  def table(self) -> str:
    """Markdown table of the rows, a total line, and any uncounted modules."""
    lines = [
        "| # | module | kind | input | output | params | MACs |",
        "| ---: | --- | --- | --- | --- | ---: | ---: |",
    ]
    for i, r in enumerate(self.rows):
      lines.append(
          f"| {i} | {r.name} | {r.kind} | {_fmt_shape(r.input_shape)} | "
          f"{_fmt_shape(r.output_shape)} | {r.params:,} | {r.macs:,} |"
      )
    lines.append(
        f"| | **total** | | | | {self.param_count:,} | {self.total:,} |"
    )
    lines.append("")
    lines.append(
        f"MACs: {self.total:,} ({_si(self.total)}); FLOPs = 2 x MACs = "
        f"{_si(self.flops)}; params: {self.param_count:,}; state: "
        f"{self.state_count:,}."
    )
    if self.uncounted:
      lines.append(
          "NOT counted (own parameters, no MAC rule; add `mac_count`): "
          + ", ".join(self.uncounted)
      )
    return "\n".join(lines)


def _fmt_shape(s) -> str:
  if isinstance(s, tuple) and all(isinstance(i, int) for i in s):
    return "[" + ", ".join(map(str, s)) + "]"
  return str(s)


def _si(n: int) -> str:
  for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
    if n >= div:
      return f"{n / div:.2f} {unit}"
  return str(n)


def _kind(module) -> str:
  cls = type(module)
  package = cls.__module__.split(".")[0]
  if package == "haiku":
    package = "hk"
  return f"{package}.{cls.__name__}"


def _is_array_like(leaf) -> bool:
  return isinstance(
      leaf, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct)
  )


def _shapes_of(tree) -> Any:
  if hasattr(tree, "shape"):
    return _shape(tree)
  return jax.tree.map(_shape, tree)


def _checked_macs(module, macs) -> int:
  if isinstance(macs, bool) or not isinstance(macs, (int, np.integer)):
    raise ValueError(
        f"count_macs: mac_count of {_kind(module)} {module.module_name!r} "
        f"returned {macs!r} ({type(macs).__name__}); it must return a Python "
        "int computed from static shapes (x.shape, y.shape), not an array."
    )
  if macs < 0:
    raise ValueError(
        f"count_macs: mac_count of {_kind(module)} {module.module_name!r} "
        f"returned {macs}; MACs must be >= 0."
    )
  return int(macs)


class _Recorder:
  """Method interceptor that records counted `__call__`s.

  A module is counted when it has a rule (`mac_count` or a Haiku rule) and no
  enclosing call is being counted: containers without a rule count through
  their children, and a counted layer that calls other layers internally
  (or its parent class's `__call__`) is counted once, by its own rule.
  """

  def __init__(self):
    self.rows: list[tuple[Any, Any, Any, int]] = []  # (module, x, y, macs)
    self._counting_depth = 0
    self.called_without_rule: list[Any] = []

  def __call__(self, next_f, args, kwargs, context):
    if context.method_name != "__call__" or self._counting_depth:
      return next_f(*args, **kwargs)
    module = context.module
    rule = _rule_for(module)
    if rule is None:
      self.called_without_rule.append(module)
      return next_f(*args, **kwargs)
    self._counting_depth += 1
    try:
      y = next_f(*args, **kwargs)
    finally:
      self._counting_depth -= 1
    if args:
      x = args[0]
    elif kwargs:
      x = next(iter(kwargs.values()))
    else:
      x = None
    macs = _checked_macs(module, rule(x, y))
    self.rows.append((module, _shapes_of(x), _shapes_of(y), macs))
    return y


def count_macs(fn: Callable[..., Any], *args, **kwargs) -> MacReport:
  """Counts the multiply-adds of one call of a Haiku model function.

  Nothing is computed and no activations are allocated: the model is
  initialised and applied under `jax.eval_shape`, so ResNet-50 at 224x224
  costs only its tracing time. Every module `__call__` is intercepted
  (`hk.intercept_methods`) and each compute module reports through, in order:

    1. its own `mac_count(self, x, y) -> int` method if it defines one
       (x = first positional input, y = output; both abstract, so use only
       `.shape`). algebranets' algebra layers define it with the intrinsic
       algebra count, i.e. positions * fan-in * out channels *
       `algebra.macs_per_product`;
    2. the built-in rules: `hk.Linear` T*C*O; `hk.Conv1D/2D/3D`/`hk.ConvND`
       output positions * K * C/G * O; `hk.DepthwiseConv1D/2D/3D` output
       positions * K * O; `hk.Conv*Transpose` input positions * K * C * O;
       `hk.Embed` 0.

  Modules without a rule (containers such as a ResNet block, `hk.nets.MLP`,
  `hk.MultiHeadAttention`; norms) contribute only through their children, and
  calls nested inside a counted module are not counted again. Every call is
  counted, so a module applied twice contributes twice.

  Limitations: a module traced once but executed many times (`hk.scan`,
  `hk.layer_stack`, `hk.fori_loop`) is counted once, and inside `hk.vmap` the
  mapped axis is invisible; count such models per step/layer instead.

  Args:
    fn: the UNtransformed model function (what you would pass to
      `hk.transform` or `hk.transform_with_state`). Already-transformed objects
      are rejected because their apply signature (with or without rng/state)
      cannot be told apart reliably.
    *args: inputs of `fn`: arrays or `jax.ShapeDtypeStruct`s (abstract is
      enough), plus any non-array arguments, which are passed through as
      static Python values.
    **kwargs: keyword inputs of `fn`, same rules. `fn` is both initialised
      and applied with them, so they must be valid for init: Haiku's
      BatchNorm needs `is_training=True` there (it has no moving averages
      yet). The linear-layer count does not depend on it.

  Returns:
    A `MacReport`; `.total` is the MAC count and `.table()` a markdown table.

  Raises:
    TypeError: if `fn` is already transformed.
    ValueError: if a `mac_count` returns something other than a non-negative
      int, or a Haiku layer sees an input rank its rule does not understand.
  """
  if isinstance(fn, _TRANSFORMED_TYPES):
    raise TypeError(
        f"count_macs: got an already-transformed {type(fn).__name__}; pass "
        "the untransformed model function instead (the `f` you gave to "
        "hk.transform / hk.transform_with_state), e.g. count_macs(f, x)."
    )
  if not callable(fn):
    raise TypeError(f"count_macs: fn must be callable, got {fn!r}.")

  transformed = hk.transform_with_state(fn)
  leaves, treedef = jax.tree.flatten((args, kwargs))
  dynamic = [i for i, leaf in enumerate(leaves) if _is_array_like(leaf)]
  recorder = _Recorder()

  # A fresh closure per call: eval_shape must trace (side effects included)
  # rather than reuse a cached trace of an earlier call.
  def run(*dynamic_leaves):
    filled = list(leaves)
    for i, v in zip(dynamic, dynamic_leaves, strict=True):
      filled[i] = v
    a, kw = jax.tree.unflatten(treedef, filled)
    rng = jax.random.key(0)
    params, state = transformed.init(rng, *a, **kw)
    with hk.intercept_methods(recorder):
      transformed.apply(params, state, rng, *a, **kw)
    return params, state

  abstract = [
      jax.ShapeDtypeStruct(np.shape(leaves[i]), leaves[i].dtype)
      for i in dynamic
  ]
  params, state = jax.eval_shape(run, *abstract)

  def own_params(module) -> int:
    return count_params(params.get(module.module_name, {}))

  rows = tuple(
      LayerMacs(
          name=module.module_name,
          kind=_kind(module),
          input_shape=x_shape,
          output_shape=y_shape,
          params=own_params(module),
          macs=macs,
      )
      for module, x_shape, y_shape, macs in recorder.rows
  )
  uncounted = {}
  for module in recorder.called_without_rule:
    if isinstance(module, _ZERO_MAC_MODULES) or getattr(
        module, "performs_no_macs", False
    ):
      continue
    if module.module_name in params:
      uncounted[f"{module.module_name} ({_kind(module)})"] = None
  return MacReport(
      rows=rows,
      param_count=count_params(params),
      state_count=count_state(state),
      uncounted=tuple(uncounted),
  )


__all__ = [
    "LayerMacs",
    "MacReport",
    "ParamRow",
    "ParamTable",
    "count_macs",
    "count_params",
    "count_state",
    "param_table",
]
