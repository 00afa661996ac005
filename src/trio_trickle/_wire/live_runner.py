"""Wire messages of the live-runner control plane: registration (spec/live-runner.md, LR).

A runner registers, and stays registered, by heartbeat: the heartbeat body with
its GPU and USD price, the orchestrator's answer with timers, the O2R channel
and the authoritative session list, and :class:`RunnerChannel`, the trickle
channel description shared with the session callbacks. Discovery, payment and
the session callbacks (channels, proxy, O2R messages) have their own
``_wire_live_runner_*`` modules.

Pure encode/decode, no I/O; ``from_wire`` raises only the ProtocolError family.
Durations travel as Go duration strings (``5s``) and are seconds here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from .._errors import InvalidMessage
from .fields import (
    as_str,
    expect_object,
    get_bool,
    get_int,
    get_list,
    get_object,
    get_opt_str,
    get_str,
)
from .go import INT64_MAX, decimal_from_wire, decimal_to_wire, format_go_duration, parse_go_duration
from .validate import (
    fail,
    http_url,
    instance_of,
    int_range,
    json_object,
    non_empty,
    one_of,
    optional,
    trimmed,
    tuple_of,
    utf8_text,
)

__all__ = [
    "HeartbeatRequest",
    "HeartbeatResponse",
    "RunnerChannel",
    "RunnerGpu",
    "RunnerPriceInfo",
]

#: Largest ``metadata`` a runner may register (bytes of UTF-8).
MAX_METADATA_BYTES = 1024
_MODES = {
    "": "persistent",
    "persistent": "persistent",
    "single-shot": "single-shot",
    "single_shot": "single-shot",
}
_REG_UNITS = ("hour", "720p", "fixed")


def _positive_seconds(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(attribute, "must be a number of seconds")
    if not 0 < value < 9.2e9:  # Go durations are int64 nanoseconds
        raise fail(attribute, "must be positive and fit a Go duration")


def _status(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or value != value.strip().lower():
        raise fail(attribute, "must be lowercase and trimmed")


# -- price --------------------------------------------------------------------


def _usd_price(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # Bounds keep arithmetic on hostile input cheap: 10^15 USD and 50 digits.
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise fail(attribute, "must be a positive decimal")
    if value.adjusted() > 15 or value.adjusted() < -30 or len(value.as_tuple().digits) > 50:
        raise fail(attribute, "is outside the supported range")


@attrs.frozen(kw_only=True)
class RunnerPriceInfo:
    """A runner's registered price: ``{"price","currency":"usd","unit"}``.

    ``from_wire`` applies master's normalisation: trimmed, lowercased, empty
    currency is ``usd``, empty unit is ``hour``; ``price`` may be a numeric string.
    """

    price: Decimal = attrs.field(validator=_usd_price)
    unit: str = attrs.field(default="hour", validator=one_of(*_REG_UNITS))
    currency: str = attrs.field(default="usd", validator=one_of("usd"))

    def to_wire(self) -> dict[str, Any]:
        return {"price": decimal_to_wire(self.price), "currency": self.currency, "unit": self.unit}

    @classmethod
    def from_wire(cls, value: object) -> RunnerPriceInfo:
        what = "price_info"
        obj = expect_object(value, what)
        if "price" not in obj or obj["price"] in (None, ""):
            raise InvalidMessage(f"{what}: price is required")
        currency = get_str(obj, "currency", what, default="").strip().lower() or "usd"
        unit = get_str(obj, "unit", what, default="").strip().lower() or "hour"
        if currency != "usd":
            raise InvalidMessage(f"{what}: currency must be usd")
        if unit not in _REG_UNITS:
            raise InvalidMessage(f"{what}: unit must be hour, 720p, or fixed")
        return cls(price=decimal_from_wire(obj["price"], what), unit=unit, currency=currency)


# -- registration -------------------------------------------------------------


def _gpu_index(inst: RunnerGpu, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(attribute, "must be an int64 device index or None")
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise fail(attribute, "must be an int64 device index or None")
    if inst.id != str(value) or inst.name is not None or inst.vram_mb is not None:
        raise fail(attribute, "a device index GPU has only id, the index in decimal")


@attrs.frozen(kw_only=True)
class RunnerGpu:
    """``gpu``: ``{"id","name","vram_mb"}``, each optional, or an integer device index (LR-016).

    ``index`` is set when the runner sent the integer form: ``id`` is then the
    index in decimal and ``to_wire`` writes the integer back. The orchestrator
    names such a GPU after its host's GPU at that index and drops ``index``
    (:meth:`named`), so discovery lists the object form.
    """

    id: str | None = attrs.field(default=None, validator=optional(non_empty))
    name: str | None = attrs.field(default=None, validator=optional(non_empty))
    vram_mb: int | None = attrs.field(default=None, validator=optional(int_range(1, INT64_MAX)))
    index: int | None = attrs.field(default=None, validator=_gpu_index)

    @classmethod
    def from_index(cls, index: int) -> RunnerGpu:
        """The integer form: ``{"id":"<index>"}``, remembering that it was an index."""
        return cls(id=str(index), index=index)

    def named(self, name: str | None) -> RunnerGpu:
        """The object form of this GPU, with ``name`` when given (LR-016)."""
        return attrs.evolve(self, index=None, name=name or self.name)

    def to_wire(self) -> int | dict[str, Any]:
        if self.index is not None:
            return self.index
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        if self.name is not None:
            out["name"] = self.name
        if self.vram_mb is not None:
            out["vram_mb"] = self.vram_mb
        return out

    @classmethod
    def from_wire(cls, value: object) -> RunnerGpu:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -INT64_MAX - 1 <= value <= INT64_MAX:
                raise InvalidMessage("gpu: device index does not fit an int64")
            return cls.from_index(value)
        obj = expect_object(value, "gpu")
        return cls(
            id=get_opt_str(obj, "id", "gpu"),
            name=get_opt_str(obj, "name", "gpu"),
            vram_mb=get_int(obj, "vram_mb", "gpu", default=0) or None,
        )


@attrs.frozen(kw_only=True)
class HeartbeatRequest:
    """Body of ``POST /runners/heartbeat``.

    ``mode`` is canonical here (``persistent`` / ``single-shot``); ``from_wire``
    maps ``""`` and ``single_shot``. ``price_info`` stays a raw object because an
    offchain orchestrator must ignore even a malformed one; onchain code calls
    :meth:`parsed_price_info`. ``capacity`` 0 means 1 to the orchestrator.
    """

    runner_url: str = attrs.field(validator=http_url)
    app: str = attrs.field(validator=trimmed)
    capacity: int = attrs.field(default=0, validator=int_range(0, INT64_MAX))
    runner_id: str | None = attrs.field(default=None, validator=optional(trimmed))
    label: str = attrs.field(default="", validator=instance_of(str))
    proxy: bool = attrs.field(default=False, validator=instance_of(bool))
    version: str = attrs.field(default="", validator=instance_of(str))
    metadata: str = attrs.field(default="", validator=utf8_text(MAX_METADATA_BYTES))
    status: str = attrs.field(default="", validator=_status)
    mode: str = attrs.field(default="persistent", validator=one_of("persistent", "single-shot"))
    gpu: RunnerGpu | None = attrs.field(default=None, validator=optional(instance_of(RunnerGpu)))
    price_info: dict[str, Any] | None = attrs.field(default=None, validator=optional(json_object))
    session_ids: tuple[str, ...] = attrs.field(default=(), validator=tuple_of(str))

    def parsed_price_info(self) -> RunnerPriceInfo:
        """The onchain reading of ``price_info``; missing or malformed is 400."""
        if self.price_info is None:
            raise InvalidMessage("price_info.price is required")
        return RunnerPriceInfo.from_wire(self.price_info)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.runner_id is not None:
            out["runner_id"] = self.runner_id
        if self.label:
            out["label"] = self.label
        if self.proxy:
            out["proxy"] = True
        out["runner_url"] = self.runner_url
        for key in ("version", "metadata", "status"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        out["mode"] = self.mode
        if self.gpu is not None:
            out["gpu"] = self.gpu.to_wire()
        out["app"] = self.app
        out["capacity"] = self.capacity
        if self.price_info is not None:
            out["price_info"] = self.price_info
        if self.session_ids:
            out["session_ids"] = list(self.session_ids)
        return out

    @classmethod
    def from_wire(cls, value: object) -> HeartbeatRequest:
        what = "heartbeat"
        obj = expect_object(value, what)
        mode = _MODES.get(get_str(obj, "mode", what, default=""))
        if mode is None:
            raise InvalidMessage(f"{what}: mode must be persistent or single-shot")
        gpu = obj.get("gpu")
        return cls(
            runner_url=get_str(obj, "runner_url", what),
            app=get_str(obj, "app", what),
            capacity=get_int(obj, "capacity", what, default=0),
            runner_id=get_str(obj, "runner_id", what, default="").strip() or None,
            label=get_str(obj, "label", what, default=""),
            proxy=get_bool(obj, "proxy", what, default=False),
            version=get_str(obj, "version", what, default=""),
            metadata=get_str(obj, "metadata", what, default=""),
            status=get_str(obj, "status", what, default=""),
            mode=mode,
            gpu=None if gpu is None else RunnerGpu.from_wire(gpu),
            price_info=get_object(obj, "price_info", what, default=None),
            session_ids=get_list(obj, "session_ids", what, as_str, default=()),
        )


@attrs.frozen(kw_only=True)
class RunnerChannel:
    """A trickle channel the orchestrator made for a runner (O2R or a session channel).

    Runners use ``internal_url`` when present; clients get ``url``.
    """

    name: str = attrs.field(validator=non_empty)
    channel_name: str = attrs.field(validator=non_empty)
    url: str = attrs.field(validator=non_empty)
    mime_type: str = attrs.field(validator=non_empty)
    internal_url: str | None = attrs.field(default=None, validator=optional(non_empty))

    @property
    def runner_url(self) -> str:
        return self.internal_url or self.url

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "channel_name": self.channel_name}
        out["url"] = self.url
        if self.internal_url is not None:
            out["internal_url"] = self.internal_url
        out["mime_type"] = self.mime_type
        return out

    @classmethod
    def from_wire(cls, value: object) -> RunnerChannel:
        what = "trickle channel"
        obj = expect_object(value, what)
        return cls(
            name=get_str(obj, "name", what),
            channel_name=get_str(obj, "channel_name", what),
            url=get_str(obj, "url", what),
            mime_type=get_str(obj, "mime_type", what),
            internal_url=get_opt_str(obj, "internal_url", what),
        )


@attrs.frozen(kw_only=True)
class HeartbeatResponse:
    """The orchestrator's 200 to a heartbeat.

    ``heartbeat_secret`` and ``o2r`` come only with the first registration.
    ``session_ids`` is the orchestrator's authoritative list; a runner drops
    every local session missing from it.
    """

    runner_id: str = attrs.field(validator=non_empty)
    heartbeat_interval: float = attrs.field(default=5.0, validator=_positive_seconds)
    heartbeat_ttl: float = attrs.field(default=20.0, validator=_positive_seconds)
    orchestrator: str = attrs.field(default="", validator=instance_of(str))
    heartbeat_secret: str | None = attrs.field(default=None, validator=optional(non_empty))
    o2r: RunnerChannel | None = attrs.field(
        default=None, validator=optional(instance_of(RunnerChannel))
    )
    session_ids: tuple[str, ...] = attrs.field(default=(), validator=tuple_of(str))

    @property
    def is_new_registration(self) -> bool:
        return self.heartbeat_secret is not None

    def released_sessions(self, local: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        """The local sessions this answer no longer lists: they are released."""
        held = set(self.session_ids)
        return tuple(s for s in local if s not in held)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"runner_id": self.runner_id}
        if self.orchestrator:
            out["orchestrator"] = self.orchestrator
        out["heartbeat_interval"] = format_go_duration(self.heartbeat_interval)
        out["heartbeat_ttl"] = format_go_duration(self.heartbeat_ttl)
        if self.heartbeat_secret is not None:
            out["heartbeat_secret"] = self.heartbeat_secret
        if self.o2r is not None:
            out["o2r"] = self.o2r.to_wire()
        out["session_ids"] = list(self.session_ids)
        return out

    @classmethod
    def from_wire(cls, value: object) -> HeartbeatResponse:
        what = "heartbeat response"
        obj = expect_object(value, what)
        o2r = get_object(obj, "o2r", what, default=None)
        return cls(
            runner_id=get_str(obj, "runner_id", what),
            heartbeat_interval=parse_go_duration(get_str(obj, "heartbeat_interval", what)),
            heartbeat_ttl=parse_go_duration(get_str(obj, "heartbeat_ttl", what)),
            orchestrator=get_str(obj, "orchestrator", what, default=""),
            heartbeat_secret=get_opt_str(obj, "heartbeat_secret", what),
            o2r=None if o2r is None else RunnerChannel.from_wire(o2r),
            session_ids=get_list(obj, "session_ids", what, as_str, default=()),
        )
