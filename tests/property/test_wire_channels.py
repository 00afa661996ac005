"""Property tests for the control/events/data channel codecs (spec/channels.md)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, strategies as st

from tests.strategies.channels import (
    arbitrary_json,
    control_messages,
    data_lines,
    event_envelopes,
    heartbeat_events,
    json_objects,
    keepalives,
    mutated,
    status_events,
    stream_channels,
)
from trio_trickle._errors import PayloadTooLarge, ProtocolError
from trio_trickle._wire.channel_events import (
    EventEnvelope,
    HeartbeatEvent,
    StatusEvent,
    decode_event,
    encode_event,
)
from trio_trickle._wire.channels import (
    ControlMessage,
    DataLine,
    JsonlDecoder,
    KeepAlive,
    SegmentAccumulator,
    control_from_wire,
    decode_control,
    decode_jsonl,
    decode_jsonl_values,
    encode_control,
    encode_jsonl,
)

WIRE_CLASSES: list[Any] = [
    ControlMessage,
    KeepAlive,
    EventEnvelope,
    HeartbeatEvent,
    StatusEvent,
    DataLine,
]


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    chunks, start = [], 0
    for point in points:
        chunks.append(data[start:point])
        start = point
    chunks.append(data[start:])
    return chunks


# -- round trips -------------------------------------------------------------------


@pytest.mark.spec("CHN-006", "CHN-007")
@given(control_messages | keepalives)
def test_control_round_trip(message: ControlMessage | KeepAlive) -> None:
    assert type(message).from_wire(message.to_wire()) == message
    assert control_from_wire(message.to_wire()) == message
    assert decode_control(encode_control(message)) == message


@pytest.mark.spec("CHN-013", "CHN-014")
@given(event_envelopes)
def test_event_envelope_round_trip(envelope: EventEnvelope) -> None:
    assert EventEnvelope.from_wire(envelope.to_wire()) == envelope
    assert decode_event(encode_event(envelope)) == envelope


@pytest.mark.spec("CHN-021")
@given(heartbeat_events)
def test_heartbeat_round_trip(event: HeartbeatEvent) -> None:
    assert HeartbeatEvent.from_wire(event.to_wire()) == event
    envelope = decode_event(encode_event(event.to_envelope()))
    assert envelope is not None
    assert HeartbeatEvent.from_wire(envelope.event) == event


@pytest.mark.spec("CHN-022", "CHN-023")
@given(status_events)
def test_status_round_trip(event: StatusEvent) -> None:
    assert StatusEvent.from_wire(event.to_wire()) == event
    envelope = decode_event(encode_event(event.to_envelope()))
    assert envelope is not None
    assert StatusEvent.from_wire(envelope.event) == event


@pytest.mark.spec("CHN-025", "CHN-028")
@given(st.lists(data_lines, max_size=6))
def test_jsonl_round_trip(lines: list[DataLine]) -> None:
    encoded = encode_jsonl(lines)
    assert [DataLine.from_wire(r) for r in decode_jsonl(encoded)] == lines
    assert decode_jsonl_values(encoded) == tuple(line.record for line in lines)


# -- second properties: exact, plain JSON on the wire ------------------------------


@pytest.mark.spec("CHN-004", "CHN-013", "CHN-021", "CHN-022")
@given(control_messages | event_envelopes | heartbeat_events | status_events | data_lines)
def test_to_wire_is_plain_json(message: Any) -> None:
    wire = message.to_wire()
    text = json.dumps(wire, allow_nan=False)
    assert json.loads(text) == wire
    if isinstance(message, EventEnvelope):
        assert set(wire) <= {"event", "queue_event_type"}
        assert wire["event"] == message.event
    if isinstance(message, HeartbeatEvent):
        assert wire["type"] == "heartbeat"
        assert isinstance(wire["timestamp"], int)
    if isinstance(message, StatusEvent):
        assert wire["type"] == "status"
        assert isinstance(wire["timestamp"], int)


@pytest.mark.spec("CHN-006", "CHN-008")
@given(json_objects)
def test_only_the_exact_keepalive_is_a_keepalive(obj: dict[str, Any]) -> None:
    decoded = control_from_wire(obj)
    assert isinstance(decoded, KeepAlive) == (obj == {"keep": "alive"})
    extended = {**obj, "keep": "alive"}
    assert isinstance(control_from_wire(extended), KeepAlive) == (len(extended) == 1)


@pytest.mark.spec("CHN-016", "CHN-017", "CHN-018")
@given(event_envelopes)
def test_topic_rule(envelope: EventEnvelope) -> None:
    if envelope.event.get("type") == "status":
        assert envelope.topic == "ai_stream_status"
    elif envelope.queue_event_type:
        assert envelope.topic == envelope.queue_event_type
    else:
        assert envelope.topic == "ai_stream_events"
    assert EventEnvelope.from_wire(envelope.to_wire()).event == envelope.event


@pytest.mark.spec("CHN-014", "CHN-018")
@given(json_objects)
def test_bare_event_is_the_event(obj: dict[str, Any]) -> None:
    bare = {k: v for k, v in obj.items() if k != "event"}
    try:
        envelope = EventEnvelope.from_wire(bare)
    except ProtocolError:
        assert not isinstance(bare.get("queue_event_type", ""), str | None)
        return
    assert envelope.event == bare
    assert envelope.queue_event_type is None


@pytest.mark.spec("CHN-001", "CHN-002")
@given(stream_channels)
def test_stream_channel_names(channels: Any) -> None:
    names = [name for name, _ in channels.with_mime(data=True)]
    assert names == [
        channels.mid,
        channels.mid + "-out",
        channels.mid + "-control",
        channels.mid + "-events",
        channels.mid + "-data",
    ]
    assert all(1 <= len(name) <= 256 for name in names)


# -- incremental reading ------------------------------------------------------------


@pytest.mark.spec("CHN-028", "CHN-029", "CHN-031", "CHN-033")
@given(st.lists(json_objects, max_size=6), st.lists(st.integers(0, 400), max_size=8), st.booleans())
def test_jsonl_decoder_is_chunking_independent(
    records: list[dict[str, Any]], cuts: list[int], drop_final_newline: bool
) -> None:
    data = encode_jsonl(records)
    if drop_final_newline:
        data = data.removesuffix(b"\n")
    decoder = JsonlDecoder()
    seen: list[dict[str, Any]] = []
    for chunk in _split(data, cuts):
        decoder.feed(chunk)
        while (record := decoder.next_record()) is not None:
            seen.append(record)
    decoder.end()
    while (record := decoder.next_record()) is not None:
        seen.append(record)
    assert seen == records


@pytest.mark.spec("CHN-031")
@given(st.lists(json_objects, min_size=1, max_size=5))
def test_complete_lines_are_available_before_the_segment_ends(
    records: list[dict[str, Any]],
) -> None:
    decoder = JsonlDecoder()
    decoder.feed(encode_jsonl(records))
    seen = []
    while (record := decoder.next_record()) is not None:
        seen.append(record)
    assert seen == records  # no end() needed for newline-terminated lines


@pytest.mark.spec("CHN-033", "CHN-035")
@given(
    st.binary(max_size=300),
    st.lists(st.integers(0, 300), max_size=8),
    st.integers(min_value=0, max_value=300),
)
def test_accumulator_keeps_whole_segment_up_to_limit(
    data: bytes, cuts: list[int], limit: int
) -> None:
    acc = SegmentAccumulator(max_bytes=limit)
    try:
        for chunk in _split(data, cuts):
            acc.feed(chunk)
    except PayloadTooLarge as exc:
        assert len(data) > limit
        assert exc.status == 413
        assert acc.size <= limit
    else:
        assert len(data) <= limit
        assert acc.getvalue() == data


# -- fuzz: only ProtocolError ever escapes ----------------------------------------


@pytest.mark.spec("CHN-010", "CHN-015", "CHN-024", "CHN-030", "CHN-038")
@given(arbitrary_json, st.sampled_from(WIRE_CLASSES))
def test_from_wire_on_arbitrary_json(value: Any, cls: Any) -> None:
    with contextlib.suppress(ProtocolError):
        cls.from_wire(value)
    with contextlib.suppress(ProtocolError):
        control_from_wire(value)


@pytest.mark.spec("CHN-010", "CHN-015", "CHN-024")
@given(
    st.one_of(
        control_messages.map(lambda m: (ControlMessage, m.to_wire())),
        event_envelopes.map(lambda m: (EventEnvelope, m.to_wire())),
        heartbeat_events.map(lambda m: (HeartbeatEvent, m.to_wire())),
        status_events.map(lambda m: (StatusEvent, m.to_wire())),
    ),
    st.data(),
)
def test_from_wire_on_mutated_dicts(case: tuple[Any, dict[str, Any]], data: st.DataObject) -> None:
    cls, wire = case
    bad = data.draw(mutated(wire))
    with contextlib.suppress(ProtocolError):
        cls.from_wire(bad)


@pytest.mark.spec("CHN-010", "CHN-024", "CHN-030", "CHN-038")
@given(st.binary(max_size=200) | arbitrary_json.map(lambda v: json.dumps(v).encode()))
def test_segment_decoders_on_arbitrary_bytes(data: bytes) -> None:
    for decode in (decode_control, decode_event, decode_jsonl, decode_jsonl_values):
        with contextlib.suppress(ProtocolError):
            decode(data)  # type: ignore[operator]
