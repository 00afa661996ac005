"""The gateway client against the orchestrator process and real runners, over loopback.

``open_orchestrator`` on 127.0.0.1:0; runners from ``open_runner`` serving a
``LivePipeline`` that overrides nothing (a byte relay: no PyAV), registered by
their own heartbeats. The gateway discovers, reserves, starts, streams, swaps
and stops through real HTTP.

``open_runner``'s proxied ``/stream/start`` creates the session's channels
itself (LR-114, LR-120; tests/integration/test_runner_session_channels.py), and
the default starter relies on it. :func:`relay_starter` makes the same HTTP calls
by hand, the channels callback with the session token the orchestrator put on
the proxied request (LR-108, read from the registry), then ``/stream/start``
through the session proxy (LR-107) with the channels' ``internal_url``, so that
the explicit-URL start keeps being exercised too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from trio_trickle._client.http import create_http_client
from trio_trickle._gateway.discovery import candidates, discover
from trio_trickle._gateway.live_session import (
    LiveSession,
    LiveSessionFailed,
    SessionChannels,
    SessionStarter,
    open_live_session,
)
from trio_trickle._gateway.reservation import ReservationRefused, reserve, stop_session
from trio_trickle._orchestrator.config import OrchestratorConfig
from trio_trickle._orchestrator.process import OrchestratorHandle, open_orchestrator
from trio_trickle._registry.config import RegistryConfig
from trio_trickle._runner.serve import RunnerHandle, open_runner
from trio_trickle._sdk.live_pipeline import LivePipeline
from trio_trickle._session.settings import SessionSettings
from trio_trickle._telemetry.sinks import NullSink
from trio_trickle._wire.live_runner_channels import ChannelsResponse
from trio_trickle._wire.live_runner_discovery import DiscoveryResponse
from trio_trickle._wire.live_runner_payment import SessionReservation

SECRET = "orch-secret"
APP = "relay"
CHANNELS = (
    ("in", "video/MP2T"),
    ("out", "video/MP2T"),
    ("control", "application/json"),
    ("events", "application/json"),
)


class Relay(LivePipeline):
    """Overrides nothing: the runner relays input segments to the output as bytes."""


def _fast(url: str) -> RegistryConfig:
    return RegistryConfig(
        service_uri=url, orchestrator_secret=SECRET, heartbeat_interval=0.05, heartbeat_ttl=5.0
    )


@asynccontextmanager
async def orchestrator() -> AsyncIterator[OrchestratorHandle]:
    config = OrchestratorConfig(secret=SECRET, registry=_fast, o2r_keepalive=0.2)
    async with open_orchestrator(config) as handle:
        yield handle


@asynccontextmanager
async def relay_runner(
    orch: OrchestratorHandle, *, beat: float = 0.2, pipeline: LivePipeline | None = None
) -> AsyncIterator[RunnerHandle]:
    """A runner of ``pipeline`` (a relay by default) registered with ``orch`` as :data:`APP`.

    ``beat``: its status heartbeat, an event on the session's events channel.
    """
    settings = SessionSettings(heartbeat_interval=beat, device="cpu", stop_timeout=2.0)
    async with open_runner(
        pipeline if pipeline is not None else Relay(),
        orchestrator_url=orch.url,
        orchestrator_secret=SECRET,
        app_name=APP,
        settings=settings,
    ) as runner:
        assert runner.registration is not None
        await runner.registration.registered.wait()
        await runner.wait_setup()
        yield runner


def held_sessions(orch: OrchestratorHandle) -> list[str]:
    return [sid for view in orch.registry.runners() for sid in view.session_ids]


def relay_starter(orch: OrchestratorHandle) -> SessionStarter:
    """Starts the stream as a live-runner-aware runner would (see the module docstring)."""

    async def start(
        client: httpx.AsyncClient,
        reservation: SessionReservation,
        params: Mapping[str, Any] | None,
    ) -> SessionChannels:
        route = reservation.control_url.rstrip("/").split("/")[-3]
        sid = reservation.session_id
        headers = orch.registry.session_target(route, sid, "", trio.current_time()).headers
        made = await client.post(
            headers.session_control + "/channels",
            json={"channels": [{"name": n, "mime_type": m} for n, m in CHANNELS]},
            headers={"Livepeer-Session-Token": headers.session_token},
        )
        assert made.status_code == 200, made.text
        channels = {c.name: c for c in ChannelsResponse.from_wire(made.json()).channels}

        def internal(name: str) -> str:
            return channels[name].internal_url or channels[name].url

        started = await client.post(
            reservation.app_url + "/stream/start",
            json={
                "gateway_request_id": sid,
                "subscribe_url": internal("in"),
                "publish_url": internal("out"),
                "control_url": internal("control"),
                "events_url": internal("events"),
                "params": dict(params or {}),
            },
        )
        assert started.status_code == 200, started.text
        return SessionChannels(
            input_url=channels["in"].url,
            output_url=channels["out"].url,
            control_url=channels["control"].url,
            events_url=channels["events"].url,
        )

    return start


def payload(i: int) -> bytes:
    return (b"segment-%03d|" % i) * 500


async def stream(session: LiveSession, count: int) -> list[bytes]:
    """Publish numbered segments at a live pace until ``count`` came back; those.

    A live source does not wait for its reader: segments published before the
    runner subscribed to the input are never relayed, so this keeps publishing.
    """
    received: list[bytes] = []
    async with trio.open_nursery() as nursery:

        async def feed() -> None:
            for i in range(1000):
                await session.publish(payload(i))
                await trio.sleep(0.05)  # the source's pace, not a synchronisation

        nursery.start_soon(feed)
        async for segment in session.output_segments():
            received.append(segment)
            if len(received) == count:
                break
        nursery.cancel_scope.cancel()
    first = int(received[0][8:11])
    assert received == [payload(first + k) for k in range(count)]
    return received


@pytest.mark.spec("LR-054", "LR-056", "LR-057", "LR-058", "LR-059")
async def test_discover_lists_the_registered_runner_and_candidates_filter_it() -> None:
    with trio.fail_after(20):
        async with orchestrator() as orch, relay_runner(orch) as runner:
            found = await discover(orch.url)
            assert [e.address for e in found.entries] == [orch.url]
            (listed,) = found.entries[0].runners
            assert listed.app == APP
            assert listed.capacity_available == 1
            assert listed.url.startswith(orch.url + "/apps/")
            assert listed.url.endswith("/session")
            assert runner.url not in json.dumps(found.to_wire())  # LR-058
            assert [c.runner for c in candidates(found, app=APP)] == [listed]
            assert candidates(found, app="other") == []
            assert candidates(found, app=APP, gpu="H100") == []  # no GPU advertised


@pytest.mark.spec("LR-087", "LR-128", "LR-131", "LR-145")
async def test_reserve_and_stop_answers() -> None:
    with trio.fail_after(20):
        async with (
            orchestrator() as orch,
            relay_runner(orch),
            httpx.AsyncClient() as client,
        ):
            (candidate,) = candidates(await discover(orch.url, client=client), app=APP)
            first = await reserve(client, candidate.reserve_url)
            with pytest.raises(ReservationRefused) as refused:
                await reserve(client, candidate.reserve_url)
            assert refused.value.status == 503
            assert "no capacity" in refused.value.reason
            stopped = await stop_session(client, first)
            assert (stopped.status, stopped.reason, stopped.gone) == (204, "client_stop", True)
            again = await stop_session(client, first)  # idempotent; the reason is remembered
            assert again.gone
            assert held_sessions(orch) == []


@pytest.mark.spec("LR-067", "LR-068", "LR-089", "LR-107", "LR-120", "LR-128")
async def test_session_relays_video_params_and_events_then_stops() -> None:
    sink = NullSink()
    with trio.fail_after(30):
        async with orchestrator() as orch, relay_runner(orch) as runner:
            async with open_live_session(
                orch.url,
                APP,
                params={"prompt": "a"},
                sink=sink,
                starter=relay_starter(orch),
                keepalive_interval=0.1,
            ) as session:
                sid = session.session_id
                assert sid is not None
                assert held_sessions(orch) == [sid]
                assert runner.app.manager is not None
                assert [s.id for s in runner.app.manager.sessions()] == [sid]
                await stream(session, 3)
                await session.update_params({"prompt": "b"})
                first_event = await session.events().__anext__()
                assert isinstance(first_event, dict)
            assert session.failures == []
            assert sink.accepted > 0  # the runner's stream telemetry, relayed (TEL-041)
            assert held_sessions(orch) == []  # stopped on the way out (LR-128)
            await session.stop()  # idempotent


@pytest.mark.spec("LR-128", "LR-131")
async def test_cancel_mid_stream_leaves_no_session_or_task() -> None:
    with trio.fail_after(30):
        async with orchestrator() as orch, relay_runner(orch):
            before = len(trio.lowlevel.current_task().child_nurseries)
            with trio.CancelScope() as cancel:
                async with open_live_session(orch.url, APP, starter=relay_starter(orch)) as session:
                    assert held_sessions(orch) == [session.session_id]
                    await stream(session, 1)
                    cancel.cancel()  # mid-stream, with a publisher and readers open
                    await trio.sleep_forever()
            assert cancel.cancelled_caught
            assert held_sessions(orch) == []
            assert len(trio.lowlevel.current_task().child_nurseries) == before
            found = await discover(orch.url)
            assert found.entries[0].runners[0].capacity_used == 0


def busy_connections(client: httpx.AsyncClient) -> list[Any]:
    """The client's pooled connections still carrying a request (httpcore's pool)."""
    pool = client._transport._pool  # type: ignore[attr-defined]
    return [c for c in pool.connections if not (c.is_idle() or c.is_closed())]


@pytest.mark.spec("LR-128")
async def test_cancel_mid_stream_leaves_the_callers_client_idle() -> None:
    with trio.fail_after(30):
        async with orchestrator() as orch, relay_runner(orch), create_http_client() as client:
            with trio.CancelScope() as cancel:
                async with open_live_session(
                    orch.url, APP, client=client, starter=relay_starter(orch)
                ) as session:
                    await stream(session, 1)
                    assert busy_connections(client)  # publisher, readers, long polls
                    cancel.cancel()
                    await trio.sleep_forever()
            assert cancel.cancelled_caught
            assert busy_connections(client) == []
            assert not client.is_closed  # the caller's client stays the caller's
            assert held_sessions(orch) == []


@pytest.mark.spec("LR-067", "LR-087")
async def test_cancel_while_reserving_stops_the_reservation() -> None:
    # Cancelled at every checkpoint of the way in: a reservation made is stopped.
    with trio.fail_after(60):
        async with orchestrator() as orch, relay_runner(orch):
            for step in range(1, 12):
                with trio.CancelScope() as cancel:
                    async with trio.open_nursery() as nursery:

                        async def cancel_after(n: int = step) -> None:
                            for _ in range(n):
                                await trio.lowlevel.checkpoint()
                            cancel.cancel()

                        nursery.start_soon(cancel_after)
                        async with open_live_session(orch.url, APP, starter=relay_starter(orch)):
                            await trio.sleep_forever()
                assert held_sessions(orch) == []


@pytest.mark.spec("LR-067", "LR-128")
async def test_silent_runner_is_swapped_for_the_next() -> None:
    with trio.fail_after(30):
        async with (
            orchestrator() as orch,
            relay_runner(orch, beat=30.0) as silent,
            relay_runner(orch, beat=0.1),
        ):
            silent_id = silent.registration.runner_id if silent.registration else None
            async with open_live_session(
                orch.url, APP, starter=relay_starter(orch), event_timeout=1.0
            ) as session:
                first = session.runner_url
                assert first is not None
                assert silent_id is not None
                assert f"/apps/{silent_id}/session" in first  # discovery order
                while session.swaps == 0:
                    await session._changed.wait()
                sid = await session.wait_serving()
                assert session.runner_url != first
                assert held_sessions(orch) == [sid]
                (failure,) = session.failures
                assert failure.runner_url == first
                assert failure.reason.startswith("no event for 1.0s")
                await stream(session, 2)
            assert held_sessions(orch) == []


@pytest.mark.spec("LR-067", "LR-127", "LR-143", "LR-147")
async def test_runner_release_swaps_and_swaps_are_bounded() -> None:
    with trio.fail_after(30):
        async with (
            orchestrator() as orch,
            relay_runner(orch, beat=0.1),
            relay_runner(orch, beat=0.1),
            httpx.AsyncClient() as client,
        ):
            async with open_live_session(
                orch.url, APP, starter=relay_starter(orch), max_swaps=1
            ) as session:
                for round_ in range(2):
                    sid = await session.wait_serving()
                    reservation = session.reservation
                    assert reservation is not None
                    route = reservation.control_url.rstrip("/").split("/")[-3]
                    target = orch.registry.session_target(route, sid, "", trio.current_time())
                    # The runner releases its own session (LR-127).
                    stopped = await client.post(
                        target.headers.session_control + "/stop",
                        headers={"Livepeer-Session-Token": target.headers.session_token},
                    )
                    assert stopped.status_code == 204
                    while len(session.failures) == round_:
                        await session._changed.wait()
                with pytest.raises(LiveSessionFailed) as failed:
                    await session.wait_serving()
                reasons = [f.reason for f in failed.value.failures]
                assert reasons == ["session released: runner_stop"] * 2  # LR-143, LR-147
                urls = {f.runner_url for f in failed.value.failures}
                assert len(urls) == 2
                assert all(u in str(failed.value) for u in urls)
                with pytest.raises(LiveSessionFailed):
                    await session.publish(payload(0))
            assert held_sessions(orch) == []


class CannotStart(LivePipeline):
    def on_stream_start(self, params: dict[str, Any]) -> None:
        raise RuntimeError("no stream today")


@pytest.mark.spec("LR-067", "LR-128")
async def test_a_runner_that_cannot_start_is_stopped_and_named() -> None:
    # The default starter asks the runner to make the channels (LR-114, LR-120);
    # these runners make them, then fail the start (500) and delete them again.
    with trio.fail_after(20):
        async with (
            orchestrator() as orch,
            relay_runner(orch, pipeline=CannotStart()),
            relay_runner(orch, pipeline=CannotStart()),
        ):
            with pytest.raises(LiveSessionFailed) as failed:
                async with open_live_session(orch.url, APP):
                    pytest.fail("no session expected")
            assert len(failed.value.failures) == 2  # both tried, one at a time
            for failure in failed.value.failures:
                assert failure.session_id is not None
                assert failure.reason.startswith("stream start failed")
                assert "500" in failure.reason
            assert held_sessions(orch) == []


async def test_no_runner_for_the_app_fails_at_once() -> None:
    with trio.fail_after(20):
        async with orchestrator() as orch, relay_runner(orch):
            with pytest.raises(LiveSessionFailed, match="no runner of app 'nope'"):
                async with open_live_session(orch.url, "nope"):
                    pytest.fail("no session expected")


@pytest.mark.spec("LR-057", "LR-059", "LR-063", "LR-070")
def test_candidates_keep_persistent_runners_of_the_app_with_room() -> None:
    base = "http://o:1/apps"
    answer = [
        {
            "address": "http://o:1",
            "runners": [
                {
                    "url": f"{base}/full/session",
                    "app": APP,
                    "capacity": 1,
                    "capacity_used": 1,
                    "capacity_available": 0,
                },
                {
                    "url": f"{base}/shot/app",
                    "app": APP,
                    "mode": "single-shot",
                    "capacity": 1,
                    "capacity_available": 1,
                },
                {"url": f"{base}/other/session", "app": "other", "capacity_available": 1},
                {
                    "url": f"{base}/cut/session",
                    "app": APP,
                    "capacity": 1,
                    "capacity_used": 2,
                    "capacity_available": -1,
                },
                {"app": APP, "capacity_available": 1},  # no url: skipped, not fatal (LR-063)
                {
                    "url": f"{base}/l40/session",
                    "app": APP,
                    "capacity_available": 1,
                    "gpu": {"id": "0", "name": "NVIDIA L40S"},
                },
                {
                    "url": f"{base}/h100/session",
                    "app": APP,
                    "capacity_available": 2,
                    "gpu": {"id": "1", "name": "NVIDIA H100"},
                    "price_info": {"price": 12, "currency": "wei", "unit": "seconds"},
                },
            ],
        }
    ]
    found = DiscoveryResponse.from_wire(answer, skip_invalid_runners=True)

    def routes(**kw: Any) -> list[str]:
        return [c.route for c in candidates(found, app=APP, **kw)]

    assert routes() == ["l40", "h100"]  # discovery order (LR-067 tries them in turn)
    assert routes(gpu="h100") == ["h100"]
    assert routes(gpu="0") == ["l40"]
    assert routes(require_price=True) == ["h100"]
    assert routes(exclude=frozenset({f"{base}/l40/session"})) == ["h100"]
