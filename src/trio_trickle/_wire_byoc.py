"""Wire messages of BYOC stream jobs (spec/byoc-stream.md, prefix BYOC).

Every body and header a BYOC hop exchanges, as go-livepeer master spells it:
capability registration (worker -> orchestrator), the job token and the
``Livepeer-Eth-Address`` header (gateway <-> orchestrator), the ``Livepeer`` job
header, the gateway's stream start request and response, the ``X-*`` channel
headers the orchestrator answers with, and the worker's ``/stream/start`` body.

Pure encode/decode: no I/O. ``from_wire`` raises only the ProtocolError family.
The ``request`` and ``parameters`` strings of a job are kept byte-for-byte
because the sender's signature covers them exactly as sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import attrs

from ._errors import InvalidMessage
from ._wire_util import (
    as_str,
    b64_json_decode,
    b64_json_encode,
    dump_json,
    expect_object,
    get_bool,
    get_int,
    get_list,
    get_object,
    get_str,
    instance_of,
    json_value,
    non_empty,
    optional,
    parse_json,
)

__all__ = [
    "BYOC_BALANCE_HEADER",
    "BYOC_CAPABILITY_HEADER",
    "BYOC_ETH_ADDRESS_HEADER",
    "BYOC_JOB_HEADER",
    "CapabilityRegistration",
    "GatewayStreamStartRequest",
    "GatewayStreamStartResponse",
    "JobParameters",
    "JobPrice",
    "JobRequest",
    "JobRequestDetails",
    "JobSender",
    "JobToken",
    "OrchestratorStreamUrls",
    "WorkerStreamStart",
    "decode_signature",
]

BYOC_JOB_HEADER = "Livepeer"
BYOC_ETH_ADDRESS_HEADER = "Livepeer-Eth-Address"
BYOC_CAPABILITY_HEADER = "Livepeer-Capability"
BYOC_BALANCE_HEADER = "Livepeer-Balance"

_INT64_MAX = 2**63 - 1
_UINT32_MAX = 2**32 - 1
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_SIGNATURE = re.compile(r"(?:0x)?(?:[0-9a-fA-F]{2})*")
_DECIMAL_INT = re.compile(r"-?[0-9]+")
_WEI_PER_ETH = 10**18


# -- shared validators (also used by _wire_live_runner) ------------------------


def _fail(attribute: attrs.Attribute[Any], problem: str) -> InvalidMessage:
    return InvalidMessage(f"{attribute.name}: {problem}")


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


def http_url(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: an absolute http(s) URL."""
    if not is_http_url(value):
        raise _fail(attribute, f"must be an absolute http(s) URL, got {value!r}")


def eth_address(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: ``0x`` and 40 hex digits (EIP-55 case is not checked)."""
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise _fail(attribute, "must be 0x followed by 40 hex digits")


def int_range(low: int, high: int) -> Any:
    """Validator factory: an ``int`` (not bool) within [low, high]."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(attribute, "must be an integer")
        if not low <= value <= high:
            raise _fail(attribute, f"must be within [{low}, {high}]")

    return check


def str_tuple(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: a tuple of strings."""
    if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
        raise _fail(attribute, "must be a tuple of strings")


def json_object(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: a dict with string keys that survives a strict JSON round trip."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _fail(attribute, "must be a JSON object")
    json_value(_inst, attribute, value)


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


def decode_signature(sig: str) -> bytes:
    """Hex-decode a signature after stripping one leading ``0x`` whatever its length.

    go-livepeer master strips ``0x`` only from strings longer than 130 characters,
    so the offchain empty signature ``0x`` fails there (BYOC-040).
    """
    if not isinstance(sig, str) or not _SIGNATURE.fullmatch(sig):
        raise InvalidMessage("signature: must be hex, optionally prefixed with 0x")
    return bytes.fromhex(sig[2:] if sig.startswith("0x") else sig)


def _signature(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _SIGNATURE.fullmatch(value):
        raise _fail(attribute, "must be an even number of hex digits, optionally after 0x")


def _sender(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value != "":
        eth_address(_inst, attribute, value)


def _json_object_text(text: str, what: str) -> dict[str, Any]:
    return dict(expect_object(parse_json(text, what), what))


# -- registration -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CapabilityRegistration:
    """Body of ``POST /capability/register`` (BYOC-002, BYOC-007).

    ``price_scaling`` 0 is kept as sent; :attr:`effective_price_scaling` applies
    the "0 means 1" rule. ``token`` is the bearer token the orchestrator shows
    the worker; ``None`` omits the key.
    """

    name: str = attrs.field(validator=non_empty)
    url: str = attrs.field(validator=http_url)
    description: str = attrs.field(default="", validator=instance_of(str))
    capacity: int = attrs.field(default=0, validator=int_range(0, _INT64_MAX))
    price_per_unit: int = attrs.field(default=0, validator=int_range(0, _INT64_MAX))
    price_scaling: int = attrs.field(default=1, validator=int_range(0, _INT64_MAX))
    currency: str = attrs.field(default="", validator=instance_of(str))
    token: str | None = attrs.field(default=None, validator=optional(instance_of(str)))

    @property
    def effective_price_scaling(self) -> int:
        return self.price_scaling or 1

    def static_price_wei(self) -> Fraction | None:
        """Wei per second when ``currency`` needs no price feed (``""``, wei, eth)."""
        base = Fraction(self.price_per_unit, self.effective_price_scaling)
        currency = self.currency.lower()
        if currency in ("", "wei"):
            return base
        if currency == "eth":
            return base * _WEI_PER_ETH
        return None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "url": self.url,
            "capacity": self.capacity,
            "price_per_unit": self.price_per_unit,
            "price_scaling": self.price_scaling,
            "currency": self.currency,
        }
        if self.token is not None:
            out["token"] = self.token
        return out

    @classmethod
    def from_wire(cls, value: object) -> CapabilityRegistration:
        what = "capability registration"
        obj = expect_object(value, what)
        return cls(
            name=get_str(obj, "name", what),
            url=get_str(obj, "url", what),
            description=get_str(obj, "description", what, default=""),
            capacity=get_int(obj, "capacity", what, default=0),
            price_per_unit=get_int(obj, "price_per_unit", what, default=0),
            price_scaling=get_int(obj, "price_scaling", what, default=0),
            currency=get_str(obj, "currency", what, default=""),
            token=get_str(obj, "token", what, default=None),
        )


# -- job token ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class JobSender:
    """``{"addr","sig"}``: the ``Livepeer-Eth-Address`` header and the token's
    ``sender_address``. ``sig`` signs the UTF-8 bytes of ``addr`` (BYOC-016)."""

    addr: str = attrs.field(validator=eth_address)
    sig: str = attrs.field(default="", validator=_signature)

    def signed_message(self) -> bytes:
        return self.addr.encode()

    def to_wire(self) -> dict[str, Any]:
        return {"addr": self.addr, "sig": self.sig}

    @classmethod
    def from_wire(cls, value: object) -> JobSender:
        obj = expect_object(value, "job sender")
        return cls(addr=get_str(obj, "addr", "job sender"), sig=get_str(obj, "sig", "job sender"))

    def to_header(self) -> str:
        """The base64 JSON value of ``Livepeer-Eth-Address``."""
        return b64_json_encode(self.to_wire())

    @classmethod
    def from_header(cls, text: object) -> JobSender:
        if not isinstance(text, str):
            raise InvalidMessage(f"{BYOC_ETH_ADDRESS_HEADER}: must be a string")
        return cls.from_wire(b64_json_decode(text, BYOC_ETH_ADDRESS_HEADER))


@attrs.frozen(kw_only=True)
class JobPrice:
    """The token's ``price``: ``pricePerUnit / pixelsPerUnit`` wei per second.

    Both keys are omitted by Go when 0 (protobuf ``omitempty``); a missing or
    zero denominator cannot be a price, so it is refused (BYOC-023).
    """

    price_per_unit: int = attrs.field(default=0, validator=int_range(0, _INT64_MAX))
    pixels_per_unit: int = attrs.field(default=1, validator=int_range(1, _INT64_MAX))

    @property
    def wei_per_second(self) -> Fraction:
        return Fraction(self.price_per_unit, self.pixels_per_unit)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.price_per_unit:
            out["pricePerUnit"] = self.price_per_unit
        out["pixelsPerUnit"] = self.pixels_per_unit
        return out

    @classmethod
    def from_wire(cls, value: object) -> JobPrice:
        obj = expect_object(value, "job price")
        return cls(
            price_per_unit=get_int(obj, "pricePerUnit", "job price", default=0),
            pixels_per_unit=get_int(obj, "pixelsPerUnit", "job price", default=0),
        )


@attrs.frozen(kw_only=True)
class JobToken:
    """Answer of ``GET /process/token`` (BYOC-021).

    ``ticket_params`` is protobuf ``TicketParams`` as Go's ``encoding/json``
    writes it (bytes as base64); it is absent offchain and kept as a plain object.
    """

    service_addr: str = attrs.field(default="", validator=instance_of(str))
    sender_address: JobSender | None = attrs.field(
        default=None, validator=optional(instance_of(JobSender))
    )
    ticket_params: dict[str, Any] | None = attrs.field(
        default=None, validator=optional(json_object)
    )
    balance: int = attrs.field(default=0, validator=int_range(-_INT64_MAX - 1, _INT64_MAX))
    price: JobPrice | None = attrs.field(default=None, validator=optional(instance_of(JobPrice)))
    available_capacity: int = attrs.field(
        default=0, validator=int_range(-_INT64_MAX - 1, _INT64_MAX)
    )
    last_nonce: int = attrs.field(default=0, validator=int_range(0, _UINT32_MAX))

    @property
    def has_capacity(self) -> bool:
        """A gateway starts new streams only where this is true (BYOC-024)."""
        return self.available_capacity > 0

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.sender_address is not None:
            out["sender_address"] = self.sender_address.to_wire()
        if self.ticket_params is not None:
            out["ticket_params"] = self.ticket_params
        if self.balance:
            out["balance"] = self.balance
        if self.price is not None:
            out["price"] = self.price.to_wire()
        if self.service_addr:
            out["service_addr"] = self.service_addr
        if self.available_capacity:
            out["available_capacity"] = self.available_capacity
        out["LastNonce"] = self.last_nonce
        return out

    @classmethod
    def from_wire(cls, value: object) -> JobToken:
        what = "job token"
        obj = expect_object(value, what)
        sender = get_object(obj, "sender_address", what, default=None)
        price = get_object(obj, "price", what, default=None)
        return cls(
            service_addr=get_str(obj, "service_addr", what, default=""),
            sender_address=None if sender is None else JobSender.from_wire(sender),
            ticket_params=get_object(obj, "ticket_params", what, default=None),
            balance=get_int(obj, "balance", what, default=0),
            price=None if price is None else JobPrice.from_wire(price),
            available_capacity=get_int(obj, "available_capacity", what, default=0),
            last_nonce=get_int(obj, "LastNonce", what, default=0),
        )


# -- the Livepeer job header --------------------------------------------------


@attrs.frozen(kw_only=True)
class JobRequestDetails:
    """The object inside a job's ``request`` string: ``{"stream_id": ...}``."""

    stream_id: str = attrs.field(default="", validator=instance_of(str))

    def to_wire(self) -> dict[str, Any]:
        return {"stream_id": self.stream_id}

    def to_json(self) -> str:
        return dump_json(self.to_wire()).decode()

    @classmethod
    def from_wire(cls, value: object) -> JobRequestDetails:
        obj = expect_object(value, "job request details")
        return cls(stream_id=get_str(obj, "stream_id", "job request details", default=""))


@attrs.frozen(kw_only=True)
class JobParameters:
    """The object inside a job's ``parameters`` string (BYOC-034).

    ``to_wire`` mirrors Go: ``orchestrators`` always present, empty lists and
    false flags omitted.
    """

    include: tuple[str, ...] = attrs.field(default=(), validator=str_tuple)
    exclude: tuple[str, ...] = attrs.field(default=(), validator=str_tuple)
    enable_video_ingress: bool = attrs.field(default=False, validator=instance_of(bool))
    enable_video_egress: bool = attrs.field(default=False, validator=instance_of(bool))
    enable_data_output: bool = attrs.field(default=False, validator=instance_of(bool))

    def allows(self, orchestrator_url: str) -> bool:
        """Apply the include/exclude filter to an orchestrator URL (BYOC-045)."""
        if self.include and orchestrator_url not in self.include:
            return False
        return orchestrator_url not in self.exclude

    def to_wire(self) -> dict[str, Any]:
        orchs: dict[str, Any] = {}
        if self.exclude:
            orchs["exclude"] = list(self.exclude)
        if self.include:
            orchs["include"] = list(self.include)
        out: dict[str, Any] = {"orchestrators": orchs}
        for key in ("enable_video_ingress", "enable_video_egress", "enable_data_output"):
            if getattr(self, key):
                out[key] = True
        return out

    def to_json(self) -> str:
        return dump_json(self.to_wire()).decode()

    @classmethod
    def from_wire(cls, value: object) -> JobParameters:
        what = "job parameters"
        obj = expect_object(value, what)
        orchs = get_object(obj, "orchestrators", what, default=None) or {}
        where = f"{what}.orchestrators"
        return cls(
            include=get_list(orchs, "include", where, as_str, default=()),
            exclude=get_list(orchs, "exclude", where, as_str, default=()),
            enable_video_ingress=get_bool(obj, "enable_video_ingress", what, default=False),
            enable_video_egress=get_bool(obj, "enable_video_egress", what, default=False),
            enable_data_output=get_bool(obj, "enable_data_output", what, default=False),
        )


def _request_text(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise _fail(attribute, "must be a string")
    JobRequestDetails.from_wire(parse_json(value, "job request.request"))


@attrs.frozen(kw_only=True)
class JobRequest:
    """The ``Livepeer`` header: base64 of the job JSON (BYOC-029, BYOC-030).

    ``request`` must hold a JSON object (BYOC-033). ``parameters`` is checked
    only by :meth:`job_parameters`, because stop jobs legitimately carry an
    empty one (BYOC-036). The Go-only keys ``OrchSearchTimeout`` and
    ``OrchSearchRespTimeout`` are ignored on input and never written.
    """

    capability: str = attrs.field(validator=non_empty)
    timeout_seconds: int = attrs.field(validator=int_range(1, _INT64_MAX))
    id: str = attrs.field(default="", validator=instance_of(str))
    request: str = attrs.field(default="{}", validator=_request_text)
    parameters: str = attrs.field(default="{}", validator=instance_of(str))
    capability_url: str = attrs.field(default="", validator=instance_of(str))
    sender: str = attrs.field(default="", validator=_sender)
    sig: str = attrs.field(default="", validator=_signature)

    def details(self) -> JobRequestDetails:
        return JobRequestDetails.from_wire(parse_json(self.request, "job request.request"))

    def job_parameters(self) -> JobParameters:
        """Parse ``parameters``; an empty string is refused (BYOC-034)."""
        return JobParameters.from_wire(parse_json(self.parameters, "job request.parameters"))

    def signing_payload(self) -> bytes:
        """The signed bytes: ``request`` immediately followed by ``parameters``."""
        return (self.request + self.parameters).encode()

    def signed(self, sender: str, signature: bytes) -> JobRequest:
        """Set ``sender`` and ``sig``; an empty signature is written ``""`` (BYOC-043)."""
        return attrs.evolve(self, sender=sender, sig="0x" + signature.hex() if signature else "")

    def signature_bytes(self) -> bytes:
        return decode_signature(self.sig)

    def to_json_object(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "request": self.request,
            "parameters": self.parameters,
            "capability": self.capability,
            "capability_url": self.capability_url,
            "sender": self.sender,
            "sig": self.sig,
            "timeout_seconds": self.timeout_seconds,
        }

    def to_wire(self) -> str:
        """The header value: standard base64 of the compact JSON object."""
        return b64_json_encode(self.to_json_object())

    @classmethod
    def from_wire(cls, value: object) -> JobRequest:
        if not isinstance(value, str):
            raise InvalidMessage(f"{BYOC_JOB_HEADER} header: must be a string")
        what = f"{BYOC_JOB_HEADER} header"
        obj = expect_object(b64_json_decode(value, what), what)
        timeout = get_int(obj, "timeout_seconds", what, default=0)
        if timeout <= 0:
            raise InvalidMessage(f"{what}: timeout_seconds is required and must be positive")
        capability = get_str(obj, "capability", what, default="")
        if not capability:
            raise InvalidMessage(f"{what}: capability is required")
        return cls(
            capability=capability,
            timeout_seconds=timeout,
            id=get_str(obj, "id", what, default=""),
            request=get_str(obj, "request", what, default=""),
            parameters=get_str(obj, "parameters", what, default=""),
            capability_url=get_str(obj, "capability_url", what, default=""),
            sender=get_str(obj, "sender", what, default=""),
            sig=get_str(obj, "sig", what, default=""),
        )


# -- gateway stream API -------------------------------------------------------


def _model_params(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise _fail(attribute, "must be a string")
    if value:
        decoded = parse_json(value, "invalid model params")
        if decoded is not None and not isinstance(decoded, dict):
            raise InvalidMessage("invalid model params")


def _stream_name(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise _fail(attribute, "must be a string")
    if value.endswith("-out"):
        raise _fail(attribute, "must not end in -out (reserved for output streams)")


@attrs.frozen(kw_only=True)
class GatewayStreamStartRequest:
    """Body of the gateway's ``POST /process/stream/start`` (BYOC-047).

    ``params`` is a JSON *string* holding an object (or ``null``), as master's
    ``StartRequest`` declares it; :meth:`params_object` decodes it.
    """

    stream_name: str = attrs.field(default="", validator=_stream_name)
    rtmp_output: str = attrs.field(default="", validator=instance_of(str))
    stream_id: str = attrs.field(default="", validator=instance_of(str))
    params: str = attrs.field(default="", validator=_model_params)

    def params_object(self) -> dict[str, Any] | None:
        if not self.params:
            return None
        decoded = parse_json(self.params, "invalid model params")
        return None if decoded is None else dict(expect_object(decoded, "params"))

    def resolve_stream_id(self, random_id: str) -> str:
        """The stream ID: ``stream_id`` or ``random_id``, prefixed ``{stream_name}-``."""
        base = self.stream_id or random_id
        return f"{self.stream_name}-{base}" if self.stream_name else base

    def to_wire(self) -> dict[str, Any]:
        return {
            "stream_name": self.stream_name,
            "rtmp_output": self.rtmp_output,
            "stream_id": self.stream_id,
            "params": self.params,
        }

    @classmethod
    def from_wire(cls, value: object) -> GatewayStreamStartRequest:
        what = "stream start request"
        obj = expect_object(value, what)
        return cls(
            stream_name=get_str(obj, "stream_name", what, default=""),
            rtmp_output=get_str(obj, "rtmp_output", what, default=""),
            stream_id=get_str(obj, "stream_id", what, default=""),
            params=get_str(obj, "params", what, default=""),
        )


_START_URL_KEYS = (
    "whip_url",
    "whep_url",
    "rtmp_url",
    "rtmp_output_url",
    "update_url",
    "status_url",
    "data_url",
    "stop_url",
)


@attrs.frozen(kw_only=True)
class GatewayStreamStartResponse:
    """The gateway's 200 answer to a stream start (``StreamUrls``, BYOC-055).

    All nine keys are always written; a disabled feature is ``""`` on the wire
    and ``None`` here.
    """

    stream_id: str = attrs.field(validator=non_empty)
    whip_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    whep_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    rtmp_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    rtmp_output_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    update_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    status_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    data_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    stop_url: str | None = attrs.field(default=None, validator=optional(non_empty))

    @property
    def rtmp_outputs(self) -> tuple[str, ...]:
        """``rtmp_output_url`` is a comma-joined list of RTMP destinations."""
        return tuple(self.rtmp_output_url.split(",")) if self.rtmp_output_url else ()

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stream_id": self.stream_id}
        for key in _START_URL_KEYS:
            out[key] = getattr(self, key) or ""
        return out

    @classmethod
    def from_wire(cls, value: object) -> GatewayStreamStartResponse:
        what = "stream start response"
        obj = expect_object(value, what)
        urls = {key: get_str(obj, key, what, default="") or None for key in _START_URL_KEYS}
        return cls(stream_id=get_str(obj, "stream_id", what), **urls)


# -- orchestrator answer headers ----------------------------------------------

_ORCH_URL_HEADERS = (
    ("control_url", "X-Control-Url"),
    ("events_url", "X-Events-Url"),
    ("publish_url", "X-Publish-Url"),
    ("subscribe_url", "X-Subscribe-Url"),
    ("data_url", "X-Data-Url"),
)


@attrs.frozen(kw_only=True)
class OrchestratorStreamUrls:
    """Headers of the orchestrator's 200 to ``/ai/stream/start`` (BYOC-073).

    ``publish_url`` is where the gateway publishes input, ``subscribe_url``
    where it reads output. ``balance`` is ``Livepeer-Balance`` in wei.
    A gateway needs both control and events URLs (BYOC-079), so they are required.
    """

    control_url: str = attrs.field(validator=non_empty)
    events_url: str = attrs.field(validator=non_empty)
    publish_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    subscribe_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    data_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    balance: int | None = attrs.field(default=None, validator=optional(instance_of(int)))

    def to_wire(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for attr, header in _ORCH_URL_HEADERS:
            url = getattr(self, attr)
            if url is not None:
                out[header] = url
        if self.balance is not None:
            out[BYOC_BALANCE_HEADER] = str(self.balance)
        return out

    @classmethod
    def from_wire(cls, headers: object) -> OrchestratorStreamUrls:
        what = "orchestrator stream start headers"
        lowered = header_map(headers, what)
        urls = {attr: lowered.get(header.lower()) or None for attr, header in _ORCH_URL_HEADERS}
        raw_balance = lowered.get(BYOC_BALANCE_HEADER.lower())
        balance = None
        if raw_balance is not None:
            if not _DECIMAL_INT.fullmatch(raw_balance.strip()):
                raise InvalidMessage(f"{what}: {BYOC_BALANCE_HEADER} must be a decimal integer")
            balance = int(raw_balance.strip())
        control, events = urls["control_url"], urls["events_url"]
        if control is None or events is None:
            raise InvalidMessage(f"{what}: X-Control-Url and X-Events-Url are required")
        return cls(
            control_url=control,
            events_url=events,
            publish_url=urls["publish_url"],
            subscribe_url=urls["subscribe_url"],
            data_url=urls["data_url"],
            balance=balance,
        )


# -- orchestrator -> worker ---------------------------------------------------

_WORKER_RESERVED = (
    "gateway_request_id",
    "control_url",
    "events_url",
    "subscribe_url",
    "publish_url",
    "data_url",
    "params",
)


def _worker_extra(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    json_object(_inst, attribute, value)
    if not isinstance(value, dict):  # unreachable: json_object refused it
        return
    clash = sorted(set(value) & set(_WORKER_RESERVED))
    if clash:
        raise _fail(attribute, f"must not contain the reserved keys {clash}")


def _optional_json_object(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        json_object(_inst, attribute, value)


@attrs.frozen(kw_only=True)
class WorkerStreamStart:
    """Body of the orchestrator's ``POST {worker}/stream/start`` (BYOC-090).

    The worker *subscribes* to ``subscribe_url`` (input) and *publishes* to
    ``publish_url`` (output) and ``data_url``. ``extra`` carries the gateway's
    other start-body keys, which never override the orchestrator's own.
    """

    gateway_request_id: str = attrs.field(validator=non_empty)
    control_url: str = attrs.field(validator=non_empty)
    events_url: str = attrs.field(validator=non_empty)
    subscribe_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    publish_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    data_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    params: dict[str, Any] | None = attrs.field(default=None, validator=_optional_json_object)
    extra: dict[str, Any] = attrs.field(factory=dict, validator=_worker_extra)

    @classmethod
    def build(
        cls,
        *,
        stream_id: str,
        control_url: str,
        events_url: str,
        gateway_body: Mapping[str, Any],
        subscribe_url: str | None = None,
        publish_url: str | None = None,
        data_url: str | None = None,
    ) -> WorkerStreamStart:
        """Merge a gateway start body under the orchestrator's keys (BYOC-091).

        Go master lets the gateway's keys win; here the URLs and the request ID
        are always the orchestrator's, and ``params`` must be an object or null.
        """
        body = dict(expect_object(dict(gateway_body), "gateway stream start body"))
        params = body.get("params")
        if params is not None and not isinstance(params, dict):
            raise InvalidMessage("gateway stream start body: params must be an object or null")
        extra = {k: v for k, v in body.items() if k not in _WORKER_RESERVED}
        return cls(
            gateway_request_id=stream_id,
            control_url=control_url,
            events_url=events_url,
            subscribe_url=subscribe_url,
            publish_url=publish_url,
            data_url=data_url,
            params=params,
            extra=extra,
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out["gateway_request_id"] = self.gateway_request_id
        out["control_url"] = self.control_url
        out["events_url"] = self.events_url
        for key in ("subscribe_url", "publish_url", "data_url"):
            url = getattr(self, key)
            if url is not None:
                out[key] = url
        out["params"] = self.params
        return out

    @classmethod
    def from_wire(cls, value: object) -> WorkerStreamStart:
        what = "worker stream start"
        obj = expect_object(value, what)
        params = get_object(obj, "params", what, default=None)
        return cls(
            gateway_request_id=get_str(obj, "gateway_request_id", what),
            control_url=get_str(obj, "control_url", what),
            events_url=get_str(obj, "events_url", what),
            subscribe_url=get_str(obj, "subscribe_url", what, default="") or None,
            publish_url=get_str(obj, "publish_url", what, default="") or None,
            data_url=get_str(obj, "data_url", what, default="") or None,
            params=params,
            extra={k: v for k, v in obj.items() if k not in _WORKER_RESERVED},
        )
