"""Helpers for the orchestrator's integration tests: a served orchestrator, a runner's calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

from trio_trickle._orchestrator.config import OrchestratorConfig
from trio_trickle._orchestrator.process import OrchestratorHandle, open_orchestrator
from trio_trickle._registry.config import RegistryConfig

SECRET = "orch-secret"
RUNNER_URL = "http://127.0.0.1:9/"


@asynccontextmanager
async def served(**fields: Any) -> AsyncIterator[tuple[OrchestratorHandle, httpx.AsyncClient]]:
    """An orchestrator on 127.0.0.1:0 and an httpx client pointed at it."""
    config = OrchestratorConfig(secret=fields.pop("secret", SECRET), **fields)
    async with (
        open_orchestrator(config) as handle,
        httpx.AsyncClient(base_url=handle.url, timeout=10) as client,
    ):
        yield handle, client


def fast_registry(url: str, **fields: Any) -> RegistryConfig:
    return RegistryConfig(service_uri=url, orchestrator_secret=SECRET, **fields)


def beat_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"runner_url": RUNNER_URL, "app": "echo", "capacity": 1}
    body.update(fields)
    return body


async def register(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """A first heartbeat with the orchestrator secret; the 200 body."""
    response = await client.post(
        "/runners/heartbeat", json=beat_body(**fields), headers={"Authorization": SECRET}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def reserve(client: httpx.AsyncClient, runner_id: str) -> dict[str, Any]:
    response = await client.post(f"/apps/{runner_id}/session", json={})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def token_headers(handle: OrchestratorHandle, runner_id: str, session_id: str) -> dict[str, str]:
    """The session token a runner reads from a proxied request (LR-108, LR-112)."""
    target = handle.registry.session_target(runner_id, session_id, "", trio.current_time())
    return {"Livepeer-Session-Token": target.headers.session_token}


async def o2r_messages(
    client: httpx.AsyncClient, path: str, count: int, start: int = 0
) -> list[dict[str, Any]]:
    """Read ``count`` O2R segments from ``start`` (each one JSON object, LR-049)."""
    out = []
    for seq in range(start, start + count):
        response = await client.get(f"{path}/{seq}")
        assert response.status_code == 200, response.text
        out.append(json.loads(response.content))
    return out
