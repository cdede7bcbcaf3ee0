"""Rematerialisation of transformer blocks: keep each block's input, recompute the rest.

`enable_remat(model)` makes every transformer block of a palm or t5 model recompute its
activations in the backward pass instead of keeping them (the memory the plan's
`train.remat` estimate assumes). It is a run-time switch on the layer instances, not part
of the saved config, so exported presets are unchanged.

Why not `keras.RematScope` / `keras.remat`: they hand the layer's whole call, `training`
flag included, to `jax.checkpoint`, which traces it, and the Dropout layers then branch in
Python on a traced value; the Dropout seed generators also update Keras variables from
inside the checkpointed trace. Here the `training` flag and every other non-tensor
argument stay static (closed over), the block's variables, seed states included, go in as
explicit inputs through a `keras.StatelessScope`, and the new seed states come out as
outputs and are assigned afterwards. The recomputation sees the same seeds, so dropout
masks, losses and gradients equal those without remat.

Per backend: jax `jax.checkpoint`; torch `torch.utils.checkpoint` (seed states and torch's
RNG state restored before the recomputation); tensorflow is not supported (`remat_support` says why). Only
training calls are checkpointed; inference and cached decoding run the plain call.

Example:
    >>> model = build_model(arch, "palm")
    >>> enable_remat(model)   # -> number of blocks wrapped, e.g. 2
"""

from __future__ import annotations

import functools

import keras
import numpy as np

from flanctl.models.variables import unique_variables

_WRAPPED = "_flanctl_remat"


def remat_block_types() -> tuple[type, ...]:
    """The layer classes whose calls are checkpointed: PaLM blocks and T5 layers."""
    from keras_hub.src.models.t5.t5_transformer_layer import T5TransformerLayer

    from flanctl.models.palm.layers import PaLMDecoderBlock

    return (PaLMDecoderBlock, T5TransformerLayer)


def remat_support(backend: str | None = None) -> str | None:
    """None when `backend` can rematerialise blocks, else why not (one line)."""
    backend = backend or keras.config.backend()
    if backend in ("jax", "torch"):
        return None
    return (
        f"train.remat is not applied on {backend} (tf.recompute_grad would re-run dropout with new seeds); "
        "activations are kept: use backend jax or torch for remat"
    )


def remat_blocks(model) -> list:
    """The transformer blocks of `model` that `enable_remat` checkpoints."""
    types = remat_block_types()
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True) if isinstance(layer, types)]


def enable_remat(model) -> int:
    """Checkpoint every transformer block of `model` during training; returns how many.

    Returns 0 (and changes nothing) on a backend `remat_support` refuses or for a model
    without palm/t5 blocks (keras-hub presets). Calling it twice is harmless.
    """
    if remat_support() is not None:
        return 0
    blocks = remat_blocks(model)
    for block in blocks:
        if not getattr(block, _WRAPPED, False):
            block.call = _rematerialised(block, block.call)
            object.__setattr__(block, _WRAPPED, True)
    return len(blocks)


def is_rematerialised(layer) -> bool:
    return bool(getattr(layer, _WRAPPED, False))


def _rematerialised(layer, call):
    backend = keras.config.backend()
    checkpointed = _jax_checkpointed if backend == "jax" else _torch_checkpointed

    @functools.wraps(call)
    def wrapper(*args, **kwargs):
        # Only training calls keep activations for a backward pass; everything else (eval,
        # cached decoding, a traced training flag) runs the plain call.
        if kwargs.get("training") is not True:
            return call(*args, **kwargs)
        kwargs = dict(kwargs)
        kwargs.pop("training")
        return checkpointed(layer, call, args, kwargs)

    return wrapper


def _split(args, kwargs):
    """Flatten (args, kwargs) into tensors (checkpoint inputs) and everything else (static)."""
    leaves = keras.tree.flatten((args, kwargs))
    is_tensor = [keras.ops.is_tensor(x) or isinstance(x, np.ndarray) for x in leaves]
    tensors = [x for x, t in zip(leaves, is_tensor) if t]

    def rebuild(values):
        it = iter(values)
        filled = [next(it) if t else x for x, t in zip(leaves, is_tensor)]
        return keras.tree.pack_sequence_as((args, kwargs), filled)

    return tensors, rebuild


def _jax_checkpointed(layer, call, args, kwargs):
    import jax

    variables = unique_variables(layer.variables)
    state = [i for i, v in enumerate(variables) if not v.trainable]  # seed generators
    tensors, rebuild = _split(args, kwargs)

    def pure(values, tensors):
        a, k = rebuild(tensors)
        with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
            out = call(*a, training=True, **k)
            new_state = [scope.get_current_value(variables[i]) for i in state]
        return out, new_state

    out, new_state = jax.checkpoint(pure)([v.value for v in variables], tensors)
    for i, value in zip(state, new_state):
        variables[i].assign(value)
    return out


def _torch_checkpointed(layer, call, args, kwargs):
    import torch
    from torch.utils.checkpoint import checkpoint

    seeds = [v for v in unique_variables(layer.variables) if not v.trainable]
    saved = [torch.clone(keras.ops.convert_to_tensor(v.value)) for v in seeds]
    tensors, rebuild = _split(args, kwargs)

    def run(*tensors):
        # The recomputation in backward starts from the seeds the forward pass used: Keras
        # seed generators (seeded dropout) here, torch's global RNG (Keras' unseeded dropout
        # on torch) through preserve_rng_state.
        for v, value in zip(seeds, saved):
            v.assign(value)
        a, k = rebuild(tensors)
        return call(*a, training=True, **k)

    return checkpoint(run, *tensors, use_reentrant=False, preserve_rng_state=True)
