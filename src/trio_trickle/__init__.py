"""trio-trickle: Livepeer's real-time compute stack on trio.

Layout (dependencies point one way, top to bottom):

* wire and sans-io core: ``_wire_*`` (attrs messages with ``to_wire``/``from_wire``)
  and ``_core_*`` (the trickle channel state machine). No I/O, no trio.
* trio adapters: the trickle server (hypercorn) and client (httpx), media (PyAV).
* sessions, runner HTTP app, orchestrator, gateway, CLI.

Every public name is re-exported here exactly once.
"""

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

__version__ = "0.1.0"
