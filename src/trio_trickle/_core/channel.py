"""Sans-io trickle channel: the ring of segments and every decision about it.

Theory of operation
-------------------
A channel owns ``ring_size`` slots (5 by default, as go-livepeer); segment
``seq`` lives in slot ``seq % ring_size`` until a segment with another seq of
the same slot replaces it, which closes the old one. ``next_write`` is the
channel's write head: it becomes ``seq + 1`` when the first byte of ``seq``
arrives, and also when a POST completes without data, exactly as the Go server
does, so ``-1`` (``next_write``) and ``-2`` (``next_write - 1``) resolve the same
way on both implementations.

The server adapter turns each HTTP request into one call here and gets back a
decision: a :class:`PublishTicket` or :class:`ReadCursor` to drive, or an
:class:`Answer` (status, headers, short body) to send as is. Refusals that map
to an HTTP status are raised as :class:`ProtocolError` subclasses (404, 409,
470, 400). The adapter only moves bytes and waits, and wakes its waiters after
any call: :attr:`ChannelCore.version` moves on every change, and a waiter that
needs one thing only can watch just that (a reader: its segment's ``size`` and
``closed``, the only state a :class:`ReadCursor` waits on; a preconnected
publisher: :attr:`PublishTicket.attached`), which is what the trio adapter does
so that a chunk wakes only the readers of its segment.
"""

from __future__ import annotations

import enum
import itertools

import attrs

from .._errors import ChannelNotFound, InvalidMessage, ProtocolError, SegmentGone
from .._wire.trickle import SEQ_CURRENT, SEQ_NEXT, SegmentMeta
from .segment import Segment, SegmentState

__all__ = [
    "Answer",
    "AppendResult",
    "ByteBudget",
    "ChannelCore",
    "PublishTicket",
    "ReadCursor",
    "ReadSignal",
]

#: Largest run of chunks handed to a reader at once; keeps one send bounded.
READ_BATCH_BYTES = 256 * 1024


@attrs.frozen(kw_only=True)
class Answer:
    """A complete HTTP answer (status, headers, body) decided by the core.

    ``streaming`` answers are only the head of a response whose body the
    adapter then streams from a :class:`ReadCursor`.
    """

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    streaming: bool = False

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


class AppendResult(enum.Enum):
    """What became of bytes a publisher sent."""

    STORED = "stored"
    #: The segment was closed from outside (reset, DELETE seq, eviction): bytes dropped.
    DISCARDED = "discarded"
    #: The segment hit ``max_segment_bytes``: it is closed with what it had; answer 413.
    TOO_LARGE = "too_large"
    #: The server's rings hold ``max_buffered_bytes``: closed with what it had; answer 503.
    OVER_BUDGET = "over_budget"


@attrs.define(eq=False)
class ByteBudget:
    """Bytes held by the rings of every channel of one server, against one bound (TRK-116).

    Per-channel limits alone allow channels x ring x segment bytes (1024 x 5 x
    64 MiB by default); this is the bound on the sum. A slot's bytes are charged
    as they are stored and released when the slot is reused or its channel closes.
    """

    #: Most bytes held at once; None for no bound.
    limit: int | None = None
    held: int = 0

    def room(self) -> int | None:
        """Bytes that may still be stored (None: unbounded)."""
        return None if self.limit is None else max(self.limit - self.held, 0)


class ReadSignal(enum.Enum):
    """Non-data results of :meth:`ReadCursor.next_event`."""

    #: Nothing new: wait for the channel's version to move, then ask again.
    NEED_DATA = "need_data"
    #: The response is complete.
    END = "end"


@attrs.define(eq=False)
class PublishTicket:
    """One accepted POST: which segment it writes and how much it has written."""

    seq: int
    writer: int
    segment: Segment
    #: Bytes of this POST stored in the segment.
    bytes_written: int = 0

    @property
    def attached(self) -> bool:
        """False once the segment was closed from outside under this writer."""
        return self.segment.writer == self.writer and not self.segment.closed


@attrs.define(eq=False)
class ChannelCore:
    """All state of one channel. Mutations bump :attr:`version`."""

    name: str
    #: MIME type given at creation; sent as Content-Type on data responses.
    mime_type: str = ""
    ring_size: int = attrs.field(default=5)
    #: Largest segment accepted, in bytes; None for no limit.
    max_segment_bytes: int | None = None
    #: The server-wide bound this channel's ring is charged against (None: none).
    budget: ByteBudget | None = None
    #: Write head: the seq after the one most recently started.
    next_write: int = 0
    #: Time of the last publish activity (creation counts), for the idle sweep.
    last_write_time: float = 0.0
    closed: bool = False
    #: Monotonic change counter; adapters wake waiters when it moves.
    version: int = 0
    _slots: list[Segment | None] = attrs.field(init=False)
    _tokens: itertools.count[int] = attrs.field(init=False, factory=lambda: itertools.count(1))

    @ring_size.validator
    def _check_ring(self, _attribute: object, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError("ring_size must be an integer of at least 2 (TRK-023)")

    def __attrs_post_init__(self) -> None:
        self._slots = [None] * self.ring_size

    # -- queries -------------------------------------------------------------

    def segment(self, seq: int) -> Segment | None:
        """The segment ``seq`` if the ring still holds it."""
        if seq < 0:
            return None
        held = self._slots[seq % self.ring_size]
        return held if held is not None and held.seq == seq else None

    def segments(self) -> list[Segment]:
        """Segments in the ring, oldest seq first."""
        return sorted((s for s in self._slots if s is not None), key=lambda s: s.seq)

    def idle_for(self, now: float) -> float:
        return now - self.last_write_time

    # -- internals -----------------------------------------------------------

    def _changed(self) -> None:
        self.version += 1

    def _require_open(self) -> None:
        if self.closed:
            raise ChannelNotFound(f"channel {self.name!r} is closed")

    def _install(self, seq: int) -> Segment:
        """Return segment ``seq``, replacing (and closing) another slot occupant."""
        slot = seq % self.ring_size
        held = self._slots[slot]
        if held is not None and held.seq == seq:
            return held
        if held is not None:
            self._release(held)
            if not held.closed:
                held.close()
        fresh = Segment(seq=seq)
        self._slots[slot] = fresh
        self._changed()
        return fresh

    def _release(self, segment: Segment) -> None:
        if self.budget is not None:
            self.budget.held -= segment.size

    def _mark_write(self, seq: int, now: float) -> None:
        self.next_write = seq + 1
        self.last_write_time = now
        self._changed()

    def _empty_completion(self, seq: int, now: float) -> Answer:
        """Answer for a POST that ends (or finds its segment closed) with no data."""
        self._mark_write(seq, now)
        meta = SegmentMeta(seq=seq, closed=self.closed)
        headers = (*meta.to_wire().items(), ("Connection", "close"))
        return Answer(status=200, headers=headers)

    # -- publishing ----------------------------------------------------------

    def begin_publish(self, seq: int, *, reset: bool, now: float) -> PublishTicket | Answer:
        """A POST for ``seq`` arrived (headers only, body not read yet).

        Returns a ticket to write with, or the final answer when the segment is
        already closed (the body is then not read, as in go-livepeer). Raises
        ProtocolError 409 when another POST has already written bytes into this
        segment (go-livepeer interleaves the two bodies instead). An attached
        writer that has sent nothing is displaced: its ticket detaches.
        """
        self._require_open()
        if seq < SEQ_NEXT:
            raise InvalidMessage("Invalid idx")
        if seq == SEQ_NEXT:
            seq = self.next_write
        held = self.segment(seq)
        if held is not None and held.state is SegmentState.WRITING:
            # Refused before anything moves, its Reset included (TRK-036).
            raise ProtocolError(f"segment {seq} already has an active publisher", status=409)
        segment = self._install(seq)
        if reset:
            for older in self._slots:
                if older is not None and older.seq < seq and not older.closed:
                    older.close()
                    self._changed()
        if segment.closed:
            return self._empty_completion(seq, now)
        writer = next(self._tokens)
        segment.claim(writer)
        self._changed()
        return PublishTicket(seq=seq, writer=writer, segment=segment)

    def append(self, ticket: PublishTicket, data: bytes, *, now: float) -> AppendResult:
        """Bytes of a ticket's body arrived."""
        if not ticket.attached:
            return AppendResult.DISCARDED
        if not data:
            return AppendResult.STORED
        limit = self.max_segment_bytes
        if limit is not None and ticket.segment.size + len(data) > limit:
            # Keep exactly the bytes up to the limit, then end the segment.
            room = limit - ticket.segment.size
            if room > 0:
                self._store(ticket, data[:room], now)
            ticket.segment.close()
            self._changed()
            return AppendResult.TOO_LARGE
        left = self.budget.room() if self.budget is not None else None
        if left is not None and len(data) > left:
            if left > 0:
                self._store(ticket, data[:left], now)
            ticket.segment.close()
            self._changed()
            return AppendResult.OVER_BUDGET
        self._store(ticket, data, now)
        return AppendResult.STORED

    def _store(self, ticket: PublishTicket, data: bytes, now: float) -> None:
        first = ticket.segment.size == 0
        ticket.segment.append(ticket.writer, data)
        ticket.bytes_written += len(data)
        if self.budget is not None:
            self.budget.held += len(data)
        if first:
            self._mark_write(ticket.seq, now)
        else:
            self._changed()

    def finish(self, ticket: PublishTicket, *, now: float) -> Answer:
        """A ticket's body ended cleanly (or its segment was closed under it)."""
        if ticket.attached:
            ticket.segment.finish(ticket.writer)
            self._changed()
        if ticket.bytes_written == 0:
            return self._empty_completion(ticket.seq, now)
        return Answer(status=200, headers=tuple(SegmentMeta(seq=ticket.seq).to_wire().items()))

    def abort(self, ticket: PublishTicket) -> None:
        """A ticket's body failed.

        After its first byte the segment is closed with what it has, so readers
        finish (go-livepeer leaves it open and they hang). Before it, the writer
        is only detached and the segment stays open for a retry.
        """
        if ticket.attached:
            ticket.segment.abort(ticket.writer)
            self._changed()

    def write_local(self, data: bytes, *, now: float) -> int:
        """Write one whole segment from inside the server (the changefeed). Returns its seq."""
        ticket = self.begin_publish(SEQ_NEXT, reset=False, now=now)
        assert isinstance(ticket, PublishTicket), "a fresh next_write segment is never closed"
        self.append(ticket, data, now=now)
        self.finish(ticket, now=now)
        return ticket.seq

    # -- subscribing ---------------------------------------------------------

    def begin_read(self, seq: int) -> ReadCursor:
        """A GET for ``seq`` arrived. Raises SegmentGone (470) if it cannot be served.

        The segment exists, or is exactly the write head (or 1 on a fresh
        channel), in which case it is created so the reader waits for it.
        """
        self._require_open()
        if seq < SEQ_CURRENT:
            raise InvalidMessage("Invalid idx")
        requested = seq
        if seq == SEQ_NEXT:
            seq = self.next_write
        elif seq == SEQ_CURRENT:
            seq = max(self.next_write - 1, 0)
        segment = self.segment(seq)
        if segment is None and (seq == self.next_write or (self.next_write == 0 and seq == 1)):
            segment = self._install(seq)
        if segment is None:
            raise SegmentGone("Entry not found", latest=self.next_write, requested=str(requested))
        return ReadCursor(channel=self, segment=segment, latest_at_accept=self.next_write)

    # -- closing -------------------------------------------------------------

    def close_segment(self, seq: int) -> Answer:
        """DELETE of one segment: close it so its readers and preconnect finish."""
        self._require_open()
        if seq < 0:
            raise InvalidMessage("Invalid idx")
        segment = self.segment(seq)
        if segment is None:
            raise ProtocolError("Nonexistent segment", status=400)
        segment.close()
        self._changed()
        return Answer(status=200)

    def close(self) -> None:
        """Close the channel: every segment ends, the ring empties. Idempotent."""
        if self.closed:
            return
        for segment in self._slots:
            if segment is not None:
                self._release(segment)
                if not segment.closed:
                    segment.close()
        self._slots = [None] * self.ring_size
        self.closed = True
        self._changed()


@attrs.define(eq=False)
class ReadCursor:
    """One subscriber's position in one segment; drives a GET response.

    Call :meth:`next_event` until it returns ``ReadSignal.END``: first an
    :class:`Answer` head (sent when the first byte exists, or when the segment
    closes empty), then lists of shared chunks. ``NEED_DATA`` means wait for the
    channel's version to change.
    """

    channel: ChannelCore
    segment: Segment
    #: ``next_write`` when the GET was accepted (Go reports it, if it differs).
    latest_at_accept: int
    _index: int = 0
    _head_sent: bool = False
    _ended: bool = False

    def next_event(self) -> Answer | list[bytes] | ReadSignal:
        if self._ended:
            return ReadSignal.END
        if not self._head_sent:
            return self._head()
        chunks, self._index = self.segment.chunks_from(self._index, READ_BATCH_BYTES)
        if chunks:
            return chunks
        if self.segment.closed:
            self._ended = True
            return ReadSignal.END
        return ReadSignal.NEED_DATA

    def _head(self) -> Answer | ReadSignal:
        segment = self.segment
        if segment.size > 0:
            self._head_sent = True
            latest = self.latest_at_accept if self.latest_at_accept != segment.seq else None
            headers = [*SegmentMeta(seq=segment.seq, latest=latest).to_wire().items()]
            headers.append(("Content-Type", self.channel.mime_type))
            return Answer(status=200, headers=tuple(headers), streaming=True)
        if segment.closed:
            # End of stream, or an empty segment (empty POST, DELETE seq, reset).
            self._head_sent = True
            self._ended = True
            meta = SegmentMeta(
                seq=segment.seq, latest=self.channel.next_write, closed=self.channel.closed
            )
            return Answer(status=200, headers=tuple(meta.to_wire().items()))
        return ReadSignal.NEED_DATA
