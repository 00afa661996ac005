"""Hostile and broken clients against real servers over raw loopback sockets (TRK-111..117).

Each case is one that ended a server process, held its file descriptors, or
answered 500 before ``_server.connections`` existed (issue: "A client that dies after
sending its headers kills the trickle server"). An exception escaping a
server's connection would escape ``open_trickle_server``/``open_runner`` and
fail the test, so surviving the block is part of every assertion.
"""

from __future__ import annotations

import re

import httpx
import pytest
import trio
import trio.testing

from tests.integration.servers import wait_for
from trio_trickle import ServerConfig, open_runner, open_trickle_server
from trio_trickle._server.connections import HttpTimeouts
from trio_trickle.examples import Echo, Passthrough

ROUNDS = 40
STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")


def _port(url: str) -> int:
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


async def _exchange(port: int, data: bytes, *, half_close: bool = True) -> bytes:
    """Send ``data``, optionally half-close, and read until the server closes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        if half_close:
            await stream.send_eof()
        received = b""
        with trio.fail_after(10):
            while chunk := await _receive(stream):
                received += chunk
        return received


async def _receive(stream: trio.SocketStream) -> bytes:
    try:
        return await stream.receive_some(65536)
    except trio.BrokenResourceError:  # reset by the server: a close
        return b""


async def _publish_and_read(base: str, channel: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.post(f"{base}{channel}/0", content=b"ok")).status_code == 200
        assert (await client.get(f"{base}{channel}/0")).content == b"ok"


@pytest.mark.spec("TRK-111")
async def test_publisher_dying_after_its_headers_does_not_end_the_trickle_server() -> None:
    async with open_trickle_server(ServerConfig(autocreate=True)) as handle:
        port = _port(handle.root)
        head = b"POST /ai/trickle/fz19 HTTP/1.1\r\nHost: x\r\nContent-Length: 34\r\n\r\n"
        probe = b"GET /ai/trickle/probe/next HTTP/1.0\r\n\r\n\r\n"
        for _ in range(ROUNDS):
            await _exchange(port, head)
            await _exchange(port, probe)
        await _publish_and_read(handle.url, "after")
        await wait_for(lambda: handle.connections.open == 0, within=5)


@pytest.mark.spec("TRK-111", "RUN-008")
async def test_client_dying_mid_body_does_not_end_the_runner() -> None:
    async with open_runner(Echo()) as runner:
        port = _port(runner.url)
        data = b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"
        for _ in range(ROUNDS):
            answer = await _exchange(port, data)
            assert b" 500" not in answer.split(b"\r\n", 1)[0]
        async with httpx.AsyncClient(timeout=10) as client:
            reply = await client.post(runner.url + "/predict", json={"text": "hi"})
            assert reply.status_code == 200


@pytest.mark.spec("TRK-112")
async def test_closed_idle_connections_are_released_at_once() -> None:
    # 120 s keep-alive: only the client's EOF can release these within the wait below.
    timeouts = HttpTimeouts(keep_alive=120, header=120)
    async with open_trickle_server(timeouts=timeouts) as handle:
        handle.server.create_channel("ch", "text/plain")
        port = _port(handle.root)
        streams = []
        for _ in range(50):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"GET /ai/trickle/ch/next HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200" in await stream.receive_some(65536)
            streams.append(stream)
        assert handle.connections.open == 50
        for stream in streams:
            await stream.aclose()
        await wait_for(lambda: handle.connections.open == 0, within=5)


@pytest.mark.spec("TRK-113")
async def test_half_sent_head_is_closed_after_the_header_timeout() -> None:
    async with open_trickle_server(timeouts=HttpTimeouts(header=0.2)) as handle:
        answer = await _exchange(_port(handle.root), b"GET /ai/trickle/ch", half_close=False)
        assert answer == b""  # closed, nothing said
        assert handle.connections.header_timeouts == 1


@pytest.mark.spec("TRK-113")
async def test_idle_keep_alive_is_closed_but_a_long_poll_is_not() -> None:
    timeouts = HttpTimeouts(keep_alive=0.2, header=0.2)
    async with open_trickle_server(timeouts=timeouts) as handle:
        handle.server.create_channel("ch", "text/plain")
        port = _port(handle.root)
        # A parked GET for the write head: a long poll, bounded by neither timeout.
        poll = await trio.open_tcp_stream("127.0.0.1", port)
        await poll.send_all(b"GET /ai/trickle/ch/0 HTTP/1.1\r\nHost: x\r\n\r\n")
        # An idle keep-alive connection is closed: its EOF shows the bound has passed.
        idle = await _exchange(
            port, b"GET /ai/trickle/ch/next HTTP/1.1\r\nHost: x\r\n\r\n", half_close=False
        )
        assert STATUS.findall(idle) == [b"200"]
        async with httpx.AsyncClient(timeout=10) as client:
            posted = await client.post(handle.channel_url("ch") + "/0", content=b"late")
            assert posted.status_code == 200
        with trio.fail_after(10):
            answer = b""
            while b"late" not in answer:
                answer += await poll.receive_some(65536)
        await poll.aclose()


@pytest.mark.spec("TRK-114")
async def test_pipelined_requests_are_each_answered_in_order() -> None:
    async with open_trickle_server(ServerConfig(autocreate=True)) as handle:
        handle.server.create_channel("ch", "text/plain")
        requests = b""
        for i in range(20):
            requests += (
                b"POST /ai/trickle/ch/%d HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx" % i
            )
            requests += b"GET /ai/trickle/ch/next HTTP/1.1\r\nHost: x\r\n\r\n"
        answer = await _exchange(_port(handle.root), requests)
        assert STATUS.findall(answer) == [b"200"] * 40
        latest = [int(v) for v in re.findall(rb"lp-trickle-latest: (\d+)", answer, re.I)]
        assert latest == list(range(1, 21))


@pytest.mark.spec("TRK-114")
async def test_oversized_head_is_refused_and_closed() -> None:
    async with open_trickle_server() as handle:
        head = (
            b"GET /ai/trickle/ch/next HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 20000 + b"\r\n\r\n"
        )
        answer = await _exchange(_port(handle.root), head)
        assert STATUS.findall(answer) in ([b"400"], [b"431"])


UPGRADE = (
    b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
    b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


@pytest.mark.spec("TRK-115")
async def test_websocket_upgrade_gets_a_plain_400_from_every_server() -> None:
    async with (
        open_trickle_server() as trickle,
        open_runner(Echo()) as pipeline,
        open_runner(Passthrough()) as live,
    ):
        for url, path in (
            (trickle.root, b"/ai/trickle/ch/0"),
            (pipeline.url, b"/health"),
            (live.url, b"/stream/start"),
            (live.url, b"/nothing"),
        ):
            answer = await _exchange(_port(url), UPGRADE % path, half_close=False)
            assert STATUS.findall(answer) == [b"400"]
            assert answer.endswith(b"websocket upgrade is not supported by this server\n")


@pytest.mark.spec("TRK-116")
async def test_global_buffer_bound_refuses_with_503() -> None:
    config = ServerConfig(autocreate=True, max_buffered_bytes=10_000)
    async with open_trickle_server(config) as handle, httpx.AsyncClient(timeout=10) as client:
        for name in ("a", "b"):
            reply = await client.post(handle.url + f"{name}/0", content=b"x" * 4000)
            assert reply.status_code == 200
        refused = await client.post(handle.url + "c/0", content=b"x" * 4000)
        assert refused.status_code == 503
        assert refused.headers["connection"] == "close"
        # The segment ends with what fit, so its readers finish.
        assert len((await client.get(handle.url + "c/0")).content) == 2000
        assert handle.server.core.budget.held == 10_000
        # Removing a channel returns its bytes.
        assert (await client.delete(handle.url + "a")).status_code == 200
        assert handle.server.core.budget.held == 6_000
        again = await client.post(handle.url + "d/0", content=b"x" * 4000)
        assert again.status_code == 200


@pytest.mark.spec("TRK-117")
async def test_failing_hook_answers_500_without_its_text() -> None:
    async def before_create(name: str, headers: object) -> None:
        raise RuntimeError("token=secret-123")

    async with open_trickle_server(before_create=before_create) as handle:
        async with httpx.AsyncClient(timeout=10) as client:
            reply = await client.post(handle.url + "ch")
        assert reply.status_code == 500
        assert reply.text == "internal error\n"


@pytest.mark.spec("TRK-111")
async def test_request_target_without_a_path_is_a_400_on_both_servers() -> None:
    # h11 accepts "GET ?x"; quart indexed the empty path and answered 500.
    async with open_trickle_server() as trickle, open_runner(Echo()) as runner:
        for url in (trickle.root, runner.url):
            for target in (b"?", b"?x=1"):
                answer = await _exchange(_port(url), b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target)
                assert STATUS.findall(answer) == [b"400"]


@pytest.mark.spec("TRK-111", "RUN-008")
async def test_answer_before_the_whole_body_closes_the_connection_at_once() -> None:
    # /health answers without reading the body, so the request cannot be followed (the
    # rest of its body is still to come): the server closes after the answer. That close
    # runs in the app's task, which quart-trio cancels on the http.disconnect hypercorn
    # sends it just before: the socket was left open, with no timer, until the client
    # left; bytes pipelined behind parked the reader and held it for good (the fuzz hang).
    timeouts = HttpTimeouts(keep_alive=60, header=60)  # only the close itself can end it
    async with open_runner(Echo(), timeouts=timeouts) as runner:
        await runner.wait_setup()  # /health answers 200, not 503 (loading)
        stream = await trio.open_tcp_stream("127.0.0.1", _port(runner.url))
        async with stream:
            await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab")
            received = b""
            with trio.fail_after(10):
                while chunk := await _receive(stream):
                    received += chunk
            assert STATUS.findall(received) == [b"200"]
        await trio.testing.wait_all_tasks_blocked()
        assert runner.connections.open == 0


@pytest.mark.spec("TRK-113")
async def test_runner_closes_an_idle_keep_alive_after_an_answer() -> None:
    # The keep-alive timer is started from the app's task too (as its answer ends): a
    # cancelled start left a connection idle between requests held for good.
    timeouts = HttpTimeouts(keep_alive=0.2, header=60)
    async with open_runner(Echo(), timeouts=timeouts) as runner:
        await runner.wait_setup()
        for _ in range(10):
            answer = await _exchange(
                _port(runner.url), b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", half_close=False
            )
            assert STATUS.findall(answer) == [b"200"]
