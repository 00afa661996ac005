"""The session's JSON channels: control in, events and data out, and the params queue.

Kept apart from :mod:`.session` (lifecycle) and :mod:`.media` (the media path)
because each is a small loop with its own failure rule: a 404 or end of stream
on the control channel stops the session (RUN-101), a 404 on events or data
stops it too (RUN-102), and a malformed control message is skipped, never fatal
(RUN-086). They see the session through its :class:`~.context.StreamContext`.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import attrs
import trio

from .._client.channels import JsonlWriter
from .._client.publisher import TricklePublisher
from .._client.subscriber import TrickleSubscriber
from .._errors import ChannelClosed, ProtocolError, TrickleError
from .._telemetry.outlet import DropOldestOutlet
from .._telemetry.runner import CapturedEvent, RunnerTelemetry
from .._wire.channels import ControlMessage, KeepAlive, decode_control
from .._wire.json_codec import is_utf8_json
from .._wire.runner import StopReason
from .._wire.telemetry import TelemetryEvent
from .context import StreamContext

__all__ = ["ParamsJob", "ParamsQueue"]

log = logging.getLogger("trio_trickle.session")


@attrs.define(eq=False)
class ParamsJob:
    """One params update waiting for ``on_params_update``.

    HTTP updates wait for their outcome (``done``); control-channel updates do not.
    Exactly one outcome is recorded, the first: applied, failed (``error``), or
    ``stopped`` (the session ended before the update was applied, RUN-121).
    Whoever holds the job answers it: the queue while it waits there, the params
    applier once taken, and the session's end for anything left.
    """

    params: dict[str, Any]
    from_control: bool
    done: trio.Event = attrs.field(factory=trio.Event)
    error: str | None = None
    stopped: bool = False

    def succeed(self) -> None:
        self.done.set()

    def fail(self, message: str) -> None:
        if not self.done.is_set():
            self.error = message
            self.done.set()

    def stop(self) -> None:
        """The session is ending and will not apply this update."""
        if not self.done.is_set():
            self.stopped = True
            self.done.set()


class ParamsQueue:
    """Params updates in arrival order; a control update replaces a waiting control
    update (latest wins, RUN-089), HTTP updates are all kept."""

    def __init__(self) -> None:
        self._jobs: collections.deque[ParamsJob] = collections.deque()
        self._wake = trio.Event()
        self._closed = False

    def put(self, job: ParamsJob) -> None:
        if self._closed:
            job.stop()  # nobody will apply it: answer at once
            return
        if job.from_control and self._jobs and self._jobs[-1].from_control:
            self._jobs[-1] = job
        else:
            self._jobs.append(job)
        self._wake.set()

    def __len__(self) -> int:
        return len(self._jobs)

    async def next(self) -> ParamsJob:
        while not self._jobs:
            self._wake = trio.Event()
            await self._wake.wait()
        return self._jobs.popleft()

    def cancel_all(self) -> None:
        """Answer every waiting job and every later one as stopped (the session is ending)."""
        self._closed = True
        while self._jobs:
            self._jobs.popleft().stop()


async def control_updates(context: StreamContext, params_queue: ParamsQueue) -> None:
    """Read the control channel: params go to the queue, keepalives are dropped."""
    limit = context.settings.control_max_bytes
    try:
        async with TrickleSubscriber(
            context.request.control_url, start_seq=-2, client=context.client
        ) as subscriber:
            async for segment in subscriber:
                try:
                    data = await segment.read_all(limit=limit)
                    message = decode_control(data, max_bytes=limit)
                except ProtocolError as exc:  # RUN-086: skip it, keep the stream
                    log.warning("session %s: control message skipped: %s", context.id, exc)
                    continue
                if message is None or isinstance(message, KeepAlive):
                    continue
                assert isinstance(message, ControlMessage)
                if not is_utf8_json(message.params):  # RUN-122, skipped as RUN-086 says
                    log.warning("session %s: control message skipped: bad Unicode", context.id)
                    continue
                params_queue.put(ParamsJob(params=dict(message.params), from_control=True))
    except ChannelClosed:
        pass
    context.control.request_stop(StopReason.CONTROL_GONE)


async def write_events(context: StreamContext) -> None:
    """Drain telemetry and pipeline events onto the events channel, one JSON object
    per segment, until both outlets are closed and empty.

    Telemetry goes first; each queue has its own bound, so a flood of pipeline
    events drops pipeline events, never the lifecycle (TEL-043, TEL-045).
    """
    queues: tuple[DropOldestOutlet[Any], ...] = (context.telemetry_outlet, context.outlets.events)
    try:
        async with TricklePublisher(
            context.request.events_url,
            "application/json",
            client=context.client,
            owns_channel=False,
        ) as publisher:
            # A token bucket: bursts of up to ``events_burst`` go out at once (the
            # last words at teardown never wait), a flood is paced to
            # ``events_max_rate`` POSTs a second and the outlets drop the oldest
            # beyond that (RUN-093), so events never crowd out the media path.
            rate = context.settings.events_max_rate
            burst = float(context.settings.events_burst)
            tokens, refilled = burst, trio.current_time()
            while True:
                item = next((batch[0] for q in queues if (batch := q.get_nowait(1))), None)
                if item is None:
                    if all(q.closed and not len(q) for q in queues):
                        return
                    await context.events_bell.wait()
                    continue
                try:
                    if isinstance(item, CapturedEvent):  # built only now, if it survived
                        item = context.telemetry.encode(item)
                    elif isinstance(item, TelemetryEvent):  # from the TrickleEventsSink
                        item = RunnerTelemetry.relay_bytes(item)
                        context.telemetry_sink.written += 1
                except ProtocolError:
                    log.exception("session %s: telemetry event not relayed", context.id)
                    continue
                now = trio.current_time()
                tokens = min(burst, tokens + (now - refilled) * rate)
                refilled = now
                draining = all(q.closed for q in queues)  # a closing session drains at once
                if tokens < 1.0 and not draining:
                    await trio.sleep((1.0 - tokens) / rate)
                    tokens, refilled = 1.0, trio.current_time()
                tokens -= 1.0
                await publisher.write_segment(item)
    except ChannelClosed:
        context.control.request_stop(StopReason.OUTPUT_GONE)
    except TrickleError as exc:
        log.warning("session %s: events channel failed: %s", context.id, exc)
        context.control.request_stop(StopReason.OUTPUT_GONE)
    finally:
        for queue in queues:
            queue.close()


async def write_data(context: StreamContext) -> None:
    """Drain the data outlet as JSONL with time-rotated segments."""
    outlet = context.outlets.data
    assert outlet is not None
    assert context.request.data_url is not None
    try:
        async with JsonlWriter(
            context.request.data_url,
            client=context.client,
            segment_interval=context.settings.data_segment_interval,
            owns_channel=False,
        ) as writer:
            while batch := await outlet.get_batch():
                for record in batch:
                    await writer.write(record)
    except ChannelClosed:
        context.control.request_stop(StopReason.OUTPUT_GONE)
    except TrickleError as exc:
        log.warning("session %s: data channel failed: %s", context.id, exc)
        context.control.request_stop(StopReason.OUTPUT_GONE)
    finally:
        outlet.close()
