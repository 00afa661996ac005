"""JSON text in and out, and what survives the trip: strict parsing, one encoding.

Every wire module decodes through :func:`parse_json` and encodes through
:func:`dump_json`, so malformed JSON (bad UTF-8, syntax, NaN) always surfaces as
:class:`~trio_trickle.InvalidMessage` and every body is written the same compact,
deterministic way. The checks for which Python values make that round trip
intact (:func:`is_plain_json`, :func:`is_utf8_json`) and the base64-of-JSON of
the ``Livepeer`` headers live here too, so each rule has one definition. Standard
library only; no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re

from .._errors import InvalidMessage

__all__: list[str] = []  # internal helpers, nothing public

_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(data: bytes | str, what: str) -> object:
    """Decode JSON text, mapping every failure (bad UTF-8, syntax, NaN) to InvalidMessage."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise InvalidMessage(f"{what}: not valid JSON ({exc})") from None


def _reject_constant(name: str) -> object:
    raise ValueError(f"non-standard JSON constant {name}")


def _finite_float(text: str) -> float:
    """A JSON number as a float; one past float's range (``1e400``) is refused, as Go's
    decoder refuses it, rather than read as an infinity no JSON encoder can write back."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


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
