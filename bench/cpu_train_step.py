"""CPU train step: flanctl's palm step against Hugging Face `LlamaForCausalLM` (PyTorch), same run.

Issue 16 ("CPU speed for the demo's budget"). Both sides train the same shape: 2 layers,
d=256, 4 query heads of 64, MQA (1 kv head), SwiGLU ffn 1024, vocabulary 1024 with tied
input/output embeddings (as palm ties them), batch 8 x 256 tokens, float32, AdamW.

- flanctl: the palm model built as `bench/train_throughput.py` builds it
  (`PaLMCausalLM(PaLMBackbone(**backbone_kwargs(arch)))`), compiled and stepped as
  `flanctl.train.trainer.Trainer` does it: `build_optimizer(TrainSpec(optimizer="adamw"))`,
  `token_sum_loss()` with `step_weights(loss_mask)`, `model.train_on_batch`, loss to host.
- HF: `transformers.LlamaForCausalLM` (sdpa attention, causal mask, the same positions),
  `torch.optim.AdamW`, masked token cross-entropy, `loss.item()` every step.
  `--compile` adds the same model under `torch.compile` (a third side; compiling takes ~1 min).

"flanctl before" is the same flanctl step traced with palm's CPU fast paths off (the generic
einsum layouts, the code before issue 16), so before/after come from the same run.

Sides are timed in rounds, interleaved (A, B, A, B, ...), so that the load of a shared machine
hits all alike: each round times `--steps` steps of each side after warm-up; the report is the
median over `--repeats` rounds (and the best round, less sensitive to other load). Before that, one large float32 matmul (jax) is timed: the best
FLOP/s it reaches is printed as this CPU's measured peak (`measured_cpu_peak_flops`, what the
trainer's CPU MFU is relative to).

    .venv/bin/python bench/cpu_train_step.py [--steps 3] [--repeats 5] [--compile] [--no-before]
    .venv/bin/python bench/cpu_train_step.py --only flanctl    # flanctl alone (profiling)

Runs offline; defaults take about two minutes on two (shared) cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("USE_TF", "0")  # transformers: do not import TensorFlow
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from flanctl.runtime import setup_process  # noqa: E402

setup_process("jax")  # flanctl's process set-up (backend, CPU XLA flags), before jax is imported

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from flanctl.catalog.devices import DEVICE_PEAK_FLOPS  # noqa: E402
from flanctl.train.synthetic_stream import SyntheticStream  # noqa: E402
from flanctl.train.throughput import measured_cpu_peak_flops, mfu  # noqa: E402
from flanctl.train.trainer import split_batch, step_weights, token_sum_loss  # noqa: E402
from train_throughput import CPU_ARCH, build_palm  # noqa: E402

ARCH = dict(CPU_ARCH)  # 2 layers, d=256, 4 heads of 64, 1 kv head, ffn 1024, vocab 1024, L=256
LR = 1e-3


# ------------------------------------------------------------------ flanctl side
def flanctl_stepper(fast_paths: bool | str = "auto"):
    """flanctl's palm model, compiled and stepped as `Trainer.setup` / `Trainer.train_step` do.

    `fast_paths=False` traces the step with palm's CPU fast paths off
    (`flanctl.models.palm.layers.CPU_FAST_PATHS`: the generic einsum code, as before issue 16).
    """
    from flanctl.models.palm import layers as palm_layers
    from flanctl.spec.models import TrainSpec
    from flanctl.train.optimizers import build_optimizer

    model = build_palm(ARCH)
    cfg = TrainSpec(optimizer="adamw", learning_rate=LR, weight_decay=0.01, dropout=0.0, precision="float32")
    model.compile(optimizer=build_optimizer(cfg), loss=token_sum_loss(), weighted_metrics=[])
    model.optimizer.build(model.trainable_variables)

    def step(batch) -> float:
        features, targets, mask = split_batch(batch)
        weights = step_weights(mask, 1, float(np.sum(mask)))
        saved, palm_layers.CPU_FAST_PATHS = palm_layers.CPU_FAST_PATHS, fast_paths  # read when traced
        try:
            logs = model.train_on_batch(features, targets, sample_weight=weights, return_dict=True)
        finally:
            palm_layers.CPU_FAST_PATHS = saved
        return float(logs["loss"])

    return step, int(model.count_params())


# ------------------------------------------------------------------ HF side
def hf_model():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=ARCH["vocab_size"], hidden_size=ARCH["hidden_dim"], intermediate_size=ARCH["ffn_dim"],
        num_hidden_layers=ARCH["num_layers"], num_attention_heads=ARCH["num_heads"],
        num_key_value_heads=ARCH["num_kv_heads"], head_dim=ARCH["head_dim"],
        max_position_embeddings=ARCH["max_sequence_length"], tie_word_embeddings=True,
        attention_bias=False, mlp_bias=False, attention_dropout=0.0, use_cache=False,
    )
    config._attn_implementation = "sdpa"
    return LlamaForCausalLM(config).float().train()


def hf_stepper(compiled: bool = False):
    import torch

    model = hf_model()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)
    vocab = ARCH["vocab_size"]

    def loss_fn(ids, pos, targets, weights):
        logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits
        nll = torch.nn.functional.cross_entropy(logits.float().reshape(-1, vocab), targets.reshape(-1), reduction="none")
        return (nll * weights.reshape(-1)).sum() / weights.sum().clamp_min(1.0)

    fwd = torch.compile(loss_fn) if compiled else loss_fn

    def step(batch) -> float:
        ids = torch.from_numpy(batch["token_ids"]).long()
        pos = torch.from_numpy(batch["positions"]).long()
        targets = torch.from_numpy(batch["targets"]).long()
        weights = torch.from_numpy(batch["loss_mask"])
        loss = fwd(ids, pos, targets, weights)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.item())

    return step, sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ timing
def time_rounds(steppers: dict, batches: list, steps: int, repeats: int, warmup: int) -> dict:
    """Per side, seconds per step of each round; rounds alternate between sides (A, B, A, B)."""
    for step in steppers.values():
        for batch in batches[:warmup]:
            step(batch)
    rounds = {name: [] for name in steppers}
    for r in range(repeats):
        for name, step in steppers.items():
            start = time.perf_counter()
            for i in range(steps):
                step(batches[(r * steps + i) % len(batches)])
            rounds[name].append((time.perf_counter() - start) / steps)
    return rounds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="timed steps per side per round")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds (the median is reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also HF under torch.compile")
    ap.add_argument("--only", choices=["flanctl", "hf"], default=None, help="time one side only")
    ap.add_argument("--no-before", action="store_true", help="skip the flanctl side with palm's CPU fast paths off")
    args = ap.parse_args()

    import torch

    print(f"jax {jax.__version__} ({jax.devices()[0].platform}), keras {keras.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), cpus {os.cpu_count()}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    peak = measured_cpu_peak_flops(n=1536)
    print(f"measured CPU peak (best of 5 float32 1536^3 matmuls, jax): {peak / 1e9:.1f} GFLOP/s "
          f"(catalog's nominal cpu figure: {DEVICE_PEAK_FLOPS['cpu'] / 1e9:.0f} GFLOP/s)")

    batch, length = 8, ARCH["max_sequence_length"]
    tokens = batch * length
    stream = SyntheticStream(batch, length, ARCH["vocab_size"], seed=0)
    batches = [next(stream) for _ in range(8)]
    steppers, params = {}, {}
    if args.only in (None, "flanctl"):
        steppers["flanctl"], params["flanctl"] = flanctl_stepper()
        if not args.no_before:
            steppers["flanctl before"], params["flanctl before"] = flanctl_stepper(fast_paths=False)
    if args.only in (None, "hf"):
        steppers["hf eager"], params["hf eager"] = hf_stepper()
        if args.compile:
            steppers["hf compile"], params["hf compile"] = hf_stepper(compiled=True)
    print(f"shape: {ARCH}, batch {batch} x {length} = {tokens} tokens/step, float32, AdamW; "
          f"params " + ", ".join(f"{k} {v:,}" for k, v in params.items()))
    rounds = time_rounds(steppers, batches, args.steps, args.repeats, args.warmup)
    tps, best = {}, {}
    for name, secs in rounds.items():
        med = statistics.median(secs)
        tps[name], best[name] = tokens / med, tokens / min(secs)
        spread = ", ".join(f"{s * 1e3:.0f}" for s in secs)
        print(f"{name:<14} {med * 1e3:7.1f} ms/step median (rounds: {spread}) {tps[name]:8,.0f} tokens/s  "
              f"MFU vs measured peak {mfu(params[name], tps[name], peak):6.1%}")
    for mine in ("flanctl", "flanctl before"):
        for other in ("hf eager", "hf compile"):
            if mine in tps and other in tps:
                print(f"ratio {mine}/{other} tokens/s: {tps[mine] / tps[other]:.2f}x median, {best[mine] / best[other]:.2f}x best round")
    if "flanctl" in tps and "flanctl before" in tps:
        print(f"flanctl after/before (palm CPU fast paths): {tps['flanctl'] / tps['flanctl before']:.2f}x median, "
              f"{best['flanctl'] / best['flanctl before']:.2f}x best round")


if __name__ == "__main__":
    main()
