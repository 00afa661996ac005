"""Output and Ctrl-C handling shared by the ``trio-trickle`` commands."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TextIO, TypeVar

import trio

__all__: list[str] = []


class Interrupted:
    """Marks a run ended by Ctrl-C."""


INTERRUPTED = Interrupted()
T = TypeVar("T")


def interruptible(func: Callable[[], Awaitable[T]]) -> T | Interrupted:
    """``trio.run(func)``, turning Ctrl-C into a one-line message instead of a traceback."""
    result: list[T] = []

    async def run() -> None:
        result.append(await func())

    try:
        trio.run(run)
    except* KeyboardInterrupt:
        print_line(sys.stderr, "trio-trickle: interrupted")
    return result[0] if result else INTERRUPTED


def print_line(out: TextIO, text: str) -> None:
    """Write one line and flush it (the output may be a pipe read line by line)."""
    out.write(text + "\n")
    out.flush()
