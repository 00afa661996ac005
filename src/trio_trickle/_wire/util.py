"""Shared helpers for the wire layer: strict field access and attrs validators.

Every ``from_wire`` in the package reads its input through these functions so
that malformed input of any shape (wrong type, missing key, bad base64, broken
JSON) surfaces as :class:`~trio_trickle.InvalidMessage` and nothing else. The
validators that more than one wire module needs live here too, so each rule
(what a plain JSON value is, what an http URL is) has exactly one definition.
No I/O here, and nothing beyond the standard library and attrs.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs

from .._errors import InvalidMessage

__all__: list[str] = []  # internal helpers, nothing public

T = TypeVar("T")
JSONObject = dict[str, Any]
Validator = Callable[[object, "attrs.Attribute[Any]", Any], None]

#: Go's int64 bounds, the range of every integer go-livepeer decodes.
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

_MISSING: Any = object()
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(data: bytes | str, what: str) -> object:
    """Decode JSON text, mapping every failure (bad UTF-8, syntax, NaN) to InvalidMessage."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        return json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise InvalidMessage(f"{what}: not valid JSON ({exc})") from None


def _reject_constant(name: str) -> object:
    raise ValueError(f"non-standard JSON constant {name}")


def dump_json(obj: object) -> bytes:
    """Compact, deterministic JSON bytes (no NaN/Infinity, UTF-8)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def is_plain_json(value: object) -> bool:
    """True if ``value`` is built only from None/bool/int/finite float/str/list/str-keyed dict.

    Stricter than "json.dumps accepts it": json.dumps turns int keys into strings
    and tuples into lists, and either would break ``from_wire(to_wire(x)) == x``.
    Iterative, so deep input cannot exhaust the stack; a container that contains
    itself is refused, a container shared by two parents is fine.
    """
    done = object()  # marker: leave the container pushed just below it
    stack: list[object] = [value]
    on_path: set[int] = set()
    while stack:
        item = stack.pop()
        if item is done:
            on_path.discard(id(stack.pop()))
            continue
        if item is None or isinstance(item, bool | int | str):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
            continue
        if not isinstance(item, list | dict):
            return False
        if id(item) in on_path:
            return False
        if isinstance(item, dict) and not all(isinstance(k, str) for k in item):
            return False
        on_path.add(id(item))
        stack.extend((item, done))
        stack.extend(item.values() if isinstance(item, dict) else item)
    return True


def is_http_url(value: object) -> bool:
    """True for an absolute ``http``/``https`` URL with a host, as Go's checks demand."""
    if not isinstance(value, str) or not value or value != value.strip():
        return False
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host)


def is_utf8_json(value: object) -> bool:
    """True if every string in a JSON value, member names included, can be encoded as UTF-8.

    ``json.loads`` turns a lone surrogate escape (``"\\ud800"``) into a Python
    string that UTF-8 cannot carry; such text, accepted, fails later wherever it
    is written back out (a status body, an event). Iterative, like
    :func:`is_plain_json`; values that are not JSON are skipped, not judged.
    """
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not _encodes(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _encodes(value: str) -> bool:
    # Only surrogates (U+D800..U+DFFF) fail; checking the cheap case first keeps
    # the common all-ASCII string from being encoded at all.
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def without_surrogates(value: str) -> str:
    """``value`` with each character UTF-8 cannot carry (a lone surrogate) replaced by U+FFFD."""
    return value if _encodes(value) else _SURROGATE.sub("\ufffd", value)


#: Printable ASCII without space: what a channel URL may hold (RFC 3986 characters).
_URL_CHARS = re.compile(r"[\x21-\x7e]+")


def channel_url_problem(value: object, max_length: int, *, need_path: bool = True) -> str | None:
    """Why ``value`` is not a trickle channel URL, or None when it is one.

    A channel URL is what a trickle client can append ``/<seq>`` to: ``http`` or
    ``https``, a host (and a valid port when one is given), a path naming the
    channel (unless ``need_path`` is false), no query or fragment, printable ASCII
    only (no whitespace or control characters, so nothing can be smuggled into a
    request line), at most ``max_length`` characters.
    """
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > max_length:
        return f"longer than {max_length} characters"
    if not _URL_CHARS.fullmatch(value):
        return "must be printable ASCII without whitespace or control characters"
    try:
        parts = urlsplit(value)
        host, _port = parts.hostname, parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an absolute http(s) URL with a host"
    if need_path and not parts.path.strip("/"):
        return "must have a path naming the channel"
    if parts.query or parts.fragment or "?" in value or "#" in value:
        return "must not have a query or fragment"
    return None


# -- field access ----------------------------------------------------------------


def expect_object(value: object, what: str) -> Mapping[str, Any]:
    """Return ``value`` if it is a JSON object (dict with str keys), else raise."""
    if not isinstance(value, dict):
        raise InvalidMessage(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _field(obj: Mapping[str, Any], key: str, what: str, default: Any) -> Any:
    """``obj[key]``, or ``_MISSING`` where the caller's default applies.

    A JSON null counts as absent when there is a default; a missing required
    field raises.
    """
    value = obj.get(key, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise InvalidMessage(f"{what}: missing required field {key!r}")
        return _MISSING
    return value


def get_str(obj: Mapping[str, Any], key: str, what: str, *, default: Any = _MISSING) -> Any:
    """Read a string field; ``default`` (may be None) makes it optional, and a JSON null
    then counts as absent."""
    value = _field(obj, key, what, default)
    if value is _MISSING:
        return default
    if not isinstance(value, str):
        raise InvalidMessage(f"{what}: field {key!r} must be a string")
    return value


def get_opt_str(obj: Mapping[str, Any], key: str, what: str) -> str | None:
    """An optional string field where ``""`` means absent, as Go's ``omitempty`` and
    ai-runner's ``""`` for "no channel" both spell it."""
    value: str = get_str(obj, key, what, default="")
    return value or None


def get_int(obj: Mapping[str, Any], key: str, what: str, *, default: Any = _MISSING) -> Any:
    """Read an integer field (bools are rejected: JSON true is not 1)."""
    value = _field(obj, key, what, default)
    if value is _MISSING:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessage(f"{what}: field {key!r} must be an integer")
    return value


def get_number(obj: Mapping[str, Any], key: str, what: str, *, default: Any = _MISSING) -> Any:
    """Read a finite JSON number as float."""
    value = _field(obj, key, what, default)
    if value is _MISSING:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidMessage(f"{what}: field {key!r} must be a number")
    if not math.isfinite(value):
        raise InvalidMessage(f"{what}: field {key!r} must be finite")
    return float(value)


def get_bool(obj: Mapping[str, Any], key: str, what: str, *, default: Any = _MISSING) -> Any:
    value = _field(obj, key, what, default)
    if value is _MISSING:
        return default
    if not isinstance(value, bool):
        raise InvalidMessage(f"{what}: field {key!r} must be a boolean")
    return value


def get_object(obj: Mapping[str, Any], key: str, what: str, *, default: Any = _MISSING) -> Any:
    """Read a nested JSON object (returned as a plain dict copy)."""
    value = _field(obj, key, what, default)
    if value is _MISSING:
        return default
    return dict(expect_object(value, f"{what}.{key}"))


def get_list(
    obj: Mapping[str, Any],
    key: str,
    what: str,
    item: Callable[[object, str], T],
    *,
    default: Any = _MISSING,
) -> Any:
    """Read a JSON array, converting each element with ``item(value, where)``."""
    value = _field(obj, key, what, default)
    if value is _MISSING:
        return default
    if not isinstance(value, list):
        raise InvalidMessage(f"{what}: field {key!r} must be an array")
    return tuple(item(v, f"{what}.{key}[{i}]") for i, v in enumerate(value))


def as_str(value: object, where: str) -> str:
    """Element converter for :func:`get_list`: a string."""
    if not isinstance(value, str):
        raise InvalidMessage(f"{where}: must be a string")
    return value


def header_map(headers: object, what: str) -> dict[str, str]:
    """Lower-case the names of an HTTP header mapping; values must be strings."""
    if not isinstance(headers, Mapping):
        raise InvalidMessage(f"{what}: headers must be a mapping")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidMessage(f"{what}: header names and values must be strings")
        out[name.lower()] = value
    return out


def b64_json_encode(obj: object) -> str:
    """Standard base64 of compact JSON, as the ``Livepeer`` headers carry it."""
    return base64.b64encode(dump_json(obj)).decode("ascii")


def b64_json_decode(text: object, what: str) -> object:
    """Inverse of :func:`b64_json_encode`; any malformation (a non-string included)
    is InvalidMessage."""
    if not isinstance(text, str):
        raise InvalidMessage(f"{what}: must be a string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidMessage(f"{what}: not valid base64") from None
    return parse_json(raw, what)


# -- attrs validators ---------------------------------------------------------
# They raise InvalidMessage (also a ValueError) so that a bad value can never
# become a wire object, whether it came from the network or from Python code.


def fail(attribute: attrs.Attribute[Any], problem: str) -> InvalidMessage:
    """The error a validator raises: the field name, then what is wrong with it."""
    return InvalidMessage(f"{attribute.name}: {problem}")


def non_empty(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    """Validator: a non-empty string."""
    if not isinstance(value, str) or not value:
        raise fail(attribute, "must be a non-empty string")


def trimmed(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: a non-empty string without surrounding whitespace."""
    if not isinstance(value, str) or not value or value != value.strip():
        raise fail(attribute, "must be a non-empty trimmed string")


def max_length(limit: int) -> Callable[[object, attrs.Attribute[Any], str], None]:
    """Validator factory: a string of at most ``limit`` characters."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
        if value is not None and len(value) > limit:
            raise fail(attribute, f"longer than {limit} characters")

    return check


def text(limit: int, *, empty: bool = False) -> Validator:
    """Validator factory: a string of at most ``limit`` characters, non-empty unless
    ``empty`` allows it."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, str) or (not empty and not value):
            raise fail(attribute, "must be a string" if empty else "must be a non-empty string")
        if len(value) > limit:
            raise fail(attribute, f"longer than {limit} characters")

    return check


def utf8_text(max_bytes: int) -> Validator:
    """Validator factory: a string of at most ``max_bytes`` UTF-8 bytes that held no
    undecodable bytes (U+FFFD marks them) and has no lone surrogates."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, str):
            raise fail(attribute, "must be a string")
        if "\ufffd" in value:
            raise fail(attribute, "must not contain U+FFFD")
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise fail(attribute, "must be valid UTF-8") from None
        if size > max_bytes:
            raise fail(attribute, f"must be at most {max_bytes} bytes")

    return check


def one_of(*choices: str) -> Validator:
    """Validator factory: exactly one of ``choices``."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in choices:
            raise fail(attribute, f"must be one of {choices}, got {value!r}")

    return check


def instance_of(*types: type) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """Validator factory like attrs' ``instance_of`` but raising InvalidMessage and
    refusing ``bool`` where ``int``/``float`` is asked for."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) and bool not in types:
            raise fail(attribute, f"must be {'/'.join(t.__name__ for t in types)}, got bool")
        if not isinstance(value, types):
            raise fail(
                attribute,
                f"must be {'/'.join(t.__name__ for t in types)}, got {type(value).__name__}",
            )

    return check


def optional(
    inner: Callable[[object, attrs.Attribute[Any], Any], None],
) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    """Validator factory: None or whatever ``inner`` accepts."""

    def check(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            inner(inst, attribute, value)

    return check


def in_range(
    low: float | None = None, high: float | None = None
) -> Callable[[object, attrs.Attribute[Any], float], None]:
    """Validator factory: a finite number within [low, high]."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise fail(attribute, "must be finite")
        if low is not None and value < low:
            raise fail(attribute, f"must be >= {low}")
        if high is not None and value > high:
            raise fail(attribute, f"must be <= {high}")

    return check


def int_range(low: int, high: int | None = None) -> Validator:
    """Validator factory: an ``int`` (not bool) within [low, high] (no upper bound for None)."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(attribute, "must be an integer")
        if value < low or (high is not None and value > high):
            raise fail(attribute, f"must be within [{low}, {'inf' if high is None else high}]")

    return check


def tuple_of(kind: type, low: int = 0, high: int | None = None) -> Validator:
    """Validator factory: a tuple of ``kind`` holding ``low`` to ``high`` entries."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, tuple) or not all(isinstance(v, kind) for v in value):
            raise fail(attribute, f"must be a tuple of {kind.__name__}")
        if len(value) < low or (high is not None and len(value) > high):
            bound = f"at least {low}" if high is None else f"between {low} and {high}"
            raise fail(attribute, f"must hold {bound} entries")

    return check


def json_value(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: a plain JSON value (see :func:`is_plain_json`), so that it survives
    ``from_wire(to_wire(x)) == x``."""
    if not is_plain_json(value):
        raise fail(attribute, "must be plain JSON (finite numbers, lists, string keys)")


def json_object(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: a dict of plain JSON values."""
    if not isinstance(value, dict):
        raise fail(attribute, "must be a JSON object")
    json_value(inst, attribute, value)


def json_object_without(reserved: Iterable[str]) -> Validator:
    """Validator factory: a JSON object none of whose keys is in ``reserved``.

    For the ``extra``/metadata dicts whose keys share one wire object with named
    fields: a clash would make ``to_wire`` ambiguous.
    """
    names = frozenset(reserved)

    def check(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        json_object(inst, attribute, value)
        assert isinstance(value, dict)
        clash = names.intersection(value)
        if clash:
            raise fail(attribute, f"reserved keys {sorted(clash)} not allowed")

    return check


def http_url(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: an absolute http(s) URL (see :func:`is_http_url`)."""
    if not is_http_url(value):
        raise fail(attribute, f"must be an absolute http(s) URL, got {value!r}")


def channel_url(max_length: int, *, need_path: bool = True) -> Validator:
    """Validator factory: a trickle channel URL (see :func:`channel_url_problem`)."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        problem = channel_url_problem(value, max_length, need_path=need_path)
        if problem is not None:
            shown = value[:100] if isinstance(value, str) else type(value).__name__
            raise fail(attribute, f"{problem}, got {shown!r}")

    return check


def utf8_json_object(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: a JSON object (:func:`json_object`) whose text is all valid Unicode."""
    json_object(inst, attribute, value)
    if not is_utf8_json(value):
        raise fail(attribute, "must not hold text that is not valid Unicode (a lone surrogate)")


def eth_address(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: ``0x`` and 40 hex digits (EIP-55 case is not checked)."""
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise fail(attribute, "must be 0x followed by 40 hex digits")
