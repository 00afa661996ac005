"""Trickle conformance suite: judge any trickle server by URL against spec/trickle.md.

Each check is keyed by the spec IDs it verifies (``TRK-057``...), speaks raw
HTTP (an ``httpx.AsyncClient`` or a byte-level HTTP/1.1 connection, never
trio-trickle's own client) and ends PASS, FAIL or SKIP. Use it from Python::

    report = await run_suite("http://127.0.0.1:8935/ai/trickle/",
                             SuiteOptions(autocreate=True, hostile=True))

or from the command line: ``trio-trickle conformance trickle --url URL``.

Channels. Most checks need fresh channels. The suite gets them one of three ways:

* ``ChannelSetup.CREATE`` (``--create-channels``, ``--autocreate``): it sends
  ``POST {base}{ch}`` with ``Expect-Content``, which creates a channel only when
  the server has autocreate on.
* ``ChannelSetup.PRECREATED`` (``--precreated a,b,c`` or ``--precreated-count N``
  with ``--channel-prefix``): channels created out of band, each used once.
  go-livepeer's orchestrator runs with autocreate OFF and creates channels
  server-side, so either pre-create ~150 channels with a small Go program
  (``trickle.NewLocalPublisher(srv, name, mime).CreateChannel()``) or run
  go-livepeer's ``trickle`` package in a tiny Go ``main`` with
  ``TrickleServerConfig{Autocreate: true}`` and use ``--autocreate``.
* ``ChannelSetup.IN_PROCESS``: an embedded server's own create call (self-check).

Checks whose setup is impossible in the chosen mode SKIP with the reason.

Hostile checks (``--hostile``) send what crashes or wedges go-livepeer master
(negative seqs panic it and, for DELETE, leak a channel lock; interleaved
re-POSTs; malformed chunked bodies; oversize segments): run them only against
a server you can restart. Checks marked ``deviation`` test where our spec
deliberately differs from go-livepeer; their failures print as
``FAIL (deviation)`` and fail the run only with ``--strict``.
"""

from __future__ import annotations

# Import order is run order: channels, seqs and slots, publishing, subscribing,
# teardown and sweep; kept by hand, not sorted.
# isort: off
from ..conformance import (
    _trickle_checks as _trickle_checks,
    _trickle_checks_seq as _trickle_checks_seq,
    _trickle_checks_publish as _trickle_checks_publish,
    _trickle_checks_subscribe as _trickle_checks_subscribe,
    _trickle_checks_teardown as _trickle_checks_teardown,
)

# isort: on
from ._context import (
    ChannelSetup,
    CheckContext,
    InProcess,
    SuiteOptions,
)
from ._embedded import PROFILES, Profile, open_profile_server, profile_for, self_check
from ._http import BodyFeed, CheckFailed, CheckSkipped, RawConnection, RawResponse, Watch
from ._runner import (
    REGISTRY,
    Check,
    CheckResult,
    Outcome,
    Requires,
    SuiteReport,
    check,
    preflight,
    run_suite,
    select_checks,
)

__all__ = [
    "PROFILES",
    "REGISTRY",
    "BodyFeed",
    "ChannelSetup",
    "Check",
    "CheckContext",
    "CheckFailed",
    "CheckResult",
    "CheckSkipped",
    "InProcess",
    "Outcome",
    "Profile",
    "RawConnection",
    "RawResponse",
    "Requires",
    "SuiteOptions",
    "SuiteReport",
    "Watch",
    "all_checks",
    "check",
    "check_server",
    "open_profile_server",
    "preflight",
    "profile_for",
    "run_suite",
    "select_checks",
    "self_check",
]


def all_checks() -> tuple[Check, ...]:
    """Every registered check, in run order."""
    return tuple(REGISTRY)


async def check_server(base_url: str, **options: object) -> SuiteReport:
    """Run the suite against ``base_url``; keyword arguments are :class:`SuiteOptions` fields."""
    return await run_suite(base_url, SuiteOptions(**options))  # type: ignore[arg-type]
