r"""Batch-1 decoding time of the study's language models (docs/results.md).

  python -m scripts.study_decode                       # -> docs/results/decode.json
  python -m scripts.study_decode --algebras=R,H --tokens=64 --out=/tmp/d.json

The paper's inference argument against quality: each algebra's
Transformer-XL exactly as `configs/study_lm.py:size=<size>,algebra=<name>`
builds it (matched parameters, evaluation memory 128), decoded at batch 1
by `models.txl_decoding.TXLDecoder` (K/V rings, prepared weights, paths
timed per linear, all tokens in one compiled `lax.scan`), every algebra
timed INTERLEAVED (`bench.common.time_interleaved`) so the ratios survive a
drifting machine. Random (initialisation) weights: the time of a step does
not depend on their values, and the study keeps no checkpoints.
`python -m scripts.study_report` plots test bits/byte (runs.csv) against
these times. Run it alone on the machine: it is a timing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from algebranets.models import txl_decoding
from algebranets.training import config_lib
from algebranets.training.experiment import Experiment
from bench import common

OUT = "docs/results/decode.json"
ALGEBRAS = ("R", "C", "dual", "cross", "H", "M2R", "M3R", "M4R", "M2C")
PROMPT_LEN = 8


def decoder_call(size: str, algebra: str, tokens: int) -> tuple[Any, dict]:
  """(zero-argument timed call, row) for one study model at batch 1."""
  study_lm = config_lib.load_config_file("configs/study_lm.py")
  arg = f"size={size},algebra={algebra}"
  config = study_lm.get_config(arg)
  task = Experiment(config).task

  def build():
    return task._model(is_training=False)  # pylint: disable=protected-access

  params = hk.transform(lambda t: build().log_prob(t, None)).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 2), jnp.int32)
  )
  decoder = txl_decoding.TXLDecoder(build, batch_size=1, paths="measure")
  weights = decoder.prepare(params)
  vocab = task.corpus.vocab_size
  prompt = np.random.default_rng(0).integers(0, vocab, (1, PROMPT_LEN))
  logp, cache = decoder.start(params, weights, prompt)
  key, temp = jax.random.PRNGKey(0), jnp.float32(1.0)
  compiled = decoder.generate.lower(
      params, weights, cache, logp, key, temp, num_tokens=tokens
  ).compile()
  nbytes = txl_decoding.bytes_per_token(decoder, params, weights, 1)
  row = {
      "config_arg": arg,
      "algebra": algebra,
      "size": size,
      "params": int(sum(a.size for a in jax.tree.leaves(params))),
      "eval_mem_len": int(config.model.eval_mem_len),
      "paths": decoder.paths,
      "bytes_per_token": int(sum(nbytes.values())),
  }
  return (lambda: compiled(params, weights, cache, logp, key, temp)), row


def run(
    size: str, algebras: Sequence[str], tokens: int, repeats: int
) -> list[dict[str, Any]]:
  calls, rows = {}, {}
  for name in algebras:
    calls[name], rows[name] = decoder_call(size, name, tokens)
  timings = common.time_interleaved(
      calls, repeats=repeats, warmup=1, min_sample_s=0.05
  )
  ref = timings[algebras[0]].median
  out = []
  for name in algebras:
    t = timings[name]
    row = rows[name]
    row.update(t.summary_ms())
    row["ms_per_token"] = row["ms_median"] / tokens
    row["time_vs_" + algebras[0]] = t.median / ref
    out.append(row)
    print(
        f"  {name:>5}: {row['ms_per_token']:.4f} ms/token "
        f"(x{row['time_vs_' + algebras[0]]:.2f})",
        flush=True,
    )
  return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  p = argparse.ArgumentParser(
      prog="python -m scripts.study_decode",
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--size", default="medium", help="small, medium or large")
  p.add_argument("--algebras", default=",".join(ALGEBRAS))
  p.add_argument("--tokens", type=int, default=256)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--out", default=OUT)
  args = p.parse_args(argv)
  names = args.algebras.split(",")
  bad = [n for n in names if n not in ALGEBRAS]
  if bad:
    p.error(f"unknown --algebras {bad}; the study's are {', '.join(ALGEBRAS)}")
  if args.tokens < 1 or args.repeats < 1:
    p.error("--tokens and --repeats must be positive")
  info = common.machine_info()
  print(common.format_machine_info(info), flush=True)
  t0 = time.perf_counter()
  try:
    rows = run(args.size, names, args.tokens, args.repeats)
  except config_lib.ConfigError as e:
    print(f"study_decode: {e}", file=sys.stderr)
    raise SystemExit(2) from None
  results = {
      "benchmark": "study_decode",
      "argv": list(sys.argv[1:] if argv is None else argv),
      "machine": info,
      "tokens": args.tokens,
      "batch": 1,
      "rows": rows,
      "notes": [
          "random (initialisation) weights; timing only",
          "ms/token = generate call / tokens at batch 1; interleaved",
      ],
      "seconds": time.perf_counter() - t0,
  }
  common.write_results(args.out, results)
  print(f"total {results['seconds']:.0f} s", flush=True)
  return results


if __name__ == "__main__":
  main()
