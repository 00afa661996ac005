"""A one-item mailbox where the newest item wins (the video drop policy).

The decoder must never wait for a slow pipeline (RUN-114): it puts each frame
here, replacing a frame that is still waiting, which is dropped and reported
back so the caller can count it. The processor takes whatever is newest.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import trio

__all__ = ["LatestSlot"]

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """At most one waiting item; ``put`` never blocks. Trio-thread only."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._full = False
        self._closed = False
        self._wake = trio.Event()

    def put(self, item: T) -> T | None:
        """Store ``item``; return the item it replaced (now dropped), if any."""
        if self._closed:
            raise trio.ClosedResourceError("slot is closed")
        replaced = self._item if self._full else None
        self._item = item
        self._full = True
        self._wake.set()
        return replaced

    def close(self) -> None:
        """No more puts; a waiting item is still delivered, then ``get`` ends."""
        self._closed = True
        self._wake.set()

    async def get(self) -> T:
        """The newest item; raises ``trio.EndOfChannel`` once closed and empty."""
        while not self._full:
            if self._closed:
                raise trio.EndOfChannel
            self._wake = trio.Event()
            await self._wake.wait()
        item = self._item
        self._item = None
        self._full = False
        return item  # type: ignore[return-value]
