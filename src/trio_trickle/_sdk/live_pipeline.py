"""``LivePipeline``: the base class of a real-time (BYOC stream) runner.

A subclass overrides any of the hooks; each may be ``def`` or ``async def``
(a ``def`` hook runs in a worker thread, see ``_hooks``). The base hooks do
nothing and pass frames through unchanged, so a subclass that overrides
nothing is a valid relay (RUN-117; :meth:`LivePipeline.overrides` tells the
session which hooks are really there).

``emit_event`` / ``emit_data`` may be called from any hook, in any thread, at
any rate. They never block and never fail because a queue is full: each session
owns drop-oldest outlets (RUN-093), and the *current* session is found through
a context variable that the session binds in its own task tree. trio copies
context variables into child tasks and into ``trio.to_thread`` threads, so with
several sessions at once each hook's emits land in its own stream; outside any
session the emits do nothing (RUN-094).
"""

from __future__ import annotations

import contextvars
import json
import logging
from typing import Any, ClassVar

import attrs

from .._errors import InvalidMessage, PayloadTooLarge
from .._telemetry.outlet import DropOldestOutlet
from .._telemetry.runner import TrickleEventsSink
from .._wire.channel_events import TOPIC_AI_STREAM_EVENTS
from .._wire.channels import DEFAULT_MAX_SEGMENT_BYTES, DataLine

log = logging.getLogger("trio_trickle.session")

__all__ = [
    "HOOK_NAMES",
    "LivePipeline",
    "StreamOutlets",
    "bind_outlets",
    "current_outlets",
    "current_telemetry_sink",
    "encode_event_segment",
    "unbind_outlets",
]

#: Every hook a runner calls on a ``LivePipeline``.
HOOK_NAMES: tuple[str, ...] = (
    "setup",
    "on_stream_start",
    "process_video",
    "process_audio",
    "on_params_update",
    "on_stream_stop",
)


def encode_event_segment(envelope: dict[str, Any]) -> bytes:
    """One events segment's bytes; InvalidMessage unless plain JSON, PayloadTooLarge past 1 MiB."""
    try:
        data = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        encoded = data.encode()  # a lone surrogate fails here (UnicodeEncodeError)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidMessage(f"event is not plain JSON: {exc}") from None
    if len(encoded) > DEFAULT_MAX_SEGMENT_BYTES:
        raise PayloadTooLarge(
            f"event of {len(encoded)} bytes exceeds {DEFAULT_MAX_SEGMENT_BYTES} bytes"
        )
    return encoded


@attrs.define
class StreamOutlets:
    """Where one session's emits go: events envelopes and data records.

    ``events`` holds whole events-channel segments (``{"queue_event_type",
    "event"}`` envelopes); ``data`` holds JSONL records, or is None when the
    session has no ``data_url``.
    """

    #: Encoded events segments (one JSON object each), ready to publish.
    events: DropOldestOutlet[bytes]
    data: DropOldestOutlet[dict[str, Any]] | None
    #: The session's telemetry relay as a sink, for runner code (TEL-040).
    telemetry: TrickleEventsSink | None = None


def current_telemetry_sink() -> TrickleEventsSink | None:
    """The telemetry sink of the stream whose hook is running, or None outside one.

    ``emit(event)`` on it relays a :class:`TelemetryEvent` on that stream's events
    channel; it never blocks and never raises (TEL-047).
    """
    outlets = current_outlets.get()
    return None if outlets is None else outlets.telemetry


#: The outlets of the session whose task tree is running the current code.
current_outlets: contextvars.ContextVar[StreamOutlets | None] = contextvars.ContextVar(
    "trio_trickle_current_outlets", default=None
)


def bind_outlets(outlets: StreamOutlets | None) -> contextvars.Token[StreamOutlets | None]:
    """Make ``outlets`` current for this task and every task/thread it starts from now on."""
    return current_outlets.set(outlets)


def unbind_outlets(token: contextvars.Token[StreamOutlets | None]) -> None:
    """Undo :func:`bind_outlets` (call from the same task that bound them)."""
    current_outlets.reset(token)


class LivePipeline:
    """Subclass and override the hooks you need; all of them are optional.

    Hook order per session: ``on_stream_start`` once, then ``process_video`` /
    ``process_audio`` per frame and ``on_params_update`` per update, then
    ``on_stream_stop`` once. ``setup`` runs once per process, before the first
    session, while ``/health`` says ``LOADING``.
    """

    #: Hooks the base class defines; :meth:`overrides` compares against these.
    hook_names: ClassVar[tuple[str, ...]] = HOOK_NAMES

    def setup(self) -> None:
        """Load models; called once per process before any session."""

    def on_stream_start(self, params: dict[str, Any]) -> None:
        """A session starts with ``params`` (``{}`` when the caller sent none)."""

    def process_video(self, frame: Any) -> Any:
        """Return the frame to publish, or None to publish nothing for it."""
        return frame

    def process_audio(self, frame: Any) -> Any:
        """Return the frame to publish, or None to publish nothing for it."""
        return frame

    def on_params_update(self, params: dict[str, Any]) -> None:
        """New params for the running session (a ``/stream/params`` body or a control message)."""

    def on_stream_stop(self) -> None:
        """The session is ending; release per-stream resources. Emits still go out."""

    @classmethod
    def overrides(cls, name: str) -> bool:
        """Whether this class (or a base below ``LivePipeline``) overrides hook ``name``."""
        if name not in HOOK_NAMES:
            raise ValueError(f"{name!r} is not a LivePipeline hook; hooks are {HOOK_NAMES}")
        mine = _class_attr(cls, name)
        return mine is not None and mine is not LivePipeline.__dict__[name]

    # -- emitting ------------------------------------------------------------------

    def emit_event(self, payload: dict[str, Any]) -> None:
        """Publish ``payload`` as one events-channel segment of the current session.

        ``payload`` must be a JSON object with a non-empty string ``type``
        (RUN-090); it is copied, so later changes to it are not sent. Raises
        :class:`InvalidMessage` for a bad payload and :class:`PayloadTooLarge`
        beyond 1 MiB. Never blocks; outside a session it does nothing.
        """
        if not isinstance(payload, dict):
            raise InvalidMessage(f"event must be a dict, not {type(payload).__name__}")
        kind = payload.get("type")
        if not isinstance(kind, str) or not kind:
            raise InvalidMessage("event must have a non-empty string 'type'")
        # Encoded once, here: the bytes are the copy (later changes to ``payload``
        # are not sent) and the events writer publishes them as they are.
        data = encode_event_segment({"queue_event_type": TOPIC_AI_STREAM_EVENTS, "event": payload})
        outlets = current_outlets.get()
        if outlets is None:
            _dropped_outside_session("emit_event")
            return
        outlets.events.put(data)

    def emit_data(self, record: dict[str, Any]) -> None:
        """Publish ``record`` as one JSONL line on the current session's data channel.

        Raises :class:`InvalidMessage` if ``record`` is not a JSON object and
        :class:`PayloadTooLarge` if its line exceeds 65 535 bytes (RUN-092). Never
        blocks; does nothing outside a session or for a session without
        ``data_url`` (RUN-094).
        """
        if not isinstance(record, dict):
            raise InvalidMessage(f"data record must be a dict, not {type(record).__name__}")
        line = DataLine(record=record)
        line.to_line()  # raises PayloadTooLarge past the Go gateway's line limit
        outlets = current_outlets.get()
        if outlets is None:
            _dropped_outside_session("emit_data")
        elif outlets.data is not None:
            outlets.data.put(line.record)


_warned_outside: set[str] = set()


def _dropped_outside_session(what: str) -> None:
    """RUN-094 drops it; say so once per process, since it is easy to do by mistake."""
    if what in _warned_outside:
        return
    _warned_outside.add(what)
    log.warning(
        "%s called outside a session's hooks (from setup(), or a thread that did not "
        "inherit the hook's context): dropped. Call it from a hook, or run your thread's "
        "function with contextvars.copy_context().run(...) taken inside one.",
        what,
    )


def _class_attr(cls: type, name: str) -> object | None:
    """The raw class attribute ``name`` along ``cls``'s MRO (no descriptor binding)."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            value: object = klass.__dict__[name]
            return value
    return None
