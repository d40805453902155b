"""models.txl_decoding against the step-by-step reference sampler.

The reference is `training.sampling.reference_generate`: the model's own
`log_prob` on one position against a fixed-size memory of hidden states
(every key re-projected per token), i.e. the code path the decoder replaces.
Small models, memories of 3-5 positions and 20-30 tokens, so the rings wrap
around several times; parameters are the init plus N(0, 0.3) noise (the
init's 0.02 std makes every token's log-probs nearly uniform, which would
hide wrong attention).
"""

from __future__ import annotations

import re

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algebranets.models import transformer_xl as txl
from algebranets.models import txl_decoding as dec
from algebranets.training import sampling

V = 20
DIMS = {"R": 1, "C": 2, "H": 4, "M2R": 4}
# Float32 machine epsilon (one ulp at 1).
EPS32 = 2.0**-23


def _setup(algebra, *, dtype=jnp.float32, **kw):
  settings = dict(mem_len=4, clamp_len=-1)
  settings.update(kw)

  d = DIMS[algebra]

  def build():
    # C = 4 and F = 8 algebra channels, stated as the constructor's real
    # widths; no dropout (the constructor's default is the enwik8 config's).
    return txl.TransformerXL(
        V,
        algebra=algebra,
        num_layers=2,
        d_model=4 * d,
        num_heads=2,
        d_inner=8 * d,
        dropout_rate=0.0,
        **settings,
    )

  def fwd(tokens, mems, num_valid):
    return build().log_prob(tokens, mems, num_valid_mems=num_valid)

  f = hk.without_apply_rng(hk.transform(fwd))
  mem_shape = (2, 1, settings["mem_len"], 4, d)
  params = f.init(
      jax.random.PRNGKey(0),
      jnp.zeros((1, 3), jnp.int32),
      jnp.zeros(mem_shape),
      0,
  )
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
  params = jax.tree.unflatten(
      tree,
      [
          (a + 0.3 * jax.random.normal(k, a.shape)).astype(dtype)
          for a, k in zip(leaves, keys, strict=True)
      ],
  )
  return build, jax.jit(f.apply), params, mem_shape


def _reference(forward, params, mem_shape, prompt, forced, dtype):
  """Reference log-probs [N, V] before each forced token (batch 1)."""
  _, logps, _, _ = sampling.reference_generate(
      forward,
      params,
      [int(t) for t in prompt],
      len(forced),
      mem_shape=mem_shape,
      dtype=dtype,
      forced=[int(t) for t in forced],
  )
  return logps


def _decoded(decoder, params, prompt, forced):
  """New path's log-probs [B, N, V] before each forced token."""
  weights = decoder.prepare(params)
  logp0, cache = decoder.start(params, weights, prompt)
  rest = decoder.score(params, weights, cache, forced[:, :-1])
  return np.concatenate(
      [np.asarray(logp0)[:, None], np.asarray(rest)], axis=1
  ).astype(np.float64)


# (algebra, model settings, prompt length): prompts shorter and longer than
# the memory, both attention windows, clamping, pre-norm, untied biases,
# adaptive softmax clusters, no memory.
CASES = [
    ("R", {}, 9),
    ("C", dict(same_length=True), 2),
    ("H", dict(clamp_len=3, pre_norm=True, untie_r=True), 2),
    ("M2R", dict(same_length=True, clamp_len=2), 9),
    ("H", dict(mem_len=3, cutoffs=(8, 14)), 9),
    ("R", dict(mem_len=0), 2),
]


@pytest.mark.parametrize("algebra,kw,prompt_len", CASES)
def test_teacher_forced_log_probs_match_reference(algebra, kw, prompt_len):
  # In float64 the layers of both paths agree to float64 precision; only
  # the parts that compute in float32 by design in both (the attention
  # softmax, the adaptive softmax) round. Both then see float32 inputs that
  # differ by at most one rounding, and round their results once: a few
  # float32 ulps of the logits, whose spread is the row's largest |log p|
  # (measured up to 2 ulps, allowed 4), against differences of 1e-2 and
  # more for any wrong key, slot or distance.
  with jax.enable_x64(True):
    build, forward, params, mem_shape = _setup(algebra, dtype=jnp.float64, **kw)
    decoder = dec.TXLDecoder(build, batch_size=2)
    rng = np.random.default_rng(prompt_len)
    prompt = rng.integers(0, V, (2, prompt_len))
    forced = rng.integers(0, V, (2, 25))  # > 5 wraps of the ring
    new = _decoded(decoder, params, prompt, forced)
    for b in range(2):
      ref = _reference(
          forward, params, mem_shape, prompt[b], forced[b], jnp.float64
      )
      scale = np.maximum(1.0, np.abs(ref).max(axis=-1, keepdims=True))
      tol = 4 * EPS32 * scale
      err = np.abs(new[b] - ref)
      assert (err < tol).all(), f"max error {(err / tol).max():.2f} x tol"
    # Not vacuous: the log-probs depend on the context.
    assert np.abs(new[0] - new[1]).max() > 0.1


@pytest.mark.parametrize("algebra", ["R", "M2R"])
def test_greedy_tokens_match_reference_except_near_ties(algebra):
  build, forward, params, mem_shape = _setup(algebra, mem_len=5)
  decoder = dec.TXLDecoder(build)
  weights = decoder.prepare(params)
  prompt = np.asarray([[3, 1, 4]])
  logp, cache = decoder.start(params, weights, prompt)
  tokens, _, _ = decoder.generate(
      params,
      weights,
      cache,
      logp,
      jax.random.PRNGKey(0),
      num_tokens=30,
      greedy=True,
  )
  tokens = np.asarray(tokens)[0]
  ref = _reference(forward, params, mem_shape, prompt[0], tokens, jnp.float32)
  top2 = np.sort(ref, axis=-1)[:, -2:]
  clear = top2[:, 1] - top2[:, 0] >= 1e-4
  assert clear.mean() > 0.8  # the check below is not vacuous
  np.testing.assert_array_equal(tokens[clear], ref.argmax(-1)[clear])
  # The reference's own greedy run agrees up to its first near-tie.
  own, _, _, _ = sampling.reference_generate(
      forward, params, [3, 1, 4], 30, mem_shape=mem_shape, temperature=0.0
  )
  upto = int(np.argmin(clear)) if not clear.all() else 30
  assert own[:upto] == list(tokens[:upto])


def test_sampling_is_reproducible_and_respects_top_k():
  build, _, params, _ = _setup("H", mem_len=3)
  decoder = dec.TXLDecoder(build, batch_size=3)
  weights = decoder.prepare(params)
  prompt = np.tile(np.asarray([[5, 2]]), (3, 1))
  logp, cache = decoder.start(params, weights, prompt)

  def sample(seed, top_k=0, temperature=1.0):
    toks, _, _ = decoder.generate(
        params,
        weights,
        cache,
        logp,
        jax.random.PRNGKey(seed),
        jnp.float32(temperature),
        num_tokens=20,
        top_k=top_k,
    )
    return np.asarray(toks)

  a, b, c = sample(0), sample(0), sample(1)
  np.testing.assert_array_equal(a, b)
  assert (a != c).any()
  assert (a[0] != a[1]).any()  # independent streams from one prompt
  # Every top-k draw is among the k best of the distribution it came from.
  k = 3
  t = sample(2, top_k=k, temperature=1.5)
  forced = decoder.score(params, weights, cache, t[:, :-1])
  before = np.concatenate([np.asarray(logp)[:, None], np.asarray(forced)], 1)
  kth = np.sort(before, axis=-1)[..., -k]
  drawn = np.take_along_axis(before, t[..., None], -1)[..., 0]
  assert (drawn >= kth).all()


@pytest.mark.parametrize("algebra", ["C", "M2R"])
def test_every_prepared_path_gives_the_same_log_probs(algebra):
  build, _, params, _ = _setup(algebra, mem_len=3)
  rng = np.random.default_rng(0)
  prompt, forced = rng.integers(0, V, (1, 4)), rng.integers(0, V, (1, 10))
  outs = {}
  for path in dec.candidate_paths(dec.capture(build).algebra):
    decoder = dec.TXLDecoder(build, paths={n: path for n in dec.LINEARS})
    outs[path] = _decoded(decoder, params, prompt, forced)
  first = outs.pop("expand")
  # Float32 paths: different (exact) factorizations of the same products;
  # ~1e-6 measured, well below the 1e-2 a wrong weight layout gives.
  for out in outs.values():
    np.testing.assert_allclose(out, first, atol=1e-4)
  measured = dec.measure_paths(dec.capture(build), 1, min_seconds=0.001)
  assert set(measured) == set(dec.LINEARS)


def test_bad_paths_say_what_is_valid():
  build, *_ = _setup("H")
  with pytest.raises(ValueError, match="paths must map"):
    dec.TXLDecoder(build, paths={"qkv": "fast"})
  with pytest.raises(ValueError, match="needs a matrix algebra"):
    dec.TXLDecoder(build, paths={"qkv": "fold"})
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    dec.TXLDecoder(build, batch_size=0)


def test_bytes_per_token_counts_rings_and_tables():
  build, _, params, _ = _setup("H", mem_len=4)
  decoder = dec.TXLDecoder(build)
  weights = decoder.prepare(params)
  got = dec.bytes_per_token(decoder, params, weights, 3)
  # 2 layers x (K and V) x 3 streams x W=5 slots x 16 reals x 4 bytes.
  assert got["kv"] == 2 * 2 * 3 * 5 * 16 * 4
  assert got["positions"] == 2 * 5 * 16 * 4
  # At least every parameter's bytes (the prepared H weights are expanded).
  total = sum(a.size * 4 for a in jax.tree.leaves(params))
  assert got["weights"] >= total - 2 * 4 * 4 * 4 * 4  # minus the two W_r


def test_clamped_position_table_keeps_clamp_len_plus_one_rows():
  build, _, params, _ = _setup("H", mem_len=6, clamp_len=2)
  decoder = dec.TXLDecoder(build)
  weights = decoder.prepare(params)
  # [H, clamp_len + 1, c*d]: distances past 2 share the last row.
  assert weights["layers"][0]["positions"].shape == (2, 3, 8)
  got = dec.bytes_per_token(decoder, params, weights, 1)
  assert got["positions"] == 2 * 3 * 16 * 4


def _ring_copies(algebra, batch):
  """Ring-shaped copies in the compiled generation, and the ring count."""
  build, _, params, _ = _setup(algebra, mem_len=6)
  decoder = dec.TXLDecoder(build, batch_size=batch)
  weights = decoder.prepare(params)
  logp, cache = decoder.start(params, weights, np.zeros((batch, 3), np.int32))
  hlo = (
      decoder.generate.lower(
          params,
          weights,
          cache,
          logp,
          jax.random.PRNGKey(0),
          jnp.float32(1.0),
          num_tokens=4,
      )
      .compile()
      .as_text()
  )
  shape = ",".join(map(str, cache.keys[0].shape))
  copies = re.findall(rf"f32\[{shape}\]\{{[0-9,]*\}} copy\(", hlo)
  return len(copies), 2 * len(cache.keys)


@pytest.mark.parametrize("algebra,batch", [("R", 1), ("H", 1), ("H", 3)])
def test_the_decoding_loop_updates_the_rings_in_place(algebra, batch):
  # At most one copy per ring, of the (undonated) input cache into the
  # loop; a ring copied inside the loop costs its whole size per token
  # (XLA:CPU did so 4 times per step for [B, H, W, c*d] rings).
  copies, rings = _ring_copies(algebra, batch)
  assert copies <= rings


def test_draws_follow_the_distribution_and_skip_impossible_tokens():
  # Inverse-CDF draws against the exact probabilities: 40,000 fixed
  # uniforms, chi-square over 5 tokens (one of them impossible), a
  # statistic that a wrong draw (off by one token, temperature ignored)
  # exceeds by orders of magnitude.
  probs = np.asarray([0.1, 0.0, 0.2, 0.3, 0.4])
  logp = jnp.asarray(np.log(np.where(probs > 0, probs, 1e-45)))[None]
  logp = jnp.where(jnp.asarray(probs)[None] > 0, logp, -jnp.inf)
  n = 40_000
  u = jax.random.uniform(jax.random.PRNGKey(0), (n,))
  toks = jax.vmap(
      lambda x: dec._choose(x[None], logp, 1.0, greedy=False, top_k=0)[0]
  )(u)
  counts = np.bincount(np.asarray(toks), minlength=5)
  assert counts[1] == 0
  live = probs > 0
  chi2 = ((counts[live] - n * probs[live]) ** 2 / (n * probs[live])).sum()
  assert chi2 < 25.0  # 3 degrees of freedom: p < 2e-5 by chance
  # The edges of [0, 1): never the impossible token, never past the end.
  edge = jnp.asarray([0.0, np.nextafter(np.float32(1), np.float32(0))])
  got = dec._choose(edge, jnp.tile(logp, (2, 1)), 1.0, greedy=False, top_k=0)
  assert np.asarray(got).tolist() == [0, 4]
  # Temperature 0.5 squares the probabilities (renormalised); top_k=2 keeps
  # tokens 3 and 4 only.
  toks = jax.vmap(
      lambda x: dec._choose(x[None], logp, 0.5, greedy=False, top_k=2)[0]
  )(u)
  counts = np.bincount(np.asarray(toks), minlength=5)
  assert counts[:3].sum() == 0
  want = np.asarray([0.3, 0.4]) ** 2 / (0.3**2 + 0.4**2)
  chi2 = ((counts[3:] - n * want) ** 2 / (n * want)).sum()
  assert chi2 < 20.0  # 1 degree of freedom
