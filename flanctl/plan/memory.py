"""Memory per device: parameters, gradients, optimizer state, activations, against capacity.

Sharding model (stated in the plan): parameters, gradients and optimizer state are split over
the mesh's `model` axis and replicated over `data`; activations are split over `data` (the
batch), and the per-head / feed-forward activations inside a layer also over `model`
(tensor parallelism), while the residual stream (width d) is replicated over `model`.

Activations, per layer and per token, in elements of the compute dtype (S = sequence length):
- decoder layer (palm, parallel block): 2d (layer input, norm output) + (H + 2K)h (q, k, v)
  + Hh (attention output) + 3f (gate, up, gated product) + H*S (attention probabilities).
- t5 encoder layer: 4d (two residual inputs, two norm outputs) + 4Hh + 3f + H*S_in.
- t5 decoder layer: 6d + 4Hh (self) + 2Hh (cross q, out) + 3f + H*S_tgt + H*S_in
  (+ cross-attention k and v: 2Hh per encoder token per decoder layer).
With rematerialisation only each layer's input (d per token) is kept, plus one layer's full
activations while it is recomputed. The output logits and their softmax (2 * vocab fp32
words per target token) are counted in both cases.
"""

from __future__ import annotations

from typing import Any

from flanctl.catalog.devices import device_memory_bytes

PARAM_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "mixed_bfloat16": 4, "mixed_float16": 4}
COMPUTE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "mixed_bfloat16": 2, "mixed_float16": 2}


def weight_shapes(encoder_decoder: bool, arch: dict[str, int]) -> list[tuple[tuple[int, ...], int]]:
    """Logical weight shapes as (shape, how many), for the optimizer's factored state."""
    d, H, h, f, V = arch["hidden_dim"], arch["num_heads"], arch["head_dim"], arch["ffn_dim"], arch["vocab_size"]
    if not encoder_decoder:
        K, L = arch["num_kv_heads"], arch["num_layers"]
        return [
            ((V, d), 1),
            ((d, H * h), L), ((d, K * h), 2 * L), ((H * h, d), L),
            ((d, f), 2 * L), ((f, d), L),
            ((d,), L + 1),
        ]
    Le = arch.get("encoder_layers", arch["num_layers"])
    Ld = arch.get("decoder_layers", arch["num_layers"])
    return [
        ((V, d), 2),
        ((d, H * h), 3 * Le + 2 * 3 * Ld), ((H * h, d), Le + 2 * Ld),
        ((d, f), 2 * (Le + Ld)), ((f, d), Le + Ld),
        ((d,), 2 * Le + 3 * Ld + 2), ((32, H), 2),
    ]


def _adafactor_factored_words(shapes: list[tuple[tuple[int, ...], int]]) -> int:
    """Second-moment words: rows + cols per matrix, the full size per vector."""
    words = 0
    for shape, count in shapes:
        words += count * (shape[0] + shape[1] if len(shape) == 2 else shape[0])
    return words


def _activations_per_token(encoder_decoder: bool, arch: dict[str, int], mix: Any, model_axis: int, remat: bool) -> tuple[float, float]:
    """(elements kept per token over all layers, elements of one layer's working set per token)."""
    d, H, h, f = arch["hidden_dim"], arch["num_heads"], arch["head_dim"], arch["ffn_dim"]
    m = model_axis
    s_in, s_tgt = mix.inputs_length, mix.targets_length
    if not encoder_decoder:
        K, L, S = arch["num_kv_heads"], arch["num_layers"], s_in + s_tgt
        layer = 2 * d + ((H + 2 * K) * h + H * h + 3 * f + H * S) / m
        kept = L * (d if remat else layer)
        return kept, layer
    Le = arch.get("encoder_layers", arch["num_layers"])
    Ld = arch.get("decoder_layers", arch["num_layers"])
    # Average over all tokens of the step: encoder layers see s_in tokens, decoder layers s_tgt.
    share_in, share_tgt = s_in / (s_in + s_tgt), s_tgt / (s_in + s_tgt)
    enc = 4 * d + (4 * H * h + 3 * f + H * s_in) / m
    dec = 6 * d + (6 * H * h + 3 * f + H * s_tgt + H * s_in) / m
    cross_kv = Ld * 2 * H * h / m  # per encoder token, kept for every decoder layer
    if remat:
        kept = share_in * (Le * d + cross_kv) + share_tgt * Ld * d
    else:
        kept = share_in * (Le * enc + cross_kv) + share_tgt * Ld * dec
    return kept, max(share_in * enc, share_tgt * dec)


def memory_section(spec: Any, encoder_decoder: bool, arch: dict[str, int] | None, params: int | None, notes: list[str],
                   trainable: int | None = None) -> dict[str, Any]:
    """The plan's `memory` object (per-device bytes, capacity, `fits`, largest term).

    `trainable` is the count the optimizer updates (LoRA adapters; default every parameter):
    gradients, optimizer state and accumulators are kept for those only."""
    dist, train, mix = spec.distribution, spec.train, spec.mixture
    device_bytes = device_memory_bytes(dist.device)
    if arch is None or params is None:
        notes.append("memory not estimated: the architecture is only known once the preset is loaded")
        return {"per_device_bytes": None, "device_bytes": device_bytes, "fits": None, "largest": None, "terms": {}}

    m, data = dist.mesh.model, dist.mesh.data
    p_bytes = PARAM_BYTES[spec.model.precision]
    c_bytes = COMPUTE_BYTES[train.precision]
    # Weights, gradients and optimizer state are sharded over both mesh axes (the layout in
    # flanctl.models.sharding: heads / feed-forward on `model`, the other matrix dim on
    # `data`, as PaLM's 2D layouts do); XLA all-gathers a layer's weights when it runs.
    shards = m * data
    trainable = params if trainable is None else trainable
    params_b = params * p_bytes / shards
    grads_b = trainable * p_bytes / shards
    shapes = weight_shapes(encoder_decoder, arch)
    if trainable < params:
        # LoRA: the adapters are small matrices; count their optimizer state as full-size
        # (an upper bound for factored Adafactor, exact for Adam).
        opt_b = (2 * 4 if train.optimizer != "adafactor" else p_bytes) * trainable / shards
        opt_detail = {"lora_adapters": opt_b}
    elif train.optimizer == "adafactor":
        # flanctl.train.adafactor.FactoredAdafactor: rows + cols per matrix, nothing full-size
        # (keras.optimizers.Adafactor would add a full-size velocity slot per variable).
        opt_b = _adafactor_factored_words(shapes) * p_bytes / shards
        opt_detail = {"factored_second_moments": opt_b}
    else:
        opt_b = 2 * params * 4 / shards
        opt_detail = {"adam_moments_fp32": opt_b}
    accum_b = trainable * p_bytes / shards if train.grad_accum > 1 else 0.0

    seqs_per_device = train.batch_size / data / train.grad_accum
    tokens_per_device = seqs_per_device * (mix.inputs_length + mix.targets_length)
    target_tokens = seqs_per_device * (mix.targets_length if encoder_decoder else mix.inputs_length + mix.targets_length)
    logits_b = target_tokens * 2 * arch["vocab_size"] * 4 / m

    act = {}
    for remat in (False, True):
        kept, layer = _activations_per_token(encoder_decoder, arch, mix, m, remat)
        working = layer * tokens_per_device * c_bytes if remat else 0.0
        act[remat] = kept * tokens_per_device * c_bytes + working + logits_b

    terms = {
        "params": params_b,
        "gradients": grads_b,
        "optimizer": opt_b,
        "grad_accumulators": accum_b,
        "activations": act[train.remat],
    }
    total = sum(terms.values())
    largest = max(terms, key=terms.get)
    fits = total <= device_bytes
    out = {
        "per_device_bytes": total,
        "device_bytes": device_bytes,
        "fits": fits,
        "largest": largest,
        "terms": terms,
        "optimizer_detail": opt_detail,
        "activations_no_remat": act[False],
        "activations_remat": act[True],
        "remat": train.remat,
        "tokens_per_device_microbatch": tokens_per_device,
        "sharding": "params/grads/optimizer over data x model; activations over data (intra-layer over model too)",
    }
    if not fits:
        hint = f"{largest} is the largest term ({largest_gib(terms[largest])} GiB)"
        if not train.remat and act[True] + total - act[False] <= device_bytes:
            notes.append(f"memory: does not fit ({hint}); train.remat: true would make it fit")
        else:
            notes.append(f"memory: does not fit ({hint}); use more devices, a larger model axis, grad_accum or remat")
    return out


def largest_gib(n: float) -> str:
    return f"{n / 2**30:.1f}"
