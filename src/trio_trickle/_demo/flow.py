"""The demo's run: control plane up, a session reserved and streamed through, then stopped."""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TextIO

import attrs
import httpx
import numpy as np
import numpy.typing as npt
import trio

from .._client.http import create_http_client
from .._client.subscriber import TrickleSubscriber
from .._errors import ChannelClosed, TrickleError
from .._gateway.discovery import RunnerCandidate, candidates, discover
from .._gateway.events import gateway_connection
from .._gateway.live_session import (
    LiveSession,
    LiveSessionFailed,
    LiveSessionOptions,
    SessionChannels,
    open_live_session,
    start_via_app,
)
from .._media.decode import decode_segments, decode_ts
from .._media.frames import AudioFrame, VideoFrame
from .._media.testsrc import generate_ts, live_pieces
from .._orchestrator.config import OrchestratorConfig
from .._orchestrator.process import open_orchestrator
from .._registry.config import RegistryConfig
from .._runner.registration import RunnerRegistration
from .._runner.serve import open_runner
from .._sdk.live_pipeline import LivePipeline
from .._session.session import SessionSettings
from .._telemetry.selection import open_sink, select_sink
from .._telemetry.sinks import FanoutSink, TelemetrySink
from .._wire.live_runner_payment import SessionReservation
from .progress import show_progress
from .report import (
    Collected,
    DemoOptions,
    DemoReport,
    classify,
    event_name,
    in_order,
    side_by_side,
    write_png,
)

__all__ = ["DemoFailed", "prepare_media", "run_demo"]


class DemoFailed(TrickleError):
    """The demo could not get a stream going (the runner never registered, say)."""


@attrs.frozen
class Media:
    """The generated input: GOP segments, each segment's video pts, the decoded frames."""

    segments: list[bytes]
    pts: list[list[int]]
    frames: list[VideoFrame]


def prepare_media(options: DemoOptions) -> Media:
    """Encode the test pattern and decode it back (PyAV: call off the event loop)."""
    segments = generate_ts(
        seconds=options.seconds,
        width=options.width,
        height=options.height,
        fps=options.fps,
        audio=True,
        gop_seconds=0.25,  # published a GOP at a time: short ones keep it live
    )
    pts = [[p for p, _ in live_pieces(s) if p is not None] for s in segments]
    frames = [f for f in decode_segments(segments) if isinstance(f, VideoFrame)]
    return Media(segments=segments, pts=pts, frames=frames)


class _Demo:
    def __init__(self, options: DemoOptions, out: TextIO, media: Media) -> None:
        self.options = options
        self.out = out
        self.media = media
        self.report = DemoReport(frames_in=len(media.frames))
        self.index = {f.pts: i for i, f in enumerate(media.frames)}
        self.publish_times: dict[int, float] = {}
        self.output_frames: dict[int, npt.NDArray[np.uint8]] = {}
        self.output_segments: list[bytes] = []
        self.started = 0.0
        # All but the last GOP back: the runner has the whole input (see end()).
        self.tail_back = trio.Event()
        self.tail_at = len(media.frames) - (len(media.pts[-1]) if media.pts else 0)
        self.collected = Collected(self.report.telemetry)
        self.output_done = trio.Event()
        self.stopped = trio.Event()
        self.ending = False
        self.connection = AsyncExitStack()
        self.egress: TelemetrySink | None = None

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    @asynccontextmanager
    async def control_plane(self) -> AsyncIterator[tuple[str, str]]:
        """The orchestrator to use (URL, secret): the external one, or one embedded here."""
        options = self.options
        if options.orchestrator_url is not None:
            yield options.orchestrator_url.rstrip("/"), options.secret or ""
            return
        secret = options.secret or secrets.token_urlsafe(16)

        def registry(url: str) -> RegistryConfig:
            return RegistryConfig(
                service_uri=url, orchestrator_secret=secret, heartbeat_interval=1.0
            )

        config = OrchestratorConfig(secret=secret, registry=registry, o2r_keepalive=2.0)
        async with open_orchestrator(config) as orchestrator:
            yield orchestrator.url, secret

    async def run(self, pipeline: LivePipeline) -> DemoReport:
        options = self.options
        settings = SessionSettings(heartbeat_interval=1.0)
        async with (
            self.control_plane() as (orchestrator_url, secret),
            open_runner(
                pipeline,
                orchestrator_url=orchestrator_url,
                orchestrator_secret=secret,
                app_name=options.app,
                settings=settings,
            ) as runner,
            create_http_client() as http,
            # The gateway's egress: what the environment configures (nothing by default,
            # see select_sink) plus the report's own copy.
            open_sink(FanoutSink([self.collected, select_sink()])) as egress,
        ):
            where = "external" if options.orchestrator_url else "embedded"
            self.say(f"orchestrator    {orchestrator_url} ({where})")
            self.say(f"runner          {runner.url} ({type(pipeline).__name__}, app {options.app})")
            assert runner.registration is not None
            with trio.move_on_after(60) as waiting:
                await runner.wait_setup()
                await runner.registration.registered.wait()
            if waiting.cancelled_caught:
                raise DemoFailed(
                    f"the runner did not register with {orchestrator_url} within 60 s"
                    " (is the secret right?)"
                )
            self.say(f"registered      runner {runner.registration.runner_id} by heartbeat")
            listed = await self.discovered(orchestrator_url, http, runner.registration)
            self.say(f"discovery       {len(listed)} runner(s) of app {options.app} with room")
            self.egress = egress
            async with self.connection:
                await self.stream(orchestrator_url, http, egress)
        self.finish()
        return self.report

    async def discovered(
        self, orchestrator_url: str, http: httpx.AsyncClient, registration: RunnerRegistration
    ) -> list[RunnerCandidate]:
        """Discovery's runners of the app with room, once ours is among them.

        The heartbeat that registered the runner may have gone out while its
        pipeline was still loading; the next one (sent now) says it is ready.
        """
        registration.check_now()
        with trio.move_on_after(30):
            while True:
                found = await discover(orchestrator_url, client=http)
                listed = candidates(found, app=self.options.app)
                if any(f"/apps/{registration.runner_id}/" in c.reserve_url for c in listed):
                    return listed
                await trio.sleep(0.1)
        raise DemoFailed(f"{orchestrator_url} does not list the runner with room within 30 s")

    async def start(
        self,
        client: httpx.AsyncClient,
        reservation: SessionReservation,
        params: Any,
    ) -> SessionChannels:
        """The gateway's connection opens as its session starts (TEL-037), then the stream."""
        assert self.egress is not None
        self.report.session_id = reservation.session_id
        await self.connection.enter_async_context(
            gateway_connection(self.egress, connection_id=reservation.session_id)
        )
        return await start_via_app(client, reservation, params)

    async def stream(
        self, orchestrator_url: str, http: httpx.AsyncClient, egress: TelemetrySink
    ) -> None:
        options = self.options
        session_options = LiveSessionOptions(max_swaps=0, keepalive_interval=5.0)
        async with open_live_session(
            orchestrator_url,
            options.app,
            params={"strength": options.strength},
            client=http,
            sink=egress,
            starter=self.start,
            options=session_options,
        ) as session:
            self.report.runner_url = session.runner_url
            self.say(f"reserved        session {session.session_id} on {session.runner_url}")
            self.say(
                f"streaming       {len(self.media.frames)} frames at {options.fps:g} fps,"
                f" params {{'strength': {options.strength:g}}}"
            )
            self.started = time.monotonic()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.read_events, session)
                channels = session.channels
                assert channels is not None
                assert channels.output_url is not None
                nursery.start_soon(self.read_output, channels.output_url, http)
                if options.progress:
                    nursery.start_soon(show_progress, self.report, len(self.media.frames), self.t0)
                await self.publish(session)
                await self.end(session, http)
                nursery.cancel_scope.cancel()
        self.report.seconds = time.monotonic() - self.started

    def t0(self) -> float:
        return self.started

    async def publish(self, session: LiveSession) -> None:
        """Publish each GOP segment once its last frame is due, as a live encoder would.

        The params update goes out when its frame is due, between two segments.
        """
        options = self.options
        interval = 1.0 / options.fps
        update_at = round(len(self.media.frames) * options.update_at)
        sent = 0
        for data, pts in zip(self.media.segments, self.media.pts, strict=True):
            if self.report.update_frame is None and sent + len(pts) > update_at:
                await self.sleep_until(update_at * interval)
                params = {"strength": options.strength_after}
                await session.update_params(params)
                self.report.update_frame = update_at
                self.report.update_params = params
            sent += len(pts)
            await self.sleep_until(sent * interval)
            now = time.monotonic()
            for p in pts:
                self.publish_times[p] = now
            await session.publish(data)

    async def sleep_until(self, offset: float) -> None:
        await trio.sleep(max(0.0, self.started + offset - time.monotonic()))

    async def end(self, session: LiveSession, http: httpx.AsyncClient) -> None:
        """End the input (the runner drains and stops the stream), then stop the session."""
        # The runner cuts an output segment at the next keyframe: all but the last GOP
        # back means it has the last input segment, so closing the input loses nothing.
        with trio.move_on_after(10):
            await self.tail_back.wait()
        self.ending = True
        channels = session.channels
        if channels is not None and channels.input_url is not None:
            try:  # the end of a trickle stream: its channel closes
                await http.delete(channels.input_url)
            except httpx.HTTPError as exc:
                self.say(f"closing the input failed: {exc}")
            with trio.move_on_after(10):
                await self.stopped.wait()
            with trio.move_on_after(3):
                await self.collected.session_closed.wait()
        await session.stop()  # releases the session: the orchestrator closes its channels
        with trio.move_on_after(5):  # the decoder's last frames come once the output ends
            await self.output_done.wait()

    async def read_events(self, session: LiveSession) -> None:
        try:
            async for envelope in session.events():
                self.report.events.append(envelope)
                if event_name(envelope) == "stream_stopped":
                    self.stopped.set()
        except (LiveSessionFailed, ChannelClosed):
            if not self.ending:
                raise

    async def read_output(self, output_url: str, http: httpx.AsyncClient) -> None:
        """Read the output channel as it is written, chunk by chunk, and decode it.

        The session's own outlet hands out whole segments, and the runner cuts
        one only at a keyframe: streaming the channel shows each frame as soon
        as it is encoded, which is what the latency figure is about.
        """
        chunks_tx, chunks_rx = trio.open_memory_channel[bytes](64)
        frames_tx, frames_rx = trio.open_memory_channel[VideoFrame | AudioFrame](64)

        async def subscribe() -> None:
            async with chunks_tx:
                try:
                    async with TrickleSubscriber(output_url, start_seq=0, client=http) as sub:
                        async for segment in sub:
                            parts = []
                            async for chunk in segment:
                                parts.append(chunk)
                                await chunks_tx.send(chunk)
                            self.output_segments.append(b"".join(parts))
                except TrickleError:
                    if not self.ending:
                        raise

        async with trio.open_nursery() as nursery:
            nursery.start_soon(subscribe)
            nursery.start_soon(decode_ts, chunks_rx, frames_tx)
            async with frames_rx:
                async for frame in frames_rx:
                    self.on_output(frame)
        self.output_done.set()

    def on_output(self, frame: VideoFrame | AudioFrame) -> None:
        report = self.report
        if isinstance(frame, AudioFrame):
            report.audio_out += 1
            return
        report.frames_out += 1
        if report.frames_out >= self.tail_at:
            self.tail_back.set()
        sent = self.publish_times.get(frame.pts)
        if sent is not None:
            report.latencies_ms.append((time.monotonic() - sent) * 1000)
        image = frame.tensor.cpu().numpy()
        self.output_frames[frame.pts] = image
        i = self.index.get(frame.pts)
        if i is None:
            return
        kind = classify(self.media.frames[i].tensor.cpu().numpy(), image)
        inverted = self.options.strength >= 1.0
        if kind == "inverted":
            report.inverted += 1
        elif kind == "plain":
            report.plain += 1
        later = kind == ("plain" if inverted else "inverted")
        if later and report.switch_frame is None and report.update_frame is not None:
            report.switch_frame = i

    def finish(self) -> None:
        options, report = self.options, self.report
        data = b"".join(self.output_segments)
        options.output.write_bytes(data)
        report.output_bytes = len(data)
        rows = []
        frames = self.media.frames
        picks = [len(frames) // 4, len(frames) // 2]
        if report.update_frame is not None:
            after = report.switch_frame if report.switch_frame is not None else report.update_frame
            last = min(len(frames) - 1, (after + len(frames)) // 2)
            picks = [max(0, report.update_frame // 2), last]
        for i in picks if frames else []:
            if frames[i].pts in self.output_frames:
                rows.append((frames[i].tensor.cpu().numpy(), self.output_frames[frames[i].pts]))
        if rows:
            write_png(options.png, side_by_side(rows))
        stream = [event_name(e) for e in report.events]
        telemetry = [e.name for e in report.telemetry]
        self.say(f"stream events ({len(stream)}): {in_order(stream)}")
        self.say(f"telemetry ({len(telemetry)}): {in_order(telemetry)}")
        stopped = [e["event"] for e in report.events if event_name(e) == "stream_stopped"]
        if stopped:
            self.say(f"stream stopped: reason={stopped[-1].get('reason')}")
        if report.update_frame is not None:
            seen = (
                f"output changed from frame {report.switch_frame}"
                if report.switch_frame is not None
                else "no change seen in the output"
            )
            self.say(
                f"params update {report.update_params} sent after frame {report.update_frame}:"
                f" {seen} (inverted {report.inverted}, unchanged {report.plain} frames)"
            )


async def run_demo(
    options: DemoOptions | None = None,
    *,
    pipeline: LivePipeline | None = None,
    out: TextIO | None = None,
    media: Media | None = None,
) -> DemoReport:
    """Run the demo and print a one-line summary; returns what it measured.

    ``media``: the input, made by :func:`prepare_media` (made here in a worker
    thread when not given).
    """
    from ..examples import Invert

    options = options or DemoOptions()
    stream = out or sys.stdout
    if media is None:
        media = await trio.to_thread.run_sync(prepare_media, options)
    demo = _Demo(options, stream, media)
    try:
        report = await demo.run(pipeline or Invert())
    except BaseExceptionGroup as group:
        failed, rest = group.split(TrickleError)
        if failed is None or rest is not None:
            raise
        raise _first_leaf(failed) from group  # one reason, for the command line
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


def _first_leaf(group: BaseExceptionGroup[TrickleError]) -> TrickleError:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
