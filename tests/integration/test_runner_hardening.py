"""Hostile and racing input against a real runner over loopback (RUN-121..RUN-128).

Each test is a regression test for one way a caller could wedge, crash or read
internals out of a runner: a params request racing a stop, text UTF-8 cannot
carry, URLs that name no channel, exception groups in stop reasons, a slow
``on_stream_stop``, huge bodies, a failing before-request hook.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from tests.integration.live_harness import live_rig
from tests.integration.test_live_routes import Recorder, assert_error, served, start_body
from trio_trickle import open_trickle_server
from trio_trickle._client.subscriber import TrickleSubscriber
from trio_trickle._runner.app import CONTROL_MAX_BYTES
from trio_trickle._runner.serve import open_runner
from trio_trickle._sdk.live_pipeline import LivePipeline
from trio_trickle._sdk.pipeline import Pipeline
from trio_trickle._session.failures import MAX_FAILURE_MESSAGE
from trio_trickle._session.session import SessionSettings

# -- RUN-121: params racing stop ------------------------------------------------------


class ParamsRace(LivePipeline):
    """``on_params_update`` holds (until cancelled) when asked to, else returns at once."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.stops = 0

    async def on_params_update(self, params: dict[str, Any]) -> None:
        self.entered.set()
        if params.get("hold"):
            await trio.sleep_forever()
        await trio.lowlevel.checkpoint()

    async def on_stream_stop(self) -> None:
        self.stops += 1


@pytest.mark.spec("RUN-121", "RUN-061")
async def test_params_racing_stop_are_all_answered_200_or_404() -> None:
    pipeline = ParamsRace()
    rounds = 10
    answers: list[int] = []
    with trio.fail_after(60):
        async with open_trickle_server() as trickle, served(pipeline) as (_, client):

            async def post(path: str, body: dict[str, Any] | None, into: list[int]) -> None:
                into.append((await client.post(path, json=body)).status_code)

            def params(body: dict[str, Any], into: list[int]) -> Any:
                return functools.partial(post, "/stream/params", body, into)

            for n in range(rounds):
                assert (
                    await client.post("/stream/start", json=start_body(trickle, f"r{n}"))
                ).status_code == 200
                pipeline.entered = trio.Event()
                held: list[int] = []
                stops: list[int] = []
                stop = functools.partial(post, "/stream/stop", None, stops)
                async with trio.open_nursery() as nursery:
                    if n % 2 == 0:
                        # A job in the applier's hands when the stop cancels its hook.
                        nursery.start_soon(params({"hold": True}, held))
                        await pipeline.entered.wait()
                    for i in range(3):
                        nursery.start_soon(params({"i": i}, answers))
                    nursery.start_soon(stop)
                    for i in range(3, 5):
                        nursery.start_soon(params({"i": i}, answers))
                assert stops == [200]
                assert held == ([404] if n % 2 == 0 else [])
    assert len(answers) == 5 * rounds
    assert set(answers) <= {200, 404}, answers
    assert pipeline.stops == rounds


# -- RUN-122: text UTF-8 cannot carry ----------------------------------------------------


def _with_raw(body: dict[str, Any], key: str, raw_json: str) -> bytes:
    """``body`` as JSON with member ``key`` set to the JSON text ``raw_json``."""
    text = json.dumps({**body, key: "@@"})
    return text.replace('"@@"', raw_json).encode()


@pytest.mark.spec("RUN-122", "RUN-008")
@pytest.mark.parametrize("route", ["/stream/start", "/live-video-to-video"])
async def test_lone_surrogates_in_a_start_body_are_400(route: str) -> None:
    pipeline = Recorder()
    with trio.fail_after(20):
        async with open_trickle_server() as trickle, served(pipeline) as (_, client):
            body = start_body(trickle, "s")
            bad = [
                _with_raw(body, "params", '{"p": "\\ud800"}'),
                _with_raw(body, "params", '{"\\udfff": 1}'),
                _with_raw(body, "params", '{"p": ["ok", {"q": "x\\udc00y"}]}'),
                _with_raw(body, "gateway_request_id", '"\\ud800"'),
                _with_raw(body, "model_id", '"\\ud800"'),
            ]
            for raw in bad:
                assert_error(await client.post(route, content=raw), 400)
            status = await client.get("/stream/status")
            assert status.status_code == 200
            assert status.json()["sessions"] == []
            assert status.json()["last_error"] is None
            assert pipeline.calls == []
            # A surrogate *pair* is a valid escape of one character, and is accepted.
            response = await client.post(
                route, content=_with_raw(body, "params", '{"p": "\\ud83d\\ude00"}')
            )
            assert response.status_code == 200
            status = await client.get("/stream/status")
            assert status.status_code == 200
            assert status.json()["sessions"][0]["params"] == {"p": "\U0001f600"}


class Tracking(LivePipeline):
    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []

    async def on_params_update(self, params: dict[str, Any]) -> None:
        self.updates.append(params)


@pytest.mark.spec("RUN-122", "RUN-086", "RUN-064", "RUN-065")
async def test_lone_surrogates_in_params_control_and_stop() -> None:
    pipeline = Tracking()
    with trio.fail_after(30):
        async with live_rig(pipeline) as rig:
            url = rig.runner.url
            assert (await rig.start("s")).status_code == 200
            bad = b'{"p": "\\ud800"}'
            assert_error(await rig.http.post(url + "/stream/params", content=bad), 400)
            # The same text on the control channel is skipped; the next message is applied.
            await rig.control("s", {"p": "\ud800"})
            await rig.control("s", {"p": "fine"})
            with trio.fail_after(5):
                while not pipeline.updates:
                    await trio.sleep(0.01)
            assert pipeline.updates == [{"p": "fine"}]
            status = await rig.http.get(url + "/stream/status")
            assert status.status_code == 200
            assert status.json()["sessions"][0]["params"] == {"p": "fine"}
            # A stop is never refused: the reason keeps U+FFFD where the surrogate was.
            stop = await rig.http.post(url + "/stream/stop", content=b'{"reason": "bye \\ud800"}')
            assert stop.json() == {"status": "stopped"}
            await rig.wait_for(lambda: "stream_stopped" in rig.event_types(), 5)
    stopped = next(e["event"] for e in rig.events if e["event"]["type"] == "stream_stopped")
    assert stopped["detail"] == "bye \ufffd"


class Echo(Pipeline):
    def predict(self, text: str) -> str:
        return text


@pytest.mark.spec("RUN-122", "RUN-021")
async def test_lone_surrogates_in_a_predict_body_are_422() -> None:
    with trio.fail_after(20):
        async with served(Echo()) as (_, client):  # type: ignore[arg-type]  # a Pipeline too
            for raw in (b'{"text": "\\ud800"}', b'{"text": "\\udfff\\ud800x"}'):
                message = assert_error(await client.post("/predict", content=raw), 422)
                assert "Unicode" in message
            # An unknown member is refused by its name first (RUN-024), escaped.
            raw = b'{"text": "x", "\\ud800": 1}'
            assert "ud800" in assert_error(await client.post("/predict", content=raw), 400)
            response = await client.post("/predict", content=b'{"text": "\\ud83d\\ude00"}')
            assert response.json() == "\U0001f600"


# -- RUN-123 / RUN-124: URLs and start failures -----------------------------------------


@pytest.mark.spec("RUN-123", "RUN-047", "RUN-008")
@pytest.mark.parametrize("route", ["/stream/start", "/live-video-to-video"])
async def test_start_urls_must_name_a_channel(route: str) -> None:
    pipeline = Recorder()
    with trio.fail_after(30):
        async with open_trickle_server() as trickle, served(pipeline) as (_, client):
            body = start_body(trickle, "s")
            host = str(httpx.URL(trickle.url).copy_with(path="/")).rstrip("/")
            channel = body["events_url"]
            bad = [
                host,
                host + "/",
                host + "//",
                channel + "\r\nX-Injected: 1",
                channel + "\n",
                channel.replace("/s-", "/s -"),
                channel + "\t",
                channel + "\x00",
                channel + "?token=1",
                channel + "#frag",
                channel + "/" + "x" * 2100,
                "http://127.0.0.1:99999/ch",
                "http://127.0.0.1:port/ch",
                "http:///ch",
                "ws://127.0.0.1/ch",
                channel + "/\u00fc",
            ]
            for field in ("events_url", "control_url", "subscribe_url", "publish_url", "data_url"):
                for url in bad:
                    response = await client.post(route, json={**body, field: url})
                    assert response.status_code == 400, (field, url, response.text)
                    assert_error(response, 400)
            status = (await client.get("/stream/status")).json()
            assert status["sessions"] == []
            assert status["last_error"] is None
            assert (await client.get("/health")).json() == {"status": "IDLE"}
            assert pipeline.calls == []
            assert (await client.post(route, json=body)).status_code == 200


# -- RUN-125: stop reasons ---------------------------------------------------------------


async def _read_events(url: str, into: list[dict[str, Any]], changed: list[trio.Event]) -> None:
    async with (
        httpx.AsyncClient(timeout=20) as http,
        TrickleSubscriber(url, start_seq=0, client=http) as subscriber,
    ):
        async for segment in subscriber:
            data = await segment.read_all()
            if data:
                into.append(json.loads(data)["event"])
                changed[0].set()
                changed[0] = trio.Event()


@pytest.mark.spec("RUN-125", "RUN-099", "RUN-072")
async def test_a_failed_stream_reports_the_leaf_exception_briefly() -> None:
    events: list[dict[str, Any]] = []
    changed = [trio.Event()]
    with trio.fail_after(30):
        async with (
            open_trickle_server() as trickle,
            served(Recorder()) as (_, client),
            trio.open_nursery() as nursery,
        ):
            body = start_body(trickle, "s")
            nursery.start_soon(_read_events, body["events_url"], events, changed)
            # Nothing listens on port 1: the control reader fails with a transport error.
            body["control_url"] = "http://127.0.0.1:1/s-control"
            assert (await client.post("/stream/start", json=body)).status_code == 200
            while not any(e["type"] == "stream_stopped" for e in events):
                await changed[0].wait()
            status = (await client.get("/stream/status")).json()
            nursery.cancel_scope.cancel()
    stopped = next(e for e in events if e["type"] == "stream_stopped")
    assert stopped["reason"] == "failed"
    error = stopped["error"]
    assert error.startswith("TransportError: ")
    assert len(error) <= MAX_FAILURE_MESSAGE
    assert "\n" not in error
    assert "ExceptionGroup" not in error
    assert "sub-exception" not in error
    # The HTTP body names the type only (RUN-026).
    assert status["last_error"] == "stream failed: TransportError"


# -- RUN-126: one stop deadline ------------------------------------------------------------


class StopHangs(LivePipeline):
    """``on_stream_stop`` waits for an event nobody sets: it uses its whole budget."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.entered = False

    async def on_stream_stop(self) -> None:
        self.entered = True
        self.emit_event({"type": "last_words"})
        await self.release.wait()


class SyncStopHangs(LivePipeline):
    """The same in a worker thread, which no cancellation can interrupt."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = False

    def on_stream_stop(self) -> None:
        self.entered = True
        self.emit_event({"type": "last_words"})
        self.release.wait(30)


@pytest.mark.spec("RUN-126", "RUN-099", "RUN-078", "RUN-068")
@pytest.mark.parametrize("kind", [StopHangs, SyncStopHangs])
async def test_a_slow_on_stream_stop_does_not_lose_stream_stopped(
    kind: type[StopHangs | SyncStopHangs],
) -> None:
    pipeline = kind()
    settings = SessionSettings(device="cpu", heartbeat_interval=0.5, stop_timeout=3.0)
    try:
        with trio.fail_after(30):
            async with live_rig(pipeline, settings=settings) as rig:
                assert (await rig.start("s")).status_code == 200
                response = await rig.http.post(rig.runner.url + "/stream/stop", content=b"bye")
                assert response.json() == {"status": "stopped"}
                assert pipeline.entered
                await rig.wait_for(lambda: "stream_stopped" in rig.event_types(), 10)
    finally:
        pipeline.release.set()
    types = rig.event_types()
    assert types.index("last_words") < types.index("stream_stopped")
    stopped = next(e["event"] for e in rig.events if e["event"]["type"] == "stream_stopped")
    assert (stopped["reason"], stopped["detail"]) == ("stop_requested", "bye")


# -- RUN-127: body limits ------------------------------------------------------------------


async def _chunks(size: int) -> AsyncIterator[bytes]:
    """``size`` bytes sent without a Content-Length (chunked)."""
    chunk = b" " * 65536
    sent = 0
    while sent < size:
        piece = chunk[: size - sent]
        sent += len(piece)
        yield piece


async def _post_raw(
    base_url: str, path: str, size: int, *, declared: int | None = None
) -> tuple[int, dict[str, Any]]:
    """POST ``size`` bytes over a raw socket, reading the answer while sending:
    chunked, or with ``Content-Length: declared`` (which may lie).

    httpx reads no response before its upload ends, and a server that refuses a
    body stops reading it; clients that read an early answer (Go's, a raw socket)
    get the 413 at once.
    """
    url = httpx.URL(base_url)
    assert url.port is not None
    stream = await trio.open_tcp_stream(url.host, url.port)
    framing = "Transfer-Encoding: chunked" if declared is None else f"Content-Length: {declared}"

    async def send() -> None:
        head = f"POST {path} HTTP/1.1\r\nHost: {url.host}\r\n{framing}\r\n\r\n"
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(head.encode())
            for offset in range(0, size, 65536):
                piece = b" " * min(65536, size - offset)
                if declared is None:
                    piece = b"%x\r\n%s\r\n" % (len(piece), piece)
                await stream.send_all(piece)
            if declared is None:
                await stream.send_all(b"0\r\n\r\n")

    received = b""
    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(send)
        with contextlib.suppress(trio.BrokenResourceError):
            while b"\r\n\r\n" not in received or not _complete(received):
                data = await stream.receive_some(65536)
                if not data:
                    break
                received += data
        nursery.cancel_scope.cancel()
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/json" in head.lower()
    if status == 413:  # the unread rest of the body makes the connection unusable
        assert b"\r\nconnection: close" in head.lower()
    return status, json.loads(body)


def _complete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


@pytest.mark.spec("RUN-127", "RUN-002", "RUN-008")
async def test_control_route_bodies_are_capped_with_413() -> None:
    with trio.fail_after(60):
        async with open_trickle_server() as trickle, served(Recorder()) as (_, client):
            over = CONTROL_MAX_BYTES + 1
            for route in (
                "/stream/start",
                "/live-video-to-video",
                "/stream/params",
                "/stream/stop",
            ):
                base = str(client.base_url)
                for status, body in (
                    await _post_raw(base, route, over, declared=over),
                    await _post_raw(base, route, over),
                    # Refused on the declared length alone, before a byte of it is read.
                    await _post_raw(base, route, 2, declared=10 * CONTROL_MAX_BYTES),
                ):
                    assert (status, list(body), list(body["detail"])) == (413, ["detail"], ["msg"])
            status = (await client.get("/stream/status")).json()
            assert (status["sessions"], status["last_error"]) == ([], None)
            # Right at the limit a body is read (and judged on its content).
            body = json.dumps(start_body(trickle, "s")).encode()
            at_limit = body[:-1] + b" " * (CONTROL_MAX_BYTES - len(body)) + b"}"
            assert len(at_limit) == CONTROL_MAX_BYTES
            assert (await client.post("/stream/start", content=at_limit)).status_code == 200
            assert (
                await client.post("/stream/stop", content=_chunks(CONTROL_MAX_BYTES))
            ).status_code == 200


@pytest.mark.spec("RUN-127", "RUN-002")
async def test_predict_body_limit_is_configurable() -> None:
    with trio.fail_after(30):
        async with (
            open_runner(Echo(), max_predict_bytes=1000) as handle,
            httpx.AsyncClient(base_url=handle.url, timeout=10) as client,
        ):
            await handle.wait_setup()
            fits = json.dumps({"text": "x" * (1000 - len('{"text": ""}'))}).encode()
            assert len(fits) == 1000
            assert (await client.post("/predict", content=fits)).status_code == 200
            for route in ("/predict", "/run"):
                for declared in (1001, None):
                    status, body = await _post_raw(
                        str(client.base_url), route, 1001, declared=declared
                    )
                    assert (status, list(body), list(body["detail"])) == (413, ["detail"], ["msg"])
    with pytest.raises(ValueError, match="max_predict_bytes"):
        async with open_runner(Echo(), max_predict_bytes=0):
            pass


# -- RUN-128: internal errors ----------------------------------------------------------------


@pytest.mark.spec("RUN-128", "RUN-026", "RUN-002")
async def test_a_failing_before_request_hook_answers_a_generic_500() -> None:
    with trio.fail_after(20):
        async with served(Recorder(), token="tok") as (handle, client):

            async def broken() -> None:
                raise RuntimeError("secret-value-42 at /srv/app.py")

            handle.app.asgi.before_request(broken)
            for method, path in (
                ("GET", "/stream/status"),
                ("POST", "/stream/start"),
                ("GET", "/health"),
            ):
                response = await client.request(
                    method, path, headers={"Authorization": "Bearer tok"}
                )
                assert assert_error(response, 500) == "internal error"
                assert "secret" not in response.text
                assert "RuntimeError" not in response.text
