"""The orchestrator process: :func:`open_orchestrator` and its timers.

One nursery holds everything: the listener (``serve_asgi``, one app for the
trickle mount and the control API), the trickle server's idle sweeper, one
O2R writer per registered runner, and three timers on trio's clock, so tests
may drive them with short intervals:

* the reaper, every ``heartbeat_interval``: expired runners and idle sessions
  (LR-038, LR-039, LR-134);
* the debit monitor, every ``payment_interval`` (LR-093; offchain it releases nothing);
* the static health checks, every ``health_interval`` with ``health_timeout``
  per check (LR-041, LR-042).

On exit every runner is removed with reason ``orchestrator_shutdown`` (their
events written, their channels closed), then the listener stops gracefully.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import trio

from .._registry.config import RegistryConfig
from .._registry.errors import RegistryError
from .._registry.payment import PaymentVerifier
from .._registry.pricing import PriceFeed
from .._registry.registry import LiveRunnerRegistry
from .._registry.static import StaticRunnerEntry
from .._server.connections import ConnectionStats, http_config, serve_asgi
from .._server.trickle import TrickleServer
from .app import OrchestratorApp
from .config import OrchestratorConfig
from .effects import EffectRunner
from .http import Receive, Scope, Send
from .o2r import O2RStats

__all__: list[str] = []

log = logging.getLogger("trio_trickle.orchestrator")


class OrchestratorHandle:
    """A running orchestrator: where it listens and what it holds."""

    def __init__(
        self,
        *,
        url: str,
        registry: LiveRunnerRegistry,
        trickle: TrickleServer,
        connections: ConnectionStats,
        effects: EffectRunner,
    ) -> None:
        #: ``http://HOST:PORT`` (no trailing slash): the service URI when none was configured.
        self.url = url
        self.registry = registry
        self.trickle = trickle
        self.connections = connections
        #: Performs the registry's effects; owns the O2R writers.
        self.effects = effects
        self._reaped = trio.Event()
        self._checked = trio.Event()

    @property
    def o2r_stats(self) -> O2RStats:
        return self.effects.o2r_stats

    def _passed(self, what: str) -> None:
        if what == "reap":
            self._reaped.set()
            self._reaped = trio.Event()
        else:
            self._checked.set()
            self._checked = trio.Event()

    async def next_reap(self) -> None:
        """Wait until the reaper's next pass has finished (tests synchronise on it)."""
        await self._reaped.wait()

    async def next_health_check(self) -> None:
        """Wait until the next round of static health checks has been recorded."""
        await self._checked.wait()


def _registry_config(config: OrchestratorConfig, url: str) -> RegistryConfig:
    if isinstance(config.registry, RegistryConfig):
        return config.registry
    if config.registry is not None:
        return config.registry(url)
    return RegistryConfig(service_uri=url, orchestrator_secret=config.secret)


async def _check(client: httpx.AsyncClient, url: str, healthy_status: int, within: float) -> bool:
    """One health check: a GET whose status equals ``healthy_status`` within ``within`` s."""
    try:
        with trio.fail_after(within):
            response = await client.get(url, timeout=within)
            await response.aclose()
    except (httpx.HTTPError, httpx.InvalidURL, OSError, trio.TooSlowError):
        return False
    return response.status_code == healthy_status


async def _check_all(
    client: httpx.AsyncClient, targets: tuple[tuple[str, str, int], ...], within: float
) -> dict[str, bool]:
    results: dict[str, bool] = {}
    async with trio.open_nursery() as nursery:

        async def one(route: str, url: str, code: int) -> None:
            results[route] = await _check(client, url, code, within)

        for route, url, code in targets:
            nursery.start_soon(one, route, url, code)
    return results


async def _register_static(
    registry: LiveRunnerRegistry,
    client: httpx.AsyncClient,
    entries: tuple[StaticRunnerEntry, ...],
    within: float,
) -> None:
    """Register the configured static runners, each with its first health check (LR-042)."""
    targets = tuple((str(i), e.health_url, e.healthy_status_code) for i, e in enumerate(entries))
    results = await _check_all(client, targets, within)
    healthy = [results[str(i)] for i in range(len(entries))]
    registry.register_static(entries, healthy, trio.current_time())


@asynccontextmanager
async def open_orchestrator(
    config: OrchestratorConfig,
    *,
    verifier: PaymentVerifier | None = None,
    price_feed: PriceFeed | None = None,
) -> AsyncIterator[OrchestratorHandle]:
    """Serve an orchestrator on ``config.host:config.port`` for the duration of the block.

    ``verifier`` and ``price_feed`` are the registry's payment seams (an onchain
    registry needs both); by default payments are offchain and no rate is known.
    """
    trickle = TrickleServer(config.trickle)
    stats = ConnectionStats()
    shutdown = trio.Event()
    timeout = httpx.Timeout(
        connect=config.proxy_connect_timeout,
        read=None,
        write=config.proxy_head_timeout,
        pool=config.proxy_connect_timeout,
    )
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    async with (
        httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False) as client,
        trio.open_nursery() as nursery,
    ):
        effects = EffectRunner(trickle, config, nursery)
        app_slot: list[OrchestratorApp] = []

        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            # The lifespan starts before the app exists (it needs the bound URL).
            if scope["type"] == "lifespan" or not app_slot:
                await trickle(scope, receive, send)
            else:
                await app_slot[0](scope, receive, send)

        serve = functools.partial(
            serve_asgi,
            dispatch,
            http_config(config.host, config.port, graceful_timeout=config.graceful_timeout),
            shutdown_trigger=shutdown.wait,
            timeouts=config.timeouts,
            stats=stats,
        )
        # The registry's URLs need the bound port: bind first, answer once it exists.
        background = trio.CancelScope()

        async def bound_then_serve(task_status: trio.TaskStatus[list[str]]) -> None:
            await serve(task_status=task_status)

        binds: list[str] = await nursery.start(bound_then_serve)
        url = binds[0]
        registry = LiveRunnerRegistry(
            _registry_config(config, url), verifier=verifier, price_feed=price_feed
        )
        app = OrchestratorApp(config, registry, trickle, effects, client)
        app_slot.append(app)
        handle = OrchestratorHandle(
            url=url, registry=registry, trickle=trickle, connections=stats, effects=effects
        )
        if config.static_runners:
            await _register_static(registry, client, config.static_runners, config.health_timeout)

        async def reap() -> None:
            reaped = registry.reap(trio.current_time())
            effects.apply(reaped.effects)
            for release in reaped.releases:
                log.info("session %s released: %s", release.session_id, release.reason)
            handle._passed("reap")

        async def account() -> None:
            effects.apply(registry.account(trio.current_time()).effects)

        async def check_health() -> None:
            targets = registry.health_targets()
            results = await _check_all(client, targets, config.health_timeout)
            for route, ok in results.items():
                try:
                    checked = registry.record_health(route, ok, trio.current_time())
                except RegistryError:  # the runner was replaced while it was checked
                    continue
                for release in checked.releases:
                    effects.apply(release.effects)
            handle._passed("health")

        async def every(period: float, job: Callable[[], Awaitable[None]]) -> None:
            """Run ``job`` every ``period`` s; a failing pass is logged, never fatal."""
            while True:
                await trio.sleep(period)
                try:
                    await job()
                except Exception:
                    log.exception("orchestrator timer %s failed", job.__name__)

        async def timers() -> None:
            with background:
                async with trio.open_nursery() as timer_nursery:
                    timer_nursery.start_soon(every, registry.config.heartbeat_interval, reap)
                    timer_nursery.start_soon(every, registry.config.payment_interval, account)
                    timer_nursery.start_soon(every, config.health_interval, check_health)
                    timer_nursery.start_soon(trickle.run_sweeper)

        nursery.start_soon(timers)
        try:
            yield handle
        finally:
            background.cancel()
            app.closing = True
            effects.apply(
                e for removal in registry.shutdown(trio.current_time()) for e in removal.effects
            )
            # Every runner's released events are in its O2R channel (written as the
            # effects applied, LR-040); the writers end without lingering.
            with trio.CancelScope(shield=True), trio.move_on_after(config.graceful_timeout):
                await effects.drain()
            trickle.close_all()
            shutdown.set()
            # Whatever is still running (a proxied stream, a lingering writer) gets this long.
            nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
