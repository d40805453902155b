r"""Samples text from a Transformer-XL checkpoint (batch 1, cached memory).

  python -m scripts.sample --workdir workdirs/txl_smoke \
      --prompt '<page><title>' --num_tokens 200 --temperature 0.8

Prints the continuation and the generation speed (tokens/s after the
compile step), the batch-1 inference setting of the paper. Generation runs
through `models.txl_decoding.TXLDecoder` (cached projected keys/values,
prepared weights, all tokens in one compiled scan); --paths=measure times
the kernel paths of the decoder's linears first instead of using
`kernels.choose_dense_path`'s choice.
"""

from absl import app, flags

from algebranets.training import checkpointing, sampling

_WORKDIR = flags.DEFINE_string("workdir", None, "A stream_lm training workdir.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default latest).")
_PROMPT = flags.DEFINE_string("prompt", "The ", "Text to continue.")
_NUM = flags.DEFINE_integer("num_tokens", 200, "Tokens to generate.")
_TEMP = flags.DEFINE_float("temperature", 1.0, "0 = greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Sample among the k best (0 = all).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_DATA_PATH = flags.DEFINE_string(
    "data_path", None, "Override data.path (for the vocabulary)."
)
_PATHS = flags.DEFINE_enum(
    "paths",
    "default",
    ["default", "measure"],
    "Kernel paths of the decoder's linears: the default choice, or timed.",
)
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    sampler = sampling.Sampler(
        _WORKDIR.value,
        step=_STEP.value,
        data_path=_DATA_PATH.value,
        paths="measure" if _PATHS.value == "measure" else None,
    )
  except (FileNotFoundError, ValueError, checkpointing.CheckpointError) as e:
    # E.g. config.json edited away from the recorded model: one line.
    raise SystemExit(f"{type(e).__name__}: {e}") from None
  result = sampler.generate(
      _PROMPT.value,
      _NUM.value,
      temperature=_TEMP.value,
      top_k=_TOP_K.value,
      seed=_SEED.value,
  )
  print(result.prompt + result.text, flush=True)
  print(
      f"\n[step {result.step}] {len(result.token_ids)} tokens; prompt "
      f"{result.prompt_seconds:.2f} s (with compile); "
      f"{result.tokens_per_second:.1f} tokens/s after compile, batch 1, "
      f"memory {sampler.mem_len}",
      flush=True,
  )


if __name__ == "__main__":
  app.run(main)
