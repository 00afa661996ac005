"""The orchestrator process's settings: the registry's, the listener's and the timers'.

The registry's own timers (heartbeat interval and TTL, idle timeout, payment
interval) live in :class:`~trio_trickle._registry.config.RegistryConfig`; the
ones here belong to the process: the O2R keepalive (LR-046) and linger,
static health checks (LR-041), proxy and body limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from .._core.server import ServerConfig
from .._registry.config import RegistryConfig
from .._registry.static import StaticRunnerEntry
from .._server.connections import HttpTimeouts

__all__: list[str] = []


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{attribute.name} must be positive")


def _trickle_config(value: ServerConfig | None) -> ServerConfig:
    """The mounted trickle server's settings: always at ``/ai/trickle/``, never autocreating."""
    base = value or ServerConfig()
    return attrs.evolve(base, base_path="/ai/trickle/", autocreate=False)


@attrs.frozen(kw_only=True)
class OrchestratorConfig:
    """Settings of one orchestrator process.

    ``registry`` is the registry's configuration; its ``service_uri`` is the
    public base URL. With ``port=0`` the real URL is only known once bound, so
    ``registry`` may also be a function of the bound URL (``http://host:port``),
    or None for the defaults with that URL and ``secret``.
    """

    host: str = "127.0.0.1"
    port: int = 0
    #: The orchestrator secret (empty: dynamic registration disabled, LR-005).
    secret: str = ""
    registry: RegistryConfig | Callable[[str], RegistryConfig] | None = None
    trickle: ServerConfig = attrs.field(default=None, converter=_trickle_config)
    timeouts: HttpTimeouts = attrs.field(factory=HttpTimeouts)
    static_runners: tuple[StaticRunnerEntry, ...] = attrs.field(default=(), converter=tuple)
    #: O2R keepalive period (LR-046); events are written at once (see ``o2r``, LR-050).
    o2r_keepalive: float = attrs.field(default=10.0, validator=_positive)
    #: How long a removed runner's O2R channel stays readable after its last event.
    o2r_linger: float = attrs.field(default=1.0, validator=_positive)
    #: Static runners' health checks: period and per-check timeout (LR-041).
    health_interval: float = attrs.field(default=5.0, validator=_positive)
    health_timeout: float = attrs.field(default=3.0, validator=_positive)
    #: Largest control body (heartbeat, callbacks, reservation) in bytes.
    max_body_bytes: int = attrs.field(default=64 * 1024, validator=_positive)
    #: Time allowed to receive a control body once its head arrived.
    body_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: Proxy: connecting to the runner (502 past it) and waiting for its response head.
    proxy_connect_timeout: float = attrs.field(default=5.0, validator=_positive)
    proxy_head_timeout: float = attrs.field(default=60.0, validator=_positive)
    graceful_timeout: float = attrs.field(default=2.0, validator=_positive)
