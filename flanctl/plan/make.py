"""Spec -> Plan: `make_plan` resolves a loaded spec into the typed plan document.

A pure function of the spec (plus the run directory's state for the diff and the host's RAM
for CPU plans); it imports no ML framework. What later rooms need is decided here, once:
the model's kind and packing, absolute paths, the eval data folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from flanctl import __version__
from flanctl.catalog.models import BYTE_VOCAB_SIZE, DECODER_FAMILIES, NOMINAL_PARAMS, family_facts, param_count, resolve_architecture
from flanctl.catalog.objectives import sentinel_room_error, sentinels_needed
from flanctl.errors import FlanctlError, SpecError
from flanctl.plan.compute import compute_section
from flanctl.plan.diff import generated_data, run_diff
from flanctl.plan.document import Plan, ResolvedModel, RunInfo
from flanctl.plan.evals import eval_section
from flanctl.plan.inputs import local_inputs
from flanctl.plan.memory import memory_section
from flanctl.plan.mixture import mixture_section
from flanctl.plan.presets import PresetInfo, hf_cache_folder, read_flanctl_export, read_preset, spec_tokenizer
from flanctl.runs.run_dir import RunDir


def run_name(loaded: Any) -> str:
    """`spec.name`, or the spec file's stem made a valid name (as the spec loader does)."""
    from flanctl.spec.loader import default_name

    return loaded.spec.name or default_name(Path(loaded.path))


def _absolute(path: str | None, base_dir: Path) -> str | None:
    """A local path made absolute (relative to the spec's folder); a hub handle as written."""
    if not path:
        return None
    local = Path(path) if Path(path).is_absolute() else base_dir / path
    looks_local = "://" not in path and ("/" in path or path.startswith(".") or bool(Path(path).suffix))
    if local.exists() or looks_local:
        return str(local.resolve())
    return path


def model_kind(spec: Any, base_dir: str | Path) -> tuple[bool, bool]:
    """(encoder_decoder, packed) of the spec's model: the family's facts, or for a keras-hub
    preset its folder's task class. The data room asks this when it runs without a plan."""
    facts = family_facts(spec.model.family)
    if facts.encoder_decoder is None:
        encoder_decoder = read_preset(spec.model.preset or spec.model.checkpoint, Path(base_dir)).encoder_decoder
    else:
        encoder_decoder = facts.encoder_decoder
    return encoder_decoder, bool(spec.mixture.packing) and facts.packs


#: Hugging Face model_types each formula family loads from a folder (flanctl.models.t5.hf).
HF_MODEL_TYPES = {"t5": ("t5", "mt5")}


def _hf_checkpoint(model, base_dir: Path) -> PresetInfo | None:
    """The checkpoint (or preset) folder when it is a Hugging Face folder, else None. A folder
    that will not load, or whose model_type the family does not load, is a spec error (exit 2)."""
    handle = model.checkpoint or model.preset
    if not handle:
        return None
    info = read_preset(handle, base_dir)
    if info.hf_model_type is None:
        return None
    field = "model.checkpoint" if model.checkpoint else "model.preset"
    if info.problem:
        raise SpecError(f"{field}: {info.problem}")
    family = model.family
    types = HF_MODEL_TYPES.get(family)
    owner = next((f for f, t in HF_MODEL_TYPES.items() if info.hf_model_type in t), None)
    has_formula = family_facts(family).has_formula
    if not has_formula and owner is not None:
        raise SpecError(f"{field}: {info.folder} is a Hugging Face {info.hf_model_type} folder, which keras-hub does not convert: "
                        f"use model.family: {owner} with model.checkpoint: {handle}")
    if types is not None and info.hf_model_type not in types:
        raise SpecError(f"{field}: {info.folder} is a Hugging Face {info.hf_model_type!r} folder; family {family} loads "
                        f"model_type {', '.join(types)}")
    if types is None and has_formula:
        raise SpecError(f"{field}: family {family} does not load Hugging Face folders; use family: preset (keras-hub converts it)")
    if model.tokenizer.kind == "byte":
        spm = info.folder / "spiece.model" if info.folder else None
        hint = f"model.tokenizer: {{kind: sentencepiece, path: {spm}}}" if spm and spm.is_file() else "model.tokenizer: {kind: preset}"
        raise SpecError(f"model.tokenizer: the byte tokenizer would feed byte ids into {info.folder}'s own vocabulary; set {hint}")
    return info


def lora_trainable_params(spec: Any, arch: dict | None, encoder_decoder: bool) -> int | None:
    """Parameters `train.lora` trains, as Keras' LoRA layers shape them (A: the kernel's shape
    but its last axis -> rank; B: rank -> the last axis), in every attention block. T5's
    projections are Dense [d, heads*head_dim]: rank * (d + heads*head_dim), in the encoder self,
    decoder self and cross attention. Decoder-only projections are EinsumDense
    [d, heads, head_dim] (keys and values over the kv heads): rank * (d*heads + head_dim).
    None without LoRA or without the numbers."""
    lora = spec.train.lora
    if lora is None or not arch:
        return None
    d, heads, h = arch.get("hidden_dim"), arch.get("num_heads"), arch.get("head_dim")
    kv = arch.get("num_kv_heads") or heads
    if not (d and heads and h):
        return None
    if encoder_decoder:
        if not family_facts(spec.model.family).has_formula:
            return None  # keras-hub seq2seq presets name their projections their own way
        blocks = arch.get("encoder_layers", arch["num_layers"]) + 2 * arch.get("decoder_layers", arch["num_layers"])
        width = {"query": heads * h, "key": heads * h, "value": heads * h}
    else:
        blocks = arch["num_layers"]
        per = {"query": d * heads + h, "key": d * kv + h, "value": d * kv + h}
        return blocks * sum(lora.rank * per[t] for t in dict.fromkeys(lora.targets))
    return blocks * sum(lora.rank * (d + width[t]) for t in dict.fromkeys(lora.targets))


def _local_checkpoint(model: Any) -> Any:
    """`model` with an `hf://org/name` checkpoint of a formula family (t5) replaced by its
    folder in the local Hugging Face cache; keras-hub resolves a preset's `hf://` itself."""
    if not (model.checkpoint or "").startswith("hf://") or not family_facts(model.family).has_formula:
        return model
    folder = hf_cache_folder(model.checkpoint)
    if folder is None:
        repo = model.checkpoint[len("hf://"):].partition("@")[0]
        raise SpecError(f"model.checkpoint: {model.checkpoint} is not in the local Hugging Face cache; "
                        f"download it first (`hf download {repo}`) or give its folder")
    return model.model_copy(update={"checkpoint": str(folder)})


def _from_flanctl_export(model: Any, base_dir: Path, notes: list[str]) -> Any:
    """`model` with what a flanctl export checkpoint records filled in: the architecture numbers
    the spec leaves out (from its config.json) and, when the spec names no tokenizer, the
    export's own SentencePiece model, so `model: {family: palm, checkpoint: DIR}` is enough to
    finetune a base that `flanctl apply` exported."""
    export = read_flanctl_export(model.checkpoint, base_dir) if model.checkpoint else None
    if export is None or not family_facts(model.family).has_formula:
        return model
    if export.family != model.family and {export.family, model.family} <= set(DECODER_FAMILIES):
        # One architecture, three pretraining histories: continuing a palm base is how cont-PaLM and U-PaLM are made.
        notes.append(f"model: the checkpoint is a {export.family} model ({export.folder}/flanctl.json), continued as {model.family}")
    elif export.family != model.family:
        raise SpecError(f"model.checkpoint: {export.folder} holds a {export.family} model (flanctl.json); "
                        f"set model.family: {export.family}")
    given = {k: v for k, v in model.architecture.model_dump().items() if v is not None}
    clash = {k: v for k, v in given.items() if export.architecture.get(k) not in (None, v)}
    own_vocab = export.architecture.get("vocab_size")
    if "vocab_size" in clash and not family_facts(model.family).encoder_decoder and clash["vocab_size"] > own_vocab:
        # A palm checkpoint's tied embedding grows on load (ModelFamily.with_vocabulary).
        del clash["vocab_size"]
        notes.append(f"model.architecture.vocab_size {given['vocab_size']}: the checkpoint's embedding grows from "
                     f"{own_vocab} to {given['vocab_size']} rows on load ({given['vocab_size'] - own_vocab} new ids, "
                     "drawn like its other rows; the old ids keep their weights)")
    if clash:
        k = next(iter(clash))
        grow = " (a vocabulary can grow on load only in the palm families, never shrink)" if k == "vocab_size" else ""
        raise SpecError(f"model.architecture.{k}: {clash[k]} contradicts the checkpoint's {export.architecture[k]} "
                        f"({export.folder}/config.json){grow}; remove it")
    if export.attention != model.attention:
        notes.append(f"model.attention {model.attention}: the checkpoint attends as {export.attention} "
                     f"({export.folder}/config.json); it is trained and evaluated as {model.attention}, same weights")
    update: dict[str, Any] = {}
    if model.size is None:
        update["architecture"] = model.architecture.model_copy(update={**export.architecture, **given})
    tokenizer = spec_tokenizer(model, base_dir)
    if tokenizer is not model.tokenizer:
        update["tokenizer"] = tokenizer
        notes.append(f"model: the checkpoint's own tokenizer ({tokenizer.path})")
    return model.model_copy(update=update) if update else model


def resolve_model(spec: Any, base_dir: Path, notes: list[str]) -> ResolvedModel:
    """The model section of the plan: family facts, architecture, counts, kind, paths."""
    model = _from_flanctl_export(_local_checkpoint(spec.model), base_dir, notes)
    family, size = model.family, model.size
    facts = family_facts(family)
    hf = _hf_checkpoint(model, base_dir)
    if facts.has_formula and hf is not None:
        # The folder's config.json is the architecture; the safetensors headers give the count.
        if hf.architecture is None:
            raise SpecError(f"model.checkpoint: {hf.folder}/config.json lacks architecture numbers")
        given = {k: v for k, v in model.architecture.model_dump().items() if v is not None}
        clash = {k: v for k, v in given.items() if hf.architecture.get(k) not in (None, v)}
        if clash:
            k = next(iter(clash))
            raise SpecError(f"model.architecture.{k}: {clash[k]} contradicts the checkpoint's {hf.architecture[k]}; remove it")
        arch = dict(hf.architecture)
        params = params_without_norms = hf.params
        encoder_decoder = bool(facts.encoder_decoder)
        notes.append(f"model: Hugging Face {hf.hf_model_type} checkpoint {hf.folder.name}: architecture from config.json, "
                     f"{hf.params:,} parameters from the safetensors headers")
    elif facts.has_formula:
        try:
            arch = resolve_architecture(model)
        except ValueError as exc:
            folder = _absolute(model.checkpoint, base_dir)
            if folder and "://" not in folder and not Path(folder).exists():
                # its flanctl.json would have given the architecture: say what is really missing
                raise SpecError(f"model.checkpoint: no such folder {folder}; make it first (the run that exports it) "
                                "or fix the path (relative paths are from the spec's folder)") from None
            raise FlanctlError(f"{base_dir}: {exc}") from None
        params = param_count(family, arch)
        params_without_norms = param_count(family, arch, include_norms=False)
        encoder_decoder = bool(facts.encoder_decoder)
    else:
        preset = hf or read_preset(model.preset or model.checkpoint, base_dir)
        own_vocab = (preset.architecture or {}).get("vocab_size")
        if model.tokenizer.kind == "byte" and own_vocab != BYTE_VOCAB_SIZE:
            # Byte ids (3 + byte value) mean nothing in a preset's own vocabulary.
            size = f"{own_vocab:,}-token" if own_vocab else "own"
            raise SpecError(f"model.tokenizer: the byte tokenizer would feed byte ids into the preset's {size} vocabulary; "
                            "set model.tokenizer: {kind: preset} (the preset's own tokenizer)")
        notes.extend(preset.notes)
        arch, params, params_without_norms = preset.architecture, preset.params, preset.params
        encoder_decoder = preset.encoder_decoder
    paper_sizes = {s for (f, s) in NOMINAL_PARAMS if f == family}
    if arch and model.tokenizer.kind == "byte" and model.architecture.vocab_size is None and size in paper_sizes:
        notes.append(f"model: byte tokenizer, so vocab_size is 259 and the {size} count differs from the paper's; set model.tokenizer.kind: sentencepiece for the paper's vocabulary")
    if arch and hf is None and model.tokenizer.kind == "sentencepiece" and model.tokenizer.vocab_size > arch["vocab_size"]:
        notes.append(f"model: tokenizer.vocab_size {model.tokenizer.vocab_size} exceeds the model's vocab_size {arch['vocab_size']}")
    if arch and not encoder_decoder and spec.mixture.inputs_length + spec.mixture.targets_length > arch["max_sequence_length"]:
        notes.append("model: inputs_length + targets_length exceeds max_sequence_length; packed sequences will be cut")
    trainable = lora_trainable_params(spec, arch, encoder_decoder)
    if trainable is not None and params:
        lora = spec.train.lora
        notes.append(f"model: LoRA rank {lora.rank} on {', '.join(lora.targets)}: {trainable:,} trainable parameters "
                     f"({100 * trainable / params:.2f}% of {params:,}); gradients and optimizer state are counted for those")
    tokenizer = model.tokenizer
    if tokenizer.path:
        tokenizer = tokenizer.model_copy(update={"path": _absolute(tokenizer.path, base_dir)})
    return ResolvedModel(
        family=family,
        size=size,
        encoder_decoder=encoder_decoder,
        packed=bool(spec.mixture.packing) and facts.packs,
        params=params,
        params_without_norms=params_without_norms,
        params_nominal=NOMINAL_PARAMS.get((family, size or "")),
        trainable_params=trainable if trainable is not None else params,
        architecture=arch,
        checkpoint=_absolute(model.checkpoint, base_dir),
        preset=_absolute(model.preset, base_dir) if not facts.has_formula else None,
        tokenizer=tokenizer,
        precision=model.precision,
    )


def _check_sentinel_room(spec: Any, model: ResolvedModel) -> None:
    """span_corruption / ul2 against the resolved vocabulary (a checkpoint's, possibly grown):
    the spec check cannot see a checkpoint's numbers, and apply would refuse the same rows."""
    tok = {"byte": BYTE_VOCAB_SIZE, "sentencepiece": model.tokenizer.vocab_size}.get(model.tokenizer.kind)
    vocab = (model.architecture or {}).get("vocab_size")
    if tok is None or not vocab:
        return
    need = sentinels_needed(spec.train.objective, model.encoder_decoder, spec.mixture.inputs_length, spec.mixture.targets_length)
    error = sentinel_room_error(spec.train.objective, need, int(vocab), int(tok))
    if error:
        raise SpecError(error)


def make_plan(
    loaded: Any,
    runs_root: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] | None = None,
    realize: Callable[[Any, Path], dict | None] | None = None,
) -> Plan:
    """Resolve a `LoadedSpec` into the `Plan` (hashed).

    `runs_root` is where run directories live (default `./runs`); `overrides` are the `--set`
    strings the spec was loaded with (kept so `apply` can reload and compare the spec).
    `realize(spec, base_dir) -> dict | None` fills `mixture.realized` with the counts of the
    data actually on disk (the CLI passes `flanctl.data.realize_mixture`; it is injected so that
    this room never imports the data room, and returns None when a source needs the network).
    """
    spec = loaded.spec
    spec_path = Path(loaded.path).resolve()
    base_dir = spec_path.parent
    notes: list[str] = list(getattr(loaded, "notes", []) or [])
    if overrides is None:
        overrides = list(getattr(loaded, "overrides", []) or [])

    resolved = resolve_model(spec, base_dir, notes)
    _check_sentinel_room(spec, resolved)
    runs_root = Path(runs_root) if runs_root is not None else Path.cwd() / "runs"
    run = RunDir(runs_root.resolve() / run_name(loaded))
    spec_dict = spec.model_dump(mode="json")
    dist = spec.distribution
    mixture = mixture_section(spec, resolved.packed, notes)
    if realize is not None:
        try:
            mixture["realized"] = realize(spec, base_dir)
            # e.g. "collection niv2: 12,000 rows and no task column" (the data room's own notes)
            notes.extend(n for n in (mixture["realized"] or {}).get("notes", []) if n.startswith("collection "))
        except FlanctlError as exc:
            notes.append(f"mixture: realized counts unavailable ({exc})")
    evals = eval_section(spec, notes)
    if spec.eval.data_dir:
        evals["data_dir"] = str((base_dir / spec.eval.data_dir).resolve())  # always a local folder
    arch, params = resolved.architecture, resolved.params
    plan = Plan(
        flanctl_version=__version__,
        spec_path=str(spec_path),
        spec_hash=loaded.text_hash,
        spec_overrides=list(overrides),
        spec=spec,
        model=resolved,
        compute=compute_section(spec, resolved.family, resolved.size, resolved.encoder_decoder, arch or {}, params, notes,
                                trainable=resolved.trainable_params) if params else None,
        memory=memory_section(spec, resolved.encoder_decoder, arch, params, notes, trainable=resolved.trainable_params),
        distribution={
            "backend": dist.backend,
            "mesh": {"data": dist.mesh.data, "model": dist.mesh.model},
            "devices": dist.mesh.data * dist.mesh.model,
            "processes": dist.processes.model_dump(mode="json"),
            "device": dist.device,
            "utilization": dist.utilization,
        },
        mixture=mixture,
        eval=evals,
        inputs=local_inputs(spec, base_dir),
        run=RunInfo(name=run.name, dir=str(run.root), diff=run_diff(run, spec_dict, spec.train.steps, generated_data(mixture))),
        notes=notes,
    )
    return plan.with_hash()
