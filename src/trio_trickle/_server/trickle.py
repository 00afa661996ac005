"""The trickle server: a plain ASGI app over the sans-io core, served by hypercorn/trio.

Why plain ASGI and not quart-trio for the data path: every chunk of every
segment crosses this code, and a framework adds routing, request wrappers and
per-chunk awaitables that buy nothing here. Measured on the 2-core benchmark
machine: the same minimal fan-out written as a quart-trio app used 7-18% more
server CPU than as a bare ASGI app for the same relay and fan-out bytes
(hypercorn's send path dominates both). The sans-io core already does the
routing and every decision; this module only moves bytes and waits, and owns
the exact statuses, headers and wake order that the spec and latency need.

How tasks wait and are woken (parking, the wake relay) is :mod:`.wake`; how an
``Answer`` becomes ASGI messages is :mod:`.answers`.
"""

from __future__ import annotations

import functools
import logging
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from .._core.channel import Answer, AppendResult, ChannelCore, PublishTicket, ReadSignal
from .._core.server import (
    Operation,
    ServerConfig,
    TrickleServerCore,
    route_request,
)
from .._errors import InvalidMessage, ProtocolError
from .._wire.trickle import (
    HEADER_EXPECT_CONTENT,
    HEADER_LATEST,
    PublishRequestMeta,
    parse_seq,
)
from .answers import ASGIReceive, ASGIScope, ASGISend, error_answer, headers_of, send_answer
from .connections import ConnectionStats, HttpTimeouts, http_config, refuse, serve_asgi
from .gc import freeze_gc_for_serving
from .wake import Wakers, notify, park

__all__ = ["BeforeHook", "TrickleServer", "TrickleServerHandle", "open_trickle_server"]

log = logging.getLogger("trio_trickle.server")

#: ``before_create``/``before_delete`` hook: (channel name, request headers).
#: Raise ProtocolError to refuse with its status; any other exception answers 500.
BeforeHook = Callable[[str, Mapping[str, str]], Awaitable[None]]


class TrickleServer:
    """A trickle server: an ASGI callable plus its background sweeper.

    Embed it with :func:`open_trickle_server` (serves on a port) or mount the
    ASGI callable yourself and run :meth:`run_sweeper` in a nursery you own.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        before_create: BeforeHook | None = None,
        before_delete: BeforeHook | None = None,
    ) -> None:
        self.config = config or ServerConfig()
        self.core = TrickleServerCore(config=self.config)
        self.before_create = before_create
        self.before_delete = before_delete
        #: Parked tasks by channel, then by what they watch; empty when nobody waits.
        self._wakers: Wakers = {}
        self._started = False

    # -- clock and start -----------------------------------------------------

    def _now(self) -> float:
        return trio.current_time()

    def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            self.core.start(self._now())
            feed = self.core.channels.get("_changes")
            if feed is not None:
                notify(self._wakers, feed)

    # -- embedding API -------------------------------------------------------

    def create_channel(self, name: str, mime_type: str = "") -> None:
        """Create a channel from inside the application (no hook, no autocreate needed)."""
        self._ensure_started()
        self.core.create(name, mime_type, now=self._now(), force=True)
        self._announce()

    def delete_channel(self, name: str) -> None:
        """Close and remove a channel; its readers see end of stream."""
        channel = self.core.delete(name, now=self._now())
        notify(self._wakers, channel)
        self._announce()

    def _announce(self) -> None:
        feed = self.core.channels.get("_changes")
        if feed is not None:
            notify(self._wakers, feed)

    def close_all(self) -> None:
        """End every channel now (server shutdown): waiters get end of stream."""
        for channel in self.core.close_all():
            notify(self._wakers, channel)

    async def run_sweeper(self) -> None:
        """Close idle channels every ``sweep_interval`` seconds; runs until cancelled."""
        self._ensure_started()
        while True:
            await trio.sleep(self.config.sweep_interval)
            for channel in self.core.sweep(self._now()):
                log.info("idle sweep closed channel %s", channel.name)
                notify(self._wakers, channel)
            self._announce()

    # -- ASGI ----------------------------------------------------------------

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            # serve_asgi refuses these first; this answers when mounted elsewhere (TRK-115).
            body = b"websocket upgrade is not supported by a trickle server\n"
            await refuse(scope, receive, send, 400, body)
            return
        if scope["type"] != "http":
            return
        self._ensure_started()
        try:
            await self._dispatch(scope, receive, send)
        except ProtocolError as error:
            await send_answer(send, error_answer(error))

    async def _lifespan(self, receive: ASGIReceive, send: ASGISend) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close_all()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _dispatch(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        # Route on the raw path, decoding each segment on its own: an escaped
        # "/" (%2F) inside a channel name must not become a separator (TRK-002).
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        path = raw.decode("latin-1").split("?", 1)[0]
        base = self.config.base_path
        if not path.startswith(base):
            raise ProtocolError("404 page not found", status=404)
        parts = [urllib.parse.unquote(part) for part in path[len(base) :].split("/")]
        if any("/" in part for part in parts):
            raise InvalidMessage("invalid channel name: contains '/'")
        target = route_request(scope["method"], "/".join(parts))
        headers = headers_of(scope)
        now = self._now()
        op = target.operation
        if op is Operation.CREATE:
            if self.before_create is not None:
                await self._run_hook(self.before_create, target.channel, headers)
            self.core.create(
                target.channel, headers.get(HEADER_EXPECT_CONTENT.lower(), ""), now=now
            )
            self._announce()
            await send_answer(send, Answer(status=200))
        elif op is Operation.DELETE_CHANNEL:
            if self.before_delete is not None:
                await self._run_hook(self.before_delete, target.channel, headers)
            self.delete_channel(target.channel)
            await send_answer(send, Answer(status=200))
        elif op is Operation.NEXT:
            channel = self.core.get(target.channel)
            value = str(channel.next_write)
            head = ((HEADER_LATEST, value), ("Content-Type", "text/plain; charset=utf-8"))
            await send_answer(send, Answer(status=200, headers=head, body=value.encode()))
        elif op is Operation.PUBLISH:
            meta = PublishRequestMeta.from_wire(headers)
            assert target.seq is not None
            # A bad seq is refused before anything happens (no channel autocreated).
            seq = parse_seq(target.seq, lowest=-1)
            if (
                self.before_create is not None
                and self.config.autocreate
                and target.channel not in self.core.channels
            ):
                # An autocreating POST is a creation too: it passes the same admission.
                await self._run_hook(self.before_create, target.channel, headers)
            channel = self.core.for_publish(target.channel, meta.content_type, now=self._now())
            self._announce()
            await self._publish(channel, seq, meta, receive, send)
        elif op is Operation.SUBSCRIBE:
            channel = self.core.get(target.channel)
            assert target.seq is not None
            seq = parse_seq(target.seq, lowest=-2)
            await self._subscribe(channel, seq, receive, send, head_only=scope["method"] == "HEAD")
        else:
            channel = self.core.get(target.channel)
            assert target.seq is not None
            answer = channel.close_segment(parse_seq(target.seq, lowest=0))
            notify(self._wakers, channel)
            await send_answer(send, answer)

    async def _run_hook(self, hook: BeforeHook, name: str, headers: Mapping[str, str]) -> None:
        try:
            await hook(name, headers)
        except ProtocolError:
            raise
        except Exception:
            log.exception("trickle hook failed for channel %s", name)
            # No exception text in the body: it may name internals or secrets (TRK-117).
            raise ProtocolError("internal error", status=500) from None

    # -- publishing ----------------------------------------------------------

    async def _publish(
        self,
        channel: ChannelCore,
        seq: int,
        meta: PublishRequestMeta,
        receive: ASGIReceive,
        send: ASGISend,
    ) -> None:
        decision = channel.begin_publish(seq, reset=meta.reset, now=self._now())
        notify(self._wakers, channel)  # a refused POST (409) changed nothing: no one to wake
        if isinstance(decision, Answer):
            await send_answer(send, decision)
            return
        ticket = decision
        try:
            answer = await self._read_body(channel, ticket, receive)
        except BaseException:
            # The client vanished (or we are being cancelled): end the segment
            # with what it has so its subscribers finish instead of hanging.
            channel.abort(ticket)
            notify(self._wakers, channel)
            raise
        if answer is not None:
            await send_answer(send, answer)

    async def _read_body(
        self, channel: ChannelCore, ticket: PublishTicket, receive: ASGIReceive
    ) -> Answer | None:
        """Stream the POST body into the segment; None if the client went away."""
        while True:
            if ticket.bytes_written == 0:
                message = await self._receive_unless_detached(channel, ticket, receive)
                if message is None:
                    # Closed under a waiting preconnect: answer at once, body unread.
                    answer = channel.finish(ticket, now=self._now())
                    notify(self._wakers, channel)
                    return answer
            else:
                message = await receive()
            if message["type"] == "http.disconnect":
                channel.abort(ticket)
                notify(self._wakers, channel)
                return None
            result = channel.append(ticket, message.get("body", b""), now=self._now())
            notify(self._wakers, channel)
            if result is AppendResult.TOO_LARGE or result is AppendResult.OVER_BUDGET:
                if result is AppendResult.TOO_LARGE:
                    limit = channel.max_segment_bytes
                    error = ProtocolError(f"segment larger than {limit} bytes", status=413)
                else:  # TRK-116
                    error = ProtocolError("server buffers are full", status=503)
                answer = error_answer(error)
                return Answer(
                    status=answer.status,
                    headers=(*answer.headers, ("Connection", "close")),
                    body=answer.body,
                )
            if not message.get("more_body", False):
                answer = channel.finish(ticket, now=self._now())
                notify(self._wakers, channel)
                return answer

    async def _receive_unless_detached(
        self, channel: ChannelCore, ticket: PublishTicket, receive: ASGIReceive
    ) -> dict[str, Any] | None:
        """Wait for the next body message, or None once the segment is closed under us."""
        result: dict[str, Any] | None = None
        async with trio.open_nursery() as nursery:

            async def get_message() -> None:
                nonlocal result
                result = await receive()
                nursery.cancel_scope.cancel()

            async def watch_detach() -> None:
                while ticket.attached:
                    await park(self._wakers, channel, ticket)
                nursery.cancel_scope.cancel()

            nursery.start_soon(get_message)
            nursery.start_soon(watch_detach)
        return result

    # -- subscribing ---------------------------------------------------------

    async def _subscribe(
        self,
        channel: ChannelCore,
        seq: int,
        receive: ASGIReceive,
        send: ASGISend,
        *,
        head_only: bool,
    ) -> None:
        cursor = channel.begin_read(seq)
        notify(self._wakers, channel)
        async with trio.open_nursery() as nursery:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_disconnect)
            while True:
                event = cursor.next_event()
                if event is ReadSignal.NEED_DATA:
                    await park(self._wakers, channel, cursor.segment)
                elif event is ReadSignal.END:
                    if head_only:
                        break
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    break
                elif isinstance(event, Answer):
                    await send_answer(send, event, head_only=head_only)
                    if not event.streaming:
                        break
                    if head_only:  # HEAD: the head is the whole answer
                        await send({"type": "http.response.body", "body": b""})
                        break
                elif not head_only:
                    body = event[0] if len(event) == 1 else b"".join(event)
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_trickle_server(
    config: ServerConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    before_create: BeforeHook | None = None,
    before_delete: BeforeHook | None = None,
    graceful_timeout: float = 2.0,
    timeouts: HttpTimeouts | None = None,
    freeze_gc: bool = False,
) -> AsyncIterator[TrickleServerHandle]:
    """Serve a trickle server on ``host:port`` for the duration of the block.

    On exit every channel is closed first (waiting subscribers and preconnected
    publishers get end of stream), then hypercorn shuts down gracefully.

    ``freeze_gc`` is for a process that only serves (the command line); see
    :func:`~trio_trickle._server.gc.freeze_gc_for_serving`. It is process-wide, hence off by
    default for embedders and tests. ``timeouts`` bounds idle and half-sent connections.
    """
    server = TrickleServer(config, before_create=before_create, before_delete=before_delete)
    shutdown = trio.Event()
    sweeper = trio.CancelScope()

    async def sweep() -> None:
        with sweeper:
            await server.run_sweeper()

    stats = ConnectionStats()
    async with trio.open_nursery() as nursery:
        serve = functools.partial(
            serve_asgi,
            server,
            http_config(host, port, graceful_timeout=graceful_timeout),
            shutdown_trigger=shutdown.wait,
            timeouts=timeouts,
            stats=stats,
        )
        binds: list[str] = await nursery.start(serve)
        if freeze_gc:
            freeze_gc_for_serving()
        nursery.start_soon(sweep)
        try:
            yield TrickleServerHandle(server=server, root=binds[0], connections=stats)
        finally:
            # Channels first, so every waiter completes; then a graceful stop.
            server.close_all()
            sweeper.cancel()
            shutdown.set()


class TrickleServerHandle:
    """A served :class:`TrickleServer` and where to reach it."""

    def __init__(self, *, server: TrickleServer, root: str, connections: ConnectionStats) -> None:
        self.server = server
        #: Counters of the HTTP connections served (opened, closed, failed, timed out).
        self.connections = connections
        #: ``http://127.0.0.1:PORT`` (no path).
        self.root = root

    @property
    def url(self) -> str:
        """Base URL of the trickle mount, ending in ``/``."""
        return self.root + self.server.config.base_path

    def channel_url(self, name: str) -> str:
        return self.url + name
