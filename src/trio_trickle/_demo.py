"""``trio-trickle demo``: the whole live system in one process, no configuration.

An embedded trickle server and a runner serving a built-in ``LivePipeline``
(``Invert``, written in torch, on CUDA when present). The demo plays the
orchestrator and the gateway: it creates the stream's channels, calls
``/stream/start`` with their URLs, publishes a generated test pattern at real
time, reads the processed output back while showing fps and latency, and
finally writes ``output.ts`` and a PNG of one input frame beside its output.

Latency is measured per frame from the moment its bytes were published to the
moment the processed frame was decoded from the output channel. Frames are
matched by presentation timestamp, which the runner preserves end to end.
"""

from __future__ import annotations

import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import attrs
import httpx
import numpy as np
import numpy.typing as npt
import trio

from ._client.publisher import TricklePublisher
from ._client.subscriber import TrickleSubscriber
from ._core.server import ServerConfig
from ._errors import ChannelClosed
from ._gateway.events import gateway_connection, read_stream_events
from ._media.decode import decode_segments, decode_ts
from ._media.frames import AudioFrame, VideoFrame
from ._media.testsrc import generate_ts, live_pieces
from ._runner.serve import open_runner
from ._sdk.live_pipeline import LivePipeline
from ._server.trickle import TrickleServerHandle, open_trickle_server
from ._session.session import SessionSettings
from ._telemetry.selection import open_sink, select_sink
from ._telemetry.sinks import FanoutSink, NullSink, TelemetrySink
from ._wire.telemetry import TelemetryEvent

__all__ = ["DemoOptions", "DemoReport", "run_demo", "write_png"]

CHANNELS = {
    "": "video/MP2T",
    "-out": "video/MP2T",
    "-control": "application/json",
    "-events": "application/json",
}


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


class _Demo:
    def __init__(self, options: DemoOptions, out: TextIO) -> None:
        self.options = options
        self.out = out
        self.report = DemoReport()
        self.mid = "demo-" + secrets.token_hex(4)
        self.publish_times: dict[int, float] = {}
        self.output_frames: dict[int, npt.NDArray[np.uint8]] = {}
        self.output_segments: list[bytes] = []
        self.started = 0.0
        self.stopped = trio.Event()
        self.output_done = trio.Event()
        self.total_frames = round(options.seconds * options.fps)

    def channel(self, trickle: TrickleServerHandle, suffix: str = "") -> str:
        return trickle.url + self.mid + suffix

    async def run(self, pipeline: LivePipeline) -> DemoReport:
        options = self.options
        segments = generate_ts(
            seconds=options.seconds,
            width=options.width,
            height=options.height,
            fps=options.fps,
            audio=True,
        )
        source = [f for f in decode_segments(segments) if isinstance(f, VideoFrame)]
        self.report.frames_in = len(source)
        settings = SessionSettings(heartbeat_interval=1.0)
        async with (
            open_trickle_server(ServerConfig()) as trickle,
            open_runner(pipeline, settings=settings) as runner,
            httpx.AsyncClient(timeout=30) as http,
        ):
            self.say(f"trickle server  {trickle.url}")
            self.say(f"runner          {runner.url} ({type(pipeline).__name__})")
            await runner.wait_setup()
            for suffix, mime in CHANNELS.items():
                trickle.server.create_channel(self.mid + suffix, mime)
            body = {
                "gateway_request_id": self.mid,
                "subscribe_url": self.channel(trickle),
                "publish_url": self.channel(trickle, "-out"),
                "control_url": self.channel(trickle, "-control"),
                "events_url": self.channel(trickle, "-events"),
                "params": {"effect": "invert"},
            }
            response = await http.post(runner.url + "/stream/start", json=body)
            response.raise_for_status()
            self.say(f"stream started  {self.mid}: publishing {self.total_frames} frames")
            self.started = time.monotonic()
            # The gateway's egress: what the environment configures (nothing by default,
            # see select_sink) plus the report's own copy.
            collected = _Collected(self.report.telemetry)
            async with (
                open_sink(FanoutSink([collected, select_sink()])) as egress,
                gateway_connection(egress, connection_id=self.mid),
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(self.read_events, egress, self.channel(trickle, "-events"), http)
                nursery.start_soon(self.read_output, trickle, http)
                nursery.start_soon(self.show_progress)
                await self.publish(trickle, http, segments)
                # The gateway ends the stream: the runner drains and stops.
                trickle.server.delete_channel(self.mid)
                with trio.move_on_after(10):
                    await self.stopped.wait()
                await trio.sleep(0.2)
                trickle.server.delete_channel(self.mid + "-out")
                with trio.move_on_after(5):
                    await self.output_done.wait()
                nursery.cancel_scope.cancel()
        self.report.seconds = time.monotonic() - self.started
        self.finish(source)
        return self.report

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def publish(
        self,
        trickle: TrickleServerHandle,
        http: httpx.AsyncClient,
        segments: list[bytes],
    ) -> None:
        """Stream each GOP segment frame by frame at the frame rate, as a live encoder would."""
        interval = 1.0 / self.options.fps
        async with TricklePublisher(
            self.channel(trickle), "video/MP2T", client=http, start_seq=0, owns_channel=False
        ) as publisher:
            next_time = time.monotonic()
            for data in segments:
                async with publisher.segment() as segment:
                    for frame_pts, piece in live_pieces(data):
                        await segment.write(piece)
                        if frame_pts is None:  # audio goes out as it comes
                            continue
                        self.publish_times[frame_pts] = time.monotonic()
                        next_time += interval
                        await trio.sleep(max(0.0, next_time - time.monotonic()))

    async def read_output(self, trickle: TrickleServerHandle, http: httpx.AsyncClient) -> None:
        chunks_tx, chunks_rx = trio.open_memory_channel[bytes](64)
        frames_tx, frames_rx = trio.open_memory_channel[VideoFrame | AudioFrame](64)

        async def subscribe() -> None:
            async with chunks_tx:
                try:
                    async with TrickleSubscriber(
                        self.channel(trickle, "-out"), start_seq=0, client=http
                    ) as subscriber:
                        async for segment in subscriber:
                            parts = []
                            async for chunk in segment:
                                parts.append(chunk)
                                await chunks_tx.send(chunk)
                            self.output_segments.append(b"".join(parts))
                except ChannelClosed:
                    pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(subscribe)
            nursery.start_soon(decode_ts, chunks_rx, frames_tx)
            async with frames_rx:
                async for frame in frames_rx:
                    if isinstance(frame, AudioFrame):
                        self.report.audio_out += 1
                        continue
                    now = time.monotonic()
                    self.report.frames_out += 1
                    sent = self.publish_times.get(frame.pts)
                    if sent is not None:
                        self.report.latencies_ms.append((now - sent) * 1000)
                    self.output_frames[frame.pts] = frame.tensor.cpu().numpy()
        self.output_done.set()

    async def read_events(
        self, egress: TelemetrySink, events_url: str, http: httpx.AsyncClient
    ) -> None:
        """Read the events channel as a gateway does: telemetry to the egress sink."""

        def on_event(envelope: dict[str, Any]) -> None:
            self.report.events.append(envelope)
            if envelope.get("event", {}).get("type") == "stream_stopped":
                self.stopped.set()

        await read_stream_events(events_url, egress, on_event=on_event, client=http)

    async def show_progress(self) -> None:
        if not self.options.progress:
            return
        width = 30
        while True:
            report = self.report
            done = min(1.0, report.frames_out / max(1, self.total_frames))
            bar = "#" * round(done * width)
            elapsed = max(1e-6, time.monotonic() - self.started)
            recent = report.latencies_ms[-30:]
            latency = f"{statistics.median(recent):6.0f} ms" if recent else "     - ms"
            sys.stderr.write(
                f"\r[{bar:<{width}}] {report.frames_out:4d}/{self.total_frames} frames "
                f"{report.frames_out / elapsed:5.1f} fps  latency {latency}"
            )
            sys.stderr.flush()
            await trio.sleep(0.25)

    def finish(self, source: list[VideoFrame]) -> None:
        options = self.options
        if options.progress:
            sys.stderr.write("\n")
        data = b"".join(self.output_segments)
        options.output.write_bytes(data)
        self.report.output_bytes = len(data)
        middle = source[len(source) // 2] if source else None
        if middle is not None and middle.pts in self.output_frames:
            before = middle.tensor.cpu().numpy()
            after = self.output_frames[middle.pts]
            gap = np.full((before.shape[0], 8, 3), 255, np.uint8)
            write_png(options.png, np.concatenate([before, gap, after], axis=1))
        stream = [_event_name(e) for e in self.report.events]
        telemetry = [e.name for e in self.report.telemetry]
        self.say(f"stream events ({len(stream)}): {_in_order(stream)}")
        self.say(f"telemetry ({len(telemetry)}): {_in_order(telemetry)}")
        stopped = [
            e["event"]
            for e in self.report.events
            if e.get("event", {}).get("type") == "stream_stopped"
        ]
        if stopped:
            self.say(f"stream stopped: reason={stopped[-1].get('reason')}")


class _Collected(NullSink):
    """An egress member that keeps what it is given, for the demo's report."""

    def __init__(self, into: list[TelemetryEvent]) -> None:
        super().__init__()
        self._into = into

    def emit(self, event: TelemetryEvent) -> None:
        super().emit(event)
        self._into.append(event)


def _in_order(names: list[str]) -> str:
    """Event names in arrival order, repeats folded: ``status x3``."""
    runs: list[tuple[str, int]] = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1] + 1)
        else:
            runs.append((name, 1))
    return ", ".join(name if n == 1 else f"{name} x{n}" for name, n in runs) or "none"


def _event_name(envelope: dict[str, Any]) -> str:
    """An events-channel segment's event type."""
    event = envelope.get("event")
    return str(event.get("type", "?")) if isinstance(event, dict) else "?"


async def run_demo(
    options: DemoOptions | None = None,
    *,
    pipeline: LivePipeline | None = None,
    out: TextIO | None = None,
) -> DemoReport:
    """Run the demo and print a one-line summary; returns what it measured."""
    from .examples import Invert

    options = options or DemoOptions()
    stream = out or sys.stdout
    demo = _Demo(options, stream)
    report = await demo.run(pipeline or Invert())
    png = f" and {options.png}" if options.png.exists() else ""
    print(
        f"demo: {report.frames_out}/{report.frames_in} frames back in {report.seconds:.1f} s, "
        f"{report.fps:.1f} fps, latency p50 {report.latency(0.5):.0f} ms "
        f"p99 {report.latency(0.99):.0f} ms, audio frames {report.audio_out}; "
        f"wrote {options.output} ({report.output_bytes} bytes){png}",
        file=stream,
        flush=True,
    )
    return report
