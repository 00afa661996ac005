"""Routing and the channel registry of the sans-io server core."""

from __future__ import annotations

import json

import pytest

from trio_trickle import ChannelNotFound, InvalidMessage, ProtocolError, ServerConfig
from trio_trickle._core.channel import ChannelCore, PublishTicket, ReadSignal
from trio_trickle._core.server import MethodNotAllowed, Operation, TrickleServerCore, route_request


@pytest.mark.spec("TRK-081")
@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("GET", "ch", "DELETE, POST"), ("PUT", "ch/0", "DELETE, GET, HEAD, POST")],
)
def test_wrong_method_is_405_with_allow(method: str, path: str, allow: str) -> None:
    with pytest.raises(MethodNotAllowed) as info:
        route_request(method, path)
    assert info.value.status == 405
    assert info.value.allow == allow


@pytest.mark.spec("TRK-082")
@pytest.mark.parametrize("path", ["", "ch/0/x", "/ch", "ch/", "a//b"])
def test_wrong_shape_is_404(path: str) -> None:
    with pytest.raises(ProtocolError) as info:
        route_request("GET", path)
    assert info.value.status == 404


@pytest.mark.spec("TRK-002", "TRK-080")
def test_routes() -> None:
    assert route_request("GET", "ch/next").operation is Operation.NEXT
    assert route_request("POST", "ch/next").operation is Operation.PUBLISH  # then 400 Invalid idx
    assert route_request("DELETE", "ch/3").seq == "3"
    with pytest.raises(InvalidMessage):
        route_request("POST", "bad%20name")


@pytest.mark.spec("TRK-004", "TRK-005", "TRK-006", "TRK-007", "TRK-008")
def test_create_rules() -> None:
    core = TrickleServerCore()
    assert core.config.autocreate is False
    with pytest.raises(ChannelNotFound):
        core.create("a", "text/plain", now=0)
    assert "a" not in core.channels
    made = core.create("a", "text/plain", now=0, force=True)
    assert core.create("a", "other", now=1) is made
    assert made.mime_type == "text/plain"
    auto = TrickleServerCore(config=ServerConfig(autocreate=True))
    assert auto.create("b", "", now=0).mime_type == ""


@pytest.mark.spec("TRK-015")
def test_channel_limit_is_503() -> None:
    core = TrickleServerCore(config=ServerConfig(max_channels=2, autocreate=True))
    core.create("a", "", now=0)
    core.create("b", "", now=0)
    with pytest.raises(ProtocolError) as info:
        core.create("c", "", now=0)
    assert info.value.status == 503
    assert "c" not in core.channels


@pytest.mark.spec("TRK-013", "TRK-072")
def test_delete_then_recreate_is_fresh() -> None:
    core = TrickleServerCore(config=ServerConfig(autocreate=True))
    channel = core.create("a", "", now=0)
    channel.write_local(b"x", now=0)
    core.delete("a", now=0)
    with pytest.raises(ProtocolError) as info:
        core.delete("a", now=0)
    assert info.value.status == 400
    with pytest.raises(ChannelNotFound):
        core.get("a")
    assert core.create("a", "", now=1).next_write == 0


@pytest.mark.spec("TRK-073", "TRK-074", "TRK-076")
def test_idle_sweep() -> None:
    core = TrickleServerCore(config=ServerConfig(idle_timeout=10, autocreate=True))
    busy = core.create("busy", "", now=0)
    watched = core.create("watched", "", now=0)
    core.create("_private", "", now=0)
    ticket = busy.begin_publish(-1, reset=False, now=8)
    assert isinstance(ticket, PublishTicket)
    busy.append(ticket, b"x", now=8)
    watched.begin_read(-1)  # subscriber activity does not count
    swept = core.sweep(now=15)
    assert [c.name for c in swept] == ["watched"]
    assert watched.closed
    assert sorted(core.channels) == ["_private", "busy"]


@pytest.mark.spec("TRK-084", "TRK-085", "TRK-086", "TRK-087")
def test_changefeed() -> None:
    assert ServerConfig().changefeed is False
    core = TrickleServerCore(config=ServerConfig(changefeed=True, autocreate=True, idle_timeout=5))
    core.start(now=0)
    core.create("a", "", now=1)
    core.delete("a", now=2)
    core.create("b", "", now=3)
    core.sweep(now=100)
    feed = core.get("_changes")
    assert feed.mime_type == "application/json"
    messages = []
    for seg in feed.segments():
        messages.append(json.loads(b"".join(seg.chunks)))
    assert messages == [
        {"added": ["_changes"]},
        {"added": ["a"]},
        {"removed": ["a"]},
        {"added": ["b"]},
        {"removed": ["b"]},
    ]
    assert feed.next_write == 5
    first = TrickleServerCore(config=ServerConfig(changefeed=True))
    first.start(now=0)
    seg0 = first.get("_changes").segment(0)
    assert seg0 is not None
    assert b"".join(seg0.chunks) == b'{"added":["_changes"]}'
    core.close_all()
    assert core.channels == {}


@pytest.mark.spec("TRK-068", "TRK-077")
def test_close_all_ends_waiters_with_eos() -> None:
    core = TrickleServerCore(config=ServerConfig(autocreate=True))
    channel = core.create("a", "", now=0)
    cursor = channel.begin_read(-1)
    assert cursor.next_event() is ReadSignal.NEED_DATA
    core.close_all()
    head = cursor.next_event()
    assert not isinstance(head, ReadSignal | list)
    assert head.header("Lp-Trickle-Closed") == "terminated"
    assert cursor.next_event() is ReadSignal.END


@pytest.mark.spec("TRK-036", "TRK-041")
def test_a_refused_post_does_not_apply_its_reset() -> None:
    channel = ChannelCore(name="c", mime_type="text/plain")
    first = channel.begin_publish(0, reset=False, now=0.0)
    second = channel.begin_publish(1, reset=False, now=0.0)
    assert isinstance(first, PublishTicket)
    assert isinstance(second, PublishTicket)
    channel.append(first, b"a", now=0.0)
    channel.append(second, b"b", now=0.0)
    version = channel.version
    with pytest.raises(ProtocolError) as info:
        channel.begin_publish(1, reset=True, now=0.0)  # segment 1 is mid-body
    assert info.value.status == 409
    segment0 = channel.segment(0)
    assert segment0 is not None
    assert not segment0.closed  # the refused Reset closed nothing
    assert first.attached
    assert channel.version == version


@pytest.mark.spec("TRK-023")
@pytest.mark.parametrize("ring", [0, 1, True, 2.5])
def test_a_channel_ring_holds_at_least_two_segments(ring: object) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        ChannelCore(name="c", ring_size=ring)  # type: ignore[arg-type]
    assert ChannelCore(name="c", ring_size=2).ring_size == 2
