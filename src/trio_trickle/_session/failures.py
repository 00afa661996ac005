"""How a session names a failure: the first real error of a group, briefly.

Its own module because the session (``stream_stopped``'s ``error``, RUN-125) and
the manager (``last_error``, start failures) describe failures the same way.
"""

from __future__ import annotations

import trio

__all__: list[str] = []  # the session's internals, nothing public

#: Longest failure message a session reports (``stream_stopped``'s ``error``, RUN-125).
MAX_FAILURE_MESSAGE = 200


def first_failure(exc: BaseException) -> BaseException:
    """The first real failure inside ``exc``: the first leaf of an exception group
    that is not a cancellation (``exc`` itself when it is no group or holds none)."""
    pending: list[BaseException] = [exc]
    while pending:
        item = pending.pop(0)
        if isinstance(item, BaseExceptionGroup):
            pending[:0] = item.exceptions
        elif not isinstance(item, trio.Cancelled):
            return item
    return exc


def describe_failure(exc: BaseException) -> str:
    """``<Type>: <first line>`` of :func:`first_failure`, at most ``MAX_FAILURE_MESSAGE``
    characters: never a group's repr, never a traceback or a megabyte of text."""
    leaf = first_failure(exc)
    lines = str(leaf).strip().splitlines()
    text = f"{type(leaf).__name__}: {lines[0]}" if lines else type(leaf).__name__
    if len(text) > MAX_FAILURE_MESSAGE:
        text = text[: MAX_FAILURE_MESSAGE - 3] + "..."
    return text
