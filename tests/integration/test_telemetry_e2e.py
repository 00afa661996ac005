"""Telemetry end to end: runner lifecycle events reach the gateway's egress sink verbatim."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.integration.live_harness import live_rig
from trio_trickle._gateway.events import gateway_connection, read_stream_events
from trio_trickle._media.testsrc import generate_ts
from trio_trickle._session.session import SessionSettings
from trio_trickle._telemetry.runner import RunnerTelemetry
from trio_trickle._wire.telemetry import TelemetryEvent
from trio_trickle.examples import Invert


class RecordingTelemetry(RunnerTelemetry):
    """The runner's real telemetry, also keeping every event it stamps."""

    def __init__(self) -> None:
        super().__init__(connection_info={"gpu_type": "none"})
        self.stamped: list[TelemetryEvent] = []

    def stamp(self, name: str, **kwargs: Any) -> TelemetryEvent:
        event = super().stamp(name, **kwargs)  # process events (runner_ready, ...)
        self.stamped.append(event)
        return event

    def record(self, event: TelemetryEvent) -> None:
        self.stamped.append(event)  # stream events, as the relay builds them


class CollectingSink:
    """An egress sink that keeps what it is given, for the test to inspect."""

    def __init__(self) -> None:
        self.events: list[TelemetryEvent] = []
        self.accepted = self.delivered = self.dropped = self.failed = 0

    def emit(self, event: TelemetryEvent) -> None:
        self.accepted += 1
        self.events.append(event)

    async def run(self) -> None:
        await trio.sleep_forever()

    async def aclose(self) -> None:
        return None


LIFECYCLE = [
    "pipeline_load_start",
    "pipeline_loaded",
    "runner_ready",
    "session_created",
    "stream_started",
    "playback_ready",
    "stream_heartbeat",
    "stream_stopped",
    "session_closed",
]


@pytest.mark.spec("TEL-017", "TEL-018", "TEL-019", "TEL-021", "TEL-022", "TEL-023", "TEL-024")
@pytest.mark.spec("TEL-025", "TEL-027", "TEL-028", "TEL-030", "TEL-031", "TEL-033", "TEL-034")
@pytest.mark.spec("TEL-035", "TEL-037", "TEL-040", "TEL-041", "TEL-044", "TEL-046")
async def test_one_stream_yields_the_whole_ordered_lifecycle_at_the_egress_sink() -> None:
    telemetry = RecordingTelemetry()
    sink = CollectingSink()
    segments = generate_ts(seconds=2, width=64, height=48, fps=30, audio=False)
    settings = SessionSettings(heartbeat_interval=0.3, device="cpu")
    with trio.fail_after(40):
        async with live_rig(Invert(), settings=settings, telemetry=telemetry) as rig:
            rig.create_channels("tel")
            body = rig.start_body("tel", params={"daydream_user_id": "user-7"})
            async with (
                gateway_connection(sink, connection_id="tel", user_id="user-7"),
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(read_stream_events, rig.url("tel", "-events"), sink)
                started = await rig.http.post(rig.runner.url + "/stream/start", json=body)
                assert started.status_code == 200
                await rig.publish("tel", segments, 1.0)
                await trio.sleep(0.4)
                stop = await rig.http.post(rig.runner.url + "/stream/stop")
                assert stop.status_code == 200
                with trio.fail_after(5):
                    while not any(e.name == "session_closed" for e in sink.events):
                        await trio.sleep(0.02)
                nursery.cancel_scope.cancel()
    names = [e.name for e in sink.events]
    assert names[0] == "gateway_connected"
    assert names[-1] == "gateway_disconnected"
    relayed = [e for e in sink.events if not e.name.startswith("gateway_")]
    order = [n for n in (e.name for e in relayed) if n in LIFECYCLE]
    assert [n for n in order if n != "stream_heartbeat"] == [
        n for n in LIFECYCLE if n != "stream_heartbeat"
    ]
    beats = [i for i, n in enumerate(order) if n == "stream_heartbeat"]
    assert len(beats) >= 2
    assert order.index("stream_started") < beats[0]
    assert beats[-1] < order.index("stream_stopped")
    beat_data = [e.to_wire()["data"] for e in relayed if e.name == "stream_heartbeat"]
    assert any(isinstance(d.get("latency_ms"), float) for d in beat_data), beat_data
    assert all(d["telemetry_dropped"] == 0 for d in beat_data)  # reported, and none lost here
    # Every event of the stream carries the stream's ids; only the process events
    # (TEL-044: stamped before any stream existed) carry none.
    process = {"pipeline_load_start", "pipeline_loaded", "runner_ready"}
    stream_events = [e for e in relayed if e.name not in process]
    assert {e.name for e in stream_events} >= set(LIFECYCLE) - process
    assert stream_events[0].session_id
    assert {e.session_id for e in stream_events} == {stream_events[0].session_id}
    assert {e.connection_id for e in stream_events} == {"tel"}
    assert {e.user_id for e in stream_events} == {"user-7"}
    assert all(e.session_id is None for e in relayed if e.name in process)
    assert all(e.connection_id == "tel" for e in sink.events if e.name.startswith("gateway_"))
    # Verbatim: exactly the events the runner stamped, ids and timestamps unchanged.
    stamped = {e.id: e.to_wire() for e in telemetry.stamped}
    for event in relayed:
        assert event.to_wire() == stamped[event.id]
    assert len({e.id for e in sink.events}) == len(sink.events)
