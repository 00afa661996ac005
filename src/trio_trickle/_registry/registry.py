"""The live-runner registry: one object for the orchestrator app to drive.

:class:`LiveRunnerRegistry` holds the state and hands each request to the
module that owns it. Every method takes ``now`` (monotonic seconds) where time
matters, returns a value with the effects to perform (in order, before
answering), or raises a :class:`~.errors.RegistryError` having changed nothing.
The I/O layer calls :meth:`reap` every ``heartbeat_interval`` and
:meth:`account` every ``payment_interval``, and polls each of
:meth:`health_targets` every 5 s.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .._wire.live_runner import HeartbeatRequest
from .._wire.live_runner_channels import (
    ChannelsDeleteRequest,
    ChannelsRequest,
    ProxyRequest,
    ProxyResponse,
)
from .._wire.live_runner_discovery import DiscoveryResponse
from .._wire.live_runner_payment import PaymentChallenge, PaymentHeaders, RefreshPaymentRequest
from . import activity, callbacks, discovery, reservation, runners, sessions, static
from .config import RegistryConfig
from .effects import Effect, Release, ReleaseReason, RunnerRemoved, release_effects
from .ids import RandomSource, SystemRandom
from .payment import OffchainPaymentVerifier, PaymentVerifier
from .pricing import PriceFeed, StaticPriceFeed
from .state import RegistryState

__all__: list[str] = []


@attrs.frozen(kw_only=True)
class Reaped:
    """What one periodic check removed: expired runners, then idle sessions."""

    removed: tuple[RunnerRemoved, ...]
    idle: tuple[Release, ...]

    @property
    def releases(self) -> tuple[Release, ...]:
        return tuple(r for removal in self.removed for r in removal.releases) + self.idle

    @property
    def effects(self) -> tuple[Effect, ...]:
        removals = tuple(e for removal in self.removed for e in removal.effects)
        return removals + release_effects(self.idle)


@attrs.frozen(kw_only=True)
class RunnerView:
    """A read-only look at one runner (logs, metrics, tests)."""

    route: str
    runner_id: str
    static: bool
    status: str
    capacity: int
    session_ids: tuple[str, ...]
    last_heartbeat: float


class LiveRunnerRegistry:
    """The orchestrator's runners and sessions (spec/live-runner.md)."""

    def __init__(
        self,
        config: RegistryConfig,
        *,
        random: RandomSource | None = None,
        verifier: PaymentVerifier | None = None,
        price_feed: PriceFeed | None = None,
    ) -> None:
        self._state = RegistryState(
            config=config,
            random=random or SystemRandom(),
            verifier=verifier or OffchainPaymentVerifier(),
            price_feed=price_feed or StaticPriceFeed(),
        )

    @property
    def config(self) -> RegistryConfig:
        return self._state.config

    # -- runners ---------------------------------------------------------------

    def heartbeat(
        self, request: HeartbeatRequest, authorization: str, now: float
    ) -> runners.HeartbeatAccepted:
        return runners.heartbeat(self._state, request, authorization, now)

    def unregister(self, route: str, authorization: str, now: float) -> RunnerRemoved:
        return runners.unregister(self._state, route, authorization, now)

    def reap(self, now: float) -> Reaped:
        """Remove expired runners (LR-038), release idle sessions (LR-134), forget old reasons."""
        removed = runners.expire_runners(self._state, now)
        idle = activity.release_idle(self._state, now)
        self._state.released.sweep(now)
        return Reaped(removed=removed, idle=idle)

    def register_static(
        self, entries: Sequence[static.StaticRunnerEntry], healthy: Sequence[bool], now: float
    ) -> static.StaticRegistered:
        return static.register_static(self._state, entries, healthy, now)

    def health_targets(self) -> tuple[tuple[str, str, int], ...]:
        return static.health_targets(self._state)

    def record_health(self, route: str, healthy: bool, now: float) -> static.HealthChecked:
        return static.record_health(self._state, route, healthy, now)

    def discovery(self, now: float) -> DiscoveryResponse:
        return discovery.discovery(self._state, now)

    def shutdown(self, now: float) -> tuple[RunnerRemoved, ...]:
        """Remove every runner, releasing sessions with ``orchestrator_shutdown``."""
        reason = ReleaseReason.ORCHESTRATOR_SHUTDOWN
        everyone = list(self._state.runners.values())
        return tuple(sessions.remove_runner(self._state, r, reason, now) for r in everyone)

    def runners(self) -> tuple[RunnerView, ...]:
        return tuple(
            RunnerView(
                route=r.route,
                runner_id=r.runner_id,
                static=r.static,
                status=r.status,
                capacity=r.capacity,
                session_ids=r.session_ids(),
                last_heartbeat=r.last_heartbeat,
            )
            for r in self._state.runners.values()
        )

    # -- sessions and payment --------------------------------------------------

    def reserve(
        self, route: str, headers: PaymentHeaders, now: float
    ) -> reservation.Challenge | reservation.Reserved | reservation.SingleShotReserved:
        return reservation.reserve(self._state, route, headers, now)

    def reserve_single_shot(
        self, route: str, headers: PaymentHeaders, now: float
    ) -> reservation.Challenge | reservation.Reserved | reservation.SingleShotReserved:
        return reservation.reserve(self._state, route, headers, now, single_shot=True)

    def end_request(self, route: str, session_id: str, now: float) -> Release | None:
        return reservation.end_request(self._state, route, session_id, now)

    def stop(self, route: str, session_id: str, now: float) -> sessions.Stopped:
        return sessions.client_stop(self._state, route, session_id, now)

    def top_up(
        self, route: str, session_id: str, headers: PaymentHeaders, now: float
    ) -> reservation.TopUpAccepted:
        return reservation.top_up(self._state, route, session_id, headers, now)

    def account(self, now: float) -> reservation.Accounted:
        return reservation.account(self._state, now)

    def refresh_payment(self, request: RefreshPaymentRequest) -> PaymentChallenge:
        return reservation.refresh_payment(self._state, request)

    # -- runner callbacks ------------------------------------------------------

    def create_channels(
        self, route: str, session_id: str, token: str, request: ChannelsRequest, now: float
    ) -> callbacks.ChannelsCreated:
        return callbacks.create_channels(self._state, route, session_id, token, request, now)

    def delete_channels(
        self, route: str, session_id: str, token: str, request: ChannelsDeleteRequest, now: float
    ) -> callbacks.ChannelsDeleted:
        return callbacks.delete_channels(self._state, route, session_id, token, request, now)

    def create_proxy(
        self, route: str, session_id: str, token: str, request: ProxyRequest, now: float
    ) -> ProxyResponse:
        return callbacks.create_proxy(self._state, route, session_id, token, request, now)

    def runner_stop(self, route: str, session_id: str, token: str, now: float) -> Release:
        return callbacks.runner_stop(self._state, route, session_id, token, now)

    # -- client traffic --------------------------------------------------------

    def session_target(
        self, route: str, session_id: str, app_path: str, now: float
    ) -> activity.ProxyTarget:
        return activity.session_target(self._state, route, session_id, app_path, now)

    def resolve_proxy(
        self, host: str, path: str, now: float
    ) -> activity.ProxyTarget | activity.LocalRoute | None:
        return activity.resolve_proxy(self._state, host, path, now)

    def request_opened(
        self, route: str, session_id: str, now: float
    ) -> activity.RequestTicket | None:
        return activity.request_opened(self._state, route, session_id, now)

    def request_closed(self, ticket: activity.RequestTicket, now: float) -> None:
        activity.request_closed(self._state, ticket, now)

    def channel_request(self, channel_name: str, *, publish: bool, now: float) -> None:
        activity.channel_request(self._state, channel_name, publish=publish, now=now)
