"""One colour per algebra in every figure (algebranets.palette)."""

import subprocess

import matplotlib.colors

from algebranets import algebras, palette
from tests import subprocess_env


def test_every_builtin_algebra_has_its_own_colour():
  # Other tests in the same process may register more algebras (those get
  # hashed colours, tested below); the built-ins are the registry's first.
  names = algebras.names()[: len(palette.ALGEBRA_ORDER)]
  colours = [palette.algebra_color(n) for n in names]
  assert len(set(colours)) == len(names)
  assert all(matplotlib.colors.is_color_like(c) for c in colours)
  # Baseline grey and the non-algebra colours stay distinct from them.
  others = palette.other_colors(5)
  assert len(set(others)) == 5
  assert not set(others) & set(colours)
  assert palette.BASELINE_STYLE["color"] not in colours + others
  assert sorted(names, key=palette.algebra_sort_key) == list(
      palette.ALGEBRA_ORDER
  )


def test_user_algebra_colour_is_stable_across_processes():
  here = palette.algebra_color("my_octonions")
  code = (
      "from algebranets import palette; "
      "print(palette.algebra_color('my_octonions'))"
  )
  there = subprocess.run(
      [subprocess_env.python(), "-c", code],
      cwd=subprocess_env.ROOT,
      env=subprocess_env.env(PYTHONHASHSEED="123"),
      capture_output=True,
      text=True,
      check=True,
  ).stdout.strip()
  assert here == there
  assert here not in palette.ALGEBRA_COLORS.values()
  assert palette.algebra_sort_key("my_octonions") > palette.algebra_sort_key(
      "M2C"
  )


def test_teacher_student_learners_use_the_algebra_colours():
  from scripts import plot_teacher_student

  learners = [
      "mean",
      "least_squares",
      "moment_tensor",
      "network R",
      "network H",
      "network H (relu)",
  ]
  colours = plot_teacher_student.learner_colors(learners)
  assert colours["network R"] == palette.algebra_color("R")
  assert colours["network H"] == colours["network H (relu)"]
  assert colours["network H"] == palette.algebra_color("H")
  closed_form = [colours[n] for n in learners[:3]]
  assert closed_form == palette.other_colors(3)
