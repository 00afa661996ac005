"""Wire messages of live-runner discovery (spec/live-runner.md, prefix LR).

What ``GET /discovery`` (orchestrator) and ``/discover-orchestrators`` (remote
signer) answer: orchestrator addresses with their runners, each runner's load
and its advertised wei price. Kept apart from registration because a client
reads only these, and reads them leniently: one malformed runner or price can
be skipped without losing the rest of the answer.

Pure encode/decode, no I/O; ``from_wire`` raises only the ProtocolError family.
"""

from __future__ import annotations

from typing import Any

import attrs

from .._errors import InvalidMessage, ProtocolError
from .fields import (
    as_str,
    expect_object,
    get_int,
    get_list,
    get_number,
    get_object,
    get_opt_str,
    get_str,
)
from .go import INT64_MAX, decimal_from_wire
from .live_runner import MAX_METADATA_BYTES, RunnerGpu
from .validate import instance_of, int_range, non_empty, optional, trimmed, tuple_of, utf8_text

__all__ = [
    "AdvertisedPrice",
    "DiscoveryEntry",
    "DiscoveryResponse",
    "DiscoveryRunner",
]

_OFFER_UNITS = ("seconds", "720p-pixel-seconds", "fixed")


@attrs.frozen(kw_only=True)
class AdvertisedPrice:
    """A discovery ``price_info``: integer wei per unit, as the orchestrator advertises.

    Values are not restricted here, so a reader can skip a bad offer instead of
    failing the whole discovery answer; :meth:`is_valid_offer` applies the rule.
    """

    price: int = attrs.field(validator=int_range(0, INT64_MAX))
    currency: str = attrs.field(default="wei", validator=instance_of(str))
    unit: str = attrs.field(default="seconds", validator=instance_of(str))

    def is_valid_offer(self) -> bool:
        currency = self.currency.strip().lower()
        return self.price > 0 and currency == "wei" and self.unit.strip().lower() in _OFFER_UNITS

    def to_wire(self) -> dict[str, Any]:
        return {"price": self.price, "currency": self.currency, "unit": self.unit}

    @classmethod
    def from_wire(cls, value: object) -> AdvertisedPrice:
        what = "discovery price_info"
        obj = expect_object(value, what)
        price = decimal_from_wire(obj.get("price"), what)
        if price != price.to_integral_value() or not 0 <= price <= INT64_MAX:
            raise InvalidMessage(f"{what}: price must be a non-negative integer wei amount")
        return cls(
            price=int(price),
            currency=get_str(obj, "currency", what, default=""),
            unit=get_str(obj, "unit", what, default=""),
        )


@attrs.frozen(kw_only=True)
class DiscoveryRunner:
    """One runner in a discovery answer. ``url`` is an orchestrator URL, never the
    runner's own. ``capacity_available`` may be negative after a capacity cut."""

    url: str = attrs.field(validator=non_empty)
    app: str = attrs.field(validator=trimmed)
    capacity: int = attrs.field(default=0, validator=int_range(0, INT64_MAX))
    capacity_used: int = attrs.field(default=0, validator=int_range(0, INT64_MAX))
    capacity_available: int = attrs.field(default=0, validator=int_range(-INT64_MAX, INT64_MAX))
    gpu: RunnerGpu | None = attrs.field(default=None, validator=optional(instance_of(RunnerGpu)))
    version: str | None = attrs.field(default=None, validator=optional(non_empty))
    metadata: str | None = attrs.field(
        default=None, validator=optional(utf8_text(MAX_METADATA_BYTES))
    )
    mode: str | None = attrs.field(default=None, validator=optional(non_empty))
    price_info: AdvertisedPrice | None = attrs.field(
        default=None, validator=optional(instance_of(AdvertisedPrice))
    )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url}
        if self.gpu is not None:
            out["gpu"] = self.gpu.to_wire()
        out["app"] = self.app
        for key in ("version", "metadata", "mode"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["capacity"] = self.capacity
        out["capacity_used"] = self.capacity_used
        out["capacity_available"] = self.capacity_available
        if self.price_info is not None:
            out["price_info"] = self.price_info.to_wire()
        return out

    @classmethod
    def from_wire(cls, value: object) -> DiscoveryRunner:
        what = "discovery runner"
        obj = expect_object(value, what)
        gpu = obj.get("gpu")
        price = get_object(obj, "price_info", what, default=None)
        return cls(
            url=get_str(obj, "url", what),
            app=get_str(obj, "app", what),
            capacity=get_int(obj, "capacity", what, default=0),
            capacity_used=get_int(obj, "capacity_used", what, default=0),
            capacity_available=get_int(obj, "capacity_available", what, default=0),
            gpu=None if gpu is None else RunnerGpu.from_wire(gpu),
            version=get_opt_str(obj, "version", what),
            metadata=get_opt_str(obj, "metadata", what),
            mode=get_opt_str(obj, "mode", what),
            price_info=None if price is None else AdvertisedPrice.from_wire(price),
        )


@attrs.frozen(kw_only=True)
class DiscoveryEntry:
    """One orchestrator address with its runners.

    ``score`` and ``capabilities`` appear only in a remote signer's
    ``/discover-orchestrators`` answer; the orchestrator's ``/discovery`` has neither.
    """

    address: str = attrs.field(validator=non_empty)
    runners: tuple[DiscoveryRunner, ...] = attrs.field(
        default=(), validator=tuple_of(DiscoveryRunner)
    )
    score: float | None = attrs.field(default=None, validator=optional(instance_of(int, float)))
    capabilities: tuple[str, ...] | None = attrs.field(
        default=None, validator=optional(tuple_of(str))
    )

    def priced_runners(self) -> tuple[DiscoveryRunner, ...]:
        """Runners a paying client can use: a positive wei price with a known unit."""
        return tuple(r for r in self.runners if r.price_info and r.price_info.is_valid_offer())

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": self.address}
        if self.score is not None:
            out["score"] = self.score
        if self.capabilities is not None:
            out["capabilities"] = list(self.capabilities)
        if self.runners:
            out["runners"] = [r.to_wire() for r in self.runners]
        return out

    @classmethod
    def from_wire(cls, value: object, *, skip_invalid_runners: bool = False) -> DiscoveryEntry:
        """With ``skip_invalid_runners``, a malformed runner is dropped instead of
        failing the whole entry, as a discovery reader must do."""
        what = "discovery entry"
        obj = expect_object(value, what)
        raw = get_list(obj, "runners", what, lambda v, _w: v, default=())
        runners: list[DiscoveryRunner] = []
        for item in raw:
            try:
                runners.append(DiscoveryRunner.from_wire(item))
            except ProtocolError:
                if not skip_invalid_runners:
                    raise
        score = obj.get("score")
        return cls(
            address=get_str(obj, "address", what),
            runners=tuple(runners),
            score=None if score is None else get_number(obj, "score", what),
            capabilities=get_list(obj, "capabilities", what, as_str, default=None),
        )


@attrs.frozen(kw_only=True)
class DiscoveryResponse:
    """The JSON array answered by ``GET /discovery`` or ``/discover-orchestrators``."""

    entries: tuple[DiscoveryEntry, ...] = attrs.field(
        default=(), validator=tuple_of(DiscoveryEntry)
    )

    def to_wire(self) -> list[Any]:
        return [e.to_wire() for e in self.entries]

    @classmethod
    def from_wire(cls, value: object, *, skip_invalid_runners: bool = False) -> DiscoveryResponse:
        if not isinstance(value, list):
            raise InvalidMessage("discovery: expected a JSON array")
        return cls(
            entries=tuple(
                DiscoveryEntry.from_wire(v, skip_invalid_runners=skip_invalid_runners)
                for v in value
            )
        )
