"""``Pipeline``: the request/response runner, and what its ``predict`` signature means.

The signature of ``predict`` *is* the API: each keyword parameter is a member
of the ``POST /predict`` JSON body, its annotation says which JSON values it
takes, its default makes it optional. :class:`PredictSignature` reads the
signature once, at app build time, and answers three questions from it:

* is a request body acceptable (RUN-020..024: 400 for an unknown member, 422
  for a missing or mistyped one), and which keyword arguments does it give;
* what is the JSON Schema of the body and of the response (RUN-036..038);
* is ``predict`` async, and does it stream (a generator means SSE, RUN-030).

The OpenAPI document built from these schemas lives in :mod:`._openapi`.

An annotation that no JSON value can satisfy (a custom class, ``bytes``) is
refused when the app is built, not when the first request fails.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from .._errors import ProtocolError
from .._wire.util import is_plain_json

__all__ = [
    "JsonType",
    "Pipeline",
    "PredictParameter",
    "PredictSignature",
    "UnsupportedAnnotation",
    "compile_annotation",
]


class Pipeline:
    """Subclass and define ``predict``; override ``setup`` to load models once.

    ``predict`` may be ``def`` (runs in a worker thread), ``async def``, or a
    generator of either kind (the response is then a server-sent event stream).
    Its keyword parameters are the members of the request body.
    """

    if typing.TYPE_CHECKING:
        # Declared as an attribute, not a method, so that any signature overrides it.
        predict: Callable[..., Any]

    def setup(self) -> None:
        """Load models; called once per process, before the first ``predict``."""


# -- annotations as JSON types -------------------------------------------------------

JsonKind = Literal[
    "any",
    "string",
    "integer",
    "number",
    "boolean",
    "null",
    "array",
    "object",
    "union",
    "enum",
    "model",
]

_JSON_NAMES: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def json_type_name(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    for kind, name in _JSON_NAMES.items():
        if isinstance(value, kind):
            return name
    return type(value).__name__


class _Mismatch(Exception):
    def __init__(self, path: str, expected: str, value: object) -> None:
        super().__init__(f"{path}: expected {expected}, got {json_type_name(value)}")

    @classmethod
    def saying(cls, message: str) -> _Mismatch:
        mismatch = cls.__new__(cls)
        Exception.__init__(mismatch, message)
        return mismatch


@attrs.frozen
class JsonType:
    """A compiled annotation: checks JSON values and describes them in JSON Schema."""

    kind: JsonKind
    label: str
    #: Array items or object values.
    item: JsonType | None = None
    #: Union members.
    options: tuple[JsonType, ...] = ()
    #: Literal values.
    values: tuple[Any, ...] = ()
    #: An attrs class read from a JSON object: the class and its init members.
    model: type | None = None
    members: tuple[PredictParameter, ...] = ()

    def convert(self, value: object, path: str) -> Any:
        """``value`` if it fits (ints widened to float for ``float``), else ``_Mismatch``."""
        kind = self.kind
        if kind == "any":
            return value
        if kind == "string" and isinstance(value, str):
            return value
        if kind == "boolean" and isinstance(value, bool):
            return value
        if kind == "null" and value is None:
            return None
        if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind == "array" and isinstance(value, list):
            assert self.item is not None
            return [self.item.convert(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if kind == "object" and isinstance(value, dict):
            assert self.item is not None
            return {k: self.item.convert(v, f"{path}.{k}") for k, v in value.items()}
        if kind == "union":
            for option in self.options:
                try:
                    return option.convert(value, path)
                except _Mismatch:
                    continue
        if kind == "enum" and any(type(v) is type(value) and v == value for v in self.values):
            return value
        if kind == "model" and isinstance(value, dict):
            members = {m.name: m for m in self.members}
            unknown = [name for name in value if name not in members]
            if unknown:
                raise _Mismatch.saying(f"{path}: unknown member(s) {_names(unknown)}")
            missing = [m.name for m in self.members if m.required and m.name not in value]
            if missing:
                raise _Mismatch.saying(f"{path}: missing member(s) {_names(missing)}")
            converted = {
                k: members[k].type.convert(v, f"{path}.{k[:64]}") for k, v in value.items()
            }
            return self.build(converted, path)
        raise _Mismatch(path, self.label, value)

    def build(self, members: dict[str, Any], path: str) -> Any:
        """An instance of :attr:`model` from converted members; its validators may refuse."""
        assert self.model is not None
        try:
            return self.model(**members)
        except (TypeError, ValueError, ProtocolError) as exc:  # its converters and validators
            raise _Mismatch.saying(f"{path}: {self.label} refused it: {exc}"[:500]) from None

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of this type (RUN-037)."""
        if self.kind == "any":
            return {}
        if self.kind == "array":
            assert self.item is not None
            return {"type": "array", "items": self.item.schema()}
        if self.kind == "object":
            assert self.item is not None
            return {"type": "object", "additionalProperties": self.item.schema()}
        if self.kind == "union":
            return {"anyOf": [option.schema() for option in self.options]}
        if self.kind == "enum":
            return {"enum": list(self.values)}
        if self.kind == "model":
            return {
                "title": self.label,
                "type": "object",
                "properties": {m.name: m.schema() for m in self.members},
                "required": [m.name for m in self.members if m.required],
                "additionalProperties": False,
            }
        return {"type": self.kind}


ANY = JsonType("any", "any JSON value")
_SCALARS: dict[object, JsonType] = {
    str: JsonType("string", "string"),
    int: JsonType("integer", "integer"),
    float: JsonType("number", "number"),
    bool: JsonType("boolean", "boolean"),
    None: JsonType("null", "null"),
    type(None): JsonType("null", "null"),
}
_SEQUENCES = (list, collections.abc.Sequence, collections.abc.MutableSequence)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_ITERATORS = (
    collections.abc.Iterator,
    collections.abc.Iterable,
    collections.abc.Generator,
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncGenerator,
)


class UnsupportedAnnotation(TypeError):
    """An annotation no JSON value can satisfy."""


def compile_annotation(annotation: object) -> JsonType:
    """Compile a parameter annotation; raises :class:`UnsupportedAnnotation` (a TypeError).

    Supported: no annotation, ``Any``, ``object``, ``str``, ``int``, ``float``,
    ``bool``, ``None``, ``list[T]`` / ``Sequence[T]``, ``dict[str, T]`` /
    ``Mapping[str, T]``, unions (``X | None``), ``Literal[...]`` of JSON scalars,
    ``Annotated[T, ...]``, and attrs classes whose init members are all of these
    (read from a JSON object, built with the class's own validators).
    """
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
        return ANY
    scalar = _SCALARS.get(annotation) if isinstance(annotation, typing.Hashable) else None
    if scalar is not None:
        return scalar
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return compile_annotation(args[0])
    if annotation in _SEQUENCES or origin in _SEQUENCES:
        item = compile_annotation(args[0]) if args else ANY
        return JsonType("array", f"list[{item.label}]", item=item)
    if annotation in _MAPPINGS or origin in _MAPPINGS:
        if args and args[0] is not str:
            raise UnsupportedAnnotation(f"{annotation!r}: JSON object keys are strings")
        item = compile_annotation(args[1]) if args else ANY
        return JsonType("object", f"dict[str, {item.label}]", item=item)
    if origin is typing.Union or origin is types.UnionType:
        options = tuple(compile_annotation(arg) for arg in args)
        return JsonType("union", " | ".join(o.label for o in options), options=options)
    if origin is Literal:
        if not all(v is None or isinstance(v, str | int | bool) for v in args):
            raise UnsupportedAnnotation(f"{annotation!r}: Literal values must be JSON scalars")
        return JsonType("enum", "one of " + ", ".join(map(repr, args)), values=tuple(args))
    if isinstance(annotation, type) and attrs.has(annotation):
        return _compile_model(annotation)
    raise UnsupportedAnnotation(
        f"{annotation!r} cannot be read from JSON; use str, int, float, bool, None, "
        "list[...], dict[str, ...], a union, Literal[...], an attrs class or Any"
    )


_COMPILING: set[type] = set()


def _compile_model(cls: type) -> JsonType:
    """An attrs class as a JSON object: one member per ``__init__`` argument."""
    if cls in _COMPILING:
        raise UnsupportedAnnotation(f"{cls.__qualname__} refers to itself")
    try:
        attrs.resolve_types(cls)
    except (NameError, TypeError) as exc:
        raise UnsupportedAnnotation(
            f"{cls.__qualname__}: cannot resolve its types: {exc}"
        ) from None
    _COMPILING.add(cls)
    try:
        members: list[PredictParameter] = []
        for field in attrs.fields(cls):
            if not field.init:
                continue
            name = field.alias or field.name
            try:
                json_type = compile_annotation(
                    inspect.Parameter.empty if field.type is None else field.type
                )
            except UnsupportedAnnotation as exc:
                raise UnsupportedAnnotation(f"{cls.__qualname__}.{name}: {exc}") from None
            if field.default is attrs.NOTHING:
                default: Any = _REQUIRED
            elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
                default = _UNDOCUMENTED
            else:
                default = field.default
            members.append(PredictParameter(name, json_type, default))
    finally:
        _COMPILING.discard(cls)
    return JsonType("model", cls.__qualname__, model=cls, members=tuple(members))


def _lenient(annotation: object) -> JsonType:
    """For return types: document what we can, ``{}`` for anything else."""
    try:
        return compile_annotation(annotation)
    except UnsupportedAnnotation:
        return ANY


# -- the predict signature ----------------------------------------------------------

_REQUIRED: Any = object()
#: A default made by a factory: the member is optional, its default not shown.
_UNDOCUMENTED: Any = object()
#: Longest list of names quoted in one error message.
_MAX_NAMES = 20


def _names(names: collections.abc.Iterable[str]) -> str:
    listed = sorted(names)
    text = ", ".join(repr(n[:64]) for n in listed[:_MAX_NAMES])
    return text + (", ..." if len(listed) > _MAX_NAMES else "")


@attrs.frozen
class PredictParameter:
    """One keyword parameter of ``predict``: a member of the request body."""

    name: str
    type: JsonType
    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def schema(self) -> dict[str, Any]:
        schema = self.type.schema()
        if not self.required and self.default is not _UNDOCUMENTED and is_plain_json(self.default):
            schema = {**schema, "default": self.default}
        return schema


@attrs.frozen
class PredictSignature:
    """What a ``predict`` function accepts and returns, read once from its signature."""

    parameters: tuple[PredictParameter, ...]
    #: The value type of ``**kwargs``, or None when unknown members are refused.
    extra: JsonType | None
    #: A generator (sync or async): the response is an SSE stream (RUN-030).
    streaming: bool
    #: ``async def`` (coroutine or async generator): runs on the event loop.
    is_async: bool
    #: The return type, or the item type of a stream.
    returns: JsonType
    #: ``predict(self, params: SomeAttrsClass)``: the body holds the class's members
    #: and ``predict`` gets one instance, passed as this keyword.
    model_parameter: str | None = None
    model: JsonType | None = None

    @classmethod
    def from_function(cls, fn: Callable[..., Any]) -> PredictSignature:
        """Read ``fn`` (usually the bound ``pipeline.predict``); TypeError if unusable."""
        try:
            signature = inspect.signature(fn, eval_str=True)
        except (NameError, SyntaxError, TypeError, ValueError) as exc:
            raise TypeError(f"cannot read the signature of predict: {exc}") from exc
        parameters: list[PredictParameter] = []
        extra: JsonType | None = None
        for p in signature.parameters.values():
            where = f"predict parameter {p.name!r}"
            try:
                json_type = compile_annotation(p.annotation)
            except UnsupportedAnnotation as exc:
                raise UnsupportedAnnotation(f"{where}: {exc}") from None
            if p.kind is p.POSITIONAL_ONLY:
                raise TypeError(f"{where} is positional-only; a JSON body can only pass keywords")
            if p.kind is p.VAR_POSITIONAL:
                continue
            if p.kind is p.VAR_KEYWORD:
                extra = json_type
                continue
            default = _REQUIRED if p.default is p.empty else p.default
            parameters.append(PredictParameter(p.name, json_type, default))
        target = inspect.unwrap(fn)
        is_asyncgen = inspect.isasyncgenfunction(target)
        streaming = is_asyncgen or inspect.isgeneratorfunction(target)
        model_parameter: str | None = None
        model: JsonType | None = None
        if len(parameters) == 1 and extra is None and parameters[0].type.kind == "model":
            model_parameter, model = parameters[0].name, parameters[0].type
            parameters = list(model.members)
        returns = signature.return_annotation
        if streaming:
            args = typing.get_args(returns)
            origin = typing.get_origin(returns)
            returns = args[0] if origin in _ITERATORS and args else inspect.Parameter.empty
        return cls(
            parameters=tuple(parameters),
            extra=extra,
            streaming=streaming,
            is_async=is_asyncgen or inspect.iscoroutinefunction(target),
            returns=_lenient(returns),
            model_parameter=model_parameter,
            model=model,
        )

    def bind(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments for ``predict`` from a decoded body, or ProtocolError.

        400 for members ``predict`` does not take (RUN-024), 422 for a missing
        required parameter (RUN-022), a value of the wrong type (RUN-023) or an
        attrs parameter class that refuses the values (RUN-120).
        """
        known = {p.name: p for p in self.parameters}
        unknown = [name for name in arguments if name not in known]
        if unknown and self.extra is None:
            accepted = _names(known) or "no members"
            raise ProtocolError(
                f"unknown member(s) {_names(unknown)}; predict takes {accepted}", status=400
            )
        missing = [p.name for p in self.parameters if p.required and p.name not in arguments]
        if missing:
            raise ProtocolError(f"missing required member(s) {_names(missing)}", status=422)
        kwargs: dict[str, Any] = {}
        try:
            for name, value in arguments.items():
                parameter = known.get(name)
                json_type = parameter.type if parameter is not None else self.extra
                assert json_type is not None
                kwargs[name] = json_type.convert(value, name[:64])
            if self.model is not None and self.model_parameter is not None:
                kwargs = {self.model_parameter: self.model.build(kwargs, "body")}
        except _Mismatch as exc:
            raise ProtocolError(f"invalid member {exc}", status=422) from None
        return kwargs

    def request_schema(self) -> dict[str, Any]:
        """The JSON Schema of the ``POST /predict`` body (RUN-036)."""
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {p.name: p.schema() for p in self.parameters},
            "required": [p.name for p in self.parameters if p.required],
            "additionalProperties": False if self.extra is None else self.extra.schema(),
        }
        return schema

    def response_content(self) -> dict[str, Any]:
        """The OpenAPI ``content`` of a 200 answer (RUN-038)."""
        if self.streaming:
            return {
                "text/event-stream": {
                    "schema": {
                        "type": "string",
                        "description": (
                            "Server-sent events: one `data: <JSON>` event per yielded value, "
                            '`data: {"error": ...}` if predict fails mid-stream, '
                            "then `data: [DONE]`."
                        ),
                    },
                    "x-item-schema": self.returns.schema(),
                }
            }
        return {"application/json": {"schema": self.returns.schema()}}
