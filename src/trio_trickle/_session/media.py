"""A session's media task: relay the bytes, or decode, process and encode frames.

One task of the session's work nursery. Which path runs depends on the pipeline:
one that processes nothing (overrides neither ``process_video`` nor
``process_audio``) with both an input and an output gets the byte relay
(:mod:`.relay`, RUN-117); anything else with an input gets the frame graph
(:mod:`.frame_graph`); without an input there is nothing to do until the stop.

The frame graph imports PyAV and torch, which takes seconds the first time. So
it is imported by name, in a worker thread, and only for a pipeline that
processes frames: the trio loop never blocks on that import, and a relaying
session never loads those libraries. The manager loads it before it takes a
stream for such a pipeline (:func:`load_frame_graph`), as importing the session
used to, so a stream's input is subscribed to as soon as it starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable

import trio

from .._sdk.live_pipeline import LivePipeline
from .context import StreamContext
from .relay import relay

__all__: list[str] = []  # the session's internals, nothing public

#: The frame graph's module, imported only by :func:`load_frame_graph`.
FRAME_GRAPH = f"{__package__}.frame_graph"

RunFrameGraph = Callable[[StreamContext], Awaitable[None]]

#: The frame graph's entry point once its module is imported (once a process).
_run_frame_graph: RunFrameGraph | None = None


def processes_frames(pipeline: LivePipeline) -> bool:
    """Whether ``pipeline`` overrides ``process_video`` or ``process_audio``; one that
    does not has its input relayed byte for byte when it has an output (RUN-117)."""
    kind = type(pipeline)
    return kind.overrides("process_video") or kind.overrides("process_audio")


async def load_frame_graph() -> RunFrameGraph:
    """The frame graph's entry point, its module imported in a worker thread the first
    time. A stop during the import need not wait for it: the import finishes on its own."""
    global _run_frame_graph
    if _run_frame_graph is None:
        module = await trio.to_thread.run_sync(
            importlib.import_module, FRAME_GRAPH, abandon_on_cancel=True
        )
        _run_frame_graph = module.run_frame_graph
    return _run_frame_graph


async def run_media(context: StreamContext) -> None:
    """Run the stream's media path until its input ends (or forever without one)."""
    request = context.request
    if not processes_frames(context.pipeline) and request.subscribe_url and request.publish_url:
        await relay(context)
        return
    if not request.subscribe_url:
        # Output only: no input to process; the session lives until stopped.
        await trio.sleep_forever()
    run_frame_graph = await load_frame_graph()
    await run_frame_graph(context)
