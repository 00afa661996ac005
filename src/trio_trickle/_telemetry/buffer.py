"""The buffer every draining telemetry sink is built on, and what those sinks share.

:class:`EventBuffer` is the bounded, drop-oldest, thread-safe queue between a
sink's non-blocking ``emit`` and its single drain task (TEL-047, TEL-048).
:class:`BufferedSink` holds what the log, HTTP and Kafka sinks do alike on top
of it: ``emit``, the TEL-049 counters, and the one-shot start of ``run()``.
Apart from :mod:`.sinks` (the sink protocol and the simple sinks) and
:mod:`.selection` (configuration and choosing a sink) so each sink module builds
on this one without importing the others.
"""

from __future__ import annotations

import collections
import contextlib
import math
import threading
from collections.abc import Sequence
from typing import ClassVar

import trio

from .._wire.telemetry import TelemetryEvent

__all__ = ["EventBuffer"]


class EventBuffer:
    """Bounded FIFO of events: ``put`` from any thread, one trio consumer.

    Full means the oldest event is dropped and counted. The consumer may *pin*
    events at the head while it delivers them: a pinned event is never dropped by
    the bound (it is already on the wire; its answer decides its fate), so the
    bound drops the oldest unpinned one instead. Unlike
    :class:`~trio_trickle._telemetry.outlet.DropOldestOutlet`, events stay in the buffer
    until the consumer removes them, which is what at-least-once delivery needs,
    and the trio token is taken at :meth:`bind` rather than at construction.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        #: Events offered by ``put`` (those dropped at once included).
        self.accepted = 0
        #: Events dropped by the bound, or offered after ``close``.
        self.dropped = 0
        #: Offered objects that were not events (a caller's bug; never raised to it).
        self.rejected = 0
        #: Bumped on every change of the contents (a spool writer compares it).
        self.changes = 0
        self._items: collections.deque[TelemetryEvent] = collections.deque()
        self._pinned = 0
        self._closed = False
        self._lock = threading.Lock()
        self._waiter: trio.Event | None = None
        self._want: float = 1
        self._poked = False
        self._token: trio.lowlevel.TrioToken | None = None
        self._trio_thread: int | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def pinned(self) -> int:
        return self._pinned

    @property
    def closed(self) -> bool:
        return self._closed

    def bind(self) -> None:
        """Attach to the running trio loop so puts from other threads can wake the consumer."""
        self._token = trio.lowlevel.current_trio_token()
        self._trio_thread = threading.get_ident()

    def put(self, event: object) -> None:
        """Append ``event``, dropping the oldest unpinned event when full. Never blocks.

        Anything but a :class:`TelemetryEvent` is refused and counted in ``rejected``.
        """
        with self._lock:
            self.accepted += 1
            if not isinstance(event, TelemetryEvent):
                self.rejected += 1
                return
            if self._closed:
                self.dropped += 1
                return
            if len(self._items) >= self.capacity:
                self.dropped += 1
                if len(self._items) <= self._pinned:
                    return  # everything held is on the wire: the newcomer is the one to go
                if self._pinned:
                    del self._items[self._pinned]
                else:
                    self._items.popleft()
            self._items.append(event)
            self.changes += 1
            waiter = self._take_waiter_locked()
        if waiter is not None:
            self._signal(waiter)

    def prepend(self, events: Sequence[TelemetryEvent]) -> None:
        """Put ``events`` before everything held (restored from a spool, or handed back)."""
        if not events:
            return
        with self._lock:
            head = [self._items.popleft() for _ in range(self._pinned)]
            self._items.extendleft(reversed(events))
            self._items.extendleft(reversed(head))
            over = len(self._items) - self.capacity
            if over > 0:
                # Oldest unpinned first: right after the pinned head.
                for _ in range(over):
                    del self._items[self._pinned]
                self.dropped += over
            self.changes += 1
            waiter = self._take_waiter_locked()
        if waiter is not None:
            self._signal(waiter)

    def pin(self, count: int) -> list[TelemetryEvent]:
        """Pin up to ``count`` events at the head and return them, oldest first."""
        with self._lock:
            self._pinned = min(count, len(self._items))
            return [self._items[i] for i in range(self._pinned)]

    def set_pinned(self, count: int) -> None:
        """Shrink the pinned head to ``count`` events (the rest become droppable again)."""
        with self._lock:
            self._pinned = max(0, min(count, self._pinned))

    def pop_pinned(self, count: int) -> None:
        """Remove ``count`` pinned events from the head: delivered, or dropped by a rule."""
        with self._lock:
            if count > self._pinned:
                raise ValueError(f"only {self._pinned} events are pinned, not {count}")
            for _ in range(count):
                self._items.popleft()
            self._pinned -= count
            self.changes += 1

    def take(self, count: int) -> list[TelemetryEvent]:
        """Remove and return up to ``count`` events from the head (nothing may be pinned)."""
        with self._lock:
            if self._pinned:
                raise ValueError("take() while events are pinned")
            n = min(count, len(self._items))
            batch = [self._items.popleft() for _ in range(n)]
            if n:
                self.changes += 1
            return batch

    def snapshot(self) -> list[TelemetryEvent]:
        """Every event held, oldest first (for the spool)."""
        with self._lock:
            return list(self._items)

    def close(self) -> None:
        """Refuse further puts (counted as dropped) and wake the consumer."""
        with self._lock:
            self._closed = True
        self.poke()

    def poke(self) -> None:
        """Wake the consumer's :meth:`wait` now, or make its next one return at once."""
        with self._lock:
            self._poked = True
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._signal(waiter)

    async def wait(self, min_items: float = 1, deadline: float = math.inf) -> None:
        """Return once ``min_items`` events are held, on a poke, or at ``deadline``.

        The caller re-checks its own conditions afterwards: this only says
        "something may have changed".
        """
        with self._lock:
            if self._poked or len(self._items) >= min_items:
                self._poked = False
                return
            event = self._waiter = trio.Event()
            # A finite want above the bound means "when full"; an infinite one (a
            # backoff or a pause) means only a poke or the deadline may wake it,
            # never a put into a full buffer that drops its oldest.
            self._want = min_items if math.isinf(min_items) else min(min_items, self.capacity)
        with trio.move_on_at(deadline):
            await event.wait()
        with self._lock:
            self._poked = False
            if self._waiter is event:
                self._waiter = None

    def _take_waiter_locked(self) -> trio.Event | None:
        if self._waiter is not None and len(self._items) >= self._want:
            waiter, self._waiter = self._waiter, None
            return waiter
        return None

    def _signal(self, event: trio.Event) -> None:
        if threading.get_ident() == self._trio_thread or self._token is None:
            event.set()
            return
        # RunFinishedError: the consumer's run is over; nothing is left to wake.
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(event.set)


class BufferedSink:
    """The part of a sink that drains an :class:`EventBuffer` that is the same for all.

    ``emit`` only puts into the buffer. The counters (TEL-049) are the buffer's
    (``accepted``; ``dropped`` by the bound; ``rejected`` non-events, counted as
    failed) plus the drain task's own ``_delivered``, ``_dropped`` (by a drop
    rule) and ``_failed``. ``_done`` is set once the drain task has finished.
    """

    #: The sink's name in the error of a second ``run()``.
    _kind: ClassVar[str]

    def __init__(self, max_buffer: int) -> None:
        self._buffer = EventBuffer(max_buffer)
        self._delivered = 0
        self._dropped = 0
        self._failed = 0
        self._started = False
        self._done = trio.Event()

    @property
    def accepted(self) -> int:
        return self._buffer.accepted

    @property
    def delivered(self) -> int:
        return self._delivered

    @property
    def dropped(self) -> int:
        return self._buffer.dropped + self._dropped

    @property
    def failed(self) -> int:
        return self._failed + self._buffer.rejected

    def emit(self, event: TelemetryEvent) -> None:
        """Queue ``event``; never blocks or raises, from any thread (TEL-047)."""
        self._buffer.put(event)

    def _begin_run(self) -> None:
        """Start of ``run()``: refuse a second call, bind the buffer to this trio run."""
        if self._started:
            raise RuntimeError(f"{self._kind}.run() may be called once")
        self._started = True
        self._buffer.bind()
