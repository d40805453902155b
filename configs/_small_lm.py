"""Args and sweep shared by the small CPU language-model configs."""

from algebranets.training import config_lib

SPARSITY_TARGETS = (0.5, 0.75, 0.9, 0.95)


def parse(arg):
  return config_lib.parse_arg(
      arg,
      algebra="M2R",
      width=1.0,
      runlocal=False,
      seed=0,
      sparsity=0.0,
      sweep_sparsity=False,
  )


def sweep(add, arg=None) -> None:
  """Algebras x widths; with `sweep_sparsity`, M2R also pruned."""
  for algebra in ("R", "C", "H", "M2R"):  # deliberate subset: the paper's
    for width in (0.5, 1.0):
      add(**{"model.algebra": algebra, "model.width_multiplier": width})
  if parse(arg).sweep_sparsity:
    for target in SPARSITY_TARGETS:
      add(**{"model.algebra": "M2R", "sparsity.target": target})
