"""One trickle segment: its byte buffer, its lifecycle table, and read cursors.

Theory of operation
-------------------
A segment is created empty (a subscriber arrived first, or a publisher's POST
headers did) and is written by at most one publisher at a time. Its bytes are
kept as the list of chunks exactly as they arrived, shared by every reader: a
reader is only a chunk index, so sixty-four subscribers cost sixty-four
integers, not sixty-four copies, and a slow reader never holds anyone back.

All lifecycle logic is the table :data:`TRANSITIONS` (state -> event -> next
state), in the spirit of h11's ``_state.py``. A move the table does not list
raises :class:`IllegalTransition` before anything changes. ``CLOSED`` is final:
once closed, a segment's bytes never change again, so a reader that reaches
the end of a closed segment is done.

Nothing here does I/O or knows about trio; an adapter waits for changes by
watching the owning channel's ``version`` counter.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from .._errors import IllegalTransition

__all__ = ["Segment", "SegmentEvent", "SegmentState"]


class SegmentState(enum.Enum):
    """Where a segment is in its life."""

    #: Exists (a subscriber is waiting for it), no publisher attached yet.
    AWAITING = "awaiting"
    #: A publisher's POST is attached but has sent no byte (a preconnect).
    CLAIMED = "claimed"
    #: The attached publisher has sent at least one byte.
    WRITING = "writing"
    #: Final: no more bytes; readers drain what is buffered and end.
    CLOSED = "closed"


class SegmentEvent(enum.Enum):
    """What can happen to a segment."""

    CLAIM = "claim"  # a publisher attaches
    APPEND = "append"  # the attached publisher sends bytes
    FINISH = "finish"  # the attached publisher's body ended cleanly
    ABORT = "abort"  # the attached publisher's body failed (disconnect, bad chunking)
    CLOSE = "close"  # closed from outside: DELETE seq, reset, eviction, channel close


_S = SegmentState
_E = SegmentEvent

#: The whole lifecycle. CLAIM on CLAIMED is a takeover: a new POST replaces an
#: attached writer that has not sent a byte (a stale preconnect or a retry).
#: ABORT before the first byte detaches the writer and leaves the segment open
#: for a retry; ABORT after it closes the segment so subscribers finish instead
#: of hanging (a deliberate deviation from go-livepeer, which leaves it open).
TRANSITIONS: Final[dict[SegmentState, dict[SegmentEvent, SegmentState]]] = {
    _S.AWAITING: {_E.CLAIM: _S.CLAIMED, _E.CLOSE: _S.CLOSED},
    _S.CLAIMED: {
        _E.CLAIM: _S.CLAIMED,
        _E.APPEND: _S.WRITING,
        _E.FINISH: _S.CLOSED,
        _E.ABORT: _S.AWAITING,
        _E.CLOSE: _S.CLOSED,
    },
    _S.WRITING: {
        _E.APPEND: _S.WRITING,
        _E.FINISH: _S.CLOSED,
        _E.ABORT: _S.CLOSED,
        _E.CLOSE: _S.CLOSED,
    },
    _S.CLOSED: {_E.CLOSE: _S.CLOSED},
}


@attrs.define(eq=False)
class Segment:
    """Live state of one segment; identity matters, so no value equality."""

    #: The sequence number; never changes.
    seq: int
    #: Current lifecycle state; only :meth:`_apply` changes it.
    state: SegmentState = SegmentState.AWAITING
    #: Chunks in arrival order; never mutated once appended (readers share them).
    chunks: list[bytes] = attrs.field(factory=list)
    #: Sum of ``len`` over ``chunks``.
    size: int = 0
    #: Token of the attached publisher, or None. Stale tokens are detected by identity.
    writer: int | None = None

    @property
    def closed(self) -> bool:
        return self.state is SegmentState.CLOSED

    def _apply(self, event: SegmentEvent) -> None:
        """Take one transition from the table or raise without changing anything."""
        try:
            self.state = TRANSITIONS[self.state][event]
        except KeyError:
            raise IllegalTransition(
                f"segment {self.seq}: {event.value} is not allowed in state {self.state.value}"
            ) from None

    def claim(self, writer: int) -> None:
        self._apply(SegmentEvent.CLAIM)
        self.writer = writer

    def append(self, writer: int, data: bytes) -> None:
        if writer != self.writer:
            raise IllegalTransition(f"segment {self.seq}: writer {writer} is not attached")
        if not data:
            return
        self._apply(SegmentEvent.APPEND)
        self.chunks.append(bytes(data))
        self.size += len(data)

    def finish(self, writer: int) -> None:
        if writer != self.writer:
            raise IllegalTransition(f"segment {self.seq}: writer {writer} is not attached")
        self._apply(SegmentEvent.FINISH)
        self.writer = None

    def abort(self, writer: int) -> None:
        if writer != self.writer:
            raise IllegalTransition(f"segment {self.seq}: writer {writer} is not attached")
        self._apply(SegmentEvent.ABORT)
        self.writer = None

    def close(self) -> None:
        self._apply(SegmentEvent.CLOSE)
        self.writer = None

    def chunks_from(self, index: int, max_bytes: int) -> tuple[list[bytes], int]:
        """Chunks starting at chunk ``index``, at least one if any, about ``max_bytes``.

        Returns the chunks (shared objects, never copies) and the next index.
        """
        out: list[bytes] = []
        total = 0
        end = len(self.chunks)
        while index < end and (not out or total + len(self.chunks[index]) <= max_bytes):
            chunk = self.chunks[index]
            out.append(chunk)
            total += len(chunk)
            index += 1
        return out, index
