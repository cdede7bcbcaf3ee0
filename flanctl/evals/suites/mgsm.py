"""MGSM: 8-shot chain of thought in each language with that language's own exemplars.

Files: `mgsm_{lang}.tsv` (question TAB answer, no header) and `exemplars.json`
(`exemplars[lang]["1".."8"] = {"q", "a"}`, q/a starting with the language's labels).
Answer: the number after the language's "the answer is" phrase, else the last number;
compared as numbers. Headline: mean over the 10 non-English languages. Decode budget per
language: `decode_budget` of the longest of its 8 exemplar answers.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from flanctl.errors import FlanctlError
from flanctl.evals.file_text import read_utf8
from flanctl.evals.answers import mgsm_answer, number_key, parse_number
from flanctl.evals.suites.base import COT_BUDGET_MARGIN, EvalExample, Suite, decode_budget, find_suite_dir

LANGUAGES = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")
NON_ENGLISH = tuple(lang for lang in LANGUAGES if lang != "en")
HUB_ID = "juletxara/mgsm"
_LABEL = re.compile(r"^(.*?[:：]\s*)", re.S)


def split_label(text: str) -> tuple[str, str]:
    """("Question: ", rest) from an exemplar field; the label keeps its trailing space, if any."""
    match = _LABEL.match(text)
    if not match or len(match.group(1)) > 40:
        return "", text
    return match.group(1), text[match.end():]


class MGSM(Suite):
    name = "mgsm"
    cot = True
    default_shots = 8
    max_new_tokens = 256
    headline_tasks = NON_ENGLISH
    hub_id = HUB_ID  # a hub id, or a local folder in the hub's layout
    hub_languages = LANGUAGES

    def __init__(self) -> None:
        self.source = ""
        self.stop = ("\n\n",)

    def load(self, data_dir, limit=None, shots=None):
        shots = self.default_shots if shots is None else shots
        self.shots_used = shots
        root = find_suite_dir(data_dir, "mgsm", ("exemplars.json", "mgsm_en.tsv"))
        if data_dir is not None and root is None:
            raise FlanctlError(f"--data-dir {data_dir} has no mgsm/ folder (expected mgsm/mgsm_<lang>.tsv and mgsm/exemplars.json)")
        if root is None:
            per_lang, exemplars = self._from_hub()
            self.source = self.hub_id
        else:
            per_lang, exemplars = self._from_files(root)
            self.source = str(root)
        if not any(per_lang.get(lang) for lang in self.headline_tasks):
            found = ", ".join(f"mgsm_{lang}.tsv" for lang, rows in per_lang.items() if rows) or "no rows"
            raise FlanctlError(
                f"mgsm: no data for the headline in {self.source} (found {found}): it averages the non-English languages "
                f"({' '.join(self.headline_tasks)}), so there is nothing to average; add their mgsm_<lang>.tsv files"
            )
        examples = []
        stops = set()
        for lang, rows in per_lang.items():
            shots_for = exemplars.get(lang, [])
            if len(shots_for) < shots:
                raise FlanctlError(f"mgsm: {len(shots_for)} exemplars for '{lang}', {shots} needed; check exemplars.json")
            q_label, _ = split_label(shots_for[0][0]) if shots_for else ("", "")
            a_label, _ = split_label(shots_for[0][1]) if shots_for else ("", "")
            prefix = "".join(f"{q}\n{a}\n\n" for q, a in shots_for[:shots])
            budget = decode_budget(max((split_label(a)[1] for _, a in shots_for), key=len), COT_BUDGET_MARGIN)
            if q_label:
                stops.add("\n" + q_label.strip())
            for i, (question, answer) in enumerate(rows if limit is None else rows[:limit]):
                gold = number_key(parse_number(answer))
                if gold is None:
                    raise FlanctlError(f"mgsm_{lang}.tsv row {i + 1}: answer {answer!r} is not a number")
                examples.append(
                    EvalExample(
                        id=f"{lang}-{i}",
                        task=lang,
                        prompt=f"{prefix}{q_label}{question}\n{a_label.rstrip()}",
                        target=answer,
                        golds=(gold,),
                        max_new_tokens=budget,
                    )
                )
        # Stop at a blank line or at the next question label, whichever the model writes.
        self.stop = ("\n\n",) + tuple(sorted(stops))
        self._set_budgets(examples)
        return examples

    def _from_files(self, root: Path):
        ex_path = root / "exemplars.json"
        if not ex_path.exists():
            raise FlanctlError(f"{ex_path}: missing; MGSM prompts use each language's 8 exemplars")
        text = read_utf8(ex_path)
        shape = 'expected {"exemplars": {lang: {"1": {"q": "...", "a": "..."}, ...}}}'
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FlanctlError(f"{ex_path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); {shape}") from None
        raw = payload.get("exemplars") if isinstance(payload, dict) else None
        if not isinstance(raw, dict):
            raise FlanctlError(f"{ex_path}: not the MGSM exemplars format (no \"exemplars\" object); {shape}")
        exemplars = {}
        for lang, shots in raw.items():
            ok = isinstance(shots, dict) and all(
                k.isdigit() and isinstance(v, dict) and isinstance(v.get("q"), str) and isinstance(v.get("a"), str) for k, v in shots.items()
            )
            if not ok:
                raise FlanctlError(f"{ex_path}: exemplars[{json.dumps(lang)}] is not numbered {{\"q\", \"a\"}} pairs; {shape}")
            exemplars[lang] = [(shots[k]["q"], shots[k]["a"]) for k in sorted(shots, key=int)]
        per_lang = {}
        for lang in LANGUAGES:
            path = root / f"mgsm_{lang}.tsv"
            if not path.exists():
                continue
            text = read_utf8(path)
            rows = []
            try:
                for n, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
                    if len(row) != 2:
                        raise FlanctlError(f"{path}:{n}: expected 'question<TAB>answer', got {len(row)} fields")
                    rows.append((row[0], row[1]))
            except csv.Error as exc:
                raise FlanctlError(f"{path}:{len(rows) + 1}: not a TSV row ({exc}); expected 'question<TAB>answer'") from None
            per_lang[lang] = rows
        if not per_lang:
            raise FlanctlError(f"{root}: no mgsm_<lang>.tsv files")
        return per_lang, exemplars

    def _from_hub(self):
        from flanctl.evals.hub import load_hub_split

        per_lang, exemplars = {}, {}
        for lang in self.hub_languages:
            test = load_hub_split(self.hub_id, lang, "test", self.name)
            train = load_hub_split(self.hub_id, lang, "train", self.name)
            per_lang[lang] = [(r["question"], str(r["answer_number"])) for r in test]
            exemplars[lang] = [(r["question"], r["answer"]) for r in train]
        return per_lang, exemplars

    def extract(self, text, example):
        return number_key(mgsm_answer(text, example.task))

    def settings(self):
        return {**super().settings(), "prompts": "exemplars.json, each language's own", "data": self.source}
