"""PNG plots of a report: training loss, per-task eval scores, and the scaling curve.

matplotlib is imported inside each function with the Agg backend, so that reading runs and
writing Markdown never needs a display or pays for matplotlib's import.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from flanctl.report.rundata import RunRecord
from flanctl.report.scaling import ScalingPoint, SummaryPoint, format_params, scaling_summary

_DPI = 130
_STYLE = {
    "font.size": 11,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "legend.fontsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_loss(runs: list[RunRecord], path: Path) -> Path | None:
    """Training loss against step, one line per run; None when no run logged a loss."""
    curves = [(r.name, *r.loss_curve) for r in runs]
    curves = [c for c in curves if c[1]]
    if not curves:
        return None
    plt = _pyplot()
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(8, 4.8))
        cmap = plt.get_cmap("tab10" if len(curves) <= 10 else "viridis")
        for i, (name, steps, losses) in enumerate(curves):
            color = cmap(i if len(curves) <= 10 else i / max(1, len(curves) - 1))
            ax.plot(steps, losses, label=name, color=color, linewidth=1.6,
                    marker="o" if len(steps) <= 3 else None)
        all_losses = [v for c in curves for v in c[2]]
        # Cross-entropy falls by orders of magnitude early on; a log axis keeps the tail readable.
        if min(all_losses) > 0 and max(all_losses) / min(all_losses) > 5:
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss (target tokens)")
        ax.set_title("Training loss")
        if len(curves) > 6:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        else:
            ax.legend(frameon=False)
        fig.tight_layout()
        fig.savefig(path, dpi=_DPI)
        plt.close(fig)
    return path


def plot_eval_curves(runs: list[RunRecord], path: Path) -> Path | None:
    """Held-out score against step (the evals of `train.eval_every`), one line per run and
    suite; None when no run evaluated during training."""
    curves = [(f"{r.name}: {suite}" if len(runs) > 1 else suite, steps, scores)
              for r in runs for suite, (steps, scores) in r.eval_curves.items()]
    if not curves:
        return None
    plt = _pyplot()
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(8, 4.8))
        for label, steps, scores in curves:
            ax.plot(steps, scores, label=label, linewidth=1.6, marker="o")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("held-out score (%)")
        ax.set_title("Held-out evals during finetuning")
        ax.legend(frameon=False)
        fig.tight_layout()
        fig.savefig(path, dpi=_DPI)
        plt.close(fig)
    return path


def plot_eval_tasks(run: RunRecord, suite: str, path: Path) -> Path | None:
    """Horizontal bars of per-task scores for one suite (before vs after when both exist)."""
    after = run.evals.get(suite)
    if after is None or not after.tasks:
        return None
    before = run.evals_before.get(suite)
    tasks = sorted(after.tasks)
    plt = _pyplot()
    with plt.rc_context(_STYLE):
        height = max(2.6, 0.38 * len(tasks) + 1.4)
        fig, ax = plt.subplots(figsize=(8, height))
        ys = list(range(len(tasks)))
        bar = 0.38 if before else 0.7
        if before:
            ax.barh([y + bar / 2 for y in ys], [before.tasks.get(t, 0.0) for t in tasks], height=bar,
                    color="#b0b0b0", label="before finetuning")
            ax.barh([y - bar / 2 for y in ys], [after.tasks[t] for t in tasks], height=bar,
                    color="#1f77b4", label="after finetuning")
            ax.legend(frameon=False, loc="lower right")
        else:
            ax.barh(ys, [after.tasks[t] for t in tasks], height=bar, color="#1f77b4")
        ax.set_yticks(ys, tasks)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("score (%)")
        title = f"{run.name}: {suite}"
        if after.score is not None:
            title += f" = {after.score:.1f}%"
            if before and before.score is not None:
                title += f" (before: {before.score:.1f}%)"
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(path, dpi=_DPI)
        plt.close(fig)
    return path


def plot_scaling(points: list[ScalingPoint], path: Path) -> Path | None:
    """Normalized held-out score against number of finetuning tasks, one line per model size."""
    if not points:
        return None
    # Several runs at the same (size, task count), e.g. seeds: the mean, with their range.
    by_size: dict[int | None, list[SummaryPoint]] = defaultdict(list)
    for sp in scaling_summary(points):
        by_size[sp.params].append(sp)
    plt = _pyplot()
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(8, 5.2))
        markers = "osD^v<>p"
        xs_all: set[int] = set()
        sizes = sorted(by_size, key=lambda s: (s is None, s or 0))
        for i, size in enumerate(sizes):
            rows = by_size[size]  # by task count; the "0 tasks" point is the model before finetuning
            xs, ys = [r.num_tasks for r in rows], [r.mean for r in rows]
            xs_all.update(xs)
            line, = ax.plot(xs, ys, marker=markers[i % len(markers)], markersize=7, linewidth=2,
                            label=f"{format_params(size)} params")
            spread = [r for r in rows if r.runs > 1]
            if spread:  # lowest to highest run as an error bar
                ax.errorbar([r.num_tasks for r in spread], [r.mean for r in spread],
                            yerr=[[r.mean - r.lowest for r in spread], [r.highest - r.mean for r in spread]],
                            fmt="none", ecolor=line.get_color(), elinewidth=1.2, capsize=4, alpha=0.8)
            # Value labels only while they cannot collide; the report's table has every number.
            for x, y in zip(xs, ys) if len(sizes) <= 2 else ():
                ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, 7),
                            ha="center", fontsize=8, color=line.get_color())
        # Task counts grow geometrically (1, 4, 8, 16 ...; the paper: 9 ... 1,836): log-x, with
        # a linear stretch around 0 so that the no-finetuning point can sit on the same axis.
        if 0 in xs_all:
            ax.set_xscale("symlog", linthresh=1, linscale=0.6)
        elif len(xs_all) > 1 and max(xs_all) / max(1, min(xs_all)) >= 4:
            ax.set_xscale("log")
        ticks = sorted(xs_all)
        ax.set_xticks(ticks, [str(t) if t else "0\n(not finetuned)" for t in ticks])
        ax.minorticks_off()
        # Normalized scores put chance at 0: draw it, so below-chance runs read as such.
        ax.axhline(0.0, color="0.45", linestyle="--", linewidth=1)
        ax.annotate("chance", (1.0, 0.0), xycoords=("axes fraction", "data"), xytext=(-4, 4),
                    textcoords="offset points", ha="right", va="bottom", fontsize=9, color="0.35")
        ax.set_xlabel("number of finetuning tasks")
        ax.set_ylabel("normalized held-out score (%)")
        ax.set_title("Held-out score vs. number of finetuning tasks")
        ax.legend(frameon=False, title="model size")
        ax.margins(x=0.08, y=0.15)
        fig.tight_layout()
        fig.savefig(path, dpi=_DPI)
        plt.close(fig)
    return path
