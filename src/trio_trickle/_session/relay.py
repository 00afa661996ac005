"""The byte relay: input segments out to the output channel, byte for byte (RUN-117).

What a session runs when its pipeline processes nothing (it overrides neither
``process_video`` nor ``process_audio``). Its own module, apart from the frame
graph (:mod:`.frame_graph`), so that a relaying session imports only trickle:
nothing here, or below it, imports PyAV, numpy or torch.
"""

from __future__ import annotations

from .._client.publisher import TricklePublisher
from .._client.subscriber import TrickleSubscriber
from .._errors import ChannelClosed
from .._wire.runner import StopReason
from .context import StreamContext

__all__: list[str] = []  # the session's internals, nothing public


async def relay(context: StreamContext) -> None:
    """Passthrough without decoding: input segments out byte for byte (RUN-117).

    Stops the session once either side ends, with that side's reason.
    """
    request = context.request
    assert request.subscribe_url is not None
    assert request.publish_url is not None
    reason = StopReason.INPUT_ENDED
    async with (
        TrickleSubscriber(request.subscribe_url, start_seq=-1, client=context.client) as subscriber,
        TricklePublisher(
            request.publish_url, "video/MP2T", client=context.client, owns_channel=False
        ) as publisher,
    ):
        reason = await _relay_segments(subscriber, publisher)
    context.control.request_stop(reason)


async def _relay_segments(subscriber: TrickleSubscriber, publisher: TricklePublisher) -> StopReason:
    """Copy segments until one side ends; which side tells the stop reason."""
    while True:
        try:
            incoming = await subscriber.__anext__()
        except StopAsyncIteration:
            return StopReason.INPUT_ENDED
        except ChannelClosed:
            return StopReason.INPUT_GONE
        try:
            async with publisher.segment() as outgoing:
                while True:
                    try:
                        chunk = await incoming.__anext__()
                    except StopAsyncIteration:
                        break
                    except ChannelClosed:
                        return StopReason.INPUT_GONE
                    await outgoing.write(chunk)
        except ChannelClosed:
            return StopReason.OUTPUT_GONE
