"""Wire messages of a live-runner session's callbacks and the O2R channel (spec/live-runner.md).

What a runner and the orchestrator say to each other once a session exists:
the headers the orchestrator adds to every proxied request, the runner's
``…/proxy`` and ``…/channels`` callbacks, and the orchestrator-to-runner (O2R)
trickle messages (keepalives and session reserved/released events). Channel
names follow go-livepeer's normalisation in one place,
:func:`normalize_channel_name`.

Pure encode/decode, no I/O; ``from_wire`` raises only the ProtocolError family.
Timestamps travel as RFC 3339 and are aware UTC datetimes here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import attrs

from .._errors import InvalidMessage
from .fields import as_str, expect_object, get_int, get_list, get_object, get_str, header_map
from .go import INT64_MAX, aware_utc, format_rfc3339, parse_rfc3339, to_utc
from .live_runner import RunnerChannel
from .validate import fail, is_http_url, non_empty, one_of, optional, tuple_of

__all__ = [
    "MAX_CHANNELS_PER_REQUEST",
    "RELEASE_REASON_HEADER",
    "ChannelSpec",
    "ChannelsDeleteRequest",
    "ChannelsDeleteResponse",
    "ChannelsRequest",
    "ChannelsResponse",
    "O2RKeepalive",
    "O2RSessionEvent",
    "ProxiedSessionHeaders",
    "ProxyRequest",
    "ProxyResponse",
    "SessionReleasedEvent",
    "normalize_channel_name",
    "parse_o2r_message",
]

MAX_CHANNELS_PER_REQUEST = 25
#: The header that carries a release reason on a stop answer or a 404 (LR-145, LR-146).
RELEASE_REASON_HEADER = "Livepeer-Session-Release-Reason"
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9_-]+")

# -- proxy --------------------------------------------------------------------

_PROXY_HEADERS = (
    ("route", "Livepeer-Runner-Route"),
    ("session_id", "Livepeer-Session-Id"),
    ("session_token", "Livepeer-Session-Token"),
    ("session_control", "Livepeer-Session-Control"),
)


@attrs.frozen(kw_only=True)
class ProxiedSessionHeaders:
    """Headers the orchestrator adds to every request it proxies to a runner.

    ``session_control`` is the base of the runner callbacks
    (``{runner address}/runner/{route}/session/{session_id}``) and
    ``session_token`` authorises them.
    """

    route: str = attrs.field(validator=non_empty)
    session_id: str = attrs.field(validator=non_empty)
    session_token: str = attrs.field(validator=non_empty)
    session_control: str = attrs.field(validator=non_empty)

    def to_wire(self) -> dict[str, str]:
        return {header: getattr(self, attr) for attr, header in _PROXY_HEADERS}

    @classmethod
    def from_wire(cls, headers: object) -> ProxiedSessionHeaders:
        lowered = header_map(headers, "proxied session headers")
        values: dict[str, str] = {}
        for attr, header in _PROXY_HEADERS:
            found = lowered.get(header.lower())
            if not found:
                raise InvalidMessage(f"proxied session headers: {header} is required")
            values[attr] = found
        return cls(
            route=values["route"],
            session_id=values["session_id"],
            session_token=values["session_token"],
            session_control=values["session_control"],
        )


def _target_url(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not is_http_url(value) or "#" in str(value):
        raise fail(attribute, "must be an absolute http(s) URL without a fragment")


@attrs.frozen(kw_only=True)
class ProxyRequest:
    """Body of the runner's ``POST …/proxy``; no target means the runner URL."""

    target_url: str | None = attrs.field(default=None, validator=_target_url)

    def to_wire(self) -> dict[str, Any]:
        return {} if self.target_url is None else {"target_url": self.target_url}

    @classmethod
    def from_wire(cls, value: object) -> ProxyRequest:
        obj = expect_object(value, "proxy request")
        target = get_str(obj, "target_url", "proxy request", default="").strip()
        return cls(target_url=target or None)


@attrs.frozen(kw_only=True)
class ProxyResponse:
    """The 200 answer to ``POST …/proxy``."""

    proxy_id: str = attrs.field(validator=non_empty)
    url: str = attrs.field(validator=non_empty)

    def to_wire(self) -> dict[str, Any]:
        return {"proxy_id": self.proxy_id, "url": self.url}

    @classmethod
    def from_wire(cls, value: object) -> ProxyResponse:
        obj = expect_object(value, "proxy response")
        return cls(
            proxy_id=get_str(obj, "proxy_id", "proxy response"),
            url=get_str(obj, "url", "proxy response"),
        )


# -- session channels ---------------------------------------------------------


def normalize_channel_name(name: object) -> str:
    """Trim, turn ``/`` into ``-``, and require ``^[A-Za-z0-9_-]+$`` (else 400)."""
    if not isinstance(name, str):
        raise InvalidMessage("trickle channel name must be a string")
    normal = name.strip().replace("/", "-")
    if not normal:
        raise InvalidMessage("trickle channel name is required")
    if not _CHANNEL_NAME.fullmatch(normal):
        raise InvalidMessage(
            "trickle channel name may only contain alphanumerics, underscores, or hyphens"
        )
    return normal


def _channel_name(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    normalize_channel_name(value)


def _mime(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise fail(attribute, "must be a non-blank string or None")


@attrs.frozen(kw_only=True)
class ChannelSpec:
    """One requested session channel. ``name`` is kept as sent; the channel is
    created under :attr:`normalized_name`."""

    name: str = attrs.field(validator=_channel_name)
    mime_type: str | None = attrs.field(default=None, validator=_mime)

    @property
    def normalized_name(self) -> str:
        return normalize_channel_name(self.name)

    @property
    def effective_mime_type(self) -> str:
        return self.mime_type or "application/octet-stream"

    def channel_name(self, session_id: str) -> str:
        return f"{session_id}-{self.normalized_name}"

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.mime_type is not None:
            out["mime_type"] = self.mime_type
        return out

    @classmethod
    def from_wire(cls, value: object) -> ChannelSpec:
        obj = expect_object(value, "channel")
        mime = get_str(obj, "mime_type", "channel", default="")
        return cls(name=get_str(obj, "name", "channel"), mime_type=mime if mime.strip() else None)


@attrs.frozen(kw_only=True)
class ChannelsRequest:
    """Body of ``POST /runner/{id}/session/{sid}/channels``: 1 to 25 channels."""

    channels: tuple[ChannelSpec, ...] = attrs.field(
        validator=tuple_of(ChannelSpec, 1, MAX_CHANNELS_PER_REQUEST)
    )

    def to_wire(self) -> dict[str, Any]:
        return {"channels": [c.to_wire() for c in self.channels]}

    @classmethod
    def from_wire(cls, value: object) -> ChannelsRequest:
        obj = expect_object(value, "channels request")
        raw = get_list(obj, "channels", "channels request", lambda v, _w: v, default=())
        if not 1 <= len(raw) <= MAX_CHANNELS_PER_REQUEST:
            raise InvalidMessage(f"channels must hold 1 to {MAX_CHANNELS_PER_REQUEST} entries")
        return cls(channels=tuple(ChannelSpec.from_wire(v) for v in raw))


@attrs.frozen(kw_only=True)
class ChannelsResponse:
    """The 200 answer to a channels request, in request order."""

    channels: tuple[RunnerChannel, ...] = attrs.field(validator=tuple_of(RunnerChannel))

    def to_wire(self) -> dict[str, Any]:
        return {"channels": [c.to_wire() for c in self.channels]}

    @classmethod
    def from_wire(cls, value: object) -> ChannelsResponse:
        obj = expect_object(value, "channels response")
        raw = get_list(obj, "channels", "channels response", lambda v, _w: v, default=())
        return cls(channels=tuple(RunnerChannel.from_wire(v) for v in raw))


def _channel_names(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    tuple_of(str, 1, MAX_CHANNELS_PER_REQUEST)(_inst, attribute, value)
    for name in value if isinstance(value, tuple) else ():
        normalize_channel_name(name)


@attrs.frozen(kw_only=True)
class ChannelsDeleteRequest:
    """Body of ``DELETE /runner/{id}/session/{sid}/channels``: 1 to 25 names."""

    channels: tuple[str, ...] = attrs.field(validator=_channel_names)

    def to_wire(self) -> dict[str, Any]:
        return {"channels": list(self.channels)}

    @classmethod
    def from_wire(cls, value: object) -> ChannelsDeleteRequest:
        obj = expect_object(value, "channels delete")
        names = get_list(obj, "channels", "channels delete", as_str, default=())
        if not 1 <= len(names) <= MAX_CHANNELS_PER_REQUEST:
            raise InvalidMessage(f"channels must hold 1 to {MAX_CHANNELS_PER_REQUEST} names")
        return cls(channels=names)


@attrs.frozen(kw_only=True)
class ChannelsDeleteResponse:
    """The 200 answer to a channel delete: the names as the runner sent them."""

    deleted: tuple[str, ...] = attrs.field(validator=tuple_of(str))

    def to_wire(self) -> dict[str, Any]:
        return {"deleted": list(self.deleted)}

    @classmethod
    def from_wire(cls, value: object) -> ChannelsDeleteResponse:
        obj = expect_object(value, "channels delete response")
        return cls(deleted=get_list(obj, "deleted", "channels delete response", as_str))


# -- O2R messages -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class O2RKeepalive:
    """``{"keep":"alive"}``, written every 10 s on the O2R channel."""

    def to_wire(self) -> dict[str, Any]:
        return {"keep": "alive"}

    @classmethod
    def from_wire(cls, value: object) -> O2RKeepalive:
        obj = expect_object(value, "o2r keepalive")
        if obj.get("keep") != "alive":
            raise InvalidMessage('o2r keepalive: expected {"keep":"alive"}')
        return cls()


@attrs.frozen(kw_only=True)
class O2RSessionEvent:
    """``{"event":"reserved"|"released","session":…,"timestamp":RFC 3339[,"reason":…]}``.

    ``reason`` is why a ``released`` session ended (LR-142); it is optional on
    the wire, so a runner reads events with or without it. Go writes
    nanoseconds; Python keeps microseconds, so extra digits are cut.
    """

    event: str = attrs.field(validator=one_of("reserved", "released"))
    session: str = attrs.field(validator=non_empty)
    timestamp: datetime = attrs.field(converter=to_utc, validator=aware_utc)
    reason: str | None = attrs.field(default=None, validator=optional(non_empty))

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event": self.event,
            "session": self.session,
            "timestamp": format_rfc3339(self.timestamp),
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_wire(cls, value: object) -> O2RSessionEvent:
        what = "o2r session event"
        obj = expect_object(value, what)
        return cls(
            event=get_str(obj, "event", what),
            session=get_str(obj, "session", what),
            timestamp=parse_rfc3339(get_str(obj, "timestamp", what), what),
            reason=get_str(obj, "reason", what, default="") or None,
        )


def parse_o2r_message(value: object) -> O2RKeepalive | O2RSessionEvent:
    """Decode one O2R segment; unknown shapes raise (the runner then ignores them)."""
    if isinstance(value, dict) and "event" not in value:
        return O2RKeepalive.from_wire(value)
    return O2RSessionEvent.from_wire(value)


# -- events channel -----------------------------------------------------------


def _epoch_ms(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX:
        raise fail(attribute, "must be non-negative int64 milliseconds since the epoch")


@attrs.frozen(kw_only=True)
class SessionReleasedEvent:
    """The release published on a session's ``events`` channel (LR-143).

    ``{"queue_event_type":"ai_stream_events","event":{"type":"session_released",
    "timestamp":<ms>,"session_id":…,"reason":…}}``, one segment, before the
    session's channels close; ``timestamp`` is milliseconds since the epoch.
    """

    session_id: str = attrs.field(validator=non_empty)
    reason: str = attrs.field(validator=non_empty)
    timestamp: int = attrs.field(validator=_epoch_ms)

    def to_wire(self) -> dict[str, Any]:
        event = {
            "type": "session_released",
            "timestamp": self.timestamp,
            "session_id": self.session_id,
            "reason": self.reason,
        }
        return {"queue_event_type": "ai_stream_events", "event": event}

    @classmethod
    def from_wire(cls, value: object) -> SessionReleasedEvent:
        what = "session released event"
        obj = expect_object(value, what)
        if obj.get("queue_event_type") != "ai_stream_events":
            raise InvalidMessage(f"{what}: queue_event_type must be ai_stream_events")
        event = get_object(obj, "event", what)
        if event.get("type") != "session_released":
            raise InvalidMessage(f"{what}: event type must be session_released")
        return cls(
            session_id=get_str(event, "session_id", what),
            reason=get_str(event, "reason", what),
            timestamp=get_int(event, "timestamp", what),
        )
