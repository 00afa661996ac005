"""The parts of :class:`~trio_trickle.TsMuxer` that need no codec: timing and cutting.

:class:`Timeline` keeps one output stream's timestamps increasing (RUN-113,
with re-anchoring after a long backwards jump); :class:`AudioChunker` re-blocks
audio into encoder-sized frames on the input timeline; :class:`TsSplitter`
finds the segment cuts in the muxer's TS bytes (see :mod:`._media_encode` for
why the cut is found in the output). They work on integers, numpy arrays and
bytes only, so they are kept out of the module that drives PyAV.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from .encode_settings import SEGMENT_BOUNDARY, EncodeStats, TsItem

__all__: list[str] = []

OUT_TIME_BASE = Fraction(1, 90000)
TS_PACKET_SIZE = 188
VIDEO_PID = 0x100
AUDIO_PID = 0x101
PMT_PID = 0x1000
#: PAT, SDT and PMT: the tables the muxer repeats; they stick to the packet after them.
_TABLE_PIDS = frozenset({0x0000, 0x0011, PMT_PID})


def rescale(pts: int, time_base: Fraction, rate: int) -> int:
    return round(pts * time_base * rate)


class Timeline:
    """Monotonic guard for one output stream, in its own tick unit."""

    def __init__(self, policy: str, discontinuity: int, stats: EncodeStats) -> None:
        self._policy = policy
        self._discontinuity = discontinuity
        self._stats = stats
        self._offset = 0
        self._step = 1
        self.last: int | None = None

    def place(self, ticks: int) -> int | None:
        t = ticks + self._offset
        last = self.last
        if last is not None and t <= last:
            if last - t > self._discontinuity:
                self._offset += last + self._step - t
                self._stats.discontinuities += 1
                t = last + self._step
            elif self._policy == "bump":
                self._stats.bumped += 1
                t = last + 1
            else:
                self._stats.dropped += 1
                return None
        if last is not None and t - last <= self._discontinuity:
            self._step = t - last
        self.last = t
        return t


class AudioChunker:
    """Re-blocks audio into encoder-sized frames on the input timeline.

    Small timestamp jitter is absorbed; a gap is filled with silence (up to the
    discontinuity limit, beyond which the block restarts at the new time); an
    overlap is trimmed; a long backwards jump re-anchors.
    """

    def __init__(
        self, channels: int, frame_size: int, rate: int, discontinuity: int, stats: EncodeStats
    ) -> None:
        self._channels = channels
        self._frame_size = frame_size
        self._tolerance = max(2, rate // 500)
        self._discontinuity = discontinuity
        self._stats = stats
        self._offset = 0
        self._start: int | None = None
        self._buf: npt.NDArray[np.float32] = np.zeros((channels, 0), np.float32)

    def push(
        self, start: int, data: npt.NDArray[np.float32]
    ) -> list[tuple[int, npt.NDArray[np.float32]]]:
        out: list[tuple[int, npt.NDArray[np.float32]]] = []
        start += self._offset
        if self._start is None:
            self._start = start
            self._buf = data
        else:
            expected = self._start + self._buf.shape[1]
            delta = start - expected
            if abs(delta) <= self._tolerance:
                self._buf = np.concatenate([self._buf, data], axis=1)
            elif delta > 0:
                if delta <= self._discontinuity:
                    self._stats.audio_gap_samples += delta
                    silence = np.zeros((self._channels, delta), np.float32)
                    self._buf = np.concatenate([self._buf, silence, data], axis=1)
                else:
                    out.extend(self._drain(pad=True))
                    self._start, self._buf = start, data
            elif -delta > self._discontinuity:
                self._offset -= delta
                self._stats.discontinuities += 1
                self._buf = np.concatenate([self._buf, data], axis=1)
            elif -delta >= data.shape[1]:
                self._stats.dropped += 1
                self._stats.audio_trimmed_samples += data.shape[1]
            else:
                self._stats.audio_trimmed_samples += -delta
                self._buf = np.concatenate([self._buf, data[:, -delta:]], axis=1)
        out.extend(self._drain(pad=False))
        return out

    def _drain(self, *, pad: bool) -> list[tuple[int, npt.NDArray[np.float32]]]:
        out: list[tuple[int, npt.NDArray[np.float32]]] = []
        size = self._frame_size
        assert self._start is not None
        while self._buf.shape[1] >= size:
            out.append((self._start, np.ascontiguousarray(self._buf[:, :size])))
            self._buf = self._buf[:, size:]
            self._start += size
        if pad and self._buf.shape[1]:
            block = np.zeros((self._channels, size), np.float32)
            block[:, : self._buf.shape[1]] = self._buf
            out.append((self._start, block))
            self._start += size
            self._buf = self._buf[:, :0]
        return out

    def finish(self) -> list[tuple[int, npt.NDArray[np.float32]]]:
        if self._start is None:
            return []
        return self._drain(pad=True)


class ByteSink:
    """Write-only file object collecting what the muxer writes."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class TsSplitter:
    """Finds segment cuts in the muxer's TS output (see the module docstring)."""

    def __init__(self, stats: EncodeStats) -> None:
        self._stats = stats
        self._carry = b""
        self._tables: list[bytes] = []
        self._started = False
        self._pids_in_segment: set[int] = set()
        self._expected: dict[int, deque[bool]] = {VIDEO_PID: deque(), AUDIO_PID: deque()}

    def expect(self, pid: int, cut: bool) -> None:
        """Record that the next PES on ``pid`` is a packet that should start a segment."""
        self._expected[pid].append(cut)

    def feed(self, data: bytes) -> list[TsItem]:
        buf = self._carry + data if self._carry else data
        whole = len(buf) - len(buf) % TS_PACKET_SIZE
        self._carry = buf[whole:]
        items: list[TsItem] = []
        run = bytearray()
        for offset in range(0, whole, TS_PACKET_SIZE):
            packet = buf[offset : offset + TS_PACKET_SIZE]
            pid = ((packet[1] & 0x1F) << 8) | packet[2]
            if pid in _TABLE_PIDS:
                self._tables.append(packet)
                continue
            cut = False
            if packet[1] & 0x40 and pid in self._expected:
                queue = self._expected[pid]
                cut = bool(queue.popleft()) if queue else False
                cut = cut and pid in self._pids_in_segment
            if not self._started or cut:
                if run:
                    items.append(bytes(run))
                    run.clear()
                items.append(SEGMENT_BOUNDARY)
                self._stats.segments += 1
                self._started = True
                self._pids_in_segment.clear()
            if packet[1] & 0x40:
                self._pids_in_segment.add(pid)
            for table in self._tables:
                run += table
            self._tables.clear()
            run += packet
        if run:
            items.append(bytes(run))
        return items

    def finish(self) -> list[TsItem]:
        rest = b"".join(self._tables) + self._carry
        self._tables.clear()
        self._carry = b""
        if not rest:
            return []
        if not self._started:
            self._started = True
            self._stats.segments += 1
            return [SEGMENT_BOUNDARY, rest]
        return [rest]
