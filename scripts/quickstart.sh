#!/usr/bin/env bash
# Quick start command (1): create/reuse .venv, install algebranets and train
# the default job: a small M2(R) Transformer-XL byte model on the Wikipedia
# sample embedded in the gensim wheel (fetched once from PyPI, ~26 MB).
# Extra arguments go to experiments.train (e.g. --config.train.num_steps=100).
# The workdir is $ALGEBRANETS_WORKDIR, default workdirs/quickstart; rerunning
# resumes from it (delete it to start afresh). A changed model needs its own:
#   ALGEBRANETS_WORKDIR=workdirs/quickstart_H bash scripts/quickstart.sh \
#     --config.model.algebra=H
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv ""
exec "$VENV/bin/python" -m experiments.train \
  --config=configs/quickstart.py \
  --workdir="${ALGEBRANETS_WORKDIR:-workdirs/quickstart}" "$@"
