"""`ModelFamily`: everything generic code may ask of a model family, in one protocol.

A family answers for its models: what kind they are (`encoder_decoder`, `packs`), how one is
built from architecture numbers or loaded from a preset, which model the trainer fits on
flanctl's batches (`trainable`), how its weights are sharded (`layout_rules`), which engine
generates and scores with it (`engine`), how a prompt is framed (`frame_prompt`), and how it
is exported. Generic code gets a family from `flanctl.models.families.get_family` (by the
plan's family name and kind) or `family_of_model` (for a loaded model) and asks it; it never
compares family names.

Defaults here are the common case; each family overrides what differs. Nothing in this module
imports Keras: a family's methods import what they need when called.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from flanctl.errors import FlanctlError

#: (regex over a variable's whole path, as Keras' LayoutMap uses `re.fullmatch`; mesh axis per
#: dimension, None = replicated on that dimension).
LayoutRules = tuple[tuple[str, tuple], ...]


class ModelFamily(ABC):
    """One model family behind the one protocol (see the module docstring)."""

    #: The spec's family name (`model.family`): palm, cont-palm, u-palm, t5 or preset.
    name: str
    #: True for an encoder-decoder (inputs to the encoder, targets to the decoder), False for
    #: a decoder-only model (one sequence, next-token loss on the targets).
    encoder_decoder: bool

    def __repr__(self) -> str:
        kind = "encoder-decoder" if self.encoder_decoder else "decoder-only"
        return f"<{type(self).__name__} {self.name!r} ({kind})>"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.name == other.name

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name))

    # -- kind ------------------------------------------------------------------------------
    @property
    def packs(self) -> bool:
        """True when the model keeps packed examples apart (masks attention by segment)."""
        from flanctl.catalog.models import supports_packing

        return supports_packing(self.name)

    @property
    def packing_note(self) -> str | None:
        """Why packing is off for this family (None when it packs)."""
        from flanctl.catalog.models import packing_note

        return packing_note(self.name)

    @abstractmethod
    def owns(self, model) -> bool:
        """True when `model` (a loaded or built Keras model) is one of this family's."""

    # -- build, load, train ----------------------------------------------------------------
    @property
    def attention_modes(self) -> tuple[str, ...]:
        """The `model.attention` values this family's models take (the catalog's fact)."""
        from flanctl.catalog.models import family_facts

        return family_facts(self.name).attention_modes

    def check_attention(self, attention: str) -> None:
        """A one-line error when the family's models cannot attend as `attention`."""
        if attention not in self.attention_modes:
            raise FlanctlError(
                f"model.attention {attention!r}: family {self.name!r} takes only {', '.join(self.attention_modes)}; "
                "prefix-LM attention is built for the palm families (palm, cont-palm, u-palm)"
            )

    @abstractmethod
    def build(self, arch: dict, dropout: float = 0.0, dtype=None, attention: str = "causal"):
        """The task model built from architecture numbers, with fresh weights. It maps the
        data room's batch dict (without targets/loss_mask) to float32 logits [B, L, vocab];
        `dtype` is a Keras dtype policy name (e.g. "float32", "mixed_bfloat16"); `attention`
        is `model.attention` (see `attention_modes`)."""

    def with_attention(self, model, attention: str):
        """`model` attending as `attention` (`model.attention`): a family with one mode returns
        the model as it is; the palm families switch a loaded checkpoint's mask."""
        self.check_attention(attention)
        return model

    def with_vocabulary(self, model, vocab_size: int | None, seed: int = 0):
        """`model` with `vocab_size` ids (the plan's `model.architecture.vocab_size`; None keeps
        its own). Only the palm families grow a loaded checkpoint's vocabulary; the plan
        refuses a different size for the others, and this is the same refusal at run time."""
        own = getattr(getattr(model, "backbone", None), "vocabulary_size", None)
        if vocab_size is not None and own is not None and int(own) != int(vocab_size):
            raise FlanctlError(f"model.architecture.vocab_size {vocab_size}: the checkpoint has {own} ids, and growing a "
                               f"vocabulary on load is built for the palm families; remove vocab_size")
        return model

    def as_planned(self, model, attention: str, vocab_size: int | None = None, seed: int = 0):
        """A loaded checkpoint as the plan runs it: attending as `model.attention`, with the
        plan's vocabulary size (`with_attention`, `with_vocabulary`)."""
        return self.with_vocabulary(self.with_attention(model, attention), vocab_size, seed)

    def abstract_param_count(self, arch: dict) -> int:
        """Parameters of `build(arch)`, counted from variable shapes without allocating them."""
        from flanctl.models.variables import abstract_param_count

        return abstract_param_count(lambda: self.build(arch))

    def load(self, source, dropout: float = 0.0) -> tuple[object, object | None]:
        """`(task model, tokenizer or None)` from a preset directory or keras-hub handle.
        `dropout` applies where the family builds the model itself (a Hugging Face T5 folder);
        a saved preset keeps the dropout it was saved with."""
        from flanctl.models.preset_io import load_preset

        return load_preset(source)

    def trainable(self, model):
        """The model the trainer fits: maps flanctl's batch dict to logits. flanctl's own task
        models take the batches as they are."""
        return model

    # -- distribution ----------------------------------------------------------------------
    def layout_rules(self) -> LayoutRules:
        """The sharding rules of the family's weights over the mesh axes ("data", "model")."""
        raise FlanctlError(
            f"no sharding layout for family {self.name!r}: model parallelism supports palm and t5; use mesh.model: 1"
        )

    def layout_map(self, mesh):
        """A `keras.distribution.LayoutMap` over `mesh` (a DeviceMesh with axes data, model)."""
        import keras

        rules = self.layout_rules()
        lm = keras.distribution.LayoutMap(mesh)
        for pattern, axes in rules:
            lm[pattern] = axes
        return lm

    # -- generation and export -------------------------------------------------------------
    def frame_prompt(self, ids: list[int], tokenizer) -> list[int]:
        """Prompt ids framed as training framed its inputs (flanctl.data.stream): BOS first for
        a decoder-only model, EOS last for an encoder input."""
        from flanctl.models.generation.engine import frame_decoder_prompt, frame_encoder_prompt

        return frame_encoder_prompt(ids, tokenizer) if self.encoder_decoder else frame_decoder_prompt(ids, tokenizer)

    @abstractmethod
    def engine(self, model, tokenizer=None, batch_size: int = 8):
        """The `GenerationEngine` (generation and scoring, text level) over `model`; `tokenizer`
        None means the model's own (see flanctl.models.generation.tokenizers)."""

    def export(self, model, directory, tokenizer=None) -> Path:
        """Save `model` as a keras-hub preset directory with flanctl.json naming this family."""
        from flanctl.models.preset_io import export_preset

        return export_preset(model, directory, self.name, tokenizer)

    def export_hf(self, model, directory, tokenizer=None) -> Path:
        """Write `model` as a Hugging Face transformers folder (same logits and token ids)."""
        raise FlanctlError(f"model family {self.name!r} has no Hugging Face export yet; `flanctl export --format hf` supports t5")


def require_arch(arch: dict, family: str, keys: tuple[str, ...]) -> dict:
    """`arch` when it has every key, else a one-line error naming what is missing."""
    missing = [k for k in keys if not arch.get(k)]
    if missing:
        raise FlanctlError(
            f"model architecture for family {family!r} lacks {', '.join(missing)}: "
            "set model.size or model.architecture.<field> in the spec"
        )
    return arch
