"""Assemble a report over one or more run directories: read, plot, tabulate, write.

`make_report(["runs/a", "runs/b"], out="reports/x")` writes `report.md`, `report.html` and the
PNGs it links into `out` (default `reports/<UTC timestamp>/`) and returns what it wrote.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from flanctl.errors import FlanctlError
from flanctl.report.document import Document, Heading, Image, Paragraph, Table, to_html, to_markdown
from flanctl.report.plots import plot_eval_curves, plot_eval_tasks, plot_loss, plot_scaling
from flanctl.report.rundata import RunRecord, read_run
from flanctl.report.scaling import (format_params, normalized_heldout, num_finetuning_tasks, scaling_points,
                                    scaling_summary, suite_chance)


@dataclass
class ReportResult:
    """What `make_report` wrote."""

    out_dir: Path
    markdown: Path
    html: Path
    images: list[Path] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _fmt_int(value: float | int | None) -> str:
    return "–" if value is None else f"{int(round(value)):,}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def _model_label(run: RunRecord) -> str:
    model = run.plan.get("model") or run.spec.get("model") or {}
    family = model.get("family", "?")
    size = model.get("size") or "custom"
    return f"{family} / {size}"


def _runs_table(runs: list[RunRecord]) -> Table:
    rows = []
    for r in runs:
        steps, losses = r.loss_curve
        tps = [float(m["tokens_per_s"]) for m in r.metrics if isinstance(m.get("tokens_per_s"), (int, float))]
        # The first logged interval includes compilation; the median of the rest is the steady rate.
        steady = sorted(tps[1:] or tps)
        rows.append([
            r.name, _model_label(r), format_params(r.params), _fmt_int(num_finetuning_tasks(r)),
            _fmt_int(steps[-1] if steps else None), _fmt(losses[-1] if losses else None, 3),
            _fmt_int(steady[len(steady) // 2] if steady else None),
            _fmt(normalized_heldout(r.evals_before)), _fmt(r.normalized_average if r.normalized_average is not None else normalized_heldout(r.evals)),
        ])
    return Table(["run", "model", "params", "finetuning tasks", "last step", "last loss", "tokens/s",
                  "held-out before (norm.)", "held-out after (norm.)"], rows)


def _eval_blocks(run: RunRecord, out_dir: Path, images: list[Path]) -> list:
    blocks: list = [Heading(run.name, 3)]
    if not run.evals:
        blocks.append(Paragraph(f"No evals in {run.root / 'evals'}: run `flanctl eval --run {run.root} --suite builtin` to add them."))
        return blocks
    paper_models = sorted({m for res in run.evals.values() for m in res.paper})
    has_before = bool(run.evals_before)  # the column only when the run recorded a before score
    header = ["suite", "ours"] + (["before finetuning"] if has_before else []) + ["n", "chance"]
    header += [f"paper: {m}" for m in paper_models]
    rows = []
    for name, res in sorted(run.evals.items()):
        before = run.evals_before.get(name)
        rows.append([name, _fmt(res.score)] + ([_fmt(before.score if before else None)] if has_before else [])
                    + [_fmt_int(res.n), _fmt(suite_chance(res))] + [_fmt(res.paper.get(m)) for m in paper_models])
    blocks.append(Table(header, rows, caption="Scores in percent; the paper's numbers are the reference models' published scores on the same suite."))
    for name, res in sorted(run.evals.items()):
        if not res.tasks:
            continue
        before = run.evals_before.get(name)
        task_rows = [[t, _fmt(v)] + ([_fmt(before.tasks.get(t) if before else None)] if has_before else [])
                     for t, v in sorted(res.tasks.items())]
        header = ["task", "ours"] + (["before finetuning"] if has_before else [])
        blocks.append(Table(header, task_rows, caption=f"{name}: per task"))
        png = plot_eval_tasks(run, name, out_dir / f"eval_{_slug(run.name)}_{_slug(name)}.png")
        if png:
            images.append(png)
            blocks.append(Image(png, f"{run.name} {name} per-task scores"))
    return blocks


def _default_out() -> Path:
    return Path("reports") / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


def make_report(run_dirs: list[str | Path], out: str | Path | None = None, title: str = "flanctl report") -> ReportResult:
    """Read the runs, draw the plots, and write report.md / report.html into `out`."""
    if not run_dirs:
        raise FlanctlError("report: no run directories given; pass one or more, e.g. `flanctl report runs/quickstart`")
    runs = [read_run(p) for p in run_dirs]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):  # two runs with one name: tell them apart by folder
        for r in runs:
            if names.count(r.name) > 1:
                r.name = f"{r.name} ({r.root})"
    out_dir = Path(out) if out is not None else _default_out()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FlanctlError(f"report: cannot create output folder '{out_dir}' ({exc.strerror}); pass another with --out") from None

    doc = Document(title)
    images: list[Path] = []
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc.add(Paragraph(f"{len(runs)} run(s), generated {stamp}."))
    doc.add(Heading("Runs"), _runs_table(runs))

    doc.add(Heading("Training loss"))
    loss_png = plot_loss(runs, out_dir / "loss.png")
    if loss_png:
        images.append(loss_png)
        doc.add(Image(loss_png, "training loss per run"))
    else:
        doc.add(Paragraph("No training metrics: none of the runs has a metrics.jsonl with loss values."))

    doc.add(Heading("Evals"))
    curves_png = plot_eval_curves(runs, out_dir / "evals_by_step.png")
    if curves_png:
        images.append(curves_png)
        steps_rows = [[r.name, suite, _fmt_int(step), _fmt(score)]
                      for r in runs for suite, (steps, scores) in r.eval_curves.items() for step, score in zip(steps, scores)]
        doc.add(Paragraph("Held-out scores during finetuning (`train.eval_every`; step 0 is the model before "
                          "finetuning where it was recorded): the paper chose its checkpoints by such evals."),
                Image(curves_png, "held-out score against step"),
                Table(["run", "suite", "step", "score"], steps_rows))
    for run in runs:
        doc.add(*_eval_blocks(run, out_dir, images))

    points, notes = scaling_points(runs)
    doc.add(Heading("Scaling: held-out score vs. number of finetuning tasks"))
    if len(points) >= 2:
        png = plot_scaling(points, out_dir / "scaling.png")
        images.append(png)
        doc.add(Paragraph("Normalized held-out score, 100 * (score - chance) / (100 - chance) averaged over the "
                          "evaluated suites, against the number of training tasks in the mixture; one line per "
                          "model size (the shape of Figure 4 in Chung et al., 2022). The point at 0 tasks is the "
                          "model before finetuning, where the runs recorded it."),
                Image(png, "scaling plot"))
        rows = [[p.run, format_params(p.params), str(p.num_tasks), _fmt(p.before), _fmt(p.score)]
                for p in sorted(points, key=lambda p: (p.params or 0, p.num_tasks, p.run))]
        doc.add(Table(["run", "params", "finetuning tasks", "before (norm.)", "after (norm.)"], rows))
        summary = scaling_summary(points)
        if any(sp.runs > 1 for sp in summary):
            doc.add(Paragraph("Several runs per point (e.g. finetuning seeds): their mean, which the plot draws, "
                              "and their range, its error bar."),
                    Table(["params", "finetuning tasks", "runs", "mean (norm.)", "lowest", "highest"],
                          [[format_params(sp.params), str(sp.num_tasks), str(sp.runs), _fmt(sp.mean),
                            _fmt(sp.lowest), _fmt(sp.highest)] for sp in summary]))
    else:
        doc.add(Paragraph("Needs at least two runs with evals and a known number of finetuning tasks."))
    for note in notes:
        doc.add(Paragraph(note))

    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text(to_markdown(doc, out_dir), encoding="utf-8")
    html_path.write_text(to_html(doc), encoding="utf-8")
    return ReportResult(out_dir, md_path, html_path, images, [r.name for r in runs], notes)
