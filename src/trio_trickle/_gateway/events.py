"""The gateway's side of a stream's events channel, and its own connect/disconnect pair.

:func:`read_stream_events` reads the events channel the way a gateway does:
a message whose ``type`` is ``telemetry`` is a relayed runner event and goes to
the egress sink *verbatim*, ids and timestamps as the runner stamped them
(TEL-041, TEL-022); anything else is a pipeline event for the caller. A
malformed message is dropped and counted, never fatal (TEL-042).

:func:`gateway_connection` brackets a gateway's stream with
``gateway_connected`` / ``gateway_disconnected`` carrying the same
``connection_id`` the runner uses (TEL-017, TEL-037).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx

from .._client.channels import JsonSegmentReader
from .._errors import ChannelClosed, ProtocolError
from .._telemetry.runner import RunnerTelemetry
from .._telemetry.sinks import TelemetrySink
from .._wire.telemetry import EVENT_GATEWAY_CONNECTED, EVENT_GATEWAY_DISCONNECTED, TelemetryRelay

__all__ = ["EventsReaderStats", "gateway_connection", "read_stream_events"]

log = logging.getLogger("trio_trickle.gateway")


@attrs.define
class EventsReaderStats:
    """What an events reader saw."""

    telemetry: int = 0
    pipeline_events: int = 0
    malformed: int = 0


async def read_stream_events(
    events_url: str,
    sink: TelemetrySink,
    *,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    client: httpx.AsyncClient | None = None,
    start_seq: int = 0,
    stats: EventsReaderStats | None = None,
) -> EventsReaderStats:
    """Read ``events_url`` until the channel ends; returns what was seen."""
    seen = stats if stats is not None else EventsReaderStats()
    try:
        async with JsonSegmentReader(
            events_url, client=client, start_seq=start_seq, skip_invalid=True
        ) as reader:
            async for message in reader:
                if TelemetryRelay.is_relay(message):
                    try:
                        relay = TelemetryRelay.from_wire(message)
                    except ProtocolError as exc:
                        seen.malformed += 1
                        log.warning("dropping a malformed telemetry relay: %s", exc)
                        continue
                    seen.telemetry += 1
                    sink.emit(relay.event)
                    continue
                seen.pipeline_events += 1
                if on_event is not None:
                    on_event(message)
    except ChannelClosed:
        pass  # the channel is gone: the stream is over
    return seen


@asynccontextmanager
async def gateway_connection(
    sink: TelemetrySink,
    *,
    connection_id: str,
    telemetry: RunnerTelemetry | None = None,
    user_id: str | None = None,
) -> AsyncIterator[None]:
    """Emit ``gateway_connected`` now and ``gateway_disconnected`` on exit (TEL-037)."""
    stamper = telemetry or RunnerTelemetry(client_source="trio-trickle-gateway")
    started_ms = stamper.clock_ms()
    started = time.monotonic()
    sink.emit(stamper.stamp(EVENT_GATEWAY_CONNECTED, connection_id=connection_id, user_id=user_id))
    try:
        yield
    finally:
        sink.emit(
            stamper.stamp(
                EVENT_GATEWAY_DISCONNECTED,
                connection_id=connection_id,
                user_id=user_id,
                duration_ms=round((time.monotonic() - started) * 1000),
                session_start_time_ms=started_ms,
                session_end_time_ms=stamper.clock_ms(),
            )
        )
