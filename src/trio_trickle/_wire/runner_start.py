"""The stream-start body, the one runner body that opens a session, and its two answers.

``POST /stream/start`` (and ai-runner's alias ``/live-video-to-video``) is the
body live runners and BYOC workers share and the only one that carries channel
URLs, so the channel-URL rules (RUN-047, RUN-123), the start keys and the merge
of a BYOC gateway body (BYOC-091) live here with it. Apart from :mod:`.runner`
(the predict, params and stop bodies) because it is the largest body and the one
the BYOC orchestrator builds as well as reads; :mod:`.runner` re-exports these
names, so a runner-side caller still imports its whole vocabulary from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .._errors import InvalidMessage
from .fields import expect_object, get_object, get_opt_str, get_str
from .json_codec import parse_json
from .runner_status import MAX_ID_LENGTH
from .validate import (
    channel_url,
    channel_url_problem,
    json_object_without,
    optional,
    text,
    utf8_json,
    utf8_json_object,
)

__all__ = [
    "LiveVideoToVideoResponse",
    "StreamStartRequest",
    "StreamStartResponse",
]

MAX_URL_LENGTH = 2048


#: Every URL of a start body is a plain channel URL (RUN-047, RUN-123): checked here,
#: so a URL the session's clients would refuse never gets as far as a session. The
#: path is the runner's check (:meth:`StreamStartRequest.require_channel_paths`).
_http_url = channel_url(MAX_URL_LENGTH, need_path=False)
_id_text = text(MAX_ID_LENGTH)


def _id(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _id_text(inst, attribute, value)
    utf8_json(inst, attribute, value)


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
_extra = json_object_without(_START_KEYS)


def _start_extra(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _extra(inst, attribute, value)
    utf8_json(inst, attribute, value)


@attrs.frozen(kw_only=True)
class StreamStartRequest:
    """``POST /stream/start`` (and ``/live-video-to-video``) body, sent by the orchestrator.

    The one definition of the worker start body, for live runners and BYOC
    workers alike (RUN-039, BYOC-090). ``params`` is None when the caller sent
    none (go-livepeer sends ``null``). Media URLs are present only for the
    directions the job enabled, in any combination (BYOC-094): whether a session
    with none of them may start is the runner's policy (RUN-046,
    :meth:`require_channel`), not a property of the body. Unknown keys
    (ai-runner's ``model_id``/``manifest_id``/``stream_id``, gateway body keys the
    orchestrator merges in) are kept in ``extra`` and re-emitted.
    """

    gateway_request_id: str = attrs.field(validator=_id)
    control_url: str = attrs.field(validator=_http_url)
    events_url: str = attrs.field(validator=_http_url)
    subscribe_url: str | None = attrs.field(default=None, validator=optional(_http_url))
    publish_url: str | None = attrs.field(default=None, validator=optional(_http_url))
    data_url: str | None = attrs.field(default=None, validator=optional(_http_url))
    params: dict[str, Any] | None = attrs.field(default=None, validator=optional(utf8_json_object))
    extra: dict[str, Any] = attrs.field(factory=dict, validator=_start_extra)

    @classmethod
    def build(
        cls,
        *,
        stream_id: str,
        control_url: str,
        events_url: str,
        gateway_body: Mapping[str, Any],
        subscribe_url: str | None = None,
        publish_url: str | None = None,
        data_url: str | None = None,
    ) -> StreamStartRequest:
        """The BYOC orchestrator's worker body: a gateway start body merged under
        the orchestrator's own keys (BYOC-091).

        Go master lets the gateway's keys win; here the URLs and the request ID
        are always the orchestrator's, and ``params`` must be an object or null.
        """
        what = "gateway stream start body"
        if not isinstance(gateway_body, Mapping):
            raise InvalidMessage(f"{what}: expected a JSON object")
        params = gateway_body.get("params")
        if params is not None and not isinstance(params, dict):
            raise InvalidMessage(f"{what}: params must be an object or null")
        return cls(
            gateway_request_id=stream_id,
            control_url=control_url,
            events_url=events_url,
            subscribe_url=subscribe_url,
            publish_url=publish_url,
            data_url=data_url,
            params=None if params is None else dict(params),
            extra={k: v for k, v in gateway_body.items() if k not in _START_KEYS},
        )

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

    def require_channel(self) -> None:
        """Raise the 400 of RUN-046 when none of the media/data URLs is present.

        A runner calls this before starting a session: such a session would have
        no channel to work on. The body itself is valid (BYOC-094).
        """
        if not self.media_urls():
            raise InvalidMessage(
                "stream start: one of subscribe_url, publish_url or data_url is required"
            )

    def require_channel_paths(self) -> None:
        """Raise 400 unless every URL has a path naming its channel (RUN-123).

        A runner calls this before starting a session: its trickle clients
        address ``<url>/<seq>``, so ``http://host:port`` alone names nothing.
        """
        for name in ("control_url", "events_url", *_MEDIA_KEYS):
            value = getattr(self, name)
            if value is not None and channel_url_problem(value, MAX_URL_LENGTH) is not None:
                raise InvalidMessage(f"stream start: {name} must have a path naming the channel")

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
        control_url = get_opt_str(body, "control_url", what)
        events_url = get_opt_str(body, "events_url", what)
        if control_url is None or events_url is None:
            raise InvalidMessage(f"{what}: control_url and events_url are required")
        return cls(
            gateway_request_id=gateway_request_id,
            control_url=control_url,
            events_url=events_url,
            subscribe_url=get_opt_str(body, "subscribe_url", what),
            publish_url=get_opt_str(body, "publish_url", what),
            data_url=get_opt_str(body, "data_url", what),
            params=get_object(body, "params", what, default=None),
            extra={k: v for k, v in body.items() if k not in _START_KEYS},
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> StreamStartRequest:
        return cls.from_wire(parse_json(data, "stream start"))


@attrs.frozen(kw_only=True)
class StreamStartResponse:
    """``200`` body of ``POST /stream/start``: ``{"status":"started","gateway_request_id":..}``."""

    gateway_request_id: str = attrs.field(validator=text(MAX_ID_LENGTH))

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

    publish_url: str = attrs.field(default="", validator=text(MAX_URL_LENGTH, empty=True))
    subscribe_url: str = attrs.field(default="", validator=text(MAX_URL_LENGTH, empty=True))
    control_url: str = attrs.field(default="", validator=text(MAX_URL_LENGTH, empty=True))

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
