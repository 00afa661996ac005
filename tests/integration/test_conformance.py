"""The trickle conformance suite against our own server, one test per check.

Each check runs against a fresh embedded server in the profile that meets its
requirements (``conformance.profile_for``), strict: the deviation checks test
our own spec, so every one of them must pass here. A second test drives the
``trio-trickle`` command end to end, server and suite as subprocesses.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import attrs
import pytest
import trio

from trio_trickle.conformance import (
    Check,
    InProcess,
    Outcome,
    all_checks,
    open_profile_server,
    profile_for,
    run_suite,
)

#: Checks that fail against our server because the SERVER breaks the spec.
#: Strict xfail: when the server is fixed the XPASS fails, and the entry goes.


def _param(check: Check) -> object:
    marks: list[pytest.MarkDecorator] = [pytest.mark.spec(*check.ids)]
    return pytest.param(check, id=check.key, marks=marks)


@pytest.mark.parametrize("check", [_param(c) for c in all_checks()])
async def test_check_passes_against_our_server(check: Check) -> None:
    profile = profile_for(check)
    async with open_profile_server(profile) as (url, options):
        report = await run_suite(url, attrs.evolve(options, strict=True), checks=[check])
    (result,) = report.results
    assert result.outcome is Outcome.PASS, result.line()


def _never_called(_name: str, _mime: str) -> None:
    raise AssertionError("only the requirements are looked at")


def test_every_check_has_a_profile_that_runs_it() -> None:
    hooks = InProcess(create_channel=_never_called, deny_prefix="x-")
    skipped = [
        check.key
        for check in all_checks()
        if check.skip_reason(attrs.evolve(profile_for(check).options, in_process=hooks))
    ]
    assert skipped == []


async def _read_line(stream: trio.abc.ReceiveStream) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(1)
        if not chunk:
            break
        data += chunk
    return data.decode()


@pytest.mark.spec("TRK-078", "TRK-023", "TRK-057", "TRK-031", "TRK-003")
async def test_cli_suite_against_cli_server() -> None:
    """``trio-trickle trickle-server`` and ``trio-trickle conformance trickle``, for real."""
    command = [sys.executable, "-m", "trio_trickle"]
    server = await trio.lowlevel.open_process(
        [*command, "trickle-server", "--port", "0", "--autocreate"], stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        with trio.fail_after(30):
            line = await _read_line(server.stdout)
        found = re.search(r"http://\S+/", line)
        assert found is not None, line
        url = found.group(0)
        only = ["--only", "TRK-078,TRK-023", "--only", "TRK-031,TRK-005"]
        with trio.fail_after(60):
            text = await trio.run_process(
                [*command, "conformance", "trickle", "--url", url, "--autocreate", *only],
                capture_stdout=True,
                check=False,
            )
            machine = await trio.run_process(
                [*command, "conformance", "trickle", "--url", url, "--json", *only],
                capture_stdout=True,
                check=False,
            )
        lines = text.stdout.decode().splitlines()
        assert text.returncode == 0, lines
        assert lines[0] == f"trickle conformance against {url}"
        assert any(x.startswith("PASS TRK-078 ") for x in lines), lines
        assert any(x.startswith("PASS TRK-023 ") for x in lines), lines
        assert any(x.startswith("PASS TRK-031 ") for x in lines), lines
        assert any(x.startswith("SKIP TRK-005 ") and "autocreate off" in x for x in lines)
        assert lines[-1] == "3 passed, 0 failed, 1 skipped"
        report = json.loads(machine.stdout)
        assert machine.returncode == 0
        assert report["summary"] == {
            "passed": 3,
            "failed": 0,
            "expected_deviations": 0,
            "skipped": 1,
            "total": 4,
        }
        assert [r["key"] for r in report["results"]] == ["TRK-005", "TRK-078", "TRK-023", "TRK-031"]
    finally:
        server.send_signal(signal.SIGINT)
        with trio.fail_after(15):
            code = await server.wait()
    assert code == 0
