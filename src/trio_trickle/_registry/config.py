"""One orchestrator's live-runner settings: secrets, public URLs, timers, limits.

Defaults are go-livepeer master's (LR-022, LR-038, LR-041, LR-093) and the
spec's additions (idle timeout LR-134, health failures LR-042, released-session
memory LR-144). The I/O layer runs its timers from the same values: expiry and
idle checks every ``heartbeat_interval``, debits every ``payment_interval``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import attrs

from .proxy_urls import ProxyTemplate

__all__: list[str] = []

#: Characters a URL path segment keeps unescaped (RFC 3986 pchar, as Go's JoinPath).
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"


def is_http_url(value: object) -> bool:
    """An absolute ``http``/``https`` URL with a host and no surrounding space."""
    if not isinstance(value, str) or not value or value != value.strip():
        return False
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host)


def _url(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not is_http_url(value):
        raise ValueError(f"{attribute.name} must be an absolute http(s) URL")


def _count(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be a non-negative integer")


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{attribute.name} must be a non-negative number of seconds")


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _non_negative(_inst, attribute, value)
    if value == 0:
        raise ValueError(f"{attribute.name} must be positive")


def join_url(base: str, *segments: str) -> str:
    """``base`` with path ``segments`` appended, each escaped as one segment."""
    return base.rstrip("/") + "".join("/" + quote(s, safe=_SEGMENT_SAFE) for s in segments)


@attrs.frozen(kw_only=True)
class RegistryConfig:
    """Settings of one registry.

    ``orchestrator_secret`` empty disables dynamic registration (LR-005).
    ``runner_address`` (``-liveRunnerAddr``) defaults to ``service_uri``.
    ``host_gpu_names`` are the product names of this host's GPUs, by device
    index, for runners that name their GPU by index (LR-016).
    """

    service_uri: str = attrs.field(validator=_url)
    runner_address: str | None = attrs.field(default=None, validator=_url)
    orchestrator_secret: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    onchain: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    proxy_url_template: str | None = None
    heartbeat_interval: float = attrs.field(default=5.0, validator=_positive)
    heartbeat_ttl: float = attrs.field(default=20.0, validator=_positive)
    session_idle_timeout: float = attrs.field(default=60.0, validator=_non_negative)
    payment_interval: float = attrs.field(default=5.0, validator=_positive)
    health_failures: int = attrs.field(default=2, validator=_count)
    release_memory: float = attrs.field(default=600.0, validator=_non_negative)
    release_memory_max: int = attrs.field(default=10_000, validator=_count)
    host_gpu_names: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    proxy_template: ProxyTemplate = attrs.field(init=False)

    @proxy_template.default
    def _parse_template(self) -> ProxyTemplate:
        return ProxyTemplate.parse(self.proxy_url_template, self.service_uri)

    @property
    def runner_base(self) -> str:
        """The base URL runners use to reach this orchestrator."""
        return (self.runner_address or self.service_uri).rstrip("/")

    @property
    def service_base(self) -> str:
        return self.service_uri.rstrip("/")

    def public_trickle_url(self, channel_name: str) -> str:
        return join_url(self.service_base, "ai", "trickle", channel_name)

    def internal_trickle_url(self, channel_name: str) -> str:
        return join_url(self.runner_base, "ai", "trickle", channel_name)
