"""No client request may crash, hang or spin: regression tests over real servers.

* A background task of a publisher or subscriber (a preconnect, a POST, a
  DELETE) whose httpx client is closed under it used to raise httpx's
  ``RuntimeError`` into the nursery the caller's own code runs in (cancelling
  that code and leaving the ``async with`` as an ExceptionGroup), or hand it
  raw to ``next_segment``. Every failure now is a :class:`TransportError`,
  raised by the next call on the resource.
* A 470 that names no usable ``Lp-Trickle-Latest`` (or names the requested seq
  itself, or keeps naming a newer one) used to be re-requested at once,
  forever: a hot loop against a broken server. Now it is a counted failure.
* A body resumed after a cut used to wait for the re-read's headers forever
  (re-issued every ``headers`` s, never counted); now each wait is a failure.

Misbehaving servers are the real trickle server with chosen answers
(``ServedTrickle.override``) or a tiny raw-HTTP trio server for what ASGI cannot
express (a body cut mid-stream, headers that never come).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import trio

from tests.integration.servers import ServedTrickle, client_tasks, open_test_server
from trio_trickle._client.http import ClientTimeouts, create_http_client
from trio_trickle._client.lifecycle import OwnedNursery
from trio_trickle._client.publisher import TricklePublisher
from trio_trickle._client.subscriber import FREE_JUMPS, TrickleSubscriber
from trio_trickle._errors import TransportError

FAST = ClientTimeouts(connect=2.0, headers=2.0, body=2.0, queue=1.0, close=2.0)
Answer = tuple[int, list[tuple[str, str]], bytes] | None


@pytest.fixture
async def served() -> AsyncIterator[ServedTrickle]:
    async with open_test_server() as srv:
        yield srv


def gets(served: ServedTrickle) -> list[str]:
    return [r.path for r in served.seen("GET")]


# -- 1. background failures are TransportErrors, raised at the next call ------------------


@pytest.mark.spec("TRK-120")
async def test_closed_client_fails_the_next_write_not_the_callers_block(
    served: ServedTrickle,
) -> None:
    url = served.create("ch")
    client = create_http_client(FAST)
    reached = False
    with trio.fail_after(5):
        async with TricklePublisher(
            url, "text/plain", client=client, start_seq=0, owns_channel=False, timeouts=FAST
        ) as pub:
            assert await pub.write_segment(b"first") == 0
            await client.aclose()  # under the preconnected POST of 1
            for _ in range(2):
                with pytest.raises(TransportError):
                    await pub.write_segment(b"lost")
            # The caller's own code was not cancelled by a crashed background task.
            await trio.lowlevel.checkpoint()
            reached = True
    assert reached
    assert not client_tasks()


@pytest.mark.spec("TRK-120")
async def test_closed_client_fails_the_subscriber_with_transport_error(
    served: ServedTrickle,
) -> None:
    url = served.create("ch")
    client = create_http_client(FAST)
    with trio.fail_after(5):
        async with (
            TricklePublisher(
                url, "text/plain", start_seq=0, owns_channel=False, timeouts=FAST
            ) as pub,
            TrickleSubscriber(url, client=client, start_seq=0, timeouts=FAST) as sub,
        ):
            async with pub.segment() as seg:
                await seg.write(b"abc")
                segment = await sub.__anext__()
                assert await segment.__anext__() == b"abc"
                # Segment 0 mid-body, the preconnect of 1 waiting for headers.
                await served.wait_until(lambda: served.in_flight("GET", "ch/1") == 1)
                await client.aclose()
                await seg.write(b"def")
                with pytest.raises(TransportError):
                    await segment.__anext__()
            # The preconnect's failure, delivered by the next call; and again.
            for _ in range(2):
                with pytest.raises(TransportError):
                    await sub.__anext__()
    assert not client_tasks()


@pytest.mark.spec("TRK-120")
async def test_a_crashing_task_is_reported_not_raised_into_the_owner() -> None:
    tasks = OwnedNursery()
    crashed = trio.Event()

    async def crash() -> None:
        crashed.set()
        raise ValueError("a bug in a background task")

    with trio.fail_after(5):
        await tasks.open()
        try:
            tasks.start_soon(crash)
            await crashed.wait()
            await trio.lowlevel.checkpoint()  # not cancelled by the crash
            assert isinstance(tasks.failure, TransportError)
            assert isinstance(tasks.failure.__cause__, ValueError)
        finally:
            await tasks.close()


@pytest.mark.spec("TRK-120")
async def test_a_crashed_task_fails_the_next_publisher_call(served: ServedTrickle) -> None:
    url = served.create("ch")

    async def crash() -> None:
        raise ValueError("a bug in a background task")

    with trio.fail_after(5):
        async with TricklePublisher(
            url, "text/plain", start_seq=0, owns_channel=False, timeouts=FAST
        ) as pub:
            pub._tasks.start_soon(crash)
            await served.wait_until(lambda: pub._tasks.failure is not None)
            with pytest.raises(TransportError, match="a bug in a background task"):
                await pub.write_segment(b"x")


# -- 2. a 470 without a usable Latest never spins --------------------------------------


def always_470(latest: Callable[[str], str | None]) -> Callable[[str, str], Answer]:
    def override(method: str, path: str) -> Answer:
        if method != "GET":
            return None
        value = latest(path.rpartition("/")[2])
        headers = [] if value is None else [("Lp-Trickle-Latest", value)]
        return 470, headers, b"Entry not found\n"

    return override


@pytest.mark.spec("TRK-104", "TRK-107", "TRK-118")
@pytest.mark.parametrize(
    "latest",
    [
        pytest.param(lambda seq: None, id="missing"),
        pytest.param(lambda seq: "soon", id="not-an-integer"),
        pytest.param(lambda seq: "-3", id="negative"),
    ],
)
async def test_470_without_usable_latest_is_a_bounded_failure(
    served: ServedTrickle, latest: Callable[[str], str | None]
) -> None:
    url = served.create("ch")
    served.override = always_470(latest)
    with trio.fail_after(5):
        async with TrickleSubscriber(
            url, start_seq=7, max_retries=2, retry_delay=0.01, timeouts=FAST
        ) as sub:
            with pytest.raises(TransportError, match="470"):
                await sub.__anext__()
    # 7, then -1 (TRK-104) answered the same way: a failure, retried twice.
    assert gets(served) == ["ch/7", "ch/-1", "ch/-1", "ch/-1"]


@pytest.mark.spec("TRK-103", "TRK-107", "TRK-118")
async def test_470_naming_the_requested_seq_is_a_bounded_failure(served: ServedTrickle) -> None:
    url = served.create("ch")
    served.override = always_470(lambda seq: seq)
    with trio.fail_after(5):
        async with TrickleSubscriber(
            url, start_seq=4, max_retries=2, retry_delay=0.01, timeouts=FAST
        ) as sub:
            with pytest.raises(TransportError, match="470"):
                await sub.__anext__()
    assert gets(served) == ["ch/4"] * 3


@pytest.mark.spec("TRK-103", "TRK-107", "TRK-118")
async def test_470_jumping_forever_is_a_bounded_failure(served: ServedTrickle) -> None:
    url = served.create("ch")
    served.override = always_470(lambda seq: str(int(seq) + 1))
    with trio.fail_after(5):
        async with TrickleSubscriber(
            url, start_seq=0, max_retries=2, retry_delay=0.01, timeouts=FAST
        ) as sub:
            with pytest.raises(TransportError, match="470"):
                await sub.__anext__()
    # FREE_JUMPS jumps at once (TRK-103), then every further one is a failure.
    assert gets(served) == [f"ch/{n}" for n in range(FREE_JUMPS + 3)]


@pytest.mark.spec("TRK-103")
async def test_a_470_jump_still_resolves_after_a_failure(served: ServedTrickle) -> None:
    """The bound costs a legitimate (if odd) server nothing: the jump is followed."""
    url = served.create("ch")
    answered: list[str] = []

    def flaky(method: str, path: str) -> Answer:
        seq = path.rpartition("/")[2]
        if method == "GET" and seq != "9":
            answered.append(seq)
            return 470, [("Lp-Trickle-Latest", str(int(seq) + 1))], b"Entry not found\n"
        return None

    served.override = flaky
    with trio.fail_after(5):
        async with (
            TricklePublisher(
                url, "text/plain", start_seq=9, owns_channel=False, timeouts=FAST
            ) as pub,
            TrickleSubscriber(url, start_seq=9 - FREE_JUMPS - 2, retry_delay=0.01) as sub,
        ):
            await pub.write_segment(b"nine")
            segment = await sub.__anext__()
            assert (segment.seq, await segment.read_all()) == (9, b"nine")


# -- 3. other unbounded waits ------------------------------------------------------


RawHandler = Callable[[int, bytes, trio.SocketStream], Awaitable[None]]


class RawHttpServer:
    """A trio socket server speaking just enough HTTP/1.1 to misbehave on purpose.

    ``handler(n, request_head, stream)`` answers the n-th request (0-based), one
    request per connection.
    """

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.port = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._serve, listeners)

    async def _serve(self, stream: trio.SocketStream) -> None:
        async with stream:
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    head += data
                n = len(self.requests)
                self.requests.append(head.split(b"\r\n", 1)[0])
                await self.handler(n, head, stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


async def until_closed(stream: trio.SocketStream) -> None:
    """Never answer: wait for the client to give the request up."""
    while await stream.receive_some(65536):
        pass


@pytest.mark.spec("TRK-109", "TRK-107", "TRK-119")
async def test_a_resumed_body_whose_headers_never_come_fails(nursery: trio.Nursery) -> None:
    async def cut_then_mute(n: int, head: bytes, stream: trio.SocketStream) -> None:
        if n == 0:
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nLp-Trickle-Seq: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n"
            )
            return  # closed mid-body
        await until_closed(stream)

    server = RawHttpServer(cut_then_mute)
    await nursery.start(server.run)
    timeouts = ClientTimeouts(connect=2.0, headers=0.05, body=2.0, close=1.0)
    url = f"http://127.0.0.1:{server.port}/ai/trickle/ch"
    with trio.fail_after(5):
        async with TrickleSubscriber(
            url, start_seq=0, preconnect=False, max_retries=2, retry_delay=0.01, timeouts=timeouts
        ) as sub:
            segment = await sub.__anext__()
            assert await segment.__anext__() == b"abc"
            with pytest.raises(TransportError):
                await segment.__anext__()
    # The cut is failure 1, each unanswered re-read one more: two re-reads, then it gave up.
    assert server.requests == [b"GET /ai/trickle/ch/0 HTTP/1.1"] * 3


@pytest.mark.spec("TRK-109", "TRK-119")
async def test_a_get_that_never_gets_a_connection_fails(served: ServedTrickle) -> None:
    """Headers below connect: a GET waiting for a pool slot is a failure, not re-issued."""
    url = served.create("ch")
    quick = ClientTimeouts(connect=2.0, headers=0.05, body=2.0, close=1.0)
    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=1), timeout=FAST.for_request(), trust_env=False
    ) as client:
        with trio.fail_after(5):
            async with (
                TrickleSubscriber(url, client=client, start_seq=0, timeouts=FAST) as holder,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(holder.__anext__)  # the one connection, waiting for 0
                await served.wait_until(lambda: served.in_flight("GET", "ch/0") == 1)
                async with TrickleSubscriber(
                    url,
                    client=client,
                    start_seq=1,
                    timeouts=quick,
                    max_retries=1,
                    retry_delay=0.01,
                    preconnect=False,
                ) as starved:
                    with pytest.raises(TransportError, match="not connected"):
                        await starved.__anext__()
                nursery.cancel_scope.cancel()
    assert gets(served) == ["ch/0"]


async def test_next_with_an_oversized_body_falls_back_to_minus_one(
    served: ServedTrickle,
) -> None:
    url = served.create("ch")

    def huge_next(method: str, path: str) -> Answer:
        if method == "GET" and path == "ch/next":
            return 200, [("Content-Type", "text/plain")], b"1" * 1_000_000
        return None

    served.override = huge_next
    with trio.fail_after(5):
        async with TricklePublisher(url, "text/plain", owns_channel=False, timeouts=FAST) as pub:
            assert await pub.write_segment(b"x") == 0
    assert served.seen("POST")[0].path == "ch/-1"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: TrickleSubscriber("http://h/ch", wait_ahead_delay=0), id="wait-ahead"),
        pytest.param(lambda: TrickleSubscriber("http://h/ch", retry_delay=-1), id="sub-retry"),
        pytest.param(
            lambda: TricklePublisher("http://h/ch", "a/b", retry_delay=-1), id="pub-retry"
        ),
        pytest.param(lambda: TrickleSubscriber("http://h:99999999/ch"), id="bad-port"),
        pytest.param(lambda: TricklePublisher("http://h/x\x00y/ch", "a/b"), id="bad-char"),
    ],
)
def test_settings_that_would_spin_or_crash_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match=r"must be|not a usable"):
        make()
