"""trio-trickle: Livepeer's real-time compute stack on trio.

Layout (dependencies point one way, top to bottom):

* wire and sans-io core: ``_wire_*`` (attrs messages with ``to_wire``/``from_wire``)
  and ``_core_*`` (the trickle channel state machine). No I/O, no trio.
* trio adapters: the trickle server (hypercorn) and client (httpx), media (PyAV).
* the runner SDK base classes, sessions, the runner HTTP app, CLI and demo.

Every public name is re-exported here exactly once. Names whose modules need
the ``media``/``torch`` extras (PyAV, torch) load on first use, so importing
the package, the wire layer or the trickle server never pulls in torch.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

from ._client.channels import (
    JsonlReader as JsonlReader,
    JsonlWriter as JsonlWriter,
    JsonSegmentReader as JsonSegmentReader,
    JsonSegmentWriter as JsonSegmentWriter,
)
from ._client.http import (
    ClientTimeouts as ClientTimeouts,
    create_http_client as create_http_client,
)
from ._client.post import (
    QUEUE_CHUNKS as QUEUE_CHUNKS,
)
from ._client.publisher import (
    PublisherSegment as PublisherSegment,
    TricklePublisher as TricklePublisher,
)
from ._client.subscriber import (
    TrickleSubscriber as TrickleSubscriber,
)
from ._client.subscriber_segment import (
    SubscriberSegment as SubscriberSegment,
)
from ._core.channel import (
    Answer as Answer,
    AppendResult as AppendResult,
    ByteBudget as ByteBudget,
    ChannelCore as ChannelCore,
    PublishTicket as PublishTicket,
    ReadCursor as ReadCursor,
    ReadSignal as ReadSignal,
)
from ._core.segment import (
    Segment as Segment,
    SegmentEvent as SegmentEvent,
    SegmentState as SegmentState,
)
from ._core.server import (
    MethodNotAllowed as MethodNotAllowed,
    Operation as Operation,
    Route as Route,
    ServerConfig as ServerConfig,
    TrickleServerCore as TrickleServerCore,
    route_request as route_request,
)
from ._errors import (
    ChannelClosed as ChannelClosed,
    ChannelNotFound as ChannelNotFound,
    IllegalTransition as IllegalTransition,
    InvalidMessage as InvalidMessage,
    PayloadTooLarge as PayloadTooLarge,
    ProtocolError as ProtocolError,
    SegmentGone as SegmentGone,
    TransportError as TransportError,
    TrickleError as TrickleError,
)
from ._gateway.events import (
    EventsReaderStats as EventsReaderStats,
    gateway_connection as gateway_connection,
    read_stream_events as read_stream_events,
)
from ._media.encode_settings import (
    SEGMENT_BOUNDARY as SEGMENT_BOUNDARY,
    EncoderSettings as EncoderSettings,
    EncodeStats as EncodeStats,
    SegmentBoundary as SegmentBoundary,
)
from ._sdk.hooks import (
    DEFAULT_CANCEL_GRACE as DEFAULT_CANCEL_GRACE,
    call_hook as call_hook,
    is_async_callable as is_async_callable,
    iterate_in_thread as iterate_in_thread,
)
from ._sdk.json_types import (
    JsonType as JsonType,
    PredictParameter as PredictParameter,
    UnsupportedAnnotation as UnsupportedAnnotation,
    compile_annotation as compile_annotation,
)
from ._sdk.live_pipeline import (
    HOOK_NAMES as HOOK_NAMES,
    LivePipeline as LivePipeline,
    StreamOutlets as StreamOutlets,
    bind_outlets as bind_outlets,
    current_outlets as current_outlets,
    current_telemetry_sink as current_telemetry_sink,
    encode_event_segment as encode_event_segment,
    unbind_outlets as unbind_outlets,
)
from ._sdk.openapi import (
    openapi_document as openapi_document,
)
from ._sdk.pipeline import (
    Pipeline as Pipeline,
    PredictSignature as PredictSignature,
)
from ._server.connections import (
    ConnectionStats as ConnectionStats,
    HttpTimeouts as HttpTimeouts,
    http_config as http_config,
    serve_asgi as serve_asgi,
)
from ._server.gc import (
    freeze_gc_for_serving as freeze_gc_for_serving,
)
from ._server.trickle import (
    BeforeHook as BeforeHook,
    TrickleServer as TrickleServer,
    TrickleServerHandle as TrickleServerHandle,
    open_trickle_server as open_trickle_server,
)
from ._session.metrics import (
    LatencyMeter as LatencyMeter,
    RateMeter as RateMeter,
    SessionCounters as SessionCounters,
)
from ._session.recent_queue import (
    RecentQueue as RecentQueue,
)
from ._telemetry.buffer import (
    EventBuffer as EventBuffer,
)
from ._telemetry.http import (
    HttpSink as HttpSink,
)
from ._telemetry.kafka import (
    KafkaSink as KafkaSink,
    KafkaUnavailable as KafkaUnavailable,
    kafka_producer_config as kafka_producer_config,
)
from ._telemetry.outlet import (
    Bell as Bell,
    DropOldestOutlet as DropOldestOutlet,
)
from ._telemetry.runner import (
    CapturedEvent as CapturedEvent,
    RunnerTelemetry as RunnerTelemetry,
    StreamTelemetry as StreamTelemetry,
    TrickleEventsSink as TrickleEventsSink,
    connection_info_from_env as connection_info_from_env,
)
from ._telemetry.selection import (
    SinkConfig as SinkConfig,
    TelemetryConfigError as TelemetryConfigError,
    open_sink as open_sink,
    select_sink as select_sink,
)
from ._telemetry.sinks import (
    DEFAULT_KAFKA_TOPIC as DEFAULT_KAFKA_TOPIC,
    DEFAULT_SHUTDOWN_TIMEOUT as DEFAULT_SHUTDOWN_TIMEOUT,
    FanoutSink as FanoutSink,
    LogSink as LogSink,
    NullSink as NullSink,
    TelemetrySink as TelemetrySink,
)
from ._telemetry.spool import (
    DEFAULT_SPOOL_MAX_BYTES as DEFAULT_SPOOL_MAX_BYTES,
    DEFAULT_SPOOL_MAX_EVENTS as DEFAULT_SPOOL_MAX_EVENTS,
    SpoolContents as SpoolContents,
    TelemetrySpool as TelemetrySpool,
)
from ._wire.byoc import (
    BYOC_BALANCE_HEADER as BYOC_BALANCE_HEADER,
    BYOC_CAPABILITY_HEADER as BYOC_CAPABILITY_HEADER,
    CapabilityRegistration as CapabilityRegistration,
    GatewayStreamStartRequest as GatewayStreamStartRequest,
    GatewayStreamStartResponse as GatewayStreamStartResponse,
    OrchestratorStreamUrls as OrchestratorStreamUrls,
)
from ._wire.byoc_token import (
    BYOC_ETH_ADDRESS_HEADER as BYOC_ETH_ADDRESS_HEADER,
    BYOC_JOB_HEADER as BYOC_JOB_HEADER,
    JobParameters as JobParameters,
    JobPrice as JobPrice,
    JobRequest as JobRequest,
    JobRequestDetails as JobRequestDetails,
    JobSender as JobSender,
    JobToken as JobToken,
    decode_signature as decode_signature,
)
from ._wire.channel_events import (
    EVENTS_MAX_GAP as EVENTS_MAX_GAP,
    HEARTBEAT_INTERVAL as HEARTBEAT_INTERVAL,
    TOPIC_AI_STREAM_EVENTS as TOPIC_AI_STREAM_EVENTS,
    TOPIC_AI_STREAM_STATUS as TOPIC_AI_STREAM_STATUS,
    TOPIC_STREAM_HEARTBEAT as TOPIC_STREAM_HEARTBEAT,
    EventEnvelope as EventEnvelope,
    HeartbeatEvent as HeartbeatEvent,
    StatusEvent as StatusEvent,
    decode_event as decode_event,
    encode_event as encode_event,
)
from ._wire.channels import (
    CONTROL_KEEPALIVE_INTERVAL as CONTROL_KEEPALIVE_INTERVAL,
    DATA_SEGMENT_INTERVAL as DATA_SEGMENT_INTERVAL,
    DEFAULT_MAX_SEGMENT_BYTES as DEFAULT_MAX_SEGMENT_BYTES,
    MAX_JSON_DEPTH as MAX_JSON_DEPTH,
    MAX_JSONL_LINE_BYTES as MAX_JSONL_LINE_BYTES,
    MIME_JSON as MIME_JSON,
    MIME_JSONL as MIME_JSONL,
    MIME_MPEGTS as MIME_MPEGTS,
    ControlMessage as ControlMessage,
    DataLine as DataLine,
    JsonlDecoder as JsonlDecoder,
    KeepAlive as KeepAlive,
    SegmentAccumulator as SegmentAccumulator,
    StreamChannels as StreamChannels,
    check_segment_size as check_segment_size,
    control_from_wire as control_from_wire,
    decode_control as decode_control,
    decode_jsonl as decode_jsonl,
    decode_jsonl_values as decode_jsonl_values,
    encode_control as encode_control,
    encode_jsonl as encode_jsonl,
    mime_matches as mime_matches,
)
from ._wire.go import (
    format_go_duration as format_go_duration,
    parse_go_duration as parse_go_duration,
)
from ._wire.live_runner import (
    HeartbeatRequest as HeartbeatRequest,
    HeartbeatResponse as HeartbeatResponse,
    RunnerChannel as RunnerChannel,
    RunnerGpu as RunnerGpu,
    RunnerPriceInfo as RunnerPriceInfo,
)
from ._wire.live_runner_channels import (
    MAX_CHANNELS_PER_REQUEST as MAX_CHANNELS_PER_REQUEST,
    ChannelsDeleteRequest as ChannelsDeleteRequest,
    ChannelsDeleteResponse as ChannelsDeleteResponse,
    ChannelSpec as ChannelSpec,
    ChannelsRequest as ChannelsRequest,
    ChannelsResponse as ChannelsResponse,
    O2RKeepalive as O2RKeepalive,
    O2RSessionEvent as O2RSessionEvent,
    ProxiedSessionHeaders as ProxiedSessionHeaders,
    ProxyRequest as ProxyRequest,
    ProxyResponse as ProxyResponse,
    normalize_channel_name as normalize_channel_name,
    parse_o2r_message as parse_o2r_message,
)
from ._wire.live_runner_discovery import (
    AdvertisedPrice as AdvertisedPrice,
    DiscoveryEntry as DiscoveryEntry,
    DiscoveryResponse as DiscoveryResponse,
    DiscoveryRunner as DiscoveryRunner,
)
from ._wire.live_runner_payment import (
    JsonErrorBody as JsonErrorBody,
    PaymentChallenge as PaymentChallenge,
    PaymentHeaders as PaymentHeaders,
    RefreshPaymentRequest as RefreshPaymentRequest,
    SessionReservation as SessionReservation,
    parse_reservation_402 as parse_reservation_402,
)
from ._wire.runner import (
    MAX_STOP_REASON_LENGTH as MAX_STOP_REASON_LENGTH,
    PredictRequest as PredictRequest,
    StreamParamsRequest as StreamParamsRequest,
    StreamParamsResponse as StreamParamsResponse,
    StreamStopRequest as StreamStopRequest,
    StreamStopResponse as StreamStopResponse,
)
from ._wire.runner_start import (
    LiveVideoToVideoResponse as LiveVideoToVideoResponse,
    StreamStartRequest as StreamStartRequest,
    StreamStartResponse as StreamStartResponse,
)
from ._wire.runner_status import (
    HEADER_STREAM_ID as HEADER_STREAM_ID,
    SSE_DONE as SSE_DONE,
    ErrorResponse as ErrorResponse,
    HealthResponse as HealthResponse,
    HealthStatus as HealthStatus,
    SessionState as SessionState,
    SessionStatus as SessionStatus,
    StopReason as StopReason,
    StreamFps as StreamFps,
    StreamStatusResponse as StreamStatusResponse,
    bearer_token as bearer_token,
    encode_sse_data as encode_sse_data,
    encode_sse_error as encode_sse_error,
)
from ._wire.telemetry import (
    DEFAULT_CLIENT_SOURCE as DEFAULT_CLIENT_SOURCE,
    ENVELOPE_TYPE as ENVELOPE_TYPE,
    ERROR_MEDIA_AUDIO_OUTPUT_LOOP_FAILED as ERROR_MEDIA_AUDIO_OUTPUT_LOOP_FAILED,
    ERROR_MEDIA_INPUT_LOOP_FAILED as ERROR_MEDIA_INPUT_LOOP_FAILED,
    ERROR_MEDIA_OUTPUT_LOOP_FAILED as ERROR_MEDIA_OUTPUT_LOOP_FAILED,
    ERROR_PARAMS_UPDATE_FAILED as ERROR_PARAMS_UPDATE_FAILED,
    ERROR_PIPELINE_LOAD_FAILED as ERROR_PIPELINE_LOAD_FAILED,
    ERROR_PIPELINE_PROCESSING_FAILED as ERROR_PIPELINE_PROCESSING_FAILED,
    ERROR_STREAM_FAILED as ERROR_STREAM_FAILED,
    ERROR_STREAM_STARTUP_FAILED as ERROR_STREAM_STARTUP_FAILED,
    EVENT_ERROR as EVENT_ERROR,
    EVENT_GATEWAY_CONNECTED as EVENT_GATEWAY_CONNECTED,
    EVENT_GATEWAY_DISCONNECTED as EVENT_GATEWAY_DISCONNECTED,
    EVENT_PIPELINE_LOAD_START as EVENT_PIPELINE_LOAD_START,
    EVENT_PIPELINE_LOADED as EVENT_PIPELINE_LOADED,
    EVENT_PIPELINE_UNLOADED as EVENT_PIPELINE_UNLOADED,
    EVENT_PLAYBACK_READY as EVENT_PLAYBACK_READY,
    EVENT_RUNNER_READY as EVENT_RUNNER_READY,
    EVENT_SESSION_CLOSED as EVENT_SESSION_CLOSED,
    EVENT_SESSION_CREATED as EVENT_SESSION_CREATED,
    EVENT_STREAM_HEARTBEAT as EVENT_STREAM_HEARTBEAT,
    EVENT_STREAM_STARTED as EVENT_STREAM_STARTED,
    EVENT_STREAM_STOPPED as EVENT_STREAM_STOPPED,
    KNOWN_ERROR_TYPES as KNOWN_ERROR_TYPES,
    KNOWN_EVENTS as KNOWN_EVENTS,
    MAX_EVENT_BYTES as MAX_EVENT_BYTES,
    RELAY_TYPE as RELAY_TYPE,
    REQUIRED_METADATA as REQUIRED_METADATA,
    RESERVED_DATA_KEYS as RESERVED_DATA_KEYS,
    TelemetryError as TelemetryError,
    TelemetryEvent as TelemetryEvent,
    TelemetryRelay as TelemetryRelay,
)
from ._wire.telemetry_sink import (
    TelemetryBatch as TelemetryBatch,
    decode_spool as decode_spool,
    encode_spool as encode_spool,
    parse_retry_after as parse_retry_after,
)
from ._wire.trickle import (
    CLOSED_VALUE as CLOSED_VALUE,
    HEADER_CLOSED as HEADER_CLOSED,
    HEADER_EXPECT_CONTENT as HEADER_EXPECT_CONTENT,
    HEADER_LATEST as HEADER_LATEST,
    HEADER_RESET as HEADER_RESET,
    HEADER_SEQ as HEADER_SEQ,
    MAX_CHANNEL_NAME_LENGTH as MAX_CHANNEL_NAME_LENGTH,
    SEQ_CURRENT as SEQ_CURRENT,
    SEQ_NEXT as SEQ_NEXT,
    STATUS_SEGMENT_GONE as STATUS_SEGMENT_GONE,
    ChannelChange as ChannelChange,
    PublishRequestMeta as PublishRequestMeta,
    SegmentMeta as SegmentMeta,
    parse_seq as parse_seq,
    validate_channel_name as validate_channel_name,
)

if TYPE_CHECKING:
    from ._demo import (
        DemoOptions as DemoOptions,
        DemoReport as DemoReport,
        run_demo as run_demo,
        write_png as write_png,
    )
    from ._media.decode import (
        DecodeStats as DecodeStats,
        TsDecoder as TsDecoder,
        decode_segments as decode_segments,
        decode_ts as decode_ts,
    )
    from ._media.encode import (
        TsMuxer as TsMuxer,
        encode_ts as encode_ts,
    )
    from ._media.frames import (
        AudioFrame as AudioFrame,
        MediaError as MediaError,
        VideoFrame as VideoFrame,
    )
    from ._media.testsrc import (
        codec_ceiling as codec_ceiling,
        generate_frames as generate_frames,
        generate_ts as generate_ts,
        live_pieces as live_pieces,
        read_index as read_index,
        test_pattern as test_pattern,
        tone as tone,
    )
    from ._runner.app import (
        RunnerApp as RunnerApp,
        make_app as make_app,
    )
    from ._runner.serve import (
        InvalidTarget as InvalidTarget,
        RunnerHandle as RunnerHandle,
        load_target as load_target,
        open_runner as open_runner,
        serve as serve,
    )
    from ._session.io import (
        ParamsJob as ParamsJob,
        ParamsQueue as ParamsQueue,
    )
    from ._session.manager import (
        StreamManager as StreamManager,
    )
    from ._session.session import (
        Session as Session,
        SessionSettings as SessionSettings,
        StartFailed as StartFailed,
    )

#: Public names whose modules import PyAV or torch: loaded on first access.
_LAZY: dict[str, str] = {
    "DemoOptions": "_demo",
    "DemoReport": "_demo",
    "run_demo": "_demo",
    "write_png": "_demo",
    "DecodeStats": "_media.decode",
    "TsDecoder": "_media.decode",
    "decode_segments": "_media.decode",
    "decode_ts": "_media.decode",
    "TsMuxer": "_media.encode",
    "encode_ts": "_media.encode",
    "AudioFrame": "_media.frames",
    "MediaError": "_media.frames",
    "VideoFrame": "_media.frames",
    "codec_ceiling": "_media.testsrc",
    "generate_frames": "_media.testsrc",
    "generate_ts": "_media.testsrc",
    "live_pieces": "_media.testsrc",
    "read_index": "_media.testsrc",
    "test_pattern": "_media.testsrc",
    "tone": "_media.testsrc",
    "RunnerApp": "_runner.app",
    "make_app": "_runner.app",
    "InvalidTarget": "_runner.serve",
    "RunnerHandle": "_runner.serve",
    "load_target": "_runner.serve",
    "open_runner": "_runner.serve",
    "serve": "_runner.serve",
    "Session": "_session.session",
    "SessionSettings": "_session.session",
    "StartFailed": "_session.session",
    "ParamsJob": "_session.io",
    "ParamsQueue": "_session.io",
    "StreamManager": "_session.manager",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trio_trickle' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


try:  # one version literal: pyproject.toml's, as installed
    __version__ = importlib.metadata.version("trio-trickle")
except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0+unknown"
