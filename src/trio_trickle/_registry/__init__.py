"""The orchestrator's live-runner control plane, sans I/O (spec/live-runner.md, LR).

The registry of runners and their sessions as a plain state machine: every
operation takes the time as a float ``now`` (a monotonic clock, seconds), draws
randomness from an injected :class:`~.ids.RandomSource`, and answers with a value
saying what the I/O layer must do (queue an O2R event, close channels, answer
with a status) or raises a :class:`~.errors.RegistryError` that carries the
status and text to answer with. A refused request changes nothing.

Modules, one job each:

* ``errors``: the refusals (ProtocolError subclasses with go-livepeer's texts).
* ``effects``: release reasons and the actions the I/O layer performs.
* ``ids``: runner, session and proxy IDs, per-runner secrets, constant-time compare.
* ``config``: timers, secrets and public URLs of one orchestrator.
* ``proxy_urls``: the public proxy URL template (``{proxy}`` in host or path).
* ``state``: the mutable records (runner, session, channel) and released-session memory.
* ``pricing``: registered USD prices to advertised wei prices; offchain price checks.
* ``payment``: the :class:`~.payment.PaymentVerifier` seam and its offchain form.
* ``sessions``: lookups, room checks, adding and releasing sessions, client stop.
* ``runners``: heartbeat, unregister, expiry.
* ``static``: static runners and their health.
* ``reservation``: the reservation check order, top-ups, debits, refresh.
* ``callbacks``: the runner's session callbacks (token, channels, proxies, stop).
* ``activity``: proxied requests, channel traffic and idle release.
* ``discovery``: the ``/discovery`` listing.
* ``registry``: :class:`~.registry.LiveRunnerRegistry`, the one entry point.

Nothing here imports trio, httpx, hypercorn, av or torch. The package is not
re-exported from ``trio_trickle`` yet: it becomes public API with the
orchestrator app, so its modules export nothing through ``__all__``.
"""

from __future__ import annotations

__all__: list[str] = []
