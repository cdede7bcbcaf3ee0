"""TyDiQA-GoldP: one-shot extractive QA per language, exact match after SQuAD normalisation.

Files: SQuAD-1.1 JSON (`{"data": [{"paragraphs": [{"context", "qas": [{"id", "question",
"answers": [{"text", "answer_start"}]}]}]}]}`); the language is the part of `id` before the
first '-'. Evaluation reads `*dev*.json`, the one exemplar per language comes from
`*train*.json` (the shortest passage of that language, so prompts stay short).
Headline: mean over ar, bn, fi, id, ko, ru, sw, te (English is reported, not averaged).
Decode budget per language: `decode_budget` of its longest reference answer (one number for
the whole language, so it tells nothing about any one question).
"""

from __future__ import annotations

import json
from pathlib import Path

from flanctl.errors import FlanctlError
from flanctl.evals.file_text import read_utf8
from flanctl.evals.answers import first_line, squad_normalize
from flanctl.evals.suites.base import EvalExample, Suite, decode_budget, find_suite_dir

#: Budget margin over the longest reference answer of a language (answers are spans).
SPAN_BUDGET_MARGIN = 2.0

HEADLINE_LANGUAGES = ("ar", "bn", "fi", "id", "ko", "ru", "sw", "te")
HUB_ID = "google-research-datasets/tydiqa"
HUB_CONFIG = "secondary_task"


def language_of(example_id: str) -> str:
    """TyDiQA ids start with the language name ("arabic-123..."); map to its ISO code."""
    name = example_id.split("-", 1)[0].lower()
    return LANGUAGE_CODES.get(name, name)


LANGUAGE_CODES = {
    "arabic": "ar", "bengali": "bn", "english": "en", "finnish": "fi", "indonesian": "id",
    "japanese": "ja", "korean": "ko", "russian": "ru", "swahili": "sw", "telugu": "te", "thai": "th",
}


def read_squad(path: Path) -> list[dict]:
    """Flat rows {id, context, question, answers[list of str]} from a SQuAD-1.1 JSON file."""
    try:
        payload = json.loads(read_utf8(path))
        rows = []
        for article in payload["data"]:
            for para in article["paragraphs"]:
                for qa in para["qas"]:
                    rows.append({
                        "id": str(qa["id"]),
                        "context": para["context"],
                        "question": qa["question"],
                        "answers": [a["text"] for a in qa.get("answers", [])],
                    })
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise FlanctlError(f"{path}: not SQuAD-1.1 JSON ({type(exc).__name__}: {exc}); expected data[].paragraphs[].qas[]") from exc
    return rows


def render(context: str, question: str) -> str:
    return f"Passage: {context}\nQuestion: {question}\nAnswer:"


class TyDiQA(Suite):
    name = "tydiqa"
    cot = False
    default_shots = 1
    max_new_tokens = 32
    stop = ("\n",)
    headline_tasks = HEADLINE_LANGUAGES
    hub_id = HUB_ID  # a hub id, or a local folder in the hub's layout

    def __init__(self) -> None:
        self.source = ""

    def load(self, data_dir, limit=None, shots=None):
        shots = self.default_shots if shots is None else shots
        self.shots_used = shots
        root = find_suite_dir(data_dir, "tydiqa", ())
        if root is None and data_dir is not None:
            # Accept a folder holding the JSON files directly.
            root = Path(data_dir) if any(Path(data_dir).glob("*dev*.json")) else None
            if root is None:
                raise FlanctlError(f"--data-dir {data_dir} has no tydiqa/ folder (expected tydiqa/*dev*.json and tydiqa/*train*.json, SQuAD-1.1 JSON)")
        if root is None:
            from flanctl.evals.hub import load_hub_split

            dev = [self._hub_row(r) for r in load_hub_split(self.hub_id, HUB_CONFIG, "validation", self.name)]
            train = [self._hub_row(r) for r in load_hub_split(self.hub_id, HUB_CONFIG, "train", self.name)] if shots else []
            self.source = f"{self.hub_id}/{HUB_CONFIG}"
        else:
            dev_files = sorted(root.glob("*dev*.json"))
            if not dev_files:
                raise FlanctlError(f"{root}: no *dev*.json file (TyDiQA-GoldP dev in SQuAD-1.1 JSON)")
            dev = self._dedupe(r for f in dev_files for r in read_squad(f))
            train_files = sorted(root.glob("*train*.json"))
            if shots and not train_files:
                raise FlanctlError(f"{root}: no *train*.json file for the one-shot exemplars (or use shots 0)")
            train = [r for f in train_files for r in read_squad(f)] if shots else []
            self.source = str(root)
        exemplars = self._exemplars(train, shots)
        longest: dict[str, str] = {}
        for row in dev:
            lang = language_of(row["id"])
            longest[lang] = max([longest.get(lang, ""), *row["answers"]], key=len)
        budgets = {lang: decode_budget(text, SPAN_BUDGET_MARGIN) for lang, text in longest.items()}
        examples, counts = [], {}
        for row in dev:
            lang = language_of(row["id"])
            if limit is not None and counts.get(lang, 0) >= limit:
                continue
            if shots and lang not in exemplars:
                raise FlanctlError(f"tydiqa: no training example for language '{lang}' to build its one-shot prompt")
            counts[lang] = counts.get(lang, 0) + 1
            prefix = "".join(render(ex["context"], ex["question"]) + f" {ex['answers'][0]}\n\n" for ex in exemplars.get(lang, []))
            if not row["answers"]:
                raise FlanctlError(f"tydiqa: example {row['id']} has no gold answers")
            examples.append(
                EvalExample(
                    id=row["id"],
                    task=lang,
                    prompt=prefix + render(row["context"], row["question"]),
                    target=row["answers"][0],
                    golds=tuple(sorted({squad_normalize(a) for a in row["answers"]})),
                    max_new_tokens=budgets[lang],
                )
            )
        self._set_budgets(examples)
        return examples

    @staticmethod
    def _hub_row(r):
        return {"id": r["id"], "context": r["context"], "question": r["question"], "answers": list(r["answers"]["text"])}

    @staticmethod
    def _dedupe(rows):
        seen, out = set(), []
        for r in rows:
            if r["id"] not in seen:
                seen.add(r["id"])
                out.append(r)
        return out

    @staticmethod
    def _exemplars(train, shots):
        """Per language, the `shots` answered training examples with the shortest passages."""
        by_lang: dict[str, list[dict]] = {}
        for r in train:
            if r["answers"]:
                by_lang.setdefault(language_of(r["id"]), []).append(r)
        return {lang: sorted(rows, key=lambda r: len(r["context"]))[:shots] for lang, rows in by_lang.items()}

    def extract(self, text, example):
        return squad_normalize(first_line(text))

    def settings(self):
        return {**super().settings(), "prompts": "one-shot per language from training data (shortest passage)", "metric": "exact match, SQuAD normalisation, max over golds", "data": self.source}
