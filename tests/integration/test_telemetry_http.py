"""HttpSink against a real collector: hypercorn on 127.0.0.1:0, answering as each test scripts.

The collector records every request (auth header, content type, body, when it
started and ended, how many were in flight) and keeps the events of every
``2xx`` answer in arrival order. Tests shrink the sink's timers (flush,
backoff, spool rewrite) so each runs in well under a second, except the
``Retry-After`` ones, which wait as long as the header says.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import hypercorn.config
import hypercorn.trio
import pytest
import trio

from tests.integration.servers import TcpForwarder
from trio_trickle._telemetry.http import HttpSink
from trio_trickle._telemetry.selection import open_sink
from trio_trickle._telemetry.spool import TelemetrySpool
from trio_trickle._wire.json_codec import dump_json
from trio_trickle._wire.telemetry import TelemetryEvent
from trio_trickle._wire.telemetry_sink import TelemetryBatch, encode_spool

Answer = tuple[int, list[tuple[str, str]]]
HANG: Answer = (-1, [])  # never answer


@attrs.define
class Seen:
    index: int
    headers: dict[str, str]
    body: bytes
    events: list[TelemetryEvent]
    started: float
    ended: float | None = None
    status: int | None = None

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.events]


class Collector:
    """A scriptable telemetry collector (an ASGI app)."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        #: Events of every 2xx answer, in arrival order (duplicates kept).
        self.accepted: list[TelemetryEvent] = []
        self.script: Callable[[Seen], Answer] = lambda seen: (200, [])
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        seen = Seen(
            index=len(self.requests),
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body=body,
            events=list(TelemetryBatch.from_wire(json.loads(body)).events),
            started=trio.current_time(),
        )
        self.requests.append(seen)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            status, headers = self.script(seen)
            if status == HANG[0]:
                await trio.sleep_forever()
            await trio.sleep(0.002)  # a request in flight long enough to overlap a second one
            seen.status = status
            if 200 <= status < 300:
                self.accepted.extend(seen.events)
            raw = [(k.encode(), v.encode()) for k, v in headers] + [(b"content-length", b"0")]
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": b""})
        finally:
            seen.ended = trio.current_time()
            self.in_flight -= 1

    def accepted_ids(self) -> list[str]:
        return [e.id for e in self.accepted]


@asynccontextmanager
async def serve(collector: Collector) -> AsyncIterator[str]:
    """Serve ``collector`` on 127.0.0.1:0; yields the metrics URL."""
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger("tests.hypercorn")
    config.graceful_timeout = 0.1
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            functools.partial(
                hypercorn.trio.serve,
                collector,  # type: ignore[arg-type]
                config,
                shutdown_trigger=shutdown.wait,
            )
        )
        try:
            yield binds[0] + "/v1/metrics"
        finally:
            shutdown.set()


def make_event(i: int, name: str = "stream_probe", pad: int = 0) -> TelemetryEvent:
    meta: dict[str, Any] = {"seq": i}
    if pad:
        meta["pad"] = "p" * pad
    return TelemetryEvent.stamp(
        name,
        clock_ms=lambda: 1_717_000_000_000 + i,
        new_id=uuid.uuid4,
        session_id="session-1",
        connection_id="stream-1",
        metadata=meta,
    )


def fast_sink(url: str, key: str = "k", **overrides: Any) -> HttpSink:
    settings: dict[str, Any] = {
        "flush_interval": 0.02,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "spool_interval": 0.02,
        "request_timeout": 2.0,
        "shutdown_timeout": 1.0,
    }
    settings.update(overrides)
    return HttpSink(url, key, **settings)


async def until(predicate: Callable[[], bool], within: float = 3.0) -> None:
    with trio.fail_after(within):
        while not predicate():
            await trio.sleep(0.005)


def ids(events: list[TelemetryEvent]) -> list[str]:
    return [e.id for e in events]


# -- batching and order ------------------------------------------------------------------


@pytest.mark.spec("TEL-039", "TEL-052", "TEL-054", "TEL-055", "TEL-056", "TEL-022")
async def test_full_batches_go_at_once_in_order_with_the_bearer_key() -> None:
    collector = Collector()
    events = [make_event(i, "stream_probe" if i % 3 else "never_heard_of") for i in range(1234)]
    async with serve(collector) as url:
        sink = fast_sink(url, "secret-key", flush_interval=30.0)
        with trio.fail_after(10):
            async with open_sink(sink):
                for event in events:
                    sink.emit(event)
                # Two full batches go without waiting for the 30 s flush timer.
                await until(lambda: len(collector.accepted) == 1000)
                await trio.sleep(0.1)
                assert len(collector.requests) == 2
                assert sink.buffered == 234
            # Closing sends the rest.
    assert collector.accepted_ids() == ids(events)
    assert [len(r.events) for r in collector.requests] == [500, 500, 234]
    assert collector.max_in_flight == 1
    for seen in collector.requests:
        assert seen.headers["authorization"] == "Bearer secret-key"
        assert seen.headers["content-type"] == "application/json"
        assert seen.body == dump_json(TelemetryBatch(events=tuple(seen.events)).to_wire())
        assert json.loads(seen.body)["events"] == [e.to_wire() for e in seen.events]
    assert (sink.accepted, sink.delivered, sink.dropped, sink.failed) == (1234, 1234, 0, 0)
    assert sink.buffered == 0


@pytest.mark.spec("TEL-054")
async def test_a_partial_batch_waits_for_the_flush_interval() -> None:
    collector = Collector()
    async with serve(collector) as url:
        sink = fast_sink(url, flush_interval=0.3)
        async with open_sink(sink):
            start = trio.current_time()
            for i in range(3):
                sink.emit(make_event(i))
            await until(lambda: bool(collector.accepted))
            waited = collector.requests[0].started - start
            assert 0.25 <= waited < 1.5
            assert len(collector.accepted) == 3


@pytest.mark.spec("TEL-054")
async def test_a_batch_body_stays_under_one_mebibyte() -> None:
    collector = Collector()
    events = [make_event(i, pad=50_000) for i in range(45)]
    async with serve(collector) as url:
        sink = fast_sink(url)
        with trio.fail_after(10):
            async with open_sink(sink):
                for event in events:
                    sink.emit(event)
                await until(lambda: len(collector.accepted) == 45, within=8)
    assert collector.accepted_ids() == ids(events)
    assert len(collector.requests) >= 3
    assert all(len(r.body) <= 1024 * 1024 for r in collector.requests)
    assert sum(len(r.body) > 900 * 1024 for r in collector.requests) >= 2


@pytest.mark.spec("TEL-014", "TEL-049")
async def test_an_event_too_large_to_encode_is_counted_failed_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_trickle.telemetry")
    collector = Collector()
    events = [make_event(0), make_event(1, pad=70_000), make_event(2)]
    async with serve(collector) as url:
        sink = fast_sink(url)
        with trio.fail_after(10):
            async with open_sink(sink):
                for event in events:
                    sink.emit(event)
                await until(lambda: len(collector.accepted) == 2)
    assert collector.accepted_ids() == ids([events[0], events[2]])
    assert (sink.accepted, sink.delivered, sink.dropped, sink.failed) == (3, 2, 0, 1)
    assert any(events[1].id in r.getMessage() for r in caplog.records)


# -- failures that are retried -------------------------------------------------------------


@pytest.mark.spec("TEL-057", "TEL-055", "TEL-056")
async def test_5xx_and_timeouts_keep_the_batch_and_retry_it() -> None:
    collector = Collector()
    answers: list[Answer] = [(503, []), (500, []), HANG, (502, [])]
    collector.script = lambda seen: answers[seen.index] if seen.index < len(answers) else (200, [])
    events = [make_event(i) for i in range(10)]
    async with serve(collector) as url:
        sink = fast_sink(url, request_timeout=0.3)
        with trio.fail_after(10):
            async with open_sink(sink):
                for event in events:
                    sink.emit(event)
                await until(lambda: len(collector.accepted) == 10)
    assert [r.ids for r in collector.requests] == [ids(events)] * 5
    assert collector.accepted_ids() == ids(events)
    assert sink.failed_requests == 4
    assert (sink.delivered, sink.dropped, sink.failed) == (10, 0, 0)


@pytest.mark.spec("TEL-057", "TEL-069")
async def test_an_outage_loses_nothing() -> None:
    collector = Collector()
    async with serve(collector) as url, trio.open_nursery() as nursery:
        door = TcpForwarder(url.rsplit("/v1/", 1)[0])
        await door.reserve_port()  # nothing listens yet: connections are refused
        sink = fast_sink(door.url_for(url))
        events = [make_event(i) for i in range(300)]
        with trio.fail_after(10):
            async with open_sink(sink):
                for chunk in range(3):
                    for event in events[chunk * 100 : (chunk + 1) * 100]:
                        sink.emit(event)
                    await trio.sleep(0.05)
                assert sink.failed_requests >= 3
                assert collector.requests == []
                await nursery.start(door.run)
                await until(lambda: len(collector.accepted) == 300)
            nursery.cancel_scope.cancel()
    assert collector.accepted_ids() == ids(events)
    assert sink.dropped == 0


# -- 401, 429 ------------------------------------------------------------------------------


@pytest.mark.spec("TEL-058")
async def test_401_pauses_until_the_key_is_replaced() -> None:
    collector = Collector()
    collector.script = lambda seen: (
        (200, []) if seen.headers["authorization"] == "Bearer good" else (401, [])
    )
    events = [make_event(i) for i in range(20)]
    async with serve(collector) as url:
        sink = fast_sink(url, "stale")
        with trio.fail_after(10):
            async with open_sink(sink):
                for event in events[:10]:
                    sink.emit(event)
                await until(lambda: sink.paused)
                await trio.sleep(0.3)  # many backoff periods: still only the one request
                assert len(collector.requests) == 1
                for event in events[10:]:
                    sink.emit(event)  # still buffered while paused
                await trio.sleep(0.05)
                assert len(collector.requests) == 1
                assert sink.buffered == 20
                replaced = trio.current_time()
                await trio.to_thread.run_sync(sink.replace_key, "good")
                await until(lambda: len(collector.accepted) == 20)
                assert collector.requests[1].started - replaced < 0.2  # at once
    assert collector.accepted_ids() == ids(events)
    assert not sink.paused


@pytest.mark.spec("TEL-059")
@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_429_waits_for_retry_after(form: str) -> None:
    collector = Collector()

    def script(seen: Seen) -> Answer:
        if seen.index:
            return 200, []
        if form == "seconds":
            return 429, [("Retry-After", "1")]
        return 429, [("Retry-After", email.utils.formatdate(time.time() + 2, usegmt=True))]

    collector.script = script
    async with serve(collector) as url:
        sink = fast_sink(url)
        with trio.fail_after(10):
            async with open_sink(sink):
                sink.emit(make_event(1))
                await until(lambda: len(collector.accepted) == 1, within=5)
    first, second = collector.requests
    assert first.ended is not None
    # One second (or the date, which is at least one whole second away); the
    # backoff alone would have retried within 10 ms.
    assert second.started - first.ended >= 0.9
    assert second.started - first.ended < 3.0


@pytest.mark.spec("TEL-059")
async def test_429_retry_after_is_capped_and_falls_back_to_backoff() -> None:
    collector = Collector()
    answers: list[Answer] = [
        (429, [("Retry-After", "86400")]),
        (429, [("Retry-After", "soon-ish")]),
        (429, []),
    ]
    collector.script = lambda seen: answers[seen.index] if seen.index < len(answers) else (200, [])
    async with serve(collector) as url:
        sink = fast_sink(url, retry_after_cap=0.3)
        with trio.fail_after(10):
            async with open_sink(sink):
                sink.emit(make_event(1))
                await until(lambda: len(collector.accepted) == 1)
    gaps = [
        b.started - a.ended
        for a, b in zip(collector.requests, collector.requests[1:], strict=False)
        if a.ended is not None
    ]
    assert 0.25 <= gaps[0] < 1.0  # a day, capped at 0.3 s
    assert gaps[1] < 0.2  # unreadable: the short backoff
    assert gaps[2] < 0.2  # absent: the same


# -- rules that drop ---------------------------------------------------------------------------


@pytest.mark.spec("TEL-060", "TEL-049")
async def test_413_halves_the_batch_and_drops_a_lone_oversized_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_trickle.telemetry")
    collector = Collector()

    def script(seen: Seen) -> Answer:
        too_big = len(seen.events) > 3 or any("pad" in e.metadata for e in seen.events)
        return (413, []) if too_big else (200, [])

    collector.script = script
    events = [make_event(i, pad=2000 if i == 11 else 0) for i in range(20)]
    async with serve(collector) as url:
        sink = fast_sink(url, flush_interval=0.2)
        with trio.fail_after(10):
            async with open_sink(sink):
                for event in events:
                    sink.emit(event)
                await until(lambda: len(collector.accepted) == 19)
    kept = [e for i, e in enumerate(events) if i != 11]
    assert collector.accepted_ids() == ids(kept)
    sizes = [len(r.events) for r in collector.requests]
    assert sizes[:3] == [20, 10, 5]  # halved, first half first
    assert all(len(r.events) <= 3 for r in collector.requests if r.status == 200)
    assert (sink.delivered, sink.dropped) == (19, 1)
    assert any(events[11].id in r.getMessage() for r in caplog.records)


@pytest.mark.spec("TEL-061", "TEL-049")
@pytest.mark.parametrize("status", [400, 404, 422])
async def test_4xx_drops_the_batch_and_logs_it(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_trickle.telemetry")
    collector = Collector()
    collector.script = lambda seen: (status, []) if seen.index == 0 else (200, [])
    events = [make_event(i) for i in range(12)]
    async with serve(collector) as url:
        sink = fast_sink(url)
        with trio.fail_after(10):
            async with open_sink(sink):
                for event in events[:7]:
                    sink.emit(event)
                await until(lambda: len(collector.requests) == 1 and sink.buffered == 0)
                for event in events[7:]:
                    sink.emit(event)
                await until(lambda: len(collector.accepted) == 5)
    assert collector.requests[0].ids == ids(events[:7])
    assert collector.accepted_ids() == ids(events[7:])
    assert (sink.delivered, sink.dropped) == (5, 7)
    message = " ".join(r.getMessage() for r in caplog.records)
    assert f"answered {status}; dropped a batch of 7 events from {events[0].id}" in message


# -- never blocking ------------------------------------------------------------------------


@pytest.mark.spec("TEL-047", "TEL-048", "TEL-049", "TEL-053")
async def test_a_flood_never_blocks_and_counts_what_the_bound_dropped() -> None:
    collector = Collector()
    collector.script = lambda seen: (
        (200, []) if seen.headers["authorization"] == "Bearer good" else (401, [])
    )
    async with serve(collector) as url:
        sink = fast_sink(url, "stale", max_buffer=1000)
        first = make_event(-1)
        flood = [make_event(i) for i in range(100_000)]
        with trio.fail_after(20):
            async with open_sink(sink):
                sink.emit(first)
                await until(lambda: sink.paused)  # `first` is on the wire, answered 401
                slowest = 0.0

                def pour(events: list[TelemetryEvent]) -> float:
                    worst = 0.0
                    for event in events:
                        t0 = time.perf_counter()
                        sink.emit(event)
                        worst = max(worst, time.perf_counter() - t0)
                    return worst

                started = time.perf_counter()
                async with trio.open_nursery() as nursery:

                    async def from_thread() -> None:
                        nonlocal slowest
                        worst = await trio.to_thread.run_sync(pour, flood[50_000:])
                        slowest = max(slowest, worst)

                    nursery.start_soon(from_thread)
                    slowest = max(slowest, pour(flood[:50_000]))
                elapsed = time.perf_counter() - started
                assert sink.accepted == 100_001
                assert sink.buffered == 1000
                assert sink.dropped == 100_001 - 1000
                sink.replace_key("good")
                await until(lambda: len(collector.accepted) == 1000)
    assert elapsed < 10.0
    assert slowest < 0.5
    # The event on the wire survived the bound; after it, the newest 999. Each
    # producer's survivors are the tail of what it emitted, in its order.
    got = collector.accepted_ids()
    assert got[0] == first.id
    assert len(set(got)) == 1000
    by_id = {e.id: i for i, e in enumerate(flood)}
    positions = [by_id[i] for i in got[1:]]
    for end in (50_000, 100_000):
        mine = [p for p in positions if end - 50_000 <= p < end]
        assert mine == list(range(end - len(mine), end))
    assert (sink.delivered, sink.dropped) == (1000, 99_001)


# -- the spool -------------------------------------------------------------------------------


def spool_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_bytes().splitlines() if line]


@pytest.mark.spec("TEL-062", "TEL-064", "TEL-067", "TEL-068", "TEL-069")
async def test_restart_after_a_crash_resends_the_spool_first_in_order(tmp_path: Path) -> None:
    path = tmp_path / "telemetry" / "spool.jsonl"
    collector = Collector()
    down = True
    collector.script = lambda seen: (503, []) if down else (200, [])
    old = [make_event(i) for i in range(30)]
    new = [make_event(100 + i) for i in range(5)]
    async with serve(collector) as url:
        first = fast_sink(url, spool_path=path)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(first.run)
                for event in old:
                    first.emit(event)
                # Unsent events reach the spool within a rewrite interval.
                await until(lambda: spool_ids(path) == ids(old))
                crash_image = path.read_bytes()
                down = False
                await until(lambda: len(collector.accepted) == 30)
                nursery.cancel_scope.cancel()
        # The process "died" after delivery but before the spool was rewritten,
        # mid-way through appending a line.
        path.write_bytes(crash_image + b'{"id":"3f0c')
        down = True
        collector.accepted.clear()
        second = fast_sink(url, spool_path=path)
        for event in new:
            second.emit(event)  # emitted before the sink runs: still after the spool
        with trio.fail_after(10):
            async with open_sink(second):
                await until(lambda: second.failed_requests >= 2)
                await trio.sleep(0.1)
                # Not acknowledged: nothing may leave the spool.
                assert spool_ids(path) == ids(old + new)
                down = False
                await until(lambda: len(collector.accepted) == 35)
                await until(lambda: not path.exists())
    assert second.restored == 30
    assert second.spool_unreadable == 1
    assert collector.accepted_ids() == ids(old + new)


@pytest.mark.spec("TEL-051", "TEL-065", "TEL-070", "TEL-071")
async def test_clean_shutdown_and_restart_deliver_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    collector = Collector()
    down = False
    collector.script = lambda seen: (503, []) if down else (200, [])
    events = [make_event(i) for i in range(25)]
    async with serve(collector) as url:
        first = fast_sink(url, spool_path=path, shutdown_timeout=0.5)
        with trio.fail_after(10):
            async with open_sink(first):
                for event in events[:10]:
                    first.emit(event)
                await until(lambda: len(collector.accepted) == 10)
                down = True
                for event in events[10:]:
                    first.emit(event)
                await until(lambda: first.failed_requests >= 1)
                closing = trio.current_time()
            assert trio.current_time() - closing < 1.0
        # Acknowledged events are gone from the spool; the unsent ones are all there.
        assert spool_ids(path) == ids(events[10:])
        down = False
        second = fast_sink(url, spool_path=path)
        with trio.fail_after(10):
            async with open_sink(second):
                await until(lambda: len(collector.accepted) == 25)
        assert not path.exists()
        third = fast_sink(url, spool_path=path)
        with trio.fail_after(10):
            async with open_sink(third):
                await trio.sleep(0.1)
    assert collector.accepted_ids() == ids(events)
    assert (second.restored, third.restored) == (15, 0)


@pytest.mark.spec("TEL-051", "TEL-065")
async def test_close_against_a_hung_collector_returns_in_time_and_spools(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    collector = Collector()
    collector.script = lambda seen: HANG
    events = [make_event(i) for i in range(8)]
    async with serve(collector) as url:
        sink = fast_sink(url, spool_path=path, request_timeout=30.0, shutdown_timeout=0.5)
        with trio.fail_after(10):
            async with open_sink(sink):
                for event in events:
                    sink.emit(event)
                await until(lambda: collector.in_flight == 1)
                closing = trio.current_time()
            assert trio.current_time() - closing < 1.0
    assert spool_ids(path) == ids(events)
    assert sink.delivered == 0


@pytest.mark.spec("TEL-066", "TEL-049")
async def test_spool_bound_at_shutdown_keeps_the_newest_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    collector = Collector()
    collector.script = lambda seen: (503, [])
    events = [make_event(i) for i in range(12)]
    async with serve(collector) as url:
        sink = fast_sink(url, spool_path=path, spool_max_events=5, shutdown_timeout=0.3)
        with trio.fail_after(10):
            async with open_sink(sink):
                for event in events:
                    sink.emit(event)
                await until(lambda: sink.failed_requests >= 1)
    assert spool_ids(path) == ids(events[7:])
    assert sink.dropped == 7


@pytest.mark.spec("TEL-072")
async def test_spool_io_runs_off_the_event_loop_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[tuple[str, int]] = []
    real_load, real_write = TelemetrySpool.load, TelemetrySpool.write

    def load(self: TelemetrySpool) -> Any:
        threads.append(("load", threading.get_ident()))
        return real_load(self)

    def write(self: TelemetrySpool, events: Any) -> int:
        threads.append(("write", threading.get_ident()))
        return real_write(self, events)

    monkeypatch.setattr(TelemetrySpool, "load", load)
    monkeypatch.setattr(TelemetrySpool, "write", write)
    path = tmp_path / "spool.jsonl"
    path.write_bytes(encode_spool([make_event(0)]))
    collector = Collector()
    collector.script = lambda seen: (503, [])
    async with serve(collector) as url:
        sink = fast_sink(url, spool_path=path, shutdown_timeout=0.3)
        with trio.fail_after(10):
            async with open_sink(sink):
                sink.emit(make_event(1))
                await until(lambda: sum(kind == "write" for kind, _ in threads) >= 1)
    loop_thread = threading.get_ident()
    assert {kind for kind, _ in threads} == {"load", "write"}
    assert all(ident != loop_thread for _, ident in threads)


async def test_a_sink_closed_without_running_still_keeps_the_old_spool(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    old = [make_event(i) for i in range(3)]
    path.write_bytes(encode_spool(old))
    sink = HttpSink("http://127.0.0.1:9/v1/metrics", "k", spool_path=path, shutdown_timeout=0.3)
    new = make_event(9)
    sink.emit(new)
    with trio.fail_after(5):
        await sink.aclose()
    assert spool_ids(path) == ids([*old, new])


async def test_an_unreadable_spool_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    path.mkdir()  # reading it fails: writing over it could lose what it holds
    (path / "keep").write_bytes(b"precious")
    sink = HttpSink("http://127.0.0.1:9/v1/metrics", "k", spool_path=path, shutdown_timeout=0.3)
    sink.emit(make_event(1))
    with trio.fail_after(5):
        await sink.aclose()
    assert (path / "keep").read_bytes() == b"precious"
    assert sink.failed == 1


@pytest.mark.spec("TEL-057", "TEL-059")
async def test_a_full_buffer_does_not_cut_a_backoff_short() -> None:
    """While the collector says wait, emits into a full buffer drop the oldest; they
    must not wake the sender into an early retry (one per emit)."""
    collector = Collector()
    collector.script = lambda seen: (429, [("Retry-After", "30")]) if seen.index == 0 else (200, [])
    async with serve(collector) as url:
        sink = fast_sink(url, max_buffer=20, max_batch_events=5, shutdown_timeout=0.2)
        with trio.fail_after(10):
            async with open_sink(sink):
                for i in range(20):
                    sink.emit(make_event(i))
                await until(lambda: len(collector.requests) == 1)
                for i in range(20, 220):  # the buffer is full: each drops its oldest
                    sink.emit(make_event(i))
                    await trio.sleep(0.002)
                await trio.sleep(0.2)
                assert len(collector.requests) == 1  # still waiting out the Retry-After
    assert sink.dropped >= 200
