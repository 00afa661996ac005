"""Runner HTTP API vocabulary, the driving half: the request and response bodies.

The bodies that make a runner do something (``/predict``, ``/stream/start``,
``/stream/params``, ``/stream/stop``) and its answers to them. The runner app
(``Pipeline`` / ``LivePipeline``), the orchestrator side that calls it, BYOC's
worker call and the conformance suite all read and write the bodies of
spec/runner-api.md through this module, so field names, defaults and the status
of each rejection live in one place. Decoders are lenient the way the spec asks
(unknown keys kept, ``""`` URLs treated as absent, any stop body accepted) and
raise only the ``ProtocolError`` family.

The ``/stream/start`` body and its answers live in :mod:`.runner_start`; health,
status, error bodies, SSE framing and header helpers in :mod:`.runner_status`.
Both are re-exported here so that a runner-side caller imports its whole
vocabulary from one module.
"""

from __future__ import annotations

from typing import Any

import attrs

from .._errors import InvalidMessage
from .fields import expect_object
from .json_codec import is_plain_json, is_utf8_json, parse_json, without_surrogates
from .runner_start import (
    LiveVideoToVideoResponse as LiveVideoToVideoResponse,
    StreamStartRequest as StreamStartRequest,
    StreamStartResponse as StreamStartResponse,
)
from .runner_status import (
    HEADER_STREAM_ID as HEADER_STREAM_ID,
    MAX_ERROR_MESSAGE_LENGTH as MAX_ERROR_MESSAGE_LENGTH,
    SSE_DONE as SSE_DONE,
    ErrorResponse as ErrorResponse,
    HealthResponse as HealthResponse,
    HealthStatus as HealthStatus,
    SessionState as SessionState,
    SessionStatus as SessionStatus,
    StopReason as StopReason,
    StreamFps as StreamFps,
    StreamStatusResponse as StreamStatusResponse,
    bearer_token as bearer_token,
    encode_sse_data as encode_sse_data,
    encode_sse_error as encode_sse_error,
)
from .validate import fail, json_object, text, utf8_json, utf8_json_object

__all__ = [
    "MAX_STOP_REASON_LENGTH",
    "PredictRequest",
    "StreamParamsRequest",
    "StreamParamsResponse",
    "StreamStopRequest",
    "StreamStopResponse",
]

MAX_STOP_REASON_LENGTH = 1024
_NOT_UNICODE = "text that is not valid Unicode (a lone surrogate escape)"


def _decode(data: bytes | str, what: str, *, status: int | None = None) -> object:
    try:
        return parse_json(data, what)
    except InvalidMessage as exc:
        if status is None:
            raise
        raise InvalidMessage(exc.message, status=status) from None


# -- request/response Pipeline --------------------------------------------------


@attrs.frozen(kw_only=True)
class PredictRequest:
    """``POST /predict`` body: the keyword arguments for ``predict`` (RUN-020).

    Only the JSON shape is checked here (status 422, RUN-021); matching the
    arguments against ``predict``'s signature is the runner's job.
    """

    arguments: dict[str, Any] = attrs.field(factory=dict, validator=json_object)

    def to_wire(self) -> dict[str, Any]:
        return dict(self.arguments)

    @classmethod
    def from_wire(cls, obj: object) -> PredictRequest:
        if not isinstance(obj, dict) or not is_plain_json(obj):
            raise InvalidMessage("predict body: expected a JSON object", status=422)
        return cls(arguments=dict(obj))

    def require_unicode(self) -> None:
        """Raise 422 if any text in the body is not valid Unicode (RUN-122).

        Apart from decoding, so that a runner first matches the members against
        ``predict`` (an unknown member's 400 names it, RUN-024), then refuses.
        """
        if not is_utf8_json(self.arguments):
            raise InvalidMessage(f"predict body: {_NOT_UNICODE}", status=422)

    @classmethod
    def from_bytes(cls, data: bytes) -> PredictRequest:
        if not data.strip():
            return cls()
        return cls.from_wire(_decode(data, "predict body", status=422))


# -- LivePipeline control API ----------------------------------------------------


@attrs.frozen(kw_only=True)
class StreamParamsRequest:
    """A params update: the body of ``POST /stream/params`` or one control-channel message.

    The whole JSON object is the update (a flat dict of pipeline params).
    ``{"keep":"alive"}`` on the control channel is a keepalive, not an update.
    """

    params: dict[str, Any] = attrs.field(validator=utf8_json_object)

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
        if not is_utf8_json(obj):
            raise InvalidMessage(f"params update: {_NOT_UNICODE}")
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


def _reason_from_text(value: str) -> str | None:
    # A stop is never refused (RUN-064): text UTF-8 cannot carry is replaced, the
    # way RUN-065 replaces invalid bytes, instead of failing the stop (RUN-122).
    value = without_surrogates(value[:MAX_STOP_REASON_LENGTH])
    return value if value.strip() else None


_reason_text = text(MAX_STOP_REASON_LENGTH)


def _stop_reason(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    _reason_text(inst, attribute, value)
    utf8_json(inst, attribute, value)
    assert isinstance(value, str)
    if not value.strip():
        raise fail(attribute, "must not be blank")


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
            decoded = data.decode("utf-8", errors="replace").strip()
            return cls(reason=_reason_from_text(decoded))


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
