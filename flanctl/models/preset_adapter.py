"""Training any keras-hub CausalLM preset on flanctl's decoder-only batches.

keras-hub causal LMs take `{"token_ids", "padding_mask"}`; the data room's batches carry
`token_ids`, `segment_ids` and `positions`. Packing is off for presets (they have no segment
masks, see `flanctl.models.packing`), so every row holds one example from position 0 and the
padding mask is simply `segment_ids > 0`. The adapter owns the keras-hub task as a sub-model,
so its weights are the task's weights and the exported preset is the plain keras-hub one.
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


def trainable_preset(task):
    """The model the trainer fits: CausalLM presets get the adapter; others are refused."""
    import keras_hub

    from flanctl.errors import FlanctlError

    if isinstance(task, keras_hub.models.CausalLM):
        return PresetCausalLMAdapter(task)
    raise FlanctlError(
        f"training a {type(task).__name__} preset is not supported yet (keras-hub Seq2SeqLM presets take "
        "their own encoder/decoder inputs); use a CausalLM preset, or family t5 for encoder-decoders"
    )
