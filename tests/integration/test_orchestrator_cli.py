"""``trio-trickle orchestrator``: a real process, used over loopback, stopped by SIGINT."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

import httpx
import pytest

from trio_trickle._cli import main


def test_orchestrator_command_needs_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIO_TRICKLE_ORCHESTRATOR_SECRET", raising=False)
    assert main(["orchestrator", "--port", "0"], out=io.StringIO()) == 2


@pytest.mark.spec("LR-001", "LR-054")
def test_orchestrator_command_serves_until_sigint() -> None:
    env = {**os.environ, "TRIO_TRICKLE_ORCHESTRATOR_SECRET": "from-env"}
    with subprocess.Popen(
        [sys.executable, "-m", "trio_trickle", "orchestrator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as process:
        _drive(process)


def _drive(process: subprocess.Popen[str]) -> None:
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving orchestrator at http://127.0.0.1:")
        url = line.split()[3]
        with httpx.Client(base_url=url, timeout=5) as client:
            beat = client.post(
                "/runners/heartbeat",
                json={"runner_url": "http://127.0.0.1:9/", "app": "echo"},
                headers={"Authorization": "from-env"},
            )
            assert beat.status_code == 200
            (entry,) = client.get("/discovery").json()
            assert entry["address"] == url
            assert len(entry["runners"]) == 1
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert "orchestrator stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
