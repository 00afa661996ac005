"""Reserving sessions, paying for them, and billing them (LR-068 to LR-106, LR-140).

:func:`reserve` walks master's check order (LR-140) and calls the
:class:`~.payment.PaymentVerifier` where master calls its ticket code. One
difference: the room check runs before the payment is processed, and the
session is added only once the payment (and a ``fixed`` charge) went through,
so a refused payment never announces a session to the runner (LR-088); its
reason is remembered all the same. :func:`account` is the debit monitor, run by
the I/O layer every ``payment_interval``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import attrs

from .._errors import ProtocolError
from .._wire.live_runner_channels import ProxiedSessionHeaders
from .._wire.live_runner_discovery import AdvertisedPrice
from .._wire.live_runner_payment import (
    PaymentChallenge,
    PaymentHeaders,
    RefreshPaymentRequest,
    SessionReservation,
)
from .config import join_url
from .effects import Effect, Release, ReleaseReason, release_effects
from .errors import (
    Conflict,
    PaymentForbidden,
    PaymentRequired,
    RegistryError,
    Unsupported,
)
from .ids import session_token
from .payment import UnitPrice, VerifiedPayment
from .pricing import UNITS_PER_SECOND, advertised_price
from .sessions import add_session, check_room, find_ready, find_session, release_session
from .state import PaidState, RegistryState, RunnerRecord

__all__: list[str] = []

PAYER_ERROR = "invalid live runner payment signer address"


@attrs.frozen(kw_only=True)
class Challenge:
    """Answer 402 with ``challenge.to_wire()`` as JSON (LR-073, LR-075)."""

    challenge: PaymentChallenge


@attrs.frozen(kw_only=True)
class Reserved:
    """Answer 200 with ``reservation.to_wire()`` (LR-089) after the effects."""

    route: str
    session_id: str
    reservation: SessionReservation
    effects: tuple[Effect, ...]


@attrs.frozen(kw_only=True)
class SingleShotReserved:
    """Proxy the request to ``runner_url`` with ``headers``, then call ``end_request``."""

    route: str
    session_id: str
    runner_url: str
    headers: ProxiedSessionHeaders
    effects: tuple[Effect, ...]


@attrs.frozen(kw_only=True)
class TopUpAccepted:
    """Answer 200 with the protobuf ``PaymentResult`` the verifier builds for ``payment``."""

    route: str
    session_id: str
    payment: VerifiedPayment


@attrs.frozen(kw_only=True)
class Accounted:
    """Sessions whose debit the balance did not cover, released (LR-094)."""

    releases: tuple[Release, ...]

    @property
    def effects(self) -> tuple[Effect, ...]:
        return release_effects(self.releases)


def parse_payment_headers(headers: object) -> PaymentHeaders:
    """The payment headers; a bad payer address on a challenge request is the JSON 402."""
    try:
        return PaymentHeaders.from_wire(headers)
    except ProtocolError as exc:
        raise PaymentRequired(exc.message, status=exc.status, json_body=exc.status == 402) from None


def session_headers(
    state: RegistryState, record: RunnerRecord, session_id: str
) -> ProxiedSessionHeaders:
    """What every proxied request to the runner carries (LR-108)."""
    control = join_url(state.config.runner_base, "runner", record.route, "session", session_id)
    return ProxiedSessionHeaders(
        route=record.route,
        session_id=session_id,
        session_token=session_token(record.seed, session_id),
        session_control=control,
    )


def payment_price(state: RegistryState, record: RunnerRecord) -> AdvertisedPrice | None:
    """The wei price to charge, None offchain; 503 when it cannot be converted (LR-071)."""
    if not state.config.onchain or record.price is None:
        return None
    return advertised_price(record.price, state.price_feed)


def reserve(
    state: RegistryState,
    route: str,
    headers: PaymentHeaders,
    now: float,
    *,
    single_shot: bool = False,
) -> Challenge | Reserved | SingleShotReserved:
    """``POST /apps/{route}/session``, or a single-shot ``ANY /apps/{route}/app/…``."""
    record = find_ready(state, route, now)
    if record.single_shot != single_shot:
        text = (
            "runner is not single-shot" if single_shot else "only persistent runners have sessions"
        )
        raise RegistryError(text)
    price = payment_price(state, record)
    if price is None:
        return _reserved(state, record, None, now, None)
    if headers.wants_challenge:
        return Challenge(challenge=_challenge(state, route, headers, price))
    payment = state.verifier.verify(headers)
    if payment.manifest_id != payment.auth_session_id:
        raise PaymentForbidden("mismatched manifest and auth token")
    charge = UnitPrice(price_per_unit=price.price)
    paid: PaidState | None = None
    if price.unit == "fixed":
        if payment.expected_price != charge:
            raise RegistryError("payment price does not match live runner price")
    elif price.unit in UNITS_PER_SECOND:
        paid = PaidState(
            sender=payment.sender,
            price=payment.expected_price or charge,
            units_per_second=UNITS_PER_SECOND[price.unit],
            last_debit=now,
        )
    else:
        raise Unsupported(f'unsupported live runner payment unit "{price.unit}"')
    session_id = payment.manifest_id
    check_room(record, session_id)
    try:
        state.verifier.process(payment)
        if paid is None and session_id is not None:
            covered = state.verifier.debit(
                sender=payment.sender, session_id=session_id, units=1, price=charge
            )
            if not covered:
                raise RegistryError("insufficient balance for the live runner session")
    except ProtocolError:
        if session_id is not None:
            state.released.remember(route, session_id, ReleaseReason.PAYMENT_REJECTED, now)
        raise
    return _reserved(state, record, session_id, now, paid)


def _challenge(
    state: RegistryState, route: str, headers: PaymentHeaders, price: AdvertisedPrice
) -> PaymentChallenge:
    if headers.payer_address is None:
        raise PaymentRequired(PAYER_ERROR, json_body=True)
    params = state.verifier.challenge(
        payer=headers.payer_address, price=UnitPrice(price_per_unit=price.price)
    )
    base = state.config.service_base
    return PaymentChallenge(
        payment_params=params.payment_params,
        orchestrator=state.config.service_uri,
        manifest_id=params.manifest_id,
        payment_url=join_url(base, "apps", route, "session", params.manifest_id, "payment"),
    )


def _reserved(
    state: RegistryState,
    record: RunnerRecord,
    session_id: str | None,
    now: float,
    paid: PaidState | None,
) -> Reserved | SingleShotReserved:
    session, app_url, effects = add_session(state, record, session_id, now, paid=paid)
    sid = session.session_id
    if record.single_shot:
        return SingleShotReserved(
            route=record.route,
            session_id=sid,
            runner_url=app_url,
            headers=session_headers(state, record, sid),
            effects=effects,
        )
    control = join_url(state.config.service_base, "apps", record.route, "session", sid)
    reservation = SessionReservation(session_id=sid, app_url=app_url, control_url=control)
    return Reserved(route=record.route, session_id=sid, reservation=reservation, effects=effects)


def end_request(state: RegistryState, route: str, session_id: str, now: float) -> Release | None:
    """A single-shot request ended: release its session (LR-111), if still held."""
    record = state.runners.get(route)
    session = None if record is None else record.sessions.get(session_id)
    if record is None or session is None:
        return None
    return release_session(state, record, session, ReleaseReason.REQUEST_ENDED, now)


def top_up(
    state: RegistryState, route: str, session_id: str, headers: PaymentHeaders, now: float
) -> TopUpAccepted:
    """``POST /apps/{route}/session/{sid}/payment`` (LR-095 to LR-100, LR-136, LR-146)."""
    _record, session = find_session(state, route, session_id, now)
    if session.fixed_price:
        raise Conflict("fixed-price live runner sessions do not accept follow-up payments")
    payment = state.verifier.verify(headers)
    if payment.manifest_id is not None and payment.manifest_id != session_id:
        raise PaymentForbidden("mismatched session and payment manifest")
    state.verifier.process(payment)
    session.last_activity = max(session.last_activity, now)
    return TopUpAccepted(route=route, session_id=session_id, payment=payment)


def account(state: RegistryState, now: float) -> Accounted:
    """Debit every time-metered session whose interval has passed (LR-093, LR-094).

    Bills ``floor(elapsed × units per second)`` units, carrying the fraction,
    for as long as the session is held, whatever its runner's state.
    """
    releases: list[Release] = []
    for record in list(state.runners.values()):
        for session in sorted(record.sessions.values(), key=lambda s: s.seq):
            paid = session.paid
            if paid is None or now - paid.last_debit < state.config.payment_interval:
                continue
            exact = Fraction(now - paid.last_debit) * paid.units_per_second + paid.carry
            units = math.floor(exact)
            paid.carry, paid.last_debit = exact - units, now
            if units <= 0:
                continue
            covered = state.verifier.debit(
                sender=paid.sender, session_id=session.session_id, units=units, price=paid.price
            )
            if not covered:
                reason = ReleaseReason.PAYMENT_FAILED
                releases.append(release_session(state, record, session, reason, now))
    return Accounted(releases=tuple(releases))


def parse_refresh_request(body: object) -> RefreshPaymentRequest:
    """A ``/refresh-payment`` body; every refusal is a JSON 400 (LR-105)."""
    try:
        request = RefreshPaymentRequest.from_wire(body)
    except ProtocolError as exc:
        raise RegistryError(exc.message, json_body=True) from None
    if not request.manifest_id.strip():
        raise RegistryError("missing manifest_id", json_body=True)
    return request


def refresh_payment(state: RegistryState, request: RefreshPaymentRequest) -> PaymentChallenge:
    """``POST /refresh-payment``: a challenge at the session's fixed price (LR-103 to LR-105)."""
    manifest_id = request.manifest_id.strip()
    params = state.verifier.refresh(sender=request.sender, manifest_id=manifest_id)
    return PaymentChallenge(
        payment_params=params.payment_params,
        orchestrator=state.config.service_uri,
        manifest_id=params.manifest_id,
        payment_url=join_url(state.config.service_base, "payment"),
    )
