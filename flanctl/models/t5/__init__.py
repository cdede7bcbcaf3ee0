"""The T5 v1.1 family: keras-hub's T5 layers with segment-aware masks for packed batches."""

from flanctl.models.t5.backbone import FlanT5Backbone
from flanctl.models.t5.seq_2_seq_lm import T5PackedSeq2SeqLM


def build_t5(arch: dict, dropout: float = 0.0, dtype=None) -> T5PackedSeq2SeqLM:
    """The T5 task model of a catalog architecture (fresh weights)."""
    from flanctl.models.t5.presets import backbone_kwargs

    return T5PackedSeq2SeqLM(backbone=FlanT5Backbone(dtype=dtype, **backbone_kwargs(arch, dropout)), compile=False)


__all__ = ["FlanT5Backbone", "T5PackedSeq2SeqLM", "build_t5"]
