"""Wire messages of the live-runner control plane (spec/live-runner.md, prefix LR).

Heartbeat registration, discovery, session reservation with its 402 payment
challenge, the runner callbacks (channels, proxy) and the orchestrator-to-runner
(O2R) trickle messages, spelled as go-livepeer master writes them.

Pure encode/decode, no I/O; ``from_wire`` raises only the ProtocolError family.
Durations travel as Go duration strings (``5s``) and are seconds here;
timestamps travel as RFC 3339 and are aware UTC datetimes here.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import attrs

from ._errors import InvalidMessage, ProtocolError
from ._wire_byoc import (
    eth_address,
    header_map,
    http_url,
    int_range,
    is_http_url,
    json_object,
    str_tuple,
)
from ._wire_util import (
    as_str,
    expect_object,
    get_bool,
    get_int,
    get_list,
    get_number,
    get_object,
    get_str,
    instance_of,
    non_empty,
    optional,
)

__all__ = [
    "MAX_CHANNELS_PER_REQUEST",
    "AdvertisedPrice",
    "ChannelSpec",
    "ChannelsDeleteRequest",
    "ChannelsDeleteResponse",
    "ChannelsRequest",
    "ChannelsResponse",
    "DiscoveryEntry",
    "DiscoveryResponse",
    "DiscoveryRunner",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "JsonErrorBody",
    "O2RKeepalive",
    "O2RSessionEvent",
    "PaymentChallenge",
    "PaymentHeaders",
    "ProxiedSessionHeaders",
    "ProxyRequest",
    "ProxyResponse",
    "RefreshPaymentRequest",
    "RunnerChannel",
    "RunnerGpu",
    "RunnerPriceInfo",
    "SessionReservation",
    "format_go_duration",
    "normalize_channel_name",
    "parse_go_duration",
    "parse_o2r_message",
    "parse_reservation_402",
]

MAX_CHANNELS_PER_REQUEST = 25
MAX_METADATA_BYTES = 1024
_INT_MAX = 2**63 - 1
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9_-]+")
_PAYER = re.compile(r"(?:0[xX])?[0-9a-fA-F]{40}")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)
_MODES = {
    "": "persistent",
    "persistent": "persistent",
    "single-shot": "single-shot",
    "single_shot": "single-shot",
}
_REG_UNITS = ("hour", "720p", "fixed")
_OFFER_UNITS = ("seconds", "720p-pixel-seconds", "fixed")


def _fail(attribute: attrs.Attribute[Any], problem: str) -> InvalidMessage:
    return InvalidMessage(f"{attribute.name}: {problem}")


def _one_of(*choices: str) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in choices:
            raise _fail(attribute, f"must be one of {choices}, got {value!r}")

    return check


def _tuple_of(kind: type, low: int = 0, high: int = _INT_MAX) -> Any:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, tuple) or not all(isinstance(v, kind) for v in value):
            raise _fail(attribute, f"must be a tuple of {kind.__name__}")
        if not low <= len(value) <= high:
            raise _fail(attribute, f"must hold between {low} and {high} entries")

    return check


def _metadata(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise _fail(attribute, "must be a string")
    if "\ufffd" in value:
        raise _fail(attribute, "must not contain U+FFFD")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise _fail(attribute, "must be valid UTF-8") from None
    if size > MAX_METADATA_BYTES:
        raise _fail(attribute, f"must be at most {MAX_METADATA_BYTES} bytes")


def _positive_seconds(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(attribute, "must be a number of seconds")
    if not 0 < value < 9.2e9:  # Go durations are int64 nanoseconds
        raise _fail(attribute, "must be positive and fit a Go duration")


def _wire_opt(value: str) -> str | None:
    """Go's ``omitempty`` writes nothing for ``""``; read both as absent."""
    return value or None


# -- Go durations and RFC 3339 timestamps -------------------------------------

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
    if total > _INT_MAX:
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


def _parse_rfc3339(text: object, what: str) -> datetime:
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


def _format_rfc3339(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _to_utc(value: object) -> object:
    if isinstance(value, datetime) and value.tzinfo is not None:
        try:
            return value.astimezone(UTC)
        except OverflowError:
            return value
    return value


def _aware_utc(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, datetime) or value.utcoffset() != timedelta(0):
        raise _fail(attribute, "must be a timezone-aware UTC datetime")


# -- prices -------------------------------------------------------------------


def _decimal_from_wire(value: object, what: str) -> Decimal:
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


def _decimal_to_wire(value: Decimal) -> int | float | str:
    if value == value.to_integral_value() and abs(value) < 2**53:
        return int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) == value:
        return as_float
    return str(value)


def _usd_price(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # Bounds keep arithmetic on hostile input cheap: 10^15 USD and 50 digits.
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise _fail(attribute, "must be a positive decimal")
    if value.adjusted() > 15 or value.adjusted() < -30 or len(value.as_tuple().digits) > 50:
        raise _fail(attribute, "is outside the supported range")


@attrs.frozen(kw_only=True)
class RunnerPriceInfo:
    """A runner's registered price: ``{"price","currency":"usd","unit"}``.

    ``from_wire`` applies master's normalisation: trimmed, lowercased, empty
    currency is ``usd``, empty unit is ``hour``; ``price`` may be a numeric string.
    """

    price: Decimal = attrs.field(validator=_usd_price)
    unit: str = attrs.field(default="hour", validator=_one_of(*_REG_UNITS))
    currency: str = attrs.field(default="usd", validator=_one_of("usd"))

    def to_wire(self) -> dict[str, Any]:
        return {"price": _decimal_to_wire(self.price), "currency": self.currency, "unit": self.unit}

    @classmethod
    def from_wire(cls, value: object) -> RunnerPriceInfo:
        what = "price_info"
        obj = expect_object(value, what)
        if "price" not in obj or obj["price"] in (None, ""):
            raise InvalidMessage(f"{what}: price is required")
        currency = get_str(obj, "currency", what, default="").strip().lower() or "usd"
        unit = get_str(obj, "unit", what, default="").strip().lower() or "hour"
        if currency != "usd":
            raise InvalidMessage(f"{what}: currency must be usd")
        if unit not in _REG_UNITS:
            raise InvalidMessage(f"{what}: unit must be hour, 720p, or fixed")
        return cls(price=_decimal_from_wire(obj["price"], what), unit=unit, currency=currency)


@attrs.frozen(kw_only=True)
class AdvertisedPrice:
    """A discovery ``price_info``: integer wei per unit, as the orchestrator advertises.

    Values are not restricted here, so a reader can skip a bad offer instead of
    failing the whole discovery answer; :meth:`is_valid_offer` applies the rule.
    """

    price: int = attrs.field(validator=int_range(0, _INT_MAX))
    currency: str = attrs.field(default="wei", validator=instance_of(str))
    unit: str = attrs.field(default="seconds", validator=instance_of(str))

    def is_valid_offer(self) -> bool:
        currency = self.currency.strip().lower()
        return self.price > 0 and currency == "wei" and self.unit.strip().lower() in _OFFER_UNITS

    def to_wire(self) -> dict[str, Any]:
        return {"price": self.price, "currency": self.currency, "unit": self.unit}

    @classmethod
    def from_wire(cls, value: object) -> AdvertisedPrice:
        what = "discovery price_info"
        obj = expect_object(value, what)
        price = _decimal_from_wire(obj.get("price"), what)
        if price != price.to_integral_value() or not 0 <= price <= _INT_MAX:
            raise InvalidMessage(f"{what}: price must be a non-negative integer wei amount")
        return cls(
            price=int(price),
            currency=get_str(obj, "currency", what, default=""),
            unit=get_str(obj, "unit", what, default=""),
        )


# -- registration -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RunnerGpu:
    """``gpu``: ``{"id","name","vram_mb"}``, each optional; an integer index reads as id."""

    id: str | None = attrs.field(default=None, validator=optional(non_empty))
    name: str | None = attrs.field(default=None, validator=optional(non_empty))
    vram_mb: int | None = attrs.field(default=None, validator=optional(int_range(1, _INT_MAX)))

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        if self.name is not None:
            out["name"] = self.name
        if self.vram_mb is not None:
            out["vram_mb"] = self.vram_mb
        return out

    @classmethod
    def from_wire(cls, value: object) -> RunnerGpu:
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(id=str(value))
        obj = expect_object(value, "gpu")
        return cls(
            id=_wire_opt(get_str(obj, "id", "gpu", default="")),
            name=_wire_opt(get_str(obj, "name", "gpu", default="")),
            vram_mb=get_int(obj, "vram_mb", "gpu", default=0) or None,
        )


def _app(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value or value != value.strip():
        raise _fail(attribute, "must be a non-empty trimmed string")


def _status(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or value != value.strip().lower():
        raise _fail(attribute, "must be lowercase and trimmed")


def _optional_gpu(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, RunnerGpu):
        raise _fail(attribute, "must be a RunnerGpu or None")


@attrs.frozen(kw_only=True)
class HeartbeatRequest:
    """Body of ``POST /runners/heartbeat``.

    ``mode`` is canonical here (``persistent`` / ``single-shot``); ``from_wire``
    maps ``""`` and ``single_shot``. ``price_info`` stays a raw object because an
    offchain orchestrator must ignore even a malformed one; onchain code calls
    :meth:`parsed_price_info`. ``capacity`` 0 means 1 to the orchestrator.
    """

    runner_url: str = attrs.field(validator=http_url)
    app: str = attrs.field(validator=_app)
    capacity: int = attrs.field(default=0, validator=int_range(0, _INT_MAX))
    runner_id: str | None = attrs.field(default=None, validator=optional(_app))
    label: str = attrs.field(default="", validator=instance_of(str))
    proxy: bool = attrs.field(default=False, validator=instance_of(bool))
    version: str = attrs.field(default="", validator=instance_of(str))
    metadata: str = attrs.field(default="", validator=_metadata)
    status: str = attrs.field(default="", validator=_status)
    mode: str = attrs.field(default="persistent", validator=_one_of("persistent", "single-shot"))
    gpu: RunnerGpu | None = attrs.field(default=None, validator=_optional_gpu)
    price_info: dict[str, Any] | None = attrs.field(default=None, validator=optional(json_object))
    session_ids: tuple[str, ...] = attrs.field(default=(), validator=str_tuple)

    def parsed_price_info(self) -> RunnerPriceInfo:
        """The onchain reading of ``price_info``; missing or malformed is 400."""
        if self.price_info is None:
            raise InvalidMessage("price_info.price is required")
        return RunnerPriceInfo.from_wire(self.price_info)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.runner_id is not None:
            out["runner_id"] = self.runner_id
        if self.label:
            out["label"] = self.label
        if self.proxy:
            out["proxy"] = True
        out["runner_url"] = self.runner_url
        for key in ("version", "metadata", "status"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        out["mode"] = self.mode
        if self.gpu is not None:
            out["gpu"] = self.gpu.to_wire()
        out["app"] = self.app
        out["capacity"] = self.capacity
        if self.price_info is not None:
            out["price_info"] = self.price_info
        if self.session_ids:
            out["session_ids"] = list(self.session_ids)
        return out

    @classmethod
    def from_wire(cls, value: object) -> HeartbeatRequest:
        what = "heartbeat"
        obj = expect_object(value, what)
        mode = _MODES.get(get_str(obj, "mode", what, default=""))
        if mode is None:
            raise InvalidMessage(f"{what}: mode must be persistent or single-shot")
        gpu = obj.get("gpu")
        return cls(
            runner_url=get_str(obj, "runner_url", what),
            app=get_str(obj, "app", what),
            capacity=get_int(obj, "capacity", what, default=0),
            runner_id=_wire_opt(get_str(obj, "runner_id", what, default="").strip()),
            label=get_str(obj, "label", what, default=""),
            proxy=get_bool(obj, "proxy", what, default=False),
            version=get_str(obj, "version", what, default=""),
            metadata=get_str(obj, "metadata", what, default=""),
            status=get_str(obj, "status", what, default=""),
            mode=mode,
            gpu=None if gpu is None else RunnerGpu.from_wire(gpu),
            price_info=get_object(obj, "price_info", what, default=None),
            session_ids=get_list(obj, "session_ids", what, as_str, default=()),
        )


@attrs.frozen(kw_only=True)
class RunnerChannel:
    """A trickle channel the orchestrator made for a runner (O2R or a session channel).

    Runners use ``internal_url`` when present; clients get ``url``.
    """

    name: str = attrs.field(validator=non_empty)
    channel_name: str = attrs.field(validator=non_empty)
    url: str = attrs.field(validator=non_empty)
    mime_type: str = attrs.field(validator=non_empty)
    internal_url: str | None = attrs.field(default=None, validator=optional(non_empty))

    @property
    def runner_url(self) -> str:
        return self.internal_url or self.url

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "channel_name": self.channel_name}
        out["url"] = self.url
        if self.internal_url is not None:
            out["internal_url"] = self.internal_url
        out["mime_type"] = self.mime_type
        return out

    @classmethod
    def from_wire(cls, value: object) -> RunnerChannel:
        what = "trickle channel"
        obj = expect_object(value, what)
        return cls(
            name=get_str(obj, "name", what),
            channel_name=get_str(obj, "channel_name", what),
            url=get_str(obj, "url", what),
            mime_type=get_str(obj, "mime_type", what),
            internal_url=_wire_opt(get_str(obj, "internal_url", what, default="")),
        )


@attrs.frozen(kw_only=True)
class HeartbeatResponse:
    """The orchestrator's 200 to a heartbeat.

    ``heartbeat_secret`` and ``o2r`` come only with the first registration.
    ``session_ids`` is the orchestrator's authoritative list; a runner drops
    every local session missing from it.
    """

    runner_id: str = attrs.field(validator=non_empty)
    heartbeat_interval: float = attrs.field(default=5.0, validator=_positive_seconds)
    heartbeat_ttl: float = attrs.field(default=20.0, validator=_positive_seconds)
    orchestrator: str = attrs.field(default="", validator=instance_of(str))
    heartbeat_secret: str | None = attrs.field(default=None, validator=optional(non_empty))
    o2r: RunnerChannel | None = attrs.field(
        default=None, validator=optional(instance_of(RunnerChannel))
    )
    session_ids: tuple[str, ...] = attrs.field(default=(), validator=str_tuple)

    @property
    def is_new_registration(self) -> bool:
        return self.heartbeat_secret is not None

    def released_sessions(self, local: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        """The local sessions this answer no longer lists: they are released."""
        held = set(self.session_ids)
        return tuple(s for s in local if s not in held)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"runner_id": self.runner_id}
        if self.orchestrator:
            out["orchestrator"] = self.orchestrator
        out["heartbeat_interval"] = format_go_duration(self.heartbeat_interval)
        out["heartbeat_ttl"] = format_go_duration(self.heartbeat_ttl)
        if self.heartbeat_secret is not None:
            out["heartbeat_secret"] = self.heartbeat_secret
        if self.o2r is not None:
            out["o2r"] = self.o2r.to_wire()
        out["session_ids"] = list(self.session_ids)
        return out

    @classmethod
    def from_wire(cls, value: object) -> HeartbeatResponse:
        what = "heartbeat response"
        obj = expect_object(value, what)
        o2r = get_object(obj, "o2r", what, default=None)
        return cls(
            runner_id=get_str(obj, "runner_id", what),
            heartbeat_interval=parse_go_duration(get_str(obj, "heartbeat_interval", what)),
            heartbeat_ttl=parse_go_duration(get_str(obj, "heartbeat_ttl", what)),
            orchestrator=get_str(obj, "orchestrator", what, default=""),
            heartbeat_secret=_wire_opt(get_str(obj, "heartbeat_secret", what, default="")),
            o2r=None if o2r is None else RunnerChannel.from_wire(o2r),
            session_ids=get_list(obj, "session_ids", what, as_str, default=()),
        )


# -- discovery ----------------------------------------------------------------


def _optional_offer(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, AdvertisedPrice):
        raise _fail(attribute, "must be an AdvertisedPrice or None")


@attrs.frozen(kw_only=True)
class DiscoveryRunner:
    """One runner in a discovery answer. ``url`` is an orchestrator URL, never the
    runner's own. ``capacity_available`` may be negative after a capacity cut."""

    url: str = attrs.field(validator=non_empty)
    app: str = attrs.field(validator=_app)
    capacity: int = attrs.field(default=0, validator=int_range(0, _INT_MAX))
    capacity_used: int = attrs.field(default=0, validator=int_range(0, _INT_MAX))
    capacity_available: int = attrs.field(default=0, validator=int_range(-_INT_MAX, _INT_MAX))
    gpu: RunnerGpu | None = attrs.field(default=None, validator=_optional_gpu)
    version: str | None = attrs.field(default=None, validator=optional(non_empty))
    metadata: str | None = attrs.field(default=None, validator=optional(_metadata))
    mode: str | None = attrs.field(default=None, validator=optional(non_empty))
    price_info: AdvertisedPrice | None = attrs.field(default=None, validator=_optional_offer)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url}
        if self.gpu is not None:
            out["gpu"] = self.gpu.to_wire()
        out["app"] = self.app
        for key in ("version", "metadata", "mode"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["capacity"] = self.capacity
        out["capacity_used"] = self.capacity_used
        out["capacity_available"] = self.capacity_available
        if self.price_info is not None:
            out["price_info"] = self.price_info.to_wire()
        return out

    @classmethod
    def from_wire(cls, value: object) -> DiscoveryRunner:
        what = "discovery runner"
        obj = expect_object(value, what)
        gpu = obj.get("gpu")
        price = get_object(obj, "price_info", what, default=None)
        return cls(
            url=get_str(obj, "url", what),
            app=get_str(obj, "app", what),
            capacity=get_int(obj, "capacity", what, default=0),
            capacity_used=get_int(obj, "capacity_used", what, default=0),
            capacity_available=get_int(obj, "capacity_available", what, default=0),
            gpu=None if gpu is None else RunnerGpu.from_wire(gpu),
            version=_wire_opt(get_str(obj, "version", what, default="")),
            metadata=_wire_opt(get_str(obj, "metadata", what, default="")),
            mode=_wire_opt(get_str(obj, "mode", what, default="")),
            price_info=None if price is None else AdvertisedPrice.from_wire(price),
        )


@attrs.frozen(kw_only=True)
class DiscoveryEntry:
    """One orchestrator address with its runners.

    ``score`` and ``capabilities`` appear only in a remote signer's
    ``/discover-orchestrators`` answer; the orchestrator's ``/discovery`` has neither.
    """

    address: str = attrs.field(validator=non_empty)
    runners: tuple[DiscoveryRunner, ...] = attrs.field(default=(), validator=_tuple_of(object))
    score: float | None = attrs.field(default=None, validator=optional(instance_of(int, float)))
    capabilities: tuple[str, ...] | None = attrs.field(default=None, validator=optional(str_tuple))

    def __attrs_post_init__(self) -> None:
        if not all(isinstance(r, DiscoveryRunner) for r in self.runners):
            raise InvalidMessage("runners: must be a tuple of DiscoveryRunner")

    def priced_runners(self) -> tuple[DiscoveryRunner, ...]:
        """Runners a paying client can use: a positive wei price with a known unit."""
        return tuple(r for r in self.runners if r.price_info and r.price_info.is_valid_offer())

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": self.address}
        if self.score is not None:
            out["score"] = self.score
        if self.capabilities is not None:
            out["capabilities"] = list(self.capabilities)
        if self.runners:
            out["runners"] = [r.to_wire() for r in self.runners]
        return out

    @classmethod
    def from_wire(cls, value: object, *, skip_invalid_runners: bool = False) -> DiscoveryEntry:
        """With ``skip_invalid_runners``, a malformed runner is dropped instead of
        failing the whole entry, as a discovery reader must do."""
        what = "discovery entry"
        obj = expect_object(value, what)
        raw = get_list(obj, "runners", what, lambda v, _w: v, default=())
        runners: list[DiscoveryRunner] = []
        for item in raw:
            try:
                runners.append(DiscoveryRunner.from_wire(item))
            except ProtocolError:
                if not skip_invalid_runners:
                    raise
        score = obj.get("score")
        return cls(
            address=get_str(obj, "address", what),
            runners=tuple(runners),
            score=None if score is None else get_number(obj, "score", what),
            capabilities=get_list(obj, "capabilities", what, as_str, default=None),
        )


@attrs.frozen(kw_only=True)
class DiscoveryResponse:
    """The JSON array answered by ``GET /discovery`` or ``/discover-orchestrators``."""

    entries: tuple[DiscoveryEntry, ...] = attrs.field(default=(), validator=_tuple_of(object))

    def __attrs_post_init__(self) -> None:
        if not all(isinstance(e, DiscoveryEntry) for e in self.entries):
            raise InvalidMessage("entries: must be a tuple of DiscoveryEntry")

    def to_wire(self) -> list[Any]:
        return [e.to_wire() for e in self.entries]

    @classmethod
    def from_wire(cls, value: object, *, skip_invalid_runners: bool = False) -> DiscoveryResponse:
        if not isinstance(value, list):
            raise InvalidMessage("discovery: expected a JSON array")
        return cls(
            entries=tuple(
                DiscoveryEntry.from_wire(v, skip_invalid_runners=skip_invalid_runners)
                for v in value
            )
        )


# -- reservation and payment --------------------------------------------------

_PAYMENT_HEADER = "Livepeer-Payment"
_SEGMENT_HEADER = "Livepeer-Segment"
_PAYER_HEADER = "Livepeer-Payer-Address"
_PAYER_ERROR = "invalid live runner payment signer address"


def _payer(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not _PAYER.fullmatch(value)):
        raise _fail(attribute, "must be 40 hex digits, optionally after 0x")


@attrs.frozen(kw_only=True)
class PaymentHeaders:
    """Payment headers of a reservation or a top-up.

    Empty header values count as absent, as Go's ``Header.Get(...) == ""`` does.
    A request with neither ``payment`` nor ``segment`` asks for a challenge, and
    then a bad payer address is a 402; on a paid request the payer header is not
    used, so a malformed one is ignored.
    """

    payer_address: str | None = attrs.field(default=None, validator=_payer)
    payment: str | None = attrs.field(default=None, validator=optional(non_empty))
    segment: str | None = attrs.field(default=None, validator=optional(non_empty))

    @property
    def wants_challenge(self) -> bool:
        return self.payment is None and self.segment is None

    def to_wire(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.payer_address is not None:
            out[_PAYER_HEADER] = self.payer_address
        if self.payment is not None:
            out[_PAYMENT_HEADER] = self.payment
        if self.segment is not None:
            out[_SEGMENT_HEADER] = self.segment
        return out

    @classmethod
    def from_wire(cls, headers: object) -> PaymentHeaders:
        lowered = header_map(headers, "payment headers")
        payment = lowered.get(_PAYMENT_HEADER.lower()) or None
        segment = lowered.get(_SEGMENT_HEADER.lower()) or None
        payer = lowered.get(_PAYER_HEADER.lower()) or None
        if payer is not None and not _PAYER.fullmatch(payer):
            if payment is None and segment is None:
                raise InvalidMessage(_PAYER_ERROR, status=402)
            payer = None
        return cls(payer_address=payer, payment=payment, segment=segment)


def _base64(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise _fail(attribute, "must be a non-empty base64 string")
    try:
        base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise _fail(attribute, "must be standard base64") from None


@attrs.frozen(kw_only=True)
class PaymentChallenge:
    """The 402 challenge body (also the ``/refresh-payment`` answer).

    ``payment_params`` is base64 protobuf ``OrchestratorInfo``; ``manifest_id``
    becomes the session ID of the paid reservation. ``payment_interval_ms`` is
    the pending go-livepeer addition; other unknown keys are ignored.
    """

    payment_params: str = attrs.field(validator=_base64)
    orchestrator: str = attrs.field(validator=non_empty)
    manifest_id: str = attrs.field(validator=non_empty)
    payment_url: str = attrs.field(validator=non_empty)
    payment_interval_ms: int | None = attrs.field(
        default=None, validator=optional(int_range(0, _INT_MAX))
    )

    def payment_params_bytes(self) -> bytes:
        return base64.b64decode(self.payment_params, validate=True)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "payment_params": self.payment_params,
            "orchestrator": self.orchestrator,
            "manifest_id": self.manifest_id,
            "payment_url": self.payment_url,
        }
        if self.payment_interval_ms is not None:
            out["payment_interval_ms"] = self.payment_interval_ms
        return out

    @classmethod
    def from_wire(cls, value: object) -> PaymentChallenge:
        what = "payment challenge"
        obj = expect_object(value, what)
        return cls(
            payment_params=get_str(obj, "payment_params", what),
            orchestrator=get_str(obj, "orchestrator", what),
            manifest_id=get_str(obj, "manifest_id", what),
            payment_url=get_str(obj, "payment_url", what),
            payment_interval_ms=get_int(obj, "payment_interval_ms", what, default=None),
        )


@attrs.frozen(kw_only=True)
class JsonErrorBody:
    """go-livepeer's JSON error shape ``{"error":{"message":...}}`` (the 402 for a
    bad payer address is the one place the live-runner API uses it)."""

    message: str = attrs.field(validator=instance_of(str))

    def to_wire(self) -> dict[str, Any]:
        return {"error": {"message": self.message}}

    @classmethod
    def from_wire(cls, value: object) -> JsonErrorBody:
        obj = expect_object(value, "error body")
        inner = get_object(obj, "error", "error body")
        return cls(message=get_str(inner, "message", "error body.error"))


def parse_reservation_402(value: object) -> PaymentChallenge | JsonErrorBody:
    """Tell a payment challenge from a refused challenge request in a 402 body."""
    if isinstance(value, dict) and "error" in value and "payment_params" not in value:
        return JsonErrorBody.from_wire(value)
    return PaymentChallenge.from_wire(value)


@attrs.frozen(kw_only=True)
class SessionReservation:
    """The 200 answer to ``POST /apps/{runner_id}/session``."""

    session_id: str = attrs.field(validator=non_empty)
    app_url: str = attrs.field(validator=non_empty)
    control_url: str = attrs.field(validator=non_empty)

    @property
    def stop_url(self) -> str:
        return self.control_url.rstrip("/") + "/stop"

    def to_wire(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "app_url": self.app_url,
            "control_url": self.control_url,
        }

    @classmethod
    def from_wire(cls, value: object) -> SessionReservation:
        what = "session reservation"
        obj = expect_object(value, what)
        return cls(
            session_id=get_str(obj, "session_id", what),
            app_url=get_str(obj, "app_url", what),
            control_url=get_str(obj, "control_url", what),
        )


@attrs.frozen(kw_only=True)
class RefreshPaymentRequest:
    """Body of ``POST /refresh-payment`` after a signer 480."""

    sender: str = attrs.field(validator=eth_address)
    manifest_id: str = attrs.field(validator=non_empty)

    def to_wire(self) -> dict[str, Any]:
        return {"sender": self.sender, "manifest_id": self.manifest_id}

    @classmethod
    def from_wire(cls, value: object) -> RefreshPaymentRequest:
        obj = expect_object(value, "refresh payment")
        return cls(
            sender=get_str(obj, "sender", "refresh payment"),
            manifest_id=get_str(obj, "manifest_id", "refresh payment"),
        )


# -- proxy --------------------------------------------------------------------

_PROXY_HEADERS = (
    ("route", "Livepeer-Runner-Route"),
    ("session_id", "Livepeer-Session-Id"),
    ("session_token", "Livepeer-Session-Token"),
    ("session_control", "Livepeer-Session-Control"),
)


@attrs.frozen(kw_only=True)
class ProxiedSessionHeaders:
    """Headers the orchestrator adds to every request it proxies to a runner.

    ``session_control`` is the base of the runner callbacks
    (``{runner address}/runner/{route}/session/{session_id}``) and
    ``session_token`` authorises them.
    """

    route: str = attrs.field(validator=non_empty)
    session_id: str = attrs.field(validator=non_empty)
    session_token: str = attrs.field(validator=non_empty)
    session_control: str = attrs.field(validator=non_empty)

    def to_wire(self) -> dict[str, str]:
        return {header: getattr(self, attr) for attr, header in _PROXY_HEADERS}

    @classmethod
    def from_wire(cls, headers: object) -> ProxiedSessionHeaders:
        lowered = header_map(headers, "proxied session headers")
        values: dict[str, str] = {}
        for attr, header in _PROXY_HEADERS:
            found = lowered.get(header.lower())
            if not found:
                raise InvalidMessage(f"proxied session headers: {header} is required")
            values[attr] = found
        return cls(
            route=values["route"],
            session_id=values["session_id"],
            session_token=values["session_token"],
            session_control=values["session_control"],
        )


def _target_url(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not is_http_url(value) or "#" in str(value):
        raise _fail(attribute, "must be an absolute http(s) URL without a fragment")


@attrs.frozen(kw_only=True)
class ProxyRequest:
    """Body of the runner's ``POST …/proxy``; no target means the runner URL."""

    target_url: str | None = attrs.field(default=None, validator=_target_url)

    def to_wire(self) -> dict[str, Any]:
        return {} if self.target_url is None else {"target_url": self.target_url}

    @classmethod
    def from_wire(cls, value: object) -> ProxyRequest:
        obj = expect_object(value, "proxy request")
        target = get_str(obj, "target_url", "proxy request", default="").strip()
        return cls(target_url=target or None)


@attrs.frozen(kw_only=True)
class ProxyResponse:
    """The 200 answer to ``POST …/proxy``."""

    proxy_id: str = attrs.field(validator=non_empty)
    url: str = attrs.field(validator=non_empty)

    def to_wire(self) -> dict[str, Any]:
        return {"proxy_id": self.proxy_id, "url": self.url}

    @classmethod
    def from_wire(cls, value: object) -> ProxyResponse:
        obj = expect_object(value, "proxy response")
        return cls(
            proxy_id=get_str(obj, "proxy_id", "proxy response"),
            url=get_str(obj, "url", "proxy response"),
        )


# -- session channels ---------------------------------------------------------


def normalize_channel_name(name: object) -> str:
    """Trim, turn ``/`` into ``-``, and require ``^[A-Za-z0-9_-]+$`` (else 400)."""
    if not isinstance(name, str):
        raise InvalidMessage("trickle channel name must be a string")
    normal = name.strip().replace("/", "-")
    if not normal:
        raise InvalidMessage("trickle channel name is required")
    if not _CHANNEL_NAME.fullmatch(normal):
        raise InvalidMessage(
            "trickle channel name may only contain alphanumerics, underscores, or hyphens"
        )
    return normal


def _channel_name(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    normalize_channel_name(value)


def _mime(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise _fail(attribute, "must be a non-blank string or None")


@attrs.frozen(kw_only=True)
class ChannelSpec:
    """One requested session channel. ``name`` is kept as sent; the channel is
    created under :attr:`normalized_name`."""

    name: str = attrs.field(validator=_channel_name)
    mime_type: str | None = attrs.field(default=None, validator=_mime)

    @property
    def normalized_name(self) -> str:
        return normalize_channel_name(self.name)

    @property
    def effective_mime_type(self) -> str:
        return self.mime_type or "application/octet-stream"

    def channel_name(self, session_id: str) -> str:
        return f"{session_id}-{self.normalized_name}"

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.mime_type is not None:
            out["mime_type"] = self.mime_type
        return out

    @classmethod
    def from_wire(cls, value: object) -> ChannelSpec:
        obj = expect_object(value, "channel")
        mime = get_str(obj, "mime_type", "channel", default="")
        return cls(name=get_str(obj, "name", "channel"), mime_type=mime if mime.strip() else None)


@attrs.frozen(kw_only=True)
class ChannelsRequest:
    """Body of ``POST /runner/{id}/session/{sid}/channels``: 1 to 25 channels."""

    channels: tuple[ChannelSpec, ...] = attrs.field(
        validator=_tuple_of(ChannelSpec, 1, MAX_CHANNELS_PER_REQUEST)
    )

    def to_wire(self) -> dict[str, Any]:
        return {"channels": [c.to_wire() for c in self.channels]}

    @classmethod
    def from_wire(cls, value: object) -> ChannelsRequest:
        obj = expect_object(value, "channels request")
        raw = get_list(obj, "channels", "channels request", lambda v, _w: v, default=())
        if not 1 <= len(raw) <= MAX_CHANNELS_PER_REQUEST:
            raise InvalidMessage(f"channels must hold 1 to {MAX_CHANNELS_PER_REQUEST} entries")
        return cls(channels=tuple(ChannelSpec.from_wire(v) for v in raw))


@attrs.frozen(kw_only=True)
class ChannelsResponse:
    """The 200 answer to a channels request, in request order."""

    channels: tuple[RunnerChannel, ...] = attrs.field(validator=_tuple_of(RunnerChannel))

    def to_wire(self) -> dict[str, Any]:
        return {"channels": [c.to_wire() for c in self.channels]}

    @classmethod
    def from_wire(cls, value: object) -> ChannelsResponse:
        obj = expect_object(value, "channels response")
        raw = get_list(obj, "channels", "channels response", lambda v, _w: v, default=())
        return cls(channels=tuple(RunnerChannel.from_wire(v) for v in raw))


def _channel_names(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _tuple_of(str, 1, MAX_CHANNELS_PER_REQUEST)(_inst, attribute, value)
    for name in value if isinstance(value, tuple) else ():
        normalize_channel_name(name)


@attrs.frozen(kw_only=True)
class ChannelsDeleteRequest:
    """Body of ``DELETE /runner/{id}/session/{sid}/channels``: 1 to 25 names."""

    channels: tuple[str, ...] = attrs.field(validator=_channel_names)

    def to_wire(self) -> dict[str, Any]:
        return {"channels": list(self.channels)}

    @classmethod
    def from_wire(cls, value: object) -> ChannelsDeleteRequest:
        obj = expect_object(value, "channels delete")
        names = get_list(obj, "channels", "channels delete", as_str, default=())
        if not 1 <= len(names) <= MAX_CHANNELS_PER_REQUEST:
            raise InvalidMessage(f"channels must hold 1 to {MAX_CHANNELS_PER_REQUEST} names")
        return cls(channels=names)


@attrs.frozen(kw_only=True)
class ChannelsDeleteResponse:
    """The 200 answer to a channel delete: the names as the runner sent them."""

    deleted: tuple[str, ...] = attrs.field(validator=str_tuple)

    def to_wire(self) -> dict[str, Any]:
        return {"deleted": list(self.deleted)}

    @classmethod
    def from_wire(cls, value: object) -> ChannelsDeleteResponse:
        obj = expect_object(value, "channels delete response")
        return cls(deleted=get_list(obj, "deleted", "channels delete response", as_str))


# -- O2R messages -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class O2RKeepalive:
    """``{"keep":"alive"}``, written every 10 s on the O2R channel."""

    def to_wire(self) -> dict[str, Any]:
        return {"keep": "alive"}

    @classmethod
    def from_wire(cls, value: object) -> O2RKeepalive:
        obj = expect_object(value, "o2r keepalive")
        if obj.get("keep") != "alive":
            raise InvalidMessage('o2r keepalive: expected {"keep":"alive"}')
        return cls()


@attrs.frozen(kw_only=True)
class O2RSessionEvent:
    """``{"event":"reserved"|"released","session":…,"timestamp":RFC 3339}``.

    Go writes nanoseconds; Python keeps microseconds, so extra digits are cut.
    """

    event: str = attrs.field(validator=_one_of("reserved", "released"))
    session: str = attrs.field(validator=non_empty)
    timestamp: datetime = attrs.field(converter=_to_utc, validator=_aware_utc)

    def to_wire(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "session": self.session,
            "timestamp": _format_rfc3339(self.timestamp),
        }

    @classmethod
    def from_wire(cls, value: object) -> O2RSessionEvent:
        what = "o2r session event"
        obj = expect_object(value, what)
        return cls(
            event=get_str(obj, "event", what),
            session=get_str(obj, "session", what),
            timestamp=_parse_rfc3339(get_str(obj, "timestamp", what), what),
        )


def parse_o2r_message(value: object) -> O2RKeepalive | O2RSessionEvent:
    """Decode one O2R segment; unknown shapes raise (the runner then ignores them)."""
    if isinstance(value, dict) and "event" not in value:
        return O2RKeepalive.from_wire(value)
    return O2RSessionEvent.from_wire(value)
