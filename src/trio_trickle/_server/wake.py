"""Where the trickle server's tasks wait, and how they are woken: parking and the wake relay.

Kept apart from the ASGI app because it is the latency-critical part of the
server with its own measured design, and it knows nothing of HTTP.

Waiting: a task parks on the thing it watches, never on the whole channel. A
reader parks on its segment until the segment grows or closes; a preconnected
publisher parks on its ticket until it is detached. After every core call the
server re-stamps what is parked on that channel (one or two entries) and wakes
each entry whose stamp moved, so an appended chunk wakes only the readers of
that segment and a claim wakes none of them.

The readers of one change are woken as a relay, not all at once: the notify
wakes the first, and each woken reader wakes the next before doing anything
else. Woken together, 64 readers advance in lockstep through hypercorn's
send path (two scheduler yields per message), so even the first reader's bytes
leave only after all 64 have built their message, and the first chunk of a
response (head, then body) reached every subscriber at the same late moment,
6-7 ms after it arrived. As a relay, reader k is served after about k sends:
the median subscriber of that first chunk got it after about 4.5 ms, and the chunk
latency p99 of the 64-subscriber benchmark (50 chunks) fell by 20-40% with
no loss of fan-out throughput. A reader blocked in a slow send never holds the
baton, so a stalled subscriber still slows nobody. Each hop costs one pass of
the scheduler, which is short on an idle server but long on one busy with
other streams; a hop slower than 1 ms wakes all remaining readers at once, so
a relay is never much slower than the broadcast it replaces.
"""

from __future__ import annotations

import trio
import trio.lowlevel

from .._core.channel import ChannelCore, PublishTicket
from .._core.segment import Segment

__all__: list[str] = []

#: What a task can park on: a segment (its readers) or a publish ticket (its preconnect).
WaitKey = Segment | PublishTicket


def _stamp(key: WaitKey) -> int:
    """A number that moves exactly when what a parked task waits for happens.

    Readers wait for more bytes or the close (``size`` and ``closed``); a
    preconnected publisher waits for its ticket to be detached.
    """
    if isinstance(key, Segment):
        return key.size * 2 + key.closed
    return int(key.attached)


#: A relay hop slower than this (seconds) means the scheduler is busy with other
#: work; the relay then wakes everyone left at once (see the module docstring).
_RELAY_HOP_LIMIT = 0.001


class _Parked:
    """The tasks parked on one key since its last change (FIFO), and the stamp they saw."""

    __slots__ = ("lot", "passed", "stamp")

    def __init__(self, stamp: int) -> None:
        self.lot = trio.lowlevel.ParkingLot()
        self.stamp = stamp
        #: When the relay baton was last passed (trio clock).
        self.passed = 0.0

    def wake_first(self) -> None:
        self.passed = trio.current_time()
        self.lot.unpark()

    def pass_baton(self) -> None:
        """Called by a woken task: wake the next one, or all the rest if hops got slow."""
        now = trio.current_time()
        if now - self.passed > _RELAY_HOP_LIMIT:
            self.lot.unpark_all()
        else:
            self.passed = now
            self.lot.unpark()


#: Parked tasks by channel, then by what they watch; empty when nobody waits.
Wakers = dict[ChannelCore, dict[WaitKey, _Parked]]


def notify(wakers: Wakers, channel: ChannelCore) -> None:
    """Wake whatever is parked on ``channel`` and saw something change.

    Called after every core call that may have changed the channel, with no
    await in between, so a task never parks on a stale stamp.
    """
    parked = wakers.get(channel)
    if parked is None:
        return
    for key, entry in list(parked.items()):
        if _stamp(key) != entry.stamp:
            del parked[key]
            entry.wake_first()
    if not parked:
        del wakers[channel]


async def park(wakers: Wakers, channel: ChannelCore, key: WaitKey) -> None:
    """Return once ``key``'s stamp moves (a reader: bytes or close; a ticket: detach)."""
    parked = wakers.get(channel)
    if parked is None:
        parked = wakers[channel] = {}
    entry = parked.get(key)
    stamp = _stamp(key)
    if entry is None or entry.stamp != stamp:
        if entry is not None:  # changed without a notify: start their relay too
            entry.wake_first()
        entry = parked[key] = _Parked(stamp)
    try:
        await entry.lot.park()
    except BaseException:
        # Cancelled (the client left): the last waiter of an entry removes it.
        if not entry.lot and parked.get(key) is entry:
            del parked[key]
            if not parked and wakers.get(channel) is parked:
                del wakers[channel]
        raise
    # Pass the baton before anything else: a woken task resumes here with no
    # checkpoint in between, so the relay can neither stall nor break.
    entry.pass_baton()
