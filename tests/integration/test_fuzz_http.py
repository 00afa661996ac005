"""Raw-socket fuzzing of the trickle server and the runner, each in its own process (TRK-111).

Every Hypothesis example is one connection (tests/fuzz/raw_http.py): heads
well-formed or not, bodies short or long, pipelined, cut anywhere, ended by a
half-close, a close or a reset. The invariant: the server answers or closes
every connection, never answers 500, and its process stays up; afterwards it
serves a normal publish/subscribe (or start/stop) and has released every
connection's file descriptor.

The normal run plays a few hundred connections per server;
``nox -s fuzz`` plays ``TRIO_TRICKLE_FUZZ_EXAMPLES`` (10,000) each and prints
the tally as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.fuzz.raw_http import (
    ALLOWED,
    RUNNER_ROUTES,
    Plan,
    Tally,
    drive,
    plans,
    requests,
    runner_bodies,
    trickle_paths,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("TRIO_TRICKLE_FUZZ_EXAMPLES", "150"))
#: File descriptors a server may still hold beyond its idle baseline (a listener's spare).
FD_SLACK = 2


@attrs.define
class Target:
    kind: str
    proc: subprocess.Popen[bytes]
    url: str
    trickle: str
    port: int
    baseline_fds: int
    tally: Tally = attrs.field(factory=Tally)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def play(self, plan: Plan) -> None:
        outcome = drive(self.port, plan)
        self.tally.add(plan, outcome)
        if self.proc.poll() is not None:
            self.tally.crashes += 1
            pytest.fail(f"the {self.kind} server process exited ({self.proc.returncode})")
        assert outcome.kind != "hang", f"connection neither answered nor closed: {plan!r}"
        assert set(outcome.statuses) <= ALLOWED, f"{outcome.statuses} for {plan!r}"

    def wait_fds_released(self) -> None:
        deadline = time.monotonic() + 10.0
        while self.fds() > self.baseline_fds + FD_SLACK:
            if time.monotonic() > deadline:
                pytest.fail(f"{self.fds()} fds held, baseline {self.baseline_fds}")
            time.sleep(0.05)  # another process: /proc is the only way to watch it


def _start(kind: str) -> Iterator[Target]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fuzz.target", kind],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    try:
        info = json.loads(proc.stdout.readline())
        port = int(info["url"].split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        target = Target(
            kind=kind,
            proc=proc,
            url=info["url"],
            trickle=info["trickle"],
            port=port,
            baseline_fds=len(os.listdir(f"/proc/{proc.pid}/fd")),
        )
        yield target
        print(json.dumps(target.tally.report(kind)))
    finally:
        proc.stdin.close()
        proc.stdout.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def trickle_target() -> Iterator[Target]:
    yield from _start("trickle")


@pytest.fixture(scope="module")
def live_target() -> Iterator[Target]:
    yield from _start("live")


@pytest.fixture(scope="module")
def pipeline_target() -> Iterator[Target]:
    yield from _start("pipeline")


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _fuzz(target: Target, strategy: st.SearchStrategy[Plan]) -> None:
    """Play ``FUZZ``'s number of connection plans against ``target``."""

    @FUZZ
    @given(strategy)
    def play(plan: Plan) -> None:
        target.play(plan)

    play()


@pytest.mark.spec("TRK-111")
def test_trickle_server_survives_raw_fuzz(trickle_target: Target) -> None:
    _fuzz(trickle_target, plans(requests(trickle_paths(), st.binary(max_size=300))))
    # Still a trickle server: publish then read back on a fresh channel.
    with httpx.Client(timeout=10) as client:
        url = trickle_target.trickle + "after-fuzz/0"
        assert client.post(url, content=b"still here").status_code == 200
        assert client.get(url).content == b"still here"
    trickle_target.wait_fds_released()


def _runner_plans(target: Target) -> st.SearchStrategy[Plan]:
    paths = st.sampled_from([r.encode() for r in RUNNER_ROUTES]) | st.binary(max_size=30)
    return plans(requests(paths, runner_bodies(target.trickle)))


@pytest.mark.spec("TRK-111", "RUN-008")
def test_live_runner_survives_raw_fuzz(live_target: Target) -> None:
    _fuzz(live_target, _runner_plans(live_target))
    with httpx.Client(timeout=10) as client:
        health = client.get(live_target.url + "/health")
        assert health.status_code == 200
        status = client.get(live_target.url + "/stream/status")
        assert status.status_code in (200, 404)
        # Sessions the fuzz started hold their trickle connections: stop them first.
        for stream_id in ("s1", "s2", "s3", "", "x" * 600):
            stop = client.post(
                live_target.url + "/stream/stop", json={"gateway_request_id": stream_id}
            )
            assert stop.status_code in (200, 400, 404)
        deadline = time.monotonic() + 10.0
        while client.get(live_target.url + "/stream/status").json().get("sessions"):
            assert time.monotonic() < deadline, "sessions still running after their stop"
            time.sleep(0.05)  # another process: poll its status
    live_target.wait_fds_released()


@pytest.mark.spec("TRK-111")
def test_pipeline_runner_survives_raw_fuzz(pipeline_target: Target) -> None:
    _fuzz(pipeline_target, _runner_plans(pipeline_target))
    with httpx.Client(timeout=10) as client:
        answer = client.post(pipeline_target.url + "/predict", json={"text": "hi"})
        assert answer.status_code == 200
    pipeline_target.wait_fds_released()
