"""Rich rendering of `data preview` and `data stats` (the commands stay thin)."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


def render_preview(examples: list[dict], console: Console) -> None:
    """Each example: the prompt dim (no loss), the target highlighted (loss on these tokens)."""
    for i, ex in enumerate(examples):
        body = Text()
        body.append(ex["inputs"], style="dim")
        body.append(ex["targets"], style="bold black on green")
        title = f"#{i} {ex['task']}[{ex['index']}] · {ex['format']}"
        subtitle = f"input {ex['input_tokens']} tokens · target {ex['target_tokens']} tokens (highlighted: loss)"
        console.print(Panel(body, title=title, subtitle=subtitle, title_align="left", subtitle_align="right"))


def render_stats(stats: dict, console: Console) -> None:
    table = Table(title="mixture", show_lines=False)
    table.add_column("task", justify="left", no_wrap=True, min_width=12)
    for col, justify in (("collection", "left"), ("count", "right"), ("rate", "right"),
                         ("epochs", "right"), ("tokens", "right"), ("mean tok", "right"), ("trunc in/tg", "right")):
        table.add_column(col, justify=justify)
    for t in stats["tasks"]:
        table.add_row(t["task"], t["collection"], f"{t['count']:,}", f"{100 * t['rate']:.2f}%", f"{t['epochs']:.2f}",
                      f"{t['tokens']:,}", f"{t['mean_tokens']:.0f}", f"{t['truncated_inputs']}/{t['truncated_targets']}")
    console.print(table)
    console.print(
        f"examples {stats['examples']:,} · tokens {stats['tokens']:,} · sequence {stats['sequence_length']} · "
        f"{stats['examples_per_sequence']:.2f} examples/sequence · packing efficiency {100 * stats['packing_efficiency']:.1f}% "
        f"(over {stats['sampled_rows']} rows) · {stats['steps']} steps x {stats['batch_size']} → {stats['examples_seen']:,.0f} examples seen"
    )
    for note in stats["notes"]:
        console.print(f"note: {note}")
