r"""Teacher-student study: learning y = sum_i sigma(w_i . x), sigma a cubic.

The whole study in one command (150 runs: every learner at every point,
into workdirs/sweeps/teacher_student/), then its plot and tables:

  python -m scripts.sweep --config configs/teacher_student.py:hermite3_only
  python -m scripts.plot_teacher_student \
      --workdirs 'workdirs/sweeps/teacher_student/*' \
      --out workdirs/sweeps/teacher_student/study

Without `:hermite3_only` the same sweep runs the t + t^3 teacher (its
workdir names lack the `hermite3_only,` prefix, so both studies can share
the root; the plot draws one row of panels per teacher and budget). One
run:

  python -m experiments.train \
      --config configs/teacher_student.py:hermite3_only,d=16,r=64,budget=4 \
      --workdir workdirs/ts_h3_d16_r64_b4_network
  python -m algebranets.studies.teacher_student.fit \
      --config configs/teacher_student.py:learner=moment_tensor,budget=4 \
      --workdir workdirs/ts_d16_r16_b4_moments

A network (learner=network) is trained by experiments.train and evaluated
by experiments.eval; a closed-form learner (mean, least_squares,
moment_tensor: `algebranets.studies.teacher_student`) is fitted by its
`fit` module and reloaded by `python -m
algebranets.studies.teacher_student.evaluate --workdir ...`. The study's
maths (budgets, the r grid, hermite3_only) is in
`algebranets/studies/teacher_student/design.py`.

Data (`algebranets.tasks.teacher_student`): x ~ N(0, I_d), teacher
y = sum_{i<=r} sigma(w_i . x) with random unit-norm rows w_i and
sigma(t) = a0 + a1 t + a3 t^3 (+ a5 t^5), default t + t^3 (Hermite
coefficients c_1 = a1 + 3 a3 = 4, c_3 = a3 = 1); `hermite3_only` sets
a1 = -(3 a3 + 15 a5), so sigma = He_3(t) = t^3 - 3t for the defaults. The
final metric is nmse = test MSE / Var(y) on 10,000 fresh test examples
(1.0 = the trivial predictor E[y]), plus the direction-recovery metrics.

Sample budget. Every learner of a run sees the same fixed training set,
the first data.train_examples examples of the seeded stream (a network
cycles through them in seeded epochs, a closed-form learner fits on all of
them). `budget=b` sets data.train_examples = round(b * C(d+3, 3)), where
C(d+3, 3) = 165, 969, 6545 at d = 8, 16, 32 is the number of monomials of
degree <= 3 in d variables. y is a cubic polynomial of x, so once the
sample exceeds that dimension plain cubic regression identifies it
(exactly, without noise): the problem is then statistically easy at any r,
and a fixed 20,000 examples is above it for every d <= 32. The sample
budget is therefore measured in that unit, and the sweep runs b = 0.5
(cubic regression underdetermined) and b = 4 (well determined). A budget
never gives fewer than d + 2 examples: least squares on [1, x] needs d + 1
to be determined, one more leaves a residual. Without a budget (b = 0) the
training set has `samples` examples (default 20,000; samples=0 = endless
fresh samples for a network).

Batch: min(batch, data.train_examples). A training set smaller than the
batch (82 examples at d = 8, b = 0.5) is trained full-batch, every step
seeing each example once; a batch of 100 there also runs (the stream wraps
into the next epoch's permutation), but counts 18 examples twice per step.

Learners (`learner`): 'network' = the two-layer student
(`models/two_layer.py`, real or algebra-valued with matched parameters, the
teacher's polynomial as activation, `hidden` R units, default r), trained
with Adam (LR 1e-2, cosine, 5% warmup, batch 100, 3,000 steps) on the
MSE; 'mean' = E[y] from the sample; 'least_squares' = OLS on [1, x];
'moment_tensor' = method of moments (decomposition of E[y He_3(x)] with
rank r, then a least-squares refit of the output layer on 1 + d + r
features, which fits even at b = 0.5: r <= d^2 stays below the sample).

Paper (Mondelli & Montanari 2018, abstract): for d^{3/2} << r << d^2 no
polynomial-time learner beats the trivial predictor E[y]. For random unit
rows the linear Hermite part c_1 sum_i w_i carries about
c_1^2 / (c_1^2 + 6 c_3^2) of Var(y) at any d and r (16/22 for t + t^3), so
there least squares reaches nmse ~0.27 everywhere; `hermite3_only` removes
that part (least squares ~ E[y]), which makes it the study's default.
Measured on the He_3 teacher (seed 0, test nmse; docs/studies.md has the
whole sweep): at b = 4, d = 32 (26,180 examples) network R 0.042 / 0.013 /
0.005 at r = 16 / 362 / 1024, network H 0.097 / 0.026 / 0.017,
moment_tensor 0.107 / 0.275 / 0.246, least_squares and mean 0.97-1.01; at
b = 0.5, d = 8 (82 examples) no learner reaches 0.5: moment_tensor
0.71-0.77 for r <= 32 (5.5 at r = 64, where its refit has 73 features),
networks 0.57-3.3, least_squares 1.06-1.22, mean ~1.0.

Runtime (2 CPU cores shared with other jobs, load average 3-4): the d = 8
part of the sweep (50 runs) took 198 s, the d = 32, b = 4 quarter (25 runs,
the largest networks and moment fits) 185 s: network runs 5-14 s,
moment_tensor 2-25 s, mean and least_squares 1.5-4 s (mostly start-up). The
whole sweep is estimated at about 13 minutes. The step time does not depend
on the budget, so the b = 0.5 points train the same 3,000 steps (many
epochs of a small set; the test nmse shows the overfitting).

Args (combine with commas): d=<int> (default 16; 8 with runlocal), r=<int>
(teacher units; default 16; 4 with runlocal), learner=
network|mean|least_squares|moment_tensor, algebra=<name> (network;
default R), activation=poly|relu|poly_algebra, hidden=<int> (R hidden units
of the student; 0 = r), match=params|none, steps=<int>, batch=<int>,
lr=<float>, budget=<float> (training examples in units of C(d+3, 3); 0 =
use samples), samples=<int>, seed=<int>, teacher_seed=<int>,
noise=<float> (label noise std), a0/a1/a3/a5=<float> (monomial
coefficients), hermite3_only (a1 = -(3 a3 + 15 a5): the linear Hermite part
vanishes, so least squares is no better than E[y]), runlocal (a
seconds-long smoke run).

Sweep (`sweep`): d in (8, 16, 32) x budget in SWEEP_BUDGETS = (0.5, 4) x 5
values of r on a log grid from d/2 to d^2 x learner (mean, least_squares,
moment_tensor, network R, network H with matched parameters; H, or the
`algebra` arg), each point through its config arg
`d=..,r=..,budget=..,learner=..` (the algebra as an override); the
closed-form points run through the study's fit module (`entry=`). The sweep's
own arg sets the teacher and the training settings; d, r or budget in it
pin that axis, and its other non-default args are repeated at the front of
every point's arg, hence of its workdir name (e.g.
workdirs/sweeps/teacher_student/hermite3_only,d=8,r=4,budget=0.5,learner=mean), so
sweeps with different settings never share a workdir. `runlocal` sweeps a
30-run smoke version (d = 8, r in (4, 16, 64), 100 steps).
"""

import math

from algebranets.studies.teacher_student import closed_form, design
from algebranets.training import config_lib

# The `learner` arg -> the model (network) or closed-form learner.
LEARNERS = {
    "network": "two_layer",
    "mean": "mean",
    "least_squares": "least_squares",
    "moment_tensor": "moment_tensor",
}
SWEEP_DIMS = (8, 16, 32)
SWEEP_POINTS = 5
# Sample budgets in units of the cubic dimension C(d+3, 3): half of it and
# four times it (see the module docstring).
SWEEP_BUDGETS = (0.5, 4.0)
SWEEP_ALGEBRA = "H"
DEFAULT_D, DEFAULT_R = 16, 16
RUNLOCAL_D, RUNLOCAL_R = 8, 4
# The runlocal sweep: d = RUNLOCAL_D only, this many widths r.
RUNLOCAL_SWEEP_POINTS = 3
# Args the sweep sets per point (the algebra through an override). Every
# other non-default arg of a sweep's own arg is repeated in each point's arg:
# scripts.sweep names a workdir after the point's arg only, so sweeps with
# different teachers or settings never share a workdir.
SWEEP_AXES = ("d", "r", "budget", "learner", "algebra")


def parse(arg):
  return config_lib.parse_arg(
      arg,
      d=0,
      r=0,
      learner="network",
      algebra="R",
      activation="poly",
      hidden=0,
      match="params",
      steps=3000,
      batch=100,
      lr=1e-2,
      samples=20000,
      budget=0.0,
      seed=0,
      teacher_seed=0,
      noise=0.0,
      a0=0.0,
      a1=1.0,
      a3=1.0,
      a5=0.0,
      hermite3_only=False,
      runlocal=False,
  )


def coefficients(arg) -> tuple[float, ...]:
  """Monomial coefficients (a0, a1, 0, a3[, 0, a5]) from the parsed args."""
  return design.monomial_coeffs(
      arg.a0, arg.a1, arg.a3, arg.a5, hermite3_only=arg.hermite3_only
  )


def get_config(arg=None):
  """The run config of a config arg (the args are in the module docstring).

  Raises:
    ConfigError: an unknown arg or learner, or a negative budget.
  """
  arg = parse(arg)
  if arg.learner not in LEARNERS:
    raise config_lib.ConfigError(
        f"Config arg learner={arg.learner!r}; valid: {sorted(LEARNERS)}."
        + config_lib.suggest(arg.learner, LEARNERS)
    )
  if not arg.budget >= 0 or not math.isfinite(arg.budget):
    raise config_lib.ConfigError(
        f"Config arg budget={arg.budget!r} must be a finite number >= 0: "
        "0 uses `samples`, b > 0 gives round(b * C(d+3, 3)) training "
        "examples (e.g. budget=0.5)."
    )
  d = arg.d or (RUNLOCAL_D if arg.runlocal else DEFAULT_D)
  r = arg.r or (RUNLOCAL_R if arg.runlocal else DEFAULT_R)
  samples, steps, batch = arg.samples, arg.steps, arg.batch
  if arg.runlocal:
    samples = min(samples, 2000) if samples else 0
    steps, batch = 100, 32
  train_examples = (
      design.budget_examples(arg.budget, d) if arg.budget else samples
  )
  if train_examples:
    # A batch larger than the training set would repeat examples within
    # the step; the whole set is the natural largest batch.
    batch = min(batch, train_examples)
  if arg.learner == "network":
    config = config_lib.base_config("teacher_student", LEARNERS[arg.learner])
  else:
    config = closed_form.base_config(LEARNERS[arg.learner])
  config.seed = arg.seed

  data = config.data
  data.input_dim = d
  data.teacher_units = r
  data.coeffs = coefficients(arg)
  data.teacher_seed = arg.teacher_seed
  data.noise_std = arg.noise
  data.train_examples = train_examples
  data.valid_examples = 2000
  data.test_examples = 10000

  m = config.model
  if arg.learner == "network":
    m.algebra = arg.algebra
    m.hidden = arg.hidden or r
    m.match = arg.match
    m.activation = arg.activation
    m.lift = "reshape"
  else:
    # The shared budget (data.train_examples); the moment learner's rank
    # defaults to data.teacher_units.
    m.fit_examples = 0

  opt = config.optimizer
  opt.name = "adam"
  opt.learning_rate = arg.lr
  opt.schedule = "cosine"
  opt.warmup_steps = steps // 20
  opt.end_learning_rate_factor = 0.0
  opt.weight_decay = 0.0
  opt.grad_clip_norm = 0.0

  tr = config.train
  tr.batch_size = batch
  tr.num_steps = steps
  tr.log_every = max(1, steps // 10)
  tr.checkpoint_every = steps  # one checkpoint, at the end
  tr.keep_checkpoints = 1

  ev = config.eval
  # No model selection happens (fixed steps), so the final evaluation can
  # be the test split itself; there is no periodic evaluation.
  ev.split = "test"
  ev.every_steps = 0
  ev.num_batches = 0
  ev.batch_size = 1000

  if arg.runlocal:
    data.valid_examples = 200
    data.test_examples = 1000
    ev.batch_size = 100
  return config


def r_grid(d: int, points: int = SWEEP_POINTS) -> tuple[int, ...]:
  """`points` teacher widths on a log grid from d/2 to d^2 (rounded)."""
  return design.r_grid(d, points)


def sweep_learners(algebra: str = SWEEP_ALGEBRA) -> tuple[tuple, ...]:
  """(learner arg, network algebra or None) of every sweep point."""
  return (
      ("mean", None),
      ("least_squares", None),
      ("moment_tensor", None),
      ("network", "R"),
      ("network", algebra),
  )


def _num(value: float) -> str:
  """Short text of a float that parses back to exactly the same float (a
  point's arg must reproduce the sweep's value)."""
  short = f"{value:g}"
  return short if float(short) == value else repr(value)


def _arg_token(key: str, value) -> str:
  if isinstance(value, bool):
    return key
  return (
      f"{key}={_num(value)}" if isinstance(value, float) else f"{key}={value}"
  )


def sweep(add, arg=None):
  """d x budget x r x learner (see the module docstring)."""
  arg = parse(arg)
  algebra = arg.algebra if arg.algebra != "R" else SWEEP_ALGEBRA
  defaults = parse(None)
  named = [
      _arg_token(key, arg[key])
      for key in defaults
      if key not in SWEEP_AXES and arg[key] != defaults[key]
  ]
  if arg.runlocal:
    dims, points = (RUNLOCAL_D,), RUNLOCAL_SWEEP_POINTS
  else:
    dims, points = SWEEP_DIMS, SWEEP_POINTS
  # d, r or budget in the sweep's own arg pins that axis to the value.
  dims = (arg.d,) if arg.d else dims
  budgets = (arg.budget,) if arg.budget else SWEEP_BUDGETS
  for d in dims:
    for budget in budgets:
      for r in (arg.r,) if arg.r else r_grid(d, points):
        for learner, alg in sweep_learners(algebra):
          axes = [f"d={d}", f"r={r}", f"budget={_num(budget)}"]
          point_arg = ",".join([*named, *axes, f"learner={learner}"])
          if alg is None:  # a closed-form learner: the study's fit module
            add(config_arg=point_arg, entry=closed_form.FIT_ENTRY)
          else:
            add(config_arg=point_arg, **{"model.algebra": alg})
