"""Choosing a telemetry sink from configuration, and running one for a block.

Apart from :mod:`.sinks` because choosing needs every sink (HTTP, Kafka, log)
while those sinks need the shared base: with selection here, :mod:`.http` and
:mod:`.kafka` import :mod:`.sinks`, this module imports all three, and no import
runs back. :func:`select_sink` picks from a :class:`SinkConfig` or the
environment, and :func:`open_sink` runs one for a block.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping

import attrs
import trio

from .._errors import TrickleError
from .._wire.validate import instance_of, optional, text
from .http import HttpSink
from .kafka import KafkaSink
from .sinks import (
    DEFAULT_KAFKA_TOPIC,
    DEFAULT_SHUTDOWN_TIMEOUT,
    FanoutSink,
    LogSink,
    NullSink,
    TelemetrySink,
)

__all__ = [
    "SinkConfig",
    "TelemetryConfigError",
    "open_sink",
    "select_sink",
]

log = logging.getLogger("trio_trickle.telemetry")

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
