"""The payment seam: what reservation, top-up and debit ask of ticket handling.

Probabilistic micropayments (decoding ``Livepeer-Payment``/``Livepeer-Segment``,
verifying signatures and tickets, balances per sender and session) are not the
registry's job; the registry calls a :class:`PaymentVerifier` in the order the
spec fixes (LR-140) and acts on what it answers. :class:`OffchainPaymentVerifier`
accepts everything, as an offchain orchestrator does (LR-106).
"""

from __future__ import annotations

from typing import Protocol

import attrs

from .._wire.live_runner_payment import PaymentHeaders
from .errors import Conflict, Unsupported

__all__: list[str] = []


@attrs.frozen(kw_only=True)
class UnitPrice:
    """A wei price per unit: protobuf ``PriceInfo{pricePerUnit, pixelsPerUnit}``."""

    price_per_unit: int
    pixels_per_unit: int = 1


@attrs.frozen(kw_only=True)
class VerifiedPayment:
    """A payment whose headers decoded and whose credentials verified.

    ``manifest_id`` is the segment's manifest and ``auth_session_id`` its auth
    token's session ID; both ``None`` when the verifier binds the payment to no
    session (offchain). ``opaque`` is the verifier's own decoded form.
    """

    sender: str
    manifest_id: str | None
    auth_session_id: str | None
    expected_price: UnitPrice | None
    opaque: object = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class ChallengeParams:
    """What a challenge needs from the verifier: the base64 protobuf
    ``OrchestratorInfo`` and its auth token's session ID (LR-075, LR-076)."""

    payment_params: str
    manifest_id: str


class PaymentVerifier(Protocol):
    """Ticket handling behind the registry. Refusals raise a RegistryError."""

    def challenge(self, *, payer: str, price: UnitPrice) -> ChallengeParams:
        """Ticket parameters for ``payer`` at ``price`` and a fresh 30 min auth token."""
        ...

    def verify(self, headers: PaymentHeaders) -> VerifiedPayment:
        """Decode (402, LR-081) and verify (403, LR-082) the payment headers."""
        ...

    def process(self, payment: VerifiedPayment) -> None:
        """Credit the payment's tickets to its ``(sender, manifest)`` balance (400, LR-088)."""
        ...

    def debit(self, *, sender: str, session_id: str, units: int, price: UnitPrice) -> bool:
        """Charge ``units`` at ``price``; False when the balance does not cover it (LR-094)."""
        ...

    def refresh(self, *, sender: str, manifest_id: str) -> ChallengeParams:
        """Fresh parameters at the session's fixed price (409 JSON when none, LR-105)."""
        ...


@attrs.frozen
class OffchainPaymentVerifier:
    """Accepts every payment and every debit, and never issues a challenge."""

    def challenge(self, *, payer: str, price: UnitPrice) -> ChallengeParams:
        raise Unsupported("an offchain orchestrator issues no payment challenge")

    def verify(self, headers: PaymentHeaders) -> VerifiedPayment:
        return VerifiedPayment(
            sender=headers.payer_address or "",
            manifest_id=None,
            auth_session_id=None,
            expected_price=None,
        )

    def process(self, payment: VerifiedPayment) -> None:
        return None

    def debit(self, *, sender: str, session_id: str, units: int, price: UnitPrice) -> bool:
        return True

    def refresh(self, *, sender: str, manifest_id: str) -> ChallengeParams:
        raise Conflict("fixed price not found for session", json_body=True)
