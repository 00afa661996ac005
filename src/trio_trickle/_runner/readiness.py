"""Whether the runner can serve: the pipeline's setup, its outcome, and the work in flight.

Health is owned here. ``setup()`` runs *concurrently* with serving, started
from the ASGI lifespan (sync setup in a worker thread), so ``/health`` answers
``LOADING`` from the first connection until setup returns (RUN-010/011), then
``IDLE``/``OK`` from live sessions and in-flight predicts, or a sticky
``ERROR`` if setup raised (RUN-012). Nothing on the health path awaits the
pipeline (RUN-017). Setup's progress is also what the process telemetry
reports (TEL-023..026).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import trio

from .._errors import ProtocolError
from .._sdk.hooks import call_hook
from .._sdk.live_pipeline import LivePipeline
from .._sdk.pipeline import Pipeline
from .._wire.runner import HealthStatus
from .._wire.telemetry import (
    ERROR_PIPELINE_LOAD_FAILED,
    EVENT_ERROR,
    EVENT_PIPELINE_LOAD_START,
    EVENT_PIPELINE_LOADED,
    EVENT_RUNNER_READY,
    TelemetryError,
)
from .responses import failure_text

if TYPE_CHECKING:
    from .._session.manager import StreamManager

__all__: list[str] = []

log = logging.getLogger("trio_trickle.runner")


class Readiness:
    """One runner's setup state and in-flight count, and the health status they give."""

    def __init__(self, pipeline: Pipeline | LivePipeline, manager: StreamManager | None) -> None:
        self._pipeline = pipeline
        self._manager = manager
        self._finished = trio.Event()
        #: ``setup failed: <ExceptionType>`` once setup raised, else None.
        self.error: str | None = None
        #: Predicts being answered now (a streaming one from its first iteration).
        self.in_flight = 0

    async def run_setup(self) -> None:
        """Call the pipeline's ``setup()`` once, recording how it ended; never raises."""
        setup = getattr(self._pipeline, "setup", None)
        telemetry = self._manager.telemetry if self._manager is not None else None
        pipeline_ids = [type(self._pipeline).__name__]
        load_start_ms = int(time.time() * 1000)
        load_started = time.monotonic()
        if telemetry is not None:  # TEL-024
            telemetry.emit_process(EVENT_PIPELINE_LOAD_START, pipeline_ids=pipeline_ids)
        try:
            if setup is not None:
                # A load cancelled by shutdown is abandoned at once: it cannot be interrupted.
                await call_hook(setup, cancel_grace=0)
        except Exception as exc:
            log.exception("pipeline setup failed; the runner stays in ERROR")
            self.error = failure_text("setup failed", exc)
            if telemetry is not None:  # TEL-026
                error = TelemetryError(
                    error_type=ERROR_PIPELINE_LOAD_FAILED,
                    message=self.error,
                    exception_type=type(exc).__name__,
                    recoverable=False,
                )
                telemetry.emit_process(EVENT_ERROR, pipeline_ids=pipeline_ids, error=error)
        else:
            if telemetry is not None:  # TEL-025, TEL-023
                now = time.monotonic()
                telemetry.emit_process(
                    EVENT_PIPELINE_LOADED,
                    pipeline_ids=pipeline_ids,
                    load_duration_ms=round((now - load_started) * 1000),
                    load_start_time_ms=load_start_ms,
                )
                startup = round((now - telemetry.started) * 1000)
                telemetry.emit_process(EVENT_RUNNER_READY, startup_ms=startup)
        finally:
            self._finished.set()

    async def wait(self) -> None:
        """Return once ``setup()`` returned or raised."""
        await self._finished.wait()

    @property
    def status(self) -> HealthStatus:
        """The ``/health`` status (RUN-009..014)."""
        if self.error is not None:
            return HealthStatus.ERROR
        if not self._finished.is_set():
            return HealthStatus.LOADING
        manager = self._manager
        busy = self.in_flight > 0 or (manager is not None and manager.active_count > 0)
        return HealthStatus.OK if busy else HealthStatus.IDLE

    def require_ready(self) -> None:
        """Refuse with 503 while setup runs or after it failed."""
        status = self.status
        if status is HealthStatus.LOADING:
            raise ProtocolError("the pipeline is still loading", status=503)
        if status is HealthStatus.ERROR:
            raise ProtocolError(f"the pipeline is unavailable ({self.error})", status=503)
