"""``Pipeline``: the request/response runner, and what its ``predict`` signature means.

The signature of ``predict`` *is* the API: each keyword parameter is a member
of the ``POST /predict`` JSON body, its annotation says which JSON values it
takes, its default makes it optional. :class:`PredictSignature` reads the
signature once, at app build time, and answers three questions from it:

* is a request body acceptable (RUN-020..024: 400 for an unknown member, 422
  for a missing or mistyped one), and which keyword arguments does it give;
* what is the JSON Schema of the body and of the response (RUN-036..038);
* is ``predict`` async, and does it stream (a generator means SSE, RUN-030).

How an annotation becomes a JSON type (checked values, a JSON Schema) is
:mod:`.json_types`; an annotation that no JSON value can satisfy (a custom
class, ``bytes``) is refused when the app is built, not when the first request
fails. The OpenAPI document built from these schemas lives in :mod:`.openapi`.
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .._errors import ProtocolError
from .json_types import (
    ANY,
    REQUIRED,
    JsonType,
    Mismatch,
    PredictParameter,
    UnsupportedAnnotation,
    compile_annotation,
    quoted_names,
)

__all__ = ["Pipeline", "PredictSignature"]


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


# -- the predict signature ----------------------------------------------------------

_ITERATORS = (
    collections.abc.Iterator,
    collections.abc.Iterable,
    collections.abc.Generator,
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncGenerator,
)


def _lenient(annotation: object) -> JsonType:
    """For return types: document what we can, ``{}`` for anything else."""
    try:
        return compile_annotation(annotation)
    except UnsupportedAnnotation:
        return ANY


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
            default = REQUIRED if p.default is p.empty else p.default
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
            accepted = quoted_names(known) or "no members"
            raise ProtocolError(
                f"unknown member(s) {quoted_names(unknown)}; predict takes {accepted}", status=400
            )
        missing = [p.name for p in self.parameters if p.required and p.name not in arguments]
        if missing:
            raise ProtocolError(f"missing required member(s) {quoted_names(missing)}", status=422)
        kwargs: dict[str, Any] = {}
        try:
            for name, value in arguments.items():
                parameter = known.get(name)
                json_type = parameter.type if parameter is not None else self.extra
                assert json_type is not None
                kwargs[name] = json_type.convert(value, name[:64])
            if self.model is not None and self.model_parameter is not None:
                kwargs = {self.model_parameter: self.model.build(kwargs, "body")}
        except Mismatch as exc:
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
