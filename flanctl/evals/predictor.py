"""The `Predictor` protocol: what the evals need from a model, and nothing more.

Suites build prompts and score text; a predictor turns prompts into text (or scores
continuations). `flanctl.models.KerasPredictor` implements it for palm, t5 and keras-hub
presets; tests implement it with deterministic fakes. Keeping the seam this small is what
lets `flanctl eval --predictions FILE` score outputs that came from anywhere.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Predictor(Protocol):
    """Generates continuations of prompts, and scores given continuations."""

    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int,
        stop: list[str],
        temperature: float = 0.0,
        num_samples: int = 1,
        seed: int = 0,
    ) -> list[list[str]]:
        """For each prompt, `num_samples` continuations (greedy when temperature is 0).

        Each continuation is cut before the first stop sequence and excludes the prompt.
        """
        ...

    def loglikelihood(self, prompts: list[str], continuations: list[list[str]]) -> list[list[float]]:
        """For each prompt, the summed log-probability of each of its continuations."""
        ...
