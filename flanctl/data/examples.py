"""The unit of data every source produces: one task example before templating."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Example:
    """One example of a task, before a template turns it into a prompt.

    `inputs` is the question without any instruction wrapper, `targets` the reference output
    (for built-in tasks equal to `answer`), `options` the answer choices where a task has them,
    `rationale` a short step-by-step explanation used by chain-of-thought templates.
    """

    inputs: str
    targets: str
    options: list[str] | None = None
    rationale: str | None = None
    answer: str | None = None
    task: str = ""

    def to_dict(self) -> dict:
        """Plain dict (JSON-able), e.g. for writing fixtures."""
        return asdict(self)
