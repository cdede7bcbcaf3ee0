"""T5 v1.1 configurations: catalog architecture numbers -> `FlanT5Backbone` keyword arguments."""

from __future__ import annotations


def backbone_kwargs(arch: dict, dropout: float = 0.0) -> dict:
    """Keyword arguments of `FlanT5Backbone` (and of `keras_hub.models.T5Backbone`, less the
    decoder depth) for a catalog T5 size: gated-GELU, untied embeddings, head_dim 64."""
    return {
        "vocabulary_size": int(arch["vocab_size"]),
        "num_layers": int(arch.get("encoder_layers") or arch["num_layers"]),
        "num_decoder_layers": int(arch.get("decoder_layers") or arch["num_layers"]),
        "num_heads": int(arch["num_heads"]),
        "hidden_dim": int(arch["hidden_dim"]),
        "intermediate_dim": int(arch["ffn_dim"]),
        "key_value_dim": int(arch.get("head_dim") or arch["hidden_dim"] // arch["num_heads"]),
        "dropout": float(dropout),
        "activation": "gelu",
        "use_gated_activation": True,
        "tie_embedding_weights": False,
    }
