"""HTTP tools for the conformance checks.

Three ways to talk to the server under test, all judging the wire directly:

* :class:`RawConnection`, a minimal HTTP/1.1 client over a trio stream. httpx
  (httpcore) sends a request's whole body before it reads the response, so it
  cannot see a server answer a POST whose body is still open (TRK-034, TRK-037,
  TRK-063, TRK-069); nor can it send a broken chunked body or an exact request
  target such as ``..`` or ``%2F``. This client can.
* :class:`BodyFeed`, an httpx POST whose chunked body the check feeds by hand
  through a trio memory channel. httpx writes the request head before it asks
  for the first body chunk, so an unfed feed is a publisher preconnect.
* :class:`Watch`, an httpx GET running in the background whose head and body
  bytes the check can inspect while they arrive.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from urllib.parse import urlsplit

import httpx
import trio

__all__ = [
    "CHUNKED_POST",
    "RESET",
    "BodyFeed",
    "CheckFailed",
    "CheckSkipped",
    "RawClosed",
    "RawConnection",
    "RawResponse",
    "Watch",
    "until",
]

_POLL = 0.01

#: Headers of a raw segment POST whose body the check sends chunk by chunk.
CHUNKED_POST = (("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain"))
#: Headers of a segment POST that resets the channel (TRK-041).
RESET = {"Lp-Trickle-Reset": "1"}


class CheckFailed(Exception):
    """The server under test broke the requirement a check verifies.

    Defined here, with the lowest-level tools, so that every layer of the suite
    can raise it; the package re-exports it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CheckSkipped(Exception):
    """A check cannot run in this setup (found out while running, e.g. no channel left)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def until(predicate: Callable[[], bool], within: float, what: str) -> None:
    """Poll ``predicate`` until it holds; CheckFailed("... within Ns") otherwise."""
    with trio.move_on_after(within):
        while True:
            if predicate():
                return
            await trio.sleep(_POLL)
    raise CheckFailed(f"{what} within {within:g} s")


class RawClosed(Exception):
    """The server closed the raw connection before a complete message arrived."""


class RawResponse:
    """Status, headers and (once read) body of a response on a raw connection."""

    def __init__(self, status_code: int, headers: list[tuple[str, str]], interim: int) -> None:
        self.status_code = status_code
        self.headers = httpx.Headers(headers)
        #: How many 1xx interim responses preceded this one.
        self.interim = interim
        self.content = b""

    def __repr__(self) -> str:
        return f"<RawResponse {self.status_code} {dict(self.headers)!r}>"


class RawConnection:
    """One HTTP/1.1 connection driven byte by byte (plain TCP or TLS)."""

    def __init__(self, stream: trio.abc.Stream, host: str) -> None:
        self._stream = stream
        self._host = host
        self._buffer = bytearray()
        self._eof = False

    @classmethod
    async def open(cls, url: str, *, insecure: bool = False) -> RawConnection:
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        tcp = await trio.open_tcp_stream(host, port)
        if not tls:
            return cls(tcp, parts.netloc)
        context = ssl.create_default_context()
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        wrapped = trio.SSLStream(tcp, context, server_hostname=host, https_compatible=True)
        await wrapped.do_handshake()
        return cls(wrapped, parts.netloc)

    async def send_head(
        self, method: str, target: str, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Send the request line and headers (``Host`` is added); no body byte."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host}"]
        lines += [f"{name}: {value}" for name, value in headers]
        await self._stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def send_chunk(self, data: bytes) -> None:
        """One chunk of a ``Transfer-Encoding: chunked`` body (never empty)."""
        await self._stream.send_all(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    async def end_chunks(self) -> None:
        await self._stream.send_all(b"0\r\n\r\n")

    async def send_raw(self, data: bytes) -> None:
        await self._stream.send_all(data)

    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> RawResponse:
        """A whole request with a ``Content-Length`` body; returns the read response."""
        all_headers = [*headers, ("Content-Length", str(len(body)))]
        await self.send_head(method, target, all_headers)
        if body:
            await self._stream.send_all(body)
        response = await self.read_head()
        await self.read_body(response, head_request=method == "HEAD")
        return response

    async def _fill(self) -> None:
        if self._eof:
            raise RawClosed("connection closed by the server")
        data = await self._stream.receive_some(65536)
        if not data:
            self._eof = True
            raise RawClosed("connection closed by the server")
        self._buffer += data

    async def _read_until(self, delimiter: bytes) -> bytes:
        while (index := self._buffer.find(delimiter)) < 0:
            await self._fill()
        data = bytes(self._buffer[:index])
        del self._buffer[: index + len(delimiter)]
        return data

    async def _read_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            await self._fill()
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    async def read_head(self) -> RawResponse:
        """Read the final response head, skipping (and counting) 1xx interim ones."""
        interim = 0
        while True:
            head = (await self._read_until(b"\r\n\r\n")).decode("latin-1")
            status_line, *header_lines = head.split("\r\n")
            fields = status_line.split(" ", 2)
            if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
                raise RawClosed(f"malformed status line {status_line!r}")
            status = int(fields[1])
            headers: list[tuple[str, str]] = []
            for line in header_lines:
                name, sep, value = line.partition(":")
                if not sep:
                    raise RawClosed(f"malformed header line {line!r}")
                headers.append((name.strip(), value.strip()))
            if 100 <= status < 200:
                interim += 1
                continue
            return RawResponse(status, headers, interim)

    async def answer(self, within: float, what: str) -> RawResponse:
        """:meth:`read_head` bounded by ``within`` seconds; CheckFailed when late."""
        with trio.move_on_after(within):
            return await self.read_head()
        raise CheckFailed(f"{what}: no response within {within:g} s")

    async def read_body(self, response: RawResponse, *, head_request: bool = False) -> bytes:
        """Read the body that follows ``response``'s head and store it on it."""
        if head_request or response.status_code in (204, 304):
            return b""
        encoding = response.headers.get("transfer-encoding", "").lower()
        if "chunked" in encoding:
            parts: list[bytes] = []
            while True:
                size_line = (await self._read_until(b"\r\n")).split(b";")[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise RawClosed(f"malformed chunk size {size_line!r}") from None
                if size == 0:
                    while await self._read_until(b"\r\n"):
                        pass  # trailers up to the blank line
                    break
                parts.append(await self._read_exactly(size))
                await self._read_until(b"\r\n")
            body = b"".join(parts)
        elif "content-length" in response.headers:
            body = await self._read_exactly(int(response.headers["content-length"]))
        else:
            while True:
                try:
                    await self._fill()
                except RawClosed:
                    break
            body = bytes(self._buffer)
            self._buffer.clear()
        response.content = body
        return body

    async def aclose(self) -> None:
        """Close abruptly (no TLS close_notify): also how checks play a dying client."""
        await trio.aclose_forcefully(self._stream)


class BodyFeed:
    """An httpx POST with a chunked body that the check feeds chunk by chunk."""

    def __init__(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self._client = client
        self._headers = headers
        self._send, self._receive = trio.open_memory_channel[bytes](256)
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None
        self.done = trio.Event()

    async def run(self) -> None:
        async def body() -> AsyncIterator[bytes]:
            async with self._receive:
                async for chunk in self._receive:
                    yield chunk

        try:
            self.response = await self._client.post(self.url, content=body(), headers=self._headers)
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()

    async def send(self, data: bytes) -> None:
        """Queue ``data`` as the next chunk (it reaches the wire shortly after)."""
        if data:
            # httpx may have stopped reading the body: the server answered early.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._send.send(data)

    def end(self) -> None:
        """End the body (the terminating zero-size chunk follows)."""
        self._send.close()

    async def result(self, within: float = 2.0) -> httpx.Response:
        """The POST's response; CheckFailed if it failed or took too long."""
        with trio.move_on_after(within):
            await self.done.wait()
        if not self.done.is_set():
            raise CheckFailed(f"POST {self.url} got no response within {within:g} s")
        if self.response is None:
            raise CheckFailed(f"POST {self.url} failed: {self.error!r}")
        return self.response


class Watch:
    """An httpx GET in the background: its head, the bytes so far, how it ended."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.url = url
        self._client = client
        self.response: httpx.Response | None = None
        self.body = bytearray()
        self.error: BaseException | None = None
        self.done = trio.Event()

    async def run(self) -> None:
        try:
            async with self._client.stream("GET", self.url) as response:
                self.response = response
                async for chunk in response.aiter_raw():
                    self.body += chunk
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()

    @property
    def answered(self) -> bool:
        return self.response is not None or self.done.is_set()

    def _describe(self) -> str:
        if self.response is not None:
            r = self.response
            return f"{r.status_code} {dict(r.headers)!r} body so far {bytes(self.body)[:60]!r}"
        return f"error {self.error!r}"

    async def head(self, within: float = 2.0) -> httpx.Response:
        """Wait for the response head; CheckFailed on timeout or a failed request."""
        await until(lambda: self.answered, within, f"GET {self.url} should be answered")
        if self.response is None:
            raise CheckFailed(f"GET {self.url} failed: {self.error!r}")
        return self.response

    async def still_waiting(self, duration: float = 0.25) -> None:
        """Assert the GET stays unanswered for ``duration`` seconds."""
        await trio.sleep(duration)
        if self.answered:
            raise CheckFailed(f"GET {self.url} should still wait but got {self._describe()}")

    async def received(self, expected: bytes, within: float = 2.0) -> None:
        """Wait until the body received so far is exactly ``expected``."""
        await until(
            lambda: len(self.body) >= len(expected) or self.done.is_set(),
            within,
            f"GET {self.url} should deliver {len(expected)} bytes (has {len(self.body)})",
        )
        if bytes(self.body) != expected:
            raise CheckFailed(
                f"GET {self.url}: expected body {expected[:60]!r}, got {bytes(self.body)[:60]!r}"
            )

    async def finished(self, within: float = 2.0) -> tuple[httpx.Response, bytes]:
        """Wait for a clean end of the response; returns it and the whole body."""
        with trio.move_on_after(within):
            await self.done.wait()
        if not self.done.is_set():
            raise CheckFailed(f"GET {self.url} should end within {within:g} s")
        if self.response is None or self.error is not None:
            raise CheckFailed(f"GET {self.url} did not end cleanly: {self._describe()}")
        return self.response, bytes(self.body)
