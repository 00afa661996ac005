"""A live-runner session's trickle channels, made through the orchestrator's callbacks.

A client starts a stream on a reserved session by posting ``{app_url}/stream/start``
through the orchestrator's session proxy (LR-107), with no channel URLs. The proxy
adds the session headers (LR-108); the runner creates the session's channels with
``POST {Livepeer-Session-Control}/channels`` and the session token (LR-112, LR-114),
runs the stream on each channel's ``internal_url`` and gives the client the
channels' public ``url`` (LR-119, LR-120).

Every callback is bounded in time and in the size of its answer, and the answer
is read through the wire classes. A stream that does not start after its
channels were made deletes them again (``DELETE …/channels``, LR-121), so a
failed start leaves nothing on the orchestrator's trickle server.
"""

from __future__ import annotations

import logging

import httpx
import trio

from .._client.http import HTTP_FAILURES, create_http_client, read_capped
from .._errors import ProtocolError, TrickleError
from .._wire.json_codec import dump_json, parse_json
from .._wire.live_runner_channels import (
    ChannelsDeleteRequest,
    ChannelsDeleteResponse,
    ChannelSpec,
    ChannelsRequest,
    ChannelsResponse,
    ProxiedSessionHeaders,
)

__all__ = ["SESSION_CHANNELS", "SessionChannels", "proxied_session"]

log = logging.getLogger("trio_trickle.runner")

#: The session's channels, by the names the gateway client reads (``start_via_app``).
SESSION_CHANNELS = ChannelsRequest(
    channels=(
        ChannelSpec(name="in", mime_type="video/MP2T"),
        ChannelSpec(name="out", mime_type="video/MP2T"),
        ChannelSpec(name="control", mime_type="application/json"),
        ChannelSpec(name="events", mime_type="application/json"),
    )
)
#: Bound of one callback, connection to last byte of the answer.
CALLBACK_TIMEOUT = 10.0
#: Largest callback answer read (25 channels of a few URLs each fit many times over).
CALLBACK_MAX_BYTES = 256 * 1024
_TOKEN_HEADER = "Livepeer-Session-Token"
_FAILURES: tuple[type[Exception], ...] = (
    TrickleError,
    ValueError,
    trio.TooSlowError,
    *HTTP_FAILURES,
)


def origin(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an absolute http(s) URL, default ports filled in."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return None
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed.scheme, parsed.host.lower(), port


def proxied_session(headers: object) -> ProxiedSessionHeaders | None:
    """The session headers the orchestrator's proxy added (LR-108); None when absent."""
    try:
        return ProxiedSessionHeaders.from_wire(headers)
    except (TrickleError, ValueError):
        return None


class SessionChannels:
    """One session's channel callbacks: :meth:`create`, then :meth:`delete` on failure."""

    def __init__(
        self,
        session: ProxiedSessionHeaders,
        *,
        timeout: float = CALLBACK_TIMEOUT,
        max_bytes: int = CALLBACK_MAX_BYTES,
    ) -> None:
        self.session = session
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.url = session.session_control.rstrip("/") + "/channels"

    async def create(self, request: ChannelsRequest = SESSION_CHANNELS) -> ChannelsResponse:
        """``POST …/channels`` (LR-114); a failure raises ProtocolError 502."""
        try:
            status, data = await self._call("POST", request.to_wire())
            if status != 200:
                log.warning(
                    "session %s: channels callback answered %d %r",
                    self.session.session_id,
                    status,
                    _excerpt(data),
                )
                raise ProtocolError(f"session channels callback answered {status}", status=502)
            channels = ChannelsResponse.from_wire(parse_json(data, "channels answer"))
            names = {c.name for c in channels.channels}
            missing = [
                s.normalized_name for s in request.channels if s.normalized_name not in names
            ]
            if missing:
                raise ProtocolError(f"answer lacks channel(s) {missing}", status=502)
        except _FAILURES as exc:
            if isinstance(exc, ProtocolError) and exc.status == 502:
                raise  # ours, above: already says what a client may know
            # The answer names only the failure's type: the detail (URLs, peer text) is logged.
            log.warning("session %s: channels callback failed: %s", self.session.session_id, exc)
            raise ProtocolError(
                f"session channels callback failed: {type(exc).__name__}", status=502
            ) from None
        return channels

    async def delete(self, names: tuple[str, ...]) -> None:
        """``DELETE …/channels`` (LR-121), bounded and shielded; a failure is only logged."""
        with trio.CancelScope(shield=True):
            try:
                body = ChannelsDeleteRequest(channels=names).to_wire()
                status, data = await self._call("DELETE", body)
                if status != 200:
                    raise ProtocolError(f"answered {status} {_excerpt(data)!r}", status=502)
                ChannelsDeleteResponse.from_wire(parse_json(data, "channels delete answer"))
            except _FAILURES as exc:
                log.warning(
                    "session %s: deleting channels failed: %s", self.session.session_id, exc
                )

    async def _call(self, method: str, body: object) -> tuple[int, bytes]:
        headers = {_TOKEN_HEADER: self.session.session_token, "Content-Type": "application/json"}
        with trio.fail_after(self.timeout):
            async with create_http_client() as client:
                request = client.build_request(
                    method, self.url, content=dump_json(body), headers=headers, timeout=self.timeout
                )
                response = await client.send(request, stream=True)
                try:
                    data = await read_capped(response, self.max_bytes)
                finally:
                    await response.aclose()
        if data is None:
            raise ProtocolError(f"answer larger than {self.max_bytes} bytes", status=502)
        return response.status_code, data


def _excerpt(data: bytes) -> str:
    return data[:200].decode("utf-8", "replace").strip()
