"""Keeps one runner session serving for a live session: reserve, start, watch, swap, stop.

Apart from :mod:`.live_session` (the handle a caller uses) because this is
the loop behind it: :class:`SessionSupervisor` reserves the next runner that
stands (LR-067: one at a time), starts its stream, serves it (its events to
the sink and the events outlet, its output to the output outlet, the
watchdogs of :mod:`.serving_attempt`) until it fails, stops it and tells why
(the orchestrator's release reason when there is one, LR-145/147), then swaps
to the next runner from a fresh discovery, at most ``max_swaps`` times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import httpx
import trio

from .._client.channels import JsonSegmentWriter
from .._client.http import HTTP_FAILURES
from .._client.publisher import TricklePublisher
from .._client.subscriber import TrickleSubscriber
from .._errors import TrickleError
from .._telemetry.sinks import NullSink, TelemetrySink
from .discovery import DiscoveryFailed, RunnerCandidate, candidates, discover
from .events import read_stream_events
from .reservation import ReservationRefused, reserve, stop_session
from .serving_attempt import EventNotingSink, ServingAttempt, send_keepalives, watch_for_silence
from .session_setup import LiveSessionFailed, LiveSessionOptions, RunnerFailure, SessionStarter

__all__ = ["MAX_OUTPUT_SEGMENT", "SessionSupervisor"]

log = logging.getLogger("trio_trickle.gateway")

#: Largest output segment kept in memory (a few seconds of video).
MAX_OUTPUT_SEGMENT = 64 * 1024 * 1024
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


class SessionSupervisor:
    """The state of a live session across swaps, and the task that serves and swaps it.

    :class:`~.live_session.LiveSession` is this plus what the caller uses.
    """

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
        self._current: ServingAttempt | None = None
        self._changed = trio.Event()
        self._settled = trio.Event()  # the first session serves, or the first one failed
        self._stopped = False
        self._done = trio.Event()  # the supervisor has returned: nothing is reserved
        self._scope = trio.CancelScope()
        self._out_send, self._out_recv = trio.open_memory_channel[bytes](options.buffer)
        self._ev_send, self._ev_recv = trio.open_memory_channel[dict[str, Any]](options.buffer)

    def _note(self) -> None:
        """Wake whoever waits on ``_changed``: a session serves, ended, or all is over."""
        self._changed.set()
        self._changed = trio.Event()

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

    async def _open_next(self) -> ServingAttempt:
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
            return ServingAttempt(candidate, reservation, channels)
        raise LiveSessionFailed(
            f"no runner of app {self.app!r} at {self.orchestrator_url} could serve",
            tuple(self.failures),
        )

    async def _serve(self, attempt: ServingAttempt) -> str:
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
                nursery.start_soon(
                    partial(
                        watch_for_silence,
                        event_timeout=self.options.event_timeout,
                        output_timeout=self.options.output_timeout,
                    ),
                    attempt,
                    end,
                )
                keepalive_interval = self.options.keepalive_interval
                if keepalive_interval is not None:
                    nursery.start_soon(send_keepalives, attempt, keepalive_interval)
                self._current = attempt
                self._settled.set()
                self._note()
            attempt.ended = True
            if self._current is attempt:
                self._current = None
            self._note()
            return reasons[0] if reasons else "ended"

    async def _read_events(self, attempt: ServingAttempt, end: Callable[[str], None]) -> None:
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
                EventNotingSink(self._sink, seen),
                on_event=on_event,
                client=self._client,
            )
        except TrickleError as exc:
            end(f"events channel failed: {exc}")
            return
        end(f"session released: {released[0]}" if released else "events channel closed")

    async def _read_output(self, attempt: ServingAttempt, end: Callable[[str], None]) -> None:
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
