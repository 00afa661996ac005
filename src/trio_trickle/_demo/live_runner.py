"""The runner's side of a live-runner stream start, for the demo's runner.

A client starts a stream on a reserved session by posting
``{app_url}/stream/start`` with ``{"gateway_request_id", "params"}`` through
the orchestrator's session proxy (LR-107). The runner then creates the
session's channels with the ``…/channels`` callback (LR-114), authorised by
the session headers the proxy added (LR-108), starts the stream on the
channels' internal URLs, and answers with the channels (LR-119, LR-120).

``open_runner``'s ``/stream/start`` takes channel URLs (the BYOC shape), so
:class:`LiveRunnerApp` does that step in front of it: a proxied start without
channel URLs is completed here; any other request passes unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from .._client.http import HTTP_FAILURES, create_http_client
from .._errors import TrickleError
from .._runner.app import ASGIReceive, ASGIScope, ASGISend, RunnerApp
from .._wire.live_runner_channels import ChannelsResponse, ProxiedSessionHeaders

__all__ = ["SESSION_CHANNELS", "LiveRunnerApp"]

#: The session's channels, by the names the gateway client reads (``start_via_app``).
SESSION_CHANNELS = (
    ("in", "video/MP2T"),
    ("out", "video/MP2T"),
    ("control", "application/json"),
    ("events", "application/json"),
)
_MAX_BODY = 1024 * 1024
#: What a failed channels callback raises: the start is answered 502.
_CALLBACK_FAILURES: tuple[type[Exception], ...] = (TrickleError, ValueError, *HTTP_FAILURES)


class LiveRunnerApp(RunnerApp):
    """A :class:`RunnerApp` whose proxied ``/stream/start`` creates the session's channels."""

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if not (
            scope.get("type") == "http"
            and scope.get("method") == "POST"
            and scope.get("path") == "/stream/start"
        ):
            await super().__call__(scope, receive, send)
            return
        headers = {
            bytes(k).decode("latin-1"): bytes(v).decode("latin-1")
            for k, v in scope.get("headers", [])
        }
        try:
            proxied = ProxiedSessionHeaders.from_wire(headers)
        except TrickleError:  # not through the session proxy: the plain runner route
            await super().__call__(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        if not isinstance(request, dict):
            await _answer(send, 400, {"error": "stream start: a JSON object is required"})
            return
        if request.get("subscribe_url") or request.get("publish_url"):
            await self._inner(scope, receive, send, body)  # already has its channels
            return
        try:
            channels = await _create_channels(proxied)
        except _CALLBACK_FAILURES as exc:
            await _answer(send, 502, {"error": f"channels callback failed: {exc}"})
            return
        by_name = {c.name: c for c in channels.channels}

        def internal(name: str) -> str | None:
            channel = by_name.get(name)
            return None if channel is None else (channel.internal_url or channel.url)

        started = {
            "gateway_request_id": request.get("gateway_request_id") or proxied.session_id,
            "subscribe_url": internal("in"),
            "publish_url": internal("out"),
            "control_url": internal("control"),
            "events_url": internal("events"),
            "params": request.get("params") or {},
        }
        status, answer = await self._capture(scope, receive, json.dumps(started).encode())
        if status != 200:
            await _answer_bytes(send, status, answer)
            return
        await _answer(send, 200, channels.to_wire())

    async def _inner(
        self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend, body: bytes
    ) -> None:
        await super().__call__(_with_length(scope, body), _replay(body, receive), send)

    async def _capture(
        self, scope: ASGIScope, receive: ASGIReceive, body: bytes
    ) -> tuple[int, bytes]:
        status = 500
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        await super().__call__(_with_length(scope, body), _replay(body, receive), capture)
        return status, b"".join(chunks)


async def _create_channels(proxied: ProxiedSessionHeaders) -> ChannelsResponse:
    """The ``…/channels`` callback (LR-114) with the proxied session token (LR-108)."""
    async with create_http_client() as client:
        response = await client.post(
            proxied.session_control.rstrip("/") + "/channels",
            json={"channels": [{"name": n, "mime_type": m} for n, m in SESSION_CHANNELS]},
            headers={"Livepeer-Session-Token": proxied.session_token},
            timeout=10.0,
        )
    if response.status_code != 200:
        text = response.text[:200]
        raise TrickleError(f"channels callback answered {response.status_code} {text!r}")
    return ChannelsResponse.from_wire(response.json())


async def _read_body(receive: ASGIReceive) -> bytes | None:
    """The request body (capped); None when the client went away first."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > _MAX_BODY:
            return None
        if not message.get("more_body"):
            return bytes(body)


def _replay(body: bytes, receive: ASGIReceive) -> ASGIReceive:
    """A receive that hands out ``body`` once, then waits on the client (its disconnect)."""
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_length(scope: ASGIScope, body: bytes) -> ASGIScope:
    headers = [(k, v) for k, v in scope.get("headers", []) if bytes(k).lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    return {**scope, "headers": headers}


async def _answer(send: ASGISend, status: int, payload: dict[str, Any]) -> None:
    await _answer_bytes(send, status, json.dumps(payload).encode())


async def _answer_bytes(send: ASGISend, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
