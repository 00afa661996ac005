"""trio-trickle: Livepeer's real-time compute stack on trio.

Layout (dependencies point one way, top to bottom):

* wire and sans-io core: ``_wire_*`` (attrs messages with ``to_wire``/``from_wire``)
  and ``_core_*`` (the trickle channel state machine). No I/O, no trio.
* trio adapters: the trickle server (hypercorn) and client (httpx), media (PyAV).
* sessions, runner HTTP app, orchestrator, gateway, CLI.

Every public name is re-exported here exactly once.
"""

from ._core_server import ServerConfig as ServerConfig
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
    TrickleServer as TrickleServer,
)
from ._server import (
    TrickleServerHandle as TrickleServerHandle,
)
from ._server import (
    open_trickle_server as open_trickle_server,
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

__version__ = "0.1.0"
