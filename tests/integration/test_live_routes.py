"""The ``LivePipeline`` runner's HTTP surface over real sockets, and the emit API.

Request validation, auth, health gating, params/stop/status selection and the
shapes of every answer. Sessions started here only wait on an empty input
channel of a local trickle server: no media flows (the session tests do that).
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from fractions import Fraction
from typing import Any

import httpx
import pytest
import trio

from trio_trickle import InvalidMessage, PayloadTooLarge, TrickleServerHandle, open_trickle_server
from trio_trickle._runner.serve import RunnerHandle, open_runner
from trio_trickle._sdk.live_pipeline import (
    LivePipeline,
    StreamOutlets,
    bind_outlets,
    unbind_outlets,
)
from trio_trickle._telemetry.outlet import DropOldestOutlet
from trio_trickle.examples import Invert, Passthrough

URL = "http://127.0.0.1:1/x"
VALID: dict[str, Any] = {
    "gateway_request_id": "stream-1",
    "control_url": URL + "-control",
    "events_url": URL + "-events",
    "subscribe_url": URL,
}


class Recorder(LivePipeline):
    """Records hook calls; ``fail_start`` makes ``on_stream_start`` raise."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_start = False

    def on_stream_start(self, params: dict[str, Any]) -> None:
        self.calls.append(f"start {json.dumps(params, sort_keys=True)}")
        if self.fail_start:
            raise ValueError("secret start failure")

    def on_params_update(self, params: dict[str, Any]) -> None:
        if params.get("boom"):
            raise RuntimeError("secret params failure")
        self.calls.append(f"params {json.dumps(params, sort_keys=True)}")

    def on_stream_stop(self) -> None:
        self.calls.append("stop")

    def process_video(self, frame: Any) -> Any:
        return frame


@asynccontextmanager
async def served(
    pipeline: LivePipeline, *, ready: bool = True, **options: Any
) -> AsyncIterator[tuple[RunnerHandle, httpx.AsyncClient]]:
    async with (
        open_runner(pipeline, **options) as handle,
        httpx.AsyncClient(base_url=handle.url, timeout=10) as client,
    ):
        if ready:
            await handle.wait_setup()
        yield handle, client


def assert_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["detail"]
    assert list(body["detail"]) == ["msg"]
    assert isinstance(body["detail"]["msg"], str)
    assert body["detail"]["msg"]
    return str(body["detail"]["msg"])


def start_body(trickle: TrickleServerHandle, stream_id: str) -> dict[str, Any]:
    """A start body whose channels exist and stay quiet, so the session just waits."""
    for suffix in ("control", "events", "in"):
        trickle.server.create_channel(f"{stream_id}-{suffix}")
    return {
        "gateway_request_id": stream_id,
        "control_url": trickle.url + f"{stream_id}-control",
        "events_url": trickle.url + f"{stream_id}-events",
        "subscribe_url": trickle.url + f"{stream_id}-in",
        "params": {"prompt": "a"},
        "model_id": "m",
    }


# -- /stream/start validation ---------------------------------------------------------

INVALID_STARTS: list[tuple[str, bytes]] = [
    ("not json", b"{"),
    ("array", b"[]"),
    ("string", b'"x"'),
    ("empty body", b""),
    ("no id", json.dumps({k: v for k, v in VALID.items() if k != "gateway_request_id"}).encode()),
    ("empty id", json.dumps({**VALID, "gateway_request_id": ""}).encode()),
    ("numeric id", json.dumps({**VALID, "gateway_request_id": 7}).encode()),
    ("long id", json.dumps({**VALID, "gateway_request_id": "x" * 257}).encode()),
    ("no control", json.dumps({k: v for k, v in VALID.items() if k != "control_url"}).encode()),
    ("empty events", json.dumps({**VALID, "events_url": ""}).encode()),
    ("no media", json.dumps({**VALID, "subscribe_url": ""}).encode()),
    ("data only", json.dumps({**VALID, "subscribe_url": None, "data_url": URL}).encode()),
    ("relative url", json.dumps({**VALID, "subscribe_url": "/in"}).encode()),
    ("ftp url", json.dumps({**VALID, "publish_url": "ftp://h/x"}).encode()),
    ("params list", json.dumps({**VALID, "params": [1]}).encode()),
    ("params string", json.dumps({**VALID, "params": "a=1"}).encode()),
]


@pytest.mark.spec(
    "RUN-039", "RUN-040", "RUN-043", "RUN-044", "RUN-045", "RUN-046", "RUN-047", "RUN-055"
)
@pytest.mark.parametrize("route", ["/stream/start", "/live-video-to-video"])
async def test_invalid_start_bodies_are_400(route: str) -> None:
    with trio.fail_after(10):
        async with served(Recorder()) as (_, client):
            for name, raw in INVALID_STARTS:
                response = await client.post(route, content=raw)
                assert response.status_code == 400, name
                assert_error(response, 400)


@pytest.mark.spec("RUN-008")
async def test_rejected_starts_change_nothing() -> None:
    pipeline = Recorder()
    with trio.fail_after(10):
        async with served(pipeline) as (_, client):
            for _, raw in INVALID_STARTS:
                await client.post("/stream/start", content=raw)
            assert (await client.get("/health")).json() == {"status": "IDLE"}
            status = (await client.get("/stream/status")).json()
            assert status["sessions"] == []
            assert status["last_error"] is None
    assert pipeline.calls == []


# -- health gating -----------------------------------------------------------------------


@pytest.mark.spec("RUN-048", "RUN-010", "RUN-011")
async def test_start_while_loading_is_503_at_once() -> None:
    release = threading.Event()

    class Loading(Recorder):
        def setup(self) -> None:
            release.wait(10)

    with trio.fail_after(15):
        async with served(Loading(), ready=False) as (handle, client):
            assert (await client.get("/health")).json() == {"status": "LOADING"}
            for route in ("/stream/start", "/live-video-to-video"):
                with trio.fail_after(1):
                    response = await client.post(route, json=VALID)
                assert_error(response, 503)
            status = (await client.get("/stream/status")).json()
            assert status["status"] == "LOADING"
            release.set()
            await handle.wait_setup()
            assert (await client.get("/health")).json() == {"status": "IDLE"}


@pytest.mark.spec("RUN-049", "RUN-012", "RUN-072")
async def test_start_after_failed_setup_is_503() -> None:
    class Broken(Recorder):
        async def setup(self) -> None:
            raise MemoryError("secret")

    with trio.fail_after(10):
        async with served(Broken()) as (_, client):
            response = await client.post("/stream/start", json=VALID)
            assert "secret" not in assert_error(response, 503)
            health = await client.get("/health")
            assert (health.status_code, health.json()) == (503, {"status": "ERROR"})
            status = (await client.get("/stream/status")).json()
            assert status["status"] == "ERROR"
            assert status["last_error"] == "setup failed: MemoryError"


# -- auth and routing ---------------------------------------------------------------------


@pytest.mark.spec("RUN-004", "RUN-006")
async def test_live_routes_need_the_token() -> None:
    with trio.fail_after(10):
        async with served(Recorder(), token="tok") as (_, client):
            calls = [
                ("POST", "/stream/start"),
                ("POST", "/live-video-to-video"),
                ("POST", "/stream/params"),
                ("POST", "/stream/stop"),
                ("GET", "/stream/status"),
            ]
            for method, path in calls:
                assert_error(await client.request(method, path, json=VALID), 401)
                wrong = {"Authorization": "Bearer tok2"}
                assert_error(await client.request(method, path, json=VALID, headers=wrong), 401)
            auth = {"Authorization": "Bearer tok"}
            assert (await client.post("/stream/stop", headers=auth)).status_code == 200
            assert (await client.get("/stream/status", headers=auth)).status_code == 200
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/openapi.json")).status_code == 200


@pytest.mark.spec("RUN-007")
async def test_wrong_method_and_unknown_route() -> None:
    with trio.fail_after(10):
        async with served(Recorder()) as (_, client):
            assert_error(await client.get("/stream/start"), 405)
            assert_error(await client.post("/stream/status"), 405)
            assert_error(await client.post("/predict"), 404)
            assert_error(await client.get("/stream"), 404)


@pytest.mark.spec("RUN-035")
async def test_live_openapi_lists_the_live_routes() -> None:
    with trio.fail_after(10):
        async with served(Recorder()) as (_, client):
            document = (await client.get("/openapi.json")).json()
    assert {"/stream/start", "/live-video-to-video", "/stream/stop"} <= set(document["paths"])
    assert "/predict" not in document["paths"]


# -- params, stop, status without sessions -----------------------------------------------


@pytest.mark.spec("RUN-060", "RUN-061")
async def test_params_without_a_session() -> None:
    with trio.fail_after(10):
        async with served(Recorder()) as (_, client):
            assert_error(await client.post("/stream/params", json={"a": 1}), 404)
            headers = {"X-Stream-Id": "nope"}
            assert_error(await client.post("/stream/params", json={"a": 1}, headers=headers), 404)
            for raw in (b"", b"[1]", b"{", b'"a"'):
                assert_error(await client.post("/stream/params", content=raw), 400)


@pytest.mark.spec("RUN-064", "RUN-066")
@pytest.mark.parametrize(
    "raw", [None, b"", b"stream ended", b'"bye"', b'{"reason": "x"}', b"[1]", b"\xff\xfe", b"null"]
)
async def test_stop_is_idempotent_and_takes_any_body(raw: bytes | None) -> None:
    with trio.fail_after(10):
        async with served(Recorder()) as (_, client):
            for headers in ({}, {"X-Stream-Id": "none"}):
                response = await client.post("/stream/stop", content=raw, headers=headers)
                assert response.status_code == 200
                assert response.headers["content-type"] == "application/json"
                assert response.json() == {"status": "stopped"}


@pytest.mark.spec("RUN-069", "RUN-050", "RUN-071", "RUN-072")
async def test_status_without_sessions() -> None:
    with trio.fail_after(10):
        async with served(Recorder()) as (_, client):
            response = await client.get("/stream/status")
            assert response.json() == {
                "status": "IDLE",
                "capacity": 1,
                "sessions": [],
                "last_error": None,
            }
        async with served(Recorder(), capacity=3) as (_, client):
            response = await client.get("/stream/status", headers={"X-Stream-Id": "x"})
            assert response.json()["capacity"] == 3
            assert response.json()["sessions"] == []


# -- routes against running sessions -----------------------------------------------------


@pytest.mark.spec(
    "RUN-051",
    "RUN-052",
    "RUN-053",
    "RUN-058",
    "RUN-059",
    "RUN-062",
    "RUN-063",
    "RUN-066",
    "RUN-070",
    "RUN-071",
    "RUN-014",
    "RUN-015",
)
async def test_session_routes() -> None:
    pipeline = Recorder()
    with trio.fail_after(20):
        async with (
            open_trickle_server() as trickle,
            served(pipeline, capacity=2) as (_, client),
        ):
            one, two = start_body(trickle, "one"), start_body(trickle, "two")
            response = await client.post("/stream/start", json=one)
            assert response.json() == {"status": "started", "gateway_request_id": "one"}
            assert pipeline.calls == ['start {"prompt": "a"}']
            assert (await client.get("/health")).json() == {"status": "OK"}
            assert_error(await client.post("/stream/start", json=one), 409)
            response = await client.post("/live-video-to-video", json=two)
            assert response.json() == {"publish_url": "", "subscribe_url": "", "control_url": ""}
            three = start_body(trickle, "three")
            assert_error(await client.post("/stream/start", json=three), 503)

            status = (await client.get("/stream/status")).json()
            assert sorted(s["gateway_request_id"] for s in status["sessions"]) == ["one", "two"]
            entry = status["sessions"][0]
            assert set(entry) == {
                "gateway_request_id",
                "state",
                "started_at_ms",
                "params",
                "fps",
                "frames_in",
                "frames_out",
                "frames_dropped",
            }
            picked = await client.get("/stream/status", headers={"X-Stream-Id": "two"})
            assert [s["gateway_request_id"] for s in picked.json()["sessions"]] == ["two"]

            # Two sessions: params and stop need X-Stream-Id.
            assert_error(await client.post("/stream/params", json={"x": 1}), 400)
            assert_error(await client.post("/stream/stop"), 400)
            headers = {"X-Stream-Id": "one"}
            response = await client.post("/stream/params", json={"x": 1}, headers=headers)
            assert response.json() == {"status": "ok"}
            response = await client.post("/stream/params", json={"boom": 1}, headers=headers)
            assert "secret" not in assert_error(response, 500)
            status = (await client.get("/stream/status", headers=headers)).json()
            assert status["sessions"][0]["params"] == {"x": 1}
            assert status["last_error"] == "on_params_update failed: RuntimeError"
            assert (await client.get("/health")).json() == {"status": "OK"}

            response = await client.post("/stream/stop", content=b"done", headers=headers)
            assert response.json() == {"status": "stopped"}
            assert pipeline.calls.count("stop") == 1
            # One session left: no header needed any more.
            response = await client.post("/stream/params", json={"y": 2})
            assert response.json() == {"status": "ok"}
            assert (await client.post("/stream/stop")).json() == {"status": "stopped"}
            assert (await client.post("/stream/stop")).json() == {"status": "stopped"}
            assert pipeline.calls.count("stop") == 2
            assert (await client.get("/health")).json() == {"status": "IDLE"}


@pytest.mark.spec("RUN-054", "RUN-015", "RUN-104")
async def test_failing_on_stream_start_is_500_and_frees_the_slot() -> None:
    pipeline = Recorder()
    pipeline.fail_start = True
    with trio.fail_after(20):
        async with open_trickle_server() as trickle, served(pipeline) as (_, client):
            body = start_body(trickle, "s")
            message = assert_error(await client.post("/stream/start", json=body), 500)
            assert "secret" not in message
            assert (await client.get("/health")).json() == {"status": "IDLE"}
            assert (await client.get("/stream/status")).json()["sessions"] == []
            pipeline.fail_start = False
            response = await client.post("/stream/start", json=body)
            assert response.status_code == 200
    assert "stop" in pipeline.calls  # RUN-105: shutdown stopped the second session


@pytest.mark.spec("RUN-057")
async def test_model_id_mismatch_on_live_video_to_video() -> None:
    with trio.fail_after(20):
        async with (
            open_trickle_server() as trickle,
            served(Recorder(), model_id="other") as (_, client),
        ):
            body = start_body(trickle, "s")
            assert_error(await client.post("/live-video-to-video", json=body), 400)
            response = await client.post("/live-video-to-video", json={**body, "model_id": ""})
            assert response.status_code == 200


@pytest.mark.spec("RUN-105")
async def test_leaving_open_runner_stops_running_sessions() -> None:
    pipeline = Recorder()
    with trio.fail_after(20):
        async with open_trickle_server() as trickle:
            async with served(pipeline, capacity=2) as (_, client):
                for name in ("a", "b"):
                    response = await client.post("/stream/start", json=start_body(trickle, name))
                    assert response.status_code == 200
            assert pipeline.calls.count("stop") == 2


# -- the SDK surface: overrides and emits -------------------------------------------------


@pytest.mark.spec("RUN-117")
def test_overrides() -> None:
    class Sub(Invert):
        async def on_stream_stop(self) -> None:
            pass

    assert not any(Passthrough.overrides(name) for name in LivePipeline.hook_names)
    assert Invert.overrides("process_video")
    assert not Invert.overrides("process_audio")
    assert Sub.overrides("process_video")
    assert Sub.overrides("on_stream_stop")
    assert Sub().overrides("process_video")  # callable on an instance too
    with pytest.raises(ValueError, match="not a LivePipeline hook"):
        Passthrough.overrides("predict")


def test_base_hooks_pass_frames_through() -> None:
    frame = object()
    pipeline = Passthrough()
    assert pipeline.process_video(frame) is frame
    assert pipeline.process_audio(frame) is frame
    pipeline.setup()
    pipeline.on_stream_start({})
    pipeline.on_params_update({})
    pipeline.on_stream_stop()


def test_invert_example_inverts_on_the_frames_device() -> None:
    torch = pytest.importorskip("torch")
    from trio_trickle._media.frames import VideoFrame

    tensor = torch.tensor([[[0, 128, 255]]], dtype=torch.uint8)
    frame = VideoFrame(tensor=tensor, pts=3000, time_base=Fraction(1, 90000))
    out = Invert().process_video(frame)
    assert out.tensor.tolist() == [[[255, 127, 0]]]
    assert out.tensor.device == tensor.device
    assert (out.pts, out.time_base) == (3000, Fraction(1, 90000))


def _outlets(data: bool = True) -> StreamOutlets:
    return StreamOutlets(
        events=DropOldestOutlet(256), data=DropOldestOutlet(1000) if data else None
    )


@pytest.mark.spec("RUN-090", "RUN-091", "RUN-094")
async def test_emits_go_to_the_bound_session_only() -> None:
    pipeline = Passthrough()
    pipeline.emit_event({"type": "nobody"})  # RUN-094: outside a session, nothing happens
    pipeline.emit_data({"n": 0})
    first, second = _outlets(), _outlets(data=False)

    async def session(outlets: StreamOutlets, tag: str) -> None:
        token = bind_outlets(outlets)
        try:
            pipeline.emit_event({"type": "hello", "tag": tag})
            # Hooks in worker threads find the same session through the context.
            await trio.to_thread.run_sync(pipeline.emit_data, {"tag": tag})
        finally:
            unbind_outlets(token)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(session, first, "one")
        nursery.start_soon(session, second, "two")
    assert [json.loads(e) for e in await first.events.get_batch()] == [
        {"queue_event_type": "ai_stream_events", "event": {"type": "hello", "tag": "one"}}
    ]
    assert first.data is not None
    assert await first.data.get_batch() == [{"tag": "one"}]
    assert [json.loads(e) for e in await second.events.get_batch()] == [
        {"queue_event_type": "ai_stream_events", "event": {"type": "hello", "tag": "two"}}
    ]


@pytest.mark.spec("RUN-090", "RUN-092")
async def test_emit_validation() -> None:
    pipeline = Passthrough()
    for bad_event in ({}, {"type": ""}, {"type": 3}, ["type"], {"type": "x", "v": float("nan")}):
        with pytest.raises(InvalidMessage):
            pipeline.emit_event(bad_event)  # type: ignore[arg-type]
    for bad_record in ([1], "x", None, {"k": {1, 2}}, {1: "int key"}):
        with pytest.raises(InvalidMessage):
            pipeline.emit_data(bad_record)  # type: ignore[arg-type]
    with pytest.raises(PayloadTooLarge):
        pipeline.emit_data({"blob": "x" * 65_536})
    pipeline.emit_data({"blob": "x" * (65_535 - len('{"blob":""}'))})  # exactly at the limit


@pytest.mark.spec("RUN-093")
async def test_emits_never_block_and_copy_their_payload() -> None:
    pipeline = Passthrough()
    outlets = _outlets()
    token = bind_outlets(outlets)
    try:
        payload: dict[str, Any] = {"type": "t", "n": 0}
        for n in range(300):
            payload["n"] = n
            pipeline.emit_event(payload)
        for n in range(1005):
            pipeline.emit_data({"n": n})
    finally:
        unbind_outlets(token)
    events = [json.loads(e) for e in await outlets.events.get_batch(1000)]
    assert len(events) == 256
    assert outlets.events.dropped == 44
    assert [e["event"]["n"] for e in events] == list(range(44, 300))
    assert outlets.data is not None
    assert outlets.data.dropped == 5
    payload["n"] = -1  # later changes do not reach what was queued
    assert events[-1]["event"]["n"] == 299


@pytest.mark.spec("RUN-054")
async def test_slow_on_stream_start_times_out_with_500() -> None:
    class Slow(Recorder):
        async def on_stream_start(self, params: dict[str, Any]) -> None:
            await trio.sleep(30)

    with trio.fail_after(20):
        async with open_trickle_server() as trickle, served(Slow(), start_timeout=0.2) as (_, c):
            with trio.fail_after(3):
                assert_error(await c.post("/stream/start", json=start_body(trickle, "s")), 500)
            assert (await c.get("/stream/status")).json()["sessions"] == []


@pytest.mark.spec("RUN-094")
def test_an_emit_outside_a_session_is_dropped_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from trio_trickle._sdk import live_pipeline as _live_pipeline

    _live_pipeline._warned_outside.clear()
    pipeline = Passthrough()
    with caplog.at_level("WARNING", logger="trio_trickle.session"):
        for n in range(3):
            pipeline.emit_event({"type": "early", "n": n})
            pipeline.emit_data({"n": n})
    warned = [r.getMessage() for r in caplog.records if "outside a session" in r.getMessage()]
    assert len(warned) == 2  # once for emit_event, once for emit_data, not per call
    assert warned[0].startswith("emit_event")
