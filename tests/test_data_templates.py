"""Templates: YAML data, Jinja2 sandbox, the five formats, few-shot pruning to a token budget."""

from __future__ import annotations

import random

import pytest

from flanctl.data.examples import Example
from flanctl.data.templates import DEFAULT_TEMPLATES, load_templates, render_example
from flanctl.data.tokenizers import ByteTokenizer
from flanctl.errors import FlanctlError

EX = Example("Is 7 even or odd?", "odd", ["even", "odd"], "7 ends in 7, which is odd.", "odd", "parity")
POOL = [Example(f"Is {n} even or odd?", "even" if n % 2 == 0 else "odd", ["even", "odd"], "r", None, "parity") for n in range(10, 30)]


def _write(tmp_path, body: str):
    p = tmp_path / "t.yaml"
    p.write_text(body)
    return p


@pytest.mark.parametrize("expr", ["{{ ''.__class__ }}", "{{ inputs.__class__.__mro__ }}", "{{ inputs['__class__'] }}"])
def test_template_reaching_internals_is_refused_at_load(tmp_path, expr):
    p = _write(tmp_path, f'templates:\n  zero_shot_noopts:\n    - inputs: "{expr}"\n      targets: "{{{{ targets }}}}"\n')
    with pytest.raises(FlanctlError) as err:
        load_templates(p)
    msg = str(err.value)
    assert "refused" in msg and "zero_shot_noopts[0].inputs" in msg and "\n" not in msg


def test_sandbox_refuses_unsafe_calls_at_render_time(tmp_path):
    # No underscore attribute to spot statically, but the sandbox still blocks str.format tricks.
    p = _write(tmp_path, 'templates:\n  zero_shot_noopts:\n    - inputs: "{{ \'{0.__class__}\'.format(inputs) }}"\n      targets: "{{ targets }}"\n')
    ts = load_templates(p)
    with pytest.raises(FlanctlError, match="sandbox"):
        render_example(EX, "zero_shot_noopts", ts, random.Random(0))


def test_bad_templates_files_say_where(tmp_path):
    with pytest.raises(FlanctlError, match="unknown format"):
        load_templates(_write(tmp_path, 'templates:\n  two_shot:\n    - {inputs: "x", targets: "y"}\n'))
    with pytest.raises(FlanctlError, match="syntax error"):
        load_templates(_write(tmp_path, 'templates:\n  zero_shot_noopts:\n    - {inputs: "{{ inputs ", targets: "y"}\n'))
    with pytest.raises(FlanctlError, match="unknown variable"):
        render_example(EX, "zero_shot_noopts", load_templates(_write(tmp_path, 'templates:\n  zero_shot_noopts:\n    - {inputs: "{{ nope }}", targets: "y"}\n')), random.Random(0))
    with pytest.raises(FlanctlError, match="does not exist"):
        load_templates(tmp_path / "missing.yaml")


def test_formats_render_as_flan_did():
    ts = load_templates(DEFAULT_TEMPLATES)
    rng = random.Random(0)
    z = render_example(EX, "zero_shot_opts", ts, rng)
    assert z.format == "zero_shot_opts" and "even" in z.inputs and "odd" in z.inputs and z.targets == "odd"
    n = render_example(EX, "zero_shot_noopts", ts, rng)
    assert n.format == "zero_shot_noopts" and "OPTIONS" not in n.inputs
    c = render_example(EX, "cot", ts, rng)
    assert c.inputs.endswith("Let's think step by step.") and c.targets.strip() == "7 ends in 7, which is odd. So the answer is odd."
    noopt = Example("Spell 'cat'.", "c a t", None, None, None, "spelling")
    assert render_example(noopt, "zero_shot_opts", ts, rng).format == "zero_shot_noopts"
    assert render_example(noopt, "cot", ts, rng).format == "zero_shot_noopts"  # no rationale: no CoT


def test_few_shot_uses_exemplars_delimiters_and_budget():
    ts = load_templates(DEFAULT_TEMPLATES)
    tok = ByteTokenizer()
    delims = [("Q: ", "A: "), ("Input: ", "Output: ")]
    r = render_example(EX, "few_shot_noopts", ts, random.Random(1), exemplars=POOL, delimiters=delims, shots=4,
                       count_tokens=tok.count, token_budget=10_000)
    assert r.shots == 4 and r.inputs.count("\n\n") == 4
    q = next(d for d in delims if r.inputs.startswith(d[0]))
    assert r.inputs.count(q[0]) == 5 and r.inputs.endswith(q[1].rstrip()) and r.targets == " odd"
    assert "Is 7 even or odd?" in r.inputs.split("\n\n")[-1]
    seen = {render_example(EX, "few_shot_noopts", ts, random.Random(s), exemplars=POOL, delimiters=delims, shots=1).inputs[:3] for s in range(20)}
    assert len(seen) == 2  # delimiters are drawn at random
    small = render_example(EX, "few_shot_noopts", ts, random.Random(1), exemplars=POOL, delimiters=delims, shots=4,
                           count_tokens=tok.count, token_budget=120)
    assert small.shots < 4 and tok.count(small.inputs) <= 120
    opts = render_example(EX, "few_shot_opts", ts, random.Random(1), exemplars=POOL, delimiters=delims, shots=2)
    assert opts.format == "few_shot_opts" and opts.inputs.count("odd") >= 3
