"""The trio/httpx subscriber against a real trickle server (TRK-099..110)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from tests.integration.servers import ServedTrickle, TcpForwarder, open_test_server
from trio_trickle._client.http import ClientTimeouts
from trio_trickle._client.publisher import TricklePublisher
from trio_trickle._client.subscriber import TrickleSubscriber
from trio_trickle._errors import ChannelClosed, IllegalTransition, TransportError

FAST = ClientTimeouts(connect=2.0, headers=2.0, body=2.0, queue=1.0, close=2.0)


@pytest.fixture
async def served() -> AsyncIterator[ServedTrickle]:
    async with open_test_server() as srv:
        yield srv


def writer(url: str, **kwargs: object) -> TricklePublisher:
    return TricklePublisher(
        url,
        "text/plain",
        start_seq=0,
        owns_channel=False,
        timeouts=FAST,
        **kwargs,  # type: ignore[arg-type]
    )


def reader(url: str, **kwargs: object) -> TrickleSubscriber:
    kwargs.setdefault("timeouts", FAST)
    return TrickleSubscriber(url, **kwargs)  # type: ignore[arg-type]


@pytest.mark.spec("TRK-099", "TRK-022", "TRK-021", "TRK-053", "TRK-100")
async def test_start_positions(served: ServedTrickle) -> None:
    url = served.create("ch")
    with trio.fail_after(5):
        async with writer(url) as pub:
            for payload in (b"s0", b"s1", b"s2"):
                await pub.write_segment(payload)
            async with pub.segment() as seg3:
                await seg3.write(b"s3-start")
                # -2 (default): the segment being written, from its first byte.
                async with reader(url) as sub:
                    segment = await sub.__anext__()
                    assert segment.seq == 3
                    assert await segment.__anext__() == b"s3-start"
                # Explicit: replays from the ring, then follows Lp-Trickle-Seq + 1.
                async with reader(url, start_seq=1) as sub:
                    got = []
                    for _ in range(2):
                        segment = await sub.__anext__()
                        got.append((segment.seq, await segment.read_all()))
                    assert got == [(1, b"s1"), (2, b"s2")]
                    assert sub.next_seq == 3
                # -1: the segment after the one being written; waits for it to start.
                async with reader(url, start_seq=-1) as sub, trio.open_nursery() as nursery:
                    got = []

                    async def read_one() -> None:
                        segment = await sub.__anext__()
                        got.append((segment.seq, await segment.read_all()))

                    nursery.start_soon(read_one)
                    await served.wait_until(lambda: served.in_flight("GET", "ch/-1") == 1)
                    await trio.sleep(0.05)
                    assert not got
                    await seg3.write(b"-end")
                    await seg3.end()
                    await pub.write_segment(b"s4")
                assert got == [(4, b"s4")]
    assert [r.path for r in served.seen("GET")][:2] == ["ch/-2", "ch/1"]


@pytest.mark.spec("TRK-101", "TRK-108", "TRK-031")
async def test_incremental_delivery_and_preconnect(served: ServedTrickle) -> None:
    url = served.create("ch")
    with trio.fail_after(5):
        async with writer(url) as pub, reader(url, start_seq=0) as sub:
            async with pub.segment() as seg:
                await seg.write(b"part one")
                segment = await sub.__anext__()
                assert await segment.__anext__() == b"part one"  # before the segment ends
                # Segment 0's headers are in: the GET for 1 is already waiting.
                await served.wait_until(lambda: served.in_flight("GET", "ch/1") == 1)
                await seg.write(b"part two")
                assert await segment.__anext__() == b"part two"
            assert await segment.read_all() == b""
            assert segment.complete


@pytest.mark.spec("TRK-102", "TRK-033", "TRK-055")
async def test_empty_segment_is_delivered_as_empty(served: ServedTrickle) -> None:
    url = served.create("ch")
    with trio.fail_after(5):
        async with writer(url) as pub, reader(url, start_seq=0) as sub:
            await pub.write_segment(b"")
            await pub.write_segment(b"after")
            first = await sub.__anext__()
            assert (first.seq, await first.read_all()) == (0, b"")
            second = await sub.__anext__()
            assert (second.seq, await second.read_all()) == (1, b"after")


@pytest.mark.spec("TRK-103", "TRK-057", "TRK-023")
async def test_470_behind_the_ring_jumps_to_latest(served: ServedTrickle) -> None:
    url = served.create("ch")
    with trio.fail_after(5):
        async with writer(url) as pub:
            for i in range(8):
                await pub.write_segment(b"old %d" % i)
            # Segment 0 left the ring of 5; the pending preconnect of 8 is in it.
            async with reader(url, start_seq=0) as sub, trio.open_nursery() as nursery:
                got = []

                async def read_one() -> None:
                    segment = await sub.__anext__()
                    got.append((segment.seq, await segment.read_all()))

                nursery.start_soon(read_one)
                await served.wait_until(lambda: served.in_flight("GET", "ch/8") == 1)
                await pub.write_segment(b"live")
            assert got == [(8, b"live")]
    gets = served.seen("GET")
    assert (gets[0].path, gets[0].status) == ("ch/0", 470)
    assert gets[1].path == "ch/8"


@pytest.mark.spec("TRK-104", "TRK-057", "TRK-049")
async def test_470_ahead_of_the_live_edge_waits_and_retries(served: ServedTrickle) -> None:
    url = served.create("ch")
    with trio.fail_after(5):
        async with (
            writer(url) as pub,
            reader(url, start_seq=3, wait_ahead_delay=0.05) as sub,
            trio.open_nursery() as nursery,
        ):

            async def publish_later() -> None:
                await trio.sleep(0.2)
                for i in range(4):
                    await pub.write_segment(b"seg %d" % i)

            nursery.start_soon(publish_later)
            segment = await sub.__anext__()
            assert (segment.seq, await segment.read_all()) == (3, b"seg 3")
    tried = [r.path for r in served.seen("GET")]
    assert tried.count("ch/3") >= 3  # polled the same seq, 0.05 s apart
    assert not {"ch/0", "ch/1", "ch/2", "ch/-1"} & set(tried)  # never jumped back


@pytest.mark.spec("TRK-104")
async def test_470_without_latest_jumps_to_minus_one(served: ServedTrickle) -> None:
    url = served.create("ch")

    def bare_470(method: str, path: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
        return (470, [], b"Entry not found\n") if path == "ch/7" else None

    served.override = bare_470
    with trio.fail_after(5):
        async with writer(url) as pub, reader(url, start_seq=7) as sub:
            await pub.write_segment(b"zero")
            async with trio.open_nursery() as nursery:
                got = []

                async def read_one() -> None:
                    segment = await sub.__anext__()
                    got.append((segment.seq, await segment.read_all()))

                nursery.start_soon(read_one)
                await served.wait_until(lambda: served.in_flight("GET", "ch/-1") == 1)
                await pub.write_segment(b"one")
            assert got == [(1, b"one")]  # -1 resolved to nextWrite = 1
    assert [r.path for r in served.seen("GET")][:2] == ["ch/7", "ch/-1"]


@pytest.mark.spec("TRK-105", "TRK-068", "TRK-056")
async def test_end_of_stream_ends_iteration(served: ServedTrickle) -> None:
    url = served.create("ch")
    with trio.fail_after(5):
        async with writer(url) as pub, reader(url, start_seq=0) as sub:
            await pub.write_segment(b"only")
            seqs = []

            async def close_soon() -> None:
                await served.wait_until(lambda: served.in_flight("GET", "ch/1") == 1)
                served.server.delete_channel("ch")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(close_soon)
                async for segment in sub:
                    seqs.append((segment.seq, await segment.read_all()))
            assert seqs == [(0, b"only")]
            assert await sub.next_segment() is None  # stays ended


@pytest.mark.spec("TRK-106", "TRK-047")
async def test_404_raises_channel_closed(served: ServedTrickle) -> None:
    with trio.fail_after(5):
        async with reader(served.channel_url("missing")) as sub:
            with pytest.raises(ChannelClosed):
                await sub.__anext__()
            with pytest.raises(ChannelClosed):
                await sub.__anext__()
    assert len(served.seen("GET")) == 1


@pytest.mark.spec("TRK-107")
async def test_failures_are_retried_then_raise_transport_error(served: ServedTrickle) -> None:
    url = served.create("ch")
    unavailable = 2

    def flaky(method: str, path: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
        nonlocal unavailable
        if method == "GET" and unavailable:
            unavailable -= 1
            return 503, [], b"try later\n"
        return None

    served.override = flaky
    with trio.fail_after(5):
        async with writer(url) as pub, reader(url, start_seq=0, retry_delay=0.05) as sub:
            await pub.write_segment(b"made it")
            segment = await sub.__anext__()  # two 503s, then success
            assert await segment.read_all() == b"made it"
        assert [r.status for r in served.seen("GET", "ch/0")] == [503, 503, 200]
        unavailable = 1000
        before = len(served.seen("GET"))
        started = trio.current_time()
        async with reader(url, start_seq=0, retry_delay=0.05, preconnect=False) as sub:
            with pytest.raises(TransportError):
                await sub.__anext__()
        assert len(served.seen("GET")) - before == 6  # one try and five retries
        assert trio.current_time() - started >= 5 * 0.05


@pytest.mark.spec("TRK-109", "TRK-060")
async def test_headers_wait_is_reissued_not_failed(served: ServedTrickle) -> None:
    url = served.create("ch")
    timeouts = ClientTimeouts(connect=2.0, headers=0.15, body=2.0, close=1.0)
    with trio.fail_after(5):
        async with writer(url) as pub, reader(url, start_seq=0, timeouts=timeouts) as sub:
            with trio.move_on_after(0.6):
                await sub.__anext__()
            # Re-issued several times, never counted as a failure (max_retries=0 below
            # would otherwise have raised), and each abandoned GET was released.
            assert len(served.seen("GET", "ch/0")) >= 3
            await served.wait_until(lambda: served.in_flight("GET", "ch/0") <= 1)
            sub.max_retries = 0
            await pub.write_segment(b"finally")
            segment = await sub.__anext__()
            assert await segment.read_all() == b"finally"


@pytest.mark.spec("TRK-109", "TRK-107", "TRK-053")
async def test_silent_body_is_resumed_without_duplicates(served: ServedTrickle) -> None:
    url = served.create("ch")
    timeouts = ClientTimeouts(connect=2.0, headers=2.0, body=0.15, close=1.0)
    with trio.fail_after(5):
        async with (
            writer(url) as pub,
            reader(url, start_seq=0, timeouts=timeouts, retry_delay=0.01) as sub,
        ):
            async with trio.open_nursery() as nursery:

                async def publish_with_a_pause() -> None:
                    async with pub.segment() as seg:
                        await seg.write(b"before-")
                        await trio.sleep(0.4)  # longer than the body inactivity bound
                        await seg.write(b"after")

                nursery.start_soon(publish_with_a_pause)
                segment = await sub.__anext__()
                assert await segment.read_all() == b"before-after"
            assert segment.bytes_received == len(b"before-after")
    assert len(served.seen("GET", "ch/0")) >= 2


@pytest.mark.spec("TRK-107", "TRK-053", "TRK-025")
async def test_body_cut_short_is_resumed(served: ServedTrickle) -> None:
    url = served.create("ch")
    payload = bytes(range(256)) * 400  # 100 KiB
    forwarder = TcpForwarder(served.root)
    forwarder.victim = b"GET /ai/trickle/ch/0 "
    forwarder.cut_downstream_after = 30_000
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(forwarder.run)
            async with writer(url) as pub:
                await pub.write_segment(payload)
                async with reader(forwarder.url_for(url), start_seq=0, retry_delay=0.01) as sub:
                    segment = await sub.__anext__()
                    assert await segment.read_all() == payload
            nursery.cancel_scope.cancel()
    assert forwarder.cuts == 1
    assert len(served.seen("GET", "ch/0")) == 2


@pytest.mark.spec("TRK-110", "TRK-060")
async def test_unread_segment_is_closed_when_the_next_is_requested(
    served: ServedTrickle,
) -> None:
    url = served.create("ch")
    with trio.fail_after(5):
        async with writer(url) as pub, reader(url, start_seq=0) as sub:
            async with pub.segment() as seg:
                await seg.write(b"never finished")
                first = await sub.__anext__()
                assert await first.__anext__() == b"never finished"
            await pub.write_segment(b"next")
            second = await sub.__anext__()
            assert (second.seq, await second.read_all()) == (1, b"next")
            with pytest.raises(IllegalTransition):
                await first.__anext__()
            await served.wait_until(lambda: served.in_flight("GET", "ch/0") == 0)
