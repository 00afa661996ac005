"""Runner callbacks and the O2R channel, over real sockets.

httpx plays the runner: it registers, reads its O2R channel from the
orchestrator's trickle mount, and calls ``/runner/{id}/session/{sid}/…`` with
the session token the orchestrator hands to proxied requests.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
import trio.lowlevel

from tests.integration.orchestrator_support import (
    beat_body,
    fast_registry,
    o2r_messages,
    register,
    reserve,
    served,
    token_headers,
)
from trio_trickle._core.server import ServerConfig
from trio_trickle._orchestrator.process import OrchestratorHandle
from trio_trickle._registry.config import RegistryConfig
from trio_trickle._registry.reservation import Reserved
from trio_trickle._wire.live_runner_payment import PaymentHeaders


async def _session(
    handle: OrchestratorHandle, client: httpx.AsyncClient, **fields: Any
) -> tuple[dict[str, Any], str, str, dict[str, str]]:
    first = await register(client, **fields)
    runner_id = first["runner_id"]
    sid = (await reserve(client, runner_id))["session_id"]
    return first, runner_id, sid, token_headers(handle, runner_id, sid)


@pytest.mark.spec("LR-114", "LR-115", "LR-117", "LR-119")
async def test_channels_are_created_on_the_mounted_trickle_server() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            _first, runner_id, sid, token = await _session(handle, client)
            body = {"channels": [{"name": " in/put "}, {"name": "out", "mime_type": "video/mp2t"}]}
            made = await client.post(
                f"/runner/{runner_id}/session/{sid}/channels", json=body, headers=token
            )
            assert made.status_code == 200, made.text
            channels = made.json()["channels"]
            assert [c["name"] for c in channels] == ["in-put", "out"]
            assert channels[0]["channel_name"] == f"{sid}-in-put"
            assert channels[0]["url"] == f"{handle.url}/ai/trickle/{sid}-in-put"
            assert channels[0]["internal_url"] == channels[0]["url"]
            assert channels[0]["mime_type"] == "application/octet-stream"
            assert channels[1]["mime_type"] == "video/mp2t"
            # The channels are real: publish a segment and read it back.
            url = f"/ai/trickle/{sid}-out"
            assert (await client.post(f"{url}/0", content=b"seg")).status_code == 200
            assert (await client.get(f"{url}/0")).content == b"seg"


@pytest.mark.spec("LR-116", "LR-114")
async def test_a_refused_channels_request_creates_none() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            _first, runner_id, sid, token = await _session(handle, client)
            before = set(handle.trickle.core.channels)
            path = f"/runner/{runner_id}/session/{sid}/channels"
            bad_name = {"channels": [{"name": "good"}, {"name": "b@d"}]}
            assert (await client.post(path, json=bad_name, headers=token)).status_code == 400
            too_many = {"channels": [{"name": f"c{i}"} for i in range(26)]}
            assert (await client.post(path, json=too_many, headers=token)).status_code == 400
            empty = {"channels": []}
            assert (await client.post(path, json=empty, headers=token)).status_code == 400
            assert set(handle.trickle.core.channels) == before


@pytest.mark.spec("LR-112", "LR-113")
async def test_callbacks_check_runner_session_then_token() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            _first, runner_id, sid, token = await _session(handle, client)
            body = {"channels": [{"name": "x"}]}
            unknown = await client.post(
                f"/runner/runner_none/session/{sid}/channels", json=body, headers=token
            )
            assert unknown.status_code == 404
            assert unknown.text == "runner not found\n"
            no_session = await client.post(
                f"/runner/{runner_id}/session/session_none/channels", json=body, headers=token
            )
            assert no_session.status_code == 404
            assert no_session.text == "runner session not found\n"
            wrong = await client.post(
                f"/runner/{runner_id}/session/{sid}/channels",
                json=body,
                headers={"Livepeer-Session-Token": "forged"},
            )
            assert wrong.status_code == 401
            assert wrong.text == "invalid authorization\n"
            assert f"{sid}-x" not in handle.trickle.core.channels


@pytest.mark.spec("LR-118", "LR-121", "LR-122", "LR-123", "LR-124")
async def test_channel_delete_checks_every_name_first() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            _first, runner_id, sid, token = await _session(handle, client)
            path = f"/runner/{runner_id}/session/{sid}/channels"
            body = {"channels": [{"name": "a"}, {"name": "b"}]}
            first = await client.post(path, json=body, headers=token)
            again = await client.post(path, json=body, headers=token)
            assert again.json() == first.json()
            missing = await client.request(
                "DELETE", path, json={"channels": ["a", "nope"]}, headers=token
            )
            assert missing.status_code == 404
            assert f"{sid}-a" in handle.trickle.core.channels
            deleted = await client.request("DELETE", path, json={"channels": ["a"]}, headers=token)
            assert deleted.status_code == 200
            assert deleted.json() == {"deleted": ["a"]}
            assert f"{sid}-a" not in handle.trickle.core.channels
            assert f"{sid}-b" in handle.trickle.core.channels


@pytest.mark.spec("LR-125", "LR-126")
async def test_proxy_callback_checks_the_target_host() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            _first, runner_id, sid, token = await _session(handle, client)
            path = f"/runner/{runner_id}/session/{sid}/proxy"
            made = await client.post(path, content=b"", headers=token)
            assert made.status_code == 200, made.text
            assert len(made.json()["proxy_id"]) == 26
            assert made.json()["url"].startswith(handle.url)
            other = await client.post(
                path, json={"target_url": "http://evil.example/"}, headers=token
            )
            assert other.status_code == 400
            port = await client.post(
                path, json={"target_url": "http://127.0.0.1:8123/x"}, headers=token
            )
            assert port.status_code == 200


@pytest.mark.spec("LR-127", "LR-132", "LR-143")
async def test_runner_stop_publishes_release_then_closes_channels() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            _first, runner_id, sid, token = await _session(handle, client)
            await client.post(
                f"/runner/{runner_id}/session/{sid}/channels",
                json={"channels": [{"name": "events"}, {"name": "out"}]},
                headers=token,
            )
            events_url = f"/ai/trickle/{sid}-events/0"
            async with trio.open_nursery() as nursery:
                got: list[httpx.Response] = []

                async def read() -> None:
                    got.append(await client.get(events_url))

                nursery.start_soon(read)
                # The GET is parked on segment 0 before the stop (it waits for data).
                while not handle.trickle._wakers:
                    await trio.lowlevel.checkpoint()
                stop = await client.post(f"/runner/{runner_id}/session/{sid}/stop", headers=token)
                assert stop.status_code == 204
            message = json.loads(got[0].content)
            assert message["queue_event_type"] == "ai_stream_events"
            assert message["event"]["type"] == "session_released"
            assert message["event"]["reason"] == "runner_stop"
            assert f"{sid}-events" not in handle.trickle.core.channels
            assert f"{sid}-out" not in handle.trickle.core.channels
            again = await client.post(f"/runner/{runner_id}/session/{sid}/stop", headers=token)
            assert again.status_code == 404


@pytest.mark.spec("LR-044", "LR-047", "LR-048", "LR-049", "LR-091", "LR-142")
async def test_o2r_carries_reserved_and_released_events() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            first, runner_id, sid, _token = await _session(handle, client)
            o2r = first["o2r"]
            assert o2r["channel_name"].startswith(f"{runner_id}-")
            assert o2r["channel_name"].endswith("-o2r")
            assert len(o2r["channel_name"]) == len(runner_id) + 1 + 16 + 4
            await client.post(f"/apps/{runner_id}/session/{sid}/stop")
            reserved, released = await o2r_messages(client, o2r["url"], 2)
            assert reserved["event"] == "reserved"
            assert reserved["session"] == sid
            assert reserved["timestamp"].endswith("Z")
            assert released["event"] == "released"
            assert released["reason"] == "client_stop"


@pytest.mark.spec("LR-046")
async def test_o2r_keepalive_on_schedule() -> None:
    with trio.fail_after(10):
        async with served(o2r_keepalive=0.05) as (_handle, client):
            first = await register(client)
            (keep,) = await o2r_messages(client, first["o2r"]["url"], 1)
            assert keep == {"keep": "alive"}


@pytest.mark.spec("LR-050")
async def test_o2r_events_never_wait_and_unwritable_ones_are_dropped() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            first = await register(client, capacity=5)
            runner_id = first["runner_id"]
            # Three reservations with no checkpoint between them: nothing is held
            # unsent, every event is in the channel before the next one happens.
            sessions = []
            for _ in range(3):
                result = handle.registry.reserve(runner_id, PaymentHeaders(), trio.current_time())
                assert isinstance(result, Reserved)
                handle.effects.apply(result.effects)
                sessions.append(result.session_id)
            assert handle.o2r_stats.written == 3
            events = await o2r_messages(client, first["o2r"]["url"], 3)
            assert [e["session"] for e in events] == sessions
            # A channel deleted from outside: the event is dropped and counted, the
            # reservation still stands.
            assert (await client.delete(first["o2r"]["url"])).status_code == 200
            await reserve(client, runner_id)
            assert handle.o2r_stats.dropped == 1
            assert len(handle.registry.runners()[0].session_ids) == 4


@pytest.mark.spec("LR-149")
async def test_heartbeat_naming_unknown_sessions_queues_released() -> None:
    with trio.fail_after(10):
        async with served() as (_handle, client):
            first = await register(client)
            runner_id = first["runner_id"]
            again = await client.post(
                "/runners/heartbeat",
                json=beat_body(runner_id=runner_id, session_ids=["session_ghost"]),
                headers={"Authorization": first["heartbeat_secret"]},
            )
            assert again.status_code == 200
            (ghost,) = await o2r_messages(client, first["o2r"]["url"], 1)
            assert ghost["event"] == "released"
            assert ghost["session"] == "session_ghost"
            assert ghost["reason"] == "unknown_session"


async def test_clients_cannot_create_trickle_channels() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            before = set(handle.trickle.core.channels)
            create = await client.post("/ai/trickle/made-by-client")
            assert create.status_code == 404
            publish = await client.post("/ai/trickle/made-by-client/0", content=b"x")
            assert publish.status_code == 404
            assert set(handle.trickle.core.channels) == before


@pytest.mark.spec("LR-119")
async def test_channels_past_the_trickle_limit_are_refused_whole() -> None:
    with trio.fail_after(10):
        async with served(trickle=ServerConfig(max_channels=3)) as (handle, client):
            _first, runner_id, sid, token = await _session(handle, client)  # O2R: 1 channel
            path = f"/runner/{runner_id}/session/{sid}/channels"
            body = {"channels": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
            refused = await client.post(path, json=body, headers=token)
            assert refused.status_code == 503
            assert len(handle.trickle.core.channels) == 1
            two = {"channels": [{"name": "a"}, {"name": "b"}]}
            assert (await client.post(path, json=two, headers=token)).status_code == 200
            # asking again for existing channels needs no room
            assert (await client.post(path, json=two, headers=token)).status_code == 200


async def test_escaped_slash_and_huge_heads_are_refused_cleanly() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            slash = await client.post("/runners/a%2Fb/unregister")
            assert slash.status_code == 400
            huge = await client.get("/discovery", headers={"X-Big": "x" * 20_000})
            assert huge.status_code == 431
            assert handle.connections.failed == 0


@pytest.mark.spec("LR-137", "LR-134")
async def test_two_way_channel_traffic_keeps_a_session_alive() -> None:
    def short(url: str) -> RegistryConfig:
        return fast_registry(url, heartbeat_interval=0.05, session_idle_timeout=0.5)

    with trio.fail_after(10):
        async with served(registry=short) as (handle, client):
            first, runner_id, sid, token = await _session(handle, client)
            await client.post(
                f"/runner/{runner_id}/session/{sid}/channels",
                json={"channels": [{"name": "ctl"}]},
                headers=token,
            )
            beat = beat_body(runner_id=runner_id)
            secret = {"Authorization": first["heartbeat_secret"]}
            seq = 0
            until = trio.current_time() + 1.0  # twice the idle timeout
            while trio.current_time() < until:
                assert (await client.post(f"/ai/trickle/{sid}-ctl/{seq}", content=b"k")).is_success
                assert (await client.get(f"/ai/trickle/{sid}-ctl/{seq}")).content == b"k"
                await client.post("/runners/heartbeat", json=beat, headers=secret)
                await handle.next_reap()
                seq += 1
            (view,) = handle.registry.runners()
            assert view.session_ids == (sid,)
            # publish only (a dead client): the session goes idle
            while handle.registry.runners()[0].session_ids:
                await client.post(f"/ai/trickle/{sid}-ctl/{seq}", content=b"k")
                await client.post("/runners/heartbeat", json=beat, headers=secret)
                await handle.next_reap()
                seq += 1
            stop = await client.post(f"/apps/{runner_id}/session/{sid}/stop")
            assert stop.headers["Livepeer-Session-Release-Reason"] == "idle_timeout"


@pytest.mark.spec("LR-118")
async def test_channel_deleted_by_a_publisher_is_made_again_on_request() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            _first, runner_id, sid, token = await _session(handle, client)
            path = f"/runner/{runner_id}/session/{sid}/channels"
            body = {"channels": [{"name": "out"}]}
            first = await client.post(path, json=body, headers=token)
            assert (await client.delete(f"/ai/trickle/{sid}-out")).status_code == 200
            assert f"{sid}-out" not in handle.trickle.core.channels
            again = await client.post(path, json=body, headers=token)
            assert again.json() == first.json()
            assert f"{sid}-out" in handle.trickle.core.channels


@pytest.mark.spec("LR-112", "LR-113")
async def test_callbacks_check_runner_session_and_token_before_the_body() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            _first, runner_id, sid, token = await _session(handle, client)
            path = f"/runner/{runner_id}/session/{sid}/channels"
            forged = {"Livepeer-Session-Token": "forged"}
            assert (await client.post(path, content=b"{", headers=forged)).status_code == 401
            other = f"/runner/{runner_id}/session/session_none/proxy"
            assert (await client.post(other, content=b"{", headers=token)).status_code == 404
            assert (await client.post(path, content=b"{", headers=token)).status_code == 400
