"""The segment lifecycle table: every listed move works, every other move raises
IllegalTransition and leaves the segment exactly as it was (h11-style)."""

from __future__ import annotations

import copy

import pytest

from trio_trickle import IllegalTransition
from trio_trickle._core.segment import TRANSITIONS, Segment, SegmentEvent, SegmentState


def _segment_in(state: SegmentState) -> Segment:
    seg = Segment(seq=7)
    if state is SegmentState.AWAITING:
        return seg
    seg.claim(1)
    if state is SegmentState.WRITING:
        seg.append(1, b"abc")
    elif state is SegmentState.CLOSED:
        seg.close()
    return seg


def _apply(seg: Segment, event: SegmentEvent) -> None:
    writer = seg.writer if seg.writer is not None else 1
    if event is SegmentEvent.CLAIM:
        seg.claim(2)
    elif event is SegmentEvent.APPEND:
        seg.append(writer, b"x")
    elif event is SegmentEvent.FINISH:
        seg.finish(writer)
    elif event is SegmentEvent.ABORT:
        seg.abort(writer)
    else:
        seg.close()


@pytest.mark.parametrize("state", list(SegmentState))
@pytest.mark.parametrize("event", list(SegmentEvent))
def test_table_is_the_whole_truth(state: SegmentState, event: SegmentEvent) -> None:
    seg = _segment_in(state)
    before = copy.deepcopy((seg.state, seg.chunks, seg.size, seg.writer))
    allowed = TRANSITIONS[state].get(event)
    if allowed is None:
        with pytest.raises(IllegalTransition):
            _apply(seg, event)
        assert (seg.state, seg.chunks, seg.size, seg.writer) == before
    else:
        _apply(seg, event)
        assert seg.state is allowed


@pytest.mark.spec("TRK-025")
def test_closed_segment_never_changes() -> None:
    seg = _segment_in(SegmentState.CLOSED)
    with pytest.raises(IllegalTransition):
        seg.append(1, b"late")
    seg.close()  # idempotent
    assert seg.size == 0
    assert seg.chunks == []


def test_stale_writer_cannot_write() -> None:
    seg = Segment(seq=0)
    seg.claim(1)
    seg.claim(2)  # takeover before the first byte
    with pytest.raises(IllegalTransition):
        seg.append(1, b"x")
    seg.append(2, b"y")
    assert seg.chunks == [b"y"]


@pytest.mark.spec("TRK-039")
def test_abort_before_first_byte_reopens_for_retry() -> None:
    seg = Segment(seq=0)
    seg.claim(1)
    seg.abort(1)
    assert seg.state is SegmentState.AWAITING
    assert seg.writer is None
    seg.claim(2)
    seg.append(2, b"retry")
    assert seg.size == 5


@pytest.mark.spec("TRK-059")
def test_readers_share_chunk_objects() -> None:
    seg = Segment(seq=0)
    seg.claim(1)
    for part in (b"a" * 10, b"b" * 10, b"c" * 10):
        seg.append(1, part)
    first, nxt = seg.chunks_from(0, 15)
    assert first == [b"a" * 10]
    assert first[0] is seg.chunks[0]
    rest, end = seg.chunks_from(nxt, 1 << 20)
    assert rest == [b"b" * 10, b"c" * 10]
    assert end == 3
    assert seg.chunks_from(end, 10) == ([], 3)
