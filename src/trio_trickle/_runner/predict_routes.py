"""``POST /predict`` (and its alias ``/run``) for a request/response ``Pipeline``.

Apart from the app because it is one job with rules of its own: the body is
bound to ``predict``'s signature (RUN-020..024), at most ``capacity`` calls run
at once (excess requests wait their turn, so a model is never entered by more
callers than it was sized for), and a generator ``predict`` answers a
server-sent event stream that ends with ``[DONE]``, an error event first if it
failed (RUN-030). A running predict counts as in flight for ``/health``.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import trio
from quart import Response

from .._errors import ProtocolError
from .._sdk.hooks import call_hook, iterate_in_thread
from .._sdk.pipeline import Pipeline, PredictSignature
from .._wire.json_codec import dump_json
from .._wire.runner import SSE_DONE, PredictRequest, encode_sse_data, encode_sse_error
from .readiness import Readiness
from .responses import failure_text, read_body

__all__: list[str] = []

log = logging.getLogger("trio_trickle.runner")


class PredictRoutes:
    """The predict route of one runner: binds bodies, bounds concurrency, streams SSE."""

    def __init__(
        self,
        pipeline: Pipeline,
        signature: PredictSignature,
        readiness: Readiness,
        *,
        capacity: int,
        body_limit: int,
    ) -> None:
        self.pipeline = pipeline
        self.signature = signature
        self.readiness = readiness
        self.body_limit = body_limit
        self._slots = trio.CapacityLimiter(capacity)

    async def predict(self) -> Response:
        signature = self.signature
        self.readiness.require_ready()
        sent = PredictRequest.from_bytes(await read_body(self.body_limit))
        kwargs = signature.bind(sent.arguments)
        sent.require_unicode()  # RUN-122, after RUN-024's check of the member names
        call = functools.partial(self.pipeline.predict, **kwargs)
        if signature.streaming:
            response = Response(self._sse(call), status=200, content_type="text/event-stream")
            response.headers["Cache-Control"] = "no-cache"
            response.headers["X-Accel-Buffering"] = "no"
            response.timeout = None
            return response
        self.readiness.in_flight += 1
        try:
            async with self._slots:
                try:
                    # A running predict is waited for, so capacity and health stay honest.
                    result = await call_hook(call, cancel_grace=math.inf)
                except Exception as exc:
                    log.exception("predict raised")
                    raise ProtocolError(failure_text("predict failed", exc), status=500) from None
        finally:
            self.readiness.in_flight -= 1
        try:
            body = dump_json(result)
        except (TypeError, ValueError, RecursionError) as exc:
            error = failure_text("predict returned non-JSON", exc)
            raise ProtocolError(error, status=500) from None
        return Response(body, status=200, content_type="application/json")

    async def _sse(self, call: Callable[[], Any]) -> AsyncIterator[bytes]:
        """The SSE body: one event per item, an error event on failure, then ``[DONE]``.

        Counted as in flight from its first iteration (a body never iterated runs
        no user code); the capacity slot is held on behalf of a token because the
        body may be closed from another task than the one that iterated it.
        """
        owner = object()
        self.readiness.in_flight += 1
        try:
            await self._slots.acquire_on_behalf_of(owner)
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
                    error = failure_text("predict yielded non-JSON", exc.cause)
                except Exception as exc:
                    log.exception("streaming predict raised")
                    error = failure_text("predict failed", exc)
                if error is not None:
                    yield encode_sse_error(error)
                yield SSE_DONE
            finally:
                self._slots.release_on_behalf_of(owner)
        finally:
            self.readiness.in_flight -= 1

    def _stream_items(self, call: Callable[[], Any]) -> AsyncGenerator[Any, None]:
        # Calling a generator function runs none of its body; iteration does.
        produced = call()
        if self.signature.is_async:
            generator: AsyncGenerator[Any, None] = produced
            return generator
        return iterate_in_thread(produced)


class _NotJson(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause
