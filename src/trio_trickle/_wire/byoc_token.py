"""Wire messages of a BYOC job's credentials (spec/byoc-stream.md, prefix BYOC).

The job token (``GET /process/token``) with its price and sender, the
``Livepeer-Eth-Address`` header, and the ``Livepeer`` job header with its
``request`` and ``parameters`` strings: everything a gateway signs or an
orchestrator checks before a BYOC stream exists. The stream bodies themselves
are in :mod:`.byoc`.

Pure encode/decode: no I/O. ``from_wire`` raises only the ProtocolError family.
The ``request`` and ``parameters`` strings of a job are kept byte-for-byte
because the sender's signature covers them exactly as sent.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

import attrs

from .._errors import InvalidMessage
from .fields import as_str, expect_object, get_bool, get_int, get_list, get_object, get_str
from .go import INT64_MAX, INT64_MIN
from .json_codec import b64_json_decode, b64_json_encode, dump_json, parse_json
from .validate import (
    eth_address,
    fail,
    instance_of,
    int_range,
    json_object,
    non_empty,
    optional,
    tuple_of,
)

__all__ = [
    "BYOC_ETH_ADDRESS_HEADER",
    "BYOC_JOB_HEADER",
    "JobParameters",
    "JobPrice",
    "JobRequest",
    "JobRequestDetails",
    "JobSender",
    "JobToken",
    "decode_signature",
]

BYOC_JOB_HEADER = "Livepeer"
BYOC_ETH_ADDRESS_HEADER = "Livepeer-Eth-Address"

_UINT32_MAX = 2**32 - 1
_SIGNATURE = re.compile(r"(?:0x)?(?:[0-9a-fA-F]{2})*")


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
        raise fail(attribute, "must be an even number of hex digits, optionally after 0x")


def _sender(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value != "":
        eth_address(_inst, attribute, value)


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
        return cls.from_wire(b64_json_decode(text, BYOC_ETH_ADDRESS_HEADER))


@attrs.frozen(kw_only=True)
class JobPrice:
    """The token's ``price``: ``pricePerUnit / pixelsPerUnit`` wei per second.

    Both keys are omitted by Go when 0 (protobuf ``omitempty``); a missing or
    zero denominator cannot be a price, so it is refused (BYOC-023).
    """

    price_per_unit: int = attrs.field(default=0, validator=int_range(0, INT64_MAX))
    pixels_per_unit: int = attrs.field(default=1, validator=int_range(1, INT64_MAX))

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
    balance: int = attrs.field(default=0, validator=int_range(INT64_MIN, INT64_MAX))
    price: JobPrice | None = attrs.field(default=None, validator=optional(instance_of(JobPrice)))
    available_capacity: int = attrs.field(default=0, validator=int_range(INT64_MIN, INT64_MAX))
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

    include: tuple[str, ...] = attrs.field(default=(), validator=tuple_of(str))
    exclude: tuple[str, ...] = attrs.field(default=(), validator=tuple_of(str))
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
        raise fail(attribute, "must be a string")
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
    timeout_seconds: int = attrs.field(validator=int_range(1, INT64_MAX))
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
