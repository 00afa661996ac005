"""A bounded, drop-oldest outlet between producers (any thread) and one trio consumer.

Events, data lines and telemetry are produced by user hooks, which may run in
worker threads, and must never block or fail the media path. So ``put`` never
blocks and never raises: when the buffer is full the *oldest* item is dropped
(the newest state is the useful one) and counted. One trio task drains it.

Waking the consumer from another thread costs a ``run_sync_soon``; a flood of
puts schedules at most one wake-up until the consumer has run.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from typing import Generic, TypeVar

import trio

__all__ = ["Bell", "DropOldestOutlet"]

T = TypeVar("T")


class Bell:
    """A level-triggered wake-up shared by several outlets, so one consumer can
    wait for whichever of them gets an item first. Trio-thread only."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def ring(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        """Return at once if rung since the last wait, else when next rung."""
        await self._event.wait()
        self._event = trio.Event()


class DropOldestOutlet(Generic[T]):
    """Bounded FIFO with a drop-oldest policy; ``put`` is safe from any thread."""

    def __init__(self, capacity: int, *, bell: Bell | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        #: Items dropped because the buffer was full (oldest first).
        self.dropped = 0
        #: Items ever accepted by ``put`` (dropped ones included).
        self.accepted = 0
        self._items: collections.deque[T] = collections.deque()
        self._lock = threading.Lock()
        self._closed = False
        self._wake = trio.Event()
        self._wake_pending = False
        self._token = trio.lowlevel.current_trio_token()
        self._trio_thread = threading.get_ident()
        self._bell = bell

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> bool:
        """Add ``item``; returns False (and drops it) only if the outlet is closed."""
        with self._lock:
            if self._closed:
                return False
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.accepted += 1
            if self._wake_pending:
                return True
            self._wake_pending = True
        self._signal()
        return True

    def close(self) -> None:
        """No more puts; the consumer drains what is left, then sees the end."""
        with self._lock:
            self._closed = True
        self._signal()

    def _ring(self) -> None:
        self._wake.set()
        if self._bell is not None:
            self._bell.ring()

    def _signal(self) -> None:
        if threading.get_ident() == self._trio_thread:
            self._ring()
            return
        # RunFinishedError: the consumer's run is over; nothing is left to wake.
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._ring)

    def get_nowait(self, max_items: int = 256) -> list[T]:
        """Up to ``max_items`` items, oldest first, without waiting (maybe none)."""
        with self._lock:
            count = min(max_items, len(self._items))
            batch = [self._items.popleft() for _ in range(count)]
            if not self._items:
                self._wake_pending = False
            return batch

    async def get_batch(self, max_items: int = 256) -> list[T]:
        """Wait for items and return up to ``max_items`` of them, oldest first.

        Returns an empty list once the outlet is closed and drained.
        """
        while True:
            with self._lock:
                if self._items:
                    count = min(max_items, len(self._items))
                    batch = [self._items.popleft() for _ in range(count)]
                    if not self._items:
                        self._wake_pending = False
                    return batch
                if self._closed:
                    return []
                self._wake_pending = False
                wake = self._wake = trio.Event()
            await wake.wait()
