"""Model families and sizes: architecture numbers, exact parameter counts, pretraining facts.

Pure facts and arithmetic; no ML imports. The parameter formulas are written out term by term
so that they can be checked against the papers (PaLM Table 1, T5 v1.1 checkpoints) and against
the Keras models that `flanctl.models` builds from the same numbers.

Example:
    >>> arch = SIZES["palm"]["8b"]
    >>> round(param_count("palm", arch) / 1e9, 2)
    8.63
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Families whose model is a PaLM-style decoder-only transformer.
DECODER_FAMILIES = ("palm", "cont-palm", "u-palm")
#: Every family the spec accepts.
FAMILIES = ("palm", "cont-palm", "u-palm", "t5", "preset")

#: Vocabulary of the byte tokenizer (0 pad, 1 eos, 2 bos, 3 + byte); see flanctl.data.
BYTE_VOCAB_SIZE = 259

ARCH_KEYS = (
    "num_layers",
    "hidden_dim",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "ffn_dim",
    "vocab_size",
    "max_sequence_length",
)


def _palm(layers: int, d: int, heads: int, head_dim: int, vocab: int = 256_000, ffn: int | None = None) -> dict[str, int]:
    """PaLM block: parallel attention + SwiGLU (ffn 4d), multi-query attention (1 kv head)."""
    return {
        "num_layers": layers,
        "hidden_dim": d,
        "num_heads": heads,
        "num_kv_heads": 1,
        "head_dim": head_dim,
        "ffn_dim": ffn if ffn is not None else 4 * d,
        "vocab_size": vocab,
        # Flan packs 2048 input + 512 target tokens into one decoder sequence; rotary
        # positions need no table, so this only bounds buffers (masks, caches).
        "max_sequence_length": 2560,
    }


def _t5(layers: int, d: int, ffn: int, heads: int, head_dim: int = 64, vocab: int = 32_128) -> dict[str, int]:
    """T5 v1.1 stack: gated-GELU feed-forward, untied embeddings, relative position bias."""
    return {
        "num_layers": layers,
        "encoder_layers": layers,
        "decoder_layers": layers,
        "hidden_dim": d,
        "num_heads": heads,
        "num_kv_heads": heads,
        "head_dim": head_dim,
        "ffn_dim": ffn,
        "vocab_size": vocab,
        # Flan-T5 finetunes with 2048 input tokens; relative position buckets need no table.
        "max_sequence_length": 2048,
    }


# Tiny sizes for tests and the quickstart: a few layers, small width, trained in seconds on CPU.
_PALM_TINY = {
    "tiny": _palm(2, 64, 4, 16, vocab=32_000),
    "mini": _palm(4, 128, 4, 32, vocab=32_000),
    "small": _palm(8, 256, 8, 32, vocab=32_000),
}

#: SIZES[family][size] -> architecture numbers (PaLM Table 1; T5 v1.1 configs).
SIZES: dict[str, dict[str, dict[str, int]]] = {
    "palm": {
        **_PALM_TINY,
        "8b": _palm(32, 4096, 16, 256),
        "62b": _palm(64, 8192, 32, 256),
        "540b": _palm(118, 18432, 48, 256),
    },
    # cont-PaLM: PaLM 62B trained on 1.3T tokens (same architecture).
    "cont-palm": {**_PALM_TINY, "62b": _palm(64, 8192, 32, 256)},
    # U-PaLM: PaLM 540B with UL2R continued training (same architecture).
    "u-palm": {**_PALM_TINY, "540b": _palm(118, 18432, 48, 256)},
    "t5": {
        "tiny": _t5(2, 64, 128, 4, head_dim=16),
        "small": _t5(8, 512, 1024, 6),
        "base": _t5(12, 768, 2048, 12),
        "large": _t5(24, 1024, 2816, 16),
        "xl": _t5(24, 2048, 5120, 32),
        "xxl": _t5(24, 4096, 10240, 64),
    },
    # Presets carry their own architecture (read from the preset's config.json by the plan).
    "preset": {},
}

#: Nominal size (the paper's "Params" column) used for the paper's Table 2 FLOP counts.
NOMINAL_PARAMS: dict[tuple[str, str], float] = {
    ("palm", "8b"): 8e9,
    ("palm", "62b"): 62e9,
    ("palm", "540b"): 540e9,
    ("cont-palm", "62b"): 62e9,
    ("u-palm", "540b"): 540e9,
    ("t5", "small"): 80e6,
    ("t5", "base"): 250e6,
    ("t5", "large"): 780e6,
    ("t5", "xl"): 3e9,
    ("t5", "xxl"): 11e9,
}

#: Pretraining facts per (family, size): tokens seen and Table 2's pretraining FLOPs.
#: PaLM: 780B tokens (Chowdhery et al. 2022); cont-PaLM 62B: 1.3T tokens; U-PaLM adds ~0.16%
#: compute to PaLM 540B. T5 v1.1: the table's values.
PRETRAIN: dict[tuple[str, str], dict[str, Any]] = {
    ("palm", "8b"): {"tokens": 780e9, "flops": 3.7e22},
    ("palm", "62b"): {"tokens": 780e9, "flops": 2.9e23},
    ("palm", "540b"): {"tokens": 780e9, "flops": 2.5e24},
    ("cont-palm", "62b"): {"tokens": 1.3e12, "flops": 4.8e23},
    ("u-palm", "540b"): {"tokens": 780e9, "flops": 2.5e24},
    ("t5", "small"): {"tokens": None, "flops": 1.8e20},
    ("t5", "base"): {"tokens": None, "flops": 6.6e20},
    ("t5", "large"): {"tokens": None, "flops": 2.3e21},
    ("t5", "xl"): {"tokens": None, "flops": 9.0e21},
    ("t5", "xxl"): {"tokens": None, "flops": 3.3e22},
}

#: The paper's Table 2 rows as printed: (pretrain FLOPs, finetune FLOPs, % finetune compute).
PAPER_TABLE2: dict[tuple[str, str], tuple[float, float, float]] = {
    ("t5", "small"): (1.8e20, 2.9e18, 1.6),
    ("t5", "base"): (6.6e20, 9.1e18, 1.4),
    ("t5", "large"): (2.3e21, 2.4e19, 1.1),
    ("t5", "xl"): (9.0e21, 5.6e19, 0.6),
    ("t5", "xxl"): (3.3e22, 7.6e19, 0.2),
    ("palm", "8b"): (3.7e22, 1.6e20, 0.4),
    ("palm", "62b"): (2.9e23, 1.2e21, 0.4),
    ("palm", "540b"): (2.5e24, 5.6e21, 0.2),
    ("cont-palm", "62b"): (4.8e23, 1.8e21, 0.4),
    # Printed pretrain 2.5E+23 with finetune 5.6E+21 and 0.2%: the three do not agree with each
    # other (5.6e21 / 2.5e23 = 2.2%), and 30k steps at batch 32 x 2560 tokens gives 8.0e21.
    ("u-palm", "540b"): (2.5e23, 5.6e21, 0.2),
}

#: Plan note for rows of Table 2 that the plan does not reproduce, keyed like PAPER_TABLE2.
TABLE2_NOTES: dict[tuple[str, str], str] = {
    ("u-palm", "540b"): (
        "paper Table 2's Flan-U-PaLM row is inconsistent (pretrain 2.5E+23, finetune 5.6E+21, "
        "0.2% do not agree, and 30k steps x 32 x 2560 tokens gives ~8.0E+21): the plan computes "
        "its own numbers instead of copying the row"
    ),
}


@dataclass(frozen=True)
class FamilyFacts:
    """What the plan needs to know of a model family, without building it.

    `encoder_decoder` is None where the checkpoint decides (a keras-hub preset is a CausalLM
    or a Seq2SeqLM: the plan reads its folder). `packing_note` says why a family cannot pack
    (None: it masks attention by segment, so packed examples stay apart). `attention_modes`
    are the `model.attention` values its models take: causal everywhere, prefix (a prefix LM,
    bidirectional on each example's inputs) for the PaLM-architecture families.
    """

    name: str
    encoder_decoder: bool | None
    packing_note: str | None = None
    #: True when the catalog has a parameter formula and sizes (the preset reports its own).
    has_formula: bool = True
    attention_modes: tuple[str, ...] = ("causal",)

    @property
    def packs(self) -> bool:
        return self.packing_note is None


_PRESET_NO_PACKING = (
    "keras-hub preset models take only a padding mask (no segment ids), so packed examples "
    "would attend to each other; the data pipeline emits one example per row"
)

#: The families the spec accepts, each with its facts (the only family-name table of the plan side).
FAMILY_FACTS: dict[str, FamilyFacts] = {
    **{name: FamilyFacts(name, encoder_decoder=False, attention_modes=("causal", "prefix")) for name in DECODER_FAMILIES},
    "t5": FamilyFacts("t5", encoder_decoder=True),
    "preset": FamilyFacts("preset", encoder_decoder=None, packing_note=_PRESET_NO_PACKING, has_formula=False),
}


def family_facts(family: str) -> FamilyFacts:
    """The facts of `family`; a clear ValueError for an unknown name."""
    try:
        return FAMILY_FACTS[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}") from None


def is_decoder_only(family: str) -> bool:
    """True for the PaLM-style families (one stack, next-token loss over packed sequences)."""
    return family in DECODER_FAMILIES


def supports_packing(family: str) -> bool:
    """True when the family's model masks attention by segment (packed rows stay separate)."""
    return family in FAMILY_FACTS and FAMILY_FACTS[family].packs


def packing_note(family: str) -> str | None:
    """Why packing is off for `family` (None when it is supported)."""
    facts = FAMILY_FACTS.get(family)
    return facts.packing_note if facts else None


def resolve_architecture(model_spec: Any) -> dict[str, int]:
    """Catalog size merged with the spec's explicit `architecture` overrides.

    `model_spec` is a `flanctl.spec.models.ModelSpec` (or a dict of the same shape). The
    vocabulary follows the tokenizer when the tokenizer kind is `byte` and no explicit
    `architecture.vocab_size` is given: then `vocab_size` is 259 (the byte tokenizer's),
    whatever the catalog size says. Raises `ValueError` naming the missing field when neither
    the size nor the overrides give it.
    """
    spec = _as_dict(model_spec)
    family = spec.get("family") or "palm"
    size = spec.get("size")
    overrides = {k: v for k, v in (_as_dict(spec.get("architecture")) or {}).items() if v is not None}

    if family not in SIZES:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    base: dict[str, int] = {}
    if size is not None:
        if size not in SIZES[family]:
            known = ", ".join(SIZES[family]) or "none (give model.architecture)"
            raise ValueError(f"model.size {size!r} is not a {family} size; known: {known}")
        base = dict(SIZES[family][size])
    arch = {**base, **overrides}

    tok = _as_dict(spec.get("tokenizer")) or {}
    if tok.get("kind", "byte") == "byte" and "vocab_size" not in overrides:
        arch["vocab_size"] = BYTE_VOCAB_SIZE

    if family == "t5":
        # num_layers sets both stacks unless the catalog gave them and num_layers was not overridden.
        if "num_layers" in overrides or "encoder_layers" not in arch:
            if "num_layers" in arch:
                arch["encoder_layers"] = arch["decoder_layers"] = arch["num_layers"]
    if "num_kv_heads" not in arch and "num_heads" in arch:
        # PaLM families use multi-query attention; T5 has one kv head per query head.
        arch["num_kv_heads"] = 1 if is_decoder_only(family) else arch["num_heads"]
    if "head_dim" not in arch and "hidden_dim" in arch and "num_heads" in arch:
        arch["head_dim"] = arch["hidden_dim"] // arch["num_heads"]
    if "max_sequence_length" not in arch:
        arch["max_sequence_length"] = 2560 if is_decoder_only(family) else 2048

    for key in ARCH_KEYS:
        if key not in arch:
            hint = f"set model.size (one of: {', '.join(SIZES[family])})" if SIZES[family] else "read it from the preset"
            raise ValueError(f"model.architecture.{key} is missing: {hint} or give model.architecture.{key}")
    return arch


def param_count(family: str, arch: dict[str, int], include_norms: bool = True) -> int:
    """Exact trainable parameter count of the model built from `arch`.

    `include_norms=False` leaves out the layer-norm scales (palm only): that is how PaLM's
    Table 1 counts (8.63B / 62.50B / 540.35B round correctly only without them; with them the
    540B model has 540,356,474,880 = 540.36B). The default counts what Keras builds.

    PaLM (decoder-only, no biases, input/output embedding shared):
        vocab*d                                   shared embedding
      + L * ( d*H*h + 2*d*K*h + H*h*d             q, k and v (K kv heads), attention output
            + 3*d*f                               SwiGLU: gate, up and down projections
            + d )                                 one layer-norm scale (parallel block)
      + d                                         final layer-norm scale
    gives 8.63B / 62.50B / 540.35B for the 8b / 62b / 540b sizes (PaLM Table 1) without the
    (L + 1) * d norm scales.

    T5 v1.1 (gated-GELU, untied embeddings, no biases, relative position bias in the first
    layer of each stack, 32 buckets):
        2*vocab*d                                 shared input embedding + separate LM head
      + Le * (4*d*H*h + 3*d*f + 2*d) + d + 32*H   encoder: attention, ffn, 2 norms; final norm; rel. bias
      + Ld * (8*d*H*h + 3*d*f + 3*d) + d + 32*H   decoder: self + cross attention, ffn, 3 norms
    gives 76,961,152 / 247,577,856 / 783,150,080 / 2,849,757,184 / 11,135,332,352.
    """
    d, H, h = arch["hidden_dim"], arch["num_heads"], arch["head_dim"]
    f, V = arch["ffn_dim"], arch["vocab_size"]
    if is_decoder_only(family):
        K, L = arch["num_kv_heads"], arch["num_layers"]
        norm = 1 if include_norms else 0
        per_layer = d * H * h + 2 * d * K * h + H * h * d + 3 * d * f + norm * d
        return V * d + L * per_layer + norm * d
    if family == "t5":
        parts = t5_param_split(arch)
        return parts["encoder"] + parts["decoder"]
    raise ValueError(f"no parameter formula for family {family!r} (presets report their own count)")


def t5_param_split(arch: dict[str, int]) -> dict[str, int]:
    """T5 parameters split into the encoder side and the decoder side.

    The shared token embedding is counted with the encoder, the LM head with the decoder:
    the plan counts encoder-decoder FLOPs as 6*N_enc*input_tokens + 6*N_dec*target_tokens.
    """
    d, H, h = arch["hidden_dim"], arch["num_heads"], arch["head_dim"]
    f, V = arch["ffn_dim"], arch["vocab_size"]
    Le = arch.get("encoder_layers", arch["num_layers"])
    Ld = arch.get("decoder_layers", arch["num_layers"])
    rel_bias = 32 * H
    encoder = V * d + Le * (4 * d * H * h + 3 * d * f + 2 * d) + d + rel_bias
    decoder = V * d + Ld * (8 * d * H * h + 3 * d * f + 3 * d) + d + rel_bias
    return {"encoder": encoder, "decoder": decoder}


def _as_dict(obj: Any) -> dict | None:
    """A pydantic model or a dict as a plain dict (None stays None)."""
    if obj is None:
        return None
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    return dict(obj)
