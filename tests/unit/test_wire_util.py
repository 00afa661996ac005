"""The shared wire validators: one definition of plain JSON, URLs, and field access."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import attrs
import pytest
from hypothesis import given

from tests.strategies.runner import arbitrary_json, json_values
from trio_trickle import InvalidMessage, ProtocolError
from trio_trickle._wire.fields import get_int, get_list, get_opt_str, get_str
from trio_trickle._wire.json_codec import b64_json_decode, b64_json_encode, is_plain_json
from trio_trickle._wire.validate import (
    http_url,
    int_range,
    is_http_url,
    json_object_without,
    json_value,
    text,
    tuple_of,
)


@attrs.frozen
class Holder:
    value: Any = attrs.field(validator=json_value)


@given(json_values)
def test_plain_json_values_are_accepted_and_survive_json(value: Any) -> None:
    assert is_plain_json(value)
    assert Holder(value).value == json.loads(json.dumps(value))


@pytest.mark.parametrize(
    "value",
    [
        {1: "int key"},  # json.dumps would write "1", so the value would not come back
        (1, 2),  # json.dumps would write a list
        {"a": [1, (2,)]},
        float("nan"),
        {"x": float("inf")},
        {"s": {1, 2}},
        b"bytes",
    ],
)
def test_json_value_refuses_what_json_dumps_would_silently_change_or_reject(value: Any) -> None:
    assert not is_plain_json(value)
    with pytest.raises(InvalidMessage):
        Holder(value)


def test_json_value_refuses_cycles_but_not_sharing() -> None:
    shared: dict[str, Any] = {"x": 1}
    assert is_plain_json({"a": shared, "b": [shared, shared]})
    cyclic: list[Any] = []
    cyclic.append({"again": cyclic})
    assert not is_plain_json(cyclic)


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    assert is_plain_json(deep)


def test_json_object_without_names_the_reserved_keys() -> None:
    @attrs.frozen
    class Extra:
        extra: dict[str, Any] = attrs.field(validator=json_object_without({"id", "type"}))

    assert Extra({"other": [1]}).extra == {"other": [1]}
    with pytest.raises(InvalidMessage, match=r"reserved keys \['id'\]"):
        Extra({"id": "x", "other": 1})
    with pytest.raises(InvalidMessage):
        Extra([("other", 1)])


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://orch:8935/ai/trickle/x", True),
        ("https://[::1]/x?y=z", True),
        ("ftp://orch/x", False),
        ("/ai/trickle/x", False),
        ("https://", False),
        ("http://:80/x", False),
        (" http://orch/x", False),
        ("http://[::1", False),
        (5, False),
    ],
)
def test_http_url(url: object, ok: bool) -> None:
    assert is_http_url(url) is ok

    @attrs.frozen
    class Url:
        url: Any = attrs.field(validator=http_url)

    if ok:
        Url(url)
    else:
        with pytest.raises(InvalidMessage):
            Url(url)


def test_factories_bound_values() -> None:
    @attrs.frozen(kw_only=True)
    class Bounded:
        count: Any = attrs.field(default=0, validator=int_range(0))
        small: Any = attrs.field(default=1, validator=int_range(1, 3))
        names: Any = attrs.field(default=("a",), validator=tuple_of(str, 1, 2))
        label: Any = attrs.field(default="x", validator=text(3))

    Bounded(count=10**30)
    for bad in (
        {"count": -1},
        {"count": True},
        {"small": 4},
        {"names": ()},
        {"names": ("a", "b", "c")},
        {"names": ["a"]},
        {"label": ""},
        {"label": "abcd"},
    ):
        with pytest.raises(InvalidMessage):
            Bounded(**bad)


def test_field_access_with_defaults_and_nulls() -> None:
    obj = {"s": "x", "empty": "", "null": None, "n": 3, "flag": True}
    assert get_str(obj, "s", "t") == "x"
    assert get_str(obj, "null", "t", default="d") == "d"
    assert get_opt_str(obj, "empty", "t") is None
    assert get_opt_str(obj, "missing", "t") is None
    assert get_int(obj, "missing", "t", default=None) is None
    for call in (
        lambda: get_str(obj, "missing", "t"),
        lambda: get_str(obj, "null", "t"),
        lambda: get_int(obj, "flag", "t"),
        lambda: get_list(obj, "n", "t", lambda v, _w: v),
    ):
        with pytest.raises(InvalidMessage):
            call()


@given(arbitrary_json)
def test_base64_json_decoding_is_total(value: Any) -> None:
    with contextlib.suppress(ProtocolError):
        b64_json_decode(value, "header")
    if is_plain_json(value):
        assert b64_json_decode(b64_json_encode(value), "header") == value
