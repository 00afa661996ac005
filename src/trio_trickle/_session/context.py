"""What a session's children see of their session: :class:`StreamContext`.

The channel loops (:mod:`.io`), the heartbeat (:mod:`.heartbeat`) and the media
path (:mod:`.media`, :mod:`.relay`, :mod:`.frame_graph`) run as tasks of one
:class:`~.session.Session`. They need its request, settings and counters, its
outlets, a way to emit telemetry and events, when it started, and its stop
calls; they get all of that here, so none of them imports the session (which
imports them) and none reaches into its private state.

The stop calls are the session's own (the first reason wins, one deadline,
RUN-126): :class:`SessionControl` names them, and the session passes itself.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import httpx

from .._errors import ProtocolError
from .._sdk.live_pipeline import LivePipeline, StreamOutlets, encode_event_segment
from .._telemetry.outlet import Bell, DropOldestOutlet
from .._telemetry.runner import CapturedEvent, RunnerTelemetry, TrickleEventsSink
from .._wire.runner import StopReason, StreamStartRequest
from .._wire.telemetry import EVENT_ERROR, TelemetryError, TelemetryEvent
from .metrics import SessionCounters
from .settings import SessionSettings

__all__: list[str] = []  # the session's internals, nothing public

log = logging.getLogger("trio_trickle.session")

#: What waits in the telemetry relay queue: captured stream events, encoded
#: process events, and events runner code emitted through the sink.
Relayed = bytes | CapturedEvent | TelemetryEvent


def now_ms() -> int:
    """Wall-clock milliseconds, the stamp of every event the session sends."""
    return int(time.time() * 1000)


class SessionControl(Protocol):
    """The session's stop calls, as its children use them."""

    def request_stop(self, reason: StopReason, detail: str | None = None) -> None:
        """Stop the session; the first reason given wins."""

    def note_reason(self, reason: StopReason) -> None:
        """Record why the stream is ending without cancelling the drain in progress."""

    def fail(self, message: str, *, public: str | None = None) -> None:
        """An unrecoverable error: record it and stop with reason ``failed``."""

    def report_error(self, message: str) -> None:
        """A recoverable error: remembered, the session goes on."""


class StreamContext:
    """One stream's request, settings, counters, outlets and telemetry, shared by
    the session and its tasks; :attr:`control` stops the session."""

    def __init__(
        self,
        request: StreamStartRequest,
        pipeline: LivePipeline,
        *,
        client: httpx.AsyncClient,
        settings: SessionSettings,
        telemetry: RunnerTelemetry,
        control: SessionControl,
    ) -> None:
        self.request = request
        self.id = request.gateway_request_id
        self.pipeline = pipeline
        self.client = client
        self.settings = settings
        self.control = control
        self.counters = SessionCounters()
        self.started_at_ms = now_ms()
        #: When the session was created, and when its stream started (``on_stream_start``
        #: returned; None before): the origins of elapsed times and time to first frame.
        self.started_monotonic = time.monotonic()
        self.stream_started_at: float | None = None
        self.runner_telemetry = telemetry
        self.telemetry = telemetry.for_stream(self.id, request.params, [type(pipeline).__name__])
        #: One bell for both queues the events writer drains.
        self.events_bell = Bell()
        #: Relayed telemetry, its own bound so pipeline events never crowd it out (TEL-043).
        self.telemetry_outlet: DropOldestOutlet[Relayed] = DropOldestOutlet(
            settings.telemetry_capacity, bell=self.events_bell
        )
        #: Runner code's way to relay its own telemetry on this stream.
        self.telemetry_sink = TrickleEventsSink(self.telemetry_outlet)
        self.outlets = StreamOutlets(
            events=DropOldestOutlet(settings.events_capacity, bell=self.events_bell),
            data=DropOldestOutlet(settings.data_capacity) if request.data_url else None,
            telemetry=self.telemetry_sink,
        )

    def emit(self, name: str, *, error: TelemetryError | None = None, **meta: Any) -> None:
        """Stamp a stream event now; it is built and relayed by the events writer (TEL-040).

        Cheap and non-blocking from any thread: a flood only makes the bounded
        relay queue drop its oldest, unbuilt events (TEL-043, TEL-045).
        """
        self.telemetry_outlet.put(self.telemetry.capture(name, error=error, **meta))

    def emit_error(
        self, error_type: str, message: str, *, recoverable: bool, exc: BaseException | None = None
    ) -> None:
        """An ``error`` telemetry event of ``error_type`` (its message cut to 4096)."""
        error = TelemetryError(
            error_type=error_type,
            message=message[:4096],
            exception_type=type(exc).__name__ if exc is not None else None,
            recoverable=recoverable,
        )
        self.emit(EVENT_ERROR, error=error)

    def put_event(self, event_type: str, **fields: Any) -> None:
        """A stream event for the events channel, stamped and tagged with the stream id.

        Never raises: the fields are bounded (RUN-125), and were one ever refused
        anyway, losing that event must not break the teardown that sends it.
        """
        event = {
            "type": event_type,
            "timestamp": now_ms(),
            "gateway_request_id": self.id,
            **fields,
        }
        envelope = {"queue_event_type": "ai_stream_events", "event": event}
        try:
            self.outlets.events.put(encode_event_segment(envelope))
        except ProtocolError as exc:
            log.error("session %s: %s event not sent: %s", self.id, event_type, exc)

    def close_outlets(self) -> None:
        """No more events, telemetry or data: the writers drain what is left and end."""
        self.outlets.events.close()
        self.telemetry_outlet.close()
        if self.outlets.data is not None:
            self.outlets.data.close()
