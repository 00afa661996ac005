"""Telemetry sink encodings: the HTTP batch body, the disk spool, ``Retry-After``.

The envelope itself (:mod:`.telemetry`) is what every hop carries; these
are the shapes only a sink produces or reads on its way to a collector: the
``{"events": [...]}`` POST body, the JSONL spool that survives a restart, and
the server's back-off hint. Pure functions and values, no I/O and no clock
(``now_s`` is passed in); spec/telemetry.md.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Iterable
from typing import Any

import attrs

from .._errors import InvalidMessage
from .fields import expect_object
from .json_codec import dump_json, parse_json
from .telemetry import TelemetryEvent
from .validate import tuple_of

__all__ = [
    "TelemetryBatch",
    "decode_spool",
    "encode_spool",
    "parse_retry_after",
]


@attrs.frozen(kw_only=True)
class TelemetryBatch:
    """HttpSink request body: ``{"events": [envelope, ...]}`` in emission order (TEL-052)."""

    events: tuple[TelemetryEvent, ...] = attrs.field(validator=tuple_of(TelemetryEvent))

    def to_wire(self) -> dict[str, Any]:
        return {"events": [e.to_wire() for e in self.events]}

    @classmethod
    def from_wire(cls, obj: object) -> TelemetryBatch:
        items = expect_object(obj, "telemetry batch").get("events")
        if not isinstance(items, list):
            raise InvalidMessage("telemetry batch: field 'events' must be an array")
        return cls(events=tuple(TelemetryEvent.from_wire(e) for e in items))

    def split(self) -> tuple[TelemetryBatch, TelemetryBatch]:
        """Halve a batch the server refused as too large (TEL-060); order is kept."""
        if len(self.events) < 2:
            raise ValueError("a batch of fewer than two events cannot be split")
        mid = len(self.events) // 2
        return TelemetryBatch(events=self.events[:mid]), TelemetryBatch(events=self.events[mid:])


def encode_spool(events: Iterable[TelemetryEvent]) -> bytes:
    """JSONL for the disk spool: one compact envelope per line (TEL-062)."""
    return b"".join(dump_json(e.to_wire()) + b"\n" for e in events)


def decode_spool(data: bytes) -> tuple[list[TelemetryEvent], int]:
    """Read a spool back; returns the events in order and the count of unreadable lines.

    A torn last line (crash mid-write) or any corrupt line is skipped, never fatal
    (TEL-067).
    """
    events: list[TelemetryEvent] = []
    bad = 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            events.append(TelemetryEvent.from_wire(parse_json(line, "spool line")))
        except InvalidMessage:
            bad += 1
    return events, bad


def parse_retry_after(value: str | None, *, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), or None.

    ``now_s`` is the current epoch time, passed in so the function stays pure. A
    date in the past gives 0; an unparseable value gives None (TEL-059).
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # More than ten digits is centuries: a broken header, not a wait to honour.
        return float(int(text)) if len(text) <= 10 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    delay = when.timestamp() - now_s
    return max(0.0, delay) if math.isfinite(delay) else None
