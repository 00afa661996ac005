"""Hypothesis strategies for the live-runner wire messages (one per message type)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import strategies as st

from tests.strategies.byoc import eth_addresses, http_urls, json_objects
from trio_trickle._wire.live_runner import (
    HeartbeatRequest,
    HeartbeatResponse,
    RunnerChannel,
    RunnerGpu,
    RunnerPriceInfo,
)
from trio_trickle._wire.live_runner_channels import (
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
)
from trio_trickle._wire.live_runner_discovery import (
    AdvertisedPrice,
    DiscoveryEntry,
    DiscoveryResponse,
    DiscoveryRunner,
)
from trio_trickle._wire.live_runner_payment import (
    JsonErrorBody,
    PaymentChallenge,
    PaymentHeaders,
    RefreshPaymentRequest,
    SessionReservation,
)

CHANNEL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

trimmed = st.text(min_size=1, max_size=16).map(str.strip).filter(bool)
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567_", min_size=1, max_size=16)
metadata_texts = st.text(
    alphabet=st.characters(exclude_characters="\ufffd", exclude_categories=["Cs"]),
    max_size=64,
)
# Durations as whole nanoseconds (Go's resolution), kept where a float holds them exactly.
durations = st.integers(min_value=1, max_value=10**15).map(lambda ns: ns / 1e9)
utc_datetimes = st.datetimes(
    min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
offset_zones = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
usd_prices = st.builds(
    lambda mantissa, exponent: Decimal(mantissa).scaleb(exponent),
    st.integers(min_value=1, max_value=10**12),
    st.integers(min_value=-20, max_value=3),
)
channel_names = st.text(alphabet=CHANNEL_ALPHABET + "/", min_size=1, max_size=12).filter(
    lambda n: n.strip().replace("/", "-") != ""
)


@st.composite
def runner_gpus(draw: st.DrawFn) -> RunnerGpu:
    """The object form of ``gpu``."""
    return RunnerGpu(
        id=draw(st.none() | trimmed),
        name=draw(st.none() | trimmed),
        vram_mb=draw(st.none() | st.integers(1, 10**6)),
    )


#: The integer form of ``gpu``: a device index, negative ones included (LR-016).
runner_gpu_indexes = st.integers(-(2**63), 2**63 - 1).map(RunnerGpu.from_index)
#: Either form, as a heartbeat carries it.
any_runner_gpus = runner_gpus() | runner_gpu_indexes


@st.composite
def runner_price_infos(draw: st.DrawFn) -> RunnerPriceInfo:
    return RunnerPriceInfo(
        price=draw(usd_prices), unit=draw(st.sampled_from(["hour", "720p", "fixed"]))
    )


@st.composite
def advertised_prices(draw: st.DrawFn) -> AdvertisedPrice:
    return AdvertisedPrice(
        price=draw(st.integers(0, 2**63 - 1)),
        currency=draw(st.sampled_from(["wei", "WEI", "usd", ""])),
        unit=draw(st.sampled_from(["seconds", "720p-pixel-seconds", "fixed", "hour", ""])),
    )


@st.composite
def heartbeat_requests(draw: st.DrawFn) -> HeartbeatRequest:
    price = draw(st.none() | runner_price_infos().map(RunnerPriceInfo.to_wire) | json_objects)
    return HeartbeatRequest(
        runner_url=draw(http_urls),
        app=draw(trimmed),
        capacity=draw(st.integers(0, 64)),
        runner_id=draw(st.none() | trimmed),
        label=draw(st.text(max_size=8)),
        proxy=draw(st.booleans()),
        version=draw(st.text(max_size=8)),
        metadata=draw(metadata_texts),
        status=draw(st.sampled_from(["", "ready", "loading", "unavailable"])),
        mode=draw(st.sampled_from(["persistent", "single-shot"])),
        gpu=draw(st.none() | any_runner_gpus),
        price_info=price,
        session_ids=tuple(draw(st.lists(ids, max_size=3))),
    )


@st.composite
def runner_channels(draw: st.DrawFn) -> RunnerChannel:
    return RunnerChannel(
        name=draw(trimmed),
        channel_name=draw(trimmed),
        url=draw(http_urls),
        mime_type=draw(
            st.sampled_from(["application/json", "video/mp2t", "application/octet-stream"])
        ),
        internal_url=draw(st.none() | http_urls),
    )


@st.composite
def heartbeat_responses(draw: st.DrawFn) -> HeartbeatResponse:
    return HeartbeatResponse(
        runner_id=draw(ids),
        heartbeat_interval=draw(durations),
        heartbeat_ttl=draw(durations),
        orchestrator=draw(st.just("") | http_urls),
        heartbeat_secret=draw(st.none() | ids),
        o2r=draw(st.none() | runner_channels()),
        session_ids=tuple(draw(st.lists(ids, max_size=3))),
    )


@st.composite
def discovery_runners(draw: st.DrawFn) -> DiscoveryRunner:
    return DiscoveryRunner(
        url=draw(http_urls),
        app=draw(trimmed),
        capacity=draw(st.integers(0, 64)),
        capacity_used=draw(st.integers(0, 64)),
        capacity_available=draw(st.integers(-64, 64)),
        gpu=draw(st.none() | runner_gpus()),
        version=draw(st.none() | trimmed),
        metadata=draw(st.none() | metadata_texts.filter(bool)),
        mode=draw(st.none() | st.sampled_from(["persistent", "single-shot"])),
        price_info=draw(st.none() | advertised_prices()),
    )


@st.composite
def discovery_entries(draw: st.DrawFn) -> DiscoveryEntry:
    return DiscoveryEntry(
        address=draw(http_urls),
        runners=tuple(draw(st.lists(discovery_runners(), max_size=2))),
        score=draw(st.none() | st.floats(allow_nan=False, allow_infinity=False)),
        capabilities=draw(st.none() | st.lists(trimmed, max_size=3).map(tuple)),
    )


@st.composite
def discovery_responses(draw: st.DrawFn) -> DiscoveryResponse:
    return DiscoveryResponse(entries=tuple(draw(st.lists(discovery_entries(), max_size=2))))


@st.composite
def payment_headers(draw: st.DrawFn) -> PaymentHeaders:
    payer = draw(st.none() | eth_addresses | eth_addresses.map(lambda a: a[2:]))
    b64 = st.binary(min_size=1, max_size=24).map(lambda b: base64.b64encode(b).decode())
    return PaymentHeaders(
        payer_address=payer, payment=draw(st.none() | b64), segment=draw(st.none() | b64)
    )


@st.composite
def payment_challenges(draw: st.DrawFn) -> PaymentChallenge:
    return PaymentChallenge(
        payment_params=base64.b64encode(draw(st.binary(min_size=1, max_size=48))).decode(),
        orchestrator=draw(http_urls),
        manifest_id=draw(st.text(alphabet="0123456789abcdef", min_size=8, max_size=8)),
        payment_url=draw(http_urls),
        payment_interval_ms=draw(st.none() | st.integers(0, 10**7)),
    )


@st.composite
def json_error_bodies(draw: st.DrawFn) -> JsonErrorBody:
    return JsonErrorBody(message=draw(st.text(max_size=40)))


@st.composite
def session_reservations(draw: st.DrawFn) -> SessionReservation:
    return SessionReservation(
        session_id=draw(ids), app_url=draw(http_urls), control_url=draw(http_urls)
    )


@st.composite
def refresh_payment_requests(draw: st.DrawFn) -> RefreshPaymentRequest:
    return RefreshPaymentRequest(sender=draw(eth_addresses), manifest_id=draw(ids))


@st.composite
def proxied_session_headers(draw: st.DrawFn) -> ProxiedSessionHeaders:
    return ProxiedSessionHeaders(
        route=draw(ids),
        session_id=draw(ids),
        session_token=draw(ids),
        session_control=draw(http_urls),
    )


@st.composite
def proxy_requests(draw: st.DrawFn) -> ProxyRequest:
    return ProxyRequest(target_url=draw(st.none() | http_urls))


@st.composite
def proxy_responses(draw: st.DrawFn) -> ProxyResponse:
    return ProxyResponse(proxy_id=draw(ids), url=draw(http_urls))


@st.composite
def channel_specs(draw: st.DrawFn) -> ChannelSpec:
    mime = st.none() | st.sampled_from(["video/mp2t", "application/json", " text/plain "])
    return ChannelSpec(name=draw(channel_names), mime_type=draw(mime))


@st.composite
def channels_requests(draw: st.DrawFn) -> ChannelsRequest:
    # Mostly small requests, sometimes exactly the 25-entry limit.
    sizes = st.integers(1, 4) | st.just(25)
    size = draw(sizes)
    specs = draw(st.lists(channel_specs(), min_size=size, max_size=size))
    return ChannelsRequest(channels=tuple(specs))


@st.composite
def channels_responses(draw: st.DrawFn) -> ChannelsResponse:
    return ChannelsResponse(channels=tuple(draw(st.lists(runner_channels(), max_size=4))))


@st.composite
def channels_delete_requests(draw: st.DrawFn) -> ChannelsDeleteRequest:
    return ChannelsDeleteRequest(
        channels=tuple(
            draw(
                st.lists(channel_names, min_size=1, max_size=4)
                | st.lists(channel_names, min_size=25, max_size=25)
            )
        )
    )


@st.composite
def channels_delete_responses(draw: st.DrawFn) -> ChannelsDeleteResponse:
    return ChannelsDeleteResponse(deleted=tuple(draw(st.lists(channel_names, max_size=5))))


o2r_keepalives = st.just(O2RKeepalive())


release_reasons = st.sampled_from(
    [
        "client_stop",
        "runner_stop",
        "payment_failed",
        "payment_rejected",
        "runner_unregistered",
        "runner_expired",
        "runner_unhealthy",
        "request_ended",
        "idle_timeout",
        "orchestrator_shutdown",
        "unknown_session",
    ]
)


@st.composite
def o2r_session_events(draw: st.DrawFn) -> O2RSessionEvent:
    event = draw(st.sampled_from(["reserved", "released"]))
    reason = draw(st.none() | release_reasons | trimmed) if event == "released" else None
    return O2RSessionEvent(
        event=event,
        session=draw(ids),
        timestamp=draw(utc_datetimes),
        reason=reason,
    )


@st.composite
def session_released_events(draw: st.DrawFn) -> SessionReleasedEvent:
    return SessionReleasedEvent(
        session_id=draw(ids),
        reason=draw(release_reasons | trimmed),
        timestamp=draw(st.integers(0, 2**63 - 1)),
    )
