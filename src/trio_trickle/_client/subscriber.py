"""Trickle subscriber client: ``GET {ch}/{seq}`` segment after segment (TRK-099..110).

Theory of operation
-------------------
``async for segment in subscriber`` yields :class:`SubscriberSegment` objects,
each itself an async iterator of the segment's bytes as they arrive (TRK-101).
The next seq is always the server's ``Lp-Trickle-Seq`` + 1 (TRK-100). Asking
for the next segment closes the previous one if the caller did not read it to
the end (its connection is dropped, the server releases the GET).

Every wait is bounded (TRK-109): a GET whose headers do not come within
``ClientTimeouts.headers`` is cancelled and re-issued for the same seq (not a
failure: a segment may legitimately be minutes away). Failures (transport
errors, 5xx, odd statuses) are retried ``max_retries`` times ``retry_delay``
apart, then raise TransportError (TRK-107). Reading one segment's body, and
resuming a body cut short, is :mod:`.subscriber_segment`'s job.

A 470 moves the request to ``Lp-Trickle-Latest`` at once (TRK-103) or polls
the same seq ``wait_ahead_delay`` apart (TRK-104). Only a server that
misbehaves keeps answering 470 to where it pointed, so past :data:`FREE_JUMPS`
jumps, and for a 470 that points nowhere new (Latest missing again after the
jump to ``-1``, or equal to the requested seq), a 470 counts as a failure:
never a request loop without a pause or an end.

With ``preconnect`` on (default) the GET for N+1 is opened in the background
as soon as segment N's headers arrive (TRK-108); it runs in the subscriber's
own nursery and is cancelled (its connection closed) when no longer wanted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import httpx
import trio

from .._errors import ChannelClosed, IllegalTransition, TransportError
from .._wire.trickle import SEQ_CURRENT, SEQ_NEXT, STATUS_SEGMENT_GONE, SegmentMeta
from .http import (
    ClientTimeouts,
    closed_client_error,
    normalize_channel_url,
    response_meta,
    segment_url,
    send_request,
)
from .lifecycle import ClientLifecycle
from .subscriber_segment import Head, SubscriberSegment, close_response

__all__ = ["TrickleSubscriber"]

log = logging.getLogger("trio_trickle.client.subscriber")

#: 470 jumps to a new seq taken at once while resolving one segment (TRK-103); a
#: real server needs one (a subscriber behind the ring lands on the write head).
FREE_JUMPS = 3


class _SendWatch:
    """httpcore's ``trace`` extension for one request: notes when its headers go out.

    A headers wait that ran out before that point was waiting for a connection,
    which must end in a failure, not in an endless re-issue (``headers`` may be
    configured below ``connect``).
    """

    def __init__(self) -> None:
        self.started = False

    async def __call__(self, event: str, info: Mapping[str, object]) -> None:
        if event.endswith("send_request_headers.started"):
            self.started = True


class _Prefetch:
    """The background GET of the next seq (subscriber preconnect, TRK-108)."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.head: Head | None = None
        self.error: Exception | None = None
        self.discarded = False


class TrickleSubscriber(ClientLifecycle):
    """Reads segments of one trickle channel, in order, as they are published.

    ``url`` is the channel URL. ``start_seq`` is ``-2`` (the segment being
    written now, from its first byte; default), ``-1`` (the next one) or an
    explicit seq (TRK-099). Use as an async context manager.
    """

    _kind = "TrickleSubscriber"

    def __init__(
        self,
        url: str,
        *,
        start_seq: int = SEQ_CURRENT,
        client: httpx.AsyncClient | None = None,
        timeouts: ClientTimeouts | None = None,
        preconnect: bool = True,
        max_retries: int = 5,
        retry_delay: float = 0.3,
        wait_ahead_delay: float = 0.25,
    ) -> None:
        if isinstance(start_seq, bool) or not isinstance(start_seq, int) or start_seq < -2:
            raise ValueError("start_seq must be -2, -1 or a non-negative seq")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not retry_delay >= 0:
            raise ValueError("retry_delay must be >= 0")
        if not wait_ahead_delay > 0:
            # Polling ahead of the live edge is not bounded in count, so in rate.
            raise ValueError("wait_ahead_delay must be positive")
        self.url = normalize_channel_url(url)
        super().__init__(client, timeouts)
        self.preconnect = preconnect
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.wait_ahead_delay = wait_ahead_delay
        self._next_seq = start_seq
        self._closed = False
        self._ended = False
        self._terminal: ChannelClosed | None = None
        self._current: SubscriberSegment | None = None
        self._prefetch: _Prefetch | None = None

    @property
    def next_seq(self) -> int:
        """The seq the next segment is requested with (``-1``/``-2`` before the first)."""
        return self._next_seq

    # -- lifecycle (entering and leaving: ClientLifecycle) ------------------------

    async def aclose(self) -> None:
        """Close the current segment and the preconnect; idempotent; no DELETE."""
        if self._closed:
            return
        self._closed = True
        current, self._current = self._current, None
        if current is not None:
            await current.aclose()
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            await self._discard(prefetch)
        self._tasks.cancel_all()

    # -- iteration -------------------------------------------------------------

    def __aiter__(self) -> TrickleSubscriber:
        return self

    async def __anext__(self) -> SubscriberSegment:
        segment = await self.next_segment()
        if segment is None:
            raise StopAsyncIteration
        return segment

    async def next_segment(self) -> SubscriberSegment | None:
        """The next segment, or None at end of stream (TRK-105).

        Raises ChannelClosed when the channel is gone (404, TRK-106) and
        TransportError once retries are exhausted (the call may be repeated).
        """
        if self._terminal is not None:
            raise ChannelClosed(str(self._terminal))
        if self._closed:
            raise ChannelClosed(f"subscriber of {self.url} is closed")
        if not self._tasks.is_open:
            raise IllegalTransition("use the subscriber as `async with TrickleSubscriber(...)`")
        if self._tasks.failure is not None:
            raise self._tasks.failure
        if self._ended:
            return None
        current, self._current = self._current, None
        if current is not None:
            await current.aclose()
        seq = self._next_seq
        prefetch = self._prefetch
        if prefetch is not None and prefetch.seq != seq:
            self._prefetch = None
            await self._discard(prefetch)
            prefetch = None
        try:
            if prefetch is not None:
                # Cancellation here leaves the preconnect in place for the next call.
                await prefetch.done.wait()
                self._prefetch = None
                if prefetch.error is not None:
                    raise prefetch.error
                assert prefetch.head is not None
                head = prefetch.head
            else:
                head = await self._fetch(seq)
        except ChannelClosed as exc:
            self._terminal = exc
            raise
        if head.eos:
            self._ended = True
            return None
        self._next_seq = head.seq + 1
        segment = SubscriberSegment(self, head)
        self._current = segment
        if self.preconnect:
            self._prefetch = self._start_prefetch(self._next_seq)
        return segment

    # -- requests --------------------------------------------------------------

    def _client_closed(self) -> bool:
        return self._client is not None and self._client.is_closed

    async def _request_head(self, seq: int, *, reissue: bool = True) -> httpx.Response:
        """``GET {ch}/{seq}`` until headers arrive; re-issued every ``headers`` seconds.

        Only a request that was sent is re-issued: one still waiting for a
        connection (a pool slot, a connect) when the wait ran out is a
        TransportError, as is any wait that ran out without ``reissue``.
        """
        assert self._client is not None
        url = segment_url(self.url, seq)
        # httpx's own pool and connect timeouts end a connection wait before the
        # headers wait can, unless ``headers`` is the shorter: only then is the
        # trace (a callback per httpcore step, on every GET) worth its cost.
        watch_send = self.timeouts.headers < 2 * self.timeouts.connect
        while True:
            sent = _SendWatch()
            request = self._client.build_request(
                "GET",
                url,
                timeout=self.timeouts.for_request(),
                extensions={"trace": sent} if watch_send else {},
            )
            with trio.move_on_after(self.timeouts.headers):
                return await send_request(self._client, request, f"GET {url}")
            if watch_send and not sent.started:
                raise TransportError(f"GET {url}: not connected in {self.timeouts.headers} s")
            if not reissue:
                raise TransportError(f"GET {url}: no headers in {self.timeouts.headers} s")
            log.debug("GET %s: no headers in %s s, re-issuing", url, self.timeouts.headers)

    async def _fetch(self, seq: int) -> Head:
        """Resolve ``seq`` to a segment's headers or end of stream (TRK-100..107)."""
        failures = 0
        jumps = 0
        while True:
            try:
                response = await self._request_head(seq)
            except TransportError as exc:
                failures = await self._failed(failures, seq, exc)
                continue
            status = response.status_code
            meta = response_meta(response.headers)
            if status == 200 and meta is not None:
                if meta.closed:
                    await close_response(response, self.timeouts.close)
                    return Head(response=None, seq=seq, latest=meta.latest, eos=True)
                got = meta.seq if meta.seq is not None else seq
                if got >= 0:
                    return Head(response=response, seq=got, latest=meta.latest)
            await close_response(response, self.timeouts.close)
            if status == 404:
                raise ChannelClosed(
                    f"GET {segment_url(self.url, seq)}: the channel does not exist (404)"
                )
            if status == STATUS_SEGMENT_GONE:
                target = _jump_target(seq, meta)
                if target is None:
                    # Ahead of the live edge: poll the same seq (TRK-104), at a bounded rate.
                    await trio.sleep(self.wait_ahead_delay)
                    continue
                jumps += 1
                if target == seq or jumps > FREE_JUMPS:
                    # A server that keeps answering 470 to where it pointed: a failure.
                    error = TransportError(
                        f"GET {segment_url(self.url, seq)} answered 470 again "
                        f"(Lp-Trickle-Latest: {meta.latest if meta is not None else None})"
                    )
                    failures = await self._failed(failures, seq, error)
                seq = target
                continue
            error = TransportError(
                f"GET {segment_url(self.url, seq)} answered {status} (or garbled headers)"
            )
            failures = await self._failed(failures, seq, error)

    async def _failed(self, failures: int, seq: int, error: TransportError) -> int:
        failures += 1
        if self._client_closed():
            # Nothing to retry with (the caller closed a client it lent us).
            raise closed_client_error(f"GET {segment_url(self.url, seq)}") from error
        if failures > self.max_retries:
            raise TransportError(f"failed {failures} times: {error}") from error
        log.debug("GET %s failed (%s), retry %s", segment_url(self.url, seq), error, failures)
        await trio.sleep(self.retry_delay)
        return failures

    # -- preconnect --------------------------------------------------------------

    def _start_prefetch(self, seq: int) -> _Prefetch | None:
        if not self._tasks.is_open or self._closed:
            return None
        prefetch = _Prefetch(seq)
        self._tasks.start_soon(self._run_prefetch, prefetch, name=f"trickle GET preconnect {seq}")
        return prefetch

    async def _run_prefetch(self, prefetch: _Prefetch) -> None:
        try:
            with prefetch.scope:
                prefetch.head = await self._fetch(prefetch.seq)
        except Exception as exc:
            prefetch.error = exc
        finally:
            prefetch.done.set()
            if prefetch.discarded and prefetch.head is not None:
                await close_response(prefetch.head.response, self.timeouts.close)

    async def _discard(self, prefetch: _Prefetch) -> None:
        prefetch.discarded = True
        prefetch.scope.cancel()
        if prefetch.done.is_set() and prefetch.head is not None:
            await close_response(prefetch.head.response, self.timeouts.close)


def _jump_target(seq: int, meta: SegmentMeta | None) -> int | None:
    """Where a 470 for ``seq`` sends the subscriber; None: wait and retry ``seq``.

    Latest ≥ seq: there (TRK-103); Latest < seq: wait (TRK-104); a Latest that is
    missing, garbled or negative is no position at all: ``-1`` (TRK-104).
    """
    latest = meta.latest if meta is not None else None
    if latest is None or latest < 0:
        return SEQ_NEXT
    if latest >= seq:
        return latest
    return None
