"""The registry's runner side: registration, heartbeat, unregister, expiry, static health."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.test_registry_support import (
    RUNNER_ADDR,
    SECRET,
    CountingRandom,
    beat,
    make_registry,
    register,
)
from trio_trickle import InvalidMessage
from trio_trickle._registry import ids
from trio_trickle._registry.config import RegistryConfig
from trio_trickle._registry.effects import (
    CloseO2R,
    OpenO2R,
    ReleaseReason,
    SendSessionEvent,
)
from trio_trickle._registry.errors import NotFound, RegistryError, RunnerNotFound, Unauthorized
from trio_trickle._registry.registry import LiveRunnerRegistry
from trio_trickle._registry.static import StaticRunnerEntry
from trio_trickle._wire.live_runner_payment import PaymentHeaders

NO_PAY = PaymentHeaders()
B32 = "[a-z2-7]"


def _static(registry: LiveRunnerRegistry, healthy: bool = True, **fields: Any) -> str:
    body = {
        "label": "gpu-box",
        "runner_url": "http://static.internal:9000",
        "app": "app",
        "health_url": "/health",
        **fields,
    }
    result = registry.register_static([StaticRunnerEntry.from_wire(body)], [healthy], 0.0)
    return result.registrations[0].route


# -- registration and heartbeat ------------------------------------------------------


@pytest.mark.spec("LR-001", "LR-022", "LR-023", "LR-025", "LR-044")
def test_first_heartbeat_registers_with_secret_and_o2r() -> None:
    registry = make_registry()
    accepted = registry.heartbeat(beat(runner_id=None), SECRET, 0.0)
    response = accepted.response
    assert re.fullmatch(f"runner_{B32}{{8}}", response.runner_id)
    assert response.orchestrator == RUNNER_ADDR
    assert (response.heartbeat_interval, response.heartbeat_ttl) == (5.0, 20.0)
    assert response.session_ids == ()
    assert response.heartbeat_secret
    o2r = response.o2r
    assert o2r is not None
    assert re.fullmatch(f"{response.runner_id}-{B32}{{16}}-o2r", o2r.channel_name)
    assert o2r.url == f"{RUNNER_ADDR}/ai/trickle/{o2r.channel_name}"
    assert (o2r.name, o2r.mime_type) == ("o2r", "application/json")
    assert accepted.effects == (OpenO2R(runner_id=response.runner_id, channel=o2r),)
    wire = response.to_wire()
    assert wire["heartbeat_interval"] == "5s"
    assert wire["heartbeat_ttl"] == "20s"


@pytest.mark.spec("LR-024", "LR-003")
def test_later_heartbeat_uses_the_heartbeat_secret_and_gets_no_secret_back() -> None:
    registry = make_registry()
    _route, secret = register(registry)
    again = registry.heartbeat(beat(), secret, 3.0)
    assert again.response.heartbeat_secret is None
    assert again.response.o2r is None
    assert not again.new_registration
    assert again.effects == ()
    assert "heartbeat_secret" not in again.response.to_wire()


@pytest.mark.spec("LR-003", "LR-006")
@pytest.mark.parametrize("authorization", ["", "wrong", f"Bearer {SECRET}", SECRET + " "])
def test_first_heartbeat_needs_the_raw_orchestrator_secret(authorization: str) -> None:
    registry = make_registry()
    with pytest.raises(Unauthorized, match=r"^invalid registration authorization$") as info:
        registry.heartbeat(beat(), authorization, 0.0)
    assert info.value.status == 401
    assert registry.runners() == ()


@pytest.mark.spec("LR-005")
def test_registration_disabled_without_orchestrator_secret() -> None:
    registry = LiveRunnerRegistry(RegistryConfig(service_uri="http://o"), random=CountingRandom())
    with pytest.raises(NotFound, match=r"^dynamic live runner registration is disabled$") as info:
        registry.heartbeat(beat(), "", 0.0)
    assert info.value.status == 404


@pytest.mark.spec("LR-007")
def test_registered_runner_refuses_the_orchestrator_secret() -> None:
    registry = make_registry()
    register(registry)
    with pytest.raises(Unauthorized, match=r"^invalid heartbeat authorization$"):
        registry.heartbeat(beat(), SECRET, 1.0)


@pytest.mark.spec("LR-004")
def test_secrets_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = ids.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(ids.hmac, "compare_digest", spy)
    registry = make_registry()
    _route, secret = register(registry)
    registry.heartbeat(beat(), secret, 1.0)
    assert compared == [(SECRET.encode(), SECRET.encode()), (secret.encode(), secret.encode())]


@pytest.mark.spec("LR-139")
def test_body_is_checked_before_authentication() -> None:
    registry = make_registry(onchain=True)
    with pytest.raises(InvalidMessage) as info:
        registry.heartbeat(beat(price_info=None), "wrong secret", 0.0)
    assert info.value.status == 400


@pytest.mark.spec("LR-139", "LR-039")
def test_expiry_is_checked_before_the_secret_and_refusals_change_nothing() -> None:
    registry = make_registry()
    _route, _secret = register(registry)
    before = registry.runners()
    with pytest.raises(RunnerNotFound, match=r"^runner not found$"):
        registry.heartbeat(beat(app="changed"), "wrong", 20.5)
    with pytest.raises(Unauthorized):
        registry.heartbeat(beat(app="changed"), "wrong", 1.0)
    assert registry.runners() == before
    assert registry.discovery(1.0).entries[0].runners[0].app == "live-video-to-video/scope"


@pytest.mark.spec("LR-015")
def test_capacity_zero_reads_as_one() -> None:
    registry = make_registry()
    register(registry, capacity=0)
    assert registry.runners()[0].capacity == 1
    registry.reserve("runner_one", NO_PAY, 0.0)
    with pytest.raises(RegistryError) as info:
        registry.reserve("runner_one", NO_PAY, 0.0)
    assert info.value.status == 503


@pytest.mark.spec("LR-016")
@pytest.mark.parametrize(
    ("gpu", "name"),
    [(0, "NVIDIA L40S"), (1, "NVIDIA H100"), (2, None), (-1, None)],
)
def test_gpu_index_takes_the_host_gpu_name(gpu: Any, name: str | None) -> None:
    registry = make_registry(host_gpu_names=("NVIDIA L40S", "NVIDIA H100"))
    register(registry, gpu=gpu)
    listed = registry.discovery(0.0).entries[0].runners[0].gpu
    assert listed is not None
    assert listed.id == str(gpu)
    assert listed.name == name


@pytest.mark.spec("LR-016")
def test_gpu_object_keeps_its_own_name() -> None:
    registry = make_registry(host_gpu_names=("NVIDIA L40S",))
    register(registry, gpu={"id": "0", "name": "Mine", "vram_mb": 1})
    listed = registry.discovery(0.0).entries[0].runners[0].gpu
    assert listed is not None
    assert listed.name == "Mine"


@pytest.mark.spec("LR-017")
@pytest.mark.parametrize(
    "price",
    [
        None,
        {"price": 0},
        {"price": "-1"},
        {"price": 1, "currency": "eur"},
        {"price": 1, "unit": "day"},
    ],
)
def test_onchain_requires_a_usd_price(price: Any) -> None:
    registry = make_registry(onchain=True)
    with pytest.raises(InvalidMessage) as info:
        registry.heartbeat(beat(price_info=price), SECRET, 0.0)
    assert info.value.status == 400
    assert registry.runners() == ()


@pytest.mark.spec("LR-020")
@pytest.mark.parametrize(
    "price",
    [
        {"price": "abc"},
        {"price": ""},
        {"price": [1]},
        {"price": True},
        {"currency": 5},
        {"unit": {}},
    ],
)
def test_offchain_still_refuses_what_go_cannot_decode(price: dict[str, Any]) -> None:
    registry = make_registry()
    with pytest.raises(InvalidMessage) as info:
        registry.heartbeat(beat(price_info=price), SECRET, 0.0)
    assert info.value.status == 400


@pytest.mark.spec("LR-020", "LR-061")
@pytest.mark.parametrize(
    "price",
    [
        {"price_per_unit": 10, "pixels_per_unit": 1, "unit": "USD"},
        {"price": "0"},
        {"price": -3, "currency": "eur", "unit": "day"},
        {},
    ],
)
def test_offchain_ignores_price_values(price: dict[str, Any]) -> None:
    registry = make_registry()
    register(registry, price_info=price)
    assert registry.discovery(0.0).entries[0].runners[0].price_info is None


@pytest.mark.spec("LR-026")
def test_secrets_derive_from_32_random_bytes_per_runner() -> None:
    drawn: list[int] = []

    class Spy(CountingRandom):
        def token_bytes(self, n: int) -> bytes:
            drawn.append(n)
            return super().token_bytes(n)

    config = RegistryConfig(service_uri="http://o", orchestrator_secret=SECRET)
    registry = LiveRunnerRegistry(config, random=Spy())
    first = registry.heartbeat(beat(runner_id="a"), SECRET, 0.0).response
    second = registry.heartbeat(beat(runner_id="b"), SECRET, 0.0).response
    assert drawn == [32, 32]
    assert first.heartbeat_secret
    assert second.heartbeat_secret
    assert first.heartbeat_secret != second.heartbeat_secret
    assert len(first.heartbeat_secret) == 52  # base32 of a 32-byte HMAC-SHA256
    assert first.o2r
    assert second.o2r
    assert first.o2r.channel_name[2:-4] != second.o2r.channel_name[2:-4]


@pytest.mark.spec("LR-027")
def test_heartbeat_replaces_the_registration_and_restarts_the_ttl() -> None:
    registry = make_registry()
    route, secret = register(registry, metadata="m", version="1")
    registry.heartbeat(beat(app="other", capacity=5, metadata=None), secret, 15.0)
    (listed,) = registry.discovery(30.0).entries[0].runners
    assert (listed.app, listed.capacity, listed.metadata, listed.version) == (
        "other",
        5,
        None,
        None,
    )
    assert registry.reap(34.0).removed == ()
    assert registry.reap(35.5).removed[0].route == route


@pytest.mark.spec("LR-022", "LR-028")
def test_runner_session_ids_neither_create_nor_keep_sessions() -> None:
    registry = make_registry()
    route, secret = register(registry, capacity=3)
    first = registry.reserve(route, NO_PAY, 1.0)
    second = registry.reserve(route, NO_PAY, 2.0)
    ids_held = (first.session_id, second.session_id)  # type: ignore[union-attr]
    response = registry.heartbeat(beat(capacity=3, session_ids=["ghost"]), secret, 3.0).response
    assert response.session_ids == ids_held
    assert registry.runners()[0].session_ids == ids_held
    response = registry.heartbeat(beat(capacity=3, session_ids=[]), secret, 4.0).response
    assert response.session_ids == ids_held


@pytest.mark.spec("LR-149")
def test_stale_session_ids_get_a_released_event_with_the_reason() -> None:
    registry = make_registry()
    route, secret = register(registry)
    gone = registry.reserve(route, NO_PAY, 1.0).session_id  # type: ignore[union-attr]
    kept = registry.reserve(route, NO_PAY, 1.0).session_id  # type: ignore[union-attr]
    registry.stop(route, gone, 2.0)
    accepted = registry.heartbeat(beat(session_ids=[kept, gone, "never"]), secret, 3.0)
    assert accepted.stale_session_ids == (gone, "never")
    reasons = [(e.session_id, e.event, e.reason) for e in accepted.effects]  # type: ignore[union-attr]
    assert reasons == [
        (gone, "released", ReleaseReason.CLIENT_STOP),
        ("never", "released", ReleaseReason.UNKNOWN_SESSION),
    ]
    again = registry.heartbeat(beat(session_ids=[gone]), secret, 4.0)
    assert [e.session_id for e in again.effects] == [gone]  # type: ignore[union-attr]


@pytest.mark.spec("LR-047", "LR-048", "LR-142")
def test_o2r_session_events_carry_the_reason() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    reserved = registry.reserve(route, NO_PAY, 1.0)
    (event,) = reserved.effects  # type: ignore[union-attr]
    at = datetime(2026, 8, 18, 12, 0, 0, 500000, tzinfo=UTC)
    assert isinstance(event, SendSessionEvent)
    sid = reserved.session_id  # type: ignore[union-attr]
    assert event.message(at) == {
        "event": "reserved",
        "session": sid,
        "timestamp": "2026-08-18T12:00:00.5Z",
    }
    (released,) = registry.stop(route, sid, 2.0).release.effects  # type: ignore[union-attr]
    assert isinstance(released, SendSessionEvent)
    assert released.message(at)["reason"] == "client_stop"
    assert released.message(at)["event"] == "released"


# -- unregister and expiry -----------------------------------------------------------


@pytest.mark.spec("LR-033", "LR-040")
def test_unregister_releases_sessions_before_closing_o2r() -> None:
    registry = make_registry()
    route, secret = register(registry)
    sids = [registry.reserve(route, NO_PAY, t).session_id for t in (1.0, 2.0)]  # type: ignore[union-attr]
    removed = registry.unregister(route, secret, 3.0)
    assert removed.reason is ReleaseReason.RUNNER_UNREGISTERED
    assert [r.session_id for r in removed.releases] == sids
    kinds = [(type(e).__name__, getattr(e, "session_id", None)) for e in removed.effects]
    assert kinds == [
        ("SendSessionEvent", sids[0]),
        ("SendSessionEvent", sids[1]),
        ("CloseO2R", None),
    ]
    assert all(r.reason is ReleaseReason.RUNNER_UNREGISTERED for r in removed.releases)
    assert registry.runners() == ()


@pytest.mark.spec("LR-034")
def test_unregister_unknown_or_expired_is_404() -> None:
    registry = make_registry()
    route, secret = register(registry)
    with pytest.raises(RunnerNotFound):
        registry.unregister("nobody", secret, 1.0)
    with pytest.raises(RunnerNotFound):
        registry.unregister(route, secret, 21.0)


@pytest.mark.spec("LR-035", "LR-036")
def test_unregister_static_is_400_and_wrong_secret_401() -> None:
    registry = make_registry()
    static_route = _static(registry)
    with pytest.raises(RegistryError, match=r"^static runner cannot unregister") as info:
        registry.unregister(static_route, "", 1.0)
    assert info.value.status == 400
    route, _secret = register(registry)
    with pytest.raises(Unauthorized, match=r"^invalid authorization$"):
        registry.unregister(route, SECRET, 1.0)


@pytest.mark.spec("LR-038", "LR-039", "LR-040")
def test_expired_runner_leaves_discovery_then_is_reaped_with_its_sessions() -> None:
    registry = make_registry()
    route, secret = register(registry)
    sid = registry.reserve(route, NO_PAY, 1.0).session_id  # type: ignore[union-attr]
    assert registry.reap(20.0).removed == ()  # exactly the TTL is not yet past it
    assert registry.discovery(20.5).entries[0].runners == ()
    with pytest.raises(RunnerNotFound):
        registry.reserve(route, NO_PAY, 20.5)
    with pytest.raises(RunnerNotFound):
        registry.heartbeat(beat(), secret, 20.5)
    reaped = registry.reap(25.0)
    (removal,) = reaped.removed
    assert removal.reason is ReleaseReason.RUNNER_EXPIRED
    assert [(r.session_id, r.reason) for r in reaped.releases] == [
        (sid, ReleaseReason.RUNNER_EXPIRED)
    ]
    assert isinstance(reaped.effects[0], SendSessionEvent)
    assert isinstance(reaped.effects[-1], CloseO2R)
    assert registry.runners() == ()
    assert registry.heartbeat(beat(), SECRET, 26.0).new_registration


@pytest.mark.spec("LR-043")
def test_not_ready_runner_is_neither_listed_nor_reservable() -> None:
    registry = make_registry()
    route, secret = register(registry, status="loading")
    assert registry.discovery(0.0).entries[0].runners == ()
    with pytest.raises(RunnerNotFound):
        registry.reserve(route, NO_PAY, 0.0)
    registry.heartbeat(beat(status="ready"), secret, 1.0)
    assert len(registry.discovery(1.0).entries[0].runners) == 1


# -- static runners ------------------------------------------------------------------


@pytest.mark.spec("LR-021")
def test_static_runner_heartbeat_is_400_only_with_its_empty_secret() -> None:
    registry = make_registry()
    route = _static(registry)
    with pytest.raises(RegistryError, match=r"^static runner cannot heartbeat$") as info:
        registry.heartbeat(beat(runner_id=route), "", 1.0)
    assert info.value.status == 400
    with pytest.raises(Unauthorized, match=r"^invalid heartbeat authorization$"):
        registry.heartbeat(beat(runner_id=route), SECRET, 1.0)


@pytest.mark.spec("LR-042", "LR-141")
def test_static_runner_turns_unavailable_after_two_failed_checks() -> None:
    registry = make_registry()
    route = _static(registry, routing="label")
    assert route == "gpu-box"
    sid = registry.reserve(route, NO_PAY, 1.0).session_id  # type: ignore[union-attr]
    first = registry.record_health(route, False, 5.0)
    assert (first.status, first.releases) == ("ready", ())
    assert registry.runners()[0].session_ids == (sid,)
    second = registry.record_health(route, False, 10.0)
    assert second.status == "unavailable"
    assert [(r.session_id, r.reason) for r in second.releases] == [
        (sid, ReleaseReason.RUNNER_UNHEALTHY)
    ]
    assert registry.discovery(10.0).entries[0].runners == ()
    assert registry.record_health(route, True, 15.0).status == "ready"
    registry.record_health(route, False, 20.0)
    assert registry.record_health(route, True, 25.0).status == "ready"  # the count restarted


@pytest.mark.spec("LR-042")
def test_static_registration_check_counts_and_a_new_failing_runner_starts_unavailable() -> None:
    registry = make_registry()
    assert registry.runners() == ()
    route = _static(registry, healthy=False)
    assert registry.runners()[0].status == "unavailable"
    registry.record_health(route, True, 1.0)
    registry.reserve(route, NO_PAY, 2.0)
    body = {
        "label": "gpu-box",
        "runner_url": "http://static.internal:9000",
        "app": "app2",
        "health_url": "http://static.internal:9000/h",
    }
    entry = StaticRunnerEntry.from_wire(body)
    again = registry.register_static([entry], [False], 3.0)
    assert again.registrations[0].route == route
    assert again.releases == ()
    assert (
        registry.record_health(route, False, 4.0).releases[0].reason
        is ReleaseReason.RUNNER_UNHEALTHY
    )
    assert registry.health_targets() == ((route, "http://static.internal:9000/h", 200),)


def test_static_entries_are_checked_before_any_is_registered() -> None:
    registry = make_registry()
    good = {"label": "a", "runner_url": "http://s", "app": "x", "health_url": "/h"}
    with pytest.raises(InvalidMessage, match="duplicate label"):
        registry.register_static(
            [StaticRunnerEntry.from_wire(good), StaticRunnerEntry.from_wire(good)],
            [True, True],
            0.0,
        )
    assert registry.runners() == ()
    for bad in (
        {**good, "health_url": ""},
        {**good, "label": " a"},
        {**good, "routing": "x"},
        {**good, "healthy_status_code": 99},
        {**good, "routing": "label", "label": "a/b"},
    ):
        with pytest.raises(InvalidMessage):
            StaticRunnerEntry.from_wire(bad)
