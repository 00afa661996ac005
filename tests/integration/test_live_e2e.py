"""End to end: generated video through a real runner and trickle server and back."""

from __future__ import annotations

import numpy as np
import pytest
import trio

from tests.integration.live_harness import live_rig
from trio_trickle._media.decode import decode_segments
from trio_trickle._media.frames import AudioFrame, VideoFrame
from trio_trickle._media.testsrc import generate_ts, read_index, test_pattern
from trio_trickle.examples import Invert

WIDTH, HEIGHT, FPS, SECONDS = 128, 72, 30, 3


@pytest.mark.spec("RUN-074", "RUN-080", "RUN-099", "RUN-100", "RUN-101", "RUN-107", "RUN-108")
@pytest.mark.spec("RUN-109", "RUN-111", "RUN-112", "RUN-108")
async def test_invert_round_trip_preserves_frames_order_and_audio() -> None:
    segments = generate_ts(seconds=SECONDS, width=WIDTH, height=HEIGHT, fps=FPS, audio=True)
    source = decode_segments(segments)
    source_video = [f for f in source if isinstance(f, VideoFrame)]
    with trio.fail_after(40):
        async with live_rig(Invert()) as rig:
            response = await rig.start("inv")
            assert response.status_code == 200, response.text
            await rig.publish("inv", segments, pace=1.0)
            await trio.sleep(0.5)
            rig.trickle.server.delete_channel("inv")  # input ends: EOS on subscribe_url
            await rig.wait_for(lambda: "stream_stopped" in rig.event_types(), 10)
            rig.trickle.server.delete_channel("inv-out")
            await trio.sleep(0.2)
    stopped = [e["event"] for e in rig.events if e["event"].get("type") == "stream_stopped"]
    # EOS if the runner's next GET was already waiting, 404 if it came after the delete.
    assert stopped[0]["reason"] in ("input_ended", "input_gone")
    output = decode_segments(rig.output)
    video = [f for f in output if isinstance(f, VideoFrame)]
    audio = [f for f in output if isinstance(f, AudioFrame)]
    assert len(video) == len(source_video)
    # Input pts preserved (both on 1/90000), never re-stamped from a frame rate.
    assert [f.pts for f in video] == [f.pts for f in source_video]
    for frame in video:
        pixels = frame.tensor.numpy()
        restored = 255 - pixels.astype(np.int16)
        index = read_index(restored.clip(0, 255).astype(np.uint8))
        expected = test_pattern(WIDTH, HEIGHT, index).astype(np.int16)
        assert np.abs(restored - expected).mean() < 12
    assert [
        read_index((255 - f.tensor.numpy().astype(np.int16)).astype(np.uint8)) for f in video
    ] == list(range(len(video)))
    assert audio, "the audio came back"
    # A/V sync through the whole runner: the source beeps at the start of every
    # second, on frame ``second * FPS``; in the output the beep must start within
    # one frame interval of that frame.
    rate = audio[0].sample_rate
    samples = np.concatenate([a.to_numpy()[0] for a in audio])
    loud = np.flatnonzero(np.abs(samples) > 0.1)
    by_index = {
        read_index((255 - f.tensor.numpy().astype(np.int16)).astype(np.uint8)): f for f in video
    }
    for second in range(SECONDS):
        flash = by_index[second * FPS]
        low = round((flash.time - 0.2 - audio[0].time) * rate)
        onset = audio[0].time + loud[loud >= low][0] / rate
        assert abs(onset - flash.time) <= 1 / FPS, (second, onset, flash.time)


class Recorder(Invert):
    """Invert that records its hook calls and talks on the events and data channels."""

    def __init__(self, fail_video: bool = False) -> None:
        self.calls: list[str] = []
        self.params: list[dict[str, object]] = []
        self.fail_video = fail_video

    async def on_stream_start(self, params: dict[str, object]) -> None:
        self.calls.append("start")
        self.emit_event({"type": "hello", "params": params})

    def process_video(self, frame: VideoFrame) -> VideoFrame | None:
        if self.fail_video:
            raise RuntimeError("boom")
        self.emit_data({"pts": frame.pts})
        return super().process_video(frame)

    async def on_params_update(self, params: dict[str, object]) -> None:
        self.calls.append("params")
        self.params.append(params)
        self.emit_event({"type": "params_seen", "params": params})

    async def on_stream_stop(self) -> None:
        self.calls.append("stop")
        self.emit_event({"type": "goodbye"})


@pytest.mark.spec("RUN-062", "RUN-075", "RUN-078", "RUN-087", "RUN-090", "RUN-091", "RUN-095")
@pytest.mark.spec("RUN-085", "RUN-096", "RUN-097", "CHN-004", "CHN-007", "CHN-013", "CHN-021")
async def test_params_events_and_data_reach_their_channels() -> None:
    pipeline = Recorder()
    segments = generate_ts(seconds=2, width=WIDTH, height=HEIGHT, fps=FPS, audio=False)
    with trio.fail_after(40):
        async with live_rig(pipeline) as rig:
            assert (await rig.start("par", params={"prompt": "a"})).status_code == 200
            async with trio.open_nursery() as nursery:
                nursery.start_soon(rig.publish, "par", segments, 1.0)
                await rig.control("par", {"keep": "alive"})
                await rig.control("par", {"prompt": "b"})
                await rig.wait_for(lambda: "params_seen" in rig.event_types(), 5)
                reply = await rig.http.post(rig.runner.url + "/stream/params", json={"prompt": "c"})
                assert reply.status_code == 200
                assert reply.json() == {"status": "ok"}
            await rig.wait_for(lambda: len(rig.data) >= 10, 10)
            stop = await rig.http.post(rig.runner.url + "/stream/stop", content=b"bye")
            assert stop.status_code == 200
            await rig.wait_for(lambda: "stream_stopped" in rig.event_types(), 5)
    assert pipeline.params == [{"prompt": "b"}, {"prompt": "c"}]
    assert pipeline.calls[0] == "start"
    assert pipeline.calls[-1] == "stop"
    assert pipeline.calls.count("stop") == 1
    types = rig.event_types()
    assert types.index("hello") < types.index("params_seen") < types.index("goodbye")
    assert types.index("goodbye") < types.index("stream_stopped")
    stopped = rig.events[types.index("stream_stopped")]["event"]
    assert stopped["reason"] == "stop_requested"
    assert stopped["detail"] == "bye"
    beats = [e for e in rig.events if e.get("queue_event_type") == "stream_heartbeat"]
    assert len(beats) >= 2
    assert "fps" in beats[-1]["event"]
    for beat in beats:  # CHN-021 shape, CHN-004 integer epoch milliseconds
        assert beat["event"]["type"] == "heartbeat"
        assert isinstance(beat["event"]["timestamp"], int)
        assert beat["event"]["timestamp"] > 1_600_000_000_000
    # Frames flowed, so a heartbeat states the processing latency (RUN-096, TEL-032).
    latencies = [b["event"].get("latency_ms") for b in beats]
    assert any(isinstance(ms, float) and 0 <= ms < 5000 for ms in latencies), latencies
    assert any(e["event"].get("type") == "status" for e in rig.events)
    assert all(isinstance(record["pts"], int) for record in rig.data)


@pytest.mark.spec("RUN-082", "RUN-083", "RUN-104", "RUN-118", "RUN-015")
async def test_failing_hook_ends_that_session_and_the_next_one_runs() -> None:
    pipeline = Recorder(fail_video=True)
    segments = generate_ts(seconds=1, width=WIDTH, height=HEIGHT, fps=FPS, audio=False)
    with trio.fail_after(40):
        async with live_rig(pipeline) as rig:
            assert (await rig.start("bad")).status_code == 200
            await rig.publish("bad", segments, pace=0.5)
            await rig.wait_for(lambda: "stream_stopped" in rig.event_types(), 10)
            stopped = rig.events[rig.event_types().index("stream_stopped")]["event"]
            assert stopped["reason"] == "failed"
            assert "process_video failed: RuntimeError" in stopped["error"]
            assert "error" in rig.event_types()
            health = await rig.http.get(rig.runner.url + "/health")
            assert health.json()["status"] in ("IDLE", "OK")
            pipeline.fail_video = False
            rig.events.clear()
            assert (await rig.start("good")).status_code == 200
            await rig.publish("good", segments, pace=0.5)
            rig.trickle.server.delete_channel("good")
            await rig.wait_for(lambda: "stream_stopped" in rig.event_types(), 10)
            stopped = rig.events[rig.event_types().index("stream_stopped")]["event"]
            assert stopped["reason"] in ("input_ended", "input_gone")
            assert "error" not in stopped
            await rig.wait_for(lambda: len(rig.output) >= 1, 10)


@pytest.mark.spec("RUN-101", "RUN-100")
@pytest.mark.parametrize(
    ("suffix", "reasons", "media"),
    [
        # A deleted input ends with EOS if the runner's GET was waiting, 404 if it came after.
        ("", {"input_gone", "input_ended"}, False),
        ("", {"input_gone", "input_ended"}, True),
        ("-control", {"control_gone"}, False),
        ("-control", {"control_gone"}, True),
    ],
)
async def test_deleting_input_or_control_stops_the_session_within_1s(
    suffix: str, reasons: set[str], media: bool
) -> None:
    segments = generate_ts(seconds=4, width=WIDTH, height=HEIGHT, fps=FPS, audio=True)
    with trio.fail_after(30):
        async with live_rig(Invert()) as rig, trio.open_nursery() as nursery:
            assert (await rig.start("del")).status_code == 200
            await rig.wait_for(lambda: "status" in rig.event_types(), 5)
            manager = rig.runner.manager
            assert manager is not None
            assert manager.active_count == 1
            if media:  # frames are flowing through decode, process and encode
                nursery.start_soon(rig.publish, "del", segments, 1.0)
                await rig.wait_for(lambda: len(rig.output) >= 1, 10)
            rig.trickle.server.delete_channel("del" + suffix)
            started = trio.current_time()
            with trio.fail_after(1.0):
                while manager.active_count:
                    await trio.sleep(0.01)
            assert trio.current_time() - started < 1.0
            await rig.wait_for(lambda: "stream_stopped" in rig.event_types(), 5)
            nursery.cancel_scope.cancel()
    stopped = rig.events[rig.event_types().index("stream_stopped")]["event"]
    assert stopped["reason"] in reasons


@pytest.mark.spec("RUN-113", "RUN-112")
async def test_an_input_timestamp_restart_keeps_the_output_going() -> None:
    """The input's pts jump back 2 s (an encoder restart): later frames still come out,
    re-anchored after the earlier ones, instead of being dropped as steps back."""
    segments = generate_ts(seconds=2, width=WIDTH, height=HEIGHT, fps=FPS, audio=False)
    with trio.fail_after(40):
        async with live_rig(Invert()) as rig:
            assert (await rig.start("rst")).status_code == 200
            await rig.publish("rst", segments + segments, pace=0.5)
            await trio.sleep(0.5)
            rig.trickle.server.delete_channel("rst")
            await rig.wait_for(lambda: "stream_stopped" in rig.event_types(), 10)
            rig.trickle.server.delete_channel("rst-out")
            await trio.sleep(0.2)
    video = [f for f in decode_segments(rig.output) if isinstance(f, VideoFrame)]
    indices = [
        read_index((255 - f.tensor.numpy().astype(np.int16)).astype(np.uint8)) for f in video
    ]
    assert indices == list(range(2 * FPS)) * 2
    pts = [f.pts for f in video]
    assert pts == sorted(set(pts))  # strictly increasing across the restart
