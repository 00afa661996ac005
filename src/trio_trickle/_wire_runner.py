"""Runner HTTP API vocabulary: request and response bodies, headers, SSE framing.

Pure attrs values; no I/O. The runner app (``Pipeline`` / ``LivePipeline``), the
orchestrator side that calls it, and the conformance suite all read and write the
bodies of spec/runner-api.md through this module, so field names, defaults and
the status of each rejection live in one place. Decoders are lenient the way the
spec asks (unknown keys kept, ``""`` URLs treated as absent, any stop body
accepted) and raise only the ``ProtocolError`` family.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from ._errors import InvalidMessage
from ._wire_util import dump_json, expect_object, get_str, instance_of, optional, parse_json

__all__ = [
    "HEADER_STREAM_ID",
    "MAX_STOP_REASON_LENGTH",
    "SSE_DONE",
    "ErrorResponse",
    "HealthResponse",
    "HealthStatus",
    "LiveVideoToVideoResponse",
    "PredictRequest",
    "SessionState",
    "SessionStatus",
    "StopReason",
    "StreamFps",
    "StreamParamsRequest",
    "StreamParamsResponse",
    "StreamStartRequest",
    "StreamStartResponse",
    "StreamStatusResponse",
    "StreamStopRequest",
    "StreamStopResponse",
    "bearer_token",
    "encode_sse_data",
    "encode_sse_error",
]

#: Sent by the orchestrator on every worker call; names the session a call targets.
HEADER_STREAM_ID = "X-Stream-Id"
#: Terminates every SSE response of a generator ``predict`` (RUN-031).
SSE_DONE = b"data: [DONE]\n\n"
MAX_STOP_REASON_LENGTH = 1024
MAX_ERROR_MESSAGE_LENGTH = 4096
MAX_ID_LENGTH = 256
MAX_URL_LENGTH = 2048


class HealthStatus(enum.StrEnum):
    """``GET /health`` states, spelled as go-livepeer's HealthCheck and pytrickle do."""

    LOADING = "LOADING"
    OK = "OK"
    ERROR = "ERROR"
    IDLE = "IDLE"


class SessionState(enum.StrEnum):
    """Where one live session is in its life, as ``GET /stream/status`` reports it."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


class StopReason(enum.StrEnum):
    """Why a live session ended; carried by the ``stream_stopped`` event (RUN-100)."""

    STOP_REQUESTED = "stop_requested"
    INPUT_ENDED = "input_ended"
    INPUT_GONE = "input_gone"
    CONTROL_GONE = "control_gone"
    OUTPUT_GONE = "output_gone"
    FAILED = "failed"
    SHUTDOWN = "shutdown"


# -- strict JSON values --------------------------------------------------------
# ``_wire_util.json_value`` trusts json.dumps, which silently turns int keys into
# strings and tuples into lists; both would break ``from_wire(to_wire(x)) == x``.


def is_plain_json(value: object) -> bool:
    """True if ``value`` is built only from None/bool/int/finite float/str/list/str-keyed dict.

    Iterative, so deep input cannot exhaust the stack; a container that contains
    itself is refused (json.dumps would fail on it), a container shared by two
    parents is fine.
    """
    done = object()  # marker: leave the container pushed just below it
    stack: list[object] = [value]
    on_path: set[int] = set()
    while stack:
        item = stack.pop()
        if item is done:
            on_path.discard(id(stack.pop()))
            continue
        if item is None or isinstance(item, bool | int | str):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
            continue
        if not isinstance(item, list | dict):
            return False
        if id(item) in on_path:
            return False
        if isinstance(item, dict) and not all(isinstance(k, str) for k in item):
            return False
        on_path.add(id(item))
        stack.extend((item, done))
        stack.extend(item.values() if isinstance(item, dict) else item)
    return True


def plain_json_object(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: a dict of plain JSON values."""
    if not isinstance(value, dict) or not is_plain_json(value):
        raise InvalidMessage(f"{attribute.name}: must be a JSON object")


def _optional_object(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        plain_json_object(inst, attribute, value)


def _text(limit: int, *, empty: bool = False) -> Any:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, str) or (not empty and not value):
            raise InvalidMessage(f"{attribute.name}: must be a non-empty string")
        if len(value) > limit:
            raise InvalidMessage(f"{attribute.name}: longer than {limit} characters")

    return check


def _http_url(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_URL_LENGTH:
        raise InvalidMessage(f"{attribute.name}: must be a URL of 1..{MAX_URL_LENGTH} chars")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise InvalidMessage(f"{attribute.name}: not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidMessage(f"{attribute.name}: must be an absolute http(s) URL")


def _optional_url(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _http_url(inst, attribute, value)


def _count(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidMessage(f"{attribute.name}: must be a non-negative integer")


def _rate(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, float):
        raise InvalidMessage(f"{attribute.name}: must be a float")
    if not math.isfinite(value) or value < 0:
        raise InvalidMessage(f"{attribute.name}: must be finite and >= 0")


def _get_url(obj: Mapping[str, Any], key: str, what: str) -> str | None:
    # ai-runner sends "" for "no such channel"; go-livepeer omits the key.
    value: str | None = get_str(obj, key, what, default=None)
    return value or None


def _get_count(obj: Mapping[str, Any], key: str, what: str) -> int:
    value = obj.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidMessage(f"{what}: field {key!r} must be a non-negative integer")
    return value


def _get_rate(obj: Mapping[str, Any], key: str, what: str) -> float:
    value = obj.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidMessage(f"{what}: field {key!r} must be a number")
    if not math.isfinite(value) or value < 0:
        raise InvalidMessage(f"{what}: field {key!r} must be finite and >= 0")
    return float(value)


def _get_json_object(obj: Mapping[str, Any], key: str, what: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not is_plain_json(value):
        raise InvalidMessage(f"{what}: field {key!r} must be a JSON object or null")
    return dict(value)


def _decode(data: bytes | str, what: str, *, status: int | None = None) -> object:
    try:
        return parse_json(data, what)
    except InvalidMessage as exc:
        if status is None:
            raise
        raise InvalidMessage(exc.message, status=status) from None


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None.

    The scheme is matched case-insensitively (RFC 7235); the token is returned
    verbatim so the caller compares it exactly (and in constant time).
    """
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


# -- errors and health -----------------------------------------------------------


@attrs.frozen(kw_only=True)
class ErrorResponse:
    """The body of every runner error response: ``{"detail": {"msg": ...}}`` (RUN-002).

    That is go-livepeer's ``HTTPError``/``APIError`` shape, also what ai-runner
    sends. ``from_wire`` also reads the shapes other runners use (RUN-003).
    """

    message: str = attrs.field(validator=_text(MAX_ERROR_MESSAGE_LENGTH))

    def to_wire(self) -> dict[str, Any]:
        return {"detail": {"msg": self.message}}

    @classmethod
    def from_wire(cls, obj: object) -> ErrorResponse:
        body = expect_object(obj, "error body")
        detail = body.get("detail")
        message: object = None
        if isinstance(detail, dict):
            message = detail.get("msg")
        elif isinstance(detail, str):
            message = detail
        elif isinstance(detail, list):
            parts = [d.get("msg") for d in detail if isinstance(d, dict)]
            message = "; ".join(p for p in parts if isinstance(p, str) and p) or None
        elif "error" in body:
            message = body["error"]
        if not isinstance(message, str) or not message:
            raise InvalidMessage("error body: no error message found")
        return cls(message=message[:MAX_ERROR_MESSAGE_LENGTH])

    @classmethod
    def from_bytes(cls, data: bytes) -> ErrorResponse:
        return cls.from_wire(parse_json(data, "error body"))


@attrs.frozen(kw_only=True)
class HealthResponse:
    """``GET /health`` body: ``{"status": "LOADING"|"OK"|"ERROR"|"IDLE"}`` (RUN-009)."""

    status: HealthStatus = attrs.field(validator=instance_of(HealthStatus))

    def to_wire(self) -> dict[str, Any]:
        return {"status": self.status.value}

    @classmethod
    def from_wire(cls, obj: object) -> HealthResponse:
        value = get_str(expect_object(obj, "health"), "status", "health")
        try:
            return cls(status=HealthStatus(value))
        except ValueError:
            raise InvalidMessage(f"health: unknown status {value!r}") from None

    @property
    def http_status(self) -> int:
        """200 when the runner can take work, 503 while loading or broken (RUN-016)."""
        return 200 if self.status in (HealthStatus.OK, HealthStatus.IDLE) else 503


# -- request/response Pipeline --------------------------------------------------


@attrs.frozen(kw_only=True)
class PredictRequest:
    """``POST /predict`` body: the keyword arguments for ``predict`` (RUN-020).

    Only the JSON shape is checked here (status 422, RUN-021); matching the
    arguments against ``predict``'s signature is the runner's job.
    """

    arguments: dict[str, Any] = attrs.field(factory=dict, validator=plain_json_object)

    def to_wire(self) -> dict[str, Any]:
        return dict(self.arguments)

    @classmethod
    def from_wire(cls, obj: object) -> PredictRequest:
        if not isinstance(obj, dict) or not is_plain_json(obj):
            raise InvalidMessage("predict body: expected a JSON object", status=422)
        return cls(arguments=dict(obj))

    @classmethod
    def from_bytes(cls, data: bytes) -> PredictRequest:
        if not data.strip():
            return cls()
        return cls.from_wire(_decode(data, "predict body", status=422))


def encode_sse_data(value: object) -> bytes:
    """One SSE event carrying ``value`` as compact JSON: ``data: <json>\\n\\n`` (RUN-030)."""
    return b"data: " + dump_json(value) + b"\n\n"


def encode_sse_error(message: str) -> bytes:
    """The event sent when a streaming ``predict`` raises mid-stream (RUN-032)."""
    return encode_sse_data({"error": message})


# -- LivePipeline control API ----------------------------------------------------

_START_KEYS = frozenset(
    {
        "gateway_request_id",
        "subscribe_url",
        "publish_url",
        "control_url",
        "events_url",
        "data_url",
        "params",
    }
)
_MEDIA_KEYS = ("subscribe_url", "publish_url", "data_url")


def _extra_keys(inst: StreamStartRequest, attribute: attrs.Attribute[Any], value: object) -> None:
    plain_json_object(inst, attribute, value)
    assert isinstance(value, dict)
    clash = _START_KEYS.intersection(value)
    if clash:
        raise InvalidMessage(f"extra: keys {sorted(clash)} are named fields")


def _needs_media(inst: StreamStartRequest, _attr: attrs.Attribute[Any], _value: object) -> None:
    if inst.subscribe_url is None and inst.publish_url is None:
        raise InvalidMessage("stream start: one of subscribe_url or publish_url is required")


@attrs.frozen(kw_only=True)
class StreamStartRequest:
    """``POST /stream/start`` (and ``/live-video-to-video``) body, sent by the orchestrator.

    ``params`` is None when the caller sent none (go-livepeer sends ``null``).
    Media URLs are present only for the directions the job enabled. Unknown keys
    (ai-runner's ``model_id``/``manifest_id``/``stream_id``, gateway body keys the
    orchestrator merges in) are kept in ``extra`` and re-emitted.
    """

    gateway_request_id: str = attrs.field(validator=_text(MAX_ID_LENGTH))
    control_url: str = attrs.field(validator=_http_url)
    events_url: str = attrs.field(validator=_http_url)
    subscribe_url: str | None = attrs.field(default=None, validator=_optional_url)
    publish_url: str | None = attrs.field(default=None, validator=_optional_url)
    data_url: str | None = attrs.field(default=None, validator=_optional_url)
    params: dict[str, Any] | None = attrs.field(default=None, validator=_optional_object)
    extra: dict[str, Any] = attrs.field(factory=dict, validator=[_extra_keys, _needs_media])

    @property
    def has_ingress(self) -> bool:
        """The runner subscribes to input media."""
        return self.subscribe_url is not None

    @property
    def has_egress(self) -> bool:
        """The runner publishes output media."""
        return self.publish_url is not None

    @property
    def has_data(self) -> bool:
        """The runner publishes JSONL records."""
        return self.data_url is not None

    def media_urls(self) -> dict[str, str]:
        """The media/data URLs that are present, keyed by their wire field name."""
        urls = {k: getattr(self, k) for k in _MEDIA_KEYS}
        return {k: v for k, v in urls.items() if v is not None}

    def effective_params(self) -> dict[str, Any]:
        """What ``on_stream_start`` receives: the params, or ``{}`` for null (RUN-074)."""
        return dict(self.params) if self.params is not None else {}

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "gateway_request_id": self.gateway_request_id,
            "control_url": self.control_url,
            "events_url": self.events_url,
        }
        out.update(self.media_urls())
        out["params"] = self.params
        out.update(self.extra)
        return out

    @classmethod
    def from_wire(cls, obj: object) -> StreamStartRequest:
        what = "stream start"
        body = expect_object(obj, what)
        gateway_request_id = get_str(body, "gateway_request_id", what)
        control_url = _get_url(body, "control_url", what)
        events_url = _get_url(body, "events_url", what)
        if control_url is None or events_url is None:
            raise InvalidMessage(f"{what}: control_url and events_url are required")
        extra = {k: v for k, v in body.items() if k not in _START_KEYS}
        if not is_plain_json(extra):
            raise InvalidMessage(f"{what}: body is not plain JSON")
        return cls(
            gateway_request_id=gateway_request_id,
            control_url=control_url,
            events_url=events_url,
            subscribe_url=_get_url(body, "subscribe_url", what),
            publish_url=_get_url(body, "publish_url", what),
            data_url=_get_url(body, "data_url", what),
            params=_get_json_object(body, "params", what),
            extra=extra,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> StreamStartRequest:
        return cls.from_wire(parse_json(data, "stream start"))


@attrs.frozen(kw_only=True)
class StreamStartResponse:
    """``200`` body of ``POST /stream/start``: ``{"status":"started","gateway_request_id":..}``."""

    gateway_request_id: str = attrs.field(validator=_text(MAX_ID_LENGTH))

    def to_wire(self) -> dict[str, Any]:
        return {"status": "started", "gateway_request_id": self.gateway_request_id}

    @classmethod
    def from_wire(cls, obj: object) -> StreamStartResponse:
        body = expect_object(obj, "stream start response")
        if body.get("status") != "started":
            raise InvalidMessage("stream start response: status must be 'started'")
        return cls(gateway_request_id=get_str(body, "gateway_request_id", "stream start response"))


@attrs.frozen(kw_only=True)
class LiveVideoToVideoResponse:
    """``200`` body of the ai-runner alias ``POST /live-video-to-video`` (RUN-056).

    ai-runner answers with its channel URLs all empty; go-livepeer's generated
    client decodes exactly these three fields.
    """

    publish_url: str = attrs.field(default="", validator=_text(MAX_URL_LENGTH, empty=True))
    subscribe_url: str = attrs.field(default="", validator=_text(MAX_URL_LENGTH, empty=True))
    control_url: str = attrs.field(default="", validator=_text(MAX_URL_LENGTH, empty=True))

    def to_wire(self) -> dict[str, Any]:
        return {
            "publish_url": self.publish_url,
            "subscribe_url": self.subscribe_url,
            "control_url": self.control_url,
        }

    @classmethod
    def from_wire(cls, obj: object) -> LiveVideoToVideoResponse:
        what = "live-video-to-video response"
        body = expect_object(obj, what)
        return cls(
            publish_url=get_str(body, "publish_url", what, default=""),
            subscribe_url=get_str(body, "subscribe_url", what, default=""),
            control_url=get_str(body, "control_url", what, default=""),
        )


@attrs.frozen(kw_only=True)
class StreamParamsRequest:
    """A params update: the body of ``POST /stream/params`` or one control-channel message.

    The whole JSON object is the update (a flat dict of pipeline params).
    ``{"keep":"alive"}`` on the control channel is a keepalive, not an update.
    """

    params: dict[str, Any] = attrs.field(validator=plain_json_object)

    @property
    def is_keepalive(self) -> bool:
        """True for the gateway's control keepalive ``{"keep":"alive"}`` (RUN-085)."""
        return self.params == {"keep": "alive"}

    def to_wire(self) -> dict[str, Any]:
        return dict(self.params)

    @classmethod
    def from_wire(cls, obj: object) -> StreamParamsRequest:
        if not isinstance(obj, dict) or not is_plain_json(obj):
            raise InvalidMessage("params update: expected a JSON object")
        return cls(params=dict(obj))

    @classmethod
    def from_bytes(cls, data: bytes) -> StreamParamsRequest:
        return cls.from_wire(parse_json(data, "params update"))


@attrs.frozen(kw_only=True)
class StreamParamsResponse:
    """``200`` body of ``POST /stream/params``: ``{"status":"ok"}``."""

    def to_wire(self) -> dict[str, Any]:
        return {"status": "ok"}

    @classmethod
    def from_wire(cls, obj: object) -> StreamParamsResponse:
        if expect_object(obj, "params response").get("status") != "ok":
            raise InvalidMessage("params response: status must be 'ok'")
        return cls()


def _reason_from_text(text: str) -> str | None:
    text = text[:MAX_STOP_REASON_LENGTH]
    return text if text.strip() else None


def _stop_reason(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    _text(MAX_STOP_REASON_LENGTH)(inst, attribute, value)
    assert isinstance(value, str)
    if not value.strip():
        raise InvalidMessage(f"{attribute.name}: must not be blank")


@attrs.frozen(kw_only=True)
class StreamStopRequest:
    """``POST /stream/stop`` body reduced to an optional human-readable reason.

    go-livepeer sends client JSON, a bare text such as ``stream ended``, or no
    body at all, so decoding never fails (RUN-064, RUN-065).
    """

    reason: str | None = attrs.field(default=None, validator=_stop_reason)

    def to_wire(self) -> dict[str, Any]:
        return {} if self.reason is None else {"reason": self.reason}

    @classmethod
    def from_wire(cls, obj: object) -> StreamStopRequest:
        if isinstance(obj, str):
            return cls(reason=_reason_from_text(obj))
        if isinstance(obj, dict):
            for key in ("reason", "error", "message"):
                value = obj.get(key)
                if isinstance(value, str) and value.strip():
                    return cls(reason=_reason_from_text(value))
        return cls()

    @classmethod
    def from_bytes(cls, data: bytes) -> StreamStopRequest:
        if not data.strip():
            return cls()
        try:
            return cls.from_wire(parse_json(data, "stop body"))
        except InvalidMessage:
            text = data.decode("utf-8", errors="replace").strip()
            return cls(reason=_reason_from_text(text))


@attrs.frozen(kw_only=True)
class StreamStopResponse:
    """``200`` body of ``POST /stream/stop``, even when nothing ran: ``{"status":"stopped"}``."""

    def to_wire(self) -> dict[str, Any]:
        return {"status": "stopped"}

    @classmethod
    def from_wire(cls, obj: object) -> StreamStopResponse:
        if expect_object(obj, "stop response").get("status") != "stopped":
            raise InvalidMessage("stop response: status must be 'stopped'")
        return cls()


# -- GET /stream/status ----------------------------------------------------------

_FPS_KEYS = ("ingress_video_fps", "ingress_audio_fps", "egress_video_fps", "egress_audio_fps")


@attrs.frozen(kw_only=True)
class StreamFps:
    """Windowed frame rates with pytrickle's FPSMeter key names (RUN-070)."""

    ingress_video_fps: float = attrs.field(default=0.0, validator=_rate)
    ingress_audio_fps: float = attrs.field(default=0.0, validator=_rate)
    egress_video_fps: float = attrs.field(default=0.0, validator=_rate)
    egress_audio_fps: float = attrs.field(default=0.0, validator=_rate)

    def to_wire(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _FPS_KEYS}

    @classmethod
    def from_wire(cls, obj: object) -> StreamFps:
        body = expect_object(obj, "fps")
        return cls(
            ingress_video_fps=_get_rate(body, "ingress_video_fps", "fps"),
            ingress_audio_fps=_get_rate(body, "ingress_audio_fps", "fps"),
            egress_video_fps=_get_rate(body, "egress_video_fps", "fps"),
            egress_audio_fps=_get_rate(body, "egress_audio_fps", "fps"),
        )


@attrs.frozen(kw_only=True)
class SessionStatus:
    """One active live session as ``GET /stream/status`` lists it."""

    gateway_request_id: str = attrs.field(validator=_text(MAX_ID_LENGTH))
    state: SessionState = attrs.field(validator=instance_of(SessionState))
    started_at_ms: int = attrs.field(validator=_count)
    params: dict[str, Any] | None = attrs.field(default=None, validator=_optional_object)
    fps: StreamFps = attrs.field(factory=StreamFps)
    frames_in: int = attrs.field(default=0, validator=_count)
    frames_out: int = attrs.field(default=0, validator=_count)
    frames_dropped: int = attrs.field(default=0, validator=_count)

    def to_wire(self) -> dict[str, Any]:
        return {
            "gateway_request_id": self.gateway_request_id,
            "state": self.state.value,
            "started_at_ms": self.started_at_ms,
            "params": self.params,
            "fps": self.fps.to_wire(),
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_dropped": self.frames_dropped,
        }

    @classmethod
    def from_wire(cls, obj: object) -> SessionStatus:
        what = "session status"
        body = expect_object(obj, what)
        state = get_str(body, "state", what)
        try:
            parsed_state = SessionState(state)
        except ValueError:
            raise InvalidMessage(f"{what}: unknown state {state!r}") from None
        if "started_at_ms" not in body:
            raise InvalidMessage(f"{what}: missing required field 'started_at_ms'")
        return cls(
            gateway_request_id=get_str(body, "gateway_request_id", what),
            state=parsed_state,
            started_at_ms=_get_count(body, "started_at_ms", what),
            params=_get_json_object(body, "params", what),
            fps=StreamFps.from_wire(body.get("fps", {})),
            frames_in=_get_count(body, "frames_in", what),
            frames_out=_get_count(body, "frames_out", what),
            frames_dropped=_get_count(body, "frames_dropped", what),
        )


def _capacity(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidMessage(f"{attribute.name}: must be an integer >= 1")


def _sessions_fit(inst: StreamStatusResponse, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(s, SessionStatus) for s in value):
        raise InvalidMessage(f"{attribute.name}: must be a tuple of SessionStatus")
    if len(value) > inst.capacity:
        raise InvalidMessage(f"{attribute.name}: more sessions than capacity")
    ids = [s.gateway_request_id for s in value]
    if len(set(ids)) != len(ids):
        raise InvalidMessage(f"{attribute.name}: duplicate gateway_request_id")


@attrs.frozen(kw_only=True)
class StreamStatusResponse:
    """``GET /stream/status`` body (RUN-069): health, capacity, active sessions, last failure."""

    status: HealthStatus = attrs.field(validator=instance_of(HealthStatus))
    capacity: int = attrs.field(default=1, validator=_capacity)
    sessions: tuple[SessionStatus, ...] = attrs.field(default=(), validator=_sessions_fit)
    last_error: str | None = attrs.field(
        default=None, validator=optional(_text(MAX_ERROR_MESSAGE_LENGTH))
    )

    def to_wire(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "capacity": self.capacity,
            "sessions": [s.to_wire() for s in self.sessions],
            "last_error": self.last_error,
        }

    @classmethod
    def from_wire(cls, obj: object) -> StreamStatusResponse:
        what = "stream status"
        body = expect_object(obj, what)
        health = HealthResponse.from_wire({"status": body.get("status")}).status
        capacity = body.get("capacity", 1)
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise InvalidMessage(f"{what}: field 'capacity' must be an integer")
        sessions = body.get("sessions", [])
        if not isinstance(sessions, list):
            raise InvalidMessage(f"{what}: field 'sessions' must be an array")
        return cls(
            status=health,
            capacity=capacity,
            sessions=tuple(SessionStatus.from_wire(s) for s in sessions),
            last_error=get_str(body, "last_error", what, default=None),
        )
