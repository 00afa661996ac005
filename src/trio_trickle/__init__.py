"""trio-trickle: Livepeer's real-time compute stack on trio.

The public API is the names below (``__all__``), plus two namespaces:
``trio_trickle.wire`` (the wire vocabulary: messages, headers, encodings) and
``trio_trickle.media`` (frames and MPEG-TS; needs the ``media`` and ``torch``
extras). Everything else lives in private subpackages, one per layer, whose
dependencies point down (import-linter checks it in ``nox -s lint``):

* ``_wire`` (attrs messages with ``to_wire``/``from_wire``), ``_core`` (the sans-io
  trickle channel machine) and ``_registry`` (the sans-io live-runner
  registry): no I/O;
* ``_server`` (hypercorn), ``_client`` (httpx), ``_media`` (PyAV, torch),
  ``_telemetry``: the adapters;
* ``_sdk`` (what user code subclasses), ``_gateway`` (discover, reserve, stream),
  ``_session`` (one nursery per stream), ``_runner`` (the HTTP app) beside
  ``_orchestrator`` (the registry served over HTTP), then ``conformance``, ``_demo``
  and ``_cli``.

Importing this package imports neither PyAV nor torch: a base install serves
trickle, a ``Pipeline`` and byte-relaying live sessions (RUN-129).
"""

from __future__ import annotations

import importlib.metadata

from ._client.channels import (
    JsonlReader,
    JsonlWriter,
    JsonSegmentReader,
    JsonSegmentWriter,
)
from ._client.http import (
    ClientTimeouts,
    create_http_client,
)
from ._client.publisher import (
    PublisherSegment,
    TricklePublisher,
)
from ._client.subscriber import (
    TrickleSubscriber,
)
from ._client.subscriber_segment import (
    SubscriberSegment,
)
from ._core.server import (
    ServerConfig,
)
from ._errors import (
    ChannelClosed,
    ChannelNotFound,
    IllegalTransition,
    InvalidMessage,
    PayloadTooLarge,
    ProtocolError,
    SegmentGone,
    TransportError,
    TrickleError,
)
from ._exports import fixup_module_metadata
from ._gateway.discovery import DiscoveryFailed, discover
from ._gateway.events import (
    EventsReaderStats,
    gateway_connection,
    read_stream_events,
)
from ._gateway.live_session import LiveSession, open_live_session
from ._gateway.reservation import ReservationRefused
from ._gateway.session_setup import LiveSessionFailed, LiveSessionOptions, RunnerFailure
from ._media.encode_settings import (
    EncoderSettings,
)
from ._orchestrator.config import OrchestratorConfig
from ._orchestrator.process import OrchestratorHandle, open_orchestrator
from ._runner.app import (
    RunnerApp,
    make_app,
)
from ._runner.serve import (
    InvalidTarget,
    RunnerHandle,
    open_runner,
    serve,
)
from ._sdk.json_types import (
    UnsupportedAnnotation,
)
from ._sdk.live_pipeline import (
    LivePipeline,
)
from ._sdk.pipeline import (
    Pipeline,
)
from ._server.connections import (
    ConnectionStats,
    HttpTimeouts,
)
from ._server.trickle import (
    BeforeHook,
    TrickleServer,
    TrickleServerHandle,
    open_trickle_server,
)
from ._session.settings import (
    SessionSettings,
)
from ._telemetry.http import (
    HttpSink,
)
from ._telemetry.kafka import (
    KafkaSink,
    KafkaUnavailable,
)
from ._telemetry.selection import (
    SinkConfig,
    TelemetryConfigError,
    open_sink,
    select_sink,
)
from ._telemetry.sinks import (
    FanoutSink,
    LogSink,
    NullSink,
    TelemetrySink,
)

__all__ = [  # noqa: RUF022 (grouped by what a user does, not sorted)
    # Errors: one hierarchy, protocol errors carry the HTTP status to answer
    "TrickleError",
    "ProtocolError",
    "InvalidMessage",
    "ChannelNotFound",
    "PayloadTooLarge",
    "SegmentGone",
    "ChannelClosed",
    "IllegalTransition",
    "TransportError",
    # The trickle server
    "open_trickle_server",
    "TrickleServerHandle",
    "TrickleServer",
    "ServerConfig",
    "BeforeHook",
    "HttpTimeouts",
    "ConnectionStats",
    # The trickle client and the channel helpers
    "TricklePublisher",
    "PublisherSegment",
    "TrickleSubscriber",
    "SubscriberSegment",
    "ClientTimeouts",
    "create_http_client",
    "JsonlReader",
    "JsonlWriter",
    "JsonSegmentReader",
    "JsonSegmentWriter",
    # The runner SDK and its server
    "Pipeline",
    "LivePipeline",
    "UnsupportedAnnotation",
    "SessionSettings",
    "EncoderSettings",
    "serve",
    "open_runner",
    "RunnerHandle",
    "make_app",
    "RunnerApp",
    "InvalidTarget",
    # The control plane: an orchestrator, and a gateway's way to a live runner through it
    "open_orchestrator",
    "OrchestratorHandle",
    "OrchestratorConfig",
    "discover",
    "open_live_session",
    "LiveSession",
    "LiveSessionOptions",
    "LiveSessionFailed",
    "RunnerFailure",
    "DiscoveryFailed",
    "ReservationRefused",
    # Telemetry egress
    "TelemetrySink",
    "NullSink",
    "LogSink",
    "FanoutSink",
    "HttpSink",
    "KafkaSink",
    "KafkaUnavailable",
    "SinkConfig",
    "TelemetryConfigError",
    "select_sink",
    "open_sink",
    "read_stream_events",
    "gateway_connection",
    "EventsReaderStats",
]

fixup_module_metadata(__name__, globals(), __all__)
del fixup_module_metadata

try:  # one version literal: pyproject.toml's, as installed
    __version__ = importlib.metadata.version("trio-trickle")
except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0+unknown"
