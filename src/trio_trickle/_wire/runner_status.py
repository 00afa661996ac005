"""Runner HTTP API vocabulary, the reporting half: health, status, errors, SSE, headers.

What a runner *reports* (``GET /health``, ``GET /stream/status``, error bodies,
the SSE framing of a streaming ``predict``) and the header helpers every
handler shares, apart from the request bodies that *drive* it (in
:mod:`.runner`, which re-exports these names for its callers). Pure attrs
values; no I/O; decoders raise only the ``ProtocolError`` family
(spec/runner-api.md).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any

import attrs

from .._errors import InvalidMessage
from .fields import expect_object, get_object, get_str
from .json_codec import dump_json, parse_json
from .validate import fail, instance_of, int_range, json_object, optional, text, tuple_of

__all__ = [
    "HEADER_STREAM_ID",
    "SSE_DONE",
    "ErrorResponse",
    "HealthResponse",
    "HealthStatus",
    "SessionState",
    "SessionStatus",
    "StopReason",
    "StreamFps",
    "StreamStatusResponse",
    "bearer_token",
    "encode_sse_data",
    "encode_sse_error",
]

#: Sent by the orchestrator on every worker call; names the session a call targets.
HEADER_STREAM_ID = "X-Stream-Id"
#: Terminates every SSE response of a generator ``predict`` (RUN-031).
SSE_DONE = b"data: [DONE]\n\n"
MAX_ERROR_MESSAGE_LENGTH = 4096
MAX_ID_LENGTH = 256


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

    message: str = attrs.field(validator=text(MAX_ERROR_MESSAGE_LENGTH))

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


# -- SSE framing of a streaming predict ----------------------------------------------


def encode_sse_data(value: object) -> bytes:
    """One SSE event carrying ``value`` as compact JSON: ``data: <json>\\n\\n`` (RUN-030)."""
    return b"data: " + dump_json(value) + b"\n\n"


def encode_sse_error(message: str) -> bytes:
    """The event sent when a streaming ``predict`` raises mid-stream (RUN-032)."""
    return encode_sse_data({"error": message})


# -- GET /stream/status ----------------------------------------------------------

_FPS_KEYS = ("ingress_video_fps", "ingress_audio_fps", "egress_video_fps", "egress_audio_fps")


def _rate(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, float):
        raise fail(attribute, "must be a float")
    if not math.isfinite(value) or value < 0:
        raise fail(attribute, "must be finite and >= 0")


def _get_count(obj: Mapping[str, Any], key: str, what: str) -> int:
    # Absent means 0, but an explicit null is as wrong as a negative count.
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

    gateway_request_id: str = attrs.field(validator=text(MAX_ID_LENGTH))
    state: SessionState = attrs.field(validator=instance_of(SessionState))
    started_at_ms: int = attrs.field(validator=int_range(0))
    params: dict[str, Any] | None = attrs.field(default=None, validator=optional(json_object))
    fps: StreamFps = attrs.field(factory=StreamFps)
    frames_in: int = attrs.field(default=0, validator=int_range(0))
    frames_out: int = attrs.field(default=0, validator=int_range(0))
    frames_dropped: int = attrs.field(default=0, validator=int_range(0))

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
            params=get_object(body, "params", what, default=None),
            fps=StreamFps.from_wire(body.get("fps", {})),
            frames_in=_get_count(body, "frames_in", what),
            frames_out=_get_count(body, "frames_out", what),
            frames_dropped=_get_count(body, "frames_dropped", what),
        )


_session_tuple = tuple_of(SessionStatus)


def _sessions_fit(inst: StreamStatusResponse, attribute: attrs.Attribute[Any], value: Any) -> None:
    _session_tuple(inst, attribute, value)
    if len(value) > inst.capacity:
        raise fail(attribute, "more sessions than capacity")
    ids = [s.gateway_request_id for s in value]
    if len(set(ids)) != len(ids):
        raise fail(attribute, "duplicate gateway_request_id")


@attrs.frozen(kw_only=True)
class StreamStatusResponse:
    """``GET /stream/status`` body (RUN-069): health, capacity, active sessions, last failure."""

    status: HealthStatus = attrs.field(validator=instance_of(HealthStatus))
    capacity: int = attrs.field(default=1, validator=int_range(1))
    sessions: tuple[SessionStatus, ...] = attrs.field(default=(), validator=_sessions_fit)
    last_error: str | None = attrs.field(
        default=None, validator=optional(text(MAX_ERROR_MESSAGE_LENGTH))
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
