"""The runner's HTTP app (quart-trio): ``/predict`` for a ``Pipeline``, ``/stream/*`` for a
``LivePipeline``, ``/health`` and ``/openapi.json`` for both.

This module builds the app and owns what spans every route: the lifespan,
bearer-token auth and the mapping of errors. The routes themselves are
:mod:`.predict_routes` and :mod:`.stream_routes`; health is :mod:`.readiness`;
JSON answers and bounded bodies are :mod:`.responses`.

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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .._errors import ProtocolError
from .._sdk.live_pipeline import LivePipeline
from .._sdk.openapi import openapi_document
from .._sdk.pipeline import Pipeline, PredictSignature
from .._wire.runner import HealthResponse, HealthStatus, bearer_token
from .predict_routes import PredictRoutes
from .readiness import Readiness
from .responses import error_response, json_response
from .session_channels import origin
from .stream_routes import StreamRoutes

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
        self._live: StreamRoutes | None = None
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
        self._readiness = Readiness(pipeline, self.manager)
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
            assert isinstance(self.pipeline, Pipeline)
            predict = PredictRoutes(
                self.pipeline,
                self.signature,
                self._readiness,
                capacity=self.capacity,
                body_limit=self.body_limit,
            ).predict
            route("/predict", "predict", predict, methods=["POST"])
            route("/run", "run", predict, methods=["POST"])
        else:
            assert self.manager is not None
            live = StreamRoutes(
                self.manager,
                self._readiness,
                capacity=self.capacity,
                model_id=self.model_id,
                body_limit=self.body_limit,
            )
            self._live = live
            route("/stream/start", "stream_start", live.stream_start, methods=["POST"])
            route("/live-video-to-video", "lv2v", live.live_video_to_video, methods=["POST"])
            route("/stream/params", "stream_params", live.stream_params, methods=["POST"])
            route("/stream/stop", "stream_stop", live.stream_stop, methods=["POST"])
            route("/stream/status", "stream_status", live.stream_status, methods=["GET"])
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
                    nursery.start_soon(self._readiness.run_setup)
                    task_status.started()
        finally:
            self._background_done.set()

    async def _stop_background(self) -> None:
        """Server stopping: cancel the manager (sessions stop with reason shutdown)."""
        self._background.cancel()
        await self._background_done.wait()

    def trust_orchestrator(self, url: str) -> None:
        """Let proxied starts call back only to ``url``'s origin (the orchestrator we
        registered with) to make their session channels (LR-114)."""
        if self._live is not None:
            self._live.callback_origin = origin(url)

    async def wait_setup(self) -> None:
        """Return once ``setup()`` returned or raised (see :attr:`health`)."""
        await self._readiness.wait()

    # -- health ----------------------------------------------------------------------

    @property
    def setup_error(self) -> str | None:
        """``setup failed: <ExceptionType>`` once setup raised, else None."""
        return self._readiness.error

    @property
    def health(self) -> HealthStatus:
        """The ``/health`` status (RUN-009..014)."""
        return self._readiness.status

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


def make_app(pipeline: Pipeline | LivePipeline, **options: Any) -> RunnerApp:
    """Build the runner app for a ``Pipeline`` or ``LivePipeline`` (see :class:`RunnerApp`)."""
    return RunnerApp(pipeline, **options)
