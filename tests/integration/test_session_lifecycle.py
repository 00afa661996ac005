"""Session lifecycle rules, each over a real runner and trickle server."""

from __future__ import annotations

import threading
import time

import pytest
import trio

from tests.integration.live_harness import live_rig
from trio_trickle._media.decode import decode_segments
from trio_trickle._media.frames import VideoFrame
from trio_trickle._media.testsrc import generate_ts
from trio_trickle._sdk.live_pipeline import LivePipeline
from trio_trickle._session.session import SessionSettings

W, H, FPS = 64, 48, 30


def _stopped(rig: object) -> dict[str, object]:
    events = rig.events  # type: ignore[attr-defined]
    return next(e["event"] for e in events if e["event"].get("type") == "stream_stopped")


class StartFails(LivePipeline):
    def __init__(self) -> None:
        self.stopped = 0

    async def on_stream_start(self, params: dict[str, object]) -> None:
        raise ValueError("no model")

    async def on_stream_stop(self) -> None:
        self.stopped += 1


@pytest.mark.spec("RUN-054", "RUN-076")
async def test_failed_start_never_calls_on_stream_stop() -> None:
    pipeline = StartFails()
    with trio.fail_after(20):
        async with live_rig(pipeline) as rig:
            response = await rig.start("s")
            assert response.status_code == 500
            assert "ValueError" in response.json()["detail"]["msg"]
            manager = rig.runner.manager
            assert manager is not None
            assert manager.active_count == 0
    assert pipeline.stopped == 0


class StopRaises(LivePipeline):
    def __init__(self) -> None:
        self.stops = 0

    async def on_stream_stop(self) -> None:
        self.stops += 1
        await trio.sleep(0.2)
        raise RuntimeError("cleanup failed")


@pytest.mark.spec("RUN-067", "RUN-079")
async def test_concurrent_stops_share_one_teardown_and_a_raising_stop_is_harmless() -> None:
    pipeline = StopRaises()
    answers: list[int] = []
    with trio.fail_after(20):
        async with live_rig(pipeline) as rig:
            assert (await rig.start("s")).status_code == 200

            async def stop() -> None:
                answers.append((await rig.http.post(rig.runner.url + "/stream/stop")).status_code)

            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(stop)
            await rig.wait_for(lambda: "stream_stopped" in rig.event_types(), 5)
    assert answers == [200, 200, 200]
    assert pipeline.stops == 1
    assert _stopped(rig)["reason"] == "stop_requested"


class Slow(LivePipeline):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.log: list[str] = []
        self.release = threading.Event()

    def process_video(self, frame: VideoFrame) -> VideoFrame | None:
        self.log.append("begin")
        self.release.wait(self.seconds)
        self.log.append("end")
        return frame

    async def on_stream_stop(self) -> None:
        self.log.append("stop")


@pytest.mark.spec("RUN-077")
async def test_on_stream_stop_waits_for_the_frame_in_hand() -> None:
    pipeline = Slow(0.3)
    segments = generate_ts(seconds=1, width=W, height=H, fps=FPS, audio=False)
    with trio.fail_after(20):
        async with live_rig(pipeline) as rig:
            assert (await rig.start("s")).status_code == 200
            async with trio.open_nursery() as nursery:
                nursery.start_soon(rig.publish, "s", segments, 0.2)
                await rig.wait_for(lambda: True, 1)
                with trio.fail_after(5):
                    while "begin" not in pipeline.log:
                        await trio.sleep(0.01)
                await rig.http.post(rig.runner.url + "/stream/stop")
                nursery.cancel_scope.cancel()
    stop = pipeline.log.index("stop")
    assert pipeline.log[stop - 1] == "end"
    assert pipeline.log.count("stop") == 1


@pytest.mark.spec("RUN-068")
async def test_stop_answers_within_the_deadline_even_when_a_hook_hangs() -> None:
    pipeline = Slow(60)
    segments = generate_ts(seconds=1, width=W, height=H, fps=FPS, audio=False)
    settings = SessionSettings(device="cpu", stop_timeout=1.0)
    try:
        with trio.fail_after(30):
            async with live_rig(pipeline, settings=settings, stop_timeout=1.0) as rig:
                assert (await rig.start("s")).status_code == 200
                await rig.publish("s", segments, 0.2)
                with trio.fail_after(5):
                    while "begin" not in pipeline.log:
                        await trio.sleep(0.01)
                started = time.monotonic()
                response = await rig.http.post(rig.runner.url + "/stream/stop")
                took = time.monotonic() - started
                assert response.status_code in (200, 500)
                assert took < 3.0
    finally:
        pipeline.release.set()


class DropOdd(LivePipeline):
    def process_video(self, frame: VideoFrame) -> VideoFrame | None:
        index = round(frame.time * FPS)
        return frame if index % 2 == 0 else None


@pytest.mark.spec("RUN-081")
async def test_returning_none_produces_no_output_frame() -> None:
    segments = generate_ts(seconds=2, width=W, height=H, fps=FPS, audio=False)
    source = [f for f in decode_segments(segments) if isinstance(f, VideoFrame)]
    with trio.fail_after(30):
        async with live_rig(DropOdd()) as rig:
            assert (await rig.start("s")).status_code == 200
            await rig.publish("s", segments, 1.0)
            rig.trickle.server.delete_channel("s")
            await rig.wait_for(lambda: "stream_stopped" in rig.event_types(), 10)
            rig.trickle.server.delete_channel("s-out")
            await trio.sleep(0.2)
    video = [f for f in decode_segments(rig.output) if isinstance(f, VideoFrame)]
    kept = {f.pts for f in source if round(f.time * FPS) % 2 == 0}
    assert {f.pts for f in video} == kept


class Params(LivePipeline):
    def __init__(self) -> None:
        self.seen: list[dict[str, object]] = []
        self.active = 0
        self.max_active = 0

    async def on_params_update(self, params: dict[str, object]) -> None:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        await trio.sleep(0.05)
        self.seen.append(params)
        self.active -= 1


@pytest.mark.spec("RUN-084", "RUN-086", "RUN-088")
async def test_params_whole_in_order_and_never_concurrent() -> None:
    pipeline = Params()
    big = {"prompt": "x" * 200_000}
    with trio.fail_after(30):
        async with live_rig(pipeline) as rig:
            assert (await rig.start("s")).status_code == 200
            await rig.control("s", big)  # far beyond one 32 KiB read
            with trio.fail_after(5):
                while not pipeline.seen:
                    await trio.sleep(0.01)
            rig.trickle.server.core.get("s-control")  # still there
            for i in range(5):
                reply = await rig.http.post(rig.runner.url + "/stream/params", json={"i": i})
                assert reply.status_code == 200
    assert pipeline.seen[0] == big
    assert pipeline.seen[1:] == [{"i": i} for i in range(5)]
    assert pipeline.max_active == 1


@pytest.mark.spec("RUN-102")
@pytest.mark.parametrize("suffix", ["-out", "-events"])
async def test_a_gone_output_channel_stops_the_session_within_1s(suffix: str) -> None:
    pipeline = Slow(0.0)
    segments = generate_ts(seconds=3, width=W, height=H, fps=FPS, audio=False)
    with trio.fail_after(30):
        async with live_rig(pipeline) as rig:
            assert (await rig.start("s")).status_code == 200
            manager = rig.runner.manager
            assert manager is not None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(rig.publish, "s", segments, 1.0)
                with trio.fail_after(5):
                    while "end" not in pipeline.log:
                        await trio.sleep(0.01)
                rig.trickle.server.delete_channel("s" + suffix)
                with trio.fail_after(1.0):
                    while manager.active_count:
                        await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
