"""The sessions of one runner: admission, lookup, params, stop, shutdown.

The manager owns one nursery in which every session runs. Sessions are
shielded from the manager's own cancellation so that a runner shutting down
stops each stream *gracefully* (reason ``shutdown``, ``on_stream_stop`` once,
RUN-105) within the stop deadline, and only then cancels what is left. The
deadline is the session's own (fixed at the stop decision, RUN-126): the manager
waits for that instant, it does not start a second budget of its own.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import httpx
import trio

from .._client.http import create_http_client
from .._errors import ProtocolError
from .._sdk.live_pipeline import LivePipeline
from .._telemetry.runner import RunnerTelemetry
from .._wire.runner import StopReason, StreamStartRequest
from .failures import first_failure
from .io import ParamsJob
from .media import load_frame_graph, processes_frames
from .session import Session, StartFailed
from .settings import SessionSettings

__all__ = ["StreamManager"]

log = logging.getLogger("trio_trickle.session")

#: How long past a session's stop deadline a stop still waits once it cancelled
#: the lot (a sync hook gets a short grace to return, see ``_hooks``).
ABANDON_GRACE = 1.0


class StreamManager:
    """Runs up to ``capacity`` :class:`Session` objects for one pipeline."""

    def __init__(
        self,
        pipeline: LivePipeline,
        *,
        capacity: int = 1,
        start_timeout: float | None = None,
        stop_timeout: float | None = None,
        settings: SessionSettings | None = None,
        client: httpx.AsyncClient | None = None,
        telemetry: RunnerTelemetry | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.pipeline = pipeline
        self.capacity = capacity
        # Explicit timeouts win over ``settings``; otherwise the settings' own hold.
        base = settings or SessionSettings()
        self.settings = attrs.evolve(
            base,
            start_timeout=base.start_timeout if start_timeout is None else start_timeout,
            stop_timeout=base.stop_timeout if stop_timeout is None else stop_timeout,
        )
        self._client = client
        #: Shared context of every telemetry event this runner stamps.
        self.telemetry = telemetry or RunnerTelemetry()
        self._sessions: dict[str, Session] = {}
        self._nursery: trio.Nursery | None = None
        #: Message of the most recent session failure or hook exception (RUN-072).
        self.last_error: str | None = None

    @property
    def active_count(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def _record_error(self, message: str) -> None:
        self.last_error = message

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the sessions until cancelled; then stop them all with reason ``shutdown``."""
        if processes_frames(self.pipeline):
            # Before the first stream, in a worker thread: PyAV and torch take seconds
            # to import, and a stream subscribes to its input as soon as it starts.
            await load_frame_graph()
        owned = self._client is None
        client = self._client or create_http_client()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._client = client
                task_status.started()
                try:
                    await trio.sleep_forever()
                finally:
                    with trio.CancelScope(shield=True):
                        await self._shutdown()
        finally:
            self._nursery = None
            if owned:
                with trio.CancelScope(shield=True):
                    await client.aclose()
                self._client = None

    async def _shutdown(self) -> None:
        sessions = self.sessions()
        for session in sessions:
            session.request_stop(StopReason.SHUTDOWN)
        deadlines = [s.stop_deadline for s in sessions if s.stop_deadline is not None]
        with trio.move_on_at(max(deadlines, default=trio.current_time())):
            for session in sessions:
                await session.wait_done()
        for session in self.sessions():
            session.abandon()
        with trio.move_on_after(ABANDON_GRACE):
            for session in sessions:
                await session.wait_done()

    async def _run_session(
        self, session: Session, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            # Shielded: only request_stop/abandon end a session, never a stray cancel.
            with trio.CancelScope(shield=True):
                await session.run(task_status=task_status)
            if not session.reported_started:
                raise StartFailed("stream start failed: the stream ended before it started")
        except StartFailed:
            raise
        except Exception as exc:  # run() handles its own failures; this is a last line
            log.exception("session %s crashed", session.id)
            if not session.reported_started:
                # Whatever broke the start, the caller gets a start failure, not
                # nursery.start's "child exited without calling started()" (RUN-124).
                leaf = first_failure(exc)
                raise StartFailed(f"stream start failed: {type(leaf).__name__}") from None
            self._record_error(f"stream failed: {type(first_failure(exc)).__name__}")
        finally:
            if self._sessions.get(session.id) is session:
                del self._sessions[session.id]

    # -- the API the runner app calls -------------------------------------------

    async def start(self, request: StreamStartRequest) -> None:
        """Start a session; returns once ``on_stream_start`` returned (RUN-053)."""
        nursery, client = self._nursery, self._client
        if nursery is None or client is None:
            raise ProtocolError("the runner is not serving streams", status=503)
        if request.gateway_request_id in self._sessions:
            raise ProtocolError(
                f"stream {request.gateway_request_id!r} is already running", status=409
            )
        if len(self._sessions) >= self.capacity:
            raise ProtocolError(f"at capacity ({self.capacity} streams)", status=503)
        session = Session(
            request,
            self.pipeline,
            client=client,
            settings=self.settings,
            on_error=self._record_error,
            telemetry=self.telemetry,
        )
        self._sessions[session.id] = session
        try:
            await nursery.start(self._run_session, session)
        except StartFailed as exc:
            raise ProtocolError(str(exc), status=500) from None
        finally:
            if session.done and self._sessions.get(session.id) is session:
                del self._sessions[session.id]

    def _pick(self, stream_id: str | None) -> Session | None:
        if stream_id is not None:
            return self._sessions.get(stream_id)
        if len(self._sessions) > 1:
            raise ProtocolError("several streams are running: send X-Stream-Id", status=400)
        return next(iter(self._sessions.values()), None)

    async def update_params(self, params: dict[str, Any], stream_id: str | None) -> None:
        """Apply params through the session's own queue, so hooks run in its context."""
        session = self._pick(stream_id)
        if session is None or session.done or session.stop_reason is not None:
            raise ProtocolError("no such stream is running", status=404)
        job = ParamsJob(params=dict(params), from_control=False)
        session.params_queue.put(job)
        # The session answers every job it was given, by its end at the latest (RUN-121).
        await job.done.wait()
        if job.stopped:
            raise ProtocolError("the stream stopped before the update was applied", status=404)
        if job.error is not None:
            raise ProtocolError(job.error, status=500)

    async def stop(self, stream_id: str | None, reason: str | None) -> None:
        """Stop a session and wait for its teardown; nothing running is fine (RUN-066)."""
        session = self._pick(stream_id)
        if session is None:
            return
        session.request_stop(StopReason.STOP_REQUESTED, reason)
        assert session.stop_deadline is not None
        with trio.move_on_at(session.stop_deadline):  # the session's one deadline (RUN-126)
            await session.wait_done()
            return
        log.warning("session %s: teardown outlived the stop deadline; cancelling", session.id)
        session.abandon()
        with trio.move_on_after(ABANDON_GRACE):
            await session.wait_done()

    def status(self, stream_id: str | None) -> list[dict[str, Any]]:
        if stream_id is not None:
            session = self._sessions.get(stream_id)
            return [] if session is None else [session.status()]
        return [session.status() for session in self._sessions.values()]
