"""JSON and JSONL message channels over trickle (spec/channels.md).

``JsonSegmentWriter``/``JsonSegmentReader`` carry one JSON object per segment
(control and events channels); ``JsonlWriter``/``JsonlReader`` many
newline-terminated objects per segment (data channels), with time-rotated
segments. Each wraps a publisher or subscriber the caller opened, or is given
a channel URL and then opens (and owns) one itself: use it as an async context
manager in that case. The byte formats come from :mod:`trio_trickle._wire.channels`.

A reader reads every segment to its end whatever the chunking (CHN-033), up to
a per-segment limit (1 MiB by default, CHN-034/035), and skips empty segments
(CHN-036/037). A message that does not decode raises InvalidMessage from
``__anext__`` and the reader stays usable: call it again for the next message
(or pass ``skip_invalid=True`` to log and skip, CHN-010/024/030).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Protocol, Self

import httpx
import trio

from .._errors import IllegalTransition, InvalidMessage, PayloadTooLarge, TrickleError
from .._wire.channels import (
    DATA_SEGMENT_INTERVAL,
    DEFAULT_MAX_SEGMENT_BYTES,
    MIME_JSON,
    MIME_JSONL,
    DataLine,
    JsonlDecoder,
    KeepAlive,
    encode_jsonl,
)
from .._wire.fields import expect_object
from .._wire.json_codec import dump_json, parse_json
from .._wire.trickle import SEQ_CURRENT
from .http import ClientTimeouts
from .lifecycle import OwnedNursery
from .publisher import PublisherSegment, TricklePublisher
from .subscriber import TrickleSubscriber
from .subscriber_segment import SubscriberSegment

__all__ = ["JsonSegmentReader", "JsonSegmentWriter", "JsonlReader", "JsonlWriter"]

log = logging.getLogger("trio_trickle.client.channels")

JSONObject = dict[str, Any]
_KEEPALIVE = KeepAlive().to_wire()


class SupportsToWire(Protocol):
    def to_wire(self) -> Mapping[str, Any]: ...


def _as_object(message: Mapping[str, Any] | SupportsToWire) -> JSONObject:
    """A message as a validated JSON object (a wire class, or a plain mapping)."""
    wire = message.to_wire() if hasattr(message, "to_wire") else message
    if not isinstance(wire, Mapping):
        raise InvalidMessage("a channel message must be a JSON object")
    # DataLine validates "a JSON object that round-trips exactly" (depth, Unicode, NaN).
    return DataLine(record=dict(wire)).record


def decode_object_segment(data: bytes, what: str) -> JSONObject | None:
    """One JSON object filling a whole segment; None for an empty segment (CHN-036)."""
    if not data.strip():
        return None
    return DataLine.from_wire(expect_object(parse_json(data, what), what)).record


class _Wrapper:
    """Holds the publisher or subscriber a channel helper works through.

    Given an opened one, the helper only uses it; given a URL, entering the
    helper opens one and leaving it closes it.
    """

    def __init__(self, inner: TricklePublisher | TrickleSubscriber, *, owned: bool) -> None:
        self._inner = inner
        self._owned = owned
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        await self._open_inner()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close_inner(exc)

    async def _open_inner(self) -> None:
        if self._owned:
            await self._stack.enter_async_context(self._inner)

    async def _close_inner(self, exc: BaseException | None) -> None:
        if exc is None:
            await self._stack.aclose()
        else:
            await self._stack.__aexit__(type(exc), exc, exc.__traceback__)


def _publisher(
    target: TricklePublisher | str,
    mime_type: str,
    client: httpx.AsyncClient | None,
    owns_channel: bool,
    timeouts: ClientTimeouts | None,
) -> tuple[TricklePublisher, bool]:
    if isinstance(target, TricklePublisher):
        return target, False
    publisher = TricklePublisher(
        target, mime_type, client=client, owns_channel=owns_channel, timeouts=timeouts
    )
    return publisher, True


def _subscriber(
    target: TrickleSubscriber | str,
    start_seq: int,
    client: httpx.AsyncClient | None,
    timeouts: ClientTimeouts | None,
) -> tuple[TrickleSubscriber, bool]:
    if isinstance(target, TrickleSubscriber):
        return target, False
    return TrickleSubscriber(target, start_seq=start_seq, client=client, timeouts=timeouts), True


class JsonSegmentWriter(_Wrapper):
    """Writes each message as one segment holding one JSON object (CHN-005/012)."""

    def __init__(
        self,
        target: TricklePublisher | str,
        *,
        mime_type: str = MIME_JSON,
        client: httpx.AsyncClient | None = None,
        owns_channel: bool = True,
        timeouts: ClientTimeouts | None = None,
    ) -> None:
        self.publisher, owned = _publisher(target, mime_type, client, owns_channel, timeouts)
        super().__init__(self.publisher, owned=owned)

    async def write(self, message: Mapping[str, Any] | SupportsToWire) -> int | None:
        """Publish ``message`` (a mapping, or a wire object with ``to_wire``); returns its seq."""
        return await self.publisher.write_segment(dump_json(_as_object(message)))


class JsonSegmentReader(_Wrapper):
    """Yields the JSON object of each segment: ``async for obj in reader``.

    Control keepalives (``{"keep":"alive"}``) are dropped (CHN-006); pass
    ``skip_keepalive=False`` to see them (e.g. to watch a publisher's liveness).
    """

    def __init__(
        self,
        target: TrickleSubscriber | str,
        *,
        max_bytes: int | None = DEFAULT_MAX_SEGMENT_BYTES,
        skip_keepalive: bool = True,
        skip_invalid: bool = False,
        start_seq: int = SEQ_CURRENT,
        client: httpx.AsyncClient | None = None,
        timeouts: ClientTimeouts | None = None,
    ) -> None:
        self.subscriber, owned = _subscriber(target, start_seq, client, timeouts)
        super().__init__(self.subscriber, owned=owned)
        self.max_bytes = max_bytes
        self.skip_keepalive = skip_keepalive
        self.skip_invalid = skip_invalid
        #: Seq of the segment the last returned message came from.
        self.last_seq: int | None = None

    def __aiter__(self) -> JsonSegmentReader:
        return self

    async def __anext__(self) -> JSONObject:
        while True:
            segment = await self.subscriber.__anext__()
            what = f"segment {segment.seq}"
            try:
                obj = decode_object_segment(await segment.read_all(self.max_bytes), what)
            except (InvalidMessage, PayloadTooLarge) as exc:
                if not self.skip_invalid:
                    raise
                log.warning("skipping %s: %s", what, exc)
                continue
            if obj is None or (self.skip_keepalive and obj == _KEEPALIVE):
                continue
            self.last_seq = segment.seq
            return obj


class JsonlWriter(_Wrapper):
    """Writes records as JSONL lines into time-rotated segments (CHN-025..027).

    Use as an async context manager (it owns the rotation timer). A segment is
    opened by the first record after a rotation and ended ``segment_interval``
    seconds later (10 s by default), or by :meth:`flush` or closing.
    """

    def __init__(
        self,
        target: TricklePublisher | str,
        *,
        segment_interval: float = DATA_SEGMENT_INTERVAL,
        mime_type: str = MIME_JSONL,
        client: httpx.AsyncClient | None = None,
        owns_channel: bool = True,
        timeouts: ClientTimeouts | None = None,
    ) -> None:
        if not segment_interval > 0:
            raise ValueError("segment_interval must be positive")
        self.publisher, owned = _publisher(target, mime_type, client, owns_channel, timeouts)
        super().__init__(self.publisher, owned=owned)
        self.segment_interval = segment_interval
        self._tasks = OwnedNursery()
        self._lock = trio.Lock()
        self._segment: PublisherSegment | None = None
        self._opened_at: float | None = None
        self._wake = trio.Event()
        #: A rotation that failed in the background; raised by the next write.
        self._error: TrickleError | None = None
        self._closed = False

    async def __aenter__(self) -> Self:
        await self._open_inner()
        try:
            await self._tasks.open()
        except BaseException as exc:
            await self._close_inner(exc)
            raise
        self._tasks.start_soon(self._rotate, name="trickle JSONL rotation")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                await self.aclose()
            else:
                self._closed = True
                segment, self._segment = self._segment, None
                if segment is not None:
                    segment.abort()
        finally:
            await self._tasks.close()
            await self._close_inner(exc)

    async def write(self, record: Mapping[str, Any] | DataLine) -> None:
        """Append one record; refuses lines over 65 535 bytes (PayloadTooLarge, CHN-026)."""
        line = encode_jsonl([record])
        if self._closed:
            raise IllegalTransition("JsonlWriter is closed")
        if not self._tasks.is_open:
            raise IllegalTransition("use the writer as `async with JsonlWriter(...)`")
        async with self._lock:
            if self._tasks.failure is not None:
                raise self._tasks.failure  # the rotation task crashed: no segment would end
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._segment is None:
                segment = self.publisher.segment()
                await segment.start()
                self._segment = segment
                self._opened_at = trio.current_time()
                self._wake.set()
            try:
                await self._segment.write(line)
            except BaseException:
                self._segment = None
                self._opened_at = None
                raise

    async def flush(self) -> None:
        """End the current segment now (its records become a complete segment)."""
        async with self._lock:
            await self._end_current()

    async def aclose(self) -> None:
        """End the current segment; idempotent. Does not close the publisher."""
        if self._closed:
            return
        self._closed = True
        await self.flush()

    async def _end_current(self) -> None:
        segment, self._segment = self._segment, None
        self._opened_at = None
        if segment is not None:
            await segment.end()

    async def _rotate(self) -> None:
        while True:
            opened = self._opened_at
            if opened is None:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            await trio.sleep_until(opened + self.segment_interval)
            async with self._lock:
                if self._opened_at != opened:
                    continue
                try:
                    await self._end_current()
                except TrickleError as exc:
                    self._error = exc


class JsonlReader(_Wrapper):
    """Yields JSONL records as soon as each line is complete (CHN-028..031).

    ``objects_only=False`` accepts any JSON value per line (CHN-032).
    """

    def __init__(
        self,
        target: TrickleSubscriber | str,
        *,
        max_bytes: int | None = DEFAULT_MAX_SEGMENT_BYTES,
        objects_only: bool = True,
        skip_invalid: bool = False,
        start_seq: int = SEQ_CURRENT,
        client: httpx.AsyncClient | None = None,
        timeouts: ClientTimeouts | None = None,
    ) -> None:
        self.subscriber, owned = _subscriber(target, start_seq, client, timeouts)
        super().__init__(self.subscriber, owned=owned)
        self.max_bytes = max_bytes
        self.objects_only = objects_only
        self.skip_invalid = skip_invalid
        self._segment: SubscriberSegment | None = None
        self._decoder: JsonlDecoder | None = None
        self._segment_done = False

    @property
    def seq(self) -> int | None:
        """Seq of the segment being read."""
        return None if self._segment is None else self._segment.seq

    def __aiter__(self) -> JsonlReader:
        return self

    async def __anext__(self) -> Any:
        while True:
            decoder = self._decoder
            if decoder is None:
                self._segment = await self.subscriber.__anext__()
                self._decoder = JsonlDecoder(
                    max_bytes=self.max_bytes, objects_only=self.objects_only
                )
                self._segment_done = False
                continue
            try:
                ready, value = decoder.next_value()
            except InvalidMessage as exc:
                if not self.skip_invalid:
                    raise
                log.warning("skipping a line of segment %s: %s", self.seq, exc)
                continue
            if ready:
                return value
            if self._segment_done:
                self._decoder = None
                continue
            assert self._segment is not None
            try:
                chunk = await self._segment.__anext__()
            except StopAsyncIteration:
                decoder.end()
                self._segment_done = True
                continue
            try:
                decoder.feed(chunk)
            except PayloadTooLarge as exc:
                self._decoder = None
                await self._segment.aclose()
                if not self.skip_invalid:
                    raise
                log.warning("skipping segment %s: %s", self.seq, exc)
