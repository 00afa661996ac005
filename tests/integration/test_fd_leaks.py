"""Connections whose client is gone must release their socket, however the app ends (TRK-112).

Found by the live runner's raw fuzz (tests/integration/test_fuzz_http.py): a
client that pipelines a second request behind one still being answered, then
resets the connection. hypercorn's reader has parked the pipelined bytes
(h11 ``PAUSED``) and waits for the answer to finish before it reads again.
The answer's first send fails on the reset; hypercorn tells the stream it is
closed, the app (quart-trio) hears ``http.disconnect`` and cancels its own
response, so the stream never reports its end and the reader waits forever,
holding the socket, its task and the connection.
"""

from __future__ import annotations

import socket
import struct

import pytest
import trio
import trio.testing

from tests.integration.servers import wait_for
from trio_trickle import open_runner
from trio_trickle._sdk.pipeline import Pipeline


class Gated(Pipeline):
    """Answers ``/predict`` only once the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = trio.Event()
        self.gate = trio.Event()

    async def predict(self, text: str) -> dict[str, str]:
        self.entered.set()
        await self.gate.wait()
        return {"text": text}


def _port(url: str) -> int:
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


async def _reset(stream: trio.SocketStream) -> None:
    """Close with an RST (linger 0): the server's next send on it fails."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


@pytest.mark.spec("TRK-112")
async def test_reset_behind_a_pipelined_request_releases_the_connection() -> None:
    pipeline = Gated()
    async with open_runner(pipeline) as runner:
        await runner.wait_setup()
        body = b'{"text":"hi"}'
        first = (
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        pipelined = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        stream = await trio.open_tcp_stream("127.0.0.1", _port(runner.url))
        await stream.send_all(first + pipelined)
        with trio.fail_after(5):
            await pipeline.entered.wait()
        # The reader has parked the pipelined request until the answer is done.
        await trio.testing.wait_all_tasks_blocked()
        assert runner.connections.open == 1
        await _reset(stream)
        pipeline.gate.set()  # the answer now goes to a reset connection
        await wait_for(lambda: runner.connections.open == 0, within=5)
        assert runner.connections.failed == 0
