"""Serving an ASGI app on hypercorn's HTTP/1.1 protocol, one contained connection at a time.

Both servers of the project (the trickle server and the runner) are served
here instead of through ``hypercorn.trio.serve``, for three reasons, each
found by sending raw bytes at a running server:

1. **A dying client could end the process** (hypercorn#203, open). A request
   whose client half-closes or dies early makes hypercorn's h11 protocol queue
   its own error reply (400) from the task reading the socket while the app's
   task, having finished its response, closes the connection.
   ``TCPServer._close`` calls ``send_eof`` without taking the connection's
   send lock, and trio's ``SocketStream.send_eof`` holds the stream's send
   conflict detector across a checkpoint; the reader's ``send_all`` in that
   window raises ``trio.BusyResourceError``, which ``protocol_send`` (it
   catches only Broken/Closed) and ``TCPServer.run`` (only ``OSError``) let
   out of the connection's task, through ``serve_listeners`` and out of the
   worker. :class:`_ContainedTCPServer` fixes the race where it happens
   (``send_eof`` under the send lock; a busy stream counts as closed), and
   keeps a containment boundary per connection for anything else: a
   connection's failure ends that connection, is logged once and counted.
2. **Closed connections were held for the whole keep-alive timeout**: at the
   peer's EOF the protocol is told, but the idle timer (a task of the
   connection's nursery) keeps the socket and its task until it fires. Here an
   EOF between requests ends the connection at once.
3. **Half-sent request heads were held just as long**: a head must now be
   complete within ``header_timeout`` of the connection's start or of its
   first byte after a response.
4. **A large head arriving in one read was accepted**: h11's
   ``max_incomplete_event_size`` bounds only a head still incomplete, so a
   20 KiB head sent at once reached the app. :func:`_bounded_heads` answers
   431 for a head over ``config.h11_max_incomplete_size`` whatever its arrival.
5. **A reset behind a pipelined request held the socket for good**: with a
   request's bytes pipelined behind one being answered, hypercorn's reader
   parks them (h11 ``PAUSED``) and waits for the answer to end before it reads
   again. If the client resets meanwhile, the answer's send fails, the stream
   is told it is closed, and an app that then cancels its own answer (quart-trio
   does, on ``http.disconnect``) never reports the stream's end: the reader
   waited forever, holding the socket, its task and the connection. Here a
   failed send also ends the reader.
6. **An answer's end could leave the connection neither closed nor timed**:
   hypercorn runs the connection's work that follows an answer (close it, or
   start the keep-alive timer) in the app's task, from inside the app's last
   ``send``, just after handing the app its ``http.disconnect``. quart-trio
   cancels its own request on that message, so the next checkpoint of that
   work raised ``Cancelled``: the close stopped in ``send_eof`` before
   ``aclose`` (an answer given before the request's body had all arrived left
   the socket open with no timer, and bytes pipelined behind parked the reader
   for good), and the keep-alive timer was often never started (an idle
   connection held until the client left). Here that work is shielded.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from math import inf
from typing import Any

import attrs
import h11
import hypercorn.config
import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import repr_socket_addr

__all__ = ["ConnectionStats", "HttpTimeouts", "http_config", "serve_asgi"]

log = logging.getLogger("trio_trickle.http")

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

#: Largest request head accepted (bytes): hypercorn's default; go-livepeer's clients send < 1 KiB.
MAX_HEAD_BYTES = 16 * 1024


def http_config(host: str, port: int, *, graceful_timeout: float) -> hypercorn.config.Config:
    """The hypercorn settings both servers run with (``serve_asgi`` adds the timeouts)."""
    config = hypercorn.config.Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("trio_trickle.hypercorn")
    config.graceful_timeout = graceful_timeout
    # Long polls (a parked GET, a preconnected POST, a streaming predict, a stop
    # waiting on teardown) may be quiet for minutes: no read timeout. Idle and
    # half-sent connections are bounded by HttpTimeouts instead.
    config.read_timeout = None
    config.h11_max_incomplete_size = MAX_HEAD_BYTES
    # Go's server sends no Server header either; h11 validates every header of
    # every head, and this one cost 2-8 us per response head here.
    config.include_server_header = False
    return config


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{attribute.name} must be a positive number of seconds")


@attrs.frozen(kw_only=True)
class HttpTimeouts:
    """How long a connection may sit without progress (seconds).

    ``keep_alive`` outlasts the idle expiry of the usual clients (httpx 5 s,
    aiohttp 15 s, ours 15 s), so they close an idle connection before the server
    does and never send a request into a closing one. A long poll (a parked GET,
    a preconnected POST) is not idle: neither bound applies while a request is
    being answered.
    """

    #: Idle between requests, before the server closes the connection.
    keep_alive: float = attrs.field(default=20.0, validator=_positive)
    #: From a connection's start (or a request's first byte) to its complete head.
    header: float = attrs.field(default=5.0, validator=_positive)


@attrs.define(eq=False)
class ConnectionStats:
    """Counters a server keeps about its connections (for tests, logs and metrics)."""

    opened: int = 0
    closed: int = 0
    #: Connections ended by an error of the HTTP layer (contained: logged once, counted).
    failed: int = 0
    #: Connections closed because a request head did not complete in time.
    header_timeouts: int = 0

    @property
    def open(self) -> int:
        return self.opened - self.closed


class _ContainedTCPServer(TCPServer):
    """hypercorn's trio connection with the fixes described in the module docstring."""

    def __init__(
        self, *args: Any, stats: ConnectionStats, timeouts: HttpTimeouts, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._stats = stats
        self._timeouts = timeouts
        #: The idle timer currently bounds an unfinished request head.
        self._head_timer = False
        #: Around the reader: cancelled once nothing more can be sent (point 5 above).
        self._reading = trio.CancelScope()

    async def run(self) -> None:
        self._stats.opened += 1
        try:
            await super().run()
        except BaseException as exc:  # the per-connection boundary (hypercorn#203)
            escaping = self._contain(exc)
            if escaping is not None:
                raise escaping from None
        finally:
            self._stats.closed += 1

    def _contain(self, exc: BaseException) -> BaseException | None:
        """Log and count ``exc``; return what must still propagate (cancellation only)."""
        if isinstance(exc, trio.Cancelled):
            return exc
        rest: BaseException | None = exc
        cancelled: BaseException | None = None
        if isinstance(exc, BaseExceptionGroup):
            cancelled, rest = exc.split(trio.Cancelled)
        if isinstance(rest, KeyboardInterrupt | SystemExit):
            return exc
        if rest is not None:
            self._stats.failed += 1
            log.info(
                "connection ended by %s in the HTTP layer (contained)",
                type(rest).__name__,
                exc_info=rest if log.isEnabledFor(logging.DEBUG) else None,
            )
        return cancelled

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated):
            self._head_timer = False
            # Sent from the app's task as its answer ends (hypercorn's _maybe_recycle),
            # after the app was handed http.disconnect: an app that cancels itself on it
            # (quart-trio) must not cancel the start of the keep-alive timer (point 6).
            with trio.CancelScope(shield=True):
                await super().protocol_send(event)
            return
        if not isinstance(event, RawData):
            await super().protocol_send(event)
            return
        async with self.send_lock:
            try:
                with trio.CancelScope(shield=True):
                    await self.stream.send_all(event.data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                # Busy: another task is half-closing this stream; the bytes cannot go.
                await self.protocol.handle(Closed())
                # No answer can reach the client, so nothing more is worth reading, and
                # the reader may be parked on a pipelined request (point 5 above). Only
                # now: the stream has been told (the app has its http.disconnect).
                self._reading.cancel()

    async def _close(self) -> None:
        # hypercorn calls this from whichever task decides the connection is over, the
        # app's own among them (an answer that cannot be followed): shielded, so an app
        # cancelling itself cannot stop it between send_eof and aclose (point 6).
        with trio.CancelScope(shield=True):
            await self._close_now()

    async def _close_now(self) -> None:
        # Half-close only while no other task is sending: send_eof must not race a
        # send_all (the crash of the module docstring). Skipping it when the lock is
        # busy costs only the courtesy FIN before the close below.
        try:
            self.send_lock.acquire_nowait()
        except trio.WouldBlock:
            pass
        else:
            try:
                await self.stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                pass
            except AttributeError:  # an SSL stream has no half-close
                pass
            finally:
                self.send_lock.release()
        await self.stream.aclose()

    async def _read_data(self) -> None:
        await self.idle_task.restart(self._task_group, self._header_timeout)
        self._head_timer = True
        with self._reading:
            await self._read_until_closed()
        await self.protocol.handle(Closed())
        # The peer is gone: no request can follow, so nothing is worth waiting for
        # between requests. A request still being answered keeps the connection.
        await self.idle_task.stop()

    async def _read_until_closed(self) -> None:
        while True:
            try:
                with trio.fail_after(self.config.read_timeout or inf):
                    data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
                return
            # May wait (h11 PAUSED) until the request being answered ends.
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                return
            if not self._head_timer and self._head_pending():
                self._head_timer = True
                await self.idle_task.restart(self._task_group, self._header_timeout)

    def _head_pending(self) -> bool:
        """Bytes of a request head that has not completed are buffered."""
        connection = getattr(self.protocol.protocol, "connection", None)
        return (
            isinstance(connection, h11.Connection)
            and connection.their_state is h11.IDLE
            and bool(connection.trailing_data[0])
        )

    async def _idle_timeout(self) -> None:
        await self._close_after(self._timeouts.keep_alive)

    async def _header_timeout(self) -> None:
        if await self._close_after(self._timeouts.header):
            self._stats.header_timeouts += 1
            log.debug("closed a connection whose request head did not complete in time")

    async def _close_after(self, seconds: float) -> bool:
        """Close the connection after ``seconds`` (at once at shutdown); True if it timed out."""
        with trio.move_on_after(seconds) as waited:
            await self.context.terminated.wait()
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()
        return waited.cancelled_caught


def _head_size(scope: dict[str, Any]) -> int:
    """Bytes of a request head as sent: request line and header lines, CRLFs included."""
    line = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + 16
    return line + sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))


def _refusal(scope: dict[str, Any], limit: int) -> tuple[int, bytes] | None:
    """The status and body a request is refused with before the app, or None to pass it."""
    if _head_size(scope) > limit:
        return 431, b"request header fields too large\n"
    if scope["type"] == "websocket":
        # Neither server speaks WebSocket: hypercorn would answer an unaccepted
        # upgrade with an empty 500 (TRK-115).
        return 400, b"websocket upgrade is not supported by this server\n"
    if not scope.get("path"):
        # "GET ?x HTTP/1.1": h11 accepts it, quart indexes path[0] and answers 500.
        return 400, b"invalid request target\n"
    return None


async def refuse(scope: dict[str, Any], receive: Any, send: Any, status: int, body: bytes) -> None:
    """Answer an HTTP or WebSocket-upgrade request with plain text, then close."""
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    prefix = "http"
    if scope["type"] == "websocket":
        prefix = "websocket.http"  # the ASGI denial response
        if (await receive())["type"] != "websocket.connect":
            return
    await send({"type": f"{prefix}.response.start", "status": status, "headers": headers})
    await send({"type": f"{prefix}.response.body", "body": body})


def _bounded_heads(app: ASGIApp, limit: int) -> ASGIApp:
    """``app``, but a head over ``limit`` bytes (431) or with no path (400) never reaches it."""

    async def bounded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        refusal = None
        if scope["type"] in ("http", "websocket"):
            refusal = _refusal(scope, limit)
        if refusal is None:
            await app(scope, receive, send)
        else:
            await refuse(scope, receive, send, *refusal)

    return bounded


async def serve_asgi(
    app: ASGIApp,
    config: hypercorn.config.Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    timeouts: HttpTimeouts | None = None,
    stats: ConnectionStats | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``config.bind`` (plain HTTP) until ``shutdown_trigger`` returns.

    Starts with the ASGI lifespan startup, reports the bound URLs through
    ``task_status``, and stops in hypercorn's order: stop accepting, let
    requests in flight finish within ``config.graceful_timeout``, then the
    lifespan shutdown.
    """
    timeouts = timeouts or HttpTimeouts()
    stats = stats if stats is not None else ConnectionStats()
    app = _bounded_heads(app, config.h11_max_incomplete_size)
    wrapped = ASGIWrapper(app)  # type: ignore[arg-type]  # hypercorn types ASGI messages as TypedDicts
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        sockets = config.create_sockets()
        listeners = []
        binds = []
        for sock in sockets.insecure_sockets:
            sock.listen(config.backlog)
            listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
            binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")

        def connection(stream: trio.SocketStream) -> Awaitable[None]:
            server = _ContainedTCPServer(
                wrapped,
                config,
                context,
                ConnectionState(lifespan_state.copy()),
                stream,
                stats=stats,
                timeouts=timeouts,
            )
            return server.run()

        async with trio.open_nursery() as connections:
            try:
                async with trio.open_nursery() as accepting:
                    # Accepting before we report ready: the caller sees every task we run.
                    await accepting.start(
                        functools.partial(
                            trio.serve_listeners, connection, listeners, handler_nursery=connections
                        )
                    )
                    task_status.started(binds)
                    await shutdown_trigger()
                    accepting.cancel_scope.cancel()
            finally:
                await context.terminated.set()
                connections.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
