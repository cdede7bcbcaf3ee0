"""Deterministic predictors with known scores, for checking the eval pipeline end to end.

They implement the `Predictor` protocol without a model: `GoldPredictor` answers every
question correctly (a suite must then score 100), `FixedPredictor` always says the same thing
(its score is the rate of that answer among the targets), `EchoPredictor` repeats the prompt's
last line (should score ~0: extraction must not find answers in the question).
"""

from __future__ import annotations

from collections.abc import Sequence


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def _record(self, prompts, max_new_tokens, stop, temperature, num_samples, seed):
        self.calls.append({"n": len(prompts), "max_new_tokens": max_new_tokens, "stop": list(stop),
                           "temperature": temperature, "num_samples": num_samples, "seed": seed})


class GoldPredictor(_Recorder):
    """Answers from a prompt -> gold lookup, wrapped in `answer_format` (e.g. CoT wording)."""

    def __init__(self, examples: Sequence, answer_format: str = " {}") -> None:
        super().__init__()
        self.gold = {ex.prompt: ex.target for ex in examples}
        self.options = {ex.prompt: ex.options for ex in examples}
        self.answer_format = answer_format

    def generate(self, prompts, max_new_tokens, stop, temperature=0.0, num_samples=1, seed=0):
        self._record(prompts, max_new_tokens, stop, temperature, num_samples, seed)
        return [[self.answer_format.format(self.gold[p])] * num_samples for p in prompts]

    def loglikelihood(self, prompts, continuations):
        return [[0.0 if c.strip() == self.gold[p] else -5.0 for c in conts] for p, conts in zip(prompts, continuations)]


class FixedPredictor(_Recorder):
    """Always the same text (and, for log-likelihood, always prefers option `text.strip()`)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def generate(self, prompts, max_new_tokens, stop, temperature=0.0, num_samples=1, seed=0):
        self._record(prompts, max_new_tokens, stop, temperature, num_samples, seed)
        return [[self.text] * num_samples for _ in prompts]

    def loglikelihood(self, prompts, continuations):
        return [[0.0 if c.strip() == self.text.strip() else -1.0 for c in conts] for conts in continuations]


class EchoPredictor(_Recorder):
    """Repeats the prompt's last non-empty line."""

    def generate(self, prompts, max_new_tokens, stop, temperature=0.0, num_samples=1, seed=0):
        self._record(prompts, max_new_tokens, stop, temperature, num_samples, seed)
        return [[[ln for ln in p.split("\n") if ln.strip()][-1]] * num_samples for p in prompts]

    def loglikelihood(self, prompts, continuations):
        return [[0.0] * len(c) for c in continuations]


class CyclingPredictor(_Recorder):
    """Returns `samples` (a fixed list) as the samples of every prompt: for self-consistency."""

    def __init__(self, samples: Sequence[str]) -> None:
        super().__init__()
        self.samples = list(samples)

    def generate(self, prompts, max_new_tokens, stop, temperature=0.0, num_samples=1, seed=0):
        self._record(prompts, max_new_tokens, stop, temperature, num_samples, seed)
        return [[self.samples[k % len(self.samples)] for k in range(num_samples)] for _ in prompts]

    def loglikelihood(self, prompts, continuations):
        return [[0.0] * len(c) for c in continuations]
