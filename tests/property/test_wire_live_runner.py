"""Properties of the live-runner wire messages: round trips, exact keys, total decoding."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from tests.strategies.byoc import json_values, mutated
from tests.strategies.live_runner import (
    advertised_prices,
    channel_names,
    channel_specs,
    channels_delete_requests,
    channels_delete_responses,
    channels_requests,
    channels_responses,
    discovery_entries,
    discovery_responses,
    discovery_runners,
    durations,
    heartbeat_requests,
    heartbeat_responses,
    ids,
    json_error_bodies,
    o2r_keepalives,
    o2r_session_events,
    offset_zones,
    payment_challenges,
    payment_headers,
    proxied_session_headers,
    proxy_requests,
    proxy_responses,
    refresh_payment_requests,
    runner_channels,
    runner_gpu_indexes,
    runner_gpus,
    runner_price_infos,
    session_released_events,
    session_reservations,
    utc_datetimes,
)
from trio_trickle import ProtocolError
from trio_trickle._wire.channel_events import EventEnvelope
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
    MAX_CHANNELS_PER_REQUEST,
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
    normalize_channel_name,
    parse_o2r_message,
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
    parse_reservation_402,
)


@dataclass(frozen=True)
class Case:
    cls: Any
    strategy: st.SearchStrategy[Any]
    required: frozenset[str]
    optional: frozenset[str] = frozenset()


def _case(
    cls: Any,
    strategy: st.SearchStrategy[Any],
    spec: tuple[str, ...],
    required: set[str],
    optional: set[str] | None = None,
) -> Any:
    case = Case(cls, strategy, frozenset(required), frozenset(optional or ()))
    return pytest.param(case, marks=pytest.mark.spec(*spec), id=cls.__name__)


CASES = [
    _case(RunnerGpu, runner_gpus(), ("LR-016",), set(), {"id", "name", "vram_mb"}),
    _case(
        RunnerPriceInfo,
        runner_price_infos(),
        ("LR-017", "LR-018", "LR-019"),
        {"price", "currency", "unit"},
    ),
    _case(AdvertisedPrice, advertised_prices(), ("LR-060",), {"price", "currency", "unit"}),
    _case(
        HeartbeatRequest,
        heartbeat_requests(),
        ("LR-002",),
        {"runner_url", "app", "capacity", "mode"},
        {
            "runner_id",
            "label",
            "proxy",
            "version",
            "metadata",
            "status",
            "gpu",
            "price_info",
            "session_ids",
        },
    ),
    _case(
        HeartbeatResponse,
        heartbeat_responses(),
        ("LR-022", "LR-023"),
        {"runner_id", "heartbeat_interval", "heartbeat_ttl", "session_ids"},
        {"orchestrator", "heartbeat_secret", "o2r"},
    ),
    _case(
        RunnerChannel,
        runner_channels(),
        ("LR-023", "LR-119"),
        {"name", "channel_name", "url", "mime_type"},
        {"internal_url"},
    ),
    _case(
        DiscoveryRunner,
        discovery_runners(),
        ("LR-056",),
        {"url", "app", "capacity", "capacity_used", "capacity_available"},
        {"gpu", "version", "metadata", "mode", "price_info"},
    ),
    _case(
        DiscoveryEntry,
        discovery_entries(),
        ("LR-054", "LR-064"),
        {"address"},
        {"runners", "score", "capabilities"},
    ),
    _case(
        PaymentChallenge,
        payment_challenges(),
        ("LR-075", "LR-077"),
        {"payment_params", "orchestrator", "manifest_id", "payment_url"},
        {"payment_interval_ms"},
    ),
    _case(JsonErrorBody, json_error_bodies(), ("LR-074",), {"error"}),
    _case(
        SessionReservation,
        session_reservations(),
        ("LR-089",),
        {"session_id", "app_url", "control_url"},
    ),
    _case(
        RefreshPaymentRequest,
        refresh_payment_requests(),
        ("LR-103", "LR-105"),
        {"sender", "manifest_id"},
    ),
    _case(ProxyRequest, proxy_requests(), ("LR-125",), set(), {"target_url"}),
    _case(ProxyResponse, proxy_responses(), ("LR-125",), {"proxy_id", "url"}),
    _case(ChannelSpec, channel_specs(), ("LR-114",), {"name"}, {"mime_type"}),
    _case(ChannelsRequest, channels_requests(), ("LR-114",), {"channels"}),
    _case(ChannelsResponse, channels_responses(), ("LR-119",), {"channels"}),
    _case(ChannelsDeleteRequest, channels_delete_requests(), ("LR-121",), {"channels"}),
    _case(ChannelsDeleteResponse, channels_delete_responses(), ("LR-122",), {"deleted"}),
    _case(O2RKeepalive, o2r_keepalives, ("LR-046",), {"keep"}),
    _case(
        O2RSessionEvent,
        o2r_session_events(),
        ("LR-047", "LR-048", "LR-142"),
        {"event", "session", "timestamp"},
        {"reason"},
    ),
    _case(
        SessionReleasedEvent,
        session_released_events(),
        ("LR-143",),
        {"queue_event_type", "event"},
    ),
]


# Twenty-one message types share these two properties; 50 examples each keeps the
# file within its time budget on two cores.
TABLE = settings(max_examples=50)


@pytest.mark.parametrize("case", CASES)
@TABLE
@given(data=st.data())
def test_round_trip_with_plain_json_and_protocol_keys(case: Case, data: st.DataObject) -> None:
    value = data.draw(case.strategy)
    wire = value.to_wire()
    assert case.cls.from_wire(wire) == value
    assert json.loads(json.dumps(wire, allow_nan=False)) == wire
    assert case.required <= set(wire) <= case.required | case.optional


@pytest.mark.parametrize("case", CASES)
@TABLE
@given(data=st.data())
def test_decoding_arbitrary_and_mutated_input_is_total(case: Case, data: st.DataObject) -> None:
    wire = data.draw(case.strategy).to_wire()
    for raw in (data.draw(json_values), data.draw(mutated(wire))):
        with contextlib.suppress(ProtocolError):
            case.cls.from_wire(raw)


# -- discovery (a JSON array) ---------------------------------------------------


@pytest.mark.spec("LR-054", "LR-064")
@given(discovery_responses())
def test_discovery_round_trip(response: DiscoveryResponse) -> None:
    wire = response.to_wire()
    assert isinstance(wire, list)
    assert json.loads(json.dumps(wire)) == wire
    assert DiscoveryResponse.from_wire(wire) == response


@pytest.mark.spec("LR-063")
@given(data=st.data())
def test_discovery_reader_skips_bad_runners(data: st.DataObject) -> None:
    entry = data.draw(discovery_entries())
    wire = entry.to_wire()
    runners = [data.draw(mutated(r) | st.just(r)) for r in wire.get("runners", [])]
    wire["runners"] = runners
    lenient = DiscoveryEntry.from_wire(wire, skip_invalid_runners=True)
    valid = []
    for runner in runners:
        try:
            valid.append(DiscoveryRunner.from_wire(runner))
        except ProtocolError:
            continue
    assert lenient.runners == tuple(valid)
    assert all(
        r.price_info is not None and r.price_info.is_valid_offer() for r in lenient.priced_runners()
    )


@pytest.mark.spec("LR-054")
@given(json_values)
def test_discovery_decoding_is_total(value: Any) -> None:
    with contextlib.suppress(ProtocolError):
        DiscoveryResponse.from_wire(value, skip_invalid_runners=True)


# -- headers -------------------------------------------------------------------

payment_header_maps = st.dictionaries(
    st.sampled_from(
        ["Livepeer-Payer-Address", "livepeer-payment", "LIVEPEER-SEGMENT", "Content-Type"]
    ),
    st.text(alphabet="0123456789abcdefABCDEFx+/=", max_size=44),
    max_size=4,
)


@pytest.mark.spec("LR-074", "LR-080")
@given(payment_headers())
def test_payment_headers_round_trip(headers: PaymentHeaders) -> None:
    wire = headers.to_wire()
    assert set(wire) <= {"Livepeer-Payer-Address", "Livepeer-Payment", "Livepeer-Segment"}
    assert PaymentHeaders.from_wire(wire) == headers
    assert PaymentHeaders.from_wire({k.upper(): v for k, v in wire.items()}) == headers


@pytest.mark.spec("LR-073", "LR-074")
@given(payment_header_maps)
def test_payment_header_decoding_is_total(headers: dict[str, str]) -> None:
    try:
        decoded = PaymentHeaders.from_wire(headers)
    except ProtocolError as exc:
        assert exc.status == 402
        lowered = {k.lower(): v for k, v in headers.items()}
        assert not lowered.get("livepeer-payment")
        assert not lowered.get("livepeer-segment")
    else:
        assert decoded.wants_challenge == (decoded.payment is None and decoded.segment is None)


@pytest.mark.spec("LR-108")
@given(proxied_session_headers())
def test_proxied_headers_round_trip(headers: ProxiedSessionHeaders) -> None:
    wire = headers.to_wire()
    assert set(wire) == {
        "Livepeer-Runner-Route",
        "Livepeer-Session-Id",
        "Livepeer-Session-Token",
        "Livepeer-Session-Control",
    }
    assert ProxiedSessionHeaders.from_wire(wire) == headers


@pytest.mark.spec("LR-108")
@given(st.dictionaries(st.text(max_size=24), st.text(max_size=8), max_size=5) | json_values)
def test_proxied_header_decoding_is_total(headers: Any) -> None:
    with contextlib.suppress(ProtocolError):
        ProxiedSessionHeaders.from_wire(headers)


# -- durations, timestamps, names, sessions --------------------------------------

GO_DURATION = re.compile(
    r"0s|[0-9]+ns|[0-9]+(\.[0-9]+)?(\u00b5s|ms)|([0-9]+h)?([0-9]+m)?[0-9]+(\.[0-9]+)?s"
)


@pytest.mark.spec("LR-022", "LR-029")
@given(durations)
def test_go_duration_round_trip(seconds: float) -> None:
    text = format_go_duration(seconds)
    assert GO_DURATION.fullmatch(text)
    assert parse_go_duration(text) == seconds


@pytest.mark.spec("LR-022")
@given(st.text(alphabet="0123456789.hmsnuµ+-", max_size=12) | st.text(max_size=8))
def test_go_duration_parsing_is_total(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        parse_go_duration(text)


@pytest.mark.spec("LR-052")
@given(utc_datetimes, st.integers(0, 999), st.sampled_from(["Z", "z"]))
def test_o2r_timestamps_accept_nanoseconds(moment: datetime, nanos: int, zone: str) -> None:
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{moment.microsecond:06d}{nanos:03d}"
    event = parse_o2r_message(
        {"event": "released", "session": "s", "timestamp": f"{base}.{digits}{zone}"}
    )
    assert isinstance(event, O2RSessionEvent)
    assert event.timestamp == moment


@pytest.mark.spec("LR-047", "LR-048")
@given(utc_datetimes, offset_zones)
def test_o2r_timestamps_are_normalised_to_utc(moment: datetime, zone: Any) -> None:
    event = O2RSessionEvent(event="reserved", session="s", timestamp=moment.astimezone(zone))
    assert event.timestamp == moment
    assert event.timestamp.utcoffset() is not None
    assert event.timestamp.tzinfo == UTC
    assert event.to_wire()["timestamp"].endswith("Z")


@pytest.mark.spec("LR-051")
@given(json_values)
def test_o2r_parsing_is_total(value: Any) -> None:
    with contextlib.suppress(ProtocolError):
        parse_o2r_message(value)


@pytest.mark.spec("LR-074", "LR-075")
@given(json_values | json_error_bodies().map(JsonErrorBody.to_wire))
def test_reservation_402_parsing_is_total(value: Any) -> None:
    try:
        parsed = parse_reservation_402(value)
    except ProtocolError:
        return
    assert isinstance(parsed, PaymentChallenge | JsonErrorBody)


@pytest.mark.spec("LR-115")
@given(st.text(max_size=16))
def test_channel_name_normalisation(name: str) -> None:
    expected = name.strip().replace("/", "-")
    try:
        normal = normalize_channel_name(name)
    except ProtocolError as exc:
        assert exc.status == 400
        assert not re.fullmatch(r"[A-Za-z0-9_-]+", expected)
    else:
        assert normal == expected
        assert re.fullmatch(r"[A-Za-z0-9_-]+", normal)
        assert normalize_channel_name(normal) == normal


@pytest.mark.spec("LR-114", "LR-121")
@given(st.lists(channel_names, max_size=MAX_CHANNELS_PER_REQUEST + 5))
def test_channel_request_sizes(names: list[str]) -> None:
    fits = 1 <= len(names) <= MAX_CHANNELS_PER_REQUEST
    for cls, wire in (
        (ChannelsRequest, {"channels": [{"name": n} for n in names]}),
        (ChannelsDeleteRequest, {"channels": names}),
    ):
        try:
            cls.from_wire(wire)
        except ProtocolError as exc:
            assert exc.status == 400
            assert not fits
        else:
            assert fits


@pytest.mark.spec("LR-030")
@given(heartbeat_responses(), st.lists(ids, max_size=5))
def test_released_sessions_are_those_the_orchestrator_dropped(
    response: HeartbeatResponse, local: list[str]
) -> None:
    released = response.released_sessions(local)
    assert set(released) == set(local) - set(response.session_ids)
    assert all(s in response.session_ids for s in local if s not in released)


# -- wire changes asked for by the registry (LR-016, LR-105, LR-142, LR-143) ----


@pytest.mark.spec("LR-016")
@given(runner_gpu_indexes)
def test_gpu_index_round_trips_as_an_integer(gpu: RunnerGpu) -> None:
    wire = gpu.to_wire()
    assert isinstance(wire, int)
    assert gpu.id == str(wire)
    back = RunnerGpu.from_wire(json.loads(json.dumps(wire)))
    assert back == gpu
    assert back.index == wire
    assert RunnerGpu.from_wire(back.named(None).to_wire()).index is None


@pytest.mark.spec("LR-016")
@given(runner_gpus())
def test_gpu_object_is_never_an_index(gpu: RunnerGpu) -> None:
    assert RunnerGpu.from_wire(gpu.to_wire()).index is None


@pytest.mark.spec("LR-105")
@given(refresh_payment_requests(), st.sampled_from(["", "0x", "0X"]))
def test_refresh_sender_prefix_is_optional(request: RefreshPaymentRequest, prefix: str) -> None:
    wire = {**request.to_wire(), "sender": prefix + request.sender[2:]}
    assert RefreshPaymentRequest.from_wire(wire).to_wire() == wire


@pytest.mark.spec("LR-142")
@given(o2r_session_events())
def test_o2r_event_read_with_or_without_reason(event: O2RSessionEvent) -> None:
    wire = event.to_wire()
    assert parse_o2r_message(wire) == event
    bare = {k: v for k, v in wire.items() if k != "reason"}
    assert parse_o2r_message(bare) == O2RSessionEvent(
        event=event.event, session=event.session, timestamp=event.timestamp
    )


@pytest.mark.spec("LR-143")
@given(session_released_events())
def test_session_released_event_is_an_events_envelope(event: SessionReleasedEvent) -> None:
    envelope = EventEnvelope.from_wire(event.to_wire())  # CHN-013
    assert envelope.topic == "ai_stream_events"
    assert envelope.event_type == "session_released"
    assert SessionReleasedEvent.from_wire(envelope.to_wire()) == event
