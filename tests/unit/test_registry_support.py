"""Helpers shared by the orchestrator registry tests (no tests here).

A repeatable random source, a registry built on it, heartbeat bodies, and a
ticket verifier that reads its payments from plain header strings
(``sender;manifest;auth_session;price_per_unit;pixels_per_unit``).
"""

from __future__ import annotations

import base64
from fractions import Fraction
from typing import Any

import attrs

from trio_trickle._registry.config import RegistryConfig
from trio_trickle._registry.errors import (
    Conflict,
    PaymentForbidden,
    PaymentRequired,
    RegistryError,
)
from trio_trickle._registry.payment import ChallengeParams, UnitPrice, VerifiedPayment
from trio_trickle._registry.pricing import StaticPriceFeed
from trio_trickle._registry.registry import LiveRunnerRegistry
from trio_trickle._wire.live_runner import HeartbeatRequest
from trio_trickle._wire.live_runner_payment import PaymentHeaders

SERVICE = "https://orch.example.com:8935"
RUNNER_ADDR = "http://orch.internal:8935"
SECRET = "orch-secret"
PAYER = "0x" + "ab" * 20
#: 1 ETH = 2000 USD: 5e14 wei per USD.
WEI_PER_USD = Fraction(10**18, 2000)


@attrs.define
class CountingRandom:
    """Deterministic 'random' bytes: a counter, so every draw differs."""

    count: int = 0

    def token_bytes(self, n: int) -> bytes:
        self.count += 1
        return self.count.to_bytes(8, "big").rjust(n, b"\x07")[-n:]


@attrs.define
class FakeVerifier:
    """A ticket verifier whose payments are readable strings, with balances."""

    credit: int = 10**18
    rejected_senders: set[str] = attrs.Factory(set)
    balances: dict[tuple[str, str], int] = attrs.Factory(dict)
    fixed_prices: dict[tuple[str, str], UnitPrice] = attrs.Factory(dict)
    debits: list[tuple[str, str, int, UnitPrice]] = attrs.Factory(list)
    calls: list[str] = attrs.Factory(list)
    manifests: int = 0

    def challenge(self, *, payer: str, price: UnitPrice) -> ChallengeParams:
        self.calls.append("challenge")
        self.manifests += 1
        info = f"info:{payer}:{price.price_per_unit}".encode()
        return ChallengeParams(
            payment_params=base64.b64encode(info).decode(), manifest_id=f"{self.manifests:08x}"
        )

    def verify(self, headers: PaymentHeaders) -> VerifiedPayment:
        self.calls.append("verify")
        parts = (headers.payment or "").split(";")
        if len(parts) != 5:
            raise PaymentRequired("could not decode payment")
        if headers.segment != "ok":
            raise PaymentForbidden("invalid segment credentials")
        sender, manifest, auth, price, pixels = parts
        return VerifiedPayment(
            sender=sender,
            manifest_id=manifest,
            auth_session_id=auth,
            expected_price=UnitPrice(price_per_unit=int(price), pixels_per_unit=int(pixels)),
        )

    def process(self, payment: VerifiedPayment) -> None:
        self.calls.append("process")
        if payment.sender in self.rejected_senders:
            raise RegistryError("invalid ticket")
        key = (payment.sender, payment.manifest_id or "")
        self.balances[key] = self.balances.get(key, 0) + self.credit
        if payment.expected_price is not None:
            self.fixed_prices.setdefault(key, payment.expected_price)

    def debit(self, *, sender: str, session_id: str, units: int, price: UnitPrice) -> bool:
        self.calls.append("debit")
        fee = units * price.price_per_unit // price.pixels_per_unit
        key = (sender, session_id)
        if self.balances.get(key, 0) < fee:
            return False
        self.balances[key] -= fee
        self.debits.append((sender, session_id, units, price))
        return True

    def refresh(self, *, sender: str, manifest_id: str) -> ChallengeParams:
        price = self.fixed_prices.get((sender, manifest_id))
        if price is None:
            raise Conflict("fixed price not found for session", json_body=True)
        info = f"refresh:{sender}:{price.price_per_unit}".encode()
        return ChallengeParams(
            payment_params=base64.b64encode(info).decode(), manifest_id=manifest_id
        )


def paid_headers(
    manifest: str, price: int, *, sender: str = PAYER, auth: str | None = None, pixels: int = 1
) -> PaymentHeaders:
    payment = f"{sender};{manifest};{manifest if auth is None else auth};{price};{pixels}"
    return PaymentHeaders(payer_address=PAYER, payment=payment, segment="ok")


def make_registry(
    *,
    onchain: bool = False,
    verifier: Any = None,
    rate: Fraction | None = WEI_PER_USD,
    **settings: Any,
) -> LiveRunnerRegistry:
    config = RegistryConfig(
        service_uri=SERVICE,
        runner_address=RUNNER_ADDR,
        orchestrator_secret=SECRET,
        onchain=onchain,
        **settings,
    )
    return LiveRunnerRegistry(
        config,
        random=CountingRandom(),
        verifier=verifier,
        price_feed=StaticPriceFeed(rate=rate),
    )


def beat(**fields: Any) -> HeartbeatRequest:
    """A heartbeat body (wire form) decoded, with a sensible default runner."""
    body: dict[str, Any] = {
        "runner_id": "runner_one",
        "runner_url": "http://runner.internal:8080/base",
        "app": "live-video-to-video/scope",
        "capacity": 2,
        "price_info": {"price": 3.6, "currency": "usd", "unit": "hour"},
    }
    body.update(fields)
    return HeartbeatRequest.from_wire({k: v for k, v in body.items() if v is not None})


def register(registry: LiveRunnerRegistry, now: float = 0.0, **fields: Any) -> tuple[str, str]:
    """Register a runner; its route and heartbeat secret."""
    accepted = registry.heartbeat(beat(**fields), SECRET, now)
    secret = accepted.response.heartbeat_secret
    assert secret is not None
    return accepted.response.runner_id, secret
