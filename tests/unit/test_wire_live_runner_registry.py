"""The registry uses the wire classes for what it used to build itself (LR-016, LR-142, LR-143)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.unit.test_registry_support import make_registry, register
from trio_trickle._registry import effects
from trio_trickle._registry.effects import PublishRelease, ReleaseReason, SendSessionEvent
from trio_trickle._registry.reservation import Reserved
from trio_trickle._wire import live_runner_channels
from trio_trickle._wire.live_runner_channels import (
    O2RSessionEvent,
    SessionReleasedEvent,
    parse_o2r_message,
)
from trio_trickle._wire.live_runner_payment import PaymentHeaders

NO_PAY = PaymentHeaders()
AT = datetime(2026, 8, 18, 12, 0, 5, tzinfo=UTC)


@pytest.mark.spec("LR-016")
def test_object_gpu_with_digit_id_is_not_renamed_by_index() -> None:
    registry = make_registry(host_gpu_names=("NVIDIA L40S",))
    register(registry, gpu={"id": "0"})
    listed = registry.discovery(0.0).entries[0].runners[0].gpu
    assert listed is not None
    assert listed.name is None
    assert listed.to_wire() == {"id": "0"}


@pytest.mark.spec("LR-016")
@pytest.mark.parametrize(("index", "name"), [(0, "NVIDIA L40S"), (5, None), (-1, None)])
def test_index_gpu_is_listed_in_object_form(index: int, name: str | None) -> None:
    registry = make_registry(host_gpu_names=("NVIDIA L40S",))
    register(registry, gpu=index)
    listed = registry.discovery(0.0).entries[0].runners[0].gpu
    assert listed is not None
    assert listed.index is None
    assert listed.to_wire() == {"id": str(index)} | ({} if name is None else {"name": name})


@pytest.mark.spec("LR-142", "LR-048")
def test_released_o2r_message_carries_the_reason() -> None:
    registry = make_registry()
    route, _secret = register(registry)
    reserved = registry.reserve(route, NO_PAY, 0.0)
    assert isinstance(reserved, Reserved)
    stopped = registry.stop(route, reserved.session_id, 1.0)
    assert stopped.release is not None
    sends = [e for e in stopped.release.effects if isinstance(e, SendSessionEvent)]
    assert len(sends) == 1
    message = sends[0].message(AT)
    assert message["reason"] == "client_stop"
    assert parse_o2r_message(message) == O2RSessionEvent(
        event="released", session=reserved.session_id, timestamp=AT, reason="client_stop"
    )


@pytest.mark.spec("LR-047", "LR-142")
def test_reserved_o2r_message_has_no_reason() -> None:
    send = SendSessionEvent(runner_id="r", channel_name="c", event="reserved", session_id="s")
    assert "reason" not in send.message(AT)


@pytest.mark.spec("LR-143")
def test_publish_release_is_the_wire_envelope() -> None:
    publish = PublishRelease(
        channel_name="s-events", session_id="s", reason=ReleaseReason.IDLE_TIMEOUT
    )
    message = publish.message(1786795205000)
    assert SessionReleasedEvent.from_wire(message) == SessionReleasedEvent(
        session_id="s", reason="idle_timeout", timestamp=1786795205000
    )


@pytest.mark.spec("LR-145", "LR-146")
def test_release_reason_header_lives_in_wire() -> None:
    assert effects.RELEASE_REASON_HEADER is live_runner_channels.RELEASE_REASON_HEADER
