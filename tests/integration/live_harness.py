"""A whole live system on loopback for end-to-end tests.

A real trickle server, a real runner serving a ``LivePipeline``, and the
orchestrator's part played by the test: it creates the five channels, calls
``/stream/start`` with their URLs, publishes generated MPEG-TS into the input
channel at real-time pace, and reads the output, events and data channels.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

from trio_trickle import ServerConfig, TrickleServerHandle, open_trickle_server
from trio_trickle._client.publisher import TricklePublisher
from trio_trickle._client.subscriber import TrickleSubscriber
from trio_trickle._errors import ChannelClosed
from trio_trickle._runner.serve import RunnerHandle, open_runner
from trio_trickle._sdk.live_pipeline import LivePipeline
from trio_trickle._session.session import SessionSettings

CHANNELS = {
    "": "video/MP2T",
    "-out": "video/MP2T",
    "-control": "application/json",
    "-events": "application/json",
    "-data": "application/jsonl",
}


class LiveRig:
    """Handles to the servers plus what the test has read back so far."""

    def __init__(self, trickle: TrickleServerHandle, runner: RunnerHandle, http: httpx.AsyncClient):
        self.trickle = trickle
        self.runner = runner
        self.http = http
        self.events: list[dict[str, Any]] = []
        self.data: list[dict[str, Any]] = []
        self.output: list[bytes] = []
        self._nursery: trio.Nursery | None = None
        self._changed = trio.Event()

    def url(self, mid: str, suffix: str = "") -> str:
        return self.trickle.url + mid + suffix

    def create_channels(self, mid: str) -> None:
        for suffix, mime in CHANNELS.items():
            self.trickle.server.create_channel(mid + suffix, mime)

    def start_body(self, mid: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "gateway_request_id": mid,
            "subscribe_url": self.url(mid),
            "publish_url": self.url(mid, "-out"),
            "control_url": self.url(mid, "-control"),
            "events_url": self.url(mid, "-events"),
            "data_url": self.url(mid, "-data"),
            "params": params,
        }

    async def start(self, mid: str, params: dict[str, Any] | None = None) -> httpx.Response:
        self.create_channels(mid)
        assert self._nursery is not None
        self._nursery.start_soon(self._read_events, mid)
        self._nursery.start_soon(self._read_data, mid)
        self._nursery.start_soon(self._read_output, mid)
        return await self.http.post(
            self.runner.url + "/stream/start", json=self.start_body(mid, params)
        )

    async def publish(self, mid: str, segments: list[bytes], pace: float) -> None:
        """Publish each segment, ``pace`` seconds apart, streaming it in 4 chunks."""
        async with TricklePublisher(
            self.url(mid), "video/MP2T", client=self.http, start_seq=0, owns_channel=False
        ) as publisher:
            for data in segments:
                async with publisher.segment() as segment:
                    quarter = max(1, len(data) // 4)
                    for offset in range(0, len(data), quarter):
                        await segment.write(data[offset : offset + quarter])
                        await trio.sleep(pace / 4)

    async def control(self, mid: str, message: dict[str, Any]) -> None:
        async with TricklePublisher(
            self.url(mid, "-control"), "application/json", client=self.http, owns_channel=False
        ) as publisher:
            await publisher.write_segment(json.dumps(message).encode())

    def _note(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Any, within: float) -> None:
        """Wait until ``predicate()`` holds; fail after ``within`` seconds."""
        with trio.fail_after(within):
            while not predicate():
                await self._changed.wait()

    def event_types(self) -> list[str]:
        return [e.get("event", {}).get("type", "?") for e in self.events]

    async def _read_events(self, mid: str) -> None:
        with contextlib.suppress(ChannelClosed):  # the test deleted the channel
            await self._follow_events(mid)

    async def _follow_events(self, mid: str) -> None:
        async with TrickleSubscriber(
            self.url(mid, "-events"), start_seq=0, client=self.http
        ) as subscriber:
            async for segment in subscriber:
                data = await segment.read_all()
                if data:
                    self.events.append(json.loads(data))
                    self._note()

    async def _read_data(self, mid: str) -> None:
        with contextlib.suppress(ChannelClosed):  # the test deleted the channel
            await self._follow_data(mid)

    async def _follow_data(self, mid: str) -> None:
        async with TrickleSubscriber(
            self.url(mid, "-data"), start_seq=0, client=self.http
        ) as subscriber:
            async for segment in subscriber:
                for line in (await segment.read_all()).splitlines():
                    if line.strip():
                        self.data.append(json.loads(line))
                        self._note()

    async def _read_output(self, mid: str) -> None:
        with contextlib.suppress(ChannelClosed):  # the test deleted the channel
            await self._follow_output(mid)

    async def _follow_output(self, mid: str) -> None:
        async with TrickleSubscriber(
            self.url(mid, "-out"), start_seq=0, client=self.http
        ) as subscriber:
            async for segment in subscriber:
                self.output.append(await segment.read_all())
                self._note()


@asynccontextmanager
async def live_rig(
    pipeline: LivePipeline, *, settings: SessionSettings | None = None, **runner_options: Any
) -> AsyncIterator[LiveRig]:
    settings = settings or SessionSettings(heartbeat_interval=0.5, device="cpu")
    async with (
        open_trickle_server(ServerConfig()) as trickle,
        open_runner(pipeline, settings=settings, **runner_options) as runner,
        httpx.AsyncClient(timeout=20) as http,
        trio.open_nursery() as nursery,
    ):
        await runner.wait_setup()
        rig = LiveRig(trickle, runner, http)
        rig._nursery = nursery
        try:
            yield rig
        finally:
            nursery.cancel_scope.cancel()
