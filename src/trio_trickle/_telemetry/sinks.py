"""Telemetry sinks: the protocol every egress obeys, the simple sinks, and choosing one.

A sink sits on the media and control paths' side door: ``emit`` is called from
hooks, session tasks and worker threads, so it must never block and never raise
(TEL-047). Every sink therefore puts events into an
:class:`~trio_trickle.EventBuffer` (bounded, drop-oldest, safe from any thread,
TEL-048; in :mod:`._telemetry_buffer`) and a single trio task, the sink's
``run()``, moves them on. ``aclose()`` makes a last delivery attempt within the
shutdown deadline (TEL-051).

The buffer binds to trio only when ``run()`` starts, so sinks can be built before
``trio.run`` (from configuration at process start). :class:`HttpSink` and
:class:`KafkaSink` live in their own modules; :func:`select_sink` picks from a
:class:`SinkConfig` or the environment, and :func:`open_sink` runs one for a block.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import attrs
import trio

from .._errors import TrickleError
from .._wire.telemetry import TelemetryEvent
from .._wire.util import dump_json, instance_of, optional, text
from .buffer import BufferedSink

__all__ = [
    "DEFAULT_KAFKA_TOPIC",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "FanoutSink",
    "LogSink",
    "NullSink",
    "SinkConfig",
    "TelemetryConfigError",
    "TelemetrySink",
    "open_sink",
    "select_sink",
]

log = logging.getLogger("trio_trickle.telemetry")

#: How long closing a sink may take (TEL-051).
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
#: The one Kafka topic default (TEL-074).
DEFAULT_KAFKA_TOPIC = "network_events"

ENV_SINKS = "TRIO_TRICKLE_TELEMETRY"
ENV_HTTP_URL = "TRIO_TRICKLE_TELEMETRY_URL"
ENV_HTTP_KEY = "TRIO_TRICKLE_TELEMETRY_KEY"
ENV_HTTP_SPOOL = "TRIO_TRICKLE_TELEMETRY_SPOOL"
ENV_KAFKA_BOOTSTRAP = "KAFKA_BOOTSTRAP_SERVERS"
ENV_KAFKA_TOPIC = "KAFKA_TOPIC"
ENV_KAFKA_USER = "KAFKA_SASL_USERNAME"
ENV_KAFKA_PASSWORD = "KAFKA_SASL_PASSWORD"


class TelemetryConfigError(TrickleError, ValueError):
    """Telemetry configuration that names an unknown sink or lacks a required value."""


@runtime_checkable
class TelemetrySink(Protocol):
    """What every sink offers: a non-blocking ``emit``, a drain task, a bounded close.

    Counters (TEL-049): ``accepted`` events given to ``emit``, ``delivered`` to
    the backend, ``dropped`` by the buffer bound or a drop rule, ``failed`` (lost
    to an error the sink could not recover from).
    """

    @property
    def accepted(self) -> int: ...

    @property
    def delivered(self) -> int: ...

    @property
    def dropped(self) -> int: ...

    @property
    def failed(self) -> int: ...

    def emit(self, event: TelemetryEvent) -> None:
        """Hand over one event; never blocks, never raises, callable from any thread."""

    async def run(self) -> None:
        """Deliver buffered events until cancelled or closed."""

    async def aclose(self) -> None:
        """Deliver what can be delivered within the shutdown deadline, then stop."""


class NullSink:
    """Telemetry switched off: counts what it is given and keeps nothing."""

    def __init__(self) -> None:
        self._accepted = 0

    @property
    def accepted(self) -> int:
        return self._accepted

    @property
    def delivered(self) -> int:
        return 0

    @property
    def dropped(self) -> int:
        return 0

    @property
    def failed(self) -> int:
        return 0

    def emit(self, event: TelemetryEvent) -> None:
        self._accepted += 1

    async def run(self) -> None:
        await trio.sleep_forever()

    async def aclose(self) -> None:
        return None


class LogSink(BufferedSink):
    """One structured log line per event on logger ``trio_trickle.telemetry``.

    For development and for checking a relay without a backend. Lines are written
    by the drain task, not by ``emit``, so a slow log handler never stalls a
    producer; the record carries the envelope as ``record.telemetry_event``.
    """

    _kind = "LogSink"

    def __init__(
        self,
        *,
        max_buffer: int = 10_000,
        level: int = logging.INFO,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(max_buffer)
        self._level = level
        self._log = logger or log

    def _write(self, events: Iterable[TelemetryEvent]) -> None:
        for event in events:
            try:
                wire = event.to_wire()
                self._log.log(
                    self._level,
                    "telemetry type=%s id=%s event=%s",
                    event.name,
                    event.id,
                    dump_json(wire).decode(),
                    extra={"telemetry_event": wire},
                )
                self._delivered += 1
            except Exception:  # a broken handler or event: count it, keep going
                self._failed += 1

    async def run(self) -> None:
        self._begin_run()
        try:
            while True:
                batch = self._buffer.take(256)
                if batch:
                    self._write(batch)
                    await trio.lowlevel.checkpoint()
                elif self._buffer.closed:
                    return
                else:
                    await self._buffer.wait()
        finally:
            self._write(self._buffer.take(len(self._buffer)))
            self._done.set()

    async def aclose(self) -> None:
        self._buffer.close()
        if self._started:
            await self._done.wait()
        else:
            self._write(self._buffer.take(len(self._buffer)))
            self._done.set()


class FanoutSink:
    """Several sinks as one: each gets every event, and one failing leaves the rest alone.

    TEL-050. ``accepted`` counts events offered to the fan-out; the other
    counters are sums over the member sinks.
    """

    def __init__(self, sinks: Sequence[TelemetrySink]) -> None:
        self.sinks = tuple(sinks)
        self._accepted = 0

    @property
    def accepted(self) -> int:
        return self._accepted

    @property
    def delivered(self) -> int:
        return sum(s.delivered for s in self.sinks)

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self.sinks)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.sinks)

    def emit(self, event: TelemetryEvent) -> None:
        self._accepted += 1
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception:  # a sink breaking its contract must not starve the others
                log.exception("telemetry sink %r raised from emit()", sink)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            for sink in self.sinks:
                nursery.start_soon(_guarded, sink.run, f"{sink!r}.run()")

    async def aclose(self) -> None:
        async with trio.open_nursery() as nursery:
            for sink in self.sinks:
                nursery.start_soon(_guarded, sink.aclose, f"{sink!r}.aclose()")


async def _guarded(fn: Callable[[], Awaitable[None]], what: str) -> None:
    try:
        await fn()
    except Exception:
        log.exception("telemetry: %s failed; other sinks carry on", what)


@attrs.frozen(kw_only=True)
class SinkConfig:
    """Which sinks to run and their settings; :meth:`from_env` reads the environment.

    HTTP egress runs when ``http_url`` is set, Kafka exactly when
    ``kafka_bootstrap`` is (TEL-073), the log sink when ``log`` is true; with
    none of them telemetry goes to a :class:`NullSink`.
    """

    http_url: str | None = attrs.field(default=None, validator=optional(text(4096)))
    http_key: str | None = attrs.field(default=None, validator=optional(text(4096)))
    http_spool_path: str | None = attrs.field(default=None, validator=optional(text(4096)))
    kafka_bootstrap: str | None = attrs.field(default=None, validator=optional(text(4096)))
    kafka_topic: str = attrs.field(default=DEFAULT_KAFKA_TOPIC, validator=text(249))
    kafka_sasl_username: str | None = attrs.field(default=None, validator=optional(text(4096)))
    kafka_sasl_password: str | None = attrs.field(default=None, validator=optional(text(4096)))
    log: bool = attrs.field(default=False, validator=instance_of(bool))
    shutdown_timeout: float = attrs.field(
        default=DEFAULT_SHUTDOWN_TIMEOUT, validator=instance_of(float, int)
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SinkConfig:
        """Read ``TRIO_TRICKLE_TELEMETRY*`` and ``KAFKA_*`` (empty values count as unset).

        ``TRIO_TRICKLE_TELEMETRY`` is a comma-separated list of extra sinks:
        ``log`` or ``none``. HTTP needs ``TRIO_TRICKLE_TELEMETRY_URL`` and
        ``TRIO_TRICKLE_TELEMETRY_KEY`` (``TRIO_TRICKLE_TELEMETRY_SPOOL`` is an
        optional spool path); Kafka needs ``KAFKA_BOOTSTRAP_SERVERS``, takes
        ``KAFKA_TOPIC`` and ``KAFKA_SASL_USERNAME``/``KAFKA_SASL_PASSWORD``.
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        kinds = {k.strip().lower() for k in (get(ENV_SINKS) or "").split(",") if k.strip()}
        unknown = kinds - {"log", "none"}
        if unknown:
            raise TelemetryConfigError(
                f"{ENV_SINKS}: unknown sink(s) {sorted(unknown)}; use 'log' or 'none'"
            )
        url = get(ENV_HTTP_URL)
        key = get(ENV_HTTP_KEY)
        if url is not None and key is None:
            raise TelemetryConfigError(f"{ENV_HTTP_URL} is set but {ENV_HTTP_KEY} is not")
        return cls(
            http_url=url,
            http_key=key,
            http_spool_path=get(ENV_HTTP_SPOOL),
            kafka_bootstrap=get(ENV_KAFKA_BOOTSTRAP),
            kafka_topic=get(ENV_KAFKA_TOPIC) or DEFAULT_KAFKA_TOPIC,
            kafka_sasl_username=get(ENV_KAFKA_USER),
            kafka_sasl_password=get(ENV_KAFKA_PASSWORD),
            log="log" in kinds,
        )


def select_sink(config: SinkConfig | None = None) -> TelemetrySink:
    """The sink ``config`` (default: the environment) asks for; several become a fan-out."""
    # Imported here: those modules build on this one.
    from .http import HttpSink
    from .kafka import KafkaSink

    config = SinkConfig.from_env() if config is None else config
    sinks: list[TelemetrySink] = []
    if config.http_url is not None:
        if config.http_key is None:
            raise TelemetryConfigError("HTTP telemetry needs an API key")
        sinks.append(
            HttpSink(
                config.http_url,
                config.http_key,
                spool_path=config.http_spool_path,
                shutdown_timeout=float(config.shutdown_timeout),
            )
        )
    if config.kafka_bootstrap is not None:
        sinks.append(
            KafkaSink(
                config.kafka_bootstrap,
                config.kafka_topic,
                sasl_username=config.kafka_sasl_username,
                sasl_password=config.kafka_sasl_password,
                shutdown_timeout=float(config.shutdown_timeout),
            )
        )
    if config.log:
        sinks.append(LogSink())
    if not sinks:
        return NullSink()
    return sinks[0] if len(sinks) == 1 else FanoutSink(sinks)


@contextlib.asynccontextmanager
async def open_sink(
    sink: TelemetrySink | None = None,
    *,
    nursery: trio.Nursery | None = None,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
) -> AsyncIterator[TelemetrySink]:
    """Run ``sink`` (default: :func:`select_sink` from the environment) for the block.

    The drain task runs in ``nursery`` when given (a nursery the caller owns),
    else in one opened here. On exit the sink is closed, shielded from
    cancellation and bounded by ``shutdown_timeout`` plus a second of grace,
    and the drain task is waited for.
    """
    sink = select_sink() if sink is None else sink
    finished = trio.Event()
    scope = trio.CancelScope()

    async def drain() -> None:
        try:
            with scope:
                await sink.run()
        except Exception:
            log.exception("telemetry sink %r stopped with an error", sink)
        finally:
            finished.set()

    async def close() -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(shutdown_timeout + 1.0):
            try:
                await sink.aclose()
            except Exception:
                log.exception("telemetry sink %r failed to close", sink)
            scope.cancel()
            await finished.wait()

    if nursery is not None:
        nursery.start_soon(drain)
        try:
            yield sink
        finally:
            await close()
        return
    async with trio.open_nursery() as own:
        own.start_soon(drain)
        try:
            yield sink
        finally:
            await close()
