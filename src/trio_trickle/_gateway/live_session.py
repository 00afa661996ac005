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

Watchdogs: no event for ``event_timeout`` (the runner's status heartbeat is an
event), or no output for ``output_timeout`` once input is flowing, ends the
session with that reason; so does the release the orchestrator publishes on
the events channel (LR-143) or the end of a channel. The session is then
stopped and the next runner reserved, at most ``max_swaps`` times, each from
a fresh discovery without the runners that already failed; after that every
use of the handle raises :class:`LiveSessionFailed`, naming each runner and
why it failed.

Structured concurrency: everything runs in a nursery this context manager
owns; leaving the block (normally, by an error, or by cancellation) cancels it
and stops the current reservation (shielded, bounded), so no task,
connection or reservation outlives the block.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Generic, TypeVar

import httpx
import trio

from .._client.channels import JsonSegmentWriter
from .._client.http import HTTP_FAILURES, create_http_client
from .._client.publisher import TricklePublisher
from .._client.subscriber import TrickleSubscriber
from .._errors import ChannelClosed, ProtocolError, TrickleError
from .._telemetry.sinks import NullSink, TelemetrySink
from .._wire.live_runner_payment import SessionReservation
from .._wire.telemetry import TelemetryEvent
from .discovery import DiscoveryFailed, RunnerCandidate, candidates, discover
from .events import read_stream_events
from .reservation import ReservationRefused, reserve, stop_session
from .session_setup import (
    LiveSessionFailed,
    LiveSessionOptions,
    RunnerFailure,
    SessionChannels,
    SessionStarter,
    start_via_app,
)

__all__ = [
    "LiveSession",
    "LiveSessionFailed",
    "LiveSessionOptions",
    "RunnerFailure",
    "SessionChannels",
    "SessionStarter",
    "open_live_session",
    "start_via_app",
]

log = logging.getLogger("trio_trickle.gateway")

T = TypeVar("T")

#: Largest output segment kept in memory (a few seconds of video).
MAX_OUTPUT_SEGMENT = 64 * 1024 * 1024
_KEEPALIVE = {"keep": "alive"}
#: What a failed stream start raises: the next runner is tried.
_START_FAILURES: tuple[type[Exception], ...] = (TrickleError, trio.TooSlowError, *HTTP_FAILURES)


def _with_release(reason: str, released: str | None) -> str:
    """Why a session ended, told by the orchestrator's release reason when it has one.

    A channel that closes or ends is the sign of a release, not its cause: the
    reason our stop was answered with (LR-145) says why (LR-147).
    """
    if released is None or released == "client_stop" or reason.startswith("session released"):
        return reason
    if "channel" in reason:
        return f"session released: {released}"
    return f"{reason} (released: {released})"


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


class _WatchedSink:
    """Forwards to the caller's sink and notes that an event arrived (the watchdog)."""

    def __init__(self, inner: TelemetrySink, on_emit: Callable[[], None]) -> None:
        self.inner = inner
        self._on_emit = on_emit

    @property
    def accepted(self) -> int:
        return self.inner.accepted

    @property
    def delivered(self) -> int:
        return self.inner.delivered

    @property
    def dropped(self) -> int:
        return self.inner.dropped

    @property
    def failed(self) -> int:
        return self.inner.failed

    def emit(self, event: TelemetryEvent) -> None:
        self._on_emit()
        self.inner.emit(event)

    async def run(self) -> None:
        await self.inner.run()

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Attempt:
    """One reserved session on one runner, while it serves."""

    def __init__(
        self, candidate: RunnerCandidate, reservation: SessionReservation, channels: SessionChannels
    ) -> None:
        self.candidate = candidate
        self.reservation = reservation
        self.channels = channels
        self.publisher: TricklePublisher | None = None
        self.control: JsonSegmentWriter | None = None
        # One segment open at a time per publisher: writers take turns.
        self.input_lock = trio.StrictFIFOLock()
        self.control_lock = trio.StrictFIFOLock()
        now = trio.current_time()
        self.last_event = now
        self.last_output = now
        self.input_since: float | None = None
        self.poke = trio.Event()
        self.ended = False
        #: Ends this session with a reason (set while it serves).
        self.end: Callable[[str], None] = lambda _reason: None

    def failure(self, reason: str) -> RunnerFailure:
        return RunnerFailure(
            orchestrator=self.candidate.orchestrator,
            runner_url=self.candidate.reserve_url,
            session_id=self.reservation.session_id,
            reason=reason,
        )


class LiveSession:
    """A running live session; made by :func:`open_live_session`, not directly."""

    def __init__(
        self,
        orchestrator_url: str,
        app: str,
        client: httpx.AsyncClient,
        *,
        params: Mapping[str, Any] | None,
        gpu: str | None,
        sink: TelemetrySink | None,
        starter: SessionStarter,
        options: LiveSessionOptions,
        first: list[RunnerCandidate],
    ) -> None:
        self.orchestrator_url = orchestrator_url
        self.app = app
        self.options = options
        #: Every runner that failed this session, in order.
        self.failures: list[RunnerFailure] = []
        #: Sessions replaced after a failure so far.
        self.swaps = 0
        #: Output segments and pipeline events dropped because nobody read them in time.
        self.dropped_output = 0
        self.dropped_events = 0
        #: Input segments dropped while a session was being replaced.
        self.dropped_input = 0
        #: The error that ended the session for good, if one did.
        self.failure: LiveSessionFailed | None = None
        self._client = client
        self._params = dict(params) if params is not None else None
        self._gpu = gpu
        self._sink = sink if sink is not None else NullSink()
        self._starter = starter
        self._first = first
        self._tried: set[str] = set()
        self._current: _Attempt | None = None
        self._changed = trio.Event()
        self._settled = trio.Event()  # the first session serves, or the first one failed
        self._stopped = False
        self._done = trio.Event()  # the supervisor has returned: nothing is reserved
        self._scope = trio.CancelScope()
        self._out_send, self._out_recv = trio.open_memory_channel[bytes](options.buffer)
        self._ev_send, self._ev_recv = trio.open_memory_channel[dict[str, Any]](options.buffer)

    # -- what the caller sees --------------------------------------------------------

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

    def _note(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _serving(self) -> _Attempt:
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

    # -- the supervisor ----------------------------------------------------------------

    async def _run(self) -> None:
        """Serve, swap on failure, give up after ``max_swaps``; closes the outlets on exit."""
        try:
            with self._scope:
                await self._supervise()
        except LiveSessionFailed as exc:
            self.failure = exc
            log.warning("%s", exc)
        finally:
            self._current = None
            self._out_send.close()
            self._ev_send.close()
            self._settled.set()
            self._done.set()
            self._note()

    async def _supervise(self) -> None:
        while True:
            attempt = await self._open_next()
            try:
                reason = await self._serve(attempt)
            finally:
                attempt.ended = True
                if self._current is attempt:
                    self._current = None
                self._note()
                stopped = await stop_session(
                    self._client, attempt.reservation, within=self.options.stop_timeout
                )
            reason = _with_release(reason, stopped.reason)
            self.failures.append(attempt.failure(reason))
            log.warning("live session %s failed: %s", attempt.reservation.session_id, reason)
            if self.swaps >= self.options.max_swaps:
                raise LiveSessionFailed(f"gave up after {self.swaps} swaps", tuple(self.failures))
            self.swaps += 1
            self._note()

    async def _open_next(self) -> _Attempt:
        """Reserve the next candidate that stands and start its stream (LR-067: one at a time)."""
        pending = self._first
        self._first = []
        if not pending:
            try:
                found = await discover(
                    self.orchestrator_url, client=self._client, within=self.options.request_timeout
                )
            except DiscoveryFailed as exc:
                raise LiveSessionFailed(str(exc), tuple(self.failures)) from exc
            pending = candidates(found, app=self.app, gpu=self._gpu, exclude=frozenset(self._tried))
        for candidate in pending:
            if candidate.reserve_url in self._tried:
                continue
            self._tried.add(candidate.reserve_url)
            try:
                reservation = await reserve(
                    self._client, candidate.reserve_url, within=self.options.request_timeout
                )
            except ReservationRefused as exc:
                self.failures.append(
                    RunnerFailure(
                        orchestrator=candidate.orchestrator,
                        runner_url=candidate.reserve_url,
                        reason=exc.reason,
                    )
                )
                continue
            try:
                channels = await self._starter(self._client, reservation, self._params)
            except BaseException as exc:
                await stop_session(self._client, reservation, within=self.options.stop_timeout)
                if not isinstance(exc, _START_FAILURES):
                    raise
                self.failures.append(
                    RunnerFailure(
                        orchestrator=candidate.orchestrator,
                        runner_url=candidate.reserve_url,
                        session_id=reservation.session_id,
                        reason=f"stream start failed: {type(exc).__name__}: {exc}",
                    )
                )
                continue
            log.info("session %s started on %s", reservation.session_id, candidate.reserve_url)
            return _Attempt(candidate, reservation, channels)
        raise LiveSessionFailed(
            f"no runner of app {self.app!r} at {self.orchestrator_url} could serve",
            tuple(self.failures),
        )

    async def _serve(self, attempt: _Attempt) -> str:
        """Run one session until it fails; the reason. Its publishers close on the way out."""
        channels = attempt.channels
        async with AsyncExitStack() as stack:
            if channels.input_url is not None:
                attempt.publisher = await stack.enter_async_context(
                    TricklePublisher(
                        channels.input_url,
                        "video/MP2T",
                        client=self._client,
                        start_seq=0,
                        owns_channel=False,
                    )
                )
            attempt.control = await stack.enter_async_context(
                JsonSegmentWriter(channels.control_url, client=self._client, owns_channel=False)
            )
            reasons: list[str] = []
            async with trio.open_nursery() as nursery:

                def end(reason: str) -> None:
                    if not reasons:
                        reasons.append(reason)
                    nursery.cancel_scope.cancel()

                attempt.end = end

                nursery.start_soon(self._read_events, attempt, end)
                if channels.output_url is not None:
                    nursery.start_soon(self._read_output, attempt, end)
                nursery.start_soon(self._watchdog, attempt, end)
                if self.options.keepalive_interval is not None:
                    nursery.start_soon(self._keepalive, attempt)
                self._current = attempt
                self._settled.set()
                self._note()
            attempt.ended = True
            if self._current is attempt:
                self._current = None
            self._note()
            return reasons[0] if reasons else "ended"

    async def _read_events(self, attempt: _Attempt, end: Callable[[str], None]) -> None:
        released: list[str] = []

        def seen() -> None:
            attempt.last_event = trio.current_time()

        def on_event(message: dict[str, Any]) -> None:
            seen()
            event = message.get("event")
            if isinstance(event, dict) and event.get("type") == "session_released":
                released.append(str(event.get("reason") or "unknown"))  # LR-143, LR-147
                return
            try:
                self._ev_send.send_nowait(message)
            except trio.WouldBlock:
                self.dropped_events += 1

        try:
            await read_stream_events(
                attempt.channels.events_url,
                _WatchedSink(self._sink, seen),
                on_event=on_event,
                client=self._client,
            )
        except TrickleError as exc:
            end(f"events channel failed: {exc}")
            return
        end(f"session released: {released[0]}" if released else "events channel closed")

    async def _read_output(self, attempt: _Attempt, end: Callable[[str], None]) -> None:
        url = attempt.channels.output_url
        assert url is not None
        try:
            async with TrickleSubscriber(url, start_seq=0, client=self._client) as subscriber:
                async for segment in subscriber:
                    data = await segment.read_all(MAX_OUTPUT_SEGMENT)
                    attempt.last_output = trio.current_time()
                    if not data:
                        continue
                    try:
                        self._out_send.send_nowait(data)
                    except trio.WouldBlock:
                        self.dropped_output += 1
        except TrickleError as exc:
            end(f"output channel failed: {exc}")
            return
        end("output channel ended")

    async def _watchdog(self, attempt: _Attempt, end: Callable[[str], None]) -> None:
        event_timeout = self.options.event_timeout
        output_timeout = self.options.output_timeout
        while True:
            now = trio.current_time()
            deadline = math.inf
            if event_timeout is not None:
                if now >= attempt.last_event + event_timeout:
                    end(f"no event for {event_timeout}s")
                    return
                deadline = attempt.last_event + event_timeout
            if output_timeout is not None and attempt.input_since is not None:
                since = max(attempt.last_output, attempt.input_since)
                if now >= since + output_timeout:
                    end(f"no output for {output_timeout}s while input was published")
                    return
                deadline = min(deadline, since + output_timeout)
            attempt.poke = trio.Event()
            with trio.move_on_at(deadline):
                await attempt.poke.wait()

    async def _keepalive(self, attempt: _Attempt) -> None:
        interval = self.options.keepalive_interval
        assert interval is not None
        assert attempt.control is not None
        while True:
            await trio.sleep(interval)
            try:
                async with attempt.control_lock:
                    await attempt.control.write(_KEEPALIVE)
            except TrickleError as exc:
                log.info("keepalive on %s failed: %s", attempt.reservation.session_id, exc)
                return


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
