"""Static runners: registered from the configuration, kept by health checks (LR-041, LR-042)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

from tests.integration.orchestrator_support import served
from trio_trickle._registry.static import StaticRunnerEntry
from trio_trickle._server.connections import http_config, serve_asgi


@attrs.define
class HealthApp:
    healthy: bool = True
    failures_served: int = 0
    url: str = ""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        status = 200 if self.healthy else 503
        if not self.healthy:
            self.failures_served += 1
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@asynccontextmanager
async def health_app(healthy: bool) -> AsyncIterator[HealthApp]:
    app = HealthApp(healthy=healthy)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        serve = functools.partial(
            serve_asgi,
            app,
            http_config("127.0.0.1", 0, graceful_timeout=0.5),
            shutdown_trigger=stop.wait,
        )
        app.url = (await nursery.start(serve))[0]
        try:
            yield app
        finally:
            stop.set()


def _entry(app: HealthApp, label: str = "static-a") -> StaticRunnerEntry:
    return StaticRunnerEntry.from_wire(
        {"label": label, "runner_url": app.url, "app": "echo", "health_url": "/health"}
    )


@pytest.mark.spec("LR-041", "LR-042")
async def test_static_runner_turns_unavailable_after_two_failed_checks() -> None:
    with trio.fail_after(10):
        async with (
            health_app(healthy=True) as app,
            served(static_runners=(_entry(app),), health_interval=0.02) as (handle, client),
        ):
            (view,) = handle.registry.runners()
            assert view.static
            assert view.status == "ready"
            session = await client.post(f"/apps/{view.route}/session", json={})
            assert session.status_code == 200
            sid = session.json()["session_id"]
            listed = (await client.get("/discovery")).json()[0]["runners"]
            assert len(listed) == 1
            app.healthy = False
            while handle.registry.runners()[0].status == "ready":
                await handle.next_health_check()
            # one failed check is not enough: the runner fell only after the second
            assert app.failures_served >= 2
            assert (await client.get("/discovery")).json()[0].get("runners") is None
            stop = await client.post(f"/apps/{view.route}/session/{sid}/stop")
            assert stop.headers["Livepeer-Session-Release-Reason"] == "runner_unhealthy"
            app.healthy = True
            while handle.registry.runners()[0].status != "ready":
                await handle.next_health_check()
            again = await client.post(f"/apps/{view.route}/session", json={})
            assert again.status_code == 200


@pytest.mark.spec("LR-042", "LR-043")
async def test_static_runner_failing_its_first_check_starts_unavailable() -> None:
    with trio.fail_after(10):
        async with (
            health_app(healthy=False) as app,
            served(static_runners=(_entry(app),), health_interval=0.02) as (handle, client),
        ):
            (view,) = handle.registry.runners()
            assert view.status == "unavailable"
            refused = await client.post(f"/apps/{view.route}/session", json={})
            assert refused.status_code == 404


@pytest.mark.spec("LR-021", "LR-035")
async def test_static_runner_cannot_heartbeat_or_unregister() -> None:
    with trio.fail_after(10):
        async with (
            health_app(healthy=True) as app,
            served(static_runners=(_entry(app),), health_interval=5.0) as (handle, client),
        ):
            (view,) = handle.registry.runners()
            beat = await client.post(
                "/runners/heartbeat",
                json={"runner_url": app.url, "app": "echo", "runner_id": view.runner_id},
            )
            assert beat.status_code == 400
            assert beat.text == "static runner cannot heartbeat\n"
            gone = await client.post(f"/runners/{view.route}/unregister")
            assert gone.status_code == 400
            assert gone.text == "static runner cannot unregister with heartbeat credentials\n"
