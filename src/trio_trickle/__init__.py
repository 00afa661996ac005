"""trio-trickle: Livepeer's real-time compute stack on trio.

Layout (dependencies point one way, top to bottom):

* wire and sans-io core: ``_wire_*`` (attrs messages with ``to_wire``/``from_wire``)
  and ``_core_*`` (the trickle channel state machine). No I/O, no trio.
* trio adapters: the trickle server (hypercorn) and client (httpx), media (PyAV).
* sessions, runner HTTP app, orchestrator, gateway, CLI.

Every public name is re-exported here exactly once.
"""

from ._core_channel import (
    Answer as Answer,
)
from ._core_channel import (
    AppendResult as AppendResult,
)
from ._core_channel import (
    ChannelCore as ChannelCore,
)
from ._core_channel import (
    PublishTicket as PublishTicket,
)
from ._core_channel import (
    ReadCursor as ReadCursor,
)
from ._core_channel import (
    ReadSignal as ReadSignal,
)
from ._core_segment import (
    Segment as Segment,
)
from ._core_segment import (
    SegmentEvent as SegmentEvent,
)
from ._core_segment import (
    SegmentState as SegmentState,
)
from ._core_server import (
    MethodNotAllowed as MethodNotAllowed,
)
from ._core_server import (
    Operation as Operation,
)
from ._core_server import (
    Route as Route,
)
from ._core_server import (
    ServerConfig as ServerConfig,
)
from ._core_server import (
    TrickleServerCore as TrickleServerCore,
)
from ._core_server import (
    route_request as route_request,
)
from ._errors import (
    ChannelClosed as ChannelClosed,
)
from ._errors import (
    ChannelNotFound as ChannelNotFound,
)
from ._errors import (
    IllegalTransition as IllegalTransition,
)
from ._errors import (
    InvalidMessage as InvalidMessage,
)
from ._errors import (
    PayloadTooLarge as PayloadTooLarge,
)
from ._errors import (
    ProtocolError as ProtocolError,
)
from ._errors import (
    SegmentGone as SegmentGone,
)
from ._errors import (
    TransportError as TransportError,
)
from ._errors import (
    TrickleError as TrickleError,
)
from ._server import (
    BeforeHook as BeforeHook,
)
from ._server import (
    TrickleServer as TrickleServer,
)
from ._server import (
    TrickleServerHandle as TrickleServerHandle,
)
from ._server import (
    open_trickle_server as open_trickle_server,
)
from ._wire_trickle import (
    CLOSED_VALUE as CLOSED_VALUE,
)
from ._wire_trickle import (
    HEADER_CLOSED as HEADER_CLOSED,
)
from ._wire_trickle import (
    HEADER_EXPECT_CONTENT as HEADER_EXPECT_CONTENT,
)
from ._wire_trickle import (
    HEADER_LATEST as HEADER_LATEST,
)
from ._wire_trickle import (
    HEADER_RESET as HEADER_RESET,
)
from ._wire_trickle import (
    HEADER_SEQ as HEADER_SEQ,
)
from ._wire_trickle import (
    MAX_CHANNEL_NAME_LENGTH as MAX_CHANNEL_NAME_LENGTH,
)
from ._wire_trickle import (
    SEQ_CURRENT as SEQ_CURRENT,
)
from ._wire_trickle import (
    SEQ_NEXT as SEQ_NEXT,
)
from ._wire_trickle import (
    STATUS_SEGMENT_GONE as STATUS_SEGMENT_GONE,
)
from ._wire_trickle import (
    ChannelChange as ChannelChange,
)
from ._wire_trickle import (
    PublishRequestMeta as PublishRequestMeta,
)
from ._wire_trickle import (
    SegmentMeta as SegmentMeta,
)
from ._wire_trickle import (
    parse_seq as parse_seq,
)
from ._wire_trickle import (
    validate_channel_name as validate_channel_name,
)

__version__ = "0.1.0"
