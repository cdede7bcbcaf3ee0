"""Tests of `flanctl report` over run directories fabricated in the documented layout.

The run directory layout (DESIGN.md) is the report's input contract, so writing such
directories here is the honest way to test it without training anything.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flanctl.errors import FlanctlError
from flanctl.report import make_report, read_run
from flanctl.report.scaling import normalize, num_finetuning_tasks, scaling_points, scaling_summary

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(root: Path, name: str, *, params: int, tasks: list[str], losses: list[float] | None = None,
             evals: dict | None = None, before: dict | None = None, size: str = "tiny") -> Path:
    """Write a run directory as `flanctl apply` does: spec.yaml, plan.json, metrics.jsonl, evals/."""
    run = root / name
    run.mkdir(parents=True)
    spec = {
        "apiVersion": "flanctl/v1", "name": name,
        "model": {"family": "palm", "size": size},
        "mixture": {"collections": [{"name": "builtin", "proportion": 1.0, "tasks": tasks}]},
        "train": {"steps": 10 * len(losses or [])},
        "eval": {"suites": ["builtin"]},
    }
    (run / "spec.yaml").write_text(yaml.safe_dump(spec))
    plan = {"schema_version": 1, "run": {"name": name, "dir": str(run)}, "spec": spec,
            "model": {"family": "palm", "size": size, "params": params}}
    (run / "plan.json").write_text(json.dumps(plan))
    if losses is not None:
        lines = [json.dumps({"step": 10 * (i + 1), "loss": loss, "tokens_per_s": 1000.0 + i}) for i, loss in enumerate(losses)]
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    for fname, data in (("builtin.json", evals), ("builtin.before.json", before)):
        if data is not None:
            (run / "evals").mkdir(exist_ok=True)
            (run / "evals" / fname).write_text(json.dumps(data))
    return run


def builtin_eval(tasks: dict[str, float], chance: float | None = None) -> dict:
    data = {"suite": "builtin", "score": sum(tasks.values()) / len(tasks), "tasks": tasks,
            "n": 50 * len(tasks), "paper": {}}
    if chance is not None:
        data["chance"] = chance
    return data


def test_single_run_report_has_tables_numbers_and_pngs(tmp_path):
    run = make_run(tmp_path / "runs", "quick", params=1_234_567, tasks=["a", "b", "c"],
                   losses=[5.0, 3.2, 2.1, 1.4],
                   evals={"suite": "bbh", "score": 41.25, "tasks": {"navigate": 50.0, "snarks": 32.5}, "n": 500,
                          "paper": {"Flan-PaLM 540B": 57.9, "Flan-T5-XXL": 45.3}, "chance": 0.0},
                   before=None)
    res = make_report([run], out=tmp_path / "rep")
    md = res.markdown.read_text()
    # The eval table puts the paper's numbers beside ours.
    assert "| bbh | 41.2 |" in md or "| bbh | 41.3 |" in md
    assert "paper: Flan-PaLM 540B" in md and "57.9" in md and "45.3" in md
    assert "| navigate | 50.0 |" in md
    # Runs table: params, task count from the spec, last step and loss, median tokens/s after the first.
    assert "| quick | palm / tiny | 1.23M | 3 | 40 | 1.400 | 1,002 |" in md
    for img in res.images:
        assert img.read_bytes().startswith(PNG_MAGIC) and img.stat().st_size > 5000
    assert {p.name for p in res.images} == {"loss.png", "eval_quick_bbh.png"}
    assert "](loss.png)" in md
    html = res.html.read_text()
    assert html.count("data:image/png;base64,") == 2 and "<td class=\"num\">57.9</td>" in html
    # One run cannot make a scaling curve; the report says so instead of drawing one point.
    assert "Needs at least two runs" in md


def test_scaling_plot_over_sizes_and_task_counts(tmp_path):
    runs = []
    all_tasks = [f"t{i}" for i in range(16)]
    for params, size in ((300_000, "tiny"), (2_000_000, "mini")):
        for k in (1, 4, 16):
            gain = 10 * math.log2(k + 1) + (5 if params > 1e6 else 0)
            runs.append(make_run(tmp_path / "runs", f"{size}-{k}", params=params, tasks=all_tasks[:k],
                                 losses=[4.0, 3.0], evals=builtin_eval({"h1": 20 + gain, "h2": 10 + gain}, chance=0.0),
                                 before=builtin_eval({"h1": 5.0, "h2": 3.0}, chance=0.0), size=size))
    points, notes = scaling_points([read_run(r) for r in runs])
    assert notes == [] and len(points) == 6
    p = next(p for p in points if p.run == "mini-16")
    assert p.num_tasks == 16 and p.params == 2_000_000
    assert p.score == pytest.approx(15 + 10 * math.log2(17) + 5)
    assert p.before == pytest.approx(4.0)
    res = make_report(runs, out=tmp_path / "rep")
    assert (tmp_path / "rep" / "scaling.png").read_bytes().startswith(PNG_MAGIC)
    md = res.markdown.read_text()
    assert "![scaling plot](scaling.png)" in md
    assert "| mini-16 | 2M | 16 | 4.0 |" in md
    gain = 10 * math.log2(17) + 5
    # Per-task table of mini-16: ours beside the before-finetuning score.
    assert f"| h1 | {20 + gain:.1f} | 5.0 |" in md and f"| builtin | {15 + gain:.1f} | 4.0 | 100 | 0.0 |" in md


def test_normalization_uses_chance(tmp_path):
    assert normalize(25.0, 25.0) == 0.0 and normalize(100.0, 25.0) == 100.0
    assert normalize(62.5, 25.0) == pytest.approx(50.0)
    a = make_run(tmp_path, "a", params=10, tasks=["x"], evals=builtin_eval({"h": 62.5}, chance=25.0))
    b = make_run(tmp_path, "b", params=10, tasks=["x", "y"], evals=builtin_eval({"h": 40.0}, chance=0.0))
    points, _ = scaling_points([read_run(a), read_run(b)])
    assert [round(p.score, 6) for p in points] == [50.0, 40.0]


def test_task_count_honours_excluded_tasks_and_user_tasks(tmp_path):
    run = make_run(tmp_path, "r", params=10, tasks=["a", "b", "c", "d"])
    spec = yaml.safe_load((run / "spec.yaml").read_text())
    coll = spec["mixture"]["collections"][0]
    coll["exclude_tasks"] = ["b"]
    coll["user_tasks"] = [{"name": "mine", "source": {"kind": "local", "path": "x.jsonl"}}]
    spec["mixture"]["collections"].append({"name": "builtin", "proportion": 0.0, "tasks": ["z"]})
    (run / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert num_finetuning_tasks(read_run(run)) == 3 + 1


def test_run_without_evals_says_no_evals(tmp_path):
    run = make_run(tmp_path, "noeval", params=10, tasks=["a"], losses=[2.0, 1.0])
    res = make_report([run], out=tmp_path / "rep")
    md = res.markdown.read_text()
    assert "No evals in" in md and "flanctl eval --run" in md
    assert "noeval: left out of the scaling plot (no evals)" in md


def test_missing_and_non_run_dirs_are_one_line_errors(tmp_path):
    with pytest.raises(FlanctlError, match=r"does not exist; pass a run folder"):
        read_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FlanctlError, match=r"is not a run directory .*flanctl apply"):
        read_run(tmp_path / "empty")
    with pytest.raises(FlanctlError, match="no run directories"):
        make_report([], out=tmp_path / "rep")


def test_corrupt_inputs_name_file_and_line(tmp_path):
    run = make_run(tmp_path, "bad", params=10, tasks=["a"], losses=[2.0, 1.0, 0.5])
    lines = (run / "metrics.jsonl").read_text().splitlines()
    # A truncated last line (run killed mid-write) is tolerated ...
    (run / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 4')
    assert read_run(run).loss_curve == ([10, 20, 30], [2.0, 1.0, 0.5])
    # ... a broken line in the middle is not.
    (run / "metrics.jsonl").write_text(lines[0] + "\nnot json\n" + lines[1] + "\n")
    with pytest.raises(FlanctlError, match=r"metrics.jsonl:2:1: not a JSON object"):
        read_run(run)
    (run / "metrics.jsonl").write_text(lines[0] + "\n")
    (run / "evals").mkdir()
    (run / "evals" / "bbh.json").write_text('{"score": 3}')
    with pytest.raises(FlanctlError, match=r"bbh.json: eval result has no 'suite' key"):
        read_run(run)


def test_multi_suite_file_and_duplicate_names(tmp_path):
    a = make_run(tmp_path / "x", "same", params=10, tasks=["a"], losses=[1.0])
    b = make_run(tmp_path / "y", "same", params=10, tasks=["a", "b"], losses=[1.0])
    (a / "evals").mkdir()
    (a / "evals" / "flan-held-out.json").write_text(json.dumps({
        "suites": [{"suite": "mmlu", "score": 40.0, "tasks": {}, "n": 10, "paper": {"Flan-PaLM 540B": 73.5}},
                   {"suite": "mgsm", "score": 5.0, "tasks": {}, "n": 10, "paper": {}}],
        "normalized_average": 12.5}))
    rec = read_run(a)
    assert set(rec.evals) == {"mmlu", "mgsm"} and rec.normalized_average == 12.5
    res = make_report([a, b], out=tmp_path / "rep")
    md = res.markdown.read_text()
    assert f"same ({a})" in md and f"same ({b})" in md
    assert "73.5" in md


def test_cli_report_command(tmp_path):
    run = make_run(tmp_path / "runs", "cli", params=1000, tasks=["a"], losses=[3.0, 2.0],
                   evals=builtin_eval({"h": 30.0}))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "flanctl.cli", "report", str(run), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.md").exists() and (out / "report.html").exists() and (out / "loss.png").exists()
    assert "report.md" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "flanctl.cli", "report", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: run directory") and "does not exist" in lines[0]


def test_chance_falls_back_to_the_catalog(tmp_path):
    """An eval file without `chance` is normalized with the catalog's chance rate (BBH: 25.7%)."""
    from flanctl.catalog.suites import SUITES

    run = make_run(tmp_path, "bbh", params=10, tasks=["a"])
    (run / "evals").mkdir()
    (run / "evals" / "bbh.json").write_text(json.dumps({"suite": "bbh", "score": 50.0, "tasks": {}, "n": 1, "paper": {}}))
    points, _ = scaling_points([read_run(run)])
    chance = SUITES["bbh"].chance
    assert points[0].score == pytest.approx(100 * (50.0 - chance) / (100 - chance))


def test_html_escapes_run_text_and_renders_code(tmp_path):
    run = make_run(tmp_path, "x<script>", params=10, tasks=["a"], losses=[1.0])
    res = make_report([run], out=tmp_path / "rep", title="<b>t</b>")
    html = res.html.read_text()
    assert "<script>" not in html and "x&lt;script&gt;" in html and "&lt;b&gt;t&lt;/b&gt;" in html
    assert "<code>flanctl eval --run" in html


def test_several_runs_per_point_are_averaged_with_their_range(tmp_path):
    """Seeds of one (size, task count): the plot's point is their mean, the summary table gives
    mean, lowest and highest; the 0-task point averages the runs' before-finetuning scores."""
    runs = []
    for seed, (s1, s4) in enumerate(((10.0, 30.0), (20.0, 24.0), (15.0, 36.0))):
        for k, score in ((1, s1), (4, s4)):
            runs.append(make_run(tmp_path / "runs", f"s-t{k}-seed{seed}", params=500_000,
                                 tasks=[f"t{i}" for i in range(k)], losses=[2.0],
                                 evals=builtin_eval({"h": score}, chance=0.0),
                                 before=builtin_eval({"h": 2.0 + seed}, chance=0.0)))
    points, _ = scaling_points([read_run(r) for r in runs])
    summary = scaling_summary(points)
    assert summary == [(500_000, 0, 1, pytest.approx(3.0), pytest.approx(3.0), pytest.approx(3.0)),
                       (500_000, 1, 3, pytest.approx(15.0), 10.0, 20.0),
                       (500_000, 4, 3, pytest.approx(30.0), 24.0, 36.0)]
    md = make_report(runs, out=tmp_path / "rep").markdown.read_text()
    assert "| 500K | 4 | 3 | 30.0 | 24.0 | 36.0 |" in md and "error bar" in md
    # One run per point: no summary table.
    single = make_report(runs[:2], out=tmp_path / "rep1").markdown.read_text()
    assert "error bar" not in single
