"""Sans-io trickle server: configuration, the channel registry, routing.

The registry decides which channels exist (create, autocreate, delete, the
``max_channels`` bound, the idle sweep) and feeds the optional ``_changes``
changefeed. Routing maps a method and a path below the base path to an
operation, or to the 404/405 a request of the wrong shape gets. No I/O: time
is passed in as ``now`` (seconds on any monotonic clock).
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from .._errors import ChannelNotFound, ProtocolError
from .._wire.trickle import ChannelChange, validate_channel_name
from .channel import ByteBudget, ChannelCore

__all__ = [
    "MethodNotAllowed",
    "Operation",
    "Route",
    "ServerConfig",
    "TrickleServerCore",
    "route_request",
]

CHANGEFEED_CHANNEL = "_changes"


class MethodNotAllowed(ProtocolError):
    """The path exists but not for this method (405); ``allow`` lists the methods."""

    default_status = 405

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message)
        self.allow = allow


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive number")


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Server settings; defaults follow go-livepeer where it has one."""

    #: Mount point; always starts and ends with "/".
    base_path: str = attrs.field(default="/ai/trickle/")
    #: Create a channel on the first POST to it (go-livepeer default: off).
    autocreate: bool = False
    #: Maintain the ``_changes`` channel (go-livepeer default: off).
    changefeed: bool = False
    #: Close channels with no publish activity for this long (seconds).
    idle_timeout: float = attrs.field(default=300.0, validator=_positive)
    #: How often the sweeper looks (seconds).
    sweep_interval: float = attrs.field(default=60.0, validator=_positive)
    #: Segments kept per channel (at least 2: the one being written and the next).
    ring_size: int = attrs.field(default=5, validator=_positive)
    #: Largest segment in bytes (413 beyond); None for no limit.
    max_segment_bytes: int | None = attrs.field(default=64 * 1024 * 1024, validator=_positive)
    #: Most channels at once (503 beyond); None for no limit.
    max_channels: int | None = attrs.field(default=1024, validator=_positive)
    #: Most bytes held by all rings together (503 beyond, TRK-116); None for no limit.
    max_buffered_bytes: int | None = attrs.field(default=1024 * 1024 * 1024, validator=_positive)

    @ring_size.validator
    def _check_ring(self, _attribute: object, value: int) -> None:
        if value < 2:
            raise ValueError("ring_size must be at least 2")

    @base_path.validator
    def _check_base(self, _attribute: object, value: str) -> None:
        if not value.startswith("/") or not value.endswith("/"):
            raise ValueError("base_path must start and end with '/'")


class Operation(enum.Enum):
    CREATE = "create"  # POST {ch}
    DELETE_CHANNEL = "delete_channel"  # DELETE {ch}
    NEXT = "next"  # GET {ch}/next
    PUBLISH = "publish"  # POST {ch}/{seq}
    SUBSCRIBE = "subscribe"  # GET {ch}/{seq}
    DELETE_SEGMENT = "delete_segment"  # DELETE {ch}/{seq}


@attrs.frozen(kw_only=True)
class Route:
    operation: Operation
    channel: str
    #: The raw seq path segment (not parsed yet: parsing errors are 400, after lookup).
    seq: str | None = None


_CHANNEL_METHODS = {"POST": Operation.CREATE, "DELETE": Operation.DELETE_CHANNEL}
_SEGMENT_METHODS = {
    "GET": Operation.SUBSCRIBE,
    "HEAD": Operation.SUBSCRIBE,
    "POST": Operation.PUBLISH,
    "DELETE": Operation.DELETE_SEGMENT,
}


def route_request(method: str, rest: str) -> Route:
    """Map ``method`` and the path below the base path to a :class:`Route`.

    Raises ProtocolError 404 for a path of the wrong shape and 405 (its
    ``allow`` attribute lists the methods) for a method the path lacks. The
    channel name is validated here (400).
    """
    parts = rest.split("/")
    if len(parts) == 1 and parts[0]:
        table = _CHANNEL_METHODS
    elif len(parts) == 2 and parts[0] and parts[1]:
        table = _SEGMENT_METHODS
    else:
        raise ProtocolError("404 page not found", status=404)
    operation = table.get(method.upper())
    if operation is None:
        allow = ", ".join(sorted(table))
        raise MethodNotAllowed(f"method {method} not allowed", allow=allow)
    name = validate_channel_name(parts[0])
    if len(parts) == 1:
        return Route(operation=operation, channel=name)
    if parts[1] == "next" and operation is Operation.SUBSCRIBE:
        return Route(operation=Operation.NEXT, channel=name)
    return Route(operation=operation, channel=name, seq=parts[1])


@attrs.define(eq=False)
class TrickleServerCore:
    """The set of live channels and the rules for adding and removing them."""

    config: ServerConfig = attrs.field(factory=ServerConfig)
    channels: dict[str, ChannelCore] = attrs.field(factory=dict)
    budget: ByteBudget = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.budget = ByteBudget(limit=self.config.max_buffered_bytes)

    def start(self, now: float) -> None:
        """Create the changefeed channel if configured."""
        if self.config.changefeed and CHANGEFEED_CHANNEL not in self.channels:
            self._add(CHANGEFEED_CHANNEL, "application/json", now)

    def _add(self, name: str, mime_type: str, now: float) -> ChannelCore:
        limit = self.config.max_channels
        if limit is not None and len(self.channels) >= limit:
            raise ProtocolError(f"channel limit of {limit} reached", status=503)
        channel = ChannelCore(
            name=name,
            mime_type=mime_type,
            ring_size=self.config.ring_size,
            max_segment_bytes=self.config.max_segment_bytes,
            budget=self.budget,
            last_write_time=now,
        )
        self.channels[name] = channel
        self._announce(ChannelChange(added=(name,)), now)
        return channel

    def _announce(self, change: ChannelChange, now: float) -> None:
        feed = self.channels.get(CHANGEFEED_CHANNEL) if self.config.changefeed else None
        if feed is not None and not feed.closed:
            feed.write_local(change.to_bytes(), now=now)

    def get(self, name: str) -> ChannelCore:
        channel = self.channels.get(name)
        if channel is None:
            raise ChannelNotFound("Stream not found")
        return channel

    def create(self, name: str, mime_type: str, *, now: float, force: bool = False) -> ChannelCore:
        """``POST {ch}``: idempotent; a missing channel needs autocreate (or ``force``,
        the embedding application's own create, like go-livepeer's local publisher)."""
        existing = self.channels.get(name)
        if existing is not None:
            return existing
        if not (self.config.autocreate or force):
            raise ChannelNotFound("Stream not found")
        return self._add(name, mime_type, now)

    def for_publish(self, name: str, content_type: str | None, *, now: float) -> ChannelCore:
        """The channel a POST segment goes to; autocreates with the POST's Content-Type."""
        existing = self.channels.get(name)
        if existing is not None:
            return existing
        if not self.config.autocreate:
            raise ChannelNotFound("Stream not found")
        return self._add(name, content_type or "", now)

    def delete(self, name: str, *, now: float) -> ChannelCore:
        """``DELETE {ch}``: close and forget. 400 when missing, as go-livepeer."""
        channel = self.channels.pop(name, None)
        if channel is None:
            raise ProtocolError("Invalid stream", status=400)
        channel.close()
        self._announce(ChannelChange(removed=(name,)), now)
        return channel

    def sweep(self, now: float) -> list[ChannelCore]:
        """Close channels idle longer than the timeout; ``_``-names are exempt."""
        idle = [
            ch
            for name, ch in self.channels.items()
            if not name.startswith("_") and ch.idle_for(now) > self.config.idle_timeout
        ]
        for channel in idle:
            self.delete(channel.name, now=now)
        return idle

    def close_all(self) -> list[ChannelCore]:
        """Server shutdown: close every channel, no changefeed messages."""
        closed = list(self.channels.values())
        for channel in closed:
            channel.close()
        self.channels.clear()
        return closed
