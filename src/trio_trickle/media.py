"""Frames and MPEG-TS: what a ``LivePipeline`` hook receives and returns.

Needs ``pip install 'trio-trickle[media,torch]'`` (PyAV and numpy; torch for the
frame tensors), and importing it imports them: do it at module import time, not
inside a running trio loop (a torch import takes seconds). The runner itself
imports this only when a pipeline processes frames, in a worker thread.
"""

from __future__ import annotations

from ._exports import fixup_module_metadata
from ._media.decode import (
    DecodeStats,
    TsDecoder,
    decode_segments,
    decode_ts,
)
from ._media.encode import (
    TsMuxer,
    encode_ts,
)
from ._media.encode_settings import (
    SEGMENT_BOUNDARY,
    EncodeStats,
    SegmentBoundary,
)
from ._media.frames import (
    AudioFrame,
    MediaError,
    VideoFrame,
)
from ._media.testsrc import (
    codec_ceiling,
    generate_frames,
    generate_ts,
    live_pieces,
    read_index,
    test_pattern,
    tone,
)

__all__ = [  # noqa: RUF022 (grouped by what a user does, not sorted)
    # Frames as user code sees them
    "VideoFrame",
    "AudioFrame",
    "MediaError",
    # MPEG-TS in and out
    "decode_ts",
    "decode_segments",
    "TsDecoder",
    "DecodeStats",
    "encode_ts",
    "TsMuxer",
    "EncodeStats",
    "SEGMENT_BOUNDARY",
    "SegmentBoundary",
    # Test sources
    "generate_ts",
    "generate_frames",
    "test_pattern",
    "tone",
    "live_pieces",
    "read_index",
    "codec_ceiling",
]

fixup_module_metadata(__name__, globals(), __all__)
del fixup_module_metadata
