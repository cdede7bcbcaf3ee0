"""BIG-Bench Hard: 3-shot, direct (`bbh`) and chain of thought (`bbh-cot`), 27 subtask files, 23 tasks.

Prompts come from the official `cot-prompts/<subtask>.txt` files (canary line, `-----`, the
task description, three `Q:`/`A:` exemplars). The direct prompt asks the same three
questions answered with the answer only.

Headline: the Flan paper's (App. D.2), which counts the three-way subtasks
(logical_deduction_*, tracking_shuffled_objects_*) "as individual tasks and take[s] an
unweighted average": the mean over the 27 subtask files. The BBH paper's own aggregate
(three-way tasks averaged first, then the 23 tasks) is reported beside it, under
`aggregates`, with its chance level.

Decode budgets are per subtask, from its prompt file: `decode_budget` of the longest exemplar
answer (the whole rationale for CoT), so that no subtask's answers are cut.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flanctl.catalog.suites import BBH_SUBTASK_SIZES
from flanctl.errors import FlanctlError
from flanctl.evals.file_text import read_utf8
from flanctl.evals.answers import bbh_canonical, bbh_cot_answer, bbh_direct_answer
from flanctl.evals.suites.base import (
    COT_BUDGET_MARGIN,
    DIRECT_BUDGET_MARGIN,
    EvalExample,
    Suite,
    decode_budget,
    find_suite_dir,
    mean,
)

# The 27 subtask files (catalog facts, shared with the plan).
SUBTASKS = tuple(sorted(BBH_SUBTASK_SIZES))
THREE_WAY_PREFIXES = ("logical_deduction", "tracking_shuffled_objects")
#: Key of the BBH paper's aggregate in a result's `aggregates`.
BBH_PAPER_AGGREGATE = "bbh-paper-23-tasks"
HUB_ID = "lukaemon/bbh"
COT_TRIGGER = "Let's think step by step."


def task_of(subtask: str) -> str:
    """The task a subtask file belongs to (three-way tasks share one)."""
    for prefix in THREE_WAY_PREFIXES:
        if subtask.startswith(prefix + "_"):
            return prefix
    return subtask


def parse_cot_prompt(text: str, source: str) -> tuple[str, list[tuple[str, str, str]]]:
    """(description, [(question, rationale_answer_text, answer)]) from a cot-prompts file."""
    lines = text.split("\n")
    if lines and "canary" in lines[0].lower():
        lines = lines[1:]
    if lines and lines[0].strip() == "-----":
        lines = lines[1:]
    body = "\n".join(lines).strip()
    parts = body.split("\n\nQ: ")
    description, blocks = parts[0], parts[1:]
    if description.startswith("Q: "):  # no description at all
        description, blocks = "", [description[3:]] + blocks
    shots = []
    for i, block in enumerate(blocks):
        if "\nA: " not in block:
            raise FlanctlError(f"{source}: exemplar {i + 1} has no '\\nA: ' line; expected 'Q: ...\\nA: ...'")
        question, answer_text = block.split("\nA: ", 1)
        answer = bbh_cot_answer(answer_text)
        shots.append((question, answer_text.strip(), answer))
    if not shots:
        raise FlanctlError(f"{source}: no 'Q: ' exemplars found; expected the BBH cot-prompts format")
    return description, shots


def option_chance(example_input: str, task_targets: set[str]) -> float:
    """Random-choice accuracy for one question: 1/k for k listed options ("(A) ..." or "- ..."
    lines after "Options:"), 1/2 for a task whose targets are a binary pair, else 0."""
    letters = re.findall(r"^\([A-Z]\) ", example_input, re.M)
    if letters:
        return 1.0 / len(letters)
    if "Options:" in example_input:
        after = example_input.split("Options:", 1)[1]
        dashes = re.findall(r"^- ", after, re.M)
        if dashes:
            return 1.0 / len(dashes)
    if len(task_targets) == 2:
        return 0.5
    return 0.0


class BBH(Suite):
    name = "bbh"
    shots_key = "bbh"
    cot = False
    default_shots = 3
    max_new_tokens = 32
    stop = ("\n\nQ:", "\n\n")
    hub_id = HUB_ID  # where the questions come from when only cot-prompts/ is local

    def __init__(self) -> None:
        self.source = ""

    def load(self, data_dir, limit=None, shots=None) -> list[EvalExample]:
        shots = self.default_shots if shots is None else shots
        self.shots_used = shots
        root = find_suite_dir(data_dir, "bbh", ("cot-prompts", "bbh"))
        if root is not None and not (root / "cot-prompts").is_dir() and (root.parent / "cot-prompts").is_dir():
            root = root.parent  # --data-dir pointed at the suite folder itself, whose bbh/ holds the JSON files
        prompt_dir = root / "cot-prompts" if root is not None else None
        if data_dir is not None and root is None:
            raise FlanctlError(f"--data-dir {data_dir} has no bbh/ folder (expected bbh/bbh/*.json and bbh/cot-prompts/*.txt)")
        if prompt_dir is None or not prompt_dir.is_dir():
            if data_dir is None:
                # The hub copy has the questions but not the official prompts: still need files.
                raise FlanctlError("suite bbh needs the official cot-prompts/*.txt files: pass --data-dir DIR with bbh/cot-prompts/ (and bbh/bbh/*.json)")
            raise FlanctlError(f"{root}: no cot-prompts/ folder; BBH prompts come from cot-prompts/<subtask>.txt")
        rows_by_subtask = self._read_examples(root, prompt_dir)
        self.source = str(root)
        examples: list[EvalExample] = []
        for subtask, rows in rows_by_subtask.items():
            prompt_file = prompt_dir / f"{subtask}.txt"
            if not prompt_file.exists():
                raise FlanctlError(f"{prompt_file}: missing; every BBH subtask needs its 3-shot prompt file")
            description, all_exemplars = parse_cot_prompt(read_utf8(prompt_file), str(prompt_file))
            exemplars = all_exemplars[:shots]
            prefix = self._prefix(description, exemplars)
            # From all three exemplars, so that the budget does not shrink with --shots.
            budget = self.budget(all_exemplars)
            targets = {r["target"] for r in rows}
            for i, row in enumerate(rows if limit is None else rows[:limit]):
                target = row["target"]
                examples.append(
                    EvalExample(
                        id=f"{subtask}-{i}",
                        task=subtask,
                        prompt=prefix + self._question(row["input"]),
                        target=target,
                        golds=(target,),
                        chance=option_chance(row["input"], targets),
                        max_new_tokens=budget,
                    )
                )
        self._set_budgets(examples)
        return examples

    def budget(self, exemplars: list[tuple[str, str, str]]) -> int:
        """Decode budget of a subtask: room for answers `DIRECT_BUDGET_MARGIN` times its longest exemplar answer."""
        return decode_budget(max((f" {answer}" for _, _, answer in exemplars), key=len), DIRECT_BUDGET_MARGIN)

    def _read_examples(self, root: Path, prompt_dir: Path) -> dict[str, list[dict[str, Any]]]:
        data_dir = root / "bbh"
        found: dict[str, list[dict[str, Any]]] = {}
        if data_dir.is_dir():
            for path in sorted(data_dir.glob("*.json")):
                shape = 'expected {"examples": [{"input": "...", "target": "..."}, ...]}'
                try:
                    payload = json.loads(read_utf8(path))
                except json.JSONDecodeError as exc:
                    raise FlanctlError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); {shape}") from None
                rows = payload.get("examples") if isinstance(payload, dict) else None
                if not isinstance(rows, list):
                    raise FlanctlError(f"{path}: not a BBH file (no \"examples\" list); {shape}")
                for j, r in enumerate(rows):
                    if not isinstance(r, dict) or not isinstance(r.get("input"), str) or not isinstance(r.get("target"), str):
                        raise FlanctlError(f"{path}: examples[{j}] is not an object with string \"input\" and \"target\"; {shape}")
                found[path.stem] = rows
        else:
            from flanctl.evals.hub import load_hub_split

            for subtask in sorted(p.stem for p in prompt_dir.glob("*.txt")):
                found[subtask] = load_hub_split(self.hub_id, subtask, "test", self.name)
        if not found:
            raise FlanctlError(f"{data_dir}: no BBH subtask files (*.json)")
        return found

    # ---- prompts
    def _prefix(self, description: str, exemplars: list[tuple[str, str, str]]) -> str:
        blocks = [f"Q: {q}\nA: {answer}" for q, _, answer in exemplars]
        head = [description] if description else []
        return "\n\n".join(head + blocks) + ("\n\n" if head or blocks else "")

    def _question(self, text: str) -> str:
        return f"Q: {text}\nA:"

    # ---- scoring
    def extract(self, text, example):
        return bbh_direct_answer(text)

    def answer_key(self, text, example):
        return bbh_canonical(self.extract(text, example), example.target)

    def score(self, examples, outputs):
        result = super().score(examples, outputs)  # headline: mean over the 27 subtask files
        tasks_23 = self.tasks_23(result["tasks"])
        chances_23 = self.tasks_23(self._file_chances(examples))
        result["headline"] = "mean over the 27 subtask files (Flan paper, App. D.2)"
        result["aggregates"] = {
            BBH_PAPER_AGGREGATE: {
                "about": "BBH paper's aggregate: three-way tasks averaged over their files first, then the mean over 23 tasks",
                "score": mean(tasks_23.values()),
                "chance": mean(chances_23.values()),
                "tasks": tasks_23,
            }
        }
        return result

    @staticmethod
    def tasks_23(per_file: dict[str, float]) -> dict[str, float]:
        """The BBH paper's 23 tasks from per-file values: a three-way task is the mean of its files
        (not of its pooled examples), so that each task weighs the same."""
        grouped: dict[str, list[float]] = {}
        for subtask, value in per_file.items():
            grouped.setdefault(task_of(subtask), []).append(value)
        return {task: mean(values) for task, values in sorted(grouped.items())}

    @staticmethod
    def _file_chances(examples) -> dict[str, float]:
        per_file: dict[str, list[float]] = {}
        for ex in examples:
            per_file.setdefault(ex.task, []).append(ex.chance)
        return {sub: 100.0 * mean(v) for sub, v in per_file.items()}

    def settings(self):
        return {
            **super().settings(),
            "prompts": "cot-prompts/<subtask>.txt" + ("" if self.cot else " (answer-only exemplars)"),
            "data": self.source,
        }


class BBHCoT(BBH):
    name = "bbh-cot"
    cot = True
    stop = ("\n\nQ:",)

    def budget(self, exemplars):
        """Room for rationales `COT_BUDGET_MARGIN` times the subtask's longest exemplar rationale."""
        return decode_budget(max((f" {text}" for _, text, _ in exemplars), key=len), COT_BUDGET_MARGIN)

    def _prefix(self, description, exemplars):
        blocks = [f"Q: {q}\nA: {text}" for q, text, _ in exemplars]
        head = [description] if description else []
        return "\n\n".join(head + blocks) + ("\n\n" if head or blocks else "")

    def _question(self, text):
        return f"Q: {text}\nA: {COT_TRIGGER}"

    def extract(self, text, example):
        return bbh_cot_answer(text)
