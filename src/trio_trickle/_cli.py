"""The ``trio-trickle`` command: conformance runs and a standalone trickle server.

::

    trio-trickle conformance trickle --url http://host:8935/ai/trickle/ [options]
    trio-trickle conformance self-check [--json] [--only IDS]
    trio-trickle conformance list
    trio-trickle trickle-server [--host H] [--port P] [--autocreate] ...

Exit codes: 0 all counted checks passed (or the server stopped cleanly),
1 a counted check failed, 2 bad usage or a server the suite cannot use,
130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TextIO, TypeVar

import trio

from ._core.server import ServerConfig
from ._server.connections import HttpTimeouts
from ._server.trickle import open_trickle_server
from .conformance import (
    ChannelSetup,
    CheckResult,
    Profile,
    SuiteOptions,
    all_checks,
    preflight,
    run_suite,
    select_checks,
    self_check,
)
from .conformance._embedded import quiet_server_logs

__all__: list[str] = []  # the command line is an entry point, not API


def _ids(text: str) -> list[str]:
    return [part.strip().upper() for part in text.split(",") if part.strip()]


def _size(text: str) -> int | None:
    """A byte or channel count; 0 means no limit."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value or None


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-trickle", description="trio-trickle: Livepeer trickle tools."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    conformance = commands.add_parser("conformance", help="run a conformance suite")
    suites = conformance.add_subparsers(dest="suite", required=True)

    trickle = suites.add_parser(
        "trickle",
        help="check a trickle server by URL against spec/trickle.md",
        description="Check a running trickle server against spec/trickle.md.",
    )
    trickle.add_argument("--url", required=True, help="base URL, e.g. http://h:8935/ai/trickle/")
    setup = trickle.add_mutually_exclusive_group()
    setup.add_argument(
        "--create-channels",
        action="store_true",
        help="create channels with POST {ch} (default; needs autocreate on)",
    )
    setup.add_argument(
        "--autocreate",
        action="store_true",
        help="the server has autocreate on: also run the autocreate checks",
    )
    setup.add_argument("--precreated", metavar="NAMES", help="comma-separated fresh channels")
    setup.add_argument("--precreated-file", metavar="PATH", help="fresh channels, one a line")
    setup.add_argument(
        "--precreated-count",
        metavar="N",
        type=int,
        help="fresh channels named PREFIX0 .. PREFIX{N-1} (see --channel-prefix)",
    )
    trickle.add_argument(
        "--no-autocreate",
        action="store_true",
        help="the server has autocreate off (with --precreated*): run the 404 checks",
    )
    trickle.add_argument("--precreated-mime", help="MIME type the precreated channels have")
    trickle.add_argument("--channel-prefix", default="conf-", help="prefix of channel names")
    trickle.add_argument("--changefeed", action="store_true", help="the server has _changes on")
    trickle.add_argument(
        "--idle-timeout", type=_seconds, help="the server's (tiny) idle timeout, seconds"
    )
    trickle.add_argument(
        "--sweep-interval", type=_seconds, help="the server's sweep interval (default: idle)"
    )
    trickle.add_argument("--max-segment-bytes", type=_size, help="the server's segment limit")
    trickle.add_argument("--max-channels", type=_size, help="the server's channel limit")
    trickle.add_argument("--ring-size", type=int, default=5, help="segments per channel (5)")
    trickle.add_argument("--insecure", action="store_true", help="accept any TLS certificate")
    trickle.add_argument(
        "--timeout-scale", type=_seconds, default=1.0, help="multiply check timeouts"
    )
    _common(trickle)
    trickle.add_argument("--strict", action="store_true", help="count deviation FAILs too")
    trickle.add_argument(
        "--hostile", action="store_true", help="also run checks that crash buggy servers"
    )

    self_check = suites.add_parser(
        "self-check",
        help="run the whole suite against our own server, embedded",
        description=(
            "Start trio-trickle's server on 127.0.0.1 and run every check against it,"
            " hostile ones included. Always strict: our spec is the one the deviation"
            " checks test, so every FAIL counts."
        ),
    )
    _common(self_check)
    suites.add_parser("list", help="list the checks")

    server = commands.add_parser(
        "trickle-server",
        help="serve trickle until Ctrl-C",
        description="Serve trio-trickle's trickle server; prints its URL, stops on Ctrl-C.",
    )
    server.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    server.add_argument("--port", type=int, default=8935, help="port (8935; 0 picks a free one)")
    server.add_argument("--base-path", default="/ai/trickle/", help="mount path (/ai/trickle/)")
    server.add_argument(
        "--autocreate", action="store_true", help="create channels on POST {ch} / first segment"
    )
    server.add_argument("--changefeed", action="store_true", help="keep the _changes channel")
    server.add_argument(
        "--idle-timeout", type=_seconds, default=300.0, help="close idle channels after (300 s)"
    )
    server.add_argument(
        "--sweep-interval", type=_seconds, default=60.0, help="idle sweep period (60 s)"
    )
    server.add_argument(
        "--max-segment-bytes",
        type=_size,
        default=64 * 1024 * 1024,
        help="largest segment, 413 beyond (64 MiB; 0: no limit)",
    )
    server.add_argument(
        "--max-channels",
        type=_size,
        default=1024,
        help="most channels, 503 beyond (1024; 0: no limit)",
    )
    server.add_argument(
        "--ring-size", type=int, default=5, help="segments kept per channel (5; at least 2)"
    )
    server.add_argument(
        "--max-buffered-bytes",
        type=_size,
        default=1024 * 1024 * 1024,
        help="bytes held by all channels together, 503 beyond (1 GiB; 0: no limit)",
    )
    server.add_argument(
        "--header-timeout",
        type=_seconds,
        default=5.0,
        help="close a connection whose request head is not complete after (5 s)",
    )
    server.add_argument(
        "--keep-alive-timeout",
        type=_seconds,
        default=20.0,
        help="close a connection idle between requests after (20 s)",
    )

    serve = commands.add_parser(
        "serve",
        help="serve a Pipeline or LivePipeline, like `uvicorn module:app`",
        description="Serve a Pipeline or LivePipeline class given as package.module:Class.",
    )
    serve.add_argument("target", help="package.module:Class (or path/file.py:Class)")
    serve.add_argument("--host", default="0.0.0.0", help="address to bind (0.0.0.0)")
    serve.add_argument("--port", type=int, default=8000, help="port (8000)")
    serve.add_argument("--capacity", type=int, default=1, help="concurrent streams (1)")
    serve.add_argument("--token", default=None, help="require Authorization: Bearer TOKEN")
    serve.add_argument(
        "--model-id", default=None, help="model id to accept on /live-video-to-video"
    )

    demo = commands.add_parser(
        "demo",
        help="run the whole system in one process and show it working",
        description=(
            "Start a trickle server and a runner with the built-in Invert pipeline, stream a"
            " generated test pattern through it, and write output.ts and demo.png."
        ),
    )
    demo.add_argument("--seconds", type=_seconds, default=5.0, help="length of the input (5)")
    demo.add_argument("--width", type=int, default=512, help="input width (512)")
    demo.add_argument("--height", type=int, default=288, help="input height (288)")
    demo.add_argument("--fps", type=_seconds, default=30.0, help="input frame rate (30)")
    demo.add_argument("--output", default="output.ts", help="where to write the output (output.ts)")
    demo.add_argument(
        "--png", default="demo.png", help="side-by-side input/output frame (demo.png)"
    )
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON report instead")
    parser.add_argument(
        "--only", action="append", type=_ids, default=[], metavar="IDS", help="e.g. TRK-057,TRK-001"
    )


def _options(args: argparse.Namespace, only: list[str]) -> SuiteOptions:
    precreated: list[str] = []
    if args.precreated:
        precreated = [n.strip() for n in args.precreated.split(",") if n.strip()]
    elif args.precreated_file:
        lines = Path(args.precreated_file).read_text().splitlines()
        precreated = [n.strip() for n in lines if n.strip()]
    elif args.precreated_count is not None:
        precreated = [f"{args.channel_prefix}{i}" for i in range(args.precreated_count)]
    is_precreated = bool(
        args.precreated or args.precreated_file or args.precreated_count is not None
    )
    if is_precreated and not precreated:
        raise ValueError("no precreated channel names given")
    if args.no_autocreate and not is_precreated:
        raise ValueError("--no-autocreate needs --precreated*: channels cannot be created")
    autocreate = True if args.autocreate else (False if args.no_autocreate else None)
    return SuiteOptions(
        setup=ChannelSetup.PRECREATED if is_precreated else ChannelSetup.CREATE,
        autocreate=autocreate,
        precreated=tuple(precreated),
        precreated_mime=args.precreated_mime,
        channel_prefix=args.channel_prefix,
        hostile=args.hostile,
        strict=args.strict,
        only=tuple(only),
        changefeed=args.changefeed,
        idle_timeout=args.idle_timeout,
        sweep_interval=args.sweep_interval,
        max_segment_bytes=args.max_segment_bytes,
        max_channels=args.max_channels,
        ring_size=args.ring_size,
        insecure=args.insecure,
        timeout_scale=args.timeout_scale,
    )


class _Interrupted:
    """Marks a run ended by Ctrl-C."""


_INTERRUPTED = _Interrupted()
T = TypeVar("T")


def _interruptible(func: Callable[[], Awaitable[T]]) -> T | _Interrupted:
    """``trio.run(func)``, turning Ctrl-C into a one-line message instead of a traceback."""
    result: list[T] = []

    async def run() -> None:
        result.append(await func())

    try:
        trio.run(run)
    except* KeyboardInterrupt:
        _print_line(sys.stderr, "trio-trickle: interrupted")
    return result[0] if result else _INTERRUPTED


def _print_line(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def _conformance_trickle(args: argparse.Namespace, only: list[str], out: TextIO) -> int:
    try:
        options = _options(args, only)
        select_checks(only)
    except ValueError as exc:
        _print_line(sys.stderr, f"trio-trickle: {exc}")
        return 2
    problem = _interruptible(lambda: preflight(args.url, options))
    if isinstance(problem, _Interrupted):
        return 130
    if problem is not None:
        _print_line(sys.stderr, f"trio-trickle: {problem}")
        return 2
    if not args.json:
        _print_line(out, f"trickle conformance against {args.url}")

    def on_result(result: CheckResult) -> None:
        _print_line(out, result.line())

    report = _interruptible(
        lambda: run_suite(args.url, options, on_result=None if args.json else on_result)
    )
    if isinstance(report, _Interrupted):
        return 130
    _print_line(out, report.dumps() if args.json else report.summary())
    return report.exit_code


def _self_check(args: argparse.Namespace, only: list[str], out: TextIO) -> int:
    try:
        select_checks(only)
    except ValueError as exc:
        _print_line(sys.stderr, f"trio-trickle: {exc}")
        return 2
    quiet_server_logs()
    if not args.json:
        _print_line(
            out,
            "self-check: the trickle conformance suite (hostile checks included) against"
            " trio-trickle's own server, embedded on 127.0.0.1",
        )

    def on_profile(profile: Profile, url: str) -> None:
        _print_line(out, f"-- server '{profile.name}' ({profile.description}) at {url}")

    def on_result(result: CheckResult) -> None:
        _print_line(out, result.line())

    report = _interruptible(
        lambda: self_check(
            only=only,
            on_profile=None if args.json else on_profile,
            on_result=None if args.json else on_result,
        )
    )
    if isinstance(report, _Interrupted):
        return 130
    if args.json:
        _print_line(out, report.dumps())
    else:
        verdict = "all checks pass" if report.exit_code == 0 else "CONFORMANCE FAILURES"
        _print_line(out, f"{report.summary()} -- {verdict}")
    return report.exit_code


def _list_checks(out: TextIO) -> int:
    for item in all_checks():
        flags = [item.category] + (["deviation"] if item.deviation else [])
        _print_line(out, f"{item.key:9} {','.join(item.ids):28} {'/'.join(flags):18} {item.title}")
    return 0


async def _serve(args: argparse.Namespace, out: TextIO) -> None:
    config = ServerConfig(
        base_path=args.base_path,
        autocreate=args.autocreate,
        changefeed=args.changefeed,
        idle_timeout=args.idle_timeout,
        sweep_interval=args.sweep_interval,
        max_segment_bytes=args.max_segment_bytes,
        max_channels=args.max_channels,
        ring_size=args.ring_size,
        max_buffered_bytes=args.max_buffered_bytes,
    )
    timeouts = HttpTimeouts(header=args.header_timeout, keep_alive=args.keep_alive_timeout)
    # Ctrl-C and SIGTERM end the block: channels close, waiters get end of stream.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        # A process that only serves: keep full GC passes off the data path.
        async with open_trickle_server(
            config, host=args.host, port=args.port, timeouts=timeouts, freeze_gc=True
        ) as handle:
            _print_line(out, f"serving trickle at {handle.url} (Ctrl-C to stop)")
            async for signum in signals:
                _print_line(out, f"{signal.Signals(signum).name}: stopping")
                break
    _print_line(out, "trickle server stopped")


def _trickle_server(args: argparse.Namespace, out: TextIO) -> int:
    code = 0
    try:
        trio.run(_serve, args, out)
    except* KeyboardInterrupt:
        _print_line(out, "trickle server stopped")
    except* (OSError, ValueError) as group:
        for problem in group.exceptions:
            _print_line(sys.stderr, f"trio-trickle: {problem}")
        code = 2
    return code


def _serve_pipeline(args: argparse.Namespace, out: TextIO) -> int:
    from ._runner.serve import InvalidTarget, load_target, serve

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        target = load_target(args.target)
    except InvalidTarget as exc:
        _print_line(sys.stderr, f"trio-trickle serve: {exc}")
        return 2
    serve(
        target,
        host=args.host,
        port=args.port,
        capacity=args.capacity,
        token=args.token,
        model_id=args.model_id,
    )
    return 0


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from ._demo import DemoOptions, run_demo

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if os.environ.get("TRIO_TRICKLE_TELEMETRY") == "log":  # the log egress asked for: show it
        logging.getLogger("trio_trickle.telemetry").setLevel(logging.INFO)
    options = DemoOptions(
        seconds=args.seconds,
        width=args.width,
        height=args.height,
        fps=args.fps,
        output=Path(args.output),
        png=Path(args.png),
        progress=sys.stderr.isatty(),
    )
    report = trio.run(lambda: run_demo(options, out=out))
    return 0 if report.frames_out > 0 else 1


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    stream = out or sys.stdout
    args = build_parser().parse_args(argv)
    if args.command == "trickle-server":
        return _trickle_server(args, stream)
    if args.command == "serve":
        return _serve_pipeline(args, stream)
    if args.command == "demo":
        return _demo(args, stream)
    if args.suite == "list":
        return _list_checks(stream)
    only = [item for group in args.only for item in group]
    if args.suite == "self-check":
        return _self_check(args, only, stream)
    return _conformance_trickle(args, only, stream)
