"""Properties of the BYOC wire messages: round trips, exact field names, total decoding."""

from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, strategies as st

from tests.strategies.byoc import (
    capability_registrations,
    gateway_stream_start_requests,
    gateway_stream_start_responses,
    http_urls,
    job_parameters,
    job_prices,
    job_request_details,
    job_requests,
    job_senders,
    job_tokens,
    json_objects,
    json_values,
    mutated,
    orchestrator_stream_urls,
)
from tests.strategies.runner import START_KEYS, stream_start_requests
from trio_trickle import ProtocolError
from trio_trickle._wire.byoc import (
    CapabilityRegistration,
    GatewayStreamStartRequest,
    GatewayStreamStartResponse,
    OrchestratorStreamUrls,
)
from trio_trickle._wire.byoc_token import (
    JobParameters,
    JobPrice,
    JobRequest,
    JobRequestDetails,
    JobSender,
    JobToken,
    decode_signature,
)
from trio_trickle._wire.runner import StreamStartRequest


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
    *,
    open_keys: bool = False,
) -> Any:
    case = Case(cls, strategy, frozenset(required), frozenset(optional or ()))
    return pytest.param(case, open_keys, marks=pytest.mark.spec(*spec), id=cls.__name__)


URLS = {"whip_url", "whep_url", "rtmp_url", "rtmp_output_url", "update_url", "status_url"}
JSON_CASES = [
    _case(
        CapabilityRegistration,
        capability_registrations(),
        ("BYOC-002",),
        {"name", "description", "url", "capacity", "price_per_unit", "price_scaling", "currency"},
        {"token"},
    ),
    _case(JobSender, job_senders(), ("BYOC-015",), {"addr", "sig"}),
    _case(JobPrice, job_prices(), ("BYOC-021",), {"pixelsPerUnit"}, {"pricePerUnit"}),
    _case(
        JobToken,
        job_tokens(),
        ("BYOC-021", "BYOC-022"),
        {"LastNonce"},
        {
            "sender_address",
            "ticket_params",
            "balance",
            "price",
            "service_addr",
            "available_capacity",
        },
    ),
    _case(JobRequestDetails, job_request_details(), ("BYOC-033",), {"stream_id"}),
    _case(
        JobParameters,
        job_parameters(),
        ("BYOC-034", "BYOC-035"),
        {"orchestrators"},
        {"enable_video_ingress", "enable_video_egress", "enable_data_output"},
    ),
    _case(
        GatewayStreamStartRequest,
        gateway_stream_start_requests(),
        ("BYOC-047",),
        {"stream_name", "rtmp_output", "stream_id", "params"},
    ),
    _case(
        GatewayStreamStartResponse,
        gateway_stream_start_responses(),
        ("BYOC-055",),
        {"stream_id", "data_url", "stop_url", *URLS},
    ),
    _case(
        StreamStartRequest,
        stream_start_requests(),
        ("BYOC-090", "BYOC-094"),
        {"gateway_request_id", "control_url", "events_url", "params"},
        {"subscribe_url", "publish_url", "data_url"},
        open_keys=True,
    ),
]


@pytest.mark.parametrize(("case", "open_keys"), JSON_CASES)
@given(data=st.data())
def test_json_round_trip_with_protocol_keys(
    case: Case, open_keys: bool, data: st.DataObject
) -> None:
    value = data.draw(case.strategy)
    wire = value.to_wire()
    assert case.cls.from_wire(wire) == value
    assert json.loads(json.dumps(wire, allow_nan=False)) == wire
    assert case.required <= set(wire)
    if not open_keys:
        assert set(wire) <= case.required | case.optional


@pytest.mark.parametrize(("case", "open_keys"), JSON_CASES)
@given(data=st.data())
def test_json_decoding_of_arbitrary_and_mutated_input_is_total(
    case: Case, open_keys: bool, data: st.DataObject
) -> None:
    wire = data.draw(case.strategy).to_wire()
    for raw in (data.draw(json_values), data.draw(mutated(wire))):
        with contextlib.suppress(ProtocolError):
            case.cls.from_wire(raw)


# -- the Livepeer job header ---------------------------------------------------

JOB_KEYS = {
    "id",
    "request",
    "parameters",
    "capability",
    "capability_url",
    "sender",
    "sig",
    "timeout_seconds",
}


@pytest.mark.spec("BYOC-028", "BYOC-029")
@given(job_requests())
def test_job_header_round_trip(job: JobRequest) -> None:
    assert JobRequest.from_wire(job.to_wire()) == job


@pytest.mark.spec("BYOC-028", "BYOC-029")
@given(job_requests())
def test_job_header_is_base64_json_with_exact_keys(job: JobRequest) -> None:
    header = job.to_wire()
    decoded = json.loads(base64.b64decode(header, validate=True))
    assert set(decoded) == JOB_KEYS
    assert decoded["request"] == job.request
    assert decoded["parameters"] == job.parameters
    assert decoded["timeout_seconds"] == job.timeout_seconds


@pytest.mark.spec("BYOC-031", "BYOC-032", "BYOC-033")
@given(
    st.text(max_size=40)
    | json_values.map(lambda v: base64.b64encode(json.dumps(v).encode()).decode())
)
def test_job_header_decoding_is_total(header: str) -> None:
    try:
        JobRequest.from_wire(header)
    except ProtocolError as exc:
        assert exc.status == 400


@pytest.mark.spec("BYOC-031", "BYOC-032", "BYOC-033")
@given(data=st.data())
def test_job_header_mutants_are_total(data: st.DataObject) -> None:
    job = data.draw(job_requests())
    obj = data.draw(mutated(job.to_json_object()))
    header = base64.b64encode(json.dumps(obj).encode()).decode()
    try:
        JobRequest.from_wire(header)
    except ProtocolError as exc:
        assert exc.status == 400


@pytest.mark.spec("BYOC-037", "BYOC-038")
@given(job_requests(), st.binary(max_size=65))
def test_signing_covers_request_then_parameters(job: JobRequest, sig: bytes) -> None:
    signed = job.signed("0x" + "ab" * 20, sig)
    assert signed.signing_payload() == (job.request + job.parameters).encode()
    assert signed.signature_bytes() == sig
    assert signed.sig == ("0x" + sig.hex() if sig else "")


@pytest.mark.spec("BYOC-040")
@given(st.binary(max_size=80))
def test_signature_decoding_strips_0x_at_any_length(raw: bytes) -> None:
    assert decode_signature("0x" + raw.hex()) == raw
    assert decode_signature(raw.hex()) == raw


@pytest.mark.spec("BYOC-040")
@given(st.text(max_size=20))
def test_signature_decoding_is_total(text: str) -> None:
    try:
        decode_signature(text)
    except ProtocolError as exc:
        assert exc.status == 400


# -- headers and other properties ----------------------------------------------

header_names = st.sampled_from(
    [
        "X-Control-Url",
        "x-events-url",
        "X-PUBLISH-URL",
        "X-Subscribe-Url",
        "X-Data-Url",
        "Livepeer-Balance",
        "Content-Type",
    ]
)


@pytest.mark.spec("BYOC-073")
@given(orchestrator_stream_urls())
def test_orchestrator_headers_round_trip(urls: OrchestratorStreamUrls) -> None:
    headers = urls.to_wire()
    assert OrchestratorStreamUrls.from_wire(headers) == urls
    assert OrchestratorStreamUrls.from_wire({k.lower(): v for k, v in headers.items()}) == urls
    assert {"X-Control-Url", "X-Events-Url"} <= set(headers)


@pytest.mark.spec("BYOC-079")
@given(st.dictionaries(header_names, st.text(max_size=12), max_size=6) | json_values)
def test_orchestrator_header_decoding_is_total(headers: Any) -> None:
    with contextlib.suppress(ProtocolError):
        OrchestratorStreamUrls.from_wire(headers)


@pytest.mark.spec("BYOC-015", "BYOC-017")
@given(job_senders())
def test_eth_address_header_round_trip(sender: JobSender) -> None:
    header = sender.to_header()
    assert json.loads(base64.b64decode(header)) == {"addr": sender.addr, "sig": sender.sig}
    assert JobSender.from_header(header) == sender


@pytest.mark.spec("BYOC-017")
@given(st.text(max_size=40))
def test_eth_address_header_decoding_is_total(header: str) -> None:
    try:
        JobSender.from_header(header)
    except ProtocolError as exc:
        assert exc.status == 400


@pytest.mark.spec("BYOC-024")
@given(job_tokens())
def test_token_capacity_filter(token: JobToken) -> None:
    assert token.has_capacity == (token.available_capacity > 0)


@pytest.mark.spec("BYOC-045")
@given(job_parameters(), http_urls)
def test_orchestrator_filter(params: JobParameters, url: str) -> None:
    expected = (not params.include or url in params.include) and url not in params.exclude
    assert params.allows(url) is expected


@pytest.mark.spec("BYOC-051")
@given(
    gateway_stream_start_requests(), st.text(alphabet="0123456789abcdef", min_size=8, max_size=8)
)
def test_stream_id_resolution(request: GatewayStreamStartRequest, random_id: str) -> None:
    resolved = request.resolve_stream_id(random_id)
    base = request.stream_id or random_id
    assert resolved == (f"{request.stream_name}-{base}" if request.stream_name else base)


@pytest.mark.spec("BYOC-091")
@given(
    json_objects,
    st.dictionaries(st.sampled_from([k for k in START_KEYS if k != "params"]), json_values),
    st.none() | json_objects,
)
def test_worker_body_keeps_orchestrator_keys(
    body: dict[str, Any], hostile: dict[str, Any], params: dict[str, Any] | None
) -> None:
    gateway_body = {**body, **hostile, "params": params}
    start = StreamStartRequest.build(
        stream_id="cam-1",
        control_url="https://o/ai/trickle/cam-1-control",
        events_url="https://o/ai/trickle/cam-1-events",
        gateway_body=gateway_body,
    )
    wire = start.to_wire()
    assert wire["gateway_request_id"] == "cam-1"
    assert wire["control_url"] == "https://o/ai/trickle/cam-1-control"
    assert wire["events_url"] == "https://o/ai/trickle/cam-1-events"
    assert "subscribe_url" not in wire
    assert "publish_url" not in wire
    assert "data_url" not in wire
    assert wire["params"] == params
    for key, value in body.items():
        if key not in START_KEYS:
            assert wire[key] == value
