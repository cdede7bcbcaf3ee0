"""Rich tables of eval results, our numbers beside the paper's."""

from __future__ import annotations

from typing import Any


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_results(result: dict[str, Any], console, show_tasks: bool = True) -> None:
    """Print one suite's or several suites' results: headline, micro, chance, paper scores,
    and the per-task table."""
    from rich.table import Table

    results = result.get("suites", [result])
    summary = Table(title="flanctl eval", show_lines=False)
    for col in ("suite", "score", "micro", "chance", "n", "missing", "Flan-PaLM 540B", "Flan-T5-XXL"):
        summary.add_column(col, justify="left" if col == "suite" else "right")
    for r in results:
        paper = r.get("paper", {})
        summary.add_row(
            r["suite"], _fmt(r["score"]), _fmt(r.get("micro")), _fmt(r.get("chance")), str(r.get("n", "")),
            str(r.get("missing", 0)), _fmt(paper.get("flan-palm-540b")), _fmt(paper.get("flan-t5-xxl")),
        )
    console.print(summary)
    for line in notes_lines(results):
        console.print(line)
    if "suites" in result and result.get("normalized_average") is not None:
        chances = ", ".join(f"{s} {c:.1f}" for s, c in result["chance"].items())
        console.print(f"normalized average: {result['normalized_average']:.1f}  (chance: {chances})")
        if result.get("normalized_average_note"):
            console.print(f"note: {result['normalized_average_note']}")
    if not show_tasks:
        return
    for r in results:
        tasks = Table(title=f"{r['suite']}: per task")
        tasks.add_column("task")
        tasks.add_column("score", justify="right")
        for name, value in r["tasks"].items():
            tasks.add_row(name, _fmt(value))
        console.print(tasks)
        if r.get("missing"):
            console.print(f"note: {r['missing']} examples had no prediction and were scored wrong")


def notes_lines(results: list[dict[str, Any]]) -> list[str]:
    """What the summary table cannot hold: where the paper's numbers come from (and for which
    split), secondary aggregates, and notes about the protocol."""
    lines = []
    for r in results:
        source = r.get("paper_source")
        split = (r.get("settings") or {}).get("split")
        if source:
            lines.append(f"{r['suite']}: paper numbers from Chung et al. (2022) {source}" + (f"; scored split: {split}" if split else ""))
        if r.get("headline"):
            lines.append(f"{r['suite']}: score = {r['headline']}")
        for name, agg in (r.get("aggregates") or {}).items():
            lines.append(f"{r['suite']}: {name} {_fmt(agg.get('score'))} (chance {_fmt(agg.get('chance'))}): {agg.get('about', '')}")
        if r.get("note"):
            lines.append(f"note: {r['suite']}: {r['note']}")
    return lines


class ProgressPrinter:
    """A rich progress bar per suite, fed by `run_suite(progress=...)` callbacks (suite, done, total)."""

    def __init__(self, console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                  console=console, transient=True)
        self._tasks: dict[str, int] = {}

    def __enter__(self):
        self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc)

    def __call__(self, suite: str, done: int, total: int) -> None:
        if suite not in self._tasks:
            self._tasks[suite] = self._progress.add_task(suite, total=total)
        self._progress.update(self._tasks[suite], completed=done)
