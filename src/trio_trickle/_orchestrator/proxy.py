"""The session reverse proxy: ``ANY /apps/{route}/session/{sid}/app/{path…}`` (LR-107 to LR-110).

Both bodies stream: the client's request body is handed to httpx as it
arrives, the runner's response body is sent on chunk by chunk, undecoded
(``aiter_raw``: ``Content-Encoding`` and ``Content-Length`` stay true). The
method, query string and end-to-end headers pass unchanged; hop-by-hop headers
and any ``Livepeer-Session-*``/``Livepeer-Runner-Route`` a client sent are
dropped, then the orchestrator's own (LR-108) are added; ``Host`` becomes the
runner's, as httpx sets it from the URL.

Waits and their bounds: connecting to the runner is bounded by
``proxy_connect_timeout`` (502, LR-110) and its response head by
``proxy_head_timeout`` (504); the body, which may stream for as long as the
session lives, is owned by the client: its disconnect cancels the exchange.
The session counts as active while the request is open (LR-135).

WebSocket upgrades are not proxied: the orchestrator's listener answers them
before routing (see spec/live-runner.md, LR-107 note).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from urllib.parse import quote

import httpx
import trio

from .._client.http import BodyReader
from .._errors import TransportError
from .._registry.activity import ProxyTarget
from .._registry.registry import LiveRunnerRegistry
from .http import Receive, Scope, Send, answer_text

__all__: list[str] = []

log = logging.getLogger("trio_trickle.orchestrator.proxy")

#: Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus Host.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
_OURS = frozenset(
    {
        "livepeer-runner-route",
        "livepeer-session-id",
        "livepeer-session-token",
        "livepeer-session-control",
    }
)


def target_url(target: ProxyTarget, query: bytes) -> str:
    """``{runner_url}/{path…}`` with the query string unchanged."""
    path = "/".join(quote(part, safe="!$&'()*+,;=:@-._~") for part in target.app_path.split("/"))
    url = target.target_url.rstrip("/") + "/" + path
    if query:
        url += "?" + query.decode("latin-1")
    return url


def request_headers(scope: Scope, target: ProxyTarget) -> list[tuple[str, str]]:
    """End-to-end client headers, then the orchestrator's session headers (LR-108)."""
    out: list[tuple[str, str]] = []
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        if name in _HOP_BY_HOP or name in _OURS:
            continue
        out.append((name, raw_value.decode("latin-1")))
    out.extend(target.headers.to_wire().items())
    return out


def response_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [
        (name, value)
        for name, value in response.headers.raw
        if name.decode("latin-1").lower() not in _HOP_BY_HOP
    ]


async def forward(
    client: httpx.AsyncClient,
    registry: LiveRunnerRegistry,
    target: ProxyTarget,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    head_timeout: float,
) -> None:
    """Proxy one request to ``target``; answers 502/504 itself when the runner fails."""
    ticket = registry.request_opened(target.route, target.session_id, trio.current_time())
    body_done = trio.Event()
    try:
        async with trio.open_nursery() as nursery:

            async def body() -> AsyncGenerator[bytes, None]:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        nursery.cancel_scope.cancel()
                        return
                    chunk = message.get("body", b"")
                    if chunk:
                        yield chunk
                    if not message.get("more_body", False):
                        body_done.set()
                        return

            async def watch_disconnect() -> None:
                await body_done.wait()
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_disconnect)
            async with contextlib.aclosing(body()) as content:
                await _exchange(client, target, scope, content, send, head_timeout)
            nursery.cancel_scope.cancel()
    finally:
        if ticket is not None:
            registry.request_closed(ticket, trio.current_time())


async def _exchange(
    client: httpx.AsyncClient,
    target: ProxyTarget,
    scope: Scope,
    body: AsyncIterator[bytes],
    send: Send,
    head_timeout: float,
) -> None:
    request = client.build_request(
        scope["method"],
        target_url(target, scope.get("query_string", b"")),
        headers=request_headers(scope, target),
        content=body,
    )
    try:
        with trio.fail_after(head_timeout):
            response = await client.send(request, stream=True)
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        log.info("proxy to %s failed: %s", target.route, type(exc).__name__)
        await answer_text(send, 502, "live runner unreachable")
        return
    except trio.TooSlowError:
        await answer_text(send, 504, "live runner did not answer in time")
        return
    reader = BodyReader(response)
    try:
        head = {"type": "http.response.start", "status": response.status_code}
        await send({**head, "headers": response_headers(response)})
        while True:
            try:
                chunk = await reader.next_chunk()
            except TransportError as exc:
                # The head is gone: leaving the body unfinished makes the server close
                # the connection, which is how the client learns it was cut short.
                log.info("proxied body from %s ended early: %s", target.route, exc)
                return
            if chunk is None:
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        # Closes the response and unwinds httpx's generator chain (shielded, bounded).
        await reader.aclose(1.0)
