"""The runner's HTTP app (quart-trio): ``/predict`` for a ``Pipeline``, ``/stream/*`` for a
``LivePipeline``, ``/health`` and ``/openapi.json`` for both.

Health is owned here. ``setup()`` runs *concurrently* with serving, started
from the ASGI lifespan (sync setup in a worker thread), so ``/health`` answers
``LOADING`` from the first connection until setup returns (RUN-010/011), then
``IDLE``/``OK`` from live sessions and in-flight predicts, or a sticky
``ERROR`` if setup raised (RUN-012). Nothing on the health path awaits the
pipeline (RUN-017).

Errors are mapped in one place: every ``ProtocolError`` raised by a handler,
the wire decoders or the stream manager becomes its status with the body
``{"detail":{"msg":...}}`` (RUN-002); routing errors get the same body
(RUN-007); anything else, a before-request hook's failure included, is a 500
saying only ``internal error``, the detail going to the log (RUN-128).

Request bodies are bounded before they are buffered (RUN-127): 1 MiB on the
stream control routes, ``max_predict_bytes`` on ``/predict``; the bound is also
Quart's ``MAX_CONTENT_LENGTH``, so a body without a length stops being read at it.

The app needs the ASGI lifespan protocol (hypercorn speaks it): that is where
setup and the session manager start, and where every session stops with
reason ``shutdown`` when the server stops (RUN-105).
"""

from __future__ import annotations

import functools
import hmac
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .._errors import InvalidMessage, PayloadTooLarge, ProtocolError
from .._sdk.hooks import call_hook, iterate_in_thread
from .._sdk.live_pipeline import LivePipeline
from .._sdk.openapi import openapi_document
from .._sdk.pipeline import Pipeline, PredictSignature
from .._wire.runner import (
    HEADER_STREAM_ID,
    SSE_DONE,
    ErrorResponse,
    HealthResponse,
    HealthStatus,
    LiveVideoToVideoResponse,
    PredictRequest,
    SessionStatus,
    StreamParamsRequest,
    StreamParamsResponse,
    StreamStartRequest,
    StreamStartResponse,
    StreamStatusResponse,
    StreamStopRequest,
    StreamStopResponse,
    bearer_token,
    encode_sse_data,
    encode_sse_error,
)
from .._wire.runner_status import MAX_ERROR_MESSAGE_LENGTH
from .._wire.telemetry import (
    ERROR_PIPELINE_LOAD_FAILED,
    EVENT_ERROR,
    EVENT_PIPELINE_LOAD_START,
    EVENT_PIPELINE_LOADED,
    EVENT_RUNNER_READY,
    TelemetryError,
)
from .._wire.util import dump_json

if TYPE_CHECKING:
    from .._session.manager import StreamManager

__all__ = ["RunnerApp", "make_app"]

log = logging.getLogger("trio_trickle.runner")

#: Routes anyone may call even when a bearer token is configured (RUN-004).
_OPEN_ENDPOINTS = frozenset({"health", "openapi"})
#: Largest body of ``/stream/start``, ``/live-video-to-video``, ``/stream/params`` and
#: ``/stream/stop`` (RUN-127): a start body is a few URLs and params, like a control message.
CONTROL_MAX_BYTES = 1024 * 1024
#: Default largest ``/predict`` body (RUN-127), Quart's own default limit.
DEFAULT_PREDICT_MAX_BYTES = 16 * 1024 * 1024

ASGIScope = dict[str, Any]
ASGIReceive = Callable[[], Any]
ASGISend = Callable[[dict[str, Any]], Any]


def json_response(body: object, status: int = 200) -> Response:
    """Compact UTF-8 JSON with ``Content-Type: application/json`` (RUN-001)."""
    return Response(dump_json(body), status=status, content_type="application/json")


def error_response(status: int, message: str) -> Response:
    """The RUN-002 error body; the message is never empty and never huge."""
    text = (message or "error")[:MAX_ERROR_MESSAGE_LENGTH]
    # Member names echoed from a request may hold lone surrogates ("\ud800" in JSON),
    # which UTF-8 cannot carry; escape them rather than fail while reporting a failure.
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return json_response(ErrorResponse(message=text).to_wire(), status)


def _failure(what: str, exc: BaseException) -> str:
    """A hook failure as callers see it: the exception type, never its text (RUN-026/027)."""
    return f"{what}: {type(exc).__name__}"


async def _body(limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (RUN-127).

    A declared length over the limit is refused before anything is read; a body
    sent without one is cut off by Quart at the app's ``MAX_CONTENT_LENGTH``.
    """
    too_large = f"request body larger than {limit} bytes"
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(too_large)
    try:
        data = await request.get_data(as_text=False)
    except RequestEntityTooLarge:
        raise PayloadTooLarge(too_large) from None
    data = data if isinstance(data, bytes) else data.encode()
    if len(data) > limit:
        raise PayloadTooLarge(too_large)
    return data


def _stream_id() -> str | None:
    value = request.headers.get(HEADER_STREAM_ID, "").strip()
    return value or None


class RunnerApp:
    """One runner: the pipeline, its health, and the ASGI app that serves it.

    ``RunnerApp`` is itself an ASGI callable. ``capacity`` bounds concurrent
    sessions (``LivePipeline``) or concurrent ``predict`` calls (``Pipeline``;
    excess requests wait their turn, so a model is never entered by more
    callers than it was sized for). ``max_predict_bytes`` bounds a ``/predict``
    body (RUN-127). ``manager_options`` go to ``StreamManager``
    (``start_timeout``, ``stop_timeout``, ``settings``, ``client``).
    """

    def __init__(
        self,
        pipeline: Pipeline | LivePipeline,
        *,
        capacity: int = 1,
        token: str | None = None,
        model_id: str | None = None,
        title: str | None = None,
        version: str = "0.1.0",
        max_predict_bytes: int = DEFAULT_PREDICT_MAX_BYTES,
        **manager_options: Any,
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError("capacity must be an integer >= 1")
        if isinstance(max_predict_bytes, bool) or not isinstance(max_predict_bytes, int):
            raise ValueError("max_predict_bytes must be an integer >= 1")
        if max_predict_bytes < 1:
            raise ValueError("max_predict_bytes must be an integer >= 1")
        if token is not None and not token:
            raise ValueError("token must be None or a non-empty string")
        self.pipeline = pipeline
        self.capacity = capacity
        self.token = token
        self.model_id = model_id or None
        self.signature: PredictSignature | None = None
        self.manager: StreamManager | None = None
        #: Largest request body this runner's routes read (RUN-127).
        self.body_limit = CONTROL_MAX_BYTES
        if isinstance(pipeline, LivePipeline):
            from .._session.manager import StreamManager

            self.manager = StreamManager(pipeline, capacity=capacity, **manager_options)
        elif isinstance(pipeline, Pipeline):
            predict = getattr(pipeline, "predict", None)
            if not callable(predict):
                raise TypeError(f"{type(pipeline).__name__} does not define predict()")
            if manager_options:
                raise TypeError(f"unexpected options for a Pipeline: {sorted(manager_options)}")
            self.signature = PredictSignature.from_function(predict)
            self.body_limit = max_predict_bytes
        else:
            raise TypeError(f"{type(pipeline).__name__} is not a Pipeline or LivePipeline")
        self._openapi = openapi_document(
            title=title or type(pipeline).__name__,
            version=version,
            signature=self.signature,
            secured=token is not None,
        )
        self._setup_finished = trio.Event()
        self._setup_error: str | None = None
        self._in_flight = 0
        self._predict_slots = trio.CapacityLimiter(capacity)
        self._background = trio.CancelScope()
        self._background_done = trio.Event()
        self.asgi = self._build()

    # -- ASGI and lifecycle ----------------------------------------------------------

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        await self.asgi(scope, receive, send)  # type: ignore[arg-type]

    def _build(self) -> QuartTrio:
        app = QuartTrio(__name__)
        # Streams last as long as predict yields; Quart's default would cut them at 60 s.
        app.config["RESPONSE_TIMEOUT"] = None
        # Quart buffers a body as it arrives; this stops it at the one limit we read up to.
        app.config["MAX_CONTENT_LENGTH"] = self.body_limit
        route = app.add_url_rule
        route("/health", "health", self._health, methods=["GET"])
        route("/openapi.json", "openapi", self._openapi_route, methods=["GET"])
        if self.signature is not None:
            route("/predict", "predict", self._predict, methods=["POST"])
            route("/run", "run", self._predict, methods=["POST"])
        else:
            route("/stream/start", "stream_start", self._stream_start, methods=["POST"])
            route("/live-video-to-video", "lv2v", self._live_video_to_video, methods=["POST"])
            route("/stream/params", "stream_params", self._stream_params, methods=["POST"])
            route("/stream/stop", "stream_stop", self._stream_stop, methods=["POST"])
            route("/stream/status", "stream_status", self._stream_status, methods=["GET"])
        app.before_request(self._authorize)
        app.register_error_handler(ProtocolError, self._on_protocol_error)
        app.register_error_handler(HTTPException, self._on_http_exception)
        app.register_error_handler(Exception, self._on_exception)
        app.before_serving(self._start_background)
        app.after_serving(self._stop_background)
        return app

    async def _start_background(self) -> None:
        await self.asgi.nursery.start(self._run_background)

    async def _run_background(self, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            with self._background:
                async with trio.open_nursery() as nursery:
                    if self.manager is not None:
                        await nursery.start(functools.partial(self.manager.run))
                    nursery.start_soon(self._run_setup)
                    task_status.started()
        finally:
            self._background_done.set()

    async def _stop_background(self) -> None:
        """Server stopping: cancel the manager (sessions stop with reason shutdown)."""
        self._background.cancel()
        await self._background_done.wait()

    async def _run_setup(self) -> None:
        setup = getattr(self.pipeline, "setup", None)
        telemetry = self.manager.telemetry if self.manager is not None else None
        pipeline_ids = [type(self.pipeline).__name__]
        load_start_ms = int(time.time() * 1000)
        load_started = time.monotonic()
        if telemetry is not None:  # TEL-024
            telemetry.emit_process(EVENT_PIPELINE_LOAD_START, pipeline_ids=pipeline_ids)
        try:
            if setup is not None:
                # A load cancelled by shutdown is abandoned at once: it cannot be interrupted.
                await call_hook(setup, cancel_grace=0)
        except Exception as exc:
            log.exception("pipeline setup failed; the runner stays in ERROR")
            self._setup_error = _failure("setup failed", exc)
            if telemetry is not None:  # TEL-026
                error = TelemetryError(
                    error_type=ERROR_PIPELINE_LOAD_FAILED,
                    message=self._setup_error,
                    exception_type=type(exc).__name__,
                    recoverable=False,
                )
                telemetry.emit_process(EVENT_ERROR, pipeline_ids=pipeline_ids, error=error)
        else:
            if telemetry is not None:  # TEL-025, TEL-023
                now = time.monotonic()
                telemetry.emit_process(
                    EVENT_PIPELINE_LOADED,
                    pipeline_ids=pipeline_ids,
                    load_duration_ms=round((now - load_started) * 1000),
                    load_start_time_ms=load_start_ms,
                )
                startup = round((now - telemetry.started) * 1000)
                telemetry.emit_process(EVENT_RUNNER_READY, startup_ms=startup)
        finally:
            self._setup_finished.set()

    async def wait_setup(self) -> None:
        """Return once ``setup()`` returned or raised (see :attr:`health`)."""
        await self._setup_finished.wait()

    # -- health ----------------------------------------------------------------------

    @property
    def setup_error(self) -> str | None:
        """``setup failed: <ExceptionType>`` once setup raised, else None."""
        return self._setup_error

    @property
    def health(self) -> HealthStatus:
        """The ``/health`` status (RUN-009..014)."""
        if self._setup_error is not None:
            return HealthStatus.ERROR
        if not self._setup_finished.is_set():
            return HealthStatus.LOADING
        busy = self._in_flight > 0 or (self.manager is not None and self.manager.active_count > 0)
        return HealthStatus.OK if busy else HealthStatus.IDLE

    def _require_ready(self) -> None:
        status = self.health
        if status is HealthStatus.LOADING:
            raise ProtocolError("the pipeline is still loading", status=503)
        if status is HealthStatus.ERROR:
            raise ProtocolError(f"the pipeline is unavailable ({self._setup_error})", status=503)

    async def _health(self) -> Response:
        body = HealthResponse(status=self.health)
        response = json_response(body.to_wire(), body.http_status)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _openapi_route(self) -> Response:
        return json_response(self._openapi)

    # -- auth and errors -------------------------------------------------------------

    async def _authorize(self) -> None:
        if self.token is None or request.routing_exception is not None:
            return
        if request.endpoint in _OPEN_ENDPOINTS:
            return
        candidate = bearer_token(request.headers.get("Authorization"))
        # Compared as the bytes on the wire (ASGI headers are latin-1), in constant time
        # (RUN-005), against the token's UTF-8.
        if candidate is None or not hmac.compare_digest(
            candidate.encode("latin-1", "replace"), self.token.encode()
        ):
            raise ProtocolError("missing or wrong bearer token", status=401)

    async def _on_protocol_error(self, exc: ProtocolError) -> Response:
        response = error_response(exc.status, exc.message)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        if exc.status == 413:
            # The rest of the body is never read, so the connection cannot carry another
            # request: say so, and the server closes it after this answer (RUN-127).
            response.headers["Connection"] = "close"
        return response

    async def _on_http_exception(self, exc: HTTPException) -> Response:
        status = exc.code or 500
        response = error_response(status, exc.name or "error")
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
        return response

    async def _on_exception(self, exc: Exception) -> Response:
        """Anything unplanned, in a route or a before-request hook: a generic 500 (RUN-128).

        The detail (type, text, traceback) is logged, never sent: it may hold paths,
        URLs or secrets, and the caller cannot act on it anyway.
        """
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
        return error_response(500, "internal error")

    # -- request/response Pipeline ---------------------------------------------------

    async def _predict(self) -> Response:
        signature = self.signature
        assert signature is not None
        self._require_ready()
        sent = PredictRequest.from_bytes(await _body(self.body_limit))
        kwargs = signature.bind(sent.arguments)
        sent.require_unicode()  # RUN-122, after RUN-024's check of the member names
        assert isinstance(self.pipeline, Pipeline)
        call = functools.partial(self.pipeline.predict, **kwargs)
        if signature.streaming:
            response = Response(self._sse(call), status=200, content_type="text/event-stream")
            response.headers["Cache-Control"] = "no-cache"
            response.headers["X-Accel-Buffering"] = "no"
            response.timeout = None
            return response
        self._in_flight += 1
        try:
            async with self._predict_slots:
                try:
                    # A running predict is waited for, so capacity and health stay honest.
                    result = await call_hook(call, cancel_grace=math.inf)
                except Exception as exc:
                    log.exception("predict raised")
                    raise ProtocolError(_failure("predict failed", exc), status=500) from None
        finally:
            self._in_flight -= 1
        try:
            body = dump_json(result)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ProtocolError(_failure("predict returned non-JSON", exc), status=500) from None
        return Response(body, status=200, content_type="application/json")

    async def _sse(self, call: Callable[[], Any]) -> AsyncIterator[bytes]:
        """The SSE body: one event per item, an error event on failure, then ``[DONE]``.

        Counted as in flight from its first iteration (a body never iterated runs
        no user code); the capacity slot is held on behalf of a token because the
        body may be closed from another task than the one that iterated it.
        """
        owner = object()
        self._in_flight += 1
        try:
            await self._predict_slots.acquire_on_behalf_of(owner)
            try:
                error: str | None = None
                try:
                    items = self._stream_items(call)
                    try:
                        async for item in items:
                            try:
                                chunk = encode_sse_data(item)
                            except (TypeError, ValueError, RecursionError) as exc:
                                raise _NotJson(exc) from None
                            yield chunk
                    finally:
                        await items.aclose()
                except _NotJson as exc:
                    error = _failure("predict yielded non-JSON", exc.cause)
                except Exception as exc:
                    log.exception("streaming predict raised")
                    error = _failure("predict failed", exc)
                if error is not None:
                    yield encode_sse_error(error)
                yield SSE_DONE
            finally:
                self._predict_slots.release_on_behalf_of(owner)
        finally:
            self._in_flight -= 1

    def _stream_items(self, call: Callable[[], Any]) -> AsyncGenerator[Any, None]:
        signature = self.signature
        assert signature is not None
        # Calling a generator function runs none of its body; iteration does.
        produced = call()
        if signature.is_async:
            generator: AsyncGenerator[Any, None] = produced
            return generator
        return iterate_in_thread(produced)

    # -- LivePipeline ----------------------------------------------------------------

    async def _start(self) -> StreamStartRequest:
        manager = self.manager
        assert manager is not None
        self._require_ready()
        start = StreamStartRequest.from_bytes(await _body(self.body_limit))
        if not (start.has_ingress or start.has_egress):
            # RUN-046: a session with neither input nor output media has no work to do.
            raise InvalidMessage("stream start: subscribe_url or publish_url is required")
        start.require_channel_paths()  # RUN-123
        await manager.start(start)
        return start

    async def _stream_start(self) -> Response:
        start = await self._start()
        return json_response(
            StreamStartResponse(gateway_request_id=start.gateway_request_id).to_wire()
        )

    async def _live_video_to_video(self) -> Response:
        if self.model_id is not None:
            # Checked before starting anything (RUN-057), like ai-runner.
            data = await _body(self.body_limit)
            requested = StreamStartRequest.from_bytes(data).extra.get("model_id")
            if isinstance(requested, str) and requested and requested != self.model_id:
                raise ProtocolError(
                    f"this runner serves model {self.model_id!r}, not {requested[:256]!r}",
                    status=400,
                )
        await self._start()
        return json_response(LiveVideoToVideoResponse().to_wire())

    async def _stream_params(self) -> Response:
        manager = self.manager
        assert manager is not None
        update = StreamParamsRequest.from_bytes(await _body(self.body_limit))
        await manager.update_params(update.params, _stream_id())
        return json_response(StreamParamsResponse().to_wire())

    async def _stream_stop(self) -> Response:
        manager = self.manager
        assert manager is not None
        stop = StreamStopRequest.from_bytes(await _body(self.body_limit))
        await manager.stop(_stream_id(), stop.reason)
        return json_response(StreamStopResponse().to_wire())

    async def _stream_status(self) -> Response:
        manager = self.manager
        assert manager is not None
        sessions = tuple(SessionStatus.from_wire(s) for s in manager.status(_stream_id()))
        last_error = manager.last_error if manager.last_error is not None else self._setup_error
        body = StreamStatusResponse(
            status=self.health,
            capacity=self.capacity,
            sessions=sessions,
            last_error=last_error[:MAX_ERROR_MESSAGE_LENGTH] if last_error else None,
        )
        return json_response(body.to_wire())


class _NotJson(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


def make_app(pipeline: Pipeline | LivePipeline, **options: Any) -> RunnerApp:
    """Build the runner app for a ``Pipeline`` or ``LivePipeline`` (see :class:`RunnerApp`)."""
    return RunnerApp(pipeline, **options)
