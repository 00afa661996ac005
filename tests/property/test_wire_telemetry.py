"""Properties of the telemetry wire types: exact re-encoding, plain JSON, total decoders."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

import pytest
from hypothesis import given, strategies as st

from tests.strategies.telemetry import (
    arbitrary_json,
    metadata,
    millis,
    mutated,
    telemetry_batches,
    telemetry_errors,
    telemetry_events,
    telemetry_relays,
)
from trio_trickle import ProtocolError
from trio_trickle._wire.json_codec import dump_json
from trio_trickle._wire.telemetry import (
    RESERVED_DATA_KEYS,
    TelemetryError,
    TelemetryEvent,
    TelemetryRelay,
)
from trio_trickle._wire.telemetry_sink import (
    TelemetryBatch,
    decode_spool,
    encode_spool,
)

CASES: list[tuple[st.SearchStrategy[Any], Any]] = [
    (telemetry_errors, TelemetryError),
    (telemetry_events(), TelemetryEvent),
    (telemetry_relays, TelemetryRelay),
    (telemetry_batches, TelemetryBatch),
]
IDS = [cls.__name__ for _, cls in CASES]


@pytest.mark.spec("TEL-022")
@pytest.mark.parametrize(("strategy", "cls"), CASES, ids=IDS)
def test_round_trip_and_exact_reencoding(strategy: st.SearchStrategy[Any], cls: Any) -> None:
    @given(strategy)
    def check(value: Any) -> None:
        wire = value.to_wire()
        decoded = cls.from_wire(json.loads(dump_json(wire)))
        assert decoded == value
        assert decoded.to_wire() == wire

    check()


@pytest.mark.parametrize(("strategy", "cls"), CASES, ids=IDS)
def test_to_wire_is_plain_json(strategy: st.SearchStrategy[Any], cls: Any) -> None:
    @given(strategy)
    def check(value: Any) -> None:
        wire = value.to_wire()
        assert json.loads(json.dumps(wire, allow_nan=False)) == wire

    check()


@pytest.mark.spec("TEL-016", "TEL-042")
@pytest.mark.parametrize(("strategy", "cls"), CASES, ids=IDS)
def test_from_wire_on_arbitrary_json_raises_only_protocol_errors(
    strategy: st.SearchStrategy[Any], cls: Any
) -> None:
    @given(arbitrary_json)
    def check(obj: Any) -> None:
        with contextlib.suppress(ProtocolError):
            cls.from_wire(obj)

    check()


@pytest.mark.spec("TEL-016", "TEL-042")
@pytest.mark.parametrize(("strategy", "cls"), CASES, ids=IDS)
def test_from_wire_on_mutated_bodies_raises_only_protocol_errors(
    strategy: st.SearchStrategy[Any], cls: Any
) -> None:
    @given(st.data())
    def check(data: st.DataObject) -> None:
        wire = data.draw(strategy).to_wire()
        with contextlib.suppress(ProtocolError):
            cls.from_wire(data.draw(mutated(wire)))
        if "data" in wire:
            inner = dict(wire, data=data.draw(mutated(wire["data"])))
            with contextlib.suppress(ProtocolError):
                cls.from_wire(inner)

    check()


@pytest.mark.spec("TEL-016", "TEL-042")
@given(raw=st.binary(max_size=300) | arbitrary_json.map(lambda v: json.dumps(v).encode()))
def test_from_bytes_raises_only_protocol_errors(raw: bytes) -> None:
    for decode in (TelemetryEvent.from_bytes, TelemetryRelay.from_bytes):
        with contextlib.suppress(ProtocolError):
            decode(raw)
    events, bad = decode_spool(raw)
    assert bad >= 0
    assert all(isinstance(e, TelemetryEvent) for e in events)


@pytest.mark.spec("TEL-001", "TEL-003", "TEL-004", "TEL-006", "TEL-010")
@given(event=telemetry_events())
def test_envelope_shape(event: TelemetryEvent) -> None:
    wire = event.to_wire()
    assert set(wire) == {"id", "type", "timestamp", "data"}
    assert wire["type"] == "stream_trace"
    assert wire["timestamp"] == str(event.timestamp_ms)
    assert wire["data"]["timestamp"] == str(event.data_timestamp_ms)
    assert wire["data"]["type"] == event.name
    for key, value in event.metadata.items():
        assert wire["data"][key] == value
    assert set(wire["data"]) - RESERVED_DATA_KEYS == set(event.metadata)


@pytest.mark.spec("TEL-021", "TEL-011")
@given(name=st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True), now=millis, meta=metadata)
def test_stamp_uses_one_instant_and_keeps_metadata(
    name: str, now: int, meta: dict[str, Any]
) -> None:
    try:
        event = TelemetryEvent.stamp(
            name,
            clock_ms=lambda: now,
            new_id=uuid.uuid4,
            metadata=meta,
            error=TelemetryError(error_type="stream_failed") if name == "error" else None,
        )
    except ProtocolError:
        return  # a known event name drawn without its required metadata
    assert event.timestamp_ms == event.data_timestamp_ms == now
    assert event.metadata == meta


@pytest.mark.spec("TEL-062", "TEL-067")
@given(
    events=st.lists(telemetry_events(), max_size=3),
    junk=st.lists(st.binary(max_size=20), max_size=4),
)
def test_spool_round_trip_survives_junk_lines(
    events: list[TelemetryEvent], junk: list[bytes]
) -> None:
    assert decode_spool(encode_spool(events)) == (events, 0)
    noisy = encode_spool(events) + b"".join(j.replace(b"\n", b"") + b"\n" for j in junk)
    decoded, bad = decode_spool(noisy)
    assert decoded[: len(events)] == events
    assert len(decoded) + bad <= len(events) + len(junk)


@pytest.mark.spec("TEL-060")
@given(events=st.lists(telemetry_events(), min_size=2, max_size=4))
def test_split_keeps_every_event_once_in_order(events: list[TelemetryEvent]) -> None:
    batch = TelemetryBatch(events=tuple(events))
    first, second = batch.split()
    assert first.events + second.events == batch.events
    assert first.events
    assert second.events
