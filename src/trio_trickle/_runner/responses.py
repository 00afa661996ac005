"""What every runner route shares: JSON answers, the error body, bounded request bodies.

Kept apart from the routes so that a status, a body limit or an error's wording
is decided in one place for ``/predict``, ``/stream/*`` and the error handlers.

Request bodies are bounded before they are buffered (RUN-127): a declared
length over the limit is refused before anything is read, and a body sent
without one is cut off by Quart at the app's ``MAX_CONTENT_LENGTH``.
"""

from __future__ import annotations

from quart import Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from .._errors import PayloadTooLarge
from .._wire.json_codec import dump_json
from .._wire.runner import HEADER_STREAM_ID, ErrorResponse
from .._wire.runner_status import MAX_ERROR_MESSAGE_LENGTH

__all__: list[str] = []


def json_response(body: object, status: int = 200) -> Response:
    """Compact UTF-8 JSON with ``Content-Type: application/json`` (RUN-001)."""
    return Response(dump_json(body), status=status, content_type="application/json")


def error_response(status: int, message: str) -> Response:
    """The RUN-002 error body; the message is never empty and never huge."""
    text = (message or "error")[:MAX_ERROR_MESSAGE_LENGTH]
    # Member names echoed from a request may hold lone surrogates ("\ud800" in JSON),
    # which UTF-8 cannot carry; escape them rather than fail while reporting a failure.
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return json_response(ErrorResponse(message=text).to_wire(), status)


def failure_text(what: str, exc: BaseException) -> str:
    """A hook failure as callers see it: the exception type, never its text (RUN-026/027)."""
    return f"{what}: {type(exc).__name__}"


async def read_body(limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (RUN-127)."""
    too_large = f"request body larger than {limit} bytes"
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(too_large)
    try:
        data = await request.get_data(as_text=False)
    except RequestEntityTooLarge:
        raise PayloadTooLarge(too_large) from None
    data = data if isinstance(data, bytes) else data.encode()
    if len(data) > limit:
        raise PayloadTooLarge(too_large)
    return data


def stream_id() -> str | None:
    """``X-Stream-Id``: the session a call targets (RUN-058); None when absent or blank."""
    value = request.headers.get(HEADER_STREAM_ID, "").strip()
    return value or None
