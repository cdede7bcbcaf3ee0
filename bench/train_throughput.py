"""Training throughput: Keras's train step against a hand-written `jax.jit` step, same run.

CPU (default): a small palm model (flanctl.models.build_model). Both sides start from the
same weights and use the same Keras optimizer math (`optimizer.stateless_apply`); the jit
side is `jax.value_and_grad` over `model.stateless_call` with a masked cross-entropy. Each
side runs warm-up steps (compile), then `--steps` timed steps; the loss is fetched to the
host every step on both sides, as the training loop does. Goal: Keras <= 1.15x slower.

--gpu: the PaLM-shaped ~1B model (d=2048, 16 layers, 16 heads of 128, 1 KV head, SwiGLU 4d,
tied 32k vocabulary, sequence 2560, mixed_bfloat16) against keras-hub LlamaCausalLM of the
same shape. `--gpu --shrink` runs the same code path with a tiny shape (to prove it on CPU).

    KERAS_BACKEND=jax .venv/bin/python bench/train_throughput.py
    KERAS_BACKEND=jax .venv/bin/python bench/train_throughput.py --gpu [--shrink]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402

from flanctl.train.synthetic_stream import SyntheticStream  # noqa: E402
from flanctl.train.throughput import PEAK_FLOPS, mfu  # noqa: E402
from flanctl.train.trainer import masked_loss, split_batch  # noqa: E402

CPU_ARCH = dict(num_layers=2, hidden_dim=256, num_heads=4, num_kv_heads=1, head_dim=64, ffn_dim=1024, vocab_size=1024, max_sequence_length=256)
GPU_ARCH = dict(num_layers=16, hidden_dim=2048, num_heads=16, num_kv_heads=1, head_dim=128, ffn_dim=8192, vocab_size=32000, max_sequence_length=2560)
SHRUNK_ARCH = dict(num_layers=2, hidden_dim=128, num_heads=4, num_kv_heads=1, head_dim=32, ffn_dim=512, vocab_size=512, max_sequence_length=128)


def build_palm(arch: dict) -> keras.Model:
    from flanctl.models.palm import PaLMBackbone, PaLMCausalLM
    from flanctl.models.palm.presets import backbone_kwargs

    keras.utils.set_random_seed(0)
    return PaLMCausalLM(PaLMBackbone(**backbone_kwargs(arch, dropout=0.0)))


def build_llama(arch: dict) -> keras.Model:
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=arch["vocab_size"], num_layers=arch["num_layers"], num_query_heads=arch["num_heads"],
        hidden_dim=arch["hidden_dim"], intermediate_dim=arch["ffn_dim"], num_key_value_heads=arch["num_kv_heads"],
        tie_word_embeddings=True,
    )
    return keras_hub.models.LlamaCausalLM(backbone, preprocessor=None)


def llama_inputs(features: dict) -> dict:
    return {"token_ids": features["token_ids"], "padding_mask": features["segment_ids"] > 0}


def optimizer() -> keras.optimizers.Optimizer:
    """The trainer's Adafactor (factored state, constant rate)."""
    from flanctl.train.adafactor import FactoredAdafactor

    return FactoredAdafactor(learning_rate=1e-3, relative_step=False)


def keras_stepper(model, adapt=lambda f: f):
    """One call = one step of Keras's compiled train step (train_on_batch, as the trainer runs it)."""
    model.compile(optimizer=optimizer(), loss=masked_loss(), weighted_metrics=[])

    def step(batch) -> float:
        x, y, w = split_batch(batch)
        return float(model.train_on_batch(adapt(x), y, sample_weight=w, return_dict=True)["loss"])

    return step


def jit_stepper(model, adapt=lambda f: f):
    """One call = one step of a hand-written jitted step, same model and optimizer math."""
    opt = optimizer()
    opt.build(model.trainable_variables)
    state = {
        "tv": [v.value for v in model.trainable_variables],
        "ntv": [v.value for v in model.non_trainable_variables],
        "ov": [v.value for v in opt.variables],
    }

    def loss_fn(tv, ntv, x, y, w):
        logits, ntv = model.stateless_call(tv, ntv, x, training=True)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        nll = -jnp.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
        return jnp.sum(nll * w) / jnp.maximum(jnp.sum(w), 1.0), ntv

    @jax.jit
    def jitted(tv, ntv, ov, x, y, w):
        (loss, ntv), grads = jax.value_and_grad(loss_fn, has_aux=True)(tv, ntv, x, y, w)
        tv, ov = opt.stateless_apply(ov, grads, tv)
        return tv, ntv, ov, loss

    def step(batch) -> float:
        x, y, w = split_batch(batch)
        state["tv"], state["ntv"], state["ov"], loss = jitted(state["tv"], state["ntv"], state["ov"], adapt(x), y, w)
        return float(loss)  # host sync every step, as the training loop does

    return step


def time_interleaved(steppers: dict, batches: list, warmup: int) -> dict:
    """Seconds per step of each stepper, timed step by step in turn so that load on a shared
    machine hits every side alike; the first `warmup` steps (compilation) are not timed."""
    spent = {name: 0.0 for name in steppers}
    for i, batch in enumerate(batches):
        for name, step in steppers.items():
            start = time.perf_counter()
            step(batch)
            if i >= warmup:
                spent[name] += time.perf_counter() - start
    return {name: total / (len(batches) - warmup) for name, total in spent.items()}


def report(name: str, sec: float, tokens: int, params: int, peak: float) -> float:
    tps = tokens / sec
    print(f"{name:<28} {sec * 1e3:9.1f} ms/step {tps:12,.0f} tokens/s  MFU {mfu(params, tps, peak):6.1%}")
    return tps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", action="store_true", help="PaLM-shaped ~1B vs keras-hub Llama (bf16)")
    ap.add_argument("--shrink", action="store_true", help="with --gpu: tiny shape, to check the path on CPU")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--peak-flops", type=float, default=None, help="peak FLOP/s of the device (default: table)")
    args = ap.parse_args()
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({device.platform}), jax {jax.__version__}, keras {keras.__version__}")
    if args.gpu:
        keras.config.set_dtype_policy("mixed_bfloat16")
        arch = SHRUNK_ARCH if args.shrink else GPU_ARCH
        batch, length = args.batch or (2 if args.shrink else 8), arch["max_sequence_length"]
        peak = args.peak_flops or (PEAK_FLOPS["cpu"] if device.platform == "cpu" else PEAK_FLOPS["h100"])
    else:
        arch = CPU_ARCH
        batch, length = args.batch or 8, arch["max_sequence_length"]
        peak = args.peak_flops or PEAK_FLOPS["cpu"]
    stream = SyntheticStream(batch, length, arch["vocab_size"], seed=0)
    batches = [next(stream) for _ in range(args.warmup + args.steps)]
    tokens = batch * length
    print(f"shape: {arch}, batch {batch} x {length} = {tokens} tokens/step, peak {peak:.3g} FLOP/s")

    palm = build_palm(arch)
    params = palm.count_params()
    print(f"palm params: {params:,}")
    jit_palm = build_palm(arch)  # same seed: same initial weights
    steppers = {"keras": keras_stepper(palm), "jit": jit_stepper(jit_palm)}
    if args.gpu:
        llama = build_llama(arch)
        llama_params = llama.count_params()
        steppers["llama"] = keras_stepper(llama, adapt=llama_inputs)
    times = time_interleaved(steppers, batches, args.warmup)
    k = report("palm keras train step", times["keras"], tokens, params, peak)
    j = report("palm hand-written jax.jit", times["jit"], tokens, params, peak)
    print(f"ratio keras/jit step time: {times['keras'] / times['jit']:.3f}x (goal <= 1.15x)")
    if args.gpu:
        lt = report("keras-hub LlamaCausalLM", times["llama"], tokens, llama_params, peak)
        print(f"palm keras vs llama tokens/s: {k / lt:.3f}x (goal >= 1.25x); palm jit vs llama {j / lt:.3f}x")


if __name__ == "__main__":
    main()
