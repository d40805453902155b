"""Our kernels against public implementations of the same layers.

    python -m bench.peers --setup          # once: creates .venv-peers (~2 min)
    python -m bench.peers --quick [--out results.json]   # ~1-2 min
    python -m bench.peers [--size full] [--algebras C,H,...] [--threads N]
        [--stat median|min]

The same layers (dense, conv2d 3x3 SAME stride 1), the same shapes and the
same thread count, forward and forward+backward (gradients w.r.t. the input
and every trainable parameter), against these packages from the registry:

| package (pin) | layer | algebra | algorithm |
| --- | --- | --- | --- |
| cliffordlayers 0.1.1 | `CliffordLinear(g=[-1])` | C | block expansion (BE) by torch.cat, 1 F.linear |
| cliffordlayers 0.1.1 | `CliffordLinear`, `CliffordConv2d` (g=[-1, -1]) | H | BE by torch.cat, 1 F.linear / F.conv2d |
| hypercomplexkeras 1.0.3 | `HyperDenseTorch` | H | BE by a dense tensordot with the 4x4x4 table, 1 matmul |
| hypercomplexkeras 1.0.3 | `HyperConv2DTorchTF` | H | BE by tensordot, then 4 convs (one per output component) |
| complexPyTorch 0.4 | `ComplexLinear`, `ComplexConv2d` | C | per-component loop: 4 real ops on complex64 .real/.imag |
| cplxmodule 2022.6 | `CplxLinear` (default `cplx.linear_naive`) | C | per-component loop: 4 F.linear |
| cplxmodule 2022.6 | `cplx.linear_cat`, `cplx.linear_3m` | C | BE + 1 F.linear; Gauss 3M: 3 F.linear |
| cplxmodule 2022.6 | `CplxConv2d` (default `convnd_quick`) | C | 2 convs with stacked [Re W; Im W] filters |
| cplxmodule 2022.6 | `cplx.convnd_naive`, `cplx.convnd_3m` | C | 4 convs; Gauss 3M: 3 convs |
| our re-implementation (PyTorch) | BE of GeneralAlgebraNets | M_n(R) | torch.cat BE with W (x) I_n zeros, 1 op |
| our re-implementation (PyTorch) | per-component loop | M_n(R) | one real op per nonzero structure constant |

No installed package offers M_n(R) with matrix-valued activations
(GeneralAlgebraNets' `MatrixAlgebra` maps R^n vectors and is not on the
registry), so the M_n rows time OUR re-implementations, in PyTorch, of the
two algorithms the peers use, named as such everywhere. cliffordlayers has no
complex conv2d (`CliffordConv2d` needs a 2-generator signature).

Conventions and mismatches (handled in the conversion functions below,
which map their parameters to our `[N, M, d]` / `[kh, kw, C, M, d]` weights
with the weight on the LEFT, and their activation layouts to ours):
  * cliffordlayers (g=[-1, -1], blades 1, e1, e2, e12 = 1, i, j, k) and
    hypercomplexkeras (`Algebra.Quaternions`) compute x * w: the weight on
    the RIGHT. Quaternion conjugation is an anti-automorphism, so
    x * w = conj(conj(w) * conj(x)): their layer equals ours with the
    weight conjugated and the activations conjugated on the way in and out
    (an exact, orthogonal change of variables; costs are unaffected). For C
    the product commutes and nothing is needed.
  * Layouts: cliffordlayers keeps blades last ([B, C, I], conv [B, C, H, W,
    I]) and permutes to blade-major inside the layer; hypercomplexkeras is
    component-major channels-last ([.., d*C]); complexPyTorch uses complex64
    NCHW, cplxmodule a (real, imag) pair of NCHW tensors; torch weights are
    [out, in, kh, kw] (cross-correlation, like XLA). Inputs are converted
    before timing: every library runs on its native layout.
  * Biases: `CliffordLinear` fails without one and `ComplexLinear` has no
    option to drop it; they are zeroed and still added (one fused add).

Keras backend: hypercomplexkeras ships two flavours. Its Keras layers
(`HyperDense`, `HyperConv2D`) call `tf.*` directly (tf.Variable,
tf.tensordot, tf.nn.conv2d), so they cannot run on the Keras 3 JAX backend
and would need TensorFlow as a third runtime; its "Keras + PyTorch" flavour
(`HyperDenseTorch`, `HyperConv2DTorchTF`, batched NHWC) is made of
torch.nn.Modules that set KERAS_BACKEND=torch on import. We use the torch
flavour: torch is already there for the other peers, it shares their thread
setting, and the tensordot-BE algorithm is identical in both flavours.

Threads: `--threads N` (default: all usable cores) sets
`torch.set_num_threads(N)` and restricts the worker's CPU affinity to N
cores before JAX starts, because XLA:CPU sizes its intra-op pool from the
affinity mask (jax#1539); both are printed. PyTorch runs eagerly, as these
libraries are used; ours runs under jax.jit. On a machine shared with other
jobs use `--threads 1` (and `--stat min`): PyTorch's OpenMP threads wait for
each other at every op, so with 2 threads on 2 busy cores a 256x256 matmul
measured 7.6 ms instead of 0.34 ms, which says nothing about the
algorithms.

Protocol per (algebra, op, shape, mode): build each peer layer with its own
initialisation, convert its parameters to our layout, check that its output,
its input gradient and its derivative along a random perturbation of its
weights agree with ours to `TOLERANCE` relative error, then time
everything in the same interleaved rounds (bench.common.time_interleaved),
including a real JAX op and a real torch op of the block-expanded size
([d*N -> d*M]), which separate framework speed from algorithm.

Every ratio is ours / theirs (< 1: ours faster) and is decomposed in the
notes as  ours/theirs = (ours / real-JAX) x (real-JAX / real-torch) /
(theirs / real-torch): the first factor is our algorithm's cost relative to
one real op of the expanded size (about 1/n for the M_n fold), the second is
the framework, the third the peer's algorithm cost. Targets (reported, never
asserted): never slower than a peer with the same algorithm; faster than
per-component loops and than BE for M_n(R).

The peers run in a worker process inside .venv-peers
(`bench/peers_worker.py`); this module only needs numpy and the standard
library, so its conversion and reporting code is tested without the peers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-peers"
TORCH_VERSION = "2.13.0"
# Imported in the worker; name -> distribution (for versions).
PEER_DISTRIBUTIONS = {
    "torch": "torch",
    "cliffordlayers": "cliffordlayers",
    "HypercomplexKeras": "hypercomplexkeras",
    "complexPyTorch": "complexpytorch",
    "cplxmodule": "cplxmodule",
}
OPS = ("dense", "conv3x3")
MODES = ("fwd", "fwd+bwd")
TOLERANCE = 2e-4  # max |ours - theirs| / max |ours|, float32
DISPATCH_BOUND_MS = 0.05
NOISY_SPREAD = 0.3  # IQR / median above which a note flags the timing
STATS = ("median", "min")


# --------------------------------------------------------------------------
# Conversions between the peers' parameterisations / layouts and ours.
# Pure numpy; `op` is 'dense' or 'conv3x3'.
# --------------------------------------------------------------------------


def conj_if_needed(a: np.ndarray, algebra: str) -> np.ndarray:
  """The change of variables that turns a weight-on-the-RIGHT layer into ours.

  Args:
    a: [..., d] components (activations or weights).
    algebra: 'C' (commutative: identity) or 'H' (quaternion conjugation, an
      anti-automorphism: x * w = conj(conj(w) * conj(x))).

  Returns:
    [..., d], same dtype.

  Raises:
    ValueError: another algebra (a right-multiplying peer there needs its own
      anti-automorphism).
  """
  if algebra == "C":
    return a
  if algebra == "H":
    return a * np.asarray([1, -1, -1, -1], a.dtype)
  raise ValueError(
      f"No weight-on-the-right conversion for algebra {algebra!r}: only C "
      "(commutative) and H (conjugation) are known. Add an anti-automorphism "
      "for it to bench.peers.conj_if_needed."
  )


def _component_major(a: np.ndarray) -> np.ndarray:
  """[..., C, d] -> [..., d*C] (component index outermost)."""
  *lead, c, d = a.shape
  return np.swapaxes(a, -1, -2).reshape(*lead, d * c)


def _from_component_major(a: np.ndarray, d: int) -> np.ndarray:
  *lead, dc = a.shape
  return np.swapaxes(a.reshape(*lead, d, dc // d), -1, -2)


@dataclasses.dataclass(frozen=True)
class Convention:
  """How a peer layer stores activations and weights, relative to ours.

  layout:
    'blade_last'  (cliffordlayers) dense [T, N, I] (= ours), conv
                  [B, C, H, W, I]; weights [I, M, N(, kh, kw)].
    'complex'     (complexPyTorch, cplxmodule) complex dense [T, N], conv
                  NCHW [B, C, H, W]; weights stacked (real, imag)
                  [2, M, N(, kh, kw)].
    'hck'         (hypercomplexkeras) component-major channels-last
                  [..., d*C]; weights [d, N, M] / [d, kh, kw, C, M].
    'component_major' (our PyTorch re-implementations, GeneralAlgebraNets
                  style) dense [T, d*N], conv NCHW [B, d*C, H, W]; weights
                  [d, M, N(, kh, kw)].
  right_multiplication: the peer computes x * w (see conj_if_needed).
  """

  layout: str
  right_multiplication: bool = False

  def __post_init__(self):
    if self.layout not in _LAYOUTS:
      raise ValueError(
          f"Unknown layout {self.layout!r}; valid: {', '.join(_LAYOUTS)}."
      )

  def _fix(self, a: np.ndarray, algebra: str) -> np.ndarray:
    return conj_if_needed(a, algebra) if self.right_multiplication else a

  def to_peer(self, a: np.ndarray, op: str, algebra: str) -> np.ndarray:
    """Our activations (dense [T, N, d], conv [B, H, W, C, d]) -> theirs."""
    _check_op(op)
    a = self._fix(a, algebra)
    if self.layout == "complex":
      z = a[..., 0] + 1j * a[..., 1]
      return z if op == "dense" else z.transpose(0, 3, 1, 2)
    if self.layout == "blade_last":
      return a if op == "dense" else a.transpose(0, 3, 1, 2, 4)
    if self.layout == "hck" or op == "dense":
      return _component_major(a)
    b, h, w, c, d = a.shape  # component_major conv: NCHW, channels (k, c)
    return a.transpose(0, 4, 3, 1, 2).reshape(b, d * c, h, w)

  def from_peer(
      self, a: np.ndarray, op: str, algebra: str, d: int
  ) -> np.ndarray:
    """Their activations -> ours (the inverse of `to_peer`; orthogonal, so
    it also maps their input gradients to ours)."""
    _check_op(op)
    if self.layout == "complex":
      if op == "conv3x3":
        a = a.transpose(0, 2, 3, 1)
      out = np.stack([a.real, a.imag], axis=-1)
    elif self.layout == "blade_last":
      out = a if op == "dense" else a.transpose(0, 2, 3, 1, 4)
    elif self.layout == "hck" or op == "dense":
      out = _from_component_major(a, d)
    else:
      b, dc, h, w = a.shape
      out = a.reshape(b, d, dc // d, h, w).transpose(0, 3, 4, 2, 1)
    return self._fix(out, algebra)

  def weight_to_ours(self, theta: np.ndarray, op: str, algebra: str):
    """Their weight (layouts in the class docstring) -> ours [N, M, d] or
    [kh, kw, C, M, d]. Linear, so it also maps a parameter perturbation."""
    _check_op(op)
    if self.layout == "hck":
      w = np.moveaxis(theta, 0, -1)  # [N, M, d] / [kh, kw, C, M, d]
    elif op == "dense":
      w = theta.transpose(2, 1, 0)  # [d, M, N] -> [N, M, d]
    else:
      w = theta.transpose(3, 4, 2, 1, 0)  # [d, M, C, kh, kw] -> HWIO + d
    return self._fix(w, algebra)


_LAYOUTS = ("blade_last", "complex", "hck", "component_major")


def _check_op(op: str) -> None:
  if op not in OPS:
    raise ValueError(f"Unknown op {op!r}; valid: {', '.join(OPS)}.")


# --------------------------------------------------------------------------
# The peers: what they are and which algorithm they run.
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Peer:
  """One timed peer variant (the worker builds it from `key`).

  algorithm: the family ('be', 'be_ops' (BE weight, several ops), 'loop',
    'gauss', 'stacked') that decides `same_path` and the targets.
  launches: real GEMMs/convs per forward call (None: nnz of the algebra).
  """

  key: str
  library: str
  layer: str
  algebras: tuple[str, ...]
  ops: tuple[str, ...]
  algorithm: str
  description: str
  convention: Convention
  launches: int | None = 1
  reimplementation: bool = False

  @property
  def same_path(self) -> str | None:
    """Our kernel path that runs the same algorithm (None: no such path)."""
    return "expand" if self.algorithm in ("be", "be_ops") else None


_CLIFFORD = Convention("blade_last", right_multiplication=True)
_HCK = Convention("hck", right_multiplication=True)
_COMPLEX = Convention("complex")
_REIMPL = Convention("component_major")
MATRIX_ALGEBRAS = ("M2R", "M3R", "M4R")

PEERS: tuple[Peer, ...] = (
    Peer(
        "clifford_linear",
        "cliffordlayers",
        "CliffordLinear",
        ("C", "H"),
        ("dense",),
        "be",
        "BE by torch.cat (d x d blocks) + 1 F.linear; x, y permuted to "
        "blade-major and back",
        _CLIFFORD,
    ),
    Peer(
        "clifford_conv2d",
        "cliffordlayers",
        "CliffordConv2d",
        ("H",),
        ("conv3x3",),
        "be",
        "BE by torch.cat + 1 F.conv2d; x, y permuted blade-major and back",
        _CLIFFORD,
    ),
    Peer(
        "hck_dense",
        "hypercomplexkeras",
        "HyperDenseTorch",
        ("H",),
        ("dense",),
        "be",
        "BE by a dense tensordot with the 4x4x4 table (d^3 per weight "
        "element) + 1 matmul",
        _HCK,
    ),
    Peer(
        "hck_conv2d",
        "hypercomplexkeras",
        "HyperConv2DTorchTF",
        ("H",),
        ("conv3x3",),
        "be_ops",
        "BE by tensordot, then d convs (one per output component) + concat; "
        "NHWC<->NCHW permutes",
        _HCK,
        launches=4,
    ),
    Peer(
        "complexpytorch_linear",
        "complexPyTorch",
        "ComplexLinear",
        ("C",),
        ("dense",),
        "loop",
        "per-component loop: 4 real nn.Linear on complex64 .real/.imag "
        "+ complex recombination",
        _COMPLEX,
        launches=4,
    ),
    Peer(
        "complexpytorch_conv2d",
        "complexPyTorch",
        "ComplexConv2d",
        ("C",),
        ("conv3x3",),
        "loop",
        "per-component loop: 4 real convs on complex64 .real/.imag "
        "+ complex recombination",
        _COMPLEX,
        launches=4,
    ),
    Peer(
        "cplx_linear",
        "cplxmodule",
        "CplxLinear (linear_naive)",
        ("C",),
        ("dense",),
        "loop",
        "per-component loop: 4 F.linear on the (real, imag) pair",
        _COMPLEX,
        launches=4,
    ),
    Peer(
        "cplx_linear_cat",
        "cplxmodule",
        "cplx.linear_cat",
        ("C",),
        ("dense",),
        "be",
        "BE by torch.cat + 1 F.linear (inputs concatenated)",
        _COMPLEX,
    ),
    Peer(
        "cplx_linear_3m",
        "cplxmodule",
        "cplx.linear_3m",
        ("C",),
        ("dense",),
        "gauss",
        "Gauss 3M: 3 F.linear (3/4 of the MACs) + 5 elementwise adds",
        _COMPLEX,
        launches=3,
    ),
    Peer(
        "cplx_conv2d",
        "cplxmodule",
        "CplxConv2d (convnd_quick)",
        ("C",),
        ("conv3x3",),
        "stacked",
        "2 convs (real and imag input) with stacked [Re W; Im W] filters, "
        "then slices + 2 adds",
        _COMPLEX,
        launches=2,
    ),
    Peer(
        "cplx_conv2d_naive",
        "cplxmodule",
        "cplx.convnd_naive",
        ("C",),
        ("conv3x3",),
        "loop",
        "per-component loop: 4 F.conv2d",
        _COMPLEX,
        launches=4,
    ),
    Peer(
        "cplx_conv2d_3m",
        "cplxmodule",
        "cplx.convnd_3m",
        ("C",),
        ("conv3x3",),
        "gauss",
        "Gauss 3M: 3 F.conv2d (3/4 of the MACs) + 5 elementwise adds",
        _COMPLEX,
        launches=3,
    ),
    Peer(
        "reimpl_be",
        "our re-impl. (PyTorch)",
        "BE of GeneralAlgebraNets",
        MATRIX_ALGEBRAS,
        OPS,
        "be",
        "our PyTorch re-implementation of GeneralAlgebraNets' algorithm: "
        "torch.cat of d x d blocks (W (x) I_n: n-fold redundant MACs) + 1 op",
        _REIMPL,
        reimplementation=True,
    ),
    Peer(
        "reimpl_loop",
        "our re-impl. (PyTorch)",
        "per-component loop",
        MATRIX_ALGEBRAS,
        OPS,
        "loop",
        "our PyTorch re-implementation of the per-component loop: one real "
        "op per nonzero structure constant (n^3 ops, intrinsic MACs)",
        _REIMPL,
        launches=None,
        reimplementation=True,
    ),
)
PEERS_BY_KEY = {p.key: p for p in PEERS}


def peers_for(algebra: str, op: str) -> list[Peer]:
  """The peer variants that implement `op` for `algebra`."""
  return [p for p in PEERS if algebra in p.algebras and op in p.ops]


def peer_macs_per_pair(peer: Peer, d: int, intrinsic: int) -> int:
  """Real MACs per weight-activation element pair the peer performs."""
  if peer.algorithm == "gauss":
    return 3 * intrinsic // 4
  if peer.algorithm == "loop":
    return intrinsic
  return d * d  # be, be_ops, stacked (2 convs of C -> 2M = 4 for C)


def ours_macs_per_pair(path: str, d: int, intrinsic: int) -> int:
  return intrinsic if path == "fold" else d * d


# --------------------------------------------------------------------------
# Shapes.
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
  """One shape in REAL channels (algebra channels = round(real / d))."""

  op: str
  label: str
  real_in: int
  real_out: int
  tokens: int = 0  # dense
  batch: int = 0  # conv
  hw: int = 0  # conv


SIZES: dict[str, list[Case]] = {
    "full": [
        Case("dense", "transformer proj", 512, 512, tokens=512),
        Case("dense", "batch-1 decode", 1024, 1024, tokens=1),
        Case("conv3x3", "resnet50 stage", 256, 256, batch=8, hw=28),
    ],
    "quick": [
        Case("dense", "transformer proj", 256, 256, tokens=128),
        Case("conv3x3", "resnet50 stage", 64, 64, batch=2, hw=14),
    ],
    "tiny": [
        Case("dense", "tiny", 16, 16, tokens=4),
        Case("conv3x3", "tiny", 16, 16, batch=1, hw=6),
    ],
}
DEFAULTS = {
    # size: (algebras, repeats)
    "full": (("C", "H", "M2R", "M3R", "M4R"), 11),
    "quick": (("C", "H", "M2R", "M4R"), 5),
    "tiny": (("C", "H", "M2R"), 2),
}
ALGEBRA_DIMS = {"C": 2, "H": 4, "M2R": 4, "M3R": 9, "M4R": 16}


def problem_shapes(case: Case, d: int) -> dict[str, Any]:
  """Our x / w shapes and a readable label for `case` at dimension d."""
  c_in, c_out = max(1, round(case.real_in / d)), max(
      1, round(case.real_out / d)
  )
  if case.op == "dense":
    return {
        "x_shape": [case.tokens, c_in, d],
        "w_shape": [c_in, c_out, d],
        "pairs": case.tokens * c_in * c_out,
        "shape": f"T={case.tokens} {c_in}->{c_out}",
        "real_shape": f"T={case.tokens} {d * c_in}->{d * c_out}",
    }
  _check_op(case.op)
  b, hw = case.batch, case.hw
  return {
      "x_shape": [b, hw, hw, c_in, d],
      "w_shape": [3, 3, c_in, c_out, d],
      "pairs": b * hw * hw * 9 * c_in * c_out,
      "shape": f"B={b} {hw}x{hw} {c_in}->{c_out}",
      "real_shape": f"B={b} {hw}x{hw} {d * c_in}->{d * c_out}",
  }


# --------------------------------------------------------------------------
# Setup of the peers' virtualenv.
# --------------------------------------------------------------------------


def venv_python(venv: Path = VENV) -> Path:
  return Path(venv) / "bin" / "python"


def _run(cmd: Sequence[Any]) -> None:
  print("+ " + " ".join(str(c) for c in cmd), flush=True)
  subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def installed_version(python: Path, dist: str) -> str | None:
  """`dist`'s version in the environment of `python` (None: not there)."""
  out = subprocess.run(
      [
          str(python),
          "-c",
          "import importlib.metadata as m, sys\n"
          "try: print(m.version(sys.argv[1]))\n"
          "except m.PackageNotFoundError: pass",
          dist,
      ],
      capture_output=True,
      text=True,
      check=True,
  ).stdout.strip()
  return out or None


def check_torch_version(version: str | None) -> None:
  """Raise unless torch is the pinned CPU build (a local '+cpu' label is
  fine; anything else means a peer's requirements replaced it)."""
  if version is None or version.split("+")[0] != TORCH_VERSION:
    raise RuntimeError(
        f"torch in the peers venv is {version}, expected {TORCH_VERSION} "
        "(the local CPU wheel). A peer's requirements changed it; delete "
        f"{VENV.name} and rerun `python -m bench.peers --setup`, or pin the "
        "offending peer in pyproject.toml [project.optional-dependencies] "
        "peers."
    )


def setup(venv: Path = VENV) -> dict[str, str | None]:
  """Create `venv`, install torch==2.13.0 FIRST (the local CPU wheel), then
  this project with the `peers` extra (exact pins in pyproject.toml), and
  check that torch stayed 2.13.0. Returns installed versions."""
  venv = Path(venv)
  if not venv_python(venv).exists():
    _run([sys.executable, "-m", "venv", venv])
  py = venv_python(venv)
  _run([py, "-m", "pip", "install", f"torch=={TORCH_VERSION}"])
  _run([py, "-m", "pip", "install", "-e", f"{ROOT}[peers]"])
  versions = {
      dist: installed_version(py, dist)
      for dist in (*PEER_DISTRIBUTIONS.values(), "jax", "numpy")
  }
  check_torch_version(versions["torch"])
  _run([py, "-c", "import " + ", ".join(PEER_DISTRIBUTIONS)])
  print(
      "peers venv ready: " + ", ".join(f"{k} {v}" for k, v in versions.items())
  )
  return versions


# --------------------------------------------------------------------------
# Comparisons, notes and tables (from the worker's results).
# --------------------------------------------------------------------------

_OURS_WHY = {
    "fold": "fold: {ours_macs} of {d2} MACs/pair, 1 op, no W(x)I_n zeros",
    "expand": "BE: {ours_macs} MACs/pair, 1 op, weight gather fused by XLA",
    "right": "activation-side BE, 1 op on the compact weight",
    "einsum": "einsum with the structure constants",
}


def explain(c: dict[str, Any]) -> str:
  """The notes cell of one comparison: the ratio decomposed into our
  algorithm, the framework and the peer's algorithm, each with its reason."""
  peer = PEERS_BY_KEY[c["peer"]]
  d = c["d"]
  a = c["ours_ms"] / c["real_jax_ms"]
  f = c["real_jax_ms"] / c["real_torch_ms"]
  b = c["peer_ms"] / c["real_torch_ms"]
  ours_why = _OURS_WHY[c["ours_path"]].format(
      ours_macs=c["ours_macs_per_pair"], d2=d * d
  )
  launches = c["peer_launches"]
  parts = [
      f"= ours {a:.2f}x real-JAX ({ours_why})",
      f"x JAX/torch {f:.2f} (same real op)",
      f"/ theirs {b:.2f}x real-torch ({c['peer_macs_per_pair']} MACs/pair, "
      f"{launches} op{'s' if launches != 1 else ''})",
  ]
  if peer.same_path is not None and c.get("same_ms"):
    s = c["same_ms"] / c["peer_ms"]
    parts.append(f"same algorithm: ours path={peer.same_path} {s:.2f}x theirs")
  if min(c["ours_ms"], c["peer_ms"]) < DISPATCH_BOUND_MS:
    parts.append("dispatch-bound (<50 us per call)")
  if c.get("spread") is not None and c["spread"] > NOISY_SPREAD:
    parts.append(
        f"noisy: IQR {100 * c['spread']:.0f}% of the median (machine load)"
    )
  return "; ".join(parts)


def target(c: dict[str, Any]) -> tuple[str, bool | None]:
  """(what we aim for against this peer, whether the measurement meets it;
  None where the issue sets no target)."""
  peer = PEERS_BY_KEY[c["peer"]]
  if peer.algorithm == "loop":
    return "faster than a per-component loop", c["ratio"] < 1
  if peer.algorithm in ("be", "be_ops") and c["algebra"] in MATRIX_ALGEBRAS:
    return "faster than BE for M_n(R)", c["ratio"] < 1
  if peer.algorithm in ("be", "be_ops"):
    return "not slower than the same algorithm", c["ratio"] <= 1
  return "none (different algorithm; reported)", None


def comparisons(
    rows: Sequence[dict[str, Any]], stat: str = "median"
) -> list[dict[str, Any]]:
  """One comparison per (problem, mode, peer) from the worker's timing rows.

  A timing row has: algebra, op, case, shape, mode, variant ('ours:<path>',
  'real:jax', 'real:torch' or a peer key), ms_median, ms_min, ms_q25,
  ms_q75, plus for peers 'agrees' and for ours 'path'. `stat` ('median' or
  'min') is the per-variant time the ratios use.
  """
  if stat not in STATS:
    raise ValueError(f"Unknown stat {stat!r}; valid: {', '.join(STATS)}.")
  groups: dict[tuple, dict[str, dict]] = {}
  for r in rows:
    key = (r["algebra"], r["op"], r["case"], r["mode"])
    groups.setdefault(key, {})[r["variant"]] = r
  out = []
  for (alg, op, case, mode), g in groups.items():
    ours = g["ours:auto"]
    for name, r in g.items():
      if name in PEERS_BY_KEY:
        out.append(_compare(alg, op, case, mode, g, ours, r, f"ms_{stat}"))
  return out


def _spread(r: dict[str, Any]) -> float | None:
  """Interquartile range / median of a timing row (None: not timed)."""
  if r.get("ms_median") is None or "ms_q25" not in r:
    return None
  return (r["ms_q75"] - r["ms_q25"]) / r["ms_median"]


def _compare(alg, op, case, mode, g, ours, r, ms) -> dict[str, Any]:
  peer = PEERS_BY_KEY[r["variant"]]
  d, intrinsic = ours["d"], ours["macs_per_product"]
  launches = peer.launches if peer.launches is not None else intrinsic
  c = {
      "algebra": alg,
      "op": op,
      "case": case,
      "shape": ours["shape"],
      "real_shape": ours["real_shape"],
      "mode": mode,
      "peer": peer.key,
      "library": peer.library,
      "layer": peer.layer,
      "algorithm": peer.description,
      "reimplementation": peer.reimplementation,
      "agrees": r.get("agrees"),
      "max_rel_err": r.get("max_rel_err"),
      "d": d,
      "ours_path": ours["path"],
      "ours_macs_per_pair": ours_macs_per_pair(ours["path"], d, intrinsic),
      "peer_macs_per_pair": peer_macs_per_pair(peer, d, intrinsic),
      "peer_launches": launches,
      "ours_ms": ours[ms],
      "peer_ms": r.get(ms),
      "real_jax_ms": g["real:jax"][ms],
      "real_torch_ms": g["real:torch"][ms],
      "spread": max(
          (s for s in map(_spread, (ours, r)) if s is not None), default=None
      ),
      "same_ms": None,
  }
  if peer.same_path is not None:
    same = g.get(f"ours:{peer.same_path}")
    if same is not None:
      c["same_ms"] = same[ms]
  if not c["agrees"] or c["peer_ms"] is None:
    c.update(
        ratio=None,
        same_ratio=None,
        target="n/a",
        target_met=None,
        notes=f"NOT TIMED: {r.get('error') or 'output disagrees with ours'}",
    )
    return c
  c["ratio"] = c["ours_ms"] / c["peer_ms"]
  c["same_ratio"] = (
      c["same_ms"] / c["peer_ms"] if c["same_ms"] is not None else None
  )
  c["target"], c["target_met"] = target(c)
  c["notes"] = explain(c)
  return c


def tables(results: dict[str, Any]) -> str:
  """Markdown: threads and versions, the agreement checks, the comparison
  table (ours/theirs per shape with notes), and the targets summary."""
  comps = results["comparisons"]
  stat = results.get("config", {}).get("stat", "median")
  out = [
      "## Ours vs peers (ratio = ours / theirs; < 1: ours faster)",
      "",
      "notes: ours/theirs = (ours / real-JAX) x (real-JAX / real-torch) / "
      "(theirs / real-torch), with real-JAX and real-torch one real "
      "matmul/conv of the block-expanded size [in brackets]; "
      "'same algorithm' compares our kernel forced to the peer's algorithm.",
      "",
  ]
  body = []
  for c in comps:
    ratio = "n/a" if c["ratio"] is None else f"{c['ratio']:.2f}"
    same = "" if c["same_ratio"] is None else f"{c['same_ratio']:.2f}"
    peer_ms = "-" if c["peer_ms"] is None else f"{c['peer_ms']:.3g}"
    body.append(
        [
            c["algebra"],
            c["op"],
            f"{c['shape']} [real {c['real_shape'].split(' ', 1)[1]}]",
            c["mode"],
            f"{c['library']}: {c['layer']}",
            c["algorithm"],
            peer_ms,
            f"{c['ours_ms']:.3g} ({c['ours_path']})",
            ratio,
            same,
            c["notes"],
        ]
    )
  out.append(
      _markdown_table(
          [
              "algebra",
              "op",
              "shape",
              "mode",
              "peer",
              "peer algorithm",
              f"theirs ms ({stat})",
              f"ours ms ({stat}; path)",
              "ours/theirs",
              "same-alg ours/theirs",
              "notes",
          ],
          body,
      )
  )
  out += ["", "## Targets (reported, not asserted)", ""]
  summary = []
  for c in comps:
    if c["ratio"] is None:
      verdict = "not timed"
    elif c["target_met"] is None:
      verdict = "-"
    else:
      verdict = "met" if c["target_met"] else "**missed**"
    summary.append(
        [
            c["algebra"],
            c["op"],
            c["mode"],
            f"{c['library']}: {c['layer']}",
            c["target"],
            "n/a" if c["ratio"] is None else f"{c['ratio']:.2f}",
            verdict,
        ]
    )
  out.append(
      _markdown_table(
          ["algebra", "op", "mode", "peer", "target", "ours/theirs", "verdict"],
          summary,
      )
  )
  return "\n".join(out)


def _markdown_table(header: list[str], rows: list[list[Any]]) -> str:
  # bench.common.markdown_table, without importing jax in this process.
  lines = [
      "| " + " | ".join(header) + " |",
      "|" + "|".join(["---"] * len(header)) + "|",
  ]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def format_environment(env: dict[str, Any]) -> str:
  """Machine, thread settings and versions reported by the worker."""
  m = env["machine"]
  load = m.get("load_average")
  load_s = "n/a" if load is None else " ".join(f"{v:.2f}" for v in load)
  t = env["threads"]
  versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
  return (
      f"CPU: {m['cpu_model']} ({m['usable_cores']} usable of "
      f"{m['cpu_count']} cores; load average {load_s})\n"
      f"threads: requested {t['requested']}; torch.get_num_threads()="
      f"{t['torch_intra_op']} (inter-op {t['torch_inter_op']}); "
      f"XLA:CPU pool = CPU affinity = {t['xla_affinity']} cores "
      f"{t['affinity']}; XLA_FLAGS={t['xla_flags']!r}\n"
      f"versions: {versions}\n"
      f"JAX backend {m['backend']} ({m['device_kind']}); PyTorch eager on "
      f"CPU; Python {m['python']}, {m['platform']}, {m['timestamp']}"
  )


# --------------------------------------------------------------------------
# Entry point.
# --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m bench.peers", description=__doc__.split("\n\n")[0]
  )
  parser.add_argument(
      "--setup",
      action="store_true",
      help=f"create {VENV.name} with torch=={TORCH_VERSION} and the pinned "
      "peers, then exit",
  )
  parser.add_argument(
      "--quick",
      action="store_true",
      help="small shapes, C/H/M2R/M4R, 5 rounds (~1-2 min on 2 CPU cores)",
  )
  parser.add_argument("--size", choices=tuple(SIZES), default=None)
  parser.add_argument("--out", default=None, help="write JSON results here")
  parser.add_argument(
      "--algebras", default=None, help=f"subset of {','.join(ALGEBRA_DIMS)}"
  )
  parser.add_argument("--ops", default=",".join(OPS))
  parser.add_argument("--modes", default=",".join(MODES))
  parser.add_argument("--repeats", type=int, default=None)
  parser.add_argument("--min-sample-ms", type=float, default=5.0)
  parser.add_argument(
      "--max-seconds",
      type=float,
      default=30.0,
      help="budget for the timed rounds of one problem and mode (0 = none)",
  )
  parser.add_argument(
      "--threads",
      type=int,
      default=None,
      help="threads for PyTorch and XLA (default: all usable cores)",
  )
  parser.add_argument(
      "--stat",
      choices=STATS,
      default="median",
      help="per-variant time used for the ratios ('min' is steadier on a "
      "loaded machine; both are in the JSON)",
  )
  parser.add_argument("--venv", default=str(VENV), help="the peers virtualenv")
  args = parser.parse_args(argv)
  if args.size is None:
    args.size = "quick" if args.quick else "full"
  default_algebras, default_repeats = DEFAULTS[args.size]
  args.algebras = (
      default_algebras
      if args.algebras is None
      else tuple(a for a in args.algebras.split(",") if a)
  )
  bad = [a for a in args.algebras if a not in ALGEBRA_DIMS]
  if bad:
    parser.error(
        f"unknown --algebras {bad}; valid (those with a peer): "
        f"{', '.join(ALGEBRA_DIMS)}."
    )
  args.ops = tuple(o for o in args.ops.split(",") if o)
  bad = [o for o in args.ops if o not in OPS]
  if bad:
    parser.error(f"unknown --ops {bad}; valid: {', '.join(OPS)}.")
  args.modes = tuple(m for m in args.modes.split(",") if m)
  bad = [m for m in args.modes if m not in MODES]
  if bad:
    parser.error(f"unknown --modes {bad}; valid: {', '.join(MODES)}.")
  if args.repeats is None:
    args.repeats = default_repeats
  if args.repeats < 1:
    parser.error(f"--repeats must be >= 1, got {args.repeats}.")
  usable = len(os.sched_getaffinity(0))
  if args.threads is None:
    args.threads = usable
  if not 1 <= args.threads <= usable:
    parser.error(
        f"--threads must be between 1 and the {usable} usable cores, got "
        f"{args.threads}."
    )
  return args


def worker_config(args: argparse.Namespace) -> dict[str, Any]:
  """The JSON the worker runs from: problems, modes and timing options."""
  problems = []
  for alg in args.algebras:
    for case in SIZES[args.size]:
      if case.op not in args.ops:
        continue
      peers = [p.key for p in peers_for(alg, case.op)]
      if not peers:
        continue
      problems.append(
          {
              "algebra": alg,
              "case": dataclasses.asdict(case),
              **problem_shapes(case, ALGEBRA_DIMS[alg]),
              "peers": peers,
          }
      )
  return {
      "problems": problems,
      "modes": list(args.modes),
      "repeats": args.repeats,
      "min_sample_s": args.min_sample_ms / 1e3,
      "max_seconds": args.max_seconds or None,
      "threads": args.threads,
      "tolerance": TOLERANCE,
  }


def run_worker(config: dict[str, Any], venv: Path) -> dict[str, Any]:
  """Run bench/peers_worker.py in `venv`'s Python; return its results."""
  py = venv_python(venv)
  if not py.exists():
    raise SystemExit(
        f"bench.peers: no peers virtualenv at {venv} ({py} is missing). "
        "Create it once with `python -m bench.peers --setup` (installs "
        f"torch=={TORCH_VERSION} and the pinned peers from the registry, "
        "~2 min)."
    )
  with tempfile.TemporaryDirectory() as tmp:
    cfg_path, out_path = Path(tmp) / "config.json", Path(tmp) / "out.json"
    cfg_path.write_text(json.dumps(config))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [str(py), "-m", "bench.peers_worker", str(cfg_path), str(out_path)],
        cwd=ROOT,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
      raise SystemExit(
          f"bench.peers: the worker in {venv} failed (exit "
          f"{proc.returncode}); its traceback is above. If an import failed, "
          "rerun `python -m bench.peers --setup`."
      )
    return json.loads(out_path.read_text())


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
  """Set up the peers venv (--setup), or run the comparison: print the
  environment and tables, return the results (also written to --out)."""
  args = parse_args(argv)
  if args.setup:
    setup(Path(args.venv))
    return None
  config = worker_config(args)
  print(
      f"size={args.size} repeats={args.repeats} threads={args.threads} "
      f"stat={args.stat} "
      f"algebras={','.join(args.algebras)} ops={','.join(args.ops)} "
      f"modes={','.join(args.modes)} problems={len(config['problems'])}",
      flush=True,
  )
  t0 = time.perf_counter()
  worker = run_worker(config, Path(args.venv))
  wall = time.perf_counter() - t0
  comps = comparisons(worker["rows"], args.stat)
  results = {
      "environment": worker["environment"],
      "config": {
          **{k: v for k, v in config.items() if k != "problems"},
          "size": args.size,
          "stat": args.stat,
          "algebras": list(args.algebras),
          "ops": list(args.ops),
          "argv": list(sys.argv[1:] if argv is None else argv),
      },
      "checks": worker["checks"],
      "rows": worker["rows"],
      "comparisons": comps,
      "wall_s": wall,
  }
  print(format_environment(results["environment"]))
  print()
  print(tables(results))
  failed = [c for c in worker["checks"] if not c["agrees"]]
  if failed:
    print(f"\n{len(failed)} agreement check(s) FAILED:")
    for c in failed:
      print(f"  {c}")
  print(f"\nwall time {wall:.1f}s")
  if args.out:
    # Not bench.common.write_results: that module imports JAX, and this
    # one needs only numpy and the standard library (see the docstring).
    with open(args.out, "w") as f:
      json.dump(results, f, indent=1)
    print(f"wrote {args.out}")
  return results


if __name__ == "__main__":
  main()
