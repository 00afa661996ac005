"""Telemetry wire vocabulary: the ``stream_trace`` envelope, its relay wrapper, sink batches.

The envelope is the one Scope's Kafka publisher writes (itself "Go kafka.go
format"): ``{"id", "type": "stream_trace", "timestamp": "<ms>", "data": {...}}``
with per-event metadata flattened into ``data``. An event is stamped once where
it happens (:meth:`TelemetryEvent.stamp`, which takes its clock and id source as
arguments so it stays pure) and every hop after that re-encodes it unchanged:
``to_wire(from_wire(w)) == w`` for every canonical ``w``. Pure values, no I/O;
the sinks that move these events live elsewhere (spec/telemetry.md), and the
sink-side encodings (HTTP batches, the disk spool, ``Retry-After``) are in
:mod:`.telemetry_sink`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from .._errors import InvalidMessage, PayloadTooLarge
from .fields import expect_object, get_bool, get_str
from .json_codec import dump_json, parse_json
from .validate import instance_of, json_object, json_object_without, optional, text

__all__ = [
    "DEFAULT_CLIENT_SOURCE",
    "ENVELOPE_TYPE",
    "ERROR_MEDIA_AUDIO_OUTPUT_LOOP_FAILED",
    "ERROR_MEDIA_INPUT_LOOP_FAILED",
    "ERROR_MEDIA_OUTPUT_LOOP_FAILED",
    "ERROR_PARAMS_UPDATE_FAILED",
    "ERROR_PIPELINE_LOAD_FAILED",
    "ERROR_PIPELINE_PROCESSING_FAILED",
    "ERROR_STREAM_FAILED",
    "ERROR_STREAM_STARTUP_FAILED",
    "EVENT_ERROR",
    "EVENT_GATEWAY_CONNECTED",
    "EVENT_GATEWAY_DISCONNECTED",
    "EVENT_PIPELINE_LOADED",
    "EVENT_PIPELINE_LOAD_START",
    "EVENT_PIPELINE_UNLOADED",
    "EVENT_PLAYBACK_READY",
    "EVENT_RUNNER_READY",
    "EVENT_SESSION_CLOSED",
    "EVENT_SESSION_CREATED",
    "EVENT_STREAM_HEARTBEAT",
    "EVENT_STREAM_STARTED",
    "EVENT_STREAM_STOPPED",
    "KNOWN_ERROR_TYPES",
    "KNOWN_EVENTS",
    "MAX_EVENT_BYTES",
    "RELAY_TYPE",
    "REQUIRED_METADATA",
    "RESERVED_DATA_KEYS",
    "TelemetryError",
    "TelemetryEvent",
    "TelemetryRelay",
]

ENVELOPE_TYPE = "stream_trace"
#: ``type`` of the events-channel message that carries one telemetry event (TEL-040).
RELAY_TYPE = "telemetry"
DEFAULT_CLIENT_SOURCE = "trio-trickle"
#: Largest encoded envelope a relay or sink accepts (TEL-014).
MAX_EVENT_BYTES = 64 * 1024

EVENT_RUNNER_READY = "runner_ready"
EVENT_PIPELINE_LOAD_START = "pipeline_load_start"
EVENT_PIPELINE_LOADED = "pipeline_loaded"
EVENT_PIPELINE_UNLOADED = "pipeline_unloaded"
EVENT_SESSION_CREATED = "session_created"
EVENT_STREAM_STARTED = "stream_started"
EVENT_PLAYBACK_READY = "playback_ready"
EVENT_STREAM_HEARTBEAT = "stream_heartbeat"
EVENT_STREAM_STOPPED = "stream_stopped"
EVENT_SESSION_CLOSED = "session_closed"
EVENT_ERROR = "error"
EVENT_GATEWAY_CONNECTED = "gateway_connected"
EVENT_GATEWAY_DISCONNECTED = "gateway_disconnected"

KNOWN_EVENTS = frozenset(
    {
        EVENT_RUNNER_READY,
        EVENT_PIPELINE_LOAD_START,
        EVENT_PIPELINE_LOADED,
        EVENT_PIPELINE_UNLOADED,
        EVENT_SESSION_CREATED,
        EVENT_STREAM_STARTED,
        EVENT_PLAYBACK_READY,
        EVENT_STREAM_HEARTBEAT,
        EVENT_STREAM_STOPPED,
        EVENT_SESSION_CLOSED,
        EVENT_ERROR,
        EVENT_GATEWAY_CONNECTED,
        EVENT_GATEWAY_DISCONNECTED,
    }
)

ERROR_STREAM_STARTUP_FAILED = "stream_startup_failed"
ERROR_STREAM_FAILED = "stream_failed"
ERROR_PIPELINE_LOAD_FAILED = "pipeline_load_failed"
ERROR_PIPELINE_PROCESSING_FAILED = "pipeline_processing_failed"
ERROR_PARAMS_UPDATE_FAILED = "params_update_failed"
ERROR_MEDIA_INPUT_LOOP_FAILED = "media_input_loop_failed"
ERROR_MEDIA_OUTPUT_LOOP_FAILED = "media_output_loop_failed"
ERROR_MEDIA_AUDIO_OUTPUT_LOOP_FAILED = "media_audio_output_loop_failed"

KNOWN_ERROR_TYPES = frozenset(
    {
        ERROR_STREAM_STARTUP_FAILED,
        ERROR_STREAM_FAILED,
        ERROR_PIPELINE_LOAD_FAILED,
        ERROR_PIPELINE_PROCESSING_FAILED,
        ERROR_PARAMS_UPDATE_FAILED,
        ERROR_MEDIA_INPUT_LOOP_FAILED,
        ERROR_MEDIA_OUTPUT_LOOP_FAILED,
        ERROR_MEDIA_AUDIO_OUTPUT_LOOP_FAILED,
    }
)

#: Keys of ``data`` that the envelope owns; metadata may never use them (TEL-011).
RESERVED_DATA_KEYS = frozenset(
    {
        "type",
        "client_source",
        "timestamp",
        "session_id",
        "connection_id",
        "user_id",
        "pipeline_ids",
        "connection_info",
        "error",
    }
)

#: Metadata a producer must supply for these events (checked by ``stamp`` only:
#: consumers accept whatever a producer sent).
REQUIRED_METADATA: Mapping[str, tuple[str, ...]] = {
    EVENT_RUNNER_READY: ("startup_ms",),
    EVENT_PIPELINE_LOADED: ("load_duration_ms",),
    EVENT_PLAYBACK_READY: ("ttff_ms",),
    EVENT_STREAM_HEARTBEAT: (
        "frames_in",
        "frames_out",
        "frames_dropped",
        "fps_in",
        "fps_out",
        "elapsed_ms",
        "since_last_heartbeat_ms",
    ),
    EVENT_STREAM_STOPPED: ("reason", "frames_in", "frames_out"),
    EVENT_GATEWAY_DISCONNECTED: ("duration_ms",),
}

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,127}")
_MS = re.compile(r"0|[1-9][0-9]{0,17}")
_MAX_ID = 256
_MAX_MESSAGE = 4096


def _event_id(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise InvalidMessage(f"{attribute.name}: must be a lowercase canonical UUID string")


def _name(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidMessage(f"{attribute.name}: must match [a-z][a-z0-9_]{{0,127}}")


def _millis(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**18:
        raise InvalidMessage(f"{attribute.name}: must be epoch milliseconds (int >= 0)")


def _pipeline_ids(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or not all(
        isinstance(v, str) and len(v) <= _MAX_ID for v in value
    ):
        raise InvalidMessage(f"{attribute.name}: must be a tuple of strings or None")


def _get_millis(obj: Mapping[str, Any], key: str, what: str) -> int:
    """Epoch ms sent as a decimal string (canonical) or, leniently, as a JSON integer."""
    value = obj.get(key)
    if isinstance(value, str) and _MS.fullmatch(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**18:
        return value
    raise InvalidMessage(f"{what}: field {key!r} must be epoch milliseconds as a string")


def _dump_bounded(wire: dict[str, Any], what: str) -> bytes:
    """Compact JSON of ``wire``; larger than MAX_EVENT_BYTES is refused (TEL-014)."""
    raw = dump_json(wire)
    if len(raw) > MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"{what} is {len(raw)} bytes")
    return raw


def _load_bounded(data: bytes, what: str) -> object:
    """Parse JSON of at most MAX_EVENT_BYTES, refusing larger input before parsing it."""
    if len(data) > MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"{what} is {len(data)} bytes")
    return parse_json(data, what)


_ERROR_KEYS = frozenset({"error_type", "message", "exception_type", "recoverable"})
_short_text = text(_MAX_MESSAGE, empty=True)
_optional_id = optional(text(_MAX_ID, empty=True))


@attrs.frozen(kw_only=True)
class TelemetryError:
    """``data.error`` of an event: ``{"error_type","message","exception_type","recoverable"}``."""

    error_type: str = attrs.field(validator=_name)
    message: str = attrs.field(default="", validator=_short_text)
    exception_type: str | None = attrs.field(default=None, validator=_optional_id)
    recoverable: bool = attrs.field(default=False, validator=instance_of(bool))
    extra: dict[str, Any] = attrs.field(factory=dict, validator=json_object_without(_ERROR_KEYS))

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error_type": self.error_type, "message": self.message}
        if self.exception_type is not None:
            out["exception_type"] = self.exception_type
        out["recoverable"] = self.recoverable
        out.update(self.extra)
        return out

    @classmethod
    def from_wire(cls, obj: object) -> TelemetryError:
        what = "telemetry error"
        body = expect_object(obj, what)
        return cls(
            error_type=get_str(body, "error_type", what),
            message=get_str(body, "message", what, default=""),
            exception_type=get_str(body, "exception_type", what, default=None),
            recoverable=get_bool(body, "recoverable", what, default=False),
            extra={k: v for k, v in body.items() if k not in _ERROR_KEYS},
        )


def _error_when_needed(
    inst: TelemetryEvent, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is not None and not isinstance(value, TelemetryError):
        raise InvalidMessage(f"{attribute.name}: must be a TelemetryError or None")
    if inst.name == EVENT_ERROR and value is None:
        raise InvalidMessage("an 'error' event must carry data.error")


@attrs.frozen(kw_only=True)
class TelemetryEvent:
    """One telemetry event as it travels: envelope fields, context, flat metadata.

    ``timestamp_ms`` is the envelope ``timestamp`` and ``data_timestamp_ms`` the
    ``data.timestamp``; ``stamp`` sets both to the same instant, and decoding
    keeps both so a relayed event is re-emitted exactly (TEL-022).
    """

    id: str = attrs.field(validator=_event_id)
    name: str = attrs.field(validator=_name)
    timestamp_ms: int = attrs.field(validator=_millis)
    data_timestamp_ms: int = attrs.field(validator=_millis)
    client_source: str = attrs.field(default=DEFAULT_CLIENT_SOURCE, validator=text(_MAX_ID))
    session_id: str | None = attrs.field(default=None, validator=_optional_id)
    connection_id: str | None = attrs.field(default=None, validator=_optional_id)
    user_id: str | None = attrs.field(default=None, validator=_optional_id)
    pipeline_ids: tuple[str, ...] | None = attrs.field(default=None, validator=_pipeline_ids)
    connection_info: dict[str, Any] | None = attrs.field(
        default=None, validator=optional(json_object)
    )
    error: TelemetryError | None = attrs.field(default=None, validator=_error_when_needed)
    metadata: dict[str, Any] = attrs.field(
        factory=dict, validator=json_object_without(RESERVED_DATA_KEYS)
    )
    envelope_type: str = attrs.field(default=ENVELOPE_TYPE, validator=_name)

    @classmethod
    def stamp(
        cls,
        name: str,
        *,
        clock_ms: Callable[[], int],
        new_id: Callable[[], uuid.UUID],
        client_source: str = DEFAULT_CLIENT_SOURCE,
        session_id: str | None = None,
        connection_id: str | None = None,
        user_id: str | None = None,
        pipeline_ids: Sequence[str] | None = None,
        connection_info: Mapping[str, Any] | None = None,
        error: TelemetryError | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> TelemetryEvent:
        """Create an event at its source: a fresh uuid4 id and one timestamp (TEL-002, TEL-021).

        ``clock_ms`` returns wall-clock epoch milliseconds and ``new_id`` a UUID
        (``uuid.uuid4`` in production); passing them in keeps this pure. Known
        events must carry the metadata :data:`REQUIRED_METADATA` lists.
        """
        event_id = new_id()
        if not isinstance(event_id, uuid.UUID) or event_id.version != 4:
            raise InvalidMessage("telemetry: new_id must return a version 4 UUID")
        meta = dict(metadata or {})
        missing = [k for k in REQUIRED_METADATA.get(name, ()) if k not in meta]
        if missing:
            raise InvalidMessage(f"telemetry: event {name!r} needs metadata {missing}")
        now = clock_ms()
        return cls(
            id=str(event_id),
            name=name,
            timestamp_ms=now,
            data_timestamp_ms=now,
            client_source=client_source,
            session_id=session_id,
            connection_id=connection_id,
            user_id=user_id,
            pipeline_ids=None if pipeline_ids is None else tuple(pipeline_ids),
            connection_info=None if connection_info is None else dict(connection_info),
            error=error,
            metadata=meta,
        )

    def to_wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.name,
            "client_source": self.client_source,
            "timestamp": str(self.data_timestamp_ms),
        }
        for key in ("session_id", "connection_id", "user_id"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.pipeline_ids is not None:
            data["pipeline_ids"] = list(self.pipeline_ids)
        if self.connection_info is not None:
            data["connection_info"] = self.connection_info
        if self.error is not None:
            data["error"] = self.error.to_wire()
        data.update(self.metadata)
        return {
            "id": self.id,
            "type": self.envelope_type,
            "timestamp": str(self.timestamp_ms),
            "data": data,
        }

    @classmethod
    def from_wire(cls, obj: object) -> TelemetryEvent:
        what = "telemetry event"
        body = expect_object(obj, what)
        data = expect_object(body.get("data"), f"{what}.data")
        dw = f"{what}.data"
        pipeline_ids = data.get("pipeline_ids")
        if pipeline_ids is not None:
            if not isinstance(pipeline_ids, list) or not all(
                isinstance(p, str) for p in pipeline_ids
            ):
                raise InvalidMessage(f"{dw}: pipeline_ids must be an array of strings")
            pipeline_ids = tuple(pipeline_ids)
        connection_info = data.get("connection_info")
        if connection_info is not None and not isinstance(connection_info, dict):
            raise InvalidMessage(f"{dw}: connection_info must be an object")
        error = data.get("error")
        return cls(
            id=get_str(body, "id", what),
            envelope_type=get_str(body, "type", what),
            timestamp_ms=_get_millis(body, "timestamp", what),
            name=get_str(data, "type", dw),
            client_source=get_str(data, "client_source", dw),
            data_timestamp_ms=_get_millis(data, "timestamp", dw),
            session_id=get_str(data, "session_id", dw, default=None),
            connection_id=get_str(data, "connection_id", dw, default=None),
            user_id=get_str(data, "user_id", dw, default=None),
            pipeline_ids=pipeline_ids,
            connection_info=None if connection_info is None else dict(connection_info),
            error=None if error is None else TelemetryError.from_wire(error),
            metadata={k: v for k, v in data.items() if k not in RESERVED_DATA_KEYS},
        )

    def to_bytes(self) -> bytes:
        """Compact JSON of the envelope; larger than MAX_EVENT_BYTES is refused (TEL-014)."""
        return _dump_bounded(self.to_wire(), f"telemetry event {self.id}")

    @classmethod
    def from_bytes(cls, data: bytes) -> TelemetryEvent:
        return cls.from_wire(_load_bounded(data, "telemetry event"))

    def kafka_record(self) -> tuple[bytes, bytes]:
        """``(key, value)`` for Kafka: the event id as key, the envelope JSON as value (TEL-076)."""
        return self.id.encode("ascii"), self.to_bytes()


@attrs.frozen(kw_only=True)
class TelemetryRelay:
    """Events-channel message carrying one event: ``{"type":"telemetry","event":{...}}``."""

    event: TelemetryEvent = attrs.field(validator=instance_of(TelemetryEvent))

    @staticmethod
    def is_relay(obj: object) -> bool:
        """Cheap dispatch test for an events-channel reader (TEL-041)."""
        return isinstance(obj, dict) and obj.get("type") == RELAY_TYPE

    def to_wire(self) -> dict[str, Any]:
        return {"type": RELAY_TYPE, "event": self.event.to_wire()}

    @classmethod
    def from_wire(cls, obj: object) -> TelemetryRelay:
        body = expect_object(obj, "telemetry relay")
        if body.get("type") != RELAY_TYPE:
            raise InvalidMessage("telemetry relay: type must be 'telemetry'")
        return cls(event=TelemetryEvent.from_wire(body.get("event")))

    def to_bytes(self) -> bytes:
        return _dump_bounded(self.to_wire(), f"telemetry relay for {self.event.id}")

    @classmethod
    def from_bytes(cls, data: bytes) -> TelemetryRelay:
        return cls.from_wire(_load_bounded(data, "telemetry relay"))
