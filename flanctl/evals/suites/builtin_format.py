"""Prompt layout of the `builtin` suite, matching the data room's training templates.

Zero-shot: the first variant of `flanctl/data/templates/generic.yaml` (`{inputs}` plus the
`OPTIONS:\\n- a\\n- b` block when the task has options, then a newline), answered directly. Few-shot: the
same question text behind the default delimiter pair `Q: ` / `A: `, exemplars joined by a
blank line, as `flanctl.data.templates.render_example` builds few-shot prompts.
"""

from __future__ import annotations

FEW_SHOT_DELIMITERS = ("Q: ", "A: ")


def render_inputs(ex) -> str:
    """The question as the zero-shot template renders it."""
    if ex.options:
        return f"{ex.inputs}\n\nOPTIONS:\n" + "\n".join(f"- {o}" for o in ex.options)
    return ex.inputs


def render_prompt(ex, exemplars=()) -> str:
    """Zero-shot prompt, or a few-shot one with `Q: `/`A: ` delimiters when exemplars are given."""
    if not exemplars:
        return render_inputs(ex) + "\n"  # zero-shot prompts end where the answer line starts
    q, a = FEW_SHOT_DELIMITERS
    blocks = [f"{q}{render_inputs(e)}\n{a}{e.targets}" for e in exemplars]
    return "\n\n".join(blocks + [f"{q}{render_inputs(ex)}\n{a.rstrip()}"])


COT_TEMPLATE = ("Q: ", "\nA: Let's think step by step.")


def render_cot_prompt(ex, exemplars=()) -> str:
    """Chain-of-thought prompt: the first variant of the training `cot` template (question
    only, no options block; the model's text starts after "step by step."), behind
    exemplars written out the same way with their rationale and answer, blank-line separated."""
    q, lead = COT_TEMPLATE
    blocks = [f"{q}{e.inputs}{lead} {e.rationale} So the answer is {e.answer}." for e in exemplars]
    return "\n\n".join(blocks + [f"{q}{ex.inputs}{lead}"])
