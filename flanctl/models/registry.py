"""Build, load and save the task models of every family (the models room's entry points).

`build_model` turns architecture numbers (a plan's `model.architecture`) into the Keras task
model that maps the data room's batch dict to logits; `load_model` opens a preset directory
saved by `save_preset` (or any keras-hub CausalLM/Seq2SeqLM preset); `abstract_param_count`
counts a model's parameters from its variable shapes without allocating them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flanctl.catalog.models import is_decoder_only
from flanctl.errors import FlanctlError


def _ensure_backend() -> None:
    # Keras reads KERAS_BACKEND once, at its first import; callers that know the spec's
    # backend set it before calling us, everyone else gets jax.
    os.environ.setdefault("KERAS_BACKEND", "jax")


def _palm_arch_or_error(arch: dict, family: str) -> dict:
    missing = [k for k in ("vocab_size", "num_layers", "hidden_dim", "num_heads") if not arch.get(k)]
    if missing:
        raise FlanctlError(
            f"model architecture for family {family!r} lacks {', '.join(missing)}: "
            "set model.size or model.architecture.<field> in the spec"
        )
    return arch


def _arch_from(arch_or_plan_model: dict) -> dict:
    """Accept either the architecture dict or the plan's `model` section holding one."""
    if "architecture" in arch_or_plan_model and isinstance(arch_or_plan_model["architecture"], dict):
        return dict(arch_or_plan_model["architecture"])
    return dict(arch_or_plan_model)


def build_model(arch_or_plan_model: dict, family: str, dropout: float = 0.0, dtype=None):
    """The task model of `family` built from architecture numbers, with fresh weights.

    palm/cont-palm/u-palm -> `PaLMCausalLM` (inputs token_ids, segment_ids, positions);
    t5 -> `T5PackedSeq2SeqLM` (encoder_*/decoder_* token_ids, segment_ids, positions).
    `dtype` is a Keras dtype policy name (e.g. "float32", "mixed_bfloat16").
    Both map the batch dict (without targets/loss_mask) to float32 logits [B, L, vocab].
    """
    _ensure_backend()
    arch = _arch_from(arch_or_plan_model)
    if is_decoder_only(family):
        from flanctl.models.palm import PaLMBackbone, PaLMCausalLM
        from flanctl.models.palm.presets import backbone_kwargs

        kwargs = backbone_kwargs(_palm_arch_or_error(arch, family), dropout=dropout)
        return PaLMCausalLM(backbone=PaLMBackbone(dtype=dtype, **kwargs), compile=False)
    if family == "t5":
        from flanctl.models.t5 import build_t5

        return build_t5(arch, dropout=dropout, dtype=dtype)
    if family == "preset":
        raise FlanctlError("family 'preset' has no architecture to build: use load_model(model.preset) instead")
    raise FlanctlError(f"unknown model family {family!r}: use palm, cont-palm, u-palm, t5 or preset")


def abstract_param_count(arch: dict, family: str) -> int:
    """Parameters of `build_model(arch, family)`, counted from variable shapes only.

    Variables created inside a `keras.StatelessScope` are not initialised (no memory is
    allocated), so the 540B configuration counts in well under a second.
    """
    _ensure_backend()
    import keras

    from keras.src.backend.common import global_state

    # Leaving a StatelessScope normally initialises the variables created in it (540B of
    # them here); keep them abstract and drop them from Keras' pending list instead.
    pending = list(global_state.get_global_attribute("uninitialized_variables", []) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = build_model(arch, family)
            return int(sum(_num_elements(v.shape) for v in unique_variables(model.weights)))
    finally:
        global_state.set_global_attribute("uninitialized_variables", pending)


def unique_variables(variables):
    """Variables in order, each once (shared layers list theirs more than once)."""
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _num_elements(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def save_preset(model, directory, tokenizer=None) -> Path:
    """Save a task model as a keras-hub preset directory (config.json, task.json, weights).

    flanctl's own models (PaLM, packed T5) are registered Keras classes, so plain keras-hub
    reloads them with `keras_hub.models.CausalLM.from_preset(dir)` once `flanctl.models.palm`
    (or `.t5`) is imported. `flanctl.json` records the family and the tokenizer: a
    SentencePiece model file is copied to `assets/tokenizer/`; with no tokenizer given, a
    259-token vocabulary is recorded as the byte tokenizer.
    """
    import shutil

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_to_preset(str(directory))
    family = _family_of(model)
    meta: dict = {"family": family}
    vocab = getattr(getattr(model, "backbone", None), "vocabulary_size", None)
    spm_path = getattr(tokenizer, "path", None)
    if spm_path is not None and str(spm_path).endswith(".model"):
        dest = directory / "assets" / "tokenizer" / "spm.model"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(spm_path, dest)
        meta["tokenizer"] = {"kind": "sentencepiece", "file": "assets/tokenizer/spm.model"}
    elif (tokenizer is None and vocab == 259) or getattr(tokenizer, "fingerprint", "") == "byte-v1":
        meta["tokenizer"] = {"kind": "byte"}
    (directory / "flanctl.json").write_text(json.dumps(meta, indent=2) + "\n")
    return directory


def _saved_tokenizer(directory: Path):
    """The flanctl tokenizer recorded in a preset's flanctl.json, or None."""
    marker = directory / "flanctl.json"
    if not marker.is_file():
        return None
    tok = json.loads(marker.read_text()).get("tokenizer") or {}
    if tok.get("kind") == "byte":
        from flanctl.data.tokenizers import ByteTokenizer

        return ByteTokenizer()
    if tok.get("kind") == "sentencepiece":
        from flanctl.data.tokenizers import SentencePieceTokenizer

        return SentencePieceTokenizer(directory / tok["file"])
    return None


def _family_of(model) -> str:
    from flanctl.models.palm import PaLMCausalLM

    if isinstance(model, PaLMCausalLM):
        return "palm"
    from flanctl.models.t5 import T5PackedSeq2SeqLM

    if isinstance(model, T5PackedSeq2SeqLM):
        return "t5"
    return "preset"


def load_model(path_or_preset: str | os.PathLike):
    """Open a preset and return `(task model, tokenizer or None)`.

    Accepts a directory written by `save_preset`, any local keras-hub preset directory, or a
    keras-hub preset handle (which needs network access the first time). The tokenizer is the
    preset's keras-hub tokenizer when it has one, else None (flanctl's tokenizer is then
    rebuilt from the spec by the caller). flanctl's tokenizers come back from flanctl.json;
    a keras-hub preset's tokenizer is wrapped in the data room's `PresetTokenizer`.
    """
    _ensure_backend()
    import keras_hub

    # Registers flanctl's classes with Keras so their configs deserialise.
    import flanctl.models.palm  # noqa: F401
    import flanctl.models.t5  # noqa: F401

    src = str(path_or_preset)
    local = Path(src)
    if local.exists() and not (local / "config.json").is_file():
        raise FlanctlError(f"{src}: not a keras-hub preset directory (no config.json); pass a directory written by save_to_preset")
    if not local.exists() and ("/" in src or src.startswith(".")) and "://" not in src:
        raise FlanctlError(f"{src}: preset directory not found; check model.preset / --preset")
    errors = []
    for cls in (keras_hub.models.CausalLM, keras_hub.models.Seq2SeqLM):
        try:
            model = cls.from_preset(src)
            break
        except (ValueError, TypeError) as exc:
            errors.append(f"{cls.__name__}: {exc}")
    else:
        first = errors[0].splitlines()[0] if errors else "unknown error"
        raise FlanctlError(f"{src}: cannot load as a keras-hub CausalLM or Seq2SeqLM ({first})")
    tokenizer = _saved_tokenizer(local) if local.is_dir() else None
    if tokenizer is None and getattr(model, "preprocessor", None) is not None:
        from flanctl.data.tokenizers import PresetTokenizer

        # flanctl's tokenizer interface over the preset's own keras-hub tokenizer.
        tokenizer = PresetTokenizer(src)
    return model, tokenizer


def model_family(model) -> str:
    """'palm', 't5' or 'preset' for a loaded task model."""
    return _family_of(model)
