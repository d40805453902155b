#!/usr/bin/env bash
# One-call device suite: the quick kernels, models and decode benchmarks.
#
#   bash bench/device_suite.sh OUT_DIR          # on a GPU (or any backend)
#   DRY_RUN=1 bash bench/device_suite.sh OUT_DIR   # print the commands only
#   TINY=1 bash bench/device_suite.sh OUT_DIR   # tiny decode only (CI smoke)
#
# Writes OUT_DIR/{kernels,models,decode,decode_base}_quick_<tag>.json (tag =
# the backend's device kind, e.g. nvidia_h100) with each benchmark's log next
# to it, plus OUT_DIR/device.txt (nvidia-smi, jax devices). Each benchmark
# runs under its own time limit (seconds, override with the variables
# below) so that the whole suite ends within SUITE_BUDGET (6 minutes): a
# benchmark that runs out of time is reported and the suite goes on
# (its JSON is then missing). Run it from the repository root.
set -euo pipefail

out=${1:?usage: bash bench/device_suite.sh OUT_DIR (DRY_RUN=1 / TINY=1 optional)}
python=${PYTHON:-python}
KERNELS_S=${KERNELS_S:-70}
MODELS_S=${MODELS_S:-120}
DECODE_S=${DECODE_S:-80}
DECODE_BASE_S=${DECODE_BASE_S:-80}
SUITE_BUDGET=${SUITE_BUDGET:-360}

total=$((KERNELS_S + MODELS_S + DECODE_S + DECODE_BASE_S))
if ((total > SUITE_BUDGET)); then
  echo "device_suite: the limits add up to ${total} s > SUITE_BUDGET=${SUITE_BUDGET} s; lower KERNELS_S/MODELS_S/DECODE_S/DECODE_BASE_S." >&2
  exit 2
fi
mkdir -p "$out"

tag=$("$python" -c 'import jax, re; print(re.sub(r"[^a-z0-9]+", "_", jax.devices()[0].device_kind.lower()).strip("_"))' 2>/dev/null || echo unknown)
failed=0

run() {  # run NAME LIMIT_S ARGS...: python -m bench.<module> ARGS --out ...
  local name=$1 limit=$2 module=$3
  shift 3
  local json="$out/${name}_quick_${tag}.json"
  local cmd=(timeout "$limit" "$python" -m "bench.$module" "$@" --out "$json")
  echo "== $name (limit ${limit} s): ${cmd[*]}"
  if [[ -n "${DRY_RUN:-}" ]]; then
    return 0
  fi
  local start=$SECONDS
  if "${cmd[@]}" >"$out/$name.log" 2>&1; then
    echo "   done in $((SECONDS - start)) s -> $json"
  else
    echo "   FAILED or out of time after $((SECONDS - start)) s; see $out/$name.log"
    failed=1
  fi
}

if [[ -z "${DRY_RUN:-}" ]]; then
  {
    nvidia-smi 2>&1 || echo "no nvidia-smi"
    "$python" -c 'import jax; print(jax.__version__, jax.devices())'
  } >"$out/device.txt" 2>&1
fi

if [[ -n "${TINY:-}" ]]; then
  run decode 120 decode --sizes tiny --algebras R,H --batches 1,2 \
    --tokens 2 --repeats 1 --min_sample_ms 1 --copy_mb 1 --before_tokens 2
else
  run kernels "$KERNELS_S" kernels --quick
  run models "$MODELS_S" models --quick
  run decode "$DECODE_S" decode --quick
  # The targets are at the enwik8 base size, batch 1.
  run decode_base "$DECODE_BASE_S" decode --sizes base --batches 1 \
    --tokens 32 --repeats 3 --before_tokens 4 --copy_mb 1024
fi
exit "$failed"
