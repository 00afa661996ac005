"""A gateway's live session on a live runner: discover, reserve, stream, swap, stop.

:func:`open_live_session` is the flow of python gateway PR #23 on the
live-runner control plane (spec/live-runner.md): ``GET /discovery``, keep the
runners that serve the app with room (and the GPU asked for), reserve them one
at a time (LR-067; 503/409/404/402 move on to the next), then start the stream
on the reserved session through its ``app_url`` (the orchestrator's proxy to
the runner, LR-107) and hand back a :class:`LiveSession`: publish video into
the session's input channel, read its output segments (or frames), update its
params on the control channel, read its events (telemetry relayed to a sink
through :mod:`.events`), and stop.

How the session's channels come to be: the runner creates them with its
``…/channels`` callback (LR-114, LR-119) when the client starts the stream, and
gives the client each channel's public ``url`` (LR-120). That step belongs to
the app behind ``app_url``, so it is a :data:`SessionStarter`. The default,
:func:`start_via_app`, posts ``{app_url}/stream/start`` with
``{"gateway_request_id":<session id>,"params":…}`` and reads the channels from
the answer as the runner's callback answered them (``{"channels":[…]}``,
names ``in``, ``out``, ``control``, ``events``).

Watchdogs (:mod:`.serving_attempt`): no event for ``event_timeout`` (the
runner's status heartbeat is an event), or no output for ``output_timeout``
once input is flowing, ends the session with that reason; so does the release
the orchestrator publishes on the events channel (LR-143) or the end of a
channel. The session is then stopped and the next runner reserved
(:mod:`.session_supervisor`), at most ``max_swaps`` times, each from a fresh
discovery without the runners that already failed; after that every use of
the handle raises :class:`LiveSessionFailed`, naming each runner and why it
failed.

Structured concurrency: everything runs in a nursery this context manager
owns; leaving the block (normally, by an error, or by cancellation) cancels it
and stops the current reservation (shielded, bounded), so no task,
connection or reservation outlives the block.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Generic, TypeVar

import httpx
import trio

from .._client.http import create_http_client
from .._errors import ChannelClosed, ProtocolError, TrickleError
from .._telemetry.sinks import TelemetrySink
from .._wire.live_runner_payment import SessionReservation
from .discovery import candidates, discover
from .serving_attempt import ServingAttempt
from .session_setup import (
    LiveSessionFailed,
    LiveSessionOptions,
    SessionChannels,
    SessionStarter,
    start_via_app,
)
from .session_supervisor import SessionSupervisor

__all__ = [
    "LiveSession",
    "LiveSessionFailed",
    "LiveSessionOptions",
    "SessionChannels",
    "SessionStarter",
    "open_live_session",
    "start_via_app",
]

T = TypeVar("T")


class _Outlet(Generic[T]):
    """Iterates one of the session's outlets; at the end raises the failure, if any."""

    def __init__(self, receive: trio.MemoryReceiveChannel[T], session: LiveSession) -> None:
        self._receive = receive
        self._session = session

    def __aiter__(self) -> _Outlet[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            if self._session.failure is not None:
                raise self._session.failure from None
            raise StopAsyncIteration from None


class LiveSession(SessionSupervisor):
    """A running live session; made by :func:`open_live_session`, not directly.

    What the caller uses; the state it reads and the task that keeps a
    runner serving are :class:`~.session_supervisor.SessionSupervisor`'s.
    """

    @property
    def reservation(self) -> SessionReservation | None:
        """The current session's reservation (None between sessions and after the end)."""
        return self._current.reservation if self._current is not None else None

    @property
    def session_id(self) -> str | None:
        return self._current.reservation.session_id if self._current is not None else None

    @property
    def channels(self) -> SessionChannels | None:
        return self._current.channels if self._current is not None else None

    @property
    def runner_url(self) -> str | None:
        """The discovery URL of the runner serving now."""
        return self._current.candidate.reserve_url if self._current is not None else None

    @property
    def closed(self) -> bool:
        return self._stopped or self.failure is not None

    async def _serving(self) -> ServingAttempt:
        """The session serving now; waits through a swap, raises once it is over."""
        while True:
            if self.failure is not None:
                raise self.failure
            if self._stopped:
                raise ChannelClosed("the live session was stopped")
            if self._current is not None and not self._current.ended:
                return self._current
            await self._changed.wait()

    async def wait_serving(self) -> str:
        """Wait until a session serves (after a swap, say); its session ID."""
        return (await self._serving()).reservation.session_id

    async def publish(self, segment: bytes | bytearray | memoryview) -> bool:
        """Publish one MPEG-TS segment into the session's input channel.

        Returns False when the segment was dropped because the input channel
        failed or closed under it: that session is over and the next one takes
        the following segments (live video moves on).
        Raises :class:`LiveSessionFailed` once the session failed for good.
        """
        attempt = await self._serving()
        if attempt.publisher is None:
            raise ProtocolError("this session has no input channel", status=400)
        if attempt.input_since is None:
            attempt.input_since = trio.current_time()
            attempt.last_output = attempt.input_since
            attempt.poke.set()
        try:
            async with attempt.input_lock:
                await attempt.publisher.write_segment(segment)
        except TrickleError as exc:
            # The input channel is gone (a release) or broken: this session is over,
            # the next one takes the following segments.
            attempt.end(f"input channel failed: {exc}")
            self.dropped_input += 1
            return False
        return True

    async def publish_segments(self, segments: AsyncIterable[bytes]) -> int:
        """Publish each segment in turn; the number published (dropped ones not counted)."""
        sent = 0
        async for segment in segments:
            sent += await self.publish(segment)
        return sent

    async def publish_frames(self, frames: AsyncIterable[Any], *, encoder: Any = None) -> int:
        """Encode frames (``trio_trickle.media`` frames) to MPEG-TS and publish it, GOP by GOP.

        Needs the media extras; PyAV is imported in a worker thread the first
        time. ``encoder`` is an ``EncoderSettings`` (defaults otherwise).
        Returns the number of segments published.
        """
        encode = await trio.to_thread.run_sync(
            importlib.import_module, "trio_trickle._media.encode"
        )
        settings_mod = await trio.to_thread.run_sync(
            importlib.import_module, "trio_trickle._media.encode_settings"
        )
        settings = encoder if encoder is not None else settings_mod.EncoderSettings()
        boundary = settings_mod.SEGMENT_BOUNDARY
        frame_send, frame_recv = trio.open_memory_channel[Any](8)
        ts_send, ts_recv = trio.open_memory_channel[Any](64)
        sent = 0

        async def feed() -> None:
            async with frame_send:
                async for frame in frames:
                    await frame_send.send(frame)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed)
            nursery.start_soon(encode.encode_ts, frame_recv, ts_send, settings)
            pending = bytearray()
            async with ts_recv:
                async for item in ts_recv:
                    if item is boundary:
                        if pending:
                            sent += await self.publish(bytes(pending))
                            pending = bytearray()
                        continue
                    pending += item
            if pending:
                sent += await self.publish(bytes(pending))
        return sent

    def output_segments(self) -> _Outlet[bytes]:
        """Each output segment, whole, across swaps: ``async for segment in s.output_segments()``.

        Ends when the session is stopped; raises :class:`LiveSessionFailed`
        once it failed for good. Segments a slow reader did not take in time
        are dropped (``dropped_output``).
        """
        return _Outlet(self._out_recv, self)

    @asynccontextmanager
    async def output_frames(
        self, *, device: str = "cpu"
    ) -> AsyncIterator[trio.MemoryReceiveChannel[Any]]:
        """The output decoded to frames: ``async with s.output_frames() as frames``.

        Needs the media extras; PyAV is imported in a worker thread. The
        decoder runs in this block's own nursery and stops when it is left.
        """
        decode = await trio.to_thread.run_sync(
            importlib.import_module, "trio_trickle._media.decode"
        )
        chunk_send, chunk_recv = trio.open_memory_channel[bytes](4)
        frame_send, frame_recv = trio.open_memory_channel[Any](8)

        async def pump() -> None:
            async with chunk_send:
                async for segment in self.output_segments():
                    await chunk_send.send(segment)

        async def decoder() -> None:
            await decode.decode_ts(chunk_recv, frame_send, device=device)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            nursery.start_soon(decoder)
            try:
                yield frame_recv
            finally:
                nursery.cancel_scope.cancel()

    def events(self) -> _Outlet[dict[str, Any]]:
        """The pipeline events of the session across swaps (telemetry goes to the sink)."""
        return _Outlet(self._ev_recv, self)

    async def update_params(self, params: Mapping[str, Any]) -> None:
        """Send ``params`` on the control channel; a replacement session starts with them."""
        self._params = dict(params)
        attempt = await self._serving()
        if attempt.control is None:
            return
        try:
            async with attempt.control_lock:
                await attempt.control.write(self._params)
        except TrickleError as exc:
            attempt.end(f"control channel failed: {exc}")  # the next session gets the params

    async def stop(self) -> None:
        """Stop the session for good: idempotent; the reservation is released on the way out."""
        if not self._stopped:
            self._stopped = True
            self._scope.cancel()
            self._note()
        await self._done.wait()


@asynccontextmanager
async def open_live_session(
    orchestrator_url: str,
    app: str,
    *,
    params: Mapping[str, Any] | None = None,
    client: httpx.AsyncClient | None = None,
    gpu: str | None = None,
    sink: TelemetrySink | None = None,
    starter: SessionStarter | None = None,
    options: LiveSessionOptions | None = None,
    **option_fields: Any,
) -> AsyncIterator[LiveSession]:
    """Discover, reserve and start a live session on a runner of ``app``; stop it on exit.

    ``client``: an httpx client to use (else one is made and closed here).
    ``gpu``: keep only runners whose GPU name or ID contains it (or whose index it is).
    ``sink``: where relayed runner telemetry goes. ``starter``: how the stream
    is started on a reserved session (:func:`start_via_app` by default).
    ``options`` or its fields as keywords (``event_timeout=…``):
    :class:`LiveSessionOptions`. Raises :class:`LiveSessionFailed` when no
    runner serves (discovery failed, none listed, every reservation refused).
    """
    opts = options if options is not None else LiveSessionOptions(**option_fields)
    async with AsyncExitStack() as stack:
        http = client
        if http is None:
            http = await stack.enter_async_context(create_http_client())
        found = await discover(orchestrator_url, client=http, within=opts.request_timeout)
        first = candidates(found, app=app, gpu=gpu)
        if not first:
            raise LiveSessionFailed(f"no runner of app {app!r} with room at {orchestrator_url}", ())
        session = LiveSession(
            orchestrator_url,
            app,
            http,
            params=params,
            gpu=gpu,
            sink=sink,
            starter=starter if starter is not None else start_via_app,
            options=opts,
            first=first,
        )
        failure: LiveSessionFailed | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session._run)
            await session._settled.wait()
            if session.failure is not None:
                failure = session.failure
            else:
                try:
                    yield session
                finally:
                    await session.stop()
        if failure is not None:
            raise failure
