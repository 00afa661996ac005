"""Frame-loop benchmark: a real runner end to end, against the codec ceiling.

For each resolution, in one run:

* ``codec_ceiling``: decode + encode of the same frames in one thread, no network,
  no session: the most a runner could do on this machine;
* ``sustained_fps``: an identity ``LivePipeline`` (frames stay on the GPU when there
  is one) behind a real trickle server, the input published as fast as the
  system takes it (no fps cap); output frames per second, and ``fps / ceiling``.
  The decoder outruns process + encode here and, by design, never waits for them
  (RUN-114: an 8-frame queue, oldest dropped), so these runs give the session a
  queue that holds the whole input and never goes stale: every frame goes
  through and the rate is the loop's. With the default queue the frames the
  decoder gets ahead by are dropped (PyAV 18's ``to_ndarray("rgb24")`` is several
  times faster than 17's, enough to get ahead); ``frames_dropped`` counts them;
* ``frame_latency``: p50/p99 from a frame's bytes being published to the
  processed frame being decoded from the output channel (matched by pts);
* optionally the same with a telemetry flood (``--flood N``): N telemetry events
  stamped in one burst from a worker thread, started when the first output frame
  arrives so it lands in the measured window, to show the media path does not
  slow down; the relay's drops are reported.

Then, once: ``stop_latency`` p50/p99 over ``--sessions`` start/stop cycles, each
stopped while frames flow, and ``start_to_first_output`` (``/stream/start`` to the
first output bytes) over the same sessions.

The runner freezes the garbage collector's view after setup, as
``trio-trickle serve`` does (``open_runner(freeze_gc=True)``), so the numbers are a
serving process's.

Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import attrs
import httpx
import trio

from trio_trickle import (
    ChannelClosed,
    LivePipeline,
    ServerConfig,
    SessionSettings,
    TricklePublisher,
    TrickleSubscriber,
    open_runner,
    open_trickle_server,
)
from trio_trickle.media import (
    AudioFrame,
    VideoFrame,
    codec_ceiling,
    decode_segments,
    decode_ts,
    generate_ts,
    live_pieces,
)

CHANNELS = {"": "video/MP2T", "-out": "video/MP2T", "-control": "application/json"}
CHANNELS["-events"] = "application/json"


def emit(metric: str, value: float, unit: str, **extra: Any) -> None:
    print(
        json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, **extra}), flush=True
    )


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Identity(LivePipeline):
    """Returns every frame as it came (on the GPU when the decoder put it there)."""

    def process_video(self, frame: VideoFrame) -> VideoFrame:
        return frame


async def _stream_once(
    pipeline: LivePipeline,
    segments: list[bytes],
    pts_list: list[int],
    *,
    device: str,
    pace_fps: float | None = None,
    flood: int = 0,
) -> dict[str, Any]:
    """One stream through server + runner; returns arrival times and counts."""
    published: dict[int, float] = {}
    arrived: dict[int, float] = {}
    settings = SessionSettings(device=device, heartbeat_interval=1.0)
    if pace_fps is None:
        # Throughput: the backlog waits in the queue instead of being dropped. RUN-114's
        # recent-wins is for live input; here it would count the decoder's lead over
        # process + encode as lost frames. Live runs keep the runner's own policy.
        settings = attrs.evolve(settings, video_queue=max(8, len(pts_list)), video_max_wait=3600.0)
    async with (
        open_trickle_server(ServerConfig()) as trickle,
        open_runner(pipeline, settings=settings, freeze_gc=True) as runner,
        httpx.AsyncClient(timeout=60) as http,
    ):
        await runner.wait_setup()
        mid = "bench"
        for suffix, mime in CHANNELS.items():
            trickle.server.create_channel(mid + suffix, mime)
        url = trickle.url + mid
        body = {
            "gateway_request_id": mid,
            "subscribe_url": url,
            "publish_url": url + "-out",
            "control_url": url + "-control",
            "events_url": url + "-events",
        }
        started = time.monotonic()
        (await http.post(runner.url + "/stream/start", json=body)).raise_for_status()
        done = trio.Event()

        async def read_output() -> None:
            chunks_tx, chunks_rx = trio.open_memory_channel[bytes](256)
            frames_tx, frames_rx = trio.open_memory_channel[VideoFrame | AudioFrame](256)

            async def subscribe() -> None:
                async with chunks_tx:
                    try:
                        async with TrickleSubscriber(url + "-out", start_seq=0, client=http) as sub:
                            async for segment in sub:
                                async for chunk in segment:
                                    await chunks_tx.send(chunk)
                    except ChannelClosed:
                        pass

            async with trio.open_nursery() as inner:
                inner.start_soon(subscribe)
                inner.start_soon(decode_ts, chunks_rx, frames_tx)
                async with frames_rx:
                    async for frame in frames_rx:
                        if isinstance(frame, VideoFrame):
                            arrived.setdefault(frame.pts, time.monotonic())
                            first_output.set()
            done.set()

        flooded = {"dropped": 0}
        first_output = trio.Event()
        manager = runner.manager
        assert manager is not None
        # Held from the start: the manager forgets a session once it has ended.
        session = manager.sessions()[0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_output)
            if flood:

                def burst() -> None:
                    for index in range(flood):
                        session._telemetry("bench_flood", n=index)
                    flooded["dropped"] = session.telemetry_outlet.dropped

                async def burst_once_frames_flow() -> None:
                    # Inside the measured window (its first 10% is the warm-up), not before.
                    await first_output.wait()
                    await trio.to_thread.run_sync(burst)

                nursery.start_soon(burst_once_frames_flow)
            per_segment = max(1, len(pts_list) // max(1, len(segments)))
            pts_iter = iter(pts_list)
            async with TricklePublisher(
                url, "video/MP2T", client=http, start_seq=0, owns_channel=False
            ) as publisher:
                if pace_fps is None:  # as fast as the system takes it
                    for data in segments:
                        await publisher.write_segment(data)
                        now = time.monotonic()
                        for _ in range(per_segment):
                            pts = next(pts_iter, None)
                            if pts is not None:
                                published[pts] = now
                else:  # live: each segment streamed frame by frame at the frame rate
                    next_at = time.monotonic()
                    for data in segments:
                        async with publisher.segment() as segment:
                            for pts, piece in live_pieces(data):
                                await segment.write(piece)
                                if pts is None:
                                    continue
                                published[pts] = time.monotonic()
                                next_at += 1.0 / pace_fps
                                await trio.sleep(max(0.0, next_at - time.monotonic()))
            trickle.server.delete_channel(mid)  # input ends; the runner drains
            with trio.move_on_after(60):
                while manager.active_count:  # noqa: ASYNC110 - polling the runner, bounded
                    await trio.sleep(0.05)
            trickle.server.delete_channel(mid + "-out")
            with trio.move_on_after(10):
                await done.wait()
            nursery.cancel_scope.cancel()
        dropped = session.counters.frames_dropped
    return {
        "published": published,
        "arrived": arrived,
        "started": started,
        "dropped": dropped,
        "telemetry_dropped": flooded["dropped"],
    }


async def frame_loop(width: int, height: int, seconds: float, device: str, flood: int) -> None:
    segments = await trio.to_thread.run_sync(
        lambda: generate_ts(seconds=seconds, width=width, height=height, fps=30, audio=False)
    )
    # Only the timestamps are kept: holding every decoded picture would cost as much
    # memory as the throughput runs' session queue may take.
    pts_list = [f.pts for f in decode_segments(segments) if isinstance(f, VideoFrame)]
    ceiling = await trio.to_thread.run_sync(lambda: codec_ceiling(segments, device=device))
    size = f"{width}x{height}"
    emit("codec_ceiling", float(ceiling["fps"]), "fps", size=size, device=device)
    # Throughput runs push the input as fast as it is taken; the latency run is
    # live (30 fps), since a backlog measures queueing, not the loop.
    runs = [("", 0, None), ("_live", 0, 30.0)]
    if flood:  # the same burst against a saturated loop and against a live stream
        runs += [("_flood", flood, None), ("_live_flood", flood, 30.0)]
    for suffix, per_frame, pace in runs:
        result = await _stream_once(
            Identity(), segments, pts_list, device=device, pace_fps=pace, flood=per_frame
        )
        arrived: dict[int, float] = result["arrived"]
        published: dict[int, float] = result["published"]
        times = sorted(arrived.values())
        # The middle 80% of arrivals: the first frames wait for the decoder's probe
        # and the last ones for the end of the output stream, neither is the
        # sustained rate.
        low, high = len(times) // 10, max(len(times) // 10, len(times) - 1 - len(times) // 10)
        span = times[high] - times[low] if high > low else float("nan")
        fps = (high - low) / span if high > low else 0.0
        middle = set(sorted(arrived, key=arrived.__getitem__)[low : high + 1])
        latencies = [(arrived[p] - published[p]) * 1000 for p in middle if p in published]
        extra = {
            "size": size,
            "device": device,
            "frames_in": len(pts_list),
            "frames_out": len(times),
            "frames_dropped": result["dropped"],
        }
        if per_frame:
            extra["telemetry_burst"] = per_frame
            extra["telemetry_dropped"] = result["telemetry_dropped"]
        if pace is not None:  # live input: the latency of the loop itself
            name = "frame_latency" + suffix.replace("_live", "")
            emit(f"{name}_p50", quantile(latencies, 0.5), "ms", live_fps=pace, **extra)
            emit(f"{name}_p99", quantile(latencies, 0.99), "ms", live_fps=pace, **extra)
            continue
        emit(f"sustained_fps{suffix}", fps, "fps", **extra)
        emit(f"fps_over_ceiling{suffix}", fps / float(ceiling["fps"]), "ratio", size=size)


async def stop_latency(sessions: int, device: str) -> None:
    """Stop latency over many sessions, each stopped while frames flow, and start ->
    first output frame for every one of them."""
    segments = generate_ts(seconds=3, width=256, height=144, fps=30, audio=True)
    stops: list[float] = []
    firsts: list[float] = []
    settings = SessionSettings(device=device, heartbeat_interval=1.0)
    async with (
        open_trickle_server(ServerConfig()) as trickle,
        open_runner(Identity(), settings=settings, freeze_gc=True) as runner,
        httpx.AsyncClient(timeout=60) as http,
    ):
        await runner.wait_setup()
        for index in range(sessions):
            mid = f"s{index}"
            for suffix, mime in CHANNELS.items():
                trickle.server.create_channel(mid + suffix, mime)
            url = trickle.url + mid
            body = {
                "gateway_request_id": mid,
                "subscribe_url": url,
                "publish_url": url + "-out",
                "control_url": url + "-control",
                "events_url": url + "-events",
            }
            first_output = trio.Event()

            async def publish(url: str = url) -> None:
                # The first GOP at once (the runner probes it), then live at 30 fps.
                async with TricklePublisher(
                    url, "video/MP2T", client=http, start_seq=0, owns_channel=False
                ) as publisher:
                    await publisher.write_segment(segments[0])
                    for data in segments[1:]:
                        async with publisher.segment() as segment:
                            for pts, piece in live_pieces(data):
                                await segment.write(piece)
                                if pts is not None:
                                    await trio.sleep(1 / 30)

            async def read_output(url: str = url, event: trio.Event = first_output) -> None:
                async with TrickleSubscriber(url + "-out", start_seq=0, client=http) as sub:
                    async for segment in sub:
                        async for _chunk in segment:
                            event.set()

            started = time.monotonic()
            (await http.post(runner.url + "/stream/start", json=body)).raise_for_status()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(publish)
                nursery.start_soon(read_output)
                with trio.fail_after(30):
                    await first_output.wait()
                firsts.append((time.monotonic() - started) * 1000)
                await trio.sleep(0.1)  # frames flowing through decode, process, encode
                begin = time.monotonic()
                (await http.post(runner.url + "/stream/stop")).raise_for_status()
                stops.append((time.monotonic() - begin) * 1000)
                nursery.cancel_scope.cancel()
            for suffix in CHANNELS:
                trickle.server.delete_channel(mid + suffix)
    extra = {"sessions": sessions, "stopped": "while streaming"}
    emit("stop_latency_p50", quantile(stops, 0.5), "ms", **extra)
    emit("stop_latency_p99", quantile(stops, 0.99), "ms", **extra)
    emit("start_to_first_output_p50", quantile(firsts, 0.5), "ms", samples=len(firsts))
    emit("start_to_first_output_p99", quantile(firsts, 0.99), "ms", samples=len(firsts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="512x512,1280x720", help="WxH list")
    parser.add_argument("--seconds", type=float, default=10.0, help="input length per size")
    parser.add_argument("--sessions", type=int, default=200, help="stop-latency cycles")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--flood", type=int, default=0, help="telemetry events in one burst")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.seconds, args.sessions = "128x72", 2.0, 10
    device = SessionSettings(device=args.device).resolved_device()
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.lower().split("x"))
        trio.run(frame_loop, width, height, args.seconds, device, args.flood)
    trio.run(stop_latency, args.sessions, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
