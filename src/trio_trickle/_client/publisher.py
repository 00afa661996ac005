"""Trickle publisher client: one streaming ``POST {ch}/{seq}`` per segment (TRK-088..098).

Theory of operation
-------------------
Each segment is one POST (:mod:`._client_post`): a background task (in the
publisher's own nursery) that runs ``POST {ch}/{seq}`` through httpx with a
request body read from a bounded trio memory channel. httpx writes a streaming
request's line and headers before it asks the body for its first chunk, so a
POST started before there is data is a real *preconnect*: the server installs
the segment at once and subscribers of it wait instead of seeing 470 (TRK-092).

The send queue holds at most :data:`QUEUE_CHUNKS` chunks (one per ``write``
call). When it is full, ``write`` waits up to ``ClientTimeouts.queue`` (5 s) for
the connection to take bytes, then fails the segment with TransportError: a
stuck connection turns into an error, never into unbounded memory or a hang.

While segment N is open the POST for N+1 is already connected. Ending a segment
closes its queue (the body ends), and the POST must be answered within
``connect + headers`` seconds. A POST that fails is retried once on the same seq
iff no byte of it was handed to httpx yet: the queue still holds every byte, so
the retry simply reads it again (TRK-093).

The first seq comes from ``GET {ch}/next`` (TRK-088). When that fails (servers
without the route answer 400/404/405) the first segment goes to ``-1`` and no
other POST starts until its response says which seq it got (TRK-089).
"""

from __future__ import annotations

from types import TracebackType

import httpx
import trio

from .._errors import ChannelClosed, IllegalTransition, TransportError, TrickleError
from .http import (
    ClientTimeouts,
    delete_quietly,
    normalize_channel_url,
    probe_next_seq,
    segment_url,
)
from .lifecycle import ClientLifecycle
from .post import Post, run_attempts

__all__ = ["PublisherSegment", "TricklePublisher"]

#: Consecutive failed segments after which the publisher gives up (TRK-094).
DEFAULT_MAX_FAILURES = 3


class PublisherSegment:
    """One segment being written; use as ``async with publisher.segment() as seg``.

    Leaving the block normally ends the segment and waits for the server's
    answer; leaving it with an exception (cancellation included) aborts it.
    """

    def __init__(self, publisher: TricklePublisher) -> None:
        self._publisher = publisher
        self._post: Post | None = None
        self._finished = False

    @property
    def seq(self) -> int | None:
        """The segment's seq; None until known when it was posted to ``-1``."""
        post = self._post
        if post is None:
            return None
        if post.seq is not None:
            return post.seq
        return post.meta.seq if post.meta is not None else None

    async def __aenter__(self) -> PublisherSegment:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._finished:
            return  # ended (or aborted) explicitly inside the block
        if exc is None:
            await self.end()
        else:
            self.abort()

    async def start(self) -> None:
        if self._post is not None:
            raise IllegalTransition("segment already started")
        self._post = await self._publisher._open_post(self)

    def _require_open(self) -> Post:
        if self._post is None:
            raise IllegalTransition("segment not started")
        if self._finished:
            raise IllegalTransition("segment already ended")
        return self._post

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for the segment; waits (bounded) while the queue is full."""
        post = self._require_open()
        self._publisher._check_usable()
        if not data:
            return
        chunk = bytes(data)
        timeouts = self._publisher.timeouts
        error: TrickleError
        try:
            with trio.fail_after(timeouts.queue):
                await post.send.send(chunk)
        except trio.TooSlowError:
            error = TransportError(
                f"{post.label}: the connection took no data for {timeouts.queue} s"
            )
            self._fail(error)
            raise error from None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # The POST task finished under us: its outcome says why.
            error = self._publisher._outcome_error(post)
            self._fail(error)
            raise error from None
        post.bytes_queued += len(chunk)

    async def end(self) -> None:
        """End the segment and wait for the server's answer; raises if it failed."""
        post = self._require_open()
        post.end_body(self._publisher.timeouts)
        try:
            await post.done.wait()
        except BaseException:
            self.abort()
            raise
        self._finished = True
        publisher = self._publisher
        publisher._segment_finished(self)
        if post.error is None and post.status == 200:
            publisher._failures = 0
            return
        error = publisher._outcome_error(post)
        if publisher._closed and not isinstance(error, ChannelClosed):
            raise ChannelClosed(f"{post.label}: the publisher was closed") from error
        publisher._record_failure(error)
        if isinstance(error, TransportError) and post.seq is not None:
            # Close whatever the server holds of it, so no subscriber waits on it.
            publisher._spawn_delete_segment(post.seq)
        raise error

    def abort(self) -> None:
        """Give the segment up (synchronous, so it works while being cancelled).

        With no byte written it is ended empty, so subscribers see an empty
        segment and move on. Otherwise the POST is cut (the server closes the
        segment with what it got) and ``DELETE {ch}/{seq}`` is sent in the
        background as Go's publisher does, so no subscriber waits on it.
        """
        seq = self._abort()
        if seq is not None:
            self._publisher._spawn_delete_segment(seq)

    def _abort(self) -> int | None:
        """Abort; returns the seq that still needs a ``DELETE {ch}/{seq}``, if any."""
        post = self._post
        if post is None or self._finished:
            return None
        self._finished = True
        self._publisher._segment_finished(self)
        if post.done.is_set():
            return None
        if post.bytes_queued == 0:
            post.end_body(self._publisher.timeouts)
            return None
        post.abort()
        return post.seq

    def _fail(self, error: TrickleError) -> None:
        self.abort()
        self._publisher._record_failure(error)


class TricklePublisher(ClientLifecycle):
    """Publishes segments to one trickle channel.

    ``url`` is the channel URL (``http://host:port/ai/trickle/{ch}``). Use as an
    async context manager; it owns a nursery for its POSTs and, unless
    ``client`` is given, its own httpx client. ``start_seq`` skips the ``/next``
    probe. ``owns_channel`` makes ``aclose`` delete the channel (TRK-097).
    """

    _kind = "TricklePublisher"

    def __init__(
        self,
        url: str,
        mime_type: str,
        *,
        client: httpx.AsyncClient | None = None,
        start_seq: int | None = None,
        owns_channel: bool = True,
        timeouts: ClientTimeouts | None = None,
        max_consecutive_failures: int = DEFAULT_MAX_FAILURES,
        retry_delay: float = 0.25,
    ) -> None:
        if start_seq is not None and start_seq < 0:
            raise ValueError("start_seq must be a non-negative seq or None")
        if max_consecutive_failures < 1:
            raise ValueError("max_consecutive_failures must be at least 1")
        if not retry_delay >= 0:
            raise ValueError("retry_delay must be >= 0")
        self.url = normalize_channel_url(url)
        super().__init__(client, timeouts)
        self.mime_type = mime_type
        self.owns_channel = owns_channel
        self.max_consecutive_failures = max_consecutive_failures
        self.retry_delay = retry_delay
        self._start_seq = start_seq
        #: Entered completely: only then does closing delete the channel.
        self._ready = False
        self._closed = False
        self._terminal: ChannelClosed | None = None
        self._failures = 0
        #: Seq of the next segment; None while unknown (posting to -1).
        self._next_seq: int | None = None
        #: The preconnected POST for the next segment.
        self._pending: Post | None = None
        #: A POST to -1 whose seq is not known yet; nothing else starts meanwhile.
        self._unresolved: Post | None = None
        self._active: PublisherSegment | None = None
        self._first = True

    # -- lifecycle (entering and leaving: ClientLifecycle) ------------------------

    async def _on_enter(self) -> None:
        seq = self._start_seq
        if seq is None:
            seq = await self._probe_next()
        self._next_seq = seq
        self._pending = self._start_post(seq, reset=True)
        self._ready = True

    async def aclose(self) -> None:
        """End the pending preconnect, delete the channel if owned; idempotent (TRK-097/098).

        Shielded and bounded by ``ClientTimeouts.close``, so it also completes
        while the caller is being cancelled. Writes afterwards raise ChannelClosed.
        """
        if self._closed:
            return
        self._closed = True
        if not self._tasks.is_open:
            return
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self.timeouts.close
            if self._active is not None:
                seq = self._active._abort()
                if seq is not None and not self.owns_channel:
                    await self._delete(segment_url(self.url, seq), f"DELETE segment {seq}")
            pending, self._pending = self._pending, None
            if pending is not None and not pending.done.is_set():
                if pending.headers_sent:
                    pending.end_body(self.timeouts)
                    await pending.done.wait()
                else:
                    pending.abort()
            if self.owns_channel and self._ready:
                await self._delete(self.url, "DELETE channel")
        self._tasks.cancel_all()

    # -- public API --------------------------------------------------------------

    def segment(self) -> PublisherSegment:
        """A new segment; start it with ``async with`` (or ``await seg.start()``)."""
        return PublisherSegment(self)

    async def write_segment(self, data: bytes | bytearray | memoryview) -> int | None:
        """Publish ``data`` as one whole segment; returns its seq."""
        async with self.segment() as seg:
            await seg.write(data)
        return seg.seq

    @property
    def next_seq(self) -> int | None:
        """Seq the next segment will use; None while it is unknown."""
        return self._next_seq

    # -- segments -------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._terminal is not None:
            raise ChannelClosed(str(self._terminal)) from self._terminal.__cause__
        if self._closed:
            raise ChannelClosed(f"publisher of {self.url} is closed")
        if not self._tasks.is_open:
            raise IllegalTransition("use the publisher as `async with TricklePublisher(...)`")
        if self._tasks.failure is not None:
            raise self._tasks.failure

    async def _open_post(self, segment: PublisherSegment) -> Post:
        self._check_usable()
        if self._active is not None:
            raise IllegalTransition("the previous segment is still open")
        self._active = segment
        try:
            unresolved = self._unresolved
            if unresolved is not None:
                # TRK-089: learn the seq of the -1 POST before posting anything else
                # (bounded: that POST's body has ended, so it has a deadline too).
                with trio.move_on_after(self.timeouts.connect + self.timeouts.headers + 1):
                    await unresolved.done.wait()
                if not unresolved.done.is_set():
                    raise TransportError(f"{unresolved.label}: no answer in time")
            self._check_usable()
        except BaseException:
            self._active = None
            raise
        seq = self._next_seq
        post = self._pending
        self._pending = None
        if post is None or post.seq != seq or post.done.is_set():
            # No usable preconnect (it failed before use, or never existed).
            if post is not None and not post.done.is_set():
                post.abort()
            post = self._start_post(seq, reset=self._first)
        self._first = False
        if seq is None:
            self._unresolved = post
        else:
            self._next_seq = seq + 1
            self._pending = self._start_post(seq + 1, reset=False)
        return post

    def _segment_finished(self, segment: PublisherSegment) -> None:
        if self._active is segment:
            self._active = None

    def _record_failure(self, error: TrickleError) -> None:
        if isinstance(error, ChannelClosed):
            self._make_terminal(error)
            return
        self._failures += 1
        if self._failures >= self.max_consecutive_failures:
            terminal = ChannelClosed(
                f"publisher gave up after {self._failures} consecutive failed segments"
            )
            terminal.__cause__ = error
            self._make_terminal(terminal)

    def _make_terminal(self, error: ChannelClosed) -> None:
        if self._terminal is None:
            self._terminal = error

    def _outcome_error(self, post: Post) -> TrickleError:
        """Why ``post`` did not store the caller's segment."""
        if post.error is not None:
            return post.error
        if post.status is None:
            return TransportError(f"{post.label}: ended without an answer")
        return TransportError(f"{post.label}: the server answered before the body ended")

    # -- background tasks ------------------------------------------------------

    def _start_post(self, seq: int | None, *, reset: bool) -> Post:
        post = Post(self.url, seq, reset=reset)
        self._tasks.start_soon(self._run_post, post, name=f"trickle {post.label}")
        return post

    async def _run_post(self, post: Post) -> None:
        client = self._client
        assert client is not None
        try:
            with post.scope:
                await run_attempts(client, post, self.mime_type, self.timeouts, self.retry_delay)
            if post.scope.cancelled_caught and post.status is None:
                why = "aborted" if post.aborted else "got no answer in time"
                post.error = TransportError(f"{post.label}: {why}")
        finally:
            post.receive.close()
            post.done.set()
        self._post_finished(post)

    def _post_finished(self, post: Post) -> None:
        if isinstance(post.error, ChannelClosed) and not self._closed:
            self._make_terminal(post.error)
        if post is self._unresolved:
            self._unresolved = None
            learned = post.meta.seq if post.meta is not None else None
            if post.error is None and learned is not None and learned >= 0:
                self._failures = 0
                self._next_seq = learned + 1
                if not self._closed and self._terminal is None and self._tasks.is_open:
                    self._pending = self._start_post(self._next_seq, reset=False)

    def _spawn_delete_segment(self, seq: int) -> None:
        if self._tasks.is_open:
            url = segment_url(self.url, seq)
            self._tasks.start_soon(self._delete, url, f"DELETE segment {seq}")

    async def _delete(self, url: str, what: str) -> None:
        assert self._client is not None
        await delete_quietly(self._client, url, self.timeouts, what)

    async def _probe_next(self) -> int | None:
        assert self._client is not None
        return await probe_next_seq(self._client, self.url, self.timeouts)
