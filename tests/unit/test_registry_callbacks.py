"""Runner callbacks, the session proxy, proxy URLs and idle release."""

from __future__ import annotations

import pytest

from tests.unit.test_registry_support import (
    RUNNER_ADDR,
    SERVICE,
    FakeVerifier,
    beat,
    make_registry,
    paid_headers,
    register,
)
from trio_trickle import InvalidMessage
from trio_trickle._registry.activity import LocalRoute, ProxyTarget
from trio_trickle._registry.effects import CloseChannels, OpenChannels, ReleaseReason
from trio_trickle._registry.errors import (
    NotFound,
    RegistryError,
    RunnerNotFound,
    SessionNotFound,
    Unauthorized,
)
from trio_trickle._registry.proxy_urls import ProxyTemplate
from trio_trickle._registry.registry import LiveRunnerRegistry
from trio_trickle._registry.reservation import Reserved
from trio_trickle._wire.live_runner_channels import (
    ChannelsDeleteRequest,
    ChannelSpec,
    ChannelsRequest,
    ProxyRequest,
)
from trio_trickle._wire.live_runner_payment import PaymentHeaders

NO_PAY = PaymentHeaders()


def _session(registry: LiveRunnerRegistry, route: str, now: float = 0.0) -> tuple[str, str]:
    """A new session's ID and token."""
    reserved = registry.reserve(route, NO_PAY, now)
    assert isinstance(reserved, Reserved)
    sid = reserved.session_id
    return sid, registry.session_target(route, sid, "", now).headers.session_token


def _channels(*names: str, mime: str | None = None) -> ChannelsRequest:
    return ChannelsRequest(channels=tuple(ChannelSpec(name=n, mime_type=mime) for n in names))


# -- the session proxy ---------------------------------------------------------------


@pytest.mark.spec("LR-107", "LR-108", "LR-109")
def test_session_proxy_target_and_headers() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    sid, token = _session(registry, route)
    target = registry.session_target(route, sid, "v1/stream", 1.0)
    assert (target.target_url, target.app_path) == ("http://runner.internal:8080/base", "v1/stream")
    assert target.headers.to_wire() == {
        "Livepeer-Runner-Route": route,
        "Livepeer-Session-Id": sid,
        "Livepeer-Session-Token": token,
        "Livepeer-Session-Control": f"{RUNNER_ADDR}/runner/{route}/session/{sid}",
    }
    with pytest.raises(SessionNotFound) as info:
        registry.session_target(route, "other", "", 1.0)
    assert (info.value.status, info.value.release_reason) == (404, None)


@pytest.mark.spec("LR-090", "LR-125")
@pytest.mark.parametrize(
    ("template", "host", "path", "expected"),
    [
        (None, "orch.example.com:8935", "/run/abc/x/y", ("abc", "x/y")),
        (None, "orch.example.com:8935", "/run/abc", ("abc", "")),
        (None, "other.example.com", "/run/abc", None),
        ("https://{proxy}.run.example.com", "ABC.run.example.com:443", "/x", ("abc", "x")),
        ("https://{proxy}.run.example.com/app", "abc.run.example.com", "/app/x", ("abc", "x")),
        ("https://{proxy}.run.example.com/app", "abc.run.example.com", "/other", None),
        ("https://p.example.com/a/{proxy}/", "p.example.com", "/a/id/rest", ("id", "rest")),
    ],
)
def test_proxy_template_matches_what_it_makes(
    template: str | None, host: str, path: str, expected: tuple[str, str] | None
) -> None:
    parsed = ProxyTemplate.parse(template, SERVICE)
    assert parsed.match(host, path) == expected


@pytest.mark.parametrize(
    "template",
    [
        "https://o/{proxy}/{proxy}",
        "https://o/run",
        "ftp://o/{proxy}",
        "https://o/{proxy}/x",
        "/run/{proxy}",
    ],
)
def test_bad_proxy_templates_are_refused(template: str) -> None:
    with pytest.raises(InvalidMessage):
        ProxyTemplate.parse(template, SERVICE)


@pytest.mark.spec("LR-125", "LR-126")
def test_runner_made_proxies() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    sid, token = _session(registry, route)
    plain = registry.create_proxy(route, sid, token, ProxyRequest(), 0.0)
    assert len(plain.proxy_id) == 26
    assert plain.url == f"{SERVICE}/run/{plain.proxy_id}"
    ui = registry.create_proxy(
        route, sid, token, ProxyRequest(target_url="http://RUNNER.internal:9000/ui"), 0.0
    )
    target = registry.resolve_proxy("orch.example.com:8935", f"/run/{ui.proxy_id}/page", 0.0)
    assert isinstance(target, ProxyTarget)
    assert (target.target_url, target.app_path) == ("http://RUNNER.internal:9000/ui", "page")
    with pytest.raises(RegistryError, match="hostname must match") as info:
        registry.create_proxy(route, sid, token, ProxyRequest(target_url="http://evil:8080"), 0.0)
    assert info.value.status == 400
    registry.stop(route, sid, 1.0)
    with pytest.raises(NotFound, match=r"^live runner proxy not found$"):
        registry.resolve_proxy("orch.example.com:8935", f"/run/{ui.proxy_id}", 1.0)
    assert registry.resolve_proxy("elsewhere", "/run/x", 1.0) is None


@pytest.mark.spec("LR-057")
def test_single_shot_proxy_runner_routes_locally() -> None:
    registry = make_registry()
    route, _secret = register(registry, mode="single-shot", proxy=True)
    assert registry.discovery(0.0).entries[0].runners[0].url == f"{SERVICE}/run/{route}"
    local = registry.resolve_proxy("orch.example.com:8935", f"/run/{route}/infer", 0.0)
    assert local == LocalRoute(path=f"/apps/{route}/app/infer")


# -- callbacks -----------------------------------------------------------------------


@pytest.mark.spec("LR-112", "LR-113")
def test_callbacks_check_runner_and_session_then_token() -> None:
    registry = make_registry()
    route, secret = register(registry)
    sid, token = _session(registry, route)
    with pytest.raises(Unauthorized, match=r"^invalid authorization$") as info:
        registry.create_channels(route, sid, token + "x", _channels("in"), 0.0)
    assert info.value.status == 401
    with pytest.raises(SessionNotFound, match=r"^runner session not found$"):
        registry.create_channels(route, "other", "wrong", _channels("in"), 0.0)
    with pytest.raises(RunnerNotFound):
        registry.create_channels("nobody", sid, "wrong", _channels("in"), 0.0)
    registry.heartbeat(beat(status="draining"), secret, 1.0)
    with pytest.raises(RunnerNotFound):
        registry.create_channels(route, sid, token, _channels("in"), 1.0)


@pytest.mark.spec("LR-114", "LR-115", "LR-117", "LR-118", "LR-119")
def test_create_channels() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    sid, token = _session(registry, route)
    request = ChannelsRequest(
        channels=(ChannelSpec(name=" a/b ", mime_type="video/mp2t"), ChannelSpec(name="ctl"))
    )
    created = registry.create_channels(route, sid, token, request, 0.0)
    assert created.response.to_wire() == {
        "channels": [
            {
                "name": "a-b",
                "channel_name": f"{sid}-a-b",
                "url": f"{SERVICE}/ai/trickle/{sid}-a-b",
                "internal_url": f"{RUNNER_ADDR}/ai/trickle/{sid}-a-b",
                "mime_type": "video/mp2t",
            },
            {
                "name": "ctl",
                "channel_name": f"{sid}-ctl",
                "url": f"{SERVICE}/ai/trickle/{sid}-ctl",
                "internal_url": f"{RUNNER_ADDR}/ai/trickle/{sid}-ctl",
                "mime_type": "application/octet-stream",
            },
        ]
    }
    (opened,) = created.effects
    assert isinstance(opened, OpenChannels)
    assert len(opened.channels) == 2
    again = registry.create_channels(route, sid, token, _channels("a-b", "new", mime="x/y"), 0.0)
    assert again.response.channels[0] == created.response.channels[0]  # unchanged mime type
    (opened,) = again.effects
    assert isinstance(opened, OpenChannels)
    assert [c.name for c in opened.channels] == ["new"]


@pytest.mark.spec("LR-116")
def test_a_refused_channels_request_creates_none() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    sid, token = _session(registry, route)
    with pytest.raises(InvalidMessage):
        registry.create_channels(
            route,
            sid,
            token,
            ChannelsRequest.from_wire({"channels": [{"name": "ok"}, {"name": "b@d"}]}),
            0.0,
        )
    deleted = ChannelsDeleteRequest(channels=("ok",))
    with pytest.raises(NotFound):
        registry.delete_channels(route, sid, token, deleted, 0.0)


@pytest.mark.spec("LR-121", "LR-122", "LR-123", "LR-124")
def test_delete_channels_is_all_or_nothing() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    sid, token = _session(registry, route)
    registry.create_channels(route, sid, token, _channels("in", "out"), 0.0)
    with pytest.raises(NotFound, match=r"^trickle channel not found$") as info:
        registry.delete_channels(
            route, sid, token, ChannelsDeleteRequest(channels=("in", "gone")), 0.0
        )
    assert info.value.status == 404
    deleted = registry.delete_channels(
        route, sid, token, ChannelsDeleteRequest(channels=("in", "out")), 0.0
    )
    assert deleted.response.to_wire() == {"deleted": ["in", "out"]}
    assert deleted.effects == (CloseChannels(channel_names=(f"{sid}-in", f"{sid}-out")),)


@pytest.mark.spec("LR-127")
def test_runner_stop_releases_its_session() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    sid, token = _session(registry, route)
    with pytest.raises(Unauthorized):
        registry.runner_stop(route, sid, "wrong", 0.0)
    release = registry.runner_stop(route, sid, token, 0.0)
    assert (release.session_id, release.reason) == (sid, ReleaseReason.RUNNER_STOP)
    assert registry.runners()[0].session_ids == ()


# -- idle release --------------------------------------------------------------------


#: Idle tests keep their runner registered throughout.
LONG_TTL = 10**6


@pytest.mark.spec("LR-134")
def test_untouched_session_is_released_after_the_idle_timeout() -> None:
    registry = make_registry(heartbeat_ttl=LONG_TTL)
    route, _secret = register(registry)
    sid, _token = _session(registry, route)
    assert registry.reap(59.9).releases == ()
    (release,) = registry.reap(60.0).releases
    assert (release.session_id, release.reason) == (sid, ReleaseReason.IDLE_TIMEOUT)


@pytest.mark.spec("LR-134")
def test_idle_timeout_zero_disables_idle_release() -> None:
    registry = make_registry(session_idle_timeout=0.0, heartbeat_ttl=LONG_TTL)
    route, _secret = register(registry)
    _session(registry, route)
    assert registry.reap(500.0).releases == ()


@pytest.mark.spec("LR-135")
def test_open_proxied_request_keeps_a_session_and_its_end_restarts_the_window() -> None:
    registry = make_registry(heartbeat_ttl=LONG_TTL)
    route, _secret = register(registry)
    sid, _token = _session(registry, route)
    ticket = registry.request_opened(route, sid, 10.0)
    assert ticket is not None
    assert registry.reap(200.0).releases == ()
    registry.request_closed(ticket, 200.0)
    assert registry.reap(259.0).releases == ()
    assert registry.reap(260.0).releases[0].reason is ReleaseReason.IDLE_TIMEOUT


@pytest.mark.spec("LR-136")
def test_accepted_payment_counts_as_activity() -> None:
    registry = make_registry(onchain=True, verifier=FakeVerifier(), heartbeat_ttl=LONG_TTL)
    route, _secret = register(registry)
    registry.reserve(route, paid_headers("m1", 500_000_000_000), 0.0)
    registry.top_up(route, "m1", paid_headers("m1", 500_000_000_000), 50.0)
    assert registry.reap(109.0).releases == ()
    assert registry.reap(110.0).releases[0].session_id == "m1"


@pytest.mark.spec("LR-137")
def test_two_way_channel_traffic_counts_one_way_does_not() -> None:
    registry = make_registry(heartbeat_ttl=LONG_TTL)
    route, _secret = register(registry)
    sid, token = _session(registry, route)
    registry.create_channels(route, sid, token, _channels("in", "out"), 0.0)
    for t in range(0, 100, 2):
        registry.channel_request(f"{sid}-out", publish=True, now=float(t))  # the runner only
    registry.channel_request(f"{sid}-in", publish=False, now=10.0)  # the runner's subscribe
    assert registry.reap(60.0).releases[0].reason is ReleaseReason.IDLE_TIMEOUT
    sid, token = _session(registry, route, 60.0)
    registry.create_channels(route, sid, token, _channels("in"), 60.0)
    registry.channel_request(f"{sid}-in", publish=True, now=100.0)
    registry.channel_request(f"{sid}-in", publish=False, now=110.0)
    assert registry.reap(159.0).releases == ()
    assert registry.reap(160.0).releases[0].session_id == sid


@pytest.mark.spec("LR-134")
def test_single_shot_sessions_are_not_idle_released() -> None:
    registry = make_registry(heartbeat_ttl=LONG_TTL)
    route, _secret = register(registry, mode="single-shot")
    registry.reserve_single_shot(route, NO_PAY, 0.0)
    assert registry.reap(300.0).releases == ()
