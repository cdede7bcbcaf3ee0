"""The rich progress bar of a training job: step, loss, tokens/s, MFU and ETA.

On CPU the MFU is relative to a matmul measured in-process (`flanctl.train.throughput`), not to
a hardware peak; on accelerators it is relative to the vendor peak of the device table.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def training_progress(console: Console | None) -> Progress:
    """A Progress whose task carries `loss`, `tps` (tokens/s) and `mfu` fields."""
    return Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[tps]:,.0f} tok/s"),
        TextColumn("MFU {task.fields[mfu]:.1%}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=False,
        refresh_per_second=4,
    )
