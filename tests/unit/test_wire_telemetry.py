"""Example tests for the telemetry envelope, relay wrapper, batches and spool."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from trio_trickle import InvalidMessage, PayloadTooLarge, ProtocolError
from trio_trickle._wire.telemetry import (
    DEFAULT_CLIENT_SOURCE,
    KNOWN_ERROR_TYPES,
    KNOWN_EVENTS,
    MAX_EVENT_BYTES,
    REQUIRED_METADATA,
    RESERVED_DATA_KEYS,
    TelemetryError,
    TelemetryEvent,
    TelemetryRelay,
)
from trio_trickle._wire.telemetry_sink import (
    TelemetryBatch,
    decode_spool,
    encode_spool,
    parse_retry_after,
)

FIXED_ID = uuid.UUID("6f1c2a4e-9b7d-4c3a-8e21-5d0f4b6a7c89")
NOW = 1717000000123

# Shaped like Scope's KafkaPublisher.publish_async output (research runner_telemetry.md §5.2),
# for a stream_heartbeat from FrameProcessor (§5.3).
SCOPE_HEARTBEAT: dict[str, Any] = {
    "id": "0b5a5c1e-3f7e-4d2b-9a61-2c8e7f4d1a90",
    "type": "stream_trace",
    "timestamp": "1717000000456",
    "data": {
        "type": "stream_heartbeat",
        "client_source": "scope",
        "timestamp": "1717000000456",
        "session_id": "4d0c6a8e-1b2f-4e3a-9c5d-7f8e9a0b1c2d",
        "connection_id": "manifest-42",
        "pipeline_ids": ["longlive"],
        "user_id": "user_123",
        "connection_info": {
            "gpu_type": "GPU-H100",
            "fal_region": "us-east",
            "fal_runner_id": "job-9",
            "fal_log_labels": {"app": "scope"},
        },
        "mode": "livepeer",
        "frames_in": 240,
        "frames_out": 238,
        "fps_in": 24.0,
        "fps_out": 23.8,
        "elapsed_ms": 10000,
        "since_last_heartbeat_ms": 10000,
        "pipeline_fps": 23.9,
    },
}

SCOPE_ERROR: dict[str, Any] = {
    "id": "9a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d",
    "type": "stream_trace",
    "timestamp": "1717000000999",
    "data": {
        "type": "error",
        "client_source": "scope",
        "timestamp": "1717000000999",
        "error": {
            "error_type": "pipeline_processing_failed",
            "message": "CUDA out of memory",
            "exception_type": "OutOfMemoryError",
            "recoverable": False,
        },
    },
}


def fixed_clock() -> int:
    return NOW


def fixed_id() -> uuid.UUID:
    return FIXED_ID


@pytest.mark.spec("TEL-001", "TEL-003", "TEL-004", "TEL-006", "TEL-009", "TEL-010", "TEL-022")
@pytest.mark.parametrize("wire", [SCOPE_HEARTBEAT, SCOPE_ERROR], ids=["heartbeat", "error"])
def test_scope_events_decode_and_reencode_verbatim(wire: dict[str, Any]) -> None:
    event = TelemetryEvent.from_wire(wire)
    assert event.to_wire() == wire
    assert TelemetryEvent.from_bytes(json.dumps(wire).encode()) == event


def test_scope_heartbeat_fields_land_where_expected() -> None:
    event = TelemetryEvent.from_wire(SCOPE_HEARTBEAT)
    assert event.name == "stream_heartbeat"
    assert event.client_source == "scope"
    assert event.timestamp_ms == 1717000000456
    assert event.pipeline_ids == ("longlive",)
    assert event.connection_id == "manifest-42"
    assert event.metadata["fps_out"] == 23.8
    assert "session_id" not in event.metadata
    error = TelemetryEvent.from_wire(SCOPE_ERROR).error
    assert error == TelemetryError(
        error_type="pipeline_processing_failed",
        message="CUDA out of memory",
        exception_type="OutOfMemoryError",
        recoverable=False,
    )


@pytest.mark.spec("TEL-002", "TEL-004", "TEL-006", "TEL-007", "TEL-009", "TEL-021")
def test_stamp_sets_one_id_and_one_instant() -> None:
    event = TelemetryEvent.stamp(
        "runner_ready",
        clock_ms=fixed_clock,
        new_id=fixed_id,
        metadata={"startup_ms": 8123},
    )
    assert event.to_wire() == {
        "id": "6f1c2a4e-9b7d-4c3a-8e21-5d0f4b6a7c89",
        "type": "stream_trace",
        "timestamp": "1717000000123",
        "data": {
            "type": "runner_ready",
            "client_source": DEFAULT_CLIENT_SOURCE,
            "timestamp": "1717000000123",
            "startup_ms": 8123,
        },
    }
    assert DEFAULT_CLIENT_SOURCE == "trio-trickle"


@pytest.mark.spec("TEL-002")
def test_stamp_with_uuid4_gives_distinct_canonical_ids() -> None:
    events = [
        TelemetryEvent.stamp(
            "session_closed", clock_ms=fixed_clock, new_id=uuid.uuid4, metadata={"x": 1}
        )
        for _ in range(20)
    ]
    ids = {e.id for e in events}
    assert len(ids) == 20
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)


@pytest.mark.spec("TEL-002")
def test_stamp_refuses_a_non_v4_id_source() -> None:
    with pytest.raises(InvalidMessage):
        TelemetryEvent.stamp("session_closed", clock_ms=fixed_clock, new_id=uuid.uuid1)


def test_stamp_enforces_required_metadata_for_known_events() -> None:
    for name, keys in REQUIRED_METADATA.items():
        with pytest.raises(InvalidMessage, match=name):
            TelemetryEvent.stamp(name, clock_ms=fixed_clock, new_id=fixed_id)
        event = TelemetryEvent.stamp(
            name,
            clock_ms=fixed_clock,
            new_id=fixed_id,
            metadata=dict.fromkeys(keys, 0),
        )
        assert set(keys) <= set(event.to_wire()["data"])


@pytest.mark.spec("TEL-009")
def test_context_members_are_omitted_not_null() -> None:
    event = TelemetryEvent.stamp("session_created", clock_ms=fixed_clock, new_id=fixed_id)
    data = event.to_wire()["data"]
    for key in ("session_id", "connection_id", "user_id", "pipeline_ids", "connection_info"):
        assert key not in data
    # Empty values are values, and come back as such.
    event = TelemetryEvent.stamp(
        "session_created", clock_ms=fixed_clock, new_id=fixed_id, pipeline_ids=[]
    )
    assert event.to_wire()["data"]["pipeline_ids"] == []
    assert TelemetryEvent.from_wire(event.to_wire()) == event


@pytest.mark.spec("TEL-009", "TEL-015")
def test_decoder_drops_null_context_and_keeps_unknown_members_as_metadata() -> None:
    wire = json.loads(json.dumps(SCOPE_HEARTBEAT))
    wire["data"]["user_id"] = None
    wire["extra_envelope_member"] = {"ignored": True}
    event = TelemetryEvent.from_wire(wire)
    assert event.user_id is None
    assert event.metadata["mode"] == "livepeer"
    assert "extra_envelope_member" not in event.to_wire()


@pytest.mark.spec("TEL-011")
@pytest.mark.parametrize("key", sorted(RESERVED_DATA_KEYS))
def test_metadata_cannot_overwrite_reserved_members(key: str) -> None:
    with pytest.raises(InvalidMessage, match="reserved"):
        TelemetryEvent.stamp(
            "session_closed", clock_ms=fixed_clock, new_id=fixed_id, metadata={key: "x"}
        )


@pytest.mark.spec("TEL-010")
def test_metadata_must_be_plain_json() -> None:
    for bad in ({"fps": float("nan")}, {"t": (1, 2)}, {"k": {1: 2}}, {"o": object()}):
        with pytest.raises(InvalidMessage):
            TelemetryEvent.stamp(
                "session_closed", clock_ms=fixed_clock, new_id=fixed_id, metadata=bad
            )


@pytest.mark.spec("TEL-012", "TEL-013")
def test_error_events_need_an_error_object() -> None:
    with pytest.raises(InvalidMessage, match=r"data\.error"):
        TelemetryEvent.stamp("error", clock_ms=fixed_clock, new_id=fixed_id)
    wire = json.loads(json.dumps(SCOPE_ERROR))
    del wire["data"]["error"]
    with pytest.raises(ProtocolError):
        TelemetryEvent.from_wire(wire)
    err = TelemetryError(error_type="stream_failed", message="boom")
    assert err.to_wire() == {"error_type": "stream_failed", "message": "boom", "recoverable": False}
    stopped = TelemetryEvent.stamp(
        "stream_stopped",
        clock_ms=fixed_clock,
        new_id=fixed_id,
        error=err,
        metadata={"reason": "failed", "frames_in": 1, "frames_out": 0},
    )
    assert stopped.to_wire()["data"]["error"]["error_type"] == "stream_failed"


@pytest.mark.spec("TEL-005")
def test_integer_timestamps_are_accepted_and_reemitted_as_strings() -> None:
    wire = json.loads(json.dumps(SCOPE_HEARTBEAT))
    wire["timestamp"] = 1717000000456
    wire["data"]["timestamp"] = 1717000000456
    assert TelemetryEvent.from_wire(wire).to_wire() == SCOPE_HEARTBEAT


@pytest.mark.spec("TEL-004", "TEL-016")
@pytest.mark.parametrize("value", ["01717", "-5", "1.5", "", "1e3", " 17", True, -1, 1.0, None])
def test_bad_timestamps_are_rejected(value: object) -> None:
    wire = json.loads(json.dumps(SCOPE_HEARTBEAT))
    wire["timestamp"] = value
    with pytest.raises(InvalidMessage):
        TelemetryEvent.from_wire(wire)


@pytest.mark.spec("TEL-002", "TEL-016")
@pytest.mark.parametrize(
    "event_id",
    ["6F1C2A4E-9B7D-4C3A-8E21-5D0F4B6A7C89", "6f1c2a4e9b7d4c3a8e215d0f4b6a7c89", "x", 5, None],
)
def test_non_canonical_ids_are_rejected(event_id: object) -> None:
    wire = {**SCOPE_HEARTBEAT, "id": event_id}
    with pytest.raises(InvalidMessage):
        TelemetryEvent.from_wire(wire)


@pytest.mark.spec("TEL-008")
@pytest.mark.parametrize("name", ["Stream", "1x", "a-b", "", "a" * 129, "has space"])
def test_bad_event_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidMessage):
        TelemetryEvent.stamp(name, clock_ms=fixed_clock, new_id=fixed_id)


@pytest.mark.spec("TEL-016")
@pytest.mark.parametrize(
    "path",
    [
        ("id",),
        ("type",),
        ("timestamp",),
        ("data",),
        ("data", "type"),
        ("data", "client_source"),
        ("data", "timestamp"),
    ],
)
def test_missing_required_members_are_protocol_errors(path: tuple[str, ...]) -> None:
    wire = json.loads(json.dumps(SCOPE_HEARTBEAT))
    target = wire
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    with pytest.raises(ProtocolError):
        TelemetryEvent.from_wire(wire)


@pytest.mark.spec("TEL-014")
def test_events_over_64_kib_are_refused_with_413() -> None:
    big = TelemetryEvent.stamp(
        "session_closed",
        clock_ms=fixed_clock,
        new_id=fixed_id,
        metadata={"blob": "x" * MAX_EVENT_BYTES},
    )
    with pytest.raises(PayloadTooLarge) as info:
        big.to_bytes()
    assert info.value.status == 413
    with pytest.raises(PayloadTooLarge):
        TelemetryEvent.from_bytes(json.dumps(big.to_wire()).encode())
    with pytest.raises(PayloadTooLarge):
        TelemetryRelay(event=big).to_bytes()
    with pytest.raises(PayloadTooLarge):
        TelemetryRelay.from_bytes(b" " * (MAX_EVENT_BYTES + 1))


@pytest.mark.spec("TEL-040")
def test_relay_wrapper_literal() -> None:
    event = TelemetryEvent.from_wire(SCOPE_HEARTBEAT)
    relay = TelemetryRelay(event=event)
    assert relay.to_wire() == {"type": "telemetry", "event": SCOPE_HEARTBEAT}
    assert TelemetryRelay.from_bytes(relay.to_bytes()) == relay


@pytest.mark.spec("TEL-041", "TEL-042")
def test_relay_dispatch_and_rejection() -> None:
    assert TelemetryRelay.is_relay({"type": "telemetry", "event": {}})
    assert not TelemetryRelay.is_relay({"type": "status"})
    assert not TelemetryRelay.is_relay({"queue_event_type": "x", "event": {"type": "telemetry"}})
    assert not TelemetryRelay.is_relay([1])
    for bad in ({"type": "status", "event": SCOPE_HEARTBEAT}, {"type": "telemetry"}, []):
        with pytest.raises(ProtocolError):
            TelemetryRelay.from_wire(bad)


@pytest.mark.spec("TEL-039")
def test_unknown_event_names_pass_through_like_known_ones() -> None:
    wire = json.loads(json.dumps(SCOPE_HEARTBEAT))
    wire["data"]["type"] = "custom_monitoring_event"
    assert TelemetryRelay.from_wire({"type": "telemetry", "event": wire}).event.to_wire() == wire


def test_catalogue_names() -> None:
    assert {
        "runner_ready",
        "pipeline_load_start",
        "pipeline_loaded",
        "session_created",
        "stream_started",
        "playback_ready",
        "stream_heartbeat",
        "stream_stopped",
        "session_closed",
        "error",
        "gateway_connected",
        "gateway_disconnected",
    } <= KNOWN_EVENTS
    assert {
        "stream_startup_failed",
        "stream_failed",
        "pipeline_load_failed",
        "pipeline_processing_failed",
        "media_input_loop_failed",
        "media_output_loop_failed",
        "media_audio_output_loop_failed",
    } <= KNOWN_ERROR_TYPES


@pytest.mark.spec("TEL-052")
def test_batch_body_literal() -> None:
    batch = TelemetryBatch(
        events=(TelemetryEvent.from_wire(SCOPE_HEARTBEAT), TelemetryEvent.from_wire(SCOPE_ERROR))
    )
    assert batch.to_wire() == {"events": [SCOPE_HEARTBEAT, SCOPE_ERROR]}
    assert TelemetryBatch.from_wire(batch.to_wire()) == batch
    with pytest.raises(ProtocolError):
        TelemetryBatch.from_wire([SCOPE_HEARTBEAT])


@pytest.mark.spec("TEL-060")
def test_batch_split_halves_in_order() -> None:
    events = tuple(
        TelemetryEvent.stamp(
            "session_closed",
            clock_ms=lambda i=i: NOW + i,
            new_id=uuid.uuid4,
        )
        for i in range(5)
    )
    first, second = TelemetryBatch(events=events).split()
    assert first.events + second.events == events
    assert len(first.events) == 2
    with pytest.raises(ValueError, match="split"):
        TelemetryBatch(events=events[:1]).split()


@pytest.mark.spec("TEL-062", "TEL-067")
def test_spool_skips_torn_and_corrupt_lines() -> None:
    one = TelemetryEvent.from_wire(SCOPE_HEARTBEAT)
    two = TelemetryEvent.from_wire(SCOPE_ERROR)
    data = encode_spool([one, two])
    assert data.count(b"\n") == 2
    assert json.loads(data.splitlines()[0]) == SCOPE_HEARTBEAT
    assert json.loads(data.splitlines()[1]) == SCOPE_ERROR
    torn = data + b"garbage\n\n" + data[: len(data) // 3]
    events, bad = decode_spool(b"\n" + torn)
    assert events == [one, two]
    assert bad == 2


@pytest.mark.spec("TEL-076")
def test_kafka_record_key_is_the_event_id() -> None:
    event = TelemetryEvent.from_wire(SCOPE_HEARTBEAT)
    key, value = event.kafka_record()
    assert key == b"0b5a5c1e-3f7e-4d2b-9a61-2c8e7f4d1a90"
    assert json.loads(value) == SCOPE_HEARTBEAT


@pytest.mark.spec("TEL-059")
@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
        ("9" * 5000, None),
        (None, None),
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now_s=1445412470.0) == seconds


def test_error_constructor_validates() -> None:
    with pytest.raises(InvalidMessage):
        TelemetryError(error_type="Bad Type")
    with pytest.raises(InvalidMessage):
        TelemetryError(error_type="x", recoverable=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage):
        TelemetryError(error_type="x", extra={"message": "dup"})
    with pytest.raises(InvalidMessage):
        TelemetryRelay(event=SCOPE_HEARTBEAT)  # type: ignore[arg-type]
