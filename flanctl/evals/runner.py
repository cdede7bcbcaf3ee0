"""Running and scoring suites: prompts -> predictor -> texts -> answers -> the `--json` object.

`run_suite` asks a `Predictor`; `score_predictions` reads a predictions file instead. Both end
in the same `Suite.score`, so a file scored here gets exactly the numbers a live run would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from flanctl.errors import FlanctlError
from flanctl.evals.predictions_file import read_predictions, write_predictions
from flanctl.evals.suites import HELD_OUT_SIX, SuiteGroup, expand, lookup
from flanctl.evals.suites.base import EvalExample, Suite, mean, prompts_hash

Progress = Callable[[str, int, int], None]  # (suite, done, total)


def _sc_settings(self_consistency: Any) -> tuple[int, float]:
    """(samples, temperature) from a spec `SelfConsistency`, a dict, a tuple, or None."""
    if self_consistency is None:
        return 1, 0.0
    if isinstance(self_consistency, dict):
        return int(self_consistency.get("samples", 1)), float(self_consistency.get("temperature", 0.7))
    if isinstance(self_consistency, (tuple, list)):
        return int(self_consistency[0]), float(self_consistency[1])
    return int(self_consistency.samples), float(self_consistency.temperature)


def _finish(suite: Suite, examples: list[EvalExample], result: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    result.pop("_records", None)
    reference = lookup(suite.name).facts.reference(suite.split)
    result["paper"] = dict(reference.scores)
    result["paper_source"] = reference.source
    result["prompts_hash"] = prompts_hash(examples)
    result["settings"] = {**suite.settings(), **extra}
    return result


def _loglikelihood_choices(suite: Suite, predictor, examples: list[EvalExample], batch_size: int) -> dict[str, list[str]]:
    """Rank each question's options by the predictor's log-likelihood (each option as it would
    follow the prompt: `suite.option_prefix` + option); the best option is the 'text'."""
    outputs: dict[str, list[str]] = {}
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        scores = predictor.loglikelihood([ex.prompt for ex in batch], [[suite.option_prefix + o for o in ex.options] for ex in batch])
        for ex, row in zip(batch, scores):
            best = max(range(len(row)), key=lambda k: row[k])
            outputs[ex.id] = [ex.options[best]]
    return outputs


def generate_outputs(
    suite: Suite,
    predictor,
    examples: list[EvalExample],
    samples: int = 1,
    temperature: float = 0.0,
    batch_size: int = 16,
    max_new_tokens: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, list[str]]:
    """id -> generated texts, in batches of `batch_size` prompts. A batch gets the largest decode
    budget of its questions (the suite derives them from its data); `max_new_tokens`, the
    spec's `eval.max_decode_length` or the CLI's `--max-new-tokens`, replaces them (raises or
    lowers every budget)."""
    outputs: dict[str, list[str]] = {}
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        max_new = max(ex.max_new_tokens or suite.max_new_tokens for ex in batch)
        if max_new_tokens:
            max_new = max_new_tokens
        texts = predictor.generate(
            [ex.prompt for ex in batch], max_new, list(suite.stop),
            temperature=temperature, num_samples=samples, seed=seed + start,
        )
        if len(texts) != len(batch):
            raise FlanctlError(f"predictor returned {len(texts)} outputs for {len(batch)} prompts")
        for ex, got in zip(batch, texts):
            outputs[ex.id] = list(got)
        if progress is not None:
            progress(suite.name, min(start + batch_size, len(examples)), len(examples))
    return outputs


def run_suite(
    suite: str,
    predictor,
    data_dir: str | Path | None,
    limit: int | None = None,
    shots: int | dict[str, int] | None = None,
    self_consistency: Any = None,
    *,
    batch_size: int = 16,
    max_new_tokens: int | None = None,
    method: str = "generate",
    cot_prompts: str | Path | None = None,
    builtin_tasks: list[str] | None = None,
    write_predictions_to: str | Path | None = None,
    progress: Progress | None = None,
    **suite_options: Any,
) -> dict[str, Any]:
    """Evaluate `predictor` on `suite`; returns the `--json` object (several suites for a group
    such as `flan-held-out`: `{"suites": [...], "normalized_average": ...}`).

    `method`, `cot_prompts`, `builtin_tasks` and any other `suite_options` go to every suite,
    each reading the ones it takes (`Suite.from_options`)."""
    options = {"method": method, "cot_prompts": cot_prompts, "builtin_tasks": builtin_tasks, **suite_options}
    entry = lookup(suite)
    if isinstance(entry, SuiteGroup):
        return run_suites([suite], predictor, data_dir, limit=limit, shots=shots, self_consistency=self_consistency,
                          batch_size=batch_size, max_new_tokens=max_new_tokens, write_predictions_to=write_predictions_to,
                          progress=progress, **options)
    suite_obj = entry.create(options)
    if suite_obj.cot and method not in suite_obj.methods:
        method = "generate"  # a chain-of-thought answer comes after generated reasoning, whatever the run's method
    if method not in suite_obj.methods:
        raise FlanctlError(f"suite {suite} cannot be scored with method {method!r}: it takes {' or '.join(suite_obj.methods)}"
                           + (" (loglikelihood ranks answer options, which it has none of)" if method == "loglikelihood" else ""))
    examples = suite_obj.load(data_dir, limit=limit, shots=suite_obj.shots_for(shots))
    samples, temperature = _sc_settings(self_consistency)
    if samples <= 1:
        temperature = 0.0
    if method == "loglikelihood":
        # Questions with options are ranked; a suite that also has free-answer questions
        # (builtin's modular_arithmetic) generates those.
        ranked = [ex for ex in examples if ex.options]
        free = [ex for ex in examples if not ex.options]
        outputs = _loglikelihood_choices(suite_obj, predictor, ranked, batch_size)
        if free:
            outputs.update(generate_outputs(suite_obj, predictor, free, 1, 0.0, batch_size, max_new_tokens, progress=progress))
    else:
        outputs = generate_outputs(suite_obj, predictor, examples, samples, temperature, batch_size, max_new_tokens, progress=progress)
    if write_predictions_to is not None:
        write_predictions(_fill_suite(write_predictions_to, suite), outputs)
    result = suite_obj.score(examples, outputs)
    extra = {"limit": limit, "self_consistency": {"samples": samples, "temperature": temperature}, "batch_size": batch_size,
             "method": method}
    if max_new_tokens:
        extra["max_new_tokens"] = max_new_tokens
    return _finish(suite_obj, examples, result, extra)


def run_suites(suites: list[str], predictor, data_dir, **kwargs) -> dict[str, Any]:
    """Several suites (groups expanded) -> `{"suites": [...], "normalized_average": ..., "chance": {...}}`."""
    write_to = kwargs.pop("write_predictions_to", None)
    results = []
    for name in expand(suites):
        per_file = _per_suite_path(write_to, name) if write_to else None
        results.append(run_suite(name, predictor, data_dir, write_predictions_to=per_file, **kwargs))
    return combine(results)


def _fill_suite(path: str | Path, suite: str) -> Path:
    """`evals/{suite}.predictions.jsonl` -> `evals/mmlu.predictions.jsonl`; other paths as given."""
    return Path(str(path).replace("{suite}", suite))


def _per_suite_path(path: str | Path, suite: str) -> Path:
    """One file per suite, since ids repeat across suites (mmlu and mmlu-cot): a `{suite}`
    placeholder is filled in, else `preds.jsonl` -> `preds.mmlu-cot.jsonl`."""
    if "{suite}" in str(path):
        return _fill_suite(path, suite)
    path = Path(path)
    return path.with_name(f"{path.stem}.{suite}{path.suffix or '.jsonl'}")


def combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The several-suite object, with the paper's normalized average over the six held-out
    suites: the mean of each suite's `normalized` (its tasks normalized by their own chance,
    `Suite.normalized`) over those present, chance levels stated. A result without
    `normalized` (written by an older flanctl) is normalized at the suite level."""
    from flanctl.catalog.suites import normalized_score

    normalized = {r["suite"]: r["normalized"] if r.get("normalized") is not None else normalized_score(r["score"], r["chance"])
                  for r in results if r["suite"] in HELD_OUT_SIX}
    out: dict[str, Any] = {"suites": results}
    out["normalized_average"] = mean(normalized.values()) if normalized else None
    out["normalized"] = normalized
    out["normalization"] = "per task, 100 * (score - chance) / (100 - chance) with the task's own chance, averaged like each suite's headline, then over the suites"
    out["chance"] = {r["suite"]: r["chance"] for r in results}
    missing = [s for s in HELD_OUT_SIX if s not in normalized]
    if normalized and missing:
        out["normalized_average_note"] = f"over {len(normalized)} of the paper's six suites (missing: {', '.join(missing)})"
    return out


def score_predictions(suite: str, path: str | Path, data_dir: str | Path | None, limit: int | None = None,
                      **options: Any) -> dict[str, Any]:
    """Score a predictions file with the suite's extraction and aggregation. Missing ids are
    counted (`missing`) and scored wrong; ids the suite does not have are an error. `options`
    are the run options (`shots`, `method`, `cot_prompts`, `builtin_tasks`, ...)."""
    entry = lookup(suite)
    if isinstance(entry, SuiteGroup):
        raise FlanctlError("--predictions scores one suite at a time (ids repeat across suites); pass --suite with one of " + ", ".join(entry.members))
    suite_obj = entry.create(options)
    examples = suite_obj.load(data_dir, limit=limit, shots=suite_obj.shots_for(options.get("shots")))
    outputs = read_predictions(path)
    known = {ex.id for ex in examples}
    unknown = [i for i in outputs if i not in known]
    if unknown:
        first = ", ".join(unknown[:3])
        raise FlanctlError(f"{path}: {len(unknown)} ids are not in suite {suite}{' (with --limit)' if limit else ''}: {first}{', ...' if len(unknown) > 3 else ''}")
    result = suite_obj.score(examples, outputs)
    samples = max((len(v) for v in outputs.values()), default=1)
    return _finish(suite_obj, examples, result, {"limit": limit, "predictions": str(path), "self_consistency": {"samples": samples}})


def write_result(result: dict[str, Any], evals_dir: str | Path, suffix: str = "") -> list[Path]:
    """Write `<evals_dir>/<suite><suffix>.json` for each suite in a result (one or several);
    `suffix=".before"` marks the scores of the model before finetuning."""
    evals_dir = Path(evals_dir)
    evals_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for r in result.get("suites", [result]):
        path = evals_dir / f"{r['suite']}{suffix}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(r, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    if "suites" in result and result.get("normalized_average") is not None:
        path = evals_dir / f"normalized_average{suffix}.json"
        summary = {k: v for k, v in result.items() if k != "suites"}
        path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written
