"""The HttpSink disk spool: JSONL, atomic replacement, bounds, torn lines (spec/telemetry.md)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from trio_trickle._telemetry.spool import SpoolContents, TelemetrySpool
from trio_trickle._wire.telemetry import TelemetryEvent
from trio_trickle._wire.telemetry_sink import encode_spool


def make_event(i: int, name: str = "stream_heartbeat_test", pad: int = 0) -> TelemetryEvent:
    meta: dict[str, object] = {"seq": i}
    if pad:
        meta["pad"] = "x" * pad
    return TelemetryEvent.stamp(
        name,
        clock_ms=lambda: 1_717_000_000_000 + i,
        new_id=uuid.uuid4,
        session_id="s-1",
        metadata=meta,
    )


@pytest.mark.spec("TEL-062", "TEL-022")
def test_write_then_load_keeps_order_one_envelope_per_line(tmp_path: Path) -> None:
    spool = TelemetrySpool(tmp_path / "spool.jsonl")
    events = [make_event(i) for i in range(20)]
    assert spool.write(events) == 0
    lines = spool.path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(line) for line in lines[:-1]] == [e.to_wire() for e in events]
    assert spool.load() == SpoolContents(events=tuple(events))


@pytest.mark.spec("TEL-063")
def test_replacement_is_a_rename_of_a_complete_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = TelemetrySpool(tmp_path / "spool.jsonl")
    old = [make_event(i) for i in range(3)]
    spool.write(old)
    new = [make_event(i) for i in range(3, 9)]
    renames: list[tuple[str, bytes]] = []
    real_replace = os.replace

    def watching_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        # At the moment of the rename the temporary file holds the whole new spool
        # and the spool's own name still holds the whole old one.
        assert Path(dst) == spool.path
        assert Path(src) != spool.path
        assert spool.path.read_bytes() == encode_spool(old)
        renames.append((str(src), Path(src).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", watching_replace)
    spool.write(new)
    assert renames == [(renames[0][0], encode_spool(new))]
    assert spool.load().events == tuple(new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spool.jsonl"]


@pytest.mark.spec("TEL-063")
def test_failed_write_leaves_the_old_spool_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = TelemetrySpool(tmp_path / "spool.jsonl")
    old = [make_event(i) for i in range(4)]
    spool.write(old)

    def full_disk(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError, match="No space"):
        spool.write([make_event(i) for i in range(10)])
    monkeypatch.undo()
    assert spool.load().events == tuple(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spool.jsonl"]


@pytest.mark.spec("TEL-066")
def test_event_bound_keeps_the_newest(tmp_path: Path) -> None:
    spool = TelemetrySpool(tmp_path / "spool.jsonl", max_events=5)
    events = [make_event(i) for i in range(12)]
    assert spool.write(events) == 7
    assert spool.load().events == tuple(events[7:])


@pytest.mark.spec("TEL-066")
def test_byte_bound_keeps_the_newest_whole_lines(tmp_path: Path) -> None:
    events = [make_event(i, pad=1000) for i in range(10)]
    line = len(encode_spool(events[:1]))
    spool = TelemetrySpool(tmp_path / "spool.jsonl", max_bytes=line * 3 + 10)
    assert spool.write(events) == 7
    assert spool.path.stat().st_size <= spool.max_bytes
    assert spool.load().events == tuple(events[7:])


@pytest.mark.spec("TEL-066")
def test_load_applies_the_bound_to_an_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    events = [make_event(i) for i in range(8)]
    path.write_bytes(encode_spool(events))
    contents = TelemetrySpool(path, max_events=3).load()
    assert contents.events == tuple(events[5:])
    assert contents.trimmed == 5


@pytest.mark.spec("TEL-067")
def test_torn_and_corrupt_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    events = [make_event(i) for i in range(4)]
    good = encode_spool(events).split(b"\n")
    torn = encode_spool([make_event(99)])[:37]
    path.write_bytes(
        b"\n".join([good[0], b"not json", good[1], b'{"id":"x"}', good[2], good[3], torn])
    )
    contents = TelemetrySpool(path).load()
    assert contents.events == tuple(events)
    assert contents.unreadable == 3


def test_missing_file_is_empty_and_empty_write_removes_the_file(tmp_path: Path) -> None:
    spool = TelemetrySpool(tmp_path / "sub" / "spool.jsonl")
    assert spool.load() == SpoolContents(events=())
    spool.write([make_event(1)])
    assert spool.path.exists()
    assert spool.write([]) == 0
    assert not spool.path.exists()
    assert spool.load().events == ()


def test_bounds_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_events"):
        TelemetrySpool(tmp_path / "s", max_events=0)
    with pytest.raises(ValueError, match="max_bytes"):
        TelemetrySpool(tmp_path / "s", max_bytes=0)
