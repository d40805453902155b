#!/usr/bin/env bash
# Quick start command (2): create/reuse .venv, install the package with its test
# extras, check formatting and lint, and run the whole default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv test
echo "== pyink --check"
"$VENV/bin/pyink" --check --quiet algebranets tests bench scripts experiments configs
echo "== ruff check"
"$VENV/bin/ruff" check --quiet algebranets tests bench scripts experiments configs
echo "== pytest"
exec "$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-auto}" -q "$@"
