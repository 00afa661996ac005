"""The demo's options, what it measured, and how it shows that (text and PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import trio

from .._telemetry.sinks import NullSink
from .._wire.telemetry import TelemetryEvent

__all__ = ["DemoOptions", "DemoReport", "write_png"]

#: The app the demo's runner registers as, and the gateway asks discovery for.
DEMO_APP = "trio-trickle-demo"


@attrs.frozen(kw_only=True)
class DemoOptions:
    seconds: float = 5.0
    width: int = 512
    height: int = 288
    fps: float = 30.0
    output: Path = Path("output.ts")
    png: Path = Path("demo.png")
    #: Show the live progress line (off when output is not a terminal).
    progress: bool = True
    #: An external orchestrator to register with and reserve through; None: an embedded one.
    orchestrator_url: str | None = None
    #: The orchestrator secret runners register with (an external orchestrator's).
    secret: str | None = None
    #: The app name the runner registers as and the gateway discovers.
    app: str = DEMO_APP
    #: ``Invert``'s ``strength`` at the start of the stream, and from the update on.
    strength: float = 1.0
    strength_after: float = 0.0
    #: Where in the input (a fraction of its frames) the params update is sent.
    update_at: float = 0.5


@attrs.define(eq=False)
class DemoReport:
    frames_in: int = 0
    frames_out: int = 0
    audio_out: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = attrs.field(factory=list)
    #: Stream events (heartbeat, status, stream_stopped, pipeline events) as sent.
    events: list[dict[str, Any]] = attrs.field(factory=list)
    #: Telemetry that reached the gateway's egress: the runner's relayed lifecycle
    #: events and the gateway's own connect/disconnect pair.
    telemetry: list[TelemetryEvent] = attrs.field(factory=list)
    output_bytes: int = 0
    #: The orchestrator session the stream ran in (the gateway request ID).
    session_id: str | None = None
    #: The discovery URL of the runner that served it.
    runner_url: str | None = None
    #: Input frame index at which the params update was sent, and the params.
    update_frame: int | None = None
    update_params: dict[str, Any] = attrs.field(factory=dict)
    #: Output frames that matched the input inverted / unchanged (by pts order).
    inverted: int = 0
    plain: int = 0
    #: The first output frame (input index) that showed the new params, if any.
    switch_frame: int | None = None

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds else 0.0

    def latency(self, quantile: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * quantile))]


def write_png(path: Path, image: npt.NDArray[np.uint8]) -> None:
    """Write an RGB uint8 (H, W, 3) array as a PNG with PyAV's encoder."""
    import av

    height, width = image.shape[:2]
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "rgb24"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    packets = list(codec.encode(frame)) + list(codec.encode(None))
    path.write_bytes(b"".join(bytes(packet) for packet in packets))


def side_by_side(
    rows: list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]],
) -> npt.NDArray[np.uint8]:
    """Each (input, output) pair as a row, 8 px white gaps between the panels and rows."""
    lines: list[npt.NDArray[np.uint8]] = []
    for before, after in rows:
        gap = np.full((before.shape[0], 8, 3), 255, np.uint8)
        row = np.concatenate([before, gap, after], axis=1)
        if lines:
            lines.append(np.full((8, row.shape[1], 3), 255, np.uint8))
        lines.append(row)
    return np.concatenate(lines, axis=0)


def classify(before: npt.NDArray[np.uint8], after: npt.NDArray[np.uint8]) -> str:
    """``inverted`` or ``plain`` (within codec tolerance), else ``other``."""
    b = before.astype(np.int16)
    a = after.astype(np.int16)
    if float(np.abs((255 - b) - a).mean()) < 12:
        return "inverted"
    if float(np.abs(b - a).mean()) < 12:
        return "plain"
    return "other"


class Collected(NullSink):
    """An egress member that keeps what it is given, for the demo's report."""

    def __init__(self, into: list[TelemetryEvent]) -> None:
        super().__init__()
        self._into = into
        #: Set once the runner's ``session_closed`` arrived: its last relayed event.
        self.session_closed = trio.Event()

    def emit(self, event: TelemetryEvent) -> None:
        super().emit(event)
        self._into.append(event)
        if event.name == "session_closed":
            self.session_closed.set()


def in_order(names: list[str]) -> str:
    """Event names in arrival order, repeats folded: ``status x3``."""
    runs: list[tuple[str, int]] = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1] + 1)
        else:
            runs.append((name, 1))
    return ", ".join(name if n == 1 else f"{name} x{n}" for name, n in runs) or "none"


def event_name(envelope: dict[str, Any]) -> str:
    """An events-channel segment's event type."""
    event = envelope.get("event")
    return str(event.get("type", "?")) if isinstance(event, dict) else "?"
