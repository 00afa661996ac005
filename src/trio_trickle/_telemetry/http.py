"""HttpSink: batched, ordered, at-least-once telemetry egress over HTTP POST.

Events wait in a bounded drop-oldest buffer (TEL-053) and go out as
``{"events": [...]}`` bodies (:class:`~trio_trickle.TelemetryBatch`) with a
bearer key (TEL-052), one request at a time and in emission order (TEL-055).
An event leaves the buffer only when a ``2xx`` acknowledged it or a rule dropped
it (TEL-056, TEL-068); every other outcome keeps it for the next attempt:

* network error, timeout, ``5xx``: exponential backoff with full jitter (TEL-057);
* ``401``: pause until :meth:`HttpSink.replace_key` (TEL-058);
* ``429``: wait ``Retry-After``, capped (TEL-059);
* ``413``: halve the batch; one event refused alone is dropped (TEL-060);
* ``400`` and other ``4xx``: drop the batch (TEL-061).

With a spool the unsent events survive a restart: read at start and sent first
(TEL-067), rewritten at most every 2 s while they change (TEL-064), written in
full at a clean shutdown after a last delivery attempt (TEL-065). Events carry
their id so a collector can dedupe the repeats a crash may cause (TEL-069).
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time

import httpx
import trio

from .._errors import ProtocolError
from .._wire.json_codec import dump_json
from .._wire.telemetry import TelemetryEvent
from .._wire.telemetry_sink import TelemetryBatch, parse_retry_after
from .buffer import BufferedSink
from .sinks import DEFAULT_SHUTDOWN_TIMEOUT
from .spool import DEFAULT_SPOOL_MAX_BYTES, DEFAULT_SPOOL_MAX_EVENTS, TelemetrySpool

__all__ = ["HttpSink"]

log = logging.getLogger("trio_trickle.telemetry.http")

#: Most events in one request (TEL-054); a full batch is sent without waiting.
MAX_BATCH_EVENTS = 500
#: Most bytes of encoded JSON in one request body (TEL-054).
MAX_BATCH_BYTES = 1024 * 1024
#: ``{"events":[`` plus ``]}`` around the comma-separated envelopes.
_BODY_OVERHEAD = len(b'{"events":[]}')


class _Backoff:
    """Exponential backoff with full jitter: uniform(0, base), base doubling to a cap."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self._base = initial

    def next(self) -> float:
        delay = random.uniform(0.0, self._base)
        self._base = min(self._base * 2.0, self.maximum)
        return delay

    def reset(self) -> None:
        self._base = self.initial


class HttpSink(BufferedSink):
    """POST telemetry batches to ``url`` with ``Authorization: Bearer <key>``.

    ``client``: an ``httpx.AsyncClient`` to use (not closed here); by default one
    is made per :meth:`run` with ``request_timeout``. Counters: ``accepted``,
    ``delivered`` (acknowledged by a ``2xx``), ``dropped`` (buffer bound, spool
    bound at shutdown, ``400``/``4xx``/lone ``413`` rules), ``failed`` (too large
    to encode, or unsent at shutdown with no spool), ``failed_requests``
    (attempts that will be retried), ``restored`` and ``spool_unreadable``
    (read from the spool at start).
    """

    _kind = "HttpSink"

    def __init__(
        self,
        url: str,
        key: str,
        *,
        flush_interval: float = 2.0,
        max_buffer: int = 50_000,
        max_batch_events: int = MAX_BATCH_EVENTS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        spool_path: str | os.PathLike[str] | None = None,
        spool_max_events: int = DEFAULT_SPOOL_MAX_EVENTS,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        spool_interval: float = 2.0,
        request_timeout: float = 10.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        retry_after_cap: float = 300.0,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        for name, value in (
            ("flush_interval", flush_interval),
            ("spool_interval", spool_interval),
            ("request_timeout", request_timeout),
            ("backoff_initial", backoff_initial),
            ("backoff_max", backoff_max),
            ("shutdown_timeout", shutdown_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive")
        if max_batch_events < 1 or max_batch_bytes < 1:
            raise ValueError("batch limits must be at least 1")
        if retry_after_cap < 0:
            raise ValueError("retry_after_cap must not be negative")
        super().__init__(max_buffer)
        self.url = url
        self._key = key
        self._key_version = 0
        self._key_lock = threading.Lock()
        self.flush_interval = flush_interval
        self.max_batch_events = max_batch_events
        self.max_batch_bytes = max_batch_bytes
        self.request_timeout = request_timeout
        self.retry_after_cap = retry_after_cap
        self.shutdown_timeout = shutdown_timeout
        self.spool_interval = spool_interval
        self.spool = (
            None
            if spool_path is None
            else TelemetrySpool(spool_path, max_events=spool_max_events, max_bytes=spool_max_bytes)
        )
        self._client = client
        self._backoff = _Backoff(backoff_initial, backoff_max)
        #: Requests that failed in a way that is retried (network, timeout, 5xx, 429).
        self.failed_requests = 0
        #: Events read back from the spool at start.
        self.restored = 0
        #: Spool lines that could not be read at start.
        self.spool_unreadable = 0
        #: True while a ``401`` holds sending until the key is replaced.
        self.paused = False
        self._closing = False
        self._send_scope = trio.CancelScope()
        self._spool_lock = trio.Lock()
        self._spool_ok = True
        self._spooled_version = -1
        #: The spool file's events are in the buffer (or there is no file to read).
        self._spool_loaded = False

    def __repr__(self) -> str:
        return f"HttpSink({self.url!r})"

    # -- the TelemetrySink surface (counters and emit: BufferedSink) ---------------

    @property
    def buffered(self) -> int:
        """Events held and not yet acknowledged (the in-flight batch included)."""
        return len(self._buffer)

    def replace_key(self, key: str) -> None:
        """Use ``key`` from the next request on; a ``401`` pause ends at once (TEL-058)."""
        with self._key_lock:
            self._key = key
            self._key_version += 1
        self._buffer.poke()

    async def run(self) -> None:
        """Restore the spool, then deliver until cancelled or closed; persist on the way out."""
        self._begin_run()
        client = self._client or httpx.AsyncClient(
            timeout=self.request_timeout, trust_env=False, follow_redirects=False
        )
        try:
            await self._restore()
            async with trio.open_nursery() as nursery:
                if self.spool is not None:
                    nursery.start_soon(self._spool_loop)
                with self._send_scope:
                    await self._send_loop(client)
                nursery.cancel_scope.cancel()
        finally:
            self._buffer.set_pinned(0)
            with trio.CancelScope(shield=True):
                await self._persist_final()
                if self._client is None:
                    await client.aclose()
            self._done.set()

    async def aclose(self) -> None:
        """Last delivery attempt within the shutdown deadline, then spool what is left.

        Delivery gets 80% of ``shutdown_timeout``; the rest is for the spool
        write. Events a request still carried when time ran out stay unsent.
        """
        if not self._closing:
            self._closing = True
            budget = self.shutdown_timeout * 0.8
            self._send_scope.deadline = min(self._send_scope.deadline, trio.current_time() + budget)
            self._buffer.close()
        if not self._started:
            await self.run()
            return
        with trio.move_on_after(self.shutdown_timeout):
            await self._done.wait()

    # -- sending ------------------------------------------------------------------

    async def _send_loop(self, client: httpx.AsyncClient) -> None:
        waiting_since: float | None = None
        while True:
            held = len(self._buffer)
            now = trio.current_time()
            if self._closing:
                if not held or not await self._send_batch(client):
                    return
                continue
            if not held:
                waiting_since = None
                await self._buffer.wait(1)
                continue
            if waiting_since is None:
                waiting_since = now
            due = waiting_since + self.flush_interval
            if held < self.max_batch_events and now < due:
                await self._buffer.wait(self.max_batch_events, due)
                continue
            await self._send_batch(client)
            waiting_since = trio.current_time() if len(self._buffer) else None

    async def _send_batch(self, client: httpx.AsyncClient) -> bool:
        """Send the batch at the head; False when closing cut delivery short."""
        events = self._buffer.pin(self.max_batch_events)
        size = _BODY_OVERHEAD
        count = 0
        for event in events:
            try:
                length = len(event.to_bytes())
            except ProtocolError as exc:  # PayloadTooLarge: larger than TEL-014 allows
                if count:
                    break  # send the ones before it first; it heads the next batch
                log.warning("telemetry: dropping event %s that cannot be sent: %s", event.id, exc)
                self._buffer.pop_pinned(1)
                self._failed += 1
                return True
            if count and size + length + 1 > self.max_batch_bytes:
                break
            size += length + (1 if count else 0)
            count += 1
        self._buffer.set_pinned(count)
        try:
            return await self._settle(client, events[:count])
        finally:
            self._buffer.set_pinned(0)

    async def _settle(self, client: httpx.AsyncClient, events: list[TelemetryEvent]) -> bool:
        """Deliver ``events`` (the pinned head) or drop them by a rule.

        Returns False when the sink is closing and could not finish: the events
        stay in the buffer for the spool.
        """
        while True:
            with self._key_lock:
                key, key_version = self._key, self._key_version
            status, retry_after = await self._post(client, events, key)
            if status is not None and 200 <= status < 300:
                self._buffer.pop_pinned(len(events))
                self._delivered += len(events)
                self._backoff.reset()
                self.paused = False
                return True
            if status == 413:
                if len(events) == 1:
                    log.warning("telemetry: collector refused event %s as too large", events[0].id)
                    self._drop(events)
                    return True
                first, second = TelemetryBatch(events=tuple(events)).split()
                return await self._settle(client, list(first.events)) and await self._settle(
                    client, list(second.events)
                )
            if status == 401:
                self.paused = True
                log.warning("telemetry: collector refused the API key; paused until replaced")
                if not await self._wait_for_key(key_version):
                    return False
                continue
            if status is not None and 400 <= status < 500 and status != 429:
                log.warning(
                    "telemetry: collector answered %d; dropped a batch of %d events from %s",
                    status,
                    len(events),
                    events[0].id,
                )
                self._drop(events)
                return True
            self.failed_requests += 1
            if self._closing:
                return False
            delay = None
            if status == 429 and retry_after is not None:
                delay = min(retry_after, self.retry_after_cap)
            if delay is None:
                delay = self._backoff.next()
            await self._buffer.wait(math.inf, trio.current_time() + delay)
            # Woken early by close(): one last attempt right away.

    def _drop(self, events: list[TelemetryEvent]) -> None:
        self._buffer.pop_pinned(len(events))
        self._dropped += len(events)

    async def _wait_for_key(self, seen: int) -> bool:
        while True:
            with self._key_lock:
                if self._key_version != seen:
                    return True
            if self._closing:
                return False
            await self._buffer.wait(math.inf)

    async def _post(
        self, client: httpx.AsyncClient, events: list[TelemetryEvent], key: str
    ) -> tuple[int | None, float | None]:
        """One POST; ``(status, Retry-After seconds)``, status None on a network error."""
        body = dump_json(TelemetryBatch(events=tuple(events)).to_wire())
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        try:
            with trio.fail_after(self.request_timeout):
                response = await client.post(self.url, content=body, headers=headers)
        except (httpx.HTTPError, trio.TooSlowError, OSError) as exc:
            log.info("telemetry: POST %s failed: %s", self.url, type(exc).__name__)
            return None, None
        if response.status_code == 429:
            return 429, parse_retry_after(response.headers.get("Retry-After"), now_s=time.time())
        if not 200 <= response.status_code < 300:
            log.info("telemetry: POST %s answered %d", self.url, response.status_code)
        return response.status_code, None

    # -- the spool ----------------------------------------------------------------

    async def _restore(self) -> None:
        if self.spool is None or self._spool_loaded or not self._spool_ok:
            return
        try:
            contents = await trio.to_thread.run_sync(self.spool.load)
        except OSError as exc:
            # Writing now would overwrite events we could not read: leave the file be.
            log.error("telemetry: cannot read spool %s (%s); spooling is off", self.spool, exc)
            self._spool_ok = False
            return
        self.spool_unreadable = contents.unreadable
        self._dropped += contents.trimmed
        self.restored = len(contents.events)
        emitted_before_run = len(self._buffer)
        self._buffer.prepend(contents.events)
        self._spool_loaded = True
        # The file now matches the buffer unless events were emitted before run().
        self._spooled_version = -1 if emitted_before_run else self._buffer.changes
        if contents.unreadable:
            log.warning("telemetry: skipped %d unreadable spool lines", contents.unreadable)

    async def _spool_loop(self) -> None:
        written = self._spooled_version
        while True:
            await trio.sleep(self.spool_interval)
            if self._buffer.changes != written:
                written = self._buffer.changes
                await self._write_spool()

    async def _write_spool(self) -> int:
        """Write what is held now; returns how many events the spool bound left out."""
        if self.spool is None or not self._spool_ok or not self._spool_loaded:
            return 0
        spool = self.spool
        events = self._buffer.snapshot()
        async with self._spool_lock:
            try:
                return await trio.to_thread.run_sync(spool.write, events)
            except OSError as exc:
                log.error("telemetry: cannot write spool %s: %s", spool, exc)
                return 0

    async def _persist_final(self) -> None:
        # Cancelled before the spool was read: read it now, or this write would lose it.
        await self._restore()
        held = len(self._buffer)
        if self.spool is not None and self._spool_ok:
            self._dropped += await self._write_spool()
        elif held:
            log.warning(
                "telemetry: %d events unsent at shutdown, no usable spool to keep them", held
            )
            self._failed += held
