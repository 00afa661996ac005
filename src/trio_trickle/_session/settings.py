"""Per-session knobs: :class:`SessionSettings`.

Its own module because everything in the session reads them: the session, the
context its tasks share (:mod:`.context`, which must not import the session),
the manager, benchmarks. Nothing here imports torch up front: ``device="auto"``
asks torch which device to use only when :meth:`SessionSettings.resolved_device`
is called, which the session does in a worker thread and only for a pipeline
that processes frames (a relay never).
"""

from __future__ import annotations

import importlib

import attrs

from .._media.encode_settings import EncoderSettings

__all__ = ["SessionSettings"]


def _default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu`` (imports torch: seconds, the first time).

    Imported by name, as the session imports its frame graph: nothing loaded with
    the session's own modules imports torch, so a relay never loads it.
    """
    try:
        torch = importlib.import_module("torch")
    except ImportError:  # pragma: no cover - torch is a dependency of the media extra
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


@attrs.frozen(kw_only=True)
class SessionSettings:
    """Per-session knobs; defaults follow spec/runner-api.md."""

    #: Bound on ``on_stream_start`` (RUN-054).
    start_timeout: float = 5.0
    #: Bound on the whole teardown (RUN-068).
    stop_timeout: float = 5.0
    #: Heartbeat and status cadence (RUN-095).
    heartbeat_interval: float = 10.0
    #: No input (output) frame for this long marks the status degraded (RUN-097).
    degraded_after: float = 2.0
    #: Where decoded frames live: "auto" picks CUDA when torch sees a GPU.
    device: str = "auto"
    encoder: EncoderSettings = attrs.field(factory=EncoderSettings)
    #: Decoded video waiting for ``process_video``: at most this many frames, each
    #: for at most ``video_max_wait`` seconds; older ones are dropped (RUN-114).
    video_queue: int = 8
    video_max_wait: float = 0.25
    #: Bounded queues (RUN-093, RUN-115).
    events_capacity: int = 256
    #: Telemetry events waiting for the events channel (TEL-043).
    telemetry_capacity: int = 1024
    #: Events segments published per second in a flood, after a burst of
    #: ``events_burst`` (beyond that the outlet drops the oldest).
    events_max_rate: float = 50.0
    events_burst: int = 32
    data_capacity: int = 1000
    audio_capacity: int = 100
    #: Largest control message read (spec/channels.md CHN-034).
    control_max_bytes: int = 1024 * 1024
    #: JSONL data segments rotate this often (CHN-027).
    data_segment_interval: float = 10.0
    #: Consecutive process_* failures that end the session (RUN-118).
    max_hook_failures: int = 10
    #: At most one processing-error event per this many seconds (RUN-083).
    error_event_interval: float = 10.0

    def resolved_device(self) -> str:
        """The device itself: ``device``, or for "auto" torch's answer (this may
        import torch, so call it off the trio thread)."""
        return _default_device() if self.device == "auto" else self.device
