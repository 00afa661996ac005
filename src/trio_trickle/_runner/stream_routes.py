"""The ``/stream/*`` and ``/live-video-to-video`` routes of a ``LivePipeline`` runner.

Apart from the app because they are a protocol of their own: each decodes its
body (RUN-127 bounds it), hands the request to the session manager, and
answers the wire response; the manager owns the sessions and their errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import Response

from .._errors import InvalidMessage, ProtocolError
from .._wire.runner import (
    LiveVideoToVideoResponse,
    SessionStatus,
    StreamParamsRequest,
    StreamParamsResponse,
    StreamStartRequest,
    StreamStartResponse,
    StreamStatusResponse,
    StreamStopRequest,
    StreamStopResponse,
)
from .._wire.runner_status import MAX_ERROR_MESSAGE_LENGTH
from .readiness import Readiness
from .responses import json_response, read_body, stream_id

if TYPE_CHECKING:
    from .._session.manager import StreamManager

__all__: list[str] = []


class StreamRoutes:
    """The live routes of one runner, over its session manager."""

    def __init__(
        self,
        manager: StreamManager,
        readiness: Readiness,
        *,
        capacity: int,
        model_id: str | None,
        body_limit: int,
    ) -> None:
        self.manager = manager
        self.readiness = readiness
        self.capacity = capacity
        self.model_id = model_id
        self.body_limit = body_limit

    async def _start(self) -> StreamStartRequest:
        self.readiness.require_ready()
        start = StreamStartRequest.from_bytes(await read_body(self.body_limit))
        if not (start.has_ingress or start.has_egress):
            # RUN-046: a session with neither input nor output media has no work to do.
            raise InvalidMessage("stream start: subscribe_url or publish_url is required")
        start.require_channel_paths()  # RUN-123
        await self.manager.start(start)
        return start

    async def stream_start(self) -> Response:
        start = await self._start()
        return json_response(
            StreamStartResponse(gateway_request_id=start.gateway_request_id).to_wire()
        )

    async def live_video_to_video(self) -> Response:
        if self.model_id is not None:
            # Checked before starting anything (RUN-057), like ai-runner.
            data = await read_body(self.body_limit)
            requested = StreamStartRequest.from_bytes(data).extra.get("model_id")
            if isinstance(requested, str) and requested and requested != self.model_id:
                raise ProtocolError(
                    f"this runner serves model {self.model_id!r}, not {requested[:256]!r}",
                    status=400,
                )
        await self._start()
        return json_response(LiveVideoToVideoResponse().to_wire())

    async def stream_params(self) -> Response:
        update = StreamParamsRequest.from_bytes(await read_body(self.body_limit))
        await self.manager.update_params(update.params, stream_id())
        return json_response(StreamParamsResponse().to_wire())

    async def stream_stop(self) -> Response:
        stop = StreamStopRequest.from_bytes(await read_body(self.body_limit))
        await self.manager.stop(stream_id(), stop.reason)
        return json_response(StreamStopResponse().to_wire())

    async def stream_status(self) -> Response:
        manager = self.manager
        sessions = tuple(SessionStatus.from_wire(s) for s in manager.status(stream_id()))
        last_error = manager.last_error if manager.last_error is not None else self.readiness.error
        body = StreamStatusResponse(
            status=self.readiness.status,
            capacity=self.capacity,
            sessions=sessions,
            last_error=last_error[:MAX_ERROR_MESSAGE_LENGTH] if last_error else None,
        )
        return json_response(body.to_wire())
