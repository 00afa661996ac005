"""Example tests for the channel codecs against literal messages from the research notes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trio_trickle._errors import IllegalTransition, InvalidMessage, PayloadTooLarge, ProtocolError
from trio_trickle._wire.channel_events import (
    TOPIC_STREAM_HEARTBEAT,
    EventEnvelope,
    HeartbeatEvent,
    StatusEvent,
    decode_event,
    encode_event,
)
from trio_trickle._wire.channels import (
    DEFAULT_MAX_SEGMENT_BYTES,
    MAX_JSONL_LINE_BYTES,
    MIME_JSON,
    MIME_JSONL,
    MIME_MPEGTS,
    ControlMessage,
    DataLine,
    JsonlDecoder,
    KeepAlive,
    SegmentAccumulator,
    StreamChannels,
    check_segment_size,
    control_from_wire,
    decode_control,
    decode_jsonl,
    decode_jsonl_values,
    encode_control,
    encode_jsonl,
    mime_matches,
)

# pytrickle heartbeat as it appears on the events channel (runner_telemetry.md §4.2).
PYTRICKLE_HEARTBEAT = {
    "event": {
        "type": "heartbeat",
        "timestamp": 1_736_000_000_123,
        "urls": {
            "subscribe": "https://o:8935/ai/trickle/m1",
            "publish": "https://o:8935/ai/trickle/m1-out",
            "control": "https://o:8935/ai/trickle/m1-control",
            "events": "https://o:8935/ai/trickle/m1-events",
            "data": "https://o:8935/ai/trickle/m1-data",
        },
        "dimensions": {"width": 512, "height": 512},
        "fps": {
            "ingress_video_fps": 30.0,
            "ingress_audio_fps": 0.0,
            "egress_video_fps": 24.5,
            "egress_audio_fps": 0.0,
        },
    },
    "queue_event_type": "stream_heartbeat",
}

# ai-runner PipelineStatus report (runner_telemetry.md §4.2), sent on ai_stream_events.
AI_RUNNER_STATUS = {
    "queue_event_type": "ai_stream_events",
    "event": {
        "type": "status",
        "pipeline": "streamdiffusion",
        "start_time": 1_736_000_000_000,
        "state": "ONLINE",
        "last_state_update_time": 1_736_000_001_000,
        "input_status": {"last_input_time": 1_736_000_009_000, "fps": 29.97},
        "inference_status": {
            "last_output_time": 1_736_000_009_010,
            "fps": 24,
            "last_params_update_time": None,
            "last_params": None,
            "last_params_hash": "d41d8cd98f00b204e9800998ecf8427e",
            "last_error_time": None,
            "last_error": None,
            "last_restart_time": None,
            "last_restart_logs": None,
            "restart_count": 0,
        },
        "last_status_timestamp": 1_736_000_000_000,
        "timestamp": 1_736_000_010_000,
    },
}


def _bytes(obj: Any, **kwargs: Any) -> bytes:
    return json.dumps(obj, **kwargs).encode()


# -- channel set ----------------------------------------------------------------------


@pytest.mark.spec("CHN-001")
def test_stream_channel_set() -> None:
    channels = StreamChannels(mid="abc123")
    assert channels.with_mime() == (
        ("abc123", "video/MP2T"),
        ("abc123-out", "video/MP2T"),
        ("abc123-control", "application/json"),
        ("abc123-events", "application/json"),
    )
    assert channels.with_mime(data=True)[-1] == ("abc123-data", "application/jsonl")
    assert (MIME_MPEGTS, MIME_JSON, MIME_JSONL) == (
        "video/MP2T",
        "application/json",
        "application/jsonl",
    )


@pytest.mark.spec("CHN-002")
@pytest.mark.parametrize("mid", ["", ".", "..", "a/b", "a b", "ü", "x" * 249])
def test_stream_channel_set_rejects_bad_ids(mid: str) -> None:
    with pytest.raises(InvalidMessage):
        StreamChannels(mid=mid)


@pytest.mark.spec("CHN-002")
def test_longest_stream_id_fits_every_channel_name() -> None:
    channels = StreamChannels(mid="m" * 248)
    assert len(channels.control) == 256


@pytest.mark.spec("CHN-003")
@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        ("video/mp2t", True),
        ("video/MP2T", True),
        ("Video/MP2T; charset=binary", True),
        (" video/mp2t ", True),
        ("video/mp4", False),
        ("", False),
        (None, False),
    ],
)
def test_mime_matching(actual: str | None, expected: bool) -> None:
    assert mime_matches(actual, MIME_MPEGTS) is expected


# -- control --------------------------------------------------------------------------


@pytest.mark.spec("CHN-006")
def test_keepalive_exact_bytes() -> None:
    assert encode_control(KeepAlive()) == b'{"keep":"alive"}'
    assert decode_control(b'{"keep":"alive"}') == KeepAlive()
    assert decode_control(b'{ "keep" : "alive" }\n') == KeepAlive()
    assert KeepAlive.from_wire({"keep": "alive"}) == KeepAlive()


@pytest.mark.spec("CHN-008")
@pytest.mark.parametrize(
    "obj", [{"keep": "alive", "prompt": "x"}, {"keep": "dead"}, {"keep": ["alive"]}]
)
def test_near_keepalives_are_params(obj: dict[str, Any]) -> None:
    assert control_from_wire(obj) == ControlMessage(params=obj)
    with pytest.raises(InvalidMessage):
        KeepAlive.from_wire(obj)


@pytest.mark.spec("CHN-005", "CHN-007")
def test_pretty_printed_params_update() -> None:
    params = {"prompt": "a cat", "width": 512, "height": 512, "max_framerate": 30}
    decoded = decode_control(_bytes(params, indent=2))
    assert decoded == ControlMessage(params=params)
    assert isinstance(decoded, ControlMessage)
    assert decoded.to_wire() == params
    assert json.loads(encode_control(decoded)) == params


@pytest.mark.spec("CHN-010")
@pytest.mark.parametrize(
    "data", [b"[1, 2]", b'"params"', b"42", b"{not json", b'{"a":1}\n{"b":2}', b"\xff\xfe"]
)
def test_bad_control_segment_is_invalid_message(data: bytes) -> None:
    with pytest.raises(InvalidMessage):
        decode_control(data)


@pytest.mark.spec("CHN-036")
@pytest.mark.parametrize("data", [b"", b"   ", b"\n", b"\r\n\t "])
def test_empty_control_and_event_segments_are_skipped(data: bytes) -> None:
    assert decode_control(data) is None
    assert decode_event(data) is None


# -- events ---------------------------------------------------------------------------


@pytest.mark.spec("CHN-012", "CHN-017", "CHN-021")
def test_pytrickle_heartbeat_envelope() -> None:
    envelope = decode_event(_bytes(PYTRICKLE_HEARTBEAT))
    assert envelope is not None
    assert envelope.topic == "stream_heartbeat"
    assert envelope.event_type == "heartbeat"
    heartbeat = HeartbeatEvent.from_wire(envelope.event)
    assert heartbeat.timestamp == 1_736_000_000_123
    assert (heartbeat.width, heartbeat.height) == (512, 512)
    assert heartbeat.fps["egress_video_fps"] == 24.5
    assert heartbeat.urls["control"].endswith("m1-control")
    assert heartbeat.to_envelope().to_wire() == PYTRICKLE_HEARTBEAT


@pytest.mark.spec("CHN-013", "CHN-021")
def test_minimal_heartbeat_written_by_us() -> None:
    wire = HeartbeatEvent(timestamp=1700).to_envelope().to_wire()
    assert wire == {
        "queue_event_type": "stream_heartbeat",
        "event": {"type": "heartbeat", "timestamp": 1700},
    }
    assert TOPIC_STREAM_HEARTBEAT == "stream_heartbeat"


@pytest.mark.spec("CHN-021")
def test_heartbeat_before_first_frame_has_null_dimensions() -> None:
    event = {"type": "heartbeat", "timestamp": 5, "dimensions": {"width": None, "height": None}}
    heartbeat = HeartbeatEvent.from_wire(event)
    assert heartbeat.width is None
    assert heartbeat.height is None


@pytest.mark.spec("CHN-021", "CHN-018")
def test_heartbeat_keeps_unknown_members() -> None:
    event = {"type": "heartbeat", "timestamp": 9, "frames_in": 300, "elapsed_ms": 10_000}
    heartbeat = HeartbeatEvent.from_wire(event)
    assert heartbeat.frames_in == 300
    assert heartbeat.extra == {"elapsed_ms": 10_000}
    assert heartbeat.to_wire() == event


@pytest.mark.spec("CHN-016", "CHN-022", "CHN-023")
def test_ai_runner_status_goes_to_status_topic() -> None:
    envelope = decode_event(_bytes(AI_RUNNER_STATUS))
    assert envelope is not None
    assert envelope.queue_event_type == "ai_stream_events"
    assert envelope.topic == "ai_stream_status"
    status = StatusEvent.from_wire(envelope.event)
    assert status.input_fps == 29.97
    assert status.output_fps == 24.0
    assert status.state == "ONLINE"
    assert status.pipeline == "streamdiffusion"
    assert status.to_wire() == AI_RUNNER_STATUS["event"]
    assert status.to_envelope().topic == "ai_stream_status"
    assert status.to_envelope().queue_event_type == "ai_stream_status"


@pytest.mark.spec("CHN-023")
def test_status_without_nested_sections() -> None:
    status = StatusEvent.from_wire({"type": "status", "timestamp": 1, "input_status": {}})
    assert status.input_fps is None
    assert status.output_fps is None


@pytest.mark.spec("CHN-004", "CHN-022")
def test_float_millisecond_timestamps_are_rounded() -> None:
    status = StatusEvent.from_wire({"type": "status", "timestamp": 1700.6, "start_time": 3.2})
    assert (status.timestamp, status.start_time) == (1701, 3)
    assert isinstance(status.to_wire()["timestamp"], int)


@pytest.mark.spec("CHN-014", "CHN-017")
def test_bare_event_defaults_to_ai_stream_events() -> None:
    bare = {"type": "heartbeat", "timestamp": 1_736_000_000_000}  # python SDK LivePipeline
    envelope = decode_event(_bytes(bare))
    assert envelope == EventEnvelope(event=bare)
    assert envelope is not None
    assert envelope.topic == "ai_stream_events"
    null_event = {"event": None, "type": "error", "message": "boom"}
    assert EventEnvelope.from_wire(null_event).event == null_event


@pytest.mark.spec("CHN-016")
def test_bare_status_event_goes_to_status_topic() -> None:
    assert EventEnvelope.from_wire({"type": "status", "timestamp": 1}).topic == "ai_stream_status"


@pytest.mark.spec("CHN-017")
@pytest.mark.parametrize(
    "wire", [{"event": {"type": "error"}}, {"queue_event_type": "", "event": {}}]
)
def test_missing_or_empty_topic_defaults(wire: dict[str, Any]) -> None:
    envelope = EventEnvelope.from_wire(wire)
    assert envelope.queue_event_type is None
    assert envelope.topic == "ai_stream_events"


@pytest.mark.spec("CHN-018")
def test_error_event_keeps_every_member() -> None:
    event = {"type": "error", "pipeline": "p", "message": "m", "time": 1.5, "timestamp": 17}
    wire = {"queue_event_type": "ai_stream_events", "event": event}
    envelope = EventEnvelope.from_wire(wire)
    assert envelope.event == event
    assert json.loads(encode_event(envelope)) == wire


@pytest.mark.spec("CHN-015")
@pytest.mark.parametrize(
    "wire",
    [
        {"event": "reserved", "session": "s1", "timestamp": "2025-01-01T00:00:00Z"},
        {"event": [1], "queue_event_type": "t"},
        {"event": {}, "queue_event_type": 7},
        {"type": "x", "queue_event_type": ["t"]},
    ],
)
def test_malformed_envelopes(wire: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage):
        EventEnvelope.from_wire(wire)


@pytest.mark.spec("CHN-012", "CHN-024")
@pytest.mark.parametrize("data", [b'{"a":1}\n{"b":2}\n', b"[]", b"null", b"{", b"\x80"])
def test_bad_events_segment_is_invalid_message(data: bytes) -> None:
    with pytest.raises(InvalidMessage):
        decode_event(data)


# -- data / JSONL ---------------------------------------------------------------------


@pytest.mark.spec("CHN-025")
def test_encode_jsonl_exact_bytes() -> None:
    records = [{"type": "runner_ready", "runner_job_id": "j1"}, {"type": "pong", "timestamp": 1}]
    assert encode_jsonl(records) == (
        b'{"type":"runner_ready","runner_job_id":"j1"}\n{"type":"pong","timestamp":1}\n'
    )
    assert encode_jsonl([DataLine(record={"a": "é\n"})]) == '{"a":"é\\n"}\n'.encode()


@pytest.mark.spec("CHN-028", "CHN-029")
def test_decode_jsonl_blank_lines_crlf_and_final_line() -> None:
    data = b'\n{"a":1}\r\n   \n{"b":[1,2]}\n\n{"c":null}'
    assert decode_jsonl(data) == ({"a": 1}, {"b": [1, 2]}, {"c": None})


@pytest.mark.spec("CHN-030")
def test_non_object_line_names_its_line_number() -> None:
    with pytest.raises(InvalidMessage, match="line 3"):
        decode_jsonl(b'{"a":1}\n\n[1]\n')
    with pytest.raises(InvalidMessage, match="line 2"):
        decode_jsonl(b'{"a":1}\n{oops\n')


@pytest.mark.spec("CHN-030", "CHN-031")
def test_streaming_decoder_skips_bad_line_and_continues() -> None:
    decoder = JsonlDecoder()
    decoder.feed(b'{"a":1}\n{"b"')
    assert decoder.next_record() == {"a": 1}
    assert decoder.next_record() is None  # second line still incomplete
    decoder.feed(b':2}\nbad\n{"c":3}')
    assert decoder.next_record() == {"b": 2}
    with pytest.raises(InvalidMessage, match="line 3"):
        decoder.next_record()
    assert decoder.next_record() is None
    decoder.end()
    assert decoder.next_record() == {"c": 3}
    assert decoder.next_record() is None
    with pytest.raises(IllegalTransition):
        decoder.feed(b"{}")


@pytest.mark.spec("CHN-032")
def test_pytrickle_array_lines_need_the_lenient_decoder() -> None:
    data = b'[{"frame":1},"text"]\n[]\n'
    with pytest.raises(InvalidMessage):
        decode_jsonl(data)
    assert decode_jsonl_values(data) == ([{"frame": 1}, "text"], [])


@pytest.mark.spec("CHN-026")
def test_line_limit_for_go_byoc_scanner() -> None:
    overhead = len(b'{"k":""}')
    fits = DataLine(record={"k": "x" * (MAX_JSONL_LINE_BYTES - overhead)})
    assert len(fits.to_line()) == MAX_JSONL_LINE_BYTES + 1
    too_long = DataLine(record={"k": "x" * (MAX_JSONL_LINE_BYTES - overhead + 1)})
    with pytest.raises(PayloadTooLarge):
        too_long.to_line()
    with pytest.raises(PayloadTooLarge):
        encode_jsonl([{"k": "y" * 70_000}])


@pytest.mark.spec("CHN-037")
@pytest.mark.parametrize("data", [b"", b"\n\n", b" \r\n"])
def test_empty_data_segment(data: bytes) -> None:
    assert decode_jsonl(data) == ()
    assert decode_jsonl_values(data) == ()


# -- sizes ------------------------------------------------------------------------------


@pytest.mark.spec("CHN-033")
def test_large_control_message_decodes_whole() -> None:
    params = {"prompt": "p" * 100_000, "width": 512}  # > 32 KiB, where the Python anchors broke
    data = _bytes(params)
    acc = SegmentAccumulator()
    for start in range(0, len(data), 32 * 1024):
        acc.feed(data[start : start + 32 * 1024])
    assert decode_control(acc.getvalue()) == ControlMessage(params=params)


@pytest.mark.spec("CHN-034", "CHN-035")
def test_default_limit_is_one_mebibyte() -> None:
    assert DEFAULT_MAX_SEGMENT_BYTES == 1_048_576
    at_limit = b" " * (DEFAULT_MAX_SEGMENT_BYTES - 2) + b"{}"
    assert decode_control(at_limit) == ControlMessage(params={})
    over = b" " * DEFAULT_MAX_SEGMENT_BYTES + b"{}"
    for decode in (decode_control, decode_event, decode_jsonl):
        with pytest.raises(PayloadTooLarge, match="1048576") as info:
            decode(over)  # type: ignore[operator]
        assert info.value.status == 413


@pytest.mark.spec("CHN-034", "CHN-035")
def test_limit_is_configurable() -> None:
    with pytest.raises(PayloadTooLarge):
        decode_event(b'{"event":{}}', max_bytes=5)
    assert decode_jsonl(b'{"a":1}\n' * 200_000, max_bytes=None)[-1] == {"a": 1}
    check_segment_size(10, 10)
    with pytest.raises(PayloadTooLarge):
        check_segment_size(11, 10)


@pytest.mark.spec("CHN-035")
def test_streaming_decoders_stop_buffering_at_the_limit() -> None:
    acc = SegmentAccumulator(max_bytes=10)
    acc.feed(b"12345678")
    with pytest.raises(PayloadTooLarge):
        acc.feed(b"abc")
    assert acc.size == 8
    decoder = JsonlDecoder(max_bytes=10)
    decoder.feed(b'{"a":1}\n')
    with pytest.raises(PayloadTooLarge):
        decoder.feed(b'{"b":2}\n')
    assert decoder.next_record() == {"a": 1}
    assert decoder.next_record() is None


# -- validators -------------------------------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.spec("CHN-038")
def test_deep_nesting_is_rejected() -> None:
    assert ControlMessage(params={"x": _nested(60)}).params["x"] == _nested(60)
    with pytest.raises(InvalidMessage, match="nested"):
        ControlMessage(params={"x": _nested(70)})
    deep = b'{"x":' + b"[" * 900 + b"]" * 900 + b"}"
    for decode in (decode_control, decode_event, decode_jsonl):
        with pytest.raises(InvalidMessage):
            decode(deep)  # type: ignore[operator]


@pytest.mark.spec("CHN-038")
def test_lone_surrogates_are_rejected() -> None:
    for data in (b'{"p":"\\ud800"}', b'{"\\udfff":1}'):
        with pytest.raises(InvalidMessage):
            decode_control(data)
        with pytest.raises(InvalidMessage):
            decode_event(data)
        with pytest.raises(InvalidMessage):
            decode_jsonl(data)
    with pytest.raises(InvalidMessage):
        HeartbeatEvent(timestamp=1, urls={"\ud800": "x"})


@pytest.mark.spec("CHN-004")
@pytest.mark.parametrize(
    "build",
    [
        lambda: ControlMessage(params={"keep": "alive"}),
        lambda: ControlMessage(params={"x": float("nan")}),
        lambda: ControlMessage(params={"x": (1, 2)}),
        lambda: ControlMessage(params={1: "x"}),
        lambda: ControlMessage(params=[1]),
        lambda: EventEnvelope(event={}, queue_event_type=""),
        lambda: EventEnvelope(event={"t": float("inf")}),
        lambda: HeartbeatEvent(timestamp=1.5),
        lambda: HeartbeatEvent(timestamp=-1),
        lambda: HeartbeatEvent(timestamp=True),
        lambda: HeartbeatEvent(timestamp=1, width=-1),
        lambda: HeartbeatEvent(timestamp=1, fps={"x": float("nan")}),
        lambda: HeartbeatEvent(timestamp=1, fps={"x": True}),
        lambda: HeartbeatEvent(timestamp=1, urls={"x": 1}),
        lambda: HeartbeatEvent(timestamp=1, extra={"type": "other"}),
        lambda: StatusEvent(timestamp=1, pipeline=3),
        lambda: StatusEvent(timestamp=1, extra={"input_status": {}}),
        lambda: StatusEvent(timestamp=1, start_time=-5),
        lambda: DataLine(record={"x": object()}),
    ],
)
def test_validators_reject_bad_values(build: Any) -> None:
    with pytest.raises(InvalidMessage) as info:
        build()
    assert isinstance(info.value, ProtocolError)
    assert isinstance(info.value, ValueError)


@pytest.mark.spec("CHN-007")
def test_messages_own_their_data() -> None:
    params: dict[str, Any] = {"prompt": "a", "list": [1]}
    message = ControlMessage(params=params)
    params["list"].append(2)
    message.to_wire()["prompt"] = "changed"
    assert message.params == {"prompt": "a", "list": [1]}


@pytest.mark.spec("CHN-021")
@pytest.mark.parametrize(
    "event",
    [
        {"type": "status", "timestamp": 1},
        {"type": "heartbeat"},
        {"type": "heartbeat", "timestamp": "1"},
        {"type": "heartbeat", "timestamp": 1, "dimensions": [512, 512]},
        {"type": "heartbeat", "timestamp": 1, "fps": {"x": "30"}},
        {"type": "heartbeat", "timestamp": 1, "urls": {"x": None}},
    ],
)
def test_heartbeat_from_wire_rejects(event: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage):
        HeartbeatEvent.from_wire(event)
