"""Calling pipeline hooks that may be plain functions or coroutines.

Pipeline authors write ``def`` or ``async def`` as they like. A plain ``def``
hook is assumed to do blocking work (torch, PIL, a model call), so it always
runs in a worker thread: the event loop keeps serving ``/health``, params and
other sessions meanwhile (RUN-017, RUN-029). An ``async def`` hook is awaited
in the calling task. Worker threads inherit the caller's ``contextvars``
(trio copies them), which is how ``emit_event`` finds its session.

Cancelling a thread is impossible, so cancelling the *caller* is handled in
three steps: a call whose thread has not started yet never starts; a running
call gets ``cancel_grace`` seconds to return (so a stop normally waits for the
frame in hand and never overlaps ``on_stream_stop``, RUN-077); past the grace
the call is abandoned: its result is discarded and a warning names the hook,
so a hung hook cannot hold a stop past its deadline (RUN-068).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any, TypeVar

import trio

__all__ = ["DEFAULT_CANCEL_GRACE", "call_hook", "is_async_callable", "iterate_in_thread"]

log = logging.getLogger("trio_trickle.hooks")

T = TypeVar("T")

#: Seconds a cancelled caller still waits for a running sync hook to return.
DEFAULT_CANCEL_GRACE = 0.5
#: Seconds a streaming response whose client left waits for the item in hand (RUN-033).
STREAM_CLOSE_GRACE = 1.0


def is_async_callable(fn: object) -> bool:
    """True for ``async def`` functions, bound methods, partials and async ``__call__``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    # An object whose class defines ``async def __call__``.
    return inspect.iscoroutinefunction(type(fn).__dict__.get("__call__"))


class _State(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"


class _ThreadCall:
    """One sync call handed to a worker thread, with a state the caller can race safely."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn
        self._lock = threading.Lock()
        self._state = _State.PENDING
        self._finished = trio.Event()
        self._token = trio.lowlevel.current_trio_token()

    def __call__(self) -> Any:  # runs in the worker thread
        with self._lock:
            if self._state is _State.SKIPPED:
                return None
            self._state = _State.RUNNING
        try:
            return self._fn()
        finally:
            with self._lock:
                self._state = _State.DONE
            # RunFinishedError: the trio run is over and nobody is waiting.
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._finished.set)

    def skip_if_pending(self) -> bool:
        """Stop the call from ever starting; False if it already started."""
        with self._lock:
            if self._state is _State.PENDING:
                self._state = _State.SKIPPED
                return True
            return False

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    async def wait_finished(self) -> None:
        await self._finished.wait()


async def _run_in_thread(fn: Callable[[], T], grace: float, name: str) -> T:
    call = _ThreadCall(fn)
    try:
        result: T = await trio.to_thread.run_sync(call, abandon_on_cancel=True)
    except trio.Cancelled:
        if call.skip_if_pending():
            raise
        with trio.CancelScope(shield=True):
            with trio.move_on_after(grace):
                await call.wait_finished()
            if not call.finished:
                log.warning("hook %s did not return %.1f s after cancel; abandoned", name, grace)
        raise
    return result


async def call_hook(
    hook: Callable[..., Any], *args: Any, cancel_grace: float = DEFAULT_CANCEL_GRACE
) -> Any:
    """Call ``hook(*args)``: awaited if async, else in a worker thread; return its result.

    ``cancel_grace`` bounds how long a cancelled caller waits for a sync hook that
    is already running (``math.inf``: until it returns; ``0``: abandon at once).
    Exceptions from the hook propagate unchanged.
    """
    if is_async_callable(hook):
        return await hook(*args)
    name = getattr(hook, "__qualname__", None) or repr(hook)
    result = await _run_in_thread(functools.partial(hook, *args), cancel_grace, name)
    if inspect.iscoroutine(result):
        # A plain ``def`` that returns a coroutine (a decorator wrapping an async hook).
        return await result
    return result


_EXHAUSTED: Any = object()


class _ThreadedIterator:
    """Steps a sync iterator in worker threads; closes it exactly once, off the loop.

    A step in flight when the consumer goes away closes the iterator itself
    when ``next`` returns, because a generator cannot be closed while it runs.
    """

    def __init__(self, iterator: Iterator[Any]) -> None:
        self._iterator = iterator
        self._lock = threading.Lock()
        self._busy = False
        self._abandoned = False
        self._finished = False

    def step(self) -> Any:  # runs in a worker thread
        with self._lock:
            if self._abandoned:
                return _EXHAUSTED
            self._busy = True
        try:
            return next(self._iterator)
        except StopIteration:
            self._finished = True
            return _EXHAUSTED
        except BaseException:
            self._finished = True
            raise
        finally:
            if self._end_step():
                self.close()

    def _end_step(self) -> bool:
        """Mark the step over; True if the consumer left meanwhile (we must close)."""
        with self._lock:
            self._busy = False
            return self._abandoned

    def close(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is None or self._finished:
            return
        self._finished = True
        try:
            close()
        except Exception:
            log.exception("closing the iterator of a streaming hook failed")

    def abandon(self) -> None:
        """The consumer is gone: close now (in a thread) or when the running step ends."""
        with self._lock:
            self._abandoned = True
            busy = self._busy
        if not busy and not self._finished:
            trio.lowlevel.start_thread_soon(self.close, lambda _result: None)


async def iterate_in_thread(iterator: Iterator[T]) -> AsyncGenerator[T, None]:
    """Yield the items of a sync iterator (a generator ``predict``), each ``next`` in a thread.

    Leaving early (break, error, cancellation, a client that disconnected)
    closes the iterator, so its ``finally`` blocks run without blocking the loop.
    """
    pump = _ThreadedIterator(iterator)
    try:
        while True:
            item = await _run_in_thread(pump.step, STREAM_CLOSE_GRACE, "predict generator")
            if item is _EXHAUSTED:
                return
            yield item
    finally:
        pump.abandon()
