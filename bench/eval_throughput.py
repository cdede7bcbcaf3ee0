"""Eval throughput: KerasPredictor (palm, KV cache) vs a plain keras-hub loop on a same-shape model.

Both models have the same shape: d=256, 4 layers, 8 query heads of 32, one KV head, SwiGLU
1024, vocabulary 259 (the byte tokenizer). The reference is keras-hub's `LlamaCausalLM`
(GQA with 1 KV head, SwiGLU, rotary, untied head: the nearest keras-hub model), driven the
plain way: `generate()` with its greedy sampler for generation, and one forward pass + a
log-softmax per batch for scoring. Ratios > 1 mean KerasPredictor is faster.

    .venv/bin/python bench/eval_throughput.py [--examples 32] [--new-tokens 32] [--prompt-len 96]
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
    ap.add_argument("--examples", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=96)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    tok = ByteTokenizer()
    letters = np.array(list("abcdefghij klmnop"))
    prompts = ["".join(rng.choice(letters, size=int(rng.integers(args.prompt_len // 2, args.prompt_len)))) for _ in range(args.examples)]
    options = [[" yes", " no", " maybe", " never"] for _ in prompts]

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

    def hub_generate():
        llama.compile(sampler="greedy")
        for start in range(0, len(encoded), args.batch):
            rows = encoded[start : start + args.batch]
            width = max(len(r) for r in rows) + args.new_tokens
            ids = np.zeros((len(rows), width), np.int32)
            mask = np.zeros((len(rows), width), bool)
            for i, r in enumerate(rows):
                ids[i, : len(r)] = r
                mask[i, : len(r)] = True
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
            width = max(len(r) for r in rows)
            ids = np.zeros((len(rows), width), np.int32)
            mask = np.zeros((len(rows), width), bool)
            for i, r in enumerate(rows):
                ids[i, : len(r)] = r
                mask[i, : len(r)] = True
            logits = llama.predict_on_batch({"token_ids": ids, "padding_mask": mask}).astype(np.float64)
            top = logits.max(-1, keepdims=True)
            logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
            for i, (c, o) in enumerate(pairs[start : start + args.batch]):
                sum(logp[i, len(c) - 1 + j, t] for j, t in enumerate(o))

    t_ours = timed(ours_score)
    t_hub = timed(hub_score)
    n = len(prompts)
    print(f"loglik    : KerasPredictor {n / t_ours:7.2f} ex/s   keras-hub Llama forward  {n / t_hub:7.2f} ex/s   ratio {t_hub / t_ours:.2f}x  ({len(options[0])} options per example)")


if __name__ == "__main__":
    main()
