"""The registry's session side: reservation, payment, debits, stop, and release reasons."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.unit.test_registry_support import (
    PAYER,
    SERVICE,
    FakeVerifier,
    beat,
    make_registry,
    paid_headers,
    register,
)
from trio_trickle._registry.effects import (
    CancelRequest,
    CloseChannels,
    PublishRelease,
    ReleaseReason,
    SendSessionEvent,
)
from trio_trickle._registry.errors import (
    Conflict,
    PaymentForbidden,
    PaymentRequired,
    RegistryError,
    RunnerNotFound,
    SessionNotFound,
    Unavailable,
)
from trio_trickle._registry.registry import LiveRunnerRegistry
from trio_trickle._registry.reservation import (
    Challenge,
    Reserved,
    SingleShotReserved,
    parse_payment_headers,
    parse_refresh_request,
)
from trio_trickle._wire.live_runner_channels import ChannelSpec, ChannelsRequest, ProxyRequest
from trio_trickle._wire.live_runner_payment import PaymentHeaders

NO_PAY = PaymentHeaders()
CHALLENGE_ONLY = PaymentHeaders(payer_address=PAYER)
#: 3.6 USD per hour at 5e14 wei per USD: 5e11 wei per second.
WEI_PER_SECOND = 500_000_000_000


def _reserved(result: object) -> Reserved:
    assert isinstance(result, Reserved)
    return result


def _onchain(verifier: FakeVerifier | None = None, **fields: Any) -> tuple[LiveRunnerRegistry, str]:
    registry = make_registry(onchain=True, verifier=verifier or FakeVerifier())
    route, _secret = register(registry, **fields)
    return registry, route


# -- offchain reservation -------------------------------------------------------------


@pytest.mark.spec("LR-068", "LR-072", "LR-089", "LR-090", "LR-091", "LR-106")
def test_offchain_reserves_at_once() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    reserved = _reserved(registry.reserve(route, CHALLENGE_ONLY, 1.0))
    sid = reserved.session_id
    assert re.fullmatch("session_[a-z2-7]{8}", sid)
    assert reserved.reservation.to_wire() == {
        "session_id": sid,
        "app_url": f"{SERVICE}/apps/{route}/session/{sid}/app",
        "control_url": f"{SERVICE}/apps/{route}/session/{sid}",
    }
    (event,) = reserved.effects
    assert isinstance(event, SendSessionEvent)
    assert (event.event, event.session_id) == (
        "reserved",
        sid,
    )
    assert registry.account(100.0).releases == ()  # offchain sessions are never debited


@pytest.mark.spec("LR-090")
def test_proxy_runner_gets_a_fresh_proxy_app_url() -> None:
    registry = make_registry()
    route, _secret = register(registry, proxy=True)
    app_url = _reserved(registry.reserve(route, NO_PAY, 0.0)).reservation.app_url
    assert re.fullmatch(f"{SERVICE}/run/[a-z2-7]{{26}}", app_url)
    other = _reserved(registry.reserve(route, NO_PAY, 0.0)).reservation.app_url
    assert other != app_url


@pytest.mark.spec("LR-069")
def test_reservation_on_unknown_expired_or_unready_runner_is_404() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    register(registry, runner_id="busy", status="busy")
    for target, now in ((route, 21.0), ("nobody", 0.0), ("busy", 0.0)):
        with pytest.raises(RunnerNotFound, match=r"^runner not found$") as info:
            registry.reserve(target, NO_PAY, now)
        assert info.value.status == 404


@pytest.mark.spec("LR-070", "LR-111")
def test_mode_decides_which_path_reserves() -> None:
    registry = make_registry()
    single, _ = register(registry, runner_id="single", mode="single_shot")
    persistent, _ = register(registry, runner_id="persistent")
    with pytest.raises(RegistryError, match=r"^only persistent runners have sessions$"):
        registry.reserve(single, NO_PAY, 0.0)
    with pytest.raises(RegistryError, match=r"^runner is not single-shot$"):
        registry.reserve_single_shot(persistent, NO_PAY, 0.0)
    shot = registry.reserve_single_shot(single, NO_PAY, 0.0)
    assert isinstance(shot, SingleShotReserved)
    assert shot.runner_url == "http://runner.internal:8080/base"
    assert shot.headers.session_id == shot.session_id
    release = registry.end_request(single, shot.session_id, 1.0)
    assert release is not None
    assert release.reason is ReleaseReason.REQUEST_ENDED
    assert registry.end_request(single, shot.session_id, 1.0) is None


@pytest.mark.spec("LR-087", "LR-059")
def test_capacity_is_a_hard_limit() -> None:
    registry = make_registry()
    route, _secret = register(registry, capacity=1)
    _reserved(registry.reserve(route, NO_PAY, 0.0))
    with pytest.raises(Unavailable, match=r"^no capacity available for runner$") as info:
        registry.reserve(route, NO_PAY, 0.0)
    assert info.value.status == 503


# -- onchain reservation: the payment challenge -----------------------------------------


@pytest.mark.spec("LR-071", "LR-140")
def test_unconvertible_price_is_503_before_the_challenge() -> None:
    verifier = FakeVerifier()
    registry = make_registry(onchain=True, verifier=verifier, rate=None)
    route, _secret = register(registry)
    with pytest.raises(Unavailable, match=r"^live runner price unavailable: "):
        registry.reserve(route, CHALLENGE_ONLY, 0.0)
    assert verifier.calls == []


@pytest.mark.spec("LR-073", "LR-075")
def test_unpaid_onchain_reservation_gets_a_challenge() -> None:
    registry, route = _onchain()
    challenge = registry.reserve(route, CHALLENGE_ONLY, 0.0)
    assert isinstance(challenge, Challenge)
    wire = challenge.challenge.to_wire()
    assert wire == {
        "payment_params": wire["payment_params"],
        "orchestrator": SERVICE,
        "manifest_id": "00000001",
        "payment_url": f"{SERVICE}/apps/{route}/session/00000001/payment",
    }
    assert challenge.challenge.payment_params_bytes() == f"info:{PAYER}:{WEI_PER_SECOND}".encode()
    assert registry.runners()[0].session_ids == ()


@pytest.mark.spec("LR-074")
def test_challenge_without_a_payer_address_is_a_json_402() -> None:
    registry, route = _onchain()
    with pytest.raises(
        PaymentRequired, match=r"^invalid live runner payment signer address$"
    ) as info:
        registry.reserve(route, NO_PAY, 0.0)
    assert (info.value.status, info.value.json_body) == (402, True)
    with pytest.raises(PaymentRequired) as parsed:
        parse_payment_headers({"Livepeer-Payer-Address": "0x1234"})
    assert (parsed.value.status, parsed.value.json_body) == (402, True)


@pytest.mark.spec("LR-081", "LR-082")
def test_undecodable_or_unverified_payments_reserve_nothing() -> None:
    registry, route = _onchain()
    bad_payment = PaymentHeaders(payment="garbage", segment="ok")
    with pytest.raises(PaymentRequired):
        registry.reserve(route, bad_payment, 0.0)
    bad_segment = PaymentHeaders(payment=f"{PAYER};m;m;1;1", segment="forged")
    with pytest.raises(PaymentForbidden):
        registry.reserve(route, bad_segment, 0.0)
    assert registry.runners()[0].session_ids == ()


@pytest.mark.spec("LR-083")
def test_manifest_must_match_the_auth_token() -> None:
    registry, route = _onchain()
    with pytest.raises(PaymentForbidden, match=r"^mismatched manifest and auth token$"):
        registry.reserve(route, paid_headers("m1", WEI_PER_SECOND, auth="other"), 0.0)


@pytest.mark.spec("LR-080", "LR-085", "LR-089", "LR-093")
def test_paid_retry_reserves_the_manifest_id() -> None:
    verifier = FakeVerifier()
    registry, route = _onchain(verifier)
    reserved = _reserved(registry.reserve(route, paid_headers("m1", WEI_PER_SECOND), 0.0))
    assert reserved.session_id == "m1"
    assert verifier.calls == ["verify", "process"]
    assert verifier.balances[(PAYER, "m1")] == verifier.credit


@pytest.mark.spec("LR-084")
def test_fixed_price_must_match_exactly() -> None:
    registry, route = _onchain(price_info={"price": "0.5", "unit": "fixed"})
    price = 250_000_000_000_000  # 0.5 USD at 5e14 wei per USD
    for headers in (paid_headers("m1", price + 1), paid_headers("m1", price, pixels=2)):
        with pytest.raises(
            RegistryError, match=r"^payment price does not match live runner price$"
        ):
            registry.reserve(route, headers, 0.0)
    assert _reserved(registry.reserve(route, paid_headers("m1", price), 0.0)).session_id == "m1"


@pytest.mark.spec("LR-086", "LR-140")
def test_duplicate_session_is_409_even_at_full_capacity() -> None:
    registry, route = _onchain(capacity=1)
    _reserved(registry.reserve(route, paid_headers("m1", WEI_PER_SECOND), 0.0))
    with pytest.raises(Conflict, match=r"^session already exists$") as info:
        registry.reserve(route, paid_headers("m1", WEI_PER_SECOND), 0.0)
    assert info.value.status == 409
    with pytest.raises(Unavailable):
        registry.reserve(route, paid_headers("m2", WEI_PER_SECOND), 0.0)


@pytest.mark.spec("LR-140")
def test_mode_is_checked_before_the_price_and_the_room_before_processing() -> None:
    verifier = FakeVerifier()
    registry = make_registry(onchain=True, verifier=verifier, rate=None)
    route, _secret = register(registry, mode="single-shot")
    with pytest.raises(RegistryError, match="persistent"):
        registry.reserve(route, CHALLENGE_ONLY, 0.0)
    registry, route = _onchain(verifier, capacity=1)
    registry.reserve(route, paid_headers("m1", WEI_PER_SECOND), 0.0)
    verifier.calls.clear()
    with pytest.raises(Unavailable):
        registry.reserve(route, paid_headers("m2", WEI_PER_SECOND), 0.0)
    assert verifier.calls == ["verify"]  # no payment was taken for a session that cannot exist


@pytest.mark.spec("LR-088", "LR-145")
def test_failed_payment_reserves_nothing_and_remembers_why() -> None:
    verifier = FakeVerifier(rejected_senders={PAYER})
    registry, route = _onchain(verifier)
    with pytest.raises(RegistryError, match=r"^invalid ticket$") as info:
        registry.reserve(route, paid_headers("m1", WEI_PER_SECOND), 0.0)
    assert info.value.status == 400
    assert registry.runners()[0].session_ids == ()
    stopped = registry.stop(route, "m1", 1.0)
    assert (stopped.reason, stopped.release) == (ReleaseReason.PAYMENT_REJECTED, None)


@pytest.mark.spec("LR-092")
def test_fixed_runner_charges_one_unit_at_reservation() -> None:
    price = 250_000_000_000_000
    verifier = FakeVerifier(credit=price)
    registry, route = _onchain(verifier, price_info={"price": "0.5", "unit": "fixed"})
    _reserved(registry.reserve(route, paid_headers("m1", price), 0.0))
    assert verifier.debits == [(PAYER, "m1", 1, verifier.fixed_prices[(PAYER, "m1")])]
    assert registry.account(60.0).releases == ()  # a fixed session is never billed again
    poor = FakeVerifier(credit=price - 1)
    registry, route = _onchain(poor, price_info={"price": "0.5", "unit": "fixed"})
    with pytest.raises(RegistryError) as info:
        registry.reserve(route, paid_headers("m1", price), 0.0)
    assert info.value.status == 400
    assert registry.runners()[0].session_ids == ()


# -- the debit monitor --------------------------------------------------------------


@pytest.mark.spec("LR-093")
def test_time_based_sessions_are_billed_per_elapsed_second_with_carry() -> None:
    verifier = FakeVerifier()
    registry, route = _onchain(verifier)
    registry.reserve(route, paid_headers("m1", WEI_PER_SECOND), 0.0)
    assert registry.account(4.9).releases == ()
    assert verifier.debits == []
    registry.account(5.5)
    registry.account(11.0)
    assert [units for _s, _m, units, _p in verifier.debits] == [5, 6]


@pytest.mark.spec("LR-093")
def test_720p_sessions_bill_pixels() -> None:
    verifier = FakeVerifier(credit=10**18)
    registry, route = _onchain(verifier, price_info={"price": 3600, "unit": "720p"})
    registry.reserve(route, paid_headers("m1", 1), 0.0)
    registry.account(5.0)
    assert verifier.debits[0][2] == 5 * 1280 * 720 * 30


@pytest.mark.spec("LR-094", "LR-141")
def test_uncovered_debit_releases_with_payment_failed() -> None:
    verifier = FakeVerifier(credit=3 * WEI_PER_SECOND)
    registry, route = _onchain(verifier)
    registry.reserve(route, paid_headers("m1", WEI_PER_SECOND), 0.0)
    (release,) = registry.account(5.0).releases
    assert (release.session_id, release.reason) == ("m1", ReleaseReason.PAYMENT_FAILED)
    assert registry.runners()[0].session_ids == ()


@pytest.mark.spec("LR-094")
def test_uncovered_single_shot_debit_cancels_the_request() -> None:
    verifier = FakeVerifier(credit=0)
    registry, route = _onchain(verifier, mode="single-shot")
    shot = registry.reserve_single_shot(route, paid_headers("m1", WEI_PER_SECOND), 0.0)
    assert isinstance(shot, SingleShotReserved)
    (release,) = registry.account(5.0).releases
    assert release.effects[-1] == CancelRequest(route=route, session_id="m1")


# -- top-ups and refresh ------------------------------------------------------------


@pytest.mark.spec("LR-095", "LR-096", "LR-098", "LR-099")
def test_top_up_checks() -> None:
    verifier = FakeVerifier()
    registry, route = _onchain(verifier)
    registry.reserve(route, paid_headers("m1", WEI_PER_SECOND), 0.0)
    accepted = registry.top_up(route, "m1", paid_headers("m1", WEI_PER_SECOND), 3.0)
    assert accepted.payment.manifest_id == "m1"
    assert verifier.balances[(PAYER, "m1")] == 2 * verifier.credit
    with pytest.raises(SessionNotFound) as missing:
        registry.top_up(route, "nope", paid_headers("nope", WEI_PER_SECOND), 3.0)
    assert missing.value.status == 404
    with pytest.raises(PaymentForbidden, match=r"^mismatched session and payment manifest$"):
        registry.top_up(route, "m1", paid_headers("m2", WEI_PER_SECOND), 3.0)
    verifier.rejected_senders.add(PAYER)
    with pytest.raises(RegistryError) as info:
        registry.top_up(route, "m1", paid_headers("m1", WEI_PER_SECOND), 3.0)
    assert info.value.status == 400


@pytest.mark.spec("LR-097")
def test_fixed_session_takes_no_top_up() -> None:
    registry, route = _onchain(price_info={"price": "0.5", "unit": "fixed"})
    price = 250_000_000_000_000
    registry.reserve(route, paid_headers("m1", price), 0.0)
    with pytest.raises(Conflict) as info:
        registry.top_up(route, "m1", paid_headers("m1", price), 1.0)
    assert info.value.status == 409


@pytest.mark.spec("LR-103", "LR-104", "LR-105")
def test_refresh_payment() -> None:
    verifier = FakeVerifier()
    registry, route = _onchain(verifier)
    request = parse_refresh_request({"sender": PAYER, "manifest_id": " m1 "})
    with pytest.raises(Conflict, match=r"^fixed price not found for session$") as info:
        registry.refresh_payment(request)
    assert (info.value.status, info.value.json_body) == (409, True)
    registry.reserve(route, paid_headers("m1", WEI_PER_SECOND), 0.0)
    challenge = registry.refresh_payment(request)
    assert (challenge.manifest_id, challenge.payment_url) == ("m1", f"{SERVICE}/payment")
    assert challenge.orchestrator == SERVICE
    for body in (
        {"sender": "0x12", "manifest_id": "m1"},
        {"sender": PAYER, "manifest_id": " "},
        [],
    ):
        with pytest.raises(RegistryError) as bad:
            parse_refresh_request(body)
        assert (bad.value.status, bad.value.json_body) == (400, True)


# -- stop and release ---------------------------------------------------------------


@pytest.mark.spec("LR-128", "LR-145")
def test_client_stop_releases_with_its_reason() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    sid = _reserved(registry.reserve(route, NO_PAY, 0.0)).session_id
    stopped = registry.stop(route, sid, 1.0)
    assert stopped.reason is ReleaseReason.CLIENT_STOP
    assert stopped.release is not None
    assert stopped.release.reason is ReleaseReason.CLIENT_STOP
    assert registry.runners()[0].session_ids == ()


@pytest.mark.spec("LR-129", "LR-131")
def test_stop_of_unknown_session_is_204_and_of_unknown_runner_404() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    assert registry.stop(route, "never", 0.0) == registry.stop(route, "never", 0.0)
    assert registry.stop(route, "never", 0.0).reason is None
    with pytest.raises(RunnerNotFound):
        registry.stop("nobody", "never", 0.0)


@pytest.mark.spec("LR-130")
def test_stop_releases_past_the_ttl_and_on_an_unready_runner() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    sid = _reserved(registry.reserve(route, NO_PAY, 0.0)).session_id
    stopped = registry.stop(route, sid, 22.0)  # TTL lapsed, not yet reaped
    assert stopped.release is not None
    other, other_secret = register(registry, runner_id="two")
    sid2 = _reserved(registry.reserve(other, NO_PAY, 0.0)).session_id
    registry.heartbeat(beat(runner_id="two", status="loading"), other_secret, 1.0)
    assert registry.stop(other, sid2, 2.0).release is not None


@pytest.mark.spec("LR-132", "LR-143")
def test_release_order_event_then_events_message_then_channel_close() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    reserved = _reserved(registry.reserve(route, NO_PAY, 0.0))
    sid = reserved.session_id
    token = registry.session_target(route, sid, "", 0.0).headers.session_token
    specs = (ChannelSpec(name="in"), ChannelSpec(name="events"))
    registry.create_channels(route, sid, token, ChannelsRequest(channels=specs), 0.0)
    proxy = registry.create_proxy(route, sid, token, ProxyRequest(), 0.0)
    release = registry.stop(route, sid, 1.0).release
    assert release is not None
    assert [type(e) for e in release.effects] == [SendSessionEvent, PublishRelease, CloseChannels]
    publish = release.effects[1]
    assert isinstance(publish, PublishRelease)
    assert publish.channel_name == f"{sid}-events"
    assert publish.message(1234) == {
        "queue_event_type": "ai_stream_events",
        "event": {
            "type": "session_released",
            "timestamp": 1234,
            "session_id": sid,
            "reason": "client_stop",
        },
    }
    close = release.effects[2]
    assert isinstance(close, CloseChannels)
    assert set(close.channel_names) == {f"{sid}-in", f"{sid}-events"}
    assert release.proxy_ids == (proxy.proxy_id,)


CAUSES = {
    ReleaseReason.CLIENT_STOP: lambda r, route, sid, tok, now: r.stop(route, sid, now),
    ReleaseReason.RUNNER_STOP: lambda r, route, sid, tok, now: r.runner_stop(route, sid, tok, now),
    ReleaseReason.IDLE_TIMEOUT: lambda r, route, sid, tok, now: r.reap(now + 10),
    ReleaseReason.RUNNER_EXPIRED: lambda r, route, sid, tok, now: r.reap(now + 21),
    ReleaseReason.ORCHESTRATOR_SHUTDOWN: lambda r, route, sid, tok, now: r.shutdown(now),
}


@pytest.mark.spec("LR-133", "LR-141", "LR-144", "LR-145", "LR-146")
@pytest.mark.parametrize("reason", list(CAUSES))
def test_every_cause_releases_with_its_reason_and_it_is_remembered(reason: ReleaseReason) -> None:
    registry = make_registry(session_idle_timeout=10.0)
    route, _secret = register(registry)
    sid = _reserved(registry.reserve(route, NO_PAY, 0.0)).session_id
    token = registry.session_target(route, sid, "", 0.0).headers.session_token
    CAUSES[reason](registry, route, sid, token, 1.0)
    now = 100.0
    assert registry.stop(route, sid, now).reason is reason
    with pytest.raises(SessionNotFound) as info:
        registry.session_target(route, sid, "", now)
    assert info.value.release_reason is reason
    with pytest.raises(SessionNotFound) as top:
        registry.top_up(route, sid, PaymentHeaders(payment="x", segment="y"), now)
    assert top.value.release_reason is reason


@pytest.mark.spec("LR-145")
def test_stop_after_the_runner_left_answers_the_remembered_reason() -> None:
    registry = make_registry()
    route, secret = register(registry)
    sid = _reserved(registry.reserve(route, NO_PAY, 0.0)).session_id
    registry.unregister(route, secret, 1.0)
    stopped = registry.stop(route, sid, 2.0)
    assert (stopped.reason, stopped.release) == (ReleaseReason.RUNNER_UNREGISTERED, None)


@pytest.mark.spec("LR-144")
def test_release_reasons_are_kept_ten_minutes_and_bounded() -> None:
    registry = make_registry(release_memory_max=2, heartbeat_ttl=10_000.0)
    route, _secret = register(registry, capacity=5)
    sids = [_reserved(registry.reserve(route, NO_PAY, 0.0)).session_id for _ in range(3)]
    for sid in sids:
        registry.stop(route, sid, 1.0)
    assert registry.stop(route, sids[0], 2.0).reason is None  # evicted: the oldest of 3
    assert registry.stop(route, sids[1], 2.0).reason is ReleaseReason.CLIENT_STOP
    registry.reap(601.0)
    assert registry.stop(route, sids[2], 601.0).reason is ReleaseReason.CLIENT_STOP
    registry.reap(602.0)
    assert registry.stop(route, sids[2], 602.0).reason is None


@pytest.mark.spec("LR-148")
def test_a_session_is_released_once() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    sid = _reserved(registry.reserve(route, NO_PAY, 0.0)).session_id
    token = registry.session_target(route, sid, "", 0.0).headers.session_token
    first = registry.runner_stop(route, sid, token, 1.0)
    assert first.reason is ReleaseReason.RUNNER_STOP
    again = registry.stop(route, sid, 2.0)
    assert (again.release, again.reason) == (None, ReleaseReason.RUNNER_STOP)
    assert registry.reap(100.0).releases == ()
