"""One reserved session on one runner while it serves, and the watchdogs that end it.

Apart from :mod:`.session_supervisor` (which reserves, swaps and stops) because
this is the state of a single runner's session and the tasks that judge its
health: :class:`ServingAttempt` (its publishers, write locks and the times of
its last event and output), :func:`watch_for_silence` (no event for
``event_timeout``, or no output for ``output_timeout`` once input flows, ends
it), :func:`send_keepalives` on its control channel (LR-138) and
:class:`EventNotingSink`, which tells the watchdog that an event arrived.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import trio

from .._client.channels import JsonSegmentWriter
from .._client.publisher import TricklePublisher
from .._errors import TrickleError
from .._telemetry.sinks import TelemetrySink
from .._wire.live_runner_payment import SessionReservation
from .._wire.telemetry import TelemetryEvent
from .discovery import RunnerCandidate
from .session_setup import RunnerFailure, SessionChannels

__all__ = ["EventNotingSink", "ServingAttempt", "send_keepalives", "watch_for_silence"]

log = logging.getLogger("trio_trickle.gateway")

_KEEPALIVE = {"keep": "alive"}


class EventNotingSink:
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


class ServingAttempt:
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


async def watch_for_silence(
    attempt: ServingAttempt,
    end: Callable[[str], None],
    *,
    event_timeout: float | None,
    output_timeout: float | None,
) -> None:
    """End ``attempt`` when no event came for ``event_timeout`` or no output for ``output_timeout``.

    The output clock runs only once input is published; ``attempt.poke``
    wakes the watch when it starts.
    """
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


async def send_keepalives(attempt: ServingAttempt, interval: float) -> None:
    """``{"keep":"alive"}`` on the control channel every ``interval`` until a write fails."""
    assert attempt.control is not None
    while True:
        await trio.sleep(interval)
        try:
            async with attempt.control_lock:
                await attempt.control.write(_KEEPALIVE)
        except TrickleError as exc:
            log.info("keepalive on %s failed: %s", attempt.reservation.session_id, exc)
            return
