"""The ``trio-trickle`` command: conformance runs and a standalone trickle server.

::

    trio-trickle conformance trickle --url http://host:8935/ai/trickle/ [options]
    trio-trickle conformance self-check [--json] [--only IDS]
    trio-trickle conformance list
    trio-trickle trickle-server [--host H] [--port P] [--autocreate] ...
    trio-trickle orchestrator [--host H] [--port P] --secret S

Exit codes: 0 all counted checks passed (or the server stopped cleanly),
1 a counted check failed, 2 bad usage or a server the suite cannot use,
130 interrupted by Ctrl-C.

This package is the entry point (``trio_trickle._cli:main``): :mod:`.parser`
holds the grammar, :mod:`.conformance` and :mod:`.servers` the commands.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from .conformance import conformance_trickle, list_checks, self_check_command
from .parser import build_parser
from .servers import demo, orchestrator, serve_pipeline, trickle_server

__all__: list[str] = []  # the command line is an entry point, not API


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    stream = out or sys.stdout
    args = build_parser().parse_args(argv)
    if args.command == "trickle-server":
        return trickle_server(args, stream)
    if args.command == "serve":
        return serve_pipeline(args, stream)
    if args.command == "demo":
        return demo(args, stream)
    if args.command == "orchestrator":
        return orchestrator(args, stream)
    if args.suite == "list":
        return list_checks(stream)
    only = [item for group in args.only for item in group]
    if args.suite == "self-check":
        return self_check_command(args, only, stream)
    return conformance_trickle(args, only, stream)
