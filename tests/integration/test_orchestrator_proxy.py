"""The session reverse proxy over real sockets: a fake runner behind the orchestrator.

The runner is a small plain ASGI app served by ``serve_asgi`` on 127.0.0.1:0
that records what reached it and can hold a streamed answer open until the
test releases it.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest
import trio

from tests.integration.orchestrator_support import (
    fast_registry,
    o2r_messages,
    register,
    reserve,
    served,
    token_headers,
)
from trio_trickle._client.http import BodyReader
from trio_trickle._registry.config import RegistryConfig
from trio_trickle._server.connections import http_config, serve_asgi


@attrs.define
class FakeRunner:
    seen: list[dict[str, Any]] = attrs.field(factory=list)
    release: trio.Event = attrs.field(factory=trio.Event)
    disconnected: trio.Event = attrs.field(factory=trio.Event)
    url: str = ""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.seen.append(
            {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"],
                "headers": headers,
                "body": body,
            }
        )
        head = [(b"content-type", b"text/plain"), (b"x-runner", b"yes")]
        await send({"type": "http.response.start", "status": 201, "headers": head})
        if scope["path"] == "/hold":
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
            async with trio.open_nursery() as nursery:

                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    self.disconnected.set()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(watch)
                await self.release.wait()
                nursery.cancel_scope.cancel()
            await send({"type": "http.response.body", "body": b"second"})
            return
        await send({"type": "http.response.body", "body": b"echo:" + body})


@asynccontextmanager
async def fake_runner() -> AsyncIterator[FakeRunner]:
    runner = FakeRunner()
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        serve = functools.partial(
            serve_asgi,
            runner,
            http_config("127.0.0.1", 0, graceful_timeout=0.5),
            shutdown_trigger=stop.wait,
        )
        binds = await nursery.start(serve)
        runner.url = binds[0]
        try:
            yield runner
        finally:
            runner.release.set()
            stop.set()


@pytest.mark.spec("LR-107", "LR-108")
async def test_proxy_forwards_method_path_query_body_and_session_headers() -> None:
    with trio.fail_after(10):
        async with fake_runner() as runner, served() as (handle, client):
            runner_id = (await register(client, runner_url=runner.url + "/"))["runner_id"]
            session = await reserve(client, runner_id)
            sid = session["session_id"]
            response = await client.put(
                f"{session['app_url']}/a/b%20c?x=1&y=2",
                content=b"payload",
                headers={"Livepeer-Session-Token": "forged", "X-Custom": "kept"},
            )
            assert response.status_code == 201
            assert response.content == b"echo:payload"
            assert response.headers["x-runner"] == "yes"
            (seen,) = runner.seen
            assert seen["method"] == "PUT"
            assert seen["path"] == "/a/b c"
            assert seen["query"] == b"x=1&y=2"
            assert seen["body"] == b"payload"
            headers = seen["headers"]
            assert headers["x-custom"] == "kept"
            assert headers["host"] == runner.url.removeprefix("http://")
            assert headers["livepeer-runner-route"] == runner_id
            assert headers["livepeer-session-id"] == sid
            expected = token_headers(handle, runner_id, sid)["Livepeer-Session-Token"]
            assert headers["livepeer-session-token"] == expected
            control = f"{handle.url}/runner/{runner_id}/session/{sid}"
            assert headers["livepeer-session-control"] == control


@pytest.mark.spec("LR-107")
async def test_proxy_streams_both_bodies() -> None:
    with trio.fail_after(10):
        async with fake_runner() as runner, served() as (_handle, client):
            runner_id = (await register(client, runner_url=runner.url))["runner_id"]
            session = await reserve(client, runner_id)

            async def chunks() -> AsyncIterator[bytes]:
                for part in (b"one,", b"two,", b"three"):
                    yield part

            echoed = await client.post(f"{session['app_url']}/echo", content=chunks())
            assert echoed.content == b"echo:one,two,three"
            async with client.stream("GET", f"{session['app_url']}/hold") as held:
                assert held.status_code == 201
                reader = BodyReader(held)
                # The first chunk arrives while the runner still holds its answer open.
                assert await reader.next_chunk() == b"first"
                runner.release.set()
                assert await reader.next_chunk() == b"second"
                assert await reader.next_chunk() is None


@pytest.mark.spec("LR-109", "LR-146")
async def test_proxy_404_for_unknown_and_released_sessions() -> None:
    with trio.fail_after(10):
        async with fake_runner() as runner, served() as (_handle, client):
            runner_id = (await register(client, runner_url=runner.url))["runner_id"]
            session = await reserve(client, runner_id)
            sid = session["session_id"]
            unknown = await client.get(f"/apps/{runner_id}/session/session_none/app/x")
            assert unknown.status_code == 404
            assert unknown.text == "runner session not found\n"
            await client.post(f"/apps/{runner_id}/session/{sid}/stop")
            released = await client.get(f"{session['app_url']}/x")
            assert released.status_code == 404
            assert released.headers["Livepeer-Session-Release-Reason"] == "client_stop"
            assert runner.seen == []


@pytest.mark.spec("LR-110")
async def test_proxy_502_when_the_runner_cannot_be_reached() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            # Port 9 (discard) on loopback: nothing listens there.
            runner_id = (await register(client, runner_url="http://127.0.0.1:9/"))["runner_id"]
            session = await reserve(client, runner_id)
            response = await client.get(f"{session['app_url']}/x")
            assert response.status_code == 502
            assert response.text == "live runner unreachable\n"
            # the failed request left the session open and nothing behind
            (view,) = handle.registry.runners()
            assert view.session_ids == (session["session_id"],)


@pytest.mark.spec("LR-135", "LR-134")
async def test_open_proxied_request_keeps_session_from_idle_release() -> None:
    def short(url: str) -> RegistryConfig:
        return fast_registry(url, heartbeat_interval=0.05, session_idle_timeout=0.3)

    with trio.fail_after(10):
        async with fake_runner() as runner, served(registry=short) as (handle, client):
            first = await register(client, runner_url=runner.url)
            runner_id = first["runner_id"]
            sid = (await reserve(client, runner_id))["session_id"]
            beat = {"runner_url": runner.url, "app": "echo", "runner_id": runner_id}
            secret = {"Authorization": first["heartbeat_secret"]}
            async with client.stream("GET", f"/apps/{runner_id}/session/{sid}/app/hold") as held:
                reader = BodyReader(held)
                assert await reader.next_chunk() == b"first"
                until = trio.current_time() + 0.6  # twice the idle timeout
                while trio.current_time() < until:
                    await client.post("/runners/heartbeat", json=beat, headers=secret)
                    await handle.next_reap()
                (view,) = handle.registry.runners()
                assert view.session_ids == (sid,)
                runner.release.set()
                assert await reader.next_chunk() == b"second"
                assert await reader.next_chunk() is None
            while handle.registry.runners()[0].session_ids:
                await client.post("/runners/heartbeat", json=beat, headers=secret)
                await handle.next_reap()
            stop = await client.post(f"/apps/{runner_id}/session/{sid}/stop")
            assert stop.headers["Livepeer-Session-Release-Reason"] == "idle_timeout"


async def test_client_disconnect_ends_the_upstream_request() -> None:
    with trio.fail_after(10):
        async with fake_runner() as runner, served() as (handle, client):
            runner_id = (await register(client, runner_url=runner.url))["runner_id"]
            session = await reserve(client, runner_id)
            async with (
                httpx.AsyncClient() as other,
                other.stream("GET", f"{session['app_url']}/hold") as held,
            ):
                reader = BodyReader(held)
                assert await reader.next_chunk() == b"first"
                await reader.aclose()  # the client goes away mid-body
            await runner.disconnected.wait()
            assert handle.connections.failed == 0


@pytest.mark.spec("LR-107")
async def test_websocket_upgrade_gets_a_clear_refusal() -> None:
    with trio.fail_after(10):
        async with fake_runner() as runner, served() as (handle, client):
            runner_id = (await register(client, runner_url=runner.url))["runner_id"]
            session = await reserve(client, runner_id)
            response = await client.get(
                f"{session['app_url']}/ws",
                headers={
                    "Connection": "Upgrade",
                    "Upgrade": "websocket",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                    "Sec-WebSocket-Version": "13",
                },
            )
            assert response.status_code in (400, 501)
            assert "websocket" in response.text
            assert runner.seen == []
            assert handle.connections.failed == 0


@pytest.mark.spec("LR-111", "LR-133", "LR-141")
async def test_single_shot_request_reserves_proxies_and_releases() -> None:
    with trio.fail_after(10):
        async with fake_runner() as runner, served() as (handle, client):
            first = await register(client, runner_url=runner.url, mode="single-shot")
            runner_id = first["runner_id"]
            response = await client.post(f"/apps/{runner_id}/app/run?x=1", content=b"job")
            assert response.status_code == 201
            assert response.content == b"echo:job"
            (seen,) = runner.seen
            assert seen["path"] == "/run"
            assert seen["query"] == b"x=1"
            sid = seen["headers"]["livepeer-session-id"]
            # The release follows the answer: the O2R event is the moment it happened.
            reserved, released = await o2r_messages(client, first["o2r"]["url"], 2)
            (view,) = handle.registry.runners()
            assert view.session_ids == ()
            assert (reserved["event"], reserved["session"]) == ("reserved", sid)
            assert (released["event"], released["reason"]) == ("released", "request_ended")


@pytest.mark.spec("LR-111", "LR-087")
async def test_single_shot_capacity_and_persistent_refusal() -> None:
    with trio.fail_after(10):
        async with fake_runner() as runner, served() as (handle, client):
            single = await register(client, runner_url=runner.url, mode="single-shot")
            persistent = (await register(client, runner_url=runner.url))["runner_id"]
            refused = await client.get(f"/apps/{persistent}/app/x")
            assert refused.status_code == 400
            assert refused.text == "runner is not single-shot\n"
            async with client.stream("GET", f"/apps/{single['runner_id']}/app/hold") as held:
                reader = BodyReader(held)
                assert await reader.next_chunk() == b"first"
                busy = await client.get(f"/apps/{single['runner_id']}/app/x")
                assert busy.status_code == 503
                runner.release.set()
                assert await reader.next_chunk() == b"second"
                assert await reader.next_chunk() is None
            # reserved, released (the 503 reserved nothing): then the session is gone
            events = await o2r_messages(client, single["o2r"]["url"], 2)
            assert [e["event"] for e in events] == ["reserved", "released"]
            assert all(view.session_ids == () for view in handle.registry.runners())


async def test_single_shot_unreachable_runner_releases_the_session() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            first = await register(client, runner_url="http://127.0.0.1:9/", mode="single-shot")
            response = await client.post(f"/apps/{first['runner_id']}/app/x", content=b"job")
            assert response.status_code == 502
            _reserved, released = await o2r_messages(client, first["o2r"]["url"], 2)
            assert released["reason"] == "request_ended"
            (view,) = handle.registry.runners()
            assert view.session_ids == ()


@pytest.mark.spec("LR-090", "LR-125")
async def test_proxy_urls_reach_their_targets() -> None:
    with trio.fail_after(10):
        async with fake_runner() as runner, served() as (handle, client):
            runner_id = (await register(client, runner_url=runner.url, proxy=True))["runner_id"]
            session = await reserve(client, runner_id)
            sid = session["session_id"]
            assert session["app_url"].startswith(f"{handle.url}/run/")
            via_app_url = await client.post(f"{session['app_url']}/a", content=b"1")
            assert via_app_url.content == b"echo:1"
            token = token_headers(handle, runner_id, sid)
            made = await client.post(
                f"/runner/{runner_id}/session/{sid}/proxy",
                json={"target_url": runner.url + "/base"},
                headers=token,
            )
            via_proxy = await client.post(f"{made.json()['url']}/b", content=b"2")
            assert via_proxy.content == b"echo:2"
            assert [seen["path"] for seen in runner.seen] == ["/a", "/base/b"]
            assert all(seen["headers"]["livepeer-session-id"] == sid for seen in runner.seen)
            await client.post(f"/apps/{runner_id}/session/{sid}/stop")
            gone = await client.post(f"{made.json()['url']}/b", content=b"3")
            assert gone.status_code == 404
