"""The demo's live progress line: frames back, fps and latency, drawn with rich on a terminal."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

import trio

from .report import DemoReport

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["show_progress"]


async def show_progress(
    report: DemoReport,
    total: int,
    started: Callable[[], float],
    *,
    stream: TextIO | None = None,
) -> None:
    """Redraw the progress line every 0.25 s until cancelled; rich renders it on ``stream``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(file=stream or sys.stderr)
    columns = (
        TextColumn("[bold]frames"),
        BarColumn(bar_width=16),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("latency {task.fields[latency]}"),
        TextColumn("{task.fields[note]}"),
    )
    with Progress(*columns, console=console, transient=False, auto_refresh=False) as progress:
        task = progress.add_task("frames", total=total, rate="  - fps", latency="   - ms", note="")
        try:
            while True:
                _draw(progress, task, report, started())
                await trio.sleep(0.25)
        finally:
            _draw(progress, task, report, started())


def _draw(progress: Progress, task: TaskID, report: DemoReport, started: float) -> None:
    elapsed = time.monotonic() - started if started else 0.0
    recent = report.latencies_ms[-30:]
    note = ""
    if report.update_frame is not None:
        update = " ".join(f"{k}={v}" for k, v in report.update_params.items())
        note = f"update {update} @{report.update_frame}"
    progress.update(
        task,
        completed=report.frames_out,
        rate=f"{report.frames_out / elapsed:5.1f} fps" if elapsed > 0 else "  - fps",
        latency=f"{statistics.median(recent):4.0f} ms" if recent else "   - ms",
        note=note,
    )
    progress.refresh()
