"""A small queue where recent items win: the video drop policy.

The decoder must never wait for a slow pipeline (RUN-114). Frames arrive in
bursts (a trickle chunk holds several frames), so a one-frame mailbox would drop
frames even when the pipeline keeps up on average. Instead frames wait in a
short queue: when it is full the oldest waiting frame is dropped, and a frame
that has waited longer than ``max_wait`` seconds is dropped when the processor
asks for the next one. A burst is absorbed; a pipeline that really lags always
gets recent frames, and nothing waits long enough to add visible latency.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import trio

__all__ = ["RecentQueue"]

T = TypeVar("T")


class RecentQueue(Generic[T]):
    """Bounded FIFO, drop-oldest on overflow and on staleness. Trio-thread only."""

    def __init__(
        self,
        capacity: int = 8,
        max_wait: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.max_wait = max_wait
        self._clock = clock
        self._items: collections.deque[tuple[float, T]] = collections.deque()
        self._closed = False
        self._wake = trio.Event()
        #: Items dropped, for overflow or staleness.
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> int:
        """Queue ``item``; returns how many older items were dropped to make room."""
        if self._closed:
            raise trio.ClosedResourceError("queue is closed")
        dropped = 0
        while len(self._items) >= self.capacity:
            self._items.popleft()
            dropped += 1
        self._items.append((self._clock(), item))
        self.dropped += dropped
        self._wake.set()
        return dropped

    def close(self) -> None:
        """No more puts; queued items are still delivered, then ``get`` ends."""
        self._closed = True
        self._wake.set()

    async def get(self) -> T:
        """The oldest item that is still fresh; ``trio.EndOfChannel`` once closed and empty."""
        return (await self.get_stamped())[1]

    async def get_stamped(self) -> tuple[float, T]:
        """Like :meth:`get`, with the clock reading of when the item was put."""
        while True:
            now = self._clock()
            while len(self._items) > 1 and now - self._items[0][0] > self.max_wait:
                self._items.popleft()  # stale, and something newer is waiting
                self.dropped += 1
            if self._items:
                return self._items.popleft()
            if self._closed:
                raise trio.EndOfChannel
            self._wake = trio.Event()
            await self._wake.wait()
