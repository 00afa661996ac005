"""Strict field access for ``from_wire``: read a decoded JSON object or raise InvalidMessage.

Every decoder in the wire layer reads its input through these functions, so a
value of the wrong type, a missing required key or a JSON ``null`` where a
default applies is handled one way everywhere and surfaces as
:class:`~trio_trickle.InvalidMessage` and nothing else. Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .._errors import InvalidMessage

__all__: list[str] = []  # internal helpers, nothing public

T = TypeVar("T")

_MISSING: Any = object()


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
