"""The trickle server: a plain ASGI app over the sans-io core, served by hypercorn/trio.

Why plain ASGI and not quart-trio for the data path: every chunk of every
segment crosses this code, and a framework adds routing, request wrappers and
per-chunk awaitables that buy nothing here. The sans-io core already does the
routing and every decision; this module only moves bytes and waits.

Waiting: each channel has one :class:`trio.Event` that is set (and replaced)
whenever the channel's ``version`` moves. Readers of a segment park on it and
re-ask their cursor; the broadcast is O(waiters) per change and allocation-free
for readers, which share the segment's chunk list.
"""

from __future__ import annotations

import functools
import logging
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import hypercorn.config
import hypercorn.trio
import trio
import trio.lowlevel

from ._core_channel import Answer, AppendResult, ChannelCore, PublishTicket, ReadSignal
from ._core_server import (
    MethodNotAllowed,
    Operation,
    ServerConfig,
    TrickleServerCore,
    route_request,
)
from ._errors import InvalidMessage, ProtocolError, SegmentGone
from ._wire_trickle import (
    HEADER_EXPECT_CONTENT,
    HEADER_LATEST,
    HEADER_SEQ,
    PublishRequestMeta,
    parse_seq,
)

__all__ = ["BeforeHook", "TrickleServer", "TrickleServerHandle", "open_trickle_server"]

log = logging.getLogger("trio_trickle.server")

#: ``before_create``/``before_delete`` hook: (channel name, request headers).
#: Raise ProtocolError to refuse with its status; any other exception answers 500.
BeforeHook = Callable[[str, Mapping[str, str]], Awaitable[None]]

ASGIScope = dict[str, Any]
ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]
ASGISend = Callable[[dict[str, Any]], Awaitable[None]]


def _headers_of(scope: ASGIScope) -> dict[str, str]:
    """Request headers as a str dict (lower-case names; last value wins)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _send_answer(send: ASGISend, answer: Answer, *, head_only: bool = False) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    if not answer.streaming:
        headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    if not answer.streaming:
        await send({"type": "http.response.body", "body": b"" if head_only else answer.body})


def _error_answer(error: ProtocolError) -> Answer:
    """The answer for a refused request: Go-style ``<message>\\n`` plain text."""
    headers: list[tuple[str, str]] = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    if isinstance(error, SegmentGone):
        headers += [(HEADER_LATEST, str(error.latest)), (HEADER_SEQ, error.requested)]
    if isinstance(error, MethodNotAllowed):
        headers.append(("Allow", error.allow))
    if error.status == 404:
        headers.append(("Connection", "close"))
    return Answer(status=error.status, headers=tuple(headers), body=f"{error.message}\n".encode())


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
        self._wakers: dict[ChannelCore, trio.Event] = {}
        self._started = False

    # -- change notification -------------------------------------------------

    def _notify(self, channel: ChannelCore) -> None:
        waker = self._wakers.pop(channel, None)
        if waker is not None:
            waker.set()

    async def _wait_change(self, channel: ChannelCore, seen: int) -> None:
        """Return once ``channel.version`` differs from ``seen``."""
        while channel.version == seen:
            waker = self._wakers.get(channel)
            if waker is None:
                waker = self._wakers[channel] = trio.Event()
            try:
                await waker.wait()
            finally:
                # The last waiter to leave (cancelled, disconnected) drops the event.
                if waker.statistics().tasks_waiting == 0 and self._wakers.get(channel) is waker:
                    del self._wakers[channel]

    def _now(self) -> float:
        return trio.current_time()

    def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            self.core.start(self._now())
            feed = self.core.channels.get("_changes")
            if feed is not None:
                self._notify(feed)

    # -- embedding API -------------------------------------------------------

    def create_channel(self, name: str, mime_type: str = "") -> None:
        """Create a channel from inside the application (no hook, no autocreate needed)."""
        self._ensure_started()
        self.core.create(name, mime_type, now=self._now(), force=True)
        self._announce()

    def delete_channel(self, name: str) -> None:
        """Close and remove a channel; its readers see end of stream."""
        channel = self.core.delete(name, now=self._now())
        self._notify(channel)
        self._announce()

    def _announce(self) -> None:
        feed = self.core.channels.get("_changes")
        if feed is not None:
            self._notify(feed)

    def close_all(self) -> None:
        """End every channel now (server shutdown): waiters get end of stream."""
        for channel in self.core.close_all():
            self._notify(channel)

    async def run_sweeper(self) -> None:
        """Close idle channels every ``sweep_interval`` seconds; runs until cancelled."""
        self._ensure_started()
        while True:
            await trio.sleep(self.config.sweep_interval)
            for channel in self.core.sweep(self._now()):
                log.info("idle sweep closed channel %s", channel.name)
                self._notify(channel)
            self._announce()

    # -- ASGI ----------------------------------------------------------------

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self._ensure_started()
        try:
            await self._dispatch(scope, receive, send)
        except ProtocolError as error:
            await _send_answer(send, _error_answer(error))

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
        headers = _headers_of(scope)
        now = self._now()
        op = target.operation
        if op is Operation.CREATE:
            if self.before_create is not None:
                await self._run_hook(self.before_create, target.channel, headers)
            self.core.create(
                target.channel, headers.get(HEADER_EXPECT_CONTENT.lower(), ""), now=now
            )
            self._announce()
            await _send_answer(send, Answer(status=200))
        elif op is Operation.DELETE_CHANNEL:
            if self.before_delete is not None:
                await self._run_hook(self.before_delete, target.channel, headers)
            self.delete_channel(target.channel)
            await _send_answer(send, Answer(status=200))
        elif op is Operation.NEXT:
            channel = self.core.get(target.channel)
            value = str(channel.next_write)
            head = ((HEADER_LATEST, value), ("Content-Type", "text/plain; charset=utf-8"))
            await _send_answer(send, Answer(status=200, headers=head, body=value.encode()))
        elif op is Operation.PUBLISH:
            meta = PublishRequestMeta.from_wire(headers)
            if (
                self.before_create is not None
                and self.config.autocreate
                and target.channel not in self.core.channels
            ):
                # An autocreating POST is a creation too: it passes the same admission.
                await self._run_hook(self.before_create, target.channel, headers)
            channel = self.core.for_publish(target.channel, meta.content_type, now=self._now())
            self._announce()
            assert target.seq is not None
            seq = parse_seq(target.seq, lowest=-1)
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
            self._notify(channel)
            await _send_answer(send, answer)

    async def _run_hook(self, hook: BeforeHook, name: str, headers: Mapping[str, str]) -> None:
        try:
            await hook(name, headers)
        except ProtocolError:
            raise
        except Exception as exc:
            log.exception("trickle hook failed for channel %s", name)
            raise ProtocolError(f"hook failed: {exc}", status=500) from None

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
        self._notify(channel)
        if isinstance(decision, Answer):
            await _send_answer(send, decision)
            return
        ticket = decision
        try:
            answer = await self._read_body(channel, ticket, receive)
        except BaseException:
            # The client vanished (or we are being cancelled): end the segment
            # with what it has so its subscribers finish instead of hanging.
            channel.abort(ticket)
            self._notify(channel)
            raise
        if answer is not None:
            await _send_answer(send, answer)

    async def _read_body(
        self, channel: ChannelCore, ticket: PublishTicket, receive: ASGIReceive
    ) -> Answer | None:
        """Stream the POST body into the segment; None if the client went away."""
        while True:
            if ticket.bytes_written == 0:
                message = await self._receive_unless_detached(channel, ticket, receive)
                if message is None:
                    # Closed under a waiting preconnect: answer at once, body unread.
                    return channel.finish(ticket, now=self._now())
            else:
                message = await receive()
            if message["type"] == "http.disconnect":
                channel.abort(ticket)
                self._notify(channel)
                return None
            result = channel.append(ticket, message.get("body", b""), now=self._now())
            self._notify(channel)
            if result is AppendResult.TOO_LARGE:
                limit = channel.max_segment_bytes
                error = ProtocolError(f"segment larger than {limit} bytes", status=413)
                answer = _error_answer(error)
                return Answer(
                    status=answer.status,
                    headers=(*answer.headers, ("Connection", "close")),
                    body=answer.body,
                )
            if not message.get("more_body", False):
                answer = channel.finish(ticket, now=self._now())
                self._notify(channel)
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
                    await self._wait_change(channel, channel.version)
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
        self._notify(channel)
        async with trio.open_nursery() as nursery:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_disconnect)
            while True:
                seen = channel.version
                event = cursor.next_event()
                if event is ReadSignal.NEED_DATA:
                    await self._wait_change(channel, seen)
                elif event is ReadSignal.END:
                    if head_only:
                        break
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    break
                elif isinstance(event, Answer):
                    await _send_answer(send, event, head_only=head_only)
                    if not event.streaming:
                        break
                    if head_only:  # HEAD: the head is the whole answer
                        await send({"type": "http.response.body", "body": b""})
                        break
                elif not head_only:
                    body = event[0] if len(event) == 1 else b"".join(event)
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            nursery.cancel_scope.cancel()


def _hypercorn_config(host: str, port: int, graceful_timeout: float) -> hypercorn.config.Config:
    config = hypercorn.config.Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("trio_trickle.hypercorn")
    config.graceful_timeout = graceful_timeout
    # Segments are long polls: a waiting GET or preconnected POST may sit idle.
    config.keep_alive_timeout = 600
    config.read_timeout = None
    return config


@asynccontextmanager
async def open_trickle_server(
    config: ServerConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    before_create: BeforeHook | None = None,
    before_delete: BeforeHook | None = None,
    graceful_timeout: float = 2.0,
) -> AsyncIterator[TrickleServerHandle]:
    """Serve a trickle server on ``host:port`` for the duration of the block.

    On exit every channel is closed first (waiting subscribers and preconnected
    publishers get end of stream), then hypercorn shuts down gracefully.
    """
    server = TrickleServer(config, before_create=before_create, before_delete=before_delete)
    shutdown = trio.Event()
    sweeper = trio.CancelScope()

    async def sweep() -> None:
        with sweeper:
            await server.run_sweeper()

    async with trio.open_nursery() as nursery:
        serve = functools.partial(
            hypercorn.trio.serve,
            server,  # type: ignore[arg-type]  # hypercorn types ASGI messages as TypedDicts
            _hypercorn_config(host, port, graceful_timeout),
            shutdown_trigger=shutdown.wait,
        )
        binds: list[str] = await nursery.start(serve)
        nursery.start_soon(sweep)
        try:
            yield TrickleServerHandle(server=server, root=binds[0])
        finally:
            # Channels first, so every waiter completes; then a graceful stop.
            server.close_all()
            sweeper.cancel()
            shutdown.set()


class TrickleServerHandle:
    """A served :class:`TrickleServer` and where to reach it."""

    def __init__(self, *, server: TrickleServer, root: str) -> None:
        self.server = server
        #: ``http://127.0.0.1:PORT`` (no path).
        self.root = root

    @property
    def url(self) -> str:
        """Base URL of the trickle mount, ending in ``/``."""
        return self.root + self.server.config.base_path

    def channel_url(self, name: str) -> str:
        return self.url + name
