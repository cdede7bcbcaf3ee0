"""Each model family answers for itself behind one protocol, and one generation protocol.

The registry maps names to families (palm, cont-palm, u-palm, t5, and keras-hub CausalLM /
Seq2SeqLM presets); each family answers kind, build, layout, trainable, engine, framing and
export; nothing in flanctl/models compares family names outside the registry; the engines
share one protocol, without `hasattr` probing or import cycles.
"""

from __future__ import annotations

import ast
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import keras
import keras_hub

from flanctl.catalog.models import SIZES
from flanctl.data.tokenizers import ByteTokenizer
from flanctl.errors import FlanctlError
from flanctl.models import family_of_model, get_family
from flanctl.models.families import (
    KerasHubCausalLMFamily,
    KerasHubSeq2SeqFamily,
    ModelFamily,
    PalmFamily,
    T5Family,
    all_families,
)
from flanctl.models.families.palm import PALM_RULES
from flanctl.models.families.t5 import T5_RULES
from flanctl.models.generation.engine import GenerationEngine
from flanctl.models.generation.token_engine import TokenEngine

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "flanctl" / "models"
TOK = ByteTokenizer()
PALM_TINY = dict(SIZES["palm"]["tiny"], vocab_size=259)
T5_TINY = dict(SIZES["t5"]["tiny"], vocab_size=259)


# -- fixtures: one tiny model per family -------------------------------------------------
@pytest.fixture(scope="module")
def palm_model():
    keras.utils.set_random_seed(0)
    return get_family("palm").build(PALM_TINY)


@pytest.fixture(scope="module")
def t5_model():
    keras.utils.set_random_seed(0)
    return get_family("t5").build(T5_TINY)


@pytest.fixture(scope="module")
def gpt2_task():
    """A keras-hub GPT2CausalLM with a 30-symbol byte-level BPE vocabulary."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|endoftext|>": 0, "Ġ": 1, **{c: i + 2 for i, c in enumerate(letters)}, "Ġa": 28, "Ġb": 29}
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=["Ġ a", "Ġ b"])
    pre = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer=tokenizer, sequence_length=32)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(vocab), num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=64,
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=pre)


@pytest.fixture(scope="module")
def t5_task():
    """A keras-hub T5Seq2SeqLM with a small SentencePiece vocabulary trained here."""
    import sentencepiece as spm

    proto = io.BytesIO()
    corpus = ["the quick brown fox jumps over the lazy dog", "Question: what is 2 + 3? Answer: 5", "abcdefghijklmnopqrstuvwxyz"]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus * 10), model_writer=proto, vocab_size=60, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, hard_vocab_limit=False, minloglevel=2,
    )
    tokenizer = keras_hub.models.T5Tokenizer(proto=proto.getvalue())
    pre = keras_hub.models.T5Seq2SeqLMPreprocessor(tokenizer=tokenizer, encoder_sequence_length=32, decoder_sequence_length=16)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
        key_value_dim=8, activation="gelu", use_gated_activation=True, tie_embedding_weights=False,
    )
    return keras_hub.models.T5Seq2SeqLM(backbone=backbone, preprocessor=pre)


# -- the registry ----------------------------------------------------------------------
def test_registry_maps_every_name_and_kind_to_one_family():
    for name in ("palm", "cont-palm", "u-palm"):
        family = get_family(name)
        assert isinstance(family, PalmFamily) and family.name == name and not family.encoder_decoder
    assert isinstance(get_family("t5"), T5Family) and get_family("t5").encoder_decoder
    assert isinstance(get_family("preset", encoder_decoder=False), KerasHubCausalLMFamily)
    assert isinstance(get_family("preset", encoder_decoder=True), KerasHubSeq2SeqFamily)
    assert get_family("preset").encoder_decoder is False  # keras-hub's default task: CausalLM
    assert get_family("t5", encoder_decoder=True) is get_family("t5")
    family = get_family("palm")
    assert get_family(family) is family and get_family("palm") == PalmFamily("palm") != PalmFamily("u-palm")
    with pytest.raises(FlanctlError, match="unknown model family 'gpt'"):
        get_family("gpt")
    with pytest.raises(FlanctlError, match="re-run `flanctl plan`"):
        get_family("t5", encoder_decoder=False)
    assert {f.name for f in all_families()} == {"palm", "cont-palm", "u-palm", "t5", "preset"}
    assert all(isinstance(f, ModelFamily) for f in all_families())


def test_importing_the_registry_does_not_import_keras():
    code = (
        "import sys\n"
        "import flanctl.models, flanctl.models.families, flanctl.models.layouts, flanctl.models.generation\n"
        "from flanctl.models import get_family\n"
        "from flanctl.models.layouts import layout_rules\n"
        "assert layout_rules('palm') and get_family('preset', True).encoder_decoder\n"
        "assert get_family('t5').frame_prompt([5], type('T', (), {'eos_id': 1})()) == [5, 1]\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'keras_hub', 'jax', 'tensorflow', 'torch')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


# -- kind, build, layout ---------------------------------------------------------------
def test_each_family_answers_its_kind():
    assert get_family("palm").packs and get_family("t5").packs and get_family("palm").packing_note is None
    for preset in (get_family("preset", encoder_decoder=False), get_family("preset", encoder_decoder=True)):
        assert not preset.packs and "padding mask" in preset.packing_note


def test_palm_and_t5_build_their_own_models(palm_model, t5_model):
    from flanctl.models.palm import PaLMCausalLM
    from flanctl.models.t5 import T5PackedSeq2SeqLM

    assert isinstance(palm_model, PaLMCausalLM) and get_family("palm").owns(palm_model)
    assert isinstance(t5_model, T5PackedSeq2SeqLM) and get_family("t5").owns(t5_model)
    assert family_of_model(palm_model) is get_family("palm") and family_of_model(t5_model) is get_family("t5")
    assert get_family("u-palm").abstract_param_count(PALM_TINY) == palm_model.count_params()
    with pytest.raises(FlanctlError, match="lacks vocab_size"):
        get_family("cont-palm").build({"num_layers": 2, "hidden_dim": 8, "num_heads": 2})
    with pytest.raises(FlanctlError, match="lacks ffn_dim"):
        get_family("t5").build({k: v for k, v in T5_TINY.items() if k != "ffn_dim"})
    for encoder_decoder in (False, True):
        with pytest.raises(FlanctlError, match="load_model"):
            get_family("preset", encoder_decoder).build(PALM_TINY)


def test_layout_rules_and_map_per_family():
    assert get_family("palm").layout_rules() is PALM_RULES and get_family("u-palm").layout_rules() is PALM_RULES
    assert get_family("t5").layout_rules() is T5_RULES
    for encoder_decoder in (False, True):
        with pytest.raises(FlanctlError, match="mesh.model: 1"):
            get_family("preset", encoder_decoder).layout_rules()
    mesh = keras.distribution.DeviceMesh((1, 1), ("data", "model"), devices=keras.distribution.list_devices()[:1])
    lm = get_family("t5").layout_map(mesh)
    assert set(lm.keys()) == {p for p, _ in T5_RULES}


# -- trainable, engine, framing, export ------------------------------------------------
def test_trainable_is_the_batch_adapter(palm_model, gpt2_task, t5_task):
    from flanctl.models.preset_adapter import PresetCausalLMAdapter, PresetSeq2SeqLMAdapter

    assert get_family("palm").trainable(palm_model) is palm_model
    causal, seq2seq = get_family("preset", False), get_family("preset", True)
    adapter = causal.trainable(gpt2_task)
    assert type(adapter) is PresetCausalLMAdapter and causal.trainable(adapter) is adapter
    assert family_of_model(adapter) is causal
    # the model in training (an adapter) evaluates through its task (evals every N steps)
    engine = get_family("preset", model=adapter).engine(adapter)
    assert engine.model is gpt2_task and len(engine.loglikelihood(["ab"], [["c"]])[0]) == 1
    assert type(seq2seq.trainable(t5_task)) is PresetSeq2SeqLMAdapter
    # flanctl's own export loaded as a preset trains as itself
    assert causal.trainable(palm_model) is palm_model
    with pytest.raises(FlanctlError, match="re-run `flanctl plan`"):
        causal.trainable(t5_task)  # the plan said decoder-only, the preset is a Seq2SeqLM


def test_each_family_gives_an_engine_of_the_one_protocol(palm_model, t5_model, gpt2_task, t5_task):
    from flanctl.evals.predictor import Predictor
    from flanctl.models.generation.decoder_only import DecoderOnlyEngine
    from flanctl.models.generation.encoder_decoder import EncoderDecoderEngine
    from flanctl.models.generation.keras_hub_causal_lm import KerasHubCausalLMEngine
    from flanctl.models.generation.keras_hub_seq2seq import KerasHubSeq2SeqEngine

    cases = [
        (get_family("palm"), palm_model, TOK, DecoderOnlyEngine),
        (get_family("t5"), t5_model, TOK, EncoderDecoderEngine),
        (get_family("preset", False), gpt2_task, None, KerasHubCausalLMEngine),
        (get_family("preset", True), t5_task, None, KerasHubSeq2SeqEngine),
    ]
    for family, model, tokenizer, cls in cases:
        engine = family.engine(model, tokenizer, batch_size=2)
        assert type(engine) is cls and isinstance(engine, GenerationEngine) and isinstance(engine, Predictor)
        assert engine.batch_size == 2 and engine.tokenizer is not None
        out = engine.generate(["ab", "c", "abc"], 3, stop=[])
        assert [len(o) for o in out] == [1, 1, 1] and all(isinstance(o[0], str) for o in out)
        assert engine.generate(["ab"], 0, stop=[], num_samples=2) == [["", ""]]
        scores = engine.loglikelihood(["ab", "c"], [["a", "b c"], ["d"]])
        assert [len(s) for s in scores] == [2, 1] and all(s < 0 for row in scores for s in row)
    # a preset folder holding flanctl's own palm export generates as palm
    assert type(get_family("preset", False).engine(palm_model, TOK)) is DecoderOnlyEngine


def test_frame_prompt_is_the_training_framing():
    assert get_family("palm").frame_prompt([7, 8], TOK) == [TOK.bos_id, 7, 8]
    assert get_family("t5").frame_prompt([7, 8], TOK) == [7, 8, TOK.eos_id]
    assert get_family("preset", False).frame_prompt([7], TOK) == [TOK.bos_id, 7]
    assert get_family("preset", True).frame_prompt([7], TOK) == [7, TOK.eos_id]


def test_export_records_the_family_and_family_of_model_reads_it(palm_model, tmp_path):
    from flanctl.models import load_model, model_family, save_preset

    get_family("cont-palm").export(palm_model, tmp_path / "cp")
    assert json.loads((tmp_path / "cp" / "flanctl.json").read_text())["family"] == "cont-palm"
    model, tokenizer = get_family("cont-palm").load(tmp_path / "cp")
    assert tokenizer is not None and tokenizer.vocab_size == 259
    assert family_of_model(model, tmp_path / "cp") is get_family("cont-palm")
    assert family_of_model(model) is get_family("palm") and model_family(model) == "palm"
    save_preset(palm_model, tmp_path / "p")
    assert json.loads((tmp_path / "p" / "flanctl.json").read_text())["family"] == "palm"
    assert family_of_model(load_model(tmp_path / "p")[0], tmp_path / "p") is get_family("palm")
    with pytest.raises(FlanctlError, match="not a model flanctl can handle"):
        family_of_model(keras.Sequential([keras.layers.Dense(1)]))


# -- one home per family: no name comparisons, one generation protocol -------------------
_NAMES = r"(?:palm|cont-palm|u-palm|t5|preset)"
_COMPARISONS = [
    re.compile(rf"""[=!]=\s*["']{_NAMES}["']"""),  # x == "t5"
    re.compile(rf"""["']{_NAMES}["']\s*[=!]="""),  # "t5" == x
    re.compile(rf"""\b(?:not\s+)?in\s*[(\[{{]\s*["']{_NAMES}["']"""),  # x in ("palm", ...)
    re.compile(r"\b(?:DECODER_FAMILIES|is_decoder_only|FAMILY_FACTS)\b"),  # membership by name tables
]
_REGISTRY = MODELS / "families" / "__init__.py"


def _family_name_comparisons(source: str) -> list[str]:
    return [line.strip() for line in source.splitlines() if any(p.search(line) for p in _COMPARISONS)]


def test_no_family_name_comparisons_in_models_outside_the_registry():
    bad = "if family == 't5':\n    pass\nelif name in ('palm', 'u-palm'):\n    pass\nok = is_decoder_only(f)\n"
    assert len(_family_name_comparisons(bad)) == 3  # the check catches each form
    assert _family_name_comparisons(_REGISTRY.read_text())  # ... and the registry does compare
    found = {
        str(path.relative_to(REPO)): hits
        for path in sorted(MODELS.rglob("*.py"))
        if path != _REGISTRY and (hits := _family_name_comparisons(path.read_text()))
    }
    assert found == {}


def _flanctl_imports(path: Path) -> set[str]:
    """Every flanctl module `path` imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flanctl"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("flanctl"))
    return out


def test_generation_engines_share_one_protocol_without_probing_or_cycles():
    import importlib
    import inspect

    gen = MODELS / "generation"
    engines = []
    for path in sorted(gen.glob("*.py")):
        module = importlib.import_module(f"flanctl.models.generation.{path.stem}")
        engines += [c for _, c in inspect.getmembers(module, inspect.isclass)
                    if c.__module__ == module.__name__ and c.__name__.endswith("Engine")]
    names = {c.__name__ for c in engines}
    assert names == {"GenerationEngine", "TokenEngine", "DecoderOnlyEngine", "EncoderDecoderEngine",
                     "KerasHubCausalLMEngine", "KerasHubSeq2SeqEngine"}
    for cls in engines:
        assert issubclass(cls, GenerationEngine)
        # the protocol's two methods are the base's, with the same signatures everywhere
        for method in ("generate", "loglikelihood"):
            assert inspect.signature(getattr(cls, method)) == inspect.signature(getattr(GenerationEngine, method)), (cls, method)
    by_name = {c.__name__: c for c in engines}
    assert issubclass(by_name["DecoderOnlyEngine"], TokenEngine) and issubclass(by_name["EncoderDecoderEngine"], TokenEngine)

    # no capability probing, and engines know nothing of families
    for path in gen.glob("*.py"):
        source = path.read_text()
        assert "hasattr(" not in source, path
        assert not any(m.startswith("flanctl.models.families") for m in _flanctl_imports(path)), path

    # the generation modules' imports (top-level and lazy) form no cycle
    graph = {f"flanctl.models.generation.{p.stem}": {m for m in _flanctl_imports(p) if m.startswith("flanctl.models.generation.")}
             for p in gen.glob("*.py") if p.stem != "__init__"}
    state: dict[str, int] = {}

    def visit(node, trail):
        if state.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join(trail + [node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in graph.get(node, ()):
            visit(nxt, trail + [node])
        state[node] = 2

    for node in graph:
        visit(node, [])


def test_models_room_does_not_set_the_keras_backend():
    hits = [str(p.relative_to(REPO)) for p in MODELS.rglob("*.py") if "KERAS_BACKEND" in p.read_text() and "environ" in p.read_text()]
    assert hits == []
