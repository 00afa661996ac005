"""attrs validators for wire types, and the URL checks behind them.

They raise :class:`~trio_trickle.InvalidMessage` (also a ValueError) so that a
bad value can never become a wire object, whether it came from the network or
from Python code. The validators that more than one wire module needs live
here, so each rule (what a channel URL is, what an http URL is, what bounds an
integer) has exactly one definition; the predicates :func:`is_http_url` and
:func:`channel_url_problem` are for callers that judge a value without a
validator. Nothing beyond the standard library and attrs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import attrs

from .._errors import InvalidMessage
from .json_codec import is_plain_json, is_utf8_json

__all__: list[str] = []  # internal helpers, nothing public

Validator = Callable[[object, "attrs.Attribute[Any]", Any], None]

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")

# -- URL checks ---------------------------------------------------------------


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


# -- attrs validators ---------------------------------------------------------


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


def utf8_json(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: text (or a JSON value) that UTF-8 can carry (see :func:`is_utf8_json`).

    A lone surrogate escape would fail every later write of it (a status body, an
    event), so it is refused where it comes in (RUN-122).
    """
    if not is_utf8_json(value):
        raise fail(attribute, "must not hold text that is not valid Unicode (a lone surrogate)")


def utf8_json_object(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: a JSON object (:func:`json_object`) whose text is all valid Unicode."""
    json_object(inst, attribute, value)
    utf8_json(inst, attribute, value)


def eth_address(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: ``0x`` and 40 hex digits (EIP-55 case is not checked)."""
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise fail(attribute, "must be 0x followed by 40 hex digits")
