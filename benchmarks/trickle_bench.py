"""Trickle server benchmark: throughput, fan-out, chunk latency, small segments, RSS.

Prints one JSON object per line, one per metric. The same raw-httpx client
drives every server, so figures for two servers measured in one run compare
like for like:

    python benchmarks/trickle_bench.py                      # our server, spawned
    python benchmarks/trickle_bench.py --server-url URL     # any trickle server
    python benchmarks/trickle_bench.py --compare-url URL    # ours and URL, plus ratios
    python benchmarks/trickle_bench.py --repeat 5           # medians (min/max) of 5 runs
    python benchmarks/trickle_bench.py --only latency       # one workload (profiling)

A spawned server runs in its own process (``python -m trio_trickle
trickle-server``) so its RSS is its own and the client does not share its event
loop. Channels are created with ``POST {base}{ch}``; a server with autocreate
off (go-livepeer's orchestrator) refuses that, so create channels out of band
and pass ``--precreated-count N`` (names ``PREFIX0``..``PREFIX{N-1}``, prefix
``--channel-prefix``, default ``bench-``; each is used once: 4 per run, per
``--repeat``). ``--server-pid`` / ``--compare-pid`` give the RSS of a server
measured by URL when it runs on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import trio

CHUNK = 64 * 1024


def emit(metric: str, value: float, unit: str, server: str, **extra: Any) -> dict[str, Any]:
    record = {"metric": metric, "value": round(value, 3), "unit": unit, "server": server, **extra}
    print(json.dumps(record), flush=True)
    return record


class Target:
    """One server under test and its channel naming."""

    def __init__(
        self, url: str, label: str, pid: int | None, precreated: list[str] | None = None
    ) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.label = label
        self.pid = pid
        self._n = 0
        self._precreated = list(precreated) if precreated is not None else None

    async def channel(
        self, client: httpx.AsyncClient, mime: str = "application/octet-stream"
    ) -> str:
        """A fresh channel: the next precreated one, or one created with ``POST {ch}``."""
        if self._precreated is not None:
            if not self._precreated:
                raise SystemExit(f"{self.label}: out of precreated channels; pass a larger count")
            return self.url + self._precreated.pop(0)
        self._n += 1
        name = f"bench{self._n}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        created = await client.post(self.url + name, headers={"Expect-Content": mime})
        if created.status_code >= 400:
            raise SystemExit(
                f"{self.label}: POST {self.url}{name} answered {created.status_code}: the server "
                "does not create channels on request (autocreate off?); create them out of "
                "band and pass --precreated-count N"
            )
        return self.url + name


async def _body(receive: trio.MemoryReceiveChannel[bytes]) -> AsyncIterator[bytes]:
    async with receive:
        async for part in receive:
            yield part


async def post_streaming(
    client: httpx.AsyncClient,
    url: str,
    task_status: trio.TaskStatus[trio.MemorySendChannel[bytes]] = trio.TASK_STATUS_IGNORED,
) -> httpx.Response:
    """Open a preconnected POST; the caller feeds body chunks through the channel."""
    send, receive = trio.open_memory_channel[bytes](4)
    task_status.started(send)
    response = await client.post(url, content=_body(receive))
    response.raise_for_status()
    return response


async def read_segment(
    client: httpx.AsyncClient, url: str, on_chunk: Callable[[bytes], None] | None = None
) -> int:
    total = 0
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            total += len(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
    return total


async def fanout(client: httpx.AsyncClient, target: Target, subscribers: int, size: int) -> float:
    """Aggregate MB/s of ``subscribers`` readers of one ``size``-byte segment."""
    url = await target.channel(client)
    payload = os.urandom(CHUNK)
    received: list[int] = []
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            received.append(await read_segment(client, url + "/0"))

        for _ in range(subscribers):
            nursery.start_soon(reader)
        await trio.sleep(0.2)  # all GETs parked on the pre-created segment 0
        start = time.perf_counter()
        send = await nursery.start(post_streaming, client, url + "/0")
        async with send:
            for _ in range(size // CHUNK):
                await send.send(payload)
    elapsed = time.perf_counter() - start
    assert received == [size] * subscribers, received
    await client.delete(url)
    return sum(received) / elapsed / 1e6


async def chunk_latency(
    client: httpx.AsyncClient, target: Target, subscribers: int, chunks: int
) -> tuple[float, float]:
    """p50/p99 ms from a publisher's write of a 4 KiB chunk to each subscriber's receipt."""
    url = await target.channel(client)
    samples: list[float] = []
    frame = 4096
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            pending = bytearray()

            def on_chunk(chunk: bytes) -> None:
                now = time.perf_counter_ns()
                pending.extend(chunk)
                while len(pending) >= frame:
                    (stamp,) = struct.unpack_from("!Q", pending)
                    samples.append((now - stamp) / 1e6)
                    del pending[:frame]

            await read_segment(client, url + "/0", on_chunk)

        for _ in range(subscribers):
            nursery.start_soon(reader)
        await trio.sleep(0.3)
        send = await nursery.start(post_streaming, client, url + "/0")
        async with send:
            for _ in range(chunks):
                await send.send(struct.pack("!Q", time.perf_counter_ns()) + bytes(frame - 8))
                await trio.sleep(0.01)
    await client.delete(url)
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99


async def small_segments(
    client: httpx.AsyncClient, target: Target, seconds: float
) -> tuple[float, float]:
    """1 KiB segments per second, each next segment preconnected, one live reader.

    Returns the publish rate and the fraction of segments the reader received
    (the rest it skipped over after a 470, as a live subscriber does).
    """
    url = await target.channel(client)
    payload = os.urandom(1024)
    count = 0
    read = 0
    skipped = 0
    deadline = time.perf_counter() + seconds
    async with trio.open_nursery() as nursery:

        async def follower() -> None:
            # A live reader: follows Lp-Trickle-Seq + 1, jumps to Latest on 470.
            nonlocal read, skipped
            seq = 0
            while True:
                async with client.stream("GET", f"{url}/{seq}") as response:
                    if response.status_code == 470:
                        latest = int(response.headers.get("Lp-Trickle-Latest", seq + 1))
                        skipped += max(latest - seq, 0)
                        seq = latest
                        continue
                    response.raise_for_status()
                    await response.aread()
                    seq = int(response.headers["Lp-Trickle-Seq"]) + 1
                read += 1

        nursery.start_soon(follower)
        start = time.perf_counter()
        current = await nursery.start(post_streaming, client, f"{url}/0")
        while time.perf_counter() < deadline:
            upcoming = await nursery.start(post_streaming, client, f"{url}/{count + 1}")
            async with current:
                await current.send(payload)
            count += 1
            current = upcoming
        elapsed = time.perf_counter() - start
        await current.aclose()
        with trio.move_on_after(2):
            while read + skipped < count:  # noqa: ASYNC110 - bounded drain of the follower
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    await client.delete(url)
    return count / elapsed, read / max(count, 1)


def rss_mb(pid: int | None) -> tuple[float, float] | None:
    if pid is None:
        return None
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def relay_bytes(quick: bool) -> int:
    return (16 if quick else 256) * 1024 * 1024


def fanout_bytes(quick: bool) -> int:
    return (4 if quick else 32) * 1024 * 1024


#: metric key -> (emitted metric name, unit, extra fields); order is run order.
METRICS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "relay_mb_s": ("relay_throughput", "MB/s", {}),
    "fanout_16_mb_s": ("fanout_1_to_16", "MB/s aggregate", {"subscribers": 16}),
    "fanout_64_mb_s": ("fanout_1_to_64", "MB/s aggregate", {"subscribers": 64}),
    "latency_p50_ms": ("chunk_latency_p50", "ms", {"subscribers": 64, "chunk_bytes": 4096}),
    "latency_p99_ms": ("chunk_latency_p99", "ms", {"subscribers": 64, "chunk_bytes": 4096}),
    "small_segments_s": ("small_segment_rate", "segments/s", {"segment_bytes": 1024}),
    "small_segments_seen": ("small_segment_follower_received", "fraction", {}),
}
#: Workload groups for ``--only``: each runs the metrics it yields.
GROUPS = ("relay", "fanout", "latency", "small")


async def run_target(target: Target, quick: bool, only: frozenset[str]) -> dict[str, float]:
    """One pass of every selected workload against ``target``; returns raw figures."""
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    results: dict[str, float] = {}
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        if "relay" in only:
            results["relay_mb_s"] = await fanout(client, target, 1, relay_bytes(quick))
        if "fanout" in only:
            for subs in (16, 64):
                value = await fanout(client, target, subs, fanout_bytes(quick))
                results[f"fanout_{subs}_mb_s"] = value
        if "latency" in only:
            p50, p99 = await chunk_latency(client, target, 64, 50 if quick else 300)
            results["latency_p50_ms"], results["latency_p99_ms"] = p50, p99
        if "small" in only:
            rate, seen = await small_segments(client, target, 1.0 if quick else 5.0)
            results["small_segments_s"], results["small_segments_seen"] = rate, seen
    return results


def report(label: str, runs: list[dict[str, float]], quick: bool) -> dict[str, float]:
    """Emit one line per metric: the median over ``runs`` (with min/max when several)."""
    medians: dict[str, float] = {}
    for key, (metric, unit, extra) in METRICS.items():
        values = [run[key] for run in runs if key in run]
        if not values:
            continue
        medians[key] = statistics.median(values)
        spread: dict[str, Any] = {}
        if key == "relay_mb_s":
            spread["segment_bytes"] = relay_bytes(quick)
        elif key.startswith("fanout_"):
            spread["segment_bytes"] = fanout_bytes(quick)
        if len(values) > 1:
            spread["runs"] = len(values)
            spread["min"] = round(min(values), 3)
            spread["max"] = round(max(values), 3)
        emit(metric, medians[key], unit, label, **extra, **spread)
    return medians


def spawn_ours() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trio_trickle",
            "trickle-server",
            "--port",
            "0",
            "--autocreate",
            "--max-segment-bytes",
            str(512 * 1024 * 1024),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = next((word for word in line.split() if word.startswith("http")), None)
    if url is None:
        proc.kill()
        raise SystemExit(f"server did not report its URL: {line!r}")
    return proc, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", help="benchmark this server instead of spawning ours")
    parser.add_argument("--compare-url", help="also benchmark this server; print ratios")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run every workload N times (servers alternating) and report medians, min, max",
    )
    parser.add_argument(
        "--precreated-count",
        type=int,
        metavar="N",
        help="use channels PREFIX0..PREFIX{N-1}, created out of band, on --server-url "
        "and --compare-url (for servers with autocreate off)",
    )
    parser.add_argument("--channel-prefix", default="bench-", help="prefix of precreated names")
    parser.add_argument("--server-pid", type=int, help="PID of --server-url's server (for RSS)")
    parser.add_argument("--compare-pid", type=int, help="PID of --compare-url's server (for RSS)")
    parser.add_argument(
        "--only",
        default=",".join(GROUPS),
        help=f"comma list of workloads to run ({','.join(GROUPS)}: all)",
    )
    args = parser.parse_args(argv)
    only = frozenset(part.strip() for part in args.only.split(",") if part.strip())
    if not only or not only <= set(GROUPS) or args.repeat < 1:
        parser.error(f"--only takes a comma list of {', '.join(GROUPS)}; --repeat N >= 1")
    precreated = None
    if args.precreated_count is not None:
        if not (args.server_url or args.compare_url) or args.precreated_count < 1:
            parser.error("--precreated-count N >= 1 goes with --server-url or --compare-url")
        precreated = [f"{args.channel_prefix}{i}" for i in range(args.precreated_count)]
    proc = None
    try:
        if args.server_url:
            ours = Target(args.server_url, "server-url", args.server_pid, precreated)
        else:
            proc, url = spawn_ours()
            ours = Target(url, "trio-trickle", proc.pid)
        other = None
        if args.compare_url:
            other = Target(args.compare_url, "compare-url", args.compare_pid, precreated)
        mine_runs: list[dict[str, float]] = []
        other_runs: list[dict[str, float]] = []
        for _ in range(args.repeat):
            # Alternate the servers so slow drifts of a noisy machine hit both alike.
            mine_runs.append(trio.run(run_target, ours, args.quick, only))
            if other is not None:
                other_runs.append(trio.run(run_target, other, args.quick, only))
        mine = report(ours.label, mine_runs, args.quick)
        rss = rss_mb(ours.pid)
        if rss is not None:
            emit("server_rss", rss[0], "MiB", ours.label, peak_mib=round(rss[1], 1))
        if other is not None:
            theirs = report(other.label, other_runs, args.quick)
            rss = rss_mb(other.pid)
            if rss is not None:
                emit("server_rss", rss[0], "MiB", other.label, peak_mib=round(rss[1], 1))
            for key, value in mine.items():
                if theirs.get(key):
                    emit(f"ratio_{key}", value / theirs[key], "ours/other", "ratio")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
