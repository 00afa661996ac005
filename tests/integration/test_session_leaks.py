"""Many sessions started and stopped leave nothing behind: no task, thread or fd.

Every tenth cycle streams real media and is stopped while frames flow, so the
decoder and encoder threads, PyAV containers and the output publisher are
running when the stop lands; the others stop a session that is still waiting.
"""

from __future__ import annotations

import os
import re
import threading

import pytest
import trio
import trio.lowlevel

from tests.integration.live_harness import live_rig
from trio_trickle._media.testsrc import generate_ts
from trio_trickle.examples import Invert

CYCLES = 200
MEDIA_EVERY = 10
IDLE_WORKER = re.compile(r"Trio thread \d+")
#: Idle workers trio's thread cache may keep after a concurrency peak (each exits
#: after 10 s idle); a leak of one thread per media cycle would be 20 more.
CACHE_SLACK = 4


def _tasks() -> int:
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())


def _busy_threads() -> int:
    """Threads other than trio's idle cached workers (named ``Trio thread N`` while idle;
    a running job renames its worker). A leaked decoder, encoder or hook thread is busy."""
    return sum(1 for t in threading.enumerate() if not IDLE_WORKER.fullmatch(t.name))


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.spec("RUN-098", "RUN-106", "RUN-066", "RUN-075")
async def test_start_stop_cycles_leave_nothing_behind() -> None:
    pipeline = Invert()
    with trio.fail_after(180):
        async with live_rig(pipeline) as rig:
            manager = rig.runner.manager
            assert manager is not None

            segments = generate_ts(seconds=2, width=64, height=64, fps=30, audio=True)

            async def stop() -> None:
                stopped = await rig.http.post(rig.runner.url + "/stream/stop")
                assert stopped.status_code == 200
                assert manager.active_count == 0

            async def cycle(index: int) -> None:
                mid = f"cycle{index}"
                rig.create_channels(mid)
                started = await rig.http.post(
                    rig.runner.url + "/stream/start", json=rig.start_body(mid)
                )
                assert started.status_code == 200, started.text
                if index % MEDIA_EVERY:
                    await stop()
                else:  # stop while frames flow through decode, process and encode
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(rig.publish, mid, segments, 1.0)
                        counters = manager.sessions()[0].counters
                        with trio.fail_after(10):
                            while counters.frames_out < 5:  # bounded poll
                                await trio.sleep(0.01)
                        await stop()
                        nursery.cancel_scope.cancel()
                for suffix in ("", "-out", "-control", "-events", "-data"):
                    rig.trickle.server.delete_channel(mid + suffix)

            for index in range(-MEDIA_EVERY, 0):  # warm up pools and caches, media included
                await cycle(index)
            await trio.sleep(0.5)
            tasks, busy, threads, fds = _tasks(), _busy_threads(), threading.active_count(), _fds()
            for index in range(CYCLES):
                await cycle(index)
            await trio.sleep(0.5)
            assert manager.active_count == 0
            assert _tasks() == tasks
            assert _busy_threads() <= busy
            assert threading.active_count() <= threads + CACHE_SLACK
            assert _fds() <= fds
            assert rig.trickle.server.core.channels == {}
