"""One live stream = one trio nursery.

Theory of operation
-------------------
A :class:`Session` runs everything a stream needs as children of one nursery
tree rooted in :meth:`Session.run`:

* **writers** (outermost, they live longest): the events writer and the data
  writer drain the session's drop-oldest outlets onto the events and data
  channels, so whatever the pipeline emits, up to and including its last words
  in ``on_stream_stop`` and the ``stream_stopped`` event, is sent before those
  channels close (RUN-078, RUN-099);
* **work** (inside a cancel scope that any stop cause cancels): heartbeat,
  control reader, params applier (the channel loops are in :mod:`.io`, the
  heartbeat in :mod:`.heartbeat`), and the media path (:mod:`.media`): a byte
  relay, or subscribe, decode, process, encode, publish, every stage bounded.

A stop, from any cause, is one call: :meth:`Session.request_stop` records the
first reason and cancels the work scope. Teardown then runs ``on_stream_stop``
once (only after every processing call has returned, RUN-077), emits
``stream_stopped``, closes the outlets, and lets the writers drain.

The stop deadline is counted once, from the stop decision (RUN-126): the session
bounds its own teardown by it, ``on_stream_stop`` gets the first 80 % of it, the
rest is kept for ``stream_stopped`` and the drain, and the manager waiting on a
stop waits for the same instant. (Two separate ``stop_timeout`` budgets, one for
the hook and one for the caller, let a slow hook use up the caller's and lose
``stream_stopped``.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import trio

from .._errors import TrickleError
from .._sdk.hooks import DEFAULT_CANCEL_GRACE, call_hook
from .._sdk.live_pipeline import LivePipeline, bind_outlets, unbind_outlets
from .._telemetry.runner import RunnerTelemetry
from .._wire.runner import SessionState, StopReason, StreamStartRequest
from .._wire.telemetry import (
    ERROR_PARAMS_UPDATE_FAILED,
    ERROR_STREAM_FAILED,
    ERROR_STREAM_STARTUP_FAILED,
    EVENT_SESSION_CLOSED,
    EVENT_SESSION_CREATED,
    EVENT_STREAM_STARTED,
    EVENT_STREAM_STOPPED,
    TelemetryError,
)
from .context import StreamContext
from .failures import MAX_FAILURE_MESSAGE, describe_failure, first_failure
from .heartbeat import Heartbeat
from .io import ParamsQueue, control_updates, write_data, write_events
from .media import run_media
from .settings import SessionSettings as SessionSettings  # re-exported: Session takes one

__all__ = ["Session", "StartFailed"]

log = logging.getLogger("trio_trickle.session")

#: Share of the stop deadline ``on_stream_stop`` may use; the rest publishes
#: ``stream_stopped`` and drains the channels (RUN-126).
STOP_HOOK_SHARE = 0.8


class StartFailed(TrickleError):
    """``on_stream_start`` raised or outlived its timeout; the session never ran."""


class Session:
    """One stream on a :class:`LivePipeline`; see the module docstring.

    Its tasks share a :class:`~.context.StreamContext` (request, settings,
    counters, outlets, telemetry); the attributes of the same names here are
    that context's, and the session is the context's stop control.
    """

    def __init__(
        self,
        request: StreamStartRequest,
        pipeline: LivePipeline,
        *,
        client: httpx.AsyncClient,
        settings: SessionSettings | None = None,
        on_error: Callable[[str], None] | None = None,
        telemetry: RunnerTelemetry | None = None,
    ) -> None:
        self.context = context = StreamContext(
            request,
            pipeline,
            client=client,
            settings=settings or SessionSettings(),
            telemetry=telemetry or RunnerTelemetry(),
            control=self,
        )
        self.request = request
        self.id = context.id
        self.pipeline = pipeline
        self.client = client
        self.settings = context.settings
        self.state = SessionState.STARTING
        self.started_at_ms = context.started_at_ms
        self.params: dict[str, Any] | None = request.params
        self.counters = context.counters
        self.stop_reason: StopReason | None = None
        self.stop_detail: str | None = None
        #: trio time by which teardown is over; set once, at the stop decision (RUN-126).
        self.stop_deadline: float | None = None
        #: True once ``on_stream_start`` returned and the start was reported.
        self.reported_started = False
        self.error: str | None = None
        self._on_error = on_error or (lambda message: None)
        self._work = trio.CancelScope()
        self._outer = trio.CancelScope()
        self._done = trio.Event()
        self.params_queue = ParamsQueue()
        self.runner_telemetry = context.runner_telemetry
        self.telemetry = context.telemetry
        self.events_bell = context.events_bell
        self.telemetry_outlet = context.telemetry_outlet
        #: Runner code's way to relay its own telemetry on this stream.
        self.telemetry_sink = context.telemetry_sink
        self.outlets = context.outlets

    def _telemetry(self, name: str, *, error: TelemetryError | None = None, **meta: Any) -> None:
        """Stamp a stream event now (:meth:`.StreamContext.emit`)."""
        self.context.emit(name, error=error, **meta)

    # -- control from outside ----------------------------------------------------

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def request_stop(self, reason: StopReason, detail: str | None = None) -> None:
        """Stop the session; the first reason given wins. Safe to call repeatedly."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_detail = detail
        self._decide_stop()
        self.params_queue.cancel_all()
        self._work.cancel()

    def note_reason(self, reason: StopReason) -> None:
        """Record why the stream is ending without cancelling the drain in progress."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.params_queue.cancel_all()

    def _decide_stop(self) -> None:
        """Fix the stop deadline, once; the session's whole tree ends by it (RUN-126)."""
        if self.stop_deadline is None:
            self.stop_deadline = trio.current_time() + self.settings.stop_timeout
            self._outer.deadline = self.stop_deadline

    def abandon(self) -> None:
        """Cancel everything now, teardown included (the stop deadline passed)."""
        self.request_stop(StopReason.SHUTDOWN)
        self._outer.cancel()

    async def wait_done(self) -> None:
        await self._done.wait()

    def fail(self, message: str, *, public: str | None = None) -> None:
        """Record an unrecoverable error and stop with reason ``failed``.

        ``message`` (cut to ``MAX_FAILURE_MESSAGE``) goes into ``stream_stopped``;
        ``public``, when given, is what ``/stream/status`` shows as ``last_error``
        (an HTTP body: the exception type, never its text, RUN-026).
        """
        message = message[:MAX_FAILURE_MESSAGE]
        if self.error is None:
            self.error = message
            self.context.emit_error(ERROR_STREAM_FAILED, message, recoverable=False)
        self._on_error(public or message)
        self.request_stop(StopReason.FAILED)

    def report_error(self, message: str) -> None:
        """A recoverable error (a hook raised): remembered, the session goes on."""
        self._on_error(message)

    def status(self) -> dict[str, Any]:
        """This session's entry in ``GET /stream/status`` (RUN-070)."""
        return {
            "gateway_request_id": self.id,
            "state": str(self.state),
            "started_at_ms": self.started_at_ms,
            "params": self.params,
            "fps": self.counters.fps(),
            "frames_in": self.counters.frames_in,
            "frames_out": self.counters.frames_out,
            "frames_dropped": self.counters.frames_dropped,
        }

    # -- the nursery ---------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the stream, report ``started``, run until stopped, tear down."""
        token = bind_outlets(self.outlets)
        start_error: StartFailed | None = None
        try:
            with self._outer:
                async with trio.open_nursery() as writers:
                    writers.start_soon(write_events, self.context)
                    if self.outlets.data is not None:
                        writers.start_soon(write_data, self.context)
                    for pending in self.runner_telemetry.take_pending():
                        self.telemetry_outlet.put(pending)  # runner_ready & co (TEL-044)
                    self._telemetry(EVENT_SESSION_CREATED)
                    try:
                        await self._start_hook()
                    except StartFailed as exc:
                        start_error = exc  # raised below, outside the nursery, unwrapped
                        self.context.emit_error(
                            ERROR_STREAM_STARTUP_FAILED, str(exc), recoverable=False
                        )
                        self._session_closed()
                    else:
                        self.state = SessionState.RUNNING
                        self.context.stream_started_at = time.monotonic()
                        self._telemetry(EVENT_STREAM_STARTED)
                        self.reported_started = True
                        task_status.started()
                        await self._run_work()
                        self._decide_stop()  # the work ended by itself (input ended)
                        self.state = SessionState.STOPPING
                        await self._teardown()
                    finally:
                        self.context.close_outlets()
            if start_error is not None:
                raise start_error
        finally:
            unbind_outlets(token)
            self.state = SessionState.STOPPING
            self.params_queue.cancel_all()  # whatever still waits is answered (RUN-121)
            self._done.set()

    async def _start_hook(self) -> None:
        params = self.request.effective_params()
        try:
            with trio.fail_after(self.settings.start_timeout):
                await call_hook(self.pipeline.on_stream_start, params)
        except trio.TooSlowError:
            message = f"on_stream_start took longer than {self.settings.start_timeout} s"
            self.error = message
            self._on_error(message)
            raise StartFailed(message) from None
        except Exception as exc:
            message = f"on_stream_start failed: {type(exc).__name__}"
            log.exception("session %s: %s", self.id, message)
            self.error = message
            self._on_error(message)
            raise StartFailed(message) from exc

    async def _run_work(self) -> None:
        with self._work:
            try:
                async with trio.open_nursery() as work:
                    work.start_soon(Heartbeat(self.context).run)
                    work.start_soon(control_updates, self.context, self.params_queue)
                    work.start_soon(self._apply_params)
                    if self.request.subscribe_url or self.request.publish_url:
                        work.start_soon(run_media, self.context)
            except Exception as exc:  # a child failed: the whole stream stops
                log.exception("session %s failed", self.id)
                leaf = first_failure(exc)
                self.fail(describe_failure(exc), public=f"stream failed: {type(leaf).__name__}")

    async def _teardown(self) -> None:
        """``on_stream_stop`` once, ``stream_stopped``, then close the outlets.

        ``on_stream_stop`` ends by its share of the one stop deadline, so the
        rest of it is left for ``stream_stopped`` to go out (RUN-099, RUN-126).
        """
        assert self.stop_deadline is not None
        reserve = (1 - STOP_HOOK_SHARE) * self.settings.stop_timeout
        # A sync hook cut off still gets a grace to return; it must not eat the reserve.
        grace = min(DEFAULT_CANCEL_GRACE, reserve / 4)
        with trio.move_on_at(self.stop_deadline - reserve) as scope:
            try:
                await call_hook(self.pipeline.on_stream_stop, cancel_grace=grace)
            except Exception:
                log.exception("session %s: on_stream_stop raised", self.id)
        if scope.cancelled_caught:
            log.warning("session %s: on_stream_stop outlived the stop deadline", self.id)
        reason = str(self.stop_reason or StopReason.INPUT_ENDED)
        stopped: dict[str, Any] = {"reason": reason}
        if self.error is not None:
            stopped["error"] = self.error
        if self.stop_detail is not None:
            stopped["detail"] = self.stop_detail
        self.context.put_event("stream_stopped", **stopped)
        failure = None
        if self.error is not None:
            failure = TelemetryError(
                error_type=ERROR_STREAM_FAILED, message=self.error[:4096], recoverable=False
            )
        self._telemetry(
            EVENT_STREAM_STOPPED,
            error=failure,
            reason=reason,
            frames_in=self.counters.frames_in,
            frames_out=self.counters.frames_out,
        )
        self._session_closed()
        self.context.close_outlets()

    def _session_closed(self) -> None:
        duration = round((time.monotonic() - self.context.started_monotonic) * 1000)
        self._telemetry(EVENT_SESSION_CLOSED, duration_ms=duration)

    # -- params ------------------------------------------------------------------

    async def _apply_params(self) -> None:
        """One ``on_params_update`` at a time, in arrival order (RUN-088).

        The job taken off the queue is this task's to answer: a stop that cancels
        its hook answers it as stopped (RUN-121), since ``Cancelled`` is no
        ``Exception`` and would otherwise leave its caller waiting for ever.
        """
        while True:
            job = await self.params_queue.next()
            try:
                await call_hook(self.pipeline.on_params_update, dict(job.params))
            except Exception as exc:
                message = f"on_params_update failed: {type(exc).__name__}"
                log.exception("session %s: %s", self.id, message)
                self.report_error(message)
                self.context.emit_error(
                    ERROR_PARAMS_UPDATE_FAILED, message, recoverable=True, exc=exc
                )
                job.fail(message)
            else:
                self.params = dict(job.params)
                job.succeed()
            finally:
                job.stop()  # only if still unanswered: cancelled by the stop
