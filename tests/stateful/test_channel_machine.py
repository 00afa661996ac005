"""Model-based test of the sans-io channel core.

Each rule applies one operation to the real :class:`ChannelCore` and to a
plain model written straight from spec/trickle.md (a dict of segments and a
write head), then compares what each answered. Invariants run after every step:
the write head agrees, and every subscriber has received exactly a prefix of its
segment's bytes, all of them once the segment closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from trio_trickle import ChannelNotFound, ProtocolError, SegmentGone
from trio_trickle._core.channel import (
    Answer,
    AppendResult,
    ChannelCore,
    PublishTicket,
    ReadCursor,
    ReadSignal,
)
from trio_trickle._wire.trickle import SegmentMeta

RING = 5
MAX_BYTES = 64


@dataclass
class ModelSegment:
    seq: int
    data: bytearray = field(default_factory=bytearray)
    closed: bool = False
    writer: int | None = None  # id of the model ticket attached


@dataclass
class ModelTicket:
    ident: int
    seq: int
    written: int = 0


@dataclass
class Reader:
    cursor: ReadCursor
    seq: int
    model: ModelSegment
    received: bytearray = field(default_factory=bytearray)
    head: Answer | None = None
    ended: bool = False


class ChannelMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self._fresh_channel()

    def _fresh_channel(self) -> None:
        self.core = ChannelCore(
            name="ch", mime_type="video/MP2T", max_segment_bytes=MAX_BYTES, last_write_time=self.now
        )
        # --- the model ---
        self.next_write = 0
        self.last_write = self.now
        self.closed = False
        self.ring: dict[int, ModelSegment] = {}  # slot -> segment
        self.tickets: list[tuple[PublishTicket, ModelTicket]] = []
        self.readers: list[Reader] = []
        self.next_ticket = 0

    # -- model helpers -------------------------------------------------------

    def m_segment(self, seq: int) -> ModelSegment | None:
        seg = self.ring.get(seq % RING)
        return seg if seg is not None and seg.seq == seq else None

    def m_install(self, seq: int) -> ModelSegment:
        seg = self.m_segment(seq)
        if seg is None:
            old = self.ring.get(seq % RING)
            if old is not None:
                old.closed = True
                old.writer = None
            seg = ModelSegment(seq=seq)
            self.ring[seq % RING] = seg
        return seg

    def m_mark_write(self, seq: int) -> None:
        self.next_write = seq + 1
        self.last_write = self.now

    # -- rules ---------------------------------------------------------------

    @rule(seq=st.sampled_from([-1, -1, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8]), reset=st.booleans())
    def publish(self, seq: int, reset: bool) -> None:
        if self.closed:
            with pytest.raises(ChannelNotFound):
                self.core.begin_publish(seq, reset=reset, now=self.now)
            return
        resolved = self.next_write if seq == -1 else seq
        held = self.m_segment(resolved)
        if held is not None and not held.closed and held.data:
            # Another POST is mid-body: refused, nothing changes, not even by its Reset.
            with pytest.raises(ProtocolError) as info:
                self.core.begin_publish(seq, reset=reset, now=self.now)
            assert info.value.status == 409
            return
        seg = self.m_install(resolved)
        if reset:
            for other in self.ring.values():
                if other.seq < resolved:
                    other.closed = True
                    other.writer = None
        # An attached writer that sent nothing is displaced (seg.writer reassigned below).
        result = self.core.begin_publish(seq, reset=reset, now=self.now)
        if seg.closed:
            assert isinstance(result, Answer)
            assert result.status == 200
            assert result.header("Connection") == "close"
            meta = SegmentMeta.from_wire(dict(result.headers))
            assert meta.seq == resolved
            assert meta.closed is False
            self.m_mark_write(resolved)
            return
        assert isinstance(result, PublishTicket)
        assert result.seq == resolved
        ticket = ModelTicket(ident=self.next_ticket, seq=resolved)
        self.next_ticket += 1
        seg.writer = ticket.ident
        self.tickets.append((result, ticket))

    def _live_ticket(self, index: int) -> tuple[PublishTicket, ModelTicket]:
        return self.tickets[index % len(self.tickets)]

    @precondition(lambda self: self.tickets)
    @rule(index=st.integers(0, 3), data=st.binary(min_size=1, max_size=16))
    def append(self, index: int, data: bytes) -> None:
        real, model = self._live_ticket(index)
        seg = self.m_segment(model.seq)
        attached = seg is not None and seg.writer == model.ident and not seg.closed
        result = self.core.append(real, data, now=self.now)
        if not attached:
            assert result is AppendResult.DISCARDED
            return
        assert seg is not None
        if data and len(seg.data) + len(data) > MAX_BYTES:
            assert result is AppendResult.TOO_LARGE
            room = MAX_BYTES - len(seg.data)
            if room and not seg.data:
                self.m_mark_write(model.seq)
            seg.data += data[:room]
            model.written += room
            seg.closed = True
            seg.writer = None
            return
        assert result is AppendResult.STORED
        if data:
            if not seg.data:
                self.m_mark_write(model.seq)
            seg.data += data
            model.written += len(data)

    @precondition(lambda self: self.tickets)
    @rule(index=st.integers(0, 3))
    def finish(self, index: int) -> None:
        real, model = self._live_ticket(index)
        self.tickets.remove((real, model))
        seg = self.m_segment(model.seq)
        answer = self.core.finish(real, now=self.now)
        if seg is not None and seg.writer == model.ident:
            seg.closed = True
            seg.writer = None
        assert answer.status == 200
        meta = SegmentMeta.from_wire(dict(answer.headers))
        assert meta.seq == model.seq
        if model.written == 0:
            self.m_mark_write(model.seq)
            assert answer.header("Connection") == "close"
            assert meta.closed == self.closed
        else:
            assert answer.header("Connection") is None
            assert not meta.closed

    @precondition(lambda self: self.tickets)
    @rule(index=st.integers(0, 3))
    def abort(self, index: int) -> None:
        real, model = self._live_ticket(index)
        self.tickets.remove((real, model))
        seg = self.m_segment(model.seq)
        self.core.abort(real)
        if seg is not None and seg.writer == model.ident:
            # After a byte the segment ends for its readers (deviation from Go);
            # before one it stays open for a retry.
            seg.closed = bool(seg.data)
            seg.writer = None

    @rule(seq=st.sampled_from([-2, -1, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]))
    def subscribe(self, seq: int) -> None:
        if self.closed:
            with pytest.raises(ChannelNotFound):
                self.core.begin_read(seq)
            return
        if seq == -1:
            resolved = self.next_write
        elif seq == -2:
            resolved = max(self.next_write - 1, 0)
        else:
            resolved = seq
        seg = self.m_segment(resolved)
        if seg is None and (
            resolved == self.next_write or (self.next_write == 0 and resolved == 1)
        ):
            seg = self.m_install(resolved)
        if seg is None:
            with pytest.raises(SegmentGone) as info:
                self.core.begin_read(seq)
            assert info.value.status == 470
            assert info.value.latest == self.next_write
            assert info.value.requested == str(seq)
            return
        cursor = self.core.begin_read(seq)
        assert cursor.segment.seq == resolved
        self.readers.append(Reader(cursor=cursor, seq=resolved, model=seg))

    @precondition(lambda self: self.readers)
    @rule(index=st.integers(0, 3))
    def read(self, index: int) -> None:
        reader = self.readers[index % len(self.readers)]
        while True:
            event = reader.cursor.next_event()
            if event is ReadSignal.NEED_DATA:
                assert not reader.model.closed
                break
            if event is ReadSignal.END:
                reader.ended = True
                assert reader.model.closed
                assert bytes(reader.received) == bytes(reader.model.data)
                self.readers.remove(reader)
                break
            if isinstance(event, Answer):
                assert reader.head is None
                reader.head = event
                meta = SegmentMeta.from_wire(dict(event.headers))
                assert event.status == 200
                assert meta.seq == reader.seq
                if event.streaming:
                    assert reader.model.data
                    assert event.header("Content-Type") == "video/MP2T"
                    assert meta.closed is False
                else:
                    assert reader.model.closed
                    assert not reader.model.data
                    assert meta.latest == self.next_write
                    assert meta.closed == self.closed
                continue
            assert reader.head is not None
            assert reader.head.streaming
            for chunk in event:
                reader.received += chunk

    @rule(seq=st.integers(-1, 9))
    def delete_segment(self, seq: int) -> None:
        if self.closed:
            with pytest.raises(ChannelNotFound):
                self.core.close_segment(seq)
            return
        seg = self.m_segment(seq) if seq >= 0 else None
        if seg is None:
            with pytest.raises(ProtocolError) as info:
                self.core.close_segment(seq)
            assert info.value.status == 400
            return
        assert self.core.close_segment(seq).status == 200
        seg.closed = True
        seg.writer = None

    @rule()
    def close_channel(self) -> None:
        self.core.close()
        for seg in self.ring.values():
            seg.closed = True
            seg.writer = None
        self.ring.clear()
        self.closed = True

    @precondition(lambda self: self.closed)
    @rule()
    def recreate_channel(self) -> None:
        """A closed channel is gone; a new one of the same name starts from scratch."""
        self._fresh_channel()

    @rule(dt=st.floats(0.0, 100.0))
    def time_passes(self, dt: float) -> None:
        self.now += dt

    # -- invariants ------------------------------------------------------------

    @invariant()
    def write_head_agrees(self) -> None:
        assert self.core.next_write == self.next_write
        assert self.core.closed == self.closed
        assert self.core.idle_for(self.now) == self.now - self.last_write

    @invariant()
    def ring_agrees(self) -> None:
        real = {(s.seq, bytes(b"".join(s.chunks)), s.closed) for s in self.core.segments()}
        model = {(s.seq, bytes(s.data), s.closed) for s in self.ring.values()}
        assert real == model

    @invariant()
    def readers_see_a_prefix(self) -> None:
        for reader in self.readers:
            assert bytes(reader.model.data).startswith(bytes(reader.received))


ChannelMachine.TestCase.settings = settings(
    ChannelMachine.TestCase.settings, max_examples=250, stateful_step_count=60
)
#: The requirements this model checks on every step of every example.
TestChannelMachine = pytest.mark.spec(
    "TRK-018",
    "TRK-019",
    "TRK-020",
    "TRK-021",
    "TRK-022",
    "TRK-023",
    "TRK-024",
    "TRK-025",
    "TRK-028",
    "TRK-029",
    "TRK-030",
    "TRK-031",
    "TRK-032",
    "TRK-033",
    "TRK-034",
    "TRK-035",
    "TRK-036",
    "TRK-037",
    "TRK-038",
    "TRK-039",
    "TRK-040",
    "TRK-041",
    "TRK-042",
    "TRK-048",
    "TRK-049",
    "TRK-051",
    "TRK-052",
    "TRK-053",
    "TRK-054",
    "TRK-055",
    "TRK-056",
    "TRK-057",
    "TRK-059",
    "TRK-062",
    "TRK-064",
    "TRK-065",
    "TRK-067",
    "TRK-072",
)(ChannelMachine.TestCase)
