"""Why sessions end, and the actions the I/O layer performs for the registry.

The registry decides; the I/O layer acts, in the order an operation lists its
effects. Session releases put the O2R ``released`` event first, then the
release message on the session's events channel, then the channel closes
(LR-132), and a runner's removal closes its O2R channel only after every
session's event is queued (LR-040). Messages are built when the I/O layer
writes them (:meth:`SendSessionEvent.message`), so the registry keeps only a
monotonic clock and wall-clock timestamps come from the writer.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import attrs

from .._wire.live_runner import RunnerChannel
from .._wire.live_runner_channels import (
    RELEASE_REASON_HEADER as RELEASE_REASON_HEADER,  # LR-145, LR-146: wire vocabulary
    O2RSessionEvent,
    SessionReleasedEvent,
)

__all__: list[str] = []


class ReleaseReason(enum.StrEnum):
    """Why a session ended (LR-141); ``UNKNOWN_SESSION`` only answers stale IDs (LR-149)."""

    CLIENT_STOP = "client_stop"
    RUNNER_STOP = "runner_stop"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_REJECTED = "payment_rejected"
    RUNNER_UNREGISTERED = "runner_unregistered"
    RUNNER_EXPIRED = "runner_expired"
    RUNNER_UNHEALTHY = "runner_unhealthy"
    REQUEST_ENDED = "request_ended"
    IDLE_TIMEOUT = "idle_timeout"
    ORCHESTRATOR_SHUTDOWN = "orchestrator_shutdown"
    UNKNOWN_SESSION = "unknown_session"


@attrs.frozen(kw_only=True)
class OpenO2R:
    """Create a new runner's O2R trickle channel and start its 10 s keepalive (LR-046)."""

    runner_id: str
    channel: RunnerChannel


@attrs.frozen(kw_only=True)
class SendSessionEvent:
    """Queue a ``reserved`` or ``released`` event on a runner's O2R channel (LR-047, LR-048).

    The queue holds 32 unsent messages; a full queue drops this one (LR-050).
    """

    runner_id: str
    channel_name: str
    event: str
    session_id: str
    reason: ReleaseReason | None = None

    def message(self, at: datetime) -> dict[str, Any]:
        """The O2R segment, stamped ``at`` (an aware datetime), with the reason (LR-142)."""
        reason = None if self.reason is None else str(self.reason)
        event = O2RSessionEvent(
            event=self.event, session=self.session_id, timestamp=at, reason=reason
        )
        return event.to_wire()


@attrs.frozen(kw_only=True)
class CloseO2R:
    """Close a removed runner's O2R channel, after its queued events (LR-040)."""

    runner_id: str
    channel_name: str


@attrs.frozen(kw_only=True)
class PublishRelease:
    """Write the release as one segment on the session's ``events`` channel (LR-143)."""

    channel_name: str
    session_id: str
    reason: ReleaseReason

    def message(self, at_ms: int) -> dict[str, Any]:
        """The events-channel envelope (CHN-013), ``at_ms`` milliseconds since the epoch."""
        event = SessionReleasedEvent(
            session_id=self.session_id, reason=str(self.reason), timestamp=at_ms
        )
        return event.to_wire()


@attrs.frozen(kw_only=True)
class OpenChannels:
    """Create these session trickle channels (LR-119)."""

    channels: tuple[RunnerChannel, ...]


@attrs.frozen(kw_only=True)
class CloseChannels:
    """Close these session trickle channels, by channel name (LR-123, LR-132)."""

    channel_names: tuple[str, ...]


@attrs.frozen(kw_only=True)
class CancelRequest:
    """Cancel the in-flight single-shot request of a session whose payment failed."""

    route: str
    session_id: str


#: Everything the registry asks the I/O layer to do.
Effect = (
    OpenO2R
    | SendSessionEvent
    | CloseO2R
    | PublishRelease
    | OpenChannels
    | CloseChannels
    | CancelRequest
)


@attrs.frozen(kw_only=True)
class Release:
    """One session released: who, why, and what to do about it, in order."""

    route: str
    runner_id: str
    session_id: str
    reason: ReleaseReason
    single_shot: bool
    proxy_ids: tuple[str, ...]
    effects: tuple[Effect, ...]


@attrs.frozen(kw_only=True)
class RunnerRemoved:
    """A runner left the registry (unregister, expiry or shutdown) with its sessions."""

    route: str
    runner_id: str
    reason: ReleaseReason
    releases: tuple[Release, ...]
    effects: tuple[Effect, ...]


def release_effects(releases: tuple[Release, ...] | list[Release]) -> tuple[Effect, ...]:
    """Every release's effects, one release after the other."""
    return tuple(effect for release in releases for effect in release.effects)
