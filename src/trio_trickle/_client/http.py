"""Shared HTTP plumbing of the trickle clients: one httpx client, timeouts, error mapping.

Every publisher and subscriber speaks HTTP/1.1 through one ``httpx.AsyncClient``
(passed in, or created and owned by whoever opened it). The pool is sized for
many long polls at once: a subscriber holds up to two connections (the
segment it reads and the preconnect of the next one), a publisher two (the
segment it writes and the preconnected next POST).

Timeouts are *ours*, not httpx's: every request passes an explicit
``httpx.Timeout`` whose ``read`` is None, and the clients bound the waits that
have protocol meaning (response headers, body inactivity) with trio deadlines,
so a wait that ran out can be told apart from a broken connection and handled
the way spec/trickle.md says (TRK-109). httpx's own failures are mapped to
:class:`~trio_trickle.TransportError` in one place: :data:`HTTP_FAILURES` lists
what an httpx call raises when a request fails, which is more than
``httpx.HTTPError`` (a closed client and a closed stream are ``RuntimeError``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import suppress

import attrs
import httpx
import trio

from .._errors import TransportError
from .._wire.trickle import SegmentMeta

__all__ = ["ClientTimeouts", "create_http_client"]

log = logging.getLogger("trio_trickle.client")

#: Most connections one client keeps at once (long polls count); far above what
#: a hundred subscribers with preconnects need, far below a file-descriptor limit.
MAX_CONNECTIONS = 1024
#: Idle keep-alive connections kept for reuse.
MAX_KEEPALIVE = 128
#: Below our servers' 20 s keep-alive timeout (TRK-113), so the client always
#: drops an idle connection before the server closes it under a new request.
KEEPALIVE_EXPIRY = 15.0
#: Most bytes of a small response body (``/next``, a POST's answer) kept in memory.
MAX_SMALL_BODY = 64 * 1024

#: What an httpx call raises for a request that failed. Besides ``HTTPError``:
#: ``RuntimeError`` for a closed client (and ``httpx.StreamError``, a closed or
#: consumed stream), ``InvalidURL``. Background tasks must catch all of them, or
#: the error crashes the nursery the caller's own code runs in.
HTTP_FAILURES: tuple[type[Exception], ...] = (httpx.HTTPError, httpx.InvalidURL, RuntimeError)
#: HTTP_FAILURES, or one already mapped.
_REQUEST_FAILURES: tuple[type[Exception], ...] = (TransportError, *HTTP_FAILURES)


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{attribute.name} must be a positive number of seconds")


@attrs.frozen(kw_only=True)
class ClientTimeouts:
    """Every bound a trickle client puts on a wait, in seconds (TRK-109).

    Defaults follow the Go clients; tests shrink them.
    """

    #: TCP connect, and waiting for a free pooled connection.
    connect: float = attrs.field(default=10.0, validator=_positive)
    #: Response headers. A subscriber GET that waits longer is re-issued for the
    #: same seq without counting a failure (Go's preconnect refresh); a publisher
    #: POST must be answered this long after its body ended.
    headers: float = attrs.field(default=20.0, validator=_positive)
    #: Longest gap between two body chunks a subscriber accepts (a failure beyond),
    #: and longest a single socket write may stall.
    body: float = attrs.field(default=30.0, validator=_positive)
    #: Longest a publisher ``write`` waits for room in its bounded send queue
    #: (back-pressure from a connection that does not take bytes), as the Python
    #: gateway's 5 s queue-put timeout.
    queue: float = attrs.field(default=5.0, validator=_positive)
    #: Budget for a graceful close (ending a preconnect, ``DELETE`` of the channel).
    close: float = attrs.field(default=5.0, validator=_positive)

    def for_request(self) -> httpx.Timeout:
        """The httpx timeout every trickle request carries (reads are bounded by us)."""
        return httpx.Timeout(connect=self.connect, read=None, write=self.body, pool=self.connect)


def create_http_client(timeouts: ClientTimeouts | None = None) -> httpx.AsyncClient:
    """A client fit for trickle: HTTP/1.1, a large pool, no redirects, no env proxies.

    ``trust_env`` is off so an ``HTTP_PROXY`` in the environment cannot silently
    put a buffering proxy between a publisher and the orchestrator.
    """
    timeouts = timeouts or ClientTimeouts()
    return httpx.AsyncClient(
        http1=True,
        http2=False,
        timeout=timeouts.for_request(),
        limits=httpx.Limits(
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_KEEPALIVE,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        ),
        follow_redirects=False,
        trust_env=False,
    )


def transport_error(exc: Exception, what: str) -> TransportError:
    """The TransportError standing for an httpx failure (one of HTTP_FAILURES) during ``what``."""
    kind = type(exc).__name__
    detail = str(exc) or kind
    error = TransportError(f"{what}: {kind}: {detail}")
    error.__cause__ = exc
    return error


def closed_client_error(what: str) -> TransportError:
    return TransportError(f"{what}: the HTTP client is closed")


async def send_request(
    client: httpx.AsyncClient, request: httpx.Request, what: str
) -> httpx.Response:
    """``client.send(request, stream=True)`` raising only TransportError for a failure.

    A closed client fails at once with a clear message (it cannot recover, so
    retry loops check :attr:`httpx.AsyncClient.is_closed` before waiting).
    """
    if client.is_closed:
        raise closed_client_error(what)
    try:
        return await client.send(request, stream=True)
    except HTTP_FAILURES as exc:
        if client.is_closed:
            raise closed_client_error(what) from exc
        raise transport_error(exc, what) from exc


async def read_capped(response: httpx.Response, limit: int = MAX_SMALL_BODY) -> bytes | None:
    """The body of a streamed response, or None when it exceeds ``limit`` bytes.

    Reads to the end (so the connection can be reused) but keeps at most
    ``limit`` bytes: a server cannot make a small answer cost unbounded memory.
    The caller bounds the time and maps the errors (HTTP_FAILURES).
    """
    body = bytearray()
    over = False
    async for chunk in response.aiter_raw():
        if len(body) + len(chunk) > limit:
            over = True
        else:
            body += chunk
    return None if over else bytes(body)


def response_meta(headers: Mapping[str, str]) -> SegmentMeta | None:
    """The ``Lp-Trickle-*`` metadata of a response, or None when a header is garbled."""
    try:
        return SegmentMeta.from_wire(headers)
    except ValueError:
        return None


async def delete_quietly(
    client: httpx.AsyncClient, url: str, timeouts: ClientTimeouts, what: str
) -> None:
    """A bounded DELETE whose failure is only logged: at teardown it is expected
    (the orchestrator may already have removed the channel, or be gone)."""
    with trio.move_on_after(timeouts.close):
        try:
            request = client.build_request("DELETE", url, timeout=timeouts.for_request())
            response = await send_request(client, request, f"{what} {url}")
            try:
                await read_capped(response)  # to its end, so the connection is reused
            finally:
                await response.aclose()
        except _REQUEST_FAILURES as exc:
            log.debug("%s %s failed: %s", what, url, exc)
            return
        if response.status_code != 200:
            log.debug("%s %s answered %s", what, url, response.status_code)


async def probe_next_seq(
    client: httpx.AsyncClient, channel_url: str, timeouts: ClientTimeouts
) -> int | None:
    """``GET {ch}/next`` (TRK-088): ``Lp-Trickle-Latest``, else the decimal body.

    None when the server cannot tell (no such route: 400/404/405, any other
    failure): the caller then posts its first segment to ``-1`` (TRK-089).
    """
    url = f"{channel_url}/next"
    response: httpx.Response | None = None
    body: bytes | None = None
    with trio.move_on_after(timeouts.connect + timeouts.headers):
        try:
            request = client.build_request("GET", url, timeout=timeouts.for_request())
            response = await send_request(client, request, f"GET {url}")
            try:
                body = await read_capped(response, 64)
            finally:
                await response.aclose()
        except _REQUEST_FAILURES as exc:
            log.debug("GET %s failed, first segment goes to -1: %s", url, exc)
            return None
    if response is None or body is None or response.status_code != 200:
        status = None if response is None else response.status_code
        log.debug("GET %s answered %s (or too much), first segment goes to -1", url, status)
        return None
    meta = response_meta(response.headers)
    if meta is not None and meta.latest is not None and meta.latest >= 0:
        return meta.latest
    text = body.decode("ascii", "replace").strip()
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return None


def segment_url(channel_url: str, seq: int | str) -> str:
    return f"{channel_url}/{seq}"


def normalize_channel_url(url: str) -> str:
    """``http://host/base/ch`` without a trailing slash; refuses a URL without a name.

    Also refuses what httpx cannot request (a bad port, a control character):
    found here, it is a ValueError for the caller, not a failure of a
    background task later.
    """
    url = str(url).rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https") or "/" not in rest:
        raise ValueError(f"not a trickle channel URL: {url!r}")
    try:
        parsed = httpx.URL(url + "/0")
        port = parsed.port
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a usable trickle channel URL: {url!r}: {exc}") from None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"not a usable trickle channel URL: {url!r}: port {port}")
    return url


class BodyReader:
    """Reads a streaming httpx response body and can be dropped at any point.

    httpx delivers a body through a chain of async generators (its own and
    httpcore's). Leaving them suspended means they are finalized by the garbage
    collector, which trio reports as a ResourceWarning (and which is noise at
    best). Closing here therefore first closes the response (dropping the
    connection unless the body was complete) and then resumes the chain until
    it ends: with its socket closed every level finishes at once, with an error
    that is swallowed because the caller already gave the body up.
    """

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._chunks = response.aiter_raw()
        self._finished = False

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body, or None at its end; a failure is TransportError."""
        if self._finished:
            return None
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            self._finished = True
            return None
        except HTTP_FAILURES as exc:
            self._finished = True
            raise transport_error(exc, "body") from exc
        except BaseException:
            # An exception (cancellation included) has already unwound the chain.
            self._finished = True
            raise

    async def aclose(self, budget: float = 5.0) -> None:
        """Close the response and unwind the generator chain; safe while cancelled."""
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + budget
            with suppress(*HTTP_FAILURES):
                await self.response.aclose()
            while not self._finished:
                try:
                    await self._chunks.__anext__()
                except (Exception, trio.Cancelled):
                    # Cancelled can only be this scope's own deadline (it is shielded).
                    self._finished = True
