"""The library's layering, read from the source: no import cycle, no import
from a layer above, and `import algebranets` stays light (no SciPy).

The import graph is built from every `import` statement of every module
under algebranets/ (function-level imports included), so a lazy import that
hides a cycle is caught too.
"""

import ast
import pathlib

from tests import subprocess_env

ROOT = pathlib.Path(__file__).parents[1]
PACKAGE = "algebranets"

# Bottom to top. A module may import its own top-level package (or module)
# and anything in a LOWER tier; names in one tier may not import each other.
# metrics (parameter/MAC accounting) only reads shapes, so models and
# sparsity count with it; data is plain NumPy/bytes, tasks pair data with a
# model, training runs tasks, studies sit on top of the whole library.
TIERS = (
    ("algebras", "config_access", "backend_log", "palette"),
    ("layout", "algebra_files"),
    ("kernels",),
    ("layers",),
    ("metrics",),
    ("models", "sparsity"),
    ("data",),
    ("tasks",),
    ("training",),
    ("studies",),
)
# `algebranets/__init__.py` re-exports the core (up to the models); data,
# tasks, training and studies are imported on demand.
ROOT_MAX_TIER = "models"


def _modules() -> dict[str, pathlib.Path]:
  out = {}
  for path in sorted((ROOT / PACKAGE).rglob("*.py")):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts = parts[:-1]
    out[".".join(parts)] = path
  return out


def _resolve(name: str, modules) -> str | None:
  """The longest prefix of `name` that is a module of the package."""
  while name and name not in modules:
    name = name.rpartition(".")[0]
  return name or None


def _import_graph() -> dict[str, set[str]]:
  modules = _modules()
  graph = {m: set() for m in modules}
  for module, path in modules.items():
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: resolve against this module's package
          pkg = module.split(".")
          pkg = pkg if is_pkg else pkg[:-1]
          pkg = pkg[: len(pkg) - node.level + 1]
          base = ".".join(pkg + ([base] if base else []))
        # `from pkg import sub` imports the submodule pkg.sub.
        names = [f"{base}.{a.name}" for a in node.names]
      else:
        continue
      for name in names:
        if name.split(".")[0] != PACKAGE:
          continue
        target = _resolve(name, modules)
        if target and target != module:
          graph[module].add(target)
  return graph


def _top(module: str) -> str:
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else PACKAGE


def _tier(top: str) -> int:
  if top == PACKAGE:
    return _tier(ROOT_MAX_TIER) + 0.5
  for i, names in enumerate(TIERS):
    if top in names:
      return i
  raise AssertionError(
      f"algebranets.{top} is in no tier of tests/test_architecture.py TIERS; "
      "add it where it belongs."
  )


def _cycles(graph) -> list[list[str]]:
  """Strongly connected components with more than one module (Tarjan)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph[v]):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      comp = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        comp.append(w)
        if w == v:
          break
      if len(comp) > 1:
        out.append(sorted(comp))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_graph_is_read():
  graph = _import_graph()
  # Known edges, so an empty or broken parse cannot pass the tests below.
  assert "algebranets.kernels" in graph["algebranets.layers.linear"]
  assert "algebranets.tasks.registry" in graph["algebranets.tasks.byte_lm"]
  assert "algebranets.data.lm_streams" in graph["algebranets.tasks.stream_lm"]
  assert len(graph) > 50


def test_no_import_cycle():
  assert _cycles(_import_graph()) == []


def test_cycle_finder_finds_a_planted_cycle():
  graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
  assert _cycles(graph) == [["a", "b", "c"]]


def test_no_module_imports_from_a_layer_above():
  graph = _import_graph()
  wrong = []
  for module, targets in sorted(graph.items()):
    top = _top(module)
    for target in sorted(targets):
      other = _top(target)
      if other != top and _tier(other) >= _tier(top):
        wrong.append(f"{module} -> {target}")
  assert (
      wrong == []
  ), "imports from the same or a higher layer (TIERS): " + "; ".join(wrong)


def test_every_package_has_a_tier():
  for module in _modules():
    _tier(_top(module))


def test_import_algebranets_does_not_load_scipy():
  # The closed-form learners (SciPy) live in the study package, imported on
  # demand only.
  code = (
      "import sys, algebranets, algebranets.models; "
      "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
  )
  proc = subprocess_env.run("-c", code, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == "[]", proc.stdout[-2000:]


def test_scipy_check_sees_scipy_when_it_is_loaded():
  # The same probe on the study package, which does load SciPy, so the
  # check above cannot pass by looking in the wrong place.
  code = (
      "import sys, algebranets.studies.teacher_student; "
      "print('scipy' in sys.modules)"
  )
  proc = subprocess_env.run("-c", code, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == "True"
