"""Sharding layouts: which mesh axis each weight dimension lives on, per family.

Mesh axes are `("data", "model")` (see backends/jax.py). Attention heads and the
feed-forward inner dimension go on `model` (Megatron-style: column-parallel in, row-parallel
out); the batch goes on `data` through `ModelParallel(batch_dim_name="data")`. The hidden
dimension of every palm matrix is also split over `data` (a 2D layout, as PaLM trained: XLA
all-gathers a layer's weights where it runs), so weights, gradients and optimizer state take
1/(data x model) of their size per device: the plan's memory estimate assumes exactly this. The single
key/value head of multi-query attention cannot be split across devices, so its projections
are replicated on `model` (as in PaLM, section 4). Embeddings are sharded on the hidden
dimension, which every catalog size divides evenly (vocabularies such as 259 or 32,128
do not divide by common mesh sizes). Norm scales and the relative position bias are
replicated (a weight no rule matches is replicated by Keras).
"""

from __future__ import annotations

from flanctl.catalog.models import is_decoder_only
from flanctl.errors import FlanctlError

#: (regex that must match the whole variable path, as Keras' LayoutMap uses `re.fullmatch`;
#: axis name per dimension, None = replicated on that dimension).
PALM_RULES: tuple[tuple[str, tuple], ...] = (
    (r".*token_embedding/embeddings", (None, "model")),
    (r".*attention/query/kernel", ("data", "model", None)),  # [d, H, h]: heads split
    (r".*attention/key/kernel", ("data", None, None)),  # [d, K, h]: the MQA head replicated on model
    (r".*attention/value/kernel", ("data", None, None)),
    (r".*attention/attention_output/kernel", ("model", None, "data")),  # [H, h, d]
    (r".*mlp/ffn_(gate|up)/kernel", ("data", "model")),  # [d, f]
    (r".*mlp/ffn_down/kernel", ("model", "data")),  # [f, d]
)

#: keras-hub T5 layers (Dense kernels [in, out]; q/k/v out = heads * key_value_dim).
T5_RULES: tuple[tuple[str, tuple], ...] = (
    (r".*token_embedding/embeddings", (None, "model")),
    (r".*token_embedding/reverse_embeddings", ("model", None)),
    (r".*(query_projector|key_projector|value_projector)/kernel", (None, "model")),
    (r".*output_projector/kernel", ("model", None)),
    (r".*(input_projector|gate_projector)/kernel", (None, "model")),
)


def layout_rules(family: str) -> tuple[tuple[str, tuple], ...]:
    """The (path regex, axes) rules of a family, without importing Keras."""
    if is_decoder_only(family):
        return PALM_RULES
    if family == "t5":
        return T5_RULES
    raise FlanctlError(f"no sharding layout for family {family!r}: model parallelism supports palm and t5; use mesh.model: 1")


def layout_map(family: str, mesh):
    """A `keras.distribution.LayoutMap` over `mesh` (a DeviceMesh with axes data, model)."""
    import keras

    lm = keras.distribution.LayoutMap(mesh)
    for pattern, axes in layout_rules(family):
        lm[pattern] = axes
    return lm
