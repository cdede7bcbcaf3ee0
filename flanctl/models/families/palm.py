"""The palm families (palm, cont-palm, u-palm): flanctl's own decoder-only `PaLMCausalLM`.

cont-PaLM and U-PaLM share PaLM's architecture (they differ in pretraining), so one class
serves the three names. Batches: token_ids, segment_ids, positions (packed rows stay apart),
and with `model.attention: prefix` the prefix flags `prefix_mask` (a prefix LM, as UL2R).
"""

from __future__ import annotations

from flanctl.models.families.base import LayoutRules, ModelFamily, require_arch

#: Megatron-style: attention heads and the feed-forward inner dimension on `model`
#: (column-parallel in, row-parallel out), and the hidden dimension of every matrix on `data`
#: as well (a 2D layout, as PaLM trained: XLA all-gathers a layer's weights where it runs), so
#: weights, gradients and optimizer state take 1/(data x model) of their size per device (the
#: plan's memory estimate assumes exactly this). The single key/value head of multi-query
#: attention cannot be split across devices, so its projections are replicated on `model`
#: (PaLM, section 4). The embedding is split on the hidden dimension, which every catalog size
#: divides evenly (vocabularies such as 259 do not divide by common mesh sizes).
PALM_RULES: LayoutRules = (
    (r".*token_embedding/embeddings", (None, "model")),
    (r".*attention/query/kernel", ("data", "model", None)),  # [d, H, h]: heads split
    (r".*attention/key/kernel", ("data", None, None)),  # [d, K, h]: the MQA head replicated on model
    (r".*attention/value/kernel", ("data", None, None)),
    (r".*attention/attention_output/kernel", ("model", None, "data")),  # [H, h, d]
    (r".*mlp/ffn_(gate|up)/kernel", ("data", "model")),  # [d, f]
    (r".*mlp/ffn_down/kernel", ("model", "data")),  # [f, d]
)

_ARCH_KEYS = ("vocab_size", "num_layers", "hidden_dim", "num_heads")


class PalmFamily(ModelFamily):
    """PaLM-style decoder-only transformer: parallel attention + SwiGLU, multi-query attention.

    Example:
        >>> family = PalmFamily("palm")
        >>> model = family.build(SIZES["palm"]["tiny"])  # doctest: +SKIP
        >>> family.engine(model, ByteTokenizer()).generate(["Q: 1+1?"], 8, stop=["\\n"])  # doctest: +SKIP
    """

    encoder_decoder = False

    def __init__(self, name: str = "palm"):
        self.name = name

    def owns(self, model) -> bool:
        from flanctl.models.palm import PaLMCausalLM

        return isinstance(model, PaLMCausalLM)

    def build(self, arch: dict, dropout: float = 0.0, dtype=None, attention: str = "causal"):
        from flanctl.models.palm import PaLMBackbone, PaLMCausalLM
        from flanctl.models.palm.presets import backbone_kwargs

        self.check_attention(attention)
        kwargs = backbone_kwargs(require_arch(arch, self.name, _ARCH_KEYS), dropout=dropout)
        return PaLMCausalLM(backbone=PaLMBackbone(dtype=dtype, attention=attention, **kwargs), compile=False)

    def with_attention(self, model, attention: str):
        """The model with its backbone attending as `attention`, same weights (a causally
        pretrained checkpoint continues as a prefix LM, as U-PaLM's UL2R)."""
        from flanctl.models.palm import with_attention

        self.check_attention(attention)
        return with_attention(model, attention)

    def with_vocabulary(self, model, vocab_size: int | None, seed: int = 0):
        """The model with `vocab_size` ids: a checkpoint's tied embedding grows by new rows
        (`flanctl.models.palm.with_vocabulary`), e.g. for UL2's sentinels above the tokenizer."""
        if vocab_size is None:
            return model
        from flanctl.models.palm import with_vocabulary

        return with_vocabulary(model, int(vocab_size), seed)

    def layout_rules(self) -> LayoutRules:
        return PALM_RULES

    def export_hf(self, model, directory, tokenizer=None):
        """Refused: no transformers class computes PaLM's block."""
        from flanctl.errors import FlanctlError

        raise FlanctlError(
            "a PaLM model has no Hugging Face transformers equivalent: its parallel block (attention and SwiGLU both "
            "read one layer norm and add to the residual together) with multi-query attention and a shared embedding "
            "is not the math of any transformers class; use --format keras-hub (reload with `import flanctl.models`)"
        )

    def engine(self, model, tokenizer=None, batch_size: int = 8):
        from flanctl.models.generation.decoder_only import DecoderOnlyEngine

        return DecoderOnlyEngine(model, tokenizer, batch_size=batch_size, frame=self.frame_prompt)
