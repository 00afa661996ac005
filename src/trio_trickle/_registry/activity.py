"""Client traffic through the orchestrator, and idle release (LR-107 to LR-111, LR-134 to LR-137).

The orchestrator sees a session's client only through its traffic: requests
proxied to the runner (by the session's app URL or a proxy URL), payments, and
trickle requests on its channels. A session none of these touched for the idle
timeout is released with reason ``idle_timeout``. Trickle traffic counts only
when one channel saw both a publish and a subscribe within the window: a dead
client stops one direction on every channel while the runner keeps the other.
"""

from __future__ import annotations

import attrs

from .._wire.live_runner_channels import ProxiedSessionHeaders
from .config import join_url
from .effects import Release, ReleaseReason
from .errors import NotFound
from .reservation import session_headers
from .sessions import find_session, release_session
from .state import RegistryState, SessionRecord

__all__: list[str] = []


@attrs.frozen(kw_only=True)
class ProxyTarget:
    """Proxy the request to ``target_url`` + ``app_path`` with ``headers`` (LR-107, LR-108)."""

    route: str
    session_id: str
    target_url: str
    app_path: str
    headers: ProxiedSessionHeaders


@attrs.frozen(kw_only=True)
class LocalRoute:
    """Serve the request as if it had been sent to ``path`` (a single-shot runner's proxy URL)."""

    path: str


@attrs.frozen(kw_only=True)
class RequestTicket:
    """An open proxied request; hand it back to :func:`request_closed`."""

    route: str
    session_id: str
    seq: int


def session_target(
    state: RegistryState, route: str, session_id: str, app_path: str, now: float
) -> ProxyTarget:
    """``ANY /apps/{route}/session/{sid}/app/{path…}``; 404 names a release (LR-109, LR-146)."""
    record, _session = find_session(state, route, session_id, now)
    return ProxyTarget(
        route=route,
        session_id=session_id,
        target_url=record.registration.runner_url,
        app_path=app_path,
        headers=session_headers(state, record, session_id),
    )


def resolve_proxy(
    state: RegistryState, host: str, path: str, now: float
) -> ProxyTarget | LocalRoute | None:
    """A request to a proxy URL (LR-090, LR-125); None when ``host``/``path`` is not one."""
    matched = state.config.proxy_template.match(host, path)
    if matched is None:
        return None
    proxy_id, app_path = matched
    owner = state.proxy_index.get(proxy_id)
    if owner is not None:
        try:
            record, session = find_session(state, owner[0], owner[1], now)
        except NotFound:
            pass
        else:
            return ProxyTarget(
                route=record.route,
                session_id=session.session_id,
                target_url=session.proxies[proxy_id],
                app_path=app_path,
                headers=session_headers(state, record, session.session_id),
            )
    runner = state.runners.get(proxy_id)
    if runner is not None and runner.registration.proxy and runner.single_shot:
        path = join_url("", "apps", proxy_id, "app")
        return LocalRoute(path=f"{path}/{app_path}" if app_path else path)
    raise NotFound("live runner proxy not found")


def _session(state: RegistryState, route: str, session_id: str) -> SessionRecord | None:
    record = state.runners.get(route)
    return None if record is None else record.sessions.get(session_id)


def request_opened(
    state: RegistryState, route: str, session_id: str, now: float
) -> RequestTicket | None:
    """A proxied request started: the session is active while it is open (LR-135)."""
    session = _session(state, route, session_id)
    if session is None:
        return None
    session.open_requests += 1
    session.last_activity = max(session.last_activity, now)
    return RequestTicket(route=route, session_id=session_id, seq=session.seq)


def request_closed(state: RegistryState, ticket: RequestTicket, now: float) -> None:
    """The proxied request of ``ticket`` ended; the idle window starts again (LR-135)."""
    session = _session(state, ticket.route, ticket.session_id)
    if session is None or session.seq != ticket.seq:
        return
    session.open_requests = max(0, session.open_requests - 1)
    session.last_activity = max(session.last_activity, now)


def channel_request(state: RegistryState, channel_name: str, *, publish: bool, now: float) -> None:
    """A trickle publish (or subscribe) request on a session channel (LR-137)."""
    owner = state.channel_index.get(channel_name)
    if owner is None:
        return
    route, session_id, name = owner
    session = _session(state, route, session_id)
    channel = None if session is None else session.channels.get(name)
    if channel is None:
        return
    if publish:
        channel.last_publish = now
    else:
        channel.last_subscribe = now


def last_active(session: SessionRecord) -> float:
    """When ``session`` was last active: reservation, request, payment or two-way traffic."""
    last = session.last_activity
    for channel in session.channels.values():
        if channel.last_publish is not None and channel.last_subscribe is not None:
            last = max(last, min(channel.last_publish, channel.last_subscribe))
    return last


def release_idle(state: RegistryState, now: float) -> tuple[Release, ...]:
    """Release every persistent session idle for the idle timeout (LR-134); 0 disables."""
    timeout = state.config.session_idle_timeout
    if timeout <= 0:
        return ()
    releases: list[Release] = []
    for record in list(state.runners.values()):
        if record.single_shot:
            continue
        for session in sorted(record.sessions.values(), key=lambda s: s.seq):
            if session.open_requests == 0 and now - last_active(session) >= timeout:
                reason = ReleaseReason.IDLE_TIMEOUT
                releases.append(release_session(state, record, session, reason, now))
    return tuple(releases)
