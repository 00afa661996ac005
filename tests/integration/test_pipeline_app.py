"""The request/response runner over real sockets: hypercorn on 127.0.0.1:0, httpx.

Covers ``/predict`` (validation statuses, JSON and SSE answers, failures that
leak nothing), ``/health`` through setup, the bearer token, routing errors and
``/openapi.json``. Sync hooks are gated with ``threading.Event`` so the tests
can observe the runner *while* a hook is running in its worker thread.
"""

from __future__ import annotations

import contextvars
import functools
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs
import httpx
import pytest
import trio
import trio.lowlevel

from trio_trickle._runner.serve import InvalidTarget, RunnerHandle, load_target, open_runner
from trio_trickle._sdk.hooks import call_hook, iterate_in_thread
from trio_trickle._sdk.live_pipeline import LivePipeline
from trio_trickle._sdk.pipeline import Pipeline
from trio_trickle.examples import Echo

SECRET = "do-not-leak-this-text"


@asynccontextmanager
async def served(
    pipeline: Pipeline, *, ready: bool = True, **options: Any
) -> AsyncIterator[tuple[RunnerHandle, httpx.AsyncClient]]:
    async with (
        open_runner(pipeline, **options) as handle,
        httpx.AsyncClient(base_url=handle.url, timeout=10) as client,
    ):
        if ready:
            await handle.wait_setup()
        yield handle, client


def assert_error(response: httpx.Response, status: int) -> str:
    """The RUN-001/RUN-002 error shape; returns the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail"}
    assert set(body["detail"]) == {"msg"}
    message = body["detail"]["msg"]
    assert isinstance(message, str)
    assert message
    return message


class Typed(Pipeline):
    def predict(
        self,
        text: str,
        count: int = 1,
        scale: float = 1.0,
        flag: bool = False,
        tags: list[str] | None = None,
        weights: dict[str, float] | None = None,
        mode: Literal["fast", "slow"] = "fast",
    ) -> dict[str, Any]:
        return {
            "text": text,
            "count": count,
            "scale": scale,
            "flag": flag,
            "tags": tags,
            "weights": weights,
            "mode": mode,
        }


class Counting(Pipeline):
    def __init__(self) -> None:
        self.setups = 0
        self.predicts_before_setup = 0

    def setup(self) -> None:
        self.setups += 1

    def predict(self) -> int:
        if self.setups == 0:
            self.predicts_before_setup += 1
        return self.setups


class Raising(Pipeline):
    def predict(self) -> None:
        raise ValueError(SECRET)


class NotJson(Pipeline):
    def predict(self) -> object:
        return {"x": object()}


class AsyncPredict(Pipeline):
    async def predict(self, delay: float = 0.0) -> dict[str, float]:
        await trio.sleep(delay)
        return {"slept": delay}


class SyncStream(Pipeline):
    def predict(self, n: int) -> Iterator[dict[str, int]]:
        for i in range(n):
            yield {"i": i}


class AsyncStream(Pipeline):
    async def predict(self, n: int) -> AsyncIterator[str]:
        for i in range(n):
            await trio.lowlevel.checkpoint()
            yield f"token {i}"


class FailingStream(Pipeline):
    def predict(self, *, bad_item: bool = False) -> Iterator[Any]:
        yield {"ok": 1}
        if bad_item:
            yield {"x": object()}
        raise RuntimeError(SECRET)


class Kwargs(Pipeline):
    def predict(self, a: int = 0, **rest: int) -> dict[str, int]:
        return {"a": a, **rest}


# -- /predict: JSON answers ----------------------------------------------------------


@pytest.mark.spec("RUN-001", "RUN-020", "RUN-028")
async def test_json_result() -> None:
    with trio.fail_after(10):
        async with served(Echo()) as (_, client):
            response = await client.post("/predict", json={"text": "ab", "repeat": 2})
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            assert response.content == b'{"text":"abab"}'


@pytest.mark.spec("RUN-020")
async def test_empty_body_means_no_arguments() -> None:
    with trio.fail_after(10):
        async with served(AsyncPredict()) as (_, client):
            response = await client.post("/predict", content=b"")
            assert response.status_code == 200
            assert response.json() == {"slept": 0.0}


@pytest.mark.spec("RUN-023")
async def test_typed_values_are_accepted_and_floats_widened() -> None:
    body = {
        "text": "t",
        "count": 3,
        "scale": 2,
        "flag": True,
        "tags": ["a"],
        "weights": {"w": 1},
        "mode": "slow",
    }
    with trio.fail_after(10):
        async with served(Typed()) as (_, client):
            response = await client.post("/predict", json=body)
            assert response.status_code == 200
            assert response.json() == {**body, "scale": 2.0, "weights": {"w": 1.0}}
            response = await client.post("/predict", json={"text": "t", "tags": None})
            assert response.status_code == 200


@pytest.mark.spec("RUN-029", "RUN-017", "RUN-014", "RUN-013")
async def test_sync_predict_runs_in_a_thread_while_health_answers() -> None:
    release = threading.Event()
    entered = threading.Event()

    class Blocking(Pipeline):
        def predict(self) -> str:
            entered.set()
            release.wait(10)
            return "done"

    results: list[httpx.Response] = []
    with trio.fail_after(15):
        async with served(Blocking()) as (_, client):
            async with trio.open_nursery() as nursery:

                async def call() -> None:
                    results.append(await client.post("/predict"))

                nursery.start_soon(call)
                await trio.to_thread.run_sync(entered.wait, 5)
                with trio.fail_after(1):
                    health = await client.get("/health")
                assert health.json() == {"status": "OK"}
                release.set()
            assert results[0].json() == "done"
            assert (await client.get("/health")).json() == {"status": "IDLE"}


async def test_capacity_bounds_concurrent_predicts() -> None:
    active = 0
    peak = 0

    class Slow(Pipeline):
        async def predict(self) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await trio.sleep(0.05)
            active -= 1

    for capacity in (1, 3):
        peak = 0
        with trio.fail_after(10):
            async with (
                served(Slow(), capacity=capacity) as (_, client),
                trio.open_nursery() as nursery,
            ):
                for _ in range(6):
                    nursery.start_soon(client.post, "/predict")
        assert peak == capacity


# -- /predict: validation ------------------------------------------------------------


@pytest.mark.spec("RUN-024", "RUN-002")
async def test_unknown_member_is_400() -> None:
    with trio.fail_after(10):
        async with served(Echo()) as (_, client):
            message = assert_error(await client.post("/predict", json={"txt": "a"}), 400)
            assert "txt" in message


@pytest.mark.spec("RUN-024")
async def test_var_keyword_predict_takes_unknown_members() -> None:
    with trio.fail_after(10):
        async with served(Kwargs()) as (_, client):
            response = await client.post("/predict", json={"a": 1, "b": 2})
            assert response.json() == {"a": 1, "b": 2}
            # ``**rest: int`` types the extra members too.
            assert_error(await client.post("/predict", json={"b": "x"}), 422)


@pytest.mark.spec("RUN-022")
async def test_missing_member_is_422() -> None:
    with trio.fail_after(10):
        async with served(Echo()) as (_, client):
            message = assert_error(await client.post("/predict", json={"repeat": 2}), 422)
            assert "text" in message


@pytest.mark.spec("RUN-023")
@pytest.mark.parametrize(
    "body",
    [
        {"text": 1},
        {"text": None},
        {"text": "t", "count": "1"},
        {"text": "t", "count": True},
        {"text": "t", "count": 1.5},
        {"text": "t", "scale": "2"},
        {"text": "t", "flag": 1},
        {"text": "t", "tags": ["a", 2]},
        {"text": "t", "tags": "a"},
        {"text": "t", "weights": {"w": "heavy"}},
        {"text": "t", "weights": []},
        {"text": "t", "mode": "medium"},
    ],
)
async def test_wrong_type_is_422(body: dict[str, Any]) -> None:
    with trio.fail_after(10):
        async with served(Typed()) as (_, client):
            assert_error(await client.post("/predict", json=body), 422)


@pytest.mark.spec("RUN-021")
@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b'"text"', b"null", b"\xff\xfe", b"NaN"])
async def test_body_not_a_json_object_is_422(raw: bytes) -> None:
    with trio.fail_after(10):
        async with served(Echo()) as (_, client):
            assert_error(await client.post("/predict", content=raw), 422)


@pytest.mark.spec("RUN-002", "RUN-024", "RUN-023")
async def test_error_bodies_survive_lone_surrogates_in_member_names() -> None:
    with trio.fail_after(10):
        async with served(Typed()) as (_, client):
            response = await client.post("/predict", content=b'{"\\ud800": 1}')
            assert "ud800" in assert_error(response, 400)
        async with served(Kwargs()) as (_, client):
            raw = b'{"\\udfff": "not an int"}'
            assert "udfff" in assert_error(await client.post("/predict", content=raw), 422)


@pytest.mark.spec("RUN-008")
async def test_validation_failures_leave_health_alone() -> None:
    with trio.fail_after(10):
        async with served(Echo()) as (_, client):
            await client.post("/predict", json={"nope": 1})
            await client.post("/predict", content=b"{")
            assert (await client.get("/health")).json() == {"status": "IDLE"}
            assert (await client.post("/predict", json={"text": "x"})).status_code == 200


# -- /predict: failures ----------------------------------------------------------------


@pytest.mark.spec("RUN-025", "RUN-026", "RUN-027", "RUN-015")
async def test_raising_predict_is_500_without_traceback() -> None:
    with trio.fail_after(10):
        async with served(Raising()) as (_, client):
            response = await client.post("/predict")
            message = assert_error(response, 500)
            assert message == "predict failed: ValueError"
            assert SECRET not in response.text
            assert "Traceback" not in response.text
            # A failing predict is not a broken runner.
            assert (await client.get("/health")).json() == {"status": "IDLE"}


@pytest.mark.spec("RUN-028", "RUN-026")
async def test_non_json_return_is_500() -> None:
    with trio.fail_after(10):
        async with served(NotJson()) as (_, client):
            message = assert_error(await client.post("/predict"), 500)
            assert "object at" not in message


# -- /predict: server-sent events ------------------------------------------------------


@pytest.mark.spec("RUN-030", "RUN-031")
@pytest.mark.parametrize("pipeline", [SyncStream(), AsyncStream()], ids=["sync", "async"])
async def test_generator_streams_events_then_done(pipeline: Pipeline) -> None:
    with trio.fail_after(10):
        async with served(pipeline) as (_, client):
            response = await client.post("/predict", json={"n": 3})
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            if isinstance(pipeline, SyncStream):
                expected = b'data: {"i":0}\n\ndata: {"i":1}\n\ndata: {"i":2}\n\n'
            else:
                expected = b'data: "token 0"\n\ndata: "token 1"\n\ndata: "token 2"\n\n'
            assert response.content == expected + b"data: [DONE]\n\n"
            empty = await client.post("/predict", json={"n": 0})
            assert empty.content == b"data: [DONE]\n\n"


@pytest.mark.spec("RUN-032", "RUN-031", "RUN-026", "RUN-027")
async def test_error_mid_stream_sends_error_event_then_done() -> None:
    with trio.fail_after(10):
        async with served(FailingStream()) as (_, client):
            response = await client.post("/predict")
            assert response.status_code == 200
            assert response.content == (
                b'data: {"ok":1}\n\n'
                b'data: {"error":"predict failed: RuntimeError"}\n\n'
                b"data: [DONE]\n\n"
            )
            response = await client.post("/predict", json={"bad_item": True})
            events = response.content.split(b"\n\n")
            assert events[1] == b'data: {"error":"predict yielded non-JSON: TypeError"}'
            assert response.content.endswith(b"data: [DONE]\n\n")
            assert response.content.count(b"[DONE]") == 1
            assert SECRET.encode() not in response.content


@pytest.mark.spec("RUN-033")
async def test_client_disconnect_closes_the_generator() -> None:
    closed = threading.Event()

    class Endless(Pipeline):
        def predict(self) -> Iterator[int]:
            try:
                i = 0
                while True:
                    yield i
                    i += 1
                    threading.Event().wait(0.01)
            finally:
                closed.set()

    with trio.fail_after(10):
        async with served(Endless()) as (handle, client):
            # A raw socket: httpx leaves its own generators unclosed when a read is abandoned.
            host, port = urlsplit(handle.url).hostname, urlsplit(handle.url).port
            assert host is not None
            assert port is not None
            stream = await trio.open_tcp_stream(host, port)
            request = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
            await stream.send_all(request)
            received = b""
            while b"data: 3" not in received:
                received += await stream.receive_some(4096)
            assert b"200" in received.split(b"\r\n")[0]
            await stream.aclose()
            with trio.fail_after(1.5):
                while not closed.is_set():
                    await trio.sleep(0.02)
            assert (await client.get("/health")).json() == {"status": "IDLE"}


@pytest.mark.spec("RUN-034")
async def test_run_is_an_alias_of_predict() -> None:
    with trio.fail_after(10):
        async with served(Echo()) as (_, client):
            response = await client.post("/run", json={"text": "x"})
            assert response.json() == {"text": "x"}


# -- health through setup ----------------------------------------------------------------


@pytest.mark.spec("RUN-009", "RUN-010", "RUN-011", "RUN-013", "RUN-016", "RUN-019")
async def test_health_is_loading_while_setup_runs() -> None:
    release = threading.Event()

    class SlowSetup(Echo):
        def setup(self) -> None:
            release.wait(10)

    with trio.fail_after(15):
        async with served(SlowSetup(), ready=False) as (handle, client):
            health = await client.get("/health")
            assert health.status_code == 503
            assert health.json() == {"status": "LOADING"}
            with trio.fail_after(1):  # RUN-019: no waiting for setup
                message = assert_error(await client.post("/predict", json={"text": "x"}), 503)
            assert "loading" in message
            release.set()
            await handle.wait_setup()
            health = await client.get("/health")
            assert health.status_code == 200
            assert health.json() == {"status": "IDLE"}


@pytest.mark.spec("RUN-012", "RUN-016", "RUN-019")
async def test_setup_failure_is_a_sticky_error() -> None:
    class Broken(Echo):
        def setup(self) -> None:
            raise OSError(SECRET)

    with trio.fail_after(10):
        async with served(Broken()) as (handle, client):
            assert handle.app.setup_error == "setup failed: OSError"
            for _ in range(3):
                health = await client.get("/health")
                assert health.status_code == 503
                assert health.json() == {"status": "ERROR"}
                response = await client.post("/predict", json={"text": "x"})
                assert_error(response, 503)
                assert SECRET not in response.text
                await trio.sleep(0.05)


@pytest.mark.spec("RUN-018")
async def test_setup_runs_once_before_the_first_predict() -> None:
    pipeline = Counting()
    with trio.fail_after(10):
        async with served(pipeline) as (_, client):
            for _ in range(3):
                assert (await client.post("/predict")).json() == 1
    assert pipeline.setups == 1
    assert pipeline.predicts_before_setup == 0


async def test_async_setup_is_awaited() -> None:
    class AsyncSetup(Echo):
        async def setup(self) -> None:
            await trio.sleep(0.05)
            self.loaded = True

    pipeline = AsyncSetup()
    with trio.fail_after(10):
        async with served(pipeline) as (_, client):
            assert pipeline.loaded
            assert (await client.get("/health")).json() == {"status": "IDLE"}


# -- auth and routing ------------------------------------------------------------------


@pytest.mark.spec("RUN-004", "RUN-005", "RUN-006")
async def test_bearer_token() -> None:
    with trio.fail_after(10):
        async with served(Echo(), token="s3cret") as (_, client):
            body = {"text": "x"}
            response = await client.post("/predict", json=body)
            assert_error(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
            for header in ("Bearer wrong", "Bearer s3cret2", "Basic s3cret", "s3cret", "Bearer"):
                response = await client.post(
                    "/predict", json=body, headers={"Authorization": header}
                )
                assert_error(response, 401)
            for header in ("Bearer s3cret", "bearer s3cret", "BEARER  s3cret"):
                response = await client.post(
                    "/predict", json=body, headers={"Authorization": header}
                )
                assert response.status_code == 200, header
            # Open routes, and 404 (not 401) for what is not a route.
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/openapi.json")).status_code == 200
            assert_error(await client.get("/nowhere"), 404)
            # A validation failure behind a valid token is not a 401.
            auth = {"Authorization": "Bearer s3cret"}
            assert_error(await client.post("/predict", json={}, headers=auth), 422)


@pytest.mark.spec("RUN-007", "RUN-002")
async def test_unknown_path_and_wrong_method() -> None:
    with trio.fail_after(10):
        async with served(Echo()) as (_, client):
            assert_error(await client.get("/nope"), 404)
            response = await client.get("/predict")
            assert_error(response, 405)
            assert "POST" in response.headers["allow"]
            assert_error(await client.post("/health"), 405)


# -- OpenAPI -----------------------------------------------------------------------------


@pytest.mark.spec("RUN-035", "RUN-036", "RUN-037", "RUN-038")
async def test_openapi_document() -> None:
    with trio.fail_after(10):
        async with served(Typed()) as (_, client):
            document = (await client.get("/openapi.json")).json()
        async with served(SyncStream()) as (_, client):
            streaming = (await client.get("/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/health", "/openapi.json", "/predict", "/run"}
    request = document["components"]["schemas"]["PredictRequest"]
    assert request["required"] == ["text"]
    assert request["additionalProperties"] is False
    assert request["properties"] == {
        "text": {"type": "string"},
        "count": {"type": "integer", "default": 1},
        "scale": {"type": "number", "default": 1.0},
        "flag": {"type": "boolean", "default": False},
        "tags": {
            "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
            "default": None,
        },
        "weights": {
            "anyOf": [
                {"type": "object", "additionalProperties": {"type": "number"}},
                {"type": "null"},
            ],
            "default": None,
        },
        "mode": {"enum": ["fast", "slow"], "default": "fast"},
    }
    ok = document["paths"]["/predict"]["post"]["responses"]["200"]["content"]
    assert ok == {"application/json": {"schema": {"type": "object", "additionalProperties": {}}}}
    ok = streaming["paths"]["/predict"]["post"]["responses"]["200"]["content"]
    assert list(ok) == ["text/event-stream"]
    assert ok["text/event-stream"]["x-item-schema"] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
    }
    assert streaming["components"]["schemas"]["PredictRequest"]["required"] == ["n"]


@pytest.mark.spec("RUN-004", "RUN-035")
async def test_openapi_marks_the_token() -> None:
    with trio.fail_after(10):
        async with served(Echo(), token="t") as (_, client):
            document = (await client.get("/openapi.json")).json()
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/health"]["get"]["security"] == []
    assert "401" in document["paths"]["/predict"]["post"]["responses"]


# -- hooks -------------------------------------------------------------------------------


@pytest.mark.spec("RUN-029")
async def test_sync_hooks_run_in_threads_with_the_callers_context() -> None:
    seen: list[tuple[int, str]] = []
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    def sync_hook(tag: str) -> str:
        seen.append((threading.get_ident(), var.get()))
        return tag

    async def async_hook(tag: str) -> str:
        seen.append((threading.get_ident(), var.get()))
        return tag

    var.set("bound")
    assert await call_hook(sync_hook, "a") == "a"
    assert await call_hook(async_hook, "b") == "b"
    assert await call_hook(functools.partial(async_hook, "c")) == "c"
    here = threading.get_ident()
    assert seen[0][0] != here
    assert seen[1][0] == here
    assert [ctx for _, ctx in seen] == ["bound", "bound", "bound"]


async def test_cancelled_caller_waits_the_grace_for_a_running_hook() -> None:
    finished = threading.Event()

    def quick() -> None:
        threading.Event().wait(0.2)
        finished.set()

    with trio.fail_after(5), trio.move_on_after(0.05):
        await call_hook(quick, cancel_grace=2.0)
    assert finished.is_set()  # cancel came at 0.05 s; the caller still saw the hook end

    hung = threading.Event()
    start = trio.current_time()
    with trio.fail_after(5), trio.move_on_after(0.05):
        await call_hook(hung.wait, 5.0, cancel_grace=0.2)
    assert trio.current_time() - start < 1.0  # abandoned after the grace
    hung.set()


async def test_cancelled_call_that_never_started_never_runs() -> None:
    trio.to_thread.current_default_thread_limiter().total_tokens = 1
    release = threading.Event()
    ran = threading.Event()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call_hook, release.wait, 5.0)
            await trio.sleep(0.05)  # the only worker slot is now taken
            with trio.move_on_after(0.05):
                await call_hook(ran.set)
            release.set()
        await trio.sleep(0.1)
    assert not ran.is_set()


async def test_iterate_in_thread_closes_an_abandoned_generator() -> None:
    closed = threading.Event()

    def numbers() -> Iterator[int]:
        try:
            yield from range(100)
        finally:
            closed.set()

    with trio.fail_after(5):
        items = iterate_in_thread(numbers())
        async for item in items:
            if item == 2:
                break
        await items.aclose()
        while not closed.is_set():
            await trio.sleep(0.01)


# -- targets and serve() -------------------------------------------------------------------


def test_load_target(tmp_path: Path) -> None:
    assert isinstance(load_target("trio_trickle.examples:Echo"), Echo)
    assert isinstance(load_target("trio_trickle.examples:Invert"), LivePipeline)
    module = tmp_path / "my_pipeline_file.py"
    module.write_text(
        "from trio_trickle._sdk.pipeline import Pipeline\n"
        "class Outer:\n"
        "    class Inner(Pipeline):\n"
        "        def predict(self) -> int:\n"
        "            return 1\n"
        "instance = Outer.Inner()\n"
        "not_a_pipeline = 3\n"
    )
    assert isinstance(load_target(f"{module}:Outer.Inner"), Pipeline)
    assert isinstance(load_target(f"{module}:instance"), Pipeline)
    for bad in (
        "trio_trickle.examples",
        "trio_trickle.examples:",
        ":Echo",
        "trio_trickle.examples:Nope",
        "no_such_module_anywhere:Thing",
        "trio_trickle._errors:ProtocolError",
        f"{module}:not_a_pipeline",
        f"{tmp_path / 'missing.py'}:X",
    ):
        with pytest.raises(InvalidTarget):
            load_target(bad)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("target", ["Echo", "Passthrough"])
async def test_serve_runs_until_sigint_and_exits_cleanly(target: str) -> None:
    port = _free_port()
    code = (
        "from trio_trickle._runner.serve import serve; "
        f"serve('trio_trickle.examples:{target}', host='127.0.0.1', port={port})"
    )
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(
                functools.partial(trio.run_process, [sys.executable, "-c", code], check=False)
            )
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                while True:
                    try:
                        health = await client.get("/health")
                    except httpx.TransportError:
                        await trio.sleep(0.05)
                        continue
                    if health.json() == {"status": "IDLE"}:
                        break
                    await trio.sleep(0.05)
                if target == "Echo":
                    response = await client.post("/predict", json={"text": "hi"})
                    assert response.json() == {"text": "hi"}
                else:
                    response = await client.get("/stream/status")
                    assert response.json()["sessions"] == []
            process.send_signal(signal.SIGINT)
        assert process.returncode == 0


@attrs.frozen(kw_only=True)
class Resize:
    width: int = attrs.field(validator=attrs.validators.gt(0))
    height: int = attrs.field(validator=attrs.validators.gt(0))
    mode: Literal["fit", "fill"] = "fit"


class ResizePipeline(Pipeline):
    def predict(self, params: Resize) -> dict[str, Any]:
        assert isinstance(params, Resize)
        return {"pixels": params.width * params.height, "mode": params.mode}


@pytest.mark.spec("RUN-120")
async def test_an_attrs_class_parameter_takes_the_body() -> None:
    with trio.fail_after(10):
        async with served(ResizePipeline()) as (_, client):
            response = await client.post("/predict", json={"width": 4, "height": 3})
            assert response.status_code == 200
            assert response.json() == {"pixels": 12, "mode": "fit"}
            assert "height" in assert_error(await client.post("/predict", json={"width": 4}), 422)
            refused = assert_error(
                await client.post("/predict", json={"width": 4, "height": 0}), 422
            )
            assert "height" in refused
            assert_error(await client.post("/predict", json={"width": 4, "height": 1, "x": 1}), 400)
            assert_error(
                await client.post("/predict", json={"width": 1, "height": 1, "mode": "x"}), 422
            )
            document = (await client.get("/openapi.json")).json()
            schema = document["components"]["schemas"]["PredictRequest"]
            assert schema["required"] == ["width", "height"]
            assert schema["properties"]["mode"] == {"enum": ["fit", "fill"], "default": "fit"}


class SlowSetup(Pipeline):
    def __init__(self) -> None:
        self.release = threading.Event()

    def setup(self) -> None:
        self.release.wait(10)

    def predict(self) -> int:
        return 1


async def test_a_serving_runner_freezes_the_gc_once_setup_returned() -> None:
    import gc

    pipeline = SlowSetup()
    gc.unfreeze()
    try:
        with trio.fail_after(10):
            async with open_runner(pipeline, freeze_gc=True) as handle:
                await trio.sleep(0.1)
                assert gc.get_freeze_count() == 0  # models still loading: not yet
                pipeline.release.set()
                await handle.wait_setup()
                while gc.get_freeze_count() == 0:
                    await trio.sleep(0.01)
        # A setup that never returns does not hold the runner's exit.
        hung = SlowSetup()
        with trio.fail_after(5):
            async with open_runner(hung, freeze_gc=True):
                pass
        hung.release.set()
    finally:
        gc.unfreeze()
