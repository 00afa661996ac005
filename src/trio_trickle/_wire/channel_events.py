"""What the bytes of events segments mean (spec/channels.md, "Events channel").

One JSON object per segment: the ``{"queue_event_type", "event"}`` envelope or a
bare event, plus typed views of the two events every runner sends, heartbeat
and status. Pure, no I/O; decoding raises only the ProtocolError family.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any, Final

import attrs

from .._errors import InvalidMessage
from .channels import (
    DEFAULT_MAX_SEGMENT_BYTES,
    JSONObject,
    _deep_copy,
    _json_object,
    _json_problem,
    _parse_object,
)
from .fields import expect_object, get_object, get_str
from .json_codec import dump_json

__all__ = [
    "EVENTS_MAX_GAP",
    "HEARTBEAT_INTERVAL",
    "TOPIC_AI_STREAM_EVENTS",
    "TOPIC_AI_STREAM_STATUS",
    "TOPIC_STREAM_HEARTBEAT",
    "EventEnvelope",
    "HeartbeatEvent",
    "StatusEvent",
    "decode_event",
    "encode_event",
]

TOPIC_AI_STREAM_EVENTS: Final = "ai_stream_events"
TOPIC_AI_STREAM_STATUS: Final = "ai_stream_status"
TOPIC_STREAM_HEARTBEAT: Final = "stream_heartbeat"

#: Seconds between runner heartbeats (pytrickle ``heartbeat_interval``), CHN-020.
HEARTBEAT_INTERVAL: Final = 10.0
#: Seconds after which the Go gateway gives up on a silent events channel, CHN-019.
EVENTS_MAX_GAP: Final = 30.0


def _no_keys(*reserved: str) -> Any:
    """Validator factory: an ``extra`` dict must not shadow a typed field."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: Mapping[str, Any]) -> None:
        clash = sorted(set(value) & set(reserved))
        if clash:
            raise InvalidMessage(f"{attribute.name}: keys {clash} belong to typed fields")

    return check


def _opt_count(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: None or a non-negative integer millisecond timestamp."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidMessage(f"{attribute.name}: must be a non-negative integer")


def _required_count(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        raise InvalidMessage(f"{attribute.name}: required")
    _opt_count(inst, attribute, value)


def _read_ms(obj: Mapping[str, Any], key: str, what: str) -> int | None:
    """A millisecond timestamp: an int, or a finite float rounded (Python peers send both)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidMessage(f"{what}: field {key!r} must be a number of milliseconds")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidMessage(f"{what}: field {key!r} must be finite")
    result = round(value)
    if result < 0:
        raise InvalidMessage(f"{what}: field {key!r} must not be negative")
    return result


def _require_ms(obj: Mapping[str, Any], key: str, what: str) -> int:
    value = _read_ms(obj, key, what)
    if value is None:
        raise InvalidMessage(f"{what}: missing required field {key!r}")
    return value


def _read_count(obj: Mapping[str, Any], key: str, what: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidMessage(f"{what}: field {key!r} must be a non-negative integer")
    return value


def _check_encodable(wire: JSONObject) -> None:
    """Whole-message check for what per-field validators miss (lone surrogates in keys)."""
    problem = _json_problem(wire)
    if problem is not None:
        raise InvalidMessage(f"event: {problem}")


def _opt_topic(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidMessage(f"{attribute.name}: must be None or a non-empty string")


@attrs.frozen(kw_only=True)
class EventEnvelope:
    """One events segment: ``{"queue_event_type": <topic>, "event": {...}}`` (CHN-013).

    ``queue_event_type`` is None when the peer sent a bare event object or left
    the topic out; :attr:`topic` then applies the Go gateway's defaults.
    """

    event: JSONObject = attrs.field(converter=_deep_copy, validator=_json_object)
    queue_event_type: str | None = attrs.field(default=None, validator=_opt_topic)

    def __attrs_post_init__(self) -> None:
        _check_encodable(self.to_wire())

    @property
    def event_type(self) -> str | None:
        kind = self.event.get("type")
        return kind if isinstance(kind, str) else None

    @property
    def topic(self) -> str:
        """Where the gateway forwards the event (CHN-016, CHN-017)."""
        if self.event_type == "status":
            return TOPIC_AI_STREAM_STATUS
        return self.queue_event_type or TOPIC_AI_STREAM_EVENTS

    def to_wire(self) -> JSONObject:
        wire: JSONObject = {"event": copy.deepcopy(self.event)}
        if self.queue_event_type is not None:
            wire["queue_event_type"] = self.queue_event_type
        return wire

    @classmethod
    def from_wire(cls, value: object) -> EventEnvelope:
        obj = expect_object(value, "event segment")
        # Checked in both shapes: Go decodes the wrapper first, so a non-string
        # topic makes the whole segment unreadable there too (CHN-015).
        topic = get_str(obj, "queue_event_type", "event segment", default=None)
        if obj.get("event") is None:
            return cls(event=dict(obj))  # bare event: the object is the event (CHN-014)
        event = get_object(obj, "event", "event segment")
        return cls(event=event, queue_event_type=topic or None)


def decode_event(
    data: bytes, *, max_bytes: int | None = DEFAULT_MAX_SEGMENT_BYTES
) -> EventEnvelope | None:
    """Decode a whole events segment; None means an empty segment to skip (CHN-036)."""
    obj = _parse_object(data, "event segment", max_bytes)
    return None if obj is None else EventEnvelope.from_wire(obj)


def encode_event(envelope: EventEnvelope) -> bytes:
    """The bytes of one events segment."""
    return dump_json(envelope.to_wire())


def _str_map(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidMessage(f"{attribute.name}: must map strings to strings")


def _fps_map(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, dict):
        raise InvalidMessage(f"{attribute.name}: must be a dict")
    for key, number in value.items():
        if not isinstance(key, str) or isinstance(number, bool):
            raise InvalidMessage(f"{attribute.name}: must map strings to numbers")
        if not isinstance(number, int | float) or not math.isfinite(number) or number < 0:
            raise InvalidMessage(f"{attribute.name}: {key!r} must be a finite number >= 0")


def _read_fps(obj: Mapping[str, Any], what: str) -> dict[str, float]:
    raw = get_object(obj, "fps", what, default=None) or {}
    fps: dict[str, float] = {}
    for key, number in raw.items():
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InvalidMessage(f"{what}.fps: {key!r} must be a number")
        fps[key] = float(number)
    return fps


def _read_urls(obj: Mapping[str, Any], what: str) -> dict[str, str]:
    raw = get_object(obj, "urls", what, default=None) or {}
    for key in raw:
        get_str(raw, key, f"{what}.urls")
    return dict(raw)


_HEARTBEAT_KEYS = ("type", "timestamp", "urls", "dimensions", "fps", "frames_in", "frames_out")


@attrs.frozen(kw_only=True)
class HeartbeatEvent:
    """A runner heartbeat (pytrickle shape), sent on topic ``stream_heartbeat`` (CHN-021).

    Members we do not model (Scope's ``elapsed_ms``, ...) are kept in ``extra``.
    """

    timestamp: int = attrs.field(validator=_required_count)
    urls: dict[str, str] = attrs.field(factory=dict, converter=_deep_copy, validator=_str_map)
    width: int | None = attrs.field(default=None, validator=_opt_count)
    height: int | None = attrs.field(default=None, validator=_opt_count)
    fps: dict[str, float] = attrs.field(factory=dict, converter=_deep_copy, validator=_fps_map)
    frames_in: int | None = attrs.field(default=None, validator=_opt_count)
    frames_out: int | None = attrs.field(default=None, validator=_opt_count)
    extra: JSONObject = attrs.field(
        factory=dict, converter=_deep_copy, validator=[_json_object, _no_keys(*_HEARTBEAT_KEYS)]
    )

    def __attrs_post_init__(self) -> None:
        _check_encodable(self.to_wire())

    def to_wire(self) -> JSONObject:
        wire: JSONObject = copy.deepcopy(self.extra)
        wire.update(type="heartbeat", timestamp=self.timestamp)
        if self.urls:
            wire["urls"] = dict(self.urls)
        if self.width is not None or self.height is not None:
            wire["dimensions"] = {"width": self.width, "height": self.height}
        if self.fps:
            wire["fps"] = dict(self.fps)
        if self.frames_in is not None:
            wire["frames_in"] = self.frames_in
        if self.frames_out is not None:
            wire["frames_out"] = self.frames_out
        return wire

    def to_envelope(self) -> EventEnvelope:
        return EventEnvelope(event=self.to_wire(), queue_event_type=TOPIC_STREAM_HEARTBEAT)

    @classmethod
    def from_wire(cls, value: object) -> HeartbeatEvent:
        what = "heartbeat event"
        obj = expect_object(value, what)
        if obj.get("type") != "heartbeat":
            raise InvalidMessage(f'{what}: "type" must be "heartbeat"')
        dims = get_object(obj, "dimensions", what, default=None) or {}
        return cls(
            timestamp=_require_ms(obj, "timestamp", what),
            urls=_read_urls(obj, what),
            width=_read_count(dims, "width", f"{what}.dimensions"),
            height=_read_count(dims, "height", f"{what}.dimensions"),
            fps=_read_fps(obj, what),
            frames_in=_read_count(obj, "frames_in", what),
            frames_out=_read_count(obj, "frames_out", what),
            extra={k: v for k, v in obj.items() if k not in _HEARTBEAT_KEYS},
        )


_STATUS_TIMES = ("start_time", "last_state_update_time", "last_status_timestamp")
_STATUS_KEYS = ("type", "timestamp", "pipeline", "state", "input_status", "inference_status")
_STATUS_ALL_KEYS = _STATUS_KEYS + _STATUS_TIMES


def _opt_str(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidMessage(f"{attribute.name}: must be None or a string")


def _opt_json_object(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _json_object(inst, attribute, value)


def _nested_fps(section: Mapping[str, Any] | None) -> float | None:
    number = None if section is None else section.get("fps")
    if isinstance(number, bool) or not isinstance(number, int | float):
        return None
    return float(number) if math.isfinite(number) else None


@attrs.frozen(kw_only=True)
class StatusEvent:
    """A runner status report (ai-runner ``PipelineStatus`` shape), CHN-022/CHN-023.

    The nested ``input_status`` / ``inference_status`` objects are kept whole
    (the Go gateway merges them into its status store); fps is read from them.
    """

    timestamp: int = attrs.field(validator=_required_count)
    pipeline: str | None = attrs.field(default=None, validator=_opt_str)
    state: str | None = attrs.field(default=None, validator=_opt_str)
    start_time: int | None = attrs.field(default=None, validator=_opt_count)
    last_state_update_time: int | None = attrs.field(default=None, validator=_opt_count)
    last_status_timestamp: int | None = attrs.field(default=None, validator=_opt_count)
    input_status: JSONObject | None = attrs.field(
        default=None, converter=_deep_copy, validator=_opt_json_object
    )
    inference_status: JSONObject | None = attrs.field(
        default=None, converter=_deep_copy, validator=_opt_json_object
    )
    extra: JSONObject = attrs.field(
        factory=dict, converter=_deep_copy, validator=[_json_object, _no_keys(*_STATUS_ALL_KEYS)]
    )

    @property
    def input_fps(self) -> float | None:
        return _nested_fps(self.input_status)

    @property
    def output_fps(self) -> float | None:
        return _nested_fps(self.inference_status)

    def __attrs_post_init__(self) -> None:
        _check_encodable(self.to_wire())

    def to_wire(self) -> JSONObject:
        wire: JSONObject = copy.deepcopy(self.extra)
        wire.update(type="status", timestamp=self.timestamp)
        for key in ("pipeline", "state", *_STATUS_TIMES):
            if getattr(self, key) is not None:
                wire[key] = getattr(self, key)
        for key in ("input_status", "inference_status"):
            if getattr(self, key) is not None:
                wire[key] = copy.deepcopy(getattr(self, key))
        return wire

    def to_envelope(self) -> EventEnvelope:
        return EventEnvelope(event=self.to_wire(), queue_event_type=TOPIC_AI_STREAM_STATUS)

    @classmethod
    def from_wire(cls, value: object) -> StatusEvent:
        what = "status event"
        obj = expect_object(value, what)
        if obj.get("type") != "status":
            raise InvalidMessage(f'{what}: "type" must be "status"')
        return cls(
            timestamp=_require_ms(obj, "timestamp", what),
            pipeline=get_str(obj, "pipeline", what, default=None),
            state=get_str(obj, "state", what, default=None),
            start_time=_read_ms(obj, "start_time", what),
            last_state_update_time=_read_ms(obj, "last_state_update_time", what),
            last_status_timestamp=_read_ms(obj, "last_status_timestamp", what),
            input_status=get_object(obj, "input_status", what, default=None),
            inference_status=get_object(obj, "inference_status", what, default=None),
            extra={k: v for k, v in obj.items() if k not in _STATUS_ALL_KEYS},
        )
