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

from flanctl.catalog.models import NOMINAL_PARAMS, PAPER_TABLE2, PRETRAIN, TABLE2_NOTES, t5_param_split
from flanctl.catalog.devices import device_peak_flops

# Full rematerialisation reruns the forward pass once in the backward pass: 8N instead of 6N.
REMAT_COMPUTE_FACTOR = 8 / 6


def compute_section(spec: Any, family: str, size: str | None, encoder_decoder: bool, arch: dict[str, int], params: int, notes: list[str]) -> dict[str, Any]:
    """The plan's `compute` object for a spec whose model has `params` parameters."""
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
