"""`train.eval_every` end to end: `flanctl apply` evaluates the held-out suites at steps 2 and 4,
writes them to metrics.jsonl, TensorBoard and evals/step_<n>/, and `flanctl report` draws them."""

from __future__ import annotations

import json

from flanctl.report import make_report

SPEC = """\
apiVersion: flanctl/v1
name: every
model:
  family: palm
  architecture: {num_layers: 1, hidden_dim: 32, num_heads: 2, num_kv_heads: 1, head_dim: 16, ffn_dim: 64, vocab_size: 259, max_sequence_length: 64}
  tokenizer: {kind: byte}
mixture:
  collections: [{name: builtin, proportion: 1.0, cap: 20, tasks: [spelling, parity]}]
  few_shot: {min_shots: 0, max_shots: 0}
  inputs_length: 48
  targets_length: 16
train: {learning_rate: 0.01, batch_size: 4, steps: 4, dropout: 0.0, precision: float32, checkpoint_every: 4, log_every: 1, eval_every: 2}
distribution: {backend: jax, device: cpu}
eval: {suites: [builtin], builtin_tasks: [anagram_check], limit: 2, max_decode_length: 4, batch_size: 2}
"""


def test_eval_every_runs_evals_during_training_and_the_report_draws_them(tmp_path, apply_spec):
    (tmp_path / "every.yaml").write_text(SPEC)
    run, losses = apply_spec(tmp_path, "every.yaml", "every")
    assert len(losses) == 4
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/builtin" in r]
    assert [r["step"] for r in evals] == [2, 4]
    for step in (2, 4):
        saved = json.loads((run / "evals" / f"step_{step}" / "builtin.json").read_text())
        assert saved["n"] == 2 and saved["score"] == next(r["eval/builtin"] for r in evals if r["step"] == step)
        assert (run / "evals" / f"step_{step}" / "builtin.predictions.jsonl").is_file()
    # The final eval and the step-0 eval stay where they were.
    assert (run / "evals" / "builtin.json").is_file() and (run / "evals" / "builtin.before.json").is_file()
    import tensorflow as tf

    events = tf.compat.v1.train.summary_iterator(str(next((run / "tb").glob("events.out.tfevents.*"))))
    assert sorted(e.step for e in events for v in e.summary.value if v.tag == "eval/builtin") == [2, 4]

    res = make_report([run], out=tmp_path / "report")
    assert (tmp_path / "report" / "evals_by_step.png") in res.images
    text = res.markdown.read_text()
    assert "Held-out scores during finetuning" in text
    assert "| every | builtin | 2 |" in text and "| every | builtin | 4 |" in text
    assert "| every | builtin | 0 |" in text  # the before-finetuning score starts the curve


def test_eval_every_that_would_do_nothing_is_refused(tmp_path):
    import pytest

    from flanctl.errors import SpecError, SpecErrors
    from flanctl.spec import load_spec

    cases = {
        "train: {steps: 10, eval_every: 5}\n": "train.eval_every needs eval.suites",
        "train: {steps: 10, eval_every: 50}\neval: {suites: [builtin]}\n": "never runs",
        "train: {steps: 10, eval_every: 5}\neval: {suites: [builtin]}\n"
        "distribution: {mesh: {data: 2}, processes: {count: 2, coordinator: '127.0.0.1:9'}}\n": "sharded over 2 processes",
    }
    for i, (body, message) in enumerate(cases.items()):
        spec = tmp_path / f"s{i}.yaml"
        spec.write_text("apiVersion: flanctl/v1\nmodel: {family: palm, size: tiny}\n" + body)
        with pytest.raises((SpecError, SpecErrors), match=message) as exc:
            load_spec(spec)
        assert f"s{i}.yaml:" in str(exc.value) and "eval_every" in str(exc.value)
