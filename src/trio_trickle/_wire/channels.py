"""What the bytes of control and data segments mean (spec/channels.md).

(The events channel lives in ``_wire_channel_events``, which reuses the JSON
checks defined here.)

Pure encoders and decoders, no I/O: a reader hands in the bytes of one trickle
segment (whole, or chunk by chunk through :class:`SegmentAccumulator` /
:class:`JsonlDecoder`) and gets typed messages back. Every decoder raises only
the ProtocolError family: :class:`~trio_trickle.InvalidMessage` for a bad
message (the reader skips it and carries on) and
:class:`~trio_trickle.PayloadTooLarge` for a segment over the size limit.
Empty segments decode to "nothing", not to an error, because publishers produce
them routinely when they shut down (CHN-036).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from .._errors import IllegalTransition, InvalidMessage, PayloadTooLarge
from .fields import expect_object
from .json_codec import dump_json, parse_json
from .trickle import validate_channel_name

__all__ = [
    "CONTROL_KEEPALIVE_INTERVAL",
    "DATA_SEGMENT_INTERVAL",
    "DEFAULT_MAX_SEGMENT_BYTES",
    "MAX_JSONL_LINE_BYTES",
    "MAX_JSON_DEPTH",
    "MIME_JSON",
    "MIME_JSONL",
    "MIME_MPEGTS",
    "ControlMessage",
    "DataLine",
    "JsonlDecoder",
    "KeepAlive",
    "SegmentAccumulator",
    "StreamChannels",
    "check_segment_size",
    "control_from_wire",
    "decode_control",
    "decode_jsonl",
    "decode_jsonl_values",
    "encode_control",
    "encode_jsonl",
    "mime_matches",
]

JSONObject = dict[str, Any]

MIME_MPEGTS: Final = "video/MP2T"
MIME_JSON: Final = "application/json"
MIME_JSONL: Final = "application/jsonl"

#: Per-segment read limit (livepeer-python-gateway ``max_event_bytes``), CHN-034.
DEFAULT_MAX_SEGMENT_BYTES: Final = 1_048_576
#: Longest JSONL line the Go BYOC gateway's ``bufio.Scanner`` reads (CHN-026).
MAX_JSONL_LINE_BYTES: Final = 65_535
#: Seconds between control keepalives (Go gateway ticker, python ``Control``), CHN-009.
CONTROL_KEEPALIVE_INTERVAL: Final = 10.0
#: Seconds a JSONL data segment stays open before rotating (python ``JSONLWriter``), CHN-027.
DATA_SEGMENT_INTERVAL: Final = 10.0

#: Deepest JSON nesting a channel message may have; far beyond any real params.
MAX_JSON_DEPTH: Final = 64

_KEEPALIVE_WIRE: Final = {"keep": "alive"}
_MAX_MID_LENGTH: Final = 248  # 256 minus len("-control")


# -- JSON value checks ---------------------------------------------------------


def _encodable(text: str) -> bool:
    # JSON's "\ud800" escape decodes to a lone surrogate that UTF-8 cannot encode.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_problem(value: object) -> str | None:
    """Why ``value`` would not survive a JSON round trip unchanged, or None.

    Iterative, with a depth cap, so that hostile nesting cannot raise
    RecursionError here or later in ``copy.deepcopy``. Stricter than
    ``json.dumps``: tuples, non-str keys and NaN would come back different.
    """
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"nested deeper than {MAX_JSON_DEPTH} levels"
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            if not _encodable(item):
                return "strings must be valid Unicode (no lone surrogates)"
            continue
        if isinstance(item, int):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return "numbers must be finite"
            continue
        if isinstance(item, list):
            stack.extend((sub, depth + 1) for sub in item)
            continue
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    return "object keys must be strings"
                if not _encodable(key):
                    return "object keys must be valid Unicode (no lone surrogates)"
                stack.append((sub, depth + 1))
            continue
        return f"{type(item).__name__} is not a JSON value"
    return None


def _json_object(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: a JSON object that round-trips exactly."""
    if not isinstance(value, dict):
        raise InvalidMessage(f"{attribute.name}: must be a JSON object (dict)")
    problem = _json_problem(value)
    if problem is not None:
        raise InvalidMessage(f"{attribute.name}: {problem}")


def _deep_copy(value: Any) -> Any:
    """Converter: wire values own their data, so callers cannot mutate them later."""
    if not isinstance(value, dict | list):
        return value
    problem = _json_problem(value)  # checked first: deepcopy recurses
    if problem is not None:
        raise InvalidMessage(problem)
    return copy.deepcopy(value)


def _parse_object(data: bytes, what: str, max_bytes: int | None) -> JSONObject | None:
    """One JSON object filling a whole segment; None for an empty segment."""
    check_segment_size(len(data), max_bytes)
    if not data.strip():
        return None
    return dict(expect_object(parse_json(data, what), what))


# -- channel set ---------------------------------------------------------------


def mime_matches(actual: str | None, expected: str) -> bool:
    """Compare MIME types case-insensitively, ignoring parameters (CHN-003)."""
    if actual is None:
        return False

    def bare(mime: str) -> str:
        return mime.split(";", 1)[0].strip().casefold()

    return bare(actual) == bare(expected)


def _valid_mid(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_MID_LENGTH:
        raise InvalidMessage(f"{attribute.name}: must be 1..{_MAX_MID_LENGTH} characters")
    validate_channel_name(value)


@attrs.frozen(kw_only=True)
class StreamChannels:
    """The channel names one live stream uses (CHN-001); ``mid`` is the stream id."""

    mid: str = attrs.field(validator=_valid_mid)

    @property
    def ingest(self) -> str:
        return self.mid

    @property
    def output(self) -> str:
        return f"{self.mid}-out"

    @property
    def control(self) -> str:
        return f"{self.mid}-control"

    @property
    def events(self) -> str:
        return f"{self.mid}-events"

    @property
    def data(self) -> str:
        return f"{self.mid}-data"

    def with_mime(self, *, data: bool = False) -> tuple[tuple[str, str], ...]:
        """``(name, mime)`` for every channel to create; the data channel only if asked."""
        pairs = (
            (self.ingest, MIME_MPEGTS),
            (self.output, MIME_MPEGTS),
            (self.control, MIME_JSON),
            (self.events, MIME_JSON),
        )
        return (*pairs, (self.data, MIME_JSONL)) if data else pairs


# -- size limits and accumulation ------------------------------------------------


def check_segment_size(size: int, max_bytes: int | None = DEFAULT_MAX_SEGMENT_BYTES) -> None:
    """Raise PayloadTooLarge when ``size`` exceeds ``max_bytes`` (None: no limit)."""
    if max_bytes is not None and size > max_bytes:
        raise PayloadTooLarge(f"segment of {size}+ bytes exceeds the limit of {max_bytes} bytes")


@attrs.define(eq=False)
class SegmentAccumulator:
    """Collects one segment's chunks so a reader parses the whole thing (CHN-033).

    Refuses the chunk that crosses the limit instead of buffering it, so an
    oversized segment costs at most ``max_bytes`` of memory (CHN-035).
    """

    max_bytes: int | None = DEFAULT_MAX_SEGMENT_BYTES
    _chunks: list[bytes] = attrs.field(factory=list, init=False)
    # Total bytes accepted so far; always <= max_bytes when a limit is set.
    _size: int = attrs.field(default=0, init=False)

    @property
    def size(self) -> int:
        return self._size

    def feed(self, chunk: bytes) -> None:
        check_segment_size(self._size + len(chunk), self.max_bytes)
        if chunk:
            self._chunks.append(bytes(chunk))
            self._size += len(chunk)

    def getvalue(self) -> bytes:
        return b"".join(self._chunks)


# -- control channel -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class KeepAlive:
    """``{"keep":"alive"}``: proves the control writer is alive; readers drop it (CHN-006)."""

    def to_wire(self) -> JSONObject:
        return dict(_KEEPALIVE_WIRE)

    @classmethod
    def from_wire(cls, value: object) -> KeepAlive:
        obj = expect_object(value, "keepalive")
        if obj != _KEEPALIVE_WIRE:
            raise InvalidMessage('keepalive: must be exactly {"keep":"alive"}')
        return cls()


def _not_keepalive(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value == _KEEPALIVE_WIRE:
        raise InvalidMessage(f"{attribute.name}: this is a keepalive, use KeepAlive")


@attrs.frozen(kw_only=True)
class ControlMessage:
    """A params update: one flat JSON object of pipeline parameters (CHN-007)."""

    params: JSONObject = attrs.field(converter=_deep_copy, validator=[_json_object, _not_keepalive])

    def to_wire(self) -> JSONObject:
        return copy.deepcopy(self.params)

    @classmethod
    def from_wire(cls, value: object) -> ControlMessage:
        return cls(params=dict(expect_object(value, "control message")))


def control_from_wire(value: object) -> ControlMessage | KeepAlive:
    """Classify one decoded control object: exactly the keepalive, or params (CHN-008)."""
    obj = expect_object(value, "control message")
    if obj == _KEEPALIVE_WIRE:
        return KeepAlive()
    return ControlMessage.from_wire(obj)


def decode_control(
    data: bytes, *, max_bytes: int | None = DEFAULT_MAX_SEGMENT_BYTES
) -> ControlMessage | KeepAlive | None:
    """Decode a whole control segment; None means an empty segment to skip (CHN-036)."""
    obj = _parse_object(data, "control segment", max_bytes)
    return None if obj is None else control_from_wire(obj)


def encode_control(message: ControlMessage | KeepAlive) -> bytes:
    """The bytes of one control segment."""
    return dump_json(message.to_wire())


# -- data channel (JSONL) ----------------------------------------------------------


@attrs.frozen(kw_only=True)
class DataLine:
    """One JSONL data record: a JSON object on one line (CHN-025)."""

    record: JSONObject = attrs.field(converter=_deep_copy, validator=_json_object)

    def to_wire(self) -> JSONObject:
        return copy.deepcopy(self.record)

    @classmethod
    def from_wire(cls, value: object) -> DataLine:
        return cls(record=dict(expect_object(value, "data line")))

    def to_line(self) -> bytes:
        """The encoded line with its newline; refuses lines Go cannot scan (CHN-026)."""
        line = dump_json(self.record)
        if len(line) > MAX_JSONL_LINE_BYTES:
            raise PayloadTooLarge(
                f"data line of {len(line)} bytes exceeds {MAX_JSONL_LINE_BYTES} bytes"
            )
        return line + b"\n"


def encode_jsonl(records: Iterable[Mapping[str, Any] | DataLine]) -> bytes:
    """Encode records as JSONL, one ``\\n``-terminated object per line."""
    out = bytearray()
    for record in records:
        line = record if isinstance(record, DataLine) else DataLine(record=dict(record))
        out += line.to_line()
    return bytes(out)


@attrs.define(eq=False)
class JsonlDecoder:
    """Incremental JSONL reader for one segment, h11-style (CHN-028..CHN-031).

    ``feed`` bytes as they arrive, call ``next_record`` until it returns None,
    and call ``end`` when the segment is over so the last unterminated line is
    decoded. A bad line raises InvalidMessage once and is then consumed, so the
    caller may log it and keep calling ``next_record``.
    """

    max_bytes: int | None = DEFAULT_MAX_SEGMENT_BYTES
    objects_only: bool = True
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    # Bytes of _buffer already consumed as whole lines.
    _pos: int = attrs.field(default=0, init=False)
    # Total bytes fed, counted against max_bytes.
    _size: int = attrs.field(default=0, init=False)
    _line_no: int = attrs.field(default=0, init=False)
    _ended: bool = attrs.field(default=False, init=False)

    def feed(self, chunk: bytes) -> None:
        if self._ended:
            raise IllegalTransition("JsonlDecoder.feed after end()")
        check_segment_size(self._size + len(chunk), self.max_bytes)
        self._size += len(chunk)
        if self._pos > 65_536 and self._pos * 2 > len(self._buffer):
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += chunk

    def end(self) -> None:
        self._ended = True

    def next_value(self) -> tuple[bool, Any]:
        """``(True, value)`` for the next record, ``(False, None)`` when none is ready."""
        while True:
            newline = self._buffer.find(b"\n", self._pos)
            if newline >= 0:
                line = bytes(self._buffer[self._pos : newline])
                self._pos = newline + 1
            elif self._ended and self._pos < len(self._buffer):
                line = bytes(self._buffer[self._pos :])  # final line without newline
                self._pos = len(self._buffer)
            else:
                return False, None
            self._line_no += 1
            if not line.strip():
                continue
            where = f"JSONL line {self._line_no}"
            value = parse_json(line, where)
            problem = _json_problem(value)
            if problem is not None:
                raise InvalidMessage(f"{where}: {problem}")
            if self.objects_only:
                value = dict(expect_object(value, where))
            return True, value

    def next_record(self) -> JSONObject | None:
        """The next complete record (a JSON object), or None when none is ready."""
        ready, value = self.next_value()
        if not ready:
            return None
        if not isinstance(value, dict):
            raise InvalidMessage(f"JSONL line {self._line_no}: expected a JSON object")
        return value


def decode_jsonl(
    data: bytes, *, max_bytes: int | None = DEFAULT_MAX_SEGMENT_BYTES
) -> tuple[JSONObject, ...]:
    """Every record of a whole JSONL segment; each line must be an object."""
    decoder = JsonlDecoder(max_bytes=max_bytes)
    decoder.feed(data)
    decoder.end()
    records: list[JSONObject] = []
    while (record := decoder.next_record()) is not None:
        records.append(record)
    return tuple(records)


def decode_jsonl_values(
    data: bytes, *, max_bytes: int | None = DEFAULT_MAX_SEGMENT_BYTES
) -> tuple[Any, ...]:
    """Lenient variant: any JSON value per line (pytrickle's array lines), CHN-032."""
    decoder = JsonlDecoder(max_bytes=max_bytes, objects_only=False)
    decoder.feed(data)
    decoder.end()
    values: list[Any] = []
    while True:
        ready, value = decoder.next_value()
        if not ready:
            return tuple(values)
        values.append(value)
