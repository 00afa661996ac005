"""``trio-trickle serve --orchestrator URL --secret S``: a runner process that registers.

The command runs as a subprocess against ``open_orchestrator`` on 127.0.0.1:0;
the test waits for it in the orchestrator's registry, stops it with SIGINT and
checks that it unregistered on the way out (LR-037).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from trio_trickle._cli import main
from trio_trickle._cli.parser import build_parser
from trio_trickle._orchestrator.config import OrchestratorConfig
from trio_trickle._orchestrator.process import open_orchestrator
from trio_trickle._registry.config import RegistryConfig

SECRET = "orch-secret"


def test_serve_parses_the_registration_flags() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "trio_trickle.examples:Passthrough",
            "--capacity",
            "3",
            "--orchestrator",
            "http://orch:8935",
            "--secret",
            "s",
            "--app",
            "echo",
            "--runner-url",
            "http://runner:8000",
        ]
    )
    assert (args.orchestrator, args.secret, args.app, args.runner_url) == (
        "http://orch:8935",
        "s",
        "echo",
        "http://runner:8000",
    )
    assert args.capacity == 3
    plain = build_parser().parse_args(["serve", "trio_trickle.examples:Passthrough"])
    assert (plain.orchestrator, plain.secret, plain.app, plain.runner_url) == (None,) * 4


def test_orchestrator_without_secret_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIO_TRICKLE_ORCHESTRATOR_SECRET", raising=False)
    argv = ["serve", "trio_trickle.examples:Passthrough", "--orchestrator", "http://o:1"]
    assert main(argv) == 2
    assert "--orchestrator needs --secret" in capsys.readouterr().err


def _fast(url: str) -> RegistryConfig:
    return RegistryConfig(
        service_uri=url, orchestrator_secret=SECRET, heartbeat_interval=0.1, heartbeat_ttl=10.0
    )


@pytest.mark.spec("LR-001", "LR-002", "LR-015", "LR-037")
async def test_serve_command_registers_and_unregisters_on_sigint(tmp_path: Path) -> None:
    config = OrchestratorConfig(secret=SECRET, registry=_fast)
    with trio.fail_after(60):
        async with open_orchestrator(config) as orch:
            command = [
                sys.executable,
                "-m",
                "trio_trickle",
                "serve",
                "trio_trickle.examples:Passthrough",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--capacity",
                "2",
                "--orchestrator",
                orch.url,
                "--app",
                "echo",
            ]
            env = {**os.environ, "TRIO_TRICKLE_ORCHESTRATOR_SECRET": SECRET}
            log = (tmp_path / "serve.log").open("wb")
            process = await trio.lowlevel.open_process(
                command, env=env, stdout=subprocess.DEVNULL, stderr=log
            )
            try:
                while not orch.registry.runners():
                    assert process.poll() is None, "serve exited early"
                    await trio.sleep(0.05)
                (view,) = orch.registry.runners()
                assert view.capacity == 2
                # A second heartbeat: the runner has read its heartbeat secret, so it
                # can unregister (a runner stopped before that is left to expire).
                while orch.registry.runners()[0].last_heartbeat == view.last_heartbeat:
                    await trio.sleep(0.05)
                discovery = orch.registry.discovery(trio.current_time())
                assert [r.app for r in discovery.entries[0].runners] == ["echo"]
                process.send_signal(signal.SIGINT)
                assert await process.wait() == 0
                log.close()
                stderr = (tmp_path / "serve.log").read_text()
                # Unregistered on SIGINT (LR-037).
                assert orch.registry.runners() == (), stderr
            finally:
                if process.poll() is None:
                    process.kill()
                    await process.wait()
                log.close()
