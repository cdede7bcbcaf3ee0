"""MMLU: 5-shot from `dev`, direct (`mmlu`) and chain of thought (`mmlu-cot`), 57 subjects.

Files: headerless CSV rows `question,A,B,C,D,answer` in `dev/`, `val/`, `test/` as
`{subject}_{split}.csv` (the original release). The split scored is `val` (the default: the
paper reports MMLU on the validation split everywhere except Tables 1 and 4, App. D.1) or
`test`; the paper's reference numbers shown are the ones for that split. Ids:
`<subject>-<i>`, i the row in the scored split's file. Headline: unweighted mean over
subjects; `micro` is the mean over all questions.

CoT exemplars: the paper's `mmlu-cot.json` (subject -> the few-shot CoT prompt, from
jasonwei20/flan-2; also in FranxYao/chain-of-thought-hub), looked up as
`<mmlu dir>/mmlu-cot.json` or passed as `cot_prompts=`. Without it `mmlu-cot` is an error:
dev exemplars have no rationales, and a CoT prompt without them is not the paper's protocol.
`mmlu_cot_fallback=True` allows that prompt anyway ("A: Let's think step by step. The answer
is (B)."), labelled in `settings.prompts` and in the result's `note`.
Scoring can also rank the four options by log-likelihood (`method="loglikelihood"`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from flanctl.catalog.suites import MMLU_DEFAULT_SPLIT, MMLU_SPLIT_EXAMPLES, MMLU_SUBJECTS
from flanctl.errors import FlanctlError
from flanctl.evals.file_text import read_utf8
from flanctl.evals.answers import mmlu_letter
from flanctl.evals.suites.base import COT_BUDGET_MARGIN, EvalExample, Suite, decode_budget, find_suite_dir

# The 57 subjects (catalog facts, shared with the plan).
SUBJECTS = MMLU_SUBJECTS
LETTERS = ("A", "B", "C", "D")
HUB_ID = "cais/mmlu"
COT_PROMPTS_FILE = "mmlu-cot.json"
SPLITS = tuple(MMLU_SPLIT_EXAMPLES)  # ("val", "test")
HUB_SPLITS = {"dev": "dev", "val": "validation", "test": "test"}  # cais/mmlu's split names
COT_PROMPTS_SOURCE = (
    "the Flan paper's file is mmlu-cot.json in github.com/jasonwei20/flan-2 "
    "(also lib_prompt/mmlu-cot.json in github.com/FranxYao/chain-of-thought-hub)"
)
FALLBACK_NOTE = "mmlu-cot prompts are dev exemplars without rationales (mmlu_cot_fallback), not the paper's CoT exemplars"


def read_csv(path: Path) -> list[tuple[str, tuple[str, str, str, str], str]]:
    """Rows (question, options, answer letter) of one headerless MMLU CSV."""
    rows = []
    text = read_utf8(path)
    try:
        parsed = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise FlanctlError(f"{path}: not CSV ({exc}); expected rows 'question,A,B,C,D,answer'") from None
    for n, row in enumerate(parsed, start=1):
        if len(row) != 6:
            raise FlanctlError(f"{path}:{n}: expected 6 fields 'question,A,B,C,D,answer', got {len(row)}")
        answer = row[5].strip()
        if answer not in LETTERS:
            raise FlanctlError(f"{path}:{n}: answer {answer!r} is not one of A, B, C, D")
        rows.append((row[0], (row[1], row[2], row[3], row[4]), answer))
    return rows


def header(subject: str) -> str:
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


class MMLU(Suite):
    name = "mmlu"
    methods = ("generate", "loglikelihood")
    shots_key = "mmlu"
    cot = False
    default_shots = 5
    max_new_tokens = 8
    stop = ("\n",)
    hub_id = HUB_ID  # a hub id, or a local folder in the hub's layout
    hub_subjects = SUBJECTS

    def __init__(self, cot_prompts: str | Path | None = None, method: str = "generate", split: str | None = None,
                 cot_fallback: bool = False) -> None:
        if method not in ("generate", "loglikelihood"):
            raise FlanctlError(f"mmlu: unknown method {method!r}; use generate or loglikelihood")
        split = split or MMLU_DEFAULT_SPLIT
        if split not in SPLITS:
            raise FlanctlError(f"mmlu: unknown split {split!r}; use {' or '.join(SPLITS)}")
        self.cot_prompts_path = Path(cot_prompts) if cot_prompts else None
        self.method = method
        self.split = split
        self.cot_fallback = cot_fallback
        self.prompt_source = "dev split, 5-shot (Hendrycks et al. format)"
        self.note = ""
        self.source = ""
        self.subjects_found = 0

    @classmethod
    def from_options(cls, options):
        return cls(cot_prompts=options.get("cot_prompts"), method=options.get("method") or "generate",
                   split=options.get("mmlu_split"), cot_fallback=bool(options.get("mmlu_cot_fallback")))

    # ---- data
    def load(self, data_dir, limit=None, shots=None):
        shots = self.default_shots if shots is None else shots
        self.shots_used = shots
        root = find_suite_dir(data_dir, "mmlu", ("dev", self.split))
        if data_dir is not None and root is None:
            raise FlanctlError(f"--data-dir {data_dir} has no mmlu/ folder (expected mmlu/dev/ and mmlu/{self.split}/ with <subject>_<split>.csv)")
        if root is None:
            per_subject = self._from_hub()
            self.source = self.hub_id
        else:
            per_subject = self._from_files(root)
            self.source = str(root)
        self.subjects_found = len(per_subject)
        cot_file = self._cot_prompts(root)
        examples = []
        for subject, (dev, rows) in per_subject.items():
            if len(dev) < shots:
                raise FlanctlError(f"mmlu: subject {subject} has {len(dev)} dev rows, {shots} shots needed")
            prefix = self._prefix(subject, dev[:shots], cot_file)
            budget = self._budget(subject, cot_file)
            for i, (question, options, answer) in enumerate(rows if limit is None else rows[:limit]):
                examples.append(
                    EvalExample(
                        id=f"{subject}-{i}",
                        task=subject,
                        prompt=prefix + self._question(question, options),
                        target=answer,
                        golds=(answer,),
                        options=LETTERS,
                        chance=0.25,
                        max_new_tokens=budget,
                    )
                )
        self._set_budgets(examples)
        return examples

    def _from_files(self, root: Path):
        split_dir, dev_dir = root / self.split, root / "dev"
        if not split_dir.is_dir() or not dev_dir.is_dir():
            raise FlanctlError(f"{root}: expected dev/ and {self.split}/ folders of <subject>_<split>.csv files")
        per_subject = {}
        suffix = f"_{self.split}.csv"
        for path in sorted(split_dir.glob(f"*{suffix}")):
            subject = path.name[: -len(suffix)]
            dev_path = dev_dir / f"{subject}_dev.csv"
            if not dev_path.exists():
                raise FlanctlError(f"{dev_path}: missing; MMLU few-shot exemplars come from the dev split")
            per_subject[subject] = (read_csv(dev_path), read_csv(path))
        if not per_subject:
            raise FlanctlError(f"{split_dir}: no <subject>{suffix} files")
        return per_subject

    def _from_hub(self):
        from flanctl.evals.hub import load_hub_split

        per_subject = {}
        for subject in self.hub_subjects:
            def rows(split):
                return [(r["question"], tuple(r["choices"]), LETTERS[int(r["answer"])])
                        for r in load_hub_split(self.hub_id, subject, HUB_SPLITS[split], self.name)]

            per_subject[subject] = (rows("dev"), rows(self.split))
        return per_subject

    def _budget(self, subject: str, cot_file: dict[str, str] | None) -> int:
        """Direct answers are one letter (the class's budget); CoT gets room for rationales
        `COT_BUDGET_MARGIN` times the longest in the subject's CoT exemplars."""
        answers = cot_answers(cot_file[subject]) if cot_file is not None else []
        return decode_budget(max(answers, key=len), COT_BUDGET_MARGIN) if answers else 0

    def _cot_prompts(self, root: Path | None) -> dict[str, str] | None:
        if not self.cot:
            return None
        path = self.cot_prompts_path or (root / COT_PROMPTS_FILE if root is not None else None)
        if path is None or not path.exists():
            if self.cot_prompts_path is not None:
                raise FlanctlError(f"{path}: MMLU CoT prompt file not found; {COT_PROMPTS_SOURCE}")
            if not self.cot_fallback:
                where = f"{path}" if path is not None else f"<mmlu dir>/{COT_PROMPTS_FILE} (with --data-dir)"
                raise FlanctlError(
                    f"mmlu-cot needs the paper's chain-of-thought exemplars: {where} not found; {COT_PROMPTS_SOURCE}. "
                    "Put it there or pass its path as the MMLU CoT prompts option (or allow dev exemplars without "
                    "rationales with mmlu_cot_fallback, labelled in the results)"
                )
            self.prompt_source = "dev split, 5-shot, no rationale (mmlu_cot_fallback: no mmlu-cot.json)"
            self.note = FALLBACK_NOTE
            return None
        try:
            prompts = json.loads(read_utf8(path))
            if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
                raise ValueError("expected an object subject -> prompt text")
        except (json.JSONDecodeError, ValueError) as exc:
            raise FlanctlError(f"{path}: not an MMLU CoT prompt file ({exc})") from exc
        self.prompt_source = f"{path} (CoT exemplars with rationales)"
        return prompts

    # ---- prompts
    def _prefix(self, subject, dev, cot_file):
        shots = "".join(self._question(q, opts) + f" {answer}\n\n" for q, opts, answer in dev)
        return header(subject) + shots

    def _question(self, question, options):
        lines = [question] + [f"{letter}. {text}" for letter, text in zip(LETTERS, options)]
        return "\n".join(lines) + "\nAnswer:"

    # ---- scoring
    def extract(self, text, example):
        return mmlu_letter(text, cot=self.cot)

    def settings(self):
        return {**super().settings(), "prompts": self.prompt_source, "method": self.method, "data": self.source,
                "subjects": f"{self.subjects_found} of {len(SUBJECTS)}"}

    def score(self, examples, outputs):
        result = super().score(examples, outputs)
        if self.note:
            result["note"] = self.note
        return result


def cot_answers(prompt: str) -> list[str]:
    """The worked answers (" Let's think step by step. ... The answer is (X).") of one
    subject's CoT prompt, in order."""
    blocks = prompt.split("\n\nQ: ")
    return [" " + block.split("\nA: ", 1)[1].strip() for block in blocks if "\nA: " in block]


class MMLUCoT(MMLU):
    name = "mmlu-cot"
    cot = True
    methods = ("generate",)  # a chain of thought is generated; ranking the options would skip it
    max_new_tokens = 256  # the fallback prompt's budget; the paper's prompts give each subject its own
    stop = ("\n\nQ:",)

    def _prefix(self, subject, dev, cot_file):
        if cot_file is not None:
            if subject not in cot_file:
                raise FlanctlError(f"MMLU CoT prompt file has no entry for subject '{subject}'")
            text = cot_file[subject]
            return text if text.endswith("\n\n") else text.rstrip("\n") + "\n\n"
        # Same dev exemplars, answered in the CoT format without a rationale.
        shots = "".join(self._question(q, opts) + f" The answer is ({answer}).\n\n" for q, opts, answer in dev)
        return header(subject) + shots

    def _question(self, question, options):
        choices = " ".join(f"({letter}) {text}" for letter, text in zip(LETTERS, options))
        return f"Q: {question}\n{choices}\nA: Let's think step by step."
