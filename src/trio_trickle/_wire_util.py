"""Shared helpers for the wire layer: strict field access and attrs validators.

Every ``from_wire`` in the package reads its input through these functions so
that malformed input of any shape (wrong type, missing key, bad base64, broken
JSON) surfaces as :class:`~trio_trickle.InvalidMessage` and nothing else. No I/O
here, and nothing beyond the standard library and attrs.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from ._errors import InvalidMessage

__all__: list[str] = []  # internal helpers, nothing public

T = TypeVar("T")
JSONObject = dict[str, Any]

_MISSING: Any = object()


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


def expect_object(value: object, what: str) -> Mapping[str, Any]:
    """Return ``value`` if it is a JSON object (dict with str keys), else raise."""
    if not isinstance(value, dict):
        raise InvalidMessage(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def get_str(obj: Mapping[str, Any], key: str, what: str, *, default: Any = _MISSING) -> Any:
    """Read a string field; ``default`` (may be None) makes it optional, and a JSON null
    then counts as absent."""
    value = obj.get(key, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise InvalidMessage(f"{what}: missing required field {key!r}")
        return default
    if not isinstance(value, str):
        raise InvalidMessage(f"{what}: field {key!r} must be a string")
    return value


def get_int(obj: Mapping[str, Any], key: str, what: str, *, default: Any = _MISSING) -> Any:
    """Read an integer field (bools are rejected: JSON true is not 1)."""
    value = obj.get(key, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise InvalidMessage(f"{what}: missing required field {key!r}")
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessage(f"{what}: field {key!r} must be an integer")
    return value


def get_number(obj: Mapping[str, Any], key: str, what: str, *, default: Any = _MISSING) -> Any:
    """Read a finite JSON number as float."""
    value = obj.get(key, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise InvalidMessage(f"{what}: missing required field {key!r}")
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidMessage(f"{what}: field {key!r} must be a number")
    if not math.isfinite(value):
        raise InvalidMessage(f"{what}: field {key!r} must be finite")
    return float(value)


def get_bool(obj: Mapping[str, Any], key: str, what: str, *, default: Any = _MISSING) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise InvalidMessage(f"{what}: missing required field {key!r}")
        return default
    if not isinstance(value, bool):
        raise InvalidMessage(f"{what}: field {key!r} must be a boolean")
    return value


def get_object(obj: Mapping[str, Any], key: str, what: str, *, default: Any = _MISSING) -> Any:
    """Read a nested JSON object (returned as a plain dict copy)."""
    value = obj.get(key, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise InvalidMessage(f"{what}: missing required field {key!r}")
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
    value = obj.get(key, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise InvalidMessage(f"{what}: missing required field {key!r}")
        return default
    if not isinstance(value, list):
        raise InvalidMessage(f"{what}: field {key!r} must be an array")
    return tuple(item(v, f"{what}.{key}[{i}]") for i, v in enumerate(value))


def as_str(value: object, where: str) -> str:
    """Element converter for :func:`get_list`: a string."""
    if not isinstance(value, str):
        raise InvalidMessage(f"{where}: must be a string")
    return value


def b64_json_encode(obj: object) -> str:
    """Standard base64 of compact JSON, as the ``Livepeer`` header carries it."""
    return base64.b64encode(dump_json(obj)).decode("ascii")


def b64_json_decode(text: str, what: str) -> object:
    """Inverse of :func:`b64_json_encode`; any malformation is InvalidMessage."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidMessage(f"{what}: not valid base64") from None
    return parse_json(raw, what)


# -- attrs validators ---------------------------------------------------------
# They raise InvalidMessage (also a ValueError) so that a bad value can never
# become a wire object, whether it came from the network or from Python code.


def _fail(attribute: attrs.Attribute[Any], problem: str) -> InvalidMessage:
    return InvalidMessage(f"{attribute.name}: {problem}")


def non_empty(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    """Validator: a non-empty string."""
    if not isinstance(value, str) or not value:
        raise _fail(attribute, "must be a non-empty string")


def max_length(limit: int) -> Callable[[object, attrs.Attribute[Any], str], None]:
    """Validator factory: a string of at most ``limit`` characters."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
        if value is not None and len(value) > limit:
            raise _fail(attribute, f"longer than {limit} characters")

    return check


def instance_of(*types: type) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """Validator factory like attrs' ``instance_of`` but raising InvalidMessage and
    refusing ``bool`` where ``int``/``float`` is asked for."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) and bool not in types:
            raise _fail(attribute, f"must be {'/'.join(t.__name__ for t in types)}, got bool")
        if not isinstance(value, types):
            raise _fail(
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
            raise _fail(attribute, "must be finite")
        if low is not None and value < low:
            raise _fail(attribute, f"must be >= {low}")
        if high is not None and value > high:
            raise _fail(attribute, f"must be <= {high}")

    return check


def json_value(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: ``value`` survives a strict JSON round trip (no NaN, str keys)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise _fail(attribute, "must be JSON-serialisable (finite numbers, string keys)") from None
