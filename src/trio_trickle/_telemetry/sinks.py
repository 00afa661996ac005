"""Telemetry sinks: the protocol every egress obeys and the simple sinks.

A sink sits on the media and control paths' side door: ``emit`` is called from
hooks, session tasks and worker threads, so it must never block and never raise
(TEL-047). Every sink therefore puts events into an
:class:`~trio_trickle.EventBuffer` (bounded, drop-oldest, safe from any thread,
TEL-048; in :mod:`.buffer`) and a single trio task, the sink's ``run()``, moves
them on. ``aclose()`` makes a last delivery attempt within the shutdown deadline
(TEL-051).

The buffer binds to trio only when ``run()`` starts, so sinks can be built before
``trio.run`` (from configuration at process start). This is the base the other
sink modules build on: :class:`HttpSink` (:mod:`.http`) and :class:`KafkaSink`
(:mod:`.kafka`) import their defaults from here, and :mod:`.selection` (which
picks among all of them) imports this module and those, never the other way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

import trio

from .._wire.json_codec import dump_json
from .._wire.telemetry import TelemetryEvent
from .buffer import BufferedSink

__all__ = [
    "DEFAULT_KAFKA_TOPIC",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "FanoutSink",
    "LogSink",
    "NullSink",
    "TelemetrySink",
]

log = logging.getLogger("trio_trickle.telemetry")

#: How long closing a sink may take (TEL-051).
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
#: The one Kafka topic default (TEL-074).
DEFAULT_KAFKA_TOPIC = "network_events"


@runtime_checkable
class TelemetrySink(Protocol):
    """What every sink offers: a non-blocking ``emit``, a drain task, a bounded close.

    Counters (TEL-049): ``accepted`` events given to ``emit``, ``delivered`` to
    the backend, ``dropped`` by the buffer bound or a drop rule, ``failed`` (lost
    to an error the sink could not recover from).
    """

    @property
    def accepted(self) -> int: ...

    @property
    def delivered(self) -> int: ...

    @property
    def dropped(self) -> int: ...

    @property
    def failed(self) -> int: ...

    def emit(self, event: TelemetryEvent) -> None:
        """Hand over one event; never blocks, never raises, callable from any thread."""

    async def run(self) -> None:
        """Deliver buffered events until cancelled or closed."""

    async def aclose(self) -> None:
        """Deliver what can be delivered within the shutdown deadline, then stop."""


class NullSink:
    """Telemetry switched off: counts what it is given and keeps nothing."""

    def __init__(self) -> None:
        self._accepted = 0

    @property
    def accepted(self) -> int:
        return self._accepted

    @property
    def delivered(self) -> int:
        return 0

    @property
    def dropped(self) -> int:
        return 0

    @property
    def failed(self) -> int:
        return 0

    def emit(self, event: TelemetryEvent) -> None:
        self._accepted += 1

    async def run(self) -> None:
        await trio.sleep_forever()

    async def aclose(self) -> None:
        return None


class LogSink(BufferedSink):
    """One structured log line per event on logger ``trio_trickle.telemetry``.

    For development and for checking a relay without a backend. Lines are written
    by the drain task, not by ``emit``, so a slow log handler never stalls a
    producer; the record carries the envelope as ``record.telemetry_event``.
    """

    _kind = "LogSink"

    def __init__(
        self,
        *,
        max_buffer: int = 10_000,
        level: int = logging.INFO,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(max_buffer)
        self._level = level
        self._log = logger or log

    def _write(self, events: Iterable[TelemetryEvent]) -> None:
        for event in events:
            try:
                wire = event.to_wire()
                self._log.log(
                    self._level,
                    "telemetry type=%s id=%s event=%s",
                    event.name,
                    event.id,
                    dump_json(wire).decode(),
                    extra={"telemetry_event": wire},
                )
                self._delivered += 1
            except Exception:  # a broken handler or event: count it, keep going
                self._failed += 1

    async def run(self) -> None:
        self._begin_run()
        try:
            while True:
                batch = self._buffer.take(256)
                if batch:
                    self._write(batch)
                    await trio.lowlevel.checkpoint()
                elif self._buffer.closed:
                    return
                else:
                    await self._buffer.wait()
        finally:
            self._write(self._buffer.take(len(self._buffer)))
            self._done.set()

    async def aclose(self) -> None:
        self._buffer.close()
        if self._started:
            await self._done.wait()
        else:
            self._write(self._buffer.take(len(self._buffer)))
            self._done.set()


class FanoutSink:
    """Several sinks as one: each gets every event, and one failing leaves the rest alone.

    TEL-050. ``accepted`` counts events offered to the fan-out; the other
    counters are sums over the member sinks.
    """

    def __init__(self, sinks: Sequence[TelemetrySink]) -> None:
        self.sinks = tuple(sinks)
        self._accepted = 0

    @property
    def accepted(self) -> int:
        return self._accepted

    @property
    def delivered(self) -> int:
        return sum(s.delivered for s in self.sinks)

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self.sinks)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.sinks)

    def emit(self, event: TelemetryEvent) -> None:
        self._accepted += 1
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception:  # a sink breaking its contract must not starve the others
                log.exception("telemetry sink %r raised from emit()", sink)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            for sink in self.sinks:
                nursery.start_soon(_guarded, sink.run, f"{sink!r}.run()")

    async def aclose(self) -> None:
        async with trio.open_nursery() as nursery:
            for sink in self.sinks:
                nursery.start_soon(_guarded, sink.aclose, f"{sink!r}.aclose()")


async def _guarded(fn: Callable[[], Awaitable[None]], what: str) -> None:
    try:
        await fn()
    except Exception:
        log.exception("telemetry: %s failed; other sinks carry on", what)
