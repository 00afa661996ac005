"""The runner's telemetry: lifecycle events stamped once, relayed on the events channel.

A runner has no egress of its own (Scope#1040: runners lack Kafka credentials),
so every event it stamps travels to the gateway on the stream's events channel
as ``{"type":"telemetry","event":<envelope>}`` (TEL-040), where the gateway's
events reader hands it to its egress sink verbatim (TEL-041).

:class:`RunnerTelemetry` holds what every event of the process shares
(``client_source``, ``connection_info``) and a bounded process-level queue for
events stamped outside any stream (``runner_ready``, ``pipeline_*``); those ride
on the next stream's events channel (TEL-044). :class:`StreamTelemetry` adds
one stream's identifiers (a fresh ``session_id``, ``connection_id`` = the
stream id, ``user_id`` when the start params carry one) so that every event of
the stream correlates (TEL-017..019).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import trio

from .._errors import ProtocolError
from .._wire.telemetry import (
    DEFAULT_CLIENT_SOURCE,
    TelemetryError,
    TelemetryEvent,
    TelemetryRelay,
)
from .outlet import DropOldestOutlet

__all__ = [
    "CapturedEvent",
    "RunnerTelemetry",
    "StreamTelemetry",
    "TrickleEventsSink",
    "connection_info_from_env",
]

log = logging.getLogger("trio_trickle.telemetry")

#: Process-level relay queue bound (TEL-044).
PENDING_CAPACITY = 1024


def _now_ms() -> int:
    return int(time.time() * 1000)


def connection_info_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``connection_info`` from configuration and environment (TEL-020).

    ``gpu_type`` is the GPU model torch reports when torch is already loaded
    (telemetry never imports torch itself), else ``TRIO_TRICKLE_GPU_TYPE`` or
    ``none``; on fal, Scope's region, runner id and log labels are added.
    """
    env = os.environ if environ is None else environ
    info: dict[str, Any] = {"gpu_type": env.get("TRIO_TRICKLE_GPU_TYPE") or _gpu_name() or "none"}
    if env.get("NOMAD_DC"):
        info["fal_region"] = env["NOMAD_DC"]
    runner = env.get("FAL_JOB_ID") or env.get("FAL_RUNNER_ID")
    if runner:
        info["fal_runner_id"] = runner
    labels = env.get("FAL_LOG_LABELS")
    if labels:
        try:  # JSON as Scope reads it, else the raw string (TEL-020)
            info["fal_log_labels"] = json.loads(labels)
        except ValueError:
            info["fal_log_labels"] = labels
    return info


def _gpu_name() -> str | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except Exception:  # a broken driver must not break telemetry
        log.debug("could not read the GPU name", exc_info=True)
    return None


class CapturedEvent:
    """An event captured where it happened (its timestamp fixed), not yet built.

    Capturing is one clock read and a small object, so a flood from a hot path
    stays cheap. The drain task builds the event (its id, validation, JSON)
    only if it survives the relay's drop-oldest bound (TEL-045); a dropped
    event never gets an id, so every id still names exactly one event.
    """

    __slots__ = ("error", "metadata", "name", "timestamp_ms")

    def __init__(
        self,
        name: str,
        timestamp_ms: int,
        error: TelemetryError | None,
        metadata: dict[str, Any],
    ) -> None:
        self.name = name
        self.timestamp_ms = timestamp_ms
        self.error = error
        self.metadata = metadata


class RunnerTelemetry:
    """Process-wide telemetry context and the queue of events waiting for a stream."""

    def __init__(
        self,
        *,
        client_source: str = DEFAULT_CLIENT_SOURCE,
        connection_info: Mapping[str, Any] | None = None,
        clock_ms: Callable[[], int] = _now_ms,
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
    ) -> None:
        self.client_source = client_source
        self.connection_info = dict(
            connection_info if connection_info is not None else connection_info_from_env()
        )
        self.clock_ms = clock_ms
        self.new_id = new_id
        #: Monotonic time this object was made: the runner's start, for startup_ms.
        self.started = time.monotonic()
        self._pending: collections.deque[bytes] = collections.deque(maxlen=PENDING_CAPACITY)
        self._lock = threading.Lock()
        #: Process-level events dropped because the queue was full (oldest first).
        self.pending_dropped = 0

    def stamp(
        self,
        name: str,
        *,
        session_id: str | None = None,
        connection_id: str | None = None,
        user_id: str | None = None,
        pipeline_ids: list[str] | None = None,
        error: TelemetryError | None = None,
        **metadata: Any,
    ) -> TelemetryEvent:
        """Stamp an event now (TEL-021): fresh id, one timestamp, shared context."""
        return TelemetryEvent.stamp(
            name,
            clock_ms=self.clock_ms,
            new_id=self.new_id,
            client_source=self.client_source,
            session_id=session_id,
            connection_id=connection_id,
            user_id=user_id,
            pipeline_ids=pipeline_ids,
            connection_info=self.connection_info,
            error=error,
            metadata=metadata,
        )

    def record(self, event: TelemetryEvent) -> None:
        """Called with every stream event as it is built; a hook for tests and taps."""

    @staticmethod
    def relay_bytes(event: TelemetryEvent) -> bytes:
        """One events-channel segment carrying ``event`` (TEL-040)."""
        return TelemetryRelay(event=event).to_bytes()

    def emit_process(self, name: str, **kwargs: Any) -> None:
        """Stamp a process-level event and queue it for the next stream (TEL-044)."""
        try:
            data = self.relay_bytes(self.stamp(name, **kwargs))
        except ProtocolError:
            log.exception("telemetry event %s could not be built", name)
            return
        with self._lock:
            if len(self._pending) == self._pending.maxlen:
                self.pending_dropped += 1
            self._pending.append(data)

    def take_pending(self) -> list[bytes]:
        """Everything queued outside a stream, oldest first; the queue empties."""
        with self._lock:
            items = list(self._pending)
            self._pending.clear()
        return items

    def for_stream(
        self, stream_id: str, params: Mapping[str, Any] | None, pipeline_ids: list[str]
    ) -> StreamTelemetry:
        user = None
        if params is not None:
            for key in ("daydream_user_id", "user_id"):
                value = params.get(key)
                if isinstance(value, str) and value:
                    user = value
                    break
        return StreamTelemetry(
            runner=self,
            session_id=str(self.new_id()),
            connection_id=stream_id,
            user_id=user,
            pipeline_ids=pipeline_ids,
        )


class StreamTelemetry:
    """One stream's identifiers; :meth:`event` stamps with all of them (TEL-017..019)."""

    def __init__(
        self,
        *,
        runner: RunnerTelemetry,
        session_id: str,
        connection_id: str,
        user_id: str | None,
        pipeline_ids: list[str],
    ) -> None:
        self.runner = runner
        self.session_id = session_id
        self.connection_id = connection_id
        self.user_id = user_id
        self.pipeline_ids = pipeline_ids

    def capture(
        self, name: str, *, error: TelemetryError | None = None, **metadata: Any
    ) -> CapturedEvent:
        """Stamp an event of this stream now; build it later with :meth:`encode`."""
        return CapturedEvent(name, self.runner.clock_ms(), error, metadata)

    def encode(self, captured: CapturedEvent) -> bytes:
        """The relay segment of a captured event, with the id and time it was stamped with.

        Raises ProtocolError for an event that cannot be built (a caller's bug).
        """
        event = TelemetryEvent.stamp(
            captured.name,
            clock_ms=lambda: captured.timestamp_ms,
            new_id=self.runner.new_id,
            client_source=self.runner.client_source,
            session_id=self.session_id,
            connection_id=self.connection_id,
            user_id=self.user_id,
            pipeline_ids=self.pipeline_ids,
            connection_info=self.runner.connection_info,
            error=captured.error,
            metadata=captured.metadata,
        )
        self.runner.record(event)
        return self.runner.relay_bytes(event)

    def event(self, name: str, *, error: TelemetryError | None = None, **metadata: Any) -> bytes:
        """Capture and encode at once (for the rare event off the hot path)."""
        return self.encode(self.capture(name, error=error, **metadata))


class TrickleEventsSink:
    """A :class:`TelemetrySink` for runner code: relays events on the stream's events channel.

    It writes into the session's bounded drop-oldest relay queue, which the
    session's events writer drains (TEL-040, TEL-043): ``emit`` never blocks and
    never raises, from any thread (TEL-047). Installed when a session starts
    (``current_telemetry_sink()`` inside hooks) and torn down with it.
    """

    def __init__(self, outlet: DropOldestOutlet[Any]) -> None:
        self._outlet = outlet
        self._rejected = 0
        #: Events the session's writer has published from this sink.
        self.written = 0

    @property
    def accepted(self) -> int:
        return self._outlet.accepted

    @property
    def delivered(self) -> int:
        """Events handed to the events channel (counted by the session's writer)."""
        return self.written

    @property
    def dropped(self) -> int:
        return self._outlet.dropped

    @property
    def failed(self) -> int:
        return self._rejected

    def emit(self, event: TelemetryEvent) -> None:
        candidate: object = event
        if not isinstance(candidate, TelemetryEvent):  # a caller's bug: counted, not raised
            self._rejected += 1
            return
        if not self._outlet.put(event):
            self._rejected += 1  # the session has ended

    async def run(self) -> None:
        """Nothing to do: the session's events writer drains the queue."""
        await trio.sleep_forever()

    async def aclose(self) -> None:
        return None
