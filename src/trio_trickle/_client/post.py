"""One publisher segment's ``POST {ch}/{seq}``: its bounded body queue and its attempts.

Split from :mod:`._client_publisher`, which decides *which* POSTs exist (the
preconnect of the next seq, the ``-1`` rule, when to give up); this module is
how a single POST runs. The request body is read from a bounded trio memory
channel of :data:`QUEUE_CHUNKS` chunks, handed to httpx as a plain async byte
stream. A POST that fails is retried once on the same seq iff no byte of it
was handed to httpx yet: the queue still holds every byte, so the retry simply
reads it again (TRK-093).
"""

from __future__ import annotations

import logging

import httpx
import trio

from .._errors import ChannelClosed, TransportError, TrickleError
from .._wire.trickle import HEADER_RESET, SEQ_NEXT, SegmentMeta
from .http import (
    HTTP_FAILURES,
    ClientTimeouts,
    read_capped,
    response_meta,
    segment_url,
    send_request,
    transport_error,
)

__all__ = ["QUEUE_CHUNKS"]

log = logging.getLogger("trio_trickle.client.publisher")

#: Chunks a segment's send queue holds before ``write`` waits (back-pressure).
QUEUE_CHUNKS = 8

#: One attempt's result: status (None if no response), metadata, failure.
Attempt = tuple[int | None, SegmentMeta | None, TrickleError | None]


class Post:
    """One segment's POST: its queue, its task's cancel scope, and its outcome."""

    def __init__(self, channel_url: str, seq: int | None, *, reset: bool) -> None:
        #: The seq in the URL; None means ``-1`` (the server picks, TRK-089).
        self.seq = seq
        self.url = segment_url(channel_url, SEQ_NEXT if seq is None else seq)
        self.reset = reset
        self.send, self.receive = trio.open_memory_channel[bytes](QUEUE_CHUNKS)
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        #: httpx asked for the body, so the request line and headers are written.
        self.headers_sent = False
        #: Bytes handed to httpx (what "sent" means for the retry rule).
        self.bytes_sent = 0
        #: Bytes the caller wrote into the queue.
        self.bytes_queued = 0
        #: The caller ended the body (or we ended it empty).
        self.end_requested = False
        #: We cancelled it on purpose (caller error, close).
        self.aborted = False
        self.status: int | None = None
        self.meta: SegmentMeta | None = None
        #: None once done means success.
        self.error: TrickleError | None = None

    @property
    def label(self) -> str:
        return f"POST {self.url}"

    def end_body(self, timeouts: ClientTimeouts) -> None:
        """End the request body and give the server a bounded time to answer."""
        self.end_requested = True
        self.send.close()
        deadline = trio.current_time() + timeouts.connect + timeouts.headers
        self.scope.deadline = min(self.scope.deadline, deadline)

    def abort(self) -> None:
        self.aborted = True
        self.scope.cancel()


class BodyPump(httpx.AsyncByteStream):
    """The request body of one POST attempt: chunks taken from the segment's queue.

    Handed to httpx as the request's stream itself (not as ``content=``, which
    httpx would wrap in an async generator that is left suspended, and so
    garbage-collected with a ResourceWarning, whenever a POST ends early). A
    plain iterator object needs no finalizing, and a retry reads the same queue
    with a fresh pump.
    """

    def __init__(self, post: Post) -> None:
        self._post = post

    def __aiter__(self) -> BodyPump:
        # httpcore asks for the body only after writing the request line and headers.
        self._post.headers_sent = True
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._post.receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        self._post.bytes_sent += len(chunk)
        return chunk


async def run_attempts(
    client: httpx.AsyncClient,
    post: Post,
    mime_type: str,
    timeouts: ClientTimeouts,
    retry_delay: float,
) -> None:
    """Send ``post``, once more after ``retry_delay`` if nothing was sent; set its outcome."""
    for attempt in (1, 2):
        status, meta, error = await _attempt(client, post, mime_type, timeouts)
        post.status, post.meta = status, meta
        if meta is not None and meta.closed:
            post.error = ChannelClosed(f"{post.label}: the channel has ended")
            return
        if status == 404:
            post.error = ChannelClosed(f"{post.label}: the channel does not exist (404)")
            return
        if status == 200:
            if not post.end_requested:
                post.error = TransportError(
                    f"{post.label}: the server answered before the body ended"
                )
            else:
                post.error = None
            return
        post.error = error or TransportError(f"{post.label}: answered {status}")
        if attempt == 1 and post.bytes_sent == 0 and not client.is_closed:
            log.debug("%s failed before its first byte, retrying once: %s", post.label, error)
            await trio.sleep(retry_delay)
            continue
        return


async def _attempt(
    client: httpx.AsyncClient, post: Post, mime_type: str, timeouts: ClientTimeouts
) -> Attempt:
    """One try of ``post``; every failure is in the result, none is raised."""
    headers = {"Content-Type": mime_type}
    if post.reset:
        headers[HEADER_RESET] = "1"
    request = client.build_request(
        "POST", post.url, headers=headers, timeout=timeouts.for_request()
    )
    request.stream = BodyPump(post)
    request.headers.pop("Content-Length", None)
    request.headers["Transfer-Encoding"] = "chunked"
    try:
        response = await send_request(client, request, post.label)
        try:
            # Read to the end (the server's bodies are a few bytes), so the
            # connection returns to the pool; keep it only if it is small.
            body = await read_capped(response) or b""
        finally:
            await response.aclose()
    except TransportError as exc:
        return None, None, exc
    except HTTP_FAILURES as exc:
        return None, None, transport_error(exc, post.label)
    meta = response_meta(response.headers)
    error = None
    if response.status_code not in (200, 404):
        text = body[:200].decode("utf-8", "replace").strip()
        error = TransportError(f"{post.label} answered {response.status_code}: {text}")
    return response.status_code, meta, error
