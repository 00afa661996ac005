"""Real trickle servers for integration tests, plus the probes tests assert with.

``open_test_server`` serves a :class:`~trio_trickle.TrickleServer` as the servers do
(``serve_asgi``) on 127.0.0.1:0 behind a thin ASGI wrapper that records every request (method,
path, headers, status, start/end times), counts requests still being handled
(a GET or POST the server has not released), and can answer chosen requests
itself (an old server without ``/next``, a 5xx, a 470 without headers). The
trickle server itself is untouched: what it answers is what it decides.

``TcpForwarder`` sits between a client and the server to break connections the
way networks do (refuse, cut a stream after N bytes, swallow bytes).

``trickle_server`` is a function-scoped pytest-trio fixture over
``open_test_server()`` for other test modules.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import hypercorn.config
import pytest
import trio

from trio_trickle._core.server import ServerConfig
from trio_trickle._server.connections import HttpTimeouts, serve_asgi
from trio_trickle._server.trickle import TrickleServer

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
#: (method, path below the base) -> None to let the server answer, or (status, headers, body).
Override = Callable[[str, str], tuple[int, list[tuple[str, str]], bytes] | None]


@attrs.define
class Request:
    method: str
    #: Path below the server's base path, e.g. ``ch/3`` or ``ch/next``.
    path: str
    headers: dict[str, str]
    started: float
    #: The client's port: requests on one connection share it.
    client_port: int | None = None
    ended: float | None = None
    status: int | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class ServedTrickle:
    """A running test server: the trickle server, its URL and what it saw."""

    def __init__(self, server: TrickleServer, root: str) -> None:
        self.server = server
        self.root = root
        self.requests: list[Request] = []
        self.override: Override | None = None
        #: The nursery running hypercorn (its tasks are the server's).
        self.nursery: trio.Nursery | None = None
        self._changed = trio.Event()

    @property
    def url(self) -> str:
        return self.root + self.server.config.base_path

    def channel_url(self, name: str) -> str:
        return self.url + name

    def create(self, name: str, mime_type: str = "application/octet-stream") -> str:
        self.server.create_channel(name, mime_type)
        return self.channel_url(name)

    def seen(self, method: str | None = None, path: str | None = None) -> list[Request]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (path is None or r.path == path)
        ]

    def in_flight(self, method: str | None = None, path: str | None = None) -> int:
        return sum(1 for r in self.seen(method, path) if r.ended is None)

    def _bump(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(self, predicate: Callable[[], bool], within: float = 1.0) -> None:
        """Wait until ``predicate()`` holds (re-checked on every request change and 10 ms)."""
        with trio.fail_after(within):
            while not predicate():
                with trio.move_on_after(0.01):
                    await self._changed.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.server(scope, receive, send)
            return
        base = self.server.config.base_path
        path: str = scope["path"]
        record = Request(
            method=scope["method"],
            path=path[len(base) :] if path.startswith(base) else path,
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            started=trio.current_time(),
            client_port=(scope.get("client") or (None, None))[1],
        )
        self.requests.append(record)
        self._bump()

        async def watched_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        try:
            answer = self.override(record.method, record.path) if self.override else None
            if answer is None:
                await self.server(scope, receive, watched_send)
            else:
                await _answer(receive, watched_send, *answer)
        finally:
            record.ended = trio.current_time()
            self._bump()


async def _answer(
    receive: Receive, send: Send, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    """Answer after reading the whole request body (no early answers, no races)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            break
    raw = [(k.encode(), v.encode()) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def reject_next(status: int) -> Override:
    """An old server: ``GET {ch}/next`` answers ``status`` (400/404/405)."""

    def override(method: str, path: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
        if method == "GET" and path.endswith("/next"):
            return status, [("Content-Type", "text/plain")], b"no such route\n"
        return None

    return override


@asynccontextmanager
async def open_test_server(config: ServerConfig | None = None) -> AsyncIterator[ServedTrickle]:
    """Serve a trickle server on 127.0.0.1:0 for the block; everything ends on exit."""
    server = TrickleServer(config)
    hconfig = hypercorn.config.Config()
    hconfig.bind = ["127.0.0.1:0"]
    hconfig.accesslog = None
    hconfig.errorlog = logging.getLogger("tests.hypercorn")
    hconfig.graceful_timeout = 1.0
    hconfig.read_timeout = None
    shutdown = trio.Event()
    served = ServedTrickle(server, "")
    async with trio.open_nursery() as nursery:
        served.nursery = nursery
        binds: list[str] = await nursery.start(
            lambda task_status: serve_asgi(
                served,
                hconfig,
                shutdown_trigger=shutdown.wait,
                # Long keep-alive: tests count the connections a client opens.
                timeouts=HttpTimeouts(keep_alive=600),
                task_status=task_status,
            )
        )
        served.root = binds[0]
        try:
            yield served
        finally:
            server.close_all()
            shutdown.set()


@pytest.fixture
async def trickle_server() -> AsyncIterator[ServedTrickle]:
    """A fresh served trickle server (function scope, as pytest-trio requires)."""
    async with open_test_server() as served:
        yield served


# -- client-side probes --------------------------------------------------------


def count_tasks(exclude: trio.Nursery | None = None) -> int:
    """Every task in this trio run (for "no task left behind" checks).

    ``exclude``: a nursery whose tasks are not counted (a server's, whose
    per-connection tasks live on their own schedule).
    """
    stack = [trio.lowlevel.current_root_task()]
    total = 0
    while stack:
        task = stack.pop()
        total += 1
        for nursery in task.child_nurseries:
            if nursery is not exclude:
                stack.extend(nursery.child_tasks)
    return total


def active_connections(client: httpx.AsyncClient) -> int:
    """Connections of ``client`` carrying a request right now (not idle, not closed)."""
    pool = client._transport._pool  # type: ignore[attr-defined]
    return sum(1 for c in pool.connections if not (c.is_idle() or c.is_closed()))


async def wait_for(predicate: Callable[[], bool], within: float = 1.0) -> None:
    """Poll ``predicate()`` every 5 ms until it holds; TooSlowError after ``within`` s."""
    with trio.fail_after(within):
        while not predicate():
            await trio.sleep(0.005)


# -- a TCP forwarder that breaks things ------------------------------------------------


class TcpForwarder:
    """Forwards 127.0.0.1:port to a target port, misbehaving on request.

    The first connection whose request starts with ``victim`` (e.g.
    ``b"POST /ai/trickle/ch/0 "``) is closed once ``cut_upstream_after``
    client->server or ``cut_downstream_after`` server->client bytes went through.
    """

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target_host = host.removeprefix("http://")
        self.target_port = int(port)
        self.port = 0
        self.connections = 0
        self.victim = b""
        self.cut_upstream_after: int | None = None
        self.cut_downstream_after: int | None = None
        self.cuts = 0

    def url_for(self, url: str) -> str:
        return url.replace(f":{self.target_port}/", f":{self.port}/", 1)

    async def reserve_port(self) -> None:
        """Pick a free port without listening on it yet (connections are refused)."""
        sock = trio.socket.socket()
        await sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.connections += 1
        async with client, trio.open_nursery() as nursery:
            try:
                first = await client.receive_some(65536)
            except trio.BrokenResourceError:
                return
            if not first:
                return
            victim = self.cuts == 0 and first.startswith(self.victim)
            if victim:
                self.cuts += 1
            upstream = await trio.open_tcp_stream(self.target_host, self.target_port)
            async with upstream:
                up_cut = self.cut_upstream_after if victim else None
                down_cut = self.cut_downstream_after if victim else None
                budget = math.inf if up_cut is None else up_cut
                if len(first) >= budget:
                    await upstream.send_all(first[: int(budget)])
                    return
                await upstream.send_all(first)
                if up_cut is not None:
                    up_cut -= len(first)
                nursery.start_soon(self._pump, client, upstream, up_cut, nursery)
                nursery.start_soon(self._pump, upstream, client, down_cut, nursery)
                await trio.sleep_forever()

    async def _pump(
        self,
        source: trio.SocketStream,
        sink: trio.SocketStream,
        cut_after: int | None,
        nursery: trio.Nursery,
    ) -> None:
        budget = math.inf if cut_after is None else cut_after
        try:
            while True:
                data = await source.receive_some(65536)
                if not data:
                    break
                if len(data) >= budget:
                    await sink.send_all(data[: int(budget)])
                    break
                budget -= len(data)
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        nursery.cancel_scope.cancel()


def client_tasks() -> list[str]:
    """Names of live tasks running trio-trickle client code (background tasks)."""
    stack = [trio.lowlevel.current_root_task()]
    names = []
    while stack:
        task = stack.pop()
        frame = getattr(task.coro, "cr_frame", None)
        if frame is not None and "/trio_trickle/_client_" in frame.f_code.co_filename:
            names.append(task.name)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return names
