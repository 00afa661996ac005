"""The ``trio-trickle`` command line and the conformance runner's bookkeeping.

Argument parsing, the options it builds, exit codes, the text and JSON report
shapes, and how the runner turns what a check does (return, CheckFailed,
CheckSkipped, a timeout, a crash inside a nursery) into PASS / FAIL / SKIP.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from trio_trickle._cli import main
from trio_trickle._cli.conformance import suite_options as _options
from trio_trickle._cli.parser import build_parser
from trio_trickle.conformance import (
    ChannelSetup,
    Check,
    CheckContext,
    CheckFailed,
    CheckResult,
    CheckSkipped,
    Outcome,
    Requires,
    SuiteOptions,
    SuiteReport,
    all_checks,
    run_suite,
    select_checks,
)

URL = "http://127.0.0.1:9/ai/trickle/"


def _parse_options(*argv: str) -> SuiteOptions:
    args = build_parser().parse_args(["conformance", "trickle", "--url", URL, *argv])
    return _options(args, [i for group in args.only for i in group])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- parsing ----------------------------------------------------------------------------


def test_default_setup_creates_channels_with_autocreate_unknown() -> None:
    options = _parse_options()
    assert options.setup is ChannelSetup.CREATE
    assert options.autocreate is None
    assert not options.hostile
    assert not options.strict
    assert options.ring_size == 5


def test_autocreate_and_flags() -> None:
    options = _parse_options(
        "--autocreate",
        "--hostile",
        "--strict",
        "--changefeed",
        "--idle-timeout",
        "0.5",
        "--max-segment-bytes",
        "1024",
        "--max-channels",
        "0",
        "--only",
        "trk-001, TRK-002",
        "--only",
        "TRK-057",
    )
    assert options.setup is ChannelSetup.CREATE
    assert options.autocreate is True
    assert options.hostile
    assert options.strict
    assert options.changefeed
    assert options.idle_timeout == 0.5
    assert options.sweep_window == 1.0  # the sweep interval defaults to the idle timeout
    assert options.max_segment_bytes == 1024
    assert options.max_channels is None  # 0 means no limit
    assert options.only == ("TRK-001", "TRK-002", "TRK-057")


def test_precreated_names_count_and_file(tmp_path: Path) -> None:
    options = _parse_options(
        "--precreated", "a,b, c", "--no-autocreate", "--precreated-mime", "x/y"
    )
    assert options.setup is ChannelSetup.PRECREATED
    assert options.precreated == ("a", "b", "c")
    assert options.autocreate is False
    assert options.precreated_mime == "x/y"
    options = _parse_options("--precreated-count", "3", "--channel-prefix", "pre-")
    assert options.precreated == ("pre-0", "pre-1", "pre-2")
    path = tmp_path / "names.txt"
    path.write_text("one\n\ntwo\n")
    assert _parse_options("--precreated-file", str(path)).precreated == ("one", "two")


@pytest.mark.parametrize(
    "argv",
    [
        ["--autocreate", "--precreated", "a"],
        ["--create-channels", "--precreated-count", "2"],
        ["--idle-timeout", "0"],
        ["--max-channels", "-1"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["conformance", "trickle", "--url", URL, *argv])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--no-autocreate"], "--no-autocreate needs --precreated"),
        (["--only", "TRK-999"], "no check for TRK-999"),
        (["--precreated", ","], "no precreated channel names"),
    ],
)
def test_unusable_options_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    assert main(["conformance", "trickle", "--url", URL, *argv], out=out) == 2
    assert message in capsys.readouterr().err
    assert out.getvalue() == ""


def test_unreachable_server_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}/ai/trickle/"
    assert main(["conformance", "trickle", "--url", url], out=io.StringIO()) == 2
    assert "cannot reach" in capsys.readouterr().err


def test_channel_prefix_must_be_a_valid_name() -> None:
    with pytest.raises(ValueError, match="invalid channel name"):
        _parse_options("--channel-prefix", "a b")


def test_list_prints_every_check() -> None:
    out = io.StringIO()
    assert main(["conformance", "list"], out=out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == len(all_checks())
    assert lines[0].split()[0] == all_checks()[0].key
    assert any("hostile/deviation" in line for line in lines)


def test_select_checks_by_key_or_id() -> None:
    keys = [c.key for c in select_checks(["trk-024"])]
    assert keys == ["TRK-024", "TRK-024b"]  # an ID selects every check that verifies it
    assert [c.key for c in select_checks(["TRK-024b"])] == ["TRK-024b"]
    assert [c.key for c in select_checks(["TRK-016"])] == ["TRK-006", "TRK-048"]
    with pytest.raises(ValueError, match="TRK-999"):
        select_checks(["TRK-999"])


# -- reports and exit codes ----------------------------------------------------------------


def _result(outcome: Outcome, *, deviation: bool = False, key: str = "TRK-001") -> CheckResult:
    return CheckResult(
        key=key,
        ids=(key,),
        title="a title",
        category="default",
        deviation=deviation,
        outcome=outcome,
        reason="" if outcome is Outcome.PASS else "why",
    )


def test_result_lines() -> None:
    assert _result(Outcome.PASS).line() == "PASS TRK-001 a title"
    assert _result(Outcome.FAIL).line() == "FAIL TRK-001 a title: why"
    assert _result(Outcome.FAIL, deviation=True).line() == "FAIL (deviation) TRK-001 a title: why"
    assert _result(Outcome.SKIP).line() == "SKIP TRK-001 a title: why"


@pytest.mark.parametrize(
    ("results", "strict", "code", "summary"),
    [
        ([Outcome.PASS, Outcome.SKIP], False, 0, "1 passed, 0 failed, 1 skipped"),
        ([Outcome.PASS, Outcome.FAIL], False, 1, "1 passed, 1 failed, 0 skipped"),
        (
            [Outcome.PASS, "deviation"],
            False,
            0,
            "1 passed, 0 failed, 0 skipped, 1 failed as expected deviations",
        ),
        ([Outcome.PASS, "deviation"], True, 1, "1 passed, 1 failed, 0 skipped"),
    ],
)
def test_exit_code_and_summary(
    results: list[Outcome | str], strict: bool, code: int, summary: str
) -> None:
    made = [
        _result(Outcome.FAIL, deviation=True, key=f"K-{i}")
        if item == "deviation"
        else _result(Outcome(item), key=f"K-{i}")
        for i, item in enumerate(results)
    ]
    report = SuiteReport(target=URL, results=made, strict=strict)
    assert report.exit_code == code
    assert report.summary().startswith(summary)
    data = json.loads(report.dumps())
    assert data["exit_code"] == code
    assert data["summary"]["total"] == len(results)
    assert [r["counted"] for r in data["results"]] == [r.counted(strict) for r in made]


# -- the runner ---------------------------------------------------------------------------------


async def _passes(ctx: CheckContext) -> None:
    assert ctx.base == URL


async def _fails(ctx: CheckContext) -> None:
    raise CheckFailed("the server said no")


async def _skips(ctx: CheckContext) -> None:
    raise CheckSkipped("not here")


async def _hangs(ctx: CheckContext) -> None:
    await trio.sleep_forever()


async def _fails_in_child(ctx: CheckContext) -> None:
    async def child() -> None:
        raise CheckFailed("from a child task")

    ctx.nursery.start_soon(child)
    await trio.sleep_forever()


async def _crashes(ctx: CheckContext) -> None:
    raise KeyError("bug")


def _check(key: str, func: object, **kwargs: object) -> Check:
    return Check(key=key, ids=(key,), title=key.lower(), func=func, **kwargs)  # type: ignore[arg-type]


async def test_runner_classifies_outcomes() -> None:
    checks = [
        _check("T-PASS", _passes),
        _check("T-FAIL", _fails),
        _check("T-SKIP", _skips),
        _check("T-SLOW", _hangs, timeout=0.05),
        _check("T-CHILD", _fails_in_child),
        _check("T-CRASH", _crashes),
        _check("T-HOSTILE", _passes, category="hostile"),
        _check("T-NEEDS", _passes, requires=Requires(idle_timeout=True)),
        _check("T-DEV", _fails, deviation=True),
    ]
    seen: list[str] = []
    report = await run_suite(URL, checks=checks, on_result=lambda r: seen.append(r.key))
    got = {r.key: (r.outcome, r.reason) for r in report.results}
    assert seen == [c.key for c in checks]
    assert got["T-PASS"] == (Outcome.PASS, "")
    assert got["T-FAIL"] == (Outcome.FAIL, "the server said no")
    assert got["T-SKIP"] == (Outcome.SKIP, "not here")
    assert got["T-SLOW"][0] is Outcome.FAIL
    assert "timed out after 0.05 s" in got["T-SLOW"][1]
    assert got["T-CHILD"] == (Outcome.FAIL, "from a child task")
    assert got["T-CRASH"][0] is Outcome.FAIL
    assert "KeyError" in got["T-CRASH"][1]
    assert got["T-HOSTILE"][0] is Outcome.SKIP
    assert "--hostile" in got["T-HOSTILE"][1]
    assert got["T-NEEDS"][0] is Outcome.SKIP
    assert "--idle-timeout" in got["T-NEEDS"][1]
    assert report.failed == 4  # FAIL, SLOW, CHILD, CRASH; the deviation is not counted
    assert report.expected_deviations == 1
    assert report.exit_code == 1


async def test_timeouts_scale() -> None:
    check = _check("T-SLOW", _hangs, timeout=lambda o: 0.02)
    options = SuiteOptions(timeout_scale=2.0)
    assert check.timeout_for(options) == pytest.approx(0.04)
    report = await run_suite(URL, options, checks=[check])
    assert "timed out after 0.04 s" in report.results[0].reason


def test_self_check_json_via_main() -> None:
    out = io.StringIO()
    code = main(["conformance", "self-check", "--only", "TRK-078,TRK-013", "--json"], out=out)
    data = json.loads(out.getvalue())
    assert code == 0
    assert data["suite"] == "trickle"
    assert data["strict"] is True
    assert data["summary"] == {
        "passed": 2,
        "failed": 0,
        "expected_deviations": 0,
        "skipped": 0,
        "total": 2,
    }
    assert [r["key"] for r in data["results"]] == ["TRK-013", "TRK-078"]
    assert set(data["results"][0]) == {
        "key",
        "ids",
        "title",
        "category",
        "deviation",
        "outcome",
        "counted",
        "reason",
        "duration_s",
    }


def test_self_check_text_via_main() -> None:
    out = io.StringIO()
    assert main(["conformance", "self-check", "--only", "TRK-005,TRK-079"], out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("self-check:")
    assert any(line.startswith("-- server 'main'") for line in lines)
    assert any(line.startswith("-- server 'no-autocreate'") for line in lines)
    assert any(line.startswith("PASS TRK-005 ") for line in lines)
    assert any(line.startswith("PASS TRK-079 ") for line in lines)
    assert lines[-1] == "2 passed, 0 failed, 0 skipped -- all checks pass"


def test_trickle_server_refuses_a_bad_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trickle-server", "--port", "0", "--base-path", "nope"]) == 2
    assert "base_path" in capsys.readouterr().err


def test_trickle_server_reports_a_busy_port() -> None:
    # A subprocess: hypercorn leaks the socket it failed to bind, which this
    # suite's warnings-as-errors setting would report against the test run.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "trio_trickle", "trickle-server", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert "trio-trickle:" in done.stderr


def test_orchestrator_public_url_and_runner_address_reach_the_registry() -> None:
    """Behind --host 0.0.0.0 the bound address is no URL a client can use: --public-url
    is what discovery and reservations advertise, --runner-address where runners call."""
    from trio_trickle._cli.parser import build_parser
    from trio_trickle._cli.servers import orchestrator_config

    args = build_parser().parse_args(
        ["orchestrator", "--host", "0.0.0.0", "--public-url", "https://orch.example:8935"]
    )
    config = orchestrator_config(args, "s3cret")
    assert callable(config.registry)
    registry = config.registry("http://0.0.0.0:8935")
    assert registry.service_uri == "https://orch.example:8935"
    assert registry.runner_address is None  # runners use the public URL
    assert registry.orchestrator_secret == "s3cret"

    args = build_parser().parse_args(
        ["orchestrator", "--runner-address", "http://10.0.0.5:8935", "--port", "0"]
    )
    config = orchestrator_config(args, "s3cret")
    assert callable(config.registry)
    registry = config.registry("http://127.0.0.1:40000")
    assert registry.service_uri == "http://127.0.0.1:40000"
    assert registry.runner_address == "http://10.0.0.5:8935"
