#!/usr/bin/env bash
# Quick start command (2): create/reuse .venv, install the package with its test
# extras, check formatting and lint, and run the whole default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
source scripts/_system_data.sh
ensure_venv test,vision
ensure_fashion_mnist
# Only the source folders that exist (git does not track empty ones).
src=()
for d in algebranets tests bench scripts experiments configs; do
  [ -d "$d" ] && src+=("$d")
done
echo "== pyink --check ${src[*]}"
"$VENV/bin/pyink" --check --quiet "${src[@]}"
echo "== ruff check"
"$VENV/bin/ruff" check --quiet "${src[@]}"
echo "== pytest"
exec "$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-auto}" -q "$@"
