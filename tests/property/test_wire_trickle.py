"""Properties of the trickle wire vocabulary: round trips and total decoding."""

from __future__ import annotations

import contextlib
import json
import re

import pytest
from hypothesis import given, strategies as st

from tests.strategies.trickle import (
    channel_changes,
    channel_names,
    header_maps,
    json_values,
    publish_metas,
    segment_metas,
    seqs,
)
from trio_trickle import InvalidMessage, ProtocolError
from trio_trickle._wire.trickle import parse_seq, validate_channel_name
from trio_trickle.wire import ChannelChange, PublishRequestMeta, SegmentMeta


@pytest.mark.spec("TRK-001")
@given(channel_names)
def test_valid_names_are_accepted(name: str) -> None:
    assert validate_channel_name(name) == name


@pytest.mark.spec("TRK-001", "TRK-002")
@given(st.text(max_size=300))
def test_name_validation_is_total(name: str) -> None:
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    expected = 1 <= len(name) <= 256 and set(name) <= allowed and name not in (".", "..")
    try:
        validate_channel_name(name)
    except InvalidMessage as exc:
        assert exc.status == 400
        assert not expected
    else:
        assert expected


@pytest.mark.spec("TRK-026", "TRK-027")
@given(st.text(max_size=25), st.sampled_from([-2, -1, 0]))
def test_parse_seq_is_total_and_strict(text: str, lowest: int) -> None:
    try:
        value = parse_seq(text, lowest=lowest)
    except InvalidMessage as exc:
        assert exc.status == 400
    else:
        assert re.fullmatch(r"-?[0-9]{1,18}", text)
        assert value == int(text)
        assert value >= lowest


@pytest.mark.spec("TRK-026")
@given(seqs)
def test_parse_seq_round_trips_decimal(value: int) -> None:
    assert parse_seq(str(value), lowest=-2) == value


@pytest.mark.spec("TRK-026", "TRK-027")
@pytest.mark.parametrize(
    ("text", "lowest"),
    [
        ("-3", -2),
        ("-2", -1),
        ("-1", 0),
        ("+1", 0),
        (" 1", 0),
        ("1_0", 0),
        ("0x1", 0),
        ("1" * 19, 0),
        ("", 0),
        ("next", -2),
    ],
)
def test_parse_seq_rejects(text: str, lowest: int) -> None:
    with pytest.raises(InvalidMessage):
        parse_seq(text, lowest=lowest)


@given(segment_metas())
def test_segment_meta_round_trip(meta: SegmentMeta) -> None:
    wire = meta.to_wire()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in wire.items())
    assert SegmentMeta.from_wire(wire) == meta


def test_segment_meta_exact_spelling() -> None:
    wire = SegmentMeta(seq=3, latest=4, closed=True).to_wire()
    assert wire == {
        "Lp-Trickle-Seq": "3",
        "Lp-Trickle-Latest": "4",
        "Lp-Trickle-Closed": "terminated",
    }
    assert SegmentMeta.from_wire({"lp-trickle-closed": ""}).closed is True


@given(publish_metas())
def test_publish_meta_round_trip(meta: PublishRequestMeta) -> None:
    assert PublishRequestMeta.from_wire(meta.to_wire()) == meta


@pytest.mark.spec("TRK-041")
@pytest.mark.parametrize(
    ("value", "reset"), [("1", True), ("true", True), ("", False), ("  ", False)]
)
def test_reset_is_any_non_empty_value(value: str, reset: bool) -> None:
    assert PublishRequestMeta.from_wire({"Lp-Trickle-Reset": value}).reset is reset


@given(header_maps)
def test_header_decoding_raises_only_protocol_errors(headers: dict[str, str]) -> None:
    for decode in (SegmentMeta.from_wire, PublishRequestMeta.from_wire):
        with contextlib.suppress(ProtocolError):
            decode(headers)


@pytest.mark.spec("TRK-086")
@given(channel_changes())
def test_channel_change_round_trip(change: ChannelChange) -> None:
    data = change.to_bytes()
    assert json.loads(data) == change.to_wire()
    assert ChannelChange.from_bytes(data) == change


@pytest.mark.spec("TRK-085", "TRK-086")
def test_channel_change_exact_form() -> None:
    assert ChannelChange(added=("_changes",)).to_bytes() == b'{"added":["_changes"]}'
    with pytest.raises(InvalidMessage):  # a string is not a list of one-letter names
        ChannelChange(added="abc")  # type: ignore[arg-type]
    assert ChannelChange(removed=("a",)).to_wire() == {"removed": ["a"]}


@given(json_values)
def test_channel_change_decoding_is_total(value: object) -> None:
    with contextlib.suppress(ProtocolError):
        ChannelChange.from_wire(value)


@given(st.binary(max_size=64))
def test_channel_change_bytes_decoding_is_total(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        ChannelChange.from_bytes(data)


def test_validators_reject_bad_values() -> None:
    with pytest.raises(InvalidMessage):
        SegmentMeta(seq=True)  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage):
        PublishRequestMeta(content_type="a\r\nX: y")
    with pytest.raises(InvalidMessage):
        ChannelChange(added=("bad/name",))
