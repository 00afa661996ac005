"""The benchmarks run end to end (smoke: they work; their speed is never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str) -> list[dict[str, object]]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_frame_loop_quick_run_reports_every_metric() -> None:
    records = _run("frame_loop.py", "--quick", "--device", "cpu", "--flood", "20000")
    metrics = {str(r["metric"]) for r in records}
    for name in (
        "codec_ceiling",
        "sustained_fps",
        "fps_over_ceiling",
        "frame_latency_p50",
        "frame_latency_p99",
        "sustained_fps_flood",
        "fps_over_ceiling_flood",
        "frame_latency_flood_p50",
        "frame_latency_flood_p99",
        "stop_latency_p50",
        "stop_latency_p99",
        "start_to_first_output_p50",
    ):
        assert name in metrics
    sustained = next(r for r in records if r["metric"] == "sustained_fps")
    assert sustained["frames_out"] == sustained["frames_in"]


@pytest.mark.spec("TRK-031")
def test_trickle_bench_quick_run_reports_every_metric() -> None:
    records = _run("trickle_bench.py", "--quick")
    metrics = {str(r["metric"]) for r in records}
    assert {"relay_throughput", "fanout_1_to_16", "fanout_1_to_64"} <= metrics
    assert {"chunk_latency_p50", "chunk_latency_p99", "small_segment_rate", "server_rss"} <= metrics
