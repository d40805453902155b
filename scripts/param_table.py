r"""Parameter counts of a config's model for several algebras, without data.

  python -m scripts.param_table --config configs/enwik8_transformer_xl.py \
      --vocab_size 204 --algebras R,C,H,M2R,M4R
  python -m scripts.param_table --config configs/wikitext103_transformer_xl.py \
      --vocab_size 267735

For every algebra it prints the real parameters at the config's width
(`width=1.0`) and at the width matched to the real model's layer parameters
(`match_params`), counted with `jax.eval_shape` (nothing is allocated), with
and without the real stem/head (docs/macs_and_flops.md).
"""

import haiku as hk
import jax
import jax.numpy as jnp
from absl import app, flags

from algebranets import metrics, models
from algebranets.training import config_lib
from algebranets.training.experiment import is_real_io

_CONFIG = flags.DEFINE_string("config", None, "Config file (no arg).")
_VOCAB = flags.DEFINE_integer("vocab_size", None, "Vocabulary size.")
# A deliberate short default (the paper's four); any registered names work.
_ALGEBRAS = flags.DEFINE_list("algebras", ["R", "C", "H", "M2R"], "Algebras.")
_SEQ = flags.DEFINE_integer("seq_len", 8, "Tokens of the dummy input.")
flags.mark_flags_as_required(["config", "vocab_size"])


def count(model_cfg, vocab_size: int, seq_len: int = 8) -> tuple[int, int]:
  """(total, real stem/head) parameters of a token model config."""
  runtime = {"vocab_size": vocab_size}
  if "max_len" in models.get(model_cfg.name).runtime_args:
    runtime["max_len"] = seq_len

  def forward(tokens):
    model = models.build(model_cfg, **runtime)
    if model_cfg.name == "transformer_xl":
      return model(tokens, tokens, None, is_training=False)
    return model(tokens, is_training=False)

  tokens = jax.ShapeDtypeStruct((1, seq_len), jnp.int32)
  params = jax.eval_shape(
      lambda t: hk.transform(forward).init(jax.random.key(0), t), tokens
  )
  total = metrics.count_params(params)
  real_io = sum(
      metrics.count_params(v) for k, v in params.items() if is_real_io(k)
  )
  return total, real_io


def main(argv):
  del argv
  module = config_lib.load_config_file(_CONFIG.value)
  print(
      "| algebra | width multiplier | params | without real stem/head |\n"
      "| --- | ---: | ---: | ---: |"
  )
  for algebra in _ALGEBRAS.value:
    for arg in (f"algebra={algebra}", f"algebra={algebra},match_params"):
      cfg = module.get_config(arg).model
      try:
        models.check(cfg, vocab_size=_VOCAB.value)
      except ValueError as e:
        print(
            f"| {algebra} | {cfg.width_multiplier:.4g} | not valid: "
            f"{str(e).split(';')[0]} | |",
            flush=True,
        )
        continue
      total, real_io = count(cfg, _VOCAB.value, _SEQ.value)
      print(
          f"| {algebra} | {cfg.width_multiplier:.4g} | {total:,} | "
          f"{total - real_io:,} |",
          flush=True,
      )


if __name__ == "__main__":
  app.run(main)
