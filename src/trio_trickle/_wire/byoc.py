"""Wire messages of BYOC stream jobs (spec/byoc-stream.md, prefix BYOC).

The bodies and headers that set a BYOC stream up, as go-livepeer master spells
them: capability registration (worker -> orchestrator), the gateway's stream
start request and response, and the ``X-*`` channel headers the orchestrator
answers with. The job token and the ``Livepeer`` job header are in
:mod:`.byoc_token`; the orchestrator's ``/stream/start`` body for the
worker is the runner API's :class:`~.runner_start.StreamStartRequest` (its
``build`` does the BYOC merge of the gateway's keys).

Pure encode/decode: no I/O. ``from_wire`` raises only the ProtocolError family.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

import attrs

from .._errors import InvalidMessage
from .fields import expect_object, get_int, get_opt_str, get_str, header_map
from .go import INT64_MAX
from .json_codec import parse_json
from .validate import fail, http_url, instance_of, int_range, non_empty, optional

__all__ = [
    "BYOC_BALANCE_HEADER",
    "BYOC_CAPABILITY_HEADER",
    "CapabilityRegistration",
    "GatewayStreamStartRequest",
    "GatewayStreamStartResponse",
    "OrchestratorStreamUrls",
]

BYOC_CAPABILITY_HEADER = "Livepeer-Capability"
BYOC_BALANCE_HEADER = "Livepeer-Balance"

_DECIMAL_INT = re.compile(r"-?[0-9]+")
_WEI_PER_ETH = 10**18


# -- registration -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CapabilityRegistration:
    """Body of ``POST /capability/register`` (BYOC-002, BYOC-007).

    ``price_scaling`` 0 is kept as sent; :attr:`effective_price_scaling` applies
    the "0 means 1" rule. ``token`` is the bearer token the orchestrator shows
    the worker; ``None`` omits the key.
    """

    name: str = attrs.field(validator=non_empty)
    url: str = attrs.field(validator=http_url)
    description: str = attrs.field(default="", validator=instance_of(str))
    capacity: int = attrs.field(default=0, validator=int_range(0, INT64_MAX))
    price_per_unit: int = attrs.field(default=0, validator=int_range(0, INT64_MAX))
    price_scaling: int = attrs.field(default=1, validator=int_range(0, INT64_MAX))
    currency: str = attrs.field(default="", validator=instance_of(str))
    token: str | None = attrs.field(default=None, validator=optional(instance_of(str)))

    @property
    def effective_price_scaling(self) -> int:
        return self.price_scaling or 1

    def static_price_wei(self) -> Fraction | None:
        """Wei per second when ``currency`` needs no price feed (``""``, wei, eth)."""
        base = Fraction(self.price_per_unit, self.effective_price_scaling)
        currency = self.currency.lower()
        if currency in ("", "wei"):
            return base
        if currency == "eth":
            return base * _WEI_PER_ETH
        return None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "url": self.url,
            "capacity": self.capacity,
            "price_per_unit": self.price_per_unit,
            "price_scaling": self.price_scaling,
            "currency": self.currency,
        }
        if self.token is not None:
            out["token"] = self.token
        return out

    @classmethod
    def from_wire(cls, value: object) -> CapabilityRegistration:
        what = "capability registration"
        obj = expect_object(value, what)
        return cls(
            name=get_str(obj, "name", what),
            url=get_str(obj, "url", what),
            description=get_str(obj, "description", what, default=""),
            capacity=get_int(obj, "capacity", what, default=0),
            price_per_unit=get_int(obj, "price_per_unit", what, default=0),
            price_scaling=get_int(obj, "price_scaling", what, default=0),
            currency=get_str(obj, "currency", what, default=""),
            token=get_str(obj, "token", what, default=None),
        )


# -- gateway stream API -------------------------------------------------------


def _model_params(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise fail(attribute, "must be a string")
    if value:
        decoded = parse_json(value, "invalid model params")
        if decoded is not None and not isinstance(decoded, dict):
            raise InvalidMessage("invalid model params")


def _stream_name(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise fail(attribute, "must be a string")
    if value.endswith("-out"):
        raise fail(attribute, "must not end in -out (reserved for output streams)")


@attrs.frozen(kw_only=True)
class GatewayStreamStartRequest:
    """Body of the gateway's ``POST /process/stream/start`` (BYOC-047).

    ``params`` is a JSON *string* holding an object (or ``null``), as master's
    ``StartRequest`` declares it; :meth:`params_object` decodes it.
    """

    stream_name: str = attrs.field(default="", validator=_stream_name)
    rtmp_output: str = attrs.field(default="", validator=instance_of(str))
    stream_id: str = attrs.field(default="", validator=instance_of(str))
    params: str = attrs.field(default="", validator=_model_params)

    def params_object(self) -> dict[str, Any] | None:
        if not self.params:
            return None
        decoded = parse_json(self.params, "invalid model params")
        return None if decoded is None else dict(expect_object(decoded, "params"))

    def resolve_stream_id(self, random_id: str) -> str:
        """The stream ID: ``stream_id`` or ``random_id``, prefixed ``{stream_name}-``."""
        base = self.stream_id or random_id
        return f"{self.stream_name}-{base}" if self.stream_name else base

    def to_wire(self) -> dict[str, Any]:
        return {
            "stream_name": self.stream_name,
            "rtmp_output": self.rtmp_output,
            "stream_id": self.stream_id,
            "params": self.params,
        }

    @classmethod
    def from_wire(cls, value: object) -> GatewayStreamStartRequest:
        what = "stream start request"
        obj = expect_object(value, what)
        return cls(
            stream_name=get_str(obj, "stream_name", what, default=""),
            rtmp_output=get_str(obj, "rtmp_output", what, default=""),
            stream_id=get_str(obj, "stream_id", what, default=""),
            params=get_str(obj, "params", what, default=""),
        )


_START_URL_KEYS = (
    "whip_url",
    "whep_url",
    "rtmp_url",
    "rtmp_output_url",
    "update_url",
    "status_url",
    "data_url",
    "stop_url",
)


@attrs.frozen(kw_only=True)
class GatewayStreamStartResponse:
    """The gateway's 200 answer to a stream start (``StreamUrls``, BYOC-055).

    All nine keys are always written; a disabled feature is ``""`` on the wire
    and ``None`` here.
    """

    stream_id: str = attrs.field(validator=non_empty)
    whip_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    whep_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    rtmp_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    rtmp_output_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    update_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    status_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    data_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    stop_url: str | None = attrs.field(default=None, validator=optional(non_empty))

    @property
    def rtmp_outputs(self) -> tuple[str, ...]:
        """``rtmp_output_url`` is a comma-joined list of RTMP destinations."""
        return tuple(self.rtmp_output_url.split(",")) if self.rtmp_output_url else ()

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stream_id": self.stream_id}
        for key in _START_URL_KEYS:
            out[key] = getattr(self, key) or ""
        return out

    @classmethod
    def from_wire(cls, value: object) -> GatewayStreamStartResponse:
        what = "stream start response"
        obj = expect_object(value, what)
        urls = {key: get_opt_str(obj, key, what) for key in _START_URL_KEYS}
        return cls(stream_id=get_str(obj, "stream_id", what), **urls)


# -- orchestrator answer headers ----------------------------------------------

_ORCH_URL_HEADERS = (
    ("control_url", "X-Control-Url"),
    ("events_url", "X-Events-Url"),
    ("publish_url", "X-Publish-Url"),
    ("subscribe_url", "X-Subscribe-Url"),
    ("data_url", "X-Data-Url"),
)


@attrs.frozen(kw_only=True)
class OrchestratorStreamUrls:
    """Headers of the orchestrator's 200 to ``/ai/stream/start`` (BYOC-073).

    ``publish_url`` is where the gateway publishes input, ``subscribe_url``
    where it reads output. ``balance`` is ``Livepeer-Balance`` in wei.
    A gateway needs both control and events URLs (BYOC-079), so they are required.
    """

    control_url: str = attrs.field(validator=non_empty)
    events_url: str = attrs.field(validator=non_empty)
    publish_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    subscribe_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    data_url: str | None = attrs.field(default=None, validator=optional(non_empty))
    balance: int | None = attrs.field(default=None, validator=optional(instance_of(int)))

    def to_wire(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for attr, header in _ORCH_URL_HEADERS:
            url = getattr(self, attr)
            if url is not None:
                out[header] = url
        if self.balance is not None:
            out[BYOC_BALANCE_HEADER] = str(self.balance)
        return out

    @classmethod
    def from_wire(cls, headers: object) -> OrchestratorStreamUrls:
        what = "orchestrator stream start headers"
        lowered = header_map(headers, what)
        urls = {attr: lowered.get(header.lower()) or None for attr, header in _ORCH_URL_HEADERS}
        raw_balance = lowered.get(BYOC_BALANCE_HEADER.lower())
        balance = None
        if raw_balance is not None:
            if not _DECIMAL_INT.fullmatch(raw_balance.strip()):
                raise InvalidMessage(f"{what}: {BYOC_BALANCE_HEADER} must be a decimal integer")
            balance = int(raw_balance.strip())
        control, events = urls["control_url"], urls["events_url"]
        if control is None or events is None:
            raise InvalidMessage(f"{what}: X-Control-Url and X-Events-Url are required")
        return cls(
            control_url=control,
            events_url=events,
            publish_url=urls["publish_url"],
            subscribe_url=urls["subscribe_url"],
            data_url=urls["data_url"],
            balance=balance,
        )
