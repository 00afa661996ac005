"""A runner registering with the orchestrator process, end to end over real sockets.

``open_runner(..., orchestrator_url=...)`` against ``open_orchestrator`` on
127.0.0.1:0 (its registry driven over HTTP, its O2R channels on its own
trickle server); httpx plays the client that reserves and stops sessions.
Timers are shortened (50 ms heartbeats) and every test is bounded by
``trio.fail_after``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from trio_trickle._orchestrator.config import OrchestratorConfig
from trio_trickle._orchestrator.process import OrchestratorHandle, open_orchestrator
from trio_trickle._registry.config import RegistryConfig
from trio_trickle._runner.registration import RunnerRegistration
from trio_trickle._runner.serve import RunnerHandle, open_runner
from trio_trickle.examples import Passthrough

SECRET = "orch-secret"


def _fast(url: str, interval: float = 0.05) -> RegistryConfig:
    return RegistryConfig(
        service_uri=url, orchestrator_secret=SECRET, heartbeat_interval=interval, heartbeat_ttl=30.0
    )


@asynccontextmanager
async def orchestrator(
    port: int = 0, *, interval: float = 0.05, keepalive: float = 0.2
) -> AsyncIterator[OrchestratorHandle]:
    config = OrchestratorConfig(
        secret=SECRET,
        port=port,
        registry=functools.partial(_fast, interval=interval),
        o2r_keepalive=keepalive,
    )
    async with open_orchestrator(config) as handle:
        yield handle


@asynccontextmanager
async def registered_runner(orch_url: str, **options: Any) -> AsyncIterator[RunnerHandle]:
    async with open_runner(
        Passthrough(),
        orchestrator_url=orch_url,
        orchestrator_secret=SECRET,
        app_name="echo",
        **options,
    ) as runner:
        assert runner.registration is not None
        await runner.registration.registered.wait()
        yield runner


async def until(check: Callable[[], bool], step: float = 0.01) -> None:
    while not check():
        await trio.sleep(step)


def _registration(runner: RunnerHandle) -> RunnerRegistration:
    assert runner.registration is not None
    return runner.registration


@pytest.mark.spec("LR-001", "LR-002", "LR-003", "LR-022", "LR-023", "LR-029", "LR-033", "LR-037")
async def test_runner_registers_heartbeats_and_unregisters_on_exit() -> None:
    with trio.fail_after(15):
        async with orchestrator() as orch:
            async with registered_runner(orch.url) as runner:
                reg = _registration(runner)
                (view,) = orch.registry.runners()
                assert view.runner_id == reg.runner_id
                assert view.capacity == 1
                assert reg.o2r is not None
                assert reg.interval == 0.05
                first = view.last_heartbeat
                # Later heartbeats carry the heartbeat secret: the orchestrator
                # secret would be refused for a registered ID (LR-007).
                await until(lambda: orch.registry.runners()[0].last_heartbeat > first + 0.1)
                assert reg.registrations == 1
                async with httpx.AsyncClient(timeout=5) as client:
                    discovery = await client.get(f"{orch.url}/discovery")
                runners = discovery.json()[0]["runners"]
                assert [r["app"] for r in runners] == ["echo"]
            assert orch.registry.runners() == ()  # unregistered on exit (LR-037)


@pytest.mark.spec("LR-045", "LR-047", "LR-048", "LR-142", "LR-028")
async def test_o2r_reserved_and_released_events_are_tracked() -> None:
    with trio.fail_after(15):
        async with (
            orchestrator() as orch,
            registered_runner(orch.url) as runner,
            httpx.AsyncClient(base_url=orch.url, timeout=5) as client,
        ):
            reg = _registration(runner)
            reserved = await client.post(f"/apps/{reg.runner_id}/session", json={})
            assert reserved.status_code == 200, reserved.text
            session_id = reserved.json()["session_id"]
            await until(lambda: session_id in reg.sessions)
            stop = await client.post(f"/apps/{reg.runner_id}/session/{session_id}/stop")
            assert stop.status_code == 204
            # The heartbeat answer may tell the release first, without a reason; the O2R
            # event names it either way (LR-142).
            await until(lambda: list(reg.released) == [(session_id, "client_stop")])
            # A repeated release is a no-op (LR-150).
            await trio.sleep(0.2)
            assert list(reg.released) == [(session_id, "client_stop")]


@pytest.mark.spec("LR-030", "LR-149", "LR-150")
async def test_a_session_the_orchestrator_does_not_hold_is_released() -> None:
    with trio.fail_after(15):
        async with orchestrator() as orch, registered_runner(orch.url) as runner:
            reg = _registration(runner)
            reg.note_reserved("session_ghost")
            await until(lambda: "session_ghost" not in reg.sessions)
            # Released by the heartbeat answer (LR-030), or by the O2R event the
            # orchestrator queues for an ID it does not hold (LR-149), once.
            assert len(reg.released) == 1
            assert reg.released[0][0] == "session_ghost"
            assert reg.released[0][1] in (None, "unknown_session")


async def _serve_orchestrator(
    port: int, stop: trio.Event, *, task_status: trio.TaskStatus[OrchestratorHandle]
) -> None:
    async with orchestrator(port) as handle:
        task_status.started(handle)
        await stop.wait()


@pytest.mark.spec("LR-031", "LR-032", "LR-045")
async def test_runner_registers_again_when_the_orchestrator_restarts() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            stop_first, stop_second = trio.Event(), trio.Event()
            first_done = trio.Event()

            async def first_orchestrator(*, task_status: Any) -> None:
                try:
                    await _serve_orchestrator(0, stop_first, task_status=task_status)
                finally:
                    first_done.set()

            first: OrchestratorHandle = await nursery.start(first_orchestrator)
            port = int(first.url.rsplit(":", 1)[1])
            async with registered_runner(first.url) as runner:
                reg = _registration(runner)
                async with httpx.AsyncClient(base_url=first.url, timeout=5) as client:
                    reserved = await client.post(f"/apps/{reg.runner_id}/session", json={})
                    session_id = reserved.json()["session_id"]
                await until(lambda: session_id in reg.sessions)
                old_o2r = reg.o2r
                stop_first.set()  # the orchestrator goes away under the runner
                await first_done.wait()
                second: OrchestratorHandle = await nursery.start(
                    _serve_orchestrator, port, stop_second
                )
                # The new orchestrator does not know the runner's heartbeat secret:
                # 401 invalid registration authorization, then a new registration.
                await until(lambda: reg.registrations == 2)
                (view,) = second.registry.runners()
                assert view.runner_id == reg.runner_id
                assert reg.o2r is not None
                assert reg.o2r != old_o2r
                # The new record holds no sessions: the old one is released (LR-031),
                # unless the first orchestrator's shutdown event said so before.
                assert session_id not in reg.sessions
                assert [s for s, _ in reg.released] == [session_id]
                assert reg.released[0][1] in (None, "orchestrator_shutdown")
                # The new O2R channel is read: a new reservation shows up.
                async with httpx.AsyncClient(base_url=second.url, timeout=5) as client:
                    again = await client.post(f"/apps/{reg.runner_id}/session", json={})
                    assert again.status_code == 200, again.text
                    new_id = again.json()["session_id"]
                await until(lambda: new_id in reg.sessions)
            stop_second.set()


@pytest.mark.spec("LR-001")
async def test_a_runner_without_an_orchestrator_does_not_register() -> None:
    with trio.fail_after(10):
        async with open_runner(Passthrough()) as runner:
            assert runner.registration is None


@pytest.mark.spec("LR-037")
async def test_unregister_is_bounded_when_the_orchestrator_is_gone() -> None:
    with trio.fail_after(10):
        async with orchestrator() as orch:
            url = orch.url
        # Nothing listens there any more: heartbeats fail, the runner keeps serving.
        async with open_runner(
            Passthrough(),
            orchestrator_url=url,
            orchestrator_secret=SECRET,
            registration_options={"request_timeout": 0.5, "unregister_timeout": 0.5},
        ) as runner:
            reg = _registration(runner)
            async with httpx.AsyncClient(timeout=5) as client:
                health = await client.get(f"{runner.url}/health")
            assert health.status_code == 200
            assert not reg.is_registered
        assert not reg.registered.is_set()


@pytest.mark.spec("LR-046", "LR-053")
async def test_o2r_silence_makes_the_runner_check_its_registration() -> None:
    with trio.fail_after(15):
        # 5 s heartbeats and 10 s keepalives: only the 0.2 s silence bound explains
        # more heartbeats within a second.
        async with (
            orchestrator(interval=5.0, keepalive=10.0) as orch,
            registered_runner(orch.url, registration_options={"o2r_silence": 0.2}) as runner,
        ):
            reg = _registration(runner)
            seen = [orch.registry.runners()[0].last_heartbeat]
            while len(seen) < 4:
                await trio.sleep(0.02)
                beat = orch.registry.runners()[0].last_heartbeat
                if beat != seen[-1]:
                    seen.append(beat)
            assert seen[-1] - seen[0] < 2.0
            assert reg.registrations == 1


@pytest.mark.spec("LR-046")
async def test_keepalives_keep_a_quiet_runner_on_its_interval() -> None:
    with trio.fail_after(15):
        async with (
            orchestrator(interval=5.0, keepalive=0.05) as orch,
            registered_runner(orch.url, registration_options={"o2r_silence": 0.3}) as runner,
        ):
            reg = _registration(runner)
            first = orch.registry.runners()[0].last_heartbeat
            await trio.sleep(1.0)
            assert orch.registry.runners()[0].last_heartbeat == first
            assert reg.registrations == 1
