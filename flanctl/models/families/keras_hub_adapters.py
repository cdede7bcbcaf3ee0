"""The batch adapters of the preset families: keras-hub CausalLM and Seq2SeqLM tasks trained
on flanctl's batches (`KerasHubCausalLMFamily.trainable`, `KerasHubSeq2SeqFamily.trainable`).

keras-hub causal LMs take `{"token_ids", "padding_mask"}`; the data room's decoder-only
batches carry `token_ids`, `segment_ids` and `positions`. keras-hub seq2seq LMs take
`{"encoder_token_ids", "encoder_padding_mask", "decoder_token_ids", "decoder_padding_mask"}`;
the encoder-decoder batches carry `encoder_*`/`decoder_*` token ids, segment ids and
positions. Packing is off for presets (they have no segment masks, see
`flanctl.catalog.models.supports_packing`), so every row holds one example from position 0 and each padding
mask is simply `segment_ids > 0`. An adapter owns the keras-hub task as a sub-model, so its
weights are the task's weights and the exported preset is the plain keras-hub one.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="flanctl")
class PresetCausalLMAdapter(keras.Model):
    """`adapter(batch) -> logits [B, L, vocab]` for a keras-hub `CausalLM`.

    Example:
    >>> task = keras_hub.models.CausalLM.from_preset("./my_preset")  # doctest: +SKIP
    >>> logits = PresetCausalLMAdapter(task)({"token_ids": ids, "segment_ids": seg})  # doctest: +SKIP
    """

    def __init__(self, task, **kwargs):
        super().__init__(**kwargs)
        self.task = task
        self.built = task.built  # the loaded preset already has its weights

    def call(self, inputs, training=False):
        features = {"token_ids": inputs["token_ids"], "padding_mask": ops.greater(inputs["segment_ids"], 0)}
        return self.task(features, training=training)

    def save_to_preset(self, preset_dir, **kwargs):
        """The preset of the wrapped keras-hub task (loadable without flanctl)."""
        return self.task.save_to_preset(preset_dir, **kwargs)

    def get_config(self):
        return {**super().get_config(), "task": keras.saving.serialize_keras_object(self.task)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["task"] = keras.saving.deserialize_keras_object(config["task"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="flanctl")
class PresetSeq2SeqLMAdapter(PresetCausalLMAdapter):
    """`adapter(batch) -> decoder logits [B, Ld, vocab]` for a keras-hub `Seq2SeqLM` (T5, BART).

    The decoder inputs are the data room's (targets shifted right, starting from the
    tokenizer's pad id, as keras-hub's T5 preprocessor does); the loss is on `targets`.

    Example:
    >>> task = keras_hub.models.Seq2SeqLM.from_preset("./my_t5")  # doctest: +SKIP
    >>> logits = PresetSeq2SeqLMAdapter(task)(encoder_decoder_batch)  # doctest: +SKIP
    """

    INPUTS = ("encoder_token_ids", "encoder_padding_mask", "decoder_token_ids", "decoder_padding_mask")

    def __init__(self, task, **kwargs):
        names = set(task.input) if isinstance(task.input, dict) else set()
        if names != set(self.INPUTS):
            from flanctl.errors import FlanctlError

            raise FlanctlError(
                f"training a {type(task).__name__} preset needs a keras-hub Seq2SeqLM whose inputs are "
                f"{', '.join(self.INPUTS)} (this one takes {', '.join(sorted(names)) or 'no named inputs'}); "
                "use a T5 or BART preset, or family t5"
            )
        super().__init__(task, **kwargs)

    def call(self, inputs, training=False):
        features = {
            "encoder_token_ids": inputs["encoder_token_ids"],
            "encoder_padding_mask": ops.cast(ops.greater(inputs["encoder_segment_ids"], 0), "int32"),
            "decoder_token_ids": inputs["decoder_token_ids"],
            "decoder_padding_mask": ops.cast(ops.greater(inputs["decoder_segment_ids"], 0), "int32"),
        }
        return self.task(features, training=training)
