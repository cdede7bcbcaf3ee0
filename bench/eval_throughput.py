"""Eval throughput: KerasPredictor (palm, KV cache) vs a plain keras-hub loop on a same-shape model,
and T5 cached decoding vs the uncached decoder it replaced and keras-hub's T5 `generate`.

Both models have the same shape: d=256, 4 layers, 8 query heads of 32, one KV head, SwiGLU
1024, vocabulary 259 (the byte tokenizer). The reference is keras-hub's `LlamaCausalLM`
(GQA with 1 KV head, SwiGLU, rotary, untied head: the nearest keras-hub model), driven the
plain way: `generate()` with its greedy sampler (compiled once, before timing) for generation,
and one forward pass + a log-softmax per batch of (context + continuation) rows for scoring.
KerasPredictor scores each context once for all its options; the per-pair line times its
engine on the same rows as the reference. Ratios > 1 mean KerasPredictor is faster.

The t5 case (`--family t5`): `T5PackedSeq2SeqLM` with d=256, 4+4 layers, 8 heads of 32, gated-GELU
1024, vocabulary 259; greedy generation with the K/V-cached engine against the uncached decoder
(`EncoderDecoderEngine._generate_ids_uncached`, the code before the cache) and against
keras-hub's `T5Seq2SeqLM.generate` on a `T5Backbone` of the same dims (compiled once); scoring
with one encoder pass per context against one per (context, continuation) row.

    .venv/bin/python bench/eval_throughput.py [--family palm|t5|all] [--examples 32] [--new-tokens 32] [--prompt-len 96]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

from flanctl.data.tokenizers import ByteTokenizer  # noqa: E402
from flanctl.models import KerasPredictor, build_model  # noqa: E402
from flanctl.models.generation.batching import right_pad  # noqa: E402

ARCH = dict(num_layers=4, hidden_dim=256, num_heads=8, num_kv_heads=1, head_dim=32, ffn_dim=1024, vocab_size=259, max_sequence_length=2560)


def timed(fn, repeats: int = 2) -> float:
    fn()  # compile
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", choices=["palm", "t5", "all"], default="all")
    ap.add_argument("--examples", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=96)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghij klmnop"))
    prompts = ["".join(rng.choice(letters, size=int(rng.integers(args.prompt_len // 2, args.prompt_len)))) for _ in range(args.examples)]
    options = [[" yes", " no", " maybe", " never"] for _ in prompts]
    if args.family in ("palm", "all"):
        bench_palm(args, prompts, options)
    if args.family in ("t5", "all"):
        bench_t5(args, prompts, options)


def bench_palm(args, prompts, options) -> None:
    tok = ByteTokenizer()
    keras.utils.set_random_seed(0)
    palm = build_model(ARCH, "palm")
    pred = KerasPredictor(palm, tok, "palm", batch_size=args.batch)
    llama = keras_hub.models.LlamaCausalLM(
        backbone=keras_hub.models.LlamaBackbone(
            vocabulary_size=259, num_layers=4, num_query_heads=8, num_key_value_heads=1, hidden_dim=256,
            intermediate_dim=1024, max_sequence_length=2560,
        ),
        preprocessor=None,
    )
    print(f"params: palm {palm.count_params():,}  llama {llama.count_params():,}")

    # -- greedy generation -------------------------------------------------------------
    def ours_generate():
        pred.generate(prompts, args.new_tokens, stop=[])

    encoded = [[tok.bos_id] + tok.encode(p) for p in prompts]

    # Compiled once, outside the timed loop: compile() drops keras-hub's jitted generate function.
    llama.compile(sampler="greedy")

    def hub_generate():
        for start in range(0, len(encoded), args.batch):
            rows = encoded[start : start + args.batch]
            ids, mask = right_pad(rows, max(len(r) for r in rows) + args.new_tokens, 0)
            llama.generate({"token_ids": ids, "padding_mask": mask}, stop_token_ids=None)

    t_ours = timed(ours_generate)
    t_hub = timed(hub_generate)
    print(f"generate  : KerasPredictor {args.examples / t_ours:7.2f} ex/s   keras-hub Llama generate {args.examples / t_hub:7.2f} ex/s   ratio {t_hub / t_ours:.2f}x")

    # -- log-likelihood scoring --------------------------------------------------------
    def ours_score():
        pred.loglikelihood(prompts, options)

    pairs = [(e, tok.encode(o)) for e, opts in zip(encoded, options) for o in opts]

    def hub_score():
        for start in range(0, len(pairs), args.batch):
            rows = [c + o for c, o in pairs[start : start + args.batch]]
            ids, mask = right_pad(rows, max(len(r) for r in rows), 0)
            logits = llama.predict_on_batch({"token_ids": ids, "padding_mask": mask}).astype(np.float64)
            top = logits.max(-1, keepdims=True)
            logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
            for i, (c, o) in enumerate(pairs[start : start + args.batch]):
                sum(logp[i, len(c) - 1 + j, t] for j, t in enumerate(o))

    def ours_score_per_pair():
        # The engine's per-(context, continuation) path: context + continuation per row, as the
        # predictor scored before the context was shared across its continuations.
        for start in range(0, len(pairs), args.batch):
            pred.engine.score(pairs[start : start + args.batch], tok.bos_id)

    t_ours = timed(ours_score)
    t_pairs = timed(ours_score_per_pair)
    t_hub = timed(hub_score)
    n = len(prompts)
    print(f"loglik    : KerasPredictor {n / t_ours:7.2f} ex/s   keras-hub Llama forward  {n / t_hub:7.2f} ex/s   ratio {t_hub / t_ours:.2f}x  ({len(options[0])} options per example)")
    print(f"loglik    : per-pair rows (before sharing the context) {n / t_pairs:7.2f} ex/s   ratio to keras-hub {t_hub / t_pairs:.2f}x")



def bench_t5(args, prompts, options) -> None:
    from flanctl.models.t5.presets import backbone_kwargs

    tok = ByteTokenizer()
    arch = dict(vocab_size=259, num_layers=4, hidden_dim=256, num_heads=8, head_dim=32, ffn_dim=1024)
    keras.utils.set_random_seed(0)
    t5 = build_model(arch, "t5")
    pred = KerasPredictor(t5, tok, "t5", batch_size=args.batch)
    kw = backbone_kwargs(arch)
    kw.pop("num_decoder_layers")
    hub = keras_hub.models.T5Seq2SeqLM(backbone=keras_hub.models.T5Backbone(**kw), preprocessor=None)
    print(f"params: t5 {t5.count_params():,}  keras-hub T5 {hub.count_params():,}")
    encoded = [tok.encode(p) + [tok.eos_id] for p in prompts]
    never = lambda row, ids: False  # noqa: E731  (every row decodes all new tokens, as keras-hub does)

    def run(generate_ids):
        for start in range(0, len(encoded), args.batch):
            generate_ids(encoded[start : start + args.batch], args.new_tokens, 0.0, 0, never)

    hub.compile(sampler="greedy")  # once: compile() drops keras-hub's jitted generate function

    def hub_generate():
        for start in range(0, len(encoded), args.batch):
            rows = encoded[start : start + args.batch]
            enc, enc_mask = right_pad(rows, max(len(r) for r in rows), 0)
            dec = np.zeros((len(rows), args.new_tokens + 1), np.int32)
            dec_mask = np.zeros_like(dec, dtype=bool)
            dec_mask[:, 0] = True
            hub.generate(
                {"encoder_token_ids": enc, "encoder_padding_mask": enc_mask, "decoder_token_ids": dec, "decoder_padding_mask": dec_mask},
                stop_token_ids=None,
            )

    n = len(prompts)
    t_cached = timed(lambda: run(pred.engine.generate_ids))
    t_uncached = timed(lambda: run(pred.engine._generate_ids_uncached))
    t_hub = timed(hub_generate)
    print(
        f"t5 generate: cached {n / t_cached:7.2f} ex/s   uncached (before) {n / t_uncached:7.2f} ex/s   "
        f"keras-hub T5 generate {n / t_hub:7.2f} ex/s   cached/uncached {t_uncached / t_cached:.2f}x   cached/keras-hub {t_hub / t_cached:.2f}x"
    )
    pairs = [(e, tok.encode(o)) for e, opts in zip(encoded, options) for o in opts]

    def score_per_pair():  # the encoder once per (context, continuation) row: the code before
        for start in range(0, len(pairs), args.batch):
            pred.engine.score(pairs[start : start + args.batch], 0)

    t_score = timed(lambda: pred.loglikelihood(prompts, options))
    t_pairs = timed(score_per_pair)
    print(
        f"t5 loglik  : KerasPredictor {n / t_score:7.2f} ex/s   per-pair rows (before) {n / t_pairs:7.2f} ex/s   "
        f"ratio {t_pairs / t_score:.2f}x  ({len(options[0])} options per example)"
    )


if __name__ == "__main__":
    main()
