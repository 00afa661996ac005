"""The drop policies between the decoder and the hooks, and the windowed meters."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
import trio

from trio_trickle._session.heartbeat import _vram
from trio_trickle._session.manager import StreamManager
from trio_trickle._session.metrics import LatencyMeter, RateMeter, SessionCounters
from trio_trickle._session.recent_queue import RecentQueue
from trio_trickle._session.session import SessionSettings
from trio_trickle._telemetry.outlet import DropOldestOutlet
from trio_trickle.examples import Passthrough


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


@pytest.mark.spec("TEL-032")
def test_latency_is_the_mean_of_the_last_window() -> None:
    clock = FakeClock()
    meter = LatencyMeter(window=10.0, clock=clock)
    assert meter.mean_ms() is None  # no frame yet: nothing to state
    meter.add(0.010)
    meter.add(0.030)
    assert meter.mean_ms() == 20.0
    clock.now = 5.0
    meter.add(0.100)
    assert meter.mean_ms() == pytest.approx(46.7)
    clock.now = 12.0  # the first two left the window
    assert meter.mean_ms() == 100.0
    clock.now = 30.0
    assert meter.mean_ms() is None


async def test_recent_queue_stamps_when_a_frame_was_queued() -> None:
    clock = FakeClock()
    queue: RecentQueue[str] = RecentQueue(capacity=4, max_wait=1.0, clock=clock)
    clock.now = 1.5
    queue.put("a")
    clock.now = 1.7
    assert await queue.get_stamped() == (1.5, "a")


@pytest.mark.spec("RUN-113")
def test_frames_dropped_counts_the_encoders_pts_guard_too() -> None:
    counters = SessionCounters()
    counters.dropped = 2
    counters.encode.dropped = 3
    assert counters.frames_dropped == 5


def test_manager_timeouts_override_settings_only_when_given() -> None:
    settings = SessionSettings(start_timeout=1.5, stop_timeout=0.5)
    kept = StreamManager(Passthrough(), settings=settings)
    assert (kept.settings.start_timeout, kept.settings.stop_timeout) == (1.5, 0.5)
    overridden = StreamManager(Passthrough(), settings=settings, stop_timeout=2.0)
    assert (overridden.settings.start_timeout, overridden.settings.stop_timeout) == (1.5, 2.0)


class _FakeCuda:
    """Stands in for ``torch.cuda`` on a machine without a GPU (CI has none)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def is_available(self) -> bool:
        return True

    def current_device(self) -> int:
        if self.fail:
            raise RuntimeError("CUDA error: device-side assert triggered")
        return 1

    def memory_allocated(self, device: int) -> int:
        return (512 + device) * 1024 * 1024

    def memory_reserved(self, device: int) -> int:
        return 1024 * 1024 * 1024

    def get_device_properties(self, device: int) -> Any:
        return types.SimpleNamespace(total_memory=80 * 1024**3)


@pytest.mark.spec("TEL-032")
def test_vram_fields_use_scopes_names_and_a_failing_query_costs_only_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=_FakeCuda()))
    assert _vram() == {
        "vram_allocated_mb": 513.0,  # of the current device (1), not device 0
        "vram_reserved_mb": 1024.0,
        "vram_total_mb": 81920.0,
    }
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=_FakeCuda(fail=True)))
    assert _vram() == {}
