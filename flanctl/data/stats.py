"""What a spec's mixture amounts to: per-task counts, rates, epochs, tokens, truncation, packing.

`data_stats` backs `flanctl data stats`; `realize_mixture` backs the plan's
`mixture.realized` (sizes and rates only, no tokenizing, and None when the data would need
the network). `preview_examples` backs `flanctl data preview`.
"""

from __future__ import annotations

from pathlib import Path

from flanctl.errors import FlanctlError


def tokenizer_for_spec(spec, base_dir):
    """The spec's tokenizer; a missing SentencePiece model is trained on the mixture's text."""
    from flanctl.data.tokenizers import get_tokenizer
    from flanctl.plan.presets import spec_tokenizer

    tok = spec_tokenizer(spec.model, base_dir)
    texts = None
    if tok.kind == "sentencepiece" and tok.path:
        model_file = Path(tok.path) if Path(tok.path).is_absolute() else Path(base_dir) / tok.path
        if not model_file.exists() and _wait_or_claim(model_file):
            try:
                texts = mixture_texts(spec, base_dir)
                return get_tokenizer(tok, base_dir, mixture_texts=texts, backend=spec.distribution.backend)
            finally:
                model_file.with_name(model_file.name + ".lock").unlink(missing_ok=True)
    if tok.kind == "preset" and not tok.path:
        tok = tok.model_copy(update={"path": spec.model.preset or spec.model.checkpoint})
    return get_tokenizer(tok, base_dir, mixture_texts=texts, backend=spec.distribution.backend)


def _wait_or_claim(model_file: Path, timeout_s: float = 3600.0) -> bool:
    """True when this process should train the missing SentencePiece model; False once another
    process (another host on a shared folder) has written it. One trains, the others wait."""
    import os
    import sys
    import time

    lock = model_file.with_name(model_file.name + ".lock")
    model_file.parent.mkdir(parents=True, exist_ok=True)
    told = False
    deadline = time.time() + timeout_s
    while not model_file.exists():
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            if time.time() > deadline or time.time() - lock.stat().st_mtime > timeout_s:
                lock.unlink(missing_ok=True)  # a stale lock: its trainer died
                continue
        if not told:
            print(f"flanctl: waiting for another process to train {model_file} (lock {lock})", file=sys.stderr)
            told = True
        time.sleep(0.5)
    return False


def mixture_texts(spec, base_dir, per_task: int = 2000, max_texts: int = 400_000) -> list[str]:
    """Raw text of the mixture (inputs, targets, rationales), for training a tokenizer.

    Pre-rendered Flan tasks give a seeded sample of their kept rows, read once per source (at
    most `max_texts` texts over all tasks), never the whole collection."""
    from flanctl.data.flan_source import select_rows
    from flanctl.data.flan_tokens import _limit_alloc, read_rows
    from flanctl.data.mixture import realize

    texts = []
    tasks = realize(spec, Path(base_dir)).tasks
    flan = [t for t in tasks if t.flan is not None]
    if flan:
        per = max(1, min(per_task, max_texts // (2 * len(flan))))
        groups: dict[str, list] = {}
        for t in flan:
            groups.setdefault(t.flan.group, []).append(t.flan)
        for refs in groups.values():
            index = refs[0].index
            rows = select_rows(index, {r.code: _limit_alloc(r.alloc, per) for r in refs}, spec.mixture.seed)
            table = read_rows(index.source, rows, ("inputs", "targets"))
            for col in ("inputs", "targets"):
                texts.extend(t for t in table.column(col).to_pylist() if t)
    for task in tasks:
        if task.flan is not None:
            continue
        for ex in task.load()[:per_task]:
            texts.extend(t for t in (ex.inputs, ex.targets, ex.rationale) if t)
    return texts


def realize_mixture(spec, base_dir) -> dict | None:
    """Realized mixture numbers for the plan, or None when a source is a hub id (network)."""
    from flanctl.data.mixture import realize

    try:
        mixture = realize(spec, Path(base_dir), allow_network=False)
    except LookupError:
        return None
    steps, batch = spec.train.steps, spec.train.batch_size
    tasks = []
    for t in mixture.tasks:
        tasks.append({
            "name": t.name, "collection": t.collection, "source": t.source_kind, "available": t.available,
            "cap": t.cap, "count": t.size, "rate": t.rate,
            # one example per sequence; packing multiplies this by the examples per sequence (data stats measures it)
            "epochs_unpacked": t.rate * steps * batch / t.size,
            # what the task's examples are made from (a generator's version, a file's size and
            # time, a hub revision): `plan`/`apply` compare it with the run's (plan.diff)
            "fingerprint": t.source_fingerprint,
        })
    collections = {}
    for name, p in mixture.proportions.items():
        members = [t for t in mixture.tasks if t.collection == name]
        collections[name] = {"proportion": p, "tasks": len(members), "examples": sum(t.size for t in members)}
    return {"tasks": tasks, "collections": collections, "notes": mixture.notes, "temperature": spec.mixture.temperature}


def _measure_packing(tokenized, rates, spec, tokenizer, rows: int, base_dir=None) -> tuple[float, float]:
    """(non-pad fraction, examples per sequence) over the first `rows` rows of the stream."""
    from flanctl.data.stream import build_stream_from_tokenized, row_layout

    stream = build_stream_from_tokenized(tokenized, rates, spec, tokenizer, base_dir=base_dir)
    enc_dec, _ = row_layout(spec, base_dir)
    key = "encoder_segment_ids" if enc_dec else "segment_ids"
    nonpad = total = examples = seen = 0
    while seen < rows:
        b = next(stream)
        seg = b[key]
        nonpad += int((seg > 0).sum())
        if enc_dec:
            dseg = b["decoder_segment_ids"]
            nonpad += int((dseg > 0).sum())
            total += dseg.size
        total += seg.size
        examples += int(sum(len(set(r[r > 0].tolist())) for r in seg))
        seen += seg.shape[0]
    return nonpad / total, examples / seen


def data_stats(spec, base_dir, tokenizer=None, sample_rows: int = 256) -> dict:
    """Per-task count, rate, epochs, tokens and truncation; overall packing efficiency (0..1)."""
    from flanctl.data.mixture import realize
    from flanctl.data.stream import objective_layout_for, row_layout
    from flanctl.data.tokenized import tokenize_tasks

    base_dir = Path(base_dir)
    tokenizer = tokenizer or tokenizer_for_spec(spec, base_dir)
    mixture = realize(spec, base_dir)
    layout = objective_layout_for(spec, tokenizer, base_dir)
    tokenized = tokenize_tasks(mixture, tokenizer, spec.mixture, base_dir, text_length=layout.text_length if layout else None)
    rates = [t.rate for t in mixture.tasks]
    rows = max(spec.train.batch_size, min(sample_rows, spec.train.steps * spec.train.batch_size))
    efficiency, per_seq = _measure_packing(tokenized, rates, spec, tokenizer, rows, base_dir)
    steps, batch = spec.train.steps, spec.train.batch_size
    seen = steps * batch * per_seq
    tasks = []
    for t, tt in zip(mixture.tasks, tokenized):
        tasks.append({
            "task": t.name, "collection": t.collection, "available": t.available, "count": t.size,
            "rate": round(t.rate, 6), "epochs": round(t.rate * seen / t.size, 4),
            "tokens": tt.tokens, "mean_tokens": round(tt.tokens / max(1, len(tt)), 2),
            "truncated_inputs": tt.truncated_inputs, "truncated_targets": tt.truncated_targets, "tokens_cut": tt.tokens_cut,
        })
    return {
        "tasks": tasks,
        "collections": {k: round(v, 6) for k, v in mixture.proportions.items()},
        "notes": mixture.notes,
        "examples": sum(t.size for t in mixture.tasks),
        "tokens": sum(tt.tokens for tt in tokenized),
        "steps": steps,
        "batch_size": batch,
        "sequence_length": spec.mixture.inputs_length + spec.mixture.targets_length,
        "packing": row_layout(spec, base_dir)[1],
        "examples_per_sequence": round(per_seq, 4),
        "examples_seen": round(seen, 1),
        "packing_efficiency": round(efficiency, 6),
        "sampled_rows": rows,
        "tokenizer": tokenizer.fingerprint,
    }


def _decode(tokenizer, ids, layout=None) -> str:
    """Text of token ids; a span sentinel (an id above the tokenizer's vocabulary) reads <extra_id_k>, as T5 writes it."""
    ids = [int(i) for i in ids]
    if layout is None or all(i < tokenizer.vocab_size for i in ids):
        return tokenizer.decode(ids)
    out, run = [], []
    for i in ids:
        if i < tokenizer.vocab_size:
            run.append(i)
            continue
        if run:
            out.append(tokenizer.decode(run))
            run = []
        out.append(f"<extra_id_{layout.sentinel_top - 1 - i}>")
    if run:
        out.append(tokenizer.decode(run))
    return "".join(out)


def preview_examples(spec, base_dir, n: int = 5, task: str | None = None, tokenizer=None) -> list[dict]:
    """The first `n` training examples in stream order (or of one task), as the model sees them."""
    from flanctl.data.mixture import realize
    from flanctl.data.stream import build_example_dataset, objective_layout_for
    from flanctl.data.templates import FORMATS
    from flanctl.data.tokenized import tokenize_tasks

    base_dir = Path(base_dir)
    tokenizer = tokenizer or tokenizer_for_spec(spec, base_dir)
    mixture = realize(spec, base_dir)
    names = [t.name for t in mixture.tasks]
    if task is not None and task not in names:
        raise FlanctlError(f"--task {task}: not in this mixture; tasks: {', '.join(names)}")
    tasks = [t for t in mixture.tasks if task is None or t.name == task]
    mixture.tasks = tasks
    layout = objective_layout_for(spec, tokenizer, base_dir)
    tokenized = tokenize_tasks(mixture, tokenizer, spec.mixture, base_dir, text_length=layout.text_length if layout else None)
    ds = build_example_dataset(tokenized, [t.rate for t in tasks], spec.mixture.seed, 0, 1)
    objective = None
    if layout is not None:
        from flanctl.data.objectives import ObjectiveFeatures

        objective = ObjectiveFeatures(layout, None, spec.mixture.seed, tokenizer.bos_id)
    out = []
    for i in range(n):
        el = ds[i]
        tt = tokenized[el["task"]]
        inp, tgt = el["inputs"], el["targets"]
        if objective is not None:  # what the objective makes of the raw-text piece
            inp, tgt, fmt = objective.pair(el)
        else:
            fmt = tt.format_name(el["index"])
        out.append({
            "task": tt.name, "index": el["index"], "format": fmt if fmt in FORMATS else f"{fmt} (pre-rendered)",
            "inputs": _decode(tokenizer, inp, layout), "targets": _decode(tokenizer, tgt, layout),
            "input_tokens": int(len(inp)), "target_tokens": int(len(tgt)),
        })
    return out


__all__ = ["data_stats", "preview_examples", "realize_mixture", "tokenizer_for_spec", "mixture_texts"]
