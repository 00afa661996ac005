"""The conformance machinery: check registry, requirements, results, running.

A check is an async function taking a :class:`CheckContext`; it returns to
pass, raises :class:`CheckFailed` to fail and :class:`CheckSkipped` to skip.
Checks are registered with :func:`check`, keyed by the spec IDs they verify,
and run one after another (the changefeed checks and the idle-sweep checks
would see each other's traffic if they ran concurrently), each inside its own
nursery and ``trio.fail_after``. Everything a check sends goes through a raw
``httpx.AsyncClient`` or a :class:`RawConnection`, never through trio-trickle's
own client, so the suite judges the wire and nothing else.
"""

from __future__ import annotations

import enum
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import attrs
import httpx
import trio

from ._context import ChannelSetup, ChannelSource, CheckContext, SuiteOptions, make_client
from ._http import CheckFailed, CheckSkipped, RawClosed

__all__ = [
    "REGISTRY",
    "Check",
    "CheckFn",
    "CheckResult",
    "Outcome",
    "Requires",
    "SuiteReport",
    "check",
    "preflight",
    "run_suite",
    "select_checks",
]


@attrs.frozen(kw_only=True)
class Requires:
    """What a check needs; unmet needs make it SKIP with the reason."""

    #: Channels created on demand during the check (not a precreated list).
    creates: bool = False
    #: Channels created by ``POST {ch}`` (the CREATE setup).
    http_create: bool = False
    #: The server's autocreate must be known on (True) or off (False).
    autocreate: bool | None = None
    in_process: bool = False
    hooks: bool = False
    changefeed: bool = False
    idle_timeout: bool = False
    max_segment_bytes: bool = False
    max_channels: bool = False

    def unmet(self, o: SuiteOptions) -> str | None:
        # What the suite must be told about the server comes first: it is the
        # more useful hint when the setup is also unsuitable.
        if self.changefeed and not o.changefeed:
            return "needs a server with the changefeed on (--changefeed)"
        if self.idle_timeout and o.idle_timeout is None:
            return "needs --idle-timeout (a server started with a tiny idle timeout)"
        if self.max_segment_bytes and o.max_segment_bytes is None:
            return "needs --max-segment-bytes (the server's segment size limit)"
        if self.max_channels and o.max_channels is None:
            return "needs --max-channels (the server's channel limit)"
        if self.autocreate is True and o.autocreate is not True:
            return "needs a server with autocreate on (--autocreate)"
        if self.autocreate is False and o.autocreate is not False:
            return "needs a server with autocreate off (--no-autocreate)"
        if self.in_process and o.in_process is None:
            return "needs an in-process hook (self-check or the embedded test server only)"
        if self.hooks and (o.in_process is None or o.in_process.deny_prefix is None):
            return "needs before-create/delete hooks installed in-process"
        if self.creates and o.setup is ChannelSetup.PRECREATED:
            return "needs channels created during the check (not possible with --precreated)"
        if self.http_create and o.setup is not ChannelSetup.CREATE:
            return "needs channel creation by POST {ch} (--create-channels or --autocreate)"
        return None


CheckFn = Callable[["CheckContext"], Awaitable[None]]


@attrs.frozen(kw_only=True)
class Check:
    """One registered check."""

    key: str
    ids: tuple[str, ...]
    title: str
    func: CheckFn
    category: str = "default"
    requires: Requires = Requires()
    #: Tests our spec where go-livepeer master deliberately differs.
    deviation: bool = False
    timeout: float | Callable[[SuiteOptions], float] = 5.0

    def timeout_for(self, options: SuiteOptions) -> float:
        base = self.timeout(options) if callable(self.timeout) else self.timeout
        return base * options.timeout_scale

    def skip_reason(self, options: SuiteOptions) -> str | None:
        if self.category == "hostile" and not options.hostile:
            return "hostile check (may crash a buggy server); run with --hostile"
        return self.requires.unmet(options)


#: Every check, in registration (= run) order.
REGISTRY: list[Check] = []


def check(
    *ids: str,
    title: str,
    key: str | None = None,
    category: str = "default",
    requires: Requires | None = None,
    deviation: bool = False,
    timeout: float | Callable[[SuiteOptions], float] = 5.0,
) -> Callable[[CheckFn], CheckFn]:
    """Register the decorated function as a check of the spec IDs ``ids``."""
    if not ids or category not in ("default", "hostile"):
        raise ValueError("a check needs at least one spec ID and a known category")

    def register(func: CheckFn) -> CheckFn:
        name = key or ids[0]
        if any(existing.key == name for existing in REGISTRY):
            raise ValueError(f"duplicate check key {name}")
        REGISTRY.append(
            Check(
                key=name,
                ids=tuple(ids),
                title=title,
                func=func,
                category=category,
                requires=requires or Requires(),
                deviation=deviation,
                timeout=timeout,
            )
        )
        return func

    return register


def select_checks(only: Iterable[str] = (), checks: Sequence[Check] | None = None) -> list[Check]:
    """The checks to run: all, or those whose key or one of whose IDs is in ``only``.

    Raises ValueError naming any entry of ``only`` that matches no check.
    """
    pool = list(REGISTRY if checks is None else checks)
    wanted = [w.strip().upper() for w in only if w.strip()]
    if not wanted:
        return pool
    unknown = [w for w in wanted if not any(w == c.key.upper() or w in c.ids for c in pool)]
    if unknown:
        raise ValueError(f"no check for {', '.join(unknown)}")
    return [c for c in pool if c.key.upper() in wanted or any(i in wanted for i in c.ids)]


# -- results ------------------------------------------------------------------------


class Outcome(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


@attrs.frozen(kw_only=True)
class CheckResult:
    key: str
    ids: tuple[str, ...]
    title: str
    category: str
    deviation: bool
    outcome: Outcome
    reason: str = ""
    duration: float = 0.0

    def counted(self, strict: bool) -> bool:
        """Whether this result fails the run (deviation FAILs count only when strict)."""
        return self.outcome is Outcome.FAIL and (strict or not self.deviation)

    def line(self) -> str:
        if self.outcome is Outcome.PASS:
            return f"PASS {self.key} {self.title}"
        label = "FAIL (deviation)" if self.outcome is Outcome.FAIL and self.deviation else None
        label = label or self.outcome.name
        return f"{label} {self.key} {self.title}: {self.reason}"

    def to_json(self, strict: bool) -> dict[str, Any]:
        return {
            "key": self.key,
            "ids": list(self.ids),
            "title": self.title,
            "category": self.category,
            "deviation": self.deviation,
            "outcome": self.outcome.value,
            "counted": self.counted(strict),
            "reason": self.reason,
            "duration_s": round(self.duration, 3),
        }


def _results(value: Iterable[CheckResult]) -> tuple[CheckResult, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class SuiteReport:
    target: str
    results: tuple[CheckResult, ...] = attrs.field(converter=_results)
    strict: bool = False
    options: dict[str, Any] = attrs.field(factory=dict)

    def _count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def passed(self) -> int:
        return self._count(Outcome.PASS)

    @property
    def failed(self) -> int:
        """FAILs that count toward the exit code."""
        return sum(1 for r in self.results if r.counted(self.strict))

    @property
    def expected_deviations(self) -> int:
        """Deviation FAILs not counted (only without --strict)."""
        return self._count(Outcome.FAIL) - self.failed

    @property
    def skipped(self) -> int:
        return self._count(Outcome.SKIP)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def summary(self) -> str:
        text = f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"
        if self.expected_deviations:
            text += (
                f", {self.expected_deviations} failed as expected deviations from"
                " go-livepeer (not counted; --strict counts them)"
            )
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": "trickle",
            "target": self.target,
            "strict": self.strict,
            "options": self.options,
            "summary": {
                "passed": self.passed,
                "failed": self.failed,
                "expected_deviations": self.expected_deviations,
                "skipped": self.skipped,
                "total": len(self.results),
            },
            "exit_code": self.exit_code,
            "results": [r.to_json(self.strict) for r in self.results],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)


# -- running ---------------------------------------------------------------------------


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _classify(exc: Exception, timeout: float) -> tuple[Outcome, str]:
    leaves = _leaves(exc)
    for leaf in leaves:
        if isinstance(leaf, CheckFailed):
            return Outcome.FAIL, leaf.reason
    for leaf in leaves:
        if isinstance(leaf, CheckSkipped):
            return Outcome.SKIP, leaf.reason
    leaf = leaves[0]
    if isinstance(leaf, trio.TooSlowError):
        return Outcome.FAIL, f"timed out after {timeout:g} s (the server stopped answering)"
    if isinstance(leaf, httpx.HTTPError | RawClosed | OSError | trio.BrokenResourceError):
        return Outcome.FAIL, f"transport error: {type(leaf).__name__}: {leaf}"
    return Outcome.FAIL, f"check raised {leaf!r}"


async def _run_one(
    check: Check,
    *,
    base: str,
    client: httpx.AsyncClient,
    options: SuiteOptions,
    source: ChannelSource,
) -> CheckResult:
    def result(outcome: Outcome, reason: str = "", duration: float = 0.0) -> CheckResult:
        return CheckResult(
            key=check.key,
            ids=check.ids,
            title=check.title,
            category=check.category,
            deviation=check.deviation,
            outcome=outcome,
            reason=reason,
            duration=duration,
        )

    reason = check.skip_reason(options)
    if reason is not None:
        return result(Outcome.SKIP, reason)
    timeout = check.timeout_for(options)
    started = trio.current_time()
    context: CheckContext | None = None
    outcome, reason = Outcome.PASS, ""
    try:
        with trio.fail_after(timeout):
            async with trio.open_nursery() as nursery:
                context = CheckContext(
                    base=base, client=client, options=options, nursery=nursery, source=source
                )
                await check.func(context)
                nursery.cancel_scope.cancel()
    except Exception as exc:
        outcome, reason = _classify(exc, timeout)
    finally:
        if context is not None:
            with trio.move_on_after(5):
                await context._cleanup()
    return result(outcome, reason, trio.current_time() - started)


async def preflight(base_url: str, options: SuiteOptions) -> str | None:
    """Look before running: the problem that makes a whole run pointless, if any.

    The server must answer, and with ``--create-channels`` it must create
    channels on ``POST {ch}`` (go-livepeer does not unless autocreate is on).
    """
    base = base_url if base_url.endswith("/") else base_url + "/"
    probe = f"{options.channel_prefix}probe-{secrets.token_hex(3)}"
    async with make_client(options) as client:
        try:
            with trio.fail_after(15 * options.timeout_scale):
                missing = await client.get(f"{base}{probe}/next")
                if missing.status_code != 404:
                    return (
                        f"GET {base}{probe}/next answered {missing.status_code}, not 404:"
                        " is this a trickle server's base URL?"
                    )
                if options.setup is not ChannelSetup.CREATE:
                    return None
                created = await client.post(base + probe, headers={"Expect-Content": "text/plain"})
                if created.status_code != 200:
                    return (
                        f"POST {base}{probe} answered {created.status_code}: the server does not"
                        " create channels over HTTP (autocreate off, as go-livepeer by default)."
                        " Pre-create channels and pass --precreated / --precreated-count."
                    )
                await client.delete(base + probe)
        except (httpx.HTTPError, OSError, trio.TooSlowError) as exc:
            return f"cannot reach {base}: {type(exc).__name__}: {exc}"
    return None


async def run_suite(
    base_url: str,
    options: SuiteOptions | None = None,
    *,
    checks: Sequence[Check] | None = None,
    client: httpx.AsyncClient | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> SuiteReport:
    """Run the checks (default: all registered, filtered by ``options.only``).

    ``base_url`` is the server's trickle mount, e.g. ``http://host:8935/ai/trickle/``.
    ``on_result`` sees each result as soon as its check ends.
    """
    options = options or SuiteOptions()
    base = base_url if base_url.endswith("/") else base_url + "/"
    selected = select_checks(options.only, checks)
    source = ChannelSource(options)
    results: list[CheckResult] = []
    own = client is None
    active = client or make_client(options)
    try:
        for item in selected:
            outcome = await _run_one(item, base=base, client=active, options=options, source=source)
            results.append(outcome)
            if on_result is not None:
                on_result(outcome)
    finally:
        if own:
            await active.aclose()
    return SuiteReport(
        target=base, results=results, strict=options.strict, options=options.to_json()
    )
