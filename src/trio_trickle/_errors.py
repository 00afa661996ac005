"""The one exception hierarchy of trio-trickle.

Every error the library raises on purpose derives from :class:`TrickleError`.
Errors about *input* (a malformed header, a bad JSON body, an illegal sequence
number) are :class:`ProtocolError` and carry the HTTP status a server should
answer with, so the HTTP adapters map them to responses in one place instead of
guessing per handler. Wire decoding raises only this family: a caller never sees
a bare ``KeyError``/``TypeError``/``ValueError`` from ``from_wire``.

Errors about *state* are split the way trio splits ``ClosedResourceError`` from
``BrokenResourceError``: :class:`IllegalTransition` means our own code asked a
state machine for a move the spec forbids (a bug in the caller, nothing changed),
while :class:`ChannelClosed` means the peer or the server ended the channel.
"""

from __future__ import annotations

__all__ = [
    "ChannelClosed",
    "ChannelNotFound",
    "IllegalTransition",
    "InvalidMessage",
    "PayloadTooLarge",
    "ProtocolError",
    "SegmentGone",
    "TransportError",
    "TrickleError",
]


class TrickleError(Exception):
    """Root of every error trio-trickle raises deliberately."""


class ProtocolError(TrickleError):
    """Input that breaks the protocol; ``status`` is the HTTP status to answer.

    ``status`` defaults to 400. Subclasses fix it for the conditions the spec
    names (404 channel missing, 413 too large, 470 segment gone).
    """

    default_status: int = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = self.default_status if status is None else status
        if not 400 <= self.status <= 599:
            raise ValueError(f"ProtocolError status must be 4xx/5xx, got {self.status}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status})"


class InvalidMessage(ProtocolError, ValueError):
    """A wire message or field failed validation (HTTP 400 unless stated).

    Also a ``ValueError``, because attrs validators raise it when Python code
    builds a wire object with a bad value: an invalid message cannot exist.
    """


class ChannelNotFound(ProtocolError):
    """The named channel does not exist (HTTP 404)."""

    default_status = 404


class PayloadTooLarge(ProtocolError):
    """A segment or message exceeds a configured size limit (HTTP 413)."""

    default_status = 413


class SegmentGone(ProtocolError):
    """The channel exists but the requested segment does not (HTTP 470).

    ``latest`` is the channel's next write position, the place a subscriber
    should jump to.
    """

    default_status = 470

    def __init__(self, message: str, *, latest: int, requested: str) -> None:
        super().__init__(message)
        self.latest = latest
        self.requested = requested


class IllegalTransition(TrickleError):
    """A state machine was asked for a move its transition table forbids.

    Raised before anything changes: the machine is exactly as it was.
    """


class ChannelClosed(TrickleError):
    """The channel was deleted, swept, or ended by the server (404 or EOS)."""


class TransportError(TrickleError):
    """The network or the peer failed (connection refused/reset, timeout, 5xx)."""
