"""Trickle wire vocabulary: sequence numbers, channel names, ``Lp-Trickle-*`` headers.

Pure functions and attrs values; no I/O. The server and client adapters build
and read every trickle header through this module, so the exact spellings live
in one place (spec/trickle.md, "Headers").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .._errors import InvalidMessage
from .fields import as_str, expect_object, get_list
from .json_codec import dump_json, parse_json

__all__ = [
    "CLOSED_VALUE",
    "HEADER_CLOSED",
    "HEADER_EXPECT_CONTENT",
    "HEADER_LATEST",
    "HEADER_RESET",
    "HEADER_SEQ",
    "MAX_CHANNEL_NAME_LENGTH",
    "SEQ_CURRENT",
    "SEQ_NEXT",
    "STATUS_SEGMENT_GONE",
    "ChannelChange",
    "PublishRequestMeta",
    "SegmentMeta",
    "parse_seq",
    "validate_channel_name",
]

#: ``-1`` in a URL: the segment after the one being written (``nextWrite``).
SEQ_NEXT = -1
#: ``-2`` in a GET URL: the segment being written now (``nextWrite - 1``).
SEQ_CURRENT = -2

#: Custom status: the channel exists but the segment does not (evicted or too far ahead).
STATUS_SEGMENT_GONE = 470

HEADER_SEQ = "Lp-Trickle-Seq"
HEADER_LATEST = "Lp-Trickle-Latest"
HEADER_CLOSED = "Lp-Trickle-Closed"
HEADER_RESET = "Lp-Trickle-Reset"
HEADER_EXPECT_CONTENT = "Expect-Content"
#: The only value servers send in ``Lp-Trickle-Closed``; clients test presence only.
CLOSED_VALUE = "terminated"

MAX_CHANNEL_NAME_LENGTH = 256
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9._~-]+")
# Sequence numbers: an optional minus and at most 18 digits, so every accepted
# value fits an int64 the way the Go reference parses it. No "+", spaces or "_".
_SEQ = re.compile(r"-?[0-9]{1,18}")


def validate_channel_name(name: str) -> str:
    """Return ``name`` if it is a valid channel name, else raise InvalidMessage.

    One path segment of RFC 3986 unreserved characters, 1..256 long, not ``.``
    or ``..``. Stricter than go-livepeer (any segment) so that a name never needs
    escaping and can never alias another path.
    """
    if not isinstance(name, str) or not name:
        raise InvalidMessage("channel name must be a non-empty string")
    if len(name) > MAX_CHANNEL_NAME_LENGTH:
        raise InvalidMessage(f"channel name longer than {MAX_CHANNEL_NAME_LENGTH} characters")
    if name in (".", "..") or not _CHANNEL_NAME.fullmatch(name):
        raise InvalidMessage(f"invalid channel name {name!r}: use A-Z a-z 0-9 - . _ ~")
    return name


def parse_seq(text: str, *, lowest: int) -> int:
    """Parse a URL sequence number, refusing anything below ``lowest``.

    ``lowest`` is -1 for POST (only the ``-1`` special), -2 for GET (``-1`` and
    ``-2``) and 0 for DELETE. Non-integers and out-of-range values raise
    InvalidMessage (400) instead of reaching the ring (go-livepeer panics there).
    """
    # The message is the answer body: exactly go-livepeer's "Invalid idx" (TRK-026).
    if not isinstance(text, str) or not _SEQ.fullmatch(text):
        raise InvalidMessage("Invalid idx")
    value = int(text)
    if value < lowest:
        raise InvalidMessage("Invalid idx")
    return value


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup over a plain mapping."""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _optional_int_header(headers: Mapping[str, str], name: str) -> int | None:
    raw = _header(headers, name)
    if raw is None:
        return None
    raw = raw.strip()
    if not _SEQ.fullmatch(raw):
        raise InvalidMessage(f"{name}: not an integer: {raw!r}")
    return int(raw)


@attrs.frozen(kw_only=True)
class SegmentMeta:
    """The ``Lp-Trickle-*`` metadata a server puts on a response.

    ``seq`` is the resolved segment (or, on 470, the requested value); ``latest``
    the channel's ``nextWrite``; ``closed`` marks end of stream.
    """

    seq: int | None = attrs.field(default=None)
    latest: int | None = attrs.field(default=None)
    closed: bool = attrs.field(default=False)

    @seq.validator
    @latest.validator
    def _check_int(self, attribute: attrs.Attribute[Any], value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidMessage(f"{attribute.name} must be an integer or None")

    @closed.validator
    def _check_bool(self, attribute: attrs.Attribute[Any], value: bool) -> None:
        if not isinstance(value, bool):
            raise InvalidMessage("closed must be a boolean")

    def to_wire(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.seq is not None:
            headers[HEADER_SEQ] = str(self.seq)
        if self.latest is not None:
            headers[HEADER_LATEST] = str(self.latest)
        if self.closed:
            headers[HEADER_CLOSED] = CLOSED_VALUE
        return headers

    @classmethod
    def from_wire(cls, headers: Mapping[str, str]) -> SegmentMeta:
        """Read the metadata from response headers (any case).

        ``Lp-Trickle-Closed`` counts by presence, whatever its value, as every
        known client does.
        """
        return cls(
            seq=_optional_int_header(headers, HEADER_SEQ),
            latest=_optional_int_header(headers, HEADER_LATEST),
            closed=_header(headers, HEADER_CLOSED) is not None,
        )


@attrs.frozen(kw_only=True)
class PublishRequestMeta:
    """What a publisher's POST says beyond its body: reset and content type."""

    reset: bool = attrs.field(default=False)
    content_type: str | None = attrs.field(default=None)

    @reset.validator
    def _check_reset(self, attribute: attrs.Attribute[Any], value: bool) -> None:
        if not isinstance(value, bool):
            raise InvalidMessage("reset must be a boolean")

    @content_type.validator
    def _check_ct(self, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if value is not None and (not isinstance(value, str) or "\n" in value or "\r" in value):
            raise InvalidMessage("content_type must be a single-line string")

    def to_wire(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        if self.reset:
            headers[HEADER_RESET] = "1"
        return headers

    @classmethod
    def from_wire(cls, headers: Mapping[str, str]) -> PublishRequestMeta:
        """Any non-empty ``Lp-Trickle-Reset`` value requests a reset (Go: "1" or "true")."""
        reset = _header(headers, HEADER_RESET)
        return cls(
            reset=bool(reset and reset.strip()),
            content_type=_header(headers, "Content-Type"),
        )


def _names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str | bytes):  # a lone name is not a list of one-letter names
        raise InvalidMessage("channel names must be given as a list, not a string")
    return tuple(value)


@attrs.frozen(kw_only=True)
class ChannelChange:
    """One changefeed message: channels added and/or removed."""

    added: tuple[str, ...] = attrs.field(default=(), converter=_names)
    removed: tuple[str, ...] = attrs.field(default=(), converter=_names)

    @added.validator
    @removed.validator
    def _check(self, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        for name in value:
            validate_channel_name(name)

    def to_wire(self) -> dict[str, list[str]]:
        wire: dict[str, list[str]] = {}
        if self.added:
            wire["added"] = list(self.added)
        if self.removed:
            wire["removed"] = list(self.removed)
        return wire

    def to_bytes(self) -> bytes:
        return dump_json(self.to_wire())

    @classmethod
    def from_wire(cls, value: object) -> ChannelChange:
        obj = expect_object(value, "channel change")
        added = get_list(obj, "added", "channel change", as_str, default=())
        removed = get_list(obj, "removed", "channel change", as_str, default=())
        return cls(added=added, removed=removed)

    @classmethod
    def from_bytes(cls, data: bytes) -> ChannelChange:
        return cls.from_wire(parse_json(data, "channel change"))
