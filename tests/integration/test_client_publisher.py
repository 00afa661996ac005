"""The trio/httpx publisher against a real trickle server (TRK-088..098)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import pytest
import trio

from tests.integration.servers import (
    ServedTrickle,
    TcpForwarder,
    open_test_server,
    reject_next,
)
from trio_trickle._client.http import ClientTimeouts, create_http_client
from trio_trickle._client.publisher import TricklePublisher
from trio_trickle._client.subscriber import TrickleSubscriber
from trio_trickle._core.segment import SegmentState
from trio_trickle._errors import ChannelClosed, TransportError

FAST = ClientTimeouts(connect=2.0, headers=2.0, body=2.0, queue=0.5, close=2.0)


@pytest.fixture
async def served() -> AsyncIterator[ServedTrickle]:
    async with open_test_server() as srv:
        yield srv


async def publish(url: str, payloads: list[bytes], **kwargs: object) -> list[int | None]:
    seqs = []
    async with TricklePublisher(url, "text/plain", timeouts=FAST, **kwargs) as pub:  # type: ignore[arg-type]
        for payload in payloads:
            seqs.append(await pub.write_segment(payload))
    return seqs


def segment_bytes(served: ServedTrickle, name: str, seq: int) -> bytes:
    segment = served.server.core.channels[name].segment(seq)
    assert segment is not None, f"segment {seq} not in the ring"
    return b"".join(segment.chunks)


@pytest.mark.spec("TRK-088", "TRK-090", "TRK-091", "TRK-078")
async def test_first_seq_from_next_reset_only_on_first(served: ServedTrickle) -> None:
    url = served.create("ch")
    with trio.fail_after(5):
        assert await publish(url, [b"a", b"b"], owns_channel=False) == [0, 1]
        first = len(served.requests)
        # The first publisher's close ended its preconnect (2) as an empty segment.
        assert await publish(url, [b"c", b"d", b"e"], owns_channel=False) == [3, 4, 5]
    later = served.requests[first:]
    assert [r.path for r in later if r.method == "GET"] == ["ch/next"]
    posts = {r.path: r for r in later if r.method == "POST"}
    assert {"ch/3", "ch/4", "ch/5"} <= set(posts)
    assert posts["ch/3"].header("Lp-Trickle-Reset") == "1"
    assert all(r.header("Lp-Trickle-Reset") is None for p, r in posts.items() if p != "ch/3")
    assert all(r.header("Content-Type") == "text/plain" for r in posts.values())
    assert [segment_bytes(served, "ch", s) for s in (2, 3, 4, 5)] == [b"", b"c", b"d", b"e"]


@pytest.mark.spec("TRK-092", "TRK-029", "TRK-030", "TRK-049")
async def test_preconnect_installs_next_segment_before_data(served: ServedTrickle) -> None:
    url = served.create("ch")
    channel = served.server.core.channels["ch"]
    with trio.fail_after(5):
        async with TricklePublisher(url, "video/MP2T", start_seq=0, timeouts=FAST) as pub:
            # Segment 0 is preconnected before the caller has any data.
            await served.wait_until(lambda: channel.segment(0) is not None)
            seg0 = channel.segment(0)
            assert seg0 is not None
            assert seg0.state is SegmentState.CLAIMED
            assert channel.next_write == 0
            async with pub.segment() as seg:
                await served.wait_until(lambda: channel.segment(1) is not None)
                seg1 = channel.segment(1)
                assert seg1 is not None
                assert seg1.state is SegmentState.CLAIMED
                await seg.write(b"hello")
                await served.wait_until(lambda: channel.next_write == 1)
            assert seg.seq == 0
            assert segment_bytes(served, "ch", 0) == b"hello"
            assert channel.next_write == 1  # the preconnected 1 has no byte yet


@pytest.mark.spec("TRK-089", "TRK-021", "TRK-032")
@pytest.mark.parametrize("status", [400, 404, 405])
async def test_next_fallback_posts_first_segment_to_minus_one(status: int) -> None:
    async with open_test_server() as served:
        url = served.create("ch")
        with trio.fail_after(5):
            await publish(url, [b"x", b"y"], start_seq=0, owns_channel=False)
            served.override = reject_next(status)
            start = len(served.requests)
            seqs = await publish(url, [b"p", b"q", b"r"], owns_channel=False)
        assert seqs == [3, 4, 5]  # 2: the first publisher's preconnect, ended empty
        posts = [r for r in served.requests[start:] if r.method == "POST"]
        assert posts[0].path == "ch/-1"
        assert posts[0].header("Lp-Trickle-Reset") == "1"
        # Nothing else was posted before the -1 POST's answer named its seq.
        assert posts[0].ended is not None
        assert all(r.started >= posts[0].ended for r in posts[1:])
        assert "ch/4" in [r.path for r in posts[1:]]
        assert [segment_bytes(served, "ch", s) for s in (2, 3, 4, 5)] == [b"", b"p", b"q", b"r"]


@pytest.mark.spec("TRK-093", "TRK-039")
async def test_retry_once_when_no_byte_was_sent(served: ServedTrickle) -> None:
    url = served.create("ch")
    forwarder = TcpForwarder(served.root)
    await forwarder.reserve_port()  # nothing listens yet: the first connect is refused
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            async with TricklePublisher(
                forwarder.url_for(url),
                "text/plain",
                start_seq=0,
                owns_channel=False,
                timeouts=FAST,
                retry_delay=0.3,
            ) as pub:
                async with pub.segment() as seg:
                    await seg.write(b"kept")  # queued; the POST has not connected
                    await trio.sleep(0.05)  # the first attempt fails meanwhile
                    await nursery.start(forwarder.run)
                assert seg.seq == 0
            nursery.cancel_scope.cancel()
    assert segment_bytes(served, "ch", 0) == b"kept"
    assert len(served.seen("POST", "ch/0")) == 1  # the refused attempt never arrived


@pytest.mark.spec("TRK-093", "TRK-038")
async def test_no_retry_after_bytes_were_sent(served: ServedTrickle) -> None:
    url = served.create("ch")
    forwarder = TcpForwarder(served.root)
    forwarder.victim = b"POST /ai/trickle/ch/0 "
    forwarder.cut_upstream_after = 2000  # POST /0 dies mid-body
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(forwarder.run)
            async with TricklePublisher(
                forwarder.url_for(url),
                "text/plain",
                start_seq=0,
                owns_channel=False,
                timeouts=FAST,
                retry_delay=0.05,
            ) as pub:

                async def write_slowly() -> None:
                    async with pub.segment() as seg:
                        for _ in range(50):
                            await seg.write(b"z" * 1000)
                            await trio.sleep(0.002)

                with pytest.raises(TransportError):
                    await write_slowly()
                assert await pub.write_segment(b"next") == 1  # moved on to the next seq
            nursery.cancel_scope.cancel()
    assert len(served.seen("POST", "ch/0")) == 1
    channel = served.server.core.channels["ch"]
    seg0 = channel.segment(0)
    assert seg0 is not None
    assert seg0.closed
    assert 0 < seg0.size < 50_000
    assert segment_bytes(served, "ch", 1) == b"next"


@pytest.mark.spec("TRK-095", "TRK-043", "TRK-079")
async def test_404_makes_the_publisher_terminal(served: ServedTrickle) -> None:
    url = served.channel_url("missing")
    with trio.fail_after(5):
        async with TricklePublisher(url, "text/plain", timeouts=FAST) as pub:
            with pytest.raises(ChannelClosed):
                await pub.write_segment(b"lost")
            posts = len(served.seen("POST"))
            with pytest.raises(ChannelClosed):
                await pub.write_segment(b"again")
            assert len(served.seen("POST")) == posts  # terminal: nothing more was sent
    assert served.seen("POST")[0].path == "missing/-1"  # /next said 404: fallback


@pytest.mark.spec("TRK-096", "TRK-069")
async def test_closed_header_makes_the_publisher_terminal(served: ServedTrickle) -> None:
    url = served.create("ch")
    with trio.fail_after(5):
        async with TricklePublisher(url, "text/plain", start_seq=0, timeouts=FAST) as pub:
            await served.wait_until(lambda: served.in_flight("POST", "ch/0") == 1)
            served.server.delete_channel("ch")  # answers the waiting preconnect with Closed
            await served.wait_until(lambda: served.in_flight("POST") == 0)
            assert served.seen("POST", "ch/0")[0].status == 200
            with pytest.raises(ChannelClosed):
                await pub.write_segment(b"too late")
            with pytest.raises(ChannelClosed):
                await pub.write_segment(b"still too late")


@pytest.mark.spec("TRK-094", "TRK-093")
async def test_three_consecutive_failures_make_it_terminal(served: ServedTrickle) -> None:
    url = served.create("ch")
    # Every POST fails except the one for seq 2 (decided per seq, because the
    # preconnect of a seq is already on its way before that segment is written).
    failing = {"ch/0", "ch/1", "ch/3", "ch/4", "ch/5"}

    def fail_posts(method: str, path: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
        return (503, [], b"busy\n") if method == "POST" and path in failing else None

    served.override = fail_posts
    with trio.fail_after(5):
        async with TricklePublisher(
            url, "text/plain", start_seq=0, owns_channel=False, timeouts=FAST
        ) as pub:
            for _ in range(2):
                with pytest.raises(TransportError):
                    await pub.write_segment(b"data")
            assert await pub.write_segment(b"ok") == 2  # a success resets the count
            for _ in range(3):
                with pytest.raises(TransportError):
                    await pub.write_segment(b"data")
            with pytest.raises(ChannelClosed):
                await pub.write_segment(b"data")
    # Each failed segment had bytes sent, so it was posted exactly once (no retry).
    assert [len(served.seen("POST", p)) for p in sorted(failing)] == [1] * 5


@pytest.mark.spec("TRK-097", "TRK-098", "TRK-012", "TRK-033")
async def test_close_ends_preconnect_then_deletes_channel(served: ServedTrickle) -> None:
    url = served.create("ch")
    with trio.fail_after(5):
        pub = TricklePublisher(url, "text/plain", start_seq=0, timeouts=FAST)
        async with pub:
            await pub.write_segment(b"one")
            await served.wait_until(lambda: served.in_flight("POST", "ch/1") == 1)
            await pub.aclose()
            assert "ch" not in served.server.core.channels
            await pub.aclose()  # idempotent
            with pytest.raises(ChannelClosed):
                await pub.write_segment(b"after close")
        await served.wait_until(lambda: served.in_flight() == 0)
    preconnect = served.seen("POST", "ch/1")[0]
    delete = served.seen("DELETE", "ch")
    assert len(delete) == 1
    assert preconnect.status == 200
    assert preconnect.ended is not None
    assert preconnect.ended <= delete[0].started


@pytest.mark.spec("TRK-097", "TRK-033", "TRK-020")
async def test_close_without_ownership_leaves_an_empty_segment(served: ServedTrickle) -> None:
    url = served.create("ch")
    with trio.fail_after(5):
        async with TricklePublisher(
            url, "text/plain", start_seq=0, owns_channel=False, timeouts=FAST
        ) as pub:
            await pub.write_segment(b"one")
            await served.wait_until(lambda: served.in_flight("POST", "ch/1") == 1)
        channel = served.server.core.channels["ch"]
        seg1 = channel.segment(1)
        assert seg1 is not None
        assert seg1.closed
        assert seg1.size == 0
        assert channel.next_write == 2
        assert not served.seen("DELETE")
        # A later publisher continues after it.
        assert await publish(url, [b"two"], owns_channel=False) == [2]


@pytest.mark.spec("TRK-109")
async def test_write_backpressure_is_bounded() -> None:
    async def swallow(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()  # accepts, never reads: the socket buffers fill up

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, swallow, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            timeouts = ClientTimeouts(connect=2, headers=2, body=5, queue=0.3, close=0.5)
            url = f"http://127.0.0.1:{port}/ai/trickle/ch"
            async with TricklePublisher(
                url, "text/plain", start_seq=0, timeouts=timeouts, owns_channel=False
            ) as pub:

                async def write_forever() -> None:
                    async with pub.segment() as seg:
                        while True:
                            await seg.write(b"x" * 65536)

                with pytest.raises(TransportError, match="took no data"):
                    await write_forever()
            nursery.cancel_scope.cancel()


@pytest.mark.spec("TRK-092")
async def test_shared_client_carries_many_publishers(served: ServedTrickle) -> None:
    names = [f"ch{i}" for i in range(20)]
    urls = [served.create(name) for name in names]
    client = create_http_client(FAST)
    async with client:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for url in urls:
                    nursery.start_soon(
                        lambda u: publish(u, [b"a", b"b"], client=client, owns_channel=False), url
                    )
    for name in names:
        assert segment_bytes(served, name, 1) == b"b"


@pytest.mark.spec("TRK-101", "TRK-031")
async def test_segment_bytes_reach_a_subscriber_while_still_open(served: ServedTrickle) -> None:
    url = served.create("ch")
    with trio.fail_after(5):
        async with (
            TricklePublisher(url, "text/plain", start_seq=0, timeouts=FAST) as pub,
            TrickleSubscriber(url, start_seq=0, timeouts=FAST) as sub,
        ):
            async with pub.segment() as seg:
                await seg.write(b"first")
                segment = await sub.__anext__()
                assert await segment.__anext__() == b"first"
                await seg.write(b"second")
                assert await segment.__anext__() == b"second"
            assert await segment.read_all() == b""
