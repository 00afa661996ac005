"""The registry's mutable records and its memory of released sessions.

Records are ``attrs.define(eq=False)``: they have identity and change in place,
and only the registry's own modules touch them. Each field's comment states the
invariant the registry keeps. Values handed out to the I/O layer are frozen
copies (``effects``, the result types), never these records.
"""

from __future__ import annotations

from collections import OrderedDict
from fractions import Fraction

import attrs

from .._wire.live_runner import HeartbeatRequest, RunnerChannel, RunnerPriceInfo
from .config import RegistryConfig
from .effects import ReleaseReason
from .ids import RandomSource
from .payment import PaymentVerifier, UnitPrice
from .pricing import PriceFeed

__all__: list[str] = []


@attrs.define(eq=False)
class ChannelRecord:
    """One session trickle channel and the last requests it saw (LR-137)."""

    channel: RunnerChannel
    last_publish: float | None = None
    last_subscribe: float | None = None


@attrs.define(eq=False)
class PaidState:
    """What the debit monitor needs for a paid, time-metered session (LR-093)."""

    sender: str
    price: UnitPrice
    units_per_second: int
    last_debit: float  # when units were last counted; the next count starts here
    carry: Fraction = Fraction(0)  # the fraction of a unit not yet billed, 0 <= carry < 1


@attrs.define(eq=False)
class SessionRecord:
    session_id: str
    seq: int  # creation order across the registry: response session_ids sort by it
    created: float
    fixed_price: bool  # the runner's registered unit was ``fixed`` at creation (LR-097)
    channels: dict[str, ChannelRecord] = attrs.Factory(dict)  # normalised name -> channel
    proxies: dict[str, str] = attrs.Factory(dict)  # proxy ID -> target URL
    open_requests: int = 0  # proxied requests now open; > 0 means active (LR-135)
    last_activity: float = 0.0  # reservation, proxied request start/end, payment
    paid: PaidState | None = None  # set for time-metered onchain sessions only


@attrs.define(eq=False)
class RunnerRecord:
    runner_id: str
    route: str  # the registry key and URL segment: the runner ID, or a static label
    seed: bytes  # 32 random bytes; every secret of the runner derives from it
    heartbeat_secret: str  # empty for static runners (LR-021)
    static: bool
    registration: HeartbeatRequest  # normalised: runner_id set, capacity >= 1, GPU named
    price: RunnerPriceInfo | None  # the parsed USD price onchain, None offchain
    status: str  # "" or "ready" is ready (LR-043)
    last_heartbeat: float
    o2r: RunnerChannel | None  # None for static runners, which have no O2R channel
    sessions: dict[str, SessionRecord] = attrs.Factory(dict)  # never more than when reserved
    health_url: str = ""
    healthy_status_code: int = 200
    health_failures: int = 0  # consecutive failed checks of a static runner (LR-042)

    @property
    def ready(self) -> bool:
        return self.status in ("", "ready")

    @property
    def capacity(self) -> int:
        return self.registration.capacity

    @property
    def single_shot(self) -> bool:
        return self.registration.mode == "single-shot"

    def expired(self, now: float, ttl: float) -> bool:
        """No accepted heartbeat for longer than ``ttl`` (static runners never expire)."""
        return not self.static and now - self.last_heartbeat > ttl

    def session_ids(self) -> tuple[str, ...]:
        """The runner's sessions in creation order (LR-022)."""
        return tuple(s.session_id for s in sorted(self.sessions.values(), key=lambda s: s.seq))


@attrs.define(eq=False)
class ReleasedSessions:
    """Why recent sessions ended, for ``max_entries`` releases and ``ttl`` seconds (LR-144)."""

    ttl: float
    max_entries: int
    _entries: OrderedDict[tuple[str, str], tuple[ReleaseReason, float]] = attrs.Factory(OrderedDict)

    def remember(self, route: str, session_id: str, reason: ReleaseReason, now: float) -> None:
        key = (route, session_id)
        self._entries.pop(key, None)
        self._entries[key] = (reason, now)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def reason(self, route: str, session_id: str, now: float) -> ReleaseReason | None:
        found = self._entries.get((route, session_id))
        if found is None or now - found[1] > self.ttl:
            return None
        return found[0]

    def forget(self, route: str, session_id: str) -> None:
        self._entries.pop((route, session_id), None)

    def sweep(self, now: float) -> None:
        """Drop entries older than ``ttl`` (they are in release order)."""
        while self._entries:
            key, (_reason, when) = next(iter(self._entries.items()))
            if now - when <= self.ttl:
                return
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


@attrs.define(eq=False)
class RegistryState:
    """Everything the registry holds; the operation modules change it."""

    config: RegistryConfig
    random: RandomSource
    verifier: PaymentVerifier
    price_feed: PriceFeed
    runners: dict[str, RunnerRecord] = attrs.Factory(dict)  # route -> runner, in registration order
    released: ReleasedSessions = attrs.field(init=False)
    channel_index: dict[str, tuple[str, str, str]] = attrs.Factory(
        dict
    )  # channel -> route, sid, name
    proxy_index: dict[str, tuple[str, str]] = attrs.Factory(dict)  # proxy ID -> route, session ID
    next_seq: int = 0

    @released.default
    def _released(self) -> ReleasedSessions:
        return ReleasedSessions(
            ttl=self.config.release_memory, max_entries=self.config.release_memory_max
        )

    def take_seq(self) -> int:
        self.next_seq += 1
        return self.next_seq
