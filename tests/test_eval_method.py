"""`eval.method` (issue 16): rank answer options by log-likelihood instead of reading generated text.

Ranking measures what a model knows apart from whether it can say it in the answer format,
which is the question at toy scale. These tests check the catalog and the suites agree on who
can be ranked, that validate refuses a suite without options, and that ranking scores the
builtin suite by the options (free-answer questions are still generated).
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flanctl.catalog.suites import SUITES
from flanctl.cli import app
from flanctl.evals.runner import run_suite
from flanctl.evals.suites import REGISTRY


def test_catalog_and_suites_agree_on_methods():
    for name, entry in REGISTRY.items():
        facts = SUITES[name]
        if facts.members:
            continue
        suite = entry.create({}) if hasattr(entry, "create") else entry
        assert tuple(suite.methods) == facts.methods, name


@pytest.mark.parametrize("suites, ok", [("[builtin]", True), ("[mmlu, builtin]", True), ("[bbh]", False),
                                        ("[flan-held-out]", False), ("[builtin, builtin-cot]", True), ("[bbh-cot]", True)])
def test_validate_refuses_ranking_a_suite_without_options(tmp_path, suites, ok):
    (tmp_path / "s.yaml").write_text("model: {family: palm, size: tiny}\nmixture:\n  collections:\n"
                                     "    - {name: builtin, proportion: 1, tasks: [parity]}\n"
                                     f"eval: {{suites: {suites}, method: loglikelihood}}\n")
    res = CliRunner().invoke(app, ["validate", str(tmp_path / "s.yaml")])
    assert (res.exit_code == 0) == ok, res.output
    if not ok:
        assert "eval.method loglikelihood ranks answer options" in res.output


class _Ranker:
    """Ranks by a fixed preference: the option that is the gold answer gets the best score when
    `right`, else the worst; generation answers '7'."""

    def __init__(self, gold: dict[str, str], right: bool):
        self.gold, self.right, self.generated = gold, right, 0

    def loglikelihood(self, prompts, continuations):
        sign = 1.0 if self.right else -1.0
        return [[sign * (c == self.gold[p]) for c in conts] for p, conts in zip(prompts, continuations)]

    def generate(self, prompts, max_new_tokens, stop, temperature=0.0, num_samples=1, seed=0):
        self.generated += len(prompts)
        return [["7"] * num_samples for _ in prompts]


@pytest.mark.parametrize("right", [True, False])
def test_builtin_ranks_options_without_a_leading_space_and_generates_free_answers(right):
    from flanctl.evals.suites.builtin import Builtin

    examples = Builtin().load(limit=6)
    gold = {ex.prompt: ex.target for ex in examples}
    pred = _Ranker(gold, right)
    result = run_suite("builtin", pred, None, limit=6, method="loglikelihood")
    ranked = {t: s for t, s in result["tasks"].items() if t != "modular_arithmetic"}
    assert set(ranked.values()) == ({100.0} if right else {0.0})
    assert pred.generated == 6  # modular_arithmetic has no options: generated
    assert result["settings"]["method"] == "loglikelihood"
