"""Hypothesis strategies for the telemetry wire types (spec/telemetry.md)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.strategies.runner import arbitrary_json, json_objects, json_values, mutated
from trio_trickle._wire.telemetry import (
    KNOWN_ERROR_TYPES,
    KNOWN_EVENTS,
    RESERVED_DATA_KEYS,
    TelemetryError,
    TelemetryEvent,
    TelemetryRelay,
)
from trio_trickle._wire.telemetry_sink import (
    TelemetryBatch,
)

__all__ = [
    "arbitrary_json",
    "event_ids",
    "event_names",
    "metadata",
    "millis",
    "mutated",
    "telemetry_batches",
    "telemetry_errors",
    "telemetry_events",
    "telemetry_relays",
]

#: Canonical lower-case UUID strings (any version: decoders accept them all).
event_ids: st.SearchStrategy[str] = st.uuids().map(str)

event_names: st.SearchStrategy[str] = st.sampled_from(sorted(KNOWN_EVENTS)) | st.from_regex(
    r"[a-z][a-z0-9_]{0,20}", fullmatch=True
)

millis: st.SearchStrategy[int] = st.integers(min_value=0, max_value=10**13)

_ERROR_KEYS = ("error_type", "message", "exception_type", "recoverable")

#: Flat per-event metadata: any JSON members except the reserved ones.
_light = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
)
_light_values = _light | st.text(max_size=10) | st.lists(_light, max_size=3)
metadata: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(max_size=12).filter(lambda k: k not in RESERVED_DATA_KEYS), _light_values, max_size=5
)
#: Heavier nested values, used for a single member so deep JSON is still covered.
_nested_metadata = st.dictionaries(st.just("nested"), json_values, max_size=1)

_short = st.text(max_size=30)
_opt_short = st.none() | _short

telemetry_errors: st.SearchStrategy[TelemetryError] = st.builds(
    TelemetryError,
    error_type=st.sampled_from(sorted(KNOWN_ERROR_TYPES))
    | st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
    message=_short,
    exception_type=_opt_short,
    recoverable=st.booleans(),
    extra=json_objects.map(lambda obj: {k: v for k, v in obj.items() if k not in _ERROR_KEYS}),
)


@st.composite
def telemetry_events(draw: st.DrawFn) -> TelemetryEvent:
    name = draw(event_names)
    error = draw(telemetry_errors if name == "error" else st.none() | telemetry_errors)
    same_instant = draw(st.booleans())
    stamp = draw(millis)
    return TelemetryEvent(
        id=draw(event_ids),
        name=name,
        timestamp_ms=stamp,
        data_timestamp_ms=stamp if same_instant else draw(millis),
        client_source=draw(st.sampled_from(["trio-trickle", "scope"]) | st.text(min_size=1)),
        session_id=draw(_opt_short),
        connection_id=draw(_opt_short),
        user_id=draw(_opt_short),
        pipeline_ids=draw(st.none() | st.lists(_short, max_size=3).map(tuple)),
        connection_info=draw(st.none() | st.dictionaries(st.text(max_size=8), _light_values)),
        error=error,
        metadata={**draw(metadata), **draw(_nested_metadata)},
    )


telemetry_relays: st.SearchStrategy[TelemetryRelay] = st.builds(
    TelemetryRelay, event=telemetry_events()
)

telemetry_batches: st.SearchStrategy[TelemetryBatch] = st.lists(telemetry_events(), max_size=6).map(
    lambda events: TelemetryBatch(events=tuple(events))
)
