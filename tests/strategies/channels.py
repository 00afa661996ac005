"""Hypothesis strategies for the control/events/data channel wire types (spec/channels.md)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from trio_trickle._wire.channel_events import EventEnvelope, HeartbeatEvent, StatusEvent
from trio_trickle._wire.channels import ControlMessage, DataLine, KeepAlive, StreamChannels

__all__ = [
    "arbitrary_json",
    "control_messages",
    "data_lines",
    "event_envelopes",
    "heartbeat_events",
    "json_objects",
    "json_values",
    "keepalives",
    "mids",
    "mutated",
    "status_events",
    "stream_channels",
]

_finite = st.floats(allow_nan=False, allow_infinity=False)
_scalars = st.none() | st.booleans() | st.integers() | _finite | st.text(max_size=12)

#: JSON values that survive a strict round trip (what a well-behaved peer sends).
json_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

#: JSON objects (dict with str keys) of round-trippable values.
json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(max_size=8), json_values, max_size=5
)

#: Anything a JSON parser could hand to ``from_wire``, NaN and infinities included.
arbitrary_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

_ms = st.integers(min_value=0, max_value=2**53)
_counts = st.none() | st.integers(min_value=0, max_value=10**9)


def _without(keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return json_objects.map(lambda obj: {k: v for k, v in obj.items() if k not in keys})


keepalives: st.SearchStrategy[KeepAlive] = st.just(KeepAlive())

control_messages: st.SearchStrategy[ControlMessage] = json_objects.filter(
    lambda obj: obj != {"keep": "alive"}
).map(lambda obj: ControlMessage(params=obj))

event_envelopes: st.SearchStrategy[EventEnvelope] = st.builds(
    EventEnvelope,
    event=json_objects,
    queue_event_type=st.none() | st.text(min_size=1, max_size=20),
)

heartbeat_events: st.SearchStrategy[HeartbeatEvent] = st.builds(
    HeartbeatEvent,
    timestamp=_ms,
    urls=st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=5),
    width=_counts,
    height=_counts,
    fps=st.dictionaries(
        st.text(max_size=20),
        st.floats(min_value=0, max_value=1000, allow_nan=False),
        max_size=4,
    ),
    frames_in=_counts,
    frames_out=_counts,
    extra=_without(("type", "timestamp", "urls", "dimensions", "fps", "frames_in", "frames_out")),
)

_status_keys = (
    "type",
    "timestamp",
    "pipeline",
    "state",
    "input_status",
    "inference_status",
    "start_time",
    "last_state_update_time",
    "last_status_timestamp",
)

status_events: st.SearchStrategy[StatusEvent] = st.builds(
    StatusEvent,
    timestamp=_ms,
    pipeline=st.none() | st.text(max_size=20),
    state=st.none() | st.sampled_from(["ONLINE", "OFFLINE", "LOADING", "DEGRADED_INPUT", "ERROR"]),
    start_time=st.none() | _ms,
    last_state_update_time=st.none() | _ms,
    last_status_timestamp=st.none() | _ms,
    input_status=st.none() | json_objects,
    inference_status=st.none() | json_objects,
    extra=_without(_status_keys),
)

data_lines: st.SearchStrategy[DataLine] = json_objects.map(lambda obj: DataLine(record=obj))

#: Stream ids whose derived channel names are all valid trickle names.
mids: st.SearchStrategy[str] = st.from_regex(r"[A-Za-z0-9._~-]{1,248}", fullmatch=True).filter(
    lambda mid: mid not in (".", "..")
)

stream_channels: st.SearchStrategy[StreamChannels] = mids.map(lambda mid: StreamChannels(mid=mid))


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
