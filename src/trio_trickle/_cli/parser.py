"""The ``trio-trickle`` command line's grammar: every subcommand, option and default.

Apart from what the commands do (:mod:`.conformance`, :mod:`.servers`) so the
whole interface, and its help text, reads in one place.
"""

from __future__ import annotations

import argparse

__all__: list[str] = []


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
    serve.add_argument(
        "--orchestrator",
        default=None,
        metavar="URL",
        help="register with this live-runner orchestrator (heartbeats, O2R, unregister)",
    )
    serve.add_argument(
        "--secret",
        default=None,
        help="the orchestrator secret (default: $TRIO_TRICKLE_ORCHESTRATOR_SECRET)",
    )
    serve.add_argument(
        "--app", default=None, metavar="NAME", help="app name to register (model id or class)"
    )
    serve.add_argument(
        "--runner-url",
        default=None,
        metavar="URL",
        help="URL the orchestrator reaches this runner at (default: the bound address)",
    )

    demo = commands.add_parser(
        "demo",
        help="run the whole system in one process and show it working",
        description=(
            "Start an orchestrator and a runner with the built-in Invert pipeline that registers"
            " with it; discover and reserve the runner as a gateway, stream a generated test"
            " pattern through it (switching Invert off mid-stream), and write output.ts and"
            " demo.png."
        ),
    )
    demo.add_argument("--seconds", type=_seconds, default=5.0, help="length of the input (5)")
    demo.add_argument("--width", type=int, default=512, help="input width (512)")
    demo.add_argument("--height", type=int, default=288, help="input height (288)")
    demo.add_argument("--fps", type=_seconds, default=30.0, help="input frame rate (30)")
    demo.add_argument("--output", default="output.ts", help="where to write the output (output.ts)")
    demo.add_argument(
        "--png",
        default="demo.png",
        help="input frames beside their output, before and after the params update (demo.png)",
    )
    demo.add_argument(
        "--orchestrator-url",
        default=None,
        metavar="URL",
        help="an external orchestrator to register with and reserve through (default: embedded)",
    )
    demo.add_argument(
        "--secret",
        default=None,
        help="the external orchestrator's runner secret"
        " (default: $TRIO_TRICKLE_ORCHESTRATOR_SECRET)",
    )
    orchestrator = commands.add_parser(
        "orchestrator",
        help="serve a live-runner orchestrator until Ctrl-C",
        description=(
            "Serve a live-runner orchestrator (spec/live-runner.md): runner heartbeats,"
            " discovery, sessions, the session proxy and the trickle channels at /ai/trickle/."
        ),
    )
    orchestrator.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    orchestrator.add_argument(
        "--port", type=int, default=8935, help="port (8935; 0 picks a free one)"
    )
    orchestrator.add_argument(
        "--secret",
        default=None,
        help="the orchestrator secret runners register with"
        " (default: $TRIO_TRICKLE_ORCHESTRATOR_SECRET)",
    )
    orchestrator.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="base URL clients reach this orchestrator at, advertised in discovery and"
        " reservations (default: the bound address)",
    )
    orchestrator.add_argument(
        "--runner-address",
        default=None,
        metavar="URL",
        help="base URL runners reach this orchestrator at (default: the public URL)",
    )
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON report instead")
    parser.add_argument(
        "--only", action="append", type=_ids, default=[], metavar="IDS", help="e.g. TRK-057,TRK-001"
    )
