"""Our own server, embedded and configured so that every check can run against it.

One server cannot satisfy every check at once: the autocreate-off checks need
a server without autocreate, and a tiny idle timeout would sweep the channels
of every slower check. So the self-check uses three profiles and sends each
check to the first profile that meets its requirements:

* ``main``: autocreate, changefeed, hooks, 1 MiB segment limit, 64 channels;
* ``no-autocreate``: channels made through the in-process create (as go-livepeer);
* ``idle``: autocreate with a 1 s idle timeout and a 0.1 s sweep.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

import attrs
import httpx

from .._core.server import ServerConfig
from .._errors import ProtocolError
from .._server.trickle import open_trickle_server
from ._context import (
    ChannelSetup,
    InProcess,
    SuiteOptions,
    make_client,
)
from ._runner import (
    Check,
    CheckResult,
    SuiteReport,
    run_suite,
    select_checks,
)

__all__ = ["PROFILES", "Profile", "open_profile_server", "profile_for", "self_check"]

DENY_PREFIX = "hookdeny-"
FAIL_PREFIX = "hookfail-"
DENY_STATUS = 403
DENY_MESSAGE = "refused by conformance hook"


async def _hook(name: str, _headers: Mapping[str, str]) -> None:
    """Before-create/delete hook: refuses ``hookdeny-*``, breaks on ``hookfail-*``."""
    if name.startswith(DENY_PREFIX):
        raise ProtocolError(DENY_MESSAGE, status=DENY_STATUS)
    if name.startswith(FAIL_PREFIX):
        raise RuntimeError("conformance hook failure")


@attrs.frozen(kw_only=True)
class Profile:
    """A server configuration plus what the suite is told about it."""

    name: str
    description: str
    config: ServerConfig
    options: SuiteOptions


_SEGMENT_LIMIT = 1 << 20
_CHANNEL_LIMIT = 64

PROFILES: tuple[Profile, ...] = (
    Profile(
        name="main",
        description="autocreate, changefeed, hooks, 1 MiB segment limit, 64 channels",
        config=ServerConfig(
            autocreate=True,
            changefeed=True,
            max_segment_bytes=_SEGMENT_LIMIT,
            max_channels=_CHANNEL_LIMIT,
        ),
        options=SuiteOptions(
            setup=ChannelSetup.CREATE,
            autocreate=True,
            changefeed=True,
            max_segment_bytes=_SEGMENT_LIMIT,
            max_channels=_CHANNEL_LIMIT,
            hostile=True,
        ),
    ),
    Profile(
        name="no-autocreate",
        description="autocreate off, channels created in-process",
        config=ServerConfig(autocreate=False),
        options=SuiteOptions(setup=ChannelSetup.IN_PROCESS, autocreate=False, hostile=True),
    ),
    Profile(
        name="idle",
        description="1 s idle timeout, 0.1 s sweep",
        config=ServerConfig(autocreate=True, idle_timeout=1.0, sweep_interval=0.1),
        options=SuiteOptions(
            setup=ChannelSetup.CREATE,
            autocreate=True,
            idle_timeout=1.0,
            sweep_interval=0.1,
            hostile=True,
        ),
    ),
)

_PLACEHOLDER = InProcess(create_channel=lambda _name, _mime: None, deny_prefix=DENY_PREFIX)


def profile_for(check: Check) -> Profile:
    """The first profile that lets ``check`` run (the last one if none does)."""
    for profile in PROFILES:
        options = attrs.evolve(profile.options, in_process=_PLACEHOLDER)
        if check.skip_reason(options) is None:
            return profile
    return PROFILES[-1]


@asynccontextmanager
async def open_profile_server(profile: Profile) -> AsyncIterator[tuple[str, SuiteOptions]]:
    """Serve ``profile`` on 127.0.0.1:0; yields the base URL and the suite options."""
    async with open_trickle_server(
        profile.config, before_create=_hook, before_delete=_hook
    ) as handle:
        in_process = InProcess(
            create_channel=handle.server.create_channel,
            deny_prefix=DENY_PREFIX,
            deny_status=DENY_STATUS,
            deny_message=DENY_MESSAGE,
            fail_prefix=FAIL_PREFIX,
        )
        yield handle.url, attrs.evolve(profile.options, in_process=in_process)


def quiet_server_logs() -> None:
    """The hooks fail on purpose; keep their tracebacks off a person's terminal."""
    logger = logging.getLogger("trio_trickle")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False


async def self_check(
    *,
    only: Sequence[str] = (),
    strict: bool = True,
    on_profile: Callable[[Profile, str], None] | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
    client: httpx.AsyncClient | None = None,
) -> SuiteReport:
    """Run the whole suite, hostile checks included, against our embedded server.

    Strict by default: the deviation checks test our own spec, so against our
    server their failures are real.
    """
    selected = select_checks(only)
    results: list[CheckResult] = []
    own = client is None
    active = client or make_client(SuiteOptions())
    try:
        for profile in PROFILES:
            mine = [c for c in selected if profile_for(c) is profile]
            if not mine:
                continue
            async with open_profile_server(profile) as (url, options):
                if on_profile is not None:
                    on_profile(profile, url)
                options = attrs.evolve(options, strict=strict)
                report = await run_suite(
                    url, options, checks=mine, client=active, on_result=on_result
                )
            results.extend(report.results)
    finally:
        if own:
            await active.aclose()
    order = {c.key: i for i, c in enumerate(selected)}
    results.sort(key=lambda r: order[r.key])
    return SuiteReport(target="embedded trio-trickle server", results=results, strict=strict)
