"""How go-livepeer's Go encoders spell durations, timestamps and arbitrary numbers.

Go writes a ``time.Duration`` as ``1m30.5s``, a ``time.Time`` as RFC 3339 with
up to nanoseconds, and a ``json.Number`` as either a JSON number or a numeric
string. The live-runner messages carry all three; reading and writing them in
one place keeps every message that uses them byte-compatible with Go. Seconds
are floats, instants are aware UTC datetimes, numbers are Decimals. Go's int64
bounds, which limit every integer go-livepeer decodes, are defined here too.
Pure functions, no I/O; readers raise only InvalidMessage.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import attrs

from .._errors import InvalidMessage
from .validate import fail

__all__ = [
    "format_go_duration",
    "parse_go_duration",
]

#: Go's int64 bounds, the range of every integer go-livepeer decodes.
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

# -- durations ----------------------------------------------------------------

_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def _duration_ns(text: str) -> int:
    sign, body = 1, text
    if body[:1] in ("-", "+"):
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    if body == "0":
        return 0
    if not body:
        raise InvalidMessage(f"invalid Go duration {text!r}")
    total, pos = Fraction(0), 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            raise InvalidMessage(f"invalid Go duration {text!r}")
        total += Fraction(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if total > INT64_MAX:
        raise InvalidMessage(f"Go duration {text!r} overflows")
    return sign * int(total)


def parse_go_duration(text: object) -> float:
    """Seconds in a Go ``time.Duration`` string such as ``5s`` or ``1m30.5s``."""
    if not isinstance(text, str):
        raise InvalidMessage("Go duration: must be a string")
    return _duration_ns(text) / 1e9


def _fraction_digits(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10**digits)
    tail = f"{frac:0{digits}d}".rstrip("0")
    return f"{whole}.{tail}" if tail else str(whole)


def format_go_duration(seconds: float) -> str:
    """Write seconds the way Go's ``Duration.String`` does (``5s``, ``1m0s``, ``500ms``)."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction_digits(ns, 3)}\u00b5s"
    if ns < 10**9:
        return f"{sign}{_fraction_digits(ns, 6)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    secs = _fraction_digits(rest, 9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return sign + secs


# -- RFC 3339 timestamps --------------------------------------------------------


def parse_rfc3339(text: object, what: str) -> datetime:
    """An aware UTC datetime from Go's ``time.Time`` JSON; digits past microseconds are cut."""
    if not isinstance(text, str):
        raise InvalidMessage(f"{what}: timestamp must be a string")
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise InvalidMessage(f"{what}: timestamp must be RFC 3339")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micros = int((match.group(7) or "0").ljust(6, "0")[:6])
    zone = match.group(8)
    offset = timedelta(0)
    if zone not in ("Z", "z"):
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        offset = timedelta(hours=hours, minutes=minutes) * (-1 if zone[0] == "-" else 1)
    try:
        local = datetime(year, month, day, hour, minute, second, micros, timezone(offset))
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidMessage(f"{what}: timestamp out of range") from None


def format_rfc3339(moment: datetime) -> str:
    """``moment`` in UTC as ``...Z`` with no trailing zero digits, as Go writes it."""
    utc = moment.astimezone(UTC)
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def to_utc(value: object) -> object:
    """attrs converter: an aware datetime moved to UTC; anything else is left for the
    validator to refuse."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        try:
            return value.astimezone(UTC)
        except OverflowError:
            return value
    return value


def aware_utc(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: an aware datetime in UTC."""
    if not isinstance(value, datetime) or value.utcoffset() != timedelta(0):
        raise fail(attribute, "must be a timezone-aware UTC datetime")


# -- json.Number ----------------------------------------------------------------


def decimal_from_wire(value: object, what: str) -> Decimal:
    """A JSON number, or a string holding a JSON number literal (Go ``json.Number``)."""
    if isinstance(value, bool):
        raise InvalidMessage(f"{what}: price must be a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str) and _JSON_NUMBER.fullmatch(value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the regex admits only literals
            raise InvalidMessage(f"{what}: price is not a number") from None
    raise InvalidMessage(f"{what}: price must be a JSON number or numeric string")


def decimal_to_wire(value: Decimal) -> int | float | str:
    """The shortest faithful JSON spelling: an int, a float that reads back exactly, or
    the numeric string Go's ``json.Number`` also accepts."""
    if value == value.to_integral_value() and abs(value) < 2**53:
        return int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) == value:
        return as_float
    return str(value)
