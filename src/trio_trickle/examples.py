"""Small pipelines to serve, test and copy from (public API only, as user code would).

``trio-trickle serve trio_trickle.examples:Invert`` runs a live runner whose
effect you can see; ``Passthrough`` overrides nothing, so the runner relays
input segments byte for byte (RUN-117); ``Echo`` is the request/response
"hello world".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

    Param ``strength`` (0 to 1, default 1): how far each pixel moves towards its
    inverse; ``{"strength": 0}`` switches the effect off, and it can change
    mid-stream (``/stream/params`` or the control channel).
    """

    #: The current strength (a class default, so subclasses need not call ``__init__``).
    strength: float = 1.0

    def __init__(self, strength: float = 1.0) -> None:
        self.strength = _strength(strength)

    def on_stream_start(self, params: dict[str, Any]) -> None:
        if "strength" in params:
            self.strength = _strength(params["strength"])

    def on_params_update(self, params: dict[str, Any]) -> None:
        if "strength" in params:
            self.strength = _strength(params["strength"])

    def process_video(self, frame: VideoFrame) -> VideoFrame:
        strength = self.strength
        tensor = frame.tensor
        if strength >= 1.0:
            return frame.with_tensor(255 - tensor)
        if strength <= 0.0:
            return frame
        moved = tensor.float() + strength * (255.0 - 2.0 * tensor.float())
        return frame.with_tensor(moved.round().clamp(0, 255).to(tensor.dtype))


def _strength(value: object) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float) or value != value:
        raise ValueError("strength must be a number from 0 to 1")
    return min(1.0, max(0.0, float(value)))
