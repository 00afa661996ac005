"""Sessions: finding them, making room, adding, releasing, and the client stop.

Every session ends through :func:`release_session`, which is where the LR-132
order lives (O2R event, events-channel message, channel close), where the
reason is remembered (LR-144), and which can only run once per session because
it removes the session first (LR-148). A runner leaves only through
:func:`remove_runner`, which releases every session before it closes the O2R
channel (LR-040), so no session outlives its runner.
"""

from __future__ import annotations

import attrs

from .config import join_url
from .effects import (
    CancelRequest,
    CloseChannels,
    CloseO2R,
    Effect,
    PublishRelease,
    Release,
    ReleaseReason,
    RunnerRemoved,
    SendSessionEvent,
    release_effects,
)
from .errors import Conflict, RunnerNotFound, SessionNotFound, Unavailable
from .ids import new_proxy_id, new_session_id
from .state import PaidState, RegistryState, RunnerRecord, SessionRecord

__all__: list[str] = []

EVENTS_CHANNEL = "events"


@attrs.frozen(kw_only=True)
class Stopped:
    """A client stop's answer: 204, with ``reason`` as the release header when set (LR-145)."""

    reason: ReleaseReason | None
    release: Release | None


def find_runner(state: RegistryState, route: str, now: float) -> RunnerRecord:
    """The runner at ``route``; 404 when unknown or expired (LR-039)."""
    record = state.runners.get(route)
    if record is None or record.expired(now, state.config.heartbeat_ttl):
        raise RunnerNotFound()
    return record


def find_ready(state: RegistryState, route: str, now: float) -> RunnerRecord:
    """The runner at ``route``; 404 also when it is not ready (LR-043, LR-069)."""
    record = find_runner(state, route, now)
    if not record.ready:
        raise RunnerNotFound()
    return record


def find_session(
    state: RegistryState, route: str, session_id: str, now: float
) -> tuple[RunnerRecord, SessionRecord]:
    """A held session of a ready runner; a released one's 404 names why (LR-146)."""
    remembered = state.released.reason(route, session_id, now)
    try:
        record = find_ready(state, route, now)
    except RunnerNotFound:
        if remembered is not None:
            raise SessionNotFound(release_reason=remembered) from None
        raise
    session = record.sessions.get(session_id)
    if session is None:
        raise SessionNotFound(release_reason=remembered)
    return record, session


def check_room(record: RunnerRecord, session_id: str | None) -> None:
    """409 for a session ID already held, then 503 when full (LR-086, LR-087, LR-140)."""
    if session_id is not None and session_id in record.sessions:
        raise Conflict("session already exists")
    if len(record.sessions) >= record.capacity:
        raise Unavailable("no capacity available for runner")


def add_session(
    state: RegistryState,
    record: RunnerRecord,
    session_id: str | None,
    now: float,
    *,
    paid: PaidState | None = None,
) -> tuple[SessionRecord, str, tuple[Effect, ...]]:
    """Reserve a session after :func:`check_room` passed: the record, its app URL
    (LR-090; a single-shot runner's own URL, for the proxy only), and the
    ``reserved`` O2R event (LR-091)."""
    check_room(record, session_id)
    if session_id is None:
        session_id = new_session_id(state.random)
        while session_id in record.sessions:
            session_id = new_session_id(state.random)
    session = SessionRecord(
        session_id=session_id,
        seq=state.take_seq(),
        created=now,
        fixed_price=record.price is not None and record.price.unit == "fixed",
        last_activity=now,
        paid=paid,
    )
    record.sessions[session_id] = session
    state.released.forget(record.route, session_id)
    if record.single_shot:
        app_url = record.registration.runner_url
    elif record.registration.proxy:
        proxy_id = add_proxy(state, record, session, record.registration.runner_url)
        app_url = state.config.proxy_template.url(proxy_id)
    else:
        base = state.config.service_base
        app_url = join_url(base, "apps", record.route, "session", session_id, "app")
    effects: tuple[Effect, ...] = ()
    if record.o2r is not None:
        effects = (
            SendSessionEvent(
                runner_id=record.runner_id,
                channel_name=record.o2r.channel_name,
                event="reserved",
                session_id=session_id,
            ),
        )
    return session, app_url, effects


def add_proxy(
    state: RegistryState, record: RunnerRecord, session: SessionRecord, target: str
) -> str:
    """A fresh proxy ID (26 characters, LR-125) for ``session`` to ``target``."""
    proxy_id = new_proxy_id(state.random)
    while proxy_id in state.proxy_index:
        proxy_id = new_proxy_id(state.random)
    session.proxies[proxy_id] = target
    state.proxy_index[proxy_id] = (record.route, session.session_id)
    return proxy_id


def release_session(
    state: RegistryState,
    record: RunnerRecord,
    session: SessionRecord,
    reason: ReleaseReason,
    now: float,
) -> Release:
    """End ``session`` for ``reason``: forget it, remember why, and say what to do."""
    del record.sessions[session.session_id]
    for channel in session.channels.values():
        state.channel_index.pop(channel.channel.channel_name, None)
    for proxy_id in session.proxies:
        state.proxy_index.pop(proxy_id, None)
    state.released.remember(record.route, session.session_id, reason, now)
    effects: list[Effect] = []
    if record.o2r is not None:
        effects.append(
            SendSessionEvent(
                runner_id=record.runner_id,
                channel_name=record.o2r.channel_name,
                event="released",
                session_id=session.session_id,
                reason=reason,
            )
        )
    events = session.channels.get(EVENTS_CHANNEL)
    if events is not None:
        effects.append(
            PublishRelease(
                channel_name=events.channel.channel_name,
                session_id=session.session_id,
                reason=reason,
            )
        )
    if session.channels:
        names = tuple(c.channel.channel_name for c in session.channels.values())
        effects.append(CloseChannels(channel_names=names))
    if record.single_shot and reason is ReleaseReason.PAYMENT_FAILED:
        effects.append(CancelRequest(route=record.route, session_id=session.session_id))
    return Release(
        route=record.route,
        runner_id=record.runner_id,
        session_id=session.session_id,
        reason=reason,
        single_shot=record.single_shot,
        proxy_ids=tuple(session.proxies),
        effects=tuple(effects),
    )


def release_all(
    state: RegistryState, record: RunnerRecord, reason: ReleaseReason, now: float
) -> tuple[Release, ...]:
    """Release every session of ``record``, oldest first."""
    ordered = sorted(record.sessions.values(), key=lambda s: s.seq)
    return tuple(release_session(state, record, s, reason, now) for s in ordered)


def remove_runner(
    state: RegistryState, record: RunnerRecord, reason: ReleaseReason, now: float
) -> RunnerRemoved:
    """Take ``record`` out of the registry, its sessions' events before the O2R close."""
    releases = release_all(state, record, reason, now)
    if state.runners.get(record.route) is record:
        del state.runners[record.route]
    effects = release_effects(releases)
    if record.o2r is not None:
        effects += (CloseO2R(runner_id=record.runner_id, channel_name=record.o2r.channel_name),)
    return RunnerRemoved(
        route=record.route,
        runner_id=record.runner_id,
        reason=reason,
        releases=releases,
        effects=effects,
    )


def client_stop(state: RegistryState, route: str, session_id: str, now: float) -> Stopped:
    """``POST /apps/{route}/session/{sid}/stop`` (LR-128 to LR-131, LR-145).

    Releases a held session whatever the runner's state, even past its TTL but
    not yet removed (LR-130); otherwise answers the remembered reason, 204 for a
    known runner, 404 for an unknown one.
    """
    record = state.runners.get(route)
    session = None if record is None else record.sessions.get(session_id)
    if record is not None and session is not None:
        release = release_session(state, record, session, ReleaseReason.CLIENT_STOP, now)
        return Stopped(reason=release.reason, release=release)
    remembered = state.released.reason(route, session_id, now)
    if record is None and remembered is None:
        raise RunnerNotFound()
    return Stopped(reason=remembered, release=None)
