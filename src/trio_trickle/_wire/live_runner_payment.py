"""Wire messages of live-runner session reservation and payment (spec/live-runner.md, LR).

Reserving a session on ``POST /apps/{runner_id}/session``: the payment headers,
the 402 challenge (or go-livepeer's JSON error when the challenge itself is
refused), the 200 reservation, and the ``/refresh-payment`` request after a
signer 480. Kept together because a client walks them as one exchange.

Pure encode/decode, no I/O; ``from_wire`` raises only the ProtocolError family.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import attrs

from .._errors import InvalidMessage
from .fields import expect_object, get_int, get_object, get_str, header_map
from .go import INT64_MAX
from .validate import fail, instance_of, int_range, non_empty, optional

__all__ = [
    "JsonErrorBody",
    "PaymentChallenge",
    "PaymentHeaders",
    "RefreshPaymentRequest",
    "SessionReservation",
    "parse_reservation_402",
]

_PAYER = re.compile(r"(?:0[xX])?[0-9a-fA-F]{40}")
_PAYMENT_HEADER = "Livepeer-Payment"
_SEGMENT_HEADER = "Livepeer-Segment"
_PAYER_HEADER = "Livepeer-Payer-Address"
_PAYER_ERROR = "invalid live runner payment signer address"


def _payer(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not _PAYER.fullmatch(value)):
        raise fail(attribute, "must be 40 hex digits, optionally after 0x")


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
        raise fail(attribute, "must be a non-empty base64 string")
    try:
        base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise fail(attribute, "must be standard base64") from None


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
        default=None, validator=optional(int_range(0, INT64_MAX))
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


def _sender(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # Go's common.IsHexAddress: an optional 0x/0X, then 40 hex digits (LR-105).
    if not isinstance(value, str) or not _PAYER.fullmatch(value):
        raise fail(attribute, "must be 40 hex digits, optionally after 0x")


@attrs.frozen(kw_only=True)
class RefreshPaymentRequest:
    """Body of ``POST /refresh-payment`` after a signer 480.

    ``sender`` is kept as sent: 40 hex digits with or without ``0x`` (LR-105).
    """

    sender: str = attrs.field(validator=_sender)
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
