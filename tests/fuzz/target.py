"""A server under fuzz, in its own process: ``python -m tests.fuzz.target trickle|live|pipeline``.

Prints one JSON line (``{"url": ..., "trickle": ...}``) once listening, then
serves until its standard input closes, so a test that dies takes it along.
A separate process is the point: the fuzz invariant is that the *process*
survives, which an exception escaping an embedded server would hide behind
the test's own nursery.
"""

from __future__ import annotations

import json
import sys

import httpx
import trio

from trio_trickle import ServerConfig, open_runner, open_trickle_server
from trio_trickle._client.http import ClientTimeouts
from trio_trickle._server.connections import HttpTimeouts

#: Short bounds so a connection the server wrongly keeps shows up as a hang quickly.
TIMEOUTS = HttpTimeouts(keep_alive=2.0, header=1.0)


async def _wait_for_stdin_close() -> None:
    stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
    while await stdin.receive_some(1024):
        pass


async def main(kind: str) -> None:
    # Channels idle for 2 s are swept, so a long poll the fuzz leaves parked (a GET
    # for the next segment, pipelined bytes behind it) ends within the hang bound.
    config = ServerConfig(
        autocreate=True,
        max_buffered_bytes=64 * 1024 * 1024,
        idle_timeout=2.0,
        sweep_interval=0.5,
    )
    async with open_trickle_server(config, timeouts=TIMEOUTS) as trickle:
        if kind == "trickle":
            url = trickle.url
            print(json.dumps({"url": url, "trickle": trickle.url}), flush=True)
            await _wait_for_stdin_close()
            return
        from trio_trickle.examples import Echo, Passthrough

        pipeline = Passthrough() if kind == "live" else Echo()
        # No pooled connections for the sessions: once they stop, every fd the
        # process still holds beyond its baseline is one the servers failed to free.
        client = httpx.AsyncClient(
            limits=httpx.Limits(max_keepalive_connections=0),
            timeout=ClientTimeouts().for_request(),
            trust_env=False,
        )
        options = {"client": client} if kind == "live" else {}
        async with (
            client,
            open_runner(pipeline, capacity=4, timeouts=TIMEOUTS, **options) as runner,
        ):
            await runner.wait_setup()
            print(json.dumps({"url": runner.url, "trickle": trickle.url}), flush=True)
            await _wait_for_stdin_close()


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
