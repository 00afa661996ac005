"""Model-based test of the live-runner registry (spec/live-runner.md).

Each rule applies one operation to the real :class:`LiveRunnerRegistry` and to a
plain model written from the spec (runners with a capacity, a last heartbeat
and their sessions), predicts which sessions the operation ends and why, and
checks the registry's answer against it. Invariants after every step: the
registry holds exactly the model's sessions, no runner holds more sessions than
its capacity allowed when they were reserved, no session outlives its runner,
and every session that ended was reported once, with a reason, its O2R
``released`` event queued before its runner's O2R channel closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.unit.test_registry_support import SECRET, beat, make_registry
from trio_trickle._registry.effects import (
    CloseO2R,
    Release,
    ReleaseReason,
    SendSessionEvent,
)
from trio_trickle._registry.errors import RunnerNotFound, Unavailable
from trio_trickle._registry.reservation import Reserved
from trio_trickle._registry.static import StaticRunnerEntry
from trio_trickle._wire.live_runner_payment import PaymentHeaders

TTL = 20.0
IDLE = 30.0
DYNAMIC = ("r0", "r1", "r2")
STATIC = "s0"


@dataclass
class ModelRunner:
    capacity: int
    last_beat: float
    secret: str = ""
    static: bool = False
    ready: bool = True
    failures: int = 0
    sessions: dict[str, float] = field(default_factory=dict)  # session ID -> last activity
    allowed: int = 0  # the most sessions it may hold: capacity, or more after a capacity cut

    def expired(self, now: float) -> bool:
        return not self.static and now - self.last_beat > TTL


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.registry = make_registry(session_idle_timeout=IDLE, heartbeat_ttl=TTL)
        self.model: dict[str, ModelRunner] = {}
        self.ended: dict[str, ReleaseReason] = {}
        entry = StaticRunnerEntry.from_wire(
            {
                "label": STATIC,
                "routing": "label",
                "runner_url": "http://s",
                "app": "a",
                "capacity": 2,
                "health_url": "/health",
            }
        )
        self.registry.register_static([entry], [True], self.now)
        self.model[STATIC] = ModelRunner(capacity=2, last_beat=0.0, static=True, allowed=2)

    # -- helpers -------------------------------------------------------------

    def check_releases(
        self, releases: tuple[Release, ...], expected: dict[str, ReleaseReason]
    ) -> None:
        """The operation ended exactly the ``expected`` sessions, for those reasons, once."""
        got = {r.session_id: r.reason for r in releases}
        assert len(got) == len(releases), "a session was released twice"
        assert got == expected
        for release in releases:
            assert isinstance(release.reason, ReleaseReason)
            assert release.session_id not in self.ended, "released again"
            self.ended[release.session_id] = release.reason
            events = [e for e in release.effects if isinstance(e, SendSessionEvent)]
            if release.route == STATIC:
                assert events == []
            else:
                (event,) = events
                assert (event.event, event.reason) == ("released", release.reason)

    def live(self, route: str) -> bool:
        runner = self.model.get(route)
        return runner is not None and not runner.expired(self.now)

    # -- rules ---------------------------------------------------------------

    @rule(route=st.sampled_from(DYNAMIC), capacity=st.integers(0, 3))
    def heartbeat(self, route: str, capacity: int) -> None:
        runner = self.model.get(route)
        if runner is not None and runner.expired(self.now):
            with pytest.raises(RunnerNotFound):
                self.registry.heartbeat(
                    beat(runner_id=route, capacity=capacity), runner.secret, self.now
                )
            return
        auth = SECRET if runner is None else runner.secret
        accepted = self.registry.heartbeat(beat(runner_id=route, capacity=capacity), auth, self.now)
        effective = capacity or 1
        if runner is None:
            assert accepted.response.heartbeat_secret is not None
            runner = ModelRunner(capacity=effective, last_beat=self.now)
            runner.secret = accepted.response.heartbeat_secret
            self.model[route] = runner
        runner.capacity, runner.last_beat = effective, self.now
        runner.allowed = max(effective, len(runner.sessions))
        assert set(accepted.response.session_ids) == set(runner.sessions)

    @rule(route=st.sampled_from((*DYNAMIC, STATIC)))
    def reserve(self, route: str) -> None:
        runner = self.model.get(route)
        if runner is None or runner.expired(self.now) or not runner.ready:
            with pytest.raises(RunnerNotFound):
                self.registry.reserve(route, PaymentHeaders(), self.now)
            return
        if len(runner.sessions) >= runner.capacity:
            with pytest.raises(Unavailable):
                self.registry.reserve(route, PaymentHeaders(), self.now)
            return
        reserved = self.registry.reserve(route, PaymentHeaders(), self.now)
        assert isinstance(reserved, Reserved)
        assert reserved.session_id not in runner.sessions
        runner.sessions[reserved.session_id] = self.now
        runner.allowed = max(runner.capacity, len(runner.sessions))

    @precondition(lambda self: any(r.sessions for r in self.model.values()))
    @rule(data=st.data(), by_runner=st.booleans())
    def stop(self, data: st.DataObject, by_runner: bool) -> None:
        route = data.draw(st.sampled_from(sorted(r for r, m in self.model.items() if m.sessions)))
        runner = self.model[route]
        sid = data.draw(st.sampled_from(sorted(runner.sessions)))
        if by_runner:
            if runner.expired(self.now) or not runner.ready:
                return  # callbacks answer 404 then; covered by unit tests
            target = self.registry.session_target(route, sid, "", self.now)
            release = self.registry.runner_stop(route, sid, target.headers.session_token, self.now)
            reason = ReleaseReason.RUNNER_STOP
        else:
            stopped = self.registry.stop(route, sid, self.now)
            assert stopped.release is not None
            release, reason = stopped.release, ReleaseReason.CLIENT_STOP
        del runner.sessions[sid]
        runner.allowed = max(runner.capacity, len(runner.sessions))
        self.check_releases((release,), {sid: reason})

    @precondition(lambda self: any(r.sessions for r in self.model.values()))
    @rule(data=st.data())
    def touch(self, data: st.DataObject) -> None:
        route = data.draw(st.sampled_from(sorted(r for r, m in self.model.items() if m.sessions)))
        sid = data.draw(st.sampled_from(sorted(self.model[route].sessions)))
        ticket = self.registry.request_opened(route, sid, self.now)
        assert ticket is not None
        self.registry.request_closed(ticket, self.now)
        self.model[route].sessions[sid] = self.now

    @rule(route=st.sampled_from(DYNAMIC))
    def unregister(self, route: str) -> None:
        runner = self.model.get(route)
        if runner is None or runner.expired(self.now):
            with pytest.raises(RunnerNotFound):
                self.registry.unregister(route, "" if runner is None else runner.secret, self.now)
            return
        removed = self.registry.unregister(route, runner.secret, self.now)
        expected = dict.fromkeys(runner.sessions, ReleaseReason.RUNNER_UNREGISTERED)
        self.check_releases(removed.releases, expected)
        self.check_o2r_order(removed.effects)
        del self.model[route]

    @rule(healthy=st.booleans())
    def health(self, healthy: bool) -> None:
        runner = self.model[STATIC]
        checked = self.registry.record_health(STATIC, healthy, self.now)
        expected: dict[str, ReleaseReason] = {}
        if healthy:
            runner.failures, runner.ready = 0, True
        else:
            runner.failures += 1
            if not runner.ready or runner.failures >= 2:
                runner.ready = False
                expected = dict.fromkeys(runner.sessions, ReleaseReason.RUNNER_UNHEALTHY)
                runner.sessions.clear()
        assert checked.status == ("ready" if runner.ready else "unavailable")
        self.check_releases(checked.releases, expected)

    @rule(dt=st.sampled_from([0.5, 2.0, 5.0, 12.0, 25.0]))
    def reap(self, dt: float) -> None:
        self.now += dt
        reaped = self.registry.reap(self.now)
        expected: dict[str, ReleaseReason] = {}
        gone = [route for route, m in self.model.items() if m.expired(self.now)]
        for route in gone:
            expected.update(
                dict.fromkeys(self.model.pop(route).sessions, ReleaseReason.RUNNER_EXPIRED)
            )
        assert sorted(r.route for r in reaped.removed) == sorted(gone)
        for runner in self.model.values():
            for sid, last in list(runner.sessions.items()):
                if self.now - last >= IDLE:
                    expected[sid] = ReleaseReason.IDLE_TIMEOUT
                    del runner.sessions[sid]
        self.check_releases(reaped.releases, expected)
        for removal in reaped.removed:
            self.check_o2r_order(removal.effects)

    def check_o2r_order(self, effects: tuple[object, ...]) -> None:
        """A removal queues every ``released`` event, then closes the O2R channel last."""
        assert isinstance(effects[-1], CloseO2R)
        assert all(isinstance(e, SendSessionEvent) for e in effects[:-1])

    # -- invariants ----------------------------------------------------------

    @invariant()
    def sessions_match_the_model(self) -> None:
        held = {view.route: set(view.session_ids) for view in self.registry.runners()}
        assert held == {route: set(m.sessions) for route, m in self.model.items()}

    @invariant()
    def capacity_is_never_exceeded(self) -> None:
        for view in self.registry.runners():
            assert len(view.session_ids) <= self.model[view.route].allowed

    @invariant()
    def no_session_outlives_its_runner_or_comes_back(self) -> None:
        # Time moves only in ``reap``, which removes expired runners at once: no
        # runner the registry still holds has expired, so neither have its sessions.
        live = {sid for view in self.registry.runners() for sid in view.session_ids}
        assert not live & set(self.ended)
        for view in self.registry.runners():
            assert not self.model[view.route].expired(self.now)


TestRegistryMachine = RegistryMachine.TestCase
TestRegistryMachine.settings = settings(
    settings.get_profile("ci"), stateful_step_count=40, max_examples=100
)
pytestmark = pytest.mark.spec(
    "LR-039", "LR-040", "LR-042", "LR-087", "LR-133", "LR-134", "LR-141", "LR-148"
)
