"""``predict``'s signature as an API: annotations to JSON types, binding, schemas."""

from __future__ import annotations

import collections.abc
import re
import typing
from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal, Optional, Union

import attrs
import pytest
from hypothesis import given, strategies as st

from trio_trickle._errors import InvalidMessage, ProtocolError
from trio_trickle._sdk.json_types import JsonType, UnsupportedAnnotation, compile_annotation
from trio_trickle._sdk.openapi import openapi_document
from trio_trickle._sdk.pipeline import Pipeline, PredictSignature
from trio_trickle._wire.json_codec import is_plain_json, parse_json


class Custom:
    pass


@pytest.mark.spec("RUN-037")
@pytest.mark.parametrize(
    ("annotation", "schema"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (None, {"type": "null"}),
        (Any, {}),
        (object, {}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (typing.List[str], {"type": "array", "items": {"type": "string"}}),  # noqa: UP006
        (list, {"type": "array", "items": {}}),
        (Sequence[float], {"type": "array", "items": {"type": "number"}}),
        (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
        (Mapping[str, bool], {"type": "object", "additionalProperties": {"type": "boolean"}}),
        (dict, {"type": "object", "additionalProperties": {}}),
        (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
        (Optional[str], {"anyOf": [{"type": "string"}, {"type": "null"}]}),  # noqa: UP045
        (Union[int, str], {"anyOf": [{"type": "integer"}, {"type": "string"}]}),  # noqa: UP007
        (Literal["a", 1, True, None], {"enum": ["a", 1, True, None]}),
        (Annotated[int, "meta"], {"type": "integer"}),
        (
            list[dict[str, list[int] | None]],
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": {
                        "anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}]
                    },
                },
            },
        ),
    ],
)
def test_annotation_schema(annotation: object, schema: dict[str, Any]) -> None:
    assert compile_annotation(annotation).schema() == schema


@pytest.mark.parametrize(
    "annotation", [bytes, Custom, tuple[int, int], dict[int, str], Literal[1.5], set[int]]
)
def test_annotations_json_cannot_fill_are_refused(annotation: object) -> None:
    with pytest.raises(UnsupportedAnnotation):
        compile_annotation(annotation)


@pytest.mark.spec("RUN-023")
@pytest.mark.parametrize(
    ("annotation", "value", "accepted"),
    [
        (int, 1, True),
        (int, True, False),
        (int, 1.0, False),
        (float, 1, True),
        (float, 1.5, True),
        (float, False, False),
        (bool, True, True),
        (bool, 0, False),
        (str, "", True),
        (str, None, False),
        (int | None, None, True),
        (int | None, "1", False),
        (list[int], [1, 2], True),
        (list[int], [1, "2"], False),
        (list[int], {"0": 1}, False),
        (dict[str, int], {"a": 1}, True),
        (dict[str, int], {"a": None}, False),
        (dict[str, int], [1], False),
        (Literal[1], 1, True),
        (Literal[1], True, False),
        (Literal["x"], "y", False),
        (Any, {"anything": [None]}, True),
    ],
)
def test_convert_accepts_exactly_matching_values(
    annotation: object, value: object, accepted: bool
) -> None:
    json_type = compile_annotation(annotation)
    signature = PredictSignature(
        parameters=(),
        extra=json_type,
        streaming=False,
        is_async=False,
        returns=json_type,
    )
    if accepted:
        assert signature.bind({"x": value}) == {"x": value}
    else:
        with pytest.raises(ProtocolError) as info:
            signature.bind({"x": value})
        assert info.value.status == 422


def test_float_parameters_receive_floats() -> None:
    def predict(x: float, xs: list[float]) -> None:
        pass

    kwargs = PredictSignature.from_function(predict).bind({"x": 2, "xs": [1, 2.5]})
    assert kwargs == {"x": 2.0, "xs": [1.0, 2.5]}
    assert type(kwargs["x"]) is float
    assert all(type(v) is float for v in kwargs["xs"])


def test_mismatch_message_names_the_path() -> None:
    def predict(tags: dict[str, list[int]]) -> None:
        pass

    with pytest.raises(ProtocolError) as info:
        PredictSignature.from_function(predict).bind({"tags": {"a": [1, "x"]}})
    assert "tags.a[1]" in info.value.message
    assert "expected integer, got string" in info.value.message


@pytest.mark.spec("RUN-022", "RUN-024")
def test_bind_statuses() -> None:
    def predict(text: str, n: int = 1) -> None:
        pass

    signature = PredictSignature.from_function(predict)
    assert signature.bind({"text": "a"}) == {"text": "a"}
    with pytest.raises(ProtocolError) as missing:
        signature.bind({"n": 2})
    assert missing.value.status == 422
    with pytest.raises(ProtocolError) as unknown:
        signature.bind({"text": "a", "m": 2})
    assert unknown.value.status == 400
    assert "'m'" in unknown.value.message
    # A misspelt member is reported as unknown, not as the parameter it replaced.
    with pytest.raises(ProtocolError) as typo:
        signature.bind({"txt": "a"})
    assert typo.value.status == 400


def test_signature_of_a_bound_method_with_string_annotations() -> None:
    # This module uses ``from __future__ import annotations``: every annotation
    # here is a string that the signature reader must resolve.
    class Model(Pipeline):
        def predict(self, prompt: str, steps: int = 4, *, seed: int | None = None) -> list[str]:
            return [prompt] * steps

    signature = PredictSignature.from_function(Model().predict)
    assert [p.name for p in signature.parameters] == ["prompt", "steps", "seed"]
    assert [p.required for p in signature.parameters] == [True, False, False]
    assert signature.returns.schema() == {"type": "array", "items": {"type": "string"}}
    assert not signature.streaming
    assert not signature.is_async
    assert signature.extra is None


@pytest.mark.spec("RUN-036", "RUN-037")
def test_request_schema() -> None:
    sentinel = object()

    def predict(a: str, b: int = 2, c: object = sentinel, **rest: float) -> None:
        pass

    schema = PredictSignature.from_function(predict).request_schema()
    assert schema == {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "integer", "default": 2},
            "c": {},  # a default that is not JSON is left out, not mangled
        },
        "required": ["a"],
        "additionalProperties": {"type": "number"},
    }


def test_var_positional_is_ignored_and_positional_only_refused() -> None:
    def takes_args(*args: int, x: int = 0) -> None:
        pass

    assert [p.name for p in PredictSignature.from_function(takes_args).parameters] == ["x"]

    def positional(x: int, /) -> None:
        pass

    with pytest.raises(TypeError, match="positional-only"):
        PredictSignature.from_function(positional)

    def custom(x: Custom) -> None:
        pass

    with pytest.raises(UnsupportedAnnotation, match="'x'"):
        PredictSignature.from_function(custom)


def _sync_gen() -> Iterator[int]:
    yield 1


def _generator() -> Generator[dict[str, str], None, None]:
    yield {}


async def _async_gen() -> AsyncIterator[str]:
    yield ""


async def _coroutine() -> int:
    return 1


def _unannotated_gen():  # type: ignore[no-untyped-def]
    yield 1


@pytest.mark.spec("RUN-030", "RUN-038")
@pytest.mark.parametrize(
    ("fn", "streaming", "is_async", "returns"),
    [
        (_sync_gen, True, False, {"type": "integer"}),
        (
            _generator,
            True,
            False,
            {"type": "object", "additionalProperties": {"type": "string"}},
        ),
        (_async_gen, True, True, {"type": "string"}),
        (_coroutine, False, True, {"type": "integer"}),
        (_unannotated_gen, True, False, {}),
    ],
)
def test_kind_of_predict(fn: Any, streaming: bool, is_async: bool, returns: dict[str, Any]) -> None:
    signature = PredictSignature.from_function(fn)
    assert signature.streaming is streaming
    assert signature.is_async is is_async
    assert signature.returns.schema() == returns
    content = signature.response_content()
    assert list(content) == (["text/event-stream"] if streaming else ["application/json"])


@pytest.mark.spec("RUN-035")
def test_openapi_live_document_lists_the_live_routes() -> None:
    document = openapi_document(title="t", version="1", signature=None, secured=False)
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/health",
        "/openapi.json",
        "/stream/start",
        "/live-video-to-video",
        "/stream/params",
        "/stream/stop",
        "/stream/status",
    }
    start = document["components"]["schemas"]["StreamStartRequest"]
    assert start["required"] == ["gateway_request_id", "control_url", "events_url"]
    assert "security" not in document
    # Every $ref points at a schema the document defines.
    text = repr(document)
    for name in document["components"]["schemas"]:
        text = text.replace(f"#/components/schemas/{name}'", "")
    assert "#/components/schemas/" not in text


# -- properties --------------------------------------------------------------------

_JSON = st.recursive(
    # What parse_json can produce: no NaN, no infinity (1e400 is refused there).
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=10,
)

_TYPES = st.recursive(
    st.sampled_from([str, int, float, bool, None, Any, Literal["a", 2]]),
    lambda inner: st.one_of(
        inner.map(lambda t: list[t]),  # type: ignore[valid-type]
        inner.map(lambda t: dict[str, t]),  # type: ignore[valid-type]
        st.tuples(inner, inner).map(lambda ts: ts[0] | ts[1] if _unionable(ts) else ts[0]),
    ),
    max_leaves=4,
)


def _unionable(types: tuple[Any, Any]) -> bool:
    try:
        types[0] | types[1]
    except TypeError:
        return False
    return True


@given(_TYPES, _JSON)
def test_convert_is_total_and_idempotent(annotation: Any, value: Any) -> None:
    json_type: JsonType = compile_annotation(annotation)
    signature = PredictSignature(
        parameters=(), extra=json_type, streaming=False, is_async=False, returns=json_type
    )
    try:
        converted = signature.bind({"v": value})["v"]
    except ProtocolError as exc:
        assert exc.status == 422
        return
    assert is_plain_json(converted)
    assert signature.bind({"v": converted})["v"] == converted
    assert isinstance(json_type.schema(), collections.abc.Mapping)


# -- one attrs class as the parameter (RUN-120) ---------------------------------------


@attrs.frozen(kw_only=True)
class Box:
    width: int = attrs.field(validator=attrs.validators.gt(0))
    label: str = "box"
    tags: list[str] = attrs.field(factory=list)


@attrs.define
class Boxes:
    first: Box
    more: list[Box] | None = None


@attrs.define
class Loop:
    inner: Loop | None = None


class BoxPipeline(Pipeline):
    def predict(self, params: Box) -> dict[str, int]:
        return {"area": params.width}


@pytest.mark.spec("RUN-120", "RUN-036")
def test_a_single_attrs_parameter_is_the_body() -> None:
    signature = PredictSignature.from_function(BoxPipeline().predict)
    assert [p.name for p in signature.parameters] == ["width", "label", "tags"]
    assert signature.request_schema() == {
        "type": "object",
        "properties": {
            "width": {"type": "integer"},
            "label": {"type": "string", "default": "box"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["width"],
        "additionalProperties": False,
    }
    assert signature.bind({"width": 3}) == {"params": Box(width=3)}
    assert signature.bind({"width": 3, "tags": ["a"]}) == {"params": Box(width=3, tags=["a"])}


@pytest.mark.spec("RUN-120", "RUN-022", "RUN-023", "RUN-024")
@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"width": 3, "height": 2}, 400, "height"),
        ({"label": "x"}, 422, "width"),
        ({"width": "3"}, 422, "width"),
        ({"width": 0}, 422, "Box refused"),  # the class's own validator
    ],
)
def test_a_single_attrs_parameter_refuses_bad_bodies(
    body: dict[str, Any], status: int, words: str
) -> None:
    signature = PredictSignature.from_function(BoxPipeline().predict)
    with pytest.raises(ProtocolError) as info:
        signature.bind(body)
    assert info.value.status == status
    assert words in str(info.value)


@pytest.mark.spec("RUN-120")
def test_nested_attrs_classes_are_json_objects() -> None:
    json_type = compile_annotation(Boxes)
    value = json_type.convert({"first": {"width": 1}, "more": [{"width": 2, "label": "b"}]}, "x")
    assert value == Boxes(first=Box(width=1), more=[Box(width=2, label="b")])
    for bad, words in [
        ({"first": {"width": 1, "depth": 1}}, "x.first: unknown member(s) 'depth'"),
        ({"more": None}, "x: missing member(s) 'first'"),
        ({"first": {"width": -1}}, "x.first: Box refused"),
        ({"first": []}, "x.first: expected Box"),
    ]:
        with pytest.raises(Exception, match=re.escape(words)):
            json_type.convert(bad, "x")
    schema = json_type.schema()
    assert schema["required"] == ["first"]
    assert schema["properties"]["first"]["title"] == "Box"


def test_an_attrs_class_that_contains_itself_is_refused() -> None:
    with pytest.raises(UnsupportedAnnotation, match="refers to itself"):
        compile_annotation(Loop)


def test_numbers_past_float_range_are_refused_not_read_as_infinity() -> None:
    """``1e400`` in a body is invalid JSON (Go's decoder refuses it too), and an integer too
    large for a ``float`` parameter is a 422, not an OverflowError or an infinity."""
    with pytest.raises(InvalidMessage):
        parse_json(b'{"v": 1e400}', "body")
    assert parse_json(b'{"v": 1e300}', "body") == {"v": 1e300}
    signature = PredictSignature(
        parameters=(),
        extra=compile_annotation(float),
        streaming=False,
        is_async=False,
        returns=compile_annotation(float),
    )
    with pytest.raises(ProtocolError) as caught:
        signature.bind({"v": 10**400})
    assert caught.value.status == 422
    assert signature.bind({"v": 10**300})["v"] == 1e300
