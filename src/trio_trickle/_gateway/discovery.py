"""A gateway's live-runner discovery: ``GET {orchestrator}/discovery`` and candidate choice.

:func:`discover` reads the orchestrator's answer (LR-054) into the wire
:class:`~trio_trickle._wire.live_runner_discovery.DiscoveryResponse`, skipping
a malformed runner instead of failing the whole answer (LR-063).
:func:`candidates` picks the runners a client may reserve on, in discovery
order: the app asked for, a persistent session URL, room left, the GPU asked
for, and (when asked) a valid wei price. The client then tries them one at a
time (LR-067), which :mod:`.live_session` does.
"""

from __future__ import annotations

import json

import attrs
import httpx
import trio

from .._client.http import HTTP_FAILURES, create_http_client, read_capped
from .._errors import ProtocolError, TransportError
from .._wire.live_runner_discovery import DiscoveryResponse, DiscoveryRunner

__all__ = ["DiscoveryFailed", "RunnerCandidate", "candidates", "discover"]

#: Largest discovery answer read (go-livepeer's remote signer caps it at 1 MiB).
MAX_DISCOVERY_BYTES = 1024 * 1024
_FAILURES: tuple[type[Exception], ...] = (trio.TooSlowError, *HTTP_FAILURES)


class DiscoveryFailed(TransportError):
    """The orchestrator's ``/discovery`` could not be read (status, transport or body)."""


@attrs.frozen(kw_only=True)
class RunnerCandidate:
    """A runner a session may be reserved on: its discovery entry and its orchestrator."""

    orchestrator: str
    runner: DiscoveryRunner

    @property
    def reserve_url(self) -> str:
        """``{service URI}/apps/{route}/session``: the discovery ``url`` (LR-057, LR-068)."""
        return self.runner.url

    @property
    def route(self) -> str:
        parts = self.runner.url.rstrip("/").split("/")
        return parts[-2] if len(parts) >= 2 else self.runner.url


def discovery_url(orchestrator_url: str) -> str:
    return orchestrator_url.rstrip("/") + "/discovery"


async def discover(
    orchestrator_url: str,
    *,
    client: httpx.AsyncClient | None = None,
    within: float = 10.0,
) -> DiscoveryResponse:
    """``GET {orchestrator_url}/discovery`` within ``within`` s; or :class:`DiscoveryFailed`."""
    url = discovery_url(orchestrator_url)
    own = client is None
    http = client if client is not None else create_http_client()
    try:
        with trio.fail_after(within):
            async with http.stream("GET", url, timeout=within) as response:
                body = await read_capped(response, MAX_DISCOVERY_BYTES)
                status = response.status_code
    except _FAILURES as exc:
        raise DiscoveryFailed(f"discovery at {url} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if own:
            with trio.CancelScope(shield=True):
                await http.aclose()
    if body is None:
        raise DiscoveryFailed(f"discovery at {url}: answer larger than {MAX_DISCOVERY_BYTES} bytes")
    if status != 200:
        text = body[:200].decode("utf-8", "replace").strip()
        raise DiscoveryFailed(f"discovery at {url} answered {status} {text!r}")
    try:
        return DiscoveryResponse.from_wire(json.loads(body), skip_invalid_runners=True)
    except (ValueError, RecursionError, ProtocolError) as exc:
        raise DiscoveryFailed(f"discovery at {url}: unreadable answer: {exc}") from exc


def _gpu_matches(runner: DiscoveryRunner, gpu: str) -> bool:
    """``gpu`` is the GPU's ID or index (exactly), or part of its name (not a bare number)."""
    found = runner.gpu
    if found is None:
        return False
    wanted = gpu.strip().lower()
    if wanted in ((found.id or "").lower(), "" if found.index is None else str(found.index)):
        return True
    return not wanted.isdigit() and found.name is not None and wanted in found.name.lower()


def candidates(
    response: DiscoveryResponse,
    *,
    app: str,
    gpu: str | None = None,
    require_price: bool = False,
    exclude: frozenset[str] = frozenset(),
) -> list[RunnerCandidate]:
    """The runners to try, in discovery order (LR-067 tries them one at a time).

    Kept: ``app`` equal to the runner's, a persistent session URL (LR-057; a
    single-shot runner has no sessions, LR-070), ``capacity_available`` above 0
    (LR-059), ``gpu`` (the GPU's ID or index, or part of its name) when
    given, a valid wei offer when ``require_price`` (LR-063), and a
    reservation URL not in ``exclude``.
    """
    out: list[RunnerCandidate] = []
    for entry in response.entries:
        for runner in entry.runners:
            if runner.app != app or runner.capacity_available <= 0:
                continue
            if runner.mode not in (None, "", "persistent"):
                continue
            if not runner.url.rstrip("/").endswith("/session"):
                continue
            if gpu is not None and not _gpu_matches(runner, gpu):
                continue
            if require_price and not (runner.price_info and runner.price_info.is_valid_offer()):
                continue
            if runner.url in exclude:
                continue
            out.append(RunnerCandidate(orchestrator=entry.address, runner=runner))
    return out
