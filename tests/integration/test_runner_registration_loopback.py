"""The runner's side of registration, against a scripted loopback orchestrator.

A real HTTP server on 127.0.0.1:0 plays the orchestrator's heartbeat and
unregister endpoints through the real sans-io registry
(:class:`~trio_trickle._registry.registry.LiveRunnerRegistry`), records every
request (path, ``Authorization``, body, time) and can answer the next ones
from a script, so that the runner's reactions to 404, 401 and 503 can be
checked exactly. It serves no trickle channels: the O2R channel the registry
names answers 404. Every test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest
import trio

from trio_trickle import ProtocolError
from trio_trickle._registry.config import RegistryConfig
from trio_trickle._registry.ids import SystemRandom
from trio_trickle._registry.registry import LiveRunnerRegistry
from trio_trickle._registry.reservation import Reserved
from trio_trickle._runner.registration import RegistrationOptions, RunnerRegistration
from trio_trickle._runner.serve import _stop_released, open_runner
from trio_trickle._server.connections import http_config, serve_asgi
from trio_trickle._wire.json_codec import dump_json
from trio_trickle._wire.live_runner import HeartbeatRequest, HeartbeatResponse
from trio_trickle._wire.live_runner_payment import PaymentHeaders
from trio_trickle.examples import Passthrough

SECRET = "orch-secret"


@attrs.define
class Seen:
    path: str
    authorization: str
    body: Any
    at: float


class ScriptedOrchestrator:
    """ASGI: ``/runners/heartbeat`` and ``/runners/{id}/unregister`` through the registry."""

    def __init__(self, registry: LiveRunnerRegistry) -> None:
        self.registry = registry
        self.seen: list[Seen] = []
        #: Answers to the next heartbeats instead of the registry's: ``(status, text)``.
        self.script: list[tuple[int, str]] = []

    def heartbeats(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/runners/heartbeat"]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        now = trio.current_time()
        self.seen.append(Seen(scope["path"], auth, json.loads(body) if body else None, now))
        if self.script and scope["path"] == "/runners/heartbeat":
            status, payload = self.script.pop(0)
        else:
            status, payload = self._answer(scope, auth, body)
        data = payload.encode() if isinstance(payload, str) else payload
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})

    def _answer(self, scope: dict[str, Any], auth: str, body: bytes) -> tuple[int, bytes]:
        now = trio.current_time()
        path = scope["path"]
        try:
            if path == "/runners/heartbeat":
                request = HeartbeatRequest.from_wire(json.loads(body))
                accepted = self.registry.heartbeat(request, auth, now)
                return 200, dump_json(accepted.response.to_wire())
            unregister = re.fullmatch(r"/runners/([^/]+)/unregister", path)
            if unregister is not None:
                self.registry.unregister(unregister[1], auth, now)
                return 204, b""
        except ProtocolError as exc:
            return exc.status, str(exc).encode()
        return 404, b"404 page not found"


@asynccontextmanager
async def scripted(interval: float = 0.1) -> AsyncIterator[tuple[ScriptedOrchestrator, str]]:
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        lazy = _Lazy()
        bound: list[str] = await nursery.start(
            functools.partial(
                serve_asgi,
                lazy,
                http_config("127.0.0.1", 0, graceful_timeout=0.5),
                shutdown_trigger=stop.wait,
            )
        )
        url = bound[0]
        config = RegistryConfig(
            service_uri=url,
            orchestrator_secret=SECRET,
            heartbeat_interval=interval,
            heartbeat_ttl=30.0,
        )
        orch = ScriptedOrchestrator(LiveRunnerRegistry(config, random=SystemRandom()))
        lazy.target = orch
        try:
            yield orch, url
        finally:
            stop.set()


class _Lazy:
    """ASGI: the lifespan, then the orchestrator, which needs the bound URL to exist."""

    def __init__(self) -> None:
        self.target: ScriptedOrchestrator | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        assert self.target is not None
        await self.target(scope, receive, send)


async def until(check: Callable[[], bool], step: float = 0.01) -> None:
    while not check():
        await trio.sleep(step)


@asynccontextmanager
async def runner(
    url: str, secret: str = SECRET, **options: Any
) -> AsyncIterator[RunnerRegistration]:
    async with open_runner(
        Passthrough(),
        capacity=2,
        orchestrator_url=url,
        orchestrator_secret=secret,
        app_name="echo",
        runner_url="http://127.0.0.1:9/runner",
        registration_options=options or None,
    ) as handle:
        assert handle.registration is not None
        yield handle.registration


@pytest.mark.spec("LR-001", "LR-002", "LR-003", "LR-029", "LR-033", "LR-037")
async def test_secrets_body_interval_and_unregister() -> None:
    with trio.fail_after(15):
        async with scripted(interval=0.1) as (orch, url):
            async with runner(url) as reg:
                await reg.registered.wait()
                await until(lambda: len(orch.heartbeats()) >= 5)
                beats = orch.heartbeats()
                first, later = beats[0], beats[1:]
                assert first.authorization == SECRET  # raw, no Bearer (LR-003)
                assert first.body == {
                    "runner_url": "http://127.0.0.1:9/runner",
                    "status": first.body["status"],
                    "mode": "persistent",
                    "app": "echo",
                    "capacity": 2,
                }
                # Ready once setup returned; loading before (LR-043 lists only ready).
                assert first.body["status"] in ("loading", "ready")
                assert later[-1].body["status"] == "ready"
                secret = orch.registry.runners()[0]
                assert secret.runner_id == reg.runner_id
                assert all(b.authorization not in ("", SECRET) for b in later)
                assert len({b.authorization for b in later}) == 1
                assert all(b.body["runner_id"] == reg.runner_id for b in later)
                # The answer's interval (LR-029); the first gap may be the prompt
                # check after the (unserved) O2R channel answered 404 (LR-053).
                gaps = [b.at - a.at for a, b in itertools.pairwise(later)]
                assert min(gaps[1:]) >= 0.08
                heartbeat_secret = later[0].authorization
            last = orch.seen[-1]
            assert last.path == f"/runners/{reg.runner_id}/unregister"
            assert last.authorization == heartbeat_secret
            assert orch.registry.runners() == ()


def _forget_runner(orch: ScriptedOrchestrator, runner_id: str) -> None:
    """The orchestrator drops the runner (expired and reaped, or restarted)."""
    secret = orch.heartbeats()[-1].authorization
    orch.registry.unregister(runner_id, secret, trio.current_time())


@pytest.mark.spec("LR-032", "LR-031")
async def test_404_registers_again_at_once_with_the_orchestrator_secret() -> None:
    with trio.fail_after(15):
        async with scripted(interval=5.0) as (orch, url), runner(url) as reg:
            await reg.registered.wait()
            await until(lambda: len(orch.heartbeats()) >= 2)  # the secret is in use
            assert reg.runner_id is not None
            reg.note_reserved("session_a")
            _forget_runner(orch, reg.runner_id)
            orch.script.append((404, "runner not found"))
            count = len(orch.heartbeats())
            reg.check_now()
            await until(lambda: reg.registrations == 2)
            refused, again = orch.heartbeats()[count : count + 2]
            assert refused.body["session_ids"] == ["session_a"]
            assert again.authorization == SECRET
            assert again.body["runner_id"] == reg.runner_id
            assert again.at - refused.at < 1.0  # at once, not after the 5 s interval
            # The new registration holds no sessions: the old one is released.
            assert reg.sessions == ()
            assert list(reg.released) == [("session_a", None)]


@pytest.mark.spec("LR-007", "LR-032")
async def test_an_id_held_under_another_secret_is_given_up() -> None:
    with trio.fail_after(15):
        async with scripted(interval=5.0) as (orch, url), runner(url) as reg:
            await reg.registered.wait()
            old_id = reg.runner_id
            # A 404 the orchestrator does not stand by: registering again under the
            # same ID with the orchestrator secret is 401 (LR-007); a new ID is taken.
            count = len(orch.heartbeats())
            orch.script.append((404, "runner not found"))
            reg.check_now()
            await until(lambda: reg.registrations == 2)
            assert reg.runner_id != old_id
            assert {r.runner_id for r in orch.registry.runners()} == {old_id, reg.runner_id}
            _refused, same_id, new_id = orch.heartbeats()[count : count + 3]
            assert same_id.authorization == SECRET
            assert same_id.body["runner_id"] == old_id
            assert new_id.authorization == SECRET
            assert "runner_id" not in new_id.body


@pytest.mark.spec("LR-006", "LR-032")
async def test_a_refused_orchestrator_secret_is_retried_at_the_interval() -> None:
    with trio.fail_after(15):
        async with scripted() as (orch, url), runner(url, secret="wrong") as reg:
            await until(lambda: len(orch.heartbeats()) >= 1)
            await trio.sleep(0.3)
            assert len(orch.heartbeats()) == 1  # no hot loop: 5 s before any answer
            assert not reg.is_registered
            assert orch.registry.runners() == ()


@pytest.mark.spec("LR-032")
async def test_401_invalid_registration_authorization_registers_again() -> None:
    with trio.fail_after(15):
        async with scripted(interval=0.05) as (orch, url), runner(url) as reg:
            await reg.registered.wait()
            await until(lambda: len(orch.heartbeats()) >= 2)
            assert reg.runner_id is not None
            _forget_runner(orch, reg.runner_id)  # an orchestrator restart, say
            count = len(orch.heartbeats())
            orch.script.append((401, "invalid registration authorization"))
            await until(lambda: reg.registrations == 2)
            refused, again = orch.heartbeats()[count : count + 2]
            assert refused.authorization != SECRET
            assert again.authorization == SECRET
            assert again.body["runner_id"] == reg.runner_id


@pytest.mark.spec("LR-029")
async def test_other_failures_keep_the_registration() -> None:
    with trio.fail_after(15):
        async with scripted(interval=0.05) as (orch, url), runner(url) as reg:
            await reg.registered.wait()
            orch.script.extend([(503, "busy"), (400, "bad"), (200, "not json")])
            await until(lambda: not orch.script)
            count = len(orch.heartbeats())
            await until(lambda: len(orch.heartbeats()) > count + 1)
            assert reg.registrations == 1
            assert orch.heartbeats()[-1].authorization != SECRET


@pytest.mark.spec("LR-028", "LR-030")
async def test_session_ids_follow_the_orchestrators_list() -> None:
    with trio.fail_after(15):
        async with scripted(interval=0.05) as (orch, url), runner(url) as reg:
            await reg.registered.wait()
            assert reg.runner_id is not None
            now = trio.current_time()
            reserved = orch.registry.reserve(reg.runner_id, PaymentHeaders(), now)
            assert isinstance(reserved, Reserved)
            # The answer is authoritative: a session it lists is held (no O2R here).
            await until(lambda: reserved.session_id in reg.sessions)
            await until(
                lambda: (
                    reserved.session_id in (orch.heartbeats()[-1].body or {}).get("session_ids", ())
                )
            )
            orch.registry.stop(reg.runner_id, reserved.session_id, trio.current_time())
            await until(lambda: reserved.session_id not in reg.sessions)
            assert list(reg.released) == [(reserved.session_id, None)]


@pytest.mark.spec("LR-047", "LR-048", "LR-051", "LR-142", "LR-150")
async def test_o2r_messages_reserve_release_and_ignore_the_rest() -> None:
    options = RegistrationOptions(
        orchestrator_url="http://127.0.0.1:9/",
        secret=SECRET,
        app="echo",
        runner_url="http://127.0.0.1:9/",
    )
    assert options.orchestrator_url == "http://127.0.0.1:9"
    released: list[tuple[str, str | None]] = []
    with trio.fail_after(10):
        await _feed_o2r(options, released)
    assert sorted(released) == [("s1", "client_stop"), ("s2", None)]


async def _feed_o2r(options: RegistrationOptions, released: list[tuple[str, str | None]]) -> None:
    async with httpx.AsyncClient() as client:
        reg = RunnerRegistration(options, client, on_release=lambda s, r: released.append((s, r)))
        async with trio.open_nursery() as nursery:
            await nursery.start(reg.run)
            ts = "2026-08-18T12:00:05.123456789Z"
            for raw in (
                b'{"keep":"alive"}',
                b"not json",
                b"[1,2]",
                b'{"event":"paused","session":"s","timestamp":"' + ts.encode() + b'"}',
                b'{"event":"reserved","session":"s1","timestamp":"' + ts.encode() + b'"}',
                b'{"event":"reserved","session":"s2","timestamp":"' + ts.encode() + b'"}',
                b'{"event":"released","session":"s1","timestamp":"'
                + ts.encode()
                + b'","reason":"client_stop"}',
                b'{"event":"released","session":"s1","timestamp":"' + ts.encode() + b'"}',
                b'{"event":"released","session":"zz","timestamp":"' + ts.encode() + b'"}',
                b'{"event":"released","session":"s2","timestamp":"' + ts.encode() + b'"}',
            ):
                reg._handle_o2r(raw)
            await until(lambda: len(released) == 2)
            nursery.cancel_scope.cancel()
    assert reg.sessions == ()
    assert list(reg.released) == [("s1", "client_stop"), ("s2", None)]  # in the order learnt


@pytest.mark.parametrize(
    "change",
    [
        {"orchestrator_url": " "},
        {"secret": ""},
        {"app": " echo"},
        {"runner_url": "ftp://x"},
        {"capacity": -1},
        {"request_timeout": 0},
        {"unregister_timeout": float("inf")},
    ],
)
def test_registration_options_are_checked(change: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "orchestrator_url": "http://o",
        "secret": "s",
        "app": "echo",
        "runner_url": "http://r",
    }
    with pytest.raises((ValueError, ProtocolError)):
        RegistrationOptions(**{**fields, **change})


async def test_open_runner_needs_the_secret_with_the_url() -> None:
    with pytest.raises(ValueError, match="orchestrator_secret"):
        async with open_runner(Passthrough(), orchestrator_url="http://o"):
            pass


@pytest.mark.spec("LR-030", "LR-150")
async def test_an_answer_judges_only_the_sessions_its_heartbeat_reported() -> None:
    options = RegistrationOptions(
        orchestrator_url="http://127.0.0.1:9", secret=SECRET, app="echo", runner_url="http://r"
    )
    async with httpx.AsyncClient() as client:
        reg = RunnerRegistration(options, client)
        first = HeartbeatResponse(runner_id="runner_a", heartbeat_secret="hs", session_ids=())
        reg._accept(first, ())
        # "s1" was reported; "s2" was reserved (O2R) while the heartbeat was in flight.
        reg.note_reserved("s1")
        reg.note_reserved("s2")
        reg._accept(HeartbeatResponse(runner_id="runner_a", session_ids=()), ("s1",))
        assert reg.sessions == ("s2",)
        assert list(reg.released) == [("s1", None)]
        # "s2" released (O2R) while a heartbeat that still listed it was in flight:
        # the late answer does not bring it back.
        reg._handle_o2r(
            b'{"event":"released","session":"s2","timestamp":"2026-08-18T12:00:05Z",'
            b'"reason":"client_stop"}'
        )
        reg._accept(HeartbeatResponse(runner_id="runner_a", session_ids=("s2", "s3")), ("s2",))
        assert reg.sessions == ("s3",)  # an unknown listed session is adopted (LR-028)
        assert list(reg.released) == [("s1", None), ("s2", "client_stop")]
        # A session ID reserved again is held again.
        reg.note_reserved("s1")
        assert reg.sessions == ("s3", "s1")


class _FakeSession:
    def __init__(self, session_id: str) -> None:
        self.id = session_id


class _FakeManager:
    def __init__(self, *ids: str) -> None:
        self._ids = ids
        self.stopped: list[tuple[str | None, str | None]] = []

    def sessions(self) -> list[_FakeSession]:
        return [_FakeSession(i) for i in self._ids]

    async def stop(self, stream_id: str | None, reason: str | None) -> None:
        self.stopped.append((stream_id, reason))


@pytest.mark.spec("LR-048", "LR-142")
async def test_a_released_session_stops_the_stream_of_that_id_only() -> None:
    manager = _FakeManager("s1", "other")
    app: Any = type("App", (), {"manager": manager})()
    await _stop_released(app, "s1", "client_stop")
    await _stop_released(app, "s9", None)  # no stream by that ID: nothing to stop
    assert manager.stopped == [("s1", "session released: client_stop")]
    await _stop_released(type("App", (), {"manager": None})(), "s1", None)  # a Pipeline
