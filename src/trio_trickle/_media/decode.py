"""MPEG-TS decoding: a byte stream in, :class:`VideoFrame`/:class:`AudioFrame` out.

The input is the concatenation of a trickle channel's segments, read as ONE
continuous MPEG-TS stream (segments are cut on keyframes and start with
PAT/PMT, so the demuxer sees an ordinary live TS).

All PyAV work for one stream runs in one worker thread. The container reads
through a file-like object whose ``read()`` pulls chunks from a trio channel
with ``trio.from_thread.run``; frames go out the same way. That replaces the
``os.pipe()`` + ``pipe:`` decoder of pytrickle and ai-runner, whose thread stays
blocked on the pipe when the subscriber is cancelled (RUN-106): here a
cancelled caller makes the pending ``from_thread.run`` raise ``Cancelled`` in
the thread, the read callback turns that into an ordinary exception PyAV
propagates, the container is closed and the thread ends before
``decode_ts`` returns.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Generator, Iterable
from fractions import Fraction
from typing import Any, cast

import attrs
import av
import av.container
import numpy as np
import numpy.typing as npt
import torch
import trio

from .._errors import InvalidMessage
from .frames import AudioFrame, MediaError, VideoFrame, layout_channels

__all__ = ["DecodeStats", "TsDecoder", "decode_segments", "decode_ts"]

#: Probing limits. FFmpeg's defaults (5 MB / 5 s) make a live stream wait seconds
#: for its first frame (go-livepeer#3401); packets read while probing are kept,
#: so small limits cost nothing but the parameters the decoder finds anyway.
PROBE_SIZE = 131072
ANALYZE_DURATION_US = 100_000
#: Demuxer errors in a row (with no packet in between) before giving up.
MAX_CONSECUTIVE_DEMUX_ERRORS = 16

_THREAD_NAME = "trio-trickle media decode"


@attrs.define
class DecodeStats:
    """Counters a decoder updates as it goes (read them from any task)."""

    video_frames: int = 0
    audio_frames: int = 0
    #: Packets the codec rejected, demuxer errors and frames without a pts: skipped.
    skipped: int = 0
    bytes_in: int = 0
    has_video: bool = False
    has_audio: bool = False
    width: int = 0
    height: int = 0
    #: Seconds from opening the input to the first decoded frame.
    first_frame_s: float | None = None


class _Aborted(Exception):
    """Raised inside PyAV's read callback to unwind it.

    PyAV only propagates ``Exception`` out of a file-like ``read``; a
    ``BaseException`` such as ``trio.Cancelled`` is printed and swallowed, so the
    real exception is parked on the reader and re-raised once PyAV has unwound.
    """


class _ByteReader:
    """File-like ``read(n)`` over a ``next_chunk`` callable (``None`` means EOF)."""

    def __init__(self, next_chunk: Callable[[], bytes | None], stats: DecodeStats) -> None:
        self._next_chunk = next_chunk
        self._stats = stats
        self._view = memoryview(b"")
        self._eof = False
        self.failure: BaseException | None = None

    def read(self, size: int) -> bytes:
        if self.failure is not None:
            # Already unwinding: one _Aborted did that. Reads after it (PyAV
            # closing or flushing) see end of file, because an exception there
            # cannot propagate and PyAV prints it as "exception being dropped".
            return b""
        while not self._view:
            if self._eof:
                return b""
            try:
                chunk = self._next_chunk()
            except BaseException as exc:  # Cancelled included: PyAV must not see it.
                self.failure = exc
                raise _Aborted from None
            if chunk is None:
                self._eof = True
                return b""
            self._stats.bytes_in += len(chunk)
            self._view = memoryview(chunk)
        out = bytes(self._view[:size])
        self._view = self._view[size:]
        return out


def _audio_to_tensor(frame: av.AudioFrame) -> torch.Tensor:
    """Planar float32 (channels, samples) from any sample format."""
    raw: npt.NDArray[Any] = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        raw = raw.reshape(-1, channels).T
    if raw.dtype == np.float32:
        data = raw
    elif raw.dtype == np.float64:
        data = raw.astype(np.float32)
    elif raw.dtype == np.int16:
        data = raw.astype(np.float32) / 32768.0
    elif raw.dtype == np.int32:
        data = raw.astype(np.float32) / 2147483648.0
    elif raw.dtype == np.uint8:
        data = (raw.astype(np.float32) - 128.0) / 128.0
    else:  # pragma: no cover - FFmpeg has no other sample types
        raise MediaError(f"unsupported audio sample format {frame.format.name}")
    return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))


def _layout_name(layout: av.AudioLayout) -> str:
    """A layout name :class:`AudioFrame` accepts; unnamed layouts get the default
    layout for their channel count."""
    try:
        if layout_channels(layout.name) == layout.nb_channels:
            return layout.name
    except InvalidMessage:
        pass
    return str(av.AudioLayout(f"{layout.nb_channels}c").name)


class TsDecoder:
    """Synchronous MPEG-TS decoder over a file-like ``read(n)`` source.

    ``frames()`` yields frames in decode order until EOF; ``close()`` (also the
    context-manager exit) releases the container and codecs. Used by
    :func:`decode_ts` inside its worker thread and directly by tests/benchmarks.
    """

    def __init__(
        self,
        source: _ByteReader,
        *,
        device: str = "cpu",
        video: bool = True,
        audio: bool = True,
        stats: DecodeStats | None = None,
    ) -> None:
        self._source = source
        self._device = torch.device(device)
        self._want_video = video
        self._want_audio = audio
        self.stats = stats if stats is not None else DecodeStats()
        self._container: av.container.InputContainer | None = None

    def __enter__(self) -> TsDecoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.close()

    def _open(self) -> av.container.InputContainer:
        try:
            container = av.open(
                self._source,
                mode="r",
                format="mpegts",
                options={"probesize": str(PROBE_SIZE), "analyzeduration": str(ANALYZE_DURATION_US)},
            )
        except _Aborted:
            raise
        except av.FFmpegError as exc:
            if isinstance(exc, EOFError):
                raise MediaError("the input ended before an MPEG-TS stream was found") from exc
            raise MediaError(f"cannot open the MPEG-TS input: {exc}") from exc
        self._container = container
        return container

    def frames(self) -> Generator[VideoFrame | AudioFrame, None, None]:
        started = time.monotonic()
        container = self._open()
        streams: list[av.VideoStream | av.AudioStream] = []
        if self._want_video and container.streams.video:
            streams.append(container.streams.video[0])
            self.stats.has_video = True
        if self._want_audio and container.streams.audio:
            streams.append(container.streams.audio[0])
            self.stats.has_audio = True
        if not streams:
            wanted = "/".join(
                k for k, w in (("video", self._want_video), ("audio", self._want_audio)) if w
            )
            raise MediaError(f"the MPEG-TS input has no {wanted or 'selected'} stream")
        for stream in streams:
            # Slice threads only: frame threads would hold back a frame per thread.
            stream.codec_context.thread_type = "SLICE"
        errors_in_row = 0
        while True:
            try:
                for packet in container.demux(streams):
                    errors_in_row = 0
                    try:
                        decoded = packet.decode()
                    except av.FFmpegError:
                        self.stats.skipped += 1
                        continue
                    for raw in decoded:
                        frame = self._convert(raw)
                        if frame is None:
                            continue
                        if self.stats.first_frame_s is None:
                            self.stats.first_frame_s = time.monotonic() - started
                        yield frame
                return
            except av.FFmpegError as exc:
                errors_in_row += 1
                self.stats.skipped += 1
                if errors_in_row >= MAX_CONSECUTIVE_DEMUX_ERRORS:
                    raise MediaError(f"the MPEG-TS input keeps failing to demux: {exc}") from exc

    def _convert(self, raw: object) -> VideoFrame | AudioFrame | None:
        if isinstance(raw, av.VideoFrame):
            if raw.pts is None or raw.time_base is None:
                self.stats.skipped += 1
                return None
            array = cast(npt.NDArray[np.uint8], raw.to_ndarray(format="rgb24"))
            tensor = torch.from_numpy(np.ascontiguousarray(array))
            if self._device.type != "cpu":
                tensor = tensor.to(self._device)
            self.stats.video_frames += 1
            self.stats.width, self.stats.height = raw.width, raw.height
            return VideoFrame(tensor=tensor, pts=raw.pts, time_base=Fraction(raw.time_base))
        if isinstance(raw, av.AudioFrame):
            if raw.pts is None or raw.time_base is None or raw.samples == 0:
                self.stats.skipped += 1
                return None
            self.stats.audio_frames += 1
            return AudioFrame(
                tensor=_audio_to_tensor(raw),
                pts=raw.pts,
                time_base=Fraction(raw.time_base),
                sample_rate=raw.sample_rate,
                layout=_layout_name(raw.layout),
            )
        return None


def release_frames(exc: BaseException) -> None:
    """Drop the locals of the finished frames an exception's traceback holds.

    PyAV frees a codec (and its worker threads) only when the last Python
    reference goes; a traceback keeps the decoding frames' packets and streams
    alive for as long as the exception lives, and longer if it sits in a
    reference cycle. Teardown must not wait for the garbage collector (RUN-106).
    """
    traceback.clear_frames(exc.__traceback__)
    for linked in (exc.__cause__, exc.__context__):
        if linked is not None and linked is not exc:
            traceback.clear_frames(linked.__traceback__)


def decode_segments(
    segments: Iterable[bytes],
    *,
    device: str = "cpu",
    video: bool = True,
    audio: bool = True,
    stats: DecodeStats | None = None,
) -> list[VideoFrame | AudioFrame]:
    """Decode in-memory TS bytes (e.g. trickle segments, concatenated) synchronously."""
    chunks = iter(segments)
    decode_stats = stats if stats is not None else DecodeStats()
    reader = _ByteReader(lambda: next(chunks, None), decode_stats)
    try:
        with TsDecoder(reader, device=device, video=video, audio=audio, stats=decode_stats) as dec:
            return list(dec.frames())
    except BaseException as exc:
        release_frames(exc)
        raise


def _check_device(device: str) -> None:
    parsed = torch.device(device)
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but CUDA is not available")


async def decode_ts(
    chunks: trio.MemoryReceiveChannel[bytes],
    out: trio.MemorySendChannel[VideoFrame | AudioFrame],
    *,
    device: str = "cpu",
    video: bool = True,
    audio: bool = True,
    stats: DecodeStats | None = None,
) -> None:
    """Decode the MPEG-TS bytes arriving on ``chunks`` and send frames to ``out``.

    Returns when ``chunks`` ends (``EndOfChannel``) and every frame is sent, or
    when the receiver of ``out`` has gone away. Closes both ``chunks`` and ``out``
    on the way out so the neighbours see the end. ``out.send`` blocks: drop
    policies (latest frame wins) belong to the caller. Raises
    :class:`MediaError` when the input has no selected stream or cannot be
    demuxed at all; single undecodable packets are skipped and counted in
    ``stats.skipped``. Cancellation is prompt: the worker thread is unblocked,
    closes the container and exits before this returns.
    """
    decode_stats = stats if stats is not None else DecodeStats()

    def next_chunk() -> bytes | None:
        try:
            return trio.from_thread.run(chunks.receive)
        except trio.EndOfChannel:
            return None

    def worker() -> None:
        reader = _ByteReader(next_chunk, decode_stats)
        try:
            with TsDecoder(
                reader, device=device, video=video, audio=audio, stats=decode_stats
            ) as decoder:
                frames = decoder.frames()
                try:
                    for frame in frames:
                        try:
                            trio.from_thread.run(out.send, frame)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            return
                finally:
                    frames.close()
        except BaseException as exc:
            release_frames(exc)
            if reader.failure is None:
                raise
        if reader.failure is not None:
            raise reader.failure

    async with chunks, out:
        _check_device(device)
        await trio.to_thread.run_sync(
            worker, thread_name=_THREAD_NAME, limiter=trio.CapacityLimiter(1)
        )
