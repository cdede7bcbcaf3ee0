"""`builtin`: flanctl's held-out procedural tasks (never trained on), offline, exact match.

Examples come from `flanctl.data.builtin_tasks.generate(task, "test", n, seed)` for the
catalog's `BUILTIN_HELD_OUT_TASKS`; ids are `<task>-<i>`. Prompts are zero-shot by default
(few-shot exemplars, when asked for, come from the task's validation split) and use the
training templates' delimiters, so a model finetuned on the built-in mixture sees the
format it learned. Headline: mean over tasks.
"""

from __future__ import annotations

from flanctl.errors import FlanctlError
from flanctl.evals.answers import after_answer_is, first_line
from flanctl.evals.suites.base import EvalExample, Suite

DEFAULT_EXAMPLES_PER_TASK = 200
SEED = 0


class Builtin(Suite):
    name = "builtin"
    cot = False
    default_shots = 0
    max_new_tokens = 24
    stop = ("\n",)
    methods = ("generate", "loglikelihood")
    option_prefix = ""  # zero-shot prompts end with the newline where the answer starts; few-shot ones with "A:"

    def __init__(self, tasks: list[str] | None = None) -> None:
        self.tasks = list(tasks) if tasks else None

    @classmethod
    def from_options(cls, options):
        return cls(tasks=options.get("builtin_tasks"))

    def load(self, data_dir=None, limit=None, shots=None):
        from flanctl.catalog.builtin import BUILTIN_HELD_OUT_TASKS
        from flanctl.data.builtin_tasks import generate

        shots = self.default_shots if shots is None else shots
        self.shots_used = shots
        self.option_prefix = " " if shots else ""
        tasks = self.tasks or list(BUILTIN_HELD_OUT_TASKS)
        for task in tasks:
            if task not in BUILTIN_HELD_OUT_TASKS:
                raise FlanctlError(f"builtin suite: '{task}' is not a held-out built-in task; choose from {', '.join(BUILTIN_HELD_OUT_TASKS)}")
        n = limit or DEFAULT_EXAMPLES_PER_TASK
        examples = []
        for task in tasks:
            # Exemplars come from the validation split, never one stating the very fact asked
            # (the world tasks' splits share one half of the world: same rationale = same fact).
            pool = generate(task, "validation", 4 * shots + 4, SEED) if shots else []
            for i, ex in enumerate(generate(task, "test", n, SEED)):
                exemplars = [e for e in pool if e.rationale != ex.rationale][:shots]
                examples.append(
                    EvalExample(
                        id=f"{task}-{i}",
                        task=task,
                        prompt=self.prompt(ex, exemplars),
                        target=ex.targets,
                        golds=(ex.targets.strip(),),
                        options=tuple(ex.options or ()),
                        chance=1.0 / len(ex.options) if ex.options else 0.0,
                    )
                )
        return examples

    def prompt(self, ex, exemplars) -> str:
        from flanctl.evals.suites.builtin_format import render_prompt

        return render_prompt(ex, exemplars)

    def extract(self, text, example):
        return first_line(text)

    def settings(self):
        return {**super().settings(), "tasks": self.tasks or "catalog held-out set", "split": "test", "seed": SEED}


class BuiltinCoT(Builtin):
    """`builtin-cot`: the same held-out questions, zero-shot chain of thought, generated.

    The prompt is the first variant of the training CoT template (`Q: {question}` /
    `A: Let's think step by step.`, no options block; exemplars, when asked for, come from the
    validation split with their rationale); the model writes its reasoning and
    `So the answer is X.`, and X is scored by exact match. A model that answers without the
    phrase is scored on its first line. Chance is the direct suite's (1/options), so the
    normalized score is comparable across the two."""

    name = "builtin-cot"
    cot = True
    max_new_tokens = 64
    methods = ("generate",)

    def prompt(self, ex, exemplars) -> str:
        from flanctl.evals.suites.builtin_format import render_cot_prompt

        return render_cot_prompt(ex, exemplars)

    def extract(self, text, example):
        answer = after_answer_is(text)
        line = first_line(answer if answer is not None else text)
        return line[:-1].rstrip() if line.endswith(".") else line
