"""Fault tests of the trickle server over real sockets.

A dying publisher, a vanishing subscriber, a subscriber that never reads, and a
server shut down under live streams: none may hang a peer, leak a task, or slow
anyone else. Raw sockets play the misbehaving peers, because httpx cannot be
made to send a broken chunked body or stop reading mid-response on purpose.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import trio.lowlevel

from trio_trickle import ServerConfig, TrickleServerHandle, open_trickle_server


def _count_tasks() -> int:
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())


async def _raw(handle: TrickleServerHandle) -> trio.SocketStream:
    parts = urlsplit(handle.root)
    assert parts.hostname is not None
    assert parts.port is not None
    return await trio.open_tcp_stream(parts.hostname, parts.port)


async def _read_head(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
    return data


async def _collect(client: httpx.AsyncClient, url: str) -> tuple[httpx.Response, bytes]:
    async with client.stream("GET", url) as response:
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    return response, body


async def _chunks(parts: list[bytes], gap: float = 0.0) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
        if gap:
            await trio.sleep(gap)


@pytest.mark.spec("TRK-038")
@pytest.mark.parametrize("death", ["disconnect", "malformed_chunk"])
async def test_publisher_death_mid_segment_ends_subscribers(death: str) -> None:
    async with open_trickle_server(ServerConfig(autocreate=True)) as handle:
        handle.server.create_channel("ch", "video/MP2T")
        result: dict[str, object] = {}
        async with httpx.AsyncClient() as client, trio.open_nursery() as nursery:

            async def subscribe() -> None:
                result["response"], result["body"] = await _collect(client, handle.url + "ch/0")

            nursery.start_soon(subscribe)
            stream = await _raw(handle)
            path = urlsplit(handle.url).path
            await stream.send_all(
                f"POST {path}ch/0 HTTP/1.1\r\nHost: x\r\n"
                "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".encode()
            )
            await trio.sleep(0.2)
            if death == "disconnect":
                await stream.aclose()
            else:
                await stream.send_all(b"zz-not-hex\r\nboom\r\n")
            with trio.fail_after(1.0):  # the spec's bound for subscribers to finish
                while "body" not in result:
                    await trio.sleep(0.01)
            if death != "disconnect":
                await stream.aclose()
        response = result["response"]
        assert isinstance(response, httpx.Response)
        assert response.status_code == 200
        assert result["body"] == b"hello"
        channel = handle.server.core.get("ch")
        segment = channel.segment(0)
        assert segment is not None
        assert segment.closed
        assert channel.next_write == 1


@pytest.mark.spec("TRK-060")
async def test_waiting_subscriber_disconnect_is_released() -> None:
    async with open_trickle_server(ServerConfig(autocreate=True)) as handle:
        handle.server.create_channel("ch", "")
        await trio.sleep(0.05)
        baseline = _count_tasks()
        streams = []
        for _ in range(8):
            stream = await _raw(handle)
            path = urlsplit(handle.url).path
            await stream.send_all(f"GET {path}ch/-1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            streams.append(stream)
        await trio.sleep(0.2)
        assert _count_tasks() > baseline
        for stream in streams:
            await stream.aclose()
        with trio.fail_after(1.0):
            while _count_tasks() > baseline:
                await trio.sleep(0.01)
        assert handle.server._wakers == {}


@pytest.mark.spec("TRK-058", "TRK-059", "TRK-053")
async def test_stalled_subscriber_does_not_slow_anyone() -> None:
    payload = [bytes([i % 251]) * 65536 for i in range(160)]  # 10 MiB
    async with open_trickle_server(ServerConfig(autocreate=True)) as handle:
        handle.server.create_channel("ch", "")
        stalled = await _raw(handle)
        path = urlsplit(handle.url).path
        await stalled.send_all(f"GET {path}ch/0 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        result: dict[str, bytes] = {}
        async with httpx.AsyncClient(timeout=10) as client, trio.open_nursery() as nursery:

            async def fast() -> None:
                _, result["body"] = await _collect(client, handle.url + "ch/0")

            nursery.start_soon(fast)
            await trio.sleep(0.1)
            with trio.fail_after(10):
                posted = await client.post(handle.url + "ch/0", content=_chunks(payload))
            assert posted.status_code == 200
        assert result["body"] == b"".join(payload)
        # The stalled reader got its head and then stopped reading: its socket is full.
        head = await _read_head(stalled)
        assert head.startswith(b"HTTP/1.1 200")
        await stalled.aclose()


@pytest.mark.spec("TRK-077", "TRK-068", "TRK-069", "TRK-070", "TRK-071")
async def test_shutdown_with_live_streams_completes_everyone() -> None:
    results: dict[str, httpx.Response | bytes] = {}
    shutting_down = trio.Event()
    async with httpx.AsyncClient(timeout=10) as client, trio.open_nursery() as nursery:
        with trio.fail_after(5):
            async with open_trickle_server(ServerConfig(autocreate=True)) as handle:
                handle.server.create_channel("ch", "")
                url = handle.url

                async def waiting_get() -> None:
                    results["wait"], _ = await _collect(client, url + "ch/1")

                async def midbody_get() -> None:
                    results["mid"], results["mid_body"] = await _collect(client, url + "ch/0")

                send, receive = trio.open_memory_channel[bytes](1)

                async def body() -> AsyncIterator[bytes]:
                    async with receive:
                        async for part in receive:
                            yield part

                async def streaming_post() -> None:
                    results["post"] = await client.post(url + "ch/0", content=body())

                async def end_body_after_shutdown_starts() -> None:
                    await shutting_down.wait()
                    await trio.sleep(0.2)
                    await send.aclose()

                nursery.start_soon(streaming_post)
                nursery.start_soon(end_body_after_shutdown_starts)
                await send.send(b"partial")
                nursery.start_soon(midbody_get)
                nursery.start_soon(waiting_get)
                preconnect = await _raw(handle)
                path = urlsplit(url).path
                await preconnect.send_all(
                    f"POST {path}ch/1 HTTP/1.1\r\nHost: x\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n".encode()
                )
                await trio.sleep(0.3)
                shutting_down.set()
            pre_head = await _read_head(preconnect)
            await preconnect.aclose()
    wait = results["wait"]
    assert isinstance(wait, httpx.Response)
    assert wait.status_code == 200
    assert wait.headers["Lp-Trickle-Closed"] == "terminated"
    mid = results["mid"]
    assert isinstance(mid, httpx.Response)
    assert mid.status_code == 200
    assert results["mid_body"] == b"partial"
    post = results["post"]
    assert isinstance(post, httpx.Response)
    assert post.status_code == 200
    assert post.headers["Lp-Trickle-Seq"] == "0"
    assert pre_head.startswith(b"HTTP/1.1 200")
    lowered = pre_head.lower()
    assert b"lp-trickle-closed: terminated" in lowered
    assert b"connection: close" in lowered
    assert b"lp-trickle-seq: 1" in lowered


@pytest.mark.spec("TRK-026")
@pytest.mark.parametrize("seq", ["abc", "+1", "-3", "1" * 19])
async def test_a_bad_seq_autocreates_nothing(seq: str) -> None:
    with trio.fail_after(10):
        async with (
            open_trickle_server(ServerConfig(autocreate=True)) as handle,
            httpx.AsyncClient() as client,
        ):
            response = await client.post(handle.url + f"fresh/{seq}", content=b"x")
            assert response.status_code == 400
            assert response.text == "Invalid idx\n"  # as go-livepeer's http.Error writes it
            assert "fresh" not in handle.server.core.channels
