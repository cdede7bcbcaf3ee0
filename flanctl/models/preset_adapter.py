"""Training keras-hub presets on flanctl's batches: the adapters, and `trainable_preset`.

The adapter classes live with the preset families (flanctl.models.families.keras_hub_adapters);
`trainable_preset` asks a loaded task's family for the model the trainer fits.
"""

from __future__ import annotations

from flanctl.models.families.keras_hub_adapters import PresetCausalLMAdapter, PresetSeq2SeqLMAdapter


def trainable_preset(task):
    """The model the trainer fits for a loaded preset: its family's `trainable` (by class).

    Seq2SeqLM presets get `PresetSeq2SeqLMAdapter`, CausalLM presets `PresetCausalLMAdapter`;
    flanctl's own palm/t5 exports already take flanctl's batches and are returned as they are.
    """
    from flanctl.models.families import family_of_model

    return family_of_model(task).trainable(task)


__all__ = ["PresetCausalLMAdapter", "PresetSeq2SeqLMAdapter", "trainable_preset"]
