"""Dynamic runners: heartbeat, unregister and expiry (LR-001 to LR-040, LR-139, LR-149).

A heartbeat is checked in master's order (LR-139): the body first, then the
secret that fits the runner ID (the orchestrator secret for a new one, its
``heartbeat_secret`` after), and a refused heartbeat changes nothing. Runners
leave by unregister or by expiry at the next :func:`expire_runners`, releasing
their sessions first (LR-040).
"""

from __future__ import annotations

import attrs

from .._wire.live_runner import (
    HeartbeatRequest,
    HeartbeatResponse,
    RunnerChannel,
    RunnerGpu,
    RunnerPriceInfo,
)
from .effects import Effect, OpenO2R, ReleaseReason, RunnerRemoved, SendSessionEvent
from .errors import NotFound, RegistryError, RunnerNotFound, Unauthorized
from .ids import (
    SEED_BYTES,
    heartbeat_secret,
    new_runner_id,
    o2r_channel_name,
    secrets_equal,
)
from .pricing import check_offchain_price_info
from .sessions import remove_runner
from .state import RegistryState, RunnerRecord

__all__: list[str] = []


@attrs.frozen(kw_only=True)
class HeartbeatAccepted:
    """A 200 heartbeat: the ``response`` body and the effects to perform first.

    ``stale_session_ids`` are the sessions the runner reported that the
    orchestrator does not hold; each got a ``released`` O2R event (LR-149).
    """

    response: HeartbeatResponse
    new_registration: bool
    stale_session_ids: tuple[str, ...]
    effects: tuple[Effect, ...]


def _gpu(config_names: tuple[str, ...], gpu: RunnerGpu | None) -> RunnerGpu | None:
    """Name a GPU given by device index after this host's GPU there (LR-016).

    Only the integer form (``gpu.index``) is an index; an object whose ``id``
    happens to be digits is kept as sent. Either way the object form is kept.
    """
    if gpu is None or gpu.index is None:
        return gpu
    index = gpu.index
    if 0 <= index < len(config_names) and config_names[index].strip():
        return gpu.named(config_names[index].strip())
    return gpu.named(None)


def normalize(
    state: RegistryState, request: HeartbeatRequest, runner_id: str
) -> tuple[HeartbeatRequest, RunnerPriceInfo | None]:
    """The registration a heartbeat asks for, or 400 (LR-008 to LR-020).

    The wire decoding already refused bad URLs, apps, metadata, status, mode
    and negative capacities; this adds capacity 0 as 1 (LR-015) and the price.
    """
    if state.config.onchain:
        price: RunnerPriceInfo | None = request.parsed_price_info()
    else:
        check_offchain_price_info(request.price_info)
        price = None
    registration = attrs.evolve(
        request,
        runner_id=runner_id,
        capacity=request.capacity or 1,
        gpu=_gpu(state.config.host_gpu_names, request.gpu),
        session_ids=(),
    )
    return registration, price


def heartbeat(
    state: RegistryState, request: HeartbeatRequest, authorization: str, now: float
) -> HeartbeatAccepted:
    """``POST /runners/heartbeat`` (LR-001 to LR-028, LR-139, LR-149)."""
    config = state.config
    runner_id = request.runner_id or new_runner_id(state.random)
    registration, price = normalize(state, request, runner_id)
    record = state.runners.get(runner_id)
    effects: list[Effect] = []
    if record is None:
        if not config.orchestrator_secret:
            raise NotFound("dynamic live runner registration is disabled")
        if not secrets_equal(authorization, config.orchestrator_secret):
            raise Unauthorized("invalid registration authorization")
        seed = state.random.token_bytes(SEED_BYTES)
        name = o2r_channel_name(runner_id, seed)
        o2r = RunnerChannel(
            name="o2r",
            channel_name=name,
            url=config.internal_trickle_url(name),
            mime_type="application/json",
        )
        record = RunnerRecord(
            runner_id=runner_id,
            route=runner_id,
            seed=seed,
            heartbeat_secret=heartbeat_secret(seed),
            static=False,
            registration=registration,
            price=price,
            status=registration.status,
            last_heartbeat=now,
            o2r=o2r,
        )
        state.runners[runner_id] = record
        effects.append(OpenO2R(runner_id=runner_id, channel=o2r))
        new = True
    else:
        if record.expired(now, config.heartbeat_ttl):
            raise RunnerNotFound()
        if not secrets_equal(authorization, record.heartbeat_secret):
            raise Unauthorized("invalid heartbeat authorization")
        if record.static:
            raise RegistryError("static runner cannot heartbeat")
        record.registration = registration
        record.price = price
        record.status = registration.status
        record.last_heartbeat = now
        new = False
    stale = tuple(s for s in dict.fromkeys(request.session_ids) if s not in record.sessions)
    if record.o2r is not None:
        for session_id in stale:
            reason = state.released.reason(record.route, session_id, now)
            effects.append(
                SendSessionEvent(
                    runner_id=record.runner_id,
                    channel_name=record.o2r.channel_name,
                    event="released",
                    session_id=session_id,
                    reason=reason or ReleaseReason.UNKNOWN_SESSION,
                )
            )
    response = HeartbeatResponse(
        runner_id=runner_id,
        heartbeat_interval=config.heartbeat_interval,
        heartbeat_ttl=config.heartbeat_ttl,
        orchestrator=config.runner_base,
        heartbeat_secret=record.heartbeat_secret if new else None,
        o2r=record.o2r if new else None,
        session_ids=record.session_ids(),
    )
    return HeartbeatAccepted(
        response=response, new_registration=new, stale_session_ids=stale, effects=tuple(effects)
    )


def unregister(state: RegistryState, route: str, authorization: str, now: float) -> RunnerRemoved:
    """``POST /runners/{id}/unregister`` (LR-033 to LR-036): 404, 400 static, 401, then 204."""
    record = state.runners.get(route)
    if record is None or record.expired(now, state.config.heartbeat_ttl):
        raise RunnerNotFound()
    if record.static:
        raise RegistryError("static runner cannot unregister with heartbeat credentials")
    if not secrets_equal(authorization, record.heartbeat_secret):
        raise Unauthorized("invalid authorization")
    return remove_runner(state, record, ReleaseReason.RUNNER_UNREGISTERED, now)


def expire_runners(state: RegistryState, now: float) -> tuple[RunnerRemoved, ...]:
    """Remove every dynamic runner past its TTL, with its sessions (LR-038 to LR-040)."""
    ttl = state.config.heartbeat_ttl
    expired = [r for r in state.runners.values() if r.expired(now, ttl)]
    return tuple(remove_runner(state, r, ReleaseReason.RUNNER_EXPIRED, now) for r in expired)
