"""The ``GET /discovery`` listing (LR-054 to LR-061).

Ready, unexpired runners only, in registration order, each under an
orchestrator URL (never its own ``runner_url``, LR-058) with its load and, on
an onchain orchestrator, its advertised wei price when the price converts.
"""

from __future__ import annotations

from .._wire.live_runner_discovery import DiscoveryEntry, DiscoveryResponse, DiscoveryRunner
from .config import join_url
from .errors import Unavailable
from .reservation import payment_price
from .state import RegistryState, RunnerRecord

__all__: list[str] = []


def runner_url(state: RegistryState, record: RunnerRecord) -> str:
    """Where clients reach ``record`` (LR-057)."""
    if record.single_shot and record.registration.proxy:
        return state.config.proxy_template.url(record.route)
    last = "app" if record.single_shot else "session"
    return join_url(state.config.service_base, "apps", record.route, last)


def listed_runner(state: RegistryState, record: RunnerRecord) -> DiscoveryRunner:
    registration = record.registration
    try:
        price = payment_price(state, record)
    except Unavailable:
        price = None  # still listed, without a price (LR-060)
    used = len(record.sessions)
    return DiscoveryRunner(
        url=runner_url(state, record),
        app=registration.app,
        capacity=record.capacity,
        capacity_used=used,
        capacity_available=record.capacity - used,
        gpu=registration.gpu,
        version=registration.version or None,
        metadata=registration.metadata or None,
        mode=registration.mode,
        price_info=price,
    )


def discovery(state: RegistryState, now: float) -> DiscoveryResponse:
    """The one-entry JSON array ``GET /discovery`` answers (LR-054)."""
    ttl = state.config.heartbeat_ttl
    runners = tuple(
        listed_runner(state, r)
        for r in state.runners.values()
        if r.ready and not r.expired(now, ttl)
    )
    entry = DiscoveryEntry(address=state.config.service_uri, runners=runners)
    return DiscoveryResponse(entries=(entry,))
