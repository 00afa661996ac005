"""What the MPEG-TS encoder is told and what it reports, and the marker its output carries.

:class:`EncoderSettings` (codecs, GOP, rate control, timestamp policy),
:class:`EncodeStats` (counters the encoder updates) and :data:`SEGMENT_BOUNDARY`
(the "a new trickle segment starts here" item in the encoder's output). Kept
apart from :mod:`._media_encode` because none of it needs PyAV: sessions and
their settings name these types without loading the codec libraries.
"""

from __future__ import annotations

import enum
from typing import Literal

import attrs

from .._errors import InvalidMessage
from .._wire.validate import in_range, instance_of, non_empty, optional

__all__ = ["SEGMENT_BOUNDARY", "EncodeStats", "EncoderSettings", "SegmentBoundary"]


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
