"""A session's media task: relay the bytes, or decode, process and encode frames.

One task of the session's work nursery. Which path runs depends on the pipeline:
one that processes nothing (overrides neither ``process_video`` nor
``process_audio``) with both an input and an output gets the byte relay
(:mod:`.relay`, RUN-117); anything else with an input gets the frame graph
(:mod:`.frame_graph`); without an input there is nothing to do until the stop.

The frame graph imports PyAV and torch, which takes seconds the first time. So
it is imported here by name, only when it runs, in a worker thread: the trio loop
never blocks on that import, and a relaying session never loads those libraries.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable

import trio

from .context import StreamContext
from .relay import relay

__all__: list[str] = []  # the session's internals, nothing public

#: The frame graph's module, imported only by :func:`run_media`, only when needed.
FRAME_GRAPH = f"{__package__}.frame_graph"


async def run_media(context: StreamContext) -> None:
    """Run the stream's media path until its input ends (or forever without one)."""
    request = context.request
    pipeline = type(context.pipeline)
    relays = not (pipeline.overrides("process_video") or pipeline.overrides("process_audio"))
    if relays and request.subscribe_url and request.publish_url:
        await relay(context)
        return
    if not request.subscribe_url:
        # Output only: no input to process; the session lives until stopped.
        await trio.sleep_forever()
    # A stop during the import need not wait for it: the import finishes on its own.
    module = await trio.to_thread.run_sync(
        importlib.import_module, FRAME_GRAPH, abandon_on_cancel=True
    )
    run_frame_graph: Callable[[StreamContext], Awaitable[None]] = module.run_frame_graph
    await run_frame_graph(context)
