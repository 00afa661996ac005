"""The gateway client with frames: encode on the way in, decode on the way out.

Same loopback system as :mod:`tests.integration.test_gateway_client` (the
orchestrator process, a registered byte-relay runner); the gateway encodes
generated frames to MPEG-TS (``publish_frames``), the runner relays the
segments, and the gateway decodes the output (``output_frames``). PyAV and
torch are imported by the client in a worker thread; this module imports
them up front only to skip when the media extras are absent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("av")
pytest.importorskip("torch")

import trio

from tests.integration.test_gateway_client import (
    APP,
    held_sessions,
    orchestrator,
    relay_runner,
    relay_starter,
)
from trio_trickle._gateway.live_session import open_live_session
from trio_trickle._media import testsrc
from trio_trickle._media.encode_settings import EncoderSettings
from trio_trickle._media.frames import VideoFrame
from trio_trickle._sdk.live_pipeline import LivePipeline

W, H, FPS = 64, 48, 10.0


async def paced(frames: list[Any]) -> AsyncIterator[Any]:
    """The frames at their frame rate, as a camera hands them out."""
    for frame in frames:
        yield frame
        await trio.sleep(1 / FPS)  # the source's pace, not a synchronisation


@pytest.mark.spec("LR-107", "LR-120")
async def test_frames_in_frames_out_through_a_relay_runner() -> None:
    frames = list(testsrc.generate_frames(seconds=4, width=W, height=H, fps=FPS, audio=False))
    with trio.fail_after(60):
        async with orchestrator() as orch, relay_runner(orch):
            async with open_live_session(orch.url, APP, starter=relay_starter(orch)) as session:
                decoded: list[Any] = []
                async with trio.open_nursery() as nursery:

                    async def publish() -> None:
                        settings = EncoderSettings(gop_seconds=0.5)
                        sent = await session.publish_frames(paced(frames), encoder=settings)
                        assert sent >= 4

                    nursery.start_soon(publish)
                    async with session.output_frames() as output:
                        async for frame in output:
                            decoded.append(frame)
                            if len(decoded) == 5:
                                break
                    nursery.cancel_scope.cancel()
                assert all(isinstance(f, VideoFrame) for f in decoded)
                assert {(f.width, f.height) for f in decoded} == {(W, H)}
                pts = [f.pts for f in decoded]
                assert pts == sorted(pts)
            assert held_sessions(orch) == []


class Blackhole(LivePipeline):
    """Decodes its input and publishes nothing: events flow, output never does."""

    def process_video(self, frame: Any) -> Any:
        return None

    def process_audio(self, frame: Any) -> Any:
        return None


@pytest.mark.spec("LR-067", "LR-128")
async def test_no_output_while_input_flows_swaps_to_the_next_runner() -> None:
    segments = testsrc.generate_ts(
        seconds=20, width=W, height=H, fps=FPS, audio=False, gop_seconds=0.25
    )
    with trio.fail_after(60):
        async with (
            orchestrator() as orch,
            relay_runner(orch, pipeline=Blackhole()) as blackhole,
            relay_runner(orch),
        ):
            assert blackhole.registration is not None
            dark = f"/apps/{blackhole.registration.runner_id}/session"
            async with open_live_session(
                orch.url, APP, starter=relay_starter(orch), output_timeout=2.0
            ) as session:
                assert dark in (session.runner_url or "")
                async with trio.open_nursery() as nursery:

                    async def feed() -> None:
                        for segment in segments:
                            await session.publish(segment)
                            await trio.sleep(0.25)  # the source's pace

                    nursery.start_soon(feed)
                    async for segment in session.output_segments():
                        assert segment in segments  # relayed unchanged by the second runner
                        break
                    nursery.cancel_scope.cancel()
                (failure,) = session.failures
                assert dark in failure.runner_url
                assert failure.reason.startswith("no output for 2.0s")
                assert dark not in (session.runner_url or "")
            assert held_sessions(orch) == []
