"""The HttpSink disk spool: a bounded JSONL file of events not yet acknowledged.

One envelope per line (TEL-062), encoded and decoded by
:func:`~trio_trickle._wire.telemetry_sink.encode_spool` and ``decode_spool``.
The file is only ever replaced whole: the new contents go to a temporary file
beside it, are flushed to disk, and are renamed over the old name, so a crash
leaves either the old spool or the new one, never half of one (TEL-063). A torn
or corrupt line (a disk that lied, a hand edit) is skipped and counted on load
(TEL-067).

Every method here is blocking file I/O. :class:`~trio_trickle.HttpSink` calls
them through ``trio.to_thread.run_sync`` so the event loop never waits on the
disk (TEL-072); one sink owns one spool, and two processes must not share a path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import attrs

from .._wire.telemetry import TelemetryEvent
from .._wire.telemetry_sink import decode_spool, encode_spool

__all__ = [
    "DEFAULT_SPOOL_MAX_BYTES",
    "DEFAULT_SPOOL_MAX_EVENTS",
    "SpoolContents",
    "TelemetrySpool",
]

#: Most events a spool keeps (TEL-066); the oldest beyond are left out.
DEFAULT_SPOOL_MAX_EVENTS = 50_000
#: Most bytes a spool file may take; the oldest events beyond are left out.
DEFAULT_SPOOL_MAX_BYTES = 64 * 1024 * 1024


@attrs.frozen(kw_only=True)
class SpoolContents:
    """What :meth:`TelemetrySpool.load` found: events in order and what it skipped."""

    events: tuple[TelemetryEvent, ...]
    #: Lines that did not decode as an event (a torn last line included).
    unreadable: int = 0
    #: Readable events beyond the bounds, oldest first, that were left out.
    trimmed: int = 0


class TelemetrySpool:
    """A bounded JSONL spool at ``path``; blocking I/O, run it off the event loop."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_events: int = DEFAULT_SPOOL_MAX_EVENTS,
        max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        fsync: bool = True,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.path = Path(path)
        self.max_events = max_events
        self.max_bytes = max_bytes
        #: Flush file and directory to stable storage on every write (off only in tests).
        self.fsync = fsync
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")

    def __repr__(self) -> str:
        return f"TelemetrySpool({str(self.path)!r})"

    def load(self) -> SpoolContents:
        """Read the spool; a missing file is an empty spool."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return SpoolContents(events=())
        events, unreadable = decode_spool(data)
        kept, trimmed = self._bound(events)
        return SpoolContents(events=tuple(kept), unreadable=unreadable, trimmed=trimmed)

    def write(self, events: Sequence[TelemetryEvent]) -> int:
        """Replace the spool with ``events`` (oldest first); returns how many were left out.

        Beyond ``max_events`` or ``max_bytes`` the oldest events are left out
        (TEL-066). No events removes the file: an empty spool and no spool mean
        the same.
        """
        kept, trimmed = self._bound(events)
        if not kept:
            self.clear()
            return trimmed
        data = encode_spool(kept)
        if len(data) > self.max_bytes:
            lines = data.split(b"\n")[:-1]
            size = len(data)
            start = 0
            while size > self.max_bytes and start < len(lines):
                size -= len(lines[start]) + 1
                start += 1
            trimmed += start
            data = data[len(data) - size :]
            if not data:
                self.clear()
                return trimmed
        self._replace(data)
        return trimmed

    def clear(self) -> None:
        """Remove the spool file (and any stray temporary file)."""
        for path in (self.path, self._tmp):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _bound(self, events: Sequence[TelemetryEvent]) -> tuple[Sequence[TelemetryEvent], int]:
        over = len(events) - self.max_events
        return (events[over:], over) if over > 0 else (events, 0)

    def _replace(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self._tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            raise
        if self.fsync:
            self._sync_dir()

    def _sync_dir(self) -> None:
        """Make the rename itself durable; not every platform can open a directory."""
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
