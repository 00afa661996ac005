"""``trio-trickle demo``: the whole live system in one process, through the control plane.

An orchestrator (embedded, or an external one with ``orchestrator_url``), a
runner serving the built-in ``LivePipeline`` (``Invert``, written in torch, on
CUDA when present) that registers itself with the orchestrator by heartbeat,
and the gateway client: it discovers the runner, reserves a session on it,
starts the stream through the orchestrator's session proxy, publishes a
generated test pattern at real time, updates ``Invert``'s ``strength``
mid-stream, reads the processed output and the events back while showing fps
and latency, ends the stream and releases the session. It writes
``output.ts`` and a PNG of input frames beside their output, before and after
the params update.

Latency is measured per frame from the moment its GOP segment was published
to the moment the processed frame was decoded from the output channel. Frames
are matched by presentation timestamp, which the runner preserves end to end.
"""

from __future__ import annotations

from .flow import DemoFailed, Media, prepare_media, run_demo
from .report import DemoOptions, DemoReport, write_png

__all__ = [
    "DemoFailed",
    "DemoOptions",
    "DemoReport",
    "Media",
    "prepare_media",
    "run_demo",
    "write_png",
]
