"""Windowed frame-rate meters and per-session counters (no I/O, no trio).

Rates are measured over a sliding window (10 s by default), never averaged over
a session's life (Scope's lifetime averages hide a stall: RUN-073).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

import attrs

from .._media.encode_settings import EncodeStats

__all__ = ["LatencyMeter", "RateMeter", "SessionCounters"]


class RateMeter:
    """Events per second over the last ``window`` seconds."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.window = window
        self._clock = clock
        self._stamps: collections.deque[float] = collections.deque()
        self._started = clock()
        self.total = 0
        #: Clock reading of the most recent event, or None.
        self.last: float | None = None

    def _trim(self, now: float) -> None:
        horizon = now - self.window
        stamps = self._stamps
        while stamps and stamps[0] < horizon:
            stamps.popleft()

    def mark(self, count: int = 1) -> None:
        now = self._clock()
        for _ in range(count):
            self._stamps.append(now)
        self.total += count
        self.last = now
        self._trim(now)

    def rate(self) -> float:
        """Events per second in the window (a young meter divides by its age)."""
        now = self._clock()
        self._trim(now)
        span = min(self.window, max(now - self._started, 1e-9))
        return len(self._stamps) / span

    def idle_for(self) -> float | None:
        """Seconds since the last event, or None if there was none."""
        return None if self.last is None else self._clock() - self.last


class LatencyMeter:
    """Mean of the samples taken in the last ``window`` seconds."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.window = window
        self._clock = clock
        self._samples: collections.deque[tuple[float, float]] = collections.deque()
        self._sum = 0.0

    def add(self, seconds: float) -> None:
        now = self._clock()
        self._samples.append((now, seconds))
        self._sum += seconds
        self._trim(now)

    def _trim(self, now: float) -> None:
        horizon = now - self.window
        samples = self._samples
        while samples and samples[0][0] < horizon:
            self._sum -= samples.popleft()[1]

    def mean_ms(self) -> float | None:
        """Mean in milliseconds (one decimal), or None when no sample is in the window."""
        self._trim(self._clock())
        if not self._samples:
            return None
        return round(max(0.0, self._sum) / len(self._samples) * 1000, 1)


@attrs.define(eq=False)
class SessionCounters:
    """What a session counts; read by heartbeats and ``/stream/status``."""

    clock: Callable[[], float] = time.monotonic
    video_in: RateMeter = attrs.field(init=False)
    audio_in: RateMeter = attrs.field(init=False)
    video_out: RateMeter = attrs.field(init=False)
    audio_out: RateMeter = attrs.field(init=False)
    #: Frames the session dropped (latest-wins replacement, hook errors, full queues).
    dropped: int = 0
    #: The encoder's own counters (its pts guard drops, RUN-113); updated by its thread.
    encode: EncodeStats = attrs.field(factory=EncodeStats)
    #: Decoded video frame queued -> processed frame handed to the encoder (TEL-032).
    latency: LatencyMeter = attrs.field(init=False)
    width: int | None = None
    height: int | None = None

    def __attrs_post_init__(self) -> None:
        self.video_in = RateMeter(clock=self.clock)
        self.audio_in = RateMeter(clock=self.clock)
        self.video_out = RateMeter(clock=self.clock)
        self.audio_out = RateMeter(clock=self.clock)
        self.latency = LatencyMeter(clock=self.clock)

    @property
    def frames_dropped(self) -> int:
        """Every frame dropped on the way, by the session or by the encoder."""
        return self.dropped + self.encode.dropped

    @property
    def frames_in(self) -> int:
        return self.video_in.total

    @property
    def frames_out(self) -> int:
        return self.video_out.total

    def fps(self) -> dict[str, float]:
        """pytrickle FPSMeter keys (RUN-070)."""
        return {
            "ingress_video_fps": round(self.video_in.rate(), 3),
            "ingress_audio_fps": round(self.audio_in.rate(), 3),
            "egress_video_fps": round(self.video_out.rate(), 3),
            "egress_audio_fps": round(self.audio_out.rate(), 3),
        }
