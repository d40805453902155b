"""Nonlinearities for algebra-valued activations (paper section 6).

Shape glossary: C = algebra channels, d = algebra dimension, n/e = matrix
size/base dimension of M_n(base). Every activation keeps the shape and works
on both layouts: standard x [..., C, d] and folded x [n, ..., C, n*e].

Kinds (`ACTIVATIONS`):

  split            a real function applied to every component (`fn`, default
                   relu; the paper's main choice). Layout-agnostic.
  modrelu          y = relu(|x| + b) x / |x| with |x| the element norm over
                   the d components and a learned real bias b per channel.
  first_component  y = x * [x_0 > 0]: the sign of component 0 gates the whole
                   element (for C/H component 0 is the real part, for M_n it
                   is entry (0, 0), for cross the x coordinate).
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp

from algebranets import layout as layout_lib
from algebranets.layers import _checks

ACTIVATIONS = ("split", "modrelu", "first_component")

# Element-wise functions of jax.nn usable with 'split' (names that exist in the
# installed jax; softmax-like or shape-changing functions are excluded).
_ELEMENTWISE = (
    "relu",
    "relu6",
    "gelu",
    "silu",
    "swish",
    "tanh",
    "sigmoid",
    "elu",
    "celu",
    "selu",
    "leaky_relu",
    "softplus",
    "soft_sign",
    "hard_tanh",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "log_sigmoid",
    "mish",
    "sparse_plus",
    "sparse_sigmoid",
    "squareplus",
    "identity",
)
SPLIT_FUNCTIONS = tuple(f for f in _ELEMENTWISE if hasattr(jax.nn, f))

# Below this element norm, modReLU uses MODRELU_EPS in place of |x| (see
# `modrelu`); far below the scale of any trained activation.
MODRELU_EPS = 1e-6


def split_function(fn: str):
  """The jax.nn function `fn` for the split activation.

  Raises:
    ValueError: `fn` is not one of SPLIT_FUNCTIONS (the message lists them).
  """
  if fn not in SPLIT_FUNCTIONS:
    raise ValueError(
        f"Unknown split activation function {fn!r}; valid jax.nn functions: "
        f"{', '.join(SPLIT_FUNCTIONS)}."
    )
  return getattr(jax.nn, fn)


def split(x: jax.Array, fn: str = "relu") -> jax.Array:
  """Component-wise `jax.nn.<fn>`; any shape, any layout."""
  return split_function(fn)(x)


def modrelu(
    x: jax.Array,
    bias: jax.Array,
    algebra,
    layout: str = "standard",
    eps: float = MODRELU_EPS,
) -> jax.Array:
  """modReLU, y = relu(|x| + b) x / |x|, per algebra element.

  Computed as relu(1 + b / max(|x|, eps)) * x, which equals the definition
  for |x| >= eps. Below eps the norm is replaced by eps, so the map is
  continuous with finite values and gradients everywhere, including x = 0
  (where y = 0; the gradient there is relu(1 + b / eps), 1 for b = 0). The
  norm is taken as sqrt(max(sum x^2, eps^2)) so no sqrt(0) gradient appears.

  Args:
    x: [..., C, d] (standard) or [n, ..., C, n*e] (folded).
    bias: [C] real bias per algebra channel.
    algebra: registered name or `Algebra` (for the folded layout).
    layout: 'standard' or 'folded'.
    eps: the norm floor.

  Returns:
    y with x's shape.
  """
  view, axes = layout_lib.element_view(x, algebra, layout)
  sq = jnp.sum(jnp.square(view), axis=axes, keepdims=True)
  norm = jnp.sqrt(jnp.maximum(sq, jnp.asarray(eps * eps, sq.dtype)))
  b = bias.reshape((1,) * (x.ndim - 2) + (bias.shape[0], 1)).astype(x.dtype)
  return jax.nn.relu(1.0 + b / norm) * x


def first_component_gate(
    x: jax.Array, algebra, layout: str = "standard"
) -> jax.Array:
  """y = x * [x_0 > 0], x_0 = component 0 of each element.

  Component 0 is (row 0, column 0, base 0) for matrix algebras. In the folded
  layout x[n, ..., C, n*e] the column is the leading fold axis and the last
  axis is (row, base), so x_0 = x[0, ..., C, 0]; the gate [1, ..., C, 1]
  broadcasts over the element's other components.
  """
  layout_lib.check_layout(layout)
  if layout == layout_lib.FOLDED:
    layout_lib.matrix_shape(algebra)
    x0 = x[:1, ..., :1]
  else:
    x0 = x[..., :1]
  return jnp.where(x0 > 0, x, jnp.zeros_like(x))


class Activation(hk.Module):
  """An algebra activation chosen by kind ('split', 'modrelu',
  'first_component'); only 'modrelu' has a parameter ('bias' [C])."""

  # Nonlinearities (modReLU's element norms included) are not multiply-adds
  # of a linear layer; without this the modReLU bias would be reported as
  # an uncounted layer by metrics.count_macs.
  performs_no_macs = True

  def __init__(
      self,
      kind: str,
      algebra,
      *,
      layout: str = "standard",
      fn: str = "relu",
      b_init: hk.initializers.Initializer | None = None,
      name: str | None = None,
  ):
    """Constructs the activation.

    Args:
      kind: one of ACTIVATIONS.
      algebra: registered name or `Algebra`.
      layout: 'standard' or 'folded' (matrix algebras only).
      fn: the jax.nn function for kind='split' (SPLIT_FUNCTIONS).
      b_init: modReLU bias init; default zeros, which makes modReLU the
        identity at init (|x| + 0 >= 0), so a network starts linear in those
        layers and learns negative biases to gate small elements.
      name: module name.

    Raises:
      ValueError: unknown kind, split function, algebra or layout, or the
        folded layout with a non-matrix algebra.
    """
    super().__init__(name=name)
    if kind not in ACTIVATIONS:
      raise ValueError(
          f"Unknown activation {kind!r}; valid: {', '.join(ACTIVATIONS)}."
      )
    self.kind = kind
    self.algebra, self.layout = _checks.resolve(algebra, layout)
    self.fn = fn
    if kind == "split":
      split_function(fn)  # Validate now, not at the first call.
    self.b_init = b_init or jnp.zeros

  def __call__(self, x: jax.Array) -> jax.Array:
    """Applies the activation to x [..., C, d] (or folded); same shape out.

    Raises:
      ValueError: x whose shape does not fit the algebra and layout.
    """
    what = f"Activation({self.kind!r})"
    _checks.check_input(x, self.algebra, self.layout, what=what)
    if self.kind == "split":
      return split(x, self.fn)
    if self.kind == "first_component":
      return first_component_gate(x, self.algebra, self.layout)
    c = x.shape[-2]
    _checks.check_param_shape(self, "bias", (c,), what)
    bias = hk.get_parameter("bias", (c,), x.dtype, init=self.b_init)
    return modrelu(x, bias, self.algebra, self.layout)


def get_activation(kind: str, algebra, **kwargs) -> Activation:
  """`Activation(kind, algebra, **kwargs)`, for configs that name one.

  Raises:
    ValueError: unknown kind; the message lists the valid ones.
  """
  if kind not in ACTIVATIONS:
    raise ValueError(
        f"Unknown activation {kind!r}; valid: {', '.join(ACTIVATIONS)}."
    )
  return Activation(kind, algebra, **kwargs)
