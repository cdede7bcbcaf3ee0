"""LoRA on any family's attention projections, with Keras' own LoRA layers.

`enable_lora(model, rank, alpha, targets)` turns on Keras' LoRA (`Dense.enable_lora` /
`EinsumDense.enable_lora`) on every Dense or EinsumDense layer named after a target (`query`,
`key`, `value`: palm's and keras-hub's `query`..., T5's `query_projector`...), and freezes every
other variable, so the optimizer builds state only for the adapters. Keras merges the adapters
into the kernels when it saves a layer's weights, so the exported preset (and a Hugging Face
export from it) is an ordinary model; checkpoints hold the adapters as variables of their own
and resume exactly.
"""

from __future__ import annotations

from flanctl.errors import FlanctlError


def _is_target(name: str, targets) -> bool:
    return any(name == t or name.startswith(t + "_") for t in targets)


def lora_layers(model, targets) -> list:
    """The Dense / EinsumDense layers of `model` that get adapters."""
    import keras

    kinds = (keras.layers.Dense, keras.layers.EinsumDense)
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, kinds) and _is_target(layer.name, targets)]


def enable_lora(model, rank: int, alpha: float, targets) -> int:
    """Add adapters to the target layers and freeze everything else; returns the number of
    trainable parameters left."""
    layers = lora_layers(model, targets)
    if not layers:
        raise FlanctlError(f"train.lora.targets {list(targets)}: no attention projection of {type(model).__name__} matches")
    for layer in layers:
        layer.enable_lora(rank, lora_alpha=alpha)
    adapters = {id(v) for layer in layers for v in (layer.lora_kernel_a, layer.lora_kernel_b)}
    for variable in model.variables:
        if id(variable) not in adapters:
            variable.trainable = False
    return trainable_count(model)


def trainable_count(model) -> int:
    total = 0
    for variable in model.trainable_variables:
        n = 1
        for d in variable.shape:
            n *= int(d)
        total += n
    return total
