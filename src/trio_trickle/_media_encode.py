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
"""

from __future__ import annotations

import contextlib
import enum
from collections import deque
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Literal

import attrs
import av
import av.container
import numpy as np
import numpy.typing as npt
import trio
from av.video.frame import PictureType

from ._errors import InvalidMessage
from ._media_decode import release_frames
from ._media_frames import AudioFrame, MediaError, VideoFrame
from ._wire_util import in_range, instance_of, non_empty, optional

__all__ = [
    "SEGMENT_BOUNDARY",
    "EncodeStats",
    "EncoderSettings",
    "SegmentBoundary",
    "TsMuxer",
    "encode_ts",
]

OUT_TIME_BASE = Fraction(1, 90000)
TS_PACKET_SIZE = 188
VIDEO_PID = 0x100
AUDIO_PID = 0x101
PMT_PID = 0x1000
#: PAT, SDT and PMT: the tables the muxer repeats; they stick to the packet after them.
_TABLE_PIDS = frozenset({0x0000, 0x0011, PMT_PID})
_THREAD_NAME = "trio-trickle media encode"


class SegmentBoundary(enum.Enum):
    """Type of :data:`SEGMENT_BOUNDARY`: "the bytes after this start a new segment"."""

    SEGMENT_BOUNDARY = "segment_boundary"

    def __repr__(self) -> str:
        return "SEGMENT_BOUNDARY"


SEGMENT_BOUNDARY = SegmentBoundary.SEGMENT_BOUNDARY
TsItem = bytes | SegmentBoundary


@attrs.frozen(kw_only=True)
class EncoderSettings:
    """How processed frames are encoded (defaults follow the live runners).

    Video: ``libx264`` with ``preset=superfast``, ``tune=zerolatency``, no
    B-frames, scene-cut keyframes off, an IDR forced on the first frame at least
    ``gop_seconds`` of media time after the previous one (each IDR starts a
    trickle segment), ``pix_fmt=yuv420p``, constant quality ``crf`` unless
    ``bitrate`` (bits/s, also used as VBV max rate and 1 s buffer) is set. No fps
    cap: every frame handed in is encoded. ``rate_hint_fps`` is only a rate
    control hint; timestamps always come from the frames. The output size is
    the first video frame's size (rounded down to even); later frames of another
    size are scaled to it (RUN-116).

    Audio is re-encoded (``audio_codec``, default ``aac``), never passed through:
    ``process_audio`` hooks may change, drop or add samples, so the input
    packets no longer describe the output; and one muxer for both streams keeps
    audio and video in the same MPEG-TS on one timeline. Separate audio and
    video outputs drifted apart in Scope (#999). ``libopus`` works too (always
    48 kHz). The first audio frame fixes the sample rate and layout (mono, or
    stereo for two or more channels); later frames are resampled to them.

    ``audio``: mux audio when audio frames arrive within ``stream_wait_s`` of
    media time of the first frame; ``False`` gives video-only output that starts
    with no wait at all.
    """

    codec: str = attrs.field(default="libx264", validator=non_empty)
    preset: str = attrs.field(default="superfast", validator=non_empty)
    tune: str = attrs.field(default="zerolatency", validator=non_empty)
    gop_seconds: float = attrs.field(
        default=1.0, validator=[instance_of(int, float), in_range(0.04, 60.0)]
    )
    crf: int = attrs.field(default=23, validator=[instance_of(int), in_range(0, 51)])
    bitrate: int | None = attrs.field(
        default=None, validator=optional(in_range(10_000, 500_000_000))
    )
    pix_fmt: str = attrs.field(default="yuv420p", validator=non_empty)
    rate_hint_fps: float = attrs.field(
        default=30.0, validator=[instance_of(int, float), in_range(1.0, 1000.0)]
    )
    #: Extra encoder options (name, value), applied last: e.g. for ``h264_nvenc``.
    extra_options: tuple[tuple[str, str], ...] = ()
    audio: bool = attrs.field(default=True, validator=instance_of(bool))
    audio_codec: str = attrs.field(default="aac", validator=non_empty)
    audio_bitrate: int = attrs.field(
        default=128_000, validator=[instance_of(int), in_range(8_000, 1_000_000)]
    )
    stream_wait_s: float = attrs.field(
        default=0.5, validator=[instance_of(int, float), in_range(0.0, 10.0)]
    )
    non_monotonic: Literal["drop", "bump"] = attrs.field(default="drop")
    discontinuity_s: float = attrs.field(
        default=1.0, validator=[instance_of(int, float), in_range(0.1, 3600.0)]
    )
    #: Longest a packet waits in the muxer for the other stream (libavformat
    #: ``max_interleave_delta``); bounds the video delay when audio stalls.
    max_interleave_s: float = attrs.field(
        default=0.1, validator=[instance_of(int, float), in_range(0.001, 10.0)]
    )

    @non_monotonic.validator
    def _check_policy(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in ("drop", "bump"):
            raise InvalidMessage(f"{attribute.name}: must be 'drop' or 'bump', got {value!r}")

    def video_options(self) -> dict[str, str]:
        """Encoder options passed to ``avcodec_open2``."""
        options = {"bf": "0"}
        if self.codec == "libx264":
            options.update(
                {
                    "preset": self.preset,
                    "tune": self.tune,
                    "forced-idr": "1",
                    # Keyframes only where we force them (time-based); none by scene cut.
                    "x264-params": "scenecut=0:keyint=infinite",
                }
            )
            if self.bitrate is None:
                options["crf"] = str(self.crf)
        if self.bitrate is not None:
            options.update(
                {"b": str(self.bitrate), "maxrate": str(self.bitrate), "bufsize": str(self.bitrate)}
            )
        options.update(dict(self.extra_options))
        return options


@attrs.define
class EncodeStats:
    """Counters an encoder updates as it goes."""

    video_frames: int = 0
    audio_frames: int = 0
    #: Frames dropped because their pts did not increase (RUN-113).
    dropped: int = 0
    #: Frames moved one tick forward (``non_monotonic="bump"``).
    bumped: int = 0
    #: Backward timestamp jumps re-anchored.
    discontinuities: int = 0
    #: Frames of a kind the output has no stream for (e.g. audio after a video-only start).
    dropped_no_stream: int = 0
    #: Video frames scaled to the output size.
    resized: int = 0
    audio_gap_samples: int = 0
    audio_trimmed_samples: int = 0
    keyframes: int = 0
    segments: int = 0
    bytes_out: int = 0
    width: int = 0
    height: int = 0


def _rescale(pts: int, time_base: Fraction, rate: int) -> int:
    return round(pts * time_base * rate)


class _Timeline:
    """Monotonic guard for one output stream, in its own tick unit."""

    def __init__(self, policy: str, discontinuity: int, stats: EncodeStats) -> None:
        self._policy = policy
        self._discontinuity = discontinuity
        self._stats = stats
        self._offset = 0
        self._step = 1
        self.last: int | None = None

    def place(self, ticks: int) -> int | None:
        t = ticks + self._offset
        last = self.last
        if last is not None and t <= last:
            if last - t > self._discontinuity:
                self._offset += last + self._step - t
                self._stats.discontinuities += 1
                t = last + self._step
            elif self._policy == "bump":
                self._stats.bumped += 1
                t = last + 1
            else:
                self._stats.dropped += 1
                return None
        if last is not None and t - last <= self._discontinuity:
            self._step = t - last
        self.last = t
        return t


class _AudioChunker:
    """Re-blocks audio into encoder-sized frames on the input timeline.

    Small timestamp jitter is absorbed; a gap is filled with silence (up to the
    discontinuity limit, beyond which the block restarts at the new time); an
    overlap is trimmed; a long backwards jump re-anchors.
    """

    def __init__(
        self, channels: int, frame_size: int, rate: int, discontinuity: int, stats: EncodeStats
    ) -> None:
        self._channels = channels
        self._frame_size = frame_size
        self._tolerance = max(2, rate // 500)
        self._discontinuity = discontinuity
        self._stats = stats
        self._offset = 0
        self._start: int | None = None
        self._buf: npt.NDArray[np.float32] = np.zeros((channels, 0), np.float32)

    def push(
        self, start: int, data: npt.NDArray[np.float32]
    ) -> list[tuple[int, npt.NDArray[np.float32]]]:
        out: list[tuple[int, npt.NDArray[np.float32]]] = []
        start += self._offset
        if self._start is None:
            self._start = start
            self._buf = data
        else:
            expected = self._start + self._buf.shape[1]
            delta = start - expected
            if abs(delta) <= self._tolerance:
                self._buf = np.concatenate([self._buf, data], axis=1)
            elif delta > 0:
                if delta <= self._discontinuity:
                    self._stats.audio_gap_samples += delta
                    silence = np.zeros((self._channels, delta), np.float32)
                    self._buf = np.concatenate([self._buf, silence, data], axis=1)
                else:
                    out.extend(self._drain(pad=True))
                    self._start, self._buf = start, data
            elif -delta > self._discontinuity:
                self._offset -= delta
                self._stats.discontinuities += 1
                self._buf = np.concatenate([self._buf, data], axis=1)
            elif -delta >= data.shape[1]:
                self._stats.dropped += 1
                self._stats.audio_trimmed_samples += data.shape[1]
            else:
                self._stats.audio_trimmed_samples += -delta
                self._buf = np.concatenate([self._buf, data[:, -delta:]], axis=1)
        out.extend(self._drain(pad=False))
        return out

    def _drain(self, *, pad: bool) -> list[tuple[int, npt.NDArray[np.float32]]]:
        out: list[tuple[int, npt.NDArray[np.float32]]] = []
        size = self._frame_size
        assert self._start is not None
        while self._buf.shape[1] >= size:
            out.append((self._start, np.ascontiguousarray(self._buf[:, :size])))
            self._buf = self._buf[:, size:]
            self._start += size
        if pad and self._buf.shape[1]:
            block = np.zeros((self._channels, size), np.float32)
            block[:, : self._buf.shape[1]] = self._buf
            out.append((self._start, block))
            self._start += size
            self._buf = self._buf[:, :0]
        return out

    def finish(self) -> list[tuple[int, npt.NDArray[np.float32]]]:
        if self._start is None:
            return []
        return self._drain(pad=True)


class _Sink:
    """Write-only file object collecting what the muxer writes."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class _TsSplitter:
    """Finds segment cuts in the muxer's TS output (see the module docstring)."""

    def __init__(self, stats: EncodeStats) -> None:
        self._stats = stats
        self._carry = b""
        self._tables: list[bytes] = []
        self._started = False
        self._pids_in_segment: set[int] = set()
        self._expected: dict[int, deque[bool]] = {VIDEO_PID: deque(), AUDIO_PID: deque()}

    def expect(self, pid: int, cut: bool) -> None:
        """Record that the next PES on ``pid`` is a packet that should start a segment."""
        self._expected[pid].append(cut)

    def feed(self, data: bytes) -> list[TsItem]:
        buf = self._carry + data if self._carry else data
        whole = len(buf) - len(buf) % TS_PACKET_SIZE
        self._carry = buf[whole:]
        items: list[TsItem] = []
        run = bytearray()
        for offset in range(0, whole, TS_PACKET_SIZE):
            packet = buf[offset : offset + TS_PACKET_SIZE]
            pid = ((packet[1] & 0x1F) << 8) | packet[2]
            if pid in _TABLE_PIDS:
                self._tables.append(packet)
                continue
            cut = False
            if packet[1] & 0x40 and pid in self._expected:
                queue = self._expected[pid]
                cut = bool(queue.popleft()) if queue else False
                cut = cut and pid in self._pids_in_segment
            if not self._started or cut:
                if run:
                    items.append(bytes(run))
                    run.clear()
                items.append(SEGMENT_BOUNDARY)
                self._stats.segments += 1
                self._started = True
                self._pids_in_segment.clear()
            if packet[1] & 0x40:
                self._pids_in_segment.add(pid)
            for table in self._tables:
                run += table
            self._tables.clear()
            run += packet
        if run:
            items.append(bytes(run))
        return items

    def finish(self) -> list[TsItem]:
        rest = b"".join(self._tables) + self._carry
        self._tables.clear()
        self._carry = b""
        if not rest:
            return []
        if not self._started:
            self._started = True
            self._stats.segments += 1
            return [SEGMENT_BOUNDARY, rest]
        return [rest]


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
        self._sink = _Sink()
        self._splitter = _TsSplitter(self.stats)
        self._container: av.container.OutputContainer | None = None
        self._video: av.VideoStream | None = None
        self._audio: av.AudioStream | None = None
        self._chunker: _AudioChunker | None = None
        self._resampler: av.AudioResampler | None = None
        self._resampler_key: tuple[int, str] | None = None
        discontinuity = round(settings.discontinuity_s * 90000)
        self._video_timeline = _Timeline(settings.non_monotonic, discontinuity, self.stats)
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
            self._chunker = _AudioChunker(
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
        pts = self._video_timeline.place(_rescale(frame.pts, frame.time_base, 90000))
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
        start = _rescale(frame.pts, frame.time_base, rate)
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
                    t = _rescale(packet.pts, packet.time_base, 90000)
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
