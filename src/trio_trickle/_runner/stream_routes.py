"""The ``/stream/*`` and ``/live-video-to-video`` routes of a ``LivePipeline`` runner.

Apart from the app because they are a protocol of their own: each decodes its
body (RUN-127 bounds it), hands the request to the session manager, and
answers the wire response; the manager owns the sessions and their errors.

A start (``/stream/start`` or ``/live-video-to-video``) that names no channel URL
but came through the orchestrator's session proxy (its ``Livepeer-Session-*``
headers, LR-108) gets the session's channels from the orchestrator's callback
(:mod:`.session_channels`, LR-114), runs on their internal URLs and answers with
the callback's channels, whose public URLs the client uses (LR-119, LR-120).
What can refuse the start is checked before a channel is made; a start that
fails afterwards deletes them. The stream's stop leaves them: releasing the
session closes them (LR-132). Without those headers and URLs the answer is 400.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quart import Response, request

from .._errors import InvalidMessage, ProtocolError
from .._wire.json_codec import parse_json
from .._wire.live_runner_channels import ChannelsResponse, ProxiedSessionHeaders
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
from .session_channels import SESSION_CHANNELS, SessionChannels, origin, proxied_session

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
        #: The stream started on each proxied session's channels, by session ID.
        self._on_session: dict[str, str] = {}
        #: Proxied sessions whose channels are being made.
        self._starting: set[str] = set()
        #: Where channel callbacks may go: the origin of the orchestrator this runner
        #: registered with (None: a runner without one, e.g. an orchestrator's static runner).
        self.callback_origin: tuple[str, str, int] | None = None

    async def _start(self, data: bytes) -> tuple[StreamStartRequest, ChannelsResponse | None]:
        """Start a stream; the session's channels too when the start came without them."""
        self.readiness.require_ready()
        session = proxied_session(dict(request.headers.items()))
        if session is not None and _without_channels(data):
            return await self._start_on_session_channels(data, session)
        start = StreamStartRequest.from_bytes(data)
        if not (start.has_ingress or start.has_egress):
            # RUN-046: a session with neither input nor output media has no work to do.
            raise InvalidMessage("stream start: subscribe_url or publish_url is required")
        start.require_channel_paths()  # RUN-123
        await self.manager.start(start)
        return start, None

    async def _start_on_session_channels(
        self, data: bytes, session: ProxiedSessionHeaders
    ) -> tuple[StreamStartRequest, ChannelsResponse]:
        """A start through the session proxy without channel URLs (LR-114, LR-119, LR-120).

        Everything that can refuse the start is checked before a channel is made;
        a start that fails after that deletes the channels it made.
        """
        # Only the orchestrator this runner registered with may have it call out: the
        # headers come from the request, and anyone who reaches the runner could send them.
        expected = self.callback_origin
        if expected is not None and origin(session.session_control) != expected:
            raise ProtocolError(
                "Livepeer-Session-Control is not this runner's orchestrator", status=403
            )
        body = parse_json(data, "stream start")
        if not isinstance(body, dict):
            raise InvalidMessage("stream start: expected a JSON object")
        params = body.get("params")
        if params is not None and not isinstance(params, dict):
            raise InvalidMessage("stream start: params must be an object or null")
        requested = body.get("gateway_request_id")
        if requested is not None and not isinstance(requested, str):
            raise InvalidMessage("stream start: gateway_request_id must be a string")
        stream = requested or session.session_id
        running = {s.id for s in self.manager.sessions()}
        if stream in running:
            raise ProtocolError(f"stream {stream[:256]!r} is already running", status=409)
        self._on_session = {k: v for k, v in self._on_session.items() if v in running}
        if session.session_id in self._on_session or session.session_id in self._starting:
            # Its channels are another stream's (LR-118): a failure here must not delete them.
            raise ProtocolError("this session already runs a stream", status=409)
        if self.manager.active_count >= self.capacity:
            raise ProtocolError(f"at capacity ({self.capacity} streams)", status=503)
        self._starting.add(session.session_id)
        try:
            return await self._start_on(SessionChannels(session), stream, body)
        finally:
            self._starting.discard(session.session_id)

    async def _start_on(
        self, channels: SessionChannels, stream: str, body: dict[str, Any]
    ) -> tuple[StreamStartRequest, ChannelsResponse]:
        made = await channels.create()
        try:
            url = {c.name: c.internal_url or c.url for c in made.channels}  # LR-120
            start = StreamStartRequest.build(
                stream_id=stream,
                control_url=url["control"],
                events_url=url["events"],
                subscribe_url=url["in"],
                publish_url=url["out"],
                gateway_body=body,
            )
            start.require_channel_paths()  # RUN-123
            await self.manager.start(start)
        except BaseException:
            await channels.delete(tuple(c.name for c in SESSION_CHANNELS.channels))
            raise
        self._on_session[channels.session.session_id] = stream
        return start, made

    async def stream_start(self) -> Response:
        start, channels = await self._start(await read_body(self.body_limit))
        if channels is not None:
            return json_response(channels.to_wire())  # the public URLs (LR-120)
        return json_response(
            StreamStartResponse(gateway_request_id=start.gateway_request_id).to_wire()
        )

    async def live_video_to_video(self) -> Response:
        data = await read_body(self.body_limit)
        if self.model_id is not None:
            # Checked before starting anything (RUN-057), like ai-runner.
            requested = _requested_model(data)
            if isinstance(requested, str) and requested and requested != self.model_id:
                raise ProtocolError(
                    f"this runner serves model {self.model_id!r}, not {requested[:256]!r}",
                    status=400,
                )
        _, channels = await self._start(data)
        if channels is not None:
            return json_response(channels.to_wire())
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


#: Keys of a start body that name its channels: with none, a proxied start makes them.
_CHANNEL_KEYS = ("subscribe_url", "publish_url", "control_url", "events_url", "data_url")


def _without_channels(data: bytes) -> bool:
    """A JSON object naming no channel URL (anything else is decoded as before)."""
    try:
        body = parse_json(data or b"{}", "stream start")
    except InvalidMessage:
        return False
    return isinstance(body, dict) and not any(body.get(k) for k in _CHANNEL_KEYS)


def _requested_model(data: bytes) -> object:
    try:
        body = parse_json(data, "stream start")
    except InvalidMessage:
        return StreamStartRequest.from_bytes(data).extra.get("model_id")  # its 400
    return body.get("model_id") if isinstance(body, dict) else None
