"""Writing the orchestrator's own segments: the O2R channels and session events.

Each registered runner gets one :class:`O2RWriter`. Events are written when
the registry's effect is applied, in-process into the mounted trickle server,
before the request that caused them is answered: a runner already reading its
channel has the ``reserved``/``released`` event (LR-047, LR-048) before the
client has its answer, and before any later heartbeat answer could tell it the
same thing without a reason (LR-142). Each segment holds one JSON object (LR-049).

Drop policy (LR-050): nothing waits to be sent, so the 32-message bound is
never reached; a message is dropped only when it cannot be written at all (the
channel was deleted from outside, or a client holds its next segment), which is
logged and counted in :class:`O2RStats`. What a slow runner can miss is what
the channel's ring no longer holds; it learns those releases from its next
heartbeat (LR-149). The writer's task sends ``{"keep":"alive"}`` every
``o2r_keepalive`` seconds (LR-046); :meth:`O2RWriter.close` (``CloseO2R``, after
the removed runner's events, LR-040) keeps the channel readable for
``o2r_linger`` seconds, then deletes it.
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
    """One runner's O2R channel: events written at once, keepalives from a task."""

    def __init__(
        self,
        server: TrickleServer,
        channel_name: str,
        *,
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
        self.closed = trio.Event()
        #: Set once the writer has ended and its channel is deleted.
        self.done = trio.Event()

    def send(self, event: SendSessionEvent) -> bool:
        """Write ``event`` now; False (dropped, counted) when it cannot be written."""
        if self.closed.is_set():
            self.stats.dropped += 1
            return False
        if not self._write(event.message(datetime.now(UTC))):
            log.warning("O2R %s: dropped %s %s", self.channel_name, event.event, event.session_id)
            return False
        self.stats.written += 1
        return True

    def close(self) -> None:
        """No more events: keep the channel readable for ``linger`` s, then delete it."""
        self.closed.set()

    def _write(self, body: dict[str, object]) -> bool:
        if write_segment(self.server, self.channel_name, dump_json(body)):
            return True
        self.stats.dropped += 1
        return False

    async def run(self) -> None:
        """Keepalives until closed (or cancelled), the linger, then the channel's deletion."""
        try:
            due = trio.current_time() + self.keepalive
            while not self.closed.is_set():
                with trio.move_on_at(due):
                    await self.closed.wait()
                    break
                if self._write(O2RKeepalive().to_wire()):
                    self.stats.keepalives += 1
                due += self.keepalive
            with trio.move_on_after(self.linger):
                await self.hurry.wait()
        finally:
            if self.channel_name in self.server.core.channels:
                self.server.delete_channel(self.channel_name)
            self.done.set()
