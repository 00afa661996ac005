"""MPEG-TS encoding: processed frames in, trickle-segment-ready TS bytes out.

One muxer writes video and audio into ONE MPEG-TS stream (RUN-108). The output
is cut into trickle segments on video keyframes: :data:`SEGMENT_BOUNDARY` is
emitted right before the first byte of each GOP (including the first), then the
TS bytes follow as soon as the muxer writes them, so a publisher can stream a
segment while it is still being encoded instead of waiting a whole GOP. Every
segment starts with PAT/PMT and an IDR frame and decodes on its own.

Why one continuous muxer and byte-level cutting: the encoders must live across
segment cuts (restarting x264/AAC per segment costs a keyframe and an audio
priming gap), and libavformat's interleaver holds the newest packet back until
another stream catches up, so which bytes belong to which packet cannot be
known from the ``mux()`` call. The cut is instead found in the output itself:
each TS packet that starts a PES (payload_unit_start) is matched, per PID and in
order, with the packet that was muxed, and the PAT/PMT the muxer writes right
before a keyframe travel with it into the new segment.

Timing: output pts is the input pts rescaled to 1/90000 (RUN-112); the muxer is
told not to shift timestamps (``avoid_negative_ts=disabled``). A frame whose pts
does not increase is dropped and counted (RUN-113) or, with
``non_monotonic="bump"``, moved one tick after its predecessor. A backwards jump
longer than ``discontinuity_s`` (an input restart or timestamp wrap) re-anchors
that stream's timeline instead of dropping every later frame.

This module drives PyAV: :class:`TsMuxer` (synchronous) and :func:`encode_ts`
(it in a worker thread). The settings and the boundary marker are in
:mod:`._media_encode_settings`; the codec-free timing guards and the TS cutter
in :mod:`._media_mux_parts`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import av
import av.container
import numpy as np
import numpy.typing as npt
import trio
from av.video.frame import PictureType

from .decode import release_frames
from .encode_settings import (
    # Aliased ones stay importable from here (``_media_testsrc`` imports them).
    SEGMENT_BOUNDARY as SEGMENT_BOUNDARY,
    EncoderSettings as EncoderSettings,
    EncodeStats,
    TsItem as TsItem,
)
from .frames import AudioFrame, MediaError, VideoFrame
from .mux_parts import (
    AUDIO_PID,
    OUT_TIME_BASE,
    PMT_PID,
    VIDEO_PID,
    AudioChunker,
    ByteSink,
    Timeline,
    TsSplitter,
    rescale,
)

__all__ = ["TsMuxer", "encode_ts"]

_THREAD_NAME = "trio-trickle media encode"


class TsMuxer:
    """Synchronous encoder + MPEG-TS muxer; the core of :func:`encode_ts`.

    ``add(frame)`` returns what became ready (``SEGMENT_BOUNDARY`` markers and TS
    bytes, in order); ``flush()`` drains the encoders and ends the stream;
    ``close()`` releases everything without flushing. The output streams are
    created once the first frames show which kinds are present (see
    :class:`EncoderSettings` ``audio`` / ``stream_wait_s``).
    """

    def __init__(self, settings: EncoderSettings, *, stats: EncodeStats | None = None) -> None:
        self._settings = settings
        self.stats = stats if stats is not None else EncodeStats()
        self._pending: list[VideoFrame | AudioFrame] = []
        self._sink = ByteSink()
        self._splitter = TsSplitter(self.stats)
        self._container: av.container.OutputContainer | None = None
        self._video: av.VideoStream | None = None
        self._audio: av.AudioStream | None = None
        self._chunker: AudioChunker | None = None
        self._resampler: av.AudioResampler | None = None
        self._resampler_key: tuple[int, str] | None = None
        discontinuity = round(settings.discontinuity_s * 90000)
        self._video_timeline = Timeline(settings.non_monotonic, discontinuity, self.stats)
        self._gop_ticks = round(settings.gop_seconds * 90000)
        self._last_key: int | None = None
        self._last_audio_cut: int | None = None
        self._finished = False

    # -- public API -----------------------------------------------------------

    def add(self, frame: VideoFrame | AudioFrame) -> list[TsItem]:
        if self._finished:
            raise MediaError("TsMuxer.add() after flush() or close()")
        if not isinstance(frame, VideoFrame | AudioFrame):
            raise TypeError(f"expected VideoFrame or AudioFrame, got {type(frame).__name__}")
        try:
            if self._container is None:
                if isinstance(frame, AudioFrame) and not self._settings.audio:
                    self.stats.dropped_no_stream += 1
                    return []
                self._pending.append(frame)
                if not self._ready_to_open():
                    return []
                self._open_from_pending()
            else:
                self._encode(frame)
        except av.FFmpegError as exc:
            raise MediaError(f"encoding failed: {exc}") from exc
        return self._collect()

    def flush(self) -> list[TsItem]:
        if self._finished:
            return []
        try:
            if self._container is None and self._pending:
                self._open_from_pending()
            if self._container is None:
                self._finished = True
                return []
            if self._audio is not None and self._chunker is not None:
                for pts, block in self._chunker.finish():
                    self._encode_audio_block(pts, block)
            for stream in (self._video, self._audio):
                if stream is not None:
                    self._mux(stream, stream.encode(None))
            container, self._container = self._container, None
            container.close()
        except av.FFmpegError as exc:
            self.close()
            raise MediaError(f"encoding failed: {exc}") from exc
        items = self._collect() + self._splitter.finish()
        self._release()
        return items

    def close(self) -> None:
        """Abandon the stream: no more output, encoders and container released."""
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(av.FFmpegError):
                container.close()
        self._release()

    # -- internals ------------------------------------------------------------

    def _release(self) -> None:
        self._finished = True
        self._video = self._audio = None
        self._resampler = None
        self._pending.clear()

    def _collect(self) -> list[TsItem]:
        data = self._sink.take()
        if not data:
            return []
        items = self._splitter.feed(data)
        self.stats.bytes_out += sum(len(i) for i in items if isinstance(i, bytes))
        return items

    def _ready_to_open(self) -> bool:
        has_video = any(isinstance(f, VideoFrame) for f in self._pending)
        has_audio = any(isinstance(f, AudioFrame) for f in self._pending)
        if has_video and (has_audio or not self._settings.audio):
            return True
        times = [f.time for f in self._pending]
        return max(times) - min(times) >= self._settings.stream_wait_s

    def _open_from_pending(self) -> None:
        pending = sorted(self._pending, key=lambda f: f.time)
        self._pending = []
        first_video = next((f for f in pending if isinstance(f, VideoFrame)), None)
        first_audio = next((f for f in pending if isinstance(f, AudioFrame)), None)
        self._open(first_video, first_audio)
        for frame in pending:
            self._encode(frame)

    def _open(self, first_video: VideoFrame | None, first_audio: AudioFrame | None) -> None:
        s = self._settings
        container = av.open(
            self._sink,
            mode="w",
            format="mpegts",
            container_options={
                "flush_packets": "1",
                "pes_payload_size": "0",
                # State each video PES length: a demuxer then hands a frame on at its
                # last byte instead of at the next frame's first (RUN-119).
                "omit_video_pes_length": "0",
                "avoid_negative_ts": "disabled",
                "max_interleave_delta": str(round(s.max_interleave_s * 1_000_000)),
                "mpegts_pmt_start_pid": str(PMT_PID),
            },
            buffer_size=65536,
        )
        self._container = container
        if first_video is not None:
            width = max(2, first_video.width - first_video.width % 2)
            height = max(2, first_video.height - first_video.height % 2)
            video = container.add_stream(s.codec, options=s.video_options())
            if not isinstance(video, av.VideoStream):
                raise MediaError(f"{s.codec!r} is not a video encoder")
            video.width, video.height = width, height
            video.pix_fmt = s.pix_fmt
            video.time_base = OUT_TIME_BASE
            ctx = video.codec_context
            ctx.time_base = OUT_TIME_BASE
            ctx.framerate = Fraction(s.rate_hint_fps).limit_denominator(1001)
            ctx.max_b_frames = 0
            if s.bitrate is not None:
                ctx.bit_rate = s.bitrate
            video.id = VIDEO_PID
            self._video = video
            self.stats.width, self.stats.height = width, height
        if first_audio is not None:
            rate = 48000 if s.audio_codec in ("libopus", "opus") else first_audio.sample_rate
            layout = "mono" if first_audio.channels == 1 else "stereo"
            audio = container.add_stream(s.audio_codec, rate=rate)
            if not isinstance(audio, av.AudioStream):
                raise MediaError(f"{s.audio_codec!r} is not an audio encoder")
            audio.layout = layout
            audio.bit_rate = s.audio_bitrate
            audio.id = AUDIO_PID
            audio.codec_context.open()
            frame_size = audio.codec_context.frame_size or 960
            discontinuity = round(s.discontinuity_s * rate)
            self._chunker = AudioChunker(
                1 if layout == "mono" else 2, frame_size, rate, discontinuity, self.stats
            )
            self._audio = audio

    def _encode(self, frame: VideoFrame | AudioFrame) -> None:
        if isinstance(frame, VideoFrame):
            if self._video is None:
                self.stats.dropped_no_stream += 1
            else:
                self._encode_video(self._video, frame)
        elif self._audio is None:
            self.stats.dropped_no_stream += 1
        else:
            self._encode_audio(self._audio, frame)

    def _encode_video(self, stream: av.VideoStream, frame: VideoFrame) -> None:
        pts = self._video_timeline.place(rescale(frame.pts, frame.time_base, 90000))
        if pts is None:
            return
        array = frame.tensor.cpu().numpy()
        picture = av.VideoFrame.from_ndarray(array, format="rgb24")
        picture.pts = pts
        picture.time_base = OUT_TIME_BASE
        if self._last_key is None or pts - self._last_key >= self._gop_ticks:
            picture.pict_type = PictureType.I
            self._last_key = pts
            self.stats.keyframes += 1
        if (frame.width, frame.height) != (stream.width, stream.height):
            self.stats.resized += 1
        self.stats.video_frames += 1
        self._mux(stream, stream.encode(picture))

    def _encode_audio(self, stream: av.AudioStream, frame: AudioFrame) -> None:
        assert self._chunker is not None
        rate = stream.codec_context.sample_rate
        data = frame.tensor.numpy()
        channels = stream.codec_context.channels
        if frame.sample_rate != rate or frame.channels != channels:
            data = self._resample(frame, rate, stream.layout.name)
        start = rescale(frame.pts, frame.time_base, rate)
        self.stats.audio_frames += 1
        for pts, block in self._chunker.push(start, data):
            self._encode_audio_block(pts, block)

    def _resample(self, frame: AudioFrame, rate: int, layout: str) -> npt.NDArray[np.float32]:
        key = (frame.sample_rate, frame.layout)
        if self._resampler is None or self._resampler_key != key:
            self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            self._resampler_key = key
        source = av.AudioFrame.from_ndarray(
            frame.tensor.numpy(), format="fltp", layout=frame.layout
        )
        source.sample_rate = frame.sample_rate
        blocks = [f.to_ndarray() for f in self._resampler.resample(source)]
        if not blocks:
            return np.zeros((2 if layout == "stereo" else 1, 0), np.float32)
        return np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=np.float32)

    def _encode_audio_block(self, pts: int, block: npt.NDArray[np.float32]) -> None:
        stream = self._audio
        assert stream is not None
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=stream.layout.name)
        frame.sample_rate = stream.codec_context.sample_rate
        frame.pts = pts
        frame.time_base = Fraction(1, frame.sample_rate)
        self._mux(stream, stream.encode(frame))

    def _mux(
        self, stream: av.VideoStream | av.AudioStream, packets: Sequence[av.Packet[Any]]
    ) -> None:
        assert self._container is not None
        for packet in packets:
            if packet.pts is None:
                continue
            if stream is self._video:
                self._splitter.expect(VIDEO_PID, packet.is_keyframe)
            else:
                cut = False
                if self._video is None:
                    t = rescale(packet.pts, packet.time_base, 90000)
                    if self._last_audio_cut is None or t - self._last_audio_cut >= self._gop_ticks:
                        self._last_audio_cut = t
                        cut = True
                self._splitter.expect(AUDIO_PID, cut)
            self._container.mux(packet)


async def encode_ts(
    frames: trio.MemoryReceiveChannel[VideoFrame | AudioFrame],
    out: trio.MemorySendChannel[TsItem],
    settings: EncoderSettings,
    *,
    stats: EncodeStats | None = None,
) -> None:
    """Encode frames from ``frames`` into MPEG-TS and send it to ``out``.

    ``out`` receives :data:`SEGMENT_BOUNDARY` before each segment's first byte,
    then that segment's bytes in the order the muxer writes them. When
    ``frames`` ends the encoders are flushed and the rest is sent; both channels
    are closed on return. If the receiver of ``out`` goes away, encoding stops
    quietly. Raises :class:`MediaError` if the encoder or muxer fails.
    Cancellation is prompt: the worker thread is unblocked, the muxer is closed
    without flushing and the thread exits before this returns.
    """

    muxer = TsMuxer(settings, stats=stats)

    def send_all(items: list[TsItem]) -> bool:
        for item in items:
            try:
                trio.from_thread.run(out.send, item)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return False
        return True

    def worker() -> None:
        try:
            while True:
                try:
                    frame = trio.from_thread.run(frames.receive)
                except trio.EndOfChannel:
                    break
                if not send_all(muxer.add(frame)):
                    return
            send_all(muxer.flush())
        except BaseException as exc:
            release_frames(exc)
            raise
        finally:
            muxer.close()

    async with frames, out:
        await trio.to_thread.run_sync(
            worker, thread_name=_THREAD_NAME, limiter=trio.CapacityLimiter(1)
        )
