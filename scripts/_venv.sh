# Sourced by scripts/*.sh: create or reuse a virtualenv and install the
# package (editable) with the given extras. Reinstalls only when pyproject.toml
# changed since the last install, so repeated runs start fast.
VENV="${ALGEBRANETS_VENV:-.venv}"
ensure_venv() {
  local extras="${1:-}"
  local py="${PYTHON:-python3.11}"
  if ! command -v "$py" >/dev/null 2>&1; then py=python3; fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating virtualenv $VENV with $("$py" --version)"
    "$py" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
  fi
  local stamp="$VENV/.installed-${extras:-base}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "== installing algebranets${extras:+[$extras]} into $VENV"
    "$VENV/bin/python" -m pip install -q -e ".${extras:+[$extras]}"
    touch "$stamp"
  fi
}
