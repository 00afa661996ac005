"""Cancelling any client operation leaves no connection, task or log noise (TRK-110).

Each test cancels an operation at a chosen point, then checks three places:
the server (every request it was handling is released within 1 s, TRK-060),
the shared httpx pool (no connection still carrying a request) and the trio
task tree (back to its size before the clients existed, once they are closed).
Warnings are errors in this suite, so a socket or async generator left for the
garbage collector fails the test too (``gc.collect`` forces the question).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from tests.integration.servers import (
    ServedTrickle,
    active_connections,
    client_tasks,
    count_tasks,
    open_test_server,
    wait_for,
)
from trio_trickle._client.channels import JsonlWriter
from trio_trickle._client.http import ClientTimeouts, create_http_client
from trio_trickle._client.publisher import TricklePublisher
from trio_trickle._client.subscriber import TrickleSubscriber
from trio_trickle._errors import ChannelClosed, IllegalTransition
from trio_trickle._server.trickle import open_trickle_server

FAST = ClientTimeouts(connect=2.0, headers=2.0, body=2.0, queue=1.0, close=2.0)


class Rig:
    """A served trickle server, one shared client, and the checks."""

    def __init__(self, served: ServedTrickle, client: httpx.AsyncClient) -> None:
        self.served = served
        self.client = client

    def publisher(self, name: str, **kwargs: object) -> TricklePublisher:
        kwargs.setdefault("start_seq", 0)
        return TricklePublisher(
            self.served.channel_url(name),
            "text/plain",
            client=self.client,
            timeouts=FAST,
            **kwargs,  # type: ignore[arg-type]
        )

    def subscriber(self, name: str, **kwargs: object) -> TrickleSubscriber:
        kwargs.setdefault("start_seq", 0)
        return TrickleSubscriber(
            self.served.channel_url(name),
            client=self.client,
            timeouts=FAST,
            **kwargs,  # type: ignore[arg-type]
        )

    async def settled(self, *, in_flight: int = 0) -> None:
        """The server released its requests, the pool carries none, no task is left.

        ``in_flight``: requests that legitimately remain (a live preconnect).
        """
        await self.served.wait_until(lambda: self.served.in_flight() == in_flight, 1.0)
        await wait_for(lambda: active_connections(self.client) == in_flight)
        if in_flight == 0:
            assert client_tasks() == []


@pytest.fixture
async def rig(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Rig]:
    caplog.set_level(logging.WARNING)
    async with open_test_server() as served:
        client = create_http_client(FAST)
        async with client:
            yield Rig(served, client)
        assert client_tasks() == []
        assert served.in_flight() == 0, [r for r in served.requests if r.ended is None]
    gc.collect()
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not noisy, [r.getMessage() for r in noisy]


@pytest.mark.spec("TRK-110", "TRK-038", "TRK-060")
async def test_cancel_publisher_mid_segment(rig: Rig) -> None:
    rig.served.create("ch")
    channel = rig.served.server.core.channels["ch"]
    with trio.fail_after(5):
        async with rig.publisher("ch", owns_channel=False) as pub:
            with trio.move_on_after(0.2) as scope:
                async with pub.segment() as seg:
                    await seg.write(b"partial")
                    await trio.sleep_forever()
            assert scope.cancelled_caught
            # The cut POST is released and its segment closed with what arrived;
            # only the preconnect of seq 1 is still open.
            await rig.settled(in_flight=1)
            seg0 = channel.segment(0)
            assert seg0 is not None
            assert seg0.closed
            assert b"".join(seg0.chunks) == b"partial"
            await rig.served.wait_until(lambda: bool(rig.served.seen("DELETE", "ch/0")))
            assert await pub.write_segment(b"goes on") == 1
        await rig.settled()


@pytest.mark.spec("TRK-110", "TRK-097")
async def test_cancel_publisher_while_its_preconnect_waits(rig: Rig) -> None:
    rig.served.create("ch")
    with trio.fail_after(5):
        with trio.move_on_after(0.2):
            async with rig.publisher("ch") as pub:
                await pub.write_segment(b"one")
                await trio.sleep_forever()  # the POST for seq 1 waits for data
        await rig.settled()
    # Even while cancelled, closing deleted the channel it owns (shielded, bounded).
    assert "ch" not in rig.served.server.core.channels
    assert len(rig.served.seen("DELETE", "ch")) == 1


@pytest.mark.spec("TRK-110", "TRK-098")
async def test_cancelled_close_still_closes(rig: Rig) -> None:
    rig.served.create("ch")
    reached = False
    with trio.fail_after(5):
        async with rig.publisher("ch") as pub, rig.subscriber("ch") as sub:
            await pub.write_segment(b"x")
            segment = await sub.__anext__()
            with trio.CancelScope() as scope:
                scope.cancel()
                await sub.aclose()
                await pub.aclose()
            with pytest.raises(ChannelClosed):
                await pub.write_segment(b"y")
            with pytest.raises(ChannelClosed):
                await sub.__anext__()
            with pytest.raises(IllegalTransition):
                await segment.read_all()
            reached = True  # closing did not cancel the caller's own block
        await rig.settled()
        assert reached
    assert "ch" not in rig.served.server.core.channels


@pytest.mark.spec("TRK-110", "TRK-060", "TRK-109")
async def test_cancel_subscriber_waiting_for_headers(rig: Rig) -> None:
    rig.served.create("ch")
    with trio.fail_after(5):
        async with (
            rig.publisher("ch", owns_channel=False) as pub,
            rig.subscriber("ch", preconnect=False) as sub,
        ):
            with trio.move_on_after(0.2):
                await sub.__anext__()
            await rig.settled(in_flight=1)  # just the publisher's preconnect
            await pub.write_segment(b"nothing lost")
            segment = await sub.__anext__()
            assert (segment.seq, await segment.read_all()) == (0, b"nothing lost")
        await rig.settled()


@pytest.mark.spec("TRK-110", "TRK-108")
async def test_cancelled_wait_keeps_the_subscriber_preconnect(rig: Rig) -> None:
    rig.served.create("ch")
    with trio.fail_after(5):
        async with rig.publisher("ch", owns_channel=False) as pub, rig.subscriber("ch") as sub:
            await pub.write_segment(b"zero")
            first = await sub.__anext__()
            assert await first.read_all() == b"zero"
            with trio.move_on_after(0.2):
                await sub.__anext__()  # waits on the preconnected GET for 1
            assert rig.served.in_flight("GET", "ch/1") == 1  # owned by the subscriber
            await pub.write_segment(b"one")
            second = await sub.__anext__()
            assert (second.seq, await second.read_all()) == (1, b"one")
        await rig.settled()
    assert len(rig.served.seen("GET", "ch/1")) == 1  # the same GET, not a new one


@pytest.mark.spec("TRK-110", "TRK-060", "TRK-101")
async def test_cancel_subscriber_mid_body(rig: Rig) -> None:
    rig.served.create("ch")
    with trio.fail_after(5):
        async with (
            rig.publisher("ch", owns_channel=False) as pub,
            rig.subscriber("ch", preconnect=False) as sub,
        ):
            async with pub.segment() as seg:
                await seg.write(b"head")
                segment = await sub.__anext__()
                assert await segment.__anext__() == b"head"
                with trio.move_on_after(0.2):
                    await segment.__anext__()
                # The GET of segment 0 is released while its segment is still open.
                await rig.settled(in_flight=2)  # the POSTs of seq 0 and 1
                assert rig.served.in_flight("GET") == 0
                with pytest.raises(IllegalTransition):
                    await segment.__anext__()
                await seg.write(b"tail")
            await pub.write_segment(b"next")
            following = await sub.__anext__()
            assert (following.seq, await following.read_all()) == (1, b"next")
        await rig.settled()


@pytest.mark.spec("TRK-110", "CHN-027")
async def test_cancel_jsonl_writer_mid_segment(rig: Rig) -> None:
    rig.served.create("ch")
    with trio.fail_after(5):
        async with rig.publisher("ch", owns_channel=False) as pub:
            with trio.move_on_after(0.2):
                async with JsonlWriter(pub, segment_interval=0.05) as writer:
                    for i in range(1000):
                        await writer.write({"i": i})
                        await trio.sleep(0.01)
            assert await pub.write_segment(b"after") is not None
        await rig.settled()


@pytest.mark.spec("TRK-110")
async def test_cancel_a_whole_session_at_many_points(rig: Rig) -> None:
    """Publish and subscribe concurrently; cancel everything at staggered moments."""
    for i, delay in enumerate([0.0, 0.001, 0.003, 0.006, 0.01, 0.02, 0.04, 0.08]):
        name = f"ch{i}"
        rig.served.create(name)
        with trio.fail_after(5):
            with trio.move_on_after(delay):
                async with (
                    rig.publisher(name, start_seq=None) as pub,
                    rig.subscriber(name, start_seq=-1) as sub,
                    trio.open_nursery() as nursery,
                ):

                    async def read_all(sub: TrickleSubscriber = sub) -> None:
                        async for segment in sub:
                            async for _chunk in segment:
                                pass

                    nursery.start_soon(read_all)
                    for _ in range(100):
                        async with pub.segment() as seg:
                            await seg.write(b"a" * 1000)
                            await trio.lowlevel.checkpoint()
                            await seg.write(b"b" * 1000)
            await rig.settled()


@pytest.mark.spec("TRK-112")
async def test_server_releases_a_closed_keepalive_connection() -> None:
    async with open_trickle_server() as handle:
        handle.server.create_channel("ch", "text/plain")
        baseline = count_tasks()
        async with create_http_client(FAST) as client:
            response = await client.get(handle.channel_url("ch") + "/next")
            assert response.status_code == 200
            assert count_tasks() > baseline  # the server's connection task
            await trio.sleep(0.1)  # the connection sits idle, as between segments
        # The client closed its idle connection: the server should notice EOF.
        await wait_for(lambda: count_tasks() == baseline, within=1.0)
