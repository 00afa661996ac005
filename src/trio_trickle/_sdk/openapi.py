"""The runner's OpenAPI 3.1.0 document (RUN-035): every route, its bodies and errors.

Kept apart from :mod:`._pipeline`, which reads ``predict``'s signature: this
module only assembles the document, from the schemas a
:class:`~trio_trickle.PredictSignature` gives (``Pipeline`` runners) or from
the fixed live-stream routes (``LivePipeline`` runners). The runner app builds
it once and serves it at ``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipeline import PredictSignature

__all__ = ["openapi_document"]

_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
_STREAM_ID = {
    "name": "X-Stream-Id",
    "in": "header",
    "required": False,
    "description": "gateway_request_id of the target session (RUN-058)",
    "schema": {"type": "string"},
}
_URL = {"type": "string", "format": "uri", "pattern": "^https?://"}

_COMPONENTS: dict[str, Any] = {
    "ErrorResponse": {
        "type": "object",
        "properties": {
            "detail": {
                "type": "object",
                "properties": {"msg": {"type": "string", "minLength": 1}},
                "required": ["msg"],
            }
        },
        "required": ["detail"],
    },
    "HealthResponse": {
        "type": "object",
        "properties": {"status": {"enum": ["LOADING", "OK", "ERROR", "IDLE"]}},
        "required": ["status"],
    },
}

_LIVE_COMPONENTS: dict[str, Any] = {
    "StreamStartRequest": {
        "type": "object",
        "properties": {
            "gateway_request_id": {"type": "string", "minLength": 1, "maxLength": 256},
            "control_url": _URL,
            "events_url": _URL,
            "subscribe_url": _URL,
            "publish_url": _URL,
            "data_url": _URL,
            "params": {"anyOf": [{"type": "object"}, {"type": "null"}]},
        },
        "required": ["gateway_request_id", "control_url", "events_url"],
        "additionalProperties": True,
    },
    "StreamStartResponse": {
        "type": "object",
        "properties": {"status": {"const": "started"}, "gateway_request_id": {"type": "string"}},
        "required": ["status", "gateway_request_id"],
    },
    "LiveVideoToVideoResponse": {
        "type": "object",
        "properties": {
            k: {"type": "string"} for k in ("publish_url", "subscribe_url", "control_url")
        },
        "required": ["publish_url", "subscribe_url", "control_url"],
    },
    "SessionStatus": {
        "type": "object",
        "properties": {
            "gateway_request_id": {"type": "string"},
            "state": {"enum": ["starting", "running", "stopping"]},
            "started_at_ms": {"type": "integer"},
            "params": {"anyOf": [{"type": "object"}, {"type": "null"}]},
            "fps": {
                "type": "object",
                "properties": {
                    k: {"type": "number"}
                    for k in (
                        "ingress_video_fps",
                        "ingress_audio_fps",
                        "egress_video_fps",
                        "egress_audio_fps",
                    )
                },
            },
            "frames_in": {"type": "integer"},
            "frames_out": {"type": "integer"},
            "frames_dropped": {"type": "integer"},
        },
    },
    "StreamStatusResponse": {
        "type": "object",
        "properties": {
            "status": {"enum": ["LOADING", "OK", "ERROR", "IDLE"]},
            "capacity": {"type": "integer", "minimum": 1},
            "sessions": {"type": "array", "items": {"$ref": "#/components/schemas/SessionStatus"}},
            "last_error": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["status", "capacity", "sessions", "last_error"],
    },
}


def _json(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": dict(schema)}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Invalid request",
        401: "Missing or wrong bearer token",
        404: "No such session",
        409: "A session with this id is running",
        422: "Body does not match predict's parameters",
        500: "A pipeline hook failed",
        503: "Loading, failed to load, or at capacity",
    }
    return {str(c): {"description": text[c], "content": _json(_ERROR_REF)} for c in codes}


def _operation(
    summary: str,
    ok: Mapping[str, Any],
    errors: tuple[int, ...],
    *,
    body: Mapping[str, Any] | None = None,
    stream_id: bool = False,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": "OK", "content": dict(ok)}, **_errors(*errors)},
    }
    if body is not None:
        operation["requestBody"] = dict(body)
    if stream_id:
        operation["parameters"] = [dict(_STREAM_ID)]
    return operation


def _predict_paths(signature: PredictSignature) -> dict[str, Any]:
    body = {"required": False, "content": _json(_ref("PredictRequest"))}
    operation = _operation(
        "Run predict with the body's members as keyword arguments",
        signature.response_content(),
        (400, 422, 500, 503),
        body=body,
    )
    alias = {**operation, "summary": "Alias of POST /predict"}
    return {
        "/predict": {"post": {**operation, "operationId": "predict"}},
        "/run": {"post": {**alias, "operationId": "run"}},
    }


def _live_paths() -> dict[str, Any]:
    start_body = {"required": True, "content": _json(_ref("StreamStartRequest"))}
    any_object = {"required": True, "content": _json({"type": "object"})}
    stop_body = {"required": False, "content": {"*/*": {"schema": {}}}}
    return {
        "/stream/start": {
            "post": _operation(
                "Start a session",
                _json(_ref("StreamStartResponse")),
                (400, 409, 500, 503),
                body=start_body,
            )
        },
        "/live-video-to-video": {
            "post": _operation(
                "Start a session (ai-runner route)",
                _json(_ref("LiveVideoToVideoResponse")),
                (400, 409, 500, 503),
                body=start_body,
            )
        },
        "/stream/params": {
            "post": _operation(
                "Update the params of a session",
                _json({"type": "object", "properties": {"status": {"const": "ok"}}}),
                (400, 404, 500),
                body=any_object,
                stream_id=True,
            )
        },
        "/stream/stop": {
            "post": _operation(
                "Stop a session and wait for its teardown (idempotent)",
                _json({"type": "object", "properties": {"status": {"const": "stopped"}}}),
                (400,),
                body=stop_body,
                stream_id=True,
            )
        },
        "/stream/status": {
            "get": _operation(
                "Health, capacity and active sessions",
                _json(_ref("StreamStatusResponse")),
                (),
                stream_id=True,
            )
        },
    }


def openapi_document(
    *, title: str, version: str, signature: PredictSignature | None, secured: bool
) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of a runner (RUN-035): every route it serves.

    ``signature`` is None for a ``LivePipeline`` runner. With ``secured`` every
    operation but ``/health`` and ``/openapi.json`` requires the bearer token.
    """
    schemas = dict(_COMPONENTS)
    health = _json(_ref("HealthResponse"))
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "summary": "LOADING, OK, ERROR or IDLE",
                "responses": {
                    "200": {"description": "OK or IDLE", "content": health},
                    "503": {"description": "LOADING or ERROR", "content": health},
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "OK", "content": _json({"type": "object"})}},
            }
        },
    }
    if signature is not None:
        schemas["PredictRequest"] = signature.request_schema()
        paths.update(_predict_paths(signature))
    else:
        schemas.update(_LIVE_COMPONENTS)
        paths.update(_live_paths())
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if secured:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
        for path, item in paths.items():
            for operation in item.values():
                if path in ("/health", "/openapi.json"):
                    operation["security"] = []
                else:
                    operation["responses"].update(_errors(401))
    return document
