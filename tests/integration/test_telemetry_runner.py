"""The runner's telemetry sources: setup, start failure, hook failures, bounds."""

from __future__ import annotations

import json
import threading
import time

import pytest
import trio

from tests.integration.live_harness import live_rig
from tests.integration.test_telemetry_e2e import CollectingSink
from trio_trickle._gateway.events import read_stream_events
from trio_trickle._media.decode import decode_segments
from trio_trickle._media.encode_settings import EncoderSettings
from trio_trickle._media.frames import VideoFrame
from trio_trickle._media.testsrc import generate_ts
from trio_trickle._runner.serve import open_runner
from trio_trickle._sdk.live_pipeline import LivePipeline, current_telemetry_sink
from trio_trickle._session.session import Session, SessionSettings
from trio_trickle._telemetry.runner import (
    CapturedEvent,
    RunnerTelemetry,
    connection_info_from_env,
)
from trio_trickle._wire.runner import StreamStartRequest
from trio_trickle._wire.telemetry import TelemetryRelay
from trio_trickle.examples import Invert, Passthrough


class SetupFails(LivePipeline):
    def setup(self) -> None:
        raise OSError("no weights")


@pytest.mark.spec("TEL-026", "TEL-036")
async def test_a_failed_setup_is_an_unrecoverable_load_error() -> None:
    with trio.fail_after(20):
        async with open_runner(SetupFails()) as runner:
            await runner.wait_setup()
            manager = runner.manager
            assert manager is not None
            pending = [TelemetryRelay.from_bytes(b).event for b in manager.telemetry.take_pending()]
    names = [e.name for e in pending]
    assert names == ["pipeline_load_start", "error"]
    error = pending[1].error
    assert error is not None
    assert error.error_type == "pipeline_load_failed"
    assert error.recoverable is False
    assert error.exception_type == "OSError"


class StartFails(LivePipeline):
    async def on_stream_start(self, params: dict[str, object]) -> None:
        raise ValueError("bad params")


class Flaky(LivePipeline):
    def process_video(self, frame: VideoFrame) -> VideoFrame:
        raise RuntimeError("flaky")

    async def on_params_update(self, params: dict[str, object]) -> None:
        raise KeyError("prompt")


async def _collect(pipeline: LivePipeline, action: str) -> list[object]:
    sink = CollectingSink()
    settings = SessionSettings(device="cpu", heartbeat_interval=5.0, max_hook_failures=1000)
    segments = generate_ts(seconds=1, width=64, height=48, fps=30, audio=False)
    with trio.fail_after(30):
        async with live_rig(pipeline, settings=settings) as rig, trio.open_nursery() as nursery:
            rig.create_channels("t")
            nursery.start_soon(read_stream_events, rig.url("t", "-events"), sink)
            start = await rig.http.post(rig.runner.url + "/stream/start", json=rig.start_body("t"))
            if action == "media":
                assert start.status_code == 200
                await rig.publish("t", segments, 0.3)
                reply = await rig.http.post(rig.runner.url + "/stream/params", json={"a": 1})
                assert reply.status_code == 500
                await rig.http.post(rig.runner.url + "/stream/stop")
            else:
                assert start.status_code == 500
            with trio.fail_after(5):
                while not any(e.name == "session_closed" for e in sink.events):
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
    return list(sink.events)


@pytest.mark.spec("TEL-029", "TEL-034", "TEL-036")
async def test_a_failed_start_reports_startup_failure_and_closes_the_session() -> None:
    events = await _collect(StartFails(), "start")
    names = [e.name for e in events]  # type: ignore[attr-defined]
    assert names[-3:] == ["session_created", "error", "session_closed"]
    error = events[-2].error  # type: ignore[attr-defined]
    assert error.error_type == "stream_startup_failed"
    assert error.recoverable is False
    assert "stream_started" not in names


@pytest.mark.spec("TEL-036", "TEL-013", "TEL-012")
async def test_hook_failures_are_recoverable_errors_with_their_types() -> None:
    events = await _collect(Flaky(), "media")
    errors = {e.error.error_type: e.error for e in events if e.name == "error"}  # type: ignore[attr-defined]
    assert errors["pipeline_processing_failed"].recoverable is True
    assert errors["params_update_failed"].recoverable is True
    assert errors["params_update_failed"].exception_type == "KeyError"
    wire = next(e for e in events if e.name == "error").to_wire()  # type: ignore[attr-defined]
    assert set(wire["data"]["error"]) >= {"error_type", "message", "recoverable"}


@pytest.mark.spec("TEL-043", "TEL-045")
async def test_the_relay_queue_is_bounded_and_never_blocks() -> None:
    request = StreamStartRequest(
        gateway_request_id="b",
        control_url="http://127.0.0.1:9/c",
        events_url="http://127.0.0.1:9/e",
        subscribe_url="http://127.0.0.1:9/i",
    )
    async with trio.open_nursery():
        import httpx

        async with httpx.AsyncClient() as client:
            session = Session(request, Passthrough(), client=client)
            assert session.settings.telemetry_capacity == 1024

            def flood() -> float:
                began = time.monotonic()
                for _ in range(20_000):
                    session._telemetry("custom_probe", n=1)
                return time.monotonic() - began

            took = await trio.to_thread.run_sync(flood)
    outlet = session.telemetry_outlet
    assert len(outlet) == 1024
    assert outlet.dropped == 20_000 - 1024
    assert took < 10  # never waits on the (absent) events channel
    newest = outlet.get_nowait(2000)[-1]
    assert isinstance(newest, CapturedEvent)
    relay = json.loads(session.telemetry.encode(newest))  # built only when it survived
    assert relay["type"] == "telemetry"
    assert relay["event"]["data"]["type"] == "custom_probe"
    assert relay["event"]["timestamp"] == str(newest.timestamp_ms)  # stamped at the source


@pytest.mark.spec("TEL-020", "TEL-007")
def test_connection_info_and_client_source() -> None:
    info = connection_info_from_env(
        {"TRIO_TRICKLE_GPU_TYPE": "H100", "NOMAD_DC": "us-east", "FAL_RUNNER_ID": "r1"}
    )
    assert info == {"gpu_type": "H100", "fal_region": "us-east", "fal_runner_id": "r1"}
    assert set(connection_info_from_env({})) == {"gpu_type"}
    labelled = connection_info_from_env({"FAL_LOG_LABELS": '{"app": "scope", "n": 2}'})
    assert labelled["fal_log_labels"] == {"app": "scope", "n": 2}  # parsed, as Scope does
    assert connection_info_from_env({"FAL_LOG_LABELS": "a=b"})["fal_log_labels"] == "a=b"
    event = RunnerTelemetry(connection_info=labelled).stamp("probe", connection_id="c")
    assert event.to_wire()["data"]["connection_info"]["fal_log_labels"] == {"app": "scope", "n": 2}
    assert RunnerTelemetry(connection_info={}).client_source == "trio-trickle"


class EmitsTelemetry(LivePipeline):
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def on_stream_start(self, params: dict[str, object]) -> None:
        sink = current_telemetry_sink()
        assert sink is not None
        event = RunnerTelemetry(connection_info={}).stamp("model_warmed", connection_id="t")
        sink.emit(event)
        sink.emit("not an event")  # type: ignore[arg-type]  # counted, never raised
        self.sent.append(event.id)
        assert sink.failed == 1

    def process_video(self, frame: VideoFrame) -> VideoFrame:
        # A sync hook runs in a worker thread: the stream's sink is found and safe there.
        if len(self.sent) == 1:
            assert threading.current_thread() is not threading.main_thread()
            sink = current_telemetry_sink()
            assert sink is not None
            event = RunnerTelemetry(connection_info={}).stamp("frame_seen", connection_id="t")
            sink.emit(event)
            self.sent.append(event.id)
        return frame


@pytest.mark.spec("TEL-040", "TEL-047", "TEL-039")
async def test_runner_code_relays_its_own_events_through_the_stream_sink() -> None:
    pipeline = EmitsTelemetry()
    sink = CollectingSink()
    assert current_telemetry_sink() is None  # outside any stream
    with trio.fail_after(30):
        async with live_rig(pipeline) as rig, trio.open_nursery() as nursery:
            rig.create_channels("t")
            nursery.start_soon(read_stream_events, rig.url("t", "-events"), sink)
            start = await rig.http.post(rig.runner.url + "/stream/start", json=rig.start_body("t"))
            assert start.status_code == 200
            await rig.publish(
                "t", generate_ts(seconds=1, width=64, height=48, fps=30, audio=False), 0.2
            )
            with trio.fail_after(5):
                while len(pipeline.sent) < 2:
                    await trio.sleep(0.02)
            await rig.http.post(rig.runner.url + "/stream/stop")
            with trio.fail_after(5):
                while not any(e.name == "session_closed" for e in sink.events):
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
    relayed = [e for e in sink.events if e.name in ("model_warmed", "frame_seen")]
    assert [e.id for e in relayed] == pipeline.sent


@pytest.mark.spec("TEL-036", "TEL-033")
async def test_a_broken_input_is_a_media_input_loop_failure() -> None:
    sink = CollectingSink()
    with trio.fail_after(30):
        async with live_rig(Invert()) as rig, trio.open_nursery() as nursery:
            rig.create_channels("g")
            nursery.start_soon(read_stream_events, rig.url("g", "-events"), sink)
            body = rig.start_body("g")
            start = await rig.http.post(rig.runner.url + "/stream/start", json=body)
            assert start.status_code == 200
            await rig.publish("g", [bytes(range(256)) * 64], 0.1)  # not MPEG-TS
            rig.trickle.server.delete_channel("g")  # the input ends before any stream showed up
            with trio.fail_after(10):
                while not any(e.name == "session_closed" for e in sink.events):
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
    errors = [e.error for e in sink.events if e.name == "error"]
    assert any(
        err is not None and err.error_type == "media_input_loop_failed" and not err.recoverable
        for err in errors
    )
    stopped = next(e for e in sink.events if e.name == "stream_stopped")
    # The 404 on the input came first, then the decoder failed on what it had.
    assert stopped.metadata["reason"] in ("input_gone", "failed")
    assert stopped.error is not None
    assert stopped.error.error_type == "stream_failed"


class WrongTypeOnce(Invert):
    def __init__(self) -> None:
        self.calls = 0

    def process_video(self, frame: VideoFrame) -> VideoFrame:
        self.calls += 1
        if self.calls == 3:
            return "not a frame"  # type: ignore[return-value]
        return super().process_video(frame)


@pytest.mark.spec("RUN-082")
async def test_a_hook_returning_the_wrong_type_drops_that_frame_only() -> None:
    sink = CollectingSink()
    segments = generate_ts(seconds=1, width=64, height=48, fps=30, audio=False)
    with trio.fail_after(30):
        async with live_rig(WrongTypeOnce()) as rig, trio.open_nursery() as nursery:
            assert (await rig.start("w")).status_code == 200  # also reads the output
            nursery.start_soon(read_stream_events, rig.url("w", "-events"), sink)
            await rig.publish("w", segments, 0.2)
            rig.trickle.server.delete_channel("w")
            with trio.fail_after(10):
                while not any(e.name == "session_closed" for e in sink.events):
                    await trio.sleep(0.02)
            rig.trickle.server.delete_channel("w-out")
            await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
    errors = [e.error for e in sink.events if e.name == "error" and e.error is not None]
    assert any("returned str, not VideoFrame" in (err.message or "") for err in errors), errors
    stopped = next(e for e in sink.events if e.name == "stream_stopped")
    assert stopped.metadata["reason"] in ("input_ended", "input_gone")  # it kept running
    video = [f for f in decode_segments(rig.output) if isinstance(f, VideoFrame)]
    assert len(video) == 29  # only the third frame is missing


@pytest.mark.spec("TEL-036")
async def test_an_encoder_that_cannot_open_is_a_media_output_loop_failure() -> None:
    sink = CollectingSink()
    settings = SessionSettings(
        heartbeat_interval=0.5, device="cpu", encoder=EncoderSettings(codec="no_such_codec")
    )
    segments = generate_ts(seconds=1, width=64, height=48, fps=30, audio=False)
    with trio.fail_after(30):
        async with live_rig(Invert(), settings=settings) as rig, trio.open_nursery() as nursery:
            rig.create_channels("o")
            nursery.start_soon(read_stream_events, rig.url("o", "-events"), sink)
            start = await rig.http.post(rig.runner.url + "/stream/start", json=rig.start_body("o"))
            assert start.status_code == 200
            await rig.publish("o", segments, 0.2)
            with trio.fail_after(10):
                while not any(e.name == "session_closed" for e in sink.events):
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
    errors = [e.error for e in sink.events if e.name == "error" and e.error is not None]
    assert any(
        err.error_type == "media_output_loop_failed" and not err.recoverable for err in errors
    ), errors
    stopped = next(e for e in sink.events if e.name == "stream_stopped")
    assert stopped.metadata["reason"] == "failed"
