"""The drop policies between the decoder and the hooks, and the windowed meters."""

from __future__ import annotations

import pytest
import trio

from trio_trickle._metrics import RateMeter
from trio_trickle._outlet import DropOldestOutlet
from trio_trickle._recent_queue import RecentQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.spec("RUN-114")
async def test_recent_queue_absorbs_a_burst_and_drops_the_oldest_on_overflow() -> None:
    clock = FakeClock()
    queue: RecentQueue[int] = RecentQueue(capacity=3, max_wait=0.25, clock=clock)
    assert [queue.put(i) for i in range(3)] == [0, 0, 0]  # a burst fits: nothing lost
    assert queue.put(3) == 1  # overflow drops the oldest waiting frame
    assert [await queue.get() for _ in range(3)] == [1, 2, 3]
    assert queue.dropped == 1


@pytest.mark.spec("RUN-114")
async def test_recent_queue_drops_stale_frames_when_newer_ones_wait() -> None:
    clock = FakeClock()
    queue: RecentQueue[int] = RecentQueue(capacity=8, max_wait=0.25, clock=clock)
    queue.put(1)
    queue.put(2)
    clock.now = 0.2
    queue.put(3)
    clock.now = 0.3  # 1 and 2 waited 0.3 s > 0.25 s and 3 is newer: they go
    assert await queue.get() == 3
    assert queue.dropped == 2
    queue.put(4)
    clock.now = 10.0  # stale but alone: still delivered, never an empty stream
    assert await queue.get() == 4
    queue.close()
    with pytest.raises(trio.EndOfChannel):
        await queue.get()


@pytest.mark.spec("RUN-115")
async def test_audio_queue_keeps_the_newest_100_frames() -> None:
    queue: DropOldestOutlet[int] = DropOldestOutlet(100)
    for i in range(250):
        queue.put(i)
    assert queue.dropped == 150
    assert await queue.get_batch(1000) == list(range(150, 250))


@pytest.mark.spec("RUN-073")
def test_rates_are_windowed_not_lifetime_averages() -> None:
    clock = FakeClock()
    meter = RateMeter(window=10.0, clock=clock)
    for step in range(300):  # 30 fps for 10 s
        clock.now = step / 30
        meter.mark()
    assert meter.rate() == pytest.approx(30, rel=0.05)
    clock.now = 25.0  # then a 15 s stall: a lifetime average would still say ~12 fps
    assert meter.rate() == 0
    assert meter.idle_for() == pytest.approx(25.0 - 299 / 30)
