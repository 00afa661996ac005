"""What a gateway's live session is made of: its options, its channels, how it starts, why it fails.

Apart from :mod:`.live_session` (the session that runs) because these are
the parts a caller names: :class:`LiveSessionOptions` (watchdogs, swaps,
bounds), :class:`SessionChannels` and the :data:`SessionStarter` that yields
them for a reserved session, with the default :func:`start_via_app`, and
:class:`LiveSessionFailed` with one :class:`RunnerFailure` per runner that
did not serve.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import httpx
import trio

from .._client.http import read_capped
from .._errors import ProtocolError, TrickleError
from .._wire.json_codec import parse_json
from .._wire.live_runner_channels import ChannelsResponse
from .._wire.live_runner_payment import SessionReservation

__all__ = [
    "LiveSessionFailed",
    "LiveSessionOptions",
    "RunnerFailure",
    "SessionChannels",
    "SessionStarter",
    "start_via_app",
]


@attrs.frozen(kw_only=True)
class SessionChannels:
    """The public channel URLs of a started session, from the gateway's side.

    ``input_url``: where the gateway publishes video (the runner subscribes);
    ``output_url``: where it reads the processed video; ``control_url``:
    params updates and keepalives; ``events_url``: the runner's events.
    """

    control_url: str
    events_url: str
    input_url: str | None = None
    output_url: str | None = None


#: Starts the stream on a reserved session: ``(client, reservation, params)`` → channels.
SessionStarter = Callable[
    [httpx.AsyncClient, SessionReservation, Mapping[str, Any] | None], Awaitable[SessionChannels]
]


@attrs.frozen(kw_only=True)
class RunnerFailure:
    """Why one runner did not serve: where, which session (if reserved), the reason."""

    orchestrator: str
    runner_url: str
    reason: str
    session_id: str | None = None

    def __str__(self) -> str:
        session = f" session {self.session_id}" if self.session_id else ""
        return f"{self.runner_url}{session}: {self.reason}"


class LiveSessionFailed(TrickleError):
    """No runner could serve, or the swaps ran out; ``failures`` says why, runner by runner."""

    def __init__(self, message: str, failures: tuple[RunnerFailure, ...]) -> None:
        detail = "; ".join(str(f) for f in failures) or "no runner was tried"
        super().__init__(f"{message}: {detail}")
        self.failures = failures


async def start_via_app(
    client: httpx.AsyncClient,
    reservation: SessionReservation,
    params: Mapping[str, Any] | None,
    *,
    within: float = 10.0,
) -> SessionChannels:
    """``POST {app_url}/stream/start``; the channels the runner created, from its answer.

    The answer is read as ``{"channels":[{"name","url",…},…]}`` (the runner's
    callback answer, LR-119, whose public ``url`` it gives clients, LR-120)
    with the names ``in``, ``out``, ``control`` and ``events``.
    """
    url = reservation.app_url.rstrip("/") + "/stream/start"
    body = {"gateway_request_id": reservation.session_id, "params": dict(params or {})}
    with trio.fail_after(within):
        async with client.stream("POST", url, json=body, timeout=within) as response:
            data = await read_capped(response, 1024 * 1024)
            status = response.status_code
    text = (data or b"")[:200].decode("utf-8", "replace").strip()
    if status != 200 or data is None:
        raise ProtocolError(f"stream start answered {status} {text!r}", status=502)
    channels = {
        c.name: c.url for c in ChannelsResponse.from_wire(parse_json(data, "start")).channels
    }
    if "control" not in channels or "events" not in channels:
        raise ProtocolError(
            "stream start: the answer names no control or events channel", status=502
        )
    return SessionChannels(
        control_url=channels["control"],
        events_url=channels["events"],
        input_url=channels.get("in"),
        output_url=channels.get("out"),
    )


def _positive_or_none(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{attribute.name} must be a number of seconds or None")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be positive and finite")


@attrs.frozen(kw_only=True)
class LiveSessionOptions:
    """The knobs of :func:`open_live_session` (seconds unless said otherwise)."""

    #: No event at all (pipeline event or relayed telemetry) for this long ends the session.
    event_timeout: float | None = attrs.field(default=30.0, validator=_positive_or_none)
    #: No output segment for this long, once input is published, ends the session.
    output_timeout: float | None = attrs.field(default=None, validator=_positive_or_none)
    #: Sessions replaced after a failure before giving up.
    max_swaps: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    #: Bound of a discovery, reservation or stream start request.
    request_timeout: float = attrs.field(default=10.0, validator=_positive_or_none)
    #: Bound of a client stop.
    stop_timeout: float = attrs.field(default=5.0, validator=_positive_or_none)
    #: ``{"keep":"alive"}`` on the control channel this often (LR-138); None: never.
    keepalive_interval: float | None = attrs.field(default=10.0, validator=_positive_or_none)
    #: Output segments (and pipeline events) held for a slow reader; older ones are dropped.
    buffer: int = attrs.field(default=16, validator=attrs.validators.ge(1))
