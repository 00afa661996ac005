"""Performing the registry's effects, in the order it lists them.

Every effect is done without awaiting: creating and deleting trickle channels
and writing a segment (an O2R event, a release on the events channel) are
in-process calls into the mounted server, and starting or closing an O2R
writer only schedules its task or sets its event. So an operation and its effects run with no
checkpoint in between: a cancelled or disconnected request can never leave a
reservation without its ``reserved`` event, or a release without its channel
close. A failing effect is logged and the next one still runs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable

import trio

from .._errors import ProtocolError
from .._registry.effects import (
    CancelRequest,
    CloseChannels,
    CloseO2R,
    Effect,
    OpenChannels,
    OpenO2R,
    PublishRelease,
    SendSessionEvent,
)
from .._server.trickle import TrickleServer
from .._wire.json_codec import dump_json
from .config import OrchestratorConfig
from .o2r import O2RStats, O2RWriter, write_segment

__all__: list[str] = []

log = logging.getLogger("trio_trickle.orchestrator")


class EffectRunner:
    """Does what the registry asks; owns the O2R writers and in-flight single-shot requests."""

    def __init__(
        self, server: TrickleServer, config: OrchestratorConfig, nursery: trio.Nursery
    ) -> None:
        self.server = server
        self.config = config
        self.nursery = nursery
        self.o2r: dict[str, O2RWriter] = {}
        #: Every writer not yet ended, closing ones included.
        self.writers: set[O2RWriter] = set()
        self.o2r_stats = O2RStats()
        #: Set when the process stops: O2R writers end without lingering.
        self.shutting_down = trio.Event()
        #: Cancel scopes of proxied single-shot requests, by (route, session ID).
        self.requests: dict[tuple[str, str], trio.CancelScope] = {}

    def apply(self, effects: Iterable[Effect]) -> None:
        for effect in effects:
            try:
                self._apply(effect)
            except Exception:
                log.exception("effect %s failed", type(effect).__name__)

    def _apply(self, effect: Effect) -> None:
        if isinstance(effect, OpenO2R):
            self._open_o2r(effect)
        elif isinstance(effect, SendSessionEvent):
            writer = self.o2r.get(effect.channel_name)
            if writer is None:
                self.o2r_stats.dropped += 1
            else:
                writer.send(effect)
        elif isinstance(effect, CloseO2R):
            closing = self.o2r.pop(effect.channel_name, None)
            if closing is not None:
                closing.close()
        elif isinstance(effect, PublishRelease):
            at_ms = int(time.time() * 1000)
            data = dump_json(effect.message(at_ms))
            if not write_segment(self.server, effect.channel_name, data):
                log.info("release of %s not published on its events channel", effect.session_id)
        elif isinstance(effect, OpenChannels):
            for channel in effect.channels:
                self.server.create_channel(channel.channel_name, channel.mime_type)
        elif isinstance(effect, CloseChannels):
            for name in effect.channel_names:
                self._delete(name)
        elif isinstance(effect, CancelRequest):
            scope = self.requests.get((effect.route, effect.session_id))
            if scope is not None:
                scope.cancel()

    def _delete(self, name: str) -> None:
        # Already gone is fine: a publisher's DELETE or the idle sweep got there first.
        with contextlib.suppress(ProtocolError):
            self.server.delete_channel(name)

    def _open_o2r(self, effect: OpenO2R) -> None:
        name = effect.channel.channel_name
        self.server.create_channel(name, effect.channel.mime_type)
        writer = O2RWriter(
            self.server,
            name,
            keepalive=self.config.o2r_keepalive,
            linger=self.config.o2r_linger,
            stats=self.o2r_stats,
            hurry=self.shutting_down,
        )
        old = self.o2r.pop(name, None)
        if old is not None:
            old.close()
        self.o2r[name] = writer
        self.writers.add(writer)
        self.nursery.start_soon(self._run_writer, writer, name=f"o2r {effect.runner_id}")

    async def _run_writer(self, writer: O2RWriter) -> None:
        try:
            await writer.run()
        finally:
            self.writers.discard(writer)

    async def drain(self) -> None:
        """Wait until every writer has ended and deleted its channel (shutdown)."""
        self.shutting_down.set()
        for writer in list(self.writers):
            await writer.done.wait()
