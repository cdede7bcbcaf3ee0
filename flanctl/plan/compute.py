"""Compute section of the plan: tokens, finetuning and pretraining FLOPs, time estimate.

How FLOPs are counted (said in the plan too):
- decoder-only (palm families): `6 * N * tokens`, N the exact parameter count; every
  parameter does one multiply-add per token forward and two backward, and the shared
  embedding doubles as the output projection. Tokens are sequence slots
  (`batch * (inputs_length + targets_length)` per step), padding included, as the paper counts.
- encoder-decoder (t5): `6 * N_enc * input_tokens + 6 * N_dec * target_tokens`, where N_enc
  leaves out the token embedding (a lookup, no matmul) and N_dec includes the LM head.
- The paper's Table 2 appears to use nominal sizes (8B, 62B, 540B); the plan shows that
  figure too (`finetune_flops_nominal`) next to the printed row.
"""

from __future__ import annotations

from typing import Any

from flanctl.catalog.devices import device_peak_flops
from flanctl.catalog.models import (
    NOMINAL_PARAMS,
    PAPER_TABLE2,
    PRETRAIN,
    TABLE2_NOTES,
    t5_param_split,
)
from flanctl.catalog.objectives import DENOISERS, denoised_lengths, max_text_length

# Full rematerialisation reruns the forward pass once in the backward pass: 8N instead of 6N.
REMAT_COMPUTE_FACTOR = 8 / 6


def compute_section(spec: Any, family: str, size: str | None, encoder_decoder: bool, arch: dict[str, int], params: int, notes: list[str],
                    trainable: int | None = None) -> dict[str, Any]:
    """The plan's `compute` object for a spec whose model has `params` parameters, of which
    `trainable` are updated (LoRA; default all)."""
    mix, train, dist = spec.mixture, spec.train, spec.distribution
    batch, steps = train.batch_size, train.steps
    input_tokens_per_step = batch * mix.inputs_length
    target_tokens_per_step = batch * mix.targets_length
    tokens_per_step = input_tokens_per_step + target_tokens_per_step
    finetune_tokens = tokens_per_step * steps

    if encoder_decoder and arch and "encoder_layers" in arch:
        split = t5_param_split(arch)
        n_enc = split["encoder"] - arch["vocab_size"] * arch["hidden_dim"]
        n_dec = split["decoder"]
        flops = 6 * n_enc * input_tokens_per_step * steps + 6 * n_dec * target_tokens_per_step * steps
        method = "6*N_enc*input_tokens + 6*N_dec*target_tokens (N_enc without the embedding lookup, N_dec with the LM head)"
    else:
        flops = 6 * params * finetune_tokens
        method = "6*N*tokens (decoder-only; tokens = steps * batch * (inputs_length + targets_length), padding included)"

    if trainable is not None and params and trainable < params:
        # LoRA: frozen weights need no weight gradients (2N of the backward pass's 4N per token).
        factor = (4 + 2 * trainable / params) / 6
        flops *= factor
        method += f"; LoRA: times (4 + 2*N_trainable/N)/6 = {factor:.3f} (frozen weights get no weight gradients)"

    objective = objective_section(spec, encoder_decoder)
    method = f"objective {objective['name']}: {method}"
    if objective["name"] != "instruction":
        notes.append(f"objective {objective['name']}: {objective['description']}")

    key = (family, size or "")
    pretrain = PRETRAIN.get(key, {}).get("flops")
    out: dict[str, Any] = {
        "tokens_per_step": tokens_per_step,
        "input_tokens_per_step": input_tokens_per_step,
        "target_tokens_per_step": target_tokens_per_step,
        "finetune_tokens": finetune_tokens,
        "finetune_flops": float(flops),
        "flops_method": method,
        "pretrain_flops": pretrain,
        "pretrain_tokens": PRETRAIN.get(key, {}).get("tokens"),
        "finetune_fraction": (flops / pretrain) if pretrain else None,
        "objective": objective,
    }
    nominal = NOMINAL_PARAMS.get(key)
    if nominal is not None and not encoder_decoder:
        out["finetune_flops_nominal"] = 6 * nominal * finetune_tokens
    if key in PAPER_TABLE2:
        p_pre, p_ft, p_pct = PAPER_TABLE2[key]
        out["paper_table2"] = {"pretrain_flops": p_pre, "finetune_flops": p_ft, "finetune_percent": p_pct}
        if key in TABLE2_NOTES:
            notes.append(TABLE2_NOTES[key])
            out["paper_table2"]["consistent"] = False

    devices = dist.mesh.data * dist.mesh.model
    peak = device_peak_flops(dist.device)
    factor = REMAT_COMPUTE_FACTOR if train.remat else 1.0
    seconds = flops * factor / (peak * dist.utilization * devices)
    out["time"] = {
        "devices": devices,
        "device_peak_flops": peak,
        "utilization": dist.utilization,
        "remat_factor": factor,
        "seconds": seconds,
        "hours": seconds / 3600.0,
        "device_hours": seconds * devices / 3600.0,
    }
    return out


def objective_section(spec: Any, encoder_decoder: bool) -> dict[str, Any]:
    """What the objective makes of the rows: text per example, inputs/targets per example, loss tokens.

    Counts are per example at the longest text that fits (mode tokens of UL2 not counted: their
    length depends on the tokenizer). `loss_tokens_per_step` assumes full rows: packing fills a row
    with examples until its tighter side (decoder-only: the row; encoder-decoder: inputs or targets)
    is full. FLOPs stay those of the row slots, padding included, as for instruction finetuning."""
    mix, batch = spec.mixture, spec.train.batch_size
    name = spec.train.objective
    row = mix.inputs_length + mix.targets_length
    if name == "instruction":
        return {"name": name, "description": "the mixture's (inputs, targets) examples, loss on the targets",
                "loss_tokens_per_step_max": batch * (mix.targets_length if encoder_decoder else row)}
    if name == "causal_lm":
        return {"name": name, "description": f"raw text, loss on every token; {row - 1} text tokens per row",
                "text_tokens_per_example": row - 1, "text_tokens_per_step": batch * (row - 1),
                "loss_tokens_per_step": batch * row, "denoisers": []}
    denoisers = DENOISERS[name]
    if encoder_decoder:
        n = min(max_text_length(d, mix.inputs_length - 1, mix.targets_length - 1) for d in denoisers)
    else:
        n = min(max_text_length(d, row - 1, None) for d in denoisers)
    rows = []
    text_per_step = loss_per_step = 0.0
    total_w = sum(d.weight for d in denoisers)
    for d in denoisers:
        a, b = denoised_lengths(n, d)
        a_row, b_row = a + 1, b + 1  # eos (encoder-decoder) or bos + the eos target (decoder-only)
        per_row = min(mix.inputs_length / a_row, mix.targets_length / b_row) if encoder_decoder else row / (a_row + b_row)
        share = d.weight / total_w
        text_per_step += share * batch * per_row * n
        loss_per_step += share * batch * per_row * b_row
        rows.append({"name": d.name, "mode": d.mode, "mean_span": d.mean_span, "noise_density": d.density,
                     "weight": round(share, 6), "inputs_tokens": a, "targets_tokens": b})
    desc = (f"{len(denoisers)} denoiser(s) on {n}-token texts; " + ", ".join(f"{x['name']} {x['inputs_tokens']}->{x['targets_tokens']}" for x in rows)
            + (" (encoder inputs -> decoder targets)" if encoder_decoder else " (inputs then targets in one row, loss on targets)"))
    return {"name": name, "description": desc, "text_tokens_per_example": n, "text_tokens_per_step": round(text_per_step, 1),
            "loss_tokens_per_step": round(loss_per_step, 1), "denoisers": rows}
