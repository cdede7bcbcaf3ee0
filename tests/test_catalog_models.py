"""Catalog facts: exact parameter counts, architecture resolution, built-in tasks, collections, suites."""

import pytest

from flanctl.catalog import builtin, collections, suites
from flanctl.catalog.models import BYTE_VOCAB_SIZE, SIZES, param_count, resolve_architecture, t5_param_split
from flanctl.spec.models import ModelSpec

PALM = {"8b": 8.63e9, "62b": 62.50e9, "540b": 540.35e9}
T5 = {"small": 76_961_152, "base": 247_577_856, "large": 783_150_080, "xl": 2_849_757_184, "xxl": 11_135_332_352}


@pytest.mark.parametrize("size,billions", PALM.items())
def test_palm_counts_match_palm_table1(size, billions):
    # PaLM Table 1 counts without the layer-norm scales; with them the count is (L + 1) * d larger.
    arch = SIZES["palm"][size]
    without = param_count("palm", arch, include_norms=False)
    assert round(without / 1e7) == round(billions / 1e7)
    assert param_count("palm", arch) - without == (arch["num_layers"] + 1) * arch["hidden_dim"]


@pytest.mark.parametrize("size,count", T5.items())
def test_t5_counts_are_exact(size, count):
    arch = SIZES["t5"][size]
    assert param_count("t5", arch) == count
    split = t5_param_split(arch)
    assert split["encoder"] + split["decoder"] == count


def test_variant_families_share_palm_architecture():
    assert SIZES["cont-palm"]["62b"] == SIZES["palm"]["62b"]
    assert SIZES["u-palm"]["540b"] == SIZES["palm"]["540b"]


def test_byte_tokenizer_sets_vocab_unless_explicit():
    arch = resolve_architecture(ModelSpec(family="palm", size="tiny"))
    assert arch["vocab_size"] == BYTE_VOCAB_SIZE
    arch = resolve_architecture(ModelSpec(family="palm", size="tiny", architecture={"vocab_size": 1000}))
    assert arch["vocab_size"] == 1000
    arch = resolve_architecture(ModelSpec(family="palm", size="8b", tokenizer={"kind": "sentencepiece"}))
    assert arch["vocab_size"] == 256_000


def test_overrides_merge_and_t5_layers_follow_num_layers():
    arch = resolve_architecture(ModelSpec(family="t5", size="tiny", architecture={"num_layers": 3, "hidden_dim": 96}))
    assert (arch["encoder_layers"], arch["decoder_layers"], arch["hidden_dim"]) == (3, 3, 96)
    assert arch["ffn_dim"] == SIZES["t5"]["tiny"]["ffn_dim"]


def test_explicit_architecture_without_size_fills_derived_fields():
    arch = resolve_architecture(
        ModelSpec(family="palm", architecture=dict(num_layers=2, hidden_dim=32, num_heads=4, ffn_dim=64))
    )
    assert arch["head_dim"] == 8 and arch["num_kv_heads"] == 1 and arch["vocab_size"] == BYTE_VOCAB_SIZE


def test_missing_field_names_it():
    with pytest.raises(ValueError, match=r"model\.architecture\.ffn_dim is missing"):
        resolve_architecture(ModelSpec(family="palm", architecture=dict(num_layers=2, hidden_dim=32, num_heads=4)))


def test_unknown_size_lists_known_sizes():
    with pytest.raises(ValueError, match=r"'9b' is not a palm size; known: tiny, mini, small, 8b"):
        resolve_architecture({"family": "palm", "size": "9b"})


def test_builtin_tasks_disjoint_and_enough():
    assert len(builtin.BUILTIN_TRAIN_TASKS) >= 16
    assert 3 <= len(builtin.BUILTIN_HELD_OUT_TASKS) <= 16
    assert not set(builtin.BUILTIN_TRAIN_TASKS) & set(builtin.BUILTIN_HELD_OUT_TASKS)
    assert all(t.description.endswith(".") for t in builtin.BUILTIN_TASKS.values())


def test_collections_match_the_paper():
    flan = [collections.COLLECTIONS[n] for n in collections.FLAN_MIXTURE]
    assert sum(c.tasks for c in flan) == collections.FLAN_TOTALS["tasks"] == 1836
    assert {c.name: c.cap for c in flan} == {"muffin": 30_000, "t0_sf": 20_000, "cot": 100_000, "niv2": 5_000}
    assert collections.PROPORTIONS["A"] == {"muffin": 52.0, "t0_sf": 15.0, "cot": 3.0, "niv2": 30.0}
    assert sum(collections.PROPORTIONS["B"].values()) == pytest.approx(99.9)
    for c in collections.COLLECTIONS.values():
        assert sum(c.templates.values()) == pytest.approx(1.0)


def test_suite_sizes():
    assert len(suites.MMLU_SUBJECTS) == 57 and suites.suite_examples("mmlu") == 1_531 and suites.suite_examples("mmlu", "test") == 14_042
    assert len(suites.BBH_SUBTASK_SIZES) == 27 and suites.suite_examples("bbh-cot") == 6_511
    assert suites.SUITES["bbh"].tasks == 23
    assert len(suites.TYDIQA_LANGUAGE_SIZES) == 8 and "english" not in suites.TYDIQA_LANGUAGE_SIZES
    assert suites.suite_examples("mgsm") == 2_500 and "en" not in suites.MGSM_LANGUAGES
    assert suites.normalized_score(62.5, 25.0) == pytest.approx(50.0)
