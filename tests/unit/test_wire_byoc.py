"""BYOC wire messages against literal bodies from go-livepeer master and pytrickle."""

from __future__ import annotations

import base64
import json
from fractions import Fraction
from typing import Any

import pytest

from trio_trickle import InvalidMessage
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

ADDR = "0x" + "Ab" * 20
SIG65 = "0x" + "1c" * 65


def _b64(obj: Any) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def _unb64(text: str) -> Any:
    return json.loads(base64.b64decode(text, validate=True))


# -- registration ---------------------------------------------------------------

REGISTRATION = {
    "name": "text-reversal",
    "description": "reverses text",
    "url": "http://worker:5000",
    "capacity": 1,
    "price_per_unit": 0,
    "price_scaling": 1,
    "currency": "wei",
    "token": "worker-bearer",
}


@pytest.mark.spec("BYOC-002")
def test_registration_literal_round_trips() -> None:
    reg = CapabilityRegistration.from_wire(REGISTRATION)
    assert reg.name == "text-reversal"
    assert reg.token == "worker-bearer"
    assert reg.to_wire() == REGISTRATION


@pytest.mark.spec("BYOC-002", "BYOC-008")
def test_pytrickle_registration_without_currency_or_token() -> None:
    body = {
        "url": "http://byoc:8000",
        "name": "comfy",
        "description": "",
        "capacity": 1,
        "price_per_unit": 10,
        "price_scaling": 0,
    }
    reg = CapabilityRegistration.from_wire(body)
    assert reg.currency == ""
    assert reg.token is None
    assert reg.effective_price_scaling == 1
    assert reg.to_wire() == {**body, "currency": ""}


@pytest.mark.spec("BYOC-008", "BYOC-009", "BYOC-010")
@pytest.mark.parametrize(
    ("currency", "expected"),
    [
        ("", Fraction(10, 4)),
        ("wei", Fraction(10, 4)),
        ("WEI", Fraction(10, 4)),
        ("eth", Fraction(10, 4) * 10**18),
        ("USD", None),
    ],
)
def test_registration_static_price(currency: str, expected: Fraction | None) -> None:
    reg = CapabilityRegistration(
        name="c", url="http://w", price_per_unit=10, price_scaling=4, currency=currency
    )
    assert reg.static_price_wei() == expected


@pytest.mark.spec("BYOC-007")
@pytest.mark.parametrize(
    "change",
    [
        {"name": ""},
        {"name": None},
        {"url": "worker:5000"},
        {"url": "ftp://worker"},
        {"url": "http://"},
        {"capacity": -1},
        {"price_per_unit": 1.5},
        {"price_scaling": "2"},
        {"price_scaling": -3},
        {"token": 7},
    ],
)
def test_registration_refuses_bad_fields(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage) as info:
        CapabilityRegistration.from_wire({**REGISTRATION, **change})
    assert info.value.status == 400


@pytest.mark.spec("BYOC-007")
def test_registration_must_be_an_object() -> None:
    with pytest.raises(InvalidMessage):
        CapabilityRegistration.from_wire(["text-reversal"])


# -- token ------------------------------------------------------------------------

TOKEN = {
    "sender_address": {"addr": ADDR, "sig": SIG65},
    "ticket_params": {
        "recipient": "q83vEjRWeJASNFZ4kBI0VniQEjQ=",
        "face_value": "AQ==",
        "win_prob": "AQ==",
        "recipient_rand_hash": "AQ==",
        "seed": "AQ==",
        "expiration_block": "AQ==",
        "expiration_params": {"creation_round": 3, "creation_round_block_hash": "AQ=="},
    },
    "balance": 1234,
    "price": {"pricePerUnit": 5, "pixelsPerUnit": 2},
    "service_addr": "https://orch:8935",
    "available_capacity": 2,
    "LastNonce": 7,
}


@pytest.mark.spec("BYOC-021")
def test_token_literal_round_trips() -> None:
    token = JobToken.from_wire(TOKEN)
    assert token.sender_address == JobSender(addr=ADDR, sig=SIG65)
    assert token.price == JobPrice(price_per_unit=5, pixels_per_unit=2)
    assert token.price.wei_per_second == Fraction(5, 2)
    assert token.last_nonce == 7
    assert token.to_wire() == TOKEN


@pytest.mark.spec("BYOC-021", "BYOC-022", "BYOC-024", "BYOC-025")
def test_offchain_token_with_omitted_zero_fields() -> None:
    body = {
        "sender_address": {"addr": ADDR, "sig": ""},
        "price": {"pixelsPerUnit": 1},
        "service_addr": "https://orch:8935",
        "LastNonce": 0,
    }
    token = JobToken.from_wire(body)
    assert token.ticket_params is None
    assert token.balance == 0
    assert token.available_capacity == 0
    assert not token.has_capacity
    assert token.price is not None
    assert token.price.price_per_unit == 0
    assert token.to_wire() == body


@pytest.mark.spec("BYOC-022")
def test_token_without_last_nonce_reads_zero() -> None:
    assert JobToken.from_wire({"service_addr": "https://o"}).last_nonce == 0


@pytest.mark.spec("BYOC-023")
@pytest.mark.parametrize(
    "price", [{}, {"pricePerUnit": 3}, {"pricePerUnit": 3, "pixelsPerUnit": 0}]
)
def test_token_price_needs_a_denominator(price: dict[str, int]) -> None:
    with pytest.raises(InvalidMessage):
        JobToken.from_wire({**TOKEN, "price": price})


@pytest.mark.spec("BYOC-015", "BYOC-016")
def test_eth_address_header_literal() -> None:
    header = _b64({"addr": ADDR, "sig": SIG65})
    sender = JobSender.from_header(header)
    assert sender.signed_message() == ADDR.encode()
    assert _unb64(sender.to_header()) == {"addr": ADDR, "sig": SIG65}


@pytest.mark.spec("BYOC-017")
@pytest.mark.parametrize(
    "header",
    ["not base64!", _b64([1]), _b64({"addr": "Ab" * 20, "sig": ""}), _b64({"sig": "0x"})],
)
def test_eth_address_header_refused(header: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        JobSender.from_header(header)
    assert info.value.status == 400


# -- the Livepeer job header --------------------------------------------------------

JOB = {
    "id": "cam1-abc",
    "request": '{"stream_id":"cam1-abc"}',
    "parameters": '{"orchestrators":{},"enable_video_ingress":true}',
    "capability": "text-reversal",
    "capability_url": "",
    "sender": ADDR,
    "sig": SIG65,
    "timeout_seconds": 30,
}


@pytest.mark.spec("BYOC-028", "BYOC-029", "BYOC-030")
def test_job_header_literal_ignores_go_duration_fields() -> None:
    header = _b64({**JOB, "OrchSearchTimeout": 0, "OrchSearchRespTimeout": 0})
    job = JobRequest.from_wire(header)
    assert job.details() == JobRequestDetails(stream_id="cam1-abc")
    assert job.job_parameters() == JobParameters(enable_video_ingress=True)
    assert _unb64(job.to_wire()) == JOB


@pytest.mark.spec("BYOC-031")
@pytest.mark.parametrize("timeout", [0, -5, None, "30", 1.5])
def test_job_header_needs_a_positive_timeout(timeout: Any) -> None:
    body = {**JOB, "timeout_seconds": timeout}
    with pytest.raises(InvalidMessage) as info:
        JobRequest.from_wire(_b64(body))
    assert info.value.status == 400


@pytest.mark.spec("BYOC-031")
def test_job_header_without_timeout_is_refused() -> None:
    body = {k: v for k, v in JOB.items() if k != "timeout_seconds"}
    with pytest.raises(InvalidMessage):
        JobRequest.from_wire(_b64(body))


@pytest.mark.spec("BYOC-032")
def test_job_header_needs_a_capability() -> None:
    with pytest.raises(InvalidMessage):
        JobRequest.from_wire(_b64({**JOB, "capability": ""}))


@pytest.mark.spec("BYOC-033")
@pytest.mark.parametrize("request_text", ["", "[]", '{"stream_id":5}', "{", "null"])
def test_job_request_field_must_be_an_object(request_text: str) -> None:
    with pytest.raises(InvalidMessage):
        JobRequest.from_wire(_b64({**JOB, "request": request_text}))


@pytest.mark.spec("BYOC-034", "BYOC-036")
def test_empty_parameters_parse_but_cannot_be_read() -> None:
    stop_job = {
        "capability": "text-reversal",
        "request": '{"stream_id":"cam1-abc"}',
        "timeout_seconds": 10,
    }
    job = JobRequest.from_wire(_b64(stop_job))
    assert job.parameters == ""
    with pytest.raises(InvalidMessage):
        job.job_parameters()


@pytest.mark.spec("BYOC-034")
def test_parameters_literal() -> None:
    text = json.dumps(
        {
            "orchestrators": {"exclude": ["https://b:8935"], "include": ["https://a:8935"]},
            "enable_video_ingress": True,
            "enable_video_egress": False,
            "enable_data_output": True,
        }
    )
    params = JobRequest(capability="c", timeout_seconds=1, parameters=text).job_parameters()
    assert params.include == ("https://a:8935",)
    assert params.exclude == ("https://b:8935",)
    assert params.enable_data_output
    assert not params.enable_video_egress
    assert params.allows("https://a:8935")
    assert not params.allows("https://b:8935")
    assert not params.allows("https://c:8935")


@pytest.mark.spec("BYOC-034")
@pytest.mark.parametrize(
    "text",
    [
        '{"enable_data_output":"yes"}',
        '{"orchestrators":[]}',
        "[]",
        '{"orchestrators":{"include":"x"}}',
    ],
)
def test_parameters_with_wrong_types_are_refused(text: str) -> None:
    with pytest.raises(InvalidMessage):
        JobRequest(capability="c", timeout_seconds=1, parameters=text).job_parameters()


@pytest.mark.spec("BYOC-035")
def test_parameters_writer_omits_false_flags_and_empty_lists() -> None:
    assert JobParameters().to_wire() == {"orchestrators": {}}
    assert JobParameters(enable_video_egress=True).to_json() == (
        '{"orchestrators":{},"enable_video_egress":true}'
    )
    assert JobParameters.from_wire({"orchestrators": None}) == JobParameters()


@pytest.mark.spec("BYOC-037")
def test_unsigned_client_header_is_accepted() -> None:
    job = JobRequest.from_wire(_b64({**JOB, "sender": "", "sig": ""}))
    assert job.sender == ""
    assert job.sig == ""


@pytest.mark.spec("BYOC-038")
def test_gateway_signature_covers_request_then_parameters() -> None:
    job = JobRequest(capability="c", timeout_seconds=5, request='{"stream_id":"x"}')
    signed = job.signed(ADDR, bytes(range(65)))
    assert job.signing_payload() == b'{"stream_id":"x"}{}'
    assert signed.sender == ADDR
    assert signed.sig == "0x" + bytes(range(65)).hex()
    assert _unb64(signed.to_wire())["sig"] == signed.sig


@pytest.mark.spec("BYOC-040", "BYOC-041")
@pytest.mark.parametrize(("sig", "raw"), [("0x", b""), ("", b""), ("0x0a", b"\n"), ("0a", b"\n")])
def test_signature_prefix_is_stripped_at_any_length(sig: str, raw: bytes) -> None:
    assert decode_signature(sig) == raw


@pytest.mark.spec("BYOC-040")
def test_full_length_signature_decodes() -> None:
    assert len(decode_signature(SIG65)) == 65


@pytest.mark.spec("BYOC-039")
@pytest.mark.parametrize("sig", ["0x0", "xyz", "0x0x00", "0X00"])
def test_malformed_signatures_are_refused(sig: str) -> None:
    with pytest.raises(InvalidMessage):
        decode_signature(sig)
    with pytest.raises(InvalidMessage):
        JobRequest.from_wire(_b64({**JOB, "sig": sig}))


@pytest.mark.spec("BYOC-043")
def test_offchain_gateway_writes_empty_signature_as_empty_string() -> None:
    job = JobRequest(capability="c", timeout_seconds=5).signed(ADDR, b"")
    assert job.sig == ""
    assert _unb64(job.to_wire())["sig"] == ""


# -- gateway stream API -------------------------------------------------------------


@pytest.mark.spec("BYOC-047", "BYOC-051")
def test_start_request_literal() -> None:
    body = {
        "stream_name": "cam1",
        "rtmp_output": "rtmp://out.example/live",
        "stream_id": "abc",
        "params": '{"prompt":"x"}',
    }
    request = GatewayStreamStartRequest.from_wire(body)
    assert request.params_object() == {"prompt": "x"}
    assert request.resolve_stream_id("deadbeef") == "cam1-abc"
    assert request.to_wire() == body


@pytest.mark.spec("BYOC-051")
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"stream_name": "cam1"}, "cam1-deadbeef"),
        ({"stream_id": "abc"}, "abc"),
        ({}, "deadbeef"),
    ],
)
def test_stream_id_rules(body: dict[str, str], expected: str) -> None:
    assert GatewayStreamStartRequest.from_wire(body).resolve_stream_id("deadbeef") == expected


@pytest.mark.spec("BYOC-048")
@pytest.mark.parametrize("params", ["{not json", "[1]", "5", '"x"'])
def test_start_request_refuses_invalid_model_params(params: str) -> None:
    with pytest.raises(InvalidMessage, match="invalid model params") as info:
        GatewayStreamStartRequest.from_wire({"params": params})
    assert info.value.status == 400


@pytest.mark.spec("BYOC-048")
def test_null_model_params_are_no_params() -> None:
    assert GatewayStreamStartRequest.from_wire({"params": "null"}).params_object() is None


@pytest.mark.spec("BYOC-050")
def test_start_request_refuses_output_stream_names() -> None:
    with pytest.raises(InvalidMessage) as info:
        GatewayStreamStartRequest.from_wire({"stream_name": "cam1-out"})
    assert info.value.status == 400


@pytest.mark.spec("BYOC-055", "BYOC-056")
def test_start_response_always_has_nine_keys() -> None:
    gw = "https://gw.example/process/stream/cam1-abc"
    response = GatewayStreamStartResponse(
        stream_id="cam1-abc",
        update_url=f"{gw}/update",
        status_url=f"{gw}/status",
        stop_url=f"{gw}/stop",
    )
    assert response.to_wire() == {
        "stream_id": "cam1-abc",
        "whip_url": "",
        "whep_url": "",
        "rtmp_url": "",
        "rtmp_output_url": "",
        "update_url": f"{gw}/update",
        "status_url": f"{gw}/status",
        "data_url": "",
        "stop_url": f"{gw}/stop",
    }
    assert GatewayStreamStartResponse.from_wire(response.to_wire()) == response


@pytest.mark.spec("BYOC-055")
def test_start_response_lists_rtmp_outputs() -> None:
    out = "rtmp://a/x,rtmp://localhost:1935/cam1-out,rtmp://localhost:1935/cam1-1234abcd-out"
    response = GatewayStreamStartResponse.from_wire({"stream_id": "cam1", "rtmp_output_url": out})
    assert response.rtmp_outputs == tuple(out.split(","))


# -- orchestrator answer headers and the worker body ----------------------------------

ORCH_HEADERS = {
    "X-Control-Url": "https://orch:8935/ai/trickle/cam1-abc-control",
    "X-Events-Url": "https://orch:8935/ai/trickle/cam1-abc-events",
    "X-Publish-Url": "https://orch:8935/ai/trickle/cam1-abc",
    "X-Subscribe-Url": "https://orch:8935/ai/trickle/cam1-abc-out",
    "X-Data-Url": "https://orch:8935/ai/trickle/cam1-abc-data",
    "Livepeer-Balance": "-12",
}


@pytest.mark.spec("BYOC-073")
def test_orchestrator_headers_literal() -> None:
    urls = OrchestratorStreamUrls.from_wire(ORCH_HEADERS)
    assert urls.publish_url == ORCH_HEADERS["X-Publish-Url"]
    assert urls.subscribe_url == ORCH_HEADERS["X-Subscribe-Url"]
    assert urls.balance == -12
    assert urls.to_wire() == ORCH_HEADERS


@pytest.mark.spec("BYOC-079")
@pytest.mark.parametrize("missing", ["X-Control-Url", "X-Events-Url"])
def test_orchestrator_answer_without_control_or_events_fails(missing: str) -> None:
    headers = {k: v for k, v in ORCH_HEADERS.items() if k != missing}
    with pytest.raises(InvalidMessage):
        OrchestratorStreamUrls.from_wire(headers)


@pytest.mark.spec("BYOC-073")
def test_orchestrator_balance_must_be_an_integer() -> None:
    with pytest.raises(InvalidMessage):
        OrchestratorStreamUrls.from_wire({**ORCH_HEADERS, "Livepeer-Balance": "1.5"})


WORKER_BODY: dict[str, Any] = {
    "gateway_request_id": "cam1-abc",
    "control_url": "https://orch:8935/ai/trickle/cam1-abc-control",
    "events_url": "https://orch:8935/ai/trickle/cam1-abc-events",
    "subscribe_url": "https://orch:8935/ai/trickle/cam1-abc",
    "publish_url": "https://orch:8935/ai/trickle/cam1-abc-out",
    "data_url": "https://orch:8935/ai/trickle/cam1-abc-data",
    "params": {"prompt": "x"},
}


@pytest.mark.spec("BYOC-090")
def test_worker_start_literal() -> None:
    # The worker body is the runner API's start body: one class serves both.
    start = StreamStartRequest.from_wire(WORKER_BODY)
    assert start.to_wire() == WORKER_BODY


@pytest.mark.spec("BYOC-090", "BYOC-091")
def test_worker_body_ignores_gateway_attempts_to_override() -> None:
    start = StreamStartRequest.build(
        stream_id="cam1-abc",
        control_url=WORKER_BODY["control_url"],
        events_url=WORKER_BODY["events_url"],
        gateway_body={
            "params": None,
            "control_url": "http://evil/ctl",
            "gateway_request_id": "other-stream",
            "subscribe_url": "http://evil/in",
            "model": "sdxl",
        },
    )
    assert start.to_wire() == {
        "model": "sdxl",
        "gateway_request_id": "cam1-abc",
        "control_url": WORKER_BODY["control_url"],
        "events_url": WORKER_BODY["events_url"],
        "params": None,
    }


@pytest.mark.spec("BYOC-094")
def test_worker_accepts_minimal_body_with_unknown_keys() -> None:
    body = {
        "gateway_request_id": "s",
        "control_url": "https://o/c",
        "events_url": "https://o/e",
        "params": None,
        "future": [1, 2],
    }
    start = StreamStartRequest.from_wire(body)
    assert start.subscribe_url is None
    assert start.publish_url is None
    assert start.data_url is None
    assert start.extra == {"future": [1, 2]}
    assert start.to_wire() == body


@pytest.mark.spec("BYOC-090")
def test_worker_params_must_be_an_object_or_null() -> None:
    urls = {"control_url": WORKER_BODY["control_url"], "events_url": WORKER_BODY["events_url"]}
    with pytest.raises(InvalidMessage):
        StreamStartRequest.from_wire({**WORKER_BODY, "params": "prompt=x"})
    with pytest.raises(InvalidMessage, match="params"):
        StreamStartRequest.build(stream_id="s", gateway_body={"params": [1]}, **urls)
    built = StreamStartRequest.build(stream_id="s", gateway_body={"params": {"a": 1}}, **urls)
    assert built.params == {"a": 1}


@pytest.mark.spec("BYOC-090")
def test_worker_extra_cannot_hold_reserved_keys() -> None:
    urls = {"control_url": WORKER_BODY["control_url"], "events_url": WORKER_BODY["events_url"]}
    with pytest.raises(InvalidMessage):
        StreamStartRequest(gateway_request_id="s", extra={"data_url": "x"}, **urls)
    with pytest.raises(InvalidMessage):
        StreamStartRequest.build(stream_id="s", gateway_body={"t": (1, 2)}, **urls)
