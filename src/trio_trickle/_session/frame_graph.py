"""A session's frame graph: input decoded, processed by the pipeline, encoded out.

::

    subscribe -> chunks -> decode (thread) -> router -> video queue (recent wins)
                                                     -> audio queue (drop oldest)
    process_video / process_audio -> pts guard -> encode (thread) -> publish

Every stage is bounded: chunks and frames travel in small memory channels, the
video queue keeps a few recent frames and drops stale ones (RUN-114), the audio
queue holds 100 frames and drops the oldest (RUN-115). Audio and video are
processed by separate tasks, so audio never waits behind video processing
(ai-runner#714).

Only the data path, run by :mod:`.media` as one task of the session's work
nursery; it stops the session through its context's stop calls and reports
through its telemetry and event helpers. This module imports PyAV and torch:
:mod:`.media` imports it by name, in a worker thread, and only for a pipeline
that processes frames, so nothing else in the session may import it.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from .._client.publisher import TricklePublisher
from .._client.subscriber import TrickleSubscriber
from .._errors import ChannelClosed
from .._media.decode import DecodeStats, decode_ts
from .._media.encode import encode_ts
from .._media.encode_settings import SEGMENT_BOUNDARY, TsItem
from .._media.frames import AudioFrame, MediaError, VideoFrame
from .._sdk.hooks import call_hook
from .._telemetry.outlet import DropOldestOutlet
from .._wire.runner import StopReason
from .._wire.telemetry import (
    ERROR_MEDIA_AUDIO_OUTPUT_LOOP_FAILED,
    ERROR_MEDIA_INPUT_LOOP_FAILED,
    ERROR_MEDIA_OUTPUT_LOOP_FAILED,
    ERROR_PIPELINE_PROCESSING_FAILED,
    EVENT_PLAYBACK_READY,
)
from .context import StreamContext
from .recent_queue import RecentQueue

__all__: list[str] = []  # the session's internals, nothing public

log = logging.getLogger("trio_trickle.session")

MediaFrame = VideoFrame | AudioFrame


async def run_frame_graph(context: StreamContext) -> None:
    """Decode, process and encode the stream's media until its input ends."""
    await MediaGraph(context).run()


class MediaGraph:
    """The frame tasks of one stream; :meth:`run` runs them all.

    Holds the state only the data path needs: consecutive hook failures
    (RUN-118), the error-event rate limit (RUN-083), and whether the first
    output byte was published (``playback_ready``).
    """

    def __init__(self, context: StreamContext) -> None:
        self._context = context
        self._hook_failures = 0
        self._last_error_event = -math.inf
        self._playback_ready = False

    async def run(self) -> None:
        context = self._context
        request = context.request
        settings = context.settings
        chunks_tx, chunks_rx = trio.open_memory_channel[bytes](64)
        frames_tx, frames_rx = trio.open_memory_channel[MediaFrame](8)
        encode_tx, encode_rx = trio.open_memory_channel[MediaFrame](8)
        video_queue: RecentQueue[VideoFrame] = RecentQueue(
            settings.video_queue, settings.video_max_wait
        )
        audio_queue: DropOldestOutlet[AudioFrame] = DropOldestOutlet(settings.audio_capacity)
        stats = DecodeStats()
        loop = self._loop
        async with trio.open_nursery() as media:
            media.start_soon(loop, ERROR_MEDIA_INPUT_LOOP_FAILED, self._subscribe_input, chunks_tx)
            media.start_soon(
                loop, ERROR_MEDIA_INPUT_LOOP_FAILED, self._decode, chunks_rx, frames_tx, stats
            )
            media.start_soon(self._process_video, video_queue, encode_tx.clone())
            media.start_soon(
                loop,
                ERROR_MEDIA_AUDIO_OUTPUT_LOOP_FAILED,
                self._process_audio,
                audio_queue,
                encode_tx,
            )
            first = await self._route_first(frames_rx, video_queue, audio_queue)
            if first and request.publish_url:
                # Started once the first frame tells whether the input has audio,
                # so a video-only stream never waits for audio that will not come.
                output_tx, output_rx = trio.open_memory_channel[TsItem](64)
                encoder = attrs.evolve(settings.encoder, audio=stats.has_audio)
                encode = functools.partial(encode_ts, stats=context.counters.encode)
                media.start_soon(
                    loop, ERROR_MEDIA_OUTPUT_LOOP_FAILED, encode, encode_rx, output_tx, encoder
                )
                media.start_soon(
                    loop, ERROR_MEDIA_OUTPUT_LOOP_FAILED, self._publish_output, output_rx
                )
            else:
                media.start_soon(self._discard, encode_rx)
            media.start_soon(self._route, frames_rx, video_queue, audio_queue)
        # Input ended and everything drained through: the stream is over.
        context.control.request_stop(StopReason.INPUT_ENDED)

    async def _loop(self, error_type: str, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run one media loop; a failure is reported with its loop's error type
        (the anchors only logged these, TEL-036) and then stops the stream."""
        try:
            await fn(*args)
        except Exception as exc:
            message = f"{error_type}: {type(exc).__name__}: {exc}"
            self._context.emit_error(error_type, message, recoverable=False, exc=exc)
            raise

    # -- input -------------------------------------------------------------------------

    async def _subscribe_input(self, chunks_tx: trio.MemorySendChannel[bytes]) -> None:
        context = self._context
        url = context.request.subscribe_url
        assert url is not None
        async with chunks_tx:
            try:
                async with TrickleSubscriber(
                    url, start_seq=-1, client=context.client
                ) as subscriber:
                    async for segment in subscriber:
                        async for chunk in segment:
                            await chunks_tx.send(chunk)
            except ChannelClosed:
                # The input channel is gone (404). What was already received still
                # drains through to the output; the reason says why it ended.
                context.control.note_reason(StopReason.INPUT_GONE)

    async def _decode(
        self,
        chunks_rx: trio.MemoryReceiveChannel[bytes],
        frames_tx: trio.MemorySendChannel[MediaFrame],
        stats: DecodeStats,
    ) -> None:
        # "auto" asks torch (CUDA's first query can take a while): not on the trio thread.
        device = await trio.to_thread.run_sync(self._context.settings.resolved_device)
        try:
            await decode_ts(chunks_rx, frames_tx, device=device, stats=stats)
        except MediaError:
            if stats.bytes_in:
                raise  # bytes came but were not media: the stream failed
            # The input ended before sending anything: nothing to decode, no failure.

    # -- routing -----------------------------------------------------------------------

    async def _route_first(
        self,
        frames_rx: trio.MemoryReceiveChannel[MediaFrame],
        video_queue: RecentQueue[VideoFrame],
        audio_queue: DropOldestOutlet[AudioFrame],
    ) -> bool:
        """Route the first frame; False when the input ended without any."""
        try:
            frame = await frames_rx.receive()
        except trio.EndOfChannel:
            video_queue.close()
            audio_queue.close()
            return False
        self._route_one(frame, video_queue, audio_queue)
        return True

    def _route_one(
        self,
        frame: MediaFrame,
        video_queue: RecentQueue[VideoFrame],
        audio_queue: DropOldestOutlet[AudioFrame],
    ) -> None:
        counters = self._context.counters
        if isinstance(frame, VideoFrame):
            counters.video_in.mark()
            counters.dropped += video_queue.put(frame)
        else:
            counters.audio_in.mark()
            before = audio_queue.dropped
            audio_queue.put(frame)
            counters.dropped += audio_queue.dropped - before

    async def _route(
        self,
        frames_rx: trio.MemoryReceiveChannel[MediaFrame],
        video_queue: RecentQueue[VideoFrame],
        audio_queue: DropOldestOutlet[AudioFrame],
    ) -> None:
        """Hand decoded frames on without ever waiting for processing (RUN-114)."""
        if video_queue.closed:
            return
        async with frames_rx:
            async for frame in frames_rx:
                self._route_one(frame, video_queue, audio_queue)
        video_queue.close()
        audio_queue.close()

    # -- processing --------------------------------------------------------------------

    async def _process_video(
        self, slot: RecentQueue[VideoFrame], encode_tx: trio.MemorySendChannel[MediaFrame]
    ) -> None:
        counters = self._context.counters
        hook = self._context.pipeline.process_video
        async with encode_tx:
            while True:
                before = slot.dropped
                try:
                    queued_at, frame = await slot.get_stamped()
                except trio.EndOfChannel:
                    return
                finally:
                    counters.dropped += slot.dropped - before
                result = await self._call_process(hook, frame)
                if result is None:
                    continue
                if counters.width is None:
                    counters.height, counters.width = result.height, result.width
                await encode_tx.send(result)
                counters.video_out.mark()
                counters.latency.add(time.monotonic() - queued_at)

    async def _process_audio(
        self, queue: DropOldestOutlet[AudioFrame], encode_tx: trio.MemorySendChannel[MediaFrame]
    ) -> None:
        counters = self._context.counters
        hook = self._context.pipeline.process_audio
        async with encode_tx:
            while batch := await queue.get_batch(16):
                for frame in batch:
                    result = await self._call_process(hook, frame)
                    if result is None:
                        continue
                    await encode_tx.send(result)
                    counters.audio_out.mark()

    async def _call_process(self, hook: Callable[[Any], Any], frame: Any) -> Any:
        """The frame ``hook`` returned, or None when it failed or dropped the frame.

        Timestamps are the encoder's to guard (RUN-113): it drops a step back and
        re-anchors after a long backwards jump (an input restart), which a guard
        here would turn into dropping every later frame.
        """
        try:
            result = await call_hook(hook, frame)
        except Exception as exc:  # RUN-082: drop the frame, keep the stream
            self._hook_failed(f"{hook.__name__} failed: {type(exc).__name__}", exc)
            return None
        if result is not None and not isinstance(result, type(frame)):
            # Refused here, as the hook's failure, not later inside the encoder.
            kinds = f"not {type(frame).__name__} or None"
            self._hook_failed(f"{hook.__name__} returned {type(result).__name__}, {kinds}")
            return None
        self._hook_failures = 0
        return result

    def _hook_failed(self, message: str, exc: Exception | None = None) -> None:
        """Drop the frame, report it, and stop the stream after too many in a row (RUN-118)."""
        context = self._context
        context.counters.dropped += 1
        self._hook_failures += 1
        log.warning("session %s: %s", context.id, message, exc_info=exc)
        context.control.report_error(message)
        self._error_event(message)
        if self._hook_failures >= context.settings.max_hook_failures:
            context.control.fail(f"{message} ({self._hook_failures} frames in a row)")

    def _error_event(self, message: str) -> None:
        """A recoverable processing error on the events channel, rate-limited (RUN-083)."""
        context = self._context
        now = time.monotonic()
        if now - self._last_error_event < context.settings.error_event_interval:
            return
        self._last_error_event = now
        context.emit_error(ERROR_PIPELINE_PROCESSING_FAILED, message, recoverable=True)
        context.put_event(
            "error",
            error_type="pipeline_processing_failed",
            message=message,
            recoverable=True,
        )

    async def _discard(self, rx: trio.MemoryReceiveChannel[MediaFrame]) -> None:
        async with rx:
            async for _ in rx:
                pass

    # -- output ------------------------------------------------------------------------

    async def _publish_output(self, output_rx: trio.MemoryReceiveChannel[TsItem]) -> None:
        """One trickle segment per GOP, streamed while it is being encoded."""
        context = self._context
        url = context.request.publish_url
        assert url is not None
        try:
            async with (
                output_rx,
                TricklePublisher(
                    url, "video/MP2T", client=context.client, owns_channel=False
                ) as publisher,
            ):
                segment = None
                async for item in output_rx:
                    if item is SEGMENT_BOUNDARY or segment is None:
                        if segment is not None:
                            await segment.end()
                        segment = publisher.segment()
                        await segment.start()
                        if item is SEGMENT_BOUNDARY:
                            continue
                    assert isinstance(item, bytes)
                    await segment.write(item)
                    if not self._playback_ready:
                        self._playback_ready = True
                        started = context.stream_started_at or context.started_monotonic
                        ttff = round((time.monotonic() - started) * 1000)
                        context.emit(EVENT_PLAYBACK_READY, ttff_ms=ttff)
                if segment is not None:
                    await segment.end()
        except ChannelClosed:
            context.control.request_stop(StopReason.OUTPUT_GONE)
