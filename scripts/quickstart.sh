#!/usr/bin/env bash
# Quick start command (1): create/reuse .venv, install algebranets and run the
# main job on the embedded default data. Extra arguments go to the job.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv ""
exec "$VENV/bin/python" -m experiments.demo "$@"
