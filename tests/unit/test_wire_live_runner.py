"""Live-runner wire messages against literal bodies from go-livepeer master."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from trio_trickle import InvalidMessage, ProtocolError
from trio_trickle._wire.go import (
    format_go_duration,
    parse_go_duration,
)
from trio_trickle._wire.live_runner import (
    HeartbeatRequest,
    HeartbeatResponse,
    RunnerChannel,
    RunnerGpu,
    RunnerPriceInfo,
)
from trio_trickle._wire.live_runner_channels import (
    RELEASE_REASON_HEADER,
    ChannelsDeleteRequest,
    ChannelsDeleteResponse,
    ChannelSpec,
    ChannelsRequest,
    ChannelsResponse,
    O2RKeepalive,
    O2RSessionEvent,
    ProxiedSessionHeaders,
    ProxyRequest,
    ProxyResponse,
    SessionReleasedEvent,
    parse_o2r_message,
)
from trio_trickle._wire.live_runner_discovery import (
    AdvertisedPrice,
    DiscoveryEntry,
    DiscoveryResponse,
)
from trio_trickle._wire.live_runner_payment import (
    JsonErrorBody,
    PaymentChallenge,
    PaymentHeaders,
    RefreshPaymentRequest,
    SessionReservation,
    parse_reservation_402,
)

ORCH = "https://orch.example.com:8935"

# -- heartbeat ---------------------------------------------------------------------

HEARTBEAT = {
    "runner_id": "optional-proposed-id",
    "label": "",
    "proxy": False,
    "runner_url": "http://runner:8080",
    "version": "1.4.0",
    "metadata": '{"model":"sd"}',
    "status": "ready",
    "mode": "persistent",
    "gpu": {"id": "0", "name": "NVIDIA L40S", "vram_mb": 46068},
    "app": "live-video-to-video/scope",
    "capacity": 2,
    "price_info": {"price": 3.5, "currency": "usd", "unit": "hour"},
    "session_ids": ["session_abcdefgh"],
}


@pytest.mark.spec("LR-002", "LR-016")
def test_heartbeat_literal() -> None:
    beat = HeartbeatRequest.from_wire(HEARTBEAT)
    assert beat.gpu == RunnerGpu(id="0", name="NVIDIA L40S", vram_mb=46068)
    assert beat.session_ids == ("session_abcdefgh",)
    expected = {k: v for k, v in HEARTBEAT.items() if k not in ("label", "proxy")}
    assert beat.to_wire() == expected


@pytest.mark.spec("LR-002")
def test_minimal_heartbeat() -> None:
    beat = HeartbeatRequest.from_wire({"runner_url": "https://r", "app": "a"})
    assert (beat.capacity, beat.mode, beat.runner_id, beat.price_info) == (
        0,
        "persistent",
        None,
        None,
    )


@pytest.mark.spec("LR-016")
@pytest.mark.parametrize("index", [0, 3, -1])
def test_gpu_device_index(index: int) -> None:
    gpu = HeartbeatRequest.from_wire({**HEARTBEAT, "gpu": index}).gpu
    assert gpu == RunnerGpu.from_index(index) == RunnerGpu(id=str(index), index=index)
    assert gpu.to_wire() == index
    assert gpu.named("NVIDIA L40S") == RunnerGpu(id=str(index), name="NVIDIA L40S")
    assert gpu.named(None).to_wire() == {"id": str(index)}


@pytest.mark.spec("LR-016")
def test_gpu_object_with_digit_id_is_not_an_index() -> None:
    gpu = RunnerGpu.from_wire({"id": "0"})
    assert gpu.index is None
    assert gpu.to_wire() == {"id": "0"}


@pytest.mark.spec("LR-016")
@pytest.mark.parametrize(
    "kwargs",
    [
        {"id": "1", "index": 0},
        {"id": "0", "name": "x", "index": 0},
        {"id": "0", "vram_mb": 1, "index": 0},
        {"id": "True", "index": True},
        {"id": str(2**63), "index": 2**63},
    ],
)
def test_gpu_index_must_match_id(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage):
        RunnerGpu(**kwargs)


@pytest.mark.spec("LR-016")
def test_gpu_index_beyond_int64_is_refused() -> None:
    with pytest.raises(InvalidMessage):
        RunnerGpu.from_wire(2**63)


@pytest.mark.spec("LR-016")
def test_gpu_empty_fields_read_as_absent() -> None:
    assert RunnerGpu.from_wire({"id": "", "vram_mb": 0}) == RunnerGpu()


@pytest.mark.spec("LR-012")
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("", "persistent"),
        ("persistent", "persistent"),
        ("single_shot", "single-shot"),
        ("single-shot", "single-shot"),
    ],
)
def test_mode_aliases(mode: str, expected: str) -> None:
    assert HeartbeatRequest.from_wire({**HEARTBEAT, "mode": mode}).mode == expected


BAD_HEARTBEATS = [
    pytest.param({"mode": "batch"}, marks=pytest.mark.spec("LR-013"), id="mode"),
    pytest.param({"mode": "Persistent"}, marks=pytest.mark.spec("LR-013"), id="mode-case"),
    pytest.param({"capacity": -1}, marks=pytest.mark.spec("LR-014"), id="capacity"),
    pytest.param({"runner_url": "runner:8080"}, marks=pytest.mark.spec("LR-008"), id="url"),
    pytest.param({"runner_url": "ftp://runner"}, marks=pytest.mark.spec("LR-008"), id="scheme"),
    pytest.param({"runner_url": "http://"}, marks=pytest.mark.spec("LR-008"), id="no-host"),
    pytest.param({"app": ""}, marks=pytest.mark.spec("LR-009"), id="app-empty"),
    pytest.param({"app": " scope"}, marks=pytest.mark.spec("LR-009"), id="app-untrimmed"),
    pytest.param({"metadata": "x" * 1025}, marks=pytest.mark.spec("LR-010"), id="meta-long"),
    pytest.param({"metadata": "\u00e9" * 513}, marks=pytest.mark.spec("LR-010"), id="meta-bytes"),
    pytest.param({"metadata": "a\ufffd"}, marks=pytest.mark.spec("LR-010"), id="meta-fffd"),
    pytest.param({"status": "Ready"}, marks=pytest.mark.spec("LR-011"), id="status-case"),
    pytest.param({"status": " ready"}, marks=pytest.mark.spec("LR-011"), id="status-space"),
    pytest.param({"gpu": "0"}, marks=pytest.mark.spec("LR-016"), id="gpu-string"),
    pytest.param({"price_info": "3.5"}, marks=pytest.mark.spec("LR-002"), id="price-type"),
]


@pytest.mark.parametrize("change", BAD_HEARTBEATS)
def test_heartbeat_refuses(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage) as info:
        HeartbeatRequest.from_wire({**HEARTBEAT, **change})
    assert info.value.status == 400


@pytest.mark.spec("LR-010")
def test_metadata_limit_is_in_bytes() -> None:
    assert HeartbeatRequest.from_wire({**HEARTBEAT, "metadata": "\u00e9" * 512}).metadata


@pytest.mark.spec("LR-018", "LR-019")
@pytest.mark.parametrize(
    ("price_info", "expected"),
    [
        (
            {"price": "3.5", "currency": " USD ", "unit": "Hour"},
            RunnerPriceInfo(price=Decimal("3.5")),
        ),
        ({"price": 3.5}, RunnerPriceInfo(price=Decimal("3.5"))),
        ({"price": 2, "unit": "720p"}, RunnerPriceInfo(price=Decimal(2), unit="720p")),
        ({"price": "1e-3", "unit": "fixed"}, RunnerPriceInfo(price=Decimal("0.001"), unit="fixed")),
    ],
)
def test_price_info_normalisation(price_info: dict[str, Any], expected: RunnerPriceInfo) -> None:
    beat = HeartbeatRequest.from_wire({**HEARTBEAT, "price_info": price_info})
    assert beat.parsed_price_info() == expected


@pytest.mark.spec("LR-017", "LR-018")
@pytest.mark.parametrize(
    "price_info",
    [
        {},
        {"price": ""},
        {"price": 0},
        {"price": -1},
        {"price": "1/3"},
        {"price": " 3"},
        {"price": True},
        {"price": 3, "currency": "eur"},
        {"price": 3, "unit": "minute"},
    ],
)
def test_onchain_price_info_refused(price_info: dict[str, Any]) -> None:
    beat = HeartbeatRequest.from_wire({**HEARTBEAT, "price_info": price_info})
    with pytest.raises(InvalidMessage) as info:
        beat.parsed_price_info()
    assert info.value.status == 400


@pytest.mark.spec("LR-017", "LR-020")
def test_old_sdk_price_payload_passes_offchain_and_fails_onchain() -> None:
    old = {"price_per_unit": 10, "pixels_per_unit": 1, "unit": "USD"}
    beat = HeartbeatRequest.from_wire({**HEARTBEAT, "price_info": old})
    assert beat.price_info == old
    with pytest.raises(InvalidMessage, match="price"):
        beat.parsed_price_info()
    with pytest.raises(InvalidMessage):
        HeartbeatRequest.from_wire(
            {k: v for k, v in HEARTBEAT.items() if k != "price_info"}
        ).parsed_price_info()


@pytest.mark.spec("LR-018")
def test_price_to_wire_keeps_exact_decimals() -> None:
    assert RunnerPriceInfo(price=Decimal("3.5")).to_wire()["price"] == 3.5
    assert RunnerPriceInfo(price=Decimal(12)).to_wire()["price"] == 12
    tiny = RunnerPriceInfo(price=Decimal("0.10000000000000000001"))
    assert tiny.to_wire()["price"] == "0.10000000000000000001"
    assert RunnerPriceInfo.from_wire(tiny.to_wire()) == tiny


FIRST_RESPONSE = {
    "runner_id": "runner_abcdefgh",
    "orchestrator": ORCH,
    "heartbeat_interval": "5s",
    "heartbeat_ttl": "20s",
    "heartbeat_secret": "mfrggzdfmztwq2lk",
    "o2r": {
        "name": "o2r",
        "channel_name": "runner_abcdefgh-0123456789abcdef-o2r",
        "url": f"{ORCH}/ai/trickle/runner_abcdefgh-0123456789abcdef-o2r",
        "mime_type": "application/json",
    },
    "session_ids": [],
}


@pytest.mark.spec("LR-022", "LR-023")
def test_first_heartbeat_response_literal() -> None:
    response = HeartbeatResponse.from_wire(FIRST_RESPONSE)
    assert (response.heartbeat_interval, response.heartbeat_ttl) == (5.0, 20.0)
    assert response.is_new_registration
    assert response.o2r is not None
    assert response.o2r.mime_type == "application/json"
    assert response.to_wire() == FIRST_RESPONSE


@pytest.mark.spec("LR-024", "LR-030")
def test_later_heartbeat_response_and_released_sessions() -> None:
    later = {
        "runner_id": "runner_abcdefgh",
        "orchestrator": ORCH,
        "heartbeat_interval": "5s",
        "heartbeat_ttl": "20s",
        "session_ids": ["a", "b"],
    }
    response = HeartbeatResponse.from_wire(later)
    assert not response.is_new_registration
    assert response.o2r is None
    assert response.released_sessions(["a", "c", "b", "d"]) == ("c", "d")
    assert response.to_wire() == later


@pytest.mark.spec("LR-022")
def test_null_session_list_reads_empty() -> None:
    body = {**FIRST_RESPONSE, "session_ids": None}
    assert HeartbeatResponse.from_wire(body).session_ids == ()


@pytest.mark.spec("LR-022")
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("20s", 20.0),
        ("1m30s", 90.0),
        ("1h0m0s", 3600.0),
        ("500ms", 0.5),
        ("1.5\u00b5s", 1.5e-6),
        ("1.5us", 1.5e-6),
        ("1.5\u03bcs", 1.5e-6),
        ("2h45m", 9900.0),
        ("0", 0.0),
        ("-1.5s", -1.5),
    ],
)
def test_go_duration_parsing(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == seconds


@pytest.mark.spec("LR-022")
@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (60, "1m0s"),
        (90.5, "1m30.5s"),
        (3600, "1h0m0s"),
        (0.5, "500ms"),
        (1.5e-6, "1.5\u00b5s"),
        (1e-9, "1ns"),
        (0, "0s"),
    ],
)
def test_go_duration_formatting(seconds: float, text: str) -> None:
    assert format_go_duration(seconds) == text


@pytest.mark.spec("LR-022")
@pytest.mark.parametrize("text", ["", "5", "s", ".s", "5x", "1.2.3s", "--5s", "5 s"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(InvalidMessage):
        parse_go_duration(text)


@pytest.mark.spec("LR-022")
@pytest.mark.parametrize("interval", ["0s", "-5s"])
def test_heartbeat_interval_must_be_positive(interval: str) -> None:
    with pytest.raises(InvalidMessage):
        HeartbeatResponse.from_wire({**FIRST_RESPONSE, "heartbeat_interval": interval})


# -- discovery ---------------------------------------------------------------------

RUNNER = {
    "url": f"{ORCH}/apps/runner_abcdefgh/session",
    "gpu": {"id": "0", "name": "NVIDIA L40S", "vram_mb": 46068},
    "app": "live-video-to-video/scope",
    "version": "1.4.0",
    "metadata": "{}",
    "mode": "persistent",
    "capacity": 2,
    "capacity_used": 1,
    "capacity_available": 1,
    "price_info": {"price": 12345, "currency": "wei", "unit": "seconds"},
}


@pytest.mark.spec("LR-054", "LR-056", "LR-060")
def test_discovery_literal() -> None:
    body = [{"address": ORCH, "runners": [RUNNER]}]
    response = DiscoveryResponse.from_wire(body)
    (entry,) = response.entries
    assert entry.priced_runners() == entry.runners
    assert entry.runners[0].price_info == AdvertisedPrice(price=12345)
    assert response.to_wire() == body


@pytest.mark.spec("LR-054", "LR-061")
def test_offchain_discovery_without_prices_or_runners() -> None:
    unpriced = {k: v for k, v in RUNNER.items() if k != "price_info"}
    entry = DiscoveryEntry.from_wire({"address": ORCH, "runners": [unpriced]})
    assert entry.runners[0].price_info is None
    assert entry.priced_runners() == ()
    assert DiscoveryEntry(address=ORCH).to_wire() == {"address": ORCH}


@pytest.mark.spec("LR-059")
def test_negative_available_capacity_is_kept() -> None:
    runner = {**RUNNER, "capacity": 1, "capacity_used": 2, "capacity_available": -1}
    assert (
        DiscoveryEntry.from_wire({"address": ORCH, "runners": [runner]})
        .runners[0]
        .capacity_available
        == -1
    )


@pytest.mark.spec("LR-064")
def test_signer_discovery_entry_literal() -> None:
    body = {
        "address": "https://ai.example.net:8936",
        "score": 1,
        "capabilities": ["live-video-to-video/noop", "livepeer-example/flux-klein"],
        "runners": [RUNNER],
    }
    entry = DiscoveryEntry.from_wire(body)
    assert entry.score == 1.0
    assert entry.capabilities == ("live-video-to-video/noop", "livepeer-example/flux-klein")
    assert entry.to_wire() == body


@pytest.mark.spec("LR-063")
def test_discovery_reader_skips_malformed_runners() -> None:
    broken = {k: v for k, v in RUNNER.items() if k != "url"}
    bad_metadata = {**RUNNER, "metadata": "x" * 2000}
    body = {"address": ORCH, "runners": [broken, RUNNER, bad_metadata]}
    with pytest.raises(InvalidMessage):
        DiscoveryEntry.from_wire(body)
    entry = DiscoveryEntry.from_wire(body, skip_invalid_runners=True)
    assert len(entry.runners) == 1
    assert entry.runners[0].url == RUNNER["url"]


@pytest.mark.spec("LR-063")
@pytest.mark.parametrize(
    "price",
    [
        {"price": 0, "currency": "wei", "unit": "seconds"},
        {"price": 5, "currency": "usd", "unit": "seconds"},
        {"price": 5, "currency": "wei", "unit": "hour"},
    ],
)
def test_unusable_offers_are_not_priced_runners(price: dict[str, Any]) -> None:
    entry = DiscoveryEntry.from_wire(
        {"address": ORCH, "runners": [{**RUNNER, "price_info": price}]}
    )
    assert entry.priced_runners() == ()


@pytest.mark.spec("LR-060")
@pytest.mark.parametrize("price", [1.5, "1.5", -1])
def test_advertised_price_must_be_whole_wei(price: Any) -> None:
    with pytest.raises(InvalidMessage):
        AdvertisedPrice.from_wire({"price": price, "currency": "wei", "unit": "seconds"})


# -- reservation and payment ----------------------------------------------------------

PAYER = "0x" + "12" * 20
CHALLENGE = {
    "payment_params": "CgR0ZXN0EgIIAQ==",
    "orchestrator": ORCH,
    "manifest_id": "1a2b3c4d",
    "payment_url": f"{ORCH}/apps/runner_abcdefgh/session/1a2b3c4d/payment",
}


@pytest.mark.spec("LR-073", "LR-074")
def test_challenge_request_headers() -> None:
    headers = PaymentHeaders.from_wire({"Livepeer-Payer-Address": PAYER, "Livepeer-Payment": ""})
    assert headers.wants_challenge
    assert headers.payer_address == PAYER
    assert (
        PaymentHeaders.from_wire({"livepeer-payer-address": PAYER[2:]}).payer_address == PAYER[2:]
    )


@pytest.mark.spec("LR-074")
@pytest.mark.parametrize("payer", ["nope", PAYER + "00", "0x" + "zz" * 20])
def test_bad_payer_address_is_a_402(payer: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        PaymentHeaders.from_wire({"Livepeer-Payer-Address": payer})
    assert info.value.status == 402
    assert str(info.value) == "invalid live runner payment signer address"


@pytest.mark.spec("LR-074")
def test_missing_payer_address_on_challenge_request() -> None:
    assert PaymentHeaders.from_wire({}).payer_address is None


@pytest.mark.spec("LR-080")
def test_paid_retry_headers_ignore_a_bad_payer() -> None:
    headers = PaymentHeaders.from_wire(
        {"Livepeer-Payer-Address": "nope", "Livepeer-Payment": "CgA=", "Livepeer-Segment": "EgA="}
    )
    assert not headers.wants_challenge
    assert headers.payer_address is None
    assert headers.to_wire() == {"Livepeer-Payment": "CgA=", "Livepeer-Segment": "EgA="}


@pytest.mark.spec("LR-074")
def test_payer_error_body_literal() -> None:
    body = {"error": {"message": "invalid live runner payment signer address"}}
    parsed = parse_reservation_402(body)
    assert parsed == JsonErrorBody(message="invalid live runner payment signer address")
    assert parsed.to_wire() == body


@pytest.mark.spec("LR-075")
def test_challenge_literal() -> None:
    challenge = parse_reservation_402(CHALLENGE)
    assert isinstance(challenge, PaymentChallenge)
    assert challenge.payment_params_bytes() == b"\n\x04test\x12\x02\x08\x01"
    assert challenge.to_wire() == CHALLENGE


@pytest.mark.spec("LR-077", "LR-078")
def test_challenge_extensions() -> None:
    body = {**CHALLENGE, "payment_interval_ms": 3000, "future_key": {"x": 1}}
    challenge = PaymentChallenge.from_wire(body)
    assert challenge.payment_interval_ms == 3000
    assert challenge.to_wire() == {**CHALLENGE, "payment_interval_ms": 3000}


@pytest.mark.spec("LR-075")
@pytest.mark.parametrize(
    "change", [{"payment_params": "not base64!"}, {"payment_params": ""}, {"manifest_id": ""}]
)
def test_challenge_refuses(change: dict[str, str]) -> None:
    with pytest.raises(ProtocolError):
        PaymentChallenge.from_wire({**CHALLENGE, **change})


@pytest.mark.spec("LR-089", "LR-128")
def test_reservation_literal() -> None:
    body = {
        "session_id": "1a2b3c4d",
        "app_url": f"{ORCH}/apps/runner_abcdefgh/session/1a2b3c4d/app",
        "control_url": f"{ORCH}/apps/runner_abcdefgh/session/1a2b3c4d",
    }
    reservation = SessionReservation.from_wire(body)
    assert reservation.stop_url == f"{ORCH}/apps/runner_abcdefgh/session/1a2b3c4d/stop"
    assert reservation.to_wire() == body


@pytest.mark.spec("LR-103")
def test_refresh_payment_literal() -> None:
    body = {"sender": PAYER, "manifest_id": "1a2b3c4d"}
    assert RefreshPaymentRequest.from_wire(body).to_wire() == body


@pytest.mark.spec("LR-105")
@pytest.mark.parametrize("prefix", ["0x", "0X", ""])
def test_refresh_payment_sender_is_a_go_hex_address(prefix: str) -> None:
    body = {"sender": prefix + PAYER[2:], "manifest_id": "1a2b3c4d"}
    assert RefreshPaymentRequest.from_wire(body).to_wire() == body


@pytest.mark.spec("LR-105")
@pytest.mark.parametrize(
    "sender",
    ["", "0x", PAYER[2:-1], PAYER + "0", PAYER[2:] + "0", "0x" + "g" * 40, "x" + PAYER[2:]],
)
def test_refresh_payment_bad_sender(sender: str) -> None:
    with pytest.raises(InvalidMessage):
        RefreshPaymentRequest.from_wire({"sender": sender, "manifest_id": "1a2b3c4d"})


# -- proxy -----------------------------------------------------------------------------

PROXY_HEADERS = {
    "Livepeer-Runner-Route": "runner_abcdefgh",
    "Livepeer-Session-Id": "1a2b3c4d",
    "Livepeer-Session-Token": "mfrggzdfmztwq2lkmfrggzdfmztwq2lk",
    "Livepeer-Session-Control": "http://orch-internal:8935/runner/runner_abcdefgh/session/1a2b3c4d",
}


@pytest.mark.spec("LR-108")
def test_proxied_headers_literal() -> None:
    headers = ProxiedSessionHeaders.from_wire({k.lower(): v for k, v in PROXY_HEADERS.items()})
    assert headers.session_id == "1a2b3c4d"
    assert headers.to_wire() == PROXY_HEADERS


@pytest.mark.spec("LR-108")
def test_proxied_headers_need_all_four() -> None:
    with pytest.raises(InvalidMessage):
        ProxiedSessionHeaders.from_wire(
            {k: v for k, v in PROXY_HEADERS.items() if k != "Livepeer-Session-Token"}
        )


@pytest.mark.spec("LR-125")
@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({}, None),
        ({"target_url": ""}, None),
        ({"target_url": "  "}, None),
        ({"target_url": "http://runner-host:9000/ui"}, "http://runner-host:9000/ui"),
    ],
)
def test_proxy_request(body: dict[str, str], target: str | None) -> None:
    assert ProxyRequest.from_wire(body).target_url == target


@pytest.mark.spec("LR-126")
@pytest.mark.parametrize(
    "target", ["ftp://runner-host/x", "/ui", "http://runner-host/ui#top", "http://"]
)
def test_proxy_request_refuses_bad_targets(target: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        ProxyRequest.from_wire({"target_url": target})
    assert info.value.status == 400


@pytest.mark.spec("LR-125")
def test_proxy_response_literal() -> None:
    body = {
        "proxy_id": "abcdefghijklmnopqrstuvwxyz",
        "url": f"{ORCH}/run/abcdefghijklmnopqrstuvwxyz",
    }
    assert ProxyResponse.from_wire(body).to_wire() == body


# -- session channels -----------------------------------------------------------------


@pytest.mark.spec("LR-114", "LR-115", "LR-117")
def test_channels_request_literal() -> None:
    body = {"channels": [{"name": "in", "mime_type": "video/mp2t"}, {"name": " out/video "}]}
    request = ChannelsRequest.from_wire(body)
    first, second = request.channels
    assert (first.normalized_name, first.effective_mime_type) == ("in", "video/mp2t")
    assert (second.normalized_name, second.effective_mime_type) == (
        "out-video",
        "application/octet-stream",
    )
    assert second.channel_name("session_x") == "session_x-out-video"
    assert request.to_wire() == body


@pytest.mark.spec("LR-117")
def test_blank_mime_type_reads_absent() -> None:
    assert ChannelSpec.from_wire({"name": "x", "mime_type": "  "}).mime_type is None


@pytest.mark.spec("LR-114")
@pytest.mark.parametrize("count", [0, 26])
def test_channels_request_size_limits(count: int) -> None:
    with pytest.raises(InvalidMessage) as info:
        ChannelsRequest.from_wire({"channels": [{"name": f"c{i}"} for i in range(count)]})
    assert info.value.status == 400


@pytest.mark.spec("LR-114")
def test_channels_request_needs_the_key() -> None:
    with pytest.raises(InvalidMessage):
        ChannelsRequest.from_wire({})


@pytest.mark.spec("LR-115")
@pytest.mark.parametrize("name", ["", "  ", "a b", "a.b", "caf\u00e9", "a\\b"])
def test_channel_names_refused(name: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        ChannelSpec.from_wire({"name": name})
    assert info.value.status == 400


CHANNEL = {
    "name": "in",
    "channel_name": "1a2b3c4d-in",
    "url": f"{ORCH}/ai/trickle/1a2b3c4d-in",
    "internal_url": "http://orch-internal:8935/ai/trickle/1a2b3c4d-in",
    "mime_type": "video/mp2t",
}


@pytest.mark.spec("LR-119", "LR-120")
def test_channels_response_literal() -> None:
    response = ChannelsResponse.from_wire({"channels": [CHANNEL]})
    assert response.channels[0].runner_url == CHANNEL["internal_url"]
    assert response.to_wire() == {"channels": [CHANNEL]}


@pytest.mark.spec("LR-119", "LR-120")
def test_channel_without_internal_url() -> None:
    public = {k: v for k, v in CHANNEL.items() if k != "internal_url"}
    channel = RunnerChannel.from_wire({**public, "internal_url": ""})
    assert channel.internal_url is None
    assert channel.runner_url == CHANNEL["url"]
    assert channel.to_wire() == public


@pytest.mark.spec("LR-121", "LR-122")
def test_channels_delete_literals() -> None:
    body = {"channels": ["in", "out/video"]}
    assert ChannelsDeleteRequest.from_wire(body).to_wire() == body
    assert ChannelsDeleteResponse.from_wire({"deleted": ["in", "out/video"]}).deleted == (
        "in",
        "out/video",
    )
    with pytest.raises(InvalidMessage):
        ChannelsDeleteRequest.from_wire({"channels": []})
    with pytest.raises(InvalidMessage):
        ChannelsDeleteRequest.from_wire({"channels": ["bad name"]})


# -- O2R -------------------------------------------------------------------------------


@pytest.mark.spec("LR-046")
def test_o2r_keepalive_literal() -> None:
    assert parse_o2r_message({"keep": "alive"}) == O2RKeepalive()
    assert O2RKeepalive().to_wire() == {"keep": "alive"}


@pytest.mark.spec("LR-047", "LR-052")
def test_o2r_reserved_event_with_go_nanoseconds() -> None:
    event = parse_o2r_message(
        {"event": "reserved", "session": "1a2b3c4d", "timestamp": "2026-08-18T12:00:00.123456789Z"}
    )
    assert event == O2RSessionEvent(
        event="reserved",
        session="1a2b3c4d",
        timestamp=datetime(2026, 8, 18, 12, 0, 0, 123456, tzinfo=UTC),
    )
    assert event.to_wire()["timestamp"] == "2026-08-18T12:00:00.123456Z"


@pytest.mark.spec("LR-048")
def test_o2r_released_event_literal() -> None:
    body = {"event": "released", "session": "session_abcdefgh", "timestamp": "2026-08-18T12:00:05Z"}
    assert parse_o2r_message(body).to_wire() == body


@pytest.mark.spec("LR-142")
def test_o2r_released_event_with_reason() -> None:
    body = {
        "event": "released",
        "session": "session_abcdefgh",
        "timestamp": "2026-08-18T12:00:05Z",
        "reason": "client_stop",
    }
    event = parse_o2r_message(body)
    assert isinstance(event, O2RSessionEvent)
    assert event.reason == "client_stop"
    assert event.to_wire() == body
    without = {k: v for k, v in body.items() if k != "reason"}
    assert O2RSessionEvent.from_wire(without).reason is None
    assert O2RSessionEvent.from_wire({**body, "reason": ""}).reason is None


@pytest.mark.spec("LR-142")
def test_o2r_reason_must_be_a_string() -> None:
    body = {"event": "released", "session": "s", "timestamp": "2026-08-18T12:00:05Z"}
    with pytest.raises(InvalidMessage):
        O2RSessionEvent.from_wire({**body, "reason": 3})
    with pytest.raises(InvalidMessage):
        O2RSessionEvent(event="released", session="s", timestamp=datetime.now(UTC), reason="")


@pytest.mark.spec("LR-143")
def test_session_released_envelope_literal() -> None:
    body = {
        "queue_event_type": "ai_stream_events",
        "event": {
            "type": "session_released",
            "timestamp": 1786795205000,
            "session_id": "1a2b3c4d",
            "reason": "runner_expired",
        },
    }
    event = SessionReleasedEvent.from_wire(body)
    assert event == SessionReleasedEvent(
        session_id="1a2b3c4d", reason="runner_expired", timestamp=1786795205000
    )
    assert event.to_wire() == body


@pytest.mark.spec("LR-143")
@pytest.mark.parametrize(
    "change",
    [
        {"queue_event_type": "ai_stream_status"},
        {"event": {"type": "status", "timestamp": 1, "session_id": "s", "reason": "r"}},
        {"event": {"type": "session_released", "timestamp": -1, "session_id": "s", "reason": "r"}},
        {"event": {"type": "session_released", "timestamp": 1.5, "session_id": "s", "reason": "r"}},
        {"event": {"type": "session_released", "timestamp": 1, "session_id": "", "reason": "r"}},
        {"event": {"type": "session_released", "timestamp": 1, "session_id": "s"}},
        {"event": "session_released"},
    ],
)
def test_session_released_envelope_refused(change: dict[str, Any]) -> None:
    body = SessionReleasedEvent(session_id="s", reason="client_stop", timestamp=1).to_wire()
    with pytest.raises(InvalidMessage):
        SessionReleasedEvent.from_wire({**body, **change})


@pytest.mark.spec("LR-145", "LR-146")
def test_release_reason_header_name() -> None:
    assert RELEASE_REASON_HEADER == "Livepeer-Session-Release-Reason"


@pytest.mark.spec("LR-048")
def test_o2r_offsets_are_converted_to_utc() -> None:
    event = O2RSessionEvent.from_wire(
        {"event": "released", "session": "s", "timestamp": "2026-08-18T14:00:05+02:00"}
    )
    assert event.timestamp == datetime(2026, 8, 18, 12, 0, 5, tzinfo=UTC)
    local = datetime(2026, 8, 18, 14, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert O2RSessionEvent(event="released", session="s", timestamp=local) == event


@pytest.mark.spec("LR-051")
@pytest.mark.parametrize(
    "message",
    [
        {"event": "paused", "session": "s", "timestamp": "2026-08-18T12:00:05Z"},
        {"keep": "dead"},
        {"event": "reserved", "session": "", "timestamp": "2026-08-18T12:00:05Z"},
        {"event": "reserved", "session": "s", "timestamp": "2026-13-18T12:00:05Z"},
        {"event": "reserved", "session": "s", "timestamp": "2026-08-18 12:00:05"},
        {"event": "reserved", "session": "s", "timestamp": "2026-08-18T12:00:05.1234567890Z"},
        ["keep", "alive"],
    ],
)
def test_o2r_messages_a_runner_must_ignore(message: Any) -> None:
    with pytest.raises(ProtocolError):
        parse_o2r_message(message)


@pytest.mark.spec("LR-047")
def test_o2r_event_needs_an_aware_timestamp() -> None:
    with pytest.raises(InvalidMessage):
        O2RSessionEvent(event="reserved", session="s", timestamp=datetime(2026, 8, 18))
