"""Small pipelines to serve, test and copy from (public API only, as user code would).

``trio-trickle serve trio_trickle.examples:Invert`` runs a live runner whose
effect you can see; ``Passthrough`` overrides nothing, so the runner relays
input segments byte for byte (RUN-117); ``Echo`` is the request/response
"hello world".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trio_trickle import LivePipeline, Pipeline

if TYPE_CHECKING:  # torch and PyAV stay optional until a live stream decodes frames
    from trio_trickle.media import VideoFrame

__all__ = ["Echo", "Invert", "Passthrough"]


class Echo(Pipeline):
    """``POST /predict {"text": "hi", "repeat": 2}`` answers ``{"text": "hihi"}``."""

    def predict(self, text: str, repeat: int = 1) -> dict[str, str]:
        if repeat < 0:
            raise ValueError("repeat must not be negative")
        return {"text": text * repeat}


class Passthrough(LivePipeline):
    """Overrides no hook: output is the input, relayed segment by segment."""


class Invert(LivePipeline):
    """Inverts every video frame (``255 - pixel``) on whatever device the frame lives on.

    Audio passes through. The work is one torch operation on the frame's own
    tensor (uint8 RGB, CPU or CUDA), and a ``def`` hook runs in a worker thread,
    so the event loop stays free while it runs.
    """

    def process_video(self, frame: VideoFrame) -> VideoFrame:
        return frame.with_tensor(255 - frame.tensor)
