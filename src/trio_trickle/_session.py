"""One live stream = one trio nursery.

Theory of operation
-------------------
A :class:`Session` runs everything a stream needs as children of one nursery
tree rooted in :meth:`Session.run`:

* **writers** (outermost, they live longest): the events writer and the data
  writer drain the session's drop-oldest outlets onto the events and data
  channels, so whatever the pipeline emits, up to and including its last words
  in ``on_stream_stop`` and the ``stream_stopped`` event, is sent before those
  channels close (RUN-078, RUN-099);
* **work** (inside a cancel scope that any stop cause cancels): heartbeat,
  control reader, params applier, and the media graph::

      subscribe -> chunks -> decode (thread) -> router -> video queue (recent wins)
                                                       -> audio queue (drop oldest)
      process_video / process_audio -> pts guard -> encode (thread) -> publish

Every stage is bounded: chunks and frames travel in small memory channels, the
video queue keeps a few recent frames and drops stale ones (RUN-114), the audio queue holds 100
frames and drops the oldest (RUN-115). Audio and video are processed by separate
tasks, so audio never waits behind video processing (ai-runner#714).

A stop, from any cause, is one call: :meth:`Session.request_stop` records the
first reason and cancels the work scope. Teardown then runs ``on_stream_stop``
once (only after every processing call has returned, RUN-077), emits
``stream_stopped``, closes the outlets, and lets the writers drain. The whole
teardown is bounded by ``stop_timeout``; past it the owner cancels the lot.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs
import httpx
import trio

from ._client_publisher import TricklePublisher
from ._client_subscriber import TrickleSubscriber
from ._errors import ChannelClosed, TrickleError
from ._hooks import call_hook
from ._live_pipeline import (
    LivePipeline,
    StreamOutlets,
    bind_outlets,
    encode_event_segment,
    unbind_outlets,
)
from ._media_decode import DecodeStats, decode_ts
from ._media_encode import SEGMENT_BOUNDARY, EncoderSettings, TsItem, encode_ts
from ._media_frames import AudioFrame, MediaError, VideoFrame
from ._metrics import SessionCounters
from ._outlet import Bell, DropOldestOutlet
from ._recent_queue import RecentQueue
from ._session_io import ParamsQueue, control_updates, write_data, write_events
from ._telemetry_runner import CapturedEvent, RunnerTelemetry
from ._wire_channel_events import HeartbeatEvent, StatusEvent
from ._wire_runner import SessionState, StopReason, StreamStartRequest
from ._wire_telemetry import (
    ERROR_PARAMS_UPDATE_FAILED,
    ERROR_PIPELINE_PROCESSING_FAILED,
    ERROR_STREAM_FAILED,
    ERROR_STREAM_STARTUP_FAILED,
    EVENT_ERROR,
    EVENT_PLAYBACK_READY,
    EVENT_SESSION_CLOSED,
    EVENT_SESSION_CREATED,
    EVENT_STREAM_HEARTBEAT,
    EVENT_STREAM_STARTED,
    EVENT_STREAM_STOPPED,
    TelemetryError,
)

__all__ = ["Session", "SessionSettings", "StartFailed"]

log = logging.getLogger("trio_trickle.session")

MediaFrame = VideoFrame | AudioFrame


def _default_device() -> str:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of the media extra
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


@attrs.frozen(kw_only=True)
class SessionSettings:
    """Per-session knobs; defaults follow spec/runner-api.md."""

    #: Bound on ``on_stream_start`` (RUN-054).
    start_timeout: float = 5.0
    #: Bound on the whole teardown (RUN-068).
    stop_timeout: float = 5.0
    #: Heartbeat and status cadence (RUN-095).
    heartbeat_interval: float = 10.0
    #: No input (output) frame for this long marks the status degraded (RUN-097).
    degraded_after: float = 2.0
    #: Where decoded frames live: "auto" picks CUDA when torch sees a GPU.
    device: str = "auto"
    encoder: EncoderSettings = attrs.field(factory=EncoderSettings)
    #: Decoded video waiting for ``process_video``: at most this many frames, each
    #: for at most ``video_max_wait`` seconds; older ones are dropped (RUN-114).
    video_queue: int = 8
    video_max_wait: float = 0.25
    #: Bounded queues (RUN-093, RUN-115).
    events_capacity: int = 256
    #: Telemetry events waiting for the events channel (TEL-043).
    telemetry_capacity: int = 1024
    #: Events segments published per second in a flood, after a burst of
    #: ``events_burst`` (beyond that the outlet drops the oldest).
    events_max_rate: float = 50.0
    events_burst: int = 32
    data_capacity: int = 1000
    audio_capacity: int = 100
    #: Largest control message read (spec/channels.md CHN-034).
    control_max_bytes: int = 1024 * 1024
    #: JSONL data segments rotate this often (CHN-027).
    data_segment_interval: float = 10.0
    #: Consecutive process_* failures that end the session (RUN-118).
    max_hook_failures: int = 10
    #: At most one processing-error event per this many seconds (RUN-083).
    error_event_interval: float = 10.0

    def resolved_device(self) -> str:
        return _default_device() if self.device == "auto" else self.device


def _vram() -> dict[str, float]:
    """GPU memory in MB when torch is loaded and sees a GPU (TEL-032)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return {}
    mb = 1024 * 1024
    return {
        "vram_used_mb": round(torch.cuda.memory_allocated() / mb, 1),
        "vram_reserved_mb": round(torch.cuda.memory_reserved() / mb, 1),
        "vram_total_mb": round(torch.cuda.get_device_properties(0).total_memory / mb, 1),
    }


class StartFailed(TrickleError):
    """``on_stream_start`` raised or outlived its timeout; the session never ran."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class Session:
    """One stream on a :class:`LivePipeline`; see the module docstring."""

    def __init__(
        self,
        request: StreamStartRequest,
        pipeline: LivePipeline,
        *,
        client: httpx.AsyncClient,
        settings: SessionSettings | None = None,
        on_error: Callable[[str], None] | None = None,
        telemetry: RunnerTelemetry | None = None,
    ) -> None:
        self.request = request
        self.id = request.gateway_request_id
        self.pipeline = pipeline
        self.client = client
        self.settings = settings or SessionSettings()
        self.state = SessionState.STARTING
        self.started_at_ms = _now_ms()
        self.params: dict[str, Any] | None = request.params
        self.counters = SessionCounters()
        self.stop_reason: StopReason | None = None
        self.stop_detail: str | None = None
        self.error: str | None = None
        self._on_error = on_error or (lambda message: None)
        self._work = trio.CancelScope()
        self._outer = trio.CancelScope()
        self._done = trio.Event()
        self._started_monotonic = time.monotonic()
        self._hook_failures = 0
        self._last_error_event = -math.inf
        self.params_queue = ParamsQueue()
        self.runner_telemetry = telemetry or RunnerTelemetry()
        self.telemetry = self.runner_telemetry.for_stream(
            self.id, request.params, [type(pipeline).__name__]
        )
        #: One bell for both queues the events writer drains.
        self.events_bell = Bell()
        #: Relayed telemetry, its own bound so pipeline events never crowd it out (TEL-043).
        self.telemetry_outlet: DropOldestOutlet[bytes | CapturedEvent] = DropOldestOutlet(
            self.settings.telemetry_capacity, bell=self.events_bell
        )
        self._stream_started_at: float | None = None
        self._playback_ready = False
        self._last_beat = (time.monotonic(), 0, 0)
        self.outlets = StreamOutlets(
            events=DropOldestOutlet(self.settings.events_capacity, bell=self.events_bell),
            data=DropOldestOutlet(self.settings.data_capacity) if request.data_url else None,
        )

    # -- telemetry -----------------------------------------------------------------

    def _telemetry(self, name: str, *, error: TelemetryError | None = None, **meta: Any) -> None:
        """Stamp a stream event now; it is built and relayed by the events writer (TEL-040).

        Cheap and non-blocking from any thread: a flood only makes the bounded
        relay queue drop its oldest, unbuilt events (TEL-043, TEL-045).
        """
        self.telemetry_outlet.put(self.telemetry.capture(name, error=error, **meta))

    def _telemetry_error(
        self, error_type: str, message: str, *, recoverable: bool, exc: BaseException | None = None
    ) -> None:
        error = TelemetryError(
            error_type=error_type,
            message=message[:4096],
            exception_type=type(exc).__name__ if exc is not None else None,
            recoverable=recoverable,
        )
        self._telemetry(EVENT_ERROR, error=error)

    # -- control from outside ----------------------------------------------------

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def request_stop(self, reason: StopReason, detail: str | None = None) -> None:
        """Stop the session; the first reason given wins. Safe to call repeatedly."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_detail = detail
        self.params_queue.cancel_all("the stream is stopping")
        self._work.cancel()

    def note_reason(self, reason: StopReason) -> None:
        """Record why the stream is ending without cancelling the drain in progress."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.params_queue.cancel_all("the stream is stopping")

    def abandon(self) -> None:
        """Cancel everything now, teardown included (the stop deadline passed)."""
        self.request_stop(StopReason.SHUTDOWN)
        self._outer.cancel()

    async def wait_done(self) -> None:
        await self._done.wait()

    def fail(self, message: str) -> None:
        """Record an unrecoverable error and stop with reason ``failed``."""
        if self.error is None:
            self.error = message
            self._telemetry_error(ERROR_STREAM_FAILED, message, recoverable=False)
        self._on_error(message)
        self.request_stop(StopReason.FAILED)

    def report_error(self, message: str) -> None:
        """A recoverable error (a hook raised): remembered, the session goes on."""
        self._on_error(message)

    def status(self) -> dict[str, Any]:
        """This session's entry in ``GET /stream/status`` (RUN-070)."""
        return {
            "gateway_request_id": self.id,
            "state": str(self.state),
            "started_at_ms": self.started_at_ms,
            "params": self.params,
            "fps": self.counters.fps(),
            "frames_in": self.counters.frames_in,
            "frames_out": self.counters.frames_out,
            "frames_dropped": self.counters.dropped,
        }

    # -- the nursery ---------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the stream, report ``started``, run until stopped, tear down."""
        token = bind_outlets(self.outlets)
        start_error: StartFailed | None = None
        try:
            with self._outer:
                async with trio.open_nursery() as writers:
                    writers.start_soon(write_events, self)
                    if self.outlets.data is not None:
                        writers.start_soon(write_data, self)
                    for pending in self.runner_telemetry.take_pending():
                        self.telemetry_outlet.put(pending)  # runner_ready & co (TEL-044)
                    self._telemetry(EVENT_SESSION_CREATED)
                    try:
                        await self._start_hook()
                    except StartFailed as exc:
                        start_error = exc  # raised below, outside the nursery, unwrapped
                        self._telemetry_error(
                            ERROR_STREAM_STARTUP_FAILED, str(exc), recoverable=False
                        )
                        self._session_closed()
                    else:
                        self.state = SessionState.RUNNING
                        self._stream_started_at = time.monotonic()
                        self._telemetry(EVENT_STREAM_STARTED)
                        task_status.started()
                        await self._run_work()
                        self.state = SessionState.STOPPING
                        await self._teardown()
                    finally:
                        self._close_outlets()
            if start_error is not None:
                raise start_error
        finally:
            unbind_outlets(token)
            self.state = SessionState.STOPPING
            self._done.set()

    async def _start_hook(self) -> None:
        params = self.request.effective_params()
        try:
            with trio.fail_after(self.settings.start_timeout):
                await call_hook(self.pipeline.on_stream_start, params)
        except trio.TooSlowError:
            message = f"on_stream_start took longer than {self.settings.start_timeout} s"
            self.error = message
            self._on_error(message)
            raise StartFailed(message) from None
        except Exception as exc:
            message = f"on_stream_start failed: {type(exc).__name__}"
            log.exception("session %s: %s", self.id, message)
            self.error = message
            self._on_error(message)
            raise StartFailed(message) from exc

    async def _run_work(self) -> None:
        with self._work:
            try:
                async with trio.open_nursery() as work:
                    work.start_soon(self._heartbeat)
                    work.start_soon(control_updates, self)
                    work.start_soon(self._apply_params)
                    if self.request.subscribe_url or self.request.publish_url:
                        work.start_soon(self._media)
            except Exception as exc:  # a child failed: the whole stream stops
                log.exception("session %s failed", self.id)
                self.fail(f"{type(exc).__name__}: {exc}")

    async def _teardown(self) -> None:
        """``on_stream_stop`` once, ``stream_stopped``, then close the outlets."""
        with trio.move_on_after(self.settings.stop_timeout) as scope:
            try:
                await call_hook(self.pipeline.on_stream_stop)
            except Exception:
                log.exception("session %s: on_stream_stop raised", self.id)
        if scope.cancelled_caught:
            log.warning("session %s: on_stream_stop outlived the stop deadline", self.id)
        event: dict[str, Any] = {
            "type": "stream_stopped",
            "timestamp": _now_ms(),
            "gateway_request_id": self.id,
            "reason": str(self.stop_reason or StopReason.INPUT_ENDED),
        }
        if self.error is not None:
            event["error"] = self.error
        if self.stop_detail is not None:
            event["detail"] = self.stop_detail
        self._put_event(event)
        failure = None
        if self.error is not None:
            failure = TelemetryError(
                error_type=ERROR_STREAM_FAILED, message=self.error[:4096], recoverable=False
            )
        self._telemetry(
            EVENT_STREAM_STOPPED,
            error=failure,
            reason=event["reason"],
            frames_in=self.counters.frames_in,
            frames_out=self.counters.frames_out,
        )
        self._session_closed()
        self._close_outlets()

    def _session_closed(self) -> None:
        duration = round((time.monotonic() - self._started_monotonic) * 1000)
        self._telemetry(EVENT_SESSION_CLOSED, duration_ms=duration)

    def _close_outlets(self) -> None:
        self.outlets.events.close()
        self.telemetry_outlet.close()
        if self.outlets.data is not None:
            self.outlets.data.close()

    # -- heartbeat and params ------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Heartbeat + status at start and every interval, input or not (RUN-095)."""
        while True:
            self.outlets.events.put(encode_event_segment(self._heartbeat_event()))
            self.outlets.events.put(encode_event_segment(self._status_event()))
            self._heartbeat_telemetry()
            await trio.sleep(self.settings.heartbeat_interval)

    def _heartbeat_telemetry(self) -> None:
        """``stream_heartbeat`` with interval rates and totals (TEL-031, TEL-032)."""
        now = time.monotonic()
        then, frames_in, frames_out = self._last_beat
        counters = self.counters
        span = max(now - then, 1e-6)
        meta: dict[str, Any] = {
            "frames_in": counters.frames_in,
            "frames_out": counters.frames_out,
            "frames_dropped": counters.dropped,
            "fps_in": round((counters.frames_in - frames_in) / span, 1),
            "fps_out": round((counters.frames_out - frames_out) / span, 1),
            "elapsed_ms": round((now - self._started_monotonic) * 1000),
            "since_last_heartbeat_ms": round(span * 1000),
        }
        meta.update(_vram())
        self._last_beat = (now, counters.frames_in, counters.frames_out)
        self._telemetry(EVENT_STREAM_HEARTBEAT, **meta)

    def _heartbeat_event(self) -> dict[str, Any]:
        counters = self.counters
        beat = HeartbeatEvent(
            timestamp=_now_ms(),
            urls=self.request.media_urls(),
            width=counters.width,
            height=counters.height,
            fps=counters.fps(),
            frames_in=counters.frames_in,
            frames_out=counters.frames_out,
            extra={"gateway_request_id": self.id, "frames_dropped": counters.dropped},
        )
        return beat.to_envelope().to_wire()

    def _status_state(self) -> str:
        after = self.settings.degraded_after
        started = time.monotonic() - self._started_monotonic
        if self.request.subscribe_url:
            idle = self.counters.video_in.idle_for()
            if (idle is None and started > after) or (idle is not None and idle > after):
                return "DEGRADED_INPUT"
        if self.request.publish_url:
            idle = self.counters.video_out.idle_for()
            if (idle is None and started > after) or (idle is not None and idle > after):
                return "DEGRADED_INFERENCE"
        return "ONLINE"

    def _status_event(self) -> dict[str, Any]:
        fps = self.counters.fps()
        status = StatusEvent(
            timestamp=_now_ms(),
            pipeline=type(self.pipeline).__name__,
            state=self._status_state(),
            start_time=self.started_at_ms,
            input_status={"fps": fps["ingress_video_fps"]},
            inference_status={"fps": fps["egress_video_fps"]},
            extra={"gateway_request_id": self.id},
        )
        return status.to_envelope().to_wire()

    async def _apply_params(self) -> None:
        """One ``on_params_update`` at a time, in arrival order (RUN-088)."""
        while True:
            job = await self.params_queue.next()
            try:
                await call_hook(self.pipeline.on_params_update, dict(job.params))
            except Exception as exc:
                message = f"on_params_update failed: {type(exc).__name__}"
                log.exception("session %s: %s", self.id, message)
                self.report_error(message)
                self._telemetry_error(
                    ERROR_PARAMS_UPDATE_FAILED, message, recoverable=True, exc=exc
                )
                job.fail(message)
            else:
                self.params = dict(job.params)
                job.succeed()

    # -- media -------------------------------------------------------------------------

    async def _media(self) -> None:
        pipeline = type(self.pipeline)
        relay = not (pipeline.overrides("process_video") or pipeline.overrides("process_audio"))
        if relay and self.request.subscribe_url and self.request.publish_url:
            await self._relay()
            return
        if not self.request.subscribe_url:
            # Output only: no input to process; the session lives until stopped.
            await trio.sleep_forever()
        chunks_tx, chunks_rx = trio.open_memory_channel[bytes](64)
        frames_tx, frames_rx = trio.open_memory_channel[MediaFrame](8)
        encode_tx, encode_rx = trio.open_memory_channel[MediaFrame](8)
        video_queue: RecentQueue[VideoFrame] = RecentQueue(
            self.settings.video_queue, self.settings.video_max_wait
        )
        audio_queue: DropOldestOutlet[AudioFrame] = DropOldestOutlet(self.settings.audio_capacity)
        stats = DecodeStats()
        async with trio.open_nursery() as media:
            media.start_soon(self._subscribe_input, chunks_tx)
            media.start_soon(self._decode, chunks_rx, frames_tx, stats)
            media.start_soon(self._process_video, video_queue, encode_tx.clone())
            media.start_soon(self._process_audio, audio_queue, encode_tx)
            first = await self._route_first(frames_rx, video_queue, audio_queue)
            if first and self.request.publish_url:
                # Started once the first frame tells whether the input has audio,
                # so a video-only stream never waits for audio that will not come.
                output_tx, output_rx = trio.open_memory_channel[TsItem](64)
                encoder = attrs.evolve(self.settings.encoder, audio=stats.has_audio)
                media.start_soon(encode_ts, encode_rx, output_tx, encoder)
                media.start_soon(self._publish_output, output_rx)
            else:
                media.start_soon(self._discard, encode_rx)
            media.start_soon(self._route, frames_rx, video_queue, audio_queue)
        # Input ended and everything drained through: the stream is over.
        self.request_stop(StopReason.INPUT_ENDED)

    async def _subscribe_input(self, chunks_tx: trio.MemorySendChannel[bytes]) -> None:
        url = self.request.subscribe_url
        assert url is not None
        async with chunks_tx:
            try:
                async with TrickleSubscriber(url, start_seq=-1, client=self.client) as subscriber:
                    async for segment in subscriber:
                        async for chunk in segment:
                            await chunks_tx.send(chunk)
            except ChannelClosed:
                # The input channel is gone (404). What was already received still
                # drains through to the output; the reason says why it ended.
                self.note_reason(StopReason.INPUT_GONE)

    async def _decode(
        self,
        chunks_rx: trio.MemoryReceiveChannel[bytes],
        frames_tx: trio.MemorySendChannel[MediaFrame],
        stats: DecodeStats,
    ) -> None:
        try:
            await decode_ts(
                chunks_rx, frames_tx, device=self.settings.resolved_device(), stats=stats
            )
        except MediaError:
            if stats.bytes_in:
                raise  # bytes came but were not media: the stream failed
            # The input ended before sending anything: nothing to decode, no failure.

    async def _route_first(
        self,
        frames_rx: trio.MemoryReceiveChannel[MediaFrame],
        video_queue: RecentQueue[VideoFrame],
        audio_queue: DropOldestOutlet[AudioFrame],
    ) -> bool:
        """Route the first frame; False when the input ended without any."""
        try:
            frame = await frames_rx.receive()
        except trio.EndOfChannel:
            video_queue.close()
            audio_queue.close()
            return False
        self._route_one(frame, video_queue, audio_queue)
        return True

    def _route_one(
        self,
        frame: MediaFrame,
        video_queue: RecentQueue[VideoFrame],
        audio_queue: DropOldestOutlet[AudioFrame],
    ) -> None:
        counters = self.counters
        if isinstance(frame, VideoFrame):
            counters.video_in.mark()
            counters.dropped += video_queue.put(frame)
        else:
            counters.audio_in.mark()
            before = audio_queue.dropped
            audio_queue.put(frame)
            counters.dropped += audio_queue.dropped - before

    async def _route(
        self,
        frames_rx: trio.MemoryReceiveChannel[MediaFrame],
        video_queue: RecentQueue[VideoFrame],
        audio_queue: DropOldestOutlet[AudioFrame],
    ) -> None:
        """Hand decoded frames on without ever waiting for processing (RUN-114)."""
        if video_queue.closed:
            return
        async with frames_rx:
            async for frame in frames_rx:
                self._route_one(frame, video_queue, audio_queue)
        video_queue.close()
        audio_queue.close()

    async def _process_video(
        self, slot: RecentQueue[VideoFrame], encode_tx: trio.MemorySendChannel[MediaFrame]
    ) -> None:
        last_pts = -math.inf
        hook = self.pipeline.process_video
        async with encode_tx:
            while True:
                before = slot.dropped
                try:
                    frame = await slot.get()
                except trio.EndOfChannel:
                    return
                finally:
                    self.counters.dropped += slot.dropped - before
                result = await self._call_process(hook, frame)
                if result is None:
                    continue
                if result.pts <= last_pts:  # RUN-113: never hand the muxer a step back
                    self.counters.dropped += 1
                    continue
                last_pts = result.pts
                if self.counters.width is None:
                    self.counters.height, self.counters.width = result.height, result.width
                await encode_tx.send(result)
                self.counters.video_out.mark()

    async def _process_audio(
        self, queue: DropOldestOutlet[AudioFrame], encode_tx: trio.MemorySendChannel[MediaFrame]
    ) -> None:
        last_pts = -math.inf
        hook = self.pipeline.process_audio
        async with encode_tx:
            while batch := await queue.get_batch(16):
                for frame in batch:
                    result = await self._call_process(hook, frame)
                    if result is None:
                        continue
                    if result.pts <= last_pts:
                        self.counters.dropped += 1
                        continue
                    last_pts = result.pts
                    await encode_tx.send(result)
                    self.counters.audio_out.mark()

    async def _call_process(self, hook: Callable[[Any], Any], frame: Any) -> Any:
        try:
            result = await call_hook(hook, frame)
        except Exception as exc:  # RUN-082: drop the frame, keep the stream
            self.counters.dropped += 1
            self._hook_failures += 1
            message = f"{hook.__name__} failed: {type(exc).__name__}"
            log.warning("session %s: %s", self.id, message, exc_info=True)
            self.report_error(message)
            self._error_event(message)
            if self._hook_failures >= self.settings.max_hook_failures:
                self.fail(f"{message} ({self._hook_failures} frames in a row)")
            return None
        self._hook_failures = 0
        return result

    def _error_event(self, message: str) -> None:
        """A recoverable processing error on the events channel, rate-limited (RUN-083)."""
        now = time.monotonic()
        if now - self._last_error_event < self.settings.error_event_interval:
            return
        self._last_error_event = now
        self._telemetry_error(ERROR_PIPELINE_PROCESSING_FAILED, message, recoverable=True)
        event = {
            "type": "error",
            "timestamp": _now_ms(),
            "gateway_request_id": self.id,
            "error_type": "pipeline_processing_failed",
            "message": message,
            "recoverable": True,
        }
        self._put_event(event)

    def _put_event(self, event: dict[str, Any]) -> None:
        envelope = {"queue_event_type": "ai_stream_events", "event": event}
        self.outlets.events.put(encode_event_segment(envelope))

    async def _discard(self, rx: trio.MemoryReceiveChannel[MediaFrame]) -> None:
        async with rx:
            async for _ in rx:
                pass

    async def _publish_output(self, output_rx: trio.MemoryReceiveChannel[TsItem]) -> None:
        """One trickle segment per GOP, streamed while it is being encoded."""
        url = self.request.publish_url
        assert url is not None
        try:
            async with (
                output_rx,
                TricklePublisher(
                    url, "video/MP2T", client=self.client, owns_channel=False
                ) as publisher,
            ):
                segment = None
                async for item in output_rx:
                    if item is SEGMENT_BOUNDARY or segment is None:
                        if segment is not None:
                            await segment.end()
                        segment = publisher.segment()
                        await segment.start()
                        if item is SEGMENT_BOUNDARY:
                            continue
                    assert isinstance(item, bytes)
                    await segment.write(item)
                    if not self._playback_ready:
                        self._playback_ready = True
                        started = self._stream_started_at or self._started_monotonic
                        ttff = round((time.monotonic() - started) * 1000)
                        self._telemetry(EVENT_PLAYBACK_READY, ttff_ms=ttff)
                if segment is not None:
                    await segment.end()
        except ChannelClosed:
            self.request_stop(StopReason.OUTPUT_GONE)

    async def _relay(self) -> None:
        """Passthrough without decoding: input segments out byte for byte (RUN-117)."""
        assert self.request.subscribe_url is not None
        assert self.request.publish_url is not None
        reason = StopReason.INPUT_ENDED
        async with (
            TrickleSubscriber(
                self.request.subscribe_url, start_seq=-1, client=self.client
            ) as subscriber,
            TricklePublisher(
                self.request.publish_url, "video/MP2T", client=self.client, owns_channel=False
            ) as publisher,
        ):
            reason = await self._relay_segments(subscriber, publisher)
        self.request_stop(reason)

    async def _relay_segments(
        self, subscriber: TrickleSubscriber, publisher: TricklePublisher
    ) -> StopReason:
        """Copy segments until one side ends; which side tells the stop reason."""
        while True:
            try:
                incoming = await subscriber.__anext__()
            except StopAsyncIteration:
                return StopReason.INPUT_ENDED
            except ChannelClosed:
                return StopReason.INPUT_GONE
            try:
                async with publisher.segment() as outgoing:
                    while True:
                        try:
                            chunk = await incoming.__anext__()
                        except StopAsyncIteration:
                            break
                        except ChannelClosed:
                            return StopReason.INPUT_GONE
                        await outgoing.write(chunk)
            except ChannelClosed:
                return StopReason.OUTPUT_GONE
