"""Writing the orchestrator's own segments: the O2R channels and session events.

Each registered runner gets one :class:`O2RWriter`, a task in the
orchestrator's nursery fed by a bounded queue. Drop policy (LR-050): the queue
holds at most ``o2r_queue`` (32) unsent messages besides the one the writer
has taken (written at once, in-process); a message queued onto a full
queue is dropped (the newest, as master's non-blocking send drops it), logged
and counted, and never blocks the request that caused it. A runner that missed
a ``released`` event learns it from its next heartbeat (LR-149). The writer
sends ``{"keep":"alive"}`` every ``o2r_keepalive`` seconds (LR-046); each
segment holds one JSON object (LR-049). Closing the queue
(``CloseO2R``) lets the writer write what is queued, keep the channel readable
for ``o2r_linger`` seconds, then delete it (LR-040).

Segments are written in-process into the mounted trickle server (no HTTP
round trip); a channel deleted from outside, or one whose next segment a
client holds, makes the write a logged drop, never an error.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import attrs
import trio

from .._core.channel import PublishTicket
from .._errors import ProtocolError
from .._registry.effects import SendSessionEvent
from .._server.trickle import TrickleServer
from .._server.wake import notify
from .._wire.json_codec import dump_json
from .._wire.live_runner_channels import O2RKeepalive
from .._wire.trickle import SEQ_NEXT

__all__: list[str] = []

log = logging.getLogger("trio_trickle.orchestrator.o2r")


def write_segment(server: TrickleServer, channel_name: str, data: bytes) -> bool:
    """Write ``data`` as one whole segment of ``channel_name``; False when it could not."""
    channel = server.core.channels.get(channel_name)
    if channel is None:
        return False
    now = trio.current_time()
    try:
        ticket = channel.begin_publish(SEQ_NEXT, reset=False, now=now)
        if not isinstance(ticket, PublishTicket):
            return False
        channel.append(ticket, data, now=now)
        channel.finish(ticket, now=now)
    except ProtocolError:
        return False
    finally:
        notify(server._wakers, channel)  # the server's own wake relay
    return True


@attrs.define(eq=False)
class O2RStats:
    """What the O2R writers did (tests, logs, metrics)."""

    written: int = 0
    keepalives: int = 0
    dropped: int = 0


class O2RWriter:
    """One runner's O2R channel: a bounded queue and the task that writes it."""

    def __init__(
        self,
        server: TrickleServer,
        channel_name: str,
        *,
        queue: int,
        keepalive: float,
        linger: float,
        stats: O2RStats,
        hurry: trio.Event,
    ) -> None:
        self.server = server
        self.channel_name = channel_name
        self.keepalive = keepalive
        self.linger = linger
        self.stats = stats
        self.hurry = hurry
        #: Set once the writer has ended and its channel is deleted.
        self.done = trio.Event()
        self._send, self._receive = trio.open_memory_channel[SendSessionEvent](queue)

    def queue(self, event: SendSessionEvent) -> bool:
        """Queue ``event`` without waiting; False (dropped, LR-050) when full or closed."""
        try:
            self._send.send_nowait(event)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self.stats.dropped += 1
            log.warning("O2R queue of %s full: dropped %s", self.channel_name, event.event)
            return False
        return True

    def close(self) -> None:
        """No more events: write what is queued, linger, then delete the channel."""
        self._send.close()

    def _write(self, body: dict[str, object]) -> None:
        if not write_segment(self.server, self.channel_name, dump_json(body)):
            self.stats.dropped += 1
            log.info("O2R channel %s cannot be written", self.channel_name)

    async def run(self) -> None:
        """Write events as they come, keepalives between; until closed or cancelled."""
        due = trio.current_time() + self.keepalive
        try:
            while True:
                with trio.move_on_at(due):
                    try:
                        event = await self._receive.receive()
                    except trio.EndOfChannel:
                        break
                    self._write(event.message(datetime.now(UTC)))
                    self.stats.written += 1
                    continue
                self._write(O2RKeepalive().to_wire())
                self.stats.keepalives += 1
                due += self.keepalive
            with trio.move_on_after(self.linger):
                await self.hurry.wait()
        finally:
            self._receive.close()
            if self.channel_name in self.server.core.channels:
                self.server.delete_channel(self.channel_name)
            self.done.set()
