"""Hypothesis strategies for the BYOC wire messages (one per message type)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

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
)

INT64_MAX = 2**63 - 1
HEX = "0123456789abcdefABCDEF"

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
# Values of the wrong type for any field, used to mutate valid wire objects.
wrong_values = st.sampled_from([None, 0, -1, 1.5, True, "", "x", [], {}, [1], {"a": 1}])

eth_addresses = st.text(alphabet=HEX, min_size=40, max_size=40).map(lambda h: "0x" + h)
signatures = st.one_of(
    st.just(""),
    st.just("0x"),
    st.binary(min_size=65, max_size=65).map(lambda b: "0x" + b.hex()),
    st.binary(max_size=8).map(bytes.hex),
)
names = st.text(min_size=1, max_size=16)
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
http_urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["http", "https"]),
    st.sampled_from(["worker", "orch.example.com", "127.0.0.1", "[::1]"]),
    st.sampled_from(["", ":5000", ":8935"]),
    st.sampled_from(["", "/", "/ai/trickle/abc", "/a/b?c=d"]),
)
int64s = st.integers(min_value=0, max_value=INT64_MAX)


@st.composite
def capability_registrations(draw: st.DrawFn) -> CapabilityRegistration:
    return CapabilityRegistration(
        name=draw(names),
        url=draw(http_urls),
        description=draw(st.text(max_size=20)),
        capacity=draw(st.integers(0, 1000)),
        price_per_unit=draw(int64s),
        price_scaling=draw(int64s),
        currency=draw(st.sampled_from(["", "wei", "WEI", "eth", "USD"])),
        token=draw(st.none() | st.text(max_size=20)),
    )


@st.composite
def job_senders(draw: st.DrawFn) -> JobSender:
    return JobSender(addr=draw(eth_addresses), sig=draw(signatures))


@st.composite
def job_prices(draw: st.DrawFn) -> JobPrice:
    return JobPrice(price_per_unit=draw(int64s), pixels_per_unit=draw(st.integers(1, INT64_MAX)))


@st.composite
def job_tokens(draw: st.DrawFn) -> JobToken:
    return JobToken(
        service_addr=draw(st.just("") | http_urls),
        sender_address=draw(st.none() | job_senders()),
        ticket_params=draw(st.none() | json_objects),
        balance=draw(st.integers(-(2**63), INT64_MAX)),
        price=draw(st.none() | job_prices()),
        available_capacity=draw(st.integers(-5, 50)),
        last_nonce=draw(st.integers(0, 2**32 - 1)),
    )


@st.composite
def job_request_details(draw: st.DrawFn) -> JobRequestDetails:
    return JobRequestDetails(stream_id=draw(st.text(max_size=20)))


@st.composite
def job_parameters(draw: st.DrawFn) -> JobParameters:
    urls = st.lists(http_urls, max_size=3).map(tuple)
    return JobParameters(
        include=draw(urls),
        exclude=draw(urls),
        enable_video_ingress=draw(st.booleans()),
        enable_video_egress=draw(st.booleans()),
        enable_data_output=draw(st.booleans()),
    )


@st.composite
def request_texts(draw: st.DrawFn) -> str:
    """JSON object text with an optional string ``stream_id``, in assorted spellings."""
    body: dict[str, Any] = draw(
        st.dictionaries(
            st.text(max_size=6).filter(lambda k: k != "stream_id"), json_values, max_size=2
        )
    )
    if draw(st.booleans()):
        body["stream_id"] = draw(st.text(max_size=12))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    return json.dumps(body, separators=separators)


@st.composite
def job_requests(draw: st.DrawFn) -> JobRequest:
    params = draw(st.sampled_from(["", "{}"]) | job_parameters().map(JobParameters.to_json))
    return JobRequest(
        capability=draw(names),
        timeout_seconds=draw(st.integers(1, 10**6)),
        id=draw(st.text(max_size=20)),
        request=draw(request_texts()),
        parameters=params,
        capability_url=draw(st.just("") | http_urls),
        sender=draw(st.just("") | eth_addresses),
        sig=draw(signatures),
    )


@st.composite
def gateway_stream_start_requests(draw: st.DrawFn) -> GatewayStreamStartRequest:
    params = draw(st.sampled_from(["", "null", "{}"]) | json_objects.map(lambda o: json.dumps(o)))
    return GatewayStreamStartRequest(
        stream_name=draw(st.text(max_size=12).filter(lambda n: not n.endswith("-out"))),
        rtmp_output=draw(st.text(max_size=20)),
        stream_id=draw(st.text(max_size=12)),
        params=params,
    )


@st.composite
def gateway_stream_start_responses(draw: st.DrawFn) -> GatewayStreamStartResponse:
    url = st.none() | http_urls
    return GatewayStreamStartResponse(
        stream_id=draw(names),
        whip_url=draw(url),
        whep_url=draw(url),
        rtmp_url=draw(url),
        rtmp_output_url=draw(url),
        update_url=draw(url),
        status_url=draw(url),
        data_url=draw(url),
        stop_url=draw(url),
    )


@st.composite
def orchestrator_stream_urls(draw: st.DrawFn) -> OrchestratorStreamUrls:
    url = st.none() | http_urls
    return OrchestratorStreamUrls(
        control_url=draw(http_urls),
        events_url=draw(http_urls),
        publish_url=draw(url),
        subscribe_url=draw(url),
        data_url=draw(url),
        balance=draw(st.none() | st.integers(-(10**30), 10**30)),
    )


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """A copy of a JSON value with one nested key dropped or one value replaced."""
    if isinstance(value, dict) and value:
        key = draw(st.sampled_from(sorted(value)))
        out = dict(value)
        action = draw(st.sampled_from(["drop", "replace", "descend"]))
        if action == "drop":
            del out[key]
        elif action == "replace":
            out[key] = draw(wrong_values)
        else:
            out[key] = draw(mutated(value[key]))
        return out
    if isinstance(value, list) and value:
        index = draw(st.integers(0, len(value) - 1))
        out_list = list(value)
        out_list[index] = draw(mutated(value[index]) | wrong_values)
        return out_list
    return draw(wrong_values)
