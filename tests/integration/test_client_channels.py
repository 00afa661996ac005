"""JSON-per-segment and JSONL channel helpers over a real trickle server (CHN-*)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from tests.integration.servers import ServedTrickle, open_test_server
from trio_trickle._client.channels import (
    JsonlReader,
    JsonlWriter,
    JsonSegmentReader,
    JsonSegmentWriter,
)
from trio_trickle._client.http import ClientTimeouts
from trio_trickle._client.publisher import TricklePublisher
from trio_trickle._client.subscriber import TrickleSubscriber
from trio_trickle._core.server import ServerConfig
from trio_trickle._errors import InvalidMessage, PayloadTooLarge
from trio_trickle._wire.channel_events import EventEnvelope, StatusEvent, decode_event
from trio_trickle._wire.channels import ControlMessage, KeepAlive

FAST = ClientTimeouts(connect=2.0, headers=2.0, body=2.0, queue=1.0, close=2.0)


@pytest.fixture
async def served() -> AsyncIterator[ServedTrickle]:
    # A longer ring than go-livepeer's 5, so tests can write ahead of their readers.
    async with open_test_server(ServerConfig(ring_size=16)) as srv:
        yield srv


def publisher(url: str, mime: str = "application/json") -> TricklePublisher:
    return TricklePublisher(url, mime, start_seq=0, owns_channel=False, timeouts=FAST)


def subscriber(url: str) -> TrickleSubscriber:
    return TrickleSubscriber(url, start_seq=0, timeouts=FAST)


@pytest.mark.spec("CHN-033", "CHN-005", "CHN-012")
async def test_large_json_message_round_trips(served: ServedTrickle) -> None:
    url = served.create("ch-events", "application/json")
    big = {"type": "status", "blob": "x" * 200_000, "nested": {"list": list(range(1000))}}
    with trio.fail_after(5):
        async with publisher(url) as pub, subscriber(url) as sub:
            writer = JsonSegmentWriter(pub)
            reader = JsonSegmentReader(sub)
            assert await writer.write(big) == 0
            assert await writer.write(ControlMessage(params={"prompt": "cat"})) == 1
            assert await reader.__anext__() == big
            assert await reader.__anext__() == {"prompt": "cat"}
            assert reader.last_seq == 1
    segment = served.server.core.channels["ch-events"].segment(0)
    assert segment is not None
    assert segment.size > 200_000
    assert len(segment.chunks) > 1


@pytest.mark.spec("CHN-034", "CHN-035", "CHN-010", "CHN-036", "CHN-006", "CHN-008")
async def test_json_reader_limits_skips_and_reports(served: ServedTrickle) -> None:
    url = served.create("ch-control", "application/json")
    with trio.fail_after(5):
        async with publisher(url) as pub, subscriber(url) as sub:
            writer = JsonSegmentWriter(pub)
            await writer.write({"blob": "y" * 5000})  # 0: over the reader's limit
            await pub.write_segment(b"")  # 1: empty, skipped
            await pub.write_segment(b" \n ")  # 2: whitespace only, skipped
            await pub.write_segment(b"{not json")  # 3: invalid
            await writer.write(KeepAlive())  # 4: keepalive, skipped by default
            await writer.write({"keep": "alive", "prompt": "x"})  # 5: not a keepalive
            reader = JsonSegmentReader(sub, max_bytes=4096)
            with pytest.raises(PayloadTooLarge, match="4096"):
                await reader.__anext__()
            with pytest.raises(InvalidMessage):
                await reader.__anext__()
            assert await reader.__anext__() == {"keep": "alive", "prompt": "x"}
            assert reader.last_seq == 5
            await writer.write(KeepAlive())  # 6: delivered when not skipping
            reader.skip_keepalive = False
            assert await reader.__anext__() == {"keep": "alive"}


@pytest.mark.spec("CHN-010")
async def test_json_reader_can_skip_invalid_segments(served: ServedTrickle) -> None:
    url = served.create("ch", "application/json")
    with trio.fail_after(5):
        async with publisher(url) as pub, subscriber(url) as sub:
            await pub.write_segment(b"[1, 2]")  # JSON, but not an object
            await pub.write_segment(b'{"ok": true}')
            reader = JsonSegmentReader(sub, skip_invalid=True)
            assert await reader.__anext__() == {"ok": True}


@pytest.mark.spec("CHN-005")
async def test_json_helpers_can_own_their_client_objects(served: ServedTrickle) -> None:
    url = served.create("ch", "application/json")
    with trio.fail_after(5):
        async with (
            JsonSegmentWriter(url, owns_channel=False, timeouts=FAST) as writer,
            JsonSegmentReader(url, start_seq=0, timeouts=FAST) as reader,
        ):
            await writer.write({"n": 1})
            assert await reader.__anext__() == {"n": 1}
    assert "ch" in served.server.core.channels


@pytest.mark.spec("CHN-025", "CHN-027", "CHN-031", "CHN-028")
async def test_jsonl_rotates_segments_and_streams_records(served: ServedTrickle) -> None:
    url = served.create("ch-data", "application/jsonl")
    records = [{"i": i, "text": "r" * (i * 10)} for i in range(12)]
    with trio.fail_after(5):
        async with (
            publisher(url, "application/jsonl") as pub,
            subscriber(url) as sub,
            JsonlWriter(pub, segment_interval=0.1) as writer,
        ):
            reader = JsonlReader(sub)
            await writer.write(records[0])
            # Delivered while its segment is still open (10 s by default here 0.1 s).
            assert await reader.__anext__() == records[0]
            assert served.server.core.channels["ch-data"].segment(0) is not None
            got = [records[0]]
            seqs = {reader.seq}
            for record in records[1:]:
                await writer.write(record)
                await trio.sleep(0.03)
            await writer.flush()
            while len(got) < len(records):
                got.append(await reader.__anext__())
                seqs.add(reader.seq)
    assert got == records
    assert len(seqs) >= 3  # 12 records over ~0.36 s in 0.1 s segments


@pytest.mark.spec("CHN-029", "CHN-028", "CHN-030", "CHN-037", "CHN-032")
async def test_jsonl_reader_edge_cases(served: ServedTrickle) -> None:
    url = served.create("ch-data", "application/jsonl")
    with trio.fail_after(5):
        async with publisher(url, "application/jsonl") as pub, subscriber(url) as sub:
            await pub.write_segment(b'{"a":1}\r\n\n  \n{"b":2}')  # no final newline
            await pub.write_segment(b"")  # empty: no records
            await pub.write_segment(b'{"c":3}\nnot json\n[4]\n{"d":5}\n')
            reader = JsonlReader(sub)
            assert await reader.__anext__() == {"a": 1}
            assert await reader.__anext__() == {"b": 2}
            assert await reader.__anext__() == {"c": 3}
            with pytest.raises(InvalidMessage, match="line 2"):
                await reader.__anext__()
            with pytest.raises(InvalidMessage, match="line 3"):
                await reader.__anext__()
            assert await reader.__anext__() == {"d": 5}
            assert reader.seq == 2
        async with subscriber(url) as sub:
            lenient = JsonlReader(sub, objects_only=False, skip_invalid=True)
            values = [await lenient.__anext__() for _ in range(5)]
            assert values == [{"a": 1}, {"b": 2}, {"c": 3}, [4], {"d": 5}]


@pytest.mark.spec("CHN-026", "CHN-034")
async def test_jsonl_limits(served: ServedTrickle) -> None:
    url = served.create("ch-data", "application/jsonl")
    with trio.fail_after(5):
        async with (
            publisher(url, "application/jsonl") as pub,
            subscriber(url) as sub,
            JsonlWriter(pub) as writer,
        ):
            with pytest.raises(PayloadTooLarge):
                await writer.write({"blob": "z" * 70_000})
            await writer.write({"blob": "z" * 60_000})
            await writer.write({"blob": "z" * 60_000})
            await writer.flush()
            await writer.write({"small": True})
            await writer.flush()
            reader = JsonlReader(sub, max_bytes=100_000)
            assert (await reader.__anext__())["blob"] == "z" * 60_000
            with pytest.raises(PayloadTooLarge):
                await reader.__anext__()
            assert await reader.__anext__() == {"small": True}


@pytest.mark.spec("CHN-013", "CHN-014", "CHN-015", "CHN-016", "CHN-017", "CHN-018")
@pytest.mark.spec("CHN-023", "CHN-024", "CHN-038")
async def test_an_events_channel_read_the_way_a_gateway_reads_it(served: ServedTrickle) -> None:
    """Raw segments a peer might publish, read back over a real server and decoded."""
    url = served.create("ch-events", "application/json")
    segments = [
        # 0: our envelope; unknown members kept
        b'{"queue_event_type":"ai_stream_events","event":{"type":"hello","x":{"y":1}}}',
        b'{"type":"bare","n":2}',  # 1: a bare event object
        b'{"queue_event_type":"anything","event":{"type":"status",'  # 2: status wins
        b'"timestamp":1700000000000,"input_status":{"fps":29.5}}}',
        b'{"queue_event_type":"","event":{"type":"other"}}',  # 3: empty topic
        b'{"queue_event_type":5,"event":{"type":"t"}}',  # 4: topic not a string
        b'{"event":[1]}',  # 5: event not an object
        b"not json",  # 6
        b"[" * 70 + b"]" * 70,  # 7: nested too deep
        b'{"type":"x","s":"\\ud800"}',  # 8: a lone surrogate
        b'{"queue_event_type":"ai_stream_events","event":{"type":"last"}}',  # 9
    ]
    decoded: list[EventEnvelope | str] = []
    with trio.fail_after(5):
        async with publisher(url) as pub, subscriber(url) as sub:
            for data in segments:
                await pub.write_segment(data)
            async for segment in sub:
                data = await segment.read_all(limit=1 << 20)
                try:
                    envelope = decode_event(data)
                except InvalidMessage:
                    decoded.append("invalid")  # never another error: the reader goes on
                else:
                    assert envelope is not None
                    decoded.append(envelope)
                if len(decoded) == len(segments):
                    break
    assert decoded[4:9] == ["invalid"] * 5
    ours, bare, status, untopical, last = (decoded[i] for i in (0, 1, 2, 3, 9))
    assert isinstance(ours, EventEnvelope)
    assert (ours.topic, ours.event) == ("ai_stream_events", {"type": "hello", "x": {"y": 1}})
    assert isinstance(bare, EventEnvelope)
    assert (bare.topic, bare.event) == ("ai_stream_events", {"type": "bare", "n": 2})
    assert isinstance(status, EventEnvelope)
    assert status.topic == "ai_stream_status"
    assert StatusEvent.from_wire(status.event).input_fps == 29.5
    assert StatusEvent.from_wire(status.event).output_fps is None
    assert isinstance(untopical, EventEnvelope)
    assert untopical.topic == "ai_stream_events"
    assert isinstance(last, EventEnvelope)
    assert last.event == {"type": "last"}
