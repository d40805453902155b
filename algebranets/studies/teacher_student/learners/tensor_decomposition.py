"""Symmetric CP decomposition of a third-order tensor: T ~ sum_j l_j u_j^{x3}.

Two methods, pure NumPy in float64:

  power_deflation   the robust tensor power method (Anandkumar, Ge, Hsu,
                    Kakade & Telgarsky 2014, Alg. 1): for each component,
                    `restarts` random unit starts run `iterations` power
                    iterations u <- T(I, u, u) / |T(I, u, u)|, the start with
                    the largest T(u, u, u) is iterated `iterations` more
                    times, and l u^{x3} is subtracted (deflation). Exact for
                    an orthogonally decomposable tensor (quadratic
                    convergence), biased when the components are not
                    orthogonal (each fixed point is pulled towards the
                    others by their overlaps squared), and it breaks down
                    once the rank exceeds d: there are at most d orthogonal
                    directions, so after d deflations the residual is no
                    longer dominated by any single remaining component.
  joint_refine      all components refined together: L-BFGS on
                    |T - sum_j v_j^{x3}|_F^2 / |T|_F^2 over V [k, d] (v_j =
                    l_j^{1/3} u_j), started from power_deflation. The exact
                    decomposition is a global minimum for any overlaps, so
                    this removes the deflation bias, and it can go beyond
                    r > d as long as the decomposition is identifiable (a
                    generic symmetric d x d x d tensor has rank about d^2 / 6,
                    so past that the third moment no longer determines the
                    components); nothing guarantees it finds the minimum
                    there. Once k d >= d (d + 1) (d + 2) / 6 (the dimension
                    of symmetric tensors) it can fit any tensor, the noise
                    of an estimate included: a relative residual near 0 then
                    says nothing about recovery.

Shape glossary: d = tensor side, k = components, m = simultaneous starts.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

# Guards divisions by the norm of a vector that may vanish (a zero tensor
# or an exactly deflated residual).
_TINY = 1e-300


def contract(tensor: np.ndarray, vectors: np.ndarray) -> np.ndarray:
  """T(I, u, u) for each row u: [m, d] with entry a = sum_bc T_abc u_b u_c.

  Args:
    tensor: float64 [d, d, d] (symmetric, so which two modes are contracted
      does not matter).
    vectors: [m, d].

  Returns:
    float64 [m, d].
  """
  d = tensor.shape[0]
  m = vectors.shape[0]
  outer = (vectors[:, :, None] * vectors[:, None, :]).reshape(m, d * d)
  return outer @ tensor.reshape(d, d * d).T


def evaluate(tensor: np.ndarray, vectors: np.ndarray) -> np.ndarray:
  """T(u, u, u) for each row u of vectors [m, d]: float64 [m]."""
  return np.sum(contract(tensor, vectors) * vectors, axis=1)


def compose(weights: np.ndarray, vectors: np.ndarray) -> np.ndarray:
  """sum_j weights_j u_j^{x3}: [d, d, d] from weights [k], vectors [k, d]."""
  vectors = np.asarray(vectors, np.float64)
  k, d = vectors.shape
  outer = (vectors[:, :, None] * vectors[:, None, :]).reshape(k, d * d)
  return ((outer * np.asarray(weights)[:, None]).T @ vectors).reshape(d, d, d)


def _normalize(vectors: np.ndarray) -> np.ndarray:
  norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
  return vectors / np.maximum(norms, _TINY)


def power_deflation(
    tensor: np.ndarray,
    rank: int,
    *,
    restarts: int = 10,
    iterations: int = 30,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
  """Robust tensor power method with random restarts and deflation.

  Args:
    tensor: symmetric [d, d, d].
    rank: components k to extract (k > d is allowed but see the module
      docstring: deflation breaks down there).
    restarts: random starts per component (run simultaneously).
    iterations: power iterations per start, and again for the best start.
    rng: source of the random starts.

  Returns:
    (weights float64 [k], vectors float64 [k, d]) with unit rows, in the
    order found; weights_j = T_j(u_j, u_j, u_j) >= 0 on the deflated
    residual T_j (the iteration is invariant to u -> -u and settles on the
    sign that makes it positive).

  Raises:
    ValueError: a tensor that is not [d, d, d], or rank/restarts/iterations
      < 1.
  """
  residual = np.array(tensor, np.float64)
  if residual.ndim != 3 or len(set(residual.shape)) != 1:
    raise ValueError(
        f"power_deflation needs a [d, d, d] tensor, got {residual.shape}."
    )
  for what, value in (
      ("rank", rank),
      ("restarts", restarts),
      ("iterations", iterations),
  ):
    if value < 1:
      raise ValueError(f"power_deflation: {what} must be >= 1, got {value}.")
  d = residual.shape[0]
  weights = np.zeros(rank)
  vectors = np.zeros((rank, d))
  for j in range(rank):
    starts = _normalize(rng.standard_normal((restarts, d)))
    for _ in range(iterations):
      starts = _normalize(contract(residual, starts))
    u = starts[np.argmax(evaluate(residual, starts))][None]
    for _ in range(iterations):
      u = _normalize(contract(residual, u))
    weight = float(evaluate(residual, u)[0])
    weights[j], vectors[j] = weight, u[0]
    residual -= compose(np.array([weight]), u)
  return weights, vectors


def _objective(flat: np.ndarray, tensor: np.ndarray, scale: float):
  """|T - sum_j v_j^{x3}|^2 / scale and its gradient w.r.t. V (flattened)."""
  d = tensor.shape[0]
  v = flat.reshape(-1, d)
  residual = tensor - compose(np.ones(v.shape[0]), v)
  # d/dv_j |R|^2 = -2 <R, d(v_j^{x3})> = -6 R(I, v_j, v_j) (R symmetric).
  grad = -6.0 * contract(residual, v)
  return float(np.sum(residual * residual)) / scale, grad.ravel() / scale


def joint_refine(
    tensor: np.ndarray,
    weights: np.ndarray,
    vectors: np.ndarray,
    *,
    max_iterations: int = 300,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
  """Refines all components together by L-BFGS on the Frobenius residual.

  Args:
    tensor: symmetric [d, d, d].
    weights: [k] initial weights (e.g. from `power_deflation`).
    vectors: [k, d] initial unit vectors.
    max_iterations: L-BFGS iterations (0 returns the input unchanged).

  Returns:
    (weights float64 [k] >= 0, vectors float64 [k, d] unit rows, info) where
    info = {'relative_residual': |T - sum_j l_j u_j^{x3}|_F / |T|_F,
    'iterations': L-BFGS iterations run}.
  """
  tensor = np.asarray(tensor, np.float64)
  weights = np.asarray(weights, np.float64)
  vectors = np.asarray(vectors, np.float64)
  scale = max(float(np.sum(tensor * tensor)), _TINY)
  iterations = 0
  if max_iterations > 0:
    # v_j = cbrt(l_j) u_j carries the weight and its sign: v^{x3} = l u^{x3}.
    start = (np.cbrt(weights)[:, None] * vectors).ravel()
    result = scipy.optimize.minimize(
        _objective,
        start,
        args=(tensor, scale),
        jac=True,
        method="L-BFGS-B",
        # ftol/gtol this small let an exactly decomposable tensor converge
        # to ~1e-8 relative residual; a noisy estimate stops on its plateau.
        options=dict(maxiter=max_iterations, ftol=1e-16, gtol=1e-12),
    )
    v = result.x.reshape(vectors.shape)
    iterations = int(result.nit)
    norms = np.linalg.norm(v, axis=1)
    weights = norms**3
    vectors = v / np.maximum(norms, _TINY)[:, None]
  residual = tensor - compose(weights, vectors)
  info = {
      "relative_residual": float(np.sqrt(np.sum(residual**2) / scale)),
      "iterations": float(iterations),
  }
  return weights, vectors, info
