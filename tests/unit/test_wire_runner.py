"""Example tests for the runner API wire types against literal bodies from the research notes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trio_trickle import InvalidMessage, ProtocolError
from trio_trickle._wire import runner as _wire_runner, runner_status as _wire_runner_status
from trio_trickle._wire.runner import (
    LiveVideoToVideoResponse,
    PredictRequest,
    StreamParamsRequest,
    StreamParamsResponse,
    StreamStartRequest,
    StreamStartResponse,
    StreamStopRequest,
    StreamStopResponse,
)
from trio_trickle._wire.runner_status import (
    HEADER_STREAM_ID,
    SSE_DONE,
    ErrorResponse,
    HealthResponse,
    HealthStatus,
    SessionState,
    SessionStatus,
    StopReason,
    StreamFps,
    StreamStatusResponse,
    bearer_token,
    encode_sse_data,
    encode_sse_error,
)

ORCH = "https://orch.example:8935/ai/trickle"

# What go-livepeer's byoc/stream_orchestrator.go sends (research byoc_live_runner.md §2.6).
GO_START: dict[str, Any] = {
    "gateway_request_id": "abc123",
    "control_url": f"{ORCH}/abc123-control",
    "events_url": f"{ORCH}/abc123-events",
    "subscribe_url": f"{ORCH}/abc123",
    "publish_url": f"{ORCH}/abc123-out",
    "data_url": f"{ORCH}/abc123-data",
    "params": None,
}


# -- /stream/start ---------------------------------------------------------------


@pytest.mark.spec("RUN-039", "RUN-042")
def test_go_livepeer_start_body_decodes_and_reencodes_exactly() -> None:
    req = StreamStartRequest.from_bytes(json.dumps(GO_START).encode())
    assert req.gateway_request_id == "abc123"
    assert req.params is None
    assert req.has_ingress
    assert req.has_egress
    assert req.has_data
    assert req.media_urls() == {
        "subscribe_url": f"{ORCH}/abc123",
        "publish_url": f"{ORCH}/abc123-out",
        "data_url": f"{ORCH}/abc123-data",
    }
    assert req.to_wire() == GO_START


@pytest.mark.spec("RUN-039", "RUN-042")
def test_start_body_with_only_egress_and_no_params_key() -> None:
    body = {k: v for k, v in GO_START.items() if k not in ("subscribe_url", "data_url", "params")}
    req = StreamStartRequest.from_wire(body)
    assert not req.has_ingress
    assert req.has_egress
    assert not req.has_data
    assert req.params is None
    assert req.media_urls() == {"publish_url": f"{ORCH}/abc123-out"}
    assert req.to_wire() == {**body, "params": None}


@pytest.mark.spec("RUN-074")
def test_effective_params_is_empty_dict_for_null_and_a_copy_otherwise() -> None:
    assert StreamStartRequest.from_wire(GO_START).effective_params() == {}
    params = {"prompt": "a cat", "width": 512}
    req = StreamStartRequest.from_wire({**GO_START, "params": params})
    got = req.effective_params()
    assert got == params
    got["prompt"] = "changed"
    assert req.params == params


@pytest.mark.spec("RUN-040", "RUN-041")
def test_ai_runner_body_empty_urls_are_absent_and_extra_keys_are_kept() -> None:
    body = {
        "subscribe_url": f"{ORCH}/s",
        "publish_url": f"{ORCH}/s-out",
        "control_url": f"{ORCH}/s-control",
        "events_url": f"{ORCH}/s-events",
        "data_url": "",
        "model_id": "noop",
        "params": {},
        "gateway_request_id": "gw-1",
        "manifest_id": "m-1",
        "stream_id": "st-1",
    }
    req = StreamStartRequest.from_wire(body)
    assert req.data_url is None
    assert req.extra == {"model_id": "noop", "manifest_id": "m-1", "stream_id": "st-1"}
    wire = req.to_wire()
    assert "data_url" not in wire
    assert wire["model_id"] == "noop"
    assert wire["stream_id"] == "st-1"


@pytest.mark.spec("RUN-043")
@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'"start"', b"null", b"\xff\xfe"])
def test_start_body_not_a_json_object_is_400(raw: bytes) -> None:
    with pytest.raises(InvalidMessage) as info:
        StreamStartRequest.from_bytes(raw)
    assert info.value.status == 400


@pytest.mark.spec("RUN-044")
@pytest.mark.parametrize("value", [None, "", 7, ["x"]])
def test_bad_gateway_request_id_is_400(value: object) -> None:
    body = dict(GO_START)
    if value is None:
        del body["gateway_request_id"]
    else:
        body["gateway_request_id"] = value
    with pytest.raises(InvalidMessage) as info:
        StreamStartRequest.from_wire(body)
    assert info.value.status == 400


@pytest.mark.spec("RUN-045", "RUN-040")
@pytest.mark.parametrize("key", ["control_url", "events_url"])
@pytest.mark.parametrize("how", ["missing", "empty", "null"])
def test_missing_control_or_events_url_is_400(key: str, how: str) -> None:
    body = dict(GO_START)
    if how == "missing":
        del body[key]
    else:
        body[key] = "" if how == "empty" else None
    with pytest.raises(InvalidMessage) as info:
        StreamStartRequest.from_wire(body)
    assert info.value.status == 400


@pytest.mark.spec("RUN-042", "BYOC-094")
@pytest.mark.parametrize(
    "present",
    [
        (),
        ("data_url",),
        ("subscribe_url",),
        ("publish_url",),
        ("subscribe_url", "data_url"),
        ("publish_url", "data_url"),
    ],
)
def test_start_body_with_any_subset_of_channels_decodes(present: tuple[str, ...]) -> None:
    media = ("subscribe_url", "publish_url", "data_url")
    body = {k: v for k, v in GO_START.items() if k not in media or k in present}
    req = StreamStartRequest.from_wire(body)
    assert sorted(req.media_urls()) == sorted(present)
    assert req.has_ingress == ("subscribe_url" in present)
    assert req.has_egress == ("publish_url" in present)
    assert req.has_data == ("data_url" in present)
    assert req.to_wire() == body


@pytest.mark.spec("RUN-046")
def test_start_without_any_channel_is_refused_by_the_runner_check() -> None:
    media = ("subscribe_url", "publish_url", "data_url")
    req = StreamStartRequest.from_wire({k: v for k, v in GO_START.items() if k not in media})
    with pytest.raises(InvalidMessage, match="subscribe_url, publish_url or data_url") as info:
        req.require_channel()
    assert info.value.status == 400


@pytest.mark.spec("RUN-046")
@pytest.mark.parametrize("key", ["subscribe_url", "publish_url", "data_url"])
def test_one_channel_of_any_kind_satisfies_the_runner_check(key: str) -> None:
    # Data-only is what a BYOC worker with only data output enabled receives.
    media = {"subscribe_url", "publish_url", "data_url"} - {key}
    body = {k: v for k, v in GO_START.items() if k not in media}
    StreamStartRequest.from_wire(body).require_channel()
    # An empty string is no channel at all (RUN-040).
    body[key] = ""
    with pytest.raises(InvalidMessage):
        StreamStartRequest.from_wire(body).require_channel()


@pytest.mark.spec("RUN-047")
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("subscribe_url", "/ai/trickle/abc"),
        ("publish_url", "ftp://orch/abc-out"),
        ("events_url", "https://"),
        ("data_url", "http://[::1"),
        ("control_url", 5),
        ("params", ["prompt"]),
        ("params", "prompt=cat"),
    ],
)
def test_bad_url_or_params_is_400(key: str, value: object) -> None:
    with pytest.raises(InvalidMessage) as info:
        StreamStartRequest.from_wire({**GO_START, key: value})
    assert info.value.status == 400


def test_start_request_constructor_validates() -> None:
    good: dict[str, Any] = {
        "gateway_request_id": "a",
        "control_url": "http://o/c",
        "events_url": "http://o/e",
        "publish_url": "http://o/p",
    }
    StreamStartRequest(**good)
    StreamStartRequest(**{**good, "publish_url": None})  # no channel: the runner decides
    for bad in (
        {"gateway_request_id": ""},
        {"gateway_request_id": "x" * 257},
        {"control_url": "o/c"},
        {"control_url": " http://o/c"},
        {"events_url": "http://o/" + "e" * 2048},
        {"data_url": "ws://o/d"},
        {"params": {"a": float("nan")}},
        {"params": {1: "int key"}},
        {"extra": {"params": {}}},
        {"extra": {"t": (1, 2)}},
    ):
        with pytest.raises(InvalidMessage):
            StreamStartRequest(**{**good, **bad})


@pytest.mark.spec("RUN-053")
def test_start_response_literal() -> None:
    resp = StreamStartResponse(gateway_request_id="abc123")
    assert resp.to_wire() == {"status": "started", "gateway_request_id": "abc123"}
    assert StreamStartResponse.from_wire(resp.to_wire()) == resp
    with pytest.raises(InvalidMessage):
        StreamStartResponse.from_wire({"status": "success", "gateway_request_id": "abc123"})


@pytest.mark.spec("RUN-056")
def test_live_video_to_video_response_is_ai_runner_shape() -> None:
    assert LiveVideoToVideoResponse().to_wire() == {
        "publish_url": "",
        "subscribe_url": "",
        "control_url": "",
    }
    assert LiveVideoToVideoResponse.from_wire({}) == LiveVideoToVideoResponse()


# -- /stream/params and control --------------------------------------------------


@pytest.mark.spec("RUN-060", "RUN-062")
def test_params_body_is_the_whole_object() -> None:
    body = {"prompt": "a dog", "width": 512, "height": 512, "max_framerate": 30}
    req = StreamParamsRequest.from_bytes(json.dumps(body).encode())
    assert req.params == body
    assert req.to_wire() == body
    assert StreamParamsResponse().to_wire() == {"status": "ok"}
    assert StreamParamsResponse.from_wire({"status": "ok"}) == StreamParamsResponse()


@pytest.mark.spec("RUN-060", "RUN-086")
@pytest.mark.parametrize("raw", [b"[1]", b"3", b"{bad", b'"x"', b""])
def test_params_body_not_an_object_is_400(raw: bytes) -> None:
    with pytest.raises(InvalidMessage) as info:
        StreamParamsRequest.from_bytes(raw)
    assert info.value.status == 400


@pytest.mark.spec("RUN-085")
def test_only_the_exact_keepalive_object_is_a_keepalive() -> None:
    assert StreamParamsRequest.from_bytes(b'{"keep":"alive"}').is_keepalive
    assert not StreamParamsRequest.from_wire({"keep": "alive", "prompt": "x"}).is_keepalive
    assert not StreamParamsRequest.from_wire({"keep": "going"}).is_keepalive


# -- /stream/stop ----------------------------------------------------------------


@pytest.mark.spec("RUN-064", "RUN-065")
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", None),
        (b"  \n", None),
        (b"stream ended", "stream ended"),
        (b"insufficient balance\n", "insufficient balance"),
        (b'"timeout waiting for events"', "timeout waiting for events"),
        (b'{"reason":"user left"}', "user left"),
        (b'{"reason":"  ","error":"boom","message":"m"}', "boom"),
        (b'{"message":"bye"}', "bye"),
        (b'{"stream_id":"abc"}', None),
        (b"null", None),
        (b"[1,2]", None),
        (b"42", None),
        (b'""', None),
        (b"{not json", "{not json"),
        (b"\xffbad", "\ufffdbad"),
    ],
)
def test_stop_body_reason(raw: bytes, reason: str | None) -> None:
    assert StreamStopRequest.from_bytes(raw).reason == reason


@pytest.mark.spec("RUN-065")
def test_stop_reason_is_cut_to_1024_characters() -> None:
    long = "x" * 5000
    assert StreamStopRequest.from_bytes(long.encode()).reason == "x" * 1024
    assert StreamStopRequest.from_wire({"reason": long}).reason == "x" * 1024
    # A reason whose first 1024 characters are blank means no reason.
    assert StreamStopRequest.from_wire(" " * 1024 + "late").reason is None


@pytest.mark.spec("RUN-066")
def test_stop_response_literal() -> None:
    assert StreamStopResponse().to_wire() == {"status": "stopped"}
    assert StreamStopRequest(reason="x").to_wire() == {"reason": "x"}
    assert StreamStopRequest().to_wire() == {}
    with pytest.raises(InvalidMessage):
        StreamStopRequest(reason="   ")
    with pytest.raises(InvalidMessage):
        StreamStopRequest(reason="y" * 1025)


@pytest.mark.spec("RUN-100")
def test_stop_reason_vocabulary_is_the_specs() -> None:
    assert {r.value for r in StopReason} == {
        "stop_requested",
        "input_ended",
        "input_gone",
        "control_gone",
        "output_gone",
        "failed",
        "shutdown",
    }


# -- health, errors, status ------------------------------------------------------


@pytest.mark.spec("RUN-009", "RUN-016")
@pytest.mark.parametrize(
    ("status", "code"), [("LOADING", 503), ("OK", 200), ("ERROR", 503), ("IDLE", 200)]
)
def test_health_literal_and_http_status(status: str, code: int) -> None:
    resp = HealthResponse.from_wire({"status": status})
    assert resp.status is HealthStatus(status)
    assert resp.to_wire() == {"status": status}
    assert resp.http_status == code


@pytest.mark.spec("RUN-009")
@pytest.mark.parametrize("body", [{"status": "ready"}, {"status": "ok"}, {"status": 1}, {}])
def test_health_rejects_other_spellings(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage):
        HealthResponse.from_wire(body)


@pytest.mark.spec("RUN-002")
def test_error_body_is_go_livepeer_http_error_shape() -> None:
    err = ErrorResponse(message="Pipeline is still initializing")
    assert err.to_wire() == {"detail": {"msg": "Pipeline is still initializing"}}
    assert json.loads(json.dumps(err.to_wire())) == err.to_wire()
    with pytest.raises(InvalidMessage):
        ErrorResponse(message="")


@pytest.mark.spec("RUN-003")
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"detail": {"msg": "Failed to retrieve pipeline status."}},
            "Failed to retrieve pipeline status.",
        ),
        ({"detail": "internal error"}, "internal error"),
        (
            {"detail": [{"loc": ["body", "x"], "msg": "field required"}, {"msg": "bad"}]},
            "field required; bad",
        ),
        ({"error": "boom"}, "boom"),
    ],
)
def test_error_body_decoder_reads_every_runner_shape(body: dict[str, Any], message: str) -> None:
    assert ErrorResponse.from_wire(body).message == message
    assert ErrorResponse.from_bytes(json.dumps(body).encode()).message == message


@pytest.mark.spec("RUN-003")
@pytest.mark.parametrize(
    "body", [{}, {"detail": {}}, {"detail": []}, {"detail": 3}, {"error": None}, {"msg": "x"}]
)
def test_error_body_decoder_refuses_unknown_shapes(body: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        ErrorResponse.from_wire(body)


@pytest.mark.spec("RUN-069", "RUN-070")
def test_stream_status_literal() -> None:
    wire = {
        "status": "OK",
        "capacity": 2,
        "sessions": [
            {
                "gateway_request_id": "abc123",
                "state": "running",
                "started_at_ms": 1717000000000,
                "params": {"prompt": "cat"},
                "fps": {
                    "ingress_video_fps": 24.0,
                    "ingress_audio_fps": 50.0,
                    "egress_video_fps": 23.5,
                    "egress_audio_fps": 50.0,
                },
                "frames_in": 240,
                "frames_out": 235,
                "frames_dropped": 5,
            }
        ],
        "last_error": None,
    }
    status = StreamStatusResponse.from_wire(wire)
    assert status.sessions[0].state is SessionState.RUNNING
    assert status.sessions[0].fps.egress_video_fps == 23.5
    assert status.to_wire() == wire


@pytest.mark.spec("RUN-069")
def test_stream_status_rejects_more_sessions_than_capacity_and_duplicates() -> None:
    one = SessionStatus(gateway_request_id="a", state=SessionState.RUNNING, started_at_ms=1)
    with pytest.raises(InvalidMessage):
        StreamStatusResponse(status=HealthStatus.OK, capacity=1, sessions=(one, one))
    with pytest.raises(InvalidMessage):
        StreamStatusResponse(status=HealthStatus.OK, capacity=2, sessions=(one, one))
    with pytest.raises(InvalidMessage):
        StreamStatusResponse(status=HealthStatus.OK, capacity=0)
    with pytest.raises(InvalidMessage):
        StreamFps(ingress_video_fps=-1.0)
    with pytest.raises(InvalidMessage):
        SessionStatus(gateway_request_id="a", state=SessionState.RUNNING, started_at_ms=-1)


# -- /predict and SSE ------------------------------------------------------------


@pytest.mark.spec("RUN-020")
def test_predict_body_is_kwargs_and_empty_body_is_empty_object() -> None:
    assert PredictRequest.from_bytes(b"").arguments == {}
    assert PredictRequest.from_bytes(b' {"text": "hi", "n": 2} ').arguments == {
        "text": "hi",
        "n": 2,
    }


@pytest.mark.spec("RUN-021")
@pytest.mark.parametrize("raw", [b"[1]", b"{", b'"text"', b"NaN", b"\xff"])
def test_predict_body_not_json_object_is_422(raw: bytes) -> None:
    with pytest.raises(InvalidMessage) as info:
        PredictRequest.from_bytes(raw)
    assert info.value.status == 422


@pytest.mark.spec("RUN-030", "RUN-031", "RUN-032")
def test_sse_framing_literals() -> None:
    assert encode_sse_data({"token": "héllo", "i": 1}) == (
        'data: {"token":"héllo","i":1}\n\n'.encode()
    )
    assert encode_sse_data("line\nbreak") == b'data: "line\\nbreak"\n\n'
    assert SSE_DONE == b"data: [DONE]\n\n"
    assert encode_sse_error("predict failed: ValueError") == (
        b'data: {"error":"predict failed: ValueError"}\n\n'
    )


# -- headers ---------------------------------------------------------------------


@pytest.mark.spec("RUN-005")
@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer s3cret", "s3cret"),
        ("bearer s3cret", "s3cret"),
        ("BEARER  s3cret ", "s3cret"),
        ("Bearer S3CRET", "S3CRET"),
        ("Basic s3cret", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("s3cret", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_stream_id_header_name() -> None:
    assert HEADER_STREAM_ID == "X-Stream-Id"


def test_status_vocabulary_is_importable_from_the_runner_module() -> None:
    # Sessions and the runner app import these from _wire_runner; the objects are the same.
    for name in _wire_runner_status.__all__:
        assert getattr(_wire_runner, name) is getattr(_wire_runner_status, name)
    assert not set(_wire_runner.__all__) & set(_wire_runner_status.__all__)


def test_params_sharing_a_value_are_fine_but_cycles_are_refused() -> None:
    shared = {"x": 1}
    req = StreamParamsRequest(params={"a": shared, "b": [shared]})
    assert StreamParamsRequest.from_wire(json.loads(json.dumps(req.to_wire()))) == req
    cyclic: dict[str, Any] = {}
    cyclic["self"] = [cyclic]
    with pytest.raises(InvalidMessage):
        StreamParamsRequest(params=cyclic)
