"""Serving a runner: ``serve()`` for a process, ``open_runner()`` for tests and embedding.

Both put a :class:`RunnerApp` on hypercorn's HTTP/1.1 protocol through
:func:`~trio_trickle._server.connections.serve_asgi` (each connection contained).
Shutdown is graceful in one order: stop accepting, let in-flight requests
finish (``graceful_timeout``), then the ASGI lifespan shutdown stops every
session with reason ``shutdown`` (RUN-105) before the server returns.
``serve()`` starts that on the first SIGINT/SIGTERM; a second one cancels
whatever is still running.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import trio

from .._client.http import create_http_client
from .._errors import TrickleError
from .._sdk.live_pipeline import LivePipeline
from .._sdk.pipeline import Pipeline
from .._server.connections import ConnectionStats, HttpTimeouts, http_config, serve_asgi
from .._server.gc import freeze_gc_for_serving
from .._wire.runner_status import HealthStatus
from .app import RunnerApp
from .registration import RegistrationOptions, RunnerRegistration

if TYPE_CHECKING:
    from .._session.manager import StreamManager

__all__ = ["InvalidTarget", "RunnerHandle", "load_target", "open_runner", "serve"]

log = logging.getLogger("trio_trickle.runner")


class InvalidTarget(TrickleError, ValueError):
    """A ``module:Class`` target that cannot be loaded as a pipeline."""


class RunnerHandle:
    """A runner being served: where to reach it and what it runs."""

    def __init__(
        self,
        *,
        app: RunnerApp,
        url: str,
        connections: ConnectionStats,
        registration: RunnerRegistration | None = None,
    ) -> None:
        self.app = app
        #: The orchestrator registration (None without ``orchestrator_url``).
        self.registration = registration
        #: Counters of the HTTP connections served (opened, closed, failed, timed out).
        self.connections = connections
        #: ``http://HOST:PORT``, no trailing slash.
        self.url = url

    @property
    def manager(self) -> StreamManager | None:
        """The ``StreamManager`` of a ``LivePipeline`` runner (None for a ``Pipeline``)."""
        return self.app.manager

    async def wait_setup(self) -> None:
        """Return once the pipeline's ``setup()`` has returned or raised."""
        await self.app.wait_setup()


@asynccontextmanager
async def open_runner(
    pipeline: Pipeline | LivePipeline | RunnerApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    capacity: int = 1,
    token: str | None = None,
    model_id: str | None = None,
    graceful_timeout: float = 2.0,
    timeouts: HttpTimeouts | None = None,
    freeze_gc: bool = False,
    orchestrator_url: str | None = None,
    orchestrator_secret: str | None = None,
    app_name: str | None = None,
    runner_url: str | None = None,
    registration_options: dict[str, Any] | None = None,
    **manager_options: Any,
) -> AsyncIterator[RunnerHandle]:
    """Serve ``pipeline`` on ``host:port`` (0: any free port) for the duration of the block.

    The handle's ``url`` is known (the socket is listening) when the block
    starts; ``setup()`` may still be running then (``/health`` says LOADING).
    On exit all sessions stop with reason ``shutdown`` and the server stops.

    ``freeze_gc`` (for a process that only serves, as ``serve`` and the command
    line are) freezes the garbage collector's view once ``setup()`` has
    returned: see :func:`~trio_trickle._server.gc.freeze_gc_for_serving`.

    With ``orchestrator_url`` the runner also registers with that live-runner
    orchestrator (spec/live-runner.md): ``orchestrator_secret`` on the first
    heartbeat, as ``app_name`` (default: ``model_id``, else the pipeline's
    class name) reachable at ``runner_url`` (default: the bound URL), with the
    app's capacity, once ``setup()`` has returned; the heartbeat and O2R
    tasks run in this block's nursery and the runner unregisters on exit
    (:mod:`.registration`). A released
    session stops the ``LivePipeline`` stream of the same ID, if one runs.
    ``registration_options`` go to :class:`RegistrationOptions` (timeouts).
    Without ``orchestrator_url`` nothing of this runs.
    """
    if isinstance(pipeline, RunnerApp):
        app = pipeline
    else:
        app = RunnerApp(
            pipeline, capacity=capacity, token=token, model_id=model_id, **manager_options
        )
    if orchestrator_url is not None and not orchestrator_secret:
        raise ValueError("orchestrator_url needs orchestrator_secret")
    shutdown = trio.Event()
    stats = ConnectionStats()
    async with trio.open_nursery() as nursery:
        run_server = functools.partial(
            serve_asgi,
            app,
            http_config(host, port, graceful_timeout=graceful_timeout),
            shutdown_trigger=shutdown.wait,
            timeouts=timeouts,
            stats=stats,
        )
        binds: list[str] = await nursery.start(run_server)
        freezer = trio.CancelScope()
        if freeze_gc:
            nursery.start_soon(_freeze_after_setup, app, freezer)
        if orchestrator_url is None:
            try:
                yield RunnerHandle(app=app, url=binds[0], connections=stats)
            finally:
                freezer.cancel()  # a setup still running must not hold the exit
                shutdown.set()
            return
        assert orchestrator_secret is not None
        app.trust_orchestrator(orchestrator_url)
        options = RegistrationOptions(
            orchestrator_url=orchestrator_url,
            secret=orchestrator_secret,
            app=app_name or app.model_id or type(app.pipeline).__name__,
            runner_url=runner_url or _reachable(binds[0]),
            capacity=app.capacity,
            **(registration_options or {}),
        )
        registering = trio.CancelScope()
        try:
            async with create_http_client() as client:
                registration = RunnerRegistration(
                    options,
                    client,
                    on_release=functools.partial(_stop_released, app),
                    status=functools.partial(_registration_status, app),
                )
                nursery.start_soon(_run_registration, app, registration, registering)
                try:
                    yield RunnerHandle(
                        app=app, url=binds[0], connections=stats, registration=registration
                    )
                finally:
                    registering.cancel()  # no heartbeat may register us again
                    await registration.unregister()  # bounded and shielded (LR-037)
        finally:
            registering.cancel()
            freezer.cancel()
            shutdown.set()


async def _run_registration(
    app: RunnerApp, registration: RunnerRegistration, scope: trio.CancelScope
) -> None:
    with scope:
        # Register once setup has returned: a loading runner could not take sessions.
        await app.wait_setup()
        await registration.run()


async def _stop_released(app: RunnerApp, session_id: str, reason: str | None) -> None:
    """A released session's stream, if this runner runs one by that ID, stops."""
    if app.manager is not None and any(s.id == session_id for s in app.manager.sessions()):
        await app.manager.stop(session_id, f"session released: {reason or 'unknown'}")


def _registration_status(app: RunnerApp) -> str:
    """``ready`` once setup returned, else ``loading`` or ``error``: only ready is sold (LR-043)."""
    health = app.health
    if health in (HealthStatus.OK, HealthStatus.IDLE):
        return "ready"
    return "loading" if health is HealthStatus.LOADING else "error"


def _reachable(bound: str) -> str:
    """The bound URL, with a wildcard host replaced by loopback (pass ``runner_url`` instead)."""
    for wildcard in ("://0.0.0.0:", "://[::]:"):
        if wildcard in bound:
            return bound.replace(wildcard, "://127.0.0.1:")
    return bound


async def _freeze_after_setup(app: RunnerApp, scope: trio.CancelScope) -> None:
    with scope:
        await app.wait_setup()  # the models are loaded: freeze them with the imports
        freeze_gc_for_serving()


def serve(
    pipeline_or_target: Pipeline | LivePipeline | str,
    host: str = "0.0.0.0",
    port: int = 8000,
    capacity: int = 1,
    token: str | None = None,
    *,
    model_id: str | None = None,
    graceful_timeout: float = 2.0,
    orchestrator_url: str | None = None,
    orchestrator_secret: str | None = None,
    app_name: str | None = None,
    runner_url: str | None = None,
    **manager_options: Any,
) -> None:
    """Serve a pipeline (or a ``module:Class`` target) until SIGINT/SIGTERM; blocks.

    ``manager_options`` go to the ``StreamManager`` of a ``LivePipeline``
    (``start_timeout``, ``stop_timeout``, ``settings``). ``orchestrator_url``
    and the rest register the runner with a live-runner orchestrator, as
    :func:`open_runner` does.
    """
    if isinstance(pipeline_or_target, str):
        pipeline = load_target(pipeline_or_target)
    else:
        pipeline = pipeline_or_target
    app = RunnerApp(pipeline, capacity=capacity, token=token, model_id=model_id, **manager_options)
    registration = {
        "orchestrator_url": orchestrator_url,
        "orchestrator_secret": orchestrator_secret,
        "app_name": app_name,
        "runner_url": runner_url,
    }
    if orchestrator_url is not None and not orchestrator_secret:
        raise ValueError("orchestrator_url needs orchestrator_secret")
    trio.run(
        functools.partial(_serve_until_signal, app, host, port, graceful_timeout, registration)
    )


async def _serve_until_signal(
    app: RunnerApp, host: str, port: int, graceful: float, registration: dict[str, Any]
) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            async with open_runner(
                app,
                host=host,
                port=port,
                graceful_timeout=graceful,
                freeze_gc=True,
                **registration,
            ) as handle:
                log.info("%s serving on %s", type(app.pipeline).__name__, handle.url)
                async for signum in signals:
                    log.info("%s received: shutting down", signal.Signals(signum).name)
                    break
                nursery.start_soon(_force_on_second_signal, signals, nursery.cancel_scope)
            nursery.cancel_scope.cancel()


async def _force_on_second_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for _ in signals:
        log.warning("second signal: stopping now, without waiting for sessions")
        scope.cancel()
        return


# -- targets ------------------------------------------------------------------------


def _import(module_part: str) -> ModuleType:
    if module_part.endswith(".py"):
        path = Path(module_part)
        if not path.is_file():
            raise InvalidTarget(f"no such file: {module_part}")
        name = path.stem
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise InvalidTarget(f"cannot load {module_part} as a module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        # Like hypercorn's --app-dir default: a module next to where you run the CLI.
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_part)
    except ModuleNotFoundError as exc:
        # Only the target's own absence is the caller's mistake; a missing
        # dependency inside it propagates with its real traceback.
        if exc.name is None or not (
            module_part == exc.name or module_part.startswith(exc.name + ".")
        ):
            raise
        raise InvalidTarget(f"no module named {exc.name!r}") from None


def load_target(spec: str) -> Pipeline | LivePipeline:
    """Load a pipeline from ``"package.module:Class"`` (or ``"path/file.py:Class"``).

    The attribute may be dotted (``module:Outer.Inner``). A class is
    instantiated without arguments; an instance is used as is. Raises
    :class:`InvalidTarget` for a malformed spec, a missing module or attribute,
    or something that is not a ``Pipeline``/``LivePipeline``.
    """
    module_part, sep, attr_path = spec.strip().rpartition(":")
    if not sep or not module_part or not attr_path:
        raise InvalidTarget(f"expected 'package.module:Class', got {spec!r}")
    target: Any = _import(module_part)
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise InvalidTarget(f"{module_part} has no attribute {attr_path!r}") from None
    if isinstance(target, type):
        if not issubclass(target, Pipeline | LivePipeline):
            raise InvalidTarget(f"{spec}: {target.__name__} is not a Pipeline or LivePipeline")
        target = target()
    if not isinstance(target, Pipeline | LivePipeline):
        raise InvalidTarget(f"{spec}: not a Pipeline or LivePipeline")
    return target
