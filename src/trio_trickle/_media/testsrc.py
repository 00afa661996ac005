"""Deterministic generated media for tests, the demo and benchmarks.

The picture is colour bars with a box that moves every frame (visible motion for
a human and for the encoder) and the frame index written as black/white blocks
along the bottom, so a test can read back which frame it got after lossy coding
(:func:`read_index`). The sound is a beep at the start of every second, in step
with every ``fps``-th frame, so A/V sync can be measured. Timestamps start at
1.4 s, not zero (like a live TS from FFmpeg), on a 1/90000 base for video and
1/sample-rate for audio.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator
from fractions import Fraction

import attrs
import av
import numpy as np
import numpy.typing as npt
import torch

from .decode import DecodeStats, TsDecoder, _ByteReader
from .encode import SEGMENT_BOUNDARY, EncoderSettings, TsItem, TsMuxer
from .frames import AudioFrame, VideoFrame

__all__ = [
    "codec_ceiling",
    "generate_frames",
    "generate_ts",
    "live_pieces",
    "read_index",
    "test_pattern",
    "tone",
]

START_SECONDS = Fraction(7, 5)
INDEX_BITS = 12
_BARS = np.array(
    [
        [191, 191, 191],
        [191, 191, 0],
        [0, 191, 191],
        [0, 191, 0],
        [191, 0, 191],
        [191, 0, 0],
        [0, 0, 191],
        [16, 16, 16],
    ],
    dtype=np.uint8,
)


def _strip_height(height: int) -> int:
    return max(4, height // 6)


def test_pattern(width: int, height: int, index: int) -> npt.NDArray[np.uint8]:
    """Frame ``index`` of the pattern: an RGB uint8 (height, width, 3) array.

    The bottom strip holds ``index`` modulo 2**12 as 12 blocks (most significant
    first, white = 1), each ``width // 12`` wide; ``width`` must be >= 24.
    """
    if width < 2 * INDEX_BITS or height < 16:
        raise ValueError("test_pattern needs width >= 24 and height >= 16")
    frame = np.empty((height, width, 3), np.uint8)
    strip = _strip_height(height)
    top = height - strip
    bar = (np.arange(width) * len(_BARS)) // width
    frame[:top] = _BARS[bar][None, :, :]
    box = max(4, min(width, top) // 4)
    x = (index * 3) % max(1, width - box)
    y = int((top - box) * (0.5 + 0.5 * math.sin(index / 7.0)))
    frame[y : y + box, x : x + box] = (255, 128, 0)
    frame[top:] = 0
    block = width // INDEX_BITS
    for bit in range(INDEX_BITS):
        if (index >> (INDEX_BITS - 1 - bit)) & 1:
            frame[top:, bit * block : (bit + 1) * block] = 255
    return frame


# pytest would otherwise collect this helper wherever a test module imports it by name.
test_pattern.__test__ = False  # type: ignore[attr-defined]


def read_index(frame: npt.NDArray[np.uint8]) -> int:
    """Read back the index :func:`test_pattern` wrote (tolerates codec noise)."""
    height, width = frame.shape[0], frame.shape[1]
    strip = _strip_height(height)
    block = width // INDEX_BITS
    rows = frame[height - strip + 1 : height - 1]
    value = 0
    for bit in range(INDEX_BITS):
        cell = rows[:, bit * block + 1 : (bit + 1) * block - 1]
        value = (value << 1) | int(cell.mean() > 127)
    return value


def tone(channels: int, rate: int, first: int, count: int) -> npt.NDArray[np.float32]:
    """Samples ``first .. first+count`` of the test sound, float32 (channels, count).

    A 100 ms beep at the start of every second (440 Hz, then 660 Hz, ... per
    channel), silence in between: the beep starts exactly with the video frame
    whose index is a multiple of the frame rate, so A/V sync can be measured.
    """
    n = np.arange(first, first + count, dtype=np.int64)
    t = n.astype(np.float64) / rate
    freqs = 440.0 * (1.5 ** np.arange(channels))
    gate = (n % rate) < rate // 10
    return (0.3 * np.sin(2 * np.pi * freqs[:, None] * t[None, :]) * gate).astype(np.float32)


def generate_frames(
    *,
    seconds: float,
    width: int,
    height: int,
    fps: float,
    audio: bool,
    video: bool = True,
    sample_rate: int = 48000,
    channels: int = 2,
    audio_block: int = 1024,
) -> Iterator[VideoFrame | AudioFrame]:
    """The pattern and tone as frames, in presentation order.

    Audio comes in blocks of ``audio_block`` samples (1024, an AAC frame).
    """
    video_tb = Fraction(1, 90000)
    audio_tb = Fraction(1, sample_rate)
    layout = "mono" if channels == 1 else "stereo"
    n_video = round(seconds * fps) if video else 0
    n_samples = round(seconds * sample_rate) if audio else 0
    start_video = round(START_SECONDS / video_tb)
    start_audio = round(START_SECONDS / audio_tb)
    frame_ticks = Fraction(90000) / Fraction(fps).limit_denominator(1001)
    vi = 0
    sample = 0
    while vi < n_video or sample < n_samples:
        video_time = vi / fps if vi < n_video else math.inf
        audio_time = sample / sample_rate if sample < n_samples else math.inf
        if video_time <= audio_time:
            yield VideoFrame(
                tensor=torch.from_numpy(test_pattern(width, height, vi)),
                pts=start_video + round(vi * frame_ticks),
                time_base=video_tb,
            )
            vi += 1
        else:
            count = min(audio_block, n_samples - sample)
            yield AudioFrame(
                tensor=torch.from_numpy(tone(channels, sample_rate, sample, count)),
                pts=start_audio + sample,
                time_base=audio_tb,
                sample_rate=sample_rate,
                layout=layout,
            )
            sample += count


def generate_ts(
    *,
    seconds: float,
    width: int,
    height: int,
    fps: float,
    audio: bool,
    gop_seconds: float = 1.0,
    video: bool = True,
    settings: EncoderSettings | None = None,
) -> list[bytes]:
    """H.264 (+ AAC) MPEG-TS of the pattern, one list item per GOP-led segment.

    Made with :class:`TsMuxer`, so the segments look exactly like a runner's
    output. ``video=False`` gives audio-only TS (cut every ``gop_seconds``).
    """
    base = settings if settings is not None else EncoderSettings()
    muxer = TsMuxer(attrs.evolve(base, gop_seconds=gop_seconds))
    segments: list[bytearray] = []
    items: list[TsItem] = []
    try:
        for frame in generate_frames(
            seconds=seconds, width=width, height=height, fps=fps, audio=audio, video=video
        ):
            items.extend(muxer.add(frame))
        items.extend(muxer.flush())
    finally:
        muxer.close()
    for item in items:
        if item is SEGMENT_BOUNDARY:
            segments.append(bytearray())
        elif isinstance(item, bytes):
            segments[-1] += item
    return [bytes(s) for s in segments]


def live_pieces(segment: bytes) -> list[tuple[int | None, bytes]]:
    """Cut a TS segment where each PES starts, as a live encoder hands it out.

    Each piece holds one whole frame (the first also the tables before it) and
    is labelled with the frame's pts when it is video, ``None`` otherwise. A
    publisher that paces these pieces and stamps each video piece as it is
    written measures latency from the moment a frame was complete, not from
    where an arbitrary cut fell (FFmpeg's muxer writes each PES contiguously).
    """
    with av.open(io.BytesIO(segment), mode="r", format="mpegts") as container:
        starts = sorted(
            (
                (packet.pos, packet.pts if packet.stream.type == "video" else None)
                for packet in container.demux()
                if packet.size and packet.pos is not None and packet.pos >= 0
            ),
            key=lambda start: start[0],
        )
    cuts = [0] + [pos for pos, _ in starts[1:]] + [len(segment)]
    return [(pts, segment[cuts[i] : cuts[i + 1]]) for i, (_, pts) in enumerate(starts)]


def codec_ceiling(
    segments: list[bytes], *, device: str = "cpu", settings: EncoderSettings | None = None
) -> dict[str, float | int]:
    """Decode then re-encode ``segments`` in this thread, as fast as possible.

    The upper bound a session can reach on this machine with no network, no
    hooks and no thread hops: frames, seconds spent decoding and encoding, and
    the frames per second of the whole loop.
    """
    stats = DecodeStats()
    chunks = iter(segments)
    reader = _ByteReader(lambda: next(chunks, None), stats)
    muxer = TsMuxer(settings if settings is not None else EncoderSettings())
    decode_s = encode_s = 0.0
    out_bytes = 0
    started = time.perf_counter()
    with TsDecoder(reader, device=device, stats=stats) as decoder:
        frames = decoder.frames()
        try:
            while True:
                t0 = time.perf_counter()
                frame = next(frames, None)
                t1 = time.perf_counter()
                decode_s += t1 - t0
                if frame is None:
                    break
                out_bytes += sum(len(i) for i in muxer.add(frame) if isinstance(i, bytes))
                encode_s += time.perf_counter() - t1
            t1 = time.perf_counter()
            out_bytes += sum(len(i) for i in muxer.flush() if isinstance(i, bytes))
            encode_s += time.perf_counter() - t1
        finally:
            muxer.close()
    total = time.perf_counter() - started
    return {
        "frames": stats.video_frames,
        "audio_frames": stats.audio_frames,
        "width": stats.width,
        "height": stats.height,
        "decode_s": decode_s,
        "encode_s": encode_s,
        "total_s": total,
        "fps": stats.video_frames / total if total > 0 else 0.0,
        "bytes_out": out_bytes,
    }
