"""Frame types, encoder settings and the test pattern: validation and helpers."""

from __future__ import annotations

from fractions import Fraction

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("av")
np = pytest.importorskip("numpy")

from trio_trickle._errors import InvalidMessage, TrickleError  # noqa: E402
from trio_trickle._media import testsrc  # noqa: E402
from trio_trickle._media.encode_settings import EncoderSettings  # noqa: E402
from trio_trickle._media.frames import AudioFrame, MediaError, VideoFrame  # noqa: E402

TB = Fraction(1, 90000)


def _video(tensor: object, pts: object = 0, time_base: object = TB) -> VideoFrame:
    return VideoFrame(tensor=tensor, pts=pts, time_base=time_base)  # type: ignore[arg-type]


def _audio(
    tensor: object, *, rate: object = 48000, layout: object = "stereo", pts: object = 0
) -> AudioFrame:
    return AudioFrame(
        tensor=tensor,  # type: ignore[arg-type]
        pts=pts,  # type: ignore[arg-type]
        time_base=Fraction(1, 48000),
        sample_rate=rate,  # type: ignore[arg-type]
        layout=layout,  # type: ignore[arg-type]
    )


def test_video_frame_accepts_uint8_hwc_and_reports_geometry() -> None:
    frame = _video(torch.zeros((72, 128, 3), dtype=torch.uint8), pts=126000)
    assert (frame.width, frame.height) == (128, 72)
    assert frame.time == pytest.approx(1.4)
    assert frame.to_numpy().shape == (72, 128, 3)


@pytest.mark.parametrize(
    "tensor",
    [
        torch.zeros((72, 128, 3), dtype=torch.float32),  # wrong dtype
        torch.zeros((3, 72, 128), dtype=torch.uint8),  # CHW, not HWC
        torch.zeros((1, 72, 128, 3), dtype=torch.uint8),  # batch dimension
        torch.zeros((72, 128, 4), dtype=torch.uint8),  # RGBA
        torch.zeros((0, 128, 3), dtype=torch.uint8),  # empty
        np.zeros((72, 128, 3), dtype=np.uint8),  # not a tensor
    ],
)
def test_video_frame_rejects_bad_layouts(tensor: object) -> None:
    with pytest.raises(InvalidMessage, match="tensor"):
        _video(tensor)


@pytest.mark.parametrize(
    ("pts", "time_base"),
    [(1.5, TB), (True, TB), ("1", TB), (0, 1 / 90000), (0, Fraction(0)), (0, Fraction(-1, 9))],
)
def test_video_frame_rejects_bad_timing(pts: object, time_base: object) -> None:
    with pytest.raises(ValueError, match=r"pts|time_base"):
        _video(torch.zeros((4, 4, 3), dtype=torch.uint8), pts, time_base)


def test_video_frame_makes_views_contiguous() -> None:
    base = torch.arange(4 * 6 * 3, dtype=torch.uint8).reshape(4, 6, 3)
    strided = base[:, ::2]
    assert not strided.is_contiguous()
    frame = _video(strided)
    assert frame.tensor.is_contiguous()
    assert torch.equal(frame.tensor, strided)


def test_with_tensor_keeps_timing_and_validates() -> None:
    frame = _video(torch.zeros((4, 4, 3), dtype=torch.uint8), pts=1234, time_base=Fraction(1, 30))
    bigger = frame.with_tensor(torch.full((8, 10, 3), 7, dtype=torch.uint8))
    assert (bigger.pts, bigger.time_base, bigger.width, bigger.height) == (
        1234,
        Fraction(1, 30),
        10,
        8,
    )
    assert bigger is not frame
    with pytest.raises(InvalidMessage):
        frame.with_tensor(torch.zeros((4, 4, 3)))  # float32


def test_frames_compare_by_identity() -> None:
    tensor = torch.zeros((4, 4, 3), dtype=torch.uint8)
    assert _video(tensor) != _video(tensor)


def test_from_numpy_shares_cpu_memory() -> None:
    array = np.zeros((4, 6, 3), dtype=np.uint8)
    frame = VideoFrame.from_numpy(array, pts=5, time_base=TB)
    array[0, 0, 0] = 9
    assert int(frame.tensor[0, 0, 0]) == 9


def test_audio_frame_fields_and_duration() -> None:
    frame = _audio(torch.zeros((2, 960), dtype=torch.float32), pts=48000)
    assert (frame.channels, frame.samples) == (2, 960)
    assert frame.duration == pytest.approx(0.02)
    assert frame.time == pytest.approx(1.0)
    mono = _audio(torch.zeros((1, 10), dtype=torch.float32), layout="mono")
    assert mono.with_tensor(torch.ones((1, 20))).samples == 20


@pytest.mark.parametrize(
    ("tensor", "rate", "layout", "field"),
    [
        (torch.zeros((2, 10), dtype=torch.float64), 48000, "stereo", "tensor"),
        (torch.zeros((2, 10), dtype=torch.int16), 48000, "stereo", "tensor"),
        (torch.zeros((10,), dtype=torch.float32), 48000, "mono", "tensor"),
        (torch.zeros((2, 0), dtype=torch.float32), 48000, "stereo", "tensor"),
        (torch.zeros((2, 10), dtype=torch.float32), 0, "stereo", "sample_rate"),
        (torch.zeros((2, 10), dtype=torch.float32), 48000.0, "stereo", "sample_rate"),
        (torch.zeros((2, 10), dtype=torch.float32), 48000, "mono", "layout"),
        (torch.zeros((6, 10), dtype=torch.float32), 48000, "stereo", "layout"),
        (torch.zeros((2, 10), dtype=torch.float32), 48000, "no-such-layout", "layout"),
        (torch.zeros((2, 10), dtype=torch.float32), 48000, "", "layout"),
    ],
)
def test_audio_frame_rejects_bad_values(
    tensor: object, rate: object, layout: object, field: str
) -> None:
    with pytest.raises(InvalidMessage, match=field):
        _audio(tensor, rate=rate, layout=layout)


def test_audio_frame_with_tensor_checks_channels() -> None:
    frame = _audio(torch.zeros((2, 10), dtype=torch.float32))
    with pytest.raises(InvalidMessage, match="layout"):
        frame.with_tensor(torch.zeros((1, 10), dtype=torch.float32))


def test_media_error_is_a_trickle_error() -> None:
    assert issubclass(MediaError, TrickleError)


@pytest.mark.spec("RUN-109", "RUN-110")
def test_encoder_settings_defaults_match_the_live_runners() -> None:
    settings = EncoderSettings()
    options = settings.video_options()
    assert settings.codec == "libx264"
    assert options["preset"] == "superfast"
    assert options["tune"] == "zerolatency"
    assert options["bf"] == "0"
    assert options["forced-idr"] == "1"
    assert options["crf"] == "23"
    assert "scenecut=0" in options["x264-params"]
    assert settings.audio_codec == "aac"
    assert settings.gop_seconds == 1.0


def test_encoder_settings_bitrate_replaces_crf_and_extras_win() -> None:
    settings = EncoderSettings(bitrate=2_000_000, extra_options=(("preset", "veryfast"),))
    options = settings.video_options()
    assert "crf" not in options
    assert options["b"] == options["maxrate"] == options["bufsize"] == "2000000"
    assert options["preset"] == "veryfast"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gop_seconds": 0},
        {"gop_seconds": float("nan")},
        {"crf": 52},
        {"crf": 2.5},
        {"bitrate": 5},
        {"codec": ""},
        {"non_monotonic": "ignore"},
        {"audio": "yes"},
        {"max_interleave_s": 0},
    ],
)
def test_encoder_settings_reject_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidMessage):
        EncoderSettings(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("index", [0, 1, 5, 1000, 4095])
def test_pattern_index_reads_back(index: int) -> None:
    frame = testsrc.test_pattern(64, 64, index)
    assert frame.shape == (64, 64, 3)
    assert frame.dtype == np.uint8
    assert testsrc.read_index(frame) == index


def test_pattern_moves_and_is_deterministic() -> None:
    first = testsrc.test_pattern(128, 72, 10)
    assert np.array_equal(first, testsrc.test_pattern(128, 72, 10))
    top = 72 - 72 // 6
    assert not np.array_equal(first[:top], testsrc.test_pattern(128, 72, 11)[:top])


def test_pattern_is_rgb() -> None:
    frame = testsrc.test_pattern(128, 72, 0)
    assert frame[2, 5].tolist() == [191, 191, 191]  # first bar: grey
    assert frame[2, 16 + 5].tolist() == [191, 191, 0]  # second bar: yellow (no blue)
    assert frame[2, 6 * 16 + 5].tolist() == [0, 0, 191]  # seventh bar: blue
