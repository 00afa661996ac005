"""The runner's session callbacks under ``/runner/{route}/session/{sid}/…`` (LR-112 to LR-127).

Each callback is checked in master's order: runner and session first (404),
then the session token (401). Channel requests are all-or-nothing: the wire
decoding has normalised every name before any channel is made (LR-116), and a
delete checks every name before it closes one (LR-124).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import attrs

from .._wire.live_runner import RunnerChannel
from .._wire.live_runner_channels import (
    ChannelsDeleteRequest,
    ChannelsDeleteResponse,
    ChannelsRequest,
    ChannelsResponse,
    ProxyRequest,
    ProxyResponse,
    normalize_channel_name,
)
from .effects import CloseChannels, Effect, OpenChannels, Release, ReleaseReason
from .errors import NotFound, RegistryError, Unauthorized
from .ids import secrets_equal, session_token
from .sessions import add_proxy, find_session, release_session
from .state import ChannelRecord, RegistryState, RunnerRecord, SessionRecord

__all__: list[str] = []


@attrs.frozen(kw_only=True)
class ChannelsCreated:
    """Answer 200 with ``response`` once ``effects`` made the new channels (LR-119)."""

    response: ChannelsResponse
    effects: tuple[Effect, ...]


@attrs.frozen(kw_only=True)
class ChannelsDeleted:
    """Answer 200 with ``response`` once ``effects`` closed the channels (LR-122)."""

    response: ChannelsDeleteResponse
    effects: tuple[Effect, ...]


def authorize(
    state: RegistryState, route: str, session_id: str, token: str, now: float
) -> tuple[RunnerRecord, SessionRecord]:
    """The runner and session of a callback; 404 (LR-113), then 401 (LR-112)."""
    record, session = find_session(state, route, session_id, now)
    if not secrets_equal(token, session_token(record.seed, session_id)):
        raise Unauthorized("invalid authorization")
    return record, session


def create_channels(
    state: RegistryState,
    route: str,
    session_id: str,
    token: str,
    request: ChannelsRequest,
    now: float,
) -> ChannelsCreated:
    """``POST …/channels``: make the missing channels, return all in request order."""
    record, session = authorize(state, route, session_id, token, now)
    answered: list[RunnerChannel] = []
    made: list[RunnerChannel] = []
    for spec in request.channels:
        name = spec.normalized_name
        existing = session.channels.get(name)
        if existing is None:
            channel_name = f"{session_id}-{name}"
            channel = RunnerChannel(
                name=name,
                channel_name=channel_name,
                url=state.config.public_trickle_url(channel_name),
                internal_url=state.config.internal_trickle_url(channel_name),
                mime_type=spec.effective_mime_type,
            )
            existing = ChannelRecord(channel=channel)
            session.channels[name] = existing
            state.channel_index[channel_name] = (record.route, session_id, name)
            made.append(channel)
        answered.append(existing.channel)
    effects: tuple[Effect, ...] = (OpenChannels(channels=tuple(made)),) if made else ()
    return ChannelsCreated(response=ChannelsResponse(channels=tuple(answered)), effects=effects)


def delete_channels(
    state: RegistryState,
    route: str,
    session_id: str,
    token: str,
    request: ChannelsDeleteRequest,
    now: float,
) -> ChannelsDeleted:
    """``DELETE …/channels``: 404 unless every named channel exists, then close them all."""
    _record, session = authorize(state, route, session_id, token, now)
    names = list(dict.fromkeys(normalize_channel_name(n) for n in request.channels))
    if any(name not in session.channels for name in names):
        raise NotFound("trickle channel not found")
    closed = []
    for name in names:
        channel = session.channels.pop(name).channel
        state.channel_index.pop(channel.channel_name, None)
        closed.append(channel.channel_name)
    return ChannelsDeleted(
        response=ChannelsDeleteResponse(deleted=request.channels),
        effects=(CloseChannels(channel_names=tuple(closed)),),
    )


def create_proxy(
    state: RegistryState,
    route: str,
    session_id: str,
    token: str,
    request: ProxyRequest,
    now: float,
) -> ProxyResponse:
    """``POST …/proxy``: a public URL to the runner's host, any port or path (LR-125, LR-126)."""
    record, session = authorize(state, route, session_id, token, now)
    runner_url = record.registration.runner_url
    runner_host = urlsplit(runner_url).hostname
    if not runner_host:
        raise RegistryError("invalid registered runner_url", status=502)
    target = request.target_url or runner_url
    if request.target_url is not None:
        host = urlsplit(request.target_url).hostname or ""
        if host.lower() != runner_host.lower():
            raise RegistryError("target_url hostname must match registered runner_url hostname")
    proxy_id = add_proxy(state, record, session, target)
    return ProxyResponse(proxy_id=proxy_id, url=state.config.proxy_template.url(proxy_id))


def runner_stop(
    state: RegistryState, route: str, session_id: str, token: str, now: float
) -> Release:
    """``POST …/stop`` from the runner: release with reason ``runner_stop`` (LR-127)."""
    record, session = authorize(state, route, session_id, token, now)
    return release_session(state, record, session, ReleaseReason.RUNNER_STOP, now)
