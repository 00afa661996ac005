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
  control reader, params applier (the channel loops are in :mod:`._session_io`),
  and the media graph (:mod:`._session_media`): subscribe, decode, process,
  encode, publish, every stage bounded.

A stop, from any cause, is one call: :meth:`Session.request_stop` records the
first reason and cancels the work scope. Teardown then runs ``on_stream_stop``
once (only after every processing call has returned, RUN-077), emits
``stream_stopped``, closes the outlets, and lets the writers drain.

The stop deadline is counted once, from the stop decision (RUN-126): the session
bounds its own teardown by it, ``on_stream_stop`` gets the first 80 % of it, the
rest is kept for ``stream_stopped`` and the drain, and the manager waiting on a
stop waits for the same instant. (Two separate ``stop_timeout`` budgets, one for
the hook and one for the caller, let a slow hook use up the caller's and lose
``stream_stopped``.)
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs
import httpx
import trio

from .._errors import ProtocolError, TrickleError
from .._media.encode_settings import EncoderSettings
from .._sdk.hooks import DEFAULT_CANCEL_GRACE, call_hook
from .._sdk.live_pipeline import (
    LivePipeline,
    StreamOutlets,
    bind_outlets,
    encode_event_segment,
    unbind_outlets,
)
from .._telemetry.outlet import Bell, DropOldestOutlet
from .._telemetry.runner import CapturedEvent, RunnerTelemetry, TrickleEventsSink
from .._wire.channel_events import HeartbeatEvent, StatusEvent
from .._wire.runner import SessionState, StopReason, StreamStartRequest
from .._wire.telemetry import (
    ERROR_PARAMS_UPDATE_FAILED,
    ERROR_STREAM_FAILED,
    ERROR_STREAM_STARTUP_FAILED,
    EVENT_ERROR,
    EVENT_SESSION_CLOSED,
    EVENT_SESSION_CREATED,
    EVENT_STREAM_HEARTBEAT,
    EVENT_STREAM_STARTED,
    EVENT_STREAM_STOPPED,
    TelemetryError,
    TelemetryEvent,
)
from .io import ParamsQueue, control_updates, write_data, write_events
from .media import MediaGraph
from .metrics import SessionCounters

__all__ = ["Session", "SessionSettings", "StartFailed"]

log = logging.getLogger("trio_trickle.session")

#: Longest failure message a session reports (``stream_stopped``'s ``error``, RUN-125).
MAX_FAILURE_MESSAGE = 200
#: Share of the stop deadline ``on_stream_stop`` may use; the rest publishes
#: ``stream_stopped`` and drains the channels (RUN-126).
STOP_HOOK_SHARE = 0.8


def first_failure(exc: BaseException) -> BaseException:
    """The first real failure inside ``exc``: the first leaf of an exception group
    that is not a cancellation (``exc`` itself when it is no group or holds none)."""
    pending: list[BaseException] = [exc]
    while pending:
        item = pending.pop(0)
        if isinstance(item, BaseExceptionGroup):
            pending[:0] = item.exceptions
        elif not isinstance(item, trio.Cancelled):
            return item
    return exc


def describe_failure(exc: BaseException) -> str:
    """``<Type>: <first line>`` of :func:`first_failure`, at most ``MAX_FAILURE_MESSAGE``
    characters: never a group's repr, never a traceback or a megabyte of text."""
    leaf = first_failure(exc)
    lines = str(leaf).strip().splitlines()
    text = f"{type(leaf).__name__}: {lines[0]}" if lines else type(leaf).__name__
    if len(text) > MAX_FAILURE_MESSAGE:
        text = text[: MAX_FAILURE_MESSAGE - 3] + "..."
    return text


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
    """GPU memory in MB of the current device, when torch is loaded and sees a GPU
    (TEL-032, Scope's names). A failing CUDA query costs the fields, never the stream."""
    torch = sys.modules.get("torch")
    mb = 1024 * 1024
    try:
        if torch is None or not torch.cuda.is_available():
            return {}
        device = torch.cuda.current_device()
        return {
            "vram_allocated_mb": round(torch.cuda.memory_allocated(device) / mb, 1),
            "vram_reserved_mb": round(torch.cuda.memory_reserved(device) / mb, 1),
            "vram_total_mb": round(torch.cuda.get_device_properties(device).total_memory / mb, 1),
        }
    except Exception as exc:  # a CUDA error here must not reach the heartbeat
        log.debug("VRAM query failed: %s", exc)
        return {}


#: What waits in the telemetry relay queue: captured stream events, encoded
#: process events, and events runner code emitted through the sink.
Relayed = bytes | CapturedEvent | TelemetryEvent


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
        #: trio time by which teardown is over; set once, at the stop decision (RUN-126).
        self.stop_deadline: float | None = None
        #: True once ``on_stream_start`` returned and the start was reported.
        self.reported_started = False
        self.error: str | None = None
        self._on_error = on_error or (lambda message: None)
        self._work = trio.CancelScope()
        self._outer = trio.CancelScope()
        self._done = trio.Event()
        self._started_monotonic = time.monotonic()
        self.params_queue = ParamsQueue()
        self.runner_telemetry = telemetry or RunnerTelemetry()
        self.telemetry = self.runner_telemetry.for_stream(
            self.id, request.params, [type(pipeline).__name__]
        )
        #: One bell for both queues the events writer drains.
        self.events_bell = Bell()
        #: Relayed telemetry, its own bound so pipeline events never crowd it out (TEL-043).
        self.telemetry_outlet: DropOldestOutlet[Relayed] = DropOldestOutlet(
            self.settings.telemetry_capacity, bell=self.events_bell
        )
        self._stream_started_at: float | None = None
        self._last_beat = (time.monotonic(), 0, 0)
        #: Runner code's way to relay its own telemetry on this stream.
        self.telemetry_sink = TrickleEventsSink(self.telemetry_outlet)
        self.outlets = StreamOutlets(
            events=DropOldestOutlet(self.settings.events_capacity, bell=self.events_bell),
            data=DropOldestOutlet(self.settings.data_capacity) if request.data_url else None,
            telemetry=self.telemetry_sink,
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

    def _put_event(self, event_type: str, **fields: Any) -> None:
        """A stream event for the events channel, stamped and tagged with the stream id.

        Never raises: the fields are bounded (RUN-125), and were one ever refused
        anyway, losing that event must not break the teardown that sends it.
        """
        event = {
            "type": event_type,
            "timestamp": _now_ms(),
            "gateway_request_id": self.id,
            **fields,
        }
        envelope = {"queue_event_type": "ai_stream_events", "event": event}
        try:
            self.outlets.events.put(encode_event_segment(envelope))
        except ProtocolError as exc:
            log.error("session %s: %s event not sent: %s", self.id, event_type, exc)

    # -- control from outside ----------------------------------------------------

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def request_stop(self, reason: StopReason, detail: str | None = None) -> None:
        """Stop the session; the first reason given wins. Safe to call repeatedly."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_detail = detail
        self._decide_stop()
        self.params_queue.cancel_all()
        self._work.cancel()

    def note_reason(self, reason: StopReason) -> None:
        """Record why the stream is ending without cancelling the drain in progress."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.params_queue.cancel_all()

    def _decide_stop(self) -> None:
        """Fix the stop deadline, once; the session's whole tree ends by it (RUN-126)."""
        if self.stop_deadline is None:
            self.stop_deadline = trio.current_time() + self.settings.stop_timeout
            self._outer.deadline = self.stop_deadline

    def abandon(self) -> None:
        """Cancel everything now, teardown included (the stop deadline passed)."""
        self.request_stop(StopReason.SHUTDOWN)
        self._outer.cancel()

    async def wait_done(self) -> None:
        await self._done.wait()

    def fail(self, message: str, *, public: str | None = None) -> None:
        """Record an unrecoverable error and stop with reason ``failed``.

        ``message`` (cut to ``MAX_FAILURE_MESSAGE``) goes into ``stream_stopped``;
        ``public``, when given, is what ``/stream/status`` shows as ``last_error``
        (an HTTP body: the exception type, never its text, RUN-026).
        """
        message = message[:MAX_FAILURE_MESSAGE]
        if self.error is None:
            self.error = message
            self._telemetry_error(ERROR_STREAM_FAILED, message, recoverable=False)
        self._on_error(public or message)
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
            "frames_dropped": self.counters.frames_dropped,
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
                        self.reported_started = True
                        task_status.started()
                        await self._run_work()
                        self._decide_stop()  # the work ended by itself (input ended)
                        self.state = SessionState.STOPPING
                        await self._teardown()
                    finally:
                        self._close_outlets()
            if start_error is not None:
                raise start_error
        finally:
            unbind_outlets(token)
            self.state = SessionState.STOPPING
            self.params_queue.cancel_all()  # whatever still waits is answered (RUN-121)
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
                        work.start_soon(MediaGraph(self).run)
            except Exception as exc:  # a child failed: the whole stream stops
                log.exception("session %s failed", self.id)
                leaf = first_failure(exc)
                self.fail(describe_failure(exc), public=f"stream failed: {type(leaf).__name__}")

    async def _teardown(self) -> None:
        """``on_stream_stop`` once, ``stream_stopped``, then close the outlets.

        ``on_stream_stop`` ends by its share of the one stop deadline, so the
        rest of it is left for ``stream_stopped`` to go out (RUN-099, RUN-126).
        """
        assert self.stop_deadline is not None
        reserve = (1 - STOP_HOOK_SHARE) * self.settings.stop_timeout
        # A sync hook cut off still gets a grace to return; it must not eat the reserve.
        grace = min(DEFAULT_CANCEL_GRACE, reserve / 4)
        with trio.move_on_at(self.stop_deadline - reserve) as scope:
            try:
                await call_hook(self.pipeline.on_stream_stop, cancel_grace=grace)
            except Exception:
                log.exception("session %s: on_stream_stop raised", self.id)
        if scope.cancelled_caught:
            log.warning("session %s: on_stream_stop outlived the stop deadline", self.id)
        reason = str(self.stop_reason or StopReason.INPUT_ENDED)
        stopped: dict[str, Any] = {"reason": reason}
        if self.error is not None:
            stopped["error"] = self.error
        if self.stop_detail is not None:
            stopped["detail"] = self.stop_detail
        self._put_event("stream_stopped", **stopped)
        failure = None
        if self.error is not None:
            failure = TelemetryError(
                error_type=ERROR_STREAM_FAILED, message=self.error[:4096], recoverable=False
            )
        self._telemetry(
            EVENT_STREAM_STOPPED,
            error=failure,
            reason=reason,
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
            "frames_dropped": counters.frames_dropped,
            "fps_in": round((counters.frames_in - frames_in) / span, 1),
            "fps_out": round((counters.frames_out - frames_out) / span, 1),
            "elapsed_ms": round((now - self._started_monotonic) * 1000),
            "since_last_heartbeat_ms": round(span * 1000),
        }
        latency = counters.latency.mean_ms()
        if latency is not None:
            meta["latency_ms"] = latency
        # Relayed telemetry the bound dropped so far (TEL-043), reported, not just counted.
        meta["telemetry_dropped"] = self.telemetry_outlet.dropped
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
            extra={
                "gateway_request_id": self.id,
                "frames_dropped": counters.frames_dropped,
                "latency_ms": counters.latency.mean_ms(),
            },
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
        """One ``on_params_update`` at a time, in arrival order (RUN-088).

        The job taken off the queue is this task's to answer: a stop that cancels
        its hook answers it as stopped (RUN-121), since ``Cancelled`` is no
        ``Exception`` and would otherwise leave its caller waiting for ever.
        """
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
            finally:
                job.stop()  # only if still unanswered: cancelled by the stop
