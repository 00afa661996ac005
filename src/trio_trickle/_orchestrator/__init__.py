"""The orchestrator process: the live-runner registry (``_registry``) driven over HTTP.

One process, one nursery, one listener: the trickle server mounted at
``/ai/trickle/`` (channels made only by runner callbacks, never by a client's
POST) and the control API of spec/live-runner.md beside it, both answered by
one plain ASGI app (:mod:`.app`). The registry decides; this package reads
bounded bodies through the wire classes, performs the registry's effects
(:mod:`.effects`), writes the O2R channels (:mod:`.o2r`), proxies session
traffic (:mod:`.proxy`) and runs the timers (:mod:`.process`).

Modules:

* ``config``: :class:`~.config.OrchestratorConfig`, the process's settings.
* ``http``: reading a request (bounded) and writing plain-text/JSON answers.
* ``o2r``: the per-runner O2R writer (events written at once, keepalive, linger).
* ``effects``: performs the registry's effect values, in order, without awaiting.
* ``proxy``: the session reverse proxy (streamed both ways through httpx).
* ``app``: the ASGI app: routing, the control endpoints, the trickle mount.
* ``process``: :func:`~.process.open_orchestrator`, the reaper, accounting, health checks.
"""

from __future__ import annotations

__all__: list[str] = []
