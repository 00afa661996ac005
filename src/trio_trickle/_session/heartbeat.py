"""A session's heartbeat: ``heartbeat`` and ``status`` events, ``stream_heartbeat`` telemetry.

One task of the session's work nursery, at start and every interval, input or
not (RUN-095). Its own module because what it reports (rates over the interval,
the degraded states of RUN-097, GPU memory) is a job apart from the session's
lifecycle; it reads the session through its :class:`~.context.StreamContext`.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import trio

from .._sdk.live_pipeline import encode_event_segment
from .._wire.channel_events import HeartbeatEvent, StatusEvent
from .._wire.telemetry import EVENT_STREAM_HEARTBEAT
from .context import StreamContext, now_ms

__all__: list[str] = []  # the session's internals, nothing public

log = logging.getLogger("trio_trickle.session")


def _vram() -> dict[str, float]:
    """GPU memory in MB of the current device, when torch is loaded and sees a GPU
    (TEL-032, Scope's names). A failing CUDA query costs the fields, never the stream."""
    torch = sys.modules.get("torch")
    mb = 1024 * 1024
    try:
        if torch is None or not torch.cuda.is_available():
            return {}
        device = torch.cuda.current_device()
        return {
            "vram_allocated_mb": round(torch.cuda.memory_allocated(device) / mb, 1),
            "vram_reserved_mb": round(torch.cuda.memory_reserved(device) / mb, 1),
            "vram_total_mb": round(torch.cuda.get_device_properties(device).total_memory / mb, 1),
        }
    except Exception as exc:  # a CUDA error here must not reach the heartbeat
        log.debug("VRAM query failed: %s", exc)
        return {}


class Heartbeat:
    """The heartbeat of one stream; :meth:`run` beats until cancelled."""

    def __init__(self, context: StreamContext) -> None:
        self._context = context
        #: (when, frames in, frames out) at the last beat: the interval rates' origin.
        self._last_beat = (context.started_monotonic, 0, 0)

    async def run(self) -> None:
        """Heartbeat + status at start and every interval, input or not (RUN-095)."""
        context = self._context
        while True:
            context.outlets.events.put(encode_event_segment(self._heartbeat_event()))
            context.outlets.events.put(encode_event_segment(self._status_event()))
            self._heartbeat_telemetry()
            await trio.sleep(context.settings.heartbeat_interval)

    def _heartbeat_telemetry(self) -> None:
        """``stream_heartbeat`` with interval rates and totals (TEL-031, TEL-032)."""
        context = self._context
        now = time.monotonic()
        then, frames_in, frames_out = self._last_beat
        counters = context.counters
        span = max(now - then, 1e-6)
        meta: dict[str, Any] = {
            "frames_in": counters.frames_in,
            "frames_out": counters.frames_out,
            "frames_dropped": counters.frames_dropped,
            "fps_in": round((counters.frames_in - frames_in) / span, 1),
            "fps_out": round((counters.frames_out - frames_out) / span, 1),
            "elapsed_ms": round((now - context.started_monotonic) * 1000),
            "since_last_heartbeat_ms": round(span * 1000),
        }
        latency = counters.latency.mean_ms()
        if latency is not None:
            meta["latency_ms"] = latency
        # Relayed telemetry the bound dropped so far (TEL-043), reported, not just counted.
        meta["telemetry_dropped"] = context.telemetry_outlet.dropped
        meta.update(_vram())
        self._last_beat = (now, counters.frames_in, counters.frames_out)
        context.emit(EVENT_STREAM_HEARTBEAT, **meta)

    def _heartbeat_event(self) -> dict[str, Any]:
        context = self._context
        counters = context.counters
        beat = HeartbeatEvent(
            timestamp=now_ms(),
            urls=context.request.media_urls(),
            width=counters.width,
            height=counters.height,
            fps=counters.fps(),
            frames_in=counters.frames_in,
            frames_out=counters.frames_out,
            extra={
                "gateway_request_id": context.id,
                "frames_dropped": counters.frames_dropped,
                "latency_ms": counters.latency.mean_ms(),
            },
        )
        return beat.to_envelope().to_wire()

    def _status_state(self) -> str:
        context = self._context
        after = context.settings.degraded_after
        started = time.monotonic() - context.started_monotonic
        if context.request.subscribe_url:
            idle = context.counters.video_in.idle_for()
            if (idle is None and started > after) or (idle is not None and idle > after):
                return "DEGRADED_INPUT"
        if context.request.publish_url:
            idle = context.counters.video_out.idle_for()
            if (idle is None and started > after) or (idle is not None and idle > after):
                return "DEGRADED_INFERENCE"
        return "ONLINE"

    def _status_event(self) -> dict[str, Any]:
        context = self._context
        fps = context.counters.fps()
        status = StatusEvent(
            timestamp=now_ms(),
            pipeline=type(context.pipeline).__name__,
            state=self._status_state(),
            start_time=context.started_at_ms,
            input_status={"fps": fps["ingress_video_fps"]},
            inference_status={"fps": fps["egress_video_fps"]},
            extra={"gateway_request_id": context.id},
        )
        return status.to_envelope().to_wire()
