"""The ``trio-trickle`` commands that serve: ``trickle-server``, ``serve`` and ``demo``.

Each runs until Ctrl-C (or, for the demo, until its input is streamed), with
logging set up for a terminal; the runner and the demo are imported only when
asked for, so the conformance commands never load quart or PyAV.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TextIO

import trio

from .._core.server import ServerConfig
from .._orchestrator.config import OrchestratorConfig
from .._registry.config import RegistryConfig
from .._server.connections import HttpTimeouts
from .._server.trickle import open_trickle_server
from .console import print_line

__all__: list[str] = []


async def _serve_trickle(args: argparse.Namespace, out: TextIO) -> None:
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
            print_line(out, f"serving trickle at {handle.url} (Ctrl-C to stop)")
            async for signum in signals:
                print_line(out, f"{signal.Signals(signum).name}: stopping")
                break
    print_line(out, "trickle server stopped")


def trickle_server(args: argparse.Namespace, out: TextIO) -> int:
    code = 0
    try:
        trio.run(_serve_trickle, args, out)
    except* KeyboardInterrupt:
        print_line(out, "trickle server stopped")
    except* (OSError, ValueError) as group:
        for problem in group.exceptions:
            print_line(sys.stderr, f"trio-trickle: {problem}")
        code = 2
    return code


def serve_pipeline(args: argparse.Namespace, out: TextIO) -> int:
    from .._runner.serve import InvalidTarget, load_target, serve

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        target = load_target(args.target)
    except InvalidTarget as exc:
        print_line(sys.stderr, f"trio-trickle serve: {exc}")
        return 2
    secret = args.secret or os.environ.get("TRIO_TRICKLE_ORCHESTRATOR_SECRET") or None
    if args.orchestrator is not None and secret is None:
        print_line(sys.stderr, "trio-trickle serve: --orchestrator needs --secret")
        return 2
    serve(
        target,
        host=args.host,
        port=args.port,
        capacity=args.capacity,
        token=args.token,
        model_id=args.model_id,
        orchestrator_url=args.orchestrator,
        orchestrator_secret=secret,
        app_name=args.app,
        runner_url=args.runner_url,
    )
    return 0


def demo(args: argparse.Namespace, out: TextIO) -> int:
    from .._demo import DemoOptions, prepare_media, run_demo
    from .._errors import TrickleError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if os.environ.get("TRIO_TRICKLE_TELEMETRY") == "log":  # the log egress asked for: show it
        logging.getLogger("trio_trickle.telemetry").setLevel(logging.INFO)
    secret = args.secret or os.environ.get("TRIO_TRICKLE_ORCHESTRATOR_SECRET") or None
    if args.orchestrator_url is not None and secret is None:
        print_line(sys.stderr, "trio-trickle demo: --orchestrator-url needs --secret")
        return 2
    options = DemoOptions(
        seconds=args.seconds,
        width=args.width,
        height=args.height,
        fps=args.fps,
        output=Path(args.output),
        png=Path(args.png),
        progress=sys.stdout.isatty(),
        orchestrator_url=args.orchestrator_url,
        secret=secret,
    )
    media = prepare_media(options)  # PyAV before the event loop starts
    try:
        report = trio.run(lambda: run_demo(options, out=out, media=media))
    except TrickleError as exc:  # no runner registered or served: say why
        print_line(sys.stderr, f"trio-trickle demo: {exc}")
        return 1
    return 0 if report.frames_out > 0 else 1


def orchestrator_config(args: argparse.Namespace, secret: str) -> OrchestratorConfig:
    """The orchestrator the command line asks for.

    ``--public-url`` is what discovery and reservations advertise to clients (the
    bound address when absent, which for ``--host 0.0.0.0`` no client can reach);
    ``--runner-address`` is where runners call back (the public URL when absent).
    """
    public: str | None = args.public_url
    runners: str | None = args.runner_address

    def registry(bound: str) -> RegistryConfig:
        return RegistryConfig(
            service_uri=public or bound, runner_address=runners, orchestrator_secret=secret
        )

    return OrchestratorConfig(host=args.host, port=args.port, secret=secret, registry=registry)


async def _serve_orchestrator(config: OrchestratorConfig, out: TextIO) -> None:
    from .._orchestrator.process import open_orchestrator

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_orchestrator(config) as handle:
            print_line(out, f"serving orchestrator at {handle.url} (Ctrl-C to stop)")
            async for signum in signals:
                print_line(out, f"{signal.Signals(signum).name}: stopping")
                break
    print_line(out, "orchestrator stopped")


def orchestrator(args: argparse.Namespace, out: TextIO) -> int:
    """``trio-trickle orchestrator``: the secret from ``--secret`` or the environment."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    secret = args.secret or os.environ.get("TRIO_TRICKLE_ORCHESTRATOR_SECRET") or ""
    if not secret:
        print_line(
            sys.stderr,
            "trio-trickle orchestrator: needs --secret or $TRIO_TRICKLE_ORCHESTRATOR_SECRET",
        )
        return 2
    code = 0
    try:
        trio.run(_serve_orchestrator, orchestrator_config(args, secret), out)
    except* KeyboardInterrupt:
        print_line(out, "orchestrator stopped")
    except* (OSError, ValueError) as group:
        for problem in group.exceptions:
            print_line(sys.stderr, f"trio-trickle: {problem}")
        code = 2
    return code
