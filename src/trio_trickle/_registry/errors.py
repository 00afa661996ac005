"""The registry's refusals: ProtocolErrors carrying go-livepeer's status and text.

The I/O layer answers every one the same way: ``status`` with ``message`` as
plain text, or as ``{"error":{"message":…}}`` when ``json_body`` is set (the few
places go-livepeer answers JSON, LR-074 and LR-105), adding the
``Livepeer-Session-Release-Reason`` header when ``release_reason`` is set
(LR-146). A refusal is raised before anything changes.
"""

from __future__ import annotations

from .._errors import ProtocolError
from .effects import ReleaseReason

__all__: list[str] = []

RUNNER_NOT_FOUND = "runner not found"
SESSION_NOT_FOUND = "runner session not found"


class RegistryError(ProtocolError):
    """A request the registry refuses (HTTP 400 unless a subclass says otherwise)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        json_body: bool = False,
        release_reason: ReleaseReason | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.json_body = json_body
        self.release_reason = release_reason


class NotFound(RegistryError):
    """A runner, session, channel or proxy that does not exist (404)."""

    default_status = 404


class RunnerNotFound(NotFound):
    """An unknown, expired or (where master checks it) not-ready runner (LR-039, LR-069)."""

    def __init__(self, message: str = RUNNER_NOT_FOUND) -> None:
        super().__init__(message)


class SessionNotFound(NotFound):
    """A session the runner does not hold; ``release_reason`` when it was released (LR-146)."""

    def __init__(
        self, message: str = SESSION_NOT_FOUND, *, release_reason: ReleaseReason | None = None
    ) -> None:
        super().__init__(message, release_reason=release_reason)


class Unauthorized(RegistryError):
    """A wrong orchestrator secret, heartbeat secret or session token (401)."""

    default_status = 401


class PaymentRequired(RegistryError):
    """Payment headers missing or undecodable (402)."""

    default_status = 402


class PaymentForbidden(RegistryError):
    """Payment credentials that do not verify or do not match the session (403)."""

    default_status = 403


class Conflict(RegistryError):
    """A session that already exists, or a top-up a fixed session cannot take (409)."""

    default_status = 409


class Unavailable(RegistryError):
    """No capacity, or a price that cannot be converted (503)."""

    default_status = 503


class Unsupported(RegistryError):
    """A state master answers 500: a payment unit the orchestrator cannot meter."""

    default_status = 500
