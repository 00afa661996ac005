"""A runner that registers with a live-runner orchestrator (spec/live-runner.md, LR).

:class:`RunnerRegistration` is what ``open_runner(..., orchestrator_url=...)``
runs in its nursery: a heartbeat loop (``POST {orchestrator}/runners/heartbeat``,
LR-001) that registers with the orchestrator secret and then heartbeats with
the returned ``heartbeat_secret`` (LR-003) at the answer's interval (LR-029),
registers again on 404 or 401 ``invalid registration authorization`` (LR-032),
and reconciles its local sessions with the answer's authoritative
``session_ids`` (LR-030, LR-031); beside it, a reader of the O2R channel the
registration named, from sequence 0 (LR-045), that tracks ``reserved`` and
``released`` events (LR-047, LR-048, LR-142), ignores what it does not
understand (LR-051, LR-150), and asks for a heartbeat at once after 30 s of
silence, a 404 or the end of the channel (LR-053). On exit the runner
unregisters (LR-037), bounded by ``unregister_timeout``.

Every wait is bounded or owned: requests by ``request_timeout``, O2R reads by
``o2r_silence``, the unregister by ``unregister_timeout``; tasks live in the
nursery :meth:`RunnerRegistration.run` opens, which ``open_runner`` owns.
A session the orchestrator releases is reported to ``on_release`` and, for a
``LivePipeline`` runner, the stream of that ID (if any) is stopped. Each
heartbeat's ``status`` comes from the ``status`` callable (``open_runner``:
``ready`` once setup returned, else ``loading`` or ``error``), since the
orchestrator lists and reserves only ``""`` or ``ready`` (LR-043).
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import httpx
import trio

from .._client.http import HTTP_FAILURES
from .._client.subscriber import TrickleSubscriber
from .._errors import ChannelClosed, ProtocolError, TransportError
from .._wire.json_codec import dump_json
from .._wire.live_runner import HeartbeatRequest, HeartbeatResponse, RunnerChannel
from .._wire.live_runner_channels import O2RKeepalive, O2RSessionEvent, parse_o2r_message

__all__ = ["RegistrationOptions", "RunnerRegistration"]

log = logging.getLogger("trio_trickle.runner.registration")

#: Interval before the first answer names one (LR-029).
DEFAULT_INTERVAL = 5.0
#: Largest O2R segment read; the orchestrator's are a few dozen bytes (LR-049).
MAX_O2R_BYTES = 64 * 1024
#: Released session IDs remembered, so that a late answer does not bring one back.
MAX_REMEMBERED = 1024
#: The 401 body that means the orchestrator secret was refused (LR-006, LR-032).
INVALID_REGISTRATION = "invalid registration authorization"

#: What a heartbeat request raises when it fails (timed out, refused, reset).
_REQUEST_FAILURES: tuple[type[Exception], ...] = (trio.TooSlowError, *HTTP_FAILURES)

#: Called with ``(session_id, reason)`` for each session the runner learns is released;
#: ``reason`` is the orchestrator's (LR-142) or ``None`` when the runner inferred it.
ReleaseHook = Callable[[str, str | None], Awaitable[None] | None]


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{attribute.name} must be a positive number of seconds")
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be finite")


def _base_url(value: str) -> str:
    return value.rstrip("/") if isinstance(value, str) else value


def _text(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{attribute.name} must be a non-blank string")


@attrs.frozen(kw_only=True)
class RegistrationOptions:
    """Where to register and as what; ``runner_id`` None lets the orchestrator pick (LR-025)."""

    orchestrator_url: str = attrs.field(validator=_text, converter=_base_url)
    secret: str = attrs.field(validator=_text)
    app: str = attrs.field(validator=_text)
    runner_url: str = attrs.field(validator=_text)
    capacity: int = 1
    runner_id: str | None = None
    #: Bound of one heartbeat request (connect to answer).
    request_timeout: float = attrs.field(default=5.0, validator=_positive)
    #: Bound of the unregister made on exit (LR-037).
    unregister_timeout: float = attrs.field(default=2.0, validator=_positive)
    #: O2R silence after which the runner checks its registration (LR-053).
    o2r_silence: float = attrs.field(default=30.0, validator=_positive)
    #: Pause before reading the O2R channel again after a transport failure.
    retry_delay: float = attrs.field(default=1.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        # Fail at construction, not at the first heartbeat, on a body the wire refuses.
        HeartbeatRequest(runner_url=self.runner_url, app=self.app, capacity=self.capacity)


class _Body(httpx.AsyncByteStream):
    """A fixed request body as a plain iterator.

    httpx's own (``content=``) is an async generator, left suspended and then
    garbage-collected with a ResourceWarning when the orchestrator drops the
    connection mid-request; see ``_client.post.BodyPump``.
    """

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        body, self._body = self._body, None
        if not body:
            raise StopAsyncIteration
        return body


class RunnerRegistration:
    """One runner's registration with one orchestrator; :meth:`run` keeps it alive.

    Public state for callers and tests: ``runner_id``, ``o2r`` (the channel of
    the current registration), ``sessions`` (the reserved session IDs, in
    order), ``registrations`` (how many times the orchestrator secret was
    accepted), ``released`` (the last ``(session_id, reason)`` in the order learnt) and
    the ``registered`` event, set by the first accepted heartbeat.
    """

    def __init__(
        self,
        options: RegistrationOptions,
        client: httpx.AsyncClient,
        *,
        on_release: ReleaseHook | None = None,
        status: Callable[[], str] | None = None,
    ) -> None:
        self.options = options
        self.runner_id: str | None = options.runner_id
        self.o2r: RunnerChannel | None = None
        self.interval = DEFAULT_INTERVAL
        self.registrations = 0
        self.registered = trio.Event()
        self.released: deque[tuple[str, str | None]] = deque(maxlen=MAX_REMEMBERED)
        self._sessions: dict[str, None] = {}
        self._gone: dict[str, None] = {}  # released here, oldest first (MAX_REMEMBERED)
        self._client = client
        self._secret: str | None = None  # the heartbeat secret, once registered
        self._on_release = on_release
        self._status = status
        self._wake = trio.Event()
        self._o2r_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None

    @property
    def sessions(self) -> tuple[str, ...]:
        return tuple(self._sessions)

    @property
    def is_registered(self) -> bool:
        return self._secret is not None

    def check_now(self) -> None:
        """Send the next heartbeat at once (LR-053)."""
        self._wake.set()

    # -- the loop --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Heartbeat until cancelled; O2R readers and release hooks run in this nursery."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                while True:
                    delay = await self.heartbeat()
                    self._wake = trio.Event()
                    with trio.move_on_after(delay):
                        await self._wake.wait()
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()

    async def heartbeat(self) -> float:
        """One heartbeat and what follows from its answer; the seconds until the next."""
        options = self.options
        request = HeartbeatRequest(
            runner_url=options.runner_url,
            app=options.app,
            capacity=options.capacity,
            runner_id=self.runner_id,
            status=self._status() if self._status is not None else "",
            session_ids=self.sessions,
        )
        authorization = self._secret or options.secret
        url = f"{options.orchestrator_url}/runners/heartbeat"
        try:
            with trio.fail_after(options.request_timeout):
                response = await self._post(
                    url, authorization, options.request_timeout, dump_json(request.to_wire())
                )
        except _REQUEST_FAILURES as exc:
            log.warning("heartbeat to %s failed: %s", url, type(exc).__name__)
            return self.interval
        if response.status_code == 200:
            try:
                answer = HeartbeatResponse.from_wire(response.json())
            except (ValueError, ProtocolError) as exc:
                log.warning("heartbeat answer from %s unreadable: %s", url, exc)
                return self.interval
            self._accept(answer, request.session_ids)
            return self.interval
        text = response.text.strip()
        status = response.status_code
        if status == 404 or (status == 401 and text == INVALID_REGISTRATION):
            # LR-032: the orchestrator lost us (restart, expiry) or refused the secret;
            # register again at once if we were registered, else at the interval.
            retry_now = self._secret is not None
            self._forget(f"heartbeat answered {status} {text!r}")
            return 0.0 if retry_now else self.interval
        if status == 401 and self.runner_id is not None and self.options.runner_id is None:
            # The orchestrator holds our ID under a heartbeat secret we do not have
            # (LR-007): register at once under a new ID; without a runner_id this
            # branch cannot repeat.
            self.runner_id = None
            self._forget(f"heartbeat answered {status} {text!r}")
            return 0.0
        log.warning("heartbeat refused: %s %s", status, text[:200])
        return self.interval

    def _accept(self, answer: HeartbeatResponse, sent: tuple[str, ...]) -> None:
        """Take an answer to a heartbeat that reported ``sent`` as the local sessions.

        Only sessions held when the heartbeat left are judged by its answer
        (LR-030): one reserved while it was in flight is not in the answer yet,
        and one released while it was in flight is not taken back.
        """
        if answer.heartbeat_secret is not None:
            # A new registration: the orchestrator's record holds no sessions (LR-031).
            for session_id in self.sessions:
                self._release(session_id, None)
            self._secret = answer.heartbeat_secret
            self.registrations += 1
            log.info("registered with %s as %s", self.options.orchestrator_url, answer.runner_id)
            if answer.o2r is not None:
                self._subscribe(answer.o2r)
        self.runner_id = answer.runner_id
        self.interval = answer.heartbeat_interval
        for session_id in answer.released_sessions(sent):  # LR-030
            self._release(session_id, None)
        for session_id in answer.session_ids:  # the answer is authoritative (LR-028)
            if session_id not in self._gone:
                self._sessions.setdefault(session_id)
        self.registered.set()

    def _forget(self, why: str) -> None:
        log.warning("registration lost (%s): registering again", why)
        self._secret = None
        self._stop_o2r()

    async def _post(
        self, url: str, authorization: str, seconds: float, body: bytes
    ) -> httpx.Response:
        """POST ``body`` (JSON) with ``Authorization``; the response, read whole."""
        headers = {"Authorization": authorization, "Content-Type": "application/json"}
        request = self._client.build_request(
            "POST", url, content=body, headers=headers, timeout=seconds
        )
        request.stream = _Body(body)
        return await self._client.send(request)

    # -- sessions --------------------------------------------------------------------

    def note_reserved(self, session_id: str) -> None:
        """Hold ``session_id`` as reserved, as a ``reserved`` O2R event does (LR-047).

        The next heartbeat reports it; the answer releases it unless the
        orchestrator holds it too (LR-030).
        """
        self._gone.pop(session_id, None)
        self._sessions.setdefault(session_id)

    def _release(self, session_id: str, reason: str | None) -> None:
        if session_id not in self._sessions:
            # Repeated or unknown: a no-op (LR-150), except that the orchestrator's reason
            # (LR-142) fills in a release the heartbeat answer told first, without one (the
            # O2R reader may be a moment behind the heartbeat loop).
            if reason is not None and session_id in self._gone:
                self._name_reason(session_id, reason)
            return
        del self._sessions[session_id]
        self._gone[session_id] = None
        while len(self._gone) > MAX_REMEMBERED:
            del self._gone[next(iter(self._gone))]
        self.released.append((session_id, reason))
        log.info("session %s released (%s)", session_id, reason or "no reason given")
        if self._on_release is not None and self._nursery is not None:
            self._nursery.start_soon(self._call_hook, self._on_release, session_id, reason)

    def _name_reason(self, session_id: str, reason: str) -> None:
        for index in range(len(self.released) - 1, -1, -1):
            if self.released[index] == (session_id, None):
                self.released[index] = (session_id, reason)
                log.info("session %s was released for %s", session_id, reason)
                return

    @staticmethod
    async def _call_hook(hook: ReleaseHook, session_id: str, reason: str | None) -> None:
        try:
            result = hook(session_id, reason)
            if result is not None:
                await result
        except Exception:
            log.exception("release hook for session %s failed", session_id)

    # -- O2R -------------------------------------------------------------------------

    def _stop_o2r(self) -> None:
        if self._o2r_scope is not None:
            self._o2r_scope.cancel()
            self._o2r_scope = None
        self.o2r = None

    def _subscribe(self, channel: RunnerChannel) -> None:
        self._stop_o2r()
        self.o2r = channel
        if self._nursery is None:
            return
        scope = trio.CancelScope()
        self._o2r_scope = scope
        self._nursery.start_soon(self._read_o2r, channel, scope)

    async def _read_o2r(self, channel: RunnerChannel, scope: trio.CancelScope) -> None:
        seq = 0  # LR-045
        with scope:
            while True:
                try:
                    async with TrickleSubscriber(
                        channel.runner_url, start_seq=seq, client=self._client
                    ) as subscriber:
                        try:
                            await self._read_segments(subscriber)
                        finally:
                            seq = max(subscriber.next_seq, seq)
                    log.info("O2R channel %s ended", channel.channel_name)
                    self.check_now()  # end of stream (LR-053)
                    return
                except (ChannelClosed, ProtocolError) as exc:
                    log.info("O2R channel %s closed: %s", channel.channel_name, exc)
                    self.check_now()  # 404: the channel is gone (LR-053)
                    return
                except TransportError as exc:
                    log.warning("O2R channel %s: %s", channel.channel_name, exc)
                    self.check_now()
                    await trio.sleep(self.options.retry_delay)

    async def _read_segments(self, subscriber: TrickleSubscriber) -> None:
        while True:
            with trio.move_on_after(self.options.o2r_silence) as silence:
                segment = await subscriber.next_segment()
                if segment is None:
                    return
                data = await segment.read_all(MAX_O2R_BYTES)
            if silence.cancelled_caught:
                log.info("O2R silent for %ss: checking the registration", self.options.o2r_silence)
                self.check_now()
                continue
            self._handle_o2r(data)

    def _handle_o2r(self, data: bytes) -> None:
        try:
            message = parse_o2r_message(json.loads(data))
        except (ValueError, RecursionError, ProtocolError):
            log.debug("ignoring an O2R message: %r", data[:200])  # LR-051
            return
        if isinstance(message, O2RKeepalive):
            return
        assert isinstance(message, O2RSessionEvent)
        if message.event == "reserved":
            self.note_reserved(message.session)
        else:
            self._release(message.session, message.reason)

    # -- unregister ------------------------------------------------------------------

    async def unregister(self) -> bool:
        """``POST /runners/{id}/unregister`` (LR-033, LR-037); True when answered 204.

        Bounded by ``unregister_timeout`` and shielded, so that it runs when the
        runner is being cancelled too.
        """
        secret, runner_id = self._secret, self.runner_id
        self._stop_o2r()
        if secret is None or runner_id is None:
            return False
        self._secret = None
        url = f"{self.options.orchestrator_url}/runners/{runner_id}/unregister"
        timeout = self.options.unregister_timeout
        with trio.CancelScope(shield=True), trio.move_on_after(timeout):
            try:
                response = await self._post(url, secret, timeout, b"")
            except HTTP_FAILURES as exc:
                log.warning("unregister from %s failed: %s", url, type(exc).__name__)
                return False
            if response.status_code != 204:
                log.warning("unregister answered %s", response.status_code)
            return response.status_code == 204
        log.warning("unregister from %s timed out", url)
        return False
