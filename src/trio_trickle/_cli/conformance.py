"""The ``trio-trickle conformance`` commands: a suite run by URL, the self-check, the list.

Turns the command line's options into :class:`~trio_trickle.conformance.SuiteOptions`,
runs the suite and maps its report to the exit code (0 pass, 1 a counted
failure, 2 bad usage or an unusable server, 130 Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from ..conformance import (
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
from ..conformance._embedded import quiet_server_logs
from .console import Interrupted, interruptible, print_line

__all__: list[str] = []


def suite_options(args: argparse.Namespace, only: list[str]) -> SuiteOptions:
    """The suite options ``conformance trickle``'s arguments ask for; ValueError if unusable."""
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


def conformance_trickle(args: argparse.Namespace, only: list[str], out: TextIO) -> int:
    try:
        options = suite_options(args, only)
        select_checks(only)
    except ValueError as exc:
        print_line(sys.stderr, f"trio-trickle: {exc}")
        return 2
    problem = interruptible(lambda: preflight(args.url, options))
    if isinstance(problem, Interrupted):
        return 130
    if problem is not None:
        print_line(sys.stderr, f"trio-trickle: {problem}")
        return 2
    if not args.json:
        print_line(out, f"trickle conformance against {args.url}")

    def on_result(result: CheckResult) -> None:
        print_line(out, result.line())

    report = interruptible(
        lambda: run_suite(args.url, options, on_result=None if args.json else on_result)
    )
    if isinstance(report, Interrupted):
        return 130
    print_line(out, report.dumps() if args.json else report.summary())
    return report.exit_code


def self_check_command(args: argparse.Namespace, only: list[str], out: TextIO) -> int:
    try:
        select_checks(only)
    except ValueError as exc:
        print_line(sys.stderr, f"trio-trickle: {exc}")
        return 2
    quiet_server_logs()
    if not args.json:
        print_line(
            out,
            "self-check: the trickle conformance suite (hostile checks included) against"
            " trio-trickle's own server, embedded on 127.0.0.1",
        )

    def on_profile(profile: Profile, url: str) -> None:
        print_line(out, f"-- server '{profile.name}' ({profile.description}) at {url}")

    def on_result(result: CheckResult) -> None:
        print_line(out, result.line())

    report = interruptible(
        lambda: self_check(
            only=only,
            on_profile=None if args.json else on_profile,
            on_result=None if args.json else on_result,
        )
    )
    if isinstance(report, Interrupted):
        return 130
    if args.json:
        print_line(out, report.dumps())
    else:
        verdict = "all checks pass" if report.exit_code == 0 else "CONFORMANCE FAILURES"
        print_line(out, f"{report.summary()} -- {verdict}")
    return report.exit_code


def list_checks(out: TextIO) -> int:
    for item in all_checks():
        flags = [item.category] + (["deviation"] if item.deviation else [])
        print_line(out, f"{item.key:9} {','.join(item.ids):28} {'/'.join(flags):18} {item.title}")
    return 0
