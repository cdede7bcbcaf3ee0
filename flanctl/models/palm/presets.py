"""PaLM configurations: catalog architecture numbers -> `PaLMBackbone` keyword arguments.

There are no downloadable PaLM weights; the configurations are the catalog sizes
(`flanctl.catalog.models.SIZES["palm"]`: tiny/mini/small for tests, 8b/62b/540b of the paper).
"""

from __future__ import annotations


def backbone_kwargs(arch: dict, dropout: float = 0.0) -> dict:
    """`PaLMBackbone(**backbone_kwargs(arch))` builds the model the catalog counts."""
    return {
        "vocabulary_size": int(arch["vocab_size"]),
        "num_layers": int(arch["num_layers"]),
        "hidden_dim": int(arch["hidden_dim"]),
        "num_heads": int(arch["num_heads"]),
        "num_kv_heads": int(arch.get("num_kv_heads") or 1),
        "head_dim": int(arch.get("head_dim") or arch["hidden_dim"] // arch["num_heads"]),
        "ffn_dim": int(arch.get("ffn_dim") or 4 * arch["hidden_dim"]),
        "max_sequence_length": int(arch.get("max_sequence_length") or 2560),
        "dropout": float(dropout),
    }

