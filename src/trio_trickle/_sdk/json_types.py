"""Python annotations as JSON types: what a ``predict`` parameter accepts, checked and described.

Apart from :mod:`.pipeline` because it is a small compiler of its own:
:func:`compile_annotation` turns an annotation (``int``, ``list[str]``,
``X | None``, ``Literal[...]``, an attrs class...) into a :class:`JsonType`
that converts decoded JSON values (RUN-023) and writes their JSON Schema
(RUN-037). An annotation that no JSON value can satisfy raises
:class:`UnsupportedAnnotation` when the app is built.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import sys
import types
import typing
from typing import Any, Literal

import attrs

from .._errors import ProtocolError
from .._wire.json_codec import is_plain_json

__all__ = [
    "JsonType",
    "PredictParameter",
    "UnsupportedAnnotation",
    "compile_annotation",
]


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

#: Largest finite float: a JSON number past it has no float value.
_FLOAT_MAX = sys.float_info.max

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


class Mismatch(Exception):
    """A JSON value that does not fit a :class:`JsonType`; the message says where and why."""

    def __init__(self, path: str, expected: str, value: object) -> None:
        super().__init__(f"{path}: expected {expected}, got {json_type_name(value)}")

    @classmethod
    def saying(cls, message: str) -> Mismatch:
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
        """``value`` if it fits (ints widened to float for ``float``), else ``Mismatch``."""
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
            # An int past float's range, or an infinity, is no JSON number a float can hold.
            number = float(value) if -_FLOAT_MAX <= value <= _FLOAT_MAX else math.inf
            if math.isfinite(number):
                return number
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
                except Mismatch:
                    continue
        if kind == "enum" and any(type(v) is type(value) and v == value for v in self.values):
            return value
        if kind == "model" and isinstance(value, dict):
            members = {m.name: m for m in self.members}
            unknown = [name for name in value if name not in members]
            if unknown:
                raise Mismatch.saying(f"{path}: unknown member(s) {quoted_names(unknown)}")
            missing = [m.name for m in self.members if m.required and m.name not in value]
            if missing:
                raise Mismatch.saying(f"{path}: missing member(s) {quoted_names(missing)}")
            converted = {
                k: members[k].type.convert(v, f"{path}.{k[:64]}") for k, v in value.items()
            }
            return self.build(converted, path)
        raise Mismatch(path, self.label, value)

    def build(self, members: dict[str, Any], path: str) -> Any:
        """An instance of :attr:`model` from converted members; its validators may refuse."""
        assert self.model is not None
        try:
            return self.model(**members)
        except (TypeError, ValueError, ProtocolError) as exc:  # its converters and validators
            raise Mismatch.saying(f"{path}: {self.label} refused it: {exc}"[:500]) from None

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
                default: Any = REQUIRED
            elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
                default = _UNDOCUMENTED
            else:
                default = field.default
            members.append(PredictParameter(name, json_type, default))
    finally:
        _COMPILING.discard(cls)
    return JsonType("model", cls.__qualname__, model=cls, members=tuple(members))


# -- members of a JSON object: predict parameters and attrs fields -------------------

REQUIRED: Any = object()
#: A default made by a factory: the member is optional, its default not shown.
_UNDOCUMENTED: Any = object()
#: Longest list of names quoted in one error message.
_MAX_NAMES = 20


def quoted_names(names: collections.abc.Iterable[str]) -> str:
    listed = sorted(names)
    text = ", ".join(repr(n[:64]) for n in listed[:_MAX_NAMES])
    return text + (", ..." if len(listed) > _MAX_NAMES else "")


@attrs.frozen
class PredictParameter:
    """One keyword parameter of ``predict``: a member of the request body."""

    name: str
    type: JsonType
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def schema(self) -> dict[str, Any]:
        schema = self.type.schema()
        if not self.required and self.default is not _UNDOCUMENTED and is_plain_json(self.default):
            schema = {**schema, "default": self.default}
        return schema
