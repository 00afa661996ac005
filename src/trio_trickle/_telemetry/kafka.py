"""KafkaSink: produce each telemetry envelope to a Kafka topic with confluent-kafka.

One record per event, key = the event id, value = the compact envelope JSON
(TEL-076), the format Scope's and go-livepeer's publishers write. Events wait
in a bounded drop-oldest buffer until the producer takes them (10,000 by
default, TEL-077); from there librdkafka owns them, with its own retries, and
every delivery report is counted (TEL-078).

confluent-kafka is an optional extra (``trio-trickle[kafka]``) and is imported
when a KafkaSink is built, so a missing package is a clear error at start-up,
not at the first event. Its client calls can block (``poll``, ``flush``), so
they all run through ``trio.to_thread.run_sync``; delivery callbacks run in
that worker thread.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import trio

from .._errors import ProtocolError, TrickleError
from .._wire.telemetry import TelemetryEvent
from .buffer import BufferedSink
from .sinks import DEFAULT_KAFKA_TOPIC, DEFAULT_SHUTDOWN_TIMEOUT

__all__ = ["KafkaSink", "KafkaUnavailable", "kafka_producer_config"]

log = logging.getLogger("trio_trickle.telemetry.kafka")

#: Events handed to the producer per worker-thread call.
_PRODUCE_CHUNK = 500


class KafkaUnavailable(TrickleError, ImportError):
    """KafkaSink was asked for but the confluent-kafka package is not installed."""


class _Producer(Protocol):
    """The part of ``confluent_kafka.Producer`` this sink uses."""

    def produce(
        self,
        topic: str,
        value: bytes | None = ...,
        key: bytes | None = ...,
        *,
        on_delivery: Callable[[Any, Any], None] | None = ...,
    ) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...

    def flush(self, timeout: float = ...) -> int: ...

    def purge(self) -> None: ...

    def __len__(self) -> int: ...


def _import_confluent() -> Any:
    try:
        return importlib.import_module("confluent_kafka")
    except ImportError as exc:
        raise KafkaUnavailable(
            "KafkaSink needs the confluent-kafka package: pip install 'trio-trickle[kafka]'"
        ) from exc


def kafka_producer_config(
    bootstrap: str,
    *,
    sasl_username: str | None = None,
    sasl_password: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The librdkafka settings for ``bootstrap``: SASL_SSL/PLAIN when both credentials are set.

    TEL-075. TLS verifies the broker against the default CA store (librdkafka's
    default). ``extra`` is applied last and may override anything.
    """
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "client.id": "trio-trickle"}
    if sasl_username and sasl_password:
        config.update(
            {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "PLAIN",
                "sasl.username": sasl_username,
                "sasl.password": sasl_password,
            }
        )
    config.update(extra or {})
    return config


class KafkaSink(BufferedSink):
    """Produce telemetry to ``topic`` on the cluster at ``bootstrap``.

    Counters: ``accepted``, ``delivered`` and ``failed`` from delivery reports
    (a failure is logged with the event id), ``dropped`` by the buffer bound.
    ``producer_config`` adds or overrides librdkafka settings.
    """

    _kind = "KafkaSink"

    def __init__(
        self,
        bootstrap: str,
        topic: str = DEFAULT_KAFKA_TOPIC,
        *,
        producer_config: Mapping[str, Any] | None = None,
        sasl_username: str | None = None,
        sasl_password: str | None = None,
        max_buffer: int = 10_000,
        poll_interval: float = 0.1,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        if not topic:
            raise ValueError("topic must not be empty")
        if not poll_interval > 0 or not shutdown_timeout > 0:
            raise ValueError("poll_interval and shutdown_timeout must be positive")
        super().__init__(max_buffer)
        self._kafka = _import_confluent()
        self.topic = topic
        self.config = kafka_producer_config(
            bootstrap,
            sasl_username=sasl_username,
            sasl_password=sasl_password,
            extra=producer_config,
        )
        self.config.setdefault("logger", logging.getLogger("trio_trickle.telemetry.kafka.client"))
        self.config.setdefault("error_cb", self._on_error)
        # librdkafka's own queue is bounded like ours: when it is full, events wait
        # in our buffer, where the oldest are dropped (TEL-077), not in C memory.
        self.config.setdefault("queue.buffering.max.messages", max_buffer)
        self.poll_interval = poll_interval
        self.shutdown_timeout = shutdown_timeout
        #: Guards the counters delivery reports bump from the worker thread.
        self._lock = threading.Lock()
        self._closing = False
        self._close_by: float | None = None

    def __repr__(self) -> str:
        return f"KafkaSink({self.config['bootstrap.servers']!r}, {self.topic!r})"

    @property
    def buffered(self) -> int:
        """Events waiting for the producer (not those librdkafka already holds)."""
        return len(self._buffer)

    async def run(self) -> None:
        """Feed the producer and serve delivery reports until cancelled or closed."""
        self._begin_run()
        try:
            producer: _Producer = await trio.to_thread.run_sync(self._kafka.Producer, self.config)
        except BaseException:
            self._done.set()  # a bad setting: aclose() must not wait for a drain that never ran
            raise
        try:
            while True:
                batch = self._buffer.take(_PRODUCE_CHUNK)
                if batch:
                    rest = await trio.to_thread.run_sync(self._produce, producer, batch)
                    if rest:  # librdkafka's own queue is full: let it drain, keep ours bounded
                        self._buffer.prepend(rest)
                        await trio.to_thread.run_sync(producer.poll, self.poll_interval)
                elif self._buffer.closed:
                    return
                elif len(producer):
                    await trio.to_thread.run_sync(producer.poll, self.poll_interval)
                else:
                    await self._buffer.wait(1)
        finally:
            with trio.CancelScope(shield=True):
                await self._finish(producer)
            self._done.set()

    async def aclose(self) -> None:
        """Produce what waits, flush within the shutdown deadline, count what is left as failed."""
        if not self._closing:
            self._closing = True
            self._close_by = trio.current_time() + self.shutdown_timeout
            self._buffer.close()
        if not self._started:
            left = self._buffer.take(len(self._buffer))
            if left:
                log.warning("telemetry: %d events never reached Kafka (sink not run)", len(left))
                self._count_failed(len(left))
            self._done.set()
            return
        with trio.move_on_after(self.shutdown_timeout + 1.0):
            await self._done.wait()

    # -- worker-thread side ---------------------------------------------------------

    def _produce(self, producer: _Producer, batch: list[TelemetryEvent]) -> list[TelemetryEvent]:
        """Hand ``batch`` to the producer; returns the tail it had no room for."""
        for index, event in enumerate(batch):
            try:
                key, value = event.kafka_record()
            except ProtocolError as exc:  # PayloadTooLarge: larger than TEL-014 allows
                log.warning("telemetry: dropping event %s that cannot be sent: %s", event.id, exc)
                self._count_failed(1)
                continue
            try:
                producer.produce(self.topic, value=value, key=key, on_delivery=self._on_delivery)
            except BufferError:
                return batch[index:]
            except Exception as exc:
                log.warning("telemetry: Kafka refused event %s: %s", event.id, exc)
                self._count_failed(1)
        producer.poll(0)
        return []

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            with self._lock:
                self._delivered += 1
            return
        key = msg.key() if msg is not None else None
        event_id = key.decode("ascii", "replace") if isinstance(key, bytes) else "?"
        log.warning("telemetry: Kafka delivery of event %s failed: %s", event_id, err)
        self._count_failed(1)

    def _on_error(self, err: Any) -> None:
        log.info("telemetry: Kafka client error: %s", err)

    def _count_failed(self, count: int) -> None:
        with self._lock:
            self._failed += count

    async def _finish(self, producer: _Producer) -> None:
        """Last produce and flush, bounded by the shutdown deadline; the rest fails."""
        close_by = self._close_by or trio.current_time() + self.shutdown_timeout
        left = self._buffer.take(len(self._buffer))
        if left:
            rest = await trio.to_thread.run_sync(self._produce, producer, left)
            if rest:
                log.warning("telemetry: %d events found no room in the Kafka producer", len(rest))
                self._count_failed(len(rest))
        remaining = max(0.0, close_by - trio.current_time())
        unflushed = await trio.to_thread.run_sync(producer.flush, remaining)
        if unflushed:
            log.warning("telemetry: %d events undelivered to Kafka at shutdown", unflushed)
            producer.purge()
            # Purged records come back as failed delivery reports, counted there.
            await trio.to_thread.run_sync(producer.flush, 0.0)
