"""Sink plumbing: the shared buffer, LogSink, NullSink, fan-out, choosing a sink."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest
import trio

from trio_trickle._telemetry.buffer import EventBuffer
from trio_trickle._telemetry.http import HttpSink, _Backoff
from trio_trickle._telemetry.kafka import kafka_producer_config
from trio_trickle._telemetry.selection import (
    SinkConfig,
    TelemetryConfigError,
    open_sink,
    select_sink,
)
from trio_trickle._telemetry.sinks import FanoutSink, LogSink, NullSink, TelemetrySink
from trio_trickle._wire.telemetry import TelemetryEvent


def make_event(i: int, name: str = "custom_probe") -> TelemetryEvent:
    return TelemetryEvent.stamp(
        name, clock_ms=lambda: 1_717_000_000_000 + i, new_id=uuid.uuid4, metadata={"seq": i}
    )


def seqs(events: list[TelemetryEvent]) -> list[int]:
    return [e.metadata["seq"] for e in events]


# -- EventBuffer ------------------------------------------------------------------


@pytest.mark.spec("TEL-048", "TEL-049")
def test_buffer_drops_oldest_and_counts() -> None:
    buffer = EventBuffer(3)
    for i in range(10):
        buffer.put(make_event(i))
    assert (buffer.accepted, buffer.dropped, len(buffer)) == (10, 7, 3)
    assert seqs(buffer.take(10)) == [7, 8, 9]


@pytest.mark.spec("TEL-048")
def test_pinned_head_is_never_dropped() -> None:
    buffer = EventBuffer(4)
    for i in range(4):
        buffer.put(make_event(i))
    assert seqs(buffer.pin(2)) == [0, 1]
    for i in range(4, 8):
        buffer.put(make_event(i))
    # The bound took the oldest *unpinned* events; the two on the wire stay.
    assert seqs(buffer.snapshot()) == [0, 1, 6, 7]
    assert buffer.dropped == 4
    buffer.pop_pinned(2)
    assert seqs(buffer.snapshot()) == [6, 7]
    # Everything pinned and full: the newcomer is the one dropped.
    one = EventBuffer(1)
    one.put(make_event(0))
    one.pin(1)
    one.put(make_event(1))
    assert seqs(one.snapshot()) == [0]
    assert one.dropped == 1


def test_prepend_goes_before_new_events_and_after_the_pinned_head() -> None:
    buffer = EventBuffer(10)
    for i in (10, 11, 12):
        buffer.put(make_event(i))
    buffer.pin(1)
    buffer.prepend([make_event(i) for i in range(3)])
    assert seqs(buffer.snapshot()) == [10, 0, 1, 2, 11, 12]
    small = EventBuffer(3)
    small.put(make_event(10))
    small.prepend([make_event(i) for i in range(4)])
    assert seqs(small.snapshot()) == [2, 3, 10]
    assert small.dropped == 2


@pytest.mark.spec("TEL-047")
def test_put_of_a_non_event_is_counted_not_raised() -> None:
    buffer = EventBuffer(2)
    buffer.put("not an event")
    buffer.put(None)
    assert (buffer.accepted, buffer.rejected, len(buffer)) == (2, 2, 0)
    buffer.close()
    buffer.put(make_event(1))
    assert buffer.dropped == 1


@pytest.mark.spec("TEL-047", "TEL-048")
async def test_threads_flood_without_blocking_and_order_is_kept() -> None:
    buffer = EventBuffer(1000)
    buffer.bind()
    per_thread = 25_000
    taken: list[TelemetryEvent] = []
    events = [[make_event(t * per_thread + i) for i in range(per_thread)] for t in range(4)]
    slowest = [0.0]

    def produce(batch: list[TelemetryEvent]) -> None:
        for event in batch:
            start = time.perf_counter()
            buffer.put(event)
            slowest[0] = max(slowest[0], time.perf_counter() - start)

    async def consume() -> None:
        while True:
            batch = buffer.take(300)
            taken.extend(batch)
            if not batch:
                if buffer.closed:
                    return
                await buffer.wait(1)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            async with trio.open_nursery() as producers:
                for batch in events:
                    producers.start_soon(trio.to_thread.run_sync, produce, batch)
            buffer.close()
    assert buffer.accepted == 100_000
    assert len(taken) + buffer.dropped == 100_000
    assert slowest[0] < 0.5  # a put never waits on the consumer
    for t in range(4):
        mine = [s for s in seqs(taken) if t * per_thread <= s < (t + 1) * per_thread]
        assert mine == sorted(mine)


async def test_wait_returns_on_threshold_poke_or_deadline() -> None:
    buffer = EventBuffer(10)
    buffer.bind()
    with trio.fail_after(2):
        start = trio.current_time()
        await buffer.wait(1, trio.current_time() + 0.05)
        assert trio.current_time() - start >= 0.04
        async with trio.open_nursery() as nursery:
            nursery.start_soon(buffer.wait, 3)
            await trio.sleep(0.01)
            await trio.to_thread.run_sync(buffer.put, make_event(1))
            await trio.to_thread.run_sync(buffer.put, make_event(2))
            await trio.to_thread.run_sync(buffer.put, make_event(3))
        buffer.poke()
        await buffer.wait(100)  # the poke was remembered


# -- LogSink, NullSink, fan-out -----------------------------------------------------


@pytest.mark.spec("TEL-039", "TEL-047", "TEL-049")
async def test_log_sink_writes_one_structured_line_per_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_trickle.telemetry")
    sink = LogSink()
    assert isinstance(sink, TelemetrySink)
    events = [
        make_event(i, name) for i, name in enumerate(["pipeline_unloaded", "never_heard_of_it"])
    ]
    with trio.fail_after(5):
        async with open_sink(sink):
            sink.emit(events[0])
            await trio.to_thread.run_sync(sink.emit, events[1])
    records = [r for r in caplog.records if r.name == "trio_trickle.telemetry"]
    assert [r.telemetry_event for r in records] == [e.to_wire() for e in events]  # type: ignore[attr-defined]
    assert f"type=never_heard_of_it id={events[1].id}" in records[1].getMessage()
    assert (sink.accepted, sink.delivered, sink.dropped, sink.failed) == (2, 2, 0, 0)


@pytest.mark.spec("TEL-048", "TEL-049")
async def test_log_sink_bound_drops_oldest_before_it_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_trickle.telemetry")
    sink = LogSink(max_buffer=5)
    for i in range(12):
        sink.emit(make_event(i))
    sink.emit("garbage")  # type: ignore[arg-type]
    await sink.aclose()
    logged = [r.telemetry_event["data"]["seq"] for r in caplog.records]  # type: ignore[attr-defined]
    assert logged == [7, 8, 9, 10, 11]
    assert (sink.accepted, sink.delivered, sink.dropped, sink.failed) == (13, 5, 7, 1)


def test_null_sink_discards() -> None:
    sink = NullSink()
    assert isinstance(sink, TelemetrySink)
    sink.emit(make_event(1))
    assert (sink.accepted, sink.delivered, sink.dropped, sink.failed) == (1, 0, 0, 0)


class BrokenSink:
    """A sink that breaks every promise: emit raises, run dies, aclose raises."""

    accepted = delivered = dropped = failed = 0

    def emit(self, event: TelemetryEvent) -> None:
        raise RuntimeError("broken emit")

    async def run(self) -> None:
        raise RuntimeError("broken run")

    async def aclose(self) -> None:
        raise RuntimeError("broken close")


@pytest.mark.spec("TEL-050")
async def test_fanout_reaches_every_sink_and_survives_a_broken_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_trickle.telemetry")
    first, second = LogSink(), LogSink()
    fanout = FanoutSink([first, BrokenSink(), second])
    with trio.fail_after(5):
        async with open_sink(fanout):
            for i in range(5):
                fanout.emit(make_event(i))
            await trio.sleep(0.05)
            for i in range(5, 8):
                fanout.emit(make_event(i))
    assert first.delivered == second.delivered == 8
    assert fanout.accepted == 8
    assert fanout.delivered == 16
    assert any("broken run" in (r.exc_text or "") for r in caplog.records)


@pytest.mark.spec("TEL-051")
async def test_open_sink_in_a_caller_nursery_closes_within_the_deadline() -> None:
    sink = LogSink()
    with trio.fail_after(3):
        async with trio.open_nursery() as nursery:
            async with open_sink(sink, nursery=nursery, shutdown_timeout=1.0) as running:
                running.emit(make_event(1))
            assert sink.delivered == 1
            # The drain task is gone: the nursery exits at once.


def test_backoff_is_full_jitter_doubling_to_a_cap_and_resets() -> None:
    backoff = _Backoff(1.0, 8.0)
    bases = []
    for _ in range(6):
        bases.append(backoff._base)
        assert 0.0 <= backoff.next() <= bases[-1]
    assert bases == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    backoff.reset()
    assert backoff._base == 1.0
    spread = {round(_Backoff(60.0, 60.0).next()) for _ in range(200)}
    assert len(spread) > 20  # jittered, not a fixed sleep


# -- configuration ------------------------------------------------------------------


def test_nothing_configured_means_a_null_sink() -> None:
    assert isinstance(select_sink(SinkConfig.from_env({})), NullSink)
    assert isinstance(
        select_sink(SinkConfig.from_env({"TRIO_TRICKLE_TELEMETRY": "none"})), NullSink
    )


def test_log_and_http_from_the_environment() -> None:
    assert isinstance(select_sink(SinkConfig.from_env({"TRIO_TRICKLE_TELEMETRY": "log"})), LogSink)
    env = {
        "TRIO_TRICKLE_TELEMETRY": "log",
        "TRIO_TRICKLE_TELEMETRY_URL": "http://127.0.0.1:9/v1/metrics",
        "TRIO_TRICKLE_TELEMETRY_KEY": "secret",
        "TRIO_TRICKLE_TELEMETRY_SPOOL": "/tmp/never-written.jsonl",
    }
    sink = select_sink(SinkConfig.from_env(env))
    assert isinstance(sink, FanoutSink)
    http, logger = sink.sinks
    assert isinstance(http, HttpSink)
    assert isinstance(logger, LogSink)
    assert http.url == env["TRIO_TRICKLE_TELEMETRY_URL"]
    assert http.spool is not None
    assert str(http.spool.path) == "/tmp/never-written.jsonl"


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(TelemetryConfigError, match="unknown sink"):
        SinkConfig.from_env({"TRIO_TRICKLE_TELEMETRY": "log,carrier_pigeon"})
    with pytest.raises(TelemetryConfigError, match="TRIO_TRICKLE_TELEMETRY_KEY"):
        SinkConfig.from_env({"TRIO_TRICKLE_TELEMETRY_URL": "http://127.0.0.1:9/"})


@pytest.mark.spec("TEL-075")
def test_sasl_plain_over_tls_exactly_when_both_credentials_are_set() -> None:
    assert kafka_producer_config("b:9092") == {
        "bootstrap.servers": "b:9092",
        "client.id": "trio-trickle",
    }
    assert "security.protocol" not in kafka_producer_config("b:9092", sasl_username="u")
    config = kafka_producer_config("b:9092", sasl_username="u", sasl_password="p")
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "PLAIN"
    assert (config["sasl.username"], config["sasl.password"]) == ("u", "p")
    assert "ssl.ca.location" not in config  # librdkafka's default CA store


@pytest.mark.spec("TEL-073", "TEL-074")
def test_kafka_settings_from_the_environment() -> None:
    assert SinkConfig.from_env({"KAFKA_TOPIC": "t"}).kafka_bootstrap is None
    assert SinkConfig.from_env({"KAFKA_BOOTSTRAP_SERVERS": " "}).kafka_bootstrap is None
    config = SinkConfig.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k:9092"})
    assert (config.kafka_bootstrap, config.kafka_topic) == ("k:9092", "network_events")
    config = SinkConfig.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
            "KAFKA_TOPIC": "scope-events",
            "KAFKA_SASL_USERNAME": "user",
            "KAFKA_SASL_PASSWORD": "pw",
        }
    )
    assert config.kafka_topic == "scope-events"
    assert (config.kafka_sasl_username, config.kafka_sasl_password) == ("user", "pw")


@pytest.mark.spec("TEL-073", "TEL-074", "TEL-075")
def test_kafka_exactly_when_bootstrap_servers_is_set() -> None:
    pytest.importorskip("confluent_kafka", reason="the kafka extra is not installed")
    from trio_trickle._telemetry.kafka import KafkaSink

    assert SinkConfig.from_env({"KAFKA_TOPIC": "t"}).kafka_bootstrap is None
    assert isinstance(select_sink(SinkConfig.from_env({"KAFKA_TOPIC": "t"})), NullSink)
    sink = select_sink(SinkConfig.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k:9092"}))
    assert isinstance(sink, KafkaSink)
    assert sink.topic == "network_events"
    assert "security.protocol" not in sink.config
    sink = select_sink(
        SinkConfig.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
                "KAFKA_TOPIC": "scope-events",
                "KAFKA_SASL_USERNAME": "user",
                "KAFKA_SASL_PASSWORD": "pw",
            }
        )
    )
    assert isinstance(sink, KafkaSink)
    assert sink.topic == "scope-events"
    assert sink.config["bootstrap.servers"] == "k:9092"
    assert sink.config["security.protocol"] == "SASL_SSL"
    assert sink.config["sasl.mechanism"] == "PLAIN"


def test_select_sink_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "TRIO_TRICKLE_TELEMETRY_URL",
        "TRIO_TRICKLE_TELEMETRY_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRIO_TRICKLE_TELEMETRY", "LOG")
    assert isinstance(select_sink(), LogSink)


def test_emit_from_many_threads_on_an_unstarted_sink_never_raises() -> None:
    sink = LogSink(max_buffer=100)
    errors: list[BaseException] = []

    def spam() -> None:
        try:
            for i in range(1000):
                sink.emit(make_event(i))
        except BaseException as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    threads = [threading.Thread(target=spam) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert (sink.accepted, sink.dropped) == (4000, 3900)
