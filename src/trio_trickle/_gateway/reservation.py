"""Reserving and stopping one live-runner session (spec/live-runner.md).

:func:`reserve` is ``POST {service URI}/apps/{route}/session`` with ``{}``
(LR-068); its 200 answer is the wire
:class:`~trio_trickle._wire.live_runner_payment.SessionReservation` (LR-089).
Any other answer raises :class:`ReservationRefused` carrying the status and
the orchestrator's text, so the caller can try the next candidate (503 no
capacity, 409 session exists, 404 runner gone, 402 a payment this client does
not make). The request is shielded from cancellation and bounded: a
reservation the orchestrator made is always answered back to us, so the
caller can stop it instead of leaving it to the idle timeout.

:func:`stop_session` is the client stop, ``POST {control_url}/stop``
(LR-128): idempotent, a 404 means "already gone" and is not retried
(LR-131), and the answer's ``Livepeer-Session-Release-Reason`` is returned
(LR-145, LR-147).
"""

from __future__ import annotations

import json
import logging

import attrs
import httpx
import trio

from .._client.http import HTTP_FAILURES, read_capped
from .._errors import ProtocolError, TrickleError
from .._wire.live_runner_channels import RELEASE_REASON_HEADER
from .._wire.live_runner_payment import SessionReservation

__all__ = ["ReservationRefused", "StopResult", "reserve", "stop_session"]

log = logging.getLogger("trio_trickle.gateway")

_MAX_ANSWER = 64 * 1024


class ReservationRefused(TrickleError):
    """A reservation that did not stand: ``status`` (0: no answer) and the reason."""

    def __init__(self, url: str, status: int, reason: str) -> None:
        super().__init__(f"reservation at {url}: {reason}")
        self.url = url
        self.status = status
        self.reason = reason


@attrs.frozen(kw_only=True)
class StopResult:
    """What a client stop learnt: the status (0: no answer) and the release reason."""

    status: int
    reason: str | None = None

    @property
    def gone(self) -> bool:
        """The orchestrator holds no such session any more (204, or 404 per LR-131)."""
        return self.status in (204, 404)


async def reserve(
    client: httpx.AsyncClient, reserve_url: str, *, within: float = 10.0
) -> SessionReservation:
    """``POST reserve_url`` with ``{}``; the reservation, or :class:`ReservationRefused`."""
    status = 0
    body: bytes | None = b""
    # Shielded: once sent, the orchestrator may reserve; its answer must reach us.
    with trio.CancelScope(shield=True), trio.move_on_after(within) as bounded:
        try:
            async with client.stream("POST", reserve_url, json={}, timeout=within) as response:
                status = response.status_code
                body = await read_capped(response, _MAX_ANSWER)
        except HTTP_FAILURES as exc:
            raise ReservationRefused(reserve_url, 0, f"{type(exc).__name__}: {exc}") from exc
    if bounded.cancelled_caught:
        raise ReservationRefused(reserve_url, 0, f"no answer within {within}s")
    text = (body or b"")[:300].decode("utf-8", "replace").strip()
    if status != 200:
        if status == 402:
            text = f"payment required (this client does not pay): {text[:120]}"
        raise ReservationRefused(reserve_url, status, f"{status} {text}")
    try:
        return SessionReservation.from_wire(json.loads(body or b""))
    except (ValueError, RecursionError, ProtocolError) as exc:
        # A 200 we cannot read may still hold a session we cannot name: nothing to stop.
        raise ReservationRefused(reserve_url, status, f"unreadable reservation: {exc}") from exc


async def stop_session(
    client: httpx.AsyncClient, reservation: SessionReservation, *, within: float = 5.0
) -> StopResult:
    """``POST {control_url}/stop`` (LR-128), shielded and bounded; never raises on a failure."""
    url = reservation.stop_url
    with trio.CancelScope(shield=True), trio.move_on_after(within):
        try:
            async with client.stream("POST", url, content=b"", timeout=within) as response:
                await read_capped(response, _MAX_ANSWER)
                reason = response.headers.get(RELEASE_REASON_HEADER) or None
                if response.status_code not in (204, 404):
                    log.warning(
                        "stop of session %s answered %s",
                        reservation.session_id,
                        response.status_code,
                    )
                return StopResult(status=response.status_code, reason=reason)
        except HTTP_FAILURES as exc:
            log.warning("stop of session %s failed: %s", reservation.session_id, exc)
            return StopResult(status=0)
    log.warning("stop of session %s timed out", reservation.session_id)
    return StopResult(status=0)
