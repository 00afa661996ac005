"""The orchestrator over real sockets: heartbeat, unregister, discovery, reservation, stop.

httpx plays both the runner and the client against ``open_orchestrator`` on
127.0.0.1:0; every test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import json

import httpx
import pytest
import trio
import trio.lowlevel

from tests.integration.orchestrator_support import (
    RUNNER_URL,
    SECRET,
    beat_body,
    fast_registry,
    o2r_messages,
    register,
    reserve,
    served,
)
from trio_trickle._orchestrator.config import OrchestratorConfig
from trio_trickle._orchestrator.process import open_orchestrator
from trio_trickle._registry.config import RegistryConfig


@pytest.mark.spec("LR-001", "LR-022", "LR-023", "LR-025")
async def test_first_heartbeat_registers_and_answers_secret_and_o2r() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            body = await register(client)
            assert body["runner_id"].startswith("runner_")
            assert len(body["runner_id"]) == 15
            assert body["orchestrator"] == handle.url
            assert body["heartbeat_interval"] == "5s"
            assert body["heartbeat_ttl"] == "20s"
            assert body["session_ids"] == []
            assert body["heartbeat_secret"]
            o2r = body["o2r"]
            assert o2r["name"] == "o2r"
            assert o2r["mime_type"] == "application/json"
            assert o2r["url"] == f"{handle.url}/ai/trickle/{o2r['channel_name']}"
            assert o2r["channel_name"] in handle.trickle.core.channels


@pytest.mark.spec("LR-003", "LR-024", "LR-027")
async def test_later_heartbeat_uses_heartbeat_secret_and_omits_secrets() -> None:
    with trio.fail_after(10):
        async with served() as (_handle, client):
            first = await register(client)
            again = await client.post(
                "/runners/heartbeat",
                json=beat_body(runner_id=first["runner_id"], capacity=3, app="other"),
                headers={"Authorization": first["heartbeat_secret"]},
            )
            assert again.status_code == 200
            assert "heartbeat_secret" not in again.json()
            assert "o2r" not in again.json()
            listed = (await client.get("/discovery")).json()[0]["runners"][0]
            assert listed["capacity"] == 3
            assert listed["app"] == "other"


@pytest.mark.spec("LR-005")
async def test_registration_disabled_without_secret() -> None:
    with trio.fail_after(10):
        async with served(secret="") as (_handle, client):
            response = await client.post("/runners/heartbeat", json=beat_body())
            assert response.status_code == 404
            assert response.text == "dynamic live runner registration is disabled\n"


@pytest.mark.spec("LR-006", "LR-007", "LR-139")
async def test_wrong_secrets_are_401_and_change_nothing() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            bad = await client.post(
                "/runners/heartbeat", json=beat_body(), headers={"Authorization": "nope"}
            )
            assert bad.status_code == 401
            assert bad.text == "invalid registration authorization\n"
            first = await register(client)
            stolen = await client.post(
                "/runners/heartbeat",
                json=beat_body(runner_id=first["runner_id"], capacity=9),
                headers={"Authorization": SECRET},
            )
            assert stolen.status_code == 401
            assert stolen.text == "invalid heartbeat authorization\n"
            (view,) = handle.registry.runners()
            assert view.capacity == 1


@pytest.mark.spec("LR-008", "LR-009", "LR-010", "LR-011", "LR-013", "LR-014", "LR-139")
@pytest.mark.parametrize(
    "body",
    [
        {"runner_url": "ftp://x/", "app": "a"},
        {"runner_url": RUNNER_URL, "app": " a"},
        {"runner_url": RUNNER_URL, "app": "a", "mode": "sometimes"},
        {"runner_url": RUNNER_URL, "app": "a", "capacity": -1},
        {"runner_url": RUNNER_URL, "app": "a", "metadata": "m" * 1025},
        {"runner_url": RUNNER_URL, "app": "a", "status": "Ready"},
        {"app": "a"},
        [1, 2],
    ],
)
async def test_bad_heartbeat_bodies_are_400_before_authentication(body: object) -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            response = await client.post("/runners/heartbeat", json=body)
            assert response.status_code == 400
            assert response.headers["content-type"].startswith("text/plain")
            assert handle.registry.runners() == ()


async def test_non_json_oversized_and_wrong_method_bodies_are_clear_4xx() -> None:
    with trio.fail_after(10):
        async with served(max_body_bytes=1024) as (handle, client):
            garbage = await client.post("/runners/heartbeat", content=b"\xff{")
            assert garbage.status_code == 400
            huge = await client.post("/runners/heartbeat", content=b" " * 4096)
            assert huge.status_code == 413
            wrong = await client.get("/runners/heartbeat")
            assert wrong.status_code == 405
            unknown = await client.get("/nothing/here")
            assert unknown.status_code == 404
            assert handle.registry.runners() == ()
            assert handle.connections.failed == 0


@pytest.mark.spec("LR-033", "LR-034", "LR-036", "LR-040")
async def test_unregister_releases_sessions_and_closes_o2r() -> None:
    with trio.fail_after(10):
        async with served(o2r_linger=0.01) as (handle, client):
            first = await register(client)
            runner_id, secret = first["runner_id"], first["heartbeat_secret"]
            session = await reserve(client, runner_id)
            wrong = await client.post(
                f"/runners/{runner_id}/unregister", headers={"Authorization": "x"}
            )
            assert wrong.status_code == 401
            assert wrong.text == "invalid authorization\n"
            gone = await client.post(
                "/runners/runner_zzzz/unregister", headers={"Authorization": "x"}
            )
            assert gone.status_code == 404
            ok = await client.post(
                f"/runners/{runner_id}/unregister", headers={"Authorization": secret}
            )
            assert ok.status_code == 204
            assert handle.registry.runners() == ()
            stop = await client.post(f"/apps/{runner_id}/session/{session['session_id']}/stop")
            assert stop.status_code == 204
            assert stop.headers["Livepeer-Session-Release-Reason"] == "runner_unregistered"


@pytest.mark.spec("LR-054", "LR-056", "LR-057", "LR-058", "LR-059", "LR-061")
async def test_discovery_lists_runners_without_their_url() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            empty = await client.get("/discovery")
            assert empty.status_code == 200
            assert empty.json() == [{"address": handle.url}]
            first = await register(client, capacity=2, price_info={"price": 1})
            await reserve(client, first["runner_id"])
            (entry,) = (await client.get("/discovery")).json()
            (runner,) = entry["runners"]
            assert runner["url"] == f"{handle.url}/apps/{first['runner_id']}/session"
            assert runner["capacity"] == 2
            assert runner["capacity_used"] == 1
            assert runner["capacity_available"] == 1
            assert "price_info" not in runner
            assert RUNNER_URL.rstrip("/") not in (await client.get("/discovery")).text


@pytest.mark.spec("LR-068", "LR-072", "LR-087", "LR-089", "LR-090")
async def test_reservation_answers_urls_then_503_when_full() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            runner_id = (await register(client))["runner_id"]
            session = await reserve(client, runner_id)
            sid = session["session_id"]
            assert sid.startswith("session_")
            assert session["app_url"] == f"{handle.url}/apps/{runner_id}/session/{sid}/app"
            assert session["control_url"] == f"{handle.url}/apps/{runner_id}/session/{sid}"
            full = await client.post(f"/apps/{runner_id}/session", json={})
            assert full.status_code == 503
            assert full.text == "no capacity available for runner\n"


@pytest.mark.spec("LR-069", "LR-070")
async def test_reservation_refusals() -> None:
    with trio.fail_after(10):
        async with served() as (_handle, client):
            unknown = await client.post("/apps/runner_nope/session", json={})
            assert unknown.status_code == 404
            assert unknown.text == "runner not found\n"
            single = (await register(client, mode="single-shot"))["runner_id"]
            refused = await client.post(f"/apps/{single}/session", content=b"not json")
            assert refused.status_code == 400
            assert refused.text == "only persistent runners have sessions\n"


@pytest.mark.spec("LR-128", "LR-129", "LR-145", "LR-148")
async def test_client_stop_releases_once_then_remembers_reason() -> None:
    with trio.fail_after(10):
        async with served() as (handle, client):
            runner_id = (await register(client))["runner_id"]
            sid = (await reserve(client, runner_id))["session_id"]
            stop = await client.post(f"/apps/{runner_id}/session/{sid}/stop")
            assert stop.status_code == 204
            assert stop.content == b""
            assert stop.headers["Livepeer-Session-Release-Reason"] == "client_stop"
            (view,) = handle.registry.runners()
            assert view.session_ids == ()
            again = await client.post(f"/apps/{runner_id}/session/{sid}/stop")
            assert again.status_code == 204
            assert again.headers["Livepeer-Session-Release-Reason"] == "client_stop"
            never = await client.post(f"/apps/{runner_id}/session/session_never/stop")
            assert never.status_code == 204
            assert "Livepeer-Session-Release-Reason" not in never.headers
            # the capacity came back
            await reserve(client, runner_id)


@pytest.mark.spec("LR-038", "LR-039", "LR-040")
async def test_reaper_removes_expired_runner_and_releases_sessions() -> None:
    def short(url: str) -> RegistryConfig:
        return fast_registry(url, heartbeat_interval=0.05, heartbeat_ttl=1.0)

    with trio.fail_after(10):
        async with served(registry=short, o2r_linger=5.0) as (handle, client):
            first = await register(client)
            runner_id = first["runner_id"]
            o2r = first["o2r"]["channel_name"]
            sid = (await reserve(client, runner_id))["session_id"]
            while handle.registry.runners():
                await handle.next_reap()
            assert (await client.get("/discovery")).json() == [{"address": handle.url}]
            late = await client.post(
                "/runners/heartbeat",
                json=beat_body(runner_id=runner_id),
                headers={"Authorization": first["heartbeat_secret"]},
            )
            # removed: the runner is unknown again, so it must re-register (LR-032)
            assert late.status_code == 401
            assert late.text == "invalid registration authorization\n"
            stop = await client.post(f"/apps/{runner_id}/session/{sid}/stop")
            assert stop.headers["Livepeer-Session-Release-Reason"] == "runner_expired"
            # the O2R channel stays readable for o2r_linger after the released event
            events = await o2r_messages(client, f"/ai/trickle/{o2r}", 2)
            assert [e.get("event") for e in events] == ["reserved", "released"]
            assert events[1]["reason"] == "runner_expired"


@pytest.mark.spec("LR-022")
async def test_heartbeat_lists_the_orchestrators_sessions() -> None:
    with trio.fail_after(10):
        async with served() as (_handle, client):
            first = await register(client, capacity=2)
            runner_id = first["runner_id"]
            a = (await reserve(client, runner_id))["session_id"]
            b = (await reserve(client, runner_id))["session_id"]
            again = await client.post(
                "/runners/heartbeat",
                json=beat_body(runner_id=runner_id, capacity=2, session_ids=[b]),
                headers={"Authorization": first["heartbeat_secret"]},
            )
            assert again.json()["session_ids"] == [a, b]


@pytest.mark.spec("LR-096", "LR-146")
async def test_top_up_on_held_and_unknown_sessions() -> None:
    with trio.fail_after(10):
        async with served() as (_handle, client):
            runner_id = (await register(client))["runner_id"]
            sid = (await reserve(client, runner_id))["session_id"]
            paid = await client.post(f"/apps/{runner_id}/session/{sid}/payment")
            assert paid.status_code == 200
            unknown = await client.post(f"/apps/{runner_id}/session/session_none/payment")
            assert unknown.status_code == 404
            await client.post(f"/apps/{runner_id}/session/{sid}/stop")
            released = await client.post(f"/apps/{runner_id}/session/{sid}/payment")
            assert released.status_code == 404
            assert released.headers["Livepeer-Session-Release-Reason"] == "client_stop"


@pytest.mark.spec("LR-105")
async def test_refresh_payment_errors_are_json() -> None:
    with trio.fail_after(10):
        async with served() as (_handle, client):
            bad = await client.post("/refresh-payment", content=b"{")
            assert bad.status_code == 400
            assert bad.headers["content-type"] == "application/json"
            assert "message" in bad.json()["error"]
            body = {"sender": "0x" + "ab" * 20, "manifest_id": "m1"}
            none = await client.post("/refresh-payment", json=body)
            assert none.status_code == 409
            assert none.json() == {"error": {"message": "fixed price not found for session"}}


@pytest.mark.spec("LR-133", "LR-040", "LR-141")
async def test_shutdown_releases_sessions_with_their_o2r_events() -> None:
    got: list[httpx.Response] = []
    with trio.fail_after(10):
        async with httpx.AsyncClient(timeout=10) as client, trio.open_nursery() as nursery:
            async with open_orchestrator(OrchestratorConfig(secret=SECRET)) as handle:
                client.base_url = httpx.URL(handle.url)
                first = await register(client)
                await reserve(client, first["runner_id"])
                o2r = first["o2r"]["url"]
                (reserved,) = await o2r_messages(client, o2r, 1)
                assert reserved["event"] == "reserved"

                async def read_next() -> None:
                    got.append(await client.get(f"{o2r}/1"))

                nursery.start_soon(read_next)
                while not handle.trickle._wakers:  # the GET is parked on segment 1
                    await trio.lowlevel.checkpoint()
            assert handle.trickle.core.channels == {}
    (response,) = got
    released = json.loads(response.content)
    assert released["event"] == "released"
    assert released["reason"] == "orchestrator_shutdown"


@pytest.mark.spec("LR-130", "LR-039", "LR-015")
async def test_stop_releases_on_a_lapsed_runner_not_yet_removed() -> None:
    def lapsing(url: str) -> RegistryConfig:
        # The TTL lapses long before the reaper's first pass.
        return fast_registry(url, heartbeat_interval=30.0, heartbeat_ttl=0.3)

    with trio.fail_after(10):
        async with served(registry=lapsing) as (handle, client):
            runner_id = (await register(client, capacity=0))["runner_id"]
            (runner,) = (await client.get("/discovery")).json()[0]["runners"]
            assert runner["capacity"] == 1  # LR-015: 0 reads as 1
            sid = (await reserve(client, runner_id))["session_id"]
            (view,) = handle.registry.runners()
            await trio.sleep_until(view.last_heartbeat + 0.35)  # the TTL, on trio's clock
            refused = await client.post(f"/apps/{runner_id}/session", json={})
            assert refused.status_code == 404
            assert (await client.get("/discovery")).json() == [{"address": handle.url}]
            stop = await client.post(f"/apps/{runner_id}/session/{sid}/stop")
            assert stop.status_code == 204
            assert stop.headers["Livepeer-Session-Release-Reason"] == "client_stop"
            (view,) = handle.registry.runners()  # still there: the reaper has not run
            assert view.session_ids == ()


async def test_a_body_that_never_arrives_is_answered_408() -> None:
    with trio.fail_after(10):
        async with served(body_timeout=0.2) as (handle, _client):
            host, port = handle.url.removeprefix("http://").rsplit(":", 1)
            stream = await trio.open_tcp_stream(host, int(port))
            async with stream:
                head = (
                    "POST /runners/heartbeat HTTP/1.1\r\nHost: x\r\n"
                    "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
                )
                await stream.send_all(head.encode())
                answer = b""
                while b"\r\n\r\n" not in answer:
                    chunk = await stream.receive_some(4096)
                    assert chunk
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 408")
            assert handle.registry.runners() == ()
