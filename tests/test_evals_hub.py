"""The Hugging Face `datasets` code path, run on local folders laid out like the hub datasets.

No network: `load_dataset` reads a folder whose README declares one config per subject /
language, exactly as cais/mmlu, juletxara/mgsm and google-research-datasets/tydiqa do.
"""

import json

import pytest

from flanctl.evals.suites import make_suite


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


def make_hub_folder(root, configs: dict[str, dict[str, list[dict]]]):
    """A local dataset folder: README with `configs:` and one JSONL file per (config, split)."""
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        for split, rows in splits.items():
            path = root / config / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            lines += [f"  - split: {split}", f"    path: {config}/{split}.jsonl"]
    (root / "README.md").write_text("\n".join(lines + ["---", ""]), encoding="utf-8")
    return root


def test_mgsm_from_hub_layout(tmp_path):
    train = [{"question": f"প্রশ্ন: {k} + 1?", "answer": f"ধাপে ধাপে উত্তর: {k} + 1 = {k + 1}। উত্তর হল {k + 1}।",
              "answer_number": k + 1, "equation_solution": f"{k} + 1 = {k + 1}"} for k in range(8)]
    test = [{"question": "3 + 3?", "answer": None, "answer_number": 6, "equation_solution": None},
            {"question": "1,000 + 1,000?", "answer": None, "answer_number": 2000, "equation_solution": None}]
    suite = make_suite("mgsm")
    suite.hub_id = str(make_hub_folder(tmp_path / "mgsm", {"bn": {"train": train, "test": test}}))
    suite.hub_languages = ("bn",)
    examples = suite.load(None)
    assert [e.id for e in examples] == ["bn-0", "bn-1"] and examples[1].golds == ("2000",)
    assert examples[0].prompt.count("প্রশ্ন: ") == 9 and examples[0].prompt.endswith("প্রশ্ন: 3 + 3?\nধাপে ধাপে উত্তর:")
    assert suite.score(examples, {"bn-0": ["উত্তর হল 6।"], "bn-1": ["উত্তর হল 2,000।"]})["score"] == 100.0


def test_mmlu_from_hub_layout(tmp_path):
    def row(q, answer):
        return {"question": q, "subject": "anatomy", "choices": ["w", "x", "y", "z"], "answer": answer}

    folder = make_hub_folder(tmp_path / "mmlu", {"anatomy": {"dev": [row(f"d{i}", i % 4) for i in range(5)],
                                                             "validation": [row("v0", 1)], "test": [row("t0", 2), row("t1", 3)]}})
    suite = make_suite("mmlu", mmlu_split="test")
    suite.hub_id, suite.hub_subjects = str(folder), ("anatomy",)
    examples = suite.load(None)
    assert [(e.id, e.target) for e in examples] == [("anatomy-0", "C"), ("anatomy-1", "D")]
    assert "d4\nA. w\nB. x\nC. y\nD. z\nAnswer: A\n\n" in examples[0].prompt
    suite = make_suite("mmlu")  # the validation split, the hub's "validation"
    suite.hub_id, suite.hub_subjects = str(folder), ("anatomy",)
    assert [(e.id, e.target) for e in suite.load(None)] == [("anatomy-0", "B")]


def test_tydiqa_from_hub_layout(tmp_path):
    def row(i, ctx, q, a):
        return {"id": i, "title": "t", "context": ctx, "question": q, "answers": {"text": a, "answer_start": [ctx.find(x) for x in a]}}

    suite = make_suite("tydiqa")
    folder = make_hub_folder(tmp_path / "tydiqa", {"secondary_task": {
        "train": [row("swahili-1-0", "Nairobi ni mji mkuu wa Kenya.", "Mji mkuu wa Kenya ni upi?", ["Nairobi"])],
        "validation": [row("swahili-2-0", "Dodoma ni mji mkuu wa Tanzania.", "Mji mkuu wa Tanzania ni upi?", ["Dodoma", "mji wa Dodoma"])],
    }})
    suite.hub_id = str(folder)
    examples = suite.load(None)
    assert examples[0].task == "sw" and examples[0].prompt.startswith("Passage: Nairobi ni mji mkuu wa Kenya.")
    result = suite.score(examples, {"swahili-2-0": [" Mji wa Dodoma."]})  # second gold, case and "." ignored
    assert result["tasks"] == {"sw": 100.0}
