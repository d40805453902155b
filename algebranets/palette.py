"""One colour per algebra, the same in every figure the project draws.

  ax.plot(x, y, color=palette.algebra_color("H"), label="H")
  for name in sorted(names, key=palette.algebra_sort_key): ...

The built-in algebras have fixed colours (R, the real baseline, is black;
grey is kept for reference lines such as unigram or majority-class
baselines). A user-defined algebra gets a colour from a separate list, chosen
by a stable hash of its name, so it keeps that colour across figures, runs
and machines. Series that are not algebras (e.g. closed-form learners) take
`other_colors`, which never coincide with an algebra's.

Plain hex strings: importing this module does not import matplotlib.
"""

from __future__ import annotations

import zlib

# Legend and table order; algebras not listed follow alphabetically.
ALGEBRA_ORDER = ("R", "C", "H", "dual", "cross", "M2R", "M3R", "M4R", "M2C")

# matplotlib's tab10 without its grey, R in black.
ALGEBRA_COLORS = {
    "R": "#000000",
    "C": "#ff7f0e",  # orange
    "H": "#2ca02c",  # green
    "dual": "#8c564b",  # brown
    "cross": "#e377c2",  # pink
    "M2R": "#d62728",  # red
    "M3R": "#bcbd22",  # olive
    "M4R": "#17becf",  # cyan
    "M2C": "#9467bd",  # purple
}
# For user algebras: the darker tab20b/tab20c tones, unlike any above.
_USER_COLORS = (
    "#393b79",  # navy
    "#637939",  # dark olive
    "#8c6d31",  # dark gold
    "#843c39",  # dark red-brown
    "#7b4173",  # plum
    "#9c9ede",  # lavender
    "#de9ed6",  # light pink
    "#cedb9c",  # pale olive
)
# For series that are not algebras.
_OTHER_COLORS = (
    "#1f77b4",  # blue
    "#e7ba52",  # gold
    "#5254a3",  # indigo
    "#6baed6",  # light blue
    "#b5cf6b",  # light olive
)
# Reference lines (baselines): grey, dashed.
BASELINE_STYLE = {"color": "#7f7f7f", "linestyle": "--", "linewidth": 1.0}


def algebra_color(name: str) -> str:
  """The colour of algebra `name` (a hex string), stable across figures."""
  if name in ALGEBRA_COLORS:
    return ALGEBRA_COLORS[name]
  # crc32, not hash(): Python salts str hashes per process.
  return _USER_COLORS[zlib.crc32(name.encode("utf-8")) % len(_USER_COLORS)]


def algebra_sort_key(name: str) -> tuple[int, str]:
  """Sorts the built-in algebras in ALGEBRA_ORDER, then others by name."""
  if name in ALGEBRA_ORDER:
    return (ALGEBRA_ORDER.index(name), "")
  return (len(ALGEBRA_ORDER), name)


def other_colors(n: int) -> list[str]:
  """`n` colours for non-algebra series (cycling after 5), none an
  algebra's."""
  return [_OTHER_COLORS[i % len(_OTHER_COLORS)] for i in range(n)]


__all__ = [
    "ALGEBRA_COLORS",
    "ALGEBRA_ORDER",
    "BASELINE_STYLE",
    "algebra_color",
    "algebra_sort_key",
    "other_colors",
]
