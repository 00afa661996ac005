"""Static runners: configured by the operator, kept by health checks (LR-041, LR-042).

A static runner never heartbeats and never expires; the orchestrator polls its
health URL instead. One failed check is not enough to kill its sessions: a
ready runner turns ``unavailable`` after ``health_failures`` consecutive
failures (2 by default), and ready again at the first passed check. The
configuration is upserted by label, all entries checked before any changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

from .._errors import InvalidMessage
from .._wire.live_runner import HeartbeatRequest
from .config import is_http_url
from .effects import Release, ReleaseReason
from .errors import RunnerNotFound
from .ids import SEED_BYTES, new_runner_id
from .runners import normalize
from .sessions import release_all
from .state import RegistryState, RunnerRecord

__all__: list[str] = []


@attrs.frozen(kw_only=True)
class StaticRunnerEntry:
    """One entry of ``-liveRunnerConfig`` or ``POST /registerLiveRunners``.

    ``request`` holds the registration fields as a heartbeat would; ``routing``
    is ``runner-id`` or ``label`` (the label then appears in URLs).
    """

    label: str
    routing: str
    request: HeartbeatRequest
    health_url: str
    healthy_status_code: int

    @classmethod
    def from_wire(cls, value: object, index: int = 0) -> StaticRunnerEntry:
        what = f"runners[{index}]"
        if not isinstance(value, dict):
            raise InvalidMessage(f"{what}: expected a JSON object")
        label = _text(value, "label", what)
        if not label or label != label.strip():
            raise InvalidMessage(f"{what}: label is required and must be trimmed")
        routing = _text(value, "routing", what).strip() or "runner-id"
        if routing not in ("runner-id", "label"):
            raise InvalidMessage(f'{what}: routing must be "runner-id" or "label"')
        if routing == "label" and "/" in label:
            raise InvalidMessage(f'{what}: label cannot contain / when routing is "label"')
        code = value.get("healthy_status_code") or 200
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            raise InvalidMessage(f"{what}: healthy_status_code must be a valid HTTP status code")
        keys = ("runner_url", "app", "version", "metadata", "mode", "capacity", "proxy", "gpu")
        body: dict[str, Any] = {k: value[k] for k in keys if value.get(k) is not None}
        if value.get("price_info") is not None:
            body["price_info"] = value["price_info"]
        request = HeartbeatRequest.from_wire({**body, "label": label})
        health = _health_url(request.runner_url, _text(value, "health_url", what))
        if health is None:
            raise InvalidMessage(f"{what}: invalid health_url")
        return cls(
            label=label,
            routing=routing,
            request=request,
            health_url=health,
            healthy_status_code=code,
        )


def _text(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidMessage(f"{what}: {key} must be a string")
    return value


def _health_url(runner_url: str, health_url: str) -> str | None:
    """An absolute health URL, or ``/path`` under ``runner_url``; None when neither."""
    if health_url.startswith("/") and not health_url.startswith("//"):
        health_url = runner_url.rstrip("/") + health_url
    return health_url if is_http_url(health_url) and urlsplit(health_url).hostname else None


@attrs.frozen(kw_only=True)
class StaticRegistration:
    """One line of the registration answer."""

    runner_id: str
    label: str
    route: str
    app: str
    proxy: bool
    runner_url: str
    mode: str
    health_url: str
    healthy_status_code: int
    healthy: bool

    def to_wire(self) -> dict[str, Any]:
        out = attrs.asdict(self)
        del out["route"]
        return out


@attrs.frozen(kw_only=True)
class StaticRegistered:
    registrations: tuple[StaticRegistration, ...]
    releases: tuple[Release, ...]


@attrs.frozen(kw_only=True)
class HealthChecked:
    route: str
    status: str
    releases: tuple[Release, ...]


def _apply_health(
    state: RegistryState, record: RunnerRecord, healthy: bool, now: float
) -> tuple[Release, ...]:
    if healthy:
        record.health_failures = 0
        record.status = "ready"
        return ()
    record.health_failures += 1
    if record.ready and record.health_failures < state.config.health_failures:
        return ()
    record.status = "unavailable"
    return release_all(state, record, ReleaseReason.RUNNER_UNHEALTHY, now)


def register_static(
    state: RegistryState,
    entries: Sequence[StaticRunnerEntry],
    healthy: Sequence[bool],
    now: float,
) -> StaticRegistered:
    """Upsert static runners by label; ``healthy`` is each entry's first check (LR-042)."""
    if len(entries) != len(healthy):
        raise ValueError("one health result per entry")
    existing = {r.registration.label: r for r in state.runners.values() if r.static}
    seen: set[str] = set()
    prepared = []
    for index, entry in enumerate(entries):
        if entry.label in seen:
            raise InvalidMessage(f'runners[{index}]: duplicate label "{entry.label}"')
        seen.add(entry.label)
        old = existing.get(entry.label)
        runner_id = old.runner_id if old is not None else ""
        registration, price = normalize(state, entry.request, runner_id or "static")
        if entry.routing == "label":
            holder = state.runners.get(entry.label)
            if holder is not None and holder is not old:
                raise InvalidMessage(f"runners[{index}]: route {entry.label!r} is taken")
        prepared.append((entry, old, registration, price))
    registrations: list[StaticRegistration] = []
    releases: list[Release] = []
    for (entry, old, registration, price), ok in zip(prepared, healthy, strict=True):
        if old is None:
            runner_id = new_runner_id(state.random)
            while runner_id in state.runners:
                runner_id = new_runner_id(state.random)
            record = RunnerRecord(
                runner_id=runner_id,
                route=runner_id,
                seed=state.random.token_bytes(SEED_BYTES),
                heartbeat_secret="",
                static=True,
                registration=registration,
                price=price,
                status="ready" if ok else "unavailable",
                last_heartbeat=now,
                o2r=None,
                health_failures=0 if ok else 1,
            )
        else:
            record = old
            record.registration, record.price, record.last_heartbeat = registration, price, now
            releases.extend(_apply_health(state, record, ok, now))
        record.registration = attrs.evolve(record.registration, runner_id=record.runner_id)
        record.health_url, record.healthy_status_code = entry.health_url, entry.healthy_status_code
        route = entry.label if entry.routing == "label" else record.runner_id
        if state.runners.get(record.route) is record and record.route != route:
            del state.runners[record.route]
        record.route = route
        state.runners[route] = record
        registrations.append(
            StaticRegistration(
                runner_id=record.runner_id,
                label=entry.label,
                route=route,
                app=registration.app,
                proxy=registration.proxy,
                runner_url=registration.runner_url,
                mode=registration.mode,
                health_url=entry.health_url,
                healthy_status_code=entry.healthy_status_code,
                healthy=ok,
            )
        )
    return StaticRegistered(registrations=tuple(registrations), releases=tuple(releases))


def health_targets(state: RegistryState) -> tuple[tuple[str, str, int], ...]:
    """``(route, health_url, healthy_status_code)`` of every static runner, to poll."""
    return tuple(
        (r.route, r.health_url, r.healthy_status_code) for r in state.runners.values() if r.static
    )


def record_health(state: RegistryState, route: str, healthy: bool, now: float) -> HealthChecked:
    """One health check's result for the static runner at ``route`` (LR-041, LR-042)."""
    record = state.runners.get(route)
    if record is None or not record.static:
        raise RunnerNotFound()
    releases = _apply_health(state, record, healthy, now)
    return HealthChecked(route=route, status=record.status, releases=releases)
