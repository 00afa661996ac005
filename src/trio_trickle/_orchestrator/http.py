"""Reading a control request and writing its answer, in plain ASGI.

Bodies are bounded before they are buffered: a declared length over the limit
is refused with 413 before a byte is read, a body without one stops being read
at the limit, and the whole body must arrive within ``body_timeout`` (408).
Answers are Go-style plain text (``<message>\\n``) unless the registry asks for
JSON (LR-074, LR-105); no exception text ever reaches a body.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import trio

from .._errors import PayloadTooLarge, ProtocolError
from .._registry.errors import RegistryError
from .._wire.json_codec import dump_json, parse_json
from .._wire.live_runner_channels import RELEASE_REASON_HEADER

__all__: list[str] = []

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

_TEXT = (b"content-type", b"text/plain; charset=utf-8")
_NOSNIFF = (b"x-content-type-options", b"nosniff")


class RequestTimeout(ProtocolError):
    default_status = 408


def path_segments(scope: Scope) -> list[str] | None:
    """The path split on ``/`` and each segment decoded on its own; None if one holds ``/``."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    parts = [urllib.parse.unquote(p) for p in path.split("/")[1:]]
    if any("/" in p for p in parts):
        return None
    return parts


def header(scope: Scope, name: str) -> str:
    """The last value of header ``name`` (lower case), or ``""``."""
    wanted = name.lower().encode("latin-1")
    value = b""
    for key, val in scope["headers"]:
        if key.lower() == wanted:
            value = val
    return str(value.decode("latin-1"))


def header_dict(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name (last value wins)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def read_body(scope: Scope, receive: Receive, limit: int, within: float) -> bytes:
    """The request body: 413 past ``limit`` bytes, 408 when it takes over ``within`` s."""
    too_large = f"request body larger than {limit} bytes"
    length = header(scope, "content-length")
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(too_large)
    chunks: list[bytes] = []
    size = 0
    with trio.move_on_after(within) as waited:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ProtocolError("client went away", status=499)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(too_large)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    if waited.cancelled_caught:
        raise RequestTimeout("request body not received in time")
    return b"".join(chunks)


async def read_json(scope: Scope, receive: Receive, limit: int, within: float, what: str) -> object:
    """The body decoded as JSON (400 when it is not)."""
    return parse_json(await read_body(scope, receive, limit, within), what)


async def answer(
    send: Send, status: int, body: bytes = b"", headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    head = list(headers)
    if status != 204:
        head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def answer_json(send: Send, body: object, status: int = 200) -> None:
    await answer(send, status, dump_json(body), [(b"content-type", b"application/json")])


async def answer_text(
    send: Send, status: int, message: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    text = message.encode("utf-8", "backslashreplace") + b"\n"
    await answer(send, status, text, [_TEXT, _NOSNIFF, *headers])


async def answer_error(send: Send, error: ProtocolError) -> None:
    """A refusal: its status and text, JSON when the registry asks, with the release reason."""
    extra: list[tuple[bytes, bytes]] = []
    if isinstance(error, RegistryError):
        if error.release_reason is not None:
            value = str(error.release_reason).encode()
            extra.append((RELEASE_REASON_HEADER.lower().encode(), value))
        if error.json_body:
            body = dump_json({"error": {"message": error.message}})
            head = [(b"content-type", b"application/json"), *extra]
            await answer(send, error.status, body, head)
            return
    await answer_text(send, error.status, error.message, extra)
