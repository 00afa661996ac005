"""Properties of the runner API wire types: round trips, plain JSON, and total decoders."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, strategies as st

from tests.strategies.runner import (
    START_KEYS,
    arbitrary_json,
    error_responses,
    health_responses,
    live_video_to_video_responses,
    mutated,
    predict_requests,
    session_statuses,
    stream_fps,
    stream_params_requests,
    stream_start_requests,
    stream_start_responses,
    stream_status_responses,
    stream_stop_requests,
)
from trio_trickle import ProtocolError
from trio_trickle._wire.json_codec import dump_json
from trio_trickle._wire.runner import (
    LiveVideoToVideoResponse,
    PredictRequest,
    StreamParamsRequest,
    StreamStartRequest,
    StreamStartResponse,
    StreamStopRequest,
)
from trio_trickle._wire.runner_status import (
    ErrorResponse,
    HealthResponse,
    SessionStatus,
    StreamFps,
    StreamStatusResponse,
)

# (strategy, class) for every wire class with the plain to_wire/from_wire pair.
CASES: list[tuple[st.SearchStrategy[Any], Any]] = [
    (stream_start_requests(), StreamStartRequest),
    (stream_start_responses, StreamStartResponse),
    (live_video_to_video_responses, LiveVideoToVideoResponse),
    (stream_params_requests, StreamParamsRequest),
    (stream_stop_requests, StreamStopRequest),
    (health_responses, HealthResponse),
    (error_responses, ErrorResponse),
    (predict_requests, PredictRequest),
    (stream_fps, StreamFps),
    (session_statuses, SessionStatus),
    (stream_status_responses(), StreamStatusResponse),
]
IDS = [cls.__name__ for _, cls in CASES]


@pytest.mark.parametrize(("strategy", "cls"), CASES, ids=IDS)
def test_round_trip(strategy: st.SearchStrategy[Any], cls: Any) -> None:
    @given(strategy)
    def check(value: Any) -> None:
        wire = value.to_wire()
        assert cls.from_wire(wire) == value
        # Through real JSON text too, as the bytes travel.
        assert cls.from_wire(json.loads(dump_json(wire))) == value

    check()


@pytest.mark.parametrize(("strategy", "cls"), CASES, ids=IDS)
def test_to_wire_is_plain_json(strategy: st.SearchStrategy[Any], cls: Any) -> None:
    @given(strategy)
    def check(value: Any) -> None:
        wire = value.to_wire()
        assert isinstance(wire, dict)
        assert json.loads(json.dumps(wire, allow_nan=False)) == wire

    check()


@pytest.mark.parametrize(("strategy", "cls"), CASES, ids=IDS)
def test_from_wire_on_arbitrary_json_raises_only_protocol_errors(
    strategy: st.SearchStrategy[Any], cls: Any
) -> None:
    @given(arbitrary_json)
    def check(obj: Any) -> None:
        with contextlib.suppress(ProtocolError):
            cls.from_wire(obj)

    check()


@pytest.mark.parametrize(("strategy", "cls"), CASES, ids=IDS)
def test_from_wire_on_mutated_bodies_raises_only_protocol_errors(
    strategy: st.SearchStrategy[Any], cls: Any
) -> None:
    @given(st.data())
    def check(data: st.DataObject) -> None:
        wire = data.draw(strategy).to_wire()
        with contextlib.suppress(ProtocolError):
            cls.from_wire(data.draw(mutated(wire)))

    check()


BYTE_DECODERS: list[Callable[[bytes], Any]] = [
    StreamStartRequest.from_bytes,
    StreamParamsRequest.from_bytes,
    PredictRequest.from_bytes,
    ErrorResponse.from_bytes,
]


@pytest.mark.parametrize("decode", BYTE_DECODERS, ids=lambda f: f.__qualname__)
@given(raw=st.binary(max_size=200) | arbitrary_json.map(lambda v: json.dumps(v).encode()))
def test_from_bytes_raises_only_protocol_errors(decode: Callable[[bytes], Any], raw: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(raw)


@pytest.mark.spec("RUN-064")
@given(raw=st.binary(max_size=3000) | arbitrary_json.map(lambda v: json.dumps(v).encode()))
def test_stop_body_decoding_never_fails(raw: bytes) -> None:
    req = StreamStopRequest.from_bytes(raw)
    if req.reason is not None:
        assert req.reason.strip()
        assert len(req.reason) <= 1024


@pytest.mark.spec("RUN-064", "RUN-065")
@given(req=stream_stop_requests)
def test_stop_request_survives_the_bytes_path(req: StreamStopRequest) -> None:
    assert StreamStopRequest.from_bytes(dump_json(req.to_wire())) == req


@pytest.mark.spec("RUN-039", "RUN-041")
@given(req=stream_start_requests())
def test_start_wire_uses_exact_field_names(req: StreamStartRequest) -> None:
    wire = req.to_wire()
    assert wire["gateway_request_id"] == req.gateway_request_id
    assert wire["control_url"] == req.control_url
    assert wire["events_url"] == req.events_url
    assert wire["params"] == req.params
    for key in ("subscribe_url", "publish_url", "data_url"):
        assert wire.get(key) == getattr(req, key)
    assert {k: v for k, v in wire.items() if k not in START_KEYS} == req.extra


@pytest.mark.spec("RUN-040")
@given(req=stream_start_requests())
def test_empty_string_media_urls_mean_absent(req: StreamStartRequest) -> None:
    wire = req.to_wire()
    for key in ("subscribe_url", "publish_url", "data_url"):
        wire.setdefault(key, "")
    assert StreamStartRequest.from_wire(wire) == req


@pytest.mark.spec("RUN-046", "BYOC-094")
@given(req=stream_start_requests())
def test_any_channel_subset_decodes_and_only_none_fails_the_runner_check(
    req: StreamStartRequest,
) -> None:
    assert StreamStartRequest.from_wire(req.to_wire()) == req
    if req.media_urls():
        req.require_channel()
    else:
        with pytest.raises(ProtocolError) as info:
            req.require_channel()
        assert info.value.status == 400
