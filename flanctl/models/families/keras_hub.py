"""The preset families: any keras-hub `CausalLM` or `Seq2SeqLM` preset (`model.family: preset`).

Which of the two a preset is was decided once, at plan time, from the preset folder's
task.json/config.json (`plan.model.encoder_decoder`), or, for a model loaded without a plan,
from its class (`family_of_model`). Presets carry their own architecture and tokenizer: they
are loaded, never built; they train through an adapter that maps flanctl's batches to the
task's inputs (flanctl.models.families.keras_hub_adapters); they generate through keras-hub's own
`generate`; they export as the plain keras-hub preset. They take only a padding mask, so
packing is off, and no sharding layout is known for them (model parallelism: mesh.model 1).

A preset folder may also hold one of flanctl's own exports (a palm or t5 model saved with
`export`); such a model is then handled by its own family.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

from flanctl.errors import FlanctlError
from flanctl.models.families.base import ModelFamily


class _KerasHubPresetFamily(ModelFamily):
    """What the two preset families share; subclasses name the task class and engine."""

    name = "preset"

    def build(self, arch: dict, dropout: float = 0.0, dtype=None, attention: str = "causal"):
        raise FlanctlError("family 'preset' has no architecture to build: use load_model(model.preset) instead")

    def load(self, source, dropout: float = 0.0):
        """The keras-hub task of a preset (or of a Hugging Face folder keras-hub converts); for
        an HF folder, the converted tokenizer must give the checkpoint's own ids (hf_probe)."""
        from flanctl.models.hf_io import is_hf_folder

        model, tokenizer = super().load(source)
        if is_hf_folder(source):
            from flanctl.models.hf_probe import check_tokenizer

            check_tokenizer(source, tokenizer, fix=(
                "keras-hub converts this folder's tokenizer as another one of the architecture's (e.g. a Llama-2 "
                "SentencePiece tokenizer as Llama 3's byte-level BPE), so flanctl will not finetune it through keras-hub"))
        return model, tokenizer

    def export_hf(self, model, directory, tokenizer=None):
        """keras-hub's own `export_to_transformers` (gemma, gpt2, llama3, mistral, qwen, ...)."""
        from flanctl.models.families.keras_hub_adapters import PresetCausalLMAdapter

        task = model.task if isinstance(model, PresetCausalLMAdapter) else getattr(model, "task", model)
        exporter = getattr(task, "export_to_transformers", None)
        if exporter is None:
            raise FlanctlError(f"keras-hub has no Hugging Face export for {type(task).__name__}")
        try:
            exporter(str(directory))
        except (ValueError, NotImplementedError, KeyError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise FlanctlError(f"keras-hub cannot export {type(task).__name__} to Hugging Face format: {first}") from None
        return Path(directory)

    @abstractmethod
    def _adapter_class(self):
        """The adapter class that maps flanctl's batches to this kind of task's inputs."""

    def _own_family(self, model) -> ModelFamily:
        """The family of the loaded `model` (by its class), which must be of this kind."""
        from flanctl.models.families import family_of_model

        family = family_of_model(model)
        if family.encoder_decoder != self.encoder_decoder:
            said = "an encoder-decoder (Seq2SeqLM)" if self.encoder_decoder else "a decoder-only (CausalLM)"
            raise FlanctlError(
                f"the plan says the preset is {said} model, but it loads as {type(model).__name__}; "
                "re-run `flanctl plan` (the preset changed since the plan was made)"
            )
        return family

    def trainable(self, model):
        family = self._own_family(model)
        if family != self:
            return family.trainable(model)
        adapter = self._adapter_class()
        return model if isinstance(model, adapter) else adapter(model)

    def engine(self, model, tokenizer=None, batch_size: int = 8):
        family = self._own_family(model)
        if family != self:
            return family.engine(model, tokenizer, batch_size=batch_size)
        from flanctl.models.families.keras_hub_adapters import PresetCausalLMAdapter

        task = model.task if isinstance(model, PresetCausalLMAdapter) else model
        return self._engine(task, tokenizer, batch_size)

    @abstractmethod
    def _engine(self, task, tokenizer, batch_size: int):
        """The generation engine over a keras-hub task of this kind."""


class KerasHubCausalLMFamily(_KerasHubPresetFamily):
    """A keras-hub `CausalLM` preset (GPT-2, Gemma, Llama, ...): decoder-only.

    Example:
        >>> family = KerasHubCausalLMFamily()
        >>> task, tokenizer = family.load("./my_gpt2_preset")  # doctest: +SKIP
        >>> family.trainable(task)  # PresetCausalLMAdapter: flanctl batch -> logits  # doctest: +SKIP
    """

    encoder_decoder = False

    def owns(self, model) -> bool:
        import keras_hub

        from flanctl.models.families.keras_hub_adapters import PresetCausalLMAdapter

        return isinstance(model, (keras_hub.models.CausalLM, PresetCausalLMAdapter))

    def _adapter_class(self):
        from flanctl.models.families.keras_hub_adapters import PresetCausalLMAdapter

        return PresetCausalLMAdapter

    def _engine(self, task, tokenizer, batch_size: int):
        from flanctl.models.generation.keras_hub_causal_lm import KerasHubCausalLMEngine

        return KerasHubCausalLMEngine(task, tokenizer, batch_size=batch_size, frame=self.frame_prompt)


class KerasHubSeq2SeqFamily(_KerasHubPresetFamily):
    """A keras-hub `Seq2SeqLM` preset (T5, BART, ...): encoder-decoder.

    Example:
        >>> family = KerasHubSeq2SeqFamily()
        >>> task, tokenizer = family.load("./my_t5_preset")  # doctest: +SKIP
        >>> family.engine(task, tokenizer).loglikelihood(["2+3="], [["5", "6"]])  # doctest: +SKIP
    """

    encoder_decoder = True

    def owns(self, model) -> bool:
        import keras_hub

        from flanctl.models.families.keras_hub_adapters import PresetSeq2SeqLMAdapter

        return isinstance(model, (keras_hub.models.Seq2SeqLM, PresetSeq2SeqLMAdapter))

    def _adapter_class(self):
        from flanctl.models.families.keras_hub_adapters import PresetSeq2SeqLMAdapter

        return PresetSeq2SeqLMAdapter

    def _engine(self, task, tokenizer, batch_size: int):
        from flanctl.models.generation.keras_hub_seq2seq import KerasHubSeq2SeqEngine

        # The task frames its encoder input itself, with its preprocessor's packers.
        return KerasHubSeq2SeqEngine(task, tokenizer, batch_size=batch_size)
