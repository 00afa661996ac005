"""The ``async with`` lifecycle the trickle clients share, and the background tasks they own.

Apart from :mod:`.http` because it is about structured concurrency, not HTTP:
a publisher or subscriber opens its own httpx client and a nursery for its
background work (preconnects, the send queue) on entry, and on exit closes
them in order, whatever raised. :class:`OwnedNursery` is also what the JSON
channel readers and writers run their tasks in.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import ClassVar, Self

import httpx
import trio

from .._errors import IllegalTransition, TransportError
from .http import ClientTimeouts, create_http_client

__all__: list[str] = []

log = logging.getLogger("trio_trickle.client")


class OwnedNursery:
    """The background tasks of a resource, opened in ``__aenter__``, closed in ``__aexit__``.

    The caller's own code runs *inside* this nursery (between ``__aenter__`` and
    ``__aexit__``), so its cancel scope is never cancelled: each task gets a
    cancel scope of its own and :meth:`cancel_all` cancels those, leaving the
    caller alone. The tasks never raise, so closing exits the nursery without
    the caller's exception: a caller's error (or cancellation) propagates as
    itself instead of being wrapped in an ExceptionGroup.

    "Never raise" is enforced: an exception escaping a task (a bug; the tasks
    map their own failures) would cancel the caller's unrelated code, so it is
    logged and kept as :attr:`failure` instead, a TransportError that the
    owner raises from its next call.
    """

    def __init__(self) -> None:
        self._manager: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._nursery: trio.Nursery | None = None
        self._scopes: set[trio.CancelScope] = set()
        self._cancelled = False
        #: The first exception that escaped a task, as the owner should raise it.
        self.failure: TransportError | None = None

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._nursery is not None

    async def open(self) -> None:
        if self._manager is not None:
            raise RuntimeError("already opened")
        self._manager = trio.open_nursery()
        self._nursery = await self._manager.__aenter__()

    def start_soon(
        self, fn: Callable[..., Awaitable[object]], *args: object, name: str | None = None
    ) -> None:
        """Run ``fn(*args)`` in the background until it returns or is cancelled."""
        if self._nursery is None:
            raise RuntimeError("the nursery is not open")
        scope = trio.CancelScope()
        if self._cancelled:
            scope.cancel()
        self._scopes.add(scope)

        task_name = str(name or getattr(fn, "__qualname__", repr(fn)))

        async def run() -> None:
            try:
                with scope:
                    await fn(*args)
            except Exception as exc:
                self._record(task_name, exc)
            finally:
                self._scopes.discard(scope)

        self._nursery.start_soon(run, name=task_name)

    def _record(self, name: str, exc: Exception) -> None:
        log.error("background task %r failed", name, exc_info=exc)
        if self.failure is None:
            failure = TransportError(f"background task {name!r} failed: {exc!r}")
            failure.__cause__ = exc
            self.failure = failure

    def cancel_all(self) -> None:
        """Cancel every task, now and later (synchronous: usable while cancelled)."""
        self._cancelled = True
        for scope in self._scopes:
            scope.cancel()

    async def close(self) -> None:
        manager = self._manager
        if manager is None or self._nursery is None:
            return
        self._nursery = None
        self.cancel_all()
        # A nursery's exit waits for its children even while the caller is being
        # cancelled (the cancellation is delivered afterwards), so no shield here.
        try:
            await manager.__aexit__(None, None, None)
        except BaseExceptionGroup as group:
            # Children cancelled by an *outer* scope report it as a group of
            # Cancelled; hand the caller one plain Cancelled, as any trio call would.
            cancelled, rest = group.split(trio.Cancelled)
            if rest is None and cancelled is not None:
                raise _first_leaf(cancelled) from None
            raise


class ClientLifecycle:
    """The ``async with`` lifecycle the trickle publisher and subscriber share.

    Entered once: makes an httpx client unless one was given, opens the
    background-task nursery, then runs the subclass's :meth:`_on_enter`; a
    failure anywhere shuts down what was opened. Leaving (or a failed enter)
    runs the subclass's ``aclose()``, then closes the nursery, then the owned
    client, each even when the step before raised, the client shielded from
    cancellation.
    """

    #: The class name in the error of a second ``async with``.
    _kind: ClassVar[str]

    def __init__(self, client: httpx.AsyncClient | None, timeouts: ClientTimeouts | None) -> None:
        self.timeouts = timeouts or ClientTimeouts()
        self._client = client
        self._owns_client = client is None
        self._tasks = OwnedNursery()
        self._entered = False

    async def __aenter__(self) -> Self:
        if self._entered:
            raise IllegalTransition(f"a {self._kind} can be entered once")
        self._entered = True
        if self._client is None:
            self._client = create_http_client(self.timeouts)
        try:
            await self._tasks.open()
            await self._on_enter()
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown()

    async def _on_enter(self) -> None:
        """The rest of entering, once the client and the nursery are there."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def _shutdown(self) -> None:
        try:
            await self.aclose()
        finally:
            try:
                await self._tasks.close()
            finally:
                if self._owns_client and self._client is not None:
                    with trio.CancelScope(shield=True):
                        await self._client.aclose()


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
