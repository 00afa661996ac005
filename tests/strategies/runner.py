"""Hypothesis strategies for the runner HTTP API wire types (spec/runner-api.md)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

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
    HealthStatus,
    SessionState,
    SessionStatus,
    StreamFps,
    StreamStatusResponse,
)

__all__ = [
    "START_KEYS",
    "arbitrary_json",
    "error_responses",
    "health_responses",
    "http_urls",
    "json_objects",
    "json_values",
    "live_video_to_video_responses",
    "mutated",
    "predict_requests",
    "session_statuses",
    "stream_fps",
    "stream_params_requests",
    "stream_start_requests",
    "stream_start_responses",
    "stream_status_responses",
    "stream_stop_requests",
]

START_KEYS = (
    "gateway_request_id",
    "subscribe_url",
    "publish_url",
    "control_url",
    "events_url",
    "data_url",
    "params",
)

_finite = st.floats(allow_nan=False, allow_infinity=False)
_scalars = st.none() | st.booleans() | st.integers() | _finite | st.text(max_size=12)

#: JSON values that survive a strict round trip.
json_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(max_size=8), json_values, max_size=5
)

#: Anything a JSON parser could hand to ``from_wire`` (NaN and infinities included).
arbitrary_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

_host = st.sampled_from(
    ["orch.example", "orch.example:8935", "127.0.0.1:8935", "localhost", "a-b.c", "[::1]:80"]
)
_path = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~", max_size=8), max_size=3
).map(lambda parts: "".join("/" + p for p in parts))

#: Absolute http(s) URLs such as the orchestrator hands out for trickle channels.
http_urls: st.SearchStrategy[str] = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}{path}",
    st.sampled_from(["http", "https"]),
    _host,
    _path,
)

_ids = st.text(min_size=1, max_size=40)
_ms = st.integers(min_value=0, max_value=2**53)
_counts = st.integers(min_value=0, max_value=10**9)
_rates = st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False)


@st.composite
def stream_start_requests(draw: st.DrawFn) -> StreamStartRequest:
    extra = draw(
        json_objects.map(lambda obj: {k: v for k, v in obj.items() if k not in START_KEYS})
    )
    return StreamStartRequest(
        gateway_request_id=draw(_ids),
        control_url=draw(http_urls),
        events_url=draw(http_urls),
        # Any subset of channels, none included (BYOC-094); RUN-046 is the runner's check.
        subscribe_url=draw(st.none() | http_urls),
        publish_url=draw(st.none() | http_urls),
        data_url=draw(st.none() | http_urls),
        params=draw(st.none() | json_objects),
        extra=extra,
    )


stream_start_responses: st.SearchStrategy[StreamStartResponse] = st.builds(
    StreamStartResponse, gateway_request_id=_ids
)

live_video_to_video_responses: st.SearchStrategy[LiveVideoToVideoResponse] = st.builds(
    LiveVideoToVideoResponse,
    publish_url=st.just("") | http_urls,
    subscribe_url=st.just("") | http_urls,
    control_url=st.just("") | http_urls,
)

stream_params_requests: st.SearchStrategy[StreamParamsRequest] = st.builds(
    StreamParamsRequest, params=json_objects
)

stream_stop_requests: st.SearchStrategy[StreamStopRequest] = st.builds(
    StreamStopRequest,
    reason=st.none() | st.text(min_size=1, max_size=1024).filter(lambda t: bool(t.strip())),
)

health_responses: st.SearchStrategy[HealthResponse] = st.builds(
    HealthResponse, status=st.sampled_from(HealthStatus)
)

error_responses: st.SearchStrategy[ErrorResponse] = st.builds(
    ErrorResponse, message=st.text(min_size=1, max_size=200)
)

predict_requests: st.SearchStrategy[PredictRequest] = st.builds(
    PredictRequest, arguments=json_objects
)

stream_fps: st.SearchStrategy[StreamFps] = st.builds(
    StreamFps,
    ingress_video_fps=_rates,
    ingress_audio_fps=_rates,
    egress_video_fps=_rates,
    egress_audio_fps=_rates,
)

session_statuses: st.SearchStrategy[SessionStatus] = st.builds(
    SessionStatus,
    gateway_request_id=_ids,
    state=st.sampled_from(SessionState),
    started_at_ms=_ms,
    params=st.none() | json_objects,
    fps=stream_fps,
    frames_in=_counts,
    frames_out=_counts,
    frames_dropped=_counts,
)


@st.composite
def stream_status_responses(draw: st.DrawFn) -> StreamStatusResponse:
    capacity = draw(st.integers(min_value=1, max_value=4))
    sessions = draw(
        st.lists(
            session_statuses,
            max_size=capacity,
            unique_by=lambda s: s.gateway_request_id,
        )
    )
    return StreamStatusResponse(
        status=draw(st.sampled_from(HealthStatus)),
        capacity=capacity,
        sessions=tuple(sessions),
        last_error=draw(st.none() | st.text(min_size=1, max_size=100)),
    )


@st.composite
def mutated(draw: st.DrawFn, wire: dict[str, Any]) -> dict[str, Any]:
    """A copy of a valid wire dict with one key dropped or one value of the wrong type."""
    result = dict(wire)
    if not result:
        return {"unexpected": draw(arbitrary_json)}
    key = draw(st.sampled_from(sorted(result)))
    if draw(st.booleans()):
        del result[key]
    else:
        result[key] = draw(arbitrary_json.filter(lambda v: type(v) is not type(wire[key])))
    return result
