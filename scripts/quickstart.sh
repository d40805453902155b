#!/usr/bin/env bash
# Quick start command (1): create/reuse .venv, install algebranets and train
# the default job: a small M2(R) causal byte Transformer on the Wikipedia
# sample embedded in the gensim wheel (fetched once from PyPI, ~26 MB).
# Extra arguments go to experiments.train (e.g. --config.train.num_steps=100).
# Rerunning resumes from workdirs/quickstart (delete it to start afresh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv ""
exec "$VENV/bin/python" -m experiments.train \
  --config=configs/quickstart.py \
  --workdir="${ALGEBRANETS_WORKDIR:-workdirs/quickstart}" "$@"
