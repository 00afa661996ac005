"""One segment of a trickle subscription: its bytes as they arrive, resumed after a cut.

Apart from the subscriber (:mod:`.subscriber`), which decides *which* segment
to read next; this module reads one segment's body to its end.

``async for chunk in segment`` yields the body's bytes as they arrive
(TRK-101). A body silent for ``ClientTimeouts.body`` is a failure. A body cut
short is resumed by re-reading the same seq and skipping the bytes already
delivered: the server replays a segment from byte 0 (TRK-053) and its bytes
never change (TRK-025); a re-read whose headers do not come in time is one
more failure, not re-issued (the body has been silent that long already).
Failures since the caller last got new bytes are retried ``max_retries``
times ``retry_delay`` apart, then raise TransportError (TRK-107).
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Protocol

import httpx
import trio

from .._errors import ChannelClosed, IllegalTransition, PayloadTooLarge, TransportError
from .._wire.trickle import STATUS_SEGMENT_GONE
from .http import HTTP_FAILURES, BodyReader, ClientTimeouts, response_meta, segment_url

__all__ = ["SubscriberSegment"]

log = logging.getLogger("trio_trickle.client.subscriber")


async def close_response(response: httpx.Response | None, budget: float) -> None:
    """Close a response even while being cancelled (closing only drops a socket)."""
    if response is None or response.is_closed:
        return
    with trio.CancelScope(shield=True) as scope, suppress(*HTTP_FAILURES):
        scope.deadline = trio.current_time() + budget
        await response.aclose()


class Head:
    """A GET's answer whose headers arrived: a segment to stream, or end of stream."""

    def __init__(
        self,
        *,
        response: httpx.Response | None,
        seq: int,
        latest: int | None,
        eos: bool = False,
    ) -> None:
        self.response = response
        self.seq = seq
        self.latest = latest
        self.eos = eos


class SegmentSource(Protocol):
    """What a segment needs of its subscriber: settings, and a re-GET of its seq."""

    url: str
    timeouts: ClientTimeouts
    max_retries: int
    retry_delay: float

    def _client_closed(self) -> bool: ...

    async def _request_head(self, seq: int, *, reissue: bool = True) -> httpx.Response: ...


class SubscriberSegment:
    """One segment's bytes, delivered as they arrive: ``async for chunk in segment``."""

    def __init__(self, subscriber: SegmentSource, head: Head) -> None:
        assert head.response is not None
        self._subscriber = subscriber
        self._body: BodyReader | None = BodyReader(head.response)
        #: The segment's sequence number (the server's ``Lp-Trickle-Seq``).
        self.seq = head.seq
        #: ``Lp-Trickle-Latest`` of the response, when the server sent it.
        self.latest = head.latest
        #: The channel's MIME type (``Content-Type``), when the server sent it.
        self.content_type: str | None = head.response.headers.get("content-type")
        #: Bytes returned to the caller so far (a resumed body skips them).
        self._delivered = 0
        self._skip = 0
        #: Body failures since the caller last got new bytes.
        self._failures = 0
        self._complete = False
        self._closed = False
        self._where = f"GET {segment_url(subscriber.url, self.seq)}"

    @property
    def bytes_received(self) -> int:
        return self._delivered

    @property
    def complete(self) -> bool:
        """True once the whole body was read."""
        return self._complete

    def __aiter__(self) -> SubscriberSegment:
        return self

    async def __anext__(self) -> bytes:
        if self._complete:
            raise StopAsyncIteration
        if self._closed:
            raise IllegalTransition(f"{self._where}: closed before it was read to the end")
        try:
            return await self._next_chunk()
        except BaseException:
            # Cancelled, or the body is beyond repair: the connection must not linger,
            # and a later read must not mistake the cut for the end of the segment.
            if not self._complete:
                self._closed = True
            await self._release()
            raise

    async def _next_chunk(self) -> bytes:
        timeouts = self._subscriber.timeouts
        while True:
            body = self._body
            assert body is not None
            try:
                chunk: bytes | None = None
                with trio.move_on_after(timeouts.body) as idle:
                    chunk = await body.next_chunk()
                if idle.cancelled_caught:
                    raise TransportError(f"{self._where}: no bytes for {timeouts.body} s")
            except TransportError as exc:
                await self._resume(exc)
                continue
            if chunk is None:
                await self._release()
                if self._skip:
                    self._closed = True
                    raise TransportError(
                        f"{self._where}: re-read body shorter than the bytes delivered"
                    )
                self._complete = True
                raise StopAsyncIteration
            if self._skip:
                if len(chunk) <= self._skip:
                    self._skip -= len(chunk)
                    continue
                chunk, self._skip = chunk[self._skip :], 0
            if chunk:
                self._failures = 0
                self._delivered += len(chunk)
                return chunk

    async def read_all(self, limit: int | None = None) -> bytes:
        """The rest of the segment as one bytes object.

        With ``limit``, raises PayloadTooLarge (and closes the segment) as soon as
        more than ``limit`` bytes arrived, without buffering beyond it.
        """
        out = bytearray()
        async for chunk in self:
            if limit is not None and len(out) + len(chunk) > limit:
                await self.aclose()
                raise PayloadTooLarge(f"{self._where}: segment exceeds the limit of {limit} bytes")
            out += chunk
        return bytes(out)

    async def aclose(self) -> None:
        """Stop reading; drops the connection if the body was not read to the end."""
        if not self._complete:
            self._closed = True
        await self._release()

    async def _release(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            await body.aclose(self._subscriber.timeouts.close)

    async def _resume(self, cause: TransportError) -> None:
        """Re-GET this seq after a failed body and skip what was already delivered.

        Failures count until the caller gets new bytes again, so a connection that
        keeps breaking before any progress ends in TransportError (TRK-107).
        """
        await self._release()
        subscriber = self._subscriber
        while True:
            self._failures += 1
            if self._failures > subscriber.max_retries or subscriber._client_closed():
                self._closed = True
                raise TransportError(
                    f"{self._where}: body failed {self._failures} times: {cause}"
                ) from cause
            await trio.sleep(subscriber.retry_delay)
            try:
                # The body already failed: a re-read's headers wait running out is one more
                # failure (TRK-109), not re-issued as a first GET's is.
                response = await subscriber._request_head(self.seq, reissue=False)
            except TransportError as exc:
                cause = exc
                continue
            meta = response_meta(response.headers)
            status = response.status_code
            if status == 200 and meta is not None and not meta.closed and meta.seq == self.seq:
                log.debug("%s: resuming after %s bytes", self._where, self._delivered)
                self._body = BodyReader(response)
                self._skip = self._delivered
                return
            await close_response(response, subscriber.timeouts.close)
            if status == 404:
                self._closed = True
                raise ChannelClosed(f"{self._where}: the channel is gone (404)") from cause
            if status in (200, STATUS_SEGMENT_GONE):
                self._closed = True
                raise TransportError(
                    f"{self._where}: cut short after {self._delivered} bytes "
                    "and no longer available"
                ) from cause
            cause = TransportError(f"{self._where}: re-read answered {status}")
