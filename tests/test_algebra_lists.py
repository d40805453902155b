"""Lists meaning "every algebra" follow the registry; vision configs match
the width of an algebra without a stored row at start-up."""

import numpy as np
import pytest

from algebranets import algebras
from algebranets.training import config_lib
from bench import density
from configs import _imagenet_common as common
from configs import _vision_widths
from scripts import match_width, results


@pytest.fixture
def scratch_names():
  before = set(algebras.names())
  yield
  for name in set(algebras.names()) - before:
    del algebras._REGISTRY[name]


def test_every_algebra_lists_are_the_registry():
  # Read at import, when the registry holds the built-ins (tests may
  # register more later).
  builtins = list(algebras._BUILTIN_FACTORIES)
  assert list(density.DEFAULT_ALGEBRAS) == builtins
  assert list(match_width.DEFAULT_ALGEBRAS) == builtins
  assert list(results.ALGEBRA_ORDER) == builtins


def test_imagenet_sweep_covers_every_registered_algebra(monkeypatch):
  # Algebras other tests registered have no stored width: don't measure.
  monkeypatch.setattr(match_width, "matched_width", lambda *a, **k: 1.0)
  points = []
  common.sweep(
      lambda arg: config_lib.load_config_file(
          "configs/imagenet_mobilenet.py"
      ).get_config(arg),
      lambda **p: points.append(p),
      "mobilenet",
  )
  assert {p["model.algebra"] for p in points} == set(algebras.names())


def test_results_orders_user_algebras_after_the_registry():
  names = ["split@1234abcd", "M2R", "R", "a_user@00"]
  assert sorted(names, key=results._algebra_key) == [
      "R",
      "M2R",
      "a_user@00",
      "split@1234abcd",
  ]


def test_unlisted_algebra_is_matched_at_startup(
    tmp_path, monkeypatch, capsys, scratch_names
):
  c = np.zeros((2, 2, 2))
  c[0, 0, 0] = c[1, 1, 0] = c[0, 1, 1] = c[1, 0, 1] = 1
  npy = tmp_path / "split_complex.npy"
  np.save(npy, c)
  calls = []

  def fake(model, algebra, target, **kw):
    calls.append((model, algebra, target))
    return 1.5

  monkeypatch.setattr(match_width, "matched_width", fake)
  arg = common.parse(f"algebra={npy},match=params")
  assert common.width_multiplier("mobilenet", arg) == 1.5
  (name,) = [n for n in algebras.names() if n.startswith("split_complex@")]
  assert calls == [("mobilenet", name, "params")]
  err = capsys.readouterr().err
  assert (
      f"python -m scripts.match_width --model mobilenet --algebras {npy} "
      "--targets params --write configs/_vision_widths.py" in err
  )
  # A stored row is used as is.
  assert common.width_multiplier("mobilenet", common.parse("algebra=H")) == (
      _vision_widths.MATCHED["mobilenet"]["params"]["H"]
  )
  assert len(calls) == 1


def test_unknown_algebra_arg_is_a_config_error():
  with pytest.raises(config_lib.ConfigError, match="Unknown algebra 'Q'"):
    common.width_multiplier("mobilenet", common.parse("algebra=Q"))


@pytest.mark.slow
def test_startup_match_reproduces_the_stored_width(monkeypatch):
  # Without its stored row, 'dual' is measured at start-up; the stored value
  # was measured by scripts.match_width with the same search.
  table = _vision_widths.MATCHED["mobilenet"]["params"]
  stored = table["dual"]
  monkeypatch.delitem(table, "dual")
  got = common.width_multiplier(
      "mobilenet", common.parse("algebra=dual,match=params")
  )
  assert got == pytest.approx(stored, abs=1e-6)
