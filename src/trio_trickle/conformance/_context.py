"""What a check works with: the suite's options and the :class:`CheckContext`.

The context hands out fresh channels in whichever way the setup allows,
builds URLs and raw connections, starts background GETs and hand-fed POSTs in
the check's own nursery, and removes what the check created when it ends.
The ``expect_*`` helpers turn a wrong status, header or body into a
:class:`CheckFailed` whose reason says what was expected and what came.
"""

from __future__ import annotations

import contextlib
import enum
import secrets
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from urllib.parse import urlsplit

import attrs
import httpx
import trio

from .._wire.trickle import validate_channel_name
from ._http import BodyFeed, CheckFailed, CheckSkipped, RawConnection, Watch

__all__ = [
    "ChannelSetup",
    "ChannelSource",
    "CheckContext",
    "InProcess",
    "SuiteOptions",
    "expect",
    "expect_connection_close",
    "expect_header",
    "expect_no_header",
    "expect_status",
    "expect_text",
    "make_client",
]


class ChannelSetup(enum.Enum):
    """How the suite obtains the fresh channels its checks use."""

    #: ``POST {base}{ch}`` with ``Expect-Content`` (a server with autocreate on).
    CREATE = "create"
    #: Names of channels created out of band (go-livepeer creates channels server-side).
    PRECREATED = "precreated"
    #: The in-process create operation of an embedded server (TRK-008).
    IN_PROCESS = "in-process"


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class InProcess:
    """What an embedded server offers beyond HTTP; only self-check and tests have it."""

    #: Create a channel with a MIME type regardless of autocreate (TRK-008).
    create_channel: Callable[[str, str], None]
    #: Names starting with this are refused by the before-create/delete hooks.
    deny_prefix: str | None = None
    deny_status: int = 403
    deny_message: str = "refused by conformance hook"
    #: Names starting with this make the hooks fail without a status (500).
    fail_prefix: str | None = None


@attrs.frozen(kw_only=True)
class SuiteOptions:
    """What the suite may do to the server under test and what it knows about it."""

    setup: ChannelSetup = ChannelSetup.CREATE
    #: Server autocreate: True on, False off, None unknown.
    autocreate: bool | None = None
    precreated: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    #: MIME type the precreated channels were created with (None: unknown).
    precreated_mime: str | None = None
    channel_prefix: str = attrs.field(default="conf-")
    hostile: bool = False
    strict: bool = False
    only: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    changefeed: bool = False
    idle_timeout: float | None = None
    sweep_interval: float | None = None
    max_segment_bytes: int | None = None
    max_channels: int | None = None
    ring_size: int = 5
    insecure: bool = False
    #: Multiplies every per-check timeout (slow links, loaded machines).
    timeout_scale: float = 1.0
    in_process: InProcess | None = None

    @channel_prefix.validator
    def _check_prefix(self, _attribute: object, value: str) -> None:
        if value:
            validate_channel_name(value)

    @property
    def sweep_window(self) -> float:
        """Longest time an idle channel may live: idle timeout + sweep interval."""
        idle = self.idle_timeout or 0.0
        return idle + (self.sweep_interval if self.sweep_interval is not None else idle)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in attrs.fields(SuiteOptions):
            value = getattr(self, field.name)
            if field.name == "in_process":
                out[field.name] = value is not None
            elif isinstance(value, enum.Enum):
                out[field.name] = value.value
            elif isinstance(value, tuple):
                out[field.name] = list(value)
            else:
                out[field.name] = value
        return out


# -- assertions -----------------------------------------------------------------


class _Response(Protocol):
    status_code: int
    headers: httpx.Headers

    @property
    def content(self) -> bytes: ...


def expect(condition: bool, reason: str) -> None:
    if not condition:
        raise CheckFailed(reason)


def expect_status(response: _Response, status: int, what: str) -> None:
    if response.status_code != status:
        body = response.content[:80]
        raise CheckFailed(f"{what}: expected status {status}, got {response.status_code} {body!r}")


def expect_header(response: _Response, name: str, value: str, what: str) -> None:
    got = response.headers.get(name)
    if got != value:
        shown = "absent" if got is None else repr(got)
        raise CheckFailed(f"{what}: expected header {name}: {value!r}, got {shown}")


def expect_no_header(response: _Response, name: str, what: str) -> None:
    got = response.headers.get(name)
    if got is not None:
        raise CheckFailed(f"{what}: header {name} must be absent, got {got!r}")


def expect_connection_close(response: _Response, what: str) -> None:
    value = response.headers.get("connection", "")
    tokens = {token.strip().lower() for token in value.split(",")}
    if "close" not in tokens:
        raise CheckFailed(f"{what}: expected Connection: close, got {value!r}")


def expect_text(response: _Response, text: str, what: str) -> None:
    """Error bodies: Go sends ``<text>\\n`` (``http.Error``) or bare text; accept both."""
    body = response.content
    if body not in (text.encode(), text.encode() + b"\n"):
        raise CheckFailed(f"{what}: expected body {text!r}, got {body[:80]!r}")


# -- the context ------------------------------------------------------------------


class ChannelSource:
    """Hands out fresh channels according to the setup; shared by a whole run."""

    def __init__(self, options: SuiteOptions) -> None:
        self.options = options
        self.token = secrets.token_hex(3)
        self.counter = 0
        self.precreated = list(options.precreated)
        self.mimes: dict[str, str | None] = {}

    def name(self, prefix: str | None = None) -> str:
        self.counter += 1
        start = self.options.channel_prefix if prefix is None else prefix
        return f"{start}{self.token}-{self.counter}"


class CheckContext:
    """Everything a check may use: URLs, the raw client, channels, helpers."""

    def __init__(
        self,
        *,
        base: str,
        client: httpx.AsyncClient,
        options: SuiteOptions,
        nursery: trio.Nursery,
        source: ChannelSource,
    ) -> None:
        #: The server's trickle base URL, ending in "/".
        self.base = base
        self.client = client
        self.options = options
        self.in_process = options.in_process
        self.nursery = nursery
        self._source = source
        self._owned: list[str] = []
        self._raws: list[RawConnection] = []

    # -- names and URLs -------------------------------------------------------

    def url(self, channel: str, seq: int | str | None = None) -> str:
        return self.base + channel + ("" if seq is None else f"/{seq}")

    def target(self, channel: str, seq: int | str | None = None) -> str:
        """The request target (path) for a raw request."""
        return urlsplit(self.url(channel, seq)).path

    @property
    def base_path(self) -> str:
        return urlsplit(self.base).path

    def name(self, prefix: str | None = None) -> str:
        """A fresh name (valid, not created) under the run's prefix or ``prefix``."""
        name = self._source.name(prefix)
        self._owned.append(name)
        return name

    # -- channels ---------------------------------------------------------------

    async def create(self, name: str, mime: str = "text/plain") -> None:
        """Create channel ``name`` the way the setup allows (deleted after the check)."""
        if name not in self._owned:
            self._owned.append(name)
        if self.options.setup is ChannelSetup.IN_PROCESS:
            if self.in_process is None:
                raise CheckSkipped("in-process setup without an in-process server")
            self.in_process.create_channel(name, mime)
        elif self.options.setup is ChannelSetup.CREATE:
            response = await self.client.post(self.url(name), headers={"Expect-Content": mime})
            if response.status_code != 200:
                raise CheckFailed(
                    f"setup: POST {name} to create a channel answered {response.status_code}"
                    " (--create-channels needs autocreate on; else use --precreated)"
                )
        else:
            raise CheckSkipped("cannot create channels by name with --precreated")
        self._source.mimes[name] = mime

    async def channel(self, mime: str = "text/plain") -> str:
        """A fresh existing channel (nextWrite 0), deleted after the check.

        In the precreated setup the MIME type is the one the channels were
        created with; read it with :meth:`mime`.
        """
        source = self._source
        setup = self.options.setup
        if setup is ChannelSetup.PRECREATED:
            while source.precreated:
                name = source.precreated.pop(0)
                self._owned.append(name)
                response = await self.client.get(self.url(name, "next"))
                if response.status_code == 200 and response.content.strip() == b"0":
                    source.mimes[name] = self.options.precreated_mime
                    return name
            raise CheckSkipped("no fresh precreated channel left (pre-create more)")
        name = self.name()
        await self.create(name, mime)
        return name

    def known_mime(self, channel: str) -> str | None:
        return self._source.mimes.get(channel)

    def mime(self, channel: str) -> str:
        """The MIME type ``channel`` was created with (SKIP if unknown)."""
        mime = self._source.mimes.get(channel)
        if mime is None:
            raise CheckSkipped("MIME type of the precreated channels unknown (--precreated-mime)")
        return mime

    # -- requests ---------------------------------------------------------------

    async def raw(self) -> RawConnection:
        """A raw HTTP/1.1 connection to the server, closed after the check."""
        connection = await RawConnection.open(self.base, insecure=self.options.insecure)
        self._raws.append(connection)
        return connection

    def watch(self, channel: str, seq: int | str) -> Watch:
        """Start ``GET {ch}/{seq}`` in the background."""
        watch = Watch(self.client, self.url(channel, seq))
        self.nursery.start_soon(watch.run)
        return watch

    def feed(self, channel: str, seq: int | str, headers: dict[str, str] | None = None) -> BodyFeed:
        """Start ``POST {ch}/{seq}`` with a hand-fed chunked body (a preconnect until fed)."""
        feed = BodyFeed(self.client, self.url(channel, seq), headers or {})
        self.nursery.start_soon(feed.run)
        return feed

    async def next_write(self, channel: str) -> int:
        response = await self.client.get(self.url(channel, "next"))
        expect_status(response, 200, f"GET {channel}/next")
        text = response.content.decode("latin-1").strip()
        if not text.isdigit():
            raise CheckFailed(f"GET {channel}/next: body {text!r} is not a decimal number")
        return int(text)

    async def publish(
        self,
        channel: str,
        seq: int | str,
        data: bytes,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """``POST {ch}/{seq}`` with a ``Content-Length`` body; returns the response."""
        return await self.client.post(self.url(channel, seq), content=data, headers=headers)

    async def publish_ok(
        self,
        channel: str,
        seq: int | str,
        data: bytes,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        response = await self.publish(channel, seq, data, headers)
        expect_status(response, 200, f"POST {channel}/{seq}")
        return response

    async def get(self, channel: str, seq: int | str) -> httpx.Response:
        """``GET {ch}/{seq}`` read to the end (use :meth:`watch` when it may wait)."""
        return await self.client.get(self.url(channel, seq))

    async def delete(self, channel: str, seq: int | str | None = None) -> httpx.Response:
        return await self.client.delete(self.url(channel, seq))

    async def wait_next(self, channel: str, value: int, within: float = 1.0) -> None:
        """Poll ``GET {ch}/next`` until it says ``value``."""
        seen: list[int] = []
        with trio.move_on_after(within):
            while True:
                seen.append(await self.next_write(channel))
                if seen[-1] == value:
                    return
                await trio.sleep(0.01)
        raise CheckFailed(f"nextWrite of {channel} should become {value}, stays {seen[-1:]}")

    async def accepted_watch(self, channel: str, seq: int | str, within: float = 1.5) -> Watch:
        """Start ``GET {ch}/{seq}`` once the server accepts it (retrying while it says 470).

        For a segment a publisher's POST headers are about to install: the GET
        may race the headers, so a 470 is retried until ``timeout``.
        """
        deadline = trio.current_time() + within
        while True:
            watch = self.watch(channel, seq)
            await trio.sleep(0.1)
            response = watch.response
            if response is None or response.status_code != 470:
                return watch
            if trio.current_time() > deadline:
                raise CheckFailed(
                    f"GET {channel}/{seq} still answered 470 after {within:g} s"
                    " (the POST headers should have installed the segment)"
                )
            await trio.sleep(0.05)

    async def _cleanup(self) -> None:
        for connection in self._raws:
            await connection.aclose()
        for name in self._owned:
            with contextlib.suppress(httpx.HTTPError):
                await self.client.delete(self.url(name))


def make_client(options: SuiteOptions) -> httpx.AsyncClient:
    """The raw client the suite uses: no read timeout (each check has its own)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(None, connect=10.0),
        verify=not options.insecure,
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
    )
