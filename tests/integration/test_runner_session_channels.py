"""A runner's proxied ``/stream/start`` makes the session's channels itself, over loopback.

``open_orchestrator`` on 127.0.0.1:0 and a relaying ``LivePipeline`` from
``open_runner`` registered by its own heartbeats. A client starts the stream
through the session proxy with no channel URLs (LR-107); the runner creates the
channels with the callback the proxy names (LR-108, LR-114), runs the stream on
their internal URLs and answers with their public ones (LR-119, LR-120). A
failure leaves no channel behind on the orchestrator's trickle server.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from trio_trickle._gateway.discovery import candidates, discover
from trio_trickle._gateway.live_session import open_live_session
from trio_trickle._gateway.reservation import reserve, stop_session
from trio_trickle._orchestrator.config import OrchestratorConfig
from trio_trickle._orchestrator.process import OrchestratorHandle, open_orchestrator
from trio_trickle._registry.config import RegistryConfig
from trio_trickle._runner.serve import RunnerHandle, open_runner
from trio_trickle._sdk.live_pipeline import LivePipeline
from trio_trickle._session.settings import SessionSettings
from trio_trickle._wire.live_runner_channels import ChannelsResponse, ProxiedSessionHeaders
from trio_trickle._wire.live_runner_payment import SessionReservation

SECRET = "orch-secret"
APP = "relay"
NAMES = ["in", "out", "control", "events"]


class Relay(LivePipeline):
    """Overrides nothing: the runner relays input segments to the output as bytes."""


class CannotStart(LivePipeline):
    def on_stream_start(self, params: dict[str, Any]) -> None:
        raise RuntimeError("no stream today")


@asynccontextmanager
async def control_plane(
    pipeline: LivePipeline | None = None,
) -> AsyncIterator[tuple[OrchestratorHandle, RunnerHandle]]:
    def registry(url: str) -> RegistryConfig:
        return RegistryConfig(service_uri=url, orchestrator_secret=SECRET, heartbeat_interval=0.05)

    config = OrchestratorConfig(secret=SECRET, registry=registry, o2r_keepalive=0.2)
    settings = SessionSettings(heartbeat_interval=0.2, device="cpu", stop_timeout=2.0)
    async with (
        open_orchestrator(config) as orch,
        open_runner(
            pipeline if pipeline is not None else Relay(),
            orchestrator_url=orch.url,
            orchestrator_secret=SECRET,
            app_name=APP,
            settings=settings,
        ) as runner,
    ):
        assert runner.registration is not None
        await runner.registration.registered.wait()
        await runner.wait_setup()
        yield orch, runner


def session_channels(orch: OrchestratorHandle, session_id: str) -> list[str]:
    """The session's channels on the orchestrator's trickle server."""
    return sorted(n for n in orch.trickle.core.channels if n.startswith(session_id + "-"))


async def reserved(orch: OrchestratorHandle, client: httpx.AsyncClient) -> SessionReservation:
    """A session on the runner, reserved once discovery lists it with room."""
    while True:
        listed = candidates(await discover(orch.url, client=client), app=APP)
        if listed:
            return await reserve(client, listed[0].reserve_url)
        await trio.sleep(0.05)


def proxied_headers(orch: OrchestratorHandle, reservation: SessionReservation) -> dict[str, str]:
    """What the session proxy adds to a request for this session (LR-108)."""
    route = reservation.control_url.rstrip("/").split("/")[-3]
    target = orch.registry.session_target(route, reservation.session_id, "", trio.current_time())
    return target.headers.to_wire()


@pytest.mark.spec("LR-107", "LR-108", "LR-114", "LR-119", "LR-120")
async def test_the_default_starter_streams_through_the_runners_own_channels() -> None:
    with trio.fail_after(30):
        async with control_plane() as (orch, runner), open_live_session(orch.url, APP) as session:
            sid = session.session_id
            assert sid is not None
            channels = session.channels
            assert channels is not None
            for url in (channels.input_url, channels.output_url, channels.control_url):
                assert url is not None
                assert url.startswith(orch.url + "/ai/trickle/" + sid + "-")  # public (LR-120)
            assert session_channels(orch, sid) == sorted(f"{sid}-{n}" for n in NAMES)
            received: list[bytes] = []
            async with trio.open_nursery() as nursery:

                async def feed() -> None:
                    for i in range(1000):
                        await session.publish(b"segment-%03d|" % i * 100)
                        await trio.sleep(0.05)

                nursery.start_soon(feed)
                async for segment in session.output_segments():
                    received.append(segment)
                    if len(received) == 3:
                        break
                nursery.cancel_scope.cancel()
            first = int(received[0][8:11])
            assert received == [b"segment-%03d|" % (first + k) * 100 for k in range(3)]
            assert runner.app.manager is not None
            assert [s.id for s in runner.app.manager.sessions()] == [sid]
        assert session_channels(orch, sid) == []  # the release closed them (LR-132)


@pytest.mark.spec("LR-114", "LR-119", "LR-120")
async def test_the_start_answer_is_the_callbacks_channels() -> None:
    with trio.fail_after(30):
        async with control_plane() as (orch, _runner), httpx.AsyncClient() as client:
            reservation = await reserved(orch, client)
            sid = reservation.session_id
            answer = await client.post(
                reservation.app_url + "/stream/start", json={"params": {"a": 1}}
            )
            assert answer.status_code == 200, answer.text
            made = ChannelsResponse.from_wire(answer.json())
            assert [c.name for c in made.channels] == NAMES
            assert all(c.url == f"{orch.url}/ai/trickle/{sid}-{c.name}" for c in made.channels)
            # A second start on the same session is refused and keeps the first's channels.
            again = await client.post(reservation.app_url + "/stream/start", json={})
            assert again.status_code == 409
            assert session_channels(orch, sid) == sorted(f"{sid}-{n}" for n in NAMES)
            await stop_session(client, reservation)
            assert session_channels(orch, sid) == []


@pytest.mark.spec("LR-112")
async def test_a_failed_callback_answers_502_and_leaves_no_channels() -> None:
    with trio.fail_after(30):
        async with control_plane() as (orch, runner), httpx.AsyncClient() as client:
            reservation = await reserved(orch, client)
            headers = proxied_headers(orch, reservation)
            ProxiedSessionHeaders.from_wire(headers)
            headers["Livepeer-Session-Token"] = "not-the-token"  # the callback answers 401
            answer = await client.post(runner.url + "/stream/start", json={}, headers=headers)
            assert answer.status_code == 502
            assert "401" in answer.text
            assert session_channels(orch, reservation.session_id) == []
            assert runner.app.manager is not None
            assert runner.app.manager.sessions() == []
            await stop_session(client, reservation)


@pytest.mark.spec("LR-114")
async def test_a_registered_runner_calls_back_only_to_its_orchestrator() -> None:
    """The session headers arrive with the request: a runner that registered with an
    orchestrator refuses (403, no outbound call) a control URL anywhere else, so whoever
    reaches the runner cannot make it POST to an address of their choosing."""
    with trio.fail_after(30):
        async with (
            control_plane() as (orch, runner),
            httpx.AsyncClient() as client,
            trio.open_nursery() as nursery,
        ):
            called = trio.Event()
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, _note_call(called), 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            reservation = await reserved(orch, client)
            headers = proxied_headers(orch, reservation)
            headers["Livepeer-Session-Control"] = f"http://127.0.0.1:{port}/runner/x/session/y"
            answer = await client.post(runner.url + "/stream/start", json={}, headers=headers)
            assert answer.status_code == 403, answer.text
            assert not called.is_set()
            assert session_channels(orch, reservation.session_id) == []
            await stop_session(client, reservation)
            nursery.cancel_scope.cancel()


def _note_call(called: trio.Event) -> Any:
    async def handler(stream: trio.SocketStream) -> None:
        called.set()
        await stream.aclose()

    return handler


async def test_a_stream_that_fails_to_start_deletes_the_channels_it_made() -> None:
    with trio.fail_after(30):
        async with control_plane(CannotStart()) as (orch, _), httpx.AsyncClient() as client:
            reservation = await reserved(orch, client)
            sid = reservation.session_id
            answer = await client.post(reservation.app_url + "/stream/start", json={})
            assert answer.status_code == 500, answer.text
            assert session_channels(orch, sid) == []
            # The session is still held: a retry makes the channels again, and deletes them.
            answer = await client.post(reservation.app_url + "/stream/start", json={})
            assert answer.status_code == 500
            assert session_channels(orch, sid) == []
            await stop_session(client, reservation)


@pytest.mark.spec("RUN-046")
async def test_without_session_headers_or_channel_urls_the_start_is_400() -> None:
    with trio.fail_after(30):
        async with control_plane() as (_orch, runner), httpx.AsyncClient() as client:
            for path in ("/stream/start", "/live-video-to-video"):
                answer = await client.post(runner.url + path, json={"params": {}})
                assert answer.status_code == 400, answer.text
