"""Real PyAV decode/encode of generated MPEG-TS: timing, layout, segments, A/V, teardown.

Everything runs on real media (libx264 + AAC through PyAV), kept tiny (64x64,
3 s at 30 fps) so the file runs in seconds on two cores.
"""

from __future__ import annotations

import functools
import gc
import io
import itertools
import os
import random
import threading
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import pytest

av = pytest.importorskip("av")
torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

import trio  # noqa: E402

from trio_trickle._media import testsrc  # noqa: E402
from trio_trickle._media.decode import DecodeStats, decode_segments, decode_ts  # noqa: E402
from trio_trickle._media.encode import TsMuxer, encode_ts  # noqa: E402
from trio_trickle._media.encode_settings import (  # noqa: E402
    SEGMENT_BOUNDARY,
    EncoderSettings,
    EncodeStats,
    SegmentBoundary,
)
from trio_trickle._media.frames import AudioFrame, MediaError, VideoFrame  # noqa: E402

W, H, FPS, SECONDS = 64, 64, 30, 3.0
N_VIDEO = int(FPS * SECONDS)
START = 126000  # 1.4 s on 1/90000, where the test source starts
STEP = 3000  # one frame at 30 fps on 1/90000
TB = Fraction(1, 90000)
Frame = VideoFrame | AudioFrame
Item = bytes | SegmentBoundary


@functools.cache
def _source(audio: bool = True, video: bool = True, gop: float = 1.0) -> tuple[bytes, ...]:
    return tuple(
        testsrc.generate_ts(
            seconds=SECONDS, width=W, height=H, fps=FPS, audio=audio, video=video, gop_seconds=gop
        )
    )


def _split(frames: Sequence[Frame]) -> tuple[list[VideoFrame], list[AudioFrame]]:
    return (
        [f for f in frames if isinstance(f, VideoFrame)],
        [f for f in frames if isinstance(f, AudioFrame)],
    )


def _segments(items: Sequence[Item]) -> list[bytes]:
    assert items, "no output at all"
    assert items[0] is SEGMENT_BOUNDARY, "output must open with a segment boundary"
    segments: list[bytearray] = []
    for item in items:
        if item is SEGMENT_BOUNDARY:
            segments.append(bytearray())
        else:
            assert isinstance(item, bytes)
            segments[-1] += item
    return [bytes(s) for s in segments]


async def _feed(send: trio.MemorySendChannel[bytes], segments: Sequence[bytes], chunk: int) -> None:
    async with send:
        for segment in segments:
            for offset in range(0, len(segment), chunk):
                await send.send(segment[offset : offset + chunk])


async def _decode(
    segments: Sequence[bytes], *, chunk: int = 4096, **kwargs: object
) -> tuple[list[Frame], DecodeStats]:
    stats = DecodeStats()
    send_bytes, recv_bytes = trio.open_memory_channel[bytes](4)
    send_frames, recv_frames = trio.open_memory_channel[Frame](8)
    frames: list[Frame] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_feed, send_bytes, segments, chunk)
        nursery.start_soon(
            functools.partial(decode_ts, recv_bytes, send_frames, stats=stats, **kwargs)  # type: ignore[arg-type]
        )
        async for frame in recv_frames:
            frames.append(frame)
    return frames, stats


async def _round_trip(
    segments: Sequence[bytes], settings: EncoderSettings
) -> tuple[list[Item], EncodeStats]:
    """subscribe-side bytes -> decode_ts -> encode_ts -> items, as the session wires them."""
    stats = EncodeStats()
    send_bytes, recv_bytes = trio.open_memory_channel[bytes](4)
    send_frames, recv_frames = trio.open_memory_channel[Frame](8)
    send_items, recv_items = trio.open_memory_channel[Item](8)
    items: list[Item] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_feed, send_bytes, segments, 8192)
        nursery.start_soon(decode_ts, recv_bytes, send_frames)
        nursery.start_soon(
            functools.partial(encode_ts, recv_frames, send_items, settings, stats=stats)
        )
        async for item in recv_items:
            items.append(item)
    return items, stats


def _first_video_packet_is_key(segment: bytes) -> bool:
    with av.open(io.BytesIO(segment), format="mpegts") as container:
        for packet in container.demux(video=0):
            if packet.size:
                return bool(packet.is_keyframe)
    return False


# -- decode -------------------------------------------------------------------


@pytest.mark.spec("RUN-107", "RUN-111")
async def test_decode_gives_every_frame_with_input_timing_and_rgb_layout() -> None:
    with trio.fail_after(30):
        frames, stats = await _decode(_source())
    video, audio = _split(frames)
    assert len(video) == N_VIDEO == stats.video_frames
    assert [f.pts for f in video] == [START + i * STEP for i in range(N_VIDEO)]
    assert {f.time_base for f in video} == {TB}
    first = video[0].tensor
    assert first.dtype == torch.uint8
    assert tuple(first.shape) == (H, W, 3)
    assert first.is_contiguous()
    assert first.device.type == "cpu"
    # Frame order and content survive: index blocks read back, pixels near the pattern.
    assert [testsrc.read_index(f.to_numpy()) for f in video] == list(range(N_VIDEO))
    error = np.abs(video[5].to_numpy().astype(int) - testsrc.test_pattern(W, H, 5).astype(int))
    assert error.mean() < 8
    # RGB, not BGR: the seventh colour bar is blue.
    assert tuple(video[0].to_numpy()[2, 6 * W // 8 + 3]) == pytest.approx((0, 0, 191), abs=24)
    # Audio: float32 planar stereo at 48 kHz, about SECONDS long, pts increasing.
    assert stats.has_audio
    assert audio
    assert {(a.sample_rate, a.layout, a.tensor.dtype) for a in audio} == {
        (48000, "stereo", torch.float32)
    }
    assert sum(a.samples for a in audio) / 48000 == pytest.approx(SECONDS, abs=0.1)
    assert all(b.pts > a.pts for a, b in itertools.pairwise(audio))
    assert stats.skipped == 0


async def test_decode_video_only_and_audio_only_streams() -> None:
    with trio.fail_after(30):
        video_only, _ = await _decode(_source(audio=False))
        audio_only, stats = await _decode(_source(video=False))
        selected, _ = await _decode(_source(), video=False)
    v, a = _split(video_only)
    assert (len(v), len(a)) == (N_VIDEO, 0)
    v, a = _split(audio_only)
    assert not v
    assert a
    assert (stats.has_video, stats.has_audio) == (False, True)
    v, a = _split(selected)
    assert not v
    assert a


async def _decode_direct(segments: Sequence[bytes], **kwargs: Any) -> list[Frame]:
    """decode_ts awaited directly (no nursery), so its own exception surfaces as is."""
    send_bytes, recv_bytes = trio.open_memory_channel[bytes](len(segments))
    send_frames, recv_frames = trio.open_memory_channel[Frame](float("inf"))
    for segment in segments:
        send_bytes.send_nowait(segment)
    send_bytes.close()
    await decode_ts(recv_bytes, send_frames, **kwargs)
    return [frame async for frame in recv_frames]


async def test_decode_missing_selected_stream_is_a_media_error() -> None:
    with trio.fail_after(30), pytest.raises(MediaError, match="no video"):
        await _decode_direct(_source(video=False), audio=False)


def _plain_pyav_ts(seconds: float) -> bytes:
    """TS written by libavformat's own muxer with its defaults and B-frames, as an
    external encoder (OBS, ffmpeg) would send: not made by our TsMuxer."""
    sink = io.BytesIO()
    with av.open(sink, mode="w", format="mpegts") as container:
        video = container.add_stream("libx264", rate=FPS, options={"bf": "2", "g": "30"})
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        audio = container.add_stream("aac", rate=48000, layout="stereo")
        samples = 0
        for index in range(round(seconds * FPS)):
            picture = av.VideoFrame.from_ndarray(testsrc.test_pattern(W, H, index), format="rgb24")
            picture.pts = index
            container.mux(video.encode(picture))
            while samples < (index + 1) * 48000 // FPS:
                block = av.AudioFrame.from_ndarray(
                    testsrc.tone(2, 48000, samples, 1024), format="fltp", layout="stereo"
                )
                block.sample_rate, block.pts = 48000, samples
                container.mux(audio.encode(block))
                samples += 1024
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return sink.getvalue()


@pytest.mark.spec("RUN-111")
async def test_decode_external_ts_with_b_frames_in_presentation_order() -> None:
    data = _plain_pyav_ts(2.0)
    with trio.fail_after(30):
        frames, stats = await _decode([data])
    video, audio = _split(frames)
    assert len(video) == 2 * FPS
    assert [testsrc.read_index(f.to_numpy()) for f in video] == list(range(2 * FPS))
    # Timestamps exactly as a plain FFmpeg decode of the same bytes reports them.
    with av.open(io.BytesIO(data), format="mpegts") as container:
        reference = [(f.pts, f.time_base) for f in container.decode(video=0)]
    assert [(f.pts, f.time_base) for f in video] == reference
    assert {b.pts - a.pts for a, b in itertools.pairwise(video)} == {STEP}
    assert audio
    assert stats.skipped == 0


async def test_first_frame_needs_only_a_small_prefix() -> None:
    """Short probing: the first frame comes out before a whole segment has arrived."""
    first = _source()[0]
    send_bytes, recv_bytes = trio.open_memory_channel[bytes](100)
    send_frames, recv_frames = trio.open_memory_channel[Frame](100)
    half = len(first) // 2
    for offset in range(0, half, 1024):
        send_bytes.send_nowait(first[offset : min(offset + 1024, half)])
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(decode_ts, recv_bytes, send_frames)
            frame = await recv_frames.receive()
            assert isinstance(frame, VideoFrame | AudioFrame)
            nursery.cancel_scope.cancel()


async def test_garbage_only_input_is_a_clear_error() -> None:
    noise = random.Random(7).randbytes(200_000)
    with trio.fail_after(30), pytest.raises(MediaError, match="MPEG-TS"):
        await _decode_direct([noise])
    with trio.fail_after(30), pytest.raises(MediaError, match="ended"):
        await _decode_direct([])


async def test_garbage_inside_a_stream_is_skipped() -> None:
    segments = list(_source())
    rng = random.Random(3)
    damaged = bytearray(segments[1])
    for _ in range(40):  # flip bytes all over the second segment, headers included
        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
    stream = [segments[0], rng.randbytes(5000), bytes(damaged), segments[2]]
    with trio.fail_after(30):
        frames, _ = await _decode(stream)
    video, _ = _split(frames)
    indices = [testsrc.read_index(f.to_numpy()) for f in video]
    assert indices[:30] == list(range(30))  # the clean first segment in full
    assert indices[-30:] == list(range(60, 90))  # and the clean last one
    assert all(b.pts > a.pts for a, b in itertools.pairwise(video))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
async def test_decode_to_cuda_and_encode_from_cuda() -> None:
    with trio.fail_after(60):
        frames, _ = await _decode(_source(), device="cuda")
    video, audio = _split(frames)
    assert {f.tensor.device.type for f in video} == {"cuda"}
    assert {a.tensor.device.type for a in audio} == {"cpu"}  # audio always stays on the CPU
    assert [testsrc.read_index(f.to_numpy()) for f in video] == list(range(N_VIDEO))
    muxer = TsMuxer(EncoderSettings())
    items: list[Item] = []
    for frame in frames:
        items += muxer.add(frame)
    items += muxer.flush()
    assert len(_split(decode_segments(_segments(items)))[0]) == N_VIDEO


async def test_cuda_device_without_cuda_is_refused() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA"):
        await _decode_direct(_source(), device="cuda")


# -- encode -------------------------------------------------------------------


@pytest.mark.spec("RUN-108", "RUN-109", "RUN-111", "RUN-112")
async def test_round_trip_keeps_frames_timing_and_pixels() -> None:
    with trio.fail_after(60):
        items, stats = await _round_trip(_source(), EncoderSettings())
    segments = _segments(items)
    frames = decode_segments(segments)
    video, audio = _split(frames)
    assert len(video) == N_VIDEO == stats.video_frames
    assert [f.pts for f in video] == [START + i * STEP for i in range(N_VIDEO)]
    assert [testsrc.read_index(f.to_numpy()) for f in video] == list(range(N_VIDEO))
    errors = [
        np.abs(f.to_numpy().astype(int) - testsrc.test_pattern(W, H, i).astype(int)).mean()
        for i, f in enumerate(video)
    ]
    assert max(errors) < 12  # two generations of lossy coding at crf 23
    assert audio
    assert stats.dropped == stats.bumped == stats.dropped_no_stream == 0
    # One MPEG-TS carrying both streams, H.264 without B-frames.
    with av.open(io.BytesIO(b"".join(segments)), format="mpegts") as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        kinds = {frame.pict_type for frame in container.decode(video=0)}
    assert kinds <= {av.video.frame.PictureType.I, av.video.frame.PictureType.P}


@pytest.mark.spec("RUN-109")
@pytest.mark.parametrize("gop", [1.0, 0.5])
async def test_each_segment_starts_with_a_keyframe_and_decodes_alone(gop: float) -> None:
    with trio.fail_after(60):
        items, stats = await _round_trip(_source(), EncoderSettings(gop_seconds=gop))
    segments = _segments(items)
    assert len(segments) == round(SECONDS / gop) == stats.segments
    frames_per_gop = round(FPS * gop)
    for number, segment in enumerate(segments):
        assert segment[0] == 0x47
        assert len(segment) % 188 == 0
        assert _first_video_packet_is_key(segment)
        video, _ = _split(decode_segments([segment]))  # no earlier segment needed
        assert [testsrc.read_index(f.to_numpy()) for f in video] == list(
            range(number * frames_per_gop, (number + 1) * frames_per_gop)
        )


async def test_audio_and_video_stay_in_sync() -> None:
    with trio.fail_after(60):
        items, _ = await _round_trip(_source(), EncoderSettings())
    video, audio = _split(decode_segments(_segments(items)))
    interval = 1 / FPS
    # The audio timeline is continuous, so sample k of the output plays at t0 + k / rate.
    for before, after in itertools.pairwise(audio):
        assert after.time == pytest.approx(before.time + before.duration, abs=1e-4)
    samples = np.concatenate([a.to_numpy()[0] for a in audio])
    loud = np.flatnonzero(np.abs(samples) > 0.1)
    for second in range(int(SECONDS)):
        flash = next(f for f in video if testsrc.read_index(f.to_numpy()) == second * FPS)
        # First loud sample within 0.2 s of that frame: where the beep starts in the output.
        lo = round((flash.time - 0.2 - audio[0].time) * 48000)
        onset = audio[0].time + loud[loud >= lo][0] / 48000
        assert abs(onset - flash.time) < interval / 4, (second, onset, flash.time)
    # Both streams keep the input's clock: video exactly, audio within one AAC
    # priming frame (each AAC generation puts 1024 silent samples before the start).
    source_video, source_audio = _split(decode_segments(_source()))
    assert video[0].pts == source_video[0].pts
    assert 0 <= source_audio[0].time - audio[0].time <= 1024 / 48000 + 1e-6
    assert abs((audio[-1].time + audio[-1].duration) - (video[-1].time + interval)) < 2 * interval


async def test_encoder_streams_bytes_before_the_gop_is_complete() -> None:
    """Bytes of a segment come out while it is still being encoded."""
    frames = list(testsrc.generate_frames(seconds=2, width=W, height=H, fps=FPS, audio=False))
    send_frames, recv_frames = trio.open_memory_channel[Frame](100)
    send_items, recv_items = trio.open_memory_channel[Item](100)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(encode_ts, recv_frames, send_items, EncoderSettings(audio=False))
            for frame in frames[:5]:
                await send_frames.send(frame)
            assert await recv_items.receive() is SEGMENT_BOUNDARY
            first = await recv_items.receive()
            assert isinstance(first, bytes)
            assert first[:1] == b"\x47"
            for frame in frames[5:]:
                await send_frames.send(frame)
            await send_frames.aclose()
            rest = [item async for item in recv_items]
    segments = _segments([SEGMENT_BOUNDARY, first, *rest])
    assert len(segments) == 2
    assert len(_split(decode_segments(segments))[0]) == len(frames)


@pytest.mark.spec("RUN-113")
def test_non_increasing_video_pts_is_dropped_and_counted() -> None:
    muxer = TsMuxer(EncoderSettings(audio=False))
    pattern = torch.from_numpy(testsrc.test_pattern(W, H, 0))
    order = [0, 1, 2, 2, 1, 3, 4]  # a duplicate and a step back
    items: list[Item] = []
    for index in order:
        items += muxer.add(VideoFrame(tensor=pattern, pts=START + index * STEP, time_base=TB))
    items += muxer.flush()
    assert muxer.stats.dropped == 2
    video, _ = _split(decode_segments(_segments(items)))
    assert [f.pts for f in video] == [START + i * STEP for i in range(5)]


def test_bump_policy_and_backward_jump_keep_every_frame_monotonic() -> None:
    muxer = TsMuxer(EncoderSettings(audio=False, non_monotonic="bump"))
    pattern = torch.from_numpy(testsrc.test_pattern(W, H, 0))
    # A repeated pts (bumped) then the input restarting 20 s earlier (re-anchored).
    pts_list = [START, START + STEP, START + STEP, START + 2 * STEP, START - 1_800_000]
    pts_list += [START - 1_800_000 + STEP]
    items: list[Item] = []
    for pts in pts_list:
        items += muxer.add(VideoFrame(tensor=pattern, pts=pts, time_base=TB))
    items += muxer.flush()
    assert (muxer.stats.bumped, muxer.stats.discontinuities, muxer.stats.dropped) == (1, 1, 0)
    video, _ = _split(decode_segments(_segments(items)))
    out = [f.pts for f in video]
    assert len(out) == len(pts_list)
    assert out[:4] == [START, START + STEP, START + STEP + 1, START + 2 * STEP]
    assert all(b > a for a, b in itertools.pairwise(out))
    assert out[5] - out[4] == STEP  # spacing after the jump is preserved


@pytest.mark.spec("RUN-116")
def test_output_size_comes_from_the_first_frame() -> None:
    muxer = TsMuxer(EncoderSettings(audio=False))
    items: list[Item] = []
    sizes = [(63, 35), (128, 72), (64, 64)]  # odd first size: rounded down to even
    for i, (width, height) in enumerate(sizes):
        tensor = torch.from_numpy(testsrc.test_pattern(max(width, 24), max(height, 16), i))
        tensor = tensor[:height, :width]
        items += muxer.add(VideoFrame(tensor=tensor, pts=START + i * STEP, time_base=TB))
    items += muxer.flush()
    assert muxer.stats.resized == 3  # the odd-sized first frame is scaled too
    video, _ = _split(decode_segments(_segments(items)))
    assert {(f.width, f.height) for f in video} == {(62, 34)}


def test_audio_gaps_and_overlaps_stay_on_the_input_timeline() -> None:
    """Missing and repeated audio blocks: the output keeps the input's clock."""
    muxer = TsMuxer(EncoderSettings())
    frames = list(testsrc.generate_frames(seconds=2, width=W, height=H, fps=FPS, audio=True))
    audio_frames = [f for f in frames if isinstance(f, AudioFrame)]
    dropped = set(audio_frames[20:25])  # a ~107 ms hole
    repeated = audio_frames[40]
    items: list[Item] = []
    for frame in frames:
        if frame in dropped:
            continue
        items += muxer.add(frame)
        if frame is repeated:
            items += muxer.add(frame)  # fully overlapping: dropped
    items += muxer.flush()
    assert muxer.stats.audio_gap_samples == 5 * 1024
    assert muxer.stats.dropped == 1
    _, audio = _split(decode_segments(_segments(items)))
    total = sum(a.samples for a in audio) / 48000
    assert total == pytest.approx(2.0, abs=0.05)  # the hole was filled, the repeat removed


def test_audio_only_output_is_cut_every_gop() -> None:
    muxer = TsMuxer(EncoderSettings(gop_seconds=0.5))
    items: list[Item] = []
    for frame in testsrc.generate_frames(
        seconds=2, width=W, height=H, fps=FPS, audio=True, video=False
    ):
        items += muxer.add(frame)
    items += muxer.flush()
    segments = _segments(items)
    assert len(segments) == 4
    for segment in segments:
        assert _split(decode_segments([segment]))[1]


def test_late_audio_after_a_video_only_start_is_counted() -> None:
    muxer = TsMuxer(EncoderSettings(stream_wait_s=0.2))
    items: list[Item] = []
    for frame in testsrc.generate_frames(seconds=1, width=W, height=H, fps=FPS, audio=False):
        items += muxer.add(frame)
    late = AudioFrame(
        tensor=torch.zeros((2, 1024)),
        pts=START + 90000,
        time_base=TB,
        sample_rate=48000,
        layout="stereo",
    )
    items += muxer.add(late)
    items += muxer.flush()
    assert muxer.stats.dropped_no_stream == 1
    video, audio = _split(decode_segments(_segments(items)))
    assert (len(video), len(audio)) == (FPS, 0)


def test_audio_rate_and_layout_changes_are_resampled() -> None:
    muxer = TsMuxer(EncoderSettings())
    items: list[Item] = []
    frames = list(testsrc.generate_frames(seconds=1, width=W, height=H, fps=FPS, audio=True))
    switched = False
    for frame in frames:
        if isinstance(frame, AudioFrame) and frame.time > 1.9:
            # The second half arrives as mono 44.1 kHz (a mid-stream format change).
            start = round(frame.time * 44100)
            frame = AudioFrame(
                tensor=frame.tensor[:1, :940].contiguous(),
                pts=start,
                time_base=Fraction(1, 44100),
                sample_rate=44100,
                layout="mono",
            )
            switched = True
        items += muxer.add(frame)
    items += muxer.flush()
    assert switched
    _, audio = _split(decode_segments(_segments(items)))
    assert {(a.sample_rate, a.layout) for a in audio} == {(48000, "stereo")}
    assert sum(a.samples for a in audio) / 48000 == pytest.approx(1.0, abs=0.06)


def test_opus_audio_is_supported() -> None:
    segments = testsrc.generate_ts(
        seconds=1,
        width=W,
        height=H,
        fps=FPS,
        audio=True,
        settings=EncoderSettings(audio_codec="libopus"),
    )
    video, audio = _split(decode_segments(segments))
    assert len(video) == FPS
    assert {a.sample_rate for a in audio} == {48000}
    assert abs(audio[0].time - video[0].time) < 1 / FPS


def test_muxer_refuses_use_after_flush() -> None:
    muxer = TsMuxer(EncoderSettings(audio=False))
    assert muxer.flush() == []  # nothing ever added: no output at all
    with pytest.raises(MediaError):
        muxer.add(
            VideoFrame(tensor=torch.zeros((16, 16, 3), dtype=torch.uint8), pts=0, time_base=TB)
        )


def test_codec_ceiling_reports_throughput() -> None:
    result = testsrc.codec_ceiling(list(_source()))
    assert result["frames"] == N_VIDEO
    assert (result["width"], result["height"]) == (W, H)
    assert result["fps"] > 0
    assert result["bytes_out"] > 0


# -- teardown -------------------------------------------------------------------


def _native_threads() -> int:
    """OS threads that are not Python threads (x264/FFmpeg workers)."""
    return len(os.listdir("/proc/self/task")) - threading.active_count()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _media_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if "media" in t.name]


async def _warm_up() -> tuple[int, int]:
    # Load every lazy library thread pool once, then take the baseline.
    await _round_trip(_source()[:1], EncoderSettings())
    gc.collect()
    return _native_threads(), _open_fds()


@pytest.mark.spec("RUN-106")
@pytest.mark.parametrize("where", ["waiting_for_input", "waiting_for_consumer"])
async def test_cancelling_decode_leaves_nothing_behind(where: str) -> None:
    with trio.fail_after(60):
        native, fds = await _warm_up()
        send_bytes, recv_bytes = trio.open_memory_channel[bytes](100)
        send_frames, recv_frames = trio.open_memory_channel[Frame](0)
        segments = _source()
        feed = segments[0] if where == "waiting_for_input" else b"".join(segments)
        send_bytes.send_nowait(feed)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(decode_ts, recv_bytes, send_frames)
            await recv_frames.receive()
            if where == "waiting_for_input":
                # Drain the first segment: the thread then blocks reading more bytes.
                with trio.move_on_after(0.4):
                    async for _ in recv_frames:
                        pass
            assert _media_threads()
            cancelled_at = trio.current_time()
            nursery.cancel_scope.cancel()
        assert trio.current_time() - cancelled_at < 2  # prompt
        assert not _media_threads()
        # No gc.collect() here: codecs and their threads must go when the call returns.
        assert _native_threads() == native
        assert _open_fds() == fds


@pytest.mark.spec("RUN-106")
@pytest.mark.parametrize("where", ["waiting_for_frames", "waiting_for_consumer"])
async def test_cancelling_encode_leaves_nothing_behind(where: str) -> None:
    with trio.fail_after(60):
        native, fds = await _warm_up()
        frames = testsrc.generate_frames(seconds=2, width=W, height=H, fps=FPS, audio=True)
        send_frames, recv_frames = trio.open_memory_channel[Frame](200)
        send_items, recv_items = trio.open_memory_channel[Item](0)
        for frame in frames:
            send_frames.send_nowait(frame)
            if where == "waiting_for_frames" and send_frames.statistics().current_buffer_used > 20:
                break
        async with trio.open_nursery() as nursery:
            nursery.start_soon(encode_ts, recv_frames, send_items, EncoderSettings())
            assert await recv_items.receive() is SEGMENT_BOUNDARY
            if where == "waiting_for_frames":
                with trio.move_on_after(0.4):
                    async for _ in recv_items:
                        pass
            assert _media_threads()
            cancelled_at = trio.current_time()
            nursery.cancel_scope.cancel()
        assert trio.current_time() - cancelled_at < 2  # prompt
        assert not _media_threads()
        # No gc.collect() here: codecs and their threads must go when the call returns.
        assert _native_threads() == native
        assert _open_fds() == fds


def _video_pes(ts: bytes) -> list[tuple[int, int]]:
    """(declared PES_packet_length, payload bytes seen) of each complete-so-far video PES."""
    found: list[list[int]] = []
    for offset in range(0, len(ts) - len(ts) % 188, 188):
        packet = ts[offset : offset + 188]
        assert packet[0] == 0x47
        control = (packet[3] >> 4) & 3
        start = 4 + (1 + packet[4] if control & 2 else 0)
        if not control & 1:
            continue
        payload = packet[start:]
        if packet[1] & 0x40 and payload[:4] == b"\x00\x00\x01\xe0":  # a video PES starts
            found.append(
                [int.from_bytes(payload[4:6], "big"), 0, (packet[1] & 0x1F) << 8 | packet[2]]
            )
        if found and (packet[1] & 0x1F) << 8 | packet[2] == found[-1][2]:
            found[-1][1] += len(payload)
    return [(length, seen) for length, seen, _ in found]


@pytest.mark.spec("RUN-119")
def test_each_video_frame_leaves_the_muxer_whole_with_its_pes_length() -> None:
    frames = [f for f in decode_segments(_source(audio=False)) if isinstance(f, VideoFrame)]
    muxer = TsMuxer(EncoderSettings(audio=False))  # video only: opens on the first frame
    out = bytearray()
    try:
        for count, frame in enumerate(frames, start=1):
            out += b"".join(i for i in muxer.add(frame) if isinstance(i, bytes))
            pes = _video_pes(bytes(out))
            # Frame `count` is out already, whole: no frame is held back for the next one.
            assert len(pes) == count
            length, seen = pes[-1]
            assert length > 0
            assert seen == length + 6  # 6: start code, stream id and the length field
    finally:
        muxer.close()


def test_live_pieces_cut_a_segment_at_frame_boundaries() -> None:
    segment = _source()[1]
    pieces = testsrc.live_pieces(segment)
    assert b"".join(piece for _, piece in pieces) == segment
    video, _ = _split(decode_segments([segment]))
    labelled = [pts for pts, _ in pieces if pts is not None]
    assert labelled == [frame.pts for frame in video]
    assert len(pieces) > len(labelled)  # the audio frames travel in pieces of their own
    for end, (pts, _) in enumerate(pieces):
        if pts is None or end % 7:
            continue
        # Everything up to this piece is whole: frame `pts` decodes from it, no later one.
        prefix = b"".join(piece for _, piece in pieces[: end + 1])
        got, _ = _split(decode_segments([prefix]))
        assert got[-1].pts == pts
