"""The trickle server's side of ASGI: reading request headers, writing the core's answers.

The sans-io core decides every status, header and body as an ``Answer``; this
module is the one place that turns an ``Answer`` (or a refusal) into ASGI
messages, so the exact bytes the spec asks for are written the same way by
every route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .._core.channel import Answer
from .._core.server import MethodNotAllowed
from .._errors import ProtocolError, SegmentGone
from .._wire.trickle import HEADER_LATEST, HEADER_SEQ

__all__: list[str] = []

ASGIScope = dict[str, Any]
ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]
ASGISend = Callable[[dict[str, Any]], Awaitable[None]]


def headers_of(scope: ASGIScope) -> dict[str, str]:
    """Request headers as a str dict (lower-case names; last value wins)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def send_answer(send: ASGISend, answer: Answer, *, head_only: bool = False) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    if not answer.streaming:
        headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    if not answer.streaming:
        await send({"type": "http.response.body", "body": b"" if head_only else answer.body})


def error_answer(error: ProtocolError) -> Answer:
    """The answer for a refused request: Go-style ``<message>\\n`` plain text."""
    headers: list[tuple[str, str]] = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    if isinstance(error, SegmentGone):
        headers += [(HEADER_LATEST, str(error.latest)), (HEADER_SEQ, error.requested)]
    if isinstance(error, MethodNotAllowed):
        headers.append(("Allow", error.allow))
    if error.status == 404:
        headers.append(("Connection", "close"))
    return Answer(status=error.status, headers=tuple(headers), body=f"{error.message}\n".encode())
