"""What ``pip install trio-trickle`` (no extras) must do, run as a script.

``nox -s base_install`` runs it in a venv that has the package's base
dependencies only (no PyAV, numpy or torch); ``tests/integration/test_base_install.py``
runs it in the full test venv with ``--block-media``, which makes those imports
fail as if they were not installed. Either way it exercises, through the public
API only: the package and ``trio_trickle.wire`` importing (``import *`` included),
a trickle publish/subscribe, a request/response ``Pipeline`` over HTTP, and a
``LivePipeline`` that overrides nothing relaying a stream byte for byte; then it
checks that none of the media libraries was imported. It prints one JSON line.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import sys
from collections.abc import Sequence
from typing import Any

MEDIA_LIBRARIES = ("av", "numpy", "torch")


class BlockMedia(importlib.abc.MetaPathFinder):
    """Makes ``import av`` / ``numpy`` / ``torch`` fail as they do where not installed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in MEDIA_LIBRARIES:
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked)", name=fullname)
        return None


def main(argv: list[str]) -> int:
    if "--block-media" in argv:
        sys.meta_path.insert(0, BlockMedia())
    for name in MEDIA_LIBRARIES:
        try:
            __import__(name)
        except ImportError:
            continue
        print(f"{name} is importable: this check needs an install without the media extras")
        return 2

    import trio

    import trio_trickle
    import trio_trickle.wire

    namespace: dict[str, object] = {}
    exec("from trio_trickle import *", namespace)
    exec("from trio_trickle.wire import *", namespace)
    missing = [n for n in (*trio_trickle.__all__, *trio_trickle.wire.__all__) if n not in namespace]
    assert not missing, f"import * lost {missing}"

    report = trio.run(exercise)
    loaded = sorted(n for n in MEDIA_LIBRARIES if n in sys.modules)
    assert not loaded, f"a base install imported {loaded}"
    report["media_libraries_imported"] = loaded
    print(json.dumps(report, sort_keys=True))
    return 0


async def exercise() -> dict[str, object]:
    import httpx
    import trio

    from trio_trickle import (
        LivePipeline,
        Pipeline,
        ServerConfig,
        SessionSettings,
        TricklePublisher,
        TrickleSubscriber,
        open_runner,
        open_trickle_server,
    )

    class Greet(Pipeline):
        def predict(self, name: str) -> dict[str, str]:
            return {"greeting": f"hello {name}"}

    class Relay(LivePipeline):
        """Overrides nothing: the runner relays input segments byte for byte."""

    segments = [bytes([i]) * (1000 + i) for i in range(3)]
    with trio.fail_after(60):
        async with (
            open_trickle_server(ServerConfig()) as trickle,
            httpx.AsyncClient(timeout=20) as http,
        ):
            # 1. trickle publish/subscribe
            # (three segments: all still in the server's ring of five when the subscriber starts)
            trickle.server.create_channel("plain", "application/octet-stream")
            async with TricklePublisher(
                trickle.url + "plain", "application/octet-stream", owns_channel=False
            ) as pub:
                for data in segments:
                    await pub.write_segment(data)
            async with TrickleSubscriber(trickle.url + "plain", start_seq=0) as sub:
                received = [await read_next(sub) for _ in segments]
            assert received == segments, "trickle round trip changed the bytes"

            # 2. request/response Pipeline
            async with open_runner(Greet()) as runner:
                await runner.wait_setup()
                answer = await http.post(runner.url + "/predict", json={"name": "base"})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"greeting": "hello base"}, answer.text

            # 3. a relaying LivePipeline session: consecutive input segments, byte for byte
            relayed = await relay_stream(trickle, http, Relay(), 5, SessionSettings)
            first = int(relayed[0].split()[1])
            expected = [f"segment {first + i} ".encode() * 50 for i in range(5)]
            assert relayed == expected, "the relay changed, lost or reordered segments"
    return {"trickle_segments": len(received), "predict": "ok", "relayed_segments": len(relayed)}


async def read_next(subscriber: Any) -> bytes:
    segment = await subscriber.next_segment()
    assert segment is not None, "the channel ended early"
    data: bytes = await segment.read_all()
    return data


async def relay_stream(
    trickle: Any, http: Any, pipeline: Any, count: int, settings: Any
) -> list[bytes]:
    """Start a stream on a runner serving ``pipeline``; its first ``count`` output segments."""
    import trio

    from trio_trickle import TricklePublisher, TrickleSubscriber, open_runner

    base: str = trickle.url
    server = trickle.server
    for suffix, mime in {
        "": "video/MP2T",
        "-out": "video/MP2T",
        "-control": "application/json",
        "-events": "application/json",
        "-data": "application/jsonl",
    }.items():
        server.create_channel("live" + suffix, mime)
    output: list[bytes] = []
    async with open_runner(pipeline, settings=settings(device="auto")) as runner:
        await runner.wait_setup()
        start = await http.post(
            runner.url + "/stream/start",
            json={
                "gateway_request_id": "live",
                "subscribe_url": base + "live",
                "publish_url": base + "live-out",
                "control_url": base + "live-control",
                "events_url": base + "live-events",
                "data_url": base + "live-data",
            },
        )
        assert start.status_code == 200, start.text

        async def publish(publisher: Any) -> None:
            # The session subscribes at the live edge, after the start answer: publish
            # until the output has what this check wants, the way a live source does.
            for index in range(10_000):
                await publisher.write_segment(f"segment {index} ".encode() * 50)
                await trio.sleep(0.02)

        async with (
            TricklePublisher(
                base + "live", "video/MP2T", client=http, start_seq=0, owns_channel=False
            ) as publisher,
            TrickleSubscriber(base + "live-out", start_seq=0, client=http) as subscriber,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(publish, publisher)
            for _ in range(count):
                output.append(await read_next(subscriber))
            nursery.cancel_scope.cancel()
    return output


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
