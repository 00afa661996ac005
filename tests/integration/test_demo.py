"""The main job, ``trio-trickle demo``, end to end on tiny media.

It runs exactly what the README's main-job command runs (an embedded
orchestrator, a runner with ``Invert`` registered with it by heartbeat, the
gateway client discovering and reserving it, a live-paced stream with audio,
a params update mid-stream, output read back), only shorter and smaller so it
fits the suite.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

av = pytest.importorskip("av")
np = pytest.importorskip("numpy")
pytest.importorskip("torch")

import trio  # noqa: E402

from trio_trickle._demo import DemoOptions, run_demo  # noqa: E402

W, H = 128, 72


@pytest.mark.spec("RUN-108")
@pytest.mark.spec("LR-107", "LR-120")
async def test_demo_streams_inverted_video_with_audio_and_writes_its_files(tmp_path: Path) -> None:
    options = DemoOptions(
        seconds=2.0,
        width=W,
        height=H,
        output=tmp_path / "output.ts",
        png=tmp_path / "demo.png",
        progress=False,
    )
    out = io.StringIO()
    with trio.fail_after(90):
        report = await run_demo(options, out=out)

    assert report.frames_in == 60
    assert report.frames_out == report.frames_in
    assert report.audio_out > 0
    assert len(report.latencies_ms) == report.frames_out
    kinds = [e.get("event", {}).get("type") for e in report.events]
    assert "stream_stopped" in kinds
    lines = out.getvalue().splitlines()
    # Through the control plane: registered by heartbeat, discovered, reserved.
    assert any(line.startswith("registered      runner runner_") for line in lines)
    assert any(line.startswith("discovery       1 runner(s)") for line in lines)
    assert report.session_id is not None
    assert "/apps/runner_" in (report.runner_url or "")
    assert "stream stopped: reason=input_ended" in lines
    telemetry = next(line for line in lines if line.startswith("telemetry ("))
    assert "runner_ready" in telemetry
    assert telemetry.endswith("stream_stopped, session_closed, gateway_disconnected")
    # The events channel was read as a gateway reads it: the relayed lifecycle and the
    # gateway's own pair reached the egress, all of the stream sharing its connection id.
    names = [e.name for e in report.telemetry]
    assert names[0] == "gateway_connected"
    assert {"session_created", "stream_started", "playback_ready", "session_closed"} <= set(names)
    mid = report.telemetry[0].connection_id
    assert mid == report.session_id
    assert all(e.connection_id == mid for e in report.telemetry if e.session_id is not None)
    summary = lines[-1]
    assert summary.startswith("demo: 60/60 frames back")

    data = options.output.read_bytes()
    assert len(data) == report.output_bytes > 0
    with av.open(io.BytesIO(data), format="mpegts") as container:
        assert container.streams.audio
        frames = list(container.decode(video=0))
    assert len(frames) == 60

    # The params update switched Invert off mid-stream: the output was the input
    # inverted, then the input unchanged, and every frame was one or the other.
    assert report.update_frame == 30
    assert report.update_params == {"strength": 0.0}
    assert report.inverted > 0
    assert report.plain > 0
    assert report.inverted + report.plain == 60
    assert report.switch_frame == report.inverted
    assert any(
        line.startswith("params update {'strength': 0.0} sent after frame 30") for line in lines
    )

    # The PNG is two rows, each an input frame, an 8 px white gap, then its output:
    # before the update the output is the input inverted, after it the input itself
    # (within codec tolerance); 8 px white between the rows.
    with av.open(str(options.png)) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert image.shape == (2 * H + 8, 2 * W + 8, 3)
    first, second = image[:H], image[H + 8 :]
    before = first[:, :W].astype(int)
    after = first[:, W + 8 :].astype(int)
    assert np.abs((255 - before) - after).mean() < 12
    before = second[:, :W].astype(int)
    after = second[:, W + 8 :].astype(int)
    assert np.abs(before - after).mean() < 12
