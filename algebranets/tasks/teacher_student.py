"""Regression on a polynomial two-layer teacher (Mondelli & Montanari 2018).

Data (`algebranets.data.teacher_student`): x ~ N(0, I_d) and
y = sum_{i<=r} sigma(w_i . x) (+ label noise), sigma(t) = sum_k a_k t^k with
`data.coeffs` = (a_0, a_1, ...), teacher rows random unit vectors from
`data.teacher_seed` or an .npy file (`data.teacher_weights`, used as given).

Training stream. A base stream of examples is drawn in chunks of CHUNK:
chunk c is `sample(teacher, CHUNK, key=(_TRAIN_TAG, seed, c))`, so base
example j is a pure function of (teacher, seed, j) and does not depend on the
batch size. Example k of the run (k = step * B + row) is
  data.train_examples = 0  base example k (fresh samples forever);
  data.train_examples = N  element k mod N of the permutation of epoch k // N
                           (`np.random.default_rng((_PERM_TAG, seed,
                           epoch))`) of the fixed training set = base
                           examples 0..N-1 (a sample budget comparable
                           across learners).
There is no iterator state: a resumed run sees the batches of an
uninterrupted one, and each process builds only its rows of the global
batch. `fit_data(n)` returns the run's first n examples, i.e. exactly the
rows a network sees in its first n / B steps.

Held-out splits: 'valid' and 'test' are `data.valid_examples` and
`data.test_examples` fresh examples drawn with keys (_VALID_TAG,
teacher_seed) and (_TEST_TAG, teacher_seed): distinct from training, and
equal across seeds and learners of the same teacher. 'train' (only with
train_examples > 0) is the fixed training set in index order. Evaluation
walks a split in order; the last batch is padded with zero-weight rows.

Metrics: 'mse' (= 'loss'), and the headline 'nmse' = mse / Var(y) with the
closed-form Var(y): 1.0 is the trivial predictor E[y], 0 a perfect one
(noise^2 / Var(y) is the floor with label noise). With
`data.normalize_targets` (default) a network's raw output o is mapped to the
prediction E[y] + sqrt(Var(y)) * o (closed-form constants), so it learns a
target of unit scale whatever d and r are; metrics are always in the units
of y.

Shape glossary: B = batch (global unless "local"), d = input dimension,
r = teacher units, m = directions passed to `recovery_metrics`.
"""

from __future__ import annotations

import collections
import math
import numbers
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from algebranets import models
from algebranets.data import process_rows
from algebranets.data import teacher_student as ts_data
from algebranets.models import two_layer
from algebranets.tasks import registry
from algebranets.tasks.base import Task

NAME = "teacher_student"
SOURCE = "polynomial_teacher"
SPLITS = ("train", "valid", "test")
# Base-stream examples per generated chunk (a batch rarely spans more than
# two chunks; generating 1024 examples at a time amortises the teacher).
CHUNK = 1024
# First word of every sampling key, one per stream, so no two streams can
# share a seed (NumPy's SeedSequence treats (a, b) and (a, b, 0) alike, so
# distinct first words are what keeps them apart).
_TRAIN_TAG = 0x74726E00
_PERM_TAG = 0x70726D00
_VALID_TAG = 0x766C6400
_TEST_TAG = 0x74737400
_MAX_SEED = 2**32  # one SeedSequence word per key entry


def data_defaults() -> dict[str, Any]:
  return dict(
      name=SOURCE,  # the only source
      input_dim=16,  # d
      teacher_units=16,  # r
      coeffs=(0.0, 1.0, 0.0, 1.0),  # monomial a_0..a_K: sigma = t + t^3
      teacher_seed=0,  # random unit-norm rows; also seeds valid/test
      teacher_weights="",  # .npy [r, d] used as given; '' = random rows
      noise_std=0.0,  # Gaussian label noise
      train_examples=0,  # 0 = endless fresh samples; N = fixed set of N
      valid_examples=2000,
      test_examples=10000,
      normalize_targets=True,  # network output o -> E[y] + sd(y) * o
  )


def _is_int(value: Any) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(value: Any, key: str, low: int, example: str) -> None:
  if not _is_int(value) or value < low:
    raise ValueError(
        f"{key}={value!r} must be an int >= {low}, e.g. {example}."
    )


def validate_config(config, *, check_data: bool = True) -> None:
  """Task-level checks of `config.data`, `config.eval.split`, the seed and
  the model's fit to the data.

  Raises:
    ValueError: naming the key, its value and the fix.
  """
  data = config.data
  if data.name != SOURCE:
    raise ValueError(
        f"data.name={data.name!r}: the teacher_student task has the single "
        f"source {SOURCE!r}; set --config.data.name={SOURCE}."
    )
  _check_int(data.input_dim, "data.input_dim", 1, "--config.data.input_dim=16")
  _check_int(
      data.teacher_units,
      "data.teacher_units",
      1,
      "--config.data.teacher_units=16 (the number r of teacher units)",
  )
  _check_int(
      data.train_examples,
      "data.train_examples",
      0,
      "0 (endless fresh samples) or 20000 (a fixed training set)",
  )
  _check_int(data.valid_examples, "data.valid_examples", 1, "2000")
  _check_int(data.test_examples, "data.test_examples", 1, "10000")
  for key, value in (
      ("data.teacher_seed", data.teacher_seed),
      ("seed", config.seed),
  ):
    if not _is_int(value) or not 0 <= value < _MAX_SEED:
      raise ValueError(
          f"{key}={value!r} must be an int in [0, 2^32) (it seeds NumPy "
          "generators), e.g. 0."
      )
  coeffs = ts_data.check_coeffs(data.coeffs)
  noise = data.noise_std
  if (
      not isinstance(noise, numbers.Real)
      or isinstance(noise, bool)
      or not math.isfinite(noise)
      or noise < 0
  ):
    raise ValueError(
        f"data.noise_std={noise!r} must be a finite number >= 0 (0 = "
        "noiseless labels)."
    )
  if not isinstance(data.normalize_targets, bool):
    raise ValueError(
        f"data.normalize_targets={data.normalize_targets!r} must be True or "
        "False."
    )
  if not isinstance(data.teacher_weights, str):
    raise ValueError(
        f"data.teacher_weights={data.teacher_weights!r} must be a path "
        "string ('' = random unit-norm rows)."
    )
  if check_data and data.teacher_weights:
    ts_data.load_weights(
        data.teacher_weights, data.teacher_units, data.input_dim
    )
  split = config.eval.split
  if split not in SPLITS:
    raise ValueError(f"eval.split={split!r}; use one of {list(SPLITS)}.")
  if split == "train" and data.train_examples == 0:
    raise ValueError(_NO_TRAIN_SPLIT)
  if config.model.get("name") == two_layer.NAME:
    # The student against the data (d divisible by A, the coefficients of
    # a polynomial activation); its data-free checks ran in models.check.
    models.check(config.model, input_dim=data.input_dim, coeffs=coeffs)


_NO_TRAIN_SPLIT = (
    "The 'train' split exists only for a fixed training set "
    "(data.train_examples > 0); with endless fresh samples evaluate on "
    "'valid' or 'test' (--config.eval.split=test), or set "
    "--config.data.train_examples=N."
)


def _uses_jax(*arrays) -> bool:
  return any(isinstance(a, jax.Array) for a in arrays)


class TeacherStudentTask(Task):
  """The teacher-student regression task of one run (the trainer's
  interface, plus what the closed-form learners use).

  Batches are dicts of NumPy arrays with the batch on axis 0: 'x' float32
  [B, d] and 'y' float32 [B]; evaluation batches add 'weights' float32 [B]
  (0 on padding rows).

  Attributes:
    teacher: the `PolynomialTeacher`.
    target_mean, target_variance: closed-form E[y] and Var(y).
  """

  metric_names = ("loss", "mse", "nmse")
  # The keys of model_fn's sums (what `summarize` reads).
  sum_names = ("sq_err", "count")
  input_keys = ("x",)
  # Lower is better for the headline metric (sweep tables).
  headline_metric = "nmse"

  def __init__(self, config, *, process_index: int = 0, process_count: int = 1):
    """Builds the teacher (held-out sets are drawn on first use).

    Raises:
      ValueError: bad data keys or weights file, or a batch not divisible
        by the process count.
    """
    data = config.data
    self.config = config
    self.process = (process_index, process_count)
    self.teacher = ts_data.make_teacher(
        data.input_dim,
        data.teacher_units,
        tuple(data.coeffs),
        seed=data.teacher_seed,
        weights_path=data.teacher_weights,
        noise_std=data.noise_std,
    )
    self.input_dim = self.teacher.input_dim
    self.seed = int(config.seed)
    self.teacher_seed = int(data.teacher_seed)
    self.global_batch = int(config.train.batch_size)
    self.rows = process_rows.local_rows(
        self.global_batch, process_index, process_count
    )
    self.train_examples = int(data.train_examples)
    self.sizes = {
        "train": self.train_examples,
        "valid": int(data.valid_examples),
        "test": int(data.test_examples),
    }
    self.target_mean = self.teacher.mean()
    self.target_variance = self.teacher.variance()
    if data.normalize_targets:
      self._offset = self.target_mean
      self._scale = math.sqrt(self.target_variance)
    else:
      self._offset, self._scale = 0.0, 1.0
    self._chunks: collections.OrderedDict[int, tuple] = (
        collections.OrderedDict()
    )
    self._perms: collections.OrderedDict[int, np.ndarray] = (
        collections.OrderedDict()
    )
    self._splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}

  # ----------------------------------------------------------------- data --
  def _chunk(self, index: int) -> tuple[np.ndarray, np.ndarray]:
    if index not in self._chunks:
      if len(self._chunks) >= 4:  # a batch spans at most a few chunks
        self._chunks.popitem(last=False)
      self._chunks[index] = ts_data.sample(
          self.teacher, CHUNK, (_TRAIN_TAG, self.seed, index)
      )
    return self._chunks[index]

  def _base_examples(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Base-stream examples at positions `idx` (int [n])."""
    chunk, pos = np.divmod(idx, CHUNK)
    x = np.empty((idx.size, self.input_dim), np.float32)
    y = np.empty((idx.size,), np.float32)
    for c in np.unique(chunk):
      sel = chunk == c
      cx, cy = self._chunk(int(c))
      x[sel], y[sel] = cx[pos[sel]], cy[pos[sel]]
    return x, y

  def _train_set(self) -> tuple[np.ndarray, np.ndarray]:
    if "train" not in self._splits:
      n = self.train_examples
      x = np.empty((n, self.input_dim), np.float32)
      y = np.empty((n,), np.float32)
      for c in range(-(-n // CHUNK)):
        # Straight from the sampler: the training set must not evict the
        # chunk cache one chunk at a time.
        cx, cy = ts_data.sample(self.teacher, CHUNK, (_TRAIN_TAG, self.seed, c))
        start, end = c * CHUNK, min(n, (c + 1) * CHUNK)
        x[start:end] = cx[: end - start]
        y[start:end] = cy[: end - start]
      self._splits["train"] = (x, y)
    return self._splits["train"]

  def _permutation(self, epoch: int) -> np.ndarray:
    if epoch not in self._perms:
      if len(self._perms) >= 4:
        self._perms.popitem(last=False)
      self._perms[epoch] = np.random.default_rng(
          (_PERM_TAG, self.seed, epoch)
      ).permutation(self.train_examples)
    return self._perms[epoch]

  def run_examples(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Examples number `k` of this run's training stream.

    Args:
      k: int [n], positions in the run (k = step * B + row).

    Returns:
      (x float32 [n, d], y float32 [n]).
    """
    k = np.asarray(k, dtype=np.int64)
    n = self.train_examples
    if n == 0:
      return self._base_examples(k)
    epochs, pos = np.divmod(k, n)
    idx = np.empty_like(pos)
    for epoch in np.unique(epochs):
      sel = epochs == epoch
      idx[sel] = self._permutation(int(epoch))[pos[sel]]
    x, y = self._train_set()
    return x[idx], y[idx]

  def train_batch(self, step: int) -> dict[str, np.ndarray]:
    """This process's rows of the training batch of `step`.

    Returns:
      {'x': float32 [B/P, d], 'y': float32 [B/P]}; a function of
      (teacher, config.seed, step) only.
    """
    b = self.global_batch
    k = step * b + np.arange(b)[self.rows]
    x, y = self.run_examples(k)
    return {"x": x, "y": y}

  def fit_data(self, num_examples: int = 0) -> dict[str, np.ndarray]:
    """The run's first `num_examples` training examples (all processes).

    Exactly the rows a network sees in its first num_examples / B steps,
    so a closed-form learner and a network share the sample budget.

    Args:
      num_examples: n >= 1; 0 = data.train_examples.

    Returns:
      {'x': float32 [n, d], 'y': float32 [n]}.

    Raises:
      ValueError: 0 with endless data (no budget to default to), a negative
        n, or n larger than the fixed training set.
    """
    n = int(num_examples)
    if n < 0:
      raise ValueError(f"fit_data: num_examples={n} must be >= 0.")
    if n == 0:
      if self.train_examples == 0:
        raise ValueError(
            "fit_data(0) means data.train_examples, but the data are an "
            "endless stream (data.train_examples=0); set "
            "--config.data.train_examples=N (the sample budget) or ask for "
            "a number of examples (e.g. the learner's model.fit_examples)."
        )
      n = self.train_examples
    if self.train_examples and n > self.train_examples:
      raise ValueError(
          f"fit_data: {n} examples requested but the fixed training set "
          f"has data.train_examples={self.train_examples}; ask for at most "
          "that many or raise data.train_examples."
      )
    x, y = self.run_examples(np.arange(n))
    return {"x": x, "y": y}

  def _check_split(self, split: str) -> None:
    if split not in SPLITS:
      raise ValueError(f"Unknown split {split!r}; valid: {list(SPLITS)}.")
    if split == "train" and self.train_examples == 0:
      raise ValueError(_NO_TRAIN_SPLIT)

  def split_data(self, split: str) -> dict[str, np.ndarray]:
    """A whole split, in order: {'x': float32 [n, d], 'y': float32 [n]}.

    Raises:
      ValueError: unknown split, or 'train' with endless data.
    """
    self._check_split(split)
    if split == "train":
      x, y = self._train_set()
    else:
      if split not in self._splits:
        tag = _VALID_TAG if split == "valid" else _TEST_TAG
        self._splits[split] = ts_data.sample(
            self.teacher, self.sizes[split], (tag, self.teacher_seed)
        )
      x, y = self._splits[split]
    return {"x": x, "y": y}

  def eval_batches(
      self, split: str, *, batch_size: int, num_batches: int = 0
  ) -> Iterator[dict[str, np.ndarray]]:
    """This process's rows of the evaluation batches of `split`, in order.

    Args:
      split: 'train' (fixed training set only), 'valid' or 'test'.
      batch_size: global batch.
      num_batches: stop after this many; 0 = the whole split.

    Yields:
      {'x': float32 [B/P, d], 'y': float32 [B/P], 'weights': float32
       [B/P]}; the last batch is padded with weight-0 rows.
    """
    data = self.split_data(split)
    x, y = data["x"], data["y"]
    n = y.shape[0]
    rows = process_rows.local_rows(batch_size, *self.process)
    total = -(-n // batch_size)
    if num_batches > 0:
      total = min(total, num_batches)
    for b in range(total):
      k = np.arange(b * batch_size, (b + 1) * batch_size)[rows]
      valid = k < n
      idx = np.where(valid, k, 0)
      yield {
          "x": np.where(valid[:, None], x[idx], 0.0).astype(np.float32),
          "y": np.where(valid, y[idx], 0.0).astype(np.float32),
          "weights": valid.astype(np.float32),
      }

  def num_eval_batches(self, split: str, batch_size: int) -> int:
    self._check_split(split)
    return -(-self.sizes[split] // batch_size)

  # ---------------------------------------------------------------- model --
  def _model(self):
    return models.build(
        self.config.model, input_dim=self.input_dim, coeffs=self.teacher.coeffs
    )

  def model_fn(
      self, batch: dict[str, jax.Array], is_training: bool
  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean squared error and metric sums; call inside `hk.transform`.

    Args:
      batch: 'x' float [B, d], 'y' float [B], optionally 'weights' [B].
      is_training: passed to the model.

    Returns:
      (weighted mean squared error in the units of y, sums 'sq_err' and
      'count' as float32 scalars).
    """
    out = self._model()(batch["x"], is_training=is_training)
    pred = self._offset + self._scale * out.astype(jnp.float32)
    sums = self.metric_sums(pred, batch)
    return sums["sq_err"] / jnp.maximum(sums["count"], 1.0), sums

  def macs_fn(self):
    """(untransformed fn, args) for `metrics.count_macs` on one example."""

    def fn(x):
      return self._model()(x, is_training=False)

    return fn, (jax.ShapeDtypeStruct((1, self.input_dim), jnp.float32),)

  def example_batch(
      self, batch_size: int, is_training: bool = True
  ) -> dict[str, np.ndarray]:
    """Zeros of a batch's shapes ('weights' added for evaluation)."""
    batch = {
        "x": np.zeros((batch_size, self.input_dim), np.float32),
        "y": np.zeros((batch_size,), np.float32),
    }
    if not is_training:
      batch["weights"] = np.zeros((batch_size,), np.float32)
    return batch

  # -------------------------------------------------------------- metrics --
  def metric_sums(self, predictions, batch: Mapping[str, Any]) -> dict:
    """Summed squared error and weight of one batch.

    Works on NumPy arrays (computed in float64, returned as np.float32) and
    on JAX arrays (float32, traceable).

    Args:
      predictions: [B] predictions in the units of y.
      batch: 'y' [B], optionally 'weights' [B] (default 1).

    Returns:
      {'sq_err': sum_b w_b (pred_b - y_b)^2, 'count': sum_b w_b}, float32
      scalars; `summarize` turns sums over batches into metrics.

    Raises:
      ValueError: predictions whose shape is not y's (e.g. [B, 1], which
        would broadcast to [B, B]).
    """
    y = batch["y"]
    weights = batch.get("weights")
    if tuple(predictions.shape) != tuple(y.shape) or len(y.shape) != 1:
      raise ValueError(
          f"metric_sums: predictions of shape {tuple(predictions.shape)} "
          f"must have the shape of y {tuple(y.shape)} (one value per "
          "example); squeeze a trailing axis of 1."
      )
    if _uses_jax(predictions, y, weights):
      pred = jnp.asarray(predictions, jnp.float32)
      w = (
          jnp.ones_like(pred)
          if weights is None
          else jnp.asarray(weights, jnp.float32)
      )
      err = jnp.square(pred - jnp.asarray(y, jnp.float32))
      return {"sq_err": jnp.sum(err * w), "count": jnp.sum(w)}
    pred = np.asarray(predictions, np.float64)
    w = (
        np.ones_like(pred)
        if weights is None
        else np.asarray(weights, np.float64)
    )
    err = np.square(pred - np.asarray(y, np.float64))
    return {
        "sq_err": np.float32(np.sum(err * w)),
        "count": np.float32(np.sum(w)),
    }

  def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
    """{'loss', 'mse', 'nmse'} from summed 'sq_err' and 'count'.

    nmse = mse / Var(y) (closed form): 1.0 = the trivial predictor E[y].

    Raises:
      KeyError: 'sq_err' or 'count' missing.
    """
    count = max(float(sums["count"]), 1.0)
    mse = float(sums["sq_err"]) / count
    return {"loss": mse, "mse": mse, "nmse": mse / self.target_variance}

  def recovery_metrics(self, directions) -> dict[str, float]:
    """How well estimated directions match the teacher's.

    Args:
      directions: [m, d], m >= 1 estimated teacher directions (any scale
        and sign; a zero row matches nothing).

    Returns:
      'recovery_cos': mean over teacher units i of max_j |cos(w_i, u_j)|
      (1 = every unit recovered); 'recovery_error' = 1 - recovery_cos; and,
      when m >= r, 'matched_cos': mean |cos| over an optimal one-to-one
      matching of teacher units to directions (Hungarian algorithm).

    Raises:
      ValueError: not a finite [m, d] array with m >= 1.
    """
    u = np.asarray(directions, dtype=np.float64)
    d, r = self.input_dim, self.teacher.num_units
    if u.ndim != 2 or u.shape[0] < 1 or u.shape[1] != d:
      raise ValueError(
          f"recovery_metrics: directions must be [m, {d}] with m >= 1 "
          f"(one estimated teacher direction per row), got shape {u.shape}."
      )
    if not np.all(np.isfinite(u)):
      raise ValueError("recovery_metrics: directions contain NaN or Inf.")
    norms = np.linalg.norm(u, axis=1, keepdims=True)
    unit = u / np.where(norms > 0, norms, 1.0)
    cos = np.abs(self.teacher.directions @ unit.T)  # [r, m]
    best = float(np.mean(np.max(cos, axis=1)))
    out = {"recovery_cos": best, "recovery_error": 1.0 - best}
    if u.shape[0] >= r:
      rows, cols = optimize.linear_sum_assignment(cos, maximize=True)
      out["matched_cos"] = float(np.mean(cos[rows, cols]))
    return out

  def param_metrics(self, params) -> dict[str, float]:
    """Final-metric hook of the trainer: the student's direction recovery.

    For a 'two_layer' student, `recovery_metrics` of its effective real
    first-layer directions (`two_layer.effective_directions`); {} for other
    models.
    """
    if self.config.model.name != two_layer.NAME:
      return {}
    params = jax.device_get(params)
    dirs = two_layer.effective_directions(
        params, self.config.model.algebra, input_dim=self.input_dim
    )
    return self.recovery_metrics(dirs)

  def describe(self) -> dict[str, Any]:
    """The teacher, its closed-form statistics and the split sizes.

    'teacher_mean' and 'teacher_variance' are E[y] and Var(y);
    'hermite_coeffs' the He_k coefficients of sigma;
    'least_squares_population_nmse' the nmse of the best linear predictor
    (the linear Hermite part; the baseline a network has to beat);
    '{valid,test}_y_mean/_y_var' the held-out sets' sample statistics.
    """
    t = self.teacher
    d, r = t.input_dim, t.num_units
    out: dict[str, Any] = {
        "source": SOURCE,
        "input_dim": d,
        "teacher_units": r,
        "r_over_d_1.5": r / d**1.5,
        "coeffs": list(t.coeffs),
        "hermite_coeffs": [float(c) for c in t.hermite_coeffs()],
        "noise_std": t.noise_std,
        "teacher_weights": self.config.data.teacher_weights
        or f"random unit rows (teacher_seed={self.teacher_seed})",
        "teacher_mean": self.target_mean,
        "teacher_variance": self.target_variance,
        "least_squares_population_nmse": t.least_squares_nmse(),
        "noise_floor_nmse": t.noise_std**2 / self.target_variance,
        "train_examples": self.train_examples,
    }
    for split in ("valid", "test"):
      y = self.split_data(split)["y"].astype(np.float64)
      out[f"{split}_examples"] = int(y.size)
      out[f"{split}_y_mean"] = float(y.mean())
      out[f"{split}_y_var"] = float(y.var())
    return out


def _build(config, *, process_index: int = 0, process_count: int = 1):
  return TeacherStudentTask(
      config, process_index=process_index, process_count=process_count
  )


registry.register(
    registry.TaskSpec(
        name=NAME,
        data_defaults=data_defaults,
        validate_config=validate_config,
        build=_build,
    )
)
