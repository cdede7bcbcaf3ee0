"""What a model knows of the held-out facts, asked in the corpus's own words.

The held-out `recall_*` tasks ask instruction-style questions ("What does Muril do for a
living?") about the half of the world no finetuning task touches. This probe asks the same
questions, with the same options, the way the pretraining corpus states the facts: it ranks
each option as the continuation of the fact's sentence ("Muril works as" + " a baker" /
" a smith" / ...). A base that scores high here and at chance on the instruction-style
question knows the fact but cannot yet express it; that gap is what instruction finetuning
closes in the paper's reading of its Figure 4.

    python examples/base/probe.py                     # the shipped base (examples/base/)
    python examples/base/probe.py --checkpoint DIR    # any flanctl export
    python examples/base/probe.py --limit 25          # questions per task (the demo's eval size)

The sentence is each question's own rationale (`flanctl.data.builtin_tasks`: the corpus's
wording of the fact), cut where the answer starts; an article before the answer moves into
the continuation so that every option carries its own ("a goat", "an owl").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

def _recall_tasks() -> tuple[str, ...]:
    from flanctl.catalog.builtin import BUILTIN_HELD_OUT_TASKS

    return tuple(t for t in BUILTIN_HELD_OUT_TASKS if t.startswith("recall_"))


#: The held-out world tasks, in catalog order.
RECALL_TASKS = _recall_tasks()


def stem_and_options(example) -> tuple[str, list[str]]:
    """(the fact's sentence up to the answer, each option as its continuation)."""
    from flanctl.data.corpus import with_article

    rationale, answer = example.rationale, example.answer
    cut = rationale.rfind(" " + answer)
    if cut < 0:
        raise ValueError(f"rationale {rationale!r} does not state the answer {answer!r}")
    stem = rationale[:cut]
    for article in (" a", " an"):
        if stem.endswith(article):
            return stem[: -len(article)], [" " + with_article(o) for o in example.options]
    return stem, [" " + o for o in example.options]


def probe(predictor, limit: int, tasks=RECALL_TASKS, seed: int = 0) -> dict[str, float]:
    """Accuracy (%) per task of ranking the right option first, in the corpus's words."""
    from flanctl.data.builtin_tasks import generate

    out = {}
    for task in tasks:
        examples = generate(task, "test", limit, seed)
        pairs = [stem_and_options(ex) for ex in examples]
        scores = predictor.loglikelihood([p for p, _ in pairs], [c for _, c in pairs])
        right = sum(ex.options[max(range(len(s)), key=s.__getitem__)] == ex.answer for ex, s in zip(examples, scores))
        out[task] = 100.0 * right / len(examples)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=HERE, help="a flanctl export (default: the shipped base)")
    ap.add_argument("--limit", type=int, default=25, help="questions per held-out task (default 25, as the demo's eval)")
    args = ap.parse_args(argv)
    from flanctl.errors import FlanctlError
    from flanctl.evals.model_source import load_predictor

    try:
        predictor, source = load_predictor(checkpoint=str(args.checkpoint), batch_size=32)
    except FlanctlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    scores = probe(predictor, args.limit)
    print(f"{source}: held-out facts asked in the corpus's words (options ranked; chance 25.0)")
    width = max(len(t) for t in scores)
    for task, score in scores.items():
        print(f"  {task:<{width}}  {score:5.1f}")
    print(f"  {'mean':<{width}}  {sum(scores.values()) / len(scores):5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
