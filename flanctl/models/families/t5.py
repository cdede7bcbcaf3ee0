"""The t5 family: flanctl's `T5PackedSeq2SeqLM` (keras-hub's T5 layers, segment-aware masks).

T5 v1.1: gated-GELU, untied embeddings, relative position bias. Batches: encoder_* and
decoder_* token ids, segment ids and positions (packed rows stay apart). `load` also takes a
Hugging Face T5 / Flan-T5 folder (flanctl.models.t5.hf); `export_hf` writes one.
"""

from __future__ import annotations

from flanctl.models.families.base import LayoutRules, ModelFamily, require_arch

#: keras-hub T5 layers (Dense kernels [in, out]; q/k/v out = heads * key_value_dim): heads
#: and the feed-forward inner dimension on `model`. Norm scales and the relative position
#: bias are replicated (a weight no rule matches is replicated by Keras).
T5_RULES: LayoutRules = (
    (r".*token_embedding/embeddings", (None, "model")),
    (r".*token_embedding/reverse_embeddings", ("model", None)),
    (r".*(query_projector|key_projector|value_projector)/kernel", (None, "model")),
    (r".*output_projector/kernel", ("model", None)),
    (r".*(input_projector|gate_projector)/kernel", (None, "model")),
)

_ARCH_KEYS = ("vocab_size", "num_layers", "hidden_dim", "num_heads", "ffn_dim")


class T5Family(ModelFamily):
    """Encoder-decoder T5 v1.1 on packed batches (the Flan-T5 models).

    Example:
        >>> family = T5Family()
        >>> model = family.build(SIZES["t5"]["tiny"] | {"vocab_size": 259})  # doctest: +SKIP
        >>> family.frame_prompt([5, 6], ByteTokenizer())  # the encoder input ends with EOS
        [5, 6, 1]
    """

    name = "t5"
    encoder_decoder = True

    def owns(self, model) -> bool:
        from flanctl.models.t5 import T5PackedSeq2SeqLM

        return isinstance(model, T5PackedSeq2SeqLM)

    def build(self, arch: dict, dropout: float = 0.0, dtype=None, attention: str = "causal"):
        from flanctl.models.t5 import build_t5

        self.check_attention(attention)
        return build_t5(require_arch(arch, self.name, _ARCH_KEYS), dropout=dropout, dtype=dtype)

    def load(self, source, dropout: float = 0.0):
        """A Hugging Face T5 folder through the weight map (with its spiece.model), else a
        keras-hub preset folder written by flanctl."""
        from flanctl.models.hf_io import is_hf_folder

        if is_hf_folder(source):
            from flanctl.models.t5.hf import load_checked

            return load_checked(source, dropout=dropout)
        return super().load(source)

    def export_hf(self, model, directory, tokenizer=None):
        """A transformers `T5ForConditionalGeneration` folder with the same logits and ids."""
        from flanctl.models.t5.hf import export_hf_t5

        return export_hf_t5(getattr(model, "task", model), directory, tokenizer)

    def layout_rules(self) -> LayoutRules:
        return T5_RULES

    def engine(self, model, tokenizer=None, batch_size: int = 8):
        from flanctl.models.generation.encoder_decoder import EncoderDecoderEngine

        return EncoderDecoderEngine(model, tokenizer, batch_size=batch_size, frame=self.frame_prompt)
