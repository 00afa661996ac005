"""The published Python gateway client (``livepeer-gateway`` on PyPI) against our orchestrator.

Run by ``nox -s interop``, which installs the pinned client. The client is
asyncio (aiohttp): each scenario runs in ``asyncio.run`` on a worker thread
while the trio loop serves our orchestrator (and our runner) on 127.0.0.1:0.
Real sockets, offchain, no mocks. Skipped where the client is not installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import trio

from trio_trickle import OrchestratorConfig, open_orchestrator, open_runner
from trio_trickle.examples import Echo

try:
    from livepeer_gateway import discovery, live_runner, selection
except ImportError:  # the main venv: collected, then skipped
    INSTALLED = False
else:
    INSTALLED = True

pytestmark = pytest.mark.skipif(not INSTALLED, reason="livepeer-gateway is not installed")

SECRET = "orch-secret"
APP = "echo"


async def in_asyncio(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``scenario`` on its own asyncio loop in a worker thread; trio keeps serving."""
    return await trio.to_thread.run_sync(lambda: asyncio.run(asyncio.wait_for(scenario(), 20)))


async def listed(url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{url}/discovery")
        assert response.status_code == 200, response.text
        body: list[dict[str, Any]] = response.json()
        return body


async def test_register_runner_is_listed_then_unregistered() -> None:
    """The client's ``register_runner`` registers; our /discovery lists it; close unregisters."""
    with trio.fail_after(30):
        async with open_orchestrator(OrchestratorConfig(secret=SECRET)) as handle:
            url = handle.url
            reserved: list[str] = []
            registration_id: list[str] = []

            async def on_reserve(event: Any) -> None:
                reserved.append(event.session_id)

            async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
                registration = await live_runner.register_runner(
                    url,
                    secret=SECRET,
                    runner_url="http://127.0.0.1:9/runner",
                    app=APP,
                    capacity=2,
                    auto_detect_gpu=False,
                    label="interop",
                    on_session_reserve=on_reserve,
                )
                try:
                    assert registration.runner_id.startswith("runner_")
                    registration_id.append(registration.runner_id)
                    before = await listed(url)
                    # A reservation reaches the client's runner over the O2R channel.
                    async with httpx.AsyncClient(timeout=5) as client:
                        response = await client.post(
                            f"{url}/apps/{registration.runner_id}/session", json={}
                        )
                        assert response.status_code == 200, response.text
                    session_id = response.json()["session_id"]
                    for _ in range(200):
                        if session_id in registration.active_session_ids:
                            break
                        await asyncio.sleep(0.02)
                    assert session_id in registration.active_session_ids
                    assert reserved == [session_id]
                    during = await listed(url)
                finally:
                    await registration.close()
                after = await listed(url)
                return before, during, after

            before, during, after = await in_asyncio(scenario)
            ((entry,),) = [before]
            assert entry["address"] == url
            (runner,) = entry["runners"]
            assert runner["app"] == APP
            assert runner["capacity"] == 2
            assert runner["capacity_available"] == 2
            # Discovery names the runner by its session URL only (LR-056, LR-057).
            assert runner["url"] == f"{url}/apps/{registration_id[0]}/session"
            assert during[0]["runners"][0]["capacity_used"] == 1
            # Unregistered on close: the orchestrator lists no runner.
            assert after == [{"address": url}]
            assert handle.registry.runners() == ()


async def test_discover_reserve_call_and_stop_our_runner() -> None:
    """Discovery, reservation, a call through ``app_url`` and the stop, to our runner."""
    with trio.fail_after(30):
        async with (
            open_orchestrator(OrchestratorConfig(secret=SECRET)) as handle,
            open_runner(
                Echo(), orchestrator_url=handle.url, orchestrator_secret=SECRET, app_name=APP
            ) as runner,
        ):
            assert runner.registration is not None
            url = handle.url
            while not any(v.status == "ready" for v in handle.registry.runners()):
                await trio.sleep(0.02)

            async def scenario() -> dict[str, Any]:
                entries = await discovery.discover_orchestrator_runners(url, app=APP)
                (entry,) = entries
                (found,) = entry["runners"]
                session = await selection.reserve_session(orchestrators=[url], app=APP)
                try:
                    used = (await listed(url))[0]["runners"][0]["capacity_used"]
                    result = await live_runner.call_runner(
                        f"{session.app_url}/predict", payload={"text": "hi", "repeat": 2}
                    )
                finally:
                    await live_runner.stop_runner_session(session)
                return {
                    "found": found,
                    "session": session,
                    "used": used,
                    "result": result,
                    "after": await listed(url),
                }

            out = await in_asyncio(scenario)
            runner_id = runner.registration.runner_id
            assert out["found"]["url"] == f"{url}/apps/{runner_id}/session"
            session = out["session"]
            assert session.session_id.startswith("session_")
            assert session.control_url == (f"{url}/apps/{runner_id}/session/{session.session_id}")
            assert session.app_url == f"{session.control_url}/app"
            assert session.released
            assert out["used"] == 1
            assert out["result"].data == {"text": "hihi"}
            assert out["after"][0]["runners"][0]["capacity_used"] == 0
