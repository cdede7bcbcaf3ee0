"""Data pipeline throughput: flanctl (Jinja2 sandbox + numpy tokenize + grain first-fit packing)
against seqio doing the same work (tf.strings template, ByteVocabulary tokenize, append EOS,
PrefixLMFeatureConverter(pack=True) trim-and-pack), measured in the same run.

Both sides start cold (no cache), render the same single zero-shot template, tokenize with the
same byte vocabulary (pad 0, eos 1, byte b -> b + 3), mix tasks examples-proportionally with a
cap, and pack decoder-only sequences of inputs_length + targets_length (default 2048 + 512)
with segment ids and a loss mask on the targets. Each side runs until it has emitted as many
packed examples as the mixture holds (one epoch's worth); examples/s and packed (non-pad)
tokens/s are that work over wall time.

    .venv/bin/python bench/data_pipeline.py                 # both scenarios
    .venv/bin/python bench/data_pipeline.py --quick         # smaller, for a smoke check
    .venv/bin/python bench/data_pipeline.py --no-seqio      # ours only

seqio is a bench-only dependency (`pip install -e .[bench]`, plus `--no-deps` helpers, see
bench/RESULTS.md); without it the reference is skipped and said so.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from flanctl.data import builtin_tasks  # noqa: E402
from flanctl.data.examples import Example  # noqa: E402
from flanctl.data.mixture import TaskPlan  # noqa: E402
from flanctl.data.stream import build_stream_from_tokenized  # noqa: E402
from flanctl.data.templates import load_templates  # noqa: E402
from flanctl.data.tokenized import render_task  # noqa: E402
from flanctl.data.tokenizers import ByteTokenizer  # noqa: E402
from flanctl.spec.models import Spec  # noqa: E402

# One template both sides can express: "Question: X" plus the options block when there are options.
TEMPLATE_YAML = """name: bench
templates:
  zero_shot_opts:
    - inputs: "Question: {{ inputs }}\\n\\nOPTIONS:\\n- {{ options | join('\\n- ') }}"
      targets: "{{ targets }}"
  zero_shot_noopts:
    - inputs: "Question: {{ inputs }}"
      targets: "{{ targets }}"
"""


def quickstart_tasks(cap: int) -> dict[str, list[Example]]:
    from flanctl.catalog.builtin import BUILTIN_TRAIN_TASKS

    return {t: builtin_tasks.generate(t, "train", cap, 0) for t in BUILTIN_TRAIN_TASKS}


def niv2_like_tasks(n_tasks: int, per_task: int, seed: int = 0) -> dict[str, list[Example]]:
    """Synthetic NIV2-scale collection: per-task definition + instance, skewed sizes and lengths."""
    rng = random.Random(seed)
    words = builtin_tasks.WORDS
    out = {}
    for t in range(n_tasks):
        definition = "Definition: " + " ".join(rng.choices(words, k=rng.randint(20, 80))) + ".\n\n"
        n = max(2, int(per_task * rng.lognormvariate(0, 0.6)))
        has_options = rng.random() < 0.4
        exs = []
        for i in range(n):
            body = " ".join(rng.choices(words, k=int(min(350, rng.lognormvariate(3.6, 0.7)))))
            target = " ".join(rng.choices(words, k=rng.randint(1, 12)))
            options = [target] + [" ".join(rng.choices(words, k=2)) for _ in range(3)] if has_options else None
            exs.append(Example(definition + "Input: " + body, target, options, None, target, f"task{t:04d}"))
        out[f"task{t:04d}"] = exs
    return out


def rates_of(tasks: dict[str, list[Example]], cap: int) -> list[float]:
    sizes = [min(len(v), cap) for v in tasks.values()]
    return [s / sum(sizes) for s in sizes]


def make_spec(inputs_length: int, targets_length: int, batch: int) -> Spec:
    return Spec.model_validate({
        "mixture": {"collections": [{"name": "bench", "proportion": 1.0}], "inputs_length": inputs_length,
                    "targets_length": targets_length, "seed": 0},
        "train": {"batch_size": batch},
    })


def run_flanctl(tasks, cap, spec, templates_path) -> dict:
    tok = ByteTokenizer()
    templates = load_templates(templates_path)
    total = sum(min(len(v), cap) for v in tasks.values())
    t0 = time.perf_counter()
    tokenized = []
    for name, exs in tasks.items():
        plan = TaskPlan(name, "bench", "local", len(exs), min(len(exs), cap), cap, 0.0, {"zero_shot_opts": 1.0}, None, name)
        tokenized.append(render_task(plan, exs[:cap], templates, tok, spec.mixture))
    t_render = time.perf_counter() - t0
    stream = build_stream_from_tokenized(tokenized, rates_of(tasks, cap), spec, tok)
    examples = nonpad = slots = 0
    while examples < total:
        b = next(stream)
        seg = b["segment_ids"]
        examples += int(seg.max(axis=1).sum())
        nonpad += int((seg > 0).sum())
        slots += seg.size
    dt = time.perf_counter() - t0
    return {"examples": examples, "seconds": dt, "render_seconds": t_render, "examples_per_s": examples / dt,
            "tokens_per_s": nonpad / dt, "efficiency": nonpad / slots}


def run_seqio(tasks, cap, spec, tag: str) -> dict | None:
    try:
        import seqio
        import tensorflow as tf
    except Exception as exc:  # noqa: BLE001 - any import problem means: no reference here
        print(f"  seqio reference skipped: {type(exc).__name__}: {exc}")
        return None
    voc = seqio.ByteVocabulary()
    feats = {"inputs": seqio.Feature(voc, add_eos=True), "targets": seqio.Feature(voc, add_eos=True)}
    total = sum(min(len(v), cap) for v in tasks.values())

    def template(ds):
        def f(ex):
            opts = tf.strings.split(ex["opts"], "||")
            with_opts = tf.strings.join(["Question: ", ex["q"], "\n\nOPTIONS:\n- ", tf.strings.reduce_join(opts, separator="\n- ")])
            plain = tf.strings.join(["Question: ", ex["q"]])
            return {"inputs": tf.where(tf.strings.length(ex["opts"]) > 0, with_opts, plain), "targets": ex["a"]}
        return ds.map(f, num_parallel_calls=tf.data.AUTOTUNE)

    t0 = time.perf_counter()
    names = []
    for name, exs in tasks.items():
        exs = exs[:cap]
        cols = {"q": [e.inputs for e in exs], "a": [e.targets for e in exs], "opts": ["||".join(e.options or []) for e in exs]}

        def fn(split, shuffle_files, seed=None, cols=cols):
            return tf.data.Dataset.from_tensor_slices(cols)

        full = f"{tag}_{name}"
        seqio.TaskRegistry.add(full, source=seqio.FunctionDataSource(fn, splits=["train"], num_input_examples={"train": len(exs)}),
                               preprocessors=[template, seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
                               output_features=feats)
        names.append(full)
    seqio.MixtureRegistry.add(f"{tag}_mix", names, default_rate=functools.partial(seqio.mixing_rate_num_examples, maximum=cap))
    ds = seqio.get_dataset(f"{tag}_mix", task_feature_lengths={"inputs": spec.mixture.inputs_length, "targets": spec.mixture.targets_length},
                           dataset_split="train", shuffle=False, num_epochs=None, use_cached=False, seed=0,
                           feature_converter=seqio.PrefixLMFeatureConverter(pack=True))
    ds = ds.batch(spec.train.batch_size)
    t_setup = time.perf_counter() - t0
    examples = nonpad = slots = 0
    for b in ds.as_numpy_iterator():
        seg = b["decoder_segment_ids"]
        examples += int(seg.max(axis=1).sum())
        nonpad += int((seg > 0).sum())
        slots += seg.size
        if examples >= total:
            break
    dt = time.perf_counter() - t0
    return {"examples": examples, "seconds": dt, "setup_seconds": t_setup, "examples_per_s": examples / dt,
            "tokens_per_s": nonpad / dt, "efficiency": nonpad / slots}


def report(name: str, ours: dict, ref: dict | None) -> None:
    print(f"\n== {name}")
    print(f"  flanctl : {ours['examples']:>7,} examples in {ours['seconds']:6.2f}s (render+tokenize {ours['render_seconds']:.2f}s) "
          f"-> {ours['examples_per_s']:>9,.0f} examples/s, {ours['tokens_per_s']:>11,.0f} packed tokens/s, packing efficiency {100 * ours['efficiency']:.1f}%")
    if ref is None:
        return
    print(f"  seqio   : {ref['examples']:>7,} examples in {ref['seconds']:6.2f}s (setup {ref['setup_seconds']:.2f}s)          "
          f"-> {ref['examples_per_s']:>9,.0f} examples/s, {ref['tokens_per_s']:>11,.0f} packed tokens/s, packing efficiency {100 * ref['efficiency']:.1f}%")
    print(f"  ratio   : {ours['examples_per_s'] / ref['examples_per_s']:.2f}x examples/s, {ours['tokens_per_s'] / ref['tokens_per_s']:.2f}x packed tokens/s (flanctl / seqio)")
    steady = ref["examples"] / (ref["seconds"] - ref["setup_seconds"])
    print(f"  ratio without seqio's pipeline setup: {ours['examples_per_s'] / steady:.2f}x examples/s ({steady:,.0f} seqio examples/s after setup)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller mixtures (smoke check)")
    ap.add_argument("--no-seqio", action="store_true", help="skip the seqio reference")
    ap.add_argument("--inputs-length", type=int, default=2048)
    ap.add_argument("--targets-length", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--niv2-tasks", type=int, default=1000)
    args = ap.parse_args()
    spec = make_spec(args.inputs_length, args.targets_length, args.batch)
    # Imports happen before any clock starts, on both sides: we time the pipelines, not module loading.
    import grain.experimental  # noqa: F401
    import grain.python  # noqa: F401
    if not args.no_seqio:
        try:
            import seqio  # noqa: F401
            import tensorflow  # noqa: F401
        except Exception:  # noqa: BLE001 - reported by run_seqio
            pass
    with tempfile.TemporaryDirectory() as tmp:
        tpl = Path(tmp) / "bench_templates.yaml"
        tpl.write_text(TEMPLATE_YAML)
        cap = 200 if args.quick else 1000
        quick = quickstart_tasks(cap)
        ours = run_flanctl(quick, cap, spec, tpl)
        ref = None if args.no_seqio else run_seqio(quick, cap, spec, "quick")
        report(f"quickstart-like builtin mixture: {len(quick)} tasks x {cap}, {args.inputs_length}/{args.targets_length}", ours, ref)

        n_tasks = 200 if args.quick else args.niv2_tasks
        niv2 = niv2_like_tasks(n_tasks, 40)
        cap = 5000  # NIV2's cap (Appendix E); the synthetic tasks are smaller, as most NIV2 tasks are
        ours = run_flanctl(niv2, cap, spec, tpl)
        ref = None if args.no_seqio else run_seqio(niv2, cap, spec, "niv2")
        n = sum(len(v) for v in niv2.values())
        report(f"synthetic NIV2-scale mixture: {n_tasks} tasks, {n:,} examples, {args.inputs_length}/{args.targets_length}", ours, ref)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
